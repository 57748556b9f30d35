"""The LiteRT adapter: a model.tflite of bin/export --format=tflite run by LiteRT (CPU).

load(path) -> runtimes.Loaded(predict, info), the contract of runtimes/__init__.py. The
model itself and its checks are tflite_runtime.py's; what a client needs besides it (labels,
mean image, preprocessing settings) the export writes beside the model, in its version
folder: labels.txt, preprocessing.npz and metadata.json, read here into a ModelInfo.
"""
import json
import os

import tensorflow as tf

from keras_alexnet.data import layout
from keras_alexnet.serving import export_folder, tflite_runtime
from keras_alexnet.serving.runtimes import Loaded, model_info


def _info(path):
    folder = os.path.dirname(path) or "."
    try:
        with open(os.path.join(folder, export_folder.METADATA_FILENAME)) as f:
            metadata = json.load(f)
        labels = layout.load_labels(os.path.join(folder, export_folder.LABELS_FILENAME))
        mean_image, std = tflite_runtime.read_preprocessing(path)
        int(metadata["image_size"]), int(metadata["jpeg_quality"]), str(metadata["resize_mode"])
    except (OSError, tf.errors.OpError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: the files bin/export --format=tflite writes beside it "
                         f"(metadata.json, labels.txt, preprocessing.npz) are missing or damaged "
                         f"({type(e).__name__}: {getattr(e, 'message', e)})") from None
    return model_info.ModelInfo(metadata, [w for w, _ in labels], [n for _, n in labels],
                                mean_image, std)


def load(path):
    try:
        classifier = tflite_runtime.load(path)
    except FileNotFoundError as e:
        raise ValueError(str(e)) from None
    info = _info(classifier.path)
    if classifier.image_size != info.image_size or classifier.num_classes != len(info.synsets):
        raise ValueError(f"{path}: the model takes {classifier.image_size}-pixel images into "
                         f"{classifier.num_classes} classes, but its metadata.json and labels.txt "
                         f"say {info.image_size} pixels and {len(info.synsets)} classes")
    return Loaded(classifier, info)
