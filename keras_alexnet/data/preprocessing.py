"""The paper's preprocessing as pure tensor functions (its Sec. 2, the data, and 4.1, augmentation).

Training: a random image_size x image_size patch of the stored 256x256 image
(only that window is decoded), the matching patch of the mean image subtracted,
a horizontal flip with probability 1/2, and PCA lighting noise. Evaluation: the
centre patch, or the ten patches (four corners and centre, and their mirror
images). Values stay on the 0..255 scale, centred by the mean image. PCA
lighting scales a_i by the components' standard deviations, as the authors'
code did (see pca_lighting).

The stored size R is the mean image's side (make_tfrecords' --resize, 256 by
default; 256 without statistics). Stored images that are R x R squares are
cropped directly. Anything else (`--resize 0` data, another converter's
original-size images, squares of another size such as 400x400) first gets the
paper's treatment as make_tfrecords gives it: shorter side to R with Pillow's
bicubic (resize_shorter_side_pillow_bicubic, the one resize the statistics and
the export's graph use too), central R x R square. So the mean image always
covers the canvas the crops come from, at the same scale.

Off by default, for the usual modern variant: normalization='channel'
(per-channel mean/std from the statistics) and crop='inception' (random
8%-100% area, 3/4-4/3 aspect, resized to image_size). For the study's test of
Sec. 4.1 ("without this scheme, our network suffers from substantial overfitting"):
crop='centre' (the evaluation's central patch, no random crop) with flip=False.

Randomness is stateless: each function that draws takes a seed [2] tensor, so
a seeded pipeline is reproducible and the functions give the same result
eagerly and inside Dataset.map.
"""
import numpy as np
import tensorflow as tf

PAPER_SIZE = 256  # stored side the paper crops from
LIGHTING_STD = 0.1  # the paper's a_i ~ N(0, 0.1^2)
# ImageNet per-channel mean/std on the 0..255 scale, for normalization='channel' without statistics.
IMAGENET_CHANNEL_MEAN = (123.675, 116.28, 103.53)
IMAGENET_CHANNEL_STD = (58.395, 57.12, 57.375)
# The accurate integer IDCT decodes exactly the pixels Pillow (make_tfrecords) decodes, so
# the mean image and PCA are of the very pixels training sees; TensorFlow's default
# (INTEGER_FAST) is darker by ~0.8 levels on average and off by up to 7.
DCT_METHOD = "INTEGER_ACCURATE"
# make_tfrecords' Pillow filter (Image.BICUBIC): Keys a=-0.5, which tf.image.resize's bicubic is.
RESIZE_METHOD = "bicubic"


def _seeds(seed, n):
    """n independent stateless seeds from one [2] seed."""
    return tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), n)


def _is_jpeg(image_bytes):
    return tf.equal(tf.strings.substr(image_bytes, 0, 3), b"\xff\xd8\xff")


def _decode_any(image_bytes):
    """uint8 [H, W, 3] of a PNG, GIF (its first frame), BMP or WebP: records of converters
    other than bin/make_tfrecords, which writes JPEGs only."""
    image = tf.io.decode_image(image_bytes, channels=3, dtype=tf.uint8, expand_animations=False)
    return tf.ensure_shape(image, [None, None, 3])


def _decode(image_bytes, window=None):
    """uint8 [H, W, 3]; only the window [top, left, height, width] when given.

    A JPEG (every record bin/make_tfrecords writes) decodes only its window; any other
    format TensorFlow reads is decoded whole, then cropped.
    """
    if window is None:
        return tf.cond(_is_jpeg(image_bytes), lambda: tf.image.decode_jpeg(
            image_bytes, channels=3, dct_method=DCT_METHOD), lambda: _decode_any(image_bytes))

    def other():
        return _decode_any(image_bytes)[window[0]:window[0] + window[2],
                                        window[1]:window[1] + window[3]]
    return tf.cond(_is_jpeg(image_bytes), lambda: tf.image.decode_and_crop_jpeg(
        image_bytes, window, channels=3, dct_method=DCT_METHOD), other)


def image_shape(image_bytes):
    """int32 [3] (height, width, channels) of an encoded image: a JPEG's from its header."""
    return tf.cond(_is_jpeg(image_bytes), lambda: tf.image.extract_jpeg_shape(image_bytes),
                   lambda: tf.shape(_decode_any(image_bytes)))


