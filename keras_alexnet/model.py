"""AlexNet as in Krizhevsky, Sutskever & Hinton (NIPS 2012), as a Keras 3 functional model.

Eight learned layers, named after the paper: conv1..conv5, fc6..fc8. conv2, conv4
and conv5 are grouped convolutions with two groups, built as the paper's two
towers (layers.TowerConv2D: split the channels, two ordinary convolutions,
concatenate) rather than `Conv2D(groups=2)`, which Keras compiles with XLA on CPU
(slower: docs/BENCHMARKS.md), and XLA has no place in a graph meant for TF Serving.
LRN after conv1 and conv2 normalizes each tower's maps on their own, as the two GPUs
did (lrn_per_tower). In training only, the LRN runs as XLA kernels (fused_lrn.py;
its speed in docs/BENCHMARKS.md); the inference graph, which evaluation and the export
trace, has `tf.nn.local_response_normalization` and no XLA. Dropout draws its masks per
replica (layers.py). The model returns float32 logits; softmax belongs to the loss and
the export.

`build_model(config.model)` is the network of a config: `config.model.name` names the
builder in BUILDERS ("paper": build_alexnet), the other fields are its keyword arguments.

The contract every builder keeps (tests/test_model.py checks it for each):
- it takes num_classes and image_size (the square input side, at least MIN_IMAGE_SIZE) and
  keyword arguments only otherwise, and returns a keras.Model from float32 [B, S, S, 3]
  images;
- the learned layers are named conv1, conv2, conv3, conv4, conv5, fc6, fc7, fc8 (the
  paper's; probes such as bin/report's and imported weights find them by these names);
- fc8's output is the model's output: float32 logits, no softmax;
- fc7's output (after its activation, before dropout) is the feature layer: the vectors
  whose distances the paper's Figure 4 compares;
- `activation_output(model, "convN")` is the one documented way to get the post-ReLU map
  of conv stage N. conv3, conv4 and conv5 apply their ReLU themselves (their layer's
  output); with LRN, conv1's and conv2's ReLU runs inside lrn1/lrn2 (measured faster so:
  docs/BENCHMARKS.md), so `get_layer("conv1").output` is the pre-ReLU map. No layer in the
  graph names the post-ReLU map: in training it never exists as a tensor of its own.
"""
import inspect

import keras
from keras import layers

from keras_alexnet.bfloat16_conv import Float32GradConv2D
from keras_alexnet.layers import (LRN_ALPHA, LRN_BIAS, InvertedDropout,
                                  LocalResponseNormalization, PaperDropout, TowerConv2D)

# Minimum input size: the smallest at which pool5 still has a 1x1 output.
MIN_IMAGE_SIZE = 67

# Biases start at 1 in conv2, conv4, conv5, fc6, fc7 so the ReLUs start with
# positive inputs; 0 in conv1, conv3, fc8 (the paper, Sec. 5 "Details of learning").
PAPER_BIAS_ONE = ("conv2", "conv4", "conv5", "fc6", "fc7")

