"""AlexNet the keras.applications way: AlexNet(), preprocess_input, decode_predictions.

    from keras_alexnet import AlexNet, preprocess_input, decode_predictions
    model = AlexNet(weights="runs/bvlc")
    probs = model.predict(preprocess_input(images))
    decode_predictions(probs, top=5)      # [[(wnid, name, score), ...] per image]

weights: None (the paper's initialization), a training run folder (its best
checkpoint, else its latest), a checkpoint inside one, a run bin/import_weights
wrote, or a .keras file (bin/export --format=keras, or model.save() of one of
these models). The mean image, the labels and the resize that came with the
weights travel inside the model: an identity layer `input_statistics` on its input
(input_statistics.py), saved in .keras files with the weights. preprocess_input
and decode_predictions read them from the model they are given (model=), or,
without model=, from the one AlexNet with weights this process holds; with
several holding different statistics they refuse rather than guess.

include_top=False ends at pool5 (6x6x256 at 227 pixels), where keras.applications'
convolutional bases end (VGG16's block5_pool); pooling='avg' or 'max' adds a
global pooling after it. fc7's features (4096 per image): keras.Model(model.input,
model.get_layer("fc7").output) of an include_top=True model.
"""
import hashlib
import os
import weakref

import keras
import numpy as np
import tensorflow as tf

from keras_alexnet import model as model_lib
from keras_alexnet.data import layout
from keras_alexnet.data import preprocessing as data_prep
from keras_alexnet.data import stats as stats_lib
from keras_alexnet.input_statistics import LAYER_NAME, InputStatistics
from keras_alexnet.serving import preprocessing as serving_prep
from keras_alexnet.runs import restore
from keras_alexnet.training import init_from
from keras_alexnet.training import workdir as workdir_lib

# The shapes' options: a weights file holds them, the caller may not choose others.
_SHAPE_OPTIONS = ("width", "fc_units")
# Models AlexNet() returned with statistics, and a fingerprint of those (weak: no leak).
_RETURNED = weakref.WeakKeyDictionary()


def _run_statistics(path, data_dir=None):
    """InputStatistics' arguments (and mean, std) of a run folder or a checkpoint inside one."""
    run = path if tf.io.gfile.exists(os.path.join(path, workdir_lib.CONFIG_FILENAME)) \
        else init_from.run_folder_of(path)
    config = workdir_lib.read_config(run)
    data_dir = data_dir or workdir_lib.stored_data_dir(config, run)
    labels = layout.load_labels(data_dir)
    mean, std = restore.normalization_arrays(
        stats_lib.load_stats(data_dir), config.get("input", {}).get("normalization", "mean_image"))
    return dict(stored_size=int(mean.shape[0]), synsets=[s for s, _ in labels],
                class_names=[n for _, n in labels],
                resize=config.get("input", {}).get("resize", "shorter_side"),
                model_config=config["model"]), mean, std


def _load(weights, data_dir):
    """({layer: arrays}, config.model dict or None, (statistics kwargs, mean, std) or None)."""
    weights = os.fspath(weights)
    if weights.endswith(".keras") and tf.io.gfile.exists(weights):
        source = keras.saving.load_model(weights, compile=False)
        arrays = {layer.name: layer.get_weights() for layer in source.layers
                  if layer.weights and layer.name != LAYER_NAME}
        if LAYER_NAME not in [layer.name for layer in source.layers]:
            return arrays, None, None
        layer = source.get_layer(LAYER_NAME)
        config = {k: v for k, v in layer.get_config().items()
                  if k in ("stored_size", "synsets", "class_names", "resize", "model_config")}
        return arrays, config["model_config"] or None, (config, layer.mean_image.numpy(),
                                                        layer.std.numpy())
    arrays, model_config = init_from.load_source(weights, what=f"weights={weights!r}")
    return arrays, model_config, _run_statistics(weights, data_dir)


def _image_size(input_tensor, input_shape, default):
    shape = tuple(input_tensor.shape[1:]) if input_tensor is not None else input_shape
    if shape is None:
        return default
    if len(shape) != 3 or shape[2] != 3 or shape[0] != shape[1] or shape[0] is None:
        raise ValueError(f"input_shape must be (S, S, 3), got {tuple(shape)}")
    return int(shape[0])


