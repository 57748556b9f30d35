"""bin/predict: top-5 classes, with names and scores, of image files through an export.

    bin/predict --saved_model=models/alexnet photo.jpg scan.png ...

Files that cannot be read or decoded are reported on stderr and skipped; the
exit status is 1 if any was.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import app, flags  # noqa: E402

from keras_alexnet.cli import run_app

_SAVED_MODEL = flags.DEFINE_string("saved_model", None, "SavedModel folder or model base path "
                                   "(its newest version).")
_TEN_CROP = flags.DEFINE_bool("ten_crop", False, "Average the paper's ten patches.")
flags.mark_flags_as_required(["saved_model"])


def main(argv):
    paths = argv[1:]
    if not paths:
        raise app.UsageError("give one or more image files after the flags")
    from keras_alexnet.serving import predict
    try:
        _, classify = predict.load_classifier(_SAVED_MODEL.value,
                                              "ten_crop" if _TEN_CROP.value else "serving_default")
    except (OSError, ValueError) as e:
        sys.stderr.write(f"bin/predict: error: --saved_model={_SAVED_MODEL.value}: {e}\n")
        sys.exit(1)
    skipped = 0
    for path in paths:
        prediction = predict.predict_file(classify, path)
        if prediction.error:
            skipped += 1
            sys.stderr.write(predict.format_prediction(prediction) + "\n")
        else:
            print(predict.format_prediction(prediction), flush=True)
    if skipped:
        sys.stderr.write(f"bin/predict: skipped {skipped} of {len(paths)} files\n")
        sys.exit(1)


def run():
    run_app(main, __name__, __doc__)


if __name__ == "__main__":
    run()
