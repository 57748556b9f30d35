"""The serving graph's check that names a damaged JPEG in a batch request by its index.

A JPEG whose header is right but whose data is cut short (a truncated upload) or
garbled fails in the decoder, whose error names no entry: a client sending a
batch could not tell which image to drop. Before the real preprocessing, each
JPEG of the request is decoded once more at 1/8 scale (no full-size pixels: 64
times less memory than the image) inside a tf.data pipeline that drops the entries
that fail (`ignore_errors`); the first index that does not come out is the damaged
one, and the request fails with INVALID_ARGUMENT naming it:

    image_bytes[3] is a damaged JPEG (its data is truncated or corrupt)

The extra decode reads all of each JPEG's entropy-coded data once more, a small cost
beside the network. JPEGs larger than MAX_PROBE_PIXELS are not probed (the size
bound refuses them). Other formats are left to their decoders.
"""
import tensorflow as tf

MAX_PROBE_PIXELS = 100_000_000  # at 1/8 scale: at most ~4.7 MB of pixels per entry


def _probe(index, data):
    """(index, 0) for a JPEG that decodes at 1/8 scale (or an entry not probed); fails otherwise."""
    def decode():
        shape = tf.cast(tf.io.extract_jpeg_shape(data), tf.int64)
        return tf.cond(shape[0] * shape[1] <= MAX_PROBE_PIXELS,
                       lambda: tf.size(tf.io.decode_jpeg(data, channels=3, ratio=8)) * 0,
                       lambda: tf.constant(0))
    return index, tf.cond(tf.io.is_jpeg(data), decode, lambda: tf.constant(0))


def check_jpeg_data(image_bytes):
    """image_bytes, after asserting that every JPEG among them decodes (see the module docstring)."""
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    count = tf.shape(image_bytes)[0]
    probed = tf.data.Dataset.from_tensor_slices((tf.range(count), image_bytes)).map(_probe)
    whole = probed.ignore_errors().reduce(
        tf.zeros([count], tf.bool),
        lambda seen, entry: tf.tensor_scatter_nd_update(seen, [[entry[0]]], [entry[1] >= 0]))
    damaged = tf.logical_not(whole)
    index = tf.argmax(tf.concat([tf.cast(damaged, tf.int32), [1]], 0), output_type=tf.int32)
    check = tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(damaged)),
        [tf.strings.format("image_bytes[{}] is a damaged JPEG (its data is truncated or corrupt)",
                           [index])], name="check_jpeg_data")
    with tf.control_dependencies([check]):
        return tf.identity(image_bytes)
