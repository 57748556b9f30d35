"""What training records: metrics.jsonl and TensorBoard summaries (the progress bar is progress.py).

TensorBoard summaries are `tf.summary.scalar` and `tf.summary.image` (their
implementations come with the tensorboard package, a dependency, which also
gives the `tensorboard --logdir WORKDIR/tensorboard` command).

Every scalar goes to both TensorBoard (WORKDIR/tensorboard) and a JSON-lines
file (WORKDIR/metrics.jsonl, one object per event: workdir.append_event writes
it, workdir.read_events reads it back) so runs can be read without TensorBoard.
Non-chief workers get a Reporter over a temporary folder.
"""
import math
import os
import time

import numpy as np
import tensorflow as tf

from keras_alexnet.training import workdir as workdir_lib


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
        self.workdir = workdir
        # `tensorboard --logdir` here; the profiler's traces go here too (profile.py).
        self.tensorboard_dir = os.path.join(workdir, "tensorboard")
        self.writer = tf.summary.create_file_writer(self.tensorboard_dir)

    def event(self, kind, step, **values):
        """One JSON line and one TensorBoard scalar per numeric value (`kind/name`)."""
        record = {"event": kind, "step": int(step), "time": round(time.time(), 3)}
        record.update({k: _plain(v) for k, v in values.items()})
        workdir_lib.append_event(self.workdir, record)
        with self.writer.as_default(step=int(step)):
            for name, value in values.items():
                if isinstance(value, (int, float, np.floating, np.integer)) and name != "epoch":
                    tf.summary.scalar(f"{kind}/{name}", float(value))
        return record

    def kernels(self, step, kernel):
        """conv1's kernels as one image (kernel_grid), TensorBoard's Images tab."""
        with self.writer.as_default(step=int(step)):
            tf.summary.image("conv1_kernels", kernel_grid(kernel), max_outputs=1,
                             description="conv1 kernels, as in the paper's Figure 3")

    def flush(self):
        self.writer.flush()


def _plain(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
