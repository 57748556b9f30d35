"""A Caffe network description (.prototxt) checked layer by layer against build_alexnet's network.

Both forms found in the wild read: the current one (`layer`, LayerParameter, string
types, the input as an `Input` layer or `input_shape`) and the legacy one (`layers`,
V1LayerParameter, enum types, `input` + `input_dim`) of 2014's model zoo. The layers
are compared in order, with their bottoms and tops, not only their shapes:

    conv1 ReLU [LRN] pool1  conv2 ReLU [LRN] pool2  conv3 ReLU  conv4 ReLU  conv5 ReLU pool5
    fc6 ReLU [Dropout]  fc7 ReLU [Dropout]  fc8 [Softmax]

(bracketed layers both present or both absent: build_alexnet's lrn, and dropout 0)
with conv1 11x11/4, conv2 5x5 pad 2, conv3-5 3x3 pad 1, conv2/4/5 in `group` 1 or 2
(the towers), every pooling 3x3/2 max, ReLUs without a negative slope. CaffeNet (the same
blob shapes, but it pools before the LRN), GoogLeNet and anything else are refused with a
sentence naming the first layer that differs. `network_spec` turns an accepted file into
config.model's fields: the LRN's k (lrn_bias), alpha / local_size (Caffe's LRN divides
alpha by n, TensorFlow's does not), the LRN across the towers, Caffe's inverted dropout.
"""
import dataclasses
import os

import numpy as np
from google.protobuf import text_format

from keras_alexnet.weights import caffe_proto

# Keras rounds pooled sizes down, Caffe up: from 227 every pooling divides exactly
# (55 -> 27 -> 13 -> 6) and the two agree; other input sizes are refused.
IMAGE_SIZE = 227
# AlexNet's kernels per layer, which build_alexnet's `width` multiplies.
PAPER_FILTERS = {"conv1": 96, "conv2": 256, "conv3": 384, "conv4": 384, "conv5": 256}
# (kernel, stride, pad, grouped) of each convolution.
CONVOLUTIONS = {"conv1": (11, 4, 0, False), "conv2": (5, 1, 2, True), "conv3": (3, 1, 1, False),
                "conv4": (3, 1, 1, True), "conv5": (3, 1, 1, True)}
_INPUT_TYPES = ("Input", "Data", "ImageData", "MemoryData")
# The network in order: (what, Caffe type, optional). Pools and ReLUs are checked alike.
_PATTERN = [("conv1", "Convolution", False), ("relu", "ReLU", False), ("lrn1", "LRN", True),
            ("pool1", "Pooling", False), ("conv2", "Convolution", False), ("relu", "ReLU", False),
            ("lrn2", "LRN", True), ("pool2", "Pooling", False), ("conv3", "Convolution", False),
            ("relu", "ReLU", False), ("conv4", "Convolution", False), ("relu", "ReLU", False),
            ("conv5", "Convolution", False), ("relu", "ReLU", False), ("pool5", "Pooling", False),
            ("fc6", "InnerProduct", False), ("relu", "ReLU", False), ("drop6", "Dropout", True),
            ("fc7", "InnerProduct", False), ("relu", "ReLU", False), ("drop7", "Dropout", True),
            ("fc8", "InnerProduct", False), ("prob", "Softmax", True)]
LEARNED = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")


class CaffeImportError(ValueError):
    """A Caffe file that cannot be imported; the message is one sentence naming the file."""


@dataclasses.dataclass
class Layer:
    name: str
    type: str
    bottom: list
    top: list
    message: object  # the LayerParameter or V1LayerParameter, for its *_param fields


@dataclasses.dataclass
class NetworkSpec:
    """What an accepted prototxt says: config.model's fields, the Caffe name of each learned
    layer (LEARNED order), and the blob shapes Caffe stores for them."""
    model: dict
    caffe_names: dict
    blob_shapes: dict
    name: str
    form: str  # 'layer' (current) or 'layers' (legacy V1)


