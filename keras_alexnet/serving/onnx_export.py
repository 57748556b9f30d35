"""bin/export --format=onnx: the network as an ONNX model in Triton Inference Server's layout.

The graph converted is the SavedModel's predict_images (export.ServingModule: preprocessed
float32 images in; its network call has no tf.cond, see ServingModule.logits), through
tf2onnx's Python API, in float32:

    input   images         float32 [N, S, S, 3]  preprocessed as predict_images takes them
    output  probabilities  float32 [N, C]        the softmax
            logits         float32 [N, C]        fc8's output

The top-k and the class names are left to the client (bin/predict --model) or to Triton's
classification extension (triton_labels.txt). Decoding and resizing stay out of the graph
(ONNX has no image decoder): the client preprocesses as the SavedModel's serving_default
does; the mean image, labels and preprocessing settings travel in the model's
metadata_props (runtimes/model_info.py), so the file is self-contained.

Opset 13. ONNX's LRN, which tf2onnx maps TensorFlow's LRN onto (alpha times the window
size: ONNX divides by it, TensorFlow does not), has been float32 since opset 1 (13 added
bfloat16 only), so LRN asks for nothing newer; 13 is the oldest opset in which Softmax is
TensorFlow's (over the last axis alone) and Split/Squeeze take their axes as inputs (the
dynamic batch). The lowest opset that holds the network runs on the most runtimes and
converters: ONNX Runtime from 1.6 on (per its compatibility table), so the onnxruntime
backend of any recent Triton release (not run here), and the converters that stop at
opset 13-16.

Before anything is written, ONNX Runtime runs the converted model on two synthetic
pictures and its logits are compared with TensorFlow's (PARITY_TOLERANCE): a converter
that mistranslates an op fails the export instead of shipping.
"""
import logging as py_logging
import os

import numpy as np
import tensorflow as tf
from absl import logging

from keras_alexnet import evaluation
from keras_alexnet.serving import export, triton
from keras_alexnet.serving.runtimes import model_info

OPSET = 13
INPUT = "images"
OUTPUTS = ("probabilities", "logits")
# |ONNX Runtime - TensorFlow| of the logits, over the logits' spread (max - min): float32
# sums in another order differ by a few ulps of the partial sums, ~1e-6 of the spread
# here (tests/test_onnx_export.py); an op converted wrongly is off by far more.
PARITY_TOLERANCE = 1e-4


def convert(module):
    """onnx.ModelProto of the network of an export.ServingModule (its predict_images' graph)."""
    import tf2onnx

    spec = tf.TensorSpec([None, module.image_size, module.image_size, 3], tf.float32, name=INPUT)

    @tf.function
    def network(images):
        logits, probabilities = evaluation.logits_and_probabilities(module.logits, images)
        return {"probabilities": probabilities, "logits": logits}

    quiet = py_logging.getLogger("tf2onnx")
    level = quiet.level
    quiet.setLevel(py_logging.ERROR)  # tf2onnx logs every optimizer pass at INFO
    try:
        proto, _ = tf2onnx.convert.from_function(network, input_signature=[spec], opset=OPSET)
    finally:
        quiet.setLevel(level)
    return proto


def io_spec(proto):
    """([(name, element type, dims without the batch)] of the inputs, the same of the outputs)."""
    def spec(values):
        return [(v.name, v.type.tensor_type.elem_type,
                 [d.dim_value for d in v.type.tensor_type.shape.dim[1:]]) for v in values]
    return spec(proto.graph.input), spec(proto.graph.output)


def parity(proto, module, images=None):
    """Max |logits of ONNX Runtime - TensorFlow's| over the logits' spread, on images
    (default: export.synthetic_images through the module's preprocessing)."""
    import onnxruntime

    if images is None:
        images = module.centre_patches(tf.constant(export.synthetic_images())).numpy()
    session = onnxruntime.InferenceSession(proto.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    (ours,) = session.run(["logits"], {INPUT: images})
    expected = module.logits(tf.constant(images)).numpy()
    return float(np.abs(ours - expected).max() / max(np.ptp(expected), 1e-6))


def export_run(run, export_dir, *, version=None):
    """Writes a restore.RestoredRun as EXPORT_DIR/<version>/model.onnx with config.pbtxt and
    triton_labels.txt beside the versions; returns the version's path.

    A folder that cannot take it (triton.check_folder) or an existing --version is refused
    before the conversion.
    """
    import onnx

    size, classes = run.image_size, len(run.synsets)
    inputs = [(INPUT, onnx.TensorProto.FLOAT, [size, size, 3])]
    outputs = [(name, onnx.TensorProto.FLOAT, [classes]) for name in OUTPUTS]
    files = {triton.CONFIG_FILENAME: triton.config_text(inputs, outputs),
             triton.LABELS_FILENAME: triton.labels_text(run.synsets, run.class_names)}
    triton.check_folder(export_dir, files)
    if version is not None and tf.io.gfile.exists(os.path.join(export_dir, str(version))):
        raise FileExistsError(f"{os.path.join(export_dir, str(version))} exists; a version is "
                              "never overwritten")
    metadata = export.run_metadata(run)
    module = export.serving_module(run, metadata)
    proto = convert(module)
    converted = io_spec(proto)
    if (sorted(converted[0]), sorted(converted[1])) != (sorted(inputs), sorted(outputs)):
        raise ValueError(f"tf2onnx gave a model of inputs {converted[0]} and outputs "
                         f"{converted[1]}, not {inputs} and {outputs}; nothing written")
    difference = parity(proto, module)
    if not difference <= PARITY_TOLERANCE:
        raise ValueError(f"the ONNX model computes other logits than TensorFlow (off by "
                         f"{difference:.2g} of their spread); nothing written")
    info = model_info.ModelInfo(metadata, run.synsets, run.class_names, run.mean_image, run.std)
    onnx.helper.set_model_props(proto, info.to_strings())
    export.make_export_dir(export_dir)
    triton.write_files(export_dir, files)
    path = export.write_version(
        export_dir, version, lambda tmp: onnx.save_model(proto, triton.model_path(tmp)))
    logging.info("exported %s (checkpoint %s)", path, run.checkpoint_path)
    return path


def export_from_workdir(workdir, export_dir, checkpoint="best", *, data_dir=None, resize=None,
                        **kwargs):
    """Restores WORKDIR's checkpoint and exports it as ONNX; returns the new version's path."""
    from keras_alexnet.runs import restore

    return export_run(restore.restore_run(workdir, checkpoint, data_dir=data_dir, resize=resize),
                      export_dir, **kwargs)

