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
Only a JPEG of exactly R x R is taken as a stored record; every other image,
square or not, goes through the steps above. The resize is the input
pipeline's own (data/preprocessing.resize_shorter_side_pillow_bicubic), so data
written with `--resize 0` is resized alike in training, evaluation and serving.
Remaining differences are named in `scale_and_center`.

Networks trained elsewhere were not fed such records: config.input.resize='warp'
(Caffe's convert_imageset and classify.py) replaces the shorter-side resize and
central square by `warp` (both sides to R, bilinear, every pixel decoded), and
config.input.jpeg_reencode=False (jpeg_quality 0) drops the re-encode.
"""
import tensorflow as tf

from keras_alexnet.data import layout
# The input pipeline's crop, resize and JPEG decoding (DCT_METHOD, the accurate IDCT, as
# the writer's Pillow decodes): one implementation of each for every path.
from keras_alexnet.data.preprocessing import (  # noqa: F401  (scaled_size: part of this API)
    DCT_METHOD, RESIZE_METHOD, crop_centre, resize_shorter_side_pillow_bicubic, scaled_size)



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
                                                        dct_method=DCT_METHOD)
                for i in range(4)]
    if size is None:
        return branches[0]()
    return tf.switch_case(_jpeg_draft_scale(image_bytes, size), branches)


def _decode_other(image_bytes):
    """PNG/GIF/BMP/WebP as RGB; alpha composited onto white, like the writer's _flatten_alpha.

    Only images with alpha take the float32 path (16 bytes a pixel): an opaque image of
    image_limits' largest size stays within its uint8 pixels.
    """
    image = tf.io.decode_image(image_bytes, channels=0, expand_animations=False, dtype=tf.uint8)
    gray = image[..., :1]
    # Channels 1..4: gray, gray + alpha, RGB, RGBA.
    return tf.switch_case(tf.shape(image)[-1] - 1, [
        lambda: tf.concat([gray, gray, gray], -1),
        lambda: _flatten_alpha(tf.concat([gray, gray, gray], -1), image[..., 1:2]),
        lambda: tf.ensure_shape(image[..., :3], [None, None, 3]),
        lambda: _flatten_alpha(image[..., :3], image[..., 3:])])


def _flatten_alpha(rgb, alpha):
    rgb, alpha = tf.cast(rgb, tf.float32), tf.cast(alpha, tf.float32)
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


def _is_stored(image_bytes, size):
    """Whether the bytes already are what make_tfrecords stores: a size x size JPEG."""
    def square():
        shape = tf.io.extract_jpeg_shape(image_bytes)
        return tf.logical_and(tf.equal(shape[0], size), tf.equal(shape[1], size))

    return tf.cond(tf.io.is_jpeg(image_bytes), square, lambda: tf.constant(False))


SHORTER_SIDE, WARP = "shorter_side", "warp"  # config.input.resize's values


def warp(image, size):
    """float32 [size, size, 3] with integer values 0..255: both sides to size, ignoring the aspect.

    Caffe's resize (convert_imageset for its training LMDB, classify.py at test time):
    OpenCV's bilinear cv::resize with half-pixel centres and no antialiasing, rounded to
    uint8 as Caffe stores it. Unlike the shorter-side resize it keeps the whole picture
    and squeezes it: a 4:3 photo's objects become 25% narrower.
    """
    image = tf.image.resize(tf.cast(image, tf.float32), [size, size], method="bilinear",
                            antialias=False)
    return tf.clip_by_value(tf.floor(image + 0.5), 0.0, 255.0)


def _rewrite(image_bytes, size, draft=True, resize=SHORTER_SIDE):
    """float32 [size, size, 3]: the writer's decode, resize and central square.

    draft: decode large JPEGs at 1/2, 1/4 or 1/8 scale as the writer does with --resize;
    False decodes every pixel, as the input pipeline decodes `--resize 0` records (and
    the writer its statistics' view of them). resize='warp': every pixel decoded (as
    OpenCV does), then warp() to size x size.
    """
    if resize == WARP:
        return warp(decode_rgb(image_bytes), size)
    image = decode_rgb(image_bytes, size if draft else None)
    return crop_centre(resize_shorter_side_pillow_bicubic(image, size), size)


def to_record(image_bytes, size, jpeg_quality=layout.JPEG_QUALITY, resize=SHORTER_SIDE):
    """The JPEG bytes make_tfrecords stores for an image (the bytes themselves if already so)."""
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    return tf.cond(_is_stored(image_bytes, size), lambda: image_bytes, lambda: tf.io.encode_jpeg(
        tf.cast(_rewrite(image_bytes, size, resize=resize), tf.uint8), quality=jpeg_quality))


def scale_and_center(image_bytes, size, jpeg_quality=layout.JPEG_QUALITY, resize=SHORTER_SIDE):
    """float32 [size, size, 3]: the pixels the input pipeline reads for the record of these bytes.

    A JPEG already size x size (a record make_tfrecords wrote) is decoded as the
    pipeline decodes it. Anything else gets the writer's treatment first:
    decode, shorter side to size, central square, and (jpeg_quality > 0) the
    JPEG re-encode. jpeg_quality=0 (data written with --resize 0, which keeps the
    originals): the input pipeline's own treatment of a stored original, the same
    resize on every decoded pixel (no DCT scaling), as the writer's statistics see it.
    A square of another side than size (a 400x400 original) is resized like any other.
    resize='warp' (config.input.resize): both sides to size instead (warp()); with
    jpeg_quality=0 that is Caffe's test-time image: decoded, warped, not re-encoded.

    Not reproduced: Pillow's box reduction of images still 6x larger than size after
    DCT scaling (PNGs with a shorter side >= 6 * size), its fixed-point filter weights
    (+-1 level on ~0.02% of values), the re-encode of a user's size x size JPEG, and
    with jpeg_quality=0 the writer's JPEG re-encode of originals that were not RGB
    JPEGs (grayscale or CMYK JPEGs, PNGs).
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    if not jpeg_quality:
        return tf.cond(_is_stored(image_bytes, size), lambda: _read(image_bytes),
                       lambda: _rewrite(image_bytes, size, draft=False, resize=resize))
    return tf.ensure_shape(_read(to_record(image_bytes, size, jpeg_quality, resize)),
                           [size, size, 3])


def stored_centre_patch(image_bytes, size, image_size, jpeg_quality=layout.JPEG_QUALITY,
                        resize=SHORTER_SIDE):
    """float32 [S, S, 3]: any image's centre patch as training saw it: the image written as
    make_tfrecords stores it (resized to `size`, re-encoded at jpeg_quality), then its centre
    window decoded as the pipeline decodes it (data.preprocessing.decode_centre_patch).

    The pipeline decodes only the window (tf.image.decode_and_crop_jpeg), which
    differs from decode-then-crop by a level or two along some window edges.
    """
    top = (size - image_size) // 2
    window = tf.constant([top, top, image_size, image_size])

    def window_of(record):
        patch = tf.image.decode_and_crop_jpeg(record, window, channels=3,
                                              dct_method=DCT_METHOD)
        return tf.ensure_shape(tf.cast(patch, tf.float32), [image_size, image_size, 3])

    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    if not jpeg_quality:
        # A record of the stored size: its window, as the pipeline decodes it. Any other
        # image is decoded in full and resized, by the pipeline too.
        return tf.cond(_is_stored(image_bytes, size), lambda: window_of(image_bytes),
                       lambda: crop_centre(_rewrite(image_bytes, size, draft=False, resize=resize),
                                           image_size))
    return window_of(to_record(image_bytes, size, jpeg_quality, resize))


def _read(record):
    return tf.cast(tf.io.decode_jpeg(record, channels=3, dct_method=DCT_METHOD),
                   tf.float32)

