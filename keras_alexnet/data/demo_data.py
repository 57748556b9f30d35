"""A small procedural image dataset for the demo: 10 classes of shapes and textures as JPEG files.

The project ships no images. `make_demo_images` draws them into class folders
(`DIR/train/<class>/*.jpg`, `DIR/val/<class>/*.jpg`), the same layout as an
ImageNet copy, and `make_demo_tfrecords` converts them with make_tfrecords'
library function, so the demo runs the same path as real data. Colours,
positions, sizes and background noise are random, so a class is a shape or a
texture, not a colour: a convolutional network learns it in a few minutes; a
colour histogram does not.
"""
import os
import shutil
import tempfile

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle", "cross", "ring",
           "horizontal_stripes", "vertical_stripes", "checkerboard", "diagonal_stripes", "dots")


def _colours(rng):
    """Foreground and background colours far enough apart to see the shape."""
    while True:
        fg, bg = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        if np.abs(fg - bg).sum() > 200:
            return tuple(int(v) for v in fg), tuple(int(v) for v in bg)


def draw(class_name, size, rng):
    """One uint8 [size, size, 3] image of `class_name`."""
    fg, bg = _colours(rng)
    yy, xx = np.mgrid[0:size, 0:size]
    period, phase = rng.uniform(size / 10, size / 4), rng.uniform(0, size)
    if class_name in ("horizontal_stripes", "vertical_stripes", "checkerboard",
                      "diagonal_stripes", "dots"):
        if class_name == "horizontal_stripes":
            mask = ((yy + phase) // (period / 2)) % 2 == 0
        elif class_name == "vertical_stripes":
            mask = ((xx + phase) // (period / 2)) % 2 == 0
        elif class_name == "checkerboard":
            mask = (((yy + phase) // (period / 2)) + ((xx + phase) // (period / 2))) % 2 == 0
        elif class_name == "diagonal_stripes":
            sign = rng.choice([-1, 1])
            mask = ((xx + sign * yy + phase) // (period / 1.4)) % 2 == 0
        else:
            cy, cx = (yy + phase) % period - period / 2, (xx + phase) % period - period / 2
            mask = cy ** 2 + cx ** 2 < (period / 4) ** 2
        image = np.where(mask[..., None], np.array(fg, np.float32), np.array(bg, np.float32))
    else:
        img = Image.new("RGB", (size, size), bg)
        d = ImageDraw.Draw(img)
        r = rng.uniform(0.2, 0.38) * size
        cx, cy = rng.uniform(r, size - r, 2)
        box = [cx - r, cy - r, cx + r, cy + r]
        if class_name == "circle":
            d.ellipse(box, fill=fg)
        elif class_name == "square":
            d.rectangle(box, fill=fg)
        elif class_name == "triangle":
            d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fg)
        elif class_name == "cross":
            t = r / 3
            d.rectangle([cx - r, cy - t, cx + r, cy + t], fill=fg)
            d.rectangle([cx - t, cy - r, cx + t, cy + r], fill=fg)
        elif class_name == "ring":
            d.ellipse(box, outline=fg, width=max(2, int(r / 3)))
        else:
            raise ValueError(f"unknown demo class {class_name!r}")
        image = np.asarray(img, np.float32)
    image = image + rng.normal(0, 12, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def make_demo_images(out_dir, *, num_classes=10, images_per_class=200, val_per_class=None,
                     image_size=96, seed=0):
    """Writes DIR/train/<class>/*.jpg and DIR/val/<class>/*.jpg; returns out_dir."""
    if not 2 <= num_classes <= len(CLASSES):
        raise ValueError(f"num_classes={num_classes}: the demo has 2..{len(CLASSES)} classes")
    val_per_class = val_per_class or max(1, images_per_class // 4)
    rng = np.random.default_rng(seed)
    for split, count in (("train", images_per_class), ("val", val_per_class)):
        for name in CLASSES[:num_classes]:
            folder = os.path.join(out_dir, split, name)
            os.makedirs(folder, exist_ok=True)
            for i in range(count):
                Image.fromarray(draw(name, image_size, rng)).save(
                    os.path.join(folder, f"{name}_{i:05d}.jpg"), quality=90)
    return out_dir


def make_demo_tfrecords(data_dir, *, num_classes=10, images_per_class=200, image_size=96, seed=0,
                        num_workers=1):
    """Generates the demo images in a temporary folder and converts them into `data_dir`.

    Returns data_dir (shards, labels.txt, stats.npz). If data_dir already holds a
    complete conversion, the work is not repeated (make_tfrecords resumes).
    num_workers=1 converts in this process: a few thousand small images take
    seconds, less than starting worker processes that each import TensorFlow.
    """
    from keras_alexnet import disk_full
    from keras_alexnet.data import convert, layout
    parent = os.path.dirname(os.path.abspath(data_dir))
    _remove_leftover_images(parent)
    if os.path.exists(os.path.join(data_dir, layout.STATS_FILENAME)) and \
            layout.splits_complete(data_dir, ("train", "validation")):
        return data_dir
    # Beside data_dir (in the workdir), not in /tmp: a run killed here (SIGTERM, kill -9)
    # leaves it where the next run finds it and removes it.
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=_IMAGES_PREFIX, dir=parent)
    try:
        make_demo_images(tmp, num_classes=num_classes, images_per_class=images_per_class,
                         image_size=image_size, seed=seed)
        for split, folder in (("train", "train"), ("validation", "val")):
            convert.convert("imagefolder", os.path.join(tmp, folder), data_dir, split=split,
                            num_shards=2, num_workers=num_workers, resize=image_size)
    except OSError as e:
        if not disk_full.is_disk_full(e):
            raise
        # The drawn images and their shards: JPEGs of about a tenth of their pixels' bytes.
        size = images_per_class * 5 // 4 * num_classes * image_size ** 2 * 3 // 10 // 1_000_000
        raise disk_full.DiskFull(disk_full.sentence(
            parent, "generating the demo data", f"about {2 * size + 1} MB")) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return data_dir


_IMAGES_PREFIX = ".demo-images-"  # the images drawn before conversion, removed after it


def _remove_leftover_images(parent):
    """The image folders of demo-data generations that were killed (only this module's names)."""
    if os.path.isdir(parent):
        for name in os.listdir(parent):
            if name.startswith(_IMAGES_PREFIX):
                shutil.rmtree(os.path.join(parent, name), ignore_errors=True)