def read_prototxt(path):
    """The NetParameter of a .prototxt file; CaffeImportError if it is not one."""
    try:
        with open(path) as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise CaffeImportError(f"--caffe_prototxt={path}: cannot read it ({e})") from None
    try:
        return caffe_proto.parse_prototxt(text)
    except text_format.ParseError as e:
        raise CaffeImportError(f"--caffe_prototxt={path} is not a Caffe network description "
                               f"({e})") from None


def layers_of(net, path):
    """([Layer], form) from either form; a file holding both is refused."""
    if net.layer and net.layers:
        raise CaffeImportError(f"{path} holds both `layer` and legacy `layers` entries; Caffe "
                               "itself refuses such a file")
    if net.layers:
        enum = caffe_proto.V1LayerParameter.DESCRIPTOR.fields_by_name["type"].enum_type
        layers = []
        for m in net.layers:
            v1 = enum.values_by_number[m.type].name if m.type in enum.values_by_number else "NONE"
            layers.append(Layer(m.name, caffe_proto.V1_TYPE_NAMES.get(v1, v1), list(m.bottom),
                                list(m.top), m))
        return layers, "layers"
    return [Layer(m.name, m.type, list(m.bottom), list(m.top), m) for m in net.layer], "layer"


def input_of(net, layers, path):
    """(input blob name, [N, C, H, W]) from `input` + `input_dim`/`input_shape` or an Input layer."""
    if layers and layers[0].type == "Input":
        shapes = layers[0].message.input_param.shape
        dims = list(shapes[0].dim) if shapes else []
        return (layers[0].top or ["data"])[0], dims
    if net.input:
        dims = list(net.input_shape[0].dim) if net.input_shape else list(net.input_dim[:4])
        return net.input[0], dims
    raise CaffeImportError(f"{path} declares no input (no `input:` and no Input layer); give "
                           "the deploy.prototxt that comes with the weights")


def _describe(layer):
    return f"{layer.name!r} ({layer.type})"


def _refuse_order(path, layer, expected, previous):
    if layer.type == "LRN" and previous in ("pool1", "pool2"):
        why = ("it pools before the LRN (as CaffeNet, bvlc_reference_caffenet, does); "
               "AlexNet normalizes first")
    else:
        kind = next(t for w, t, _ in _PATTERN if w == expected)
        why = f"AlexNet has its {expected} ({kind}) there"
    raise CaffeImportError(f"{path}: layer {_describe(layer)} is not the network build_alexnet "
                           f"computes: {why}. Only bvlc_alexnet's topology can be imported")


def match_pattern(layers, input_blob, path):
    """{what: Layer} for conv1..fc8, lrn1/2, pools, dropouts, after checking order and wiring."""
    found, blob, i, previous = {}, input_blob, 0, None
    body = [layer for layer in layers if layer.type not in _INPUT_TYPES]
    for what, kind, optional in _PATTERN:
        layer = body[i] if i < len(body) else None
        if layer is None or layer.type != kind:
            if optional:
                continue
            if layer is None:
                raise CaffeImportError(f"{path} ends before AlexNet's {what} ({kind}): not "
                                       "the network build_alexnet computes")
            _refuse_order(path, layer, what, previous)
        if layer.bottom != [blob] or len(layer.top) != 1:
            raise CaffeImportError(f"{path}: layer {_describe(layer)} reads {layer.bottom} and "
                                   f"writes {layer.top}; AlexNet's {what} reads [{blob!r}] only")
        found.setdefault(what, []).append(layer)
        blob, i, previous = layer.top[0], i + 1, what
    if i < len(body):
        raise CaffeImportError(f"{path}: layer {_describe(body[i])} follows fc8; only a Softmax "
                               "may (give the deploy.prototxt, not a train_val one)")
    return found


def _one(values, default, what, path):
    values = list(values)
    if len(values) > 1 and len(set(values)) > 1:
        raise CaffeImportError(f"{path}: {what} has different values per dimension {values}")
    return values[0] if values else default