def _network_kwargs(model_config, arrays, classes, image_size, include_top, model_kwargs):
    """build_alexnet's arguments: the weights' own options (the caller may not ask for others)."""
    model_kwargs = dict(model_kwargs)
    classes = classes or model_kwargs.pop("num_classes", None)  # build_alexnet's name for it
    if model_config is None:  # weights=None, or a .keras file without input_statistics
        if classes is None and arrays and "fc8" in arrays:
            classes = int(arrays["fc8"][-1].shape[0])
        return dict(model_kwargs, num_classes=classes or 1000, image_size=image_size)
    asked = {k: v for k, v in model_kwargs.items() if k in init_from.FUNCTION_OPTIONS + _SHAPE_OPTIONS}
    differences = init_from.option_differences(model_config, dict(model_config, **asked)) + [
        f"{k}: {model_config.get(k)!r} in the weights, {v!r} asked" for k, v in asked.items()
        if k in _SHAPE_OPTIONS and model_config.get(k) != v]
    if differences:
        raise ValueError(f"the weights are a network with other options ({'; '.join(differences)})")
    if include_top and classes is not None and classes != model_config["num_classes"]:
        raise ValueError(f"classes={classes}, but the weights' classifier has "
                         f"{model_config['num_classes']}; use include_top=False, or fine-tune "
                         "(config.init_from) for another class set")
    if include_top and image_size != model_config["image_size"]:
        raise ValueError(f"input_shape of side {image_size}, but the weights' fc6 reads "
                         f"{model_config['image_size']}x{model_config['image_size']} images; "
                         "use include_top=False for another size")
    return dict(model_config, image_size=image_size)


def AlexNet(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,  # noqa: N802
            classes=None, classifier_activation="softmax", *, data_dir=None, name="alexnet",
            **model_kwargs):
    """The paper's AlexNet as a keras.Model, optionally with trained weights.

    include_top: fc6, fc7 and fc8 (the classifier); False ends at pool5.
    weights: None, a run folder, a checkpoint, an imported run or a .keras file (above).
    input_tensor / input_shape: as keras.applications; (S, S, 3), default the weights'
      image size (227). Another size needs include_top=False (fc6 is sized for one).
    pooling: with include_top=False, None (pool5's maps), 'avg' or 'max'.
    classes: fc8's size; with weights it must be theirs (default).
    classifier_activation: 'softmax' (probabilities, a layer named 'predictions'), or None
      for fc8's logits.
    data_dir: with a run folder, where its labels.txt and stats.npz are (default: its config's).
    model_kwargs: build_alexnet's options (towers, lrn_alpha, width, ...) for weights=None;
      with weights they are the weights' own and asking for others is an error.
    """
    if weights == "imagenet" and not os.path.exists(weights):
        raise ValueError("weights='imagenet': nothing is downloaded; import Caffe's bvlc_alexnet "
                         "with bin/import_weights (README, Pretrained weights) and pass its run "
                         "folder, e.g. weights='runs/bvlc'")
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling!r}")
    if include_top and pooling:
        raise ValueError("pooling applies with include_top=False")
    arrays, model_config, statistics = (None, None, None) if weights is None else \
        _load(weights, data_dir)
    default_size = (model_config or {}).get("image_size", model_kwargs.get("image_size", 227))
    image_size = _image_size(input_tensor, input_shape, default_size)
    net = model_lib.build_alexnet(**_network_kwargs(model_config, arrays, classes, image_size,
                                                    include_top, model_kwargs))
    if arrays is not None:
        skip = [] if include_top else ["fc6", "fc7", "fc8"]
        init_from.copy_weights(net, arrays, skip, weights)
    if input_tensor is None:
        inputs = keras.Input((image_size, image_size, 3), name="images")
    elif keras.backend.is_keras_tensor(input_tensor):
        inputs = input_tensor
    else:
        inputs = keras.Input(tensor=input_tensor, shape=(image_size, image_size, 3))
    x = inputs
    if statistics is not None:
        layer = InputStatistics(**statistics[0])
        x = layer(x)
        layer.set_statistics(statistics[1], statistics[2])
    for layer in net.layers[1:]:
        if not include_top and layer.name == "flatten":
            break
        # A fresh copy of each layer: net's own are called on net's input, and a layer
        # called in two graphs makes model.get_layer("fc7").output ambiguous.
        copy = layer.__class__.from_config(layer.get_config())
        x = copy(x)
        copy.set_weights(layer.get_weights())
    if include_top and classifier_activation:
        x = keras.layers.Activation(classifier_activation, dtype="float32", name="predictions")(x)
    if pooling:
        pool = keras.layers.GlobalAveragePooling2D if pooling == "avg" else \
            keras.layers.GlobalMaxPooling2D
        x = pool(name=f"{pooling}_pool")(x)
    source = inputs
    if input_tensor is not None:  # the Input(s) input_tensor comes from, as keras.applications
        sources = keras.utils.get_source_inputs(input_tensor)
        source = sources[0] if len(sources) == 1 else sources
    model = keras.Model(source, x, name=name)
    if statistics is not None:
        _RETURNED[model] = _fingerprint(model)
    return model


