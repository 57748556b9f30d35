"""The layers the paper's network is built from (model.py assembles them).

- LocalResponseNormalization: the paper's cross-channel LRN, per tower or across them,
  optionally applying the ReLU of the convolution before it.
- TowerConv2D: a grouped convolution as the paper's two towers.
- PaperDropout / InvertedDropout: the paper's dropout and Keras's, each drawing its own
  masks on every replica of every worker (replica_seed); seek_dropout moves their seed
  state to a given step (a resumed run).

Every layer is registered with Keras under the package name "keras_alexnet" (the names
saved .keras files and exports refer to: do not rename them).
"""
import keras
import tensorflow as tf
from keras import layers

# LRN in training: the same function and gradient as XLA kernels (see fused_lrn.py).
from keras_alexnet import fused_lrn
# keras.layers.Conv2D, with float32 gradients under bfloat16 on CPUs without native
# bfloat16 (the same numbers, faster there: docs/BENCHMARKS.md, bfloat16_conv.py).
from keras_alexnet.bfloat16_conv import Float32GradConv2D

# The paper's LRN hyper-parameters. alpha is the paper's 1e-4 divided by n=5,
# as the authors' cuda-convnet2 (and Caffe) applied it; pass lrn_alpha=1e-4
# for the formula exactly as printed in the paper.
LRN_DEPTH_RADIUS = 2
LRN_BIAS = 2.0
LRN_ALPHA = 1e-4 / 5
LRN_BETA = 0.75


