"""LiteRT (TFLite) export: a run's network as EXPORT_DIR/<version>/model.tflite, float32 or quantized.

    bin/export --workdir=RUN --format=tflite --export_dir=models/alexnet_tflite
    bin/export --workdir=RUN --format=tflite --quantize=dynamic --export_dir=models/alexnet_dynamic
    bin/export --workdir=RUN --format=tflite --quantize=int8 --export_dir=models/alexnet_int8

The model takes what the SavedModel's predict_images takes (preprocessed float32 images
[N, S, S, 3]) and returns `probabilities` and `logits` float32 [N, C] (one signature,
tflite_runtime.SIGNATURE); the labels and the mean image go beside it (tflite_runtime.py
lists the folder). It is converted by tf.lite.TFLiteConverter from a function of the Keras
model's inference path built here (evaluation.logits_and_probabilities, no tf.cond, the
weights frozen into constants), not from the SavedModel: the SavedModel's graph also
decodes images, which LiteRT has no kernels for.

--quantize:
    none     float32 throughout (the default).
    dynamic  dynamic-range quantization: the weights of the convolutions and fully connected
             layers stored as int8 (the file about 4x smaller; the converter leaves weights of
             under 1,024 values float, as the test model's fc8), activations float32; those
             layers quantize their inputs on the fly. Needs no data.
    int8     full-integer quantization: weights and activations int8, the activations' ranges
             calibrated on up to --calibration_images images of the run's validation split,
             read through the project's input pipeline (the evaluation's centre patch).
             Input and output stay float32 (the model quantizes and dequantizes them), so
             the three files are used the same way.

LRN: LiteRT's LOCAL_RESPONSE_NORMALIZATION kernel is float32 only. With dynamic ranges
the activations are float anyway, so lrn1 and lrn2 run as in the float model. With int8
the converter (TensorFlow 2.21) keeps the two LRNs float32 and puts a DEQUANTIZE before
and a QUANTIZE after each (it does so even when asked for int8 ops only); everything else
(convolutions, pooling, the tower splits and concatenations, fc6-fc8, softmax) is int8.
The cost: the two LRNs in float (conv1's 55x55x96 and conv2's 27x27x256 maps at 227
pixels, 477k values an image, a few multiplications each against conv2's 224M
multiply-adds) and a conversion of those maps each way; and LiteRT's XNNPACK delegate has
no LRN (nor the shape arithmetic of a batch of any size), so the graph runs as several
delegated parts with these ops between them in every mode (4 in float32 and dynamic, 9 in
int8, counted on the tiny test model). metadata.json's `float_ops` lists the ops computed
in float (float_ops()); what it costs in time and accuracy is `bin/benchmark tflite`'s
(docs/BENCHMARKS.md).
"""
import collections
import io
import json
import os

import numpy as np
import tensorflow as tf
from absl import logging

from keras_alexnet import evaluation
from keras_alexnet.data import input_pipeline, layout
from keras_alexnet.serving import export, export_folder, tflite_runtime

NONE, DYNAMIC, INT8 = "none", "dynamic", "int8"
QUANTIZATIONS = (NONE, DYNAMIC, INT8)
CALIBRATION_IMAGES = 200  # TensorFlow's guide asks for ~100-500 representative samples
VALIDATION = "validation"


def inference_function(model):
    """A concrete function images [None, S, S, 3] -> {logits, probabilities}, weights as constants.

    The Keras model's inference path only: no tf.cond around it (the SavedModel's empty-batch
    case; tflite_runtime answers an empty batch without running the model), no variables
    (the converter would keep Keras 3's as resource variables, which the int8 calibration
    cannot read).
    """
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    size = int(model.input_shape[1])
    spec = tf.TensorSpec([None, size, size, 3], tf.float32, name=tflite_runtime.INPUT)

    @tf.function(input_signature=[spec])
    def predict_images(images):
        logits, probabilities = evaluation.logits_and_probabilities(
            lambda x: model(x, training=False), images)
        return {tflite_runtime.LOGITS: logits, tflite_runtime.PROBABILITIES: probabilities}

    traced = predict_images.get_concrete_function()
    frozen = convert_variables_to_constants_v2(traced)

    @tf.function(input_signature=[spec])
    def named(images):  # freezing flattens the outputs: their names back, for the signature
        return tf.nest.pack_sequence_as(traced.structured_outputs, frozen(images))

    return named.get_concrete_function()