def _check_conv(layer, what, towers, path):
    p = layer.message.convolution_param
    kernel = p.kernel_h if p.HasField("kernel_h") else _one(p.kernel_size, None, "kernel_size", path)
    stride = p.stride_h if p.HasField("stride_h") else _one(p.stride, 1, "stride", path)
    pad = p.pad_h if p.HasField("pad_h") else _one(p.pad, 0, "pad", path)
    size, want_stride, want_pad, grouped = CONVOLUTIONS[what]
    got = (kernel, stride, pad, p.group, _one(p.dilation, 1, "dilation", path), p.bias_term, p.axis)
    want = (size, want_stride, want_pad, towers if grouped else 1, 1, True, 1)
    square = all(not p.HasField(f"{field}_w") or getattr(p, f"{field}_w") == value
                 for field, value in (("kernel", kernel), ("stride", stride), ("pad", pad)))
    if got != want or not square:
        raise CaffeImportError(
            f"{path}: {what} ({layer.name!r}) has kernel {kernel}, stride {stride}, pad {pad}, "
            f"group {p.group}, dilation {got[4]}, bias_term {p.bias_term}; AlexNet's is kernel "
            f"{size}, stride {want_stride}, pad {want_pad}, group {want[3]}, with biases")
    return p.num_output


def _check_simple(found, path):
    for layer in found["relu"]:
        if layer.message.relu_param.negative_slope != 0:
            raise CaffeImportError(f"{path}: ReLU {layer.name!r} has a negative slope; "
                                   "AlexNet's ReLUs have none")
    for layer in found["pool1"] + found["pool2"] + found["pool5"]:
        p = layer.message.pooling_param
        kernel = (p.kernel_h, p.kernel_w) if p.HasField("kernel_h") else (p.kernel_size,) * 2
        stride = (p.stride_h, p.stride_w) if p.HasField("stride_h") else (p.stride,) * 2
        pad = (p.pad_h, p.pad_w) if p.HasField("pad_h") else (p.pad,) * 2
        if (p.pool, kernel, stride, pad, p.global_pooling) != (0, (3, 3), (2, 2), (0, 0), False):
            raise CaffeImportError(f"{path}: pooling {layer.name!r} is not AlexNet's 3x3 "
                                   "stride-2 max pooling without padding")
    for what in ("fc6", "fc7", "fc8"):
        p = found[what][0].message.inner_product_param
        if not p.bias_term or p.axis != 1 or p.transpose:
            raise CaffeImportError(f"{path}: {what} ({found[what][0].name!r}) is not a plain "
                                   "InnerProduct with biases (axis 1, not transposed)")


def _lrn_fields(found, path):
    """(lrn, lrn_alpha, lrn_bias): one setting for both LRN layers, TensorFlow's alpha."""
    lrns = found.get("lrn1", []) + found.get("lrn2", [])
    if not lrns:
        return False, None, None
    if len(lrns) == 1:
        raise CaffeImportError(f"{path}: only {lrns[0].name!r} of AlexNet's two LRN layers is "
                               "there; build_alexnet has both or neither")
    params = {(p.local_size, p.alpha, p.beta, p.k, p.norm_region)
              for p in (layer.message.lrn_param for layer in lrns)}
    if len(params) > 1:
        raise CaffeImportError(f"{path}: the two LRN layers differ ({sorted(params)}); "
                               "build_alexnet uses one setting for both")
    local_size, alpha, beta, k, region = params.pop()
    if (local_size, round(beta, 6), region) != (5, 0.75, 0):
        raise CaffeImportError(f"{path}: LRN {lrns[0].name!r} has local_size {local_size}, "
                               f"beta {beta:g}, norm_region {region}; build_alexnet's LRN spans "
                               "5 channels with beta 0.75 (ACROSS_CHANNELS)")
    # Caffe: x / (k + alpha / n * sum x^2)^beta; tf.nn.lrn: x / (bias + alpha * sum x^2)^beta.
    return True, _decimal(alpha) / local_size, _decimal(k)


