"""make_dataset over shards written by make_tfrecords: shapes, coverage, seeds, sharding, offsets."""
import io
import os

import numpy as np
import pytest
import tensorflow as tf

import fixtures as fx
from keras_alexnet.data import convert
from keras_alexnet.benchmarks import input as input_benchmark
from keras_alexnet.data import input_pipeline
from keras_alexnet.data import layout, shard_writer
from keras_alexnet.data.stats import load_stats

NUM_IMAGES = 15  # 3 classes x 5, in 3 shards: batches of 4 do not divide it


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    images = fx.image_folder(root / "in", classes=("n01", "n02", "n03"), per_class=5)
    convert.convert("imagefolder", images, str(root / "out"), num_shards=3, num_workers=1,
                    resize=80, stream=io.StringIO())
    return str(root / "out")


def pattern(data_dir):
    return os.path.join(data_dir, "train-*")


def fingerprints(ds):
    """(label, rounded image sum) of every example, to tell examples apart."""
    out = []
    for images, labels in ds:
        sums = tf.reduce_sum(images, axis=list(range(1, images.shape.rank))).numpy()
        out += [(int(l), round(float(s), -2)) for l, s in zip(labels.numpy(), sums)]
    return out


def test_training_batches_are_static_and_repeat(data_dir):
    ds = input_pipeline.make_dataset(pattern(data_dir), 4, True, stats=data_dir, image_size=67)
    assert ds.element_spec[0].shape == (4, 67, 67, 3)  # drop_remainder: static for the compiled step
    assert ds.element_spec[1].shape == (4,) and ds.element_spec[1].dtype == tf.int32
    batches = list(ds.take(NUM_IMAGES))  # more batches than one epoch: it repeats
    assert len(batches) == NUM_IMAGES
    labels = np.concatenate([b[1].numpy() for b in batches])
    assert set(labels) == {0, 1, 2}


def test_eval_covers_every_example_exactly_once(data_dir):
    ds = input_pipeline.make_dataset(pattern(data_dir), 4, False, stats=data_dir, image_size=67)
    labels = np.concatenate([labels.numpy() for _, labels in ds])
    assert sorted(labels) == [0] * 5 + [1] * 5 + [2] * 5
    ten = input_pipeline.make_dataset(pattern(data_dir), 4, False, stats=data_dir, image_size=67,
                                      ten_crop=True)
    shapes = [images.shape for images, _ in ten]
    assert shapes[0] == (4, 10, 67, 67, 3) and sum(s[0] for s in shapes) == NUM_IMAGES


def test_mean_image_centres_the_data(data_dir):
    ds = input_pipeline.make_dataset(pattern(data_dir), 5, False, stats=data_dir, image_size=67)
    centred = np.concatenate([images.numpy() for images, _ in ds])
    raw = np.concatenate([images.numpy() for images, _ in input_pipeline.make_dataset(
        pattern(data_dir), 5, False, image_size=67)])
    assert abs(raw.mean()) > 50  # raw 0..255 values
    assert abs(centred.mean()) < 1.0  # the training-set mean image subtracted
    np.testing.assert_allclose(centred.mean(axis=0), 0.0, atol=1.5)  # at every position


def test_seed_reproduces_order_and_augmentation(data_dir):
    def first_batches(seed):
        ds = input_pipeline.make_dataset(pattern(data_dir), 4, True, stats=data_dir, image_size=67,
                                         seed=seed)
        return [(x.numpy(), y.numpy()) for x, y in ds.take(5)]

    a, b, c = first_batches(7), first_batches(7), first_batches(8)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert any(not np.array_equal(xa, xc) for (xa, _), (xc, _) in zip(a, c))


@pytest.mark.parametrize("shards", ["files", "examples"])
def test_input_context_splits_the_data_between_workers(data_dir, shards):
    files = pattern(data_dir) if shards == "files" else os.path.join(data_dir, "train-00000-*")
    whole = fingerprints(input_pipeline.make_dataset(files, 4, False, image_size=67))
    parts = []
    for index in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=index)
        parts.append(fingerprints(input_pipeline.make_dataset(files, 4, False, image_size=67,
                                                              input_context=context)))
    assert parts[0] and parts[1]
    assert sorted(parts[0] + parts[1]) == sorted(whole)


@pytest.mark.parametrize("workers", [2, 4])  # 3 shards: split by files, then by examples
def test_training_workers_split_an_epoch_whatever_their_shuffles(data_dir, workers, monkeypatch):
    # Each example's "image" is a hash of its bytes, so examples can be told apart
    # through training's random order; unseeded workers shuffle files differently.
    def tag(image_bytes, stats, image_size, **kwargs):
        value = tf.cast(tf.strings.to_hash_bucket_fast(image_bytes, 1 << 20), tf.float32)
        return tf.fill([image_size, image_size, 3], value)

    monkeypatch.setattr(input_pipeline.preprocessing, "preprocess_for_train", tag)
    files = pattern(data_dir)
    whole = fingerprints(input_pipeline.make_dataset(files, 1, True, image_size=67, repeat=False))
    parts = []
    for index in range(workers):
        context = tf.distribute.InputContext(num_input_pipelines=workers, input_pipeline_id=index)
        parts += fingerprints(input_pipeline.make_dataset(
            files, 1, True, image_size=67, repeat=False, input_context=context))
    assert len(whole) == NUM_IMAGES
    assert sorted(parts) == sorted(whole)


