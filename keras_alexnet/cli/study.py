r"""bin/study: the paper's claims re-tested, each a variant of one baseline config, over seeds.

    bin/study --config=configs/imagenette.py --config.input.data_dir=/data/imagenette-144 \
        --out=/runs/study --variants=baseline,tanh,no_lrn --seeds=0,1

Trains every (variant, seed) as an ordinary bin/train run in OUT/runs/<variant>-seed<k>/,
one process each, then writes OUT/study.json, OUT/study.md (mean and range over seeds,
difference to the baseline, verdict) and OUT/figure1.png (ReLU vs tanh training error).
Re-running the same command resumes: finished runs are kept, interrupted ones resume from
their checkpoint. --notrain rewrites the table from what is on disk.

Variants: baseline, tanh (Sec. 3.1), no_lrn (3.3), non_overlapping_pool (3.4), one_tower
and one_tower_half (3.2), no_lighting (4.1), no_dropout (4.2), centre_crop_no_flip (4.1),
no_weight_decay (5), no_conv4 (7); ten crops vs the centre crop (Sec. 6) comes from the
baseline runs. Every difference gets a 95% interval over seeds and the smallest effect the
seeds could detect (keras_alexnet/study/statistics.py). The regularizer claims need a
baseline that overfits: --config=configs/imagenette_overfit.py (30 epochs); the table shows
the baseline's train/validation gap and says whether it does. --retabulate rewrites the
table of a study.json whose run folders are gone (docs/study).

Each run takes as long as one bin/train of the config: a quick-recipe run (8 epochs) about
4 minutes on 2 idle AVX-512-BF16 cores, so the default 11 variants x 2 seeds about
1.5 hours, 3-4x that on AVX2-only float32.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # keep TensorFlow's start-up chatter out

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from keras_alexnet import configs  # noqa: E402
from keras_alexnet.cli import run_app  # noqa: E402
from keras_alexnet.study.variants import DEFAULT_VARIANTS  # noqa: E402

# The package's copy: an installed alexnet-study has it without the repository.
DEFAULT_CONFIG = configs.path("imagenette.py")
_CONFIG = config_flags.DEFINE_config_file(
    "config", DEFAULT_CONFIG,
    "The baseline config file (default: the quick recipe, configs/imagenette.py).",
    lock_config=True)
_OUT = flags.DEFINE_string("out", None, "The study folder: runs/, study.json, study.md, figure1.png.")
_VARIANTS = flags.DEFINE_list("variants", DEFAULT_VARIANTS, "Variants to run, comma-separated.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1"], "Seeds (config.seed and config.model.seed).")
_THRESHOLDS = flags.DEFINE_list(
    "error_thresholds", ["0.7", "0.6", "0.5"],
    "Training-error thresholds for ReLU vs tanh steps (the paper's 25% is out of reach of a "
    "short run); a threshold a run never reaches is reported as not reached.")
_EVAL_TRAIN = flags.DEFINE_bool(
    "eval_train_split", True, "After each run, evaluate its final weights on the training split "
    "(evaluation mode) for the dropout claim's training error.")
_TRAIN = flags.DEFINE_bool("train", True, "Train what is not finished; --notrain only rewrites "
                           "the table from the runs on disk.")
_RETABULATE = flags.DEFINE_bool(
    "retabulate", False, "Rewrite OUT/study.json and study.md from the per-run numbers the "
    "existing OUT/study.json holds (no runs/ needed, e.g. docs/study); figure1.png is kept. "
    "The config, --variants and --seeds are then study.json's own.")
flags.mark_flags_as_required(["out"])


def _numbers(flag, values, kind, check, what):
    try:
        numbers = [kind(v) for v in values]
    except ValueError:
        numbers = None
    if not numbers or not all(map(check, numbers)):
        raise app.UsageError(f"--{flag}={','.join(values)}: expected {what}")
    return numbers


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    seeds = _numbers("seeds", _SEEDS.value, int, lambda s: s >= 0, "non-negative integers")
    thresholds = _numbers("error_thresholds", _THRESHOLDS.value, float, lambda t: 0 < t < 1,
                          "error rates between 0 and 1, e.g. 0.7,0.5")
    from keras_alexnet import config as config_lib
    from keras_alexnet.study import runner
    try:
        if _RETABULATE.value:
            runner.retabulate(_OUT.value)
            print(f"table rewritten in {_OUT.value}")
            return
        _, failed, interrupted = runner.run_study(
            _CONFIG.value, _OUT.value, _VARIANTS.value, seeds, thresholds=thresholds,
            eval_train_split=_EVAL_TRAIN.value, train=_TRAIN.value,
            base_config_file=config_flags.get_config_filename(flags.FLAGS["config"]))
    except (config_lib.ConfigError, FileNotFoundError) as e:
        sys.stderr.write(f"bin/study: error: {e}\n")
        sys.exit(1)
    if failed or interrupted:
        sys.exit(1)


def run():
    run_app(main, __name__, __doc__)


if __name__ == "__main__":
    run()