DROPOUT_SCALINGS = ("paper", "inverted")
# The middle layers the paper's Section 7 says cannot be removed without losing ~2% top-1;
# build_alexnet(drop_conv=...) leaves one out (the study's depth variant).
DROPPABLE_CONVS = ("conv3", "conv4")


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
                  init_bias=1.0, drop_conv="", seed=None, fused_lrn=True, name="alexnet"):
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
      drop_conv: "" (the paper's eight layers), "conv3" or "conv4": that middle layer left
        out, to test the paper's Section 7 ("removing any of the middle layers results in a
        loss of about 2% top-1"). Without conv4, conv5 takes conv3's 384 maps, as it took
        conv4's: every remaining kernel keeps the paper's shape. Without conv3, conv4 takes
        conv2's pooled 256 maps (128 a tower, its kernels 3x3x128 instead of 3x3x192). The
        network then lacks that layer name (model.py's contract holds for the paper's).
      seed: makes the initialization and the dropout masks reproducible.
      fused_lrn: LRN in training as XLA kernels computing in float32 (fused_lrn.py, the same
        numbers, faster on CPU: docs/BENCHMARKS.md); False runs
        tf.nn.local_response_normalization in training too. Inference always runs
        tf.nn.local_response_normalization. Not a config.model field: it changes no weight
        and no result beyond float32 rounding (config.fused_lrn).
    """
    _check_arguments(image_size, towers, activation, dropout_scaling, drop_conv)

    def filters(n):
        return max(towers, int(round(n * width / towers)) * towers)

    counter = iter(range(100))

    def init_for(layer_name):
        return _initializers(layer_name, init, seed, next(counter), init_bias)

    def pool(layer_name):
        size = 3 if overlapping_pool else 2
        return layers.MaxPooling2D(size, strides=2, name=layer_name)

    def tower_conv(layer_name, n, size, activation=activation):
        return TowerConv2D(filters(n), size, towers=towers, activation=activation,
                           name=layer_name, **init_for(layer_name))

    # conv1's and conv2's ReLU is applied by the LRN after them (relu=True): the same
    # function, and in training the ReLU's gradient runs inside the LRN's kernels.
    fold_relu = lrn and activation == "relu"
    before_lrn = None if fold_relu else activation

    def lrn_layer(layer_name):
        return LocalResponseNormalization(
            bias=lrn_bias, alpha=lrn_alpha, towers=towers if lrn_per_tower else 1,
            relu=fold_relu, fused_training=fused_lrn, name=layer_name)

    inputs = keras.Input((image_size, image_size, 3), name="images")
    x = Float32GradConv2D(filters(96), 11, strides=4, padding="valid", activation=before_lrn,
                          name="conv1", **init_for("conv1"))(inputs)
    x = pool("pool1")(lrn_layer("lrn1")(x) if lrn else x)
    x = tower_conv("conv2", 256, 5, activation=before_lrn)(x)
    x = pool("pool2")(lrn_layer("lrn2")(x) if lrn else x)
    conv3_init, conv4_init = init_for("conv3"), init_for("conv4")  # seeds as in the full network
    if drop_conv != "conv3":
        x = Float32GradConv2D(filters(384), 3, padding="same", activation=activation,
                              name="conv3", **conv3_init)(x)
    if drop_conv != "conv4":
        x = TowerConv2D(filters(384), 3, towers=towers, activation=activation, name="conv4",
                        **conv4_init)(x)
    x = tower_conv("conv5", 256, 3)(x)
    x = layers.Flatten(name="flatten")(pool("pool5")(x))
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


def _check_arguments(image_size, towers, activation, dropout_scaling, drop_conv=""):
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"image_size={image_size} is below the minimum {MIN_IMAGE_SIZE}")
    if towers not in (1, 2):
        raise ValueError(f"towers must be 1 or 2, got {towers}")
    if activation not in ("relu", "tanh"):
        raise ValueError(f"activation must be 'relu' or 'tanh', got {activation!r}")
    if dropout_scaling not in DROPOUT_SCALINGS:
        raise ValueError(f"dropout_scaling must be one of {DROPOUT_SCALINGS}, "
                         f"got {dropout_scaling!r}")
    if drop_conv not in ("", *DROPPABLE_CONVS):
        raise ValueError(f"drop_conv must be '' (none) or one of {DROPPABLE_CONVS}, "
                         f"got {drop_conv!r}")


# config.model.name -> the function building that network from the other config.model
# fields. A second variant is one more builder keeping the contract above.
BUILDERS = {"paper": build_alexnet}
DEFAULT_BUILDER = "paper"
# Builder arguments that are not config.model fields: the Keras model's own name, and how
# training computes (config.fused_lrn), which changes no weight.
NOT_MODEL_FIELDS = ("name", "fused_lrn")


def builder_arguments(name=DEFAULT_BUILDER):
    """The keyword arguments of builder `name` that config.model sets (besides `name` itself)."""
    params = inspect.signature(BUILDERS[name]).parameters
    return [p for p in params if p not in NOT_MODEL_FIELDS]


def build_model(model_config, **options):
    """The network of a config.model (a ConfigDict or the dict of a config.json / export).

    `model_config["name"]` names the builder (absent: "paper", as in runs written before
    it existed); the other fields are its keyword arguments. options: builder arguments
    that are not config.model fields (fused_lrn). The caller sets the precision policy.
    """
    kwargs = dict(model_config.items())
    name = kwargs.pop("name", DEFAULT_BUILDER)
    if name not in BUILDERS:
        raise ValueError(f"config.model.name: unknown network {name!r}; one of {sorted(BUILDERS)}")
    return BUILDERS[name](**kwargs, **options)


def activation_output(model, layer_name):
    """A layer's output after its activation: relu(conv1) and relu(conv2) where the LRN after
    them applies their ReLU (build_alexnet with lrn and ReLU), else the layer's output."""
    output = model.get_layer(layer_name).output
    lrn_after = {"conv1": "lrn1", "conv2": "lrn2"}.get(layer_name)
    if lrn_after and any(layer.name == lrn_after and layer.relu for layer in model.layers):
        return keras.ops.relu(output)
    return output
