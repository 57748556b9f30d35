"""Checks before training starts: the data a config points at, and the workdir it writes to.

Each failure names the config field or file at fault, before any model is
built or anything is written.
"""
import glob
import json
import os

import ml_collections

from keras_alexnet.config import ConfigError

# Fields a resumed run may change without becoming a different run: how long
# it goes on, how it logs and saves, and which machines it runs on.
RESUMABLE_CHANGES = ("num_epochs", "log_every_steps", "progress", "checkpoint", "distribution",
                     "eval")


def shard_pattern(data_dir, split):
    return os.path.join(data_dir, f"{split}-*-of-*")


def check_data(config):
    """Shards, labels and statistics exist and agree with config.model/config.input."""
    from keras_alexnet import input_pipeline, stats as stats_lib
    data_dir = config.input.data_dir
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"config.input.data_dir: no such folder {data_dir!r}")
    for field in ("train_split", "eval_split", "test_split"):
        split = config.input[field]
        if split and not glob.glob(shard_pattern(data_dir, split)):
            raise FileNotFoundError(
                f"config.input.{field}={split!r}: no TFRecord shards {shard_pattern(data_dir, split)}")
    labels_path = os.path.join(data_dir, "labels.txt")
    if os.path.exists(labels_path):
        num_labels = len(input_pipeline.load_labels(data_dir))
        if num_labels != config.model.num_classes:
            raise ConfigError(f"config.model.num_classes={config.model.num_classes} does not match "
                             f"the {num_labels} classes in {labels_path}")
    stats_path = os.path.join(data_dir, stats_lib.STATS_FILENAME)
    stats = stats_lib.load_stats(data_dir) if os.path.exists(stats_path) else None
    if stats is None and config.input.normalization == "mean_image":
        raise FileNotFoundError(f"config.input.normalization='mean_image' needs {stats_path}")
    if stats is not None and stats.mean_image.shape[0] < config.model.image_size:
        raise ConfigError(f"config.model.image_size={config.model.image_size} is larger than the "
                         f"stored images ({stats.mean_image.shape[0]} px, {stats_path})")
    return stats


def num_train_examples(config, stats):
    if config.input.num_train_examples > 0:
        return config.input.num_train_examples
    if stats is None:
        raise ConfigError("config.input.num_train_examples must be set: no stats.npz to read it from")
    return int(stats.num_images)


def _without(config_dict, fields):
    return {k: v for k, v in config_dict.items() if k not in fields}


def check_workdir(config, workdir):
    """Refuses a workdir that holds a run of a different config; returns True if resuming."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        if os.path.isdir(os.path.join(workdir, "checkpoints")) and \
                os.listdir(os.path.join(workdir, "checkpoints")):
            raise ConfigError(f"{workdir} holds checkpoints but no config.json; refusing to train "
                             "over a run of unknown config")
        return False
    with open(path) as f:
        old = json.load(f)
    new = json.loads(config.to_json())
    old_core, new_core = _without(old, RESUMABLE_CHANGES), _without(new, RESUMABLE_CHANGES)
    if old_core != new_core:
        diffs = sorted(_diff(old_core, new_core))
        raise ConfigError(f"{workdir} holds a run of a different config ({path}); differing fields: "
                         f"{', '.join(diffs[:10])}. Use a new --workdir.")
    return True


def _diff(a, b, prefix=""):
    for key in set(a) | set(b):
        va, vb = a.get(key, "<missing>"), b.get(key, "<missing>")
        if isinstance(va, dict) and isinstance(vb, dict):
            yield from _diff(va, vb, f"{prefix}{key}.")
        elif va != vb:
            yield f"{prefix}{key}"


def write_config(config, workdir):
    os.makedirs(workdir, exist_ok=True)
    tmp = os.path.join(workdir, "config.json.tmp")
    with open(tmp, "w") as f:
        f.write(config.to_json(indent=2))
    os.replace(tmp, os.path.join(workdir, "config.json"))


def load_config(workdir):
    """The ConfigDict a workdir was trained with."""
    with open(os.path.join(workdir, "config.json")) as f:
        return ml_collections.ConfigDict(json.load(f))