def convert(model, quantize=NONE, calibration_images=None):
    """The .tflite bytes of a Keras model; calibration_images: a callable giving an iterable of
    float32 [S, S, 3] images (int8 only)."""
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"--quantize={quantize}: one of {', '.join(QUANTIZATIONS)}")
    # With a trackable object (any: the weights are constants already) the converter writes
    # the function's signature (inputs and outputs by name); without one, none.
    converter = tf.lite.TFLiteConverter.from_concrete_functions([inference_function(model)],
                                                                tf.Module())
    if quantize != NONE:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == INT8:
        if calibration_images is None:
            raise ValueError("--quantize=int8 needs calibration images")
        converter.representative_dataset = lambda: ([image[None]] for image in calibration_images())
        # Builtin ops, not TFLITE_BUILTINS_INT8 only: the LRNs stay float32 (module docstring).
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        return converter.convert()
    except Exception as e:  # the converter's errors are of several internal types
        raise ValueError(f"the LiteRT converter failed ({str(e).strip().splitlines()[-1]})") from None


def check_calibration_data(data_dir):
    """Raises FileNotFoundError (naming the folder) when data_dir has no validation shards."""
    pattern = layout.shard_pattern(data_dir, VALIDATION)
    if not tf.io.gfile.glob(pattern):
        raise FileNotFoundError(
            f"--quantize=int8 calibrates on the run's validation split, and {data_dir} holds no "
            f"{os.path.basename(pattern)} shards: convert it (bin/make_tfrecords --split="
            f"{VALIDATION}) or pass --data_dir")


def calibration_images(run, num_images=CALIBRATION_IMAGES):
    """A callable giving the first num_images preprocessed validation images of a RestoredRun:
    the input pipeline's evaluation path (centre patch, the run's normalization)."""
    check_calibration_data(run.data_dir)
    config = {"input": dict(run.config.get("input", {}), normalization=run.normalization,
                            label_offset=run.label_offset),
              "model": {"image_size": run.image_size}}

    def images():
        dataset = input_pipeline.from_input_config(config, VALIDATION, 1, False,
                                                   data_dir=run.data_dir, repeat=False)
        for batch, _ in dataset.take(num_images):
            yield batch.numpy()[0]
    return images


def float_ops(content):
    """{op name: count} of the ops of a .tflite model that compute in float32.

    An op computes in float when its first input is float32 and none of its inputs is int8
    (a dynamic-range convolution, float32 in with int8 weights, counts as quantized);
    QUANTIZE, which turns float into int8, does not count.
    """
    from ai_edge_litert import schema_py_generated as schema
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    counts = collections.Counter()
    for graph in model.subgraphs:
        for op in graph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
            types = [graph.tensors[i].type for i in op.inputs if i >= 0]
            if name != "QUANTIZE" and types and types[0] == schema.TensorType.FLOAT32 and \
                    schema.TensorType.INT8 not in types:
                counts[name] += 1
    return dict(sorted(counts.items()))


def _refuse_a_saved_model_base_path(export_dir):
    """TF Serving would load a .tflite version as a SavedModel, fail and stop serving the model."""
    for version in export_folder.list_versions(export_dir):
        if tf.io.gfile.exists(os.path.join(export_dir, str(version),
                                           export_folder.SAVED_MODEL_FILENAME)):
            raise FileExistsError(
                f"--export_dir {export_dir} holds SavedModel versions (TF Serving's model base "
                f"path): a .tflite version there would be the newest TF Serving tries to load; "
                f"give the LiteRT export its own folder (e.g. {export_dir.rstrip('/')}_tflite)")


