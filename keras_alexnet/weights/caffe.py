"""Caffe's weights, mean image and labels, converted to this project's layouts.

    read_caffemodel   a .caffemodel (binary NetParameter, either form) -> {layer name: [arrays]},
                      its SHA-1; blobs with `shape` or the legacy num/channels/height/width
    convert_weights   the eight learned layers -> {Keras variable path: array}:
                        kernels OIHW -> HWIO; `group: 2` -> the towers (the first half of the
                        filters reads the first half of the inputs: conv2/tower0, conv2/tower1);
                        fc6's rows from Caffe's CHW flatten order of pool5 to Keras's HWC;
                        conv1's input channels BGR -> RGB; InnerProduct [out, in] -> [in, out]
    read_mean         ilsvrc_2012_mean.npy (3x256x256) or imagenet_mean.binaryproto, BGR on
                      0..255 -> the RGB [R, R, 3] mean image stats.npz holds
    read_synsets      synset_words.txt (`wnid name` lines, label order) -> [(wnid, name)]

Caffe's network sees BGR pixels on 0..255 minus the mean image, its crop taken at
(R - 227) // 2 for the centre; this project's pipeline feeds RGB pixels on 0..255 minus
the mean image's matching crop. Reversing conv1's input channels and the mean's makes
the two compute the same function. Every check raises CaffeImportError with one
sentence naming the file and the layer.
"""
import hashlib

import numpy as np
from google.protobuf.message import DecodeError

from keras_alexnet.weights import caffe_proto
from keras_alexnet.weights.caffe_net import LEARNED, CaffeImportError

# The official file, per BVLC/caffe models/bvlc_alexnet/readme.md.
OFFICIAL_SHA1 = "9116a64c0fbe4459d18f4bb6b56d647b63920377"


def _blob_array(data, where):
    """float32 array in Caffe's shape from one serialized BlobProto."""
    blob = caffe_proto.RawBlob.FromString(data)
    shape = tuple(blob.shape.dim) if blob.HasField("shape") else (
        blob.num, blob.channels, blob.height, blob.width)
    count = int(np.prod(shape, dtype=np.int64))
    if blob.data:
        values = np.frombuffer(blob.data, "<f4")
    elif blob.double_data:
        values = np.frombuffer(blob.double_data, "<f8").astype(np.float32)
    else:  # floats written unpacked, if any: RawBlob kept them as unknown fields
        values = np.asarray(caffe_proto.BlobProto.FromString(data).data, np.float32)
    if values.size != count:
        raise CaffeImportError(f"{where} holds {values.size:,} values where its shape {shape} "
                               f"needs {count:,}: the file is truncated or corrupt")
    return values.reshape(shape)


