"""Synthetic Caffe files for the import tests: prototxts and caffemodels in both forms.

The network is bvlc_alexnet's deploy.prototxt, layer for layer, at a width the tests
choose (WIDTHS: 1/8 of AlexNet's kernels, fc 64, 10 classes), written as the current form
(`layer`, an Input layer, blob `shape`) or the legacy one of 2014's model zoo (`input` +
`input_dim`, `layers` with enum types, blobs with num/channels/height/width). Weights
are random and large enough that the LRN bends (conv1's maps reach hundreds). Files are
written with keras_alexnet.weights.caffe_proto's classes: the same field numbers Caffe's
own writer uses.
"""
import os

import numpy as np

from keras_alexnet.weights import caffe_proto

WIDTHS = {"conv1": 12, "conv2": 32, "conv3": 48, "conv4": 48, "conv5": 32, "fc6": 64, "fc7": 64,
          "fc8": 10}
WNIDS = [f"n{10000000 + 7 * i:08d}" for i in range(WIDTHS["fc8"])]


def layer_list(widths=WIDTHS, *, k=None, alpha=1e-4, towers=2, caffenet=False, dropout=True,
               negative_slope=None):
    """[(name, type, bottom, params text)] of bvlc_alexnet's deploy network (tops = names,
    ReLUs and dropouts in place)."""
    group = f" group: {towers}" if towers > 1 else ""
    lrn = f"lrn_param {{ local_size: 5 alpha: {alpha} beta: 0.75{f' k: {k}' if k else ''} }}"
    pool = "pooling_param { pool: MAX kernel_size: 3 stride: 2 }"
    relu = f"relu_param {{ negative_slope: {negative_slope} }}" if negative_slope else ""

    def conv(name, kernel, stride, pad, grouped):
        return (f"convolution_param {{ num_output: {widths[name]} kernel_size: {kernel} "
                f"stride: {stride} pad: {pad}{group if grouped else ''} }}")

    def ip(name):
        return f"inner_product_param {{ num_output: {widths[name]} }}"

    first = [("norm1", "LRN", "conv1", lrn), ("pool1", "Pooling", "norm1", pool)]
    if caffenet:  # CaffeNet: pool1 before norm1
        first = [("pool1", "Pooling", "conv1", pool), ("norm1", "LRN", "pool1", lrn)]
    layers = [("conv1", "Convolution", "data", conv("conv1", 11, 4, 0, False)),
              ("relu1", "ReLU", "conv1", relu)] + first + [
        ("conv2", "Convolution", first[-1][0], conv("conv2", 5, 1, 2, True)),
        ("relu2", "ReLU", "conv2", relu), ("norm2", "LRN", "conv2", lrn),
        ("pool2", "Pooling", "norm2", pool),
        ("conv3", "Convolution", "pool2", conv("conv3", 3, 1, 1, False)),
        ("relu3", "ReLU", "conv3", relu),
        ("conv4", "Convolution", "conv3", conv("conv4", 3, 1, 1, True)),
        ("relu4", "ReLU", "conv4", relu),
        ("conv5", "Convolution", "conv4", conv("conv5", 3, 1, 1, True)),
        ("relu5", "ReLU", "conv5", relu), ("pool5", "Pooling", "conv5", pool),
        ("fc6", "InnerProduct", "pool5", ip("fc6")), ("relu6", "ReLU", "fc6", relu),
        ("drop6", "Dropout", "fc6", "dropout_param { dropout_ratio: 0.5 }"),
        ("fc7", "InnerProduct", "fc6", ip("fc7")), ("relu7", "ReLU", "fc7", relu),
        ("drop7", "Dropout", "fc7", "dropout_param { dropout_ratio: 0.5 }"),
        ("fc8", "InnerProduct", "fc7", ip("fc8")), ("prob", "Softmax", "fc8", "")]
    if not dropout:
        layers = [entry for entry in layers if entry[1] != "Dropout"]
    return layers


_IN_PLACE = ("ReLU", "Dropout")
_V1 = {"Convolution": "CONVOLUTION", "ReLU": "RELU", "LRN": "LRN", "Pooling": "POOLING",
       "InnerProduct": "INNER_PRODUCT", "Dropout": "DROPOUT", "Softmax": "SOFTMAX"}


def prototxt(layers, form="layer", size=227):
    """The text of a deploy.prototxt of `layers`, current ('layer') or legacy ('layers') form."""
    out = ['name: "AlexNet"']
    if form == "layer":
        out.append('layer { name: "data" type: "Input" top: "data" '
                   f'input_param {{ shape: {{ dim: 10 dim: 3 dim: {size} dim: {size} }} }} }}')
    else:
        out += ['input: "data"', "input_dim: 10", "input_dim: 3", f"input_dim: {size}",
                f"input_dim: {size}"]
    for name, kind, bottom, params in layers:
        top = bottom if kind in _IN_PLACE else name
        if form == "layer":
            out.append(f'layer {{ name: "{name}" type: "{kind}" bottom: "{bottom}" top: "{top}" '
                       # what Caffe's files also hold, unused here: the text parser skips it
                       f'param {{ lr_mult: 1 decay_mult: 1 }} {params} }}')
        else:
            out.append(f'layers {{ name: "{name}" type: {_V1[kind]} blobs_lr: 1 weight_decay: 1 '
                       f'{params} bottom: "{bottom}" top: "{top}" }}')
    return "\n".join(out) + "\n"


