"""The paper's crops, flip, PCA lighting, mean image and ten crops; eagerly and inside Dataset.map."""
import numpy as np
import pytest
import tensorflow as tf

import fixtures as fx
from keras_alexnet.data import preprocessing as pp
from keras_alexnet.data.stats import DatasetStats


def jpeg(h, w, seed=0):
    return tf.constant(fx.encode(fx.picture(h, w, seed)))


def decoded(image_bytes):
    return tf.io.decode_jpeg(image_bytes, channels=3, dct_method=pp.DCT_METHOD).numpy().astype(np.float32)


def make_stats(mean_image, eigenvalues=(3.0, 2.0, 1.0), eigenvectors=np.eye(3)):
    return DatasetStats(np.asarray(mean_image, np.float64), np.eye(3) * 50.0,
                        np.asarray(eigenvalues, np.float64), np.asarray(eigenvectors, np.float64), 1, 1)


SEED = tf.constant([3, 4], tf.int64)


@pytest.mark.parametrize("stored,size", [((256, 256), 227), ((80, 80), 67), ((144, 144), 128),
                                         ((90, 120), 67), ((60, 60), 67)])
def test_train_and_eval_crop_sizes(stored, size):
    image_bytes = jpeg(*stored)
    assert pp.preprocess_for_train(image_bytes, seed=SEED, image_size=size).shape == (size, size, 3)
    assert pp.preprocess_for_eval(image_bytes, image_size=size).shape == (size, size, 3)
    ten = pp.preprocess_for_eval(image_bytes, image_size=size, ten_crop=True)
    assert ten.shape == (10, size, size, 3)


def _window_offset(image, patch):
    """Offset of the window of image closest to patch, and the mean pixel difference there.

    Decoding only a window can differ from the full decode by a level or two along the
    window's left edge (chroma upsampling), so the match is near, not exact.
    """
    size = patch.shape[0]
    errors = {(t, l): np.abs(image[t:t + size, l:l + size] - patch).mean()
              for t in range(image.shape[0] - size + 1) for l in range(image.shape[1] - size + 1)}
    best = min(errors, key=errors.get)
    return best, errors[best]


def test_random_crop_is_a_window_of_the_stored_image_and_varies():
    image_bytes = jpeg(80, 80)
    full = decoded(image_bytes)
    offsets = set()
    for k in range(12):
        patch = pp.preprocess_for_train(image_bytes, seed=[k, 0], image_size=67, flip=False,
                                        stored_size=80).numpy()
        offset, error = _window_offset(full, patch)
        assert error < 0.1, "the training patch is not a window of the decoded image"
        offsets.add(offset)
    assert len(offsets) > 6  # 14 x 14 possible offsets: random, not fixed


def test_mean_patch_matches_the_crop():
    """Subtracting the image itself as the mean image leaves zeros: the mean patch is aligned."""
    image_bytes = jpeg(80, 80, seed=2)
    stats = make_stats(decoded(image_bytes))
    for k in range(5):
        out = pp.preprocess_for_train(image_bytes, stats, seed=[k, 9], image_size=67,
                                      lighting_std=0.0)
        # Flipped or not; window decoding may differ by a level or two at the left edge.
        assert np.abs(out.numpy()).max() <= 3 and np.abs(out.numpy()).mean() < 0.05
    centre = pp.preprocess_for_eval(image_bytes, stats, image_size=67).numpy()
    assert np.abs(centre).max() <= 3 and np.abs(centre).mean() < 0.05
    np.testing.assert_allclose(pp.preprocess_for_eval(image_bytes, stats, image_size=67,
                                                      ten_crop=True).numpy(), 0.0, atol=1e-4)


def test_an_image_of_another_size_than_the_mean_image_is_resized_to_it():
    """The mean image's side is the stored size: an 80x80 image with a 160x160 mean image is
    resized to 160 (as make_tfrecords would have), and the mean patch covers the same place."""
    image_bytes = jpeg(80, 80, seed=3)
    big_mean = tf.image.resize(decoded(image_bytes), [160, 160], antialias=True).numpy()
    out = pp.preprocess_for_train(image_bytes, make_stats(big_mean), seed=SEED, image_size=67,
                                  lighting_std=0.0)
    assert np.abs(out.numpy()).mean() < 3.0  # vs ~60 for an unrelated mean
    shifted = pp.preprocess_for_train(image_bytes, make_stats(big_mean[::-1]), seed=SEED, image_size=67,
                                      lighting_std=0.0)
    assert np.abs(shifted.numpy()).mean() > 10.0


