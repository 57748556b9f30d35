"""Tiny test images written into a temporary folder (never ../shared): good and broken ones."""
import io
import os

import numpy as np
from PIL import Image


def smooth_rgb(height, width, seed=0):
    """A smooth random uint8 image: JPEG round trips stay close, crops differ."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((width, height), Image.BILINEAR))


def jpeg_bytes(array, quality=95, mode=None):
    img = Image.fromarray(array)
    if mode:
        img = img.convert(mode)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def png_bytes(array):
    out = io.BytesIO()
    Image.fromarray(array).save(out, "PNG")
    return out.getvalue()


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def image_folder(root, classes=("n02", "n01"), per_class=4, size=(100, 90), seed=0):
    """root/<class>/img{i}.JPEG with distinct RGB JPEGs; returns root."""
    for c, name in enumerate(classes):
        for i in range(per_class):
            h, w = size if (i % 2 == 0) else (size[1], size[0])
            write(os.path.join(root, name, f"img{i}.JPEG"),
                  jpeg_bytes(smooth_rgb(h, w, seed=seed * 1000 + c * 100 + i)))
    return str(root)


def add_odd_files(root, cls):
    """The kinds of files ImageNet holds: 3 convertible, 3 to skip. Returns their names."""
    base = smooth_rgb(96, 110, seed=7)
    convertible = {"gray.JPEG": jpeg_bytes(base, mode="L"), "cmyk.JPEG": jpeg_bytes(base, mode="CMYK"),
                   "png_inside.JPEG": png_bytes(base)}
    broken = {"empty.JPEG": b"", "truncated.JPEG": jpeg_bytes(base)[:300],
              "notes.txt": b"this is not an image\n"}
    for name, data in {**convertible, **broken}.items():
        write(os.path.join(root, cls, name), data)
    return sorted(convertible), sorted(broken)
