"""bin/benchmark: training, inference, input, serving or memory figures, as one JSON line.

    bin/benchmark train --batch_size=64 --precision=float32
    bin/benchmark train --batch_size=128 --precision=mixed_bfloat16 --model=lrn=False
    bin/benchmark infer --batch_size=64 --precision=mixed_bfloat16
    bin/benchmark lrn --batch_size=128 --precision=mixed_bfloat16 [--nofused_lrn]
    bin/benchmark input --data='DATA/train-*' --batch_size=64
    bin/benchmark trainer --data=DATA --batch_size=128 --precision=auto --warmup=10 --steps=50
    bin/benchmark serve --saved_model=runs/bench/models/alexnet [--images='DIR/*/*.JPEG'] --batch_size=32
    bin/benchmark serve --saved_model=runs/bench/models/alexnet --clients=1,4,8 --batch_sizes=1,8,32
    bin/benchmark memory --batch_size=128 --steps=3
    bin/benchmark request_memory --saved_model=runs/bench/models/alexnet
    bin/benchmark tflite --workdir=RUN [--data_dir=RECORDS] --batch_size=32

train times the step bin/train runs (loss, the paper's weight decay, momentum);
lrn times the network's two LRN layers alone, forward and gradient, as training runs them;
trainer times bin/train's whole loop on a TFRecord folder (input pipeline, strategy,
steps_per_loop, the host's reads every log_every_steps = gcd(warmup, steps));
train, infer and input print the same keys as docs/seed_reference.py,
so the two can be run alternately and their ratio quoted. serve exports a random
full-size model to --saved_model first if it holds no version; with --clients it measures
that export under concurrent client threads instead (throughput, p50/p99 latency by batch
size and client count: benchmarks/serve_load.py); request_memory too, and then
sends crafted images one at a time (benchmarks/request_memory.py: a request's peak memory).
tflite converts a run's checkpoint to float32, dynamic-range and int8 LiteRT models and
gives each one's validation error, file size and latency (benchmarks/tflite.py).
"""
import json
import os
import sys

from absl import app, flags

from keras_alexnet.cli import run_app

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch_size", 64, "Images per step (serve: per throughput batch).",
                     lower_bound=1)
flags.DEFINE_enum("precision", "float32", ["auto", "float32", "mixed_bfloat16", "mixed_float16"],
                  "Keras mixed-precision policy (train, infer, memory); 'auto' picks as "
                  "bin/train does (the JSON line says which).")
flags.DEFINE_integer("steps", 5, "Timed steps (serve: batches per system per round).",
                     lower_bound=1)
flags.DEFINE_integer("warmup", 2, "Untimed steps first (tracing, allocation).", lower_bound=0)
flags.DEFINE_integer("image_size", 227, "Input side in pixels (at least 67, the smallest "
                     "AlexNet input).", lower_bound=67)
flags.DEFINE_integer("num_classes", 1000, "Size of fc8.", lower_bound=2)
flags.DEFINE_string("data", None, "input: TFRecord file pattern (training split); trainer: the "
                    "folder bin/make_tfrecords wrote.")
flags.DEFINE_integer("steps_per_loop", 1, "trainer: config.steps_per_loop.", lower_bound=1)
flags.DEFINE_bool("jit_compile", False, "trainer: config.jit_compile (XLA for the step).")
flags.DEFINE_string("model", "", "train: build_alexnet arguments changed from the paper's, "
                    "to time parts of the step, e.g. --model=lrn=False or --model=towers=1,lrn=False.")
flags.DEFINE_bool("fused_lrn", True, "train, trainer, lrn: config.fused_lrn (LRN in training as XLA "
                  "kernels); --nofused_lrn times tf.nn.local_response_normalization.")
flags.DEFINE_string("saved_model", None, "serve: model base path or SavedModel.")
flags.DEFINE_string("images", None, "serve: image files (glob); default: synthetic pictures.")
flags.DEFINE_integer("num_images", 64, "serve: distinct images used (cycled).", lower_bound=1)
flags.DEFINE_integer("requests", 60, "serve: batch-1 requests per system per round; with "
                     "--clients, requests per row.",
                     lower_bound=1)