def save(content, export_dir, files, *, version=None):
    """Writes model.tflite and files ({name: bytes}) as EXPORT_DIR/<version>; returns its path.

    Through export.write_version, as the SavedModel and the ONNX model: written under a
    hidden marked temporary name, renamed when complete; an existing version is never
    overwritten.
    """
    _refuse_a_saved_model_base_path(export_dir)

    def write(tmp):
        for name, data in {tflite_runtime.MODEL_FILENAME: content, **files}.items():
            with tf.io.gfile.GFile(os.path.join(tmp, name), "wb") as f:
                f.write(data)

    return export.write_version(export_dir, version, write)


def _preprocessing_npz(mean_image, std):
    buffer = io.BytesIO()
    np.savez(buffer, mean_image=np.asarray(mean_image, np.float32),
             std=np.asarray(std, np.float32))
    return buffer.getvalue()


def export_run(run, export_dir, *, quantize=NONE, version=None,
               num_calibration_images=CALIBRATION_IMAGES):
    """Converts a restore.RestoredRun's model and writes it as a new version; returns its path."""
    validation = calibration_images(run, num_calibration_images) if quantize == INT8 else None
    used = []  # the calibration images the converter read (the split may hold fewer)

    def counted():
        for image in validation():
            used.append(image.shape)
            yield image
    content = convert(run.model, quantize, counted if validation else None)
    tflite_runtime.check_model_bytes(content, "the converter's output")
    metadata = {"config": run.config, "checkpoint": run.checkpoint_path,
                "image_size": run.image_size, "resize": int(run.mean_image.shape[0]),
                "label_offset": run.label_offset, "normalization": run.normalization,
                "jpeg_quality": run.jpeg_quality, "resize_mode": run.resize_mode,
                "quantize": quantize, "float_ops": float_ops(content),
                "tensorflow": tf.__version__}
    if quantize == INT8:
        metadata["calibration"] = {"data_dir": run.data_dir, "split": VALIDATION,
                                   "images": len(used)}
    files = {tflite_runtime.CHECKSUM_FILENAME: tflite_runtime.checksum_text(content).encode(),
             export_folder.LABELS_FILENAME:
             layout.labels_text(zip(run.synsets, run.class_names)).encode(),
             export_folder.METADATA_FILENAME:
             json.dumps(metadata, indent=2, sort_keys=True).encode(),
             tflite_runtime.PREPROCESSING_FILENAME: _preprocessing_npz(run.mean_image, run.std)}
    path = save(content, export_dir, files, version=version)
    logging.info("exported %s (%s, %d bytes; checkpoint %s)", path, quantize, len(content),
                 run.checkpoint_path)
    return path


def export_from_workdir(workdir, export_dir, checkpoint="best", *, data_dir=None, resize=None,
                        quantize=NONE, **kwargs):
    """Restores WORKDIR's checkpoint and exports it as .tflite; returns the new version's path.

    What would be refused later is refused before the checkpoint is read: a data folder
    without a validation split (quantize='int8'), a --version that exists.
    resize: 'shorter_side' or 'warp' instead of the run's config.input.resize (metadata.json
    says which, for the clients that bring images to the model's input).
    """
    from keras_alexnet.runs import restore  # keras_alexnet's model code: export time only
    from keras_alexnet.training import workdir as workdir_lib
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"--quantize={quantize}: one of {', '.join(QUANTIZATIONS)}")
    if quantize == INT8:
        check_calibration_data(data_dir or workdir_lib.stored_data_dir(
            workdir_lib.read_config(workdir), workdir))
    _refuse_a_saved_model_base_path(export_dir)
    version = kwargs.get("version")
    if version is not None and tf.io.gfile.exists(os.path.join(export_dir, str(version))):
        raise FileExistsError(f"{os.path.join(export_dir, str(version))} exists; a version is "
                              "never overwritten")
    run = restore.restore_run(workdir, checkpoint, data_dir=data_dir, resize=resize)
    return export_run(run, export_dir, quantize=quantize, **kwargs)
