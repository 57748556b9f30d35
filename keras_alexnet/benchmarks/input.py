"""What `bin/benchmark input` times: images/s through the full training input pipeline.

The pipeline is exactly the one training uses (make_dataset with training=True:
interleave, shuffle, repeat, decode of the crop window, flip, PCA lighting,
mean-image subtraction, batching), with the statistics beside the shards.
"""
import glob
import os
import time

from keras_alexnet.data import input_pipeline, layout
from keras_alexnet.data import stats as stats_lib


def _default_stats(file_pattern):
    """stats.npz beside the shards, if there is one."""
    files = sorted(glob.glob(str(file_pattern)))
    folder = os.path.dirname(files[0]) if files else None
    if folder and os.path.exists(os.path.join(folder, layout.STATS_FILENAME)):
        return stats_lib.load_stats(folder)
    return None


def input_rate(file_pattern, batch_size=64, steps=50, warmup=10, image_size=227, stats="auto",
               **dataset_kwargs):
    """Images/s of make_dataset(training=True) over `steps` batches after `warmup` untimed ones.

    stats: DatasetStats, a stats.npz path/folder, None (no mean, no lighting) or
    "auto" (the stats.npz beside the shards when present).
    """
    if isinstance(stats, str) and stats == "auto":
        stats = _default_stats(file_pattern)
    ds = input_pipeline.make_dataset(file_pattern, batch_size, training=True, stats=stats,
                                     image_size=image_size, **dataset_kwargs)
    it = iter(ds)
    for _ in range(warmup):  # fills the shuffle buffer and lets AUTOTUNE settle
        next(it)
    start = time.perf_counter()
    for _ in range(steps):
        images, _ = next(it)
    images.numpy()
    return steps * batch_size / (time.perf_counter() - start)
