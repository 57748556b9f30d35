"""bin/train: train AlexNet from a config file; any field can be overridden on the command line.

    bin/train --config=configs/demo.py --workdir=/tmp/alexnet-demo
    bin/train --config=configs/paper_ilsvrc2012.py --config.input.data_dir=DIR --workdir=RUN \
        --config.optimizer.learning_rate=0.02

Re-running the same command resumes from WORKDIR's latest checkpoint. SIGTERM or Ctrl-C
saves a checkpoint after the current step and stops; one bin/train at a time per workdir.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # keep TensorFlow's start-up chatter out of the bar

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from keras_alexnet.cli import run_app  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/demo.py.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for checkpoints, summaries and metrics.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from keras_alexnet import config, disk_full
    from keras_alexnet.data import layout
    from keras_alexnet.training import train
    try:
        result = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    except (config.ConfigError, FileNotFoundError, train.NonFiniteLossError,
            disk_full.DiskFull, layout.DataFolderError) as e:
        sys.stderr.write(f"bin/train: error: {e}\n")
        sys.exit(1)
    except KeyboardInterrupt:  # Ctrl-C twice: the first one saves, the second does not wait
        sys.stderr.write("\nbin/train: interrupted before the checkpoint was saved; the run "
                         "resumes from its last checkpoint\n")
        sys.exit(130)
    if result.get("status") == "preempted":
        # Saved and flushed. Exit now: winding down the input pipeline's threads and
        # TensorFlow's runtime took 7 s on a tiny run, 40 s on a loaded host, time a
        # preempted machine's grace period does not have.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def run():
    run_app(main, __name__, __doc__)


if __name__ == "__main__":
    run()
