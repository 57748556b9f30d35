"""bin/make_tfrecords: ImageNet (or any image classification set) -> TFRecord shards + statistics.

    bin/make_tfrecords --source=imagefolder --input_dir=imagenette/train --output_dir=OUT --split=train
    bin/make_tfrecords --source=imagefolder --input_dir=imagenette/val --output_dir=OUT --split=validation
    bin/make_tfrecords --source=ilsvrc2012 --input_dir=/data/ILSVRC2012 --output_dir=OUT --split=train
    bin/make_tfrecords --source=tfds:imagenet2012 --tfds_data_dir=~/tensorflow_datasets --output_dir=OUT
    bin/make_tfrecords --source=tiny_imagenet --input_dir=tiny-imagenet-200 --output_dir=OUT --split=validation

Writes OUT/{split}-00000-of-NNNNN shards, OUT/labels.txt, OUT/stats.npz (train
split), OUT/report-{split}.json/.tsv. Re-running the same command resumes.
"""
import signal
import sys

from absl import app, flags

from keras_alexnet.cli import run_app

FLAGS = flags.FLAGS
flags.DEFINE_string("source", "imagefolder", "imagefolder | ilsvrc2010 | ilsvrc2012 | tiny_imagenet | tfds:NAME")
flags.DEFINE_string("input_dir", None, "Image folder, ILSVRC or Tiny-ImageNet root (not used by "
                    "tfds:NAME).")
flags.DEFINE_string("output_dir", None, "Folder for shards, labels.txt, stats.npz, reports.")
flags.DEFINE_enum("split", "train", ["train", "validation", "test"], "Which split to write.")
flags.DEFINE_integer("num_shards", None, "Shards for this split (default: ~1250 images each, 8..1024).",
                     lower_bound=1)
flags.DEFINE_integer("num_workers", None, "Worker processes (default: the CPUs this process may use, "
                     "by its affinity and cgroup quota).", lower_bound=1)
flags.DEFINE_integer("resize", 256, "Shorter side to this, central square crop, re-encode; "
                     "0 keeps the original bytes of RGB JPEGs.", lower_bound=0)
flags.DEFINE_integer("quality", None, "JPEG quality of re-encoded images, 1-100 (default: "
                     "data/layout.JPEG_QUALITY).",
                     lower_bound=1, upper_bound=100)
flags.DEFINE_integer("stats_size", 256, "With --resize 0: side of the mean image.", lower_bound=1)
flags.DEFINE_string("tfds_data_dir", None, "TFDS data_dir for --source tfds:NAME (already prepared).")
flags.DEFINE_string("devkit_dir", None, "ILSVRC devkit folder (default: searched under --input_dir).")
flags.DEFINE_string("class_names", None, "imagefolder: file of 'wnid name' lines for labels.txt "
                    "(e.g. LOC_synset_mapping.txt); default: the folder names.")
flags.DEFINE_string("wnids", None, "tiny_imagenet: a file of WNIDs, one a line, to convert instead of "
                    "all of DIR/wnids.txt (a subset of it; other classes' images are left out).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.output_dir:
        raise app.UsageError("--output_dir is required")
    if not FLAGS.input_dir and not FLAGS.source.startswith("tfds:"):
        raise app.UsageError("--input_dir is required for --source " + FLAGS.source)
    from keras_alexnet.data import convert
    from keras_alexnet.data.shard_writer import WorkerDied
    from keras_alexnet.disk_full import DiskFull
    from keras_alexnet.data.sources import SourceError
    signal.signal(signal.SIGTERM, _interrupt)  # systemd, docker stop, timeout: as Ctrl-C
    try:
        convert.convert(FLAGS.source, FLAGS.input_dir, FLAGS.output_dir, split=FLAGS.split,
                        num_shards=FLAGS.num_shards, num_workers=FLAGS.num_workers,
                        resize=FLAGS.resize, quality=FLAGS.quality,
                        tfds_data_dir=FLAGS.tfds_data_dir, devkit_dir=FLAGS.devkit_dir,
                        stats_size=FLAGS.stats_size, class_names=FLAGS.class_names,
                        wnids=FLAGS.wnids)
    except (SourceError, convert.OutputError, DiskFull) as e:
        sys.stderr.write(f"make_tfrecords: error: {e}\n")
        sys.exit(2)
    except WorkerDied as e:
        sys.stderr.write(f"\nmake_tfrecords: error: {e}\n")
        sys.exit(1)
    except KeyboardInterrupt as e:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        sys.stderr.write(f"\nmake_tfrecords: {e or 'interrupted'}; the worker processes are "
                         "stopped and temporary shards removed, complete shards are kept: run "
                         "the same command again to finish\n")
        sys.exit(143 if e else 130)


def _interrupt(signum, frame):
    """SIGTERM raises where the program is, as Ctrl-C does: the same clean-up runs."""
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


def run():
    run_app(main, __name__, __doc__)


if __name__ == "__main__":
    run()
