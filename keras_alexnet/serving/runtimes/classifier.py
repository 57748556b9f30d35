"""Encoded images through a runtime that takes preprocessed ones (runtimes/__init__.py's seam).

`ArrayClassifier` has client.py's interface (`classify(list of bytes)` -> top-k rows, or
client.BadRequest when an image is refused), so bin/predict treats it as the SavedModel's
classifier: each batch is preprocessed by image_input.ImagePreprocessing as the SavedModel's
serving_default or ten_crop signature does (the same check, decoding, resize, crops and mean
image, from the model's ModelInfo), run through the runtime's predict, and ranked.
"""
import numpy as np
import tensorflow as tf

from keras_alexnet.serving import client, image_input

TOP_K = 5
SIGNATURES = ("serving_default", "ten_crop")


class ArrayClassifier:
    def __init__(self, loaded, signature=client.DEFAULT_SIGNATURE, *, where="the model"):
        if signature not in SIGNATURES:
            raise ValueError(f"{where}: --signature={signature}: this format takes "
                             f"{' or '.join(SIGNATURES)}")
        self.predict, self.info = loaded
        metadata = self.info.metadata
        self.preprocessing = image_input.ImagePreprocessing(
            self.info.mean_image, self.info.image_size, std=self.info.std,
            jpeg_quality=metadata["jpeg_quality"], resize=metadata["resize_mode"])
        self.ten_crop = signature == "ten_crop"
        patches = (self.preprocessing.ten_crop_patches if self.ten_crop
                   else self.preprocessing.centre_patches)
        self._patches = tf.function(patches, input_signature=[tf.TensorSpec([None], tf.string)])

    def probabilities(self, images):
        """float32 [B, C] of encoded images; client.BadRequest when one is refused."""
        try:
            patches = self._patches(tf.constant(list(images), tf.string)).numpy()
        except tf.errors.InvalidArgumentError as e:
            raise client.BadRequest(e.message) from None
        if not self.ten_crop:
            return np.asarray(self.predict(patches), np.float32)
        size = self.info.image_size
        flat = np.asarray(self.predict(patches.reshape(-1, size, size, 3)), np.float32)
        return flat.reshape(len(patches), 10, -1).mean(axis=1)  # the paper's softmax average

    def classify(self, images):
        rows = []
        for row in self.probabilities(images):
            top = np.argsort(-row, kind="stable")[:TOP_K]  # ties: the lower index first, as top_k
            rows.append([(int(c), self.info.synsets[c], self.info.class_names[c], float(row[c]))
                         for c in top])
        return rows
