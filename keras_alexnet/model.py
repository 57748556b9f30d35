"""AlexNet as in Krizhevsky, Sutskever & Hinton (NIPS 2012), as a Keras 3 functional model.

Eight learned layers, named after the paper: conv1..conv5, fc6..fc8. conv2, conv4
and conv5 are grouped convolutions with two groups, built as the paper's two
towers (split the channels, two ordinary convolutions, concatenate) rather than
`Conv2D(groups=2)`, which Keras compiles with XLA on CPU: 2.5x slower here, and
XLA has no place in a graph meant for TF Serving. LRN after conv1 and conv2
normalizes each tower's maps on their own, as the two GPUs did (lrn_per_tower).
In training only, the LRN runs as XLA kernels (fused_lrn.py, ~5x faster than
TensorFlow's LRN and its gradient on CPU); the inference graph, which evaluation
and the export trace, has `tf.nn.local_response_normalization` and no XLA. The LRN
layers also apply conv1's and conv2's ReLU (the same function; in training its gradient
runs inside the LRN's kernels): activation_output() gives those maps.

Dropout draws its masks per replica: under MirroredStrategy and
MultiWorkerMirroredStrategy every replica of every worker has its own (replica_seed).

The model returns float32 logits; softmax belongs to the loss and the export.
"""
import keras
import tensorflow as tf
from keras import layers

# LRN in training: the same function and gradient as XLA kernels (see fused_lrn.py).
from keras_alexnet import fused_lrn
# keras.layers.Conv2D, with float32 gradients under bfloat16 on CPUs without native
# bfloat16 (the same numbers, ~20x faster there; see bfloat16_conv.py).
from keras_alexnet.bfloat16_conv import Float32GradConv2D

# The paper's LRN hyper-parameters. alpha is the paper's 1e-4 divided by n=5,
# as the authors' cuda-convnet2 (and Caffe) applied it; pass lrn_alpha=1e-4
# for the formula exactly as printed in the paper.
LRN_DEPTH_RADIUS = 2
LRN_BIAS = 2.0
LRN_ALPHA = 1e-4 / 5
LRN_BETA = 0.75

# Minimum input size: the smallest at which pool5 still has a 1x1 output.
MIN_IMAGE_SIZE = 67

# Biases start at 1 in conv2, conv4, conv5, fc6, fc7 so the ReLUs start with
# positive inputs; 0 in conv1, conv3, fc8 (PAPER.md, "Training").
PAPER_BIAS_ONE = ("conv2", "conv4", "conv5", "fc6", "fc7")

DROPOUT_SCALINGS = ("paper", "inverted")