def test_centre_crop_and_non_square_paper_resize():
    image_bytes = jpeg(80, 80)
    centre = pp.preprocess_for_eval(image_bytes, image_size=66, stored_size=80).numpy()
    assert _window_offset(decoded(image_bytes), centre)[0] == (7, 7)
    wide = np.zeros((40, 80, 3), np.uint8)
    wide[:, 20:60] = 255  # white central square, black sides
    out = pp.preprocess_for_eval(tf.constant(fx.encode(wide)), image_size=67).numpy()
    assert out.shape == (67, 67, 3) and out.min() > 200  # shorter side to 256, centre, crop


def test_flip_is_a_mirror_with_probability_half():
    image = tf.reshape(tf.range(2 * 3 * 3, dtype=tf.float32), [2, 3, 3])
    flips = 0
    for k in range(200):
        out = pp.random_flip(image, [k, 1]).numpy()
        if np.array_equal(out, image.numpy()[:, ::-1]):
            flips += 1
        else:
            np.testing.assert_array_equal(out, image.numpy())
    assert 70 < flips < 130


def test_pca_lighting_on_imagenet_like_statistics_shifts_colours_a_little():
    # ImageNet's RGB covariance on the 0..255 scale has eigenvalues ~ (14000, 1200, 290).
    eigenvalues, eigenvectors = np.array([14000.0, 1200.0, 290.0]), np.eye(3)
    shifts = np.stack([pp.pca_lighting(tf.zeros([1, 1, 3]), eigenvalues, eigenvectors,
                                       [k, 3]).numpy()[0, 0] for k in range(300)])
    np.testing.assert_allclose(shifts.std(axis=0), 0.1 * np.sqrt(eigenvalues), rtol=0.2)
    assert np.abs(shifts).max() < 60  # a colour cast, never a wash-out of the 0..255 range


def test_pca_lighting_magnitude_and_direction():
    eigenvalues = np.array([100.0, 10.0, 1.0])
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    alphas = []
    for k in range(500):
        out = pp.pca_lighting(tf.zeros([4, 5, 3]), eigenvalues, q, [k, 7]).numpy()
        assert np.allclose(out, out[0, 0])  # the same RGB shift on every pixel
        alphas.append(q.T @ out[0, 0] / np.sqrt(eigenvalues))  # back to a_i
    std = np.std(alphas, axis=0)
    np.testing.assert_allclose(std, 0.1, rtol=0.15)  # a_i ~ N(0, 0.1^2)
    np.testing.assert_allclose(np.mean(alphas, axis=0), 0.0, atol=0.02)


def test_ten_crops_are_corners_centre_and_mirrors():
    image = tf.reshape(tf.range(7 * 7 * 3, dtype=tf.float32), [7, 7, 3])
    crops = pp.ten_crops(image, 4).numpy()
    full = image.numpy()
    expected = [full[:4, :4], full[:4, 3:], full[3:, :4], full[3:, 3:], full[1:5, 1:5]]
    for i, e in enumerate(expected):
        np.testing.assert_array_equal(crops[i], e)
        np.testing.assert_array_equal(crops[i + 5], e[:, ::-1])


def test_channel_normalization_and_inception_crop():
    image_bytes = jpeg(120, 90)
    out = pp.preprocess_for_train(image_bytes, seed=SEED, image_size=67, crop="inception",
                                  normalization="channel")
    assert out.shape == (67, 67, 3)
    assert abs(float(tf.reduce_mean(out))) < 3.0  # roughly standardized
    pixel = tf.constant([[[123.675, 116.28, 103.53]]])
    np.testing.assert_allclose(pp.normalize_channels(pixel).numpy(), 0.0, atol=1e-5)
    with pytest.raises(ValueError, match="crop="):
        pp.preprocess_for_train(image_bytes, seed=SEED, crop="bogus")


def test_without_a_seed_each_call_draws_its_own():
    image_bytes = jpeg(96, 96)
    outputs = [pp.preprocess_for_train(image_bytes, image_size=67).numpy() for _ in range(4)]
    assert any(not np.array_equal(outputs[0], o) for o in outputs[1:])


def test_same_seed_same_output_different_seed_different():
    image_bytes, stats = jpeg(96, 96), make_stats(np.full((96, 96, 3), 100.0))
    a = pp.preprocess_for_train(image_bytes, stats, seed=[1, 2], image_size=67)
    b = pp.preprocess_for_train(image_bytes, stats, seed=[1, 2], image_size=67)
    c = pp.preprocess_for_train(image_bytes, stats, seed=[1, 3], image_size=67)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(a.numpy(), c.numpy())


