"""The first training steps, layer by layer: one JSON line per step (training/first_steps.py).

    bin/first_steps --config=configs/imagenette_paper.py:paper_init \
        --config.input.data_dir=DATA --steps=30 [--config.model.dropout_scaling=inverted] [--out=FILE]
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from keras_alexnet.cli import run_app  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/imagenette_paper.py.",
                                          lock_config=True)
_STEPS = flags.DEFINE_integer("steps", 30, "Training steps to run.")
_OUT = flags.DEFINE_string("out", None, "Also write the JSON lines to this file.")
flags.mark_flags_as_required(["config"])


def main(argv):
    from keras_alexnet.training import first_steps
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = _CONFIG.value
    if not config.input.data_dir:
        sys.stderr.write("bin/first_steps: error: --config.input.data_dir must name a folder written "
                         "by bin/make_tfrecords\n")
        sys.exit(1)
    out = open(_OUT.value, "w") if _OUT.value else None

    def emit(row):
        line = json.dumps(row)
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()

    try:
        first_steps.run(config, _STEPS.value, emit)
    finally:
        if out:
            out.close()


def run():
    run_app(main, __name__, __doc__)


if __name__ == "__main__":
    run()
