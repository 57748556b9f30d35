"""What `bin/benchmark tflite` measures: a run's network in LiteRT, float32 against quantized.

    bin/benchmark tflite --workdir=RUN [--data_dir=RECORDS] --batch_size=32

The run's checkpoint is converted three ways (serving/tflite_export.py: float32, dynamic
range, int8 calibrated on --calibration_images of the validation split) into a temporary
folder, and each file is loaded in LiteRT (ai_edge_litert, os.cpu_count() threads). For
each: the file's size, the ops it computes in float, the top-1 and top-5 error on the
whole validation split (the evaluation's centre patch, through the project's input
pipeline, counted as bin/evaluate counts) and how often its top-1 class is the float32
model's; then its latency on validation images, alternating the three models round by
round so that all see the same machine load: p50/p99 of single-image calls, images/s at
--batch_size. The int8 ranges are calibrated on the first images of the split it is
evaluated on: ranges only, not weights, but say so when quoting its error. Converting the
full-size network takes 10-13 GB of memory (docs/BENCHMARKS.md), one conversion at a time.
"""
import os
import sys
import tempfile

import numpy as np
import tensorflow as tf

from keras_alexnet.benchmarks import serving
from keras_alexnet.data import input_pipeline, layout
from keras_alexnet.runs import evaluate as evaluate_lib
from keras_alexnet.serving import tflite_export, tflite_runtime

MODES = tflite_export.QUANTIZATIONS  # "none" is float32
NAMES = {"none": "float32", "dynamic": "dynamic range (int8 weights)",
         "int8": "int8 (weights and activations)"}


def convert_all(run, folder, num_calibration_images):
    """{mode: path of its .tflite in folder}, each converted from the run's model."""
    paths = {}
    for mode in MODES:
        images = (tflite_export.calibration_images(run, num_calibration_images)
                  if mode == tflite_export.INT8 else None)
        paths[mode] = os.path.join(folder, f"{mode}.tflite")
        with open(paths[mode], "wb") as f:
            f.write(tflite_export.convert(run.model, mode, images))
    return paths


def validation_errors(run, models, batch_size, stream=sys.stderr):
    """({mode: evaluate.Result}, {mode: top-1 agreement with float32}, first batch of images).

    One pass over the validation split; each batch goes through every model.
    """
    data = layout.shard_pattern(run.data_dir, tflite_export.VALIDATION)
    evaluate_lib.check_labels(data, run.synsets, "the exported run", stream)
    dataset = input_pipeline.from_input_config(run.config, tflite_export.VALIDATION, batch_size,
                                               False, data_dir=run.data_dir, repeat=False)
    results = {m: evaluate_lib.Result(f"LiteRT {NAMES[m]}", 0, 0, 0) for m in models}
    agree = dict.fromkeys(models, 0)
    first = None
    for images, labels in dataset:
        images, labels = images.numpy(), labels.numpy()
        first = images if first is None else first
        reference = None
        for mode, model in models.items():
            probabilities = model(images)
            top1, top5 = evaluate_lib.count_errors(probabilities, labels)
            result = results[mode]
            result.num_images += len(labels)
            result.top1_errors += top1
            result.top5_errors += top5
            reference = probabilities.argmax(1) if reference is None else reference
            agree[mode] += int(np.sum(probabilities.argmax(1) == reference))
    if first is None:
        raise ValueError(f"{data}: no validation images")
    return results, {m: agree[m] / results[m].num_images for m in models}, first


def latencies(models, images, *, requests, batches, batch_size, rounds, warmup=2):
    """{mode: {p50_ms, p99_ms, images_per_sec}}: single images and batches, alternated."""
    one = [images[i:i + 1] for i in range(len(images))]
    big = [np.take(images, np.arange(i, i + batch_size) % len(images), axis=0)
           for i in range(0, batch_size * batches, batch_size)]
    for model in models.values():  # tensor allocation for both shapes
        serving.call_latencies(model, one, warmup)
        serving.call_latencies(model, big, 1)
    single = {m: [] for m in models}
    batched = {m: [] for m in models}
    for _ in range(rounds):
        for mode, model in models.items():
            # Resizing the graph between one image and a batch (allocation) is neither's time.
            model(one[0])
            single[mode] += serving.call_latencies(model, one, requests)
            model(big[0])
            batched[mode] += serving.call_latencies(model, big, batches)
    return {m: {"p50_ms": round(1000 * float(np.percentile(single[m], 50)), 2),
                "p99_ms": round(1000 * float(np.percentile(single[m], 99)), 2),
                "images_per_sec": round(batch_size * len(batched[m]) / float(np.sum(batched[m])), 1)}
            for m in models}


def tflite_benchmark(workdir, *, data_dir=None, checkpoint="best", batch_size=32, requests=60,
                     batches=5, rounds=3, warmup=2,
                     num_calibration_images=tflite_export.CALIBRATION_IMAGES):
    """The JSON-ready figures of the module docstring for WORKDIR's checkpoint."""
    from keras_alexnet.runs import restore
    from keras_alexnet.training import workdir as workdir_lib
    tflite_export.check_calibration_data(data_dir or workdir_lib.stored_data_dir(
        workdir_lib.read_config(workdir), workdir))
    run = restore.restore_run(workdir, checkpoint, data_dir=data_dir)
    threads = os.cpu_count()
    with tempfile.TemporaryDirectory(prefix="benchmark-tflite-") as folder:
        paths = convert_all(run, folder, num_calibration_images)
        sizes = {m: os.path.getsize(p) for m, p in paths.items()}
        models = {m: tflite_runtime.load(p, num_threads=threads) for m, p in paths.items()}
        with open(paths[tflite_export.INT8], "rb") as f:
            int8_float_ops = tflite_export.float_ops(f.read())
        with open(paths[tflite_export.DYNAMIC], "rb") as f:
            dynamic_float_ops = tflite_export.float_ops(f.read())
        results, agreement, images = validation_errors(run, models, batch_size)
        timed = latencies(models, images, requests=requests, batches=batches,
                          batch_size=batch_size, rounds=rounds, warmup=warmup)
    float_ops = {"none": "all", "dynamic": dynamic_float_ops, "int8": int8_float_ops}
    return {"workdir": workdir, "checkpoint": run.checkpoint_path, "data_dir": run.data_dir,
            "image_size": run.image_size, "batch_size": batch_size, "threads": threads,
            "load_avg_1min": round(os.getloadavg()[0], 2), "tensorflow": tf.__version__,
            "calibration_images": num_calibration_images,
            "results": {NAMES[m]: {"file_bytes": sizes[m], **results[m].as_dict(),
                                   "top1_agrees_with_float32": round(agreement[m], 6),
                                   "float_ops": float_ops[m], **timed[m]}
                        for m in MODES}}
