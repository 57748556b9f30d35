"""The paper's evaluation preprocessing from encoded bytes, in TensorFlow ops only (for the export).

Training reads images that make_tfrecords already scaled with Pillow (shorter
side 256, central 256x256, re-encoded as JPEG). A served image arrives as the
user's original file, so the export redoes that write-time step in the graph,
step by step as data/shard_writer.convert_image does it:

    JPEG: libjpeg's DCT-domain downscaling by 1, 2, 4 or 8 (Pillow's `draft`),
          integer-accurate IDCT (Pillow's; TensorFlow's default is the fast one)
    PNG:  alpha composited onto white (the writer's _flatten_alpha)
    resize: bicubic (Keys a=-0.5) with antialiasing, horizontal pass first,
          rounded to 0..255 between and after the passes, as Pillow does
    central R x R crop; JPEG re-encode at the writer's quality and decode

and then what the input pipeline does at evaluation: mean subtraction and the
central S x S crop (or the ten crops). R is the mean image's side (256).
Remaining differences are named in `scale_and_center`.
"""
import tensorflow as tf

from keras_alexnet.data import preprocessing
from keras_alexnet.data.preprocessing import central_crop  # the input pipeline's, the one crop

# make_tfrecords' Pillow filter (Image.BICUBIC) and JPEG quality.
RESIZE_METHOD = "bicubic"
WRITER_JPEG_QUALITY = 90
_DCT_METHOD = "INTEGER_ACCURATE"  # = Pillow's JDCT_ISLOW; tf.io.decode_jpeg defaults to IFAST
# How the input pipeline decodes stored JPEGs: the network saw those pixels.
READER_DCT_METHOD = preprocessing.DCT_METHOD


