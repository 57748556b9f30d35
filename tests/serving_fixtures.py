"""Hand-made training workdirs for the export, evaluate and predict tests.

They follow the layout of the contract (WORKDIR/config.json, best/, checkpoints/;
DATA/labels.txt, stats.npz, validation-*-of-* shards) without running the
trainer or make_tfrecords, so these tests do not depend on them.
"""
import io
import json
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from keras_alexnet import model as model_lib
from keras_alexnet.data import stats as stats_lib

MODEL_KWARGS = dict(num_classes=4, image_size=67, towers=2, lrn=True,
                    lrn_alpha=model_lib.LRN_ALPHA, overlapping_pool=True, activation="relu",
                    dropout=0.5, width=0.125, fc_units=32, init="glorot", seed=7)
RESIZE = 80  # the mean image's side: these tests' "256"
SYNSETS = ["n01440764", "n02102040", "n02979186", "n03000684"]
NAMES = ["tench, Tinca tinca", "English springer", "cassette player", "chain saw, chainsaw"]


def picture(height, width, seed, channels=3):
    """A smooth random uint8 picture (smooth so JPEG keeps it close)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, channels)).astype(np.uint8)
    image = Image.fromarray(small.squeeze(-1) if channels == 1 else small)
    return np.asarray(image.resize((width, height), Image.BILINEAR))


def encode(array, fmt="JPEG"):
    buffer = io.BytesIO()
    image = Image.fromarray(array)
    if fmt == "GIF":
        image = image.convert("P")
    image.save(buffer, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def write_data_dir(data_dir, num_images=10):
    """labels.txt, stats.npz and two validation shards of RESIZE x RESIZE JPEGs."""
    os.makedirs(data_dir, exist_ok=True)
    with open(os.path.join(data_dir, "labels.txt"), "w") as f:
        f.writelines(f"{i}\t{s}\t{n}\n" for i, (s, n) in enumerate(zip(SYNSETS, NAMES)))
    rng = np.random.default_rng(0)
    mean_image = 100 + 40 * rng.random((RESIZE, RESIZE, 3))
    stats_lib.save(stats_lib.DatasetStats(
        mean_image=mean_image, covariance=np.diag([3000.0, 2500.0, 2000.0]),
        eigenvalues=np.array([3000.0, 2500.0, 2000.0]), eigenvectors=np.eye(3),
        num_images=100, num_pixels=100 * RESIZE * RESIZE), data_dir)
    examples = []
    for i in range(num_images):
        image = encode(picture(RESIZE, RESIZE, seed=100 + i))
        label = i % len(SYNSETS)
        feature = {
            "image/encoded": _bytes(image), "image/format": _bytes(b"JPEG"),
            "image/class/label": _int(label), "image/class/synset": _bytes(SYNSETS[label].encode()),
            "image/height": _int(RESIZE), "image/width": _int(RESIZE),
            "image/filename": _bytes(f"val_{i}.JPEG".encode())}
        examples.append(tf.train.Example(features=tf.train.Features(feature=feature)))
    for shard in range(2):
        path = os.path.join(data_dir, f"validation-{shard:05d}-of-00002")
        with tf.io.TFRecordWriter(path) as writer:
            for example in examples[shard::2]:
                writer.write(example.SerializeToString())
    return data_dir


def _bytes(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def trained_model():
    """The tiny model with weights that a rebuild from config.json does not reproduce."""
    model = model_lib.build_alexnet(**dict(MODEL_KWARGS, seed=1234))
    # Small logits: probabilities far from one-hot, so comparisons of them mean something.
    fc8 = model.get_layer("fc8")
    fc8.kernel.assign(fc8.kernel * 0.3)
    return model


def restored_run(model, data_dir):
    """What restore.restore_run returns for write_workdir's run, with the in-memory model."""
    from keras_alexnet.serving import restore
    stats = stats_lib.load_stats(data_dir)
    return restore.RestoredRun(
        model=model, config={"model": MODEL_KWARGS}, checkpoint_path="(in memory)",
        data_dir=data_dir, synsets=SYNSETS, class_names=NAMES, mean_image=stats.mean_image,
        std=np.ones(3), label_offset=0, normalization="mean_image")


def write_workdir(workdir, data_dir, model=None):
    """config.json, checkpoints/ and best/ as the trainer writes them; returns the model."""
    model = model or trained_model()
    os.makedirs(workdir, exist_ok=True)
    config = {"model": MODEL_KWARGS, "precision": "float32",
              "input": {"data_dir": data_dir, "label_offset": 0, "normalization": "mean_image"}}
    with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump(config, f)
    optimizer_state = tf.Variable(0.5)  # stands in for the entries export ignores
    for folder in ("checkpoints", "best"):
        checkpoint = tf.train.Checkpoint(model=model, step=tf.Variable(3, dtype=tf.int64),
                                         optimizer=tf.train.Checkpoint(v=optimizer_state))
        tf.train.CheckpointManager(checkpoint, os.path.join(workdir, folder), 2).save()
    return model
