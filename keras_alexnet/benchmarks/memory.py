"""What `bin/benchmark memory` measures: peak memory of bin/train's step on CPU.

Builds the full AlexNet (the paper's config), its momentum optimizer and the
train step that bin/train runs (benchmarks/model.paper_train_step), then times and
measures a few steps on synthetic mean-subtracted images: peak RSS of the process
(ru_maxrss) after building and after the steps, and their difference, which is
what one step adds (activations, gradients, the all-reduce buffers).
"""
import resource
import time

import numpy as np
import tensorflow as tf

from keras_alexnet.benchmarks import model as model_benchmark


def _peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def train_step_memory(batch_size=128, image_size=227, precision="float32", steps=3,
                      num_classes=1000):
    """Returns {peak_rss_mib_after_build, peak_rss_mib_after_steps, step_mib, seconds_per_step...}."""
    with model_benchmark.precision_policy(precision) as policy:
        model, train_step, iterator = model_benchmark.paper_train_step(
            batch_size, image_size, num_classes, policy)
        before = _peak_mib()
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            float(train_step(iterator, tf.constant(0.0))[0])
            times.append(time.perf_counter() - start)
        after = _peak_mib()
    return {"batch_size": batch_size, "image_size": image_size, "precision": policy,
            "parameters": int(model.count_params()),
            "peak_rss_mib_after_build": round(before), "peak_rss_mib_after_steps": round(after),
            "step_mib": round(after - before),
            "seconds_per_step_after_first": round(float(np.median(times[1:] or times)), 2)}
