"""bin/predict: top-5 classes, with names and scores, of image files through an export.

    bin/predict --saved_model=models/alexnet photo.jpg scan.png ...        # in this process
    bin/predict --model=triton_models/alexnet photo.jpg ...                # any export format
    bin/predict --server=localhost:8500 photo.jpg scan.png ...             # TF Serving, gRPC
    bin/predict --rest=http://localhost:8501 photo.jpg scan.png ...        # TF Serving, REST

--model recognises the export by what it holds: a SavedModel (as --saved_model), a .onnx
file or a folder holding model.onnx (bin/export --format=onnx; run with ONNX Runtime, the
images preprocessed here as the SavedModel would), a .tflite file or a folder holding
model.tflite (bin/export --format=tflite; run with LiteRT). Exactly one of --saved_model, --model, --server and --rest. Files go --batch_size to a
request. Files that cannot be read or decoded are reported on stderr and
skipped, the others still classified; the exit status is 1 if any was. A
server that does not answer (down, --timeout, unknown --model_name, --version
or --signature) is an error: status 1.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import app, flags  # noqa: E402

from keras_alexnet.cli import run_app

_SAVED_MODEL = flags.DEFINE_string("saved_model", None, "SavedModel folder or model base path "
                                   "(its newest version), loaded in this process.")
_MODEL = flags.DEFINE_string("model", None, "An export of any format, run in this process: a "
                             "SavedModel folder or model base path, a .onnx file or a folder "
                             "holding model.onnx (itself or its newest version), a .tflite file.")
_SERVER = flags.DEFINE_string("server", None, "TF Serving's gRPC address HOST:PORT (port 8500).")
_REST = flags.DEFINE_string("rest", None, "TF Serving's REST address http://HOST:PORT (port 8501).")
_MODEL_NAME = flags.DEFINE_string("model_name", "alexnet", "With --server/--rest: the served "
                                  "model's name (TF Serving's MODEL_NAME).")
_VERSION = flags.DEFINE_integer("version", None, "With --server/--rest: this version of the "
                                "model (default: the newest the server has loaded).")
_SIGNATURE = flags.DEFINE_string("signature", None, "serving_default (the centre patch) or "
                                 "ten_crop (the paper's ten patches averaged).")
_TEN_CROP = flags.DEFINE_bool("ten_crop", False, "Shorthand for --signature=ten_crop.")
_TIMEOUT = flags.DEFINE_float("timeout", 30.0, "With --server/--rest: seconds to wait for each "
                              "answer, whole (a server sending it slowly is cut off).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Files per request.")


def _signature():
    if _TEN_CROP.value and _SIGNATURE.value not in (None, "ten_crop"):
        raise app.UsageError(f"--ten_crop and --signature={_SIGNATURE.value} disagree")
    return "ten_crop" if _TEN_CROP.value else (_SIGNATURE.value or "serving_default")


def _classifier(signature):
    from keras_alexnet.serving import client, predict
    remote = dict(model_name=_MODEL_NAME.value, signature=signature, version=_VERSION.value,
                  timeout=_TIMEOUT.value)
    if _SERVER.value:
        return client.GrpcClassifier(_SERVER.value, **remote)
    if _REST.value:
        return client.RestClassifier(_REST.value, **remote)
    if _MODEL.value:
        from keras_alexnet.serving import runtimes
        return runtimes.load_classifier(_MODEL.value, signature)
    return predict.load_classifier(_SAVED_MODEL.value, signature)


def main(argv):
    paths = argv[1:]
    if not paths:
        raise app.UsageError("give one or more image files after the flags")
    given = [f"--{f.name}" for f in (_SAVED_MODEL, _MODEL, _SERVER, _REST) if f.value]
    if len(given) != 1:
        raise app.UsageError("give exactly one of --saved_model, --model, --server (gRPC) and "
                             "--rest" + (f", not {' and '.join(given)}" if given else ""))
    if _BATCH_SIZE.value < 1:
        raise app.UsageError(f"--batch_size={_BATCH_SIZE.value}: must be at least 1")
    if not _TIMEOUT.value > 0 or _TIMEOUT.value == float("inf"):
        raise app.UsageError(f"--timeout={_TIMEOUT.value:g}: must be a positive number of seconds")
    signature = _signature()
    source = f"{given[0]}={(_SAVED_MODEL.value or _MODEL.value or _SERVER.value or _REST.value)}"
    from keras_alexnet.serving import client, predict
    skipped = 0
    try:
        classifier = _classifier(signature)
        for prediction in predict.predict_paths(classifier, paths, _BATCH_SIZE.value):
            if prediction.error:
                skipped += 1
                sys.stderr.write(predict.format_prediction(prediction) + "\n")
            else:
                if prediction.note:
                    sys.stderr.write(f"{prediction.path}: {prediction.note}\n")
                print(predict.format_prediction(prediction), flush=True)
    except (OSError, ValueError, client.ServerError) as e:
        # runtimes' errors name the --model path already; the others are prefixed with the flag.
        named = bool(_MODEL.value) and str(e).startswith(_MODEL.value)
        sys.stderr.write(f"bin/predict: error: {'' if named else source + ': '}{e}\n")
        sys.exit(1)
    if skipped:
        sys.stderr.write(f"bin/predict: skipped {skipped} of {len(paths)} files\n")
        sys.exit(1)


def run():
    run_app(main, __name__, __doc__)


if __name__ == "__main__":
    run()
