"""tf.data input: make_dataset over the TFRecord shards (layout.FEATURE_SPEC).

make_dataset reads the shards make_tfrecords writes (or the Inception/TPU
converters' ImageNet TFRecords, with label_offset=1) and yields batches of
preprocessed images (preprocessing.py) and int32 labels, in four stages:

    list_shards -> read_records (this worker's share, shuffled in training)
                -> decode_and_augment (preprocessing.py) -> batch

from_input_config is make_dataset with a run's config.input and config.model: the
trainer, bin/evaluate, bin/report and first_steps read their data through it. A pass
that needs the records themselves in make_dataset's order (bin/report's neighbour
images) reads them with read_records. With a tf.data service dispatcher (data_service),
training's read and decode_and_augment run on the service's workers instead
(service_records, then service.distribute): service.py says what changes.
"""
import os

import tensorflow as tf

from keras_alexnet.data import layout, preprocessing, service
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


def _worker(input_context, seed):
    """(number of input pipelines, this one's index, its seed)."""
    if input_context is None or input_context.num_input_pipelines <= 1:
        return 1, 0, seed
    n, index = input_context.num_input_pipelines, input_context.input_pipeline_id
    # A distinct augmentation per worker, still reproducible.
    return n, index, None if seed is None else seed * 1009 + index


def read_records(files, training, *, input_context=None, seed=None, repeat=None,
                 shuffle_buffer=SHUFFLE_BUFFER):
    """Serialized examples of `files` (list_shards' sorted list): this worker's share.

    Evaluation (training=False) reads the files interleaved one record at a time over
    min(files, 16) of them, the same order every time; training shuffles the files and
    the records (`seed` makes it reproducible) and repeats unless told repeat=False.
    seed: the worker's (see _worker).
    """
    repeat = training if repeat is None else repeat
    n, index = _worker(input_context, seed)[:2]
    deterministic = seed is not None or not training
    ds = tf.data.Dataset.from_tensor_slices(files)
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
    return ds.repeat() if repeat else ds


def decode_and_augment(records, training, *, stats=None, image_size=227, label_offset=0, seed=None,
                       ten_crop=False, normalization="mean_image", crop="paper",
                       lighting_std=preprocessing.LIGHTING_STD, flip=True, stored_size=None, seeded=False):
    """(image, int32 label) of each serialized example: preprocess_for_train or _for_eval.

    In training each example gets its own stateless seed (Dataset.random is reproducible
    when seeded): the worker's `seed`, as read_records got it; seeded=True: `records` are
    already (serialized, seed) pairs (service_records').
    """
    deterministic = seed is not None or not training
    parse = lambda serialized: parse_example(serialized, label_offset)  # noqa: E731
    if training:
        if not seeded:
            records = tf.data.Dataset.zip((records, tf.data.Dataset.random(seed=seed).batch(2)))

        def process(serialized, example_seed):
            image_bytes, label = parse(serialized)
            return preprocessing.preprocess_for_train(
                image_bytes, stats, seed=example_seed, image_size=image_size, crop=crop,
                normalization=normalization, lighting_std=lighting_std, flip=flip,
                stored_size=stored_size), label
    else:
        def process(serialized):
            image_bytes, label = parse(serialized)
            return preprocessing.preprocess_for_eval(
                image_bytes, stats, image_size=image_size, normalization=normalization,
                ten_crop=ten_crop, stored_size=stored_size), label
    return records.map(process, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)


def service_records(files, *, seed=None, shuffle_buffer=SHUFFLE_BUFFER, repeat=True):
    """(serialized example, its stateless seed [2]) pairs, read where tf.data service runs them.

    The service (service.PROCESSING_MODE) hands this dataset's source, the indices of
    `files`, to its workers one at a time; each worker runs the rest on the files it gets:
    their records interleaved, shuffled, repeated when the epoch's files run out (each
    worker's epochs stay whole, as read_records' do). The files come in their sorted order
    every epoch: a shuffle of them on a worker would draw every file into its buffer and
    leave the other workers idle. An example's seed is the worker's Dataset.random pair at
    its position (as decode_and_augment draws it locally) folded with the example's file
    and record numbers: every worker runs the same graph and so draws the same stream; the
    fold keeps the examples two workers hold at one position apart.
    """
    paths = tf.constant([str(f) for f in files])

    def read(index):
        records = tf.data.TFRecordDataset(tf.gather(paths, index), buffer_size=8 << 20)
        return records.enumerate().map(lambda number, serialized: (serialized, index, number))

    ds = tf.data.Dataset.range(len(files)).interleave(
        read, cycle_length=min(len(files), 16), block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=seed is not None)
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.repeat() if repeat else ds
    fold = tf.random.experimental.stateless_fold_in

    def with_seed(record, draw):
        serialized, index, number = record
        return serialized, fold(fold(draw, index), number)

    return tf.data.Dataset.zip((ds, tf.data.Dataset.random(seed=seed).batch(2))).map(with_seed)


