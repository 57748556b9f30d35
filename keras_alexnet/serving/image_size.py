"""The serving graph's size check: each image's size read from its header, bounded before decoding.

data/image_limits.py holds the bounds and says why; make_tfrecords applies the
same ones with Pillow. Here the header gives (height, width) without decoding:

    JPEG  tf.io.extract_jpeg_shape (the SOF marker), then the 1/2, 1/4 or 1/8 DCT
          scale the graph decodes at (preprocessing._jpeg_draft_scale)
    PNG   IHDR width and height, big-endian, bytes 16..24
    GIF   the logical screen, little-endian, bytes 6..10 (the one frame decoded)
    BMP   the info header at byte 14: 16-bit sizes in the old 12-byte header, else
          32-bit, a negative height meaning top-down
    WebP  the VP8X canvas, or the VP8L / VP8 bitstream header

A request holding an image over a bound fails as a whole with INVALID_ARGUMENT
naming the first such entry: "image_bytes[3]: 1x60000 pixels, resized to
256x15360000 ... exceeds the limit of 4194304 resized pixels".
"""
import tensorflow as tf

from keras_alexnet.data import image_limits
from keras_alexnet.serving import preprocessing as prep

_HEADER_BYTES = 32


def _bytes_at(header, offset, count):
    """int64 [B, count]: the header bytes offset..offset+count of each image."""
    raw = tf.io.decode_raw(tf.strings.substr(header, offset, count), tf.uint8, fixed_length=count)
    return tf.cast(raw, tf.int64)


def _little(header, offset, count):
    values = _bytes_at(header, offset, count)
    return tf.add_n([values[:, i] * (256 ** i) for i in range(count)])


def _big(header, offset, count):
    values = _bytes_at(header, offset, count)
    return tf.add_n([values[:, i] * (256 ** (count - 1 - i)) for i in range(count)])


def _signed32(value):
    return tf.where(value >= 2 ** 31, value - 2 ** 32, value)


def _bmp_size(header):
    core = tf.equal(_little(header, 14, 4), 12)  # BITMAPCOREHEADER: 16-bit sizes
    width = tf.where(core, _little(header, 18, 2), tf.abs(_signed32(_little(header, 18, 4))))
    height = tf.where(core, _little(header, 20, 2), tf.abs(_signed32(_little(header, 22, 4))))
    return height, width


