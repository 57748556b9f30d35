"""The training workdir on disk: one home for config.json, checkpoints/ and best/.

    WORKDIR/config.json      the run's config; a workdir holding another config is refused
    WORKDIR/checkpoints/     every checkpoint.every_steps steps and every epoch
    WORKDIR/best/            the checkpoint with the best validation top-1 error
    WORKDIR/metrics.jsonl    one JSON object per event (reporting.py)
    WORKDIR/tensorboard/     the same scalars, and the conv1 kernels as an image (reporting.py)

The trainer writes it; bin/export and bin/evaluate read it back (serving/restore.py).
"""
import json
import os

import tensorflow as tf

from keras_alexnet.config import ConfigError
from keras_alexnet.data import layout

CONFIG_FILENAME = "config.json"
CHECKPOINTS_DIR = "checkpoints"
BEST_DIR = "best"
# The folder the trainer generates the demo dataset into when config.input.data_dir is empty.
DEMO_DATA_DIR = "demo_data"

# Fields a resumed run may change without becoming a different run: how long
# it goes on, how it logs and saves, and which machines it runs on.
RESUMABLE_CHANGES = ("num_epochs", "log_every_steps", "progress", "checkpoint", "distribution",
                     "eval")


def checkpoints_dir(workdir):
    return os.path.join(workdir, CHECKPOINTS_DIR)


def best_dir(workdir):
    return os.path.join(workdir, BEST_DIR)


def demo_data_dir(workdir):
    return os.path.join(workdir, DEMO_DATA_DIR)


# Model fields added after runs were already written, with the value every run written
# before them had: such a config.json still rebuilds the network it trained.
LEGACY_MODEL_DEFAULTS = {
    "dropout_scaling": "inverted",  # keras.layers.Dropout, until the paper's became the default
    "init_bias": 1.0,
    "lrn_per_tower": False,  # LRN across the tower boundary, until per-tower became the default
}


def write_config(config, workdir):
    """WORKDIR/config.json: the ConfigDict as JSON, written atomically."""
    os.makedirs(workdir, exist_ok=True)
    layout.atomic_write(os.path.join(workdir, CONFIG_FILENAME), config.to_json(indent=2))


def read_config(workdir):
    """The config a workdir was trained with, as the plain dict of its config.json."""
    path = os.path.join(workdir, CONFIG_FILENAME)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path}: no {CONFIG_FILENAME}; is {workdir} a training workdir?")
    with tf.io.gfile.GFile(path) as f:
        config = json.load(f)
    if isinstance(config.get("model"), dict):
        for key, value in LEGACY_MODEL_DEFAULTS.items():
            config["model"].setdefault(key, value)
    return config


def check_workdir(config, workdir):
    """Refuses a workdir that holds a run of a different config; returns True if resuming."""
    path = os.path.join(workdir, CONFIG_FILENAME)
    if not os.path.exists(path):
        ckpts = checkpoints_dir(workdir)
        if os.path.isdir(ckpts) and os.listdir(ckpts):
            raise ConfigError(f"{workdir} holds checkpoints but no {CONFIG_FILENAME}; refusing to "
                              "train over a run of unknown config")
        return False
    old_core = _without(read_config(workdir), RESUMABLE_CHANGES)
    new_core = _without(json.loads(config.to_json()), RESUMABLE_CHANGES)
    if old_core != new_core:
        diffs = sorted(_diff(old_core, new_core))
        raise ConfigError(f"{workdir} holds a run of a different config ({path}); differing fields: "
                          f"{', '.join(diffs[:10])}. Use a new --workdir.")
    return True


def _without(config_dict, fields):
    return {k: v for k, v in config_dict.items() if k not in fields}


def _diff(a, b, prefix=""):
    for key in set(a) | set(b):
        va, vb = a.get(key, "<missing>"), b.get(key, "<missing>")
        if isinstance(va, dict) and isinstance(vb, dict):
            yield from _diff(va, vb, f"{prefix}{key}.")
        elif va != vb:
            yield f"{prefix}{key}"


def checkpoint_path(workdir, checkpoint="best"):
    """The checkpoint prefix for 'best', 'latest', a checkpoint folder or a prefix path."""
    if checkpoint in ("best", "latest"):
        folder = best_dir(workdir) if checkpoint == "best" else checkpoints_dir(workdir)
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
