"""NVIDIA Triton Inference Server's model folder, as the ONNX export writes it: one home for its names.

    EXPORT_DIR/config.pbtxt          the model configuration: platform onnxruntime_onnx, the
                                     input and output names, data types and dims, dynamic batching
    EXPORT_DIR/triton_labels.txt     config.pbtxt's label_filename: line i names class i
    EXPORT_DIR/<version>/model.onnx  the network (onnx_export.py), a folder per version

EXPORT_DIR is one model of a Triton model repository (`tritonserver
--model-repository=REPO` with EXPORT_DIR = REPO/<model name>); its name is the folder's
(config.pbtxt names no model, so Triton takes the folder's). Versions are integer folders,
as in TF Serving's model base path, written as export.write_version writes them.
config.pbtxt and the labels describe every version of the folder, so they are written
once: a later export whose network takes other inputs or has other classes is refused
rather than made to disagree with the versions there. Not tested against Triton itself
(it cannot be installed here): the names and dims are checked against the ONNX model.
"""
import os

import tensorflow as tf

from keras_alexnet.data import layout
from keras_alexnet.serving import export_folder

CONFIG_FILENAME = "config.pbtxt"
LABELS_FILENAME = "triton_labels.txt"
MODEL_FILENAME = "model.onnx"
PLATFORM = "onnxruntime_onnx"
# The largest batch Triton forms or accepts in one request: the paper's training batch.
# Dynamic batching (its defaults: no queue delay) gathers requests that wait at once up to it.
MAX_BATCH_SIZE = 128
_TYPES = {1: "TYPE_FP32"}  # onnx.TensorProto.FLOAT: the only type the network's tensors have


def config_text(inputs, outputs, max_batch_size=MAX_BATCH_SIZE):
    """config.pbtxt for [(name, onnx element type, dims without the batch)] in and out.

    The first output (the probabilities) gets the label file: Triton's classification
    extension then answers "score:index:label" for its top classes.
    """
    def entries(tensors, labelled):
        out = []
        for i, (name, element_type, dims) in enumerate(tensors):
            label = f'\n    label_filename: "{LABELS_FILENAME}"' if labelled and i == 0 else ""
            out.append(f'  {{\n    name: "{name}"\n    data_type: {_TYPES[element_type]}\n'
                       f'    dims: [ {", ".join(str(d) for d in dims)} ]{label}\n  }}')
        return ",\n".join(out)

    return (f'platform: "{PLATFORM}"\nmax_batch_size: {max_batch_size}\n'
            f"input [\n{entries(inputs, False)}\n]\noutput [\n{entries(outputs, True)}\n]\n"
            "dynamic_batching { }\n")


def labels_text(synsets, class_names):
    """triton_labels.txt: 'wnid name' per class in label order (newlines escaped as labels.txt's)."""
    return "".join(f"{layout.escape_field(s)} {layout.escape_field(n)}\n"
                   for s, n in zip(synsets, class_names))


def model_path(version_dir):
    return os.path.join(version_dir, MODEL_FILENAME)


def check_folder(export_dir, files):
    """FileExistsError unless export_dir can take an ONNX version with these {name: text} files.

    Refused: a folder of SavedModel versions (Triton would find no model.onnx in them), and
    a config.pbtxt or label file there that differs from this export's (another network,
    other classes, or edited by hand: either way not this program's to replace).
    """
    saved_models = [v for v in sorted(export_folder.list_versions(export_dir)) if tf.io.gfile.exists(
        os.path.join(export_dir, str(v), export_folder.SAVED_MODEL_FILENAME))]
    if saved_models:
        raise FileExistsError(
            f"--export_dir {export_dir} holds SavedModel versions ({', '.join(map(str, saved_models))}); "
            "an ONNX export goes into a Triton model folder of its own")
    for name, text in files.items():
        path = os.path.join(export_dir, name)
        if tf.io.gfile.exists(path) and _read(path) != text:
            raise FileExistsError(
                f"{path} describes another model (other inputs, outputs or classes, or edited); "
                "the versions there share it: export into a new folder, or remove it first")


def write_files(export_dir, files):
    """Writes the {name: text} files check_folder accepted that are not there yet (atomically)."""
    for name, text in files.items():
        path = os.path.join(export_dir, name)
        if not tf.io.gfile.exists(path):
            layout.atomic_write(path, text)


def check_not_triton(export_dir):
    """FileExistsError when export_dir is a Triton model folder (a SavedModel version there
    would be a version without model.onnx)."""
    path = os.path.join(export_dir, CONFIG_FILENAME)
    if tf.io.gfile.exists(path):
        raise FileExistsError(f"--export_dir {export_dir} is a Triton model folder ({path}); "
                              "a SavedModel goes into a model base path of its own")


def _read(path):
    with tf.io.gfile.GFile(path) as f:
        return f.read()
