"""bin/report: the paper's figures from a training run (curves, Figure 3, Figure 4) and report.json.

    bin/report --workdir=RUN --out=DIR [--data_dir=TFRECORDS] [--checkpoint=best|latest|PATH]
        [--num_top5=8 --top5_seed=0]

Writes DIR/curves.png (training and validation top-1 error per epoch, learning-rate
drops marked), DIR/conv1_kernels.png (the conv1 kernels feeding each tower of
conv2, with their mean chroma), DIR/neighbours.png (validation images and their
nearest training images in fc7 space), DIR/figure4_left.png (validation images and
their five most probable classes, the true one in red) and DIR/report.json. The nearest neighbours
take one pass over the validation and the training split, streamed: memory stays
bounded on ILSVRC-size splits (keras_alexnet/report/neighbours.py).
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import app, flags  # noqa: E402

from keras_alexnet.cli import define_checkpoint_flag, run_app  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir (config.json, metrics.jsonl, best/).")
_OUT = flags.DEFINE_string("out", None, "Folder for the figures and report.json (created if missing).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFRecords folder with both splits, labels.txt and "
                                "stats.npz (default: the run's config.input.data_dir).")
_CHECKPOINT = define_checkpoint_flag()
_K = flags.DEFINE_integer("k", 5, "Nearest training images per validation image.")
_NUM_QUERIES = flags.DEFINE_integer("num_queries", 5, "Validation images shown in neighbours.png.")
_NUM_TOP5 = flags.DEFINE_integer("num_top5", 8, "Validation images shown in figure4_left.png with "
                                 "their five most probable classes (the paper shows 8).")
_TOP5_SEED = flags.DEFINE_integer("top5_seed", 0, "Seed of the shuffle that picks those images "
                                  "(one per class first).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Images per step of the fc7 passes.")
flags.mark_flags_as_required(["workdir", "out"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from keras_alexnet.report import figures, top5
    try:
        result = figures.write_report(_WORKDIR.value, _OUT.value, data_dir=_DATA_DIR.value,
                                      checkpoint=_CHECKPOINT.value, k=_K.value,
                                      num_queries=_NUM_QUERIES.value, num_top5=_NUM_TOP5.value,
                                      top5_seed=_TOP5_SEED.value, batch_size=_BATCH_SIZE.value)
    except (ValueError, FileNotFoundError) as e:
        sys.stderr.write(f"bin/report: error: {e}\n")
        sys.exit(1)
    colour, nn = result["conv1_colour"], result["neighbours"]
    print(f"conv1 mean chroma: tower1 {colour['tower1']:.3f}, tower2 {colour['tower2']:.3f} "
          f"({colour['split']})")
    print(f"fc7 {nn['k']} nearest: same class {nn['same_class_precision']:.1%} "
          f"(chance {nn['chance']:.1%}) over {nn['num_validation']:,} validation images")
    rows = result["top5"]["images"]
    ranks = [r["true_rank"] for r in rows]
    print(f"{len(rows)} validation images: the true class first for {ranks.count(0)}, among the "
          f"{len(rows[0]['classes'])} most probable for {sum(r is not None for r in ranks)}")
    print(f"wrote curves.png, conv1_kernels.png, neighbours.png, {top5.FILENAME}, "
          f"{figures.REPORT_FILENAME} in {_OUT.value}")


def run():
    run_app(main, __name__, __doc__)


if __name__ == "__main__":
    run()