def _canvas(image_bytes, image_size, paper_size):
    """(side of the square canvas crops come from, whether it is the stored image itself).

    The canvas is paper_size (the stored size, the mean image's side) square, or
    image_size if that is larger. Only an image of exactly that size is the canvas itself;
    any other (a 400x400 original too) is resized to it first.
    """
    shape = image_shape(image_bytes)
    h, w = shape[0], shape[1]
    side = tf.maximum(tf.constant(paper_size, tf.int32), tf.constant(image_size, tf.int32))
    direct = tf.logical_and(tf.equal(h, w), tf.equal(h, side))
    return side, direct


def decode_canvas(image_bytes, image_size=227, paper_size=PAPER_SIZE):
    """The whole square canvas, float32 [C, C, 3]: the stored image, or its paper resize."""
    side, direct = _canvas(image_bytes, image_size, paper_size)

    def resized():
        image = _decode(image_bytes)
        return crop_centre(resize_shorter_side_pillow_bicubic(image, side), side)

    return tf.cond(direct, lambda: tf.cast(_decode(image_bytes), tf.float32), resized)


def scaled_size(height, width, size):
    """(new_height, new_width) with the shorter side `size` and the aspect ratio kept.

    As the writer: longer side round(side * size / shorter), half to even like
    Python's round(), and never below size.
    """
    height, width = tf.cast(height, tf.float64), tf.cast(width, tf.float64)
    scale = tf.cast(size, tf.float64) / tf.minimum(height, width)
    new_height = tf.maximum(tf.cast(tf.round(height * scale), tf.int32), size)
    new_width = tf.maximum(tf.cast(tf.round(width * scale), tf.int32), size)
    return new_height, new_width


def _round_to_uint8_range(image):
    # Pillow's 8-bit resampling rounds half up and clips after each pass.
    return tf.clip_by_value(tf.floor(image + 0.5), 0.0, 255.0)


def resize_shorter_side_pillow_bicubic(image, size, method=RESIZE_METHOD):
    """float32 [h, w, 3] with integer values 0..255, shorter side `size`, as Pillow's bicubic gives.

    The one resize of original images: make_tfrecords' (Pillow, Image.BICUBIC, for the
    stored images and the statistics), reproduced in TensorFlow ops for the input
    pipeline's non-stored images and the export's graph. Two passes (width, then
    height) with rounding in between, as Pillow's resample does; Keys a=-0.5 with
    antialiasing. An image whose shorter side already is `size` passes through
    unchanged, as in Pillow. Not reproduced: Pillow's box reduction first for
    downscales of 6x or more (the writer's reducing_gap=3), and its fixed-point filter
    weights (+-1 level on ~0.02% of values).
    """
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    size = tf.cast(size, tf.int32)

    def resize():
        new_height, new_width = scaled_size(height, width, size)
        # At scale 1 the Keys kernel is the identity: each pass changes one axis only.
        wide = tf.image.resize(tf.cast(image, tf.float32), tf.stack([height, new_width]),
                               method=method, antialias=True)
        wide = _round_to_uint8_range(wide)
        return _round_to_uint8_range(
            tf.image.resize(wide, tf.stack([new_height, new_width]), method=method,
                            antialias=True))

    return tf.cond(tf.equal(tf.minimum(height, width), size), lambda: tf.cast(image, tf.float32),
                   resize)


def crop_centre(image, size):
    """The central size x size window of a decoded [H, W, C] (offsets rounded down, as make_tfrecords).

    The one central crop: the input pipeline's and the export's graph's.
    """
    shape = tf.shape(image)
    top, left = (shape[0] - size) // 2, (shape[1] - size) // 2
    crop = image[top:top + size, left:left + size, :]
    static = tf.get_static_value(size)  # a tensor when the canvas side is data-dependent
    return crop if static is None else tf.ensure_shape(crop, [int(static), int(static), None])


def decode_window(image_bytes, top, left, image_size, paper_size=PAPER_SIZE):
    """float32 [S, S, 3] patch at (top, left) of the canvas, decoding only the window if possible."""
    _, direct = _canvas(image_bytes, image_size, paper_size)
    window = tf.stack([top, left, image_size, image_size])

    def from_canvas():
        return decode_canvas(image_bytes, image_size, paper_size)[
            top:top + image_size, left:left + image_size]

    patch = tf.cond(direct, lambda: tf.cast(_decode(image_bytes, window), tf.float32), from_canvas)
    return tf.ensure_shape(patch, [image_size, image_size, 3])


