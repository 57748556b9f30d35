"""One size bound for every image: the converter skips, the export's graph refuses, before decoding.

The crafted images are small on purpose: each is accepted by the code before the bound
(and decoded there at a cost of tens of megabytes, not the gigabytes of 1 x 60000), or
only its header is read.
"""
import io
import struct
import warnings
import zlib

import pytest
import tensorflow as tf
from PIL import Image

import fixtures as fx
from keras_alexnet.data import image_limits, layout
from keras_alexnet.serving import image_size


def png_header(width, height):
    """A PNG whose IHDR declares width x height and whose data is one empty zlib stream."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b""))
            + chunk(b"IEND", b""))


def jpeg_claiming(height, width):
    """A real small JPEG whose SOF0 marker is patched to declare height x width."""
    data = bytearray(fx.encode(fx.picture(16, 16)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def encode(image, fmt, **kwargs):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def test_the_bound_names_both_limits():
    assert image_limits.size_problem(8192, 8192, 256) is None
    assert "8193x8192 pixels exceeds the limit of 67,108,864 decoded" in \
        image_limits.size_problem(8193, 8192, 256)
    assert "1x60000 pixels, resized to 256x15360000 for a shorter side of 256" in \
        image_limits.size_problem(1, 60000, 256)
    assert image_limits.size_problem(256, 256 * 64, 256) is None  # a 64:1 panorama passes
    assert image_limits.resized_size(100, 50, 80) == (160, 80)


def test_sizes_are_read_from_headers_without_decoding():
    picture = Image.fromarray(fx.picture(37, 53))
    images = [encode(picture, "PNG"), encode(picture.convert("P"), "GIF"), encode(picture, "BMP"),
              encode(picture, "WEBP"), encode(picture, "WEBP", lossless=True),
              encode(picture.convert("RGBA"), "WEBP"), encode(picture, "JPEG")]
    sizes = image_size.decoded_sizes(tf.constant(images), 80, draft=False).numpy()
    assert sizes.tolist() == [[37, 53]] * len(images)
    # Headers only: these declare sizes their few bytes could never fill.
    crafted = [png_header(1, 60000), png_header(60000, 60000), jpeg_claiming(60000, 64000)]
    assert len(crafted[0]) < 100
    sizes = image_size.decoded_sizes(tf.constant(crafted), 256, draft=False).numpy()
    assert sizes.tolist() == [[60000, 1], [60000, 60000], [60000, 64000]]
    # The graph decodes a large JPEG at 1/8 scale for a 256 resize: that is its size.
    assert image_size.decoded_sizes(tf.constant(crafted[2:]), 256).numpy().tolist() == [[7500, 8000]]


def test_the_graph_refuses_before_decoding_and_names_the_entry():
    good = fx.encode(fx.picture(90, 100, seed=1))
    for bad, draft, message in (
            (png_header(1, 60000), True, r"image_bytes\[2\]: 1x60000 pixels, resized to "
                                         r"256x15360000 for a shorter side of 256, exceeds"),
            (png_header(20000, 20000), True, r"image_bytes\[2\]: 20000x20000 pixels exceeds the "
                                             r"limit of 67108864 decoded pixels"),
            (jpeg_claiming(9000, 9000), False, r"image_bytes\[2\]: 9000x9000 pixels exceeds")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            image_size.check_sizes(tf.constant([good, good, bad, good]), 256, draft=draft)
    assert image_size.check_sizes(tf.constant([], tf.string), 256).shape == (0,)


def test_serving_default_refuses_an_extreme_aspect_ratio_with_its_index(tiny_export):
    """A 1 x 1000 PNG (a 1 x 60000 one in small): before the bound, resized to 80 x 80000."""
    loaded = tf.saved_model.load(tiny_export["path"])
    good = fx.encode(fx.picture(90, 100, seed=1))
    thin_png = fx.encode(fx.picture(1000, 1, seed=2), "PNG")
    thin_jpeg = fx.encode(fx.picture(8, 6000, seed=3))  # 80 x 60000 after the resize
    for name in ("serving_default", "ten_crop"):
        for bad, size in ((thin_png, "1x1000"), (thin_jpeg, "6000x8")):
            with pytest.raises(tf.errors.InvalidArgumentError,
                               match=rf"image_bytes\[1\]: {size} pixels, resized to .* exceeds "
                                     r"the limit of 4194304 resized pixels"):
                loaded.signatures[name](image_bytes=tf.constant([good, bad, good]))
    # A panorama within the bound, and ordinary images, are still served.
    wide = fx.encode(fx.picture(20, 600, seed=4), "PNG")  # 80 x 2400
    out = loaded.signatures["serving_default"](image_bytes=tf.constant([good, wide]))
    assert out["probabilities"].shape == (2, 4)


def test_serving_refuses_tiff_with_a_sentence_the_converter_converts_it(tiny_export, tmp_path):
    """The README's one difference: TIFF (and what else Pillow reads) converts, is not served."""
    tiff = encode(Image.fromarray(fx.picture(90, 100, seed=5)), "TIFF")
    serve = tf.saved_model.load(tiny_export["path"]).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"image_bytes\[0\] is not an image in a format the model reads "
                             r"\(JPEG, PNG, GIF, BMP, WebP; TIFF and others: convert to PNG\)"):
        serve(image_bytes=tf.constant([tiff]))
    fx.write(str(tmp_path / "in" / "n01" / "a.tif"), tiff)
    assert fx.convert(tmp_path / "in", tmp_path / "out", "train", resize=80)["written"] == 1


def test_the_converter_skips_what_the_graph_refuses_without_pillows_warning(tmp_path):
    root = tmp_path / "in"
    fx.image_folder(root, classes=("n01",), per_class=2)
    # A 1 x 20000 PNG of 140 bytes took 6 GB at --resize 256; 1 x 1000 at 80 is its small copy.
    fx.write(str(root / "n01" / "thin.png"), encode(Image.new("L", (1, 1000)), "PNG"))
    # Over Pillow's decompression-bomb warning (89.5 million pixels), in a few bytes.
    fx.write(str(root / "n01" / "bomb.png"), png_header(10000, 9000))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = fx.convert(root, tmp_path / "out", "train", resize=80, num_shards=1)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert summary["written"] == 2 and summary["skipped_by_reason"] == {"too large": 2}
    with open(layout.report_paths(str(tmp_path / "out"), "train")[1]) as f:
        rows = dict(line.rstrip("\n").split("\t") for line in f)
    assert rows["n01/thin.png"] == (
        "too large: 1x1000 pixels, resized to 80x80000 for a shorter side of 80, exceeds "
        "the limit of 4,194,304 resized pixels (aspect ratio too extreme)")
    assert rows["n01/bomb.png"] == ("too large: 10000x9000 pixels exceeds the limit of "
                                    "67,108,864 decoded pixels")


def test_the_request_memory_benchmark_runs_each_image_in_its_own_process(tiny_export):
    from keras_alexnet.benchmarks import request_memory
    results = request_memory.request_memory(tiny_export["export_dir"],
                                            ["photo 500x375 JPEG", "1x2000 PNG"])
    assert results["photo 500x375 JPEG"]["refused"] is None
    assert "image_bytes[0]: 1x2000 pixels, resized to 80x160000" in results["1x2000 PNG"]["refused"]
    for result in results.values():
        assert result["peak_rss_mib_after"] >= result["peak_rss_mib_before"] > 0
