"""make_tfrecords' per-shard work: images of a Source (sources.py) -> one TFRecord shard each.

The output folder's files are named and read in layout.py. Each worker process writes whole shards: a shard goes to a temporary name and
is renamed only when complete, after its partial statistics and skip list are
saved, so an interrupted run resumes by redoing the shards that have no final
file, and a complete output is never overwritten by a partial one. Workers
stream one image at a time: memory does not grow with the dataset.
"""
import io
import multiprocessing
import os
import random
import signal

import numpy as np
from PIL import Image

from keras_alexnet.data import layout
from keras_alexnet.data import stats as stats_lib
from keras_alexnet.data.sources import read_items

SHUFFLE_SEED = 2012  # fixed: re-running the same command gives the same shards


class BadImage(ValueError):
    """An input that cannot become an RGB JPEG; the message is the report's reason."""


def default_num_shards(num_examples):
    """About 1250 images per shard (1024 shards for ILSVRC's 1.28M), at least 8, at most 1024."""
    return int(min(1024, max(min(8, num_examples), -(-num_examples // 1250))))


def _flatten_alpha(img):
    background = Image.new("RGB", img.size, (255, 255, 255))
    background.paste(img, mask=img.convert("RGBA").getchannel("A"))
    return background


# Pillow's modes of more than 8 bits a sample that convert("RGB") clips instead of scaling:
# 16-bit grayscale (PNG, TIFF) and 32-bit integer images (how older Pillow opens 16-bit PNGs).
_WIDE_GRAY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _to_8bit(img):
    """A 16-bit grayscale image as 8-bit "L": the high byte (value >> 8), as TensorFlow's
    decode_image(dtype=uint8) reads it, so the export decodes the same pixels.

    Pillow's convert("RGB") would clip every value above 255 to white instead. 16-bit RGB
    and RGBA PNGs need nothing: Pillow already reads their high bytes.
    """
    values = np.clip(np.asarray(img).astype(np.int64), 0, 65535)
    return Image.fromarray((values >> 8).astype(np.uint8), "L")


def _paper_resize(img, size):
    """Shorter side to `size` (bicubic), then the central size x size patch."""
    w, h = img.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((new_w, new_h), Image.BICUBIC, reducing_gap=3.0)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return img.crop((left, top, left + size, top + size))


def convert_image(data, resize, quality=90, stats_size=256):
    """Encoded bytes -> (RGB JPEG bytes, uint8 pixels as the reader decodes them, mean view).

    resize > 0: the paper's shorter-side resize and central crop, re-encoded.
    resize == 0: original bytes kept when already an RGB JPEG; the mean view is
    then the paper's stats_size crop of the image. Raises BadImage with a reason.
    """
    if not data:
        raise BadImage("empty file (0 bytes)")
    try:
        img = Image.open(io.BytesIO(data))
        source_format, source_mode = img.format, img.mode
        if resize and source_format == "JPEG":
            # Let libjpeg decode at a reduced scale when the image is much larger.
            w, h = img.size
            img.draft("RGB", (w * resize // min(w, h), h * resize // min(w, h)))
        img.load()  # raises on truncated data
    except Image.DecompressionBombError as e:
        raise BadImage(f"too large: {e}") from e
    except Image.UnidentifiedImageError as e:
        raise BadImage("not an image (unidentified format)") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise BadImage(f"corrupt or truncated: {e}") from e
    if img.mode in _WIDE_GRAY_MODES:
        img = _to_8bit(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = _flatten_alpha(img)
    elif img.mode != "RGB":
        img = img.convert("RGB")  # grayscale, CMYK (Adobe-inverted handled by Pillow), palette
    if resize:
        img = _paper_resize(img, resize)
    keep = not resize and source_format == "JPEG" and source_mode == "RGB"
    if keep:
        encoded = data
    else:
        out = io.BytesIO()
        img.save(out, "JPEG", quality=quality)
        encoded = out.getvalue()
    # Statistics are of the pixels written: decode what we store.
    pixels = np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB"))
    view = pixels if resize else np.asarray(_paper_resize(Image.fromarray(pixels), stats_size))
    return encoded, pixels, view


def make_example(values):
    """A tf.train.Example with layout.FEATURE_SPEC's keys; values maps key -> bytes/str/int."""
    import tensorflow as tf
    feature = {}
    for key, spec in layout.FEATURE_SPEC.items():
        value = values[key]
        if spec.dtype == tf.string:
            value = value.encode() if isinstance(value, str) else value
            feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
        else:
            feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
    # deterministic: map order fixed, so a resumed run writes the same bytes in any process
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(
        deterministic=True)


_progress = None  # shared counter of processed images, set in each worker


def _init_worker(counter, ignore_interrupt=False):
    global _progress
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if ignore_interrupt:  # Ctrl-C goes to the parent, which stops the pool: one message, not N
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _progress = counter


def _tick():
    if _progress is not None:
        with _progress.get_lock():
            _progress.value += 1


def write_shard(task):
    """Worker: converts task['items'] into one shard; returns its name. See the module docstring."""
    import tensorflow as tf
    out, name, classes = task["out"], task["name"], task["classes"]
    acc = stats_lib.StatsAccumulator(task["stats_size"]) if task["stats"] else None
    skipped, written = [], 0
    with layout.atomic_output(os.path.join(out, name)) as tmp, tf.io.TFRecordWriter(tmp) as writer:
        for item, data, label, error in read_items(task["items"], task["tfds"]):
            try:
                if error:
                    raise BadImage(error)
                encoded, pixels, view = convert_image(data, task["resize"], task["quality"],
                                                      task["stats_size"])
            except BadImage as e:
                skipped.append((item.name, str(e)))
                _tick()
                continue
            except Exception as e:  # a decoder bug on one odd file must not stop 1.28M others
                skipped.append((item.name, f"conversion failed: {type(e).__name__}: {e}"))
                _tick()
                continue
            wnid, text = classes[label]
            writer.write(make_example({
                "image/encoded": encoded, "image/format": "JPEG", "image/class/label": label,
                "image/class/synset": wnid, "image/class/text": text,
                "image/height": pixels.shape[0], "image/width": pixels.shape[1],
                "image/filename": item.name}))
            if acc is not None:
                acc.add(pixels, view)
            written += 1
            _tick()
        # Inside the block: the shard's rename, on leaving it, comes last.
        if acc is not None:
            with layout.atomic_output(layout.part_path(out, name, "npz")) as part:
                np.savez(part, **acc.to_arrays())
        layout.write_json(layout.part_path(out, name, "json"), {"written": written, "skipped": skipped})
    return name


def is_complete(out, name):
    return (os.path.exists(os.path.join(out, name))
            and os.path.exists(layout.part_path(out, name, "json")))


def split_into_shards(items, num_shards, shuffle):
    items = list(items)
    if shuffle:
        random.Random(SHUFFLE_SEED).shuffle(items)
    bounds = np.linspace(0, len(items), num_shards + 1).astype(int)
    return [items[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def run_tasks(tasks, num_workers, progress):
    """Runs write_shard over tasks (in-process when num_workers == 1), updating progress."""
    counter = multiprocessing.get_context("spawn").Value("q", 0)
    if num_workers <= 1 or len(tasks) <= 1:
        _init_worker(counter)
        for task in tasks:
            write_shard(task)
            progress.update(counter.value)
        return counter.value
    ctx = multiprocessing.get_context("spawn")  # TensorFlow is not fork-safe
    with ctx.Pool(min(num_workers, len(tasks)), _init_worker, (counter, True)) as pool:
        pending = pool.map_async(write_shard, tasks, chunksize=1)
        while not pending.ready():
            pending.wait(0.5)
            progress.update(counter.value)
        pending.get()  # re-raises a worker's exception
    return counter.value
