"""Serving speed of an export, from JPEG bytes, next to in-process Keras predict on the same images.

    python -m keras_alexnet.serving_benchmark --saved_model=/tmp/alexnet-bench \
        --images='../shared/data/imagenette/val/*/*.JPEG'

If --saved_model holds no version yet, a full-size (227 px, 1000 classes)
randomly initialised AlexNet is exported there first; speed does not depend on
the weights. Measured, alternating the systems round by round so both see the
same machine load:

    serving_default  loaded SavedModel, encoded JPEG in (decode, resize, crops in the graph)
    predict_images   loaded SavedModel, preprocessed float32 images in
    keras predict    the Keras model in this process on the same preprocessed images
                     (predict_on_batch for one image, predict for a batch)
    preprocess_bytes the export's in-graph preprocessing alone (decode, resize, re-encode, crop)

batch 1: p50 and p99 latency over single-image requests; batch 32: images/s.
"""
import glob
import json
import os
import time

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_string("saved_model", None, "Model base path or SavedModel; a random full-size "
                    "model is exported there if it holds no version.")
flags.DEFINE_string("images", "../shared/data/imagenette/val/*/*.JPEG", "JPEG files (glob).")
flags.DEFINE_integer("num_images", 64, "Distinct images used (cycled).")
flags.DEFINE_integer("requests", 60, "Batch-1 requests per system per round.")
flags.DEFINE_integer("batches", 3, "Batches per system per round for throughput.")
flags.DEFINE_integer("batch_size", 32, "Batch size for throughput.")
flags.DEFINE_integer("rounds", 3, "Alternating rounds.")


def random_export(export_dir, seed=0):
    """Exports a randomly initialised paper AlexNet (227 px, 1000 classes); returns (path, model)."""
    from keras_alexnet.serving import export
    from keras_alexnet.serving import restore

    kwargs = dict(num_classes=1000, image_size=227, seed=seed)
    model = restore.build_model(kwargs)
    mean = np.full((256, 256, 3), 117.0, np.float32)  # about ImageNet's mean grey
    synsets = [f"n{i:08d}" for i in range(1000)]
    module = export.ServingModule(model, mean, synsets, [f"class {i}" for i in range(1000)],
                                  metadata={"config": {"model": kwargs}, "random": True})
    return export.save(module, export_dir, warmup_images=export.synthetic_images()), model


def _latencies(fn, inputs, n):
    """Seconds of n calls, cycling through inputs (fn returns something with .numpy() or ndarray)."""
    times = []
    for i in range(n):
        start = time.perf_counter()
        out = fn(inputs[i % len(inputs)])
        np.asarray(out)  # wait for the result
        times.append(time.perf_counter() - start)
    return times


def measure(saved_model, model, image_bytes, *, requests=60, batches=3, batch_size=32,
            rounds=3):
    """{system: {p50_ms, p99_ms, images_per_sec}} for the three systems (see module docstring)."""
    loaded = tf.saved_model.load(saved_model)
    serve = loaded.signatures["serving_default"]
    predict_images = loaded.signatures["predict_images"]
    # The export's own preprocessing, once, outside the timings: what the float systems get.
    floats = loaded.preprocess_bytes(tf.constant(image_bytes)).numpy()
    one_bytes = [tf.constant([b]) for b in image_bytes]
    one_float = [floats[i:i + 1] for i in range(len(floats))]
    n = len(image_bytes)
    big_bytes = [tf.constant([image_bytes[(i + j) % n] for j in range(batch_size)])
                 for i in range(0, batch_size * batches, batch_size)]
    big_float = [np.take(floats, np.arange(i, i + batch_size) % n, axis=0)
                 for i in range(0, batch_size * batches, batch_size)]
    systems = {
        "serving_default (JPEG bytes)": (
            lambda x: serve(image_bytes=x)["probabilities"].numpy(), one_bytes, big_bytes),
        "predict_images (floats)": (
            lambda x: predict_images(images=tf.constant(x))["probabilities"].numpy(),
            one_float, big_float),
        "preprocess_bytes only (JPEG bytes)": (
            lambda x: loaded.preprocess_bytes(x).numpy(), one_bytes, big_bytes),
        "keras predict (floats)": (
            lambda x: model.predict_on_batch(x) if len(x) == 1 else
            model.predict(x, batch_size=batch_size, verbose=0), one_float, big_float),
    }
    for fn, one, big in systems.values():  # warm-up: tracing, allocation
        _latencies(fn, one, 3)
        _latencies(fn, big, 1)
    single = {name: [] for name in systems}
    batched = {name: [] for name in systems}
    for _ in range(rounds):
        for name, (fn, one, big) in systems.items():
            single[name].append(_latencies(fn, one, requests))
            batched[name].append(_latencies(fn, big, batches))

    def summary(one, big):
        return {"p50_ms": round(1000 * float(np.percentile(one, 50)), 2),
                "p99_ms": round(1000 * float(np.percentile(one, 99)), 2),
                "images_per_sec": round(batch_size * len(big) / float(np.sum(big)), 1)}

    return {name: {**summary(np.concatenate(single[name]), np.concatenate(batched[name])),
                   "rounds": [summary(o, b) for o, b in zip(single[name], batched[name])]}
            for name in systems}


def main(argv):
    del argv
    from keras_alexnet.serving import evaluate
    from keras_alexnet.serving import restore

    files = sorted(glob.glob(FLAGS.images))[:: max(1, len(glob.glob(FLAGS.images)) //
                                                   max(FLAGS.num_images, 1))][:FLAGS.num_images]
    if not files:
        raise app.UsageError(f"--images={FLAGS.images}: no files")
    image_bytes = [open(f, "rb").read() for f in files]
    model = None
    try:
        path = evaluate.resolve_saved_model(FLAGS.saved_model)
    except FileNotFoundError:
        logging.info("exporting a random full-size AlexNet to %s", FLAGS.saved_model)
        path, model = random_export(FLAGS.saved_model)
    if model is None:  # same architecture, own random weights: the speed is the same
        config = json.loads(tf.saved_model.load(path).metadata_json.numpy())["config"]
        model = restore.build_model(config["model"])
    result = measure(path, model, image_bytes, requests=FLAGS.requests, batches=FLAGS.batches,
                     batch_size=FLAGS.batch_size, rounds=FLAGS.rounds)
    print(json.dumps({"saved_model": path, "images": len(files), "batch_size": FLAGS.batch_size,
                      "threads": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2),
                      "tensorflow": tf.__version__, "results": result}))


if __name__ == "__main__":
    flags.mark_flag_as_required("saved_model")
    app.run(main)