def mean_window(mean_image, canvas_side, top, left, height, width):
    """The patch of the mean image covering the same place as the canvas window, [S, S, 3]."""
    mean_image = tf.convert_to_tensor(mean_image, tf.float32)
    mean = tf.cond(tf.equal(tf.shape(mean_image)[0], canvas_side), lambda: mean_image,
                   lambda: tf.image.resize(mean_image, tf.stack([canvas_side, canvas_side])))
    return mean[top:top + height, left:left + width]


def random_flip(image, seed):
    """Left-right mirror with probability 1/2."""
    return tf.image.stateless_random_flip_left_right(image, seed)


def pca_lighting(image, eigenvalues, eigenvectors, seed, std=LIGHTING_STD):
    """Adds [p1 p2 p3][a1 s1, a2 s2, a3 s3]^T to every pixel, a_i ~ N(0, std^2), s_i = sqrt(l_i).

    eigenvalues l_i are the variances of the 0..255 RGB pixels along p_i (stats.npz). The
    paper prints a_i * l_i, but on the 0..255 scale that would shift colours by ~1,400 levels
    (l_1 ~ 14,000 on ImageNet); the authors' cuda-convnet2 multiplies by the components'
    standard deviations (`color_stdevs`), which gives shifts of ~12 levels and scales with
    the data. We follow the code that produced the published numbers.
    """
    alpha = tf.random.stateless_normal([3], seed, stddev=std)
    stddevs = tf.sqrt(tf.maximum(tf.convert_to_tensor(eigenvalues, tf.float32), 0.0))
    eigenvectors = tf.convert_to_tensor(eigenvectors, tf.float32)
    return image + tf.linalg.matvec(eigenvectors, alpha * stddevs)


def subtract_mean(image, mean_image):
    """image - mean_image (the matching patch, same shape); the paper's only normalization."""
    return image - tf.convert_to_tensor(mean_image, tf.float32)


def normalize_channels(image, mean=IMAGENET_CHANNEL_MEAN, std=IMAGENET_CHANNEL_STD):
    return (image - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


def _stats_parts(stats, stored_size=None):
    """(mean image or None, stored size): the mean image's side, or stored_size, or 256."""
    if stats is None:
        return None, int(stored_size or PAPER_SIZE)
    side = int(stats.mean_image.shape[0])
    if stored_size and int(stored_size) != side:
        raise ValueError(f"stored_size={stored_size} differs from the mean image's side {side}")
    return np.asarray(stats.mean_image, np.float32), side


def _inception_window(image_bytes, seed):
    shape = image_shape(image_bytes)
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]), seed=seed,
        min_object_covered=0.1, aspect_ratio_range=(3 / 4, 4 / 3), area_range=(0.08, 1.0),
        max_attempts=10, use_image_if_no_bounding_boxes=True)
    return shape, begin[0], begin[1], size[0], size[1]


def random_crop(image_bytes, seed, image_size=227, mean_image=None, crop="paper",
                paper_size=PAPER_SIZE):
    """(patch float32 [S, S, 3], matching mean-image patch or zeros) for training."""
    if crop == "inception":
        shape, top, left, height, width = _inception_window(image_bytes, seed)
        window = tf.stack([top, left, height, width])
        patch = tf.image.resize(_decode(image_bytes, window), [image_size, image_size])
        if mean_image is None:
            return patch, tf.zeros_like(patch)
        # The same window of the mean image, sampled straight at S x S: resizing the
        # whole mean image to this image's size first would cost a full resize per example.
        h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
        top, left, height, width = (tf.cast(v, tf.float32) for v in (top, left, height, width))
        box = tf.stack([top / h, left / w, (top + height) / h, (left + width) / w])
        mean = tf.image.crop_and_resize(tf.convert_to_tensor(mean_image, tf.float32)[None],
                                        box[None], [0], [image_size, image_size])
        return patch, mean[0]
    if crop == "centre":  # no random crop: the patch evaluation uses (Sec. 4.1 without it)
        return decode_centre_patch(image_bytes, image_size, mean_image, paper_size)
    if crop != "paper":
        raise ValueError(f"crop={crop!r}: expected 'paper', 'inception' or 'centre'")
    side, _ = _canvas(image_bytes, image_size, paper_size)
    offsets = tf.random.stateless_uniform([2], seed, 0, side - image_size + 1, tf.int32)
    patch = decode_window(image_bytes, offsets[0], offsets[1], image_size, paper_size)
    if mean_image is None:
        return patch, tf.zeros_like(patch)
    return patch, mean_window(mean_image, side, offsets[0], offsets[1], image_size, image_size)


