"""Fine-tuning: a new run's first weights from another network (config.init_from, _skip, freeze).

`initialize(model, config)` runs once, before step 0 of a run that resumed
nothing (a resumed run has its own checkpoints and ignores init_from). The
source is a training run's folder (its best checkpoint, else its latest), a
checkpoint inside one (a prefix such as RUN/checkpoints/ckpt-12, or a folder), a
run written by bin/import_weights (the same layout), or a `.keras` file
(bin/export --format=keras, keras_alexnet.AlexNet's models). Weights are copied
layer by layer, by name (conv1 ... fc8); a layer the source lacks or holds in
another shape is an error naming it and both shapes, except the layers of
config.init_from_skip (by default fc8 when the class counts differ).

The source's network options that change what its weights compute (LRN k and
alpha, towers, LRN per tower, pooling, activation, dropout scaling) must equal
the config's: copying across them would run the weights in another function
without a word, so it is refused with the differences named.

`freeze(model, names)` marks layers not trainable before the optimizer is built:
the optimizer gets no slot for them, the update and the weight decay skip them
(both go over model.trainable_variables), and the checkpoints hold their
unchanged values. config.freeze is compared on resume like any config field.

The mean image and PCA statistics are not the source's: training reads the
config's data folder, so they are those of the data being fine-tuned on.
"""
import os

import keras
import tensorflow as tf

from keras_alexnet import config as config_lib
from keras_alexnet import input_statistics  # registers its layer: .keras files of AlexNet() hold it
from keras_alexnet import model as model_lib
from keras_alexnet.training import workdir as workdir_lib

CLASSIFIER = "fc8"
# config.model fields that change the function a given set of weights computes; the
# shape-changing ones (width, fc_units, image_size, num_classes) show up as shapes.
FUNCTION_OPTIONS = ("towers", "lrn", "lrn_alpha", "lrn_bias", "lrn_per_tower", "overlapping_pool",
                    "activation", "dropout_scaling")
# The layer a .keras file of keras_alexnet.AlexNet carries its config.model in.
STATISTICS_LAYER = input_statistics.LAYER_NAME


class InitFromError(config_lib.ConfigError):
    """config.init_from / init_from_skip / freeze cannot be applied as asked."""


def _defaults():
    import inspect
    return {name: p.default for name, p in
            inspect.signature(model_lib.BUILDERS[model_lib.DEFAULT_BUILDER]).parameters.items()}


def option_differences(source, target):
    """['lrn_bias: 1.0 in the source, 2.0 here', ...] over FUNCTION_OPTIONS (config.model dicts)."""
    defaults = _defaults()
    found = []
    for option in FUNCTION_OPTIONS:
        if option not in defaults:  # an option this model.py does not have yet
            continue
        a, b = source.get(option, defaults[option]), target.get(option, defaults[option])
        if a != b:
            found.append(f"{option}: {a!r} in the source, {b!r} here")
    return found


def run_folder_of(path):
    """The training run folder holding a checkpoint prefix or folder (None if none does)."""
    folder = path if tf.io.gfile.isdir(path) else os.path.dirname(path)
    for candidate in (folder, os.path.dirname(folder.rstrip("/"))):
        if candidate and tf.io.gfile.exists(os.path.join(candidate, workdir_lib.CONFIG_FILENAME)):
            return candidate
    return None


def _checkpoint_weights(run, checkpoint, model_config, what):
    """{layer name: [arrays]} of the model a checkpoint holds, every weight restored."""
    try:
        source = workdir_lib.restore_model(workdir_lib.build_float32_model(model_config), checkpoint)
    except ValueError as e:
        raise InitFromError(f"{what}: {e} (the network {run}'s config.json describes)") from None
    return {layer.name: layer.get_weights() for layer in source.layers if layer.weights}


