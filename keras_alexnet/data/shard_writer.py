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
import pickle
import queue
import random
import signal
import traceback

import numpy as np
from PIL import Image

from keras_alexnet.data import image_limits, layout
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


def convert_image(data, resize, quality=layout.JPEG_QUALITY, stats_size=256):
    """Encoded bytes -> (RGB JPEG bytes, uint8 pixels as the reader decodes them, mean view).

    resize > 0: the paper's shorter-side resize and central crop, re-encoded.
    resize == 0: original bytes kept when already an RGB JPEG; the mean view is
    then the paper's stats_size crop of the image. Raises BadImage with a reason.
    """
    if not data:
        raise BadImage("empty file (0 bytes)")
    try:
        img = image_limits.open_bounded(data, resize, resize or stats_size)
        source_format, source_mode = img.format, img.mode
        img.load()  # raises on truncated data
    except image_limits.TooLarge as e:
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


class WorkerDied(RuntimeError):
    """A worker process ended without finishing its shard (kill -9, the out-of-memory killer)."""


def _exit_reason(exitcode):
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name if -exitcode in signal.valid_signals() else -exitcode
        hint = " (the out-of-memory killer sends it)" if -exitcode == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with status {exitcode}"


def _worker_loop(tasks, results, counter):
    """A worker process: shards from `tasks` until None; reports start, done or error on `results`."""
    _init_worker(counter, ignore_interrupt=True)
    pid = os.getpid()
    for index, task in iter(tasks.get, None):
        results.put(("start", pid, index, None))
        try:
            write_shard(task)
        except BaseException as e:  # noqa: BLE001  sent to the parent, which raises it
            try:
                pickle.dumps(e)
            except Exception:  # noqa: BLE001
                e = RuntimeError(f"{type(e).__name__}: {e}")
            try:
                e.worker_traceback = traceback.format_exc()
            except AttributeError:
                pass
            results.put(("error", pid, index, e))
            return
        results.put(("done", pid, index, None))


def run_tasks(tasks, num_workers, progress):
    """Runs write_shard over tasks (in-process when num_workers == 1), updating progress.

    Worker processes are watched: one that dies (kill -9, the out-of-memory killer) stops
    the run with WorkerDied naming its shard, instead of waiting for it forever; the
    shards already complete stay, and a re-run redoes the rest.
    """
    ctx = multiprocessing.get_context("spawn")  # TensorFlow is not fork-safe
    counter = ctx.Value("q", 0)
    if num_workers <= 1 or len(tasks) <= 1:
        _init_worker(counter)
        for task in tasks:
            write_shard(task)
            progress.update(counter.value)
        return counter.value
    task_queue, results = ctx.Queue(), ctx.Queue()
    procs = [ctx.Process(target=_worker_loop, args=(task_queue, results, counter), daemon=True)
             for _ in range(min(num_workers, len(tasks)))]
    for index, task in enumerate(tasks):
        task_queue.put((index, task))
    for _ in procs:
        task_queue.put(None)
    for proc in procs:
        proc.start()
    running, done = {}, 0  # pid -> index of the shard it writes

    def handle(message):
        nonlocal done
        kind, pid, index, error = message
        if kind == "start":
            running[pid] = index
        elif kind == "done":
            running.pop(pid, None)
            done += 1
        else:
            raise error

    def drain():  # what a dead worker said before dying
        while True:
            try:
                handle(results.get(timeout=0.2))
            except queue.Empty:
                return

    try:
        while done < len(tasks):
            try:
                handle(results.get(timeout=0.5))
            except queue.Empty:
                pass
            progress.update(counter.value)
            if not any(p.exitcode is not None and (p.exitcode != 0 or p.pid in running)
                       for p in procs) and any(p.exitcode is None for p in procs):
                continue
            drain()
            _raise_if_lost(procs, running, done, tasks)
            # A worker that died between shards: the others take the remaining ones.
    finally:
        _stop_workers(procs)
        _remove_temporaries(tasks)
        task_queue.cancel_join_thread()
        results.cancel_join_thread()
    return counter.value


def _raise_if_lost(procs, running, done, tasks):
    """WorkerDied if a worker died holding a shard (running: pid -> its shard's index), or
    every worker is gone with shards left."""
    for proc in procs:
        if proc.exitcode is not None and proc.pid in running:
            raise WorkerDied(
                f"worker process {proc.pid} {_exit_reason(proc.exitcode)} while writing "
                f"shard {tasks[running[proc.pid]]['name']}; {done} of {len(tasks)} shards "
                "of this run are complete and kept: run the same command again to write "
                "the rest")
    if done < len(tasks) and all(p.exitcode is not None for p in procs):
        # Every worker is gone and shards are left: one died between taking a shard
        # and saying which (or all were killed while idle).
        dead = [p for p in procs if p.exitcode != 0]
        who = (f"worker process {dead[0].pid} {_exit_reason(dead[0].exitcode)}" if dead
               else "the worker processes ended")
        raise WorkerDied(f"{who}; {done} of {len(tasks)} shards of this run are complete "
                         "and kept: run the same command again to write the rest")


def _stop_workers(procs):
    """Terminates the workers and waits until they are gone (killed if they do not stop)."""
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()


def _remove_temporaries(tasks):
    """The half-written files of this run's shards, left by workers stopped mid-shard."""
    for task in tasks:
        shard = os.path.join(task["out"], task["name"])
        for path in (shard, layout.part_path(task["out"], task["name"], "npz"),
                     layout.part_path(task["out"], task["name"], "json")):
            tmp = layout.temporary_path(path)
            if os.path.exists(tmp):
                os.remove(tmp)