def batch(examples, batch_size, drop_remainder):
    """Batches, prefetched; drop_remainder (training) keeps the shape static for the compiled step."""
    return examples.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def make_dataset(file_pattern, batch_size, training, *, stats=None, image_size=227, label_offset=0,
                 input_context=None, seed=None, ten_crop=False, repeat=None,
                 normalization="mean_image", crop="paper", drop_remainder=None,
                 shuffle_buffer=SHUFFLE_BUFFER, lighting_std=preprocessing.LIGHTING_STD,
                 flip=True, stored_size=None, data_service="", service_job=None):
    """Batches of (images float32 [B, S, S, 3] (or [B, 10, S, S, 3] with ten_crop), labels int32 [B]).

    batch_size is the batch this dataset yields: under tf.distribute pass
    input_context.get_per_replica_batch_size(global_batch). stats: DatasetStats,
    a stats.npz path or its folder, or None (no mean subtraction, no lighting).
    stored_size: the side of the stored squares, cropped as they are (other images are
    resized to it first); by default the mean image's, 256 without stats.
    seed makes the order and every augmentation reproducible. Evaluation
    (training=False, repeat=False) yields every example exactly once, in order.
    data_service (training only): a tf.data service dispatcher's address; its workers read,
    decode, augment and batch (service_records), every input pipeline of a multi-worker
    run taking its batches from the one job `service_job` names (service.py).
    """
    if isinstance(stats, (str, os.PathLike)):
        stats = stats_lib.load_stats(stats)
    through_service = bool(data_service) and training
    # One job for every input pipeline: the same dataset on each, so the same seed.
    seed = seed if through_service else _worker(input_context, seed)[2]
    if through_service:
        records = service_records(list_shards(file_pattern), seed=seed,
                                  shuffle_buffer=shuffle_buffer, repeat=repeat is not False)
    else:
        records = read_records(list_shards(file_pattern), training, input_context=input_context,
                               seed=seed, repeat=repeat, shuffle_buffer=shuffle_buffer)
    examples = decode_and_augment(
        records, training, stats=stats, image_size=image_size, label_offset=label_offset,
        seed=seed, ten_crop=ten_crop, normalization=normalization, crop=crop,
        lighting_std=lighting_std, flip=flip, stored_size=stored_size, seeded=through_service)
    drop_remainder = training if drop_remainder is None else drop_remainder
    if through_service:
        batches = examples.batch(batch_size, drop_remainder=drop_remainder)
        return service.distribute(batches, data_service, service_job).prefetch(tf.data.AUTOTUNE)
    return batch(examples, batch_size, drop_remainder)


_DATA_STATS = "the data folder's stats.npz"  # from_input_config's default stats


def from_input_config(config, split, batch_size, training, *, data_dir=None, file_pattern=None,
                      stats=_DATA_STATS, **kwargs):
    """make_dataset of a run's `split`, as its config says: no caller re-threads config.input.

    config: the run's config (a ConfigDict, or config.json's dict: fields it lacks take
    make_dataset's defaults); its input.data_dir, input.label_offset, input.normalization
    and, in training, input.crop, input.flip, input.lighting_std, input.shuffle_buffer and
    input.data_service (evaluation stays local); the
    network's model.image_size. data_dir: instead of config.input.data_dir (a moved run,
    the demo data); file_pattern: other shards than the split's (bin/evaluate --data);
    stats: instead of the data folder's stats.npz (None: no mean, no lighting). kwargs: make_dataset's input_context,
    seed, ten_crop, repeat, drop_remainder, service_job.
    """
    input_config = config["input"]
    data_dir = data_dir or input_config["data_dir"]
    options = {key: input_config[key] for key in ("label_offset", "normalization")
               + (("crop", "flip", "lighting_std", "shuffle_buffer", "data_service") if training else ())
               if key in input_config}
    return make_dataset(file_pattern or layout.shard_pattern(data_dir, split), batch_size, training,
                        stats=stats_lib.load_stats(data_dir) if stats is _DATA_STATS else stats,
                        image_size=config["model"]["image_size"], **options, **kwargs)