flags.DEFINE_integer("rounds", 3, "serve: alternating rounds.", lower_bound=1)
flags.DEFINE_list("clients", [], "serve: concurrent client counts, e.g. 1,4,8: measures the "
                  "export under that many threads (benchmarks/serve_load.py; --requests per row) "
                  "instead of the four-system comparison.")
flags.DEFINE_list("batch_sizes", ["1", "8", "32"], "serve --clients: images per request, one "
                  "row per batch size and client count.")
flags.DEFINE_enum("signature", "serving_default", ["serving_default", "ten_crop"],
                  "serve --clients: the signature the clients call.")
flags.DEFINE_string("workdir", None, "tflite: the training run whose best checkpoint is converted.")
flags.DEFINE_string("data_dir", None, "tflite: the data folder whose validation split is "
                    "evaluated and calibrated on (default: the run's).")
flags.DEFINE_integer("calibration_images", 200, "tflite: int8 calibration images.", lower_bound=1)

WHAT = ("train", "trainer", "infer", "lrn", "input", "serve", "memory", "request_memory",
        "tflite")


def _rate(what):
    if what == "input":
        if not FLAGS.data:
            raise app.UsageError("benchmark input needs --data=PATTERN (TFRecord shards)")
        from keras_alexnet.benchmarks import input as input_benchmark
        return input_benchmark.input_rate(FLAGS.data, batch_size=FLAGS.batch_size,
                                          steps=FLAGS.steps, warmup=FLAGS.warmup,
                                          image_size=FLAGS.image_size)
    from keras_alexnet.benchmarks import model as model_benchmark
    common = dict(batch_size=FLAGS.batch_size, precision=FLAGS.precision, steps=FLAGS.steps,
                  warmup=FLAGS.warmup, image_size=FLAGS.image_size, num_classes=FLAGS.num_classes)
    if what == "train":
        return model_benchmark.train_rate(
            model_overrides=model_benchmark.parse_model_overrides(FLAGS.model),
            fused_lrn=FLAGS.fused_lrn, **common)
    if what == "lrn":
        del common["num_classes"]
        return model_benchmark.lrn_rate(fused_lrn=FLAGS.fused_lrn, **common)
    return model_benchmark.infer_rate(**common)


def main(argv):
    try:
        _main(argv)
    except (ValueError, FileNotFoundError, OSError) as e:
        # A pattern matching no shards, a --saved_model that is not one, an unwritable path.
        sys.stderr.write(f"bin/benchmark: error: {getattr(e, 'message', None) or e}\n")
        sys.exit(1)


