"""bin/predict --model=PATH: an export recognised by what PATH holds, run by its own runtime.

    a SavedModel folder, or a model base path (its newest version)   TensorFlow, through the
                                                                      serving_default / ten_crop
                                                                      signature (client.py)
    a file ending in .onnx, or a folder holding model.onnx in itself
    or in its newest integer version (a Triton model folder)          ONNX Runtime (onnx.py)
    a file ending in .tflite, or model.tflite the same way            LiteRT (litert.py)

The SavedModel decodes and preprocesses images in its own graph. The other formats take
preprocessed images, so bin/predict preprocesses each file as the SavedModel does
(image_input.ImagePreprocessing, with the mean image and settings the model file carries)
and hands the batch to the runtime's adapter (classifier.ArrayClassifier); the top 5, the
output and the handling of bad files are the same for every format.

The seam, for a runtime that takes preprocessed images: one module per runtime in this
package, and one entry in RUNTIMES naming it. The module has

    load(path) -> Loaded(predict, info)
        path     the model file (find() has resolved folders to it)
        predict  callable(images) -> probabilities: images float32 [N, S, S, 3] (N >= 1),
                 preprocessed as the SavedModel's predict_images takes them, S =
                 info.image_size; returns float32 [N, C], the softmax
        info     model_info.ModelInfo: labels, mean image, preprocessing settings (the
                 export writes them into the model file: model_info.to_strings)
        A file the runtime cannot load, or without keras_alexnet's metadata, raises
        ValueError with one sentence naming the path; nothing else escapes load().

Until its module is named in its entry, a format is recognised and refused with a sentence
saying it is not supported in this build.
"""
import collections
import importlib
import os

import tensorflow as tf

from keras_alexnet.serving import client, export_folder

Loaded = collections.namedtuple("Loaded", "predict info")
Runtime = collections.namedtuple("Runtime", "name suffix module")

RUNTIMES = (
    Runtime("ONNX", ".onnx", "keras_alexnet.serving.runtimes.onnx"),
    Runtime("LiteRT", ".tflite", "keras_alexnet.serving.runtimes.litert"),
)
SAVED_MODEL = "SavedModel"


def _in_folder(folder, filename):
    """folder/filename, or the newest integer version's, if it exists; else None."""
    versions = export_folder.list_versions(folder)
    for candidate in [folder] + ([os.path.join(folder, str(max(versions)))] if versions else []):
        if tf.io.gfile.exists(os.path.join(candidate, filename)):
            return os.path.join(candidate, filename)
    return None


def find(path):
    """(format name, the path to load): SAVED_MODEL and a SavedModel folder, or a runtime's
    name and its model file. ValueError naming path when it is none of them."""
    if not tf.io.gfile.exists(path):
        raise ValueError(f"{path}: no such file or folder")
    if tf.io.gfile.isdir(path):
        saved_model = _in_folder(path, export_folder.SAVED_MODEL_FILENAME)
        if saved_model:
            return SAVED_MODEL, os.path.dirname(saved_model)
        for runtime in RUNTIMES:
            found = _in_folder(path, "model" + runtime.suffix)
            if found:
                return runtime.name, found
    else:
        if os.path.basename(path) == export_folder.SAVED_MODEL_FILENAME:
            return SAVED_MODEL, os.path.dirname(path) or "."
        for runtime in RUNTIMES:
            if path.endswith(runtime.suffix):
                return runtime.name, path
    raise ValueError(
        f"{path}: not a model bin/predict reads (a SavedModel folder or model base path, "
        f"{', '.join(f'a {r.suffix} file' for r in RUNTIMES)}, or a folder holding "
        f"{' or '.join('model' + r.suffix for r in RUNTIMES)} in itself or its newest version)")


def load_classifier(path, signature=client.DEFAULT_SIGNATURE):
    """A classifier of encoded images (client.py's interface) for the model at path."""
    name, found = find(path)
    if name == SAVED_MODEL:
        return client.SavedModelClassifier(found, signature)
    runtime = next(r for r in RUNTIMES if r.name == name)
    if runtime.module is None:
        raise ValueError(f"{found}: a {runtime.name} model ({runtime.suffix}); {runtime.name} is "
                         "not supported in this build of bin/predict")
    from keras_alexnet.serving.runtimes import classifier
    return classifier.ArrayClassifier(importlib.import_module(runtime.module).load(found),
                                      signature, where=found)