@keras.saving.register_keras_serializable(package="keras_alexnet")
class LocalResponseNormalization(layers.Layer):
    """Cross-channel LRN, as `tf.nn.local_response_normalization` computes it, in float32.

    towers > 1 normalizes each tower's channels on their own, as the paper's two-GPU network
    did (a GPU normalized the maps it held). towers=1 is the plain LRN over all channels.

    Inference runs `tf.nn.local_response_normalization` (TensorFlow has no bfloat16 LRN
    kernel on CPU and no float16 one on GPU, so it casts to float32 and back): the graph
    that evaluation and the SavedModel export trace is plain TensorFlow. Training with
    fused_training=True runs fused_lrn.lrn, the same function and gradient as XLA kernels
    that read and write the policy's dtype and compute in float32 inside (~5x faster on
    a CPU, docs/BENCHMARKS.md). The output has the layer's compute dtype (bfloat16 under
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


def _initializers(name, init, seed, layer_index, init_bias=1.0):
    """Kernel and bias initializers for one layer, by the paper or by Glorot."""
    layer_seed = None if seed is None else seed + 100 * layer_index
    if init == "paper":
        kernel = keras.initializers.RandomNormal(mean=0.0, stddev=0.01, seed=layer_seed)
        bias = keras.initializers.Constant(init_bias if name in PAPER_BIAS_ONE else 0.0)
    elif init == "glorot":
        kernel = keras.initializers.GlorotUniform(seed=layer_seed)
        bias = keras.initializers.Zeros()
    else:
        raise ValueError(f"init must be 'paper' or 'glorot', got {init!r}")
    return {"kernel_initializer": kernel, "bias_initializer": bias}


def build_alexnet(num_classes=1000, image_size=227, *, towers=2, lrn=True, lrn_alpha=LRN_ALPHA,
                  lrn_bias=LRN_BIAS, lrn_per_tower=True, overlapping_pool=True, activation="relu",
                  dropout=0.5, dropout_scaling="paper", width=1.0, fc_units=4096, init="paper",
                  init_bias=1.0, seed=None, fused_lrn=True, name="alexnet"):
    """Builds the paper's AlexNet; every default is the paper's.

    Args:
      num_classes: size of fc8 (1000 for ILSVRC).
      image_size: square input side; 227 gives the paper's 55x55 conv1 maps. Keras rounds
        pooled sizes down and Caffe rounds them up: the two agree at 227 (odd maps 55, 27, 13)
        and not at every other size, so a network imported from Caffe is 227-only
        (keras_alexnet/weights/caffe.py refuses other sizes).
      towers: 2 for the paper's grouped conv2/conv4/conv5; 1 for no grouping.
      lrn: local response normalization after conv1 and conv2. With ReLU it applies their
        ReLU (LocalResponseNormalization(relu=True); conv1 and conv2 have no activation of
        their own): the same function, one pass over their maps less in training. Their
        activations: activation_output(model, 'conv1').
      lrn_alpha: 2e-5 (authors' code); 1e-4 is the paper's formula as printed.
      lrn_bias: the LRN's k: 2 (the paper's); Caffe's LRN default, and its bvlc_alexnet, is 1.
      lrn_per_tower: with towers=2, normalize each tower's maps on their own (the paper's
        two GPUs each normalized the maps they held: 48 of conv1's 96, 128 of conv2's 256);
        False normalizes across the tower boundary (channels 46-49 and 126-129 mix), as
        runs before this option did. No effect with towers=1.
      overlapping_pool: 3x3 stride-2 max pooling; False gives 2x2 stride 2.
      activation: 'relu' (the paper) or 'tanh' (the paper's Figure 1 baseline).
      dropout: rate on the inputs of fc7 and fc8 (after fc6 and fc7).
      dropout_scaling: 'paper' (outputs times 1 - rate at test time, PaperDropout) or
        'inverted' (InvertedDropout, as keras.layers.Dropout: kept units times 1 / (1 - rate)
        in training). Both draw their own masks on every replica and worker.
      width: multiplier on every convolution's kernel count (tests build it tiny).
      fc_units: width of fc6 and fc7.
      init: 'paper' (weights N(0, 0.01^2), biases 1/0 per layer) or 'glorot'.
      init_bias: with init='paper', the bias of conv2, conv4, conv5, fc6 and fc7 (the
        paper's 1; Caffe's bvlc_alexnet needed 0.1).
      seed: makes the initialization and the dropout masks reproducible.
      fused_lrn: LRN in training as XLA kernels computing in float32 (fused_lrn.py, the same
        numbers, ~5x faster on CPU); False runs tf.nn.local_response_normalization in training too.
        Inference always runs tf.nn.local_response_normalization. Not a config.model field:
        it changes no weight and no result beyond float32 rounding (config.fused_lrn).
    """
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"image_size={image_size} is below the minimum {MIN_IMAGE_SIZE}")
    if towers not in (1, 2):
        raise ValueError(f"towers must be 1 or 2, got {towers}")
    if activation not in ("relu", "tanh"):
        raise ValueError(f"activation must be 'relu' or 'tanh', got {activation!r}")
    if dropout_scaling not in DROPOUT_SCALINGS:
        raise ValueError(f"dropout_scaling must be one of {DROPOUT_SCALINGS}, got {dropout_scaling!r}")

    def filters(n):
        return max(towers, int(round(n * width / towers)) * towers)

    counter = iter(range(100))

    def init_for(layer_name):
        return _initializers(layer_name, init, seed, next(counter), init_bias)

    def pool(layer_name):
        if overlapping_pool:
            return layers.MaxPooling2D(3, strides=2, name=layer_name)
        return layers.MaxPooling2D(2, strides=2, name=layer_name)

    def tower_conv(layer_name, n, size, activation=activation):
        return TowerConv2D(filters(n), size, towers=towers, activation=activation,
                           name=layer_name, **init_for(layer_name))

    # conv1's and conv2's ReLU is applied by the LRN after them (relu=True): the same
    # function, and in training the ReLU's gradient runs inside the LRN's kernels.
    fold_relu = lrn and activation == "relu"
    before_lrn = None if fold_relu else activation
    lrn_towers = towers if lrn_per_tower else 1

    def lrn_layer(layer_name):
        return LocalResponseNormalization(alpha=lrn_alpha, bias=lrn_bias, towers=lrn_towers,
                                          relu=fold_relu, fused_training=fused_lrn, name=layer_name)

    inputs = keras.Input((image_size, image_size, 3), name="images")
    x = Float32GradConv2D(filters(96), 11, strides=4, padding="valid", activation=before_lrn,
                          name="conv1", **init_for("conv1"))(inputs)
    if lrn:
        x = lrn_layer("lrn1")(x)
    x = pool("pool1")(x)
    x = tower_conv("conv2", 256, 5, activation=before_lrn)(x)
    if lrn:
        x = lrn_layer("lrn2")(x)
    x = pool("pool2")(x)
    x = Float32GradConv2D(filters(384), 3, padding="same", activation=activation, name="conv3",
                          **init_for("conv3"))(x)
    x = tower_conv("conv4", 384, 3)(x)
    x = tower_conv("conv5", 256, 3)(x)
    x = pool("pool5")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(fc_units, activation=activation, name="fc6", **init_for("fc6"))(x)
    dropout_layer = PaperDropout if dropout_scaling == "paper" else InvertedDropout

    def dropout_seed(index):
        return None if seed is None else seed + 10_000 + index  # apart from the layers' seeds

    x = dropout_layer(dropout, seed=dropout_seed(6), name="drop6")(x)
    x = layers.Dense(fc_units, activation=activation, name="fc7", **init_for("fc7"))(x)
    x = dropout_layer(dropout, seed=dropout_seed(7), name="drop7")(x)
    # fc8 computes in float32 under every policy: the logits feed the softmax
    # and the loss, where float16/bfloat16 would lose precision.
    logits = layers.Dense(num_classes, name="fc8", dtype="float32", **init_for("fc8"))(x)
    return keras.Model(inputs, logits, name=name)


def activation_output(model, layer_name):
    """A layer's output after its activation: relu(conv1) and relu(conv2) where the LRN after
    them applies their ReLU (build_alexnet with lrn and ReLU), else the layer's output."""
    output = model.get_layer(layer_name).output
    lrn_after = {"conv1": "lrn1", "conv2": "lrn2"}.get(layer_name)
    if lrn_after and any(layer.name == lrn_after and layer.relu for layer in model.layers):
        return keras.ops.relu(output)
    return output


def is_decayed(variable):
    """True for the weights the paper's weight decay applies to: every kernel, no bias."""
    return variable.path.endswith("kernel")


def decayed_variables(model):
    """The weights the paper's weight decay applies to: every kernel, no bias."""
    return [v for v in model.trainable_variables if is_decayed(v)]


def bias_variables(model):
    """The biases, which are not decayed (cuda-convnet decayed weights only)."""
    return [v for v in model.trainable_variables if v.path.endswith("bias")]
