"""The mean image and the RGB covariance/PCA: exact, mergeable, and equal to NumPy on the same pixels."""
import io
import os

import numpy as np
import pytest
import tensorflow as tf

import fixtures as fx
from keras_alexnet.data import convert
from keras_alexnet.data import stats
from keras_alexnet.data.layout import FEATURE_SPEC
from keras_alexnet.data.preprocessing import DCT_METHOD


def random_images(n, size, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def numpy_reference(images):
    pixels = images.reshape(-1, 3).astype(np.float64)
    return images.astype(np.float64).mean(axis=0), np.cov(pixels.T, bias=True)


def test_accumulator_matches_numpy():
    images = random_images(7, 12)
    acc = stats.StatsAccumulator(12)
    for image in images:
        acc.add(image)
    result = acc.finalize()
    mean_image, covariance = numpy_reference(images)
    np.testing.assert_allclose(result.mean_image, mean_image, rtol=0, atol=1e-9)
    np.testing.assert_allclose(result.covariance, covariance, rtol=1e-10)
    assert result.num_images == 7 and result.num_pixels == 7 * 144
    values, vectors = np.linalg.eigh(covariance)
    np.testing.assert_allclose(result.eigenvalues, values[::-1], rtol=1e-9)
    assert list(result.eigenvalues) == sorted(result.eigenvalues, reverse=True)
    for i in range(3):  # each column is an eigenvector of its eigenvalue
        np.testing.assert_allclose(covariance @ result.eigenvectors[:, i],
                                   result.eigenvalues[i] * result.eigenvectors[:, i], atol=1e-8)
    np.testing.assert_allclose(result.eigenvectors.T @ result.eigenvectors, np.eye(3), atol=1e-12)


def test_merging_workers_is_exact_in_any_order():
    images = random_images(9, 8, seed=1)
    whole = stats.StatsAccumulator(8)
    parts = [stats.StatsAccumulator(8) for _ in range(3)]
    for i, image in enumerate(images):
        whole.add(image)
        parts[i % 3].add(image)
    a = stats.StatsAccumulator(8).merge(parts[0]).merge(parts[1]).merge(parts[2]).finalize()
    b = stats.StatsAccumulator(8).merge(parts[2]).merge(parts[0]).merge(parts[1]).finalize()
    w = whole.finalize()
    for field in ("mean_image", "covariance", "eigenvalues", "eigenvectors"):
        np.testing.assert_array_equal(getattr(a, field), getattr(w, field))
        np.testing.assert_array_equal(getattr(b, field), getattr(w, field))
    round_trip = stats.StatsAccumulator.from_arrays(parts[0].to_arrays())
    np.testing.assert_array_equal(round_trip.outer_sum, parts[0].outer_sum)
    with pytest.raises(ValueError, match="merge"):
        stats.StatsAccumulator(4).merge(parts[0])


def test_save_and_load(tmp_path):
    acc = stats.StatsAccumulator(4)
    acc.add(random_images(1, 4)[0])
    saved = acc.finalize()
    saved.save(str(tmp_path))
    loaded = stats.load_stats(tmp_path)  # the folder or the file
    assert stats.load_stats(tmp_path / "stats.npz").num_images == 1
    for field in ("mean_image", "covariance", "eigenvalues", "eigenvectors"):
        np.testing.assert_array_equal(getattr(loaded, field), getattr(saved, field))
    assert loaded.num_pixels == 16 and loaded.mean_image.dtype == np.float64
    with np.load(tmp_path / "stats.npz") as f:
        assert sorted(f.files) == sorted(["mean_image", "covariance", "eigenvalues", "eigenvectors",
                                          "num_images", "num_pixels"])
    with pytest.raises(FileNotFoundError, match="no statistics file"):
        stats.load_stats(tmp_path / "missing")
    with pytest.raises(ValueError, match="no training images"):
        stats.StatsAccumulator(4).finalize()


def test_make_tfrecords_stats_are_of_every_written_pixel(tmp_path):
    """stats.npz against NumPy over the pixels decoded back from the written shards."""
    root = fx.image_folder(tmp_path / "in", classes=("n01", "n02"), per_class=4)
    fx.add_odd_files(root, "n01")  # converted ones count, skipped ones do not
    convert.convert("imagefolder", root, str(tmp_path / "out"), num_shards=3, num_workers=1,
                    resize=48, stream=io.StringIO())
    files = sorted(tf.io.gfile.glob(str(tmp_path / "out" / "train-*")))
    images = np.stack([
        tf.io.decode_jpeg(tf.io.parse_single_example(s, FEATURE_SPEC)["image/encoded"],
                          dct_method=DCT_METHOD).numpy()
        for s in tf.data.TFRecordDataset(files)])
    assert images.shape == (8 + 3, 48, 48, 3)
    saved = stats.load_stats(tmp_path / "out")
    mean_image, covariance = numpy_reference(images)
    assert saved.num_images == 11 and saved.num_pixels == 11 * 48 * 48
    np.testing.assert_allclose(saved.mean_image, mean_image, atol=1e-9)
    np.testing.assert_allclose(saved.covariance, covariance, rtol=1e-9)
    np.testing.assert_allclose(saved.eigenvalues, np.linalg.eigvalsh(covariance)[::-1], rtol=1e-9)
    assert not os.path.exists(tmp_path / "out" / "stats.npz.tmp.npz")


def test_kept_originals_have_a_paper_sized_mean_image(tmp_path):
    root = fx.image_folder(tmp_path / "in", classes=("n01",), per_class=2, size=(70, 90))
    convert.convert("imagefolder", root, str(tmp_path / "out"), num_shards=1, num_workers=1,
                    resize=0, stats_size=32, stream=io.StringIO())
    saved = stats.load_stats(tmp_path / "out")
    assert saved.mean_image.shape == (32, 32, 3)
    assert saved.num_pixels == 2 * 70 * 90  # the covariance is over the original pixels