def _webp_size(header):
    chunk = tf.strings.substr(header, 12, 4)
    lossless = _little(header, 21, 4)
    sizes = {  # chunk: (height, width)
        b"VP8X": (_little(header, 27, 3) + 1, _little(header, 24, 3) + 1),
        b"VP8L": ((lossless // 2 ** 14) % 2 ** 14 + 1, lossless % 2 ** 14 + 1),
        b"VP8 ": (_little(header, 28, 2) % 2 ** 14, _little(header, 26, 2) % 2 ** 14),
    }
    height = width = tf.zeros_like(lossless)
    for name, (h, w) in sizes.items():
        height = tf.where(tf.equal(chunk, name), h, height)
        width = tf.where(tf.equal(chunk, name), w, width)
    return height, width


def _header_sizes(image_bytes):
    """int64 [B], [B]: height and width of each non-JPEG image from its header (0 if unknown)."""
    header = tf.strings.substr(tf.strings.join([image_bytes, tf.constant(b"\0" * _HEADER_BYTES)]),
                               0, _HEADER_BYTES)
    magic = lambda offset, text: tf.equal(tf.strings.substr(header, offset, len(text)), text)  # noqa: E731
    formats = [
        (magic(0, b"\x89PNG"), (_big(header, 20, 4), _big(header, 16, 4))),
        (magic(0, b"GIF8"), (_little(header, 8, 2), _little(header, 6, 2))),
        (magic(0, b"BM"), _bmp_size(header)),
        (magic(8, b"WEBP"), _webp_size(header)),
    ]
    height = width = tf.zeros(tf.shape(image_bytes), tf.int64)
    for is_format, (h, w) in reversed(formats):
        height, width = tf.where(is_format, h, height), tf.where(is_format, w, width)
    return height, width


def _jpeg_decoded_size(image_bytes, resize, draft):
    """int64 [2]: the (height, width) the graph decodes a JPEG at; [0, 0] for other formats."""
    def size():
        shape = tf.cast(tf.io.extract_jpeg_shape(image_bytes), tf.int64)
        if not draft:
            return shape[:2]
        divisor = tf.cast(2 ** prep._jpeg_draft_scale(image_bytes, resize), tf.int64)
        return -(-shape[:2] // divisor)  # libjpeg rounds scaled sizes up

    return tf.cond(tf.io.is_jpeg(image_bytes), size, lambda: tf.zeros([2], tf.int64))


def decoded_sizes(image_bytes, resize, draft=True):
    """int64 [B, 2]: (height, width) of the pixels the graph decodes for each image.

    draft: JPEGs decoded at a reduced DCT scale toward the resize (the graph does so
    unless the export reproduces `--resize 0` data). 0 x 0 for a format without one.
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    jpeg = tf.map_fn(lambda b: _jpeg_decoded_size(b, resize, draft), image_bytes,
                     fn_output_signature=tf.TensorSpec([2], tf.int64))
    height, width = _header_sizes(image_bytes)
    is_jpeg = tf.reshape(tf.reduce_any(jpeg > 0, axis=1), [-1])
    return tf.where(is_jpeg[:, None], jpeg, tf.stack([height, width], axis=1))


def _resized_pixels(height, width, resize):
    """As preprocessing.scaled_size and image_limits.resized_size: the resize target's pixels."""
    new_height, new_width = prep.scaled_size(tf.maximum(height, 1), tf.maximum(width, 1), resize)
    return tf.cast(new_height, tf.int64) * tf.cast(new_width, tf.int64), new_height, new_width


def _first(bad):
    """The index of the first True (a sentinel keeps argmax defined on an empty batch)."""
    return tf.argmax(tf.concat([tf.cast(bad, tf.int32), [1]], 0), output_type=tf.int32)


def check_sizes(image_bytes, resize, draft=True):
    """image_bytes, after asserting that no image passes image_limits' bounds (see the docstring)."""
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    sizes = decoded_sizes(image_bytes, resize, draft)
    height, width = sizes[:, 0], sizes[:, 1]
    resized, new_height, new_width = _resized_pixels(height, width, resize)
    too_many = height * width > image_limits.MAX_DECODED_PIXELS
    too_long = tf.logical_and(tf.logical_not(too_many), resized > image_limits.MAX_RESIZED_PIXELS)
    checks = []
    first = _first(too_many)
    checks.append(tf.debugging.Assert(tf.logical_not(tf.reduce_any(too_many)), [tf.strings.format(
        "image_bytes[{}]: {}x{} pixels exceeds the limit of {} decoded pixels",
        [first, _at(width, first), _at(height, first), image_limits.MAX_DECODED_PIXELS])],
        name="check_decoded_size"))
    first = _first(too_long)
    checks.append(tf.debugging.Assert(tf.logical_not(tf.reduce_any(too_long)), [tf.strings.format(
        "image_bytes[{}]: {}x{} pixels, resized to {}x{} for a shorter side of {}, exceeds the "
        "limit of {} resized pixels (aspect ratio too extreme)",
        [first, _at(width, first), _at(height, first), _at(new_width, first),
         _at(new_height, first), resize, image_limits.MAX_RESIZED_PIXELS])],
        name="check_resized_size"))
    with tf.control_dependencies(checks):
        return tf.identity(image_bytes)


def _at(values, index):
    """values[index], or 0 past the end (the empty batch's sentinel index)."""
    return tf.concat([values, tf.zeros([1], values.dtype)], 0)[index]