def _jpeg_draft_scale(image_bytes, size):
    """Pillow's draft(): the largest of 1, 2, 4, 8 with both sides still >= the requested size."""
    shape = tf.io.extract_jpeg_shape(image_bytes)
    height, width = shape[0], shape[1]
    short = tf.minimum(height, width)
    requested_w, requested_h = width * size // short, height * size // short
    scale = tf.minimum(width // tf.maximum(requested_w, 1), height // tf.maximum(requested_h, 1))
    return tf.where(scale >= 8, 3, tf.where(scale >= 4, 2, tf.where(scale >= 2, 1, 0)))


def _decode_jpeg(image_bytes, size):
    """JPEG as the writer's Pillow decodes it: DCT scaling toward `size`, accurate IDCT."""
    branches = [lambda ratio=2 ** i: tf.io.decode_jpeg(image_bytes, channels=3, ratio=ratio,
                                                        dct_method=_DCT_METHOD)
                for i in range(4)]
    if size is None:
        return branches[0]()
    return tf.switch_case(_jpeg_draft_scale(image_bytes, size), branches)


def _decode_other(image_bytes):
    """PNG/GIF/BMP/WebP as RGB; alpha composited onto white, like the writer's _flatten_alpha."""
    image = tf.io.decode_image(image_bytes, channels=0, expand_animations=False, dtype=tf.uint8)
    gray, opaque = image[..., :1], tf.fill(tf.shape(image[..., :1]), tf.constant(255, tf.uint8))
    # Channels 1..4: gray, gray + alpha, RGB, RGBA; each made RGBA first.
    rgba = tf.switch_case(tf.shape(image)[-1] - 1, [
        lambda: tf.concat([gray, gray, gray, opaque], -1),
        lambda: tf.concat([gray, gray, gray, image[..., 1:2]], -1),
        lambda: tf.concat([image[..., :3], opaque], -1),
        lambda: tf.ensure_shape(image, [None, None, 4])])
    rgb, alpha = tf.cast(rgba[..., :3], tf.float32), tf.cast(rgba[..., 3:], tf.float32)
    flat = tf.floor((rgb * alpha + 255.0 * (255.0 - alpha)) / 255.0 + 0.5)
    return tf.cast(flat, tf.uint8)


def decode_rgb(image_bytes, size=None):
    """uint8 [H, W, 3] from one encoded image; grayscale, CMYK, palette, alpha become RGB.

    size: the shorter side the image will be resized to; JPEGs much larger are
    decoded at 1/2, 1/4 or 1/8 scale as make_tfrecords does. Bytes that are not
    an image raise InvalidArgumentError naming the problem ("Unknown image file
    format", "Invalid JPEG data", "Input is empty").
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    return tf.cond(tf.io.is_jpeg(image_bytes), lambda: _decode_jpeg(image_bytes, size),
                   lambda: _decode_other(image_bytes))


def scaled_size(height, width, size):
    """(new_height, new_width) with the shorter side `size` and the aspect ratio kept.

    As the writer: longer side round(side * size / shorter), half to even like
    Python's round(), and never below size.
    """
    height, width = tf.cast(height, tf.float64), tf.cast(width, tf.float64)
    scale = size / tf.minimum(height, width)
    new_height = tf.maximum(tf.cast(tf.round(height * scale), tf.int32), size)
    new_width = tf.maximum(tf.cast(tf.round(width * scale), tf.int32), size)
    return new_height, new_width


def _round_to_uint8_range(image):
    # Pillow's 8-bit resampling rounds half up and clips after each pass.
    return tf.clip_by_value(tf.floor(image + 0.5), 0.0, 255.0)


def resize_shorter_side_pillow_bicubic(image, size, method=RESIZE_METHOD):
    """float32 [h, w, 3] with integer values 0..255, shorter side `size`, as Pillow's bicubic gives.

    Two passes (width, then height) with rounding in between, as Pillow's
    resample does. An image whose shorter side already is `size` (a TFRecord
    written by make_tfrecords) passes through unchanged, as in Pillow.
    """
    shape = tf.shape(image)
    height, width = shape[0], shape[1]

    def resize():
        new_height, new_width = scaled_size(height, width, size)
        # At scale 1 the Keys kernel is the identity: each pass changes one axis only.
        wide = tf.image.resize(tf.cast(image, tf.float32), [height, new_width], method=method,
                               antialias=True)
        wide = _round_to_uint8_range(wide)
        return _round_to_uint8_range(
            tf.image.resize(wide, [new_height, new_width], method=method, antialias=True))

    return tf.cond(tf.equal(tf.minimum(height, width), size), lambda: tf.cast(image, tf.float32), resize)


def _is_stored(image_bytes, size):
    """Whether the bytes already are what make_tfrecords stores: a size x size JPEG."""
    def square():
        shape = tf.io.extract_jpeg_shape(image_bytes)
        return tf.logical_and(tf.equal(shape[0], size), tf.equal(shape[1], size))

    return tf.cond(tf.io.is_jpeg(image_bytes), square, lambda: tf.constant(False))


def _rewrite(image_bytes, size):
    """float32 [size, size, 3]: the writer's decode, resize and central square."""
    return central_crop(resize_shorter_side_pillow_bicubic(decode_rgb(image_bytes, size), size), size)


def to_record(image_bytes, size, jpeg_quality=WRITER_JPEG_QUALITY):
    """The JPEG bytes make_tfrecords stores for an image (the bytes themselves if already so)."""
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    return tf.cond(_is_stored(image_bytes, size), lambda: image_bytes, lambda: tf.io.encode_jpeg(
        tf.cast(_rewrite(image_bytes, size), tf.uint8), quality=jpeg_quality))


def scale_and_center(image_bytes, size, jpeg_quality=WRITER_JPEG_QUALITY):
    """float32 [size, size, 3]: the pixels the input pipeline reads for the record of these bytes.

    A JPEG already size x size (a record make_tfrecords wrote) is decoded as the
    pipeline decodes it. Anything else gets the writer's treatment first:
    decode, shorter side to size, central square, and (jpeg_quality > 0) the
    JPEG re-encode. Not reproduced: Pillow's box reduction of images still 6x
    larger than size after DCT scaling (PNGs with a shorter side >= 6 * size),
    its 8-bit reading of 16-bit PNGs, its fixed-point filter weights (+-1 level
    on ~0.02% of values), and the re-encode of a user's size x size JPEG.
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    if not jpeg_quality:
        return tf.cond(_is_stored(image_bytes, size), lambda: _read(image_bytes),
                       lambda: _rewrite(image_bytes, size))
    return tf.ensure_shape(_read(to_record(image_bytes, size, jpeg_quality)), [size, size, 3])


def central_patch(image_bytes, size, image_size, jpeg_quality=WRITER_JPEG_QUALITY):
    """float32 [S, S, 3]: the centre patch, decoded from the record as the pipeline decodes it.

    The pipeline decodes only the window (tf.image.decode_and_crop_jpeg), which
    differs from decode-then-crop by a level or two along some window edges.
    """
    top = (size - image_size) // 2
    if not jpeg_quality:
        return central_crop(scale_and_center(image_bytes, size, 0), image_size)
    window = tf.constant([top, top, image_size, image_size])
    patch = tf.image.decode_and_crop_jpeg(to_record(image_bytes, size, jpeg_quality), window,
                                          channels=3, dct_method=READER_DCT_METHOD)
    return tf.ensure_shape(tf.cast(patch, tf.float32), [image_size, image_size, 3])


def _read(record):
    return tf.cast(tf.io.decode_jpeg(record, channels=3, dct_method=READER_DCT_METHOD),
                   tf.float32)