def blob_shapes(widths=WIDTHS, towers=2):
    """Caffe's [out, in, h, w] / [out, in] weight shapes of the learned layers."""
    w = widths
    return {"conv1": (w["conv1"], 3, 11, 11), "conv2": (w["conv2"], w["conv1"] // towers, 5, 5),
            "conv3": (w["conv3"], w["conv2"], 3, 3),
            "conv4": (w["conv4"], w["conv3"] // towers, 3, 3),
            "conv5": (w["conv5"], w["conv4"] // towers, 3, 3),
            "fc6": (w["fc6"], w["conv5"] * 36), "fc7": (w["fc7"], w["fc6"]),
            "fc8": (w["fc8"], w["fc7"])}


def random_blobs(seed=0, widths=WIDTHS, towers=2, fc8_scale=1.0):
    """{layer: (weights, biases)} float32, scaled so every layer's outputs stay in the hundreds."""
    rng = np.random.default_rng(seed)
    blobs = {}
    for name, shape in blob_shapes(widths, towers).items():
        fan_in = int(np.prod(shape[1:]))
        gain = (3.0 if name.startswith("conv") else 1.5) * (fc8_scale if name == "fc8" else 1.0)
        weights = rng.normal(0, gain / np.sqrt(fan_in), shape).astype(np.float32)
        blobs[name] = (weights, rng.normal(0, 2.0, shape[:1]).astype(np.float32))
    return blobs


def _blob(array, legacy):
    blob = caffe_proto.BlobProto()
    if legacy:  # num/channels/height/width, as 2014's files: an fc's [out, in] is [1, 1, out, in]
        dims = (1,) * (4 - array.ndim) + array.shape
        blob.num, blob.channels, blob.height, blob.width = dims
    else:
        blob.shape.dim.extend(array.shape)
    blob.data.extend(array.ravel().tolist())
    return blob


def caffemodel_bytes(blobs, form="layer"):
    """A serialized NetParameter holding the blobs under the layers' names."""
    net = caffe_proto.NetParameter(name="AlexNet")
    for name, (weights, biases) in blobs.items():
        kind = "Convolution" if name.startswith("conv") else "InnerProduct"
        if form == "layer":
            layer = net.layer.add(name=name, type=kind)
        else:
            layer = net.layers.add(name=name, type=caffe_proto.V1_LAYER_TYPES[_V1[kind]])
        layer.blobs.append(_blob(weights, form != "layer"))
        layer.blobs.append(_blob(biases, form != "layer"))
    return net.SerializeToString()


def mean_bgr(size=256, seed=1):
    """A smooth BGR mean image [3, size, size] on 0..255, different per channel."""
    y, x = np.mgrid[0:size, 0:size] / size
    return np.stack([90 + 30 * x, 110 + 20 * y, 125 - 25 * x * y]).astype(np.float64)


def binaryproto_bytes(mean_chw):
    blob = caffe_proto.BlobProto(num=1, channels=mean_chw.shape[0], height=mean_chw.shape[1],
                                 width=mean_chw.shape[2])
    blob.data.extend(mean_chw.astype(np.float32).ravel().tolist())
    return blob.SerializeToString()


def synset_text(count=WIDTHS["fc8"]):
    return "".join(f"{WNIDS[i] if i < len(WNIDS) else f'n{90000000 + i:08d}'} class {i}, "
                   f"thing {i}\n" for i in range(count))


def write_files(folder, *, form="layer", seed=0, layers=None, blobs=None, mean="npy",
                classes=None, widths=WIDTHS, fc8_scale=1.0):
    """deploy.prototxt, weights.caffemodel, the mean (.npy or .binaryproto) and synset_words.txt
    in folder; returns their paths as import_caffe's keyword arguments.

    classes: [(wnid, name)] for synset_words.txt (default: synset_text's); widths: the
    layers' outputs (fc8's must be the class count)."""
    os.makedirs(folder, exist_ok=True)
    paths = {"prototxt": os.path.join(folder, "deploy.prototxt"),
             "caffemodel": os.path.join(folder, "weights.caffemodel"),
             "mean": os.path.join(folder, f"mean.{mean}"),
             "synsets": os.path.join(folder, "synset_words.txt")}
    with open(paths["prototxt"], "w") as f:
        f.write(prototxt(layers or layer_list(widths), form))
    with open(paths["caffemodel"], "wb") as f:
        f.write(caffemodel_bytes(blobs or random_blobs(seed, widths, fc8_scale=fc8_scale), form))
    if mean == "npy":
        np.save(paths["mean"], mean_bgr())
    else:
        with open(paths["mean"], "wb") as f:
            f.write(binaryproto_bytes(mean_bgr()))
    with open(paths["synsets"], "w") as f:
        f.write("".join(f"{w} {n}\n" for w, n in classes) if classes else
                synset_text(widths["fc8"]))
    return paths
