"""A trained run, back from its workdir: the model with restored weights, its labels and statistics.

Reads the layout the trainer writes (WORKDIR/config.json, WORKDIR/best/,
WORKDIR/checkpoints/) and the data folder the config names (labels.txt,
stats.npz). Used by bin/export and bin/evaluate.
"""
import dataclasses
import json
import os

import keras
import numpy as np
import tensorflow as tf

from keras_alexnet import input_pipeline
from keras_alexnet import model as model_lib
from keras_alexnet import stats as stats_lib

LABELS_FILENAME = input_pipeline.LABELS_FILENAME
MANIFEST_FILENAME = "dataset.json"  # make_tfrecords' settings: resize, quality


@dataclasses.dataclass
class RestoredRun:
    model: keras.Model
    config: dict
    checkpoint_path: str
    data_dir: str
    synsets: list
    class_names: list
    mean_image: np.ndarray  # [R, R, 3] subtracted before cropping (0..255 scale)
    std: np.ndarray         # [3] divided by after subtracting (ones for the paper's mean image)
    label_offset: int
    normalization: str
    jpeg_quality: int = 90  # the writer's re-encode quality; 0 if it kept the original bytes

    @property
    def image_size(self):
        return int(self.model.input_shape[1])


def load_config(workdir):
    path = os.path.join(workdir, "config.json")
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path}: no config.json; is {workdir} a training workdir?")
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def checkpoint_path(workdir, checkpoint="best"):
    """The checkpoint prefix for 'best', 'latest', a checkpoint folder or a prefix path."""
    if checkpoint in ("best", "latest"):
        folder = os.path.join(workdir, "best" if checkpoint == "best" else "checkpoints")
        path = tf.train.latest_checkpoint(folder)
        if path is None:
            hint = " (try --checkpoint=latest)" if checkpoint == "best" else ""
            raise FileNotFoundError(f"no checkpoint in {folder}{hint}")
        return path
    if tf.io.gfile.isdir(checkpoint):
        path = tf.train.latest_checkpoint(checkpoint)
        if path is None:
            raise FileNotFoundError(f"--checkpoint={checkpoint}: no checkpoint in this folder")
        return path
    if not tf.io.gfile.exists(checkpoint + ".index"):
        raise FileNotFoundError(f"--checkpoint={checkpoint}: neither 'best', 'latest', a folder "
                                "nor a checkpoint prefix (no .index file)")
    return checkpoint


def build_model(model_kwargs):
    """build_alexnet(**config.model) in float32, whatever policy the run trained under."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        return model_lib.build_alexnet(**model_kwargs)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def restore_model(model, path):
    """Loads the `model` entry of a training checkpoint; fails unless every weight was restored.

    Every weight is first set to NaN, so one the checkpoint does not hold (a
    different architecture, or a layer whose variables the checkpoint did not
    track) is named instead of silently keeping its random initial value.
    """
    for weight in model.weights:
        weight.assign(np.full(weight.shape, np.nan, weight.dtype))
    # expect_partial: the optimizer, step and schedule entries are not needed here.
    tf.train.Checkpoint(model=model).restore(path).expect_partial()
    missing = [w.path for w in model.weights if np.isnan(w.numpy()).any()]
    if missing:
        raise ValueError(f"{path} holds no value for {len(missing)} of the model's "
                         f"{len(model.weights)} weights ({', '.join(missing[:8])}); was it "
                         "written for another config.model, or by a model.py whose "
                         "tf.train.Checkpoint did not track these layers?")
    return model


def normalization_arrays(stats, normalization):
    """(mean [R, R, 3], std [3]) for 'mean_image' (the paper) or 'channel' (mean/std per channel)."""
    if normalization == "mean_image":
        return stats.mean_image, np.ones(3)
    if normalization == "channel":
        mean = np.broadcast_to(stats.channel_mean, stats.mean_image.shape)
        return np.array(mean), stats.channel_std
    raise ValueError(f"config.input.normalization: unknown {normalization!r}")


def restore_run(workdir, checkpoint="best", *, data_dir=None):
    """Everything an export or an evaluation needs from a training workdir."""
    config = load_config(workdir)
    input_config = config.get("input", {})
    # An empty data_dir means the trainer generated the demo dataset inside the workdir.
    data_dir = data_dir or input_config.get("data_dir") or os.path.join(workdir, "demo_data")
    labels = input_pipeline.load_labels(data_dir)
    num_classes = config["model"]["num_classes"]
    if len(labels) != num_classes:
        raise ValueError(f"{os.path.join(data_dir, LABELS_FILENAME)} has {len(labels)} classes, "
                         f"config.model.num_classes is {num_classes}")
    normalization = input_config.get("normalization", "mean_image")
    mean, std = normalization_arrays(stats_lib.load_stats(data_dir), normalization)
    manifest = read_manifest(data_dir)
    quality = int(manifest.get("quality", 90)) if manifest.get("resize", 1) else 0
    path = checkpoint_path(workdir, checkpoint)
    model = restore_model(build_model(config["model"]), path)
    return RestoredRun(model=model, config=config, checkpoint_path=path, data_dir=data_dir,
                       synsets=[s for s, _ in labels], class_names=[n for _, n in labels],
                       mean_image=mean, std=std, label_offset=int(input_config.get("label_offset", 0)),
                       normalization=normalization, jpeg_quality=quality)


def read_manifest(data_dir):
    """make_tfrecords' dataset.json ({} for TFRecords written by other tools)."""
    path = os.path.join(data_dir, MANIFEST_FILENAME)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)