def _fingerprint(model):
    layer = model.get_layer(LAYER_NAME)
    digest = hashlib.sha1(layer.mean_image.numpy().tobytes() + layer.std.numpy().tobytes())
    digest.update("\n".join(layer.synsets).encode() + layer.resize.encode())
    return digest.hexdigest()


def _statistics(model, what):
    """The InputStatistics layer of model, or of the one AlexNet with weights alive."""
    if model is None:
        alive = list(_RETURNED.items())
        if not alive:
            raise ValueError(f"{what}: no AlexNet with weights in this process; pass model= "
                             "(a model from AlexNet(weights=...) or a .keras file of one)")
        distinct = len({fingerprint for _, fingerprint in alive})
        if distinct > 1:
            raise ValueError(f"{what}: the {len(alive)} AlexNet models with weights in this "
                             f"process came with {distinct} different mean images or labels; "
                             "pass model= to say whose to use")
        model = alive[-1][0]
    if LAYER_NAME not in [layer.name for layer in model.layers]:
        raise ValueError(f"{what}: model {model.name!r} has no {LAYER_NAME} layer (built with "
                         "weights=None?): no mean image or labels came with its weights")
    return model.get_layer(LAYER_NAME), int(model.input_shape[1])


def _to_stored_size(image, size, resize):
    """float32 [size, size, 3]: an RGB image the way its weights' training images were sized."""
    if resize == serving_prep.WARP:
        return serving_prep.warp(image, size)
    return data_prep.crop_centre(data_prep.resize_shorter_side_pillow_bicubic(image, size), size)


def preprocess_input(images, model=None):
    """float32 [N, S, S, 3]: RGB images (0..255, [N, H, W, 3], one [H, W, 3], or a list of
    sizes) normalized with the mean image that came with model's weights.

    An S x S image (the model's input) has the mean image's central patch subtracted; any
    other is first brought to the stored size R as the weights' training images were
    (shorter side to R and the central square, or Caffe's warp), then its central S x S
    patch taken. No JPEG re-encode: the export (bin/export) redoes that for served files.
    """
    layer, size = _statistics(model, "preprocess_input")
    mean = layer.mean_image.numpy()
    std = layer.std.numpy()
    if isinstance(images, (list, tuple)):
        batch = [np.asarray(image, np.float32) for image in images]
    else:
        array = np.asarray(images, np.float32)
        batch = list(array[None] if array.ndim == 3 else array)
    out = []
    for image in batch:
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"preprocess_input: images must be RGB [H, W, 3], got {image.shape}")
        if image.shape[:2] == (size, size):
            out.append(image - data_prep.crop_centre(mean, size).numpy())
            continue
        stored = _to_stored_size(image, layer.stored_size, layer.resize).numpy()
        out.append(data_prep.crop_centre(stored - mean, size).numpy())
    return (np.stack(out) / std).astype(np.float32)


def decode_predictions(preds, top=5, model=None):
    """[[(wnid, name, score), ...] best first, per image] from [N, C] probabilities or logits."""
    layer, _ = _statistics(model, "decode_predictions")
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != len(layer.synsets):
        raise ValueError(f"decode_predictions: expected [N, {len(layer.synsets)}] (the weights' "
                         f"classes), got {preds.shape}")
    results = []
    for row in preds:
        best = np.argsort(-row, kind="stable")[:top]
        results.append([(layer.synsets[i], layer.class_names[i], float(row[i])) for i in best])
    return results


def save_keras(weights, path, *, data_dir=None):
    """Writes AlexNet(weights=...) as a .keras file at path (never over an existing file)."""
    if not path.endswith(".keras"):
        raise ValueError(f"--export_dir {path}: a .keras file's name must end in .keras")
    if tf.io.gfile.exists(path):
        raise FileExistsError(f"{path} exists; it is never overwritten")
    model = AlexNet(weights=weights, data_dir=data_dir)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{os.path.basename(path)}")
    try:
        model.save(tmp)
        if tf.io.gfile.exists(path):
            raise FileExistsError(f"{path} appeared meanwhile; nothing overwritten")
        os.rename(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
