"""Encoded images to the network's input: the paper's evaluation preprocessing as a graph.

`ImagePreprocessing` holds what the preprocessing needs (the mean image, the per-channel
std, the stored size, the JPEG re-encode quality, the resize mode) and turns a batch of
encoded images into preprocessed float32 patches, the centre one or the paper's ten. The
SavedModel's signatures run it (export.ServingModule is one), and so does bin/predict for
the runtimes that take preprocessed images (runtimes/: ONNX, LiteRT), so every format sees
the same pixels. `check_request` refuses a batch with an empty or unknown entry, naming it.
"""
import numpy as np
import tensorflow as tf

from keras_alexnet.data import layout
from keras_alexnet.data.preprocessing import crop_centre, ten_crops
from keras_alexnet.serving import damaged_jpeg, image_size
from keras_alexnet.serving import preprocessing as prep


class ImagePreprocessing(tf.Module):
    """The paper's evaluation preprocessing of encoded images for an S x S input."""

    def __init__(self, mean_image, size, *, std=None, jpeg_quality=layout.JPEG_QUALITY,
                 resize=prep.SHORTER_SIDE, name=None):
        super().__init__(name=name)
        mean_image = np.asarray(mean_image, np.float32)
        if mean_image.ndim != 3 or mean_image.shape[0] != mean_image.shape[1] or \
                mean_image.shape[0] < size:
            raise ValueError(f"mean image of shape {mean_image.shape} does not cover the "
                             f"model's {size}x{size} input")
        if resize not in (prep.SHORTER_SIDE, prep.WARP):
            raise ValueError(f"resize must be {prep.SHORTER_SIDE!r} or {prep.WARP!r}, got {resize!r}")
        self.image_size = int(size)
        self.resize = mean_image.shape[0]
        self.jpeg_quality = int(jpeg_quality)
        self.resize_mode = resize
        self.mean_image = tf.Variable(mean_image, trainable=False, name="mean_image")
        self.std = tf.Variable(np.ones(3, np.float32) if std is None else
                               np.asarray(std, np.float32), trainable=False, name="std")

    def preprocess(self, image_bytes):
        """float32 [S, S, 3]: one encoded image through the paper's evaluation preprocessing."""
        patch = prep.stored_centre_patch(image_bytes, self.resize, self.image_size,
                                         self.jpeg_quality, self.resize_mode)
        return (patch - crop_centre(self.mean_image, self.image_size)) / self.std

    def preprocess_ten_crops(self, image_bytes):
        """float32 [10, S, S, 3]: the paper's four corner and centre patches and their mirrors."""
        image = prep.scale_and_center(image_bytes, self.resize, self.jpeg_quality,
                                      self.resize_mode)
        return ten_crops(self._normalize(image), self.image_size)

    def _normalize(self, image):
        return (image - self.mean_image) / self.std

    def centre_patches(self, image_bytes):
        """float32 [B, S, S, 3] of string [B], after _check."""
        size = self.image_size
        return tf.map_fn(self.preprocess, self._check(image_bytes),
                         fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32))

    def ten_crop_patches(self, image_bytes):
        """float32 [B, 10, S, S, 3] of string [B], after _check."""
        size = self.image_size
        return tf.map_fn(self.preprocess_ten_crops, self._check(image_bytes),
                         fn_output_signature=tf.TensorSpec([10, size, size, 3], tf.float32))

    def _check(self, image_bytes):
        """The request, once no entry is empty, of an unknown format or too large to decode."""
        return image_size.check_sizes(check_request(image_bytes), self.resize,
                                      draft=bool(self.jpeg_quality))


# The formats the serving graph decodes, by their first bytes (tf.io.decode_image's list).
# JPEG XL, which tf.io.decode_image also reads, is left out: its size cannot be read from a
# fixed place in its header, so image_size.py could not bound it before decoding.
_SIGNATURES = ((0, b"\xff\xd8\xff"), (0, b"\x89PNG"), (0, b"GIF8"), (0, b"BM"), (8, b"WEBP"))


def check_request(image_bytes):
    """image_bytes, after asserting that none is empty or of an unknown format.

    A batch request with one bad image fails as a whole; the error then names that
    image's index ("image_bytes[2] ..."), not only the decoder's complaint; so does a JPEG
    whose data is cut short or damaged (damaged_jpeg.py). Other formats' damaged data fails
    in their decoder, without an index.
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    empty = tf.equal(tf.strings.length(image_bytes), 0)
    padded = tf.strings.join([image_bytes, tf.constant(b"\0" * 12)])  # substr needs the bytes
    known = tf.zeros_like(empty)
    for offset, magic in _SIGNATURES:
        known = tf.logical_or(known, tf.equal(tf.strings.substr(padded, offset, len(magic)), magic))
    checks = []
    for bad, what in ((empty, "is empty (0 bytes)"),
                      (tf.logical_and(tf.logical_not(empty), tf.logical_not(known)),
                       "is not an image in a format the model reads (JPEG, PNG, GIF, BMP, "
                       "WebP; TIFF and others: convert to PNG)")):
        # The first bad index (a sentinel keeps argmax defined on an empty batch).
        index = tf.argmax(tf.concat([tf.cast(bad, tf.int32), [1]], 0), output_type=tf.int32)
        checks.append(tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(bad)),
            [tf.strings.format("image_bytes[{}] " + what, [index])], name="check_request"))
    with tf.control_dependencies(checks):
        return damaged_jpeg.check_jpeg_data(tf.identity(image_bytes))