@keras.saving.register_keras_serializable(package="keras_alexnet")
class LocalResponseNormalization(layers.Layer):
    """Cross-channel LRN, as `tf.nn.local_response_normalization` computes it, in float32.

    towers > 1 normalizes each tower's channels on their own, as the paper's two-GPU network
    did (a GPU normalized the maps it held). towers=1 is the plain LRN over all channels.

    Inference runs `tf.nn.local_response_normalization` (TensorFlow has no bfloat16 LRN
    kernel on CPU and no float16 one on GPU, so it casts to float32 and back): the graph
    that evaluation and the SavedModel export trace is plain TensorFlow. Training with
    fused_training=True runs fused_lrn.lrn, the same function and gradient as XLA kernels
    that read and write the policy's dtype and compute in float32 inside (faster on a CPU:
    docs/BENCHMARKS.md). The output has the layer's compute dtype (bfloat16 under
    mixed_bfloat16), which is what the next layer would cast it to.

    relu=True normalizes relu(inputs): the convolution before it is built without
    activation (build_alexnet does so for conv1 and conv2), and in training the ReLU and its
    gradient run inside the LRN kernels, one pass over the maps less.
    """

    def __init__(self, depth_radius=LRN_DEPTH_RADIUS, bias=LRN_BIAS, alpha=LRN_ALPHA,
                 beta=LRN_BETA, towers=1, fused_training=True, relu=False, **kwargs):
        super().__init__(**kwargs)
        self.depth_radius = depth_radius
        self.bias = bias
        self.alpha = alpha
        self.beta = beta
        self.towers = int(towers)
        self.fused_training = bool(fused_training)
        self.relu = bool(relu)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is not None and channels % self.towers:
            raise ValueError(f"{self.name}: {channels} channels do not split into "
                             f"{self.towers} towers")

    def _lrn(self, x):
        return tf.nn.local_response_normalization(
            x, depth_radius=self.depth_radius, bias=self.bias, alpha=self.alpha, beta=self.beta)

    def call(self, inputs, training=None):
        if training and self.fused_training:
            return fused_lrn.lrn(inputs, self.depth_radius, self.bias, self.alpha, self.beta,
                                 self.towers, relu=self.relu)
        if self.relu:
            inputs = tf.nn.relu(inputs)
        x = tf.cast(inputs, tf.float32)
        if self.towers == 1:
            return tf.cast(self._lrn(x), inputs.dtype)
        # Each tower's channels on their own, without split and concat: [B, H, W, T*C] viewed
        # as [B, H, W*T, C] puts every tower's C channels in a row of their own, and LRN
        # normalizes along that last axis only. A reshape copies nothing (forward or back).
        shape = tf.shape(x)
        channels = x.shape[-1] // self.towers
        rows = tf.reshape(x, tf.stack([shape[0], shape[1], shape[2] * self.towers, channels]))
        return tf.cast(tf.reshape(self._lrn(rows), shape), inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(depth_radius=self.depth_radius, bias=self.bias, alpha=self.alpha,
                      beta=self.beta, towers=self.towers, fused_training=self.fused_training,
                      relu=self.relu)
        return config


@keras.saving.register_keras_serializable(package="keras_alexnet")
class TowerConv2D(layers.Layer):
    """A grouped convolution as the paper's towers: split channels, convolve each, concat.

    With towers=2 this equals `Conv2D(groups=2)` on the same weights, laid out as
    the original two-GPU network was, without XLA. The sub-layers are named
    `tower0`, `tower1`; their variables are `<name>/tower0/kernel` and so on.
    """

    def __init__(self, filters, kernel_size, towers=2, padding="same", activation="relu",
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        if filters % towers:
            raise ValueError(f"{self.name}: filters={filters} is not divisible by towers={towers}")
        self.filters = filters
        self.kernel_size = kernel_size
        self.towers = towers
        self.padding = padding
        self.activation = activation
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.convs = [
            Float32GradConv2D(filters // towers, kernel_size, padding=padding,
                              activation=activation,
                              kernel_initializer=_with_seed_offset(self.kernel_initializer, i),
                              bias_initializer=self.bias_initializer,
                              dtype=self.dtype_policy, name=f"tower{i}")
            for i in range(towers)]
        # Keras tracks layers held in a list, but tf.train.Checkpoint follows
        # attributes only: without these, checkpoints would miss the tower weights.
        for i, conv in enumerate(self.convs):
            setattr(self, f"tower{i}", conv)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels % self.towers:
            raise ValueError(f"{self.name}: {channels} input channels do not split into "
                             f"{self.towers} towers")
        for conv in self.convs:
            conv.build((*input_shape[:-1], channels // self.towers))

    def call(self, inputs):
        if self.towers == 1:
            return self.convs[0](inputs)
        halves = keras.ops.split(inputs, self.towers, axis=-1)
        return keras.ops.concatenate([conv(x) for conv, x in zip(self.convs, halves)], axis=-1)

    def compute_output_shape(self, input_shape):
        return self.convs[0].compute_output_shape(input_shape)[:-1] + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, kernel_size=self.kernel_size, towers=self.towers,
            padding=self.padding, activation=self.activation,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer))
        return config


def replica_seed(seed):
    """int64 [2]: `seed` folded with this replica's index among all replicas of all workers.

    Variables created in `strategy.scope()` are mirrored: a dropout layer's seed state is
    the same on every replica (and, MultiWorkerMirroredStrategy broadcasting initial
    values, on every worker), so masks drawn from it alone are the same everywhere.
    `replica_id_in_sync_group` is global across workers; outside a strategy it is 0.
    """
    seed = tf.cast(seed, tf.int64)
    context = tf.distribute.get_replica_context()
    if context is None:  # cross-replica context: no replica of its own
        return seed
    replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
    return tf.random.experimental.stateless_fold_in(seed, replica)


class _ReplicaDropout(layers.Dropout):
    """keras.layers.Dropout whose masks differ between replicas (and workers).

    The mask's seed is the layer's seed state (advanced once per training call, as in
    Keras) folded with the replica's global index (replica_seed): every replica draws
    its own masks, and a seeded layer draws the same ones on every run.
    """

    def _drop(self, inputs):
        """Inverted dropout: units zeroed with probability rate, the others times 1 / (1 - rate)."""
        if self.rate >= 1.0:
            return tf.zeros_like(inputs)
        noise_shape = None
        if self.noise_shape is not None:
            shape = tf.shape(inputs)
            noise_shape = [shape[i] if d is None else d for i, d in enumerate(self.noise_shape)]
        return tf.nn.experimental.stateless_dropout(
            inputs, rate=self.rate, noise_shape=noise_shape,
            seed=replica_seed(self.seed_generator.next()))


@keras.saving.register_keras_serializable(package="keras_alexnet")
class InvertedDropout(_ReplicaDropout):
    """keras.layers.Dropout ("inverted": kept units times 1 / (1 - rate) in training, the
    identity at test time), with a mask per replica."""

    def call(self, inputs, training=False):
        if training and self.rate > 0:
            return self._drop(inputs)
        return inputs


@keras.saving.register_keras_serializable(package="keras_alexnet")
class PaperDropout(_ReplicaDropout):
    """Dropout as the paper does it: zero each unit with probability `rate` in training,
    multiply every output by 1 - rate at test time ("we use all the neurons but multiply
    their outputs by 0.5").

    `keras.layers.Dropout` is "inverted" dropout instead: it multiplies the kept units by
    1 / (1 - rate) in training. The two compute the same function at test time only for
    weights rescaled by 2, and they train differently under the same init and learning
    rate: inverted dropout doubles the inputs of fc7 and fc8 during training, so an SGD
    step moves their outputs 4x as far. With the paper's unit biases that is enough to
    make the logits oscillate and kill fc7 on a 10-class dataset (docs/RESULTS.md).

    The mask is drawn per replica (see _ReplicaDropout): the paper samples one per
    training case.
    """

    def call(self, inputs, training=False):
        if training and self.rate > 0:
            # The inverted mask, without its 1 / (1 - rate) scaling.
            return self._drop(inputs) * (1.0 - self.rate)
        return inputs * (1.0 - self.rate)


def seek_dropout(model, step):
    """Sets every dropout layer's seed state to where `step` training steps leave it.

    Each training step advances a layer's state by one. The state is not in the
    checkpoints (tf.train.Checkpoint does not track Keras seed generators), so a resumed
    run calls this to draw the masks an uninterrupted run would have drawn, rather than
    the first steps' masks again.
    """
    for layer in model.layers:
        if isinstance(layer, _ReplicaDropout) and layer.rate > 0:
            state = layer.seed_generator.state
            state.assign(tf.stack([tf.convert_to_tensor(state)[0],
                                   tf.constant(int(step), state.dtype)]))


def _with_seed_offset(initializer, offset):
    """A copy of a seeded initializer with its seed moved by `offset` (towers must differ)."""
    config = initializer.get_config()
    if config.get("seed") is not None:
        config["seed"] = config["seed"] + offset
    return initializer.__class__.from_config(config)