def test_label_offset_reads_one_based_records(tmp_path):
    path = str(tmp_path / "train-00000-of-00001")
    with tf.io.TFRecordWriter(path) as writer:
        for label in (1, 2, 1000):  # Inception converters: 1..1000
            writer.write(shard_writer.make_example({
                "image/encoded": fx.encode(fx.picture(90, 100)),
                "image/format": "JPEG", "image/class/label": label, "image/class/synset": "n0",
                "image/class/text": "x", "image/height": 90, "image/width": 100,
                "image/filename": "f.JPEG"}))
    ds = input_pipeline.make_dataset(path, 3, False, image_size=67, label_offset=1)
    images, labels = next(iter(ds))
    assert labels.numpy().tolist() == [0, 1, 999] and images.shape == (3, 67, 67, 3)


def test_inception_crop_with_channel_normalization(data_dir):
    ds = input_pipeline.make_dataset(pattern(data_dir), 4, True, stats=data_dir, image_size=67,
                                     crop="inception", normalization="channel", seed=1)
    images, _ = next(iter(ds))
    assert images.shape == (4, 67, 67, 3) and abs(float(tf.reduce_mean(images))) < 1.5


def test_labels_and_stats_files(data_dir):
    assert layout.load_labels(data_dir) == [("n01", "n01"), ("n02", "n02"), ("n03", "n03")]
    assert load_stats(data_dir).mean_image.shape == (80, 80, 3)
    with pytest.raises(FileNotFoundError, match="no TFRecord files match"):
        input_pipeline.make_dataset(os.path.join(data_dir, "nothing-*"), 4, True)
    with pytest.raises(ValueError, match="is a folder: pass a shard pattern"):
        input_pipeline.make_dataset(data_dir, 4, True)


def test_input_rate_measures_the_training_pipeline(data_dir):
    rate = input_benchmark.input_rate(pattern(data_dir), batch_size=4, steps=3, warmup=1,
                                      image_size=67)
    assert rate > 0


def test_the_stages_compose_make_dataset_and_its_reader_gives_the_evaluation_order(data_dir):
    """read_records (the reader make_dataset uses) yields the records in make_dataset's evaluation
    order, and bin/report's neighbour images, numbered by it, are make_dataset's images."""
    from keras_alexnet.report import neighbours
    stored_size = load_stats(data_dir).mean_image.shape[0]
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in input_pipeline.make_dataset(
        pattern(data_dir), 4, False, image_size=67, stored_size=stored_size)])
    images, labels = np.concatenate(images), np.concatenate(labels)
    files = input_pipeline.list_shards(pattern(data_dir))
    records = list(input_pipeline.read_records(files, training=False))
    assert [int(input_pipeline.parse_example(r)[1]) for r in records] == labels.tolist()
    staged = input_pipeline.batch(input_pipeline.decode_and_augment(
        input_pipeline.read_records(files, False), False, image_size=67, stored_size=stored_size),
        4, drop_remainder=False)
    np.testing.assert_array_equal(np.concatenate([x.numpy() for x, _ in staged]), images)
    patches = neighbours.read_centre_patches(data_dir, "train", range(NUM_IMAGES), image_size=67)
    assert [patches[i][1] for i in range(NUM_IMAGES)] == labels.tolist()
    for i, (patch, _) in patches.items():
        np.testing.assert_array_equal(patch, np.round(images[i]).astype(np.uint8))


def test_from_input_config_reads_a_split_as_the_config_says(data_dir):
    """The trainer's, bin/evaluate's and bin/report's dataset from a config: its data folder,
    split, image size, label offset, normalization; config.json's dict reads like a ConfigDict."""
    from keras_alexnet import config as config_lib
    config = config_lib.get_config()
    config.input.update(data_dir=data_dir, label_offset=1, normalization="channel")
    config.model.image_size = 67
    expected = input_pipeline.make_dataset(pattern(data_dir), 4, False, stats=data_dir, image_size=67,
                                           label_offset=1, normalization="channel")
    for cfg in (config, config.to_dict()):
        got = input_pipeline.from_input_config(cfg, "train", 4, False)
        assert fingerprints(got) == fingerprints(expected)
    trained = input_pipeline.from_input_config(config, "train", 4, True, seed=3)
    assert fingerprints(trained.take(3)) == fingerprints(input_pipeline.make_dataset(
        pattern(data_dir), 4, True, stats=data_dir, image_size=67, label_offset=1, seed=3,
        normalization="channel", crop=config.input.crop, lighting_std=config.input.lighting_std,
        shuffle_buffer=config.input.shuffle_buffer).take(3))
    assert input_pipeline.from_input_config(config, "train", 4, False, stats=None).element_spec \
        == expected.element_spec  # stats=None: no mean, as make_dataset's
