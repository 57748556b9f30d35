"""bin/train's checks of the data before the first step (data/checks.py says what and why).

Each refusal is one sentence naming the config field (config.input.eval_split,
config.input.label_offset) and the file at fault, given before any model is built.
"""
import tensorflow as tf

from keras_alexnet.config import ConfigError
from keras_alexnet.data import checks, layout

SPLIT_FIELDS = ("train_split", "eval_split", "test_split")


def check_training_data(config):
    """Refuses config.input.data_dir's splits when they cannot train config's model."""
    data_dir = config.input.data_dir
    manifest = layout.read_manifest(data_dir)
    recorded = manifest.get("splits", {})
    ours = manifest.get("format") == layout.FORMAT  # make_tfrecords' 0-based labels
    ranges = {}
    try:
        for field in SPLIT_FIELDS:
            split = config.input[field]
            if not split:
                continue
            what = f"config.input.{field}={split!r}"
            files = sorted(tf.io.gfile.glob(layout.shard_pattern(data_dir, split)))
            if not files:
                continue  # check_data names the missing shards
            checks.check_shard_set(files, what, recorded.get(split, {}).get("num_shards"))
            # The training split's 1,024 ImageNet shards: their first records only.
            checks.check_records(files, what, walk=field != "train_split")
            if not ours:
                ranges[what] = checks.label_range(files, sample=field == "train_split")
        checks.check_make_tfrecords_offset(manifest, data_dir, config.input.label_offset)
        checks.check_label_ranges(ranges, config.model.num_classes, config.input.label_offset)
    except checks.DataError as e:
        raise ConfigError(str(e)) from None
