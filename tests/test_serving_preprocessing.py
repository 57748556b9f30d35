"""serving/preprocessing.py: the export's in-graph preprocessing equals make_tfrecords + the reader."""
import numpy as np
import pytest
import tensorflow as tf

import fixtures as fx
from keras_alexnet.runs import restore
from keras_alexnet.serving import export
from keras_alexnet.serving import preprocessing as prep


def test_serving_matches_make_tfrecords_then_input_pipeline():
    """Serving = make_tfrecords' Pillow resize and re-encode, then the reader's decode."""
    from keras_alexnet.data import shard_writer
    from keras_alexnet.data.preprocessing import DCT_METHOD as dct
    for name, data in fx.serving_images().items():
        ours = prep.scale_and_center(data, fx.RESIZE).numpy()
        if name == "stored.jpg":  # already what the writer stores: decoded as the reader does
            np.testing.assert_array_equal(ours, tf.io.decode_jpeg(data, dct_method=dct).numpy())
            continue
        encoded, _, _ = shard_writer.convert_image(data, fx.RESIZE, 90)
        difference = np.abs(ours - tf.io.decode_jpeg(encoded, dct_method=dct).numpy())
        # Off by a level here and there (Pillow's fixed-point weights), never systematically.
        assert difference.mean() < 0.1 and difference.max() <= 12, name


@pytest.mark.parametrize("normalization", ["mean_image", "channel"])
def test_stored_images_preprocess_as_the_input_pipeline(tiny_export, normalization):
    """On make_tfrecords' output the export sees exactly what evaluation of the checkpoint sees."""
    from keras_alexnet.data import preprocessing
    stats = restore.stats_lib.load_stats(tiny_export["data_dir"])
    mean, std = restore.normalization_arrays(stats, normalization)
    module = export.ServingModule(tiny_export["model"], mean, fx.SYNSETS, fx.NAMES, std=std)
    record = tf.constant(fx.encode(fx.picture(fx.RESIZE, fx.RESIZE, seed=9)))
    for ten_crop, ours in ((False, module.preprocess), (True, module.preprocess_ten_crops)):
        expected = preprocessing.preprocess_for_eval(record, stats, image_size=67,
                                                     normalization=normalization,
                                                     ten_crop=ten_crop)
        np.testing.assert_allclose(ours(record).numpy(), expected.numpy(), atol=1e-4)


# -- originals (make_tfrecords --resize 0, other converters' TFRecords) --------------------

def _kept_original(tmp_path, name, data):
    """(record bytes, stats) of a --resize 0 data folder whose training split is this image
    alone: its mean image is the writer's view of the image (Pillow's resize to RESIZE)."""
    from keras_alexnet.data import stats as stats_lib
    root = tmp_path / f"in-{name}"
    fx.write(str(root / "n01" / name), data)
    out = tmp_path / f"data-{name}"
    fx.convert(root, out, "train", num_shards=1, resize=0, stats_size=fx.RESIZE)
    record = next(iter(tf.data.TFRecordDataset([str(out / "train-00000-of-00001")])))
    encoded = tf.io.parse_single_example(
        record, {"image/encoded": tf.io.FixedLenFeature([], tf.string)})
    return encoded["image/encoded"], stats_lib.load_stats(out)


ORIGINALS = {
    "square400.jpg": lambda: fx.encode(fx.picture(400, 400, seed=11)),  # square, not RESIZE
    "tall.jpg": lambda: fx.encode(fx.picture(150, 118, seed=12)),
    "gray.png": lambda: fx.encode(fx.picture(130, 100, seed=13, channels=1), "PNG"),
}


@pytest.mark.parametrize("name", sorted(ORIGINALS))
def test_originals_are_resized_alike_in_statistics_evaluation_training_and_serving(tmp_path, name):
    """--resize 0 data: the mean image (Pillow's bicubic in the writer), the input pipeline
    and the export's graph resize every original the same way, a 400x400 square included,
    so subtracting the image's own mean view leaves ~0 everywhere, and the export's
    pixels are the evaluation's."""
    from keras_alexnet.data import preprocessing
    record, stats = _kept_original(tmp_path, name, ORIGINALS[name]())
    mean = stats.mean_image.astype(np.float32)
    assert mean.shape == (fx.RESIZE, fx.RESIZE, 3)
    centre = preprocessing.preprocess_for_eval(record, stats, image_size=67).numpy()
    ten = preprocessing.preprocess_for_eval(record, stats, image_size=67, ten_crop=True).numpy()
    train = preprocessing.preprocess_for_train(record, stats, seed=[1, 2], image_size=67,
                                               lighting_std=0.0).numpy()
    for what, values in (("centre", centre), ("ten crops", ten), ("training crop", train)):
        # Pillow's fixed-point filter weights: a level here and there, never a stretched mean.
        assert np.abs(values).mean() < 0.05 and np.abs(values).max() <= 2, what
    module = export.ServingModule(fx.trained_model(), mean, fx.SYNSETS, fx.NAMES, jpeg_quality=0)
    np.testing.assert_allclose(module.preprocess(record).numpy(), centre, atol=1e-4)
    np.testing.assert_allclose(module.preprocess_ten_crops(record).numpy(), ten, atol=1e-4)


def test_square_originals_are_resized_without_statistics_too():
    """Another converter's 400x400 JPEG (no stats.npz, channel normalization): the 256 canvas
    is the image resized, not its native-scale centre."""
    from keras_alexnet.data import preprocessing
    original = tf.constant(fx.encode(fx.picture(400, 400, seed=14)))
    eval_pixels = preprocessing.preprocess_for_eval(original, None, image_size=227).numpy()
    canvas = prep.scale_and_center(original, 256, jpeg_quality=0).numpy()
    np.testing.assert_allclose(eval_pixels, canvas[14:241, 14:241], atol=1e-4)
    native = tf.io.decode_jpeg(original, dct_method=preprocessing.DCT_METHOD).numpy()[86:313, 86:313]
    assert np.abs(eval_pixels - native).mean() > 5
