"""bin/export: a training run's checkpoint as a SavedModel in TF Serving's model base path.

    bin/export --workdir=RUN --export_dir=models/alexnet [--checkpoint=best|latest|PATH]
    bin/export --workdir=RUN --format=keras --export_dir=alexnet.keras
    bin/export --workdir=RUN --format=onnx --export_dir=triton_models/alexnet

Writes models/alexnet/<N>/ with N one more than the newest version there
(never overwriting one); point TF Serving at models/alexnet (see BUILD.md).
N/assets.extra/MODEL_CARD.md says what the model is: its data, the validation
errors the run reached, preprocessing, signatures, labels, config, how to serve it.
--resize=warp serves with Caffe's resize (both sides to the stored size, aspect
ratio ignored) instead of the run's config.input.resize.

--format=keras writes one .keras file instead (keras_alexnet.AlexNet(weights=RUN)
saved: the network with a softmax `predictions` layer, the mean image and the
labels inside), which keras.saving.load_model reads after `import keras_alexnet`.

--format=tflite writes EXPORT_DIR/<N>/model.tflite for LiteRT (preprocessed float32
images in, probabilities out; the labels and mean image beside it), in float32 or, with
--quantize=dynamic|int8, quantized (serving/tflite_export.py says where it stays float).

--format=onnx writes the network (preprocessed images in, probabilities and logits out;
opset 13, serving/onnx_export.py) as triton_models/alexnet/<N>/model.onnx, versioned as the
SavedModel, with the config.pbtxt and triton_labels.txt NVIDIA Triton Inference Server reads
beside the versions; bin/predict --model runs it with ONNX Runtime.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import app, flags  # noqa: E402

from keras_alexnet.cli import define_checkpoint_flag, run_app

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir (config.json, best/, checkpoints/).")
_EXPORT_DIR = flags.DEFINE_string("export_dir", None, "Model base path; a new version folder goes in it.")
_CHECKPOINT = define_checkpoint_flag()
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Folder with labels.txt and stats.npz "
                                "(default: the run's config.input.data_dir).")
_VERSION = flags.DEFINE_integer("version", None, "Version number (default: newest + 1); "
                                "an existing version is an error.", lower_bound=0)
_WARMUP = flags.DEFINE_integer("num_warmup_images", 4, "Validation images in the TF Serving "
                               "warmup requests (synthetic pictures when there are none).",
                               lower_bound=0)
_MODEL_NAME = flags.DEFINE_string("model_name", None, "Model name in the warmup requests "
                                  "(default: the export_dir's last component).")
_RESIZE = flags.DEFINE_enum("resize", None, ["shorter_side", "warp"], "How served images are "
                            "brought to the stored size (default: the run's config.input.resize).")
_FORMAT = flags.DEFINE_enum("format", "saved_model", ["saved_model", "keras", "onnx", "tflite"],
                            "saved_model: a TF Serving model version; keras: one .keras file "
                            "(--export_dir names it, ending in .keras); onnx: a model version "
                            "in Triton Inference Server's model folder; tflite: a LiteRT "
                            "model version (EXPORT_DIR/<N>/model.tflite).")
_QUANTIZE = flags.DEFINE_enum("quantize", "none", ["none", "dynamic", "int8"], "With "
                              "--format=tflite: dynamic (int8 weights) or int8 (int8 weights "
                              "and activations, calibrated on the validation split).")
_CALIBRATION = flags.DEFINE_integer("calibration_images", 200, "With --quantize=int8: "
                                    "validation images the activations' ranges are calibrated "
                                    "on.", lower_bound=1)
flags.mark_flags_as_required(["workdir", "export_dir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _FORMAT.value != "tflite" and (_QUANTIZE.present or _CALIBRATION.present):
        raise app.UsageError("--quantize and --calibration_images are for --format=tflite")
    exporters = {"saved_model": _export_saved_model, "keras": _export_keras, "onnx": _export_onnx,
                 "tflite": _export_tflite}
    try:
        exporters[_FORMAT.value]()
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        sys.stderr.write(f"bin/export: error: {e}\n")
        sys.exit(1)


def _export_saved_model():
    from keras_alexnet.serving import export, export_folder
    path = export.export_from_workdir(
        _WORKDIR.value, _EXPORT_DIR.value, _CHECKPOINT.value, data_dir=_DATA_DIR.value,
        version=_VERSION.value, num_warmup_images=_WARMUP.value, model_name=_MODEL_NAME.value,
        resize=_RESIZE.value)
    print(f"exported {path}")
    print(f"model card: {export_folder.card_path(path)}")
    print(f"signatures: {export.SERVING_DEFAULT} (image_bytes), {export.PREDICT_IMAGES} (images), "
          f"{export.TEN_CROP} (image_bytes)")


def _export_onnx():
    if _MODEL_NAME.value or _WARMUP.present:
        raise app.UsageError("--model_name and --num_warmup_images are for --format=saved_model "
                             "(Triton names the model after its folder)")
    from keras_alexnet.serving import onnx_export, triton
    path = onnx_export.export_from_workdir(
        _WORKDIR.value, _EXPORT_DIR.value, _CHECKPOINT.value, data_dir=_DATA_DIR.value,
        resize=_RESIZE.value, version=_VERSION.value)
    print(f"exported {triton.model_path(path)} (ONNX opset {onnx_export.OPSET})")
    print(f"Triton model folder: {_EXPORT_DIR.value} ({triton.CONFIG_FILENAME}, "
          f"{triton.LABELS_FILENAME}); "
          f"bin/predict --model={_EXPORT_DIR.value} runs its newest version")


def _export_keras():
    if _RESIZE.value or _VERSION.value is not None:
        raise app.UsageError("--resize and --version are for --format=saved_model or onnx")
    from keras_alexnet import applications
    from keras_alexnet.training import workdir as workdir_lib
    checkpoint = workdir_lib.checkpoint_path(_WORKDIR.value, _CHECKPOINT.value)
    path = applications.save_keras(checkpoint, _EXPORT_DIR.value, data_dir=_DATA_DIR.value)
    print(f"exported {path}")
    print("load it with: import keras_alexnet, keras; keras.saving.load_model(path)")


def _export_tflite():
    if _WARMUP.present or _MODEL_NAME.value:
        raise app.UsageError("--num_warmup_images and --model_name are for --format=saved_model")
    from keras_alexnet.serving import tflite_export
    try:
        path = tflite_export.export_from_workdir(
            _WORKDIR.value, _EXPORT_DIR.value, _CHECKPOINT.value, data_dir=_DATA_DIR.value,
            resize=_RESIZE.value, quantize=_QUANTIZE.value, version=_VERSION.value,
            num_calibration_images=_CALIBRATION.value)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        sys.stderr.write(f"bin/export: error: {e}\n")
        sys.exit(1)
    print(f"exported {path}")


def run():
    run_app(main, __name__, __doc__)


if __name__ == "__main__":
    run()
