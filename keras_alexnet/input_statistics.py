"""InputStatistics: what came with a network's weights, carried inside the Keras model.

An identity layer on the model's input (it changes no value) whose non-trainable
weights are the mean image [R, R, 3] and the std [3] the images are normalized
with, and whose config holds the labels (WordNet IDs and names), the resize the
weights were trained with ('shorter_side' or 'warp', config.input.resize) and
the network's config.model. Being a layer of the model, it is saved in and
loaded from a `.keras` file with the weights, so keras_alexnet.preprocess_input
and decode_predictions always use the statistics of the very model they are
given (applications.py), and init_from can compare network options.
"""
import keras
import numpy as np

LAYER_NAME = "input_statistics"


@keras.saving.register_keras_serializable(package="keras_alexnet")
class InputStatistics(keras.layers.Layer):
    """Identity; holds the mean image, std, labels, resize and network options of the weights."""

    def __init__(self, stored_size=256, synsets=(), class_names=(), resize="shorter_side",
                 model_config=None, **kwargs):
        kwargs.setdefault("name", LAYER_NAME)
        kwargs["dtype"] = "float32"  # the mean image in float32 under any policy
        super().__init__(**kwargs)
        self.stored_size = int(stored_size)
        self.synsets = [str(s) for s in synsets]
        self.class_names = [str(n) for n in class_names]
        self.resize = resize
        self.model_config = dict(model_config or {})
        self.mean_image = self.add_weight(shape=(self.stored_size, self.stored_size, 3),
                                          initializer="zeros", trainable=False, name="mean_image")
        self.std = self.add_weight(shape=(3,), initializer="ones", trainable=False, name="std")

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def set_statistics(self, mean_image, std):
        self.mean_image.assign(np.asarray(mean_image, np.float32))
        self.std.assign(np.asarray(std, np.float32))

    def get_config(self):
        config = super().get_config()
        config.update(stored_size=self.stored_size, synsets=self.synsets,
                      class_names=self.class_names, resize=self.resize,
                      model_config=self.model_config)
        return config
