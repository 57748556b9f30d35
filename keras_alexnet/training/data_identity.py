"""Whether a data folder holds the dataset a run trained on: a resumed run may follow moved data.

WORKDIR/data.json (workdir.DATA_FILENAME) records, when the run starts, what identifies
its data: each split's shard names and sizes, and the SHA-1 of stats.npz and labels.txt.
make_tfrecords writes the same bytes for the same command, so a copy, a move or a
re-conversion of the same images with the same flags has the same identity; another
dataset, another split or other flags do not. A run resumed with another
--config.input.data_dir goes on when the new folder's identity is the recorded one (or,
for a workdir written before data.json, the old folder's, if it still exists).
"""
import hashlib
import json
import os
import sys

import tensorflow as tf

from keras_alexnet.config import ConfigError
from keras_alexnet.data import layout

SPLIT_FIELDS = ("train_split", "eval_split", "test_split")


def _sha1(path):
    if not tf.io.gfile.exists(path):
        return None
    digest = hashlib.sha1()
    with tf.io.gfile.GFile(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def identity(data_dir, input_config):
    """{"shards": {split: [[name, size], ...]}, STATS_FILENAME: sha1, LABELS_FILENAME: sha1}."""
    shards = {}
    for field in SPLIT_FIELDS:
        split = input_config.get(field)
        if split:
            files = sorted(tf.io.gfile.glob(layout.shard_pattern(data_dir, split)))
            shards[split] = [[os.path.basename(f), tf.io.gfile.stat(f).length] for f in files]
    return {"shards": shards,
            layout.STATS_FILENAME: _sha1(os.path.join(data_dir, layout.STATS_FILENAME)),
            layout.LABELS_FILENAME: _sha1(os.path.join(data_dir, layout.LABELS_FILENAME))}


def write(path, data_dir, input_config):
    layout.write_json(path, identity(data_dir, input_config))


def difference(recorded, data_dir, input_config):
    """None when data_dir holds the recorded dataset, else what differs (a phrase)."""
    found = identity(data_dir, input_config)
    for name in (layout.STATS_FILENAME, layout.LABELS_FILENAME):
        if recorded.get(name) != found[name]:
            return f"its {name} differs"
    for split, shards in recorded.get("shards", {}).items():
        if found["shards"].get(split) != shards:
            have = found["shards"].get(split) or []
            return (f"its {split} shards differ ({len(have)} files, "
                    f"{sum(s for _, s in have):,} bytes; the run's: {len(shards)} files, "
                    f"{sum(s for _, s in shards):,} bytes)")
    return None


def read(path):
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def follow_moved_data(old_config, config, data_json, config_json):
    """True (resuming) when config.input.data_dir holds the run's dataset; else ConfigError.

    data_json: the workdir's record; config_json: its config.json, to name in the sentence.
    """
    old_dir, new_dir = old_config["input"]["data_dir"], config.input.data_dir
    if os.path.exists(data_json):
        recorded, source = read(data_json), data_json
    elif os.path.isdir(old_dir):
        recorded, source = identity(old_dir, old_config["input"]), old_dir
    else:
        raise ConfigError(
            f"config.input.data_dir changed from {old_dir} (gone) to {new_dir}, and there is no "
            f"{data_json} (a run from before it was written) to tell whether {new_dir} holds "
            f"the same dataset: if it does, set input.data_dir in {config_json}")
    why = difference(recorded, new_dir, config.input)
    if why:
        raise ConfigError(f"config.input.data_dir changed from {old_dir} to {new_dir}, which does "
                          f"not hold the dataset this run trained on ({why}, against {source}); "
                          "use a new --workdir to train on other data")
    print(f"config.input.data_dir: {new_dir} holds the dataset this run trained on (was "
          f"{old_dir}); resuming on it", file=sys.stderr, flush=True)
    return True
