"""tf.data input: make_dataset over the TFRecord shards (layout.FEATURE_SPEC).

make_dataset reads the shards make_tfrecords writes (or the Inception/TPU
converters' ImageNet TFRecords, with label_offset=1) and yields batches of
preprocessed images (preprocessing.py) and int32 labels.
"""
import os

import tensorflow as tf

from keras_alexnet.data import layout, preprocessing
from keras_alexnet.data import stats as stats_lib

# Training reads only what it needs: parsing fewer keys is measurably faster.
READ_KEYS = ("image/encoded", "image/class/label")
SHUFFLE_BUFFER = 10_000  # serialized examples: ~0.3 GB of 256x256 JPEGs, spans many shards


def parse_example(serialized, label_offset=0):
    """(JPEG bytes, int32 label) of one serialized tf.train.Example."""
    features = tf.io.parse_single_example(serialized, {k: layout.FEATURE_SPEC[k] for k in READ_KEYS})
    label = tf.cast(features["image/class/label"] - label_offset, tf.int32)
    return features["image/encoded"], label


def list_shards(file_pattern):
    """Sorted shard paths for a pattern (or a list of patterns); a clear error if none match."""
    patterns = [file_pattern] if isinstance(file_pattern, (str, os.PathLike)) else list(file_pattern)
    files = sorted({f for p in patterns for f in tf.io.gfile.glob(str(p))})
    if not files:
        raise FileNotFoundError(f"no TFRecord files match {file_pattern!r}")
    folders = [f for f in files if tf.io.gfile.isdir(f)]
    if folders:
        raise ValueError(f"{folders[0]} is a folder: pass a shard pattern such as "
                         f"'{os.path.join(folders[0], 'train-*')}'")
    return files


def make_dataset(file_pattern, batch_size, training, *, stats=None, image_size=227, label_offset=0,
                 input_context=None, seed=None, ten_crop=False, repeat=None,
                 normalization="mean_image", crop="paper", drop_remainder=None,
                 shuffle_buffer=SHUFFLE_BUFFER, lighting_std=preprocessing.LIGHTING_STD,
                 stored_size=None):
    """Batches of (images float32 [B, S, S, 3] (or [B, 10, S, S, 3] with ten_crop), labels int32 [B]).

    batch_size is the batch this dataset yields: under tf.distribute pass
    input_context.get_per_replica_batch_size(global_batch). stats: DatasetStats,
    a stats.npz path or its folder, or None (no mean subtraction, no lighting).
    stored_size: the side of the stored squares, cropped as they are (other images are
    resized to it first); by default the mean image's, 256 without stats.
    seed makes the order and every augmentation reproducible. Evaluation
    (training=False, repeat=False) yields every example exactly once, in order.
    """
    repeat = training if repeat is None else repeat
    drop_remainder = training if drop_remainder is None else drop_remainder
    if isinstance(stats, (str, os.PathLike)):
        stats = stats_lib.load_stats(stats)
    files = list_shards(file_pattern)
    deterministic = seed is not None or not training
    ds = tf.data.Dataset.from_tensor_slices(files)
    n, index = 1, 0
    if input_context is not None and input_context.num_input_pipelines > 1:
        n, index = input_context.num_input_pipelines, input_context.input_pipeline_id
        if seed is not None:
            seed = seed * 1009 + index  # distinct augmentation per worker, still reproducible
    # Whole files per worker when there are enough of them (no worker reads another's
    # data); otherwise every worker reads every file and keeps 1 record in n of each,
    # a split that holds whatever order the workers' shuffles give the files.
    shard_files = n > 1 and len(files) >= n
    if shard_files:
        ds = ds.shard(n, index)
    if training:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)

    def read(filename):
        records = tf.data.TFRecordDataset(filename, buffer_size=8 << 20)
        return records.shard(n, index) if n > 1 and not shard_files else records

    ds = ds.interleave(read, cycle_length=min(len(files), 16), block_length=1,
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    if training:
        # Shuffle, then repeat: each epoch sees every example once before the next begins.
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    parse = lambda serialized: parse_example(serialized, label_offset)  # noqa: E731
    if training:
        # One stateless seed per example: Dataset.random is reproducible when seeded.
        ds = tf.data.Dataset.zip((ds, tf.data.Dataset.random(seed=seed).batch(2)))

        def process(serialized, example_seed):
            image_bytes, label = parse(serialized)
            return preprocessing.preprocess_for_train(
                image_bytes, stats, seed=example_seed, image_size=image_size, crop=crop,
                normalization=normalization, lighting_std=lighting_std,
                stored_size=stored_size), label
    else:
        def process(serialized):
            image_bytes, label = parse(serialized)
            return preprocessing.preprocess_for_eval(
                image_bytes, stats, image_size=image_size, normalization=normalization,
                ten_crop=ten_crop, stored_size=stored_size), label
    ds = ds.map(process, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    # drop_remainder in training keeps the batch shape static for the compiled step.
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE)
