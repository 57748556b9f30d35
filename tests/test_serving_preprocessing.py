"""serving/preprocessing.py: the export's in-graph preprocessing equals make_tfrecords + the reader."""
import numpy as np
import pytest
import tensorflow as tf

import fixtures as fx
from keras_alexnet.serving import export, restore
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
