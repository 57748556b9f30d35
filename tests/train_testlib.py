"""Shared by the training tests: tiny TFRecords, a tiny config, and a subprocess runner.

The data are the demo's procedural shapes (a few classes, a few dozen 80x80
JPEGs) converted with make_tfrecords' library function in-process, so the
tests read exactly what users' data look like on disk.
"""
import json
import os
import subprocess
import sys
import time

from keras_alexnet import config as config_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_CLASSES = 3
TRAIN_PER_CLASS = 16  # 48 images: 6 steps of 8 per epoch
VAL_PER_CLASS = 6     # 18 images: the last eval batch of 8 is partial on purpose


def make_tiny_data(out_dir, *, num_classes=NUM_CLASSES, train_per_class=TRAIN_PER_CLASS,
                   val_per_class=VAL_PER_CLASS, size=80, seed=0):
    from keras_alexnet.data import convert
    from keras_alexnet.data import demo_data
    images = os.path.join(out_dir, "images")
    demo_data.make_demo_images(images, num_classes=num_classes, images_per_class=train_per_class,
                               val_per_class=val_per_class, image_size=size, seed=seed)
    data = os.path.join(out_dir, "tfrecords")
    with open(os.devnull, "w") as quiet:
        for split, folder in (("train", "train"), ("validation", "val")):
            convert.convert("imagefolder", os.path.join(images, folder), data, split=split,
                            num_shards=2, num_workers=1, resize=size, stream=quiet)
    return data


def tiny_config(data_dir, **overrides):
    """A few seconds of training: width 0.125, fc 32, 67-pixel crops, batch 8."""
    config = config_lib.get_config()
    config.input.data_dir = data_dir
    config.input.shuffle_buffer = 64
    config.model.update(num_classes=NUM_CLASSES, image_size=67, width=0.125, fc_units=32,
                        init="glorot", seed=0)
    config.batch_size = 8
    config.eval.batch_size = 8
    config.num_epochs = 2
    config.precision = "float32"
    config.progress = "none"
    config.log_every_steps = 2
    config.checkpoint.every_steps = 4
    for dotted, value in overrides.items():
        node = config
        *path, last = dotted.split("__")
        for part in path:
            node = node[part]
        node[last] = value
    return config


RUNNER = """
import json, sys
import ml_collections
from keras_alexnet.training import train
config = ml_collections.ConfigDict(json.load(open(sys.argv[1])))
result = train.train_and_evaluate(config, sys.argv[2])
if len(sys.argv) > 3:
    import numpy as np
    json.dump(result, open(sys.argv[3], "w"))
"""


def start_training(config, workdir, *, result_path=None, env=None):
    """train_and_evaluate(config, workdir) in a fresh Python process (Popen)."""
    os.makedirs(os.path.dirname(os.path.abspath(workdir)), exist_ok=True)
    path = os.path.abspath(workdir) + ".config.json"
    with open(path, "w") as f:
        f.write(config.to_json())
    args = [sys.executable, "-c", RUNNER, path, workdir] + ([result_path] if result_path else [])
    full_env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    return subprocess.Popen(args, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def read_events(workdir, kind=None):
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        events = [json.loads(line) for line in f if line.strip()]
    return [e for e in events if kind is None or e["event"] == kind]


def wait_for(predicate, timeout, proc=None, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended (rc {proc.returncode}) before {what}:\n"
                                 f"{proc.stdout.read()[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
