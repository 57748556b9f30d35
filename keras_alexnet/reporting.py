"""What training shows and records: a progress bar, metrics.jsonl and TensorBoard summaries.

TensorBoard summaries are written with the core `tf.summary.write` op and the
scalars/images plugin names, because `tf.summary.scalar`/`image` need the
tensorboard package, which is not a dependency (reading the logs needs it;
writing them does not).

Every scalar goes to both TensorBoard (WORKDIR/tensorboard) and a JSON-lines
file (WORKDIR/metrics.jsonl, one object per event) so runs can be read
without TensorBoard. Non-chief workers get a Reporter over a temporary folder.
"""
import json
import math
import os
import sys
import time

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2


def _duration(seconds):
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ProgressBar:
    """One epoch's bar: step/total, loss, accuracy, images/s, ETA.

    mode 'bar' redraws one line (terminals), 'lines' prints a line every
    `every` steps (log files, CI), 'none' is silent.
    """

    def __init__(self, total, *, title="", mode="auto", every=50, stream=None):
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "lines"
        self.total, self.title, self.mode, self.every = total, title, mode, every
        self.start = time.time()
        self.done_at_start = None

    def update(self, done, **values):
        if self.mode == "none":
            return
        if self.done_at_start is None:
            self.done_at_start, self.start = done, time.time()
        final = done >= self.total
        if self.mode == "lines" and not final and done % self.every:
            return
        elapsed = time.time() - self.start
        rate = (done - self.done_at_start) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else math.inf
        width = 25
        filled = int(width * min(done, self.total) / max(self.total, 1))
        bar = "=" * filled + (">" if filled < width else "") + "." * max(0, width - filled - 1)
        parts = [f"{self.title} {done}/{self.total} [{bar}]"]
        parts += [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items()]
        parts.append(f"ETA {_duration(eta)}" if not final else f"took {_duration(elapsed)}")
        line = "  ".join(parts)
        if self.mode == "bar":
            self.stream.write("\r" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def kernel_grid(kernel):
    """conv1 kernels [h, w, 3, n] as one image [1, H, W, 3] in 0..1, like the paper's Figure 3."""
    kernel = np.asarray(kernel, dtype=np.float32)
    h, w, _, n = kernel.shape
    cols = int(math.ceil(math.sqrt(n * 2)))  # wider than tall, as in Figure 3
    rows = int(math.ceil(n / cols))
    lo, hi = kernel.min(), kernel.max()
    scaled = (kernel - lo) / (hi - lo) if hi > lo else np.zeros_like(kernel)
    grid = np.ones((rows * (h + 1) + 1, cols * (w + 1) + 1, 3), np.float32)
    for i in range(n):
        r, c = divmod(i, cols)
        grid[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + c * (w + 1):1 + c * (w + 1) + w] = \
            scaled[:, :, :, i]
    return grid[None]


class Reporter:
    """Writes events to metrics.jsonl and TensorBoard under `workdir`."""

    def __init__(self, workdir):
        os.makedirs(workdir, exist_ok=True)
        self.path = os.path.join(workdir, "metrics.jsonl")
        self.writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))

    def event(self, kind, step, **values):
        """One JSON line and one TensorBoard scalar per numeric value (`kind/name`)."""
        record = {"event": kind, "step": int(step), "time": round(time.time(), 3)}
        record.update({k: _plain(v) for k, v in values.items()})
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        with self.writer.as_default(step=int(step)):
            for name, value in values.items():
                if isinstance(value, (int, float, np.floating, np.integer)) and name != "epoch":
                    tf.summary.write(f"{kind}/{name}", tf.constant(float(value), tf.float32),
                                     metadata=_metadata("scalars"))
        return record

    def kernels(self, step, kernel):
        with self.writer.as_default(step=int(step)):
            grid = kernel_grid(kernel)[0]
            png = tf.io.encode_png(tf.cast(tf.round(grid * 255), tf.uint8))
            size = [tf.as_string(grid.shape[1]), tf.as_string(grid.shape[0])]  # width, height
            tf.summary.write("conv1_kernels", tf.stack(size + [png]), metadata=_metadata("images"))

    def flush(self):
        self.writer.flush()


def _metadata(plugin):
    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = plugin
    return metadata


def _plain(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