def load_source(path, what="config.init_from"):
    """({layer name: [arrays]}, the source's config.model dict or None) from init_from's path.

    what: the field or argument errors name.
    """
    if not tf.io.gfile.exists(path) and not tf.io.gfile.exists(path + ".index"):
        raise InitFromError(f"{what}: {path} does not exist")
    if path.endswith(".keras"):
        try:
            source = keras.saving.load_model(path, compile=False)
        except Exception as e:  # noqa: BLE001  (Keras raises many kinds; say which file)
            raise InitFromError(f"{what}: {path} is not a .keras model Keras can "
                                f"load ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
        model_config = None
        if STATISTICS_LAYER in [layer.name for layer in source.layers]:
            model_config = source.get_layer(STATISTICS_LAYER).get_config().get("model_config")
        return ({layer.name: layer.get_weights() for layer in source.layers
                 if layer.weights and layer.name != STATISTICS_LAYER}, model_config)
    is_run = tf.io.gfile.exists(os.path.join(path, workdir_lib.CONFIG_FILENAME))
    run = path if is_run else run_folder_of(path)
    if run is None:
        raise InitFromError(f"{what}: {path} is neither a run folder (no "
                            f"{workdir_lib.CONFIG_FILENAME}), a checkpoint inside one, nor a "
                            ".keras file")
    model_config = workdir_lib.read_config(run)["model"]
    if is_run:
        try:
            checkpoint = workdir_lib.checkpoint_path(run, "best")
        except FileNotFoundError:
            checkpoint = workdir_lib.checkpoint_path(run, "latest")
    else:
        checkpoint = workdir_lib.checkpoint_path(run, path)
    return _checkpoint_weights(run, checkpoint, model_config, what), model_config


def default_skip(source_weights, model):
    """fc8 when its class count differs from the source's, else nothing."""
    theirs = source_weights.get(CLASSIFIER)
    ours = [w.shape for w in model.get_layer(CLASSIFIER).get_weights()] \
        if CLASSIFIER in {layer.name for layer in model.layers} else None
    if theirs is not None and ours is not None and [a.shape for a in theirs] != ours:
        return [CLASSIFIER]
    return []


def _check_names(model, names, field):
    known = [layer.name for layer in model.layers if layer.weights]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InitFromError(f"config.{field}: no layer with weights named {unknown[0]!r}; the "
                            f"network's are {', '.join(known)}")


def copy_weights(model, source_weights, skip, source_name):
    """Copies every weighted layer of model not in skip from source_weights; returns their names."""
    copied = []
    for layer in model.layers:
        if not layer.weights or layer.name in skip:
            continue
        if layer.name not in source_weights:
            raise InitFromError(f"config.init_from: {source_name} has no layer {layer.name!r}; "
                                "add it to config.init_from_skip to train it from scratch")
        ours = [tuple(w.shape) for w in layer.get_weights()]
        theirs = [tuple(a.shape) for a in source_weights[layer.name]]
        if ours != theirs:
            raise InitFromError(
                f"config.init_from: layer {layer.name!r} has shapes {theirs} in {source_name} "
                f"and {ours} here; add it to config.init_from_skip to train it from scratch, or "
                "match config.model (width, fc_units, image_size, num_classes)")
        copied.append(layer.name)
    # Only after every layer was checked: nothing half-copied on a refusal.
    for name in copied:
        model.get_layer(name).set_weights(source_weights[name])
    return copied


def initialize(model, config):
    """config.init_from's weights into model (a run that resumed nothing); returns the copied names."""
    if not config.init_from:
        return []
    _check_names(model, list(config.init_from_skip), "init_from_skip")
    source_weights, source_config = load_source(config.init_from)
    if source_config is not None:
        differences = option_differences(source_config, config.model.to_dict())
        if differences:
            raise InitFromError(
                f"config.init_from: {config.init_from} is a network with other options "
                f"({'; '.join(differences)}); its weights would compute another function "
                "here. Set config.model's options to the source's")
    skip = list(config.init_from_skip) or default_skip(source_weights, model)
    copied = copy_weights(model, source_weights, skip, config.init_from)
    print(f"initialized {', '.join(copied)} from {config.init_from}"
          + (f"; {', '.join(skip)} from scratch" if skip else ""), flush=True)
    return copied


def freeze(model, names):
    """Marks the named layers not trainable (before the optimizer is built); returns model."""
    names = list(names)
    _check_names(model, names, "freeze")
    for name in names:
        model.get_layer(name).trainable = False
    return model