def read_caffemodel(path):
    """({layer name: [float32 arrays]}, SHA-1 hex) of a .caffemodel; CaffeImportError if unreadable."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CaffeImportError(f"--caffemodel={path}: cannot read it ({e})") from None
    sha1 = hashlib.sha1(data).hexdigest()
    try:
        net = caffe_proto.WeightsNet.FromString(data)
    except DecodeError as e:
        raise CaffeImportError(f"--caffemodel={path} is truncated or not a Caffe model "
                               f"({len(data):,} bytes; {e})") from None
    del data
    layers = list(net.layer) or list(net.layers)
    if not any(layer.blobs for layer in layers):
        raise CaffeImportError(f"--caffemodel={path} holds no weights ({len(layers)} layers "
                               "without blobs); a pre-2014 (V0) model needs Caffe's "
                               "upgrade_net_proto_binary first")
    blobs = {}
    for layer in layers:
        if layer.name in blobs and layer.blobs:
            raise CaffeImportError(f"--caffemodel={path} has two layers named {layer.name!r}")
        if layer.blobs:
            blobs[layer.name] = [_blob_array(b, f"--caffemodel={path}: layer {layer.name!r}'s "
                                             f"blob {i}") for i, b in enumerate(layer.blobs)]
    return blobs, sha1


def _fit(array, rank):
    """A legacy 4-D blob as the rank its layer needs: leading ones dropped ([1, 1, out, in])."""
    shape = array.shape
    while len(shape) > rank and shape[0] == 1:
        shape = shape[1:]
    return array.reshape(shape)


def layer_blobs(blobs, spec, path):
    """{learned layer: (weights in Caffe's layout, biases)}, each shape checked against spec."""
    found = {}
    for what in LEARNED:
        name = spec.caffe_names[what]
        if name not in blobs:
            raise CaffeImportError(f"--caffemodel={path} has no weights for layer {name!r} "
                                   f"(it has {', '.join(sorted(blobs)) or 'none'})")
        if len(blobs[name]) != 2:
            raise CaffeImportError(f"--caffemodel={path}: layer {name!r} has {len(blobs[name])} "
                                   "blobs; weights and biases are 2")
        want = spec.blob_shapes[what]
        weights, biases = _fit(blobs[name][0], len(want)), _fit(blobs[name][1], 1)
        for got, need, kind in ((weights.shape, want, "weights"), (biases.shape, want[:1], "biases")):
            if tuple(got) != tuple(need):
                raise CaffeImportError(f"--caffemodel={path}: layer {name!r}'s {kind} have shape "
                                       f"{tuple(got)}, the prototxt's network needs {tuple(need)}")
        found[what] = (weights, biases)
    return found


# -- conversions --------------------------------------------------------------------------------

def conv_kernel(oihw):
    """Caffe's [out, in, h, w] kernel as Keras's [h, w, in, out]."""
    return np.transpose(oihw, (2, 3, 1, 0))


def tower_parts(oihw, biases, towers):
    """[(HWIO kernel, biases)] per tower of a grouped convolution (`group: towers`).

    Caffe's group g computes filters g*O/G..(g+1)*O/G from input channels g*I/G..(g+1)*I/G;
    its kernel blob holds [O, I/G, h, w]: the first O/G filters are tower 0's, reading the
    first half of the inputs, which is what TowerConv2D's tower0 reads too.
    """
    out = oihw.shape[0] // towers
    return [(conv_kernel(oihw[t * out:(t + 1) * out]), biases[t * out:(t + 1) * out])
            for t in range(towers)]


def bgr_to_rgb_kernel(oihw):
    """conv1's kernel for RGB inputs: Caffe's input channels are B, G, R."""
    return oihw[:, ::-1]


def dense_kernel(weights):
    """Caffe's InnerProduct [out, in] as Keras's Dense [in, out]."""
    return np.transpose(weights)


def fc6_kernel(weights, channels, side):
    """fc6's [out, C*H*W] (Caffe flattens pool5 as CHW) as Dense's [H*W*C, in HWC order, out]."""
    out = weights.shape[0]
    return weights.reshape(out, channels, side, side).transpose(2, 3, 1, 0).reshape(-1, out)


def convert_weights(found, towers):
    """{Keras variable path: array} for build_alexnet's conv1..fc8 from layer_blobs' arrays."""
    arrays = {}
    weights, biases = found["conv1"]
    arrays.update({"conv1/kernel": conv_kernel(bgr_to_rgb_kernel(weights)), "conv1/bias": biases})
    arrays.update({"conv3/kernel": conv_kernel(found["conv3"][0]), "conv3/bias": found["conv3"][1]})
    for what in ("conv2", "conv4", "conv5"):
        for t, (kernel, bias) in enumerate(tower_parts(*found[what], towers)):
            arrays[f"{what}/tower{t}/kernel"], arrays[f"{what}/tower{t}/bias"] = kernel, bias
    conv5 = found["conv5"][0].shape[0]
    side = int(round((found["fc6"][0].shape[1] / conv5) ** 0.5))
    arrays["fc6/kernel"] = fc6_kernel(found["fc6"][0], conv5, side)
    for what in ("fc7", "fc8"):
        arrays[f"{what}/kernel"] = dense_kernel(found[what][0])
    for what in ("fc6", "fc7", "fc8"):
        arrays[f"{what}/bias"] = found[what][1]
    return {path: np.ascontiguousarray(a, np.float32) for path, a in arrays.items()}


# -- the mean image and the labels --------------------------------------------------------------

def _load_mean(path):
    if path.endswith(".npy"):
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise CaffeImportError(f"--mean={path}: not a NumPy .npy file ({e})") from None
    try:
        with open(path, "rb") as f:
            return _blob_array(f.read(), f"--mean={path}")
    except OSError as e:
        raise CaffeImportError(f"--mean={path}: cannot read it ({e})") from None
    except DecodeError as e:
        raise CaffeImportError(f"--mean={path} is neither a .npy file nor a Caffe .binaryproto "
                               f"({e})") from None


def read_mean(path, image_size):
    """The RGB mean image [R, R, 3] float64 (0..255) of a Caffe BGR mean [3, R, R] (.npy or
    .binaryproto); R must be at least image_size (Caffe crops the mean as the image)."""
    mean = np.asarray(_load_mean(path), np.float64)
    if mean.ndim == 4 and mean.shape[0] == 1:  # a binaryproto's num = 1
        mean = mean[0]
    if mean.ndim != 3 or mean.shape[0] != 3 or mean.shape[1] != mean.shape[2] or \
            mean.shape[1] < image_size:
        raise CaffeImportError(f"--mean={path} has shape {mean.shape}; a Caffe mean image is "
                               f"[3, R, R] (BGR) with R >= {image_size}, e.g. ilsvrc_2012_mean.npy's "
                               "[3, 256, 256]")
    if not np.all(np.isfinite(mean)):
        raise CaffeImportError(f"--mean={path} holds values that are not finite numbers")
    return np.ascontiguousarray(np.transpose(mean, (1, 2, 0))[..., ::-1])


def read_synsets(path, num_classes):
    """[(wnid, name)] in the file's order (Caffe's label order) from `wnid name` lines."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.rstrip("\r\n") for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise CaffeImportError(f"--synsets={path}: cannot read it ({e})") from None
    classes = []
    for number, line in enumerate(lines, 1):
        fields = line.split(None, 1)
        if len(fields) != 2:
            raise CaffeImportError(f"--synsets={path}:{number}: expected 'wnid name', got {line!r}")
        classes.append((fields[0], fields[1].strip()))
    if len(classes) != num_classes:
        raise CaffeImportError(f"--synsets={path} names {len(classes)} classes; the network's fc8 "
                               f"has {num_classes}")
    wnids = [wnid for wnid, _ in classes]
    if len(set(wnids)) != len(wnids):
        twice = next(w for w in wnids if wnids.count(w) > 1)
        raise CaffeImportError(f"--synsets={path} names {twice} twice")
    return classes
