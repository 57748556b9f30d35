"""What `bin/benchmark trainer` times: bin/train's whole loop, from TFRecords to weight updates.

Unlike `train` (the compiled step on one synthetic batch), this runs
training/train.py's own loop on a folder written by bin/make_tfrecords: the input
pipeline (decode, crops, flips, PCA lighting), the distribution strategy, the
step (config.steps_per_loop steps a call, config.jit_compile) and the host's reads
of the loss every log_every_steps. The run is config.max_steps = warmup + steps
long, in a temporary workdir removed afterwards; log_every_steps is
gcd(warmup, steps), and the rate is measured between the training events the
loop writes at step `warmup` and at step `warmup + steps` (each written after the
host has read the step's results, so no queued work is left out).
"""
import math
import os
import shutil
import tempfile

from keras_alexnet import config as config_lib
from keras_alexnet.data import layout


def trainer_config(data_dir, *, batch_size, steps, warmup, precision="float32", image_size=227,
                   num_classes=None, steps_per_loop=1, jit_compile=False, fused_lrn=True):
    """The paper's config on data_dir, limited to warmup + steps steps with no validation pass."""
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"--data {data_dir!r}: not a folder; bin/benchmark trainer takes "
                                "the folder bin/make_tfrecords wrote")
    if warmup < 1:
        raise ValueError("--warmup: bin/benchmark trainer needs at least 1 untimed step (the "
                         "first call traces and compiles the step)")
    labels = os.path.join(data_dir, layout.LABELS_FILENAME)
    if num_classes is None:
        num_classes = len(layout.load_labels(labels)) if os.path.exists(labels) else 1000
    config = config_lib.get_config()
    config.input.data_dir = os.path.abspath(data_dir)
    config.model.update(num_classes=num_classes, image_size=image_size)
    config.batch_size = batch_size
    config.precision = precision
    config.steps_per_loop = steps_per_loop
    config.jit_compile = jit_compile
    config.fused_lrn = fused_lrn
    config.max_steps = warmup + steps
    # One "epoch" of exactly max_steps steps: the run stops before any validation pass.
    config.input.num_train_examples = config.max_steps * batch_size
    config.log_every_steps = math.gcd(warmup, steps)
    config.checkpoint.every_steps = config.max_steps
    config.checkpoint.max_to_keep = 1
    config.progress = "none"
    return config


def trainer_rate(data_dir, **kwargs):
    """(images/s of bin/train's loop over `steps` steps after `warmup`, the precision it ran in)."""
    from keras_alexnet.training import distribute, train, workdir as workdir_lib
    config = trainer_config(data_dir, **kwargs)
    workdir = tempfile.mkdtemp(prefix="benchmark-trainer-")
    try:
        result = train.train_and_evaluate(config, workdir)
        if result.get("status") != "max_steps":
            raise RuntimeError(f"the benchmark's run ended early: {result}")
        events = {e["step"]: e for e in workdir_lib.read_events(workdir) if e["event"] == "train"}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        distribute.set_precision("float32")
    warmup, end = kwargs["warmup"], config.max_steps
    seconds = events[end]["time"] - events[warmup]["time"]
    return (end - warmup) * config.batch_size / seconds, distribute.resolve_precision(
        config.precision)
