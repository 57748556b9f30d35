"""Data wrong from the start is refused before the first step (bin/train) or batch (bin/evaluate).

Each case trained a whole epoch (or evaluated silently wrong) before these checks; here
train.check_data, what bin/train runs before building the model, refuses it in a sentence.
"""
import glob
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import fixtures as fx
from keras_alexnet.config import ConfigError
from keras_alexnet.data import layout
from keras_alexnet.serving import evaluate
from keras_alexnet.training import train


@pytest.fixture
def copy(data_dir, tmp_path):
    return shutil.copytree(data_dir, str(tmp_path / "data"))


def rewrite(path, change, out=None):
    """Rewrites the TFRecord file at path (or into out) with change(example, index) applied."""
    examples = [tf.train.Example.FromString(r) for r in
                tf.data.TFRecordDataset(path).as_numpy_iterator()]
    with tf.io.TFRecordWriter(out or path) as writer:
        for i, example in enumerate(examples):
            change(example, i)
            writer.write(example.SerializeToString())


def one_based(example, index):
    labels = example.features.feature["image/class/label"].int64_list.value
    labels[0] += 1


def foreign(folder, splits=("train", "validation")):
    """The folder as another converter leaves it: shards with 1-based labels, no manifest."""
    os.remove(os.path.join(folder, layout.MANIFEST_FILENAME))
    for split in splits:
        for shard in glob.glob(layout.shard_pattern(folder, split)):
            rewrite(shard, one_based)
    return folder


def refused(folder, match, overrides=None):
    with pytest.raises(ConfigError, match=match):
        train.check_data(fx.tiny_config(folder, overrides))


def test_the_data_as_written_passes(data_dir):
    assert train.check_data(fx.tiny_config(data_dir)) is not None


def test_an_empty_validation_split_is_refused(copy):
    for shard in glob.glob(layout.shard_pattern(copy, "validation")):
        open(shard, "wb").close()
    refused(copy, r"config.input.eval_split='validation': its 2 shard\(s\) .* hold no records")


def test_a_validation_shard_cut_short_is_named_before_training(copy):
    shard = os.path.join(copy, "validation-00001-of-00002")
    with open(shard, "r+b") as f:
        f.truncate(os.path.getsize(shard) - 100)
    refused(copy, rf"config.input.eval_split='validation': damaged TFRecord shard {shard}: cut short")


def test_one_based_labels_need_the_label_offset(copy):
    foreign(copy)
    refused(copy, r"config.input.train_split='train': labels run 1..3, but with "
                  r"config.input.label_offset=0 the model's 3 classes need 0..2 .*; set "
                  r"config.input.label_offset=1")
    assert train.check_data(fx.tiny_config(copy, {"input.label_offset": 1})) is not None


def test_splits_in_two_bases_are_refused(copy):
    foreign(copy, splits=("validation",))
    refused(copy, r"no one offset fits every split", {"input.label_offset": 0})
    refused(copy, r"config.input.train_split='train': labels run 0..2", {"input.label_offset": 1})


def test_make_tfrecords_labels_are_zero_based(copy):
    refused(copy, r"config.input.label_offset=1, but .* was written by bin/make_tfrecords .* "
                  r"0-based: set config.input.label_offset=0", {"input.label_offset": 1})


def test_two_datasets_shards_in_one_folder_are_refused(copy):
    shutil.copy(os.path.join(copy, "train-00000-of-00002"), os.path.join(copy, "train-00003-of-00008"))
    refused(copy, r"config.input.train_split='train': .* holds shards of several datasets "
                  r"\(2 named -of-00002, 1 named -of-00008\)")
    os.remove(os.path.join(copy, "train-00000-of-00002"))
    os.remove(os.path.join(copy, "train-00001-of-00002"))
    refused(copy, r"shards are named -of-00008, but its dataset.json records 2 shards")


def to_png(example, index):
    """The record's image as a PNG of the pixels its JPEG decodes to (what other converters write)."""
    encoded = example.features.feature["image/encoded"].bytes_list.value
    encoded[0] = tf.io.encode_png(tf.io.decode_jpeg(encoded[0], dct_method="INTEGER_ACCURATE")).numpy()