def _main(argv):
    if len(argv) != 2 or argv[1] not in WHAT:
        raise app.UsageError(f"usage: benchmark {{{'|'.join(WHAT)}}} [--flags]")
    what = argv[1]
    for name in ("saved_model", "images", "clients", "batch_sizes", "signature"):
        if what != "serve" and FLAGS[name].present:
            raise app.UsageError(f"--{name} is for `benchmark serve`; `benchmark {what}` times a "
                                 "model built in memory (random weights) and would ignore it")
    for name in ("workdir", "data_dir", "calibration_images"):
        if what != "tflite" and FLAGS[name].present:
            raise app.UsageError(f"--{name} is for `benchmark tflite`")
    # TensorFlow is imported by what runs, after flag parsing: --help stays fast.
    if what == "serve":
        if not FLAGS.saved_model:
            raise app.UsageError("benchmark serve needs --saved_model=PATH (a random model is "
                                 "exported there if it holds none)")
        for name in ("batch_sizes", "signature"):
            if FLAGS[name].present and not FLAGS.clients:
                raise app.UsageError(f"--{name} is for `benchmark serve --clients=...` (the "
                                     "export under concurrent clients)")
        if FLAGS.clients:
            _serve_load()
            return
        from keras_alexnet.benchmarks import serving
        images = serving.read_images(FLAGS.images, FLAGS.num_images)
        print(json.dumps({"system": "keras_alexnet", "what": what, **serving.serving_benchmark(
            FLAGS.saved_model, images, requests=FLAGS.requests, batches=FLAGS.steps,
            batch_size=FLAGS.batch_size, rounds=FLAGS.rounds)}))
        return
    if what == "request_memory":
        if not FLAGS.saved_model:
            raise app.UsageError("benchmark request_memory needs --saved_model=PATH")
        from keras_alexnet.benchmarks import request_memory
        print(json.dumps({"system": "keras_alexnet", "what": what, "saved_model": FLAGS.saved_model,
                          "load_avg_1min": round(os.getloadavg()[0], 2),
                          "results": request_memory.request_memory(FLAGS.saved_model)}))
        return
    if what == "tflite":
        if not FLAGS.workdir:
            raise app.UsageError("benchmark tflite needs --workdir=RUN (a trained run)")
        from keras_alexnet.benchmarks import tflite
        print(json.dumps({"system": "keras_alexnet", "what": what, **tflite.tflite_benchmark(
            FLAGS.workdir, data_dir=FLAGS.data_dir, batch_size=FLAGS.batch_size,
            requests=FLAGS.requests, batches=FLAGS.steps, rounds=FLAGS.rounds,
            warmup=FLAGS.warmup, num_calibration_images=FLAGS.calibration_images)}))
        return
    if what == "memory":
        from keras_alexnet.benchmarks import memory
        print(json.dumps({"system": "keras_alexnet", "what": what, **memory.train_step_memory(
            FLAGS.batch_size, FLAGS.image_size, FLAGS.precision, FLAGS.steps, FLAGS.num_classes)}))
        return
    from keras_alexnet.training import distribute
    if what == "trainer":
        if not FLAGS.data:
            raise app.UsageError("benchmark trainer needs --data=FOLDER (written by "
                                 "bin/make_tfrecords)")
        from keras_alexnet.benchmarks import trainer
        rate, precision = trainer.trainer_rate(
            FLAGS.data, batch_size=FLAGS.batch_size, steps=FLAGS.steps, warmup=FLAGS.warmup,
            precision=FLAGS.precision, image_size=FLAGS.image_size,
            steps_per_loop=FLAGS.steps_per_loop, jit_compile=FLAGS.jit_compile,
            fused_lrn=FLAGS.fused_lrn)
        _print_rate(what, rate, precision, steps_per_loop=FLAGS.steps_per_loop,
                    jit_compile=FLAGS.jit_compile, fused_lrn=FLAGS.fused_lrn)
        return
    rate = _rate(what)
    extra = {"model": FLAGS.model} if what == "train" and FLAGS.model else {}
    if what in ("train", "lrn"):
        extra["fused_lrn"] = FLAGS.fused_lrn
    _print_rate(what, rate, distribute.resolve_precision(FLAGS.precision), **extra)


def _positive_ints(name):
    """The integers of list flag --name, refused (UsageError) unless all are positive."""
    try:
        values = [int(v) for v in FLAGS[name].value]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise app.UsageError(f"--{name}={','.join(FLAGS[name].value)}: must be positive "
                             "integers separated by commas, e.g. 1,4,8")
    return values


def _serve_load():
    """benchmark serve --clients: the export under concurrent clients, one JSON line."""
    clients, batch_sizes = _positive_ints("clients"), _positive_ints("batch_sizes")
    from keras_alexnet.benchmarks import serve_load, serving
    images = serving.read_images(FLAGS.images, FLAGS.num_images)
    print(json.dumps({"system": "keras_alexnet", "what": "serve", **serve_load.load_benchmark(
        FLAGS.saved_model, images, clients=clients, batch_sizes=batch_sizes,
        requests=FLAGS.requests, signature=FLAGS.signature)}))


def _print_rate(what, rate, precision, **extra):
    """The JSON line, with seed_reference.py's keys and what this run changed (extra)."""
    import tensorflow as tf
    print(json.dumps({"system": "keras_alexnet", "what": what, "batch_size": FLAGS.batch_size,
                      "precision": precision, "image_size": FLAGS.image_size, **extra,
                      "threads": os.cpu_count(), "tensorflow": tf.__version__,
                      "images_per_sec": round(rate, 2)}))


def run():
    run_app(main, __name__, __doc__)


if __name__ == "__main__":
    run()
