"""bin/evaluate: top-1 and top-5 error of a checkpoint or an export, in the paper's table form.

    bin/evaluate --workdir=RUN --data='DATA/validation-*' [--checkpoint=best] [--ten_crop]
    bin/evaluate --saved_model=models/alexnet --data='DATA/validation-*' [--ten_crop]

--saved_model takes a SavedModel folder or a model base path (its newest version).
Several, comma-separated (--workdir=RUN1,RUN2,RUN3 or --saved_model=A,B), are an ensemble
(the paper's Sec. 6): their softmax outputs averaged (each over its ten crops with
--ten_crop), the ensemble's errors printed with each network's and their spread; the
members must classify the same classes at the same input size.
--resize=warp evaluates a checkpoint with Caffe's resize (both sides to the stored
size, aspect ratio ignored) instead of its config.input.resize; it needs records
that keep the original images (make_tfrecords --resize 0). An export warps if it
was exported so (bin/export --resize=warp, or an imported Caffe run's config).
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import app, flags  # noqa: E402

from keras_alexnet.cli import define_checkpoint_flag, run_app

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir to evaluate a checkpoint of; "
                               "several, comma-separated, are an ensemble.")
_SAVED_MODEL = flags.DEFINE_string("saved_model", None, "Export to evaluate (instead of "
                                   "--workdir); several, comma-separated, are an ensemble.")
_DATA = flags.DEFINE_string("data", None, "TFRecord file pattern, e.g. 'DATA/validation-*'.")
_CHECKPOINT = define_checkpoint_flag()
_DATA_DIR = flags.DEFINE_string("data_dir", None, "With --workdir: folder with labels.txt and "
                                "stats.npz (default: the run's config.input.data_dir).")
_TEN_CROP = flags.DEFINE_bool("ten_crop", False, "The paper's ten patches, softmax averaged.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Images per step.", lower_bound=1)
_RESIZE = flags.DEFINE_enum("resize", None, ["shorter_side", "warp"], "With --workdir: how "
                            "images are brought to the stored size (default: the run's "
                            "config.input.resize): the paper's shorter side, or Caffe's warp.")
_JSON = flags.DEFINE_bool("json", False, "Also print the result as one JSON line.")
flags.mark_flags_as_required(["data"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if bool(_WORKDIR.value) == bool(_SAVED_MODEL.value):
        raise app.UsageError("give exactly one of --workdir and --saved_model")
    if _SAVED_MODEL.value and _RESIZE.value:
        raise app.UsageError("--resize is for --workdir: an export resizes as it was exported "
                             "(bin/export --resize)")
    workdirs, saved_models = (_paths(flag) for flag in (_WORKDIR, _SAVED_MODEL))
    if len(workdirs) + len(saved_models) > 1:
        return _ensemble(workdirs, saved_models)
    from keras_alexnet.runs import evaluate as run_evaluate
    from keras_alexnet.serving import evaluate
    try:
        if _WORKDIR.value:
            result = evaluate.evaluate_checkpoint(
                _WORKDIR.value, _DATA.value, checkpoint=_CHECKPOINT.value,
                ten_crop=_TEN_CROP.value, batch_size=_BATCH_SIZE.value, data_dir=_DATA_DIR.value,
                resize=_RESIZE.value)
        else:
            result = evaluate.evaluate_saved_model(_SAVED_MODEL.value, _DATA.value,
                                                   ten_crop=_TEN_CROP.value,
                                                   batch_size=_BATCH_SIZE.value)
    except (ValueError, FileNotFoundError) as e:
        sys.stderr.write(f"bin/evaluate: error: {e}\n")
        sys.exit(1)
    print(run_evaluate.format_table([result], _DATA.value))
    if _JSON.value:
        print(json.dumps(result.as_dict()))


def _paths(flag):
    paths = [p.strip() for p in (flag.value or "").split(",")]
    if flag.value and not all(paths):
        raise app.UsageError(f"--{flag.name}={flag.value}: an empty path in the list")
    return [p for p in paths if p]


def _ensemble(workdirs, saved_models):
    """Sec. 6: the members' softmax outputs averaged; each member's errors and the spread too."""
    if _RESIZE.value:
        raise app.UsageError("--resize is for a single --workdir")
    from keras_alexnet.study import ensemble
    try:
        found = ensemble.members(workdirs, saved_models, checkpoint=_CHECKPOINT.value,
                                 data_dir=_DATA_DIR.value)
        result, singles = ensemble.evaluate_ensemble(found, _DATA.value, ten_crop=_TEN_CROP.value,
                                                     batch_size=_BATCH_SIZE.value)
    except (ValueError, FileNotFoundError) as e:
        sys.stderr.write(f"bin/evaluate: error: {e}\n")
        sys.exit(1)
    print(ensemble.format_report(result, singles, _DATA.value))
    if _JSON.value:
        print(json.dumps({**result.as_dict(), "members": [r.as_dict() for r in singles],
                          "members_spread": ensemble.spread(singles)}))


def run():
    run_app(main, __name__, __doc__)


if __name__ == "__main__":
    run()