def test_png_records_anywhere_in_a_shard_train_and_evaluate_as_their_jpegs(copy, data_dir):
    """Another converter's PNG records (the first of a shard, or any later one) are decoded,
    to the pixels the JPEG they replace decodes to: the same crops, train and eval."""
    for shard in glob.glob(layout.shard_pattern(copy, "train")):
        rewrite(shard, to_png)  # every record of the training split
    assert train.check_data(fx.tiny_config(copy)) is not None
    from keras_alexnet.data import input_pipeline
    for training in (True, False):
        batches = [next(iter(input_pipeline.make_dataset(
            layout.shard_pattern(folder, "train"), 4, training, seed=3, image_size=67,
            stats=data_dir, shuffle_buffer=1, repeat=False)))
            for folder in (data_dir, copy)]
        np.testing.assert_array_equal(batches[0][1], batches[1][1])
        # A JPEG's window decodes as decode-then-crop but along its edges (libjpeg's
        # cropped IDCT: data/preprocessing.py), where a PNG's crop is exact.
        jpeg, png = (np.asarray(b[0])[:, 1:-1, 1:-1] for b in batches)
        np.testing.assert_allclose(png, jpeg, atol=1e-4)


def test_a_record_holding_no_decodable_image_is_named_with_its_shard(copy):
    shard = os.path.join(copy, "train-00001-of-00002")

    def to_tiff(example, index):
        example.features.feature["image/encoded"].bytes_list.value[0] = b"II*\x00" + bytes(60)
    rewrite(shard, to_tiff)
    refused(copy, rf"config.input.train_split='train': {shard}, record 0, holds no image the "
                  r"input pipeline decodes in image/encoded \(JPEG, PNG, GIF, BMP or WebP")


def flip_a_bit(shard):
    """Flips a bit inside the first record's image data (its framing stays whole)."""
    with open(shard, "r+b") as f:
        f.seek(500)
        byte = f.read(1)
        f.seek(500)
        f.write(bytes([byte[0] ^ 0x10]))


def test_flipped_bits_are_named_by_shard(copy):
    shard = os.path.join(copy, "validation-00001-of-00002")
    flip_a_bit(shard)
    pattern = layout.shard_pattern(copy, "validation")
    with pytest.raises(tf.errors.DataLossError) as error:
        for _ in tf.data.TFRecordDataset(sorted(glob.glob(pattern))):
            pass
    message = layout.describe_data_loss(error.value, [pattern])
    assert f"{shard}: a record fails its checksum" in message


def test_a_failure_mid_run_keeps_the_steps_done(copy, tmp_path):
    """Flipped bits in the validation split: the epoch's 6 steps are saved before the sentence."""
    flip_a_bit(os.path.join(copy, "validation-00001-of-00002"))
    workdir = str(tmp_path / "work")
    config = fx.tiny_config(copy, {"num_epochs": 1, "checkpoint.every_steps": 100})
    with pytest.raises(ConfigError, match="validation-00001-of-00002: a record fails its checksum"):
        train.train_and_evaluate(config, workdir)
    assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).endswith("ckpt-6")


def test_bin_evaluate_refuses_labels_out_of_range(tiny_export, tmp_path):
    folder = str(tmp_path / "foreign")
    os.makedirs(folder)
    for shard in glob.glob(layout.shard_pattern(tiny_export["data_dir"], "validation")):
        rewrite(shard, one_based, os.path.join(folder, os.path.basename(shard)))
    data = layout.shard_pattern(folder, "validation")
    with pytest.raises(ValueError, match=r"labels run 1..4, but with config.input.label_offset=0 "
                                         r"the model's 4 classes need 0..3 .* the offset is the "
                                         r"exported run's"):
        evaluate.evaluate_saved_model(tiny_export["export_dir"], data, stream=None)
    assert np.isfinite(evaluate.evaluate_saved_model(
        tiny_export["export_dir"], layout.shard_pattern(tiny_export["data_dir"], "validation"),
        stream=None).top1_error)
