"""The export folder on disk: one home for TF Serving's model base path and what a version holds.

    EXPORT_DIR/<version>/saved_model.pb, variables/     the SavedModel (export.py writes it)
    EXPORT_DIR/<version>/assets.extra/
        tf_serving_warmup_requests                      requests TF Serving replays (warmup.py)
        labels.txt                                      the labels, data/layout.py's format
        metadata.json                                   the export's metadata, the config included
        MODEL_CARD.md                                   what the model is, for people (model_card.py)
        batching_parameters.txt                         TF Serving's --batching_parameters_file
                                                        (batching.py)

TF Serving loads the integer-named folders and serves the largest number; a version is written
under a hidden temporary name and renamed when complete (export.save). bin/evaluate,
bin/predict and bin/benchmark take a version folder or the model base path (its newest version):
resolve_saved_model.
"""
import json
import os

import tensorflow as tf

from keras_alexnet.data import layout

SAVED_MODEL_FILENAME = "saved_model.pb"
EXTRA_DIR = "assets.extra"  # TF Serving's folder for files beside the model
WARMUP_FILENAME = "tf_serving_warmup_requests"
METADATA_FILENAME = "metadata.json"
CARD_FILENAME = "MODEL_CARD.md"
BATCHING_FILENAME = "batching_parameters.txt"
LABELS_FILENAME = layout.LABELS_FILENAME


def list_versions(export_dir):
    """The integer version folders of a TF Serving model base path ([] if it does not exist)."""
    if not tf.io.gfile.isdir(export_dir):
        return []
    return [int(name.rstrip("/")) for name in tf.io.gfile.listdir(export_dir)
            if name.rstrip("/").isdigit()]


def next_version(export_dir):
    """1 + the largest integer version folder in export_dir (1 when there is none)."""
    return max(list_versions(export_dir), default=0) + 1


def resolve_saved_model(path):
    """A SavedModel folder, or the newest version in a TF Serving model base path."""
    if tf.io.gfile.exists(f"{path}/{SAVED_MODEL_FILENAME}"):
        return path
    versions = list_versions(path)
    if not versions:
        raise FileNotFoundError(f"{path}: neither a SavedModel (no {SAVED_MODEL_FILENAME}) nor a "
                                "model base path with integer versions")
    return f"{path.rstrip('/')}/{max(versions)}"


def extra_path(version_dir, filename):
    """VERSION/assets.extra/<filename>."""
    return os.path.join(version_dir, EXTRA_DIR, filename)


def card_path(version_dir):
    return extra_path(version_dir, CARD_FILENAME)


def warmup_path(version_dir):
    return extra_path(version_dir, WARMUP_FILENAME)


def batching_path(version_dir):
    return extra_path(version_dir, BATCHING_FILENAME)


def extra_files(*, labels, metadata, card):
    """{name: text} of assets.extra/ besides the warmup requests: labels, metadata, the card."""
    return {LABELS_FILENAME: labels,
            METADATA_FILENAME: json.dumps(metadata, indent=2, sort_keys=True),
            CARD_FILENAME: card}


def write_extra_files(version_dir, files):
    """Writes {name: text} into VERSION/assets.extra/ (created if needed)."""
    tf.io.gfile.makedirs(os.path.join(version_dir, EXTRA_DIR))
    for name, text in files.items():
        with tf.io.gfile.GFile(extra_path(version_dir, name), "w") as f:
            f.write(text)


def read_metadata(loaded):
    """The metadata dict of a loaded export (metadata.json's content, kept as a variable)."""
    return json.loads(loaded.metadata_json.numpy())
