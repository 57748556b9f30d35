"""What `bin/benchmark serve` times: an export, from JPEG bytes, next to in-process Keras predict.

    bin/benchmark serve --saved_model=runs/bench/models/alexnet --images='DATA/val/*/*.JPEG'

Without --images, two synthetic pictures (export.synthetic_images) are used.
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
import os
import time

import numpy as np
import tensorflow as tf
from absl import logging


def random_export(export_dir, seed=0):
    """Exports a randomly initialised paper AlexNet (227 px, 1000 classes); returns (path, model)."""
    from keras_alexnet.serving import export
    from keras_alexnet.training import workdir as workdir_lib

    kwargs = dict(num_classes=1000, image_size=227, seed=seed)
    model = workdir_lib.build_float32_model(kwargs)
    mean = np.full((256, 256, 3), 117.0, np.float32)  # about ImageNet's mean grey
    synsets = [f"n{i:08d}" for i in range(1000)]
    module = export.ServingModule(model, mean, synsets, [f"class {i}" for i in range(1000)],
                                  metadata={"config": {"model": kwargs}, "random": True})
    return export.save(module, export_dir, warmup_images=export.synthetic_images()), model


def call_latencies(fn, inputs, n):
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
        call_latencies(fn, one, 3)
        call_latencies(fn, big, 1)
    single = {name: [] for name in systems}
    batched = {name: [] for name in systems}
    for _ in range(rounds):
        for name, (fn, one, big) in systems.items():
            single[name].append(call_latencies(fn, one, requests))
            batched[name].append(call_latencies(fn, big, batches))

    def summary(one, big):
        return {"p50_ms": round(1000 * float(np.percentile(one, 50)), 2),
                "p99_ms": round(1000 * float(np.percentile(one, 99)), 2),
                "images_per_sec": round(batch_size * len(big) / float(np.sum(big)), 1)}

    return {name: {**summary(np.concatenate(single[name]), np.concatenate(batched[name])),
                   "rounds": [summary(o, b) for o, b in zip(single[name], batched[name])]}
            for name in systems}


def read_images(pattern, num_images):
    """Up to num_images files matching pattern, spread over the sorted list; synthetic if no pattern."""
    from keras_alexnet.serving import export
    if not pattern:
        return export.synthetic_images()
    files = sorted(glob.glob(pattern))
    if not files:
        raise FileNotFoundError(f"--images={pattern}: no files")
    files = files[::max(1, len(files) // max(num_images, 1))][:num_images]
    images = []
    for path in files:
        with open(path, "rb") as f:
            images.append(f.read())
    return images


def resolve_or_export(saved_model):
    """(the SavedModel's path, None), or (path, model) of a random full-size export written
    there when saved_model holds no version."""
    from keras_alexnet.serving import export_folder
    try:
        return export_folder.resolve_saved_model(saved_model), None
    except FileNotFoundError:
        logging.warning("exporting a random full-size AlexNet to %s", saved_model)
        return random_export(saved_model)


def serving_benchmark(saved_model, images, *, requests=60, batches=3, batch_size=32, rounds=3):
    """measure() on an export (a random full-size one is exported first if there is none)."""
    from keras_alexnet.serving import export_folder
    from keras_alexnet.training import workdir as workdir_lib
    path, model = resolve_or_export(saved_model)
    if model is None:  # same architecture, own random weights: the speed is the same
        config = export_folder.read_metadata(tf.saved_model.load(path))["config"]
        model = workdir_lib.build_float32_model(config["model"])
    result = measure(path, model, images, requests=requests, batches=batches,
                     batch_size=batch_size, rounds=rounds)
    return {"saved_model": path, "images": len(images), "batch_size": batch_size,
            "threads": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2),
            "tensorflow": tf.__version__, "results": result}