STATS = make_stats(np.random.default_rng(1).uniform(0, 255, (80, 80, 3)))
FUNCTIONS = {
    "train_paper": lambda b, s: pp.preprocess_for_train(b, STATS, seed=s, image_size=67),
    "train_stored_non_square": lambda b, s: pp.preprocess_for_train(b[1], STATS, seed=s,
                                                                    image_size=67),
    "train_inception_channel": lambda b, s: pp.preprocess_for_train(
        b, STATS, seed=s, image_size=67, crop="inception", normalization="channel"),
    "eval_centre": lambda b, s: pp.preprocess_for_eval(b, STATS, image_size=67),
    "eval_ten_crop": lambda b, s: pp.preprocess_for_eval(b, STATS, image_size=67, ten_crop=True),
    "decode_window": lambda b, s: pp.decode_window(b, 3, 5, 67),
    "random_flip": lambda b, s: pp.random_flip(pp.decode_window(b, 0, 0, 67), s),
    "pca_lighting": lambda b, s: pp.pca_lighting(tf.zeros([2, 2, 3]), [3.0, 2.0, 1.0], np.eye(3), s),
    "subtract_mean": lambda b, s: pp.subtract_mean(pp.decode_window(b, 0, 0, 67),
                                                   STATS.mean_image[:67, :67]),
    "ten_crops": lambda b, s: pp.ten_crops(pp.decode_canvas(b, 67), 67),
    "normalize_channels": lambda b, s: pp.normalize_channels(pp.decode_window(b, 1, 1, 67)),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_eager_equals_dataset_map(name):
    fn = FUNCTIONS[name]
    square, non_square = jpeg(80, 80, seed=5), jpeg(90, 120, seed=6)
    if name == "train_stored_non_square":
        args = ((square, non_square), tf.constant([5, 6], tf.int64))
    else:
        args = (square, tf.constant([5, 6], tf.int64))
    eager = fn(*args).numpy()
    in_map = next(iter(tf.data.Dataset.from_tensors(args).map(fn))).numpy()
    np.testing.assert_array_equal(eager, in_map)


@pytest.mark.parametrize("seed", [(3, 4), (5, 6), (7, 8)])
def test_inception_crop_subtracts_the_same_window_of_the_mean_image(seed):
    seed = tf.constant(seed, tf.int64)
    image_bytes = jpeg(120, 90)
    ramp = np.broadcast_to(np.linspace(0, 255, 80, dtype=np.float32)[None, :, None], (80, 80, 3))
    ramp = ramp + np.linspace(0, 40, 80, dtype=np.float32)[:, None, None]
    _, mean_patch = pp.random_crop(image_bytes, seed, image_size=67, mean_image=ramp,
                                   crop="inception")
    # Reference: the mean image at the photo's size, cut to the window, resized to 67.
    shape, top, left, height, width = pp._inception_window(image_bytes, seed)
    full = tf.image.resize(ramp, shape[:2])
    want = tf.image.resize(full[top:top + height, left:left + width], [67, 67])
    assert mean_patch.shape == (67, 67, 3)
    np.testing.assert_allclose(mean_patch.numpy(), want.numpy(), atol=6.0)
    assert float(tf.reduce_max(mean_patch) - tf.reduce_min(mean_patch)) > 10  # not a constant


def test_only_squares_of_the_stored_size_are_cropped_as_they_are():
    """A square of another side (a 400x400 original, or 80x80 with 96x96 statistics) is
    resized to the stored size first; one of exactly that size is the canvas itself."""
    stats = make_stats(np.full((96, 96, 3), 100.0))
    for side in (80, 120):
        image_bytes = jpeg(side, side, seed=4)
        canvas = pp.decode_canvas(image_bytes, 67, paper_size=96)
        assert canvas.shape == (96, 96, 3)
        resized = pp.resize_shorter_side_pillow_bicubic(decoded(image_bytes), 96).numpy()
        np.testing.assert_array_equal(canvas.numpy(), resized)
        centre = pp.preprocess_for_eval(image_bytes, stats, image_size=67).numpy() + 100.0
        np.testing.assert_allclose(centre, resized[14:81, 14:81], atol=1e-4)
    stored = jpeg(96, 96, seed=5)
    np.testing.assert_array_equal(pp.decode_canvas(stored, 67, paper_size=96).numpy(), decoded(stored))
    with pytest.raises(ValueError, match="stored_size=80 differs from the mean image's side 96"):
        pp.preprocess_for_eval(stored, stats, image_size=67, stored_size=80)
