"""make_tfrecords: converts a Source (sources.py) into sharded TFRecords, statistics and a report.

Output folder (see README, "Data on disk"):

    OUT/{split}-00000-of-00008 ...   TFRecord shards of tf.train.Example (input_pipeline.FEATURE_SPEC)
    OUT/labels.txt                   "index<TAB>wnid<TAB>name", one line per class
    OUT/stats.npz                    training statistics (stats.py), written with the train split
    OUT/report-{split}.json / .tsv   totals, and every skipped file with its reason
    OUT/dataset.json                 what the folder holds: a run that would mix datasets is refused
    OUT/.parts/                      per-shard statistics and skip lists, for resuming

Each worker process writes whole shards: a shard goes to a temporary name and
is renamed only when complete, after its partial statistics and skip list are
saved, so an interrupted run resumes by redoing the shards that have no final
file, and a complete output is never overwritten by a partial one. Workers
stream one image at a time: memory does not grow with the dataset.
"""
import io
import json
import multiprocessing
import os
import random
import signal
import time

import numpy as np
from PIL import Image

from keras_alexnet import stats as stats_lib
from keras_alexnet.sources import read_items

FORMAT = "keras_alexnet-tfrecords/1"
SHUFFLE_SEED = 2012  # fixed: re-running the same command gives the same shards


class BadImage(ValueError):
    """An input that cannot become an RGB JPEG; the message is the report's reason."""


def shard_names(split, num_shards):
    return [f"{split}-{i:05d}-of-{num_shards:05d}" for i in range(num_shards)]


def default_num_shards(num_examples):
    """About 1250 images per shard (1024 shards for ILSVRC's 1.28M), at least 8, at most 1024."""
    return int(min(1024, max(min(8, num_examples), -(-num_examples // 1250))))


def _flatten_alpha(img):
    background = Image.new("RGB", img.size, (255, 255, 255))
    background.paste(img, mask=img.convert("RGBA").getchannel("A"))
    return background


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
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = _flatten_alpha(img)
    elif img.mode != "RGB":
        img = img.convert("RGB")  # grayscale, CMYK (Adobe-inverted handled by Pillow), palette, 16-bit
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
    """A tf.train.Example with the FEATURE_SPEC keys; values maps key -> bytes/str/int."""
    import tensorflow as tf
    from keras_alexnet.input_pipeline import FEATURE_SPEC
    feature = {}
    for key, spec in FEATURE_SPEC.items():
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
    tmp = os.path.join(out, f".{name}.tmp")
    with tf.io.TFRecordWriter(tmp) as writer:
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
    part = os.path.join(out, ".parts", name)
    if acc is not None:
        np.savez(part + ".tmp.npz", **acc.to_arrays())
        os.replace(part + ".tmp.npz", part + ".npz")
    _write_json(part + ".json", {"written": written, "skipped": skipped})
    os.replace(tmp, os.path.join(out, name))  # last: the shard exists only when complete
    return name


def _write_json(path, obj):
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(path + ".tmp", path)


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def is_complete(out, name):
    return (os.path.exists(os.path.join(out, name))
            and os.path.exists(os.path.join(out, ".parts", name + ".json")))


def split_into_shards(items, num_shards, shuffle):
    items = list(items)
    if shuffle:
        random.Random(SHUFFLE_SEED).shuffle(items)
    bounds = np.linspace(0, len(items), num_shards + 1).astype(int)
    return [items[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


class Progress:
    """One-line progress bar on stderr: done/total, images/s, ETA."""

    def __init__(self, total, stream, label):
        self.total, self.stream, self.label = total, stream, label
        self.start = time.perf_counter()
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.last_print = 0.0

    def update(self, done, final=False):
        now = time.perf_counter()
        if not final and now - self.last_print < (0.5 if self.tty else 15.0):
            return
        self.last_print = now
        elapsed = max(now - self.start, 1e-9)
        rate = done / elapsed
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        frac = done / self.total if self.total else 1.0
        bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
        eta_text = (f"{int(eta) // 3600}:{int(eta) % 3600 // 60:02d}:{int(eta) % 60:02d}"
                    if eta == eta else "-:--:--")
        line = (f"{self.label} [{bar}] {done}/{self.total} {100 * frac:5.1f}% "
                f"{rate:7.1f} img/s ETA {eta_text}")
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        if final and self.tty:
            self.stream.write("\n")
        self.stream.flush()


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