def _decimal(value):
    """A float field as the prototxt wrote it (1e-4), not as float32 holds it (9.9999997e-05)."""
    return float(str(np.float32(value)))


def _dropout(found, path):
    ratios = [layer.message.dropout_param.dropout_ratio for layer in
              found.get("drop6", []) + found.get("drop7", [])]
    if len(ratios) == 1 or len(set(ratios)) > 1:
        raise CaffeImportError(f"{path}: dropout after fc6 and fc7 differs ({ratios}); "
                               "build_alexnet uses one rate for both")
    return _decimal(ratios[0]) if ratios else 0.0


def _filters(n, width, towers):
    """build_alexnet's kernel count for a paper count n at `width`."""
    return max(towers, int(round(n * width / towers)) * towers)


def network_spec(path):
    """NetworkSpec of a deploy .prototxt; CaffeImportError naming the first thing that differs."""
    net = read_prototxt(path)
    layers, form = layers_of(net, path)
    blob, dims = input_of(net, layers, path)
    found = match_pattern(layers, blob, path)
    if len(dims) != 4 or dims[1] != 3 or dims[2:] != [IMAGE_SIZE, IMAGE_SIZE]:
        raise CaffeImportError(f"{path}: input {dims}; only [N, 3, {IMAGE_SIZE}, {IMAGE_SIZE}] "
                               f"imports (Keras rounds pooled sizes down, Caffe up: they agree "
                               f"at {IMAGE_SIZE})")
    towers = found["conv2"][0].message.convolution_param.group
    if towers not in (1, 2):
        raise CaffeImportError(f"{path}: conv2 has group {towers}; build_alexnet has 1 or 2 towers")
    counts = {w: _check_conv(found[w][0], w, towers, path) for w in PAPER_FILTERS}
    _check_simple(found, path)
    width = counts["conv1"] / PAPER_FILTERS["conv1"]
    if any(_filters(n, width, towers) != counts[w] for w, n in PAPER_FILTERS.items()):
        raise CaffeImportError(
            f"{path}: kernels per layer {list(counts.values())} are not one multiple of AlexNet's "
            f"{list(PAPER_FILTERS.values())} (build_alexnet's `width`)")
    fc6, fc7, classes = (found[w][0].message.inner_product_param.num_output
                         for w in ("fc6", "fc7", "fc8"))
    if fc6 != fc7 or classes < 2:
        raise CaffeImportError(f"{path}: fc6 has {fc6} outputs, fc7 {fc7}, fc8 {classes}; "
                               "build_alexnet has fc6 = fc7 and at least 2 classes")
    lrn, lrn_alpha, lrn_bias = _lrn_fields(found, path)
    model = dict(num_classes=classes, image_size=IMAGE_SIZE, towers=towers, lrn=lrn,
                 lrn_alpha=lrn_alpha if lrn else 1e-4 / 5, lrn_bias=lrn_bias if lrn else 2.0,
                 lrn_per_tower=False,  # Caffe's LRN normalizes across the towers' maps
                 overlapping_pool=True, activation="relu", dropout=_dropout(found, path),
                 dropout_scaling="inverted",  # Caffe's: kept units times 1 / (1 - rate)
                 width=width, fc_units=fc6,
                 init="paper", init_bias=0.1,  # bvlc_alexnet's init (its readme); replaced here
                 seed=0)
    c = counts
    side = 6  # pool5's side at 227
    shapes = {"conv1": (c["conv1"], 3, 11, 11), "conv2": (c["conv2"], c["conv1"] // towers, 5, 5),
              "conv3": (c["conv3"], c["conv2"], 3, 3),
              "conv4": (c["conv4"], c["conv3"] // towers, 3, 3),
              "conv5": (c["conv5"], c["conv4"] // towers, 3, 3),
              "fc6": (fc6, c["conv5"] * side * side), "fc7": (fc7, fc6), "fc8": (classes, fc7)}
    return NetworkSpec(model=model, caffe_names={w: found[w][0].name for w in LEARNED},
                       blob_shapes=shapes, name=net.name or os.path.basename(path), form=form)
