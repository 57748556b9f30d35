"""How large an image may be: one bound for make_tfrecords and the export's serving graph.

A few hundred bytes of PNG can declare 1 x 60000 pixels, or 20000 x 20000 of one
colour: decoding such an image, or resizing an extreme aspect ratio to a 256-pixel
shorter side (1 x 60000 becomes 256 x 15,360,000), takes gigabytes. Both the
converter (data/shard_writer.convert_image, which skips the file with a reason in
report-{split}.tsv) and the export's graph (serving/image_size.py, which refuses the
request with INVALID_ARGUMENT naming the entry) check an image's size from its
header, before decoding it, against the same two bounds:

    MAX_DECODED_PIXELS  pixels decoded: width x height, for a JPEG at the 1/2, 1/4 or
                        1/8 DCT scale the program decodes it at (a 200-megapixel phone
                        JPEG is decoded at 1/8 for a 256 resize, so it passes)
    MAX_RESIZED_PIXELS  pixels of the resize target: the shorter side to the stored
                        size (256), the aspect ratio kept

2**26 decoded pixels (8192 x 8192) is above any ImageNet photo and 48-megapixel
phone pictures, and below Pillow's own decompression-bomb warning (89.5 million);
2**22 resized pixels lets an aspect ratio up to 64:1 through at 256 (a panorama),
about 50 MB of float32 pixels. This module is the data layer's: it imports neither
TensorFlow nor serving/.
"""
import io
import warnings

from PIL import Image

MAX_DECODED_PIXELS = 1 << 26  # 67,108,864 = 8192 x 8192
MAX_RESIZED_PIXELS = 1 << 22  # 4,194,304 = 256 x 16384


class TooLarge(ValueError):
    """An image over a bound; the message is size_problem's."""


def resized_size(width, height, size):
    """(width, height) with the shorter side `size`, as the writer and the graph resize.

    The longer side is round(side * size / shorter) (half to even), never below size.
    """
    scale = size / max(1, min(width, height))
    return max(size, round(width * scale)), max(size, round(height * scale))


def size_problem(width, height, size):
    """Why an image of width x height decoded pixels is refused, or None.

    size: the shorter side it will be resized to (the stored size, or the statistics'
    size for data kept at its original size).
    """
    if width * height > MAX_DECODED_PIXELS:
        return (f"{width}x{height} pixels exceeds the limit of {MAX_DECODED_PIXELS:,} decoded "
                "pixels")
    new_width, new_height = resized_size(width, height, size)
    if new_width * new_height > MAX_RESIZED_PIXELS:
        return (f"{width}x{height} pixels, resized to {new_width}x{new_height} for a shorter side "
                f"of {size}, exceeds the limit of {MAX_RESIZED_PIXELS:,} resized pixels (aspect "
                "ratio too extreme)")
    return None


def open_bounded(data, resize, target):
    """The opened (not yet decoded) Pillow image; TooLarge when size_problem says so.

    JPEGs are set to decode at libjpeg's reduced scale first (resize > 0), so the
    bound applies to the pixels decoded, as in the export's graph. Pillow's own
    decompression-bomb check is replaced by this one: it counts the pixels before
    that reduction (refusing a phone's 200-megapixel JPEG the graph serves), not the
    resize target (a 1 x 20000 PNG of 140 bytes passed it and took 6 GB), and its
    warning would be printed into the progress bar.
    """
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    w, h = img.size
    if resize and img.format == "JPEG" and min(w, h) > 0:
        # Let libjpeg decode at a reduced scale when the image is much larger.
        img.draft("RGB", (w * resize // min(w, h), h * resize // min(w, h)))
    problem = size_problem(*img.size, target)
    if problem:
        raise TooLarge(problem)
    return img