def _normalize(image, stats, normalization):
    if normalization == "channel":
        if stats is None:
            return normalize_channels(image)
        return normalize_channels(image, stats.channel_mean.astype(np.float32),
                                  stats.channel_std.astype(np.float32))
    if normalization != "mean_image":
        raise ValueError(f"normalization={normalization!r}: expected 'mean_image' or 'channel'")
    return image


def preprocess_for_train(image_bytes, stats=None, *, seed=None, image_size=227, crop="paper",
                         normalization="mean_image", lighting_std=LIGHTING_STD, flip=True,
                         stored_size=None):
    """JPEG bytes -> float32 [S, S, 3]: crop, mean patch subtracted, flip, PCA lighting.

    stats: a stats.DatasetStats (mean image, PCA) or None (no mean, no lighting).
    seed: int [2] stateless seed, the same seed giving the same result; None draws one.
    stored_size: the side of the stored squares; by default the mean image's (256
    without statistics). Other images are resized to it first.
    """
    if seed is None:
        seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int64)
    crop_seed, flip_seed, light_seed = tf.unstack(_seeds(seed, 3))
    mean_image, paper_size = _stats_parts(stats, stored_size)
    use_mean = normalization == "mean_image" and mean_image is not None
    patch, mean = random_crop(image_bytes, crop_seed, image_size,
                              mean_image if use_mean else None, crop, paper_size)
    image = patch - mean  # mean first: the flip then mirrors the matching mean too
    if flip:
        image = random_flip(image, flip_seed)
    if stats is not None and lighting_std:
        image = pca_lighting(image, stats.eigenvalues, stats.eigenvectors, light_seed, lighting_std)
    return _normalize(image, stats, normalization)


def decode_centre_patch(image_bytes, image_size=227, mean_image=None, paper_size=PAPER_SIZE):
    """(the centre patch [S, S, 3] decoded from a stored record's bytes, only that window; its
    mean-image patch, or zeros). crop_centre crops an image already decoded."""
    side, _ = _canvas(image_bytes, image_size, paper_size)
    top = (side - image_size) // 2
    patch = decode_window(image_bytes, top, top, image_size, paper_size)
    if mean_image is None:
        return patch, tf.zeros_like(patch)
    return patch, mean_window(mean_image, side, top, top, image_size, image_size)


def ten_crops(image, size):
    """[10, size, size, C]: the four corners and the centre of [H, W, C], then the same five mirrored.

    The paper's ten patches: the one implementation, used by the input pipeline's
    evaluation and by the export's ten_crop signature.
    """
    shape = tf.shape(image)
    bottom, right = shape[0] - size, shape[1] - size
    offsets = ((0, 0), (0, right), (bottom, 0), (bottom, right), (bottom // 2, right // 2))
    crops = tf.stack([image[t:t + size, l:l + size, :] for t, l in offsets])
    crops = tf.ensure_shape(crops, [5, size, size, None])
    return tf.concat([crops, tf.reverse(crops, axis=[2])], axis=0)


def preprocess_for_eval(image_bytes, stats=None, *, image_size=227, normalization="mean_image",
                        ten_crop=False, stored_size=None):
    """JPEG bytes -> float32 [S, S, 3] centre patch, or [10, S, S, 3] with ten_crop.

    stored_size: as in preprocess_for_train.
    """
    mean_image, paper_size = _stats_parts(stats, stored_size)
    use_mean = normalization == "mean_image" and mean_image is not None
    if ten_crop:
        canvas = decode_canvas(image_bytes, image_size, paper_size)
        if use_mean:
            side = tf.shape(canvas)[0]
            canvas -= mean_window(mean_image, side, 0, 0, side, side)
        return _normalize(ten_crops(canvas, image_size), stats, normalization)
    patch, mean = decode_centre_patch(image_bytes, image_size, mean_image if use_mean else None, paper_size)
    return _normalize(patch - mean, stats, normalization)
