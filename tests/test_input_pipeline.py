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
