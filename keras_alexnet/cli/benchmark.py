"""bin/benchmark: training, inference or input-pipeline throughput, as one JSON line.

    bin/benchmark train --batch_size 64 --precision float32
    bin/benchmark infer --batch_size 64 --precision mixed_bfloat16
    bin/benchmark input --data '/data/imagenet/train-*' --batch_size 64

The line has the same keys as ../shared/bench/seed_reference.py prints, so the
two can be run alternately and their ratio quoted.
"""
import json
import os

from absl import app, flags

from keras_alexnet.cli import run_app

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch_size", 64, "Images per step.")
flags.DEFINE_enum("precision", "float32", ["float32", "mixed_bfloat16", "mixed_float16"],
                  "Keras mixed-precision policy.")
flags.DEFINE_integer("steps", 5, "Timed steps.")
flags.DEFINE_integer("warmup", 2, "Untimed steps first (tracing, allocation).")
flags.DEFINE_integer("image_size", 227, "Input side in pixels.")
flags.DEFINE_integer("num_classes", 1000, "Size of fc8.")
flags.DEFINE_string("data", None, "For `input`: TFRecord file pattern (training split).")

WHAT = ("train", "infer", "input")


def main(argv):
    if len(argv) != 2 or argv[1] not in WHAT:
        raise app.UsageError(f"usage: benchmark {{{'|'.join(WHAT)}}} [--flags]")
    what = argv[1]
    import tensorflow as tf  # after flag parsing: --help stays fast

    if what == "input":
        if not FLAGS.data:
            raise app.UsageError("benchmark input needs --data=PATTERN (TFRecord shards)")
        from keras_alexnet.benchmarks import input as input_benchmark
        rate = input_benchmark.input_rate(FLAGS.data, batch_size=FLAGS.batch_size,
                                          steps=FLAGS.steps, warmup=FLAGS.warmup,
                                          image_size=FLAGS.image_size)
    else:
        from keras_alexnet.benchmarks import model as benchmark
        fn = benchmark.train_rate if what == "train" else benchmark.infer_rate
        rate = fn(batch_size=FLAGS.batch_size, precision=FLAGS.precision, steps=FLAGS.steps,
                  warmup=FLAGS.warmup, image_size=FLAGS.image_size,
                  num_classes=FLAGS.num_classes)
    print(json.dumps({"system": "keras_alexnet", "what": what, "batch_size": FLAGS.batch_size,
                      "precision": FLAGS.precision, "image_size": FLAGS.image_size,
                      "threads": os.cpu_count(), "tensorflow": tf.__version__,
                      "images_per_sec": round(rate, 2)}))


def run():
    run_app(main, __name__, __doc__)


if __name__ == "__main__":
    run()
