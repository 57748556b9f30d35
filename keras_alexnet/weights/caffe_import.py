"""bin/import_weights: a Caffe AlexNet (deploy.prototxt + .caffemodel) as a run folder.

The folder is what `bin/train` leaves, so `bin/evaluate`, `bin/export`, `bin/report` and
fine-tuning read it unchanged (training/workdir.py, runs/restore.py):

    OUT/config.json       get_config() with the prototxt's network in config.model (LRN k,
                          alpha / local_size, across the towers, inverted dropout, classes
                          from fc8) and an "imported" section (below)
    OUT/checkpoints/, OUT/best/
                          the same checkpoint, ckpt-0, as the trainer writes one
                          (tf.train.Checkpoint of model, step 0, epoch 0); best/'s files
                          are hard links to checkpoints/' where the filesystem allows
    OUT/metrics.jsonl     one "imported" event (source, caffemodel_sha1) at step 0: no
                          training and no validation errors; OUT/tensorboard/ the conv1 kernels
    OUT/data/labels.txt   the synsets file's classes, in its order (data/layout.py's format)
    OUT/data/stats.npz    mean_image: Caffe's mean as RGB [R, R, 3] on 0..255; the PCA
                          statistics (covariance, eigenvalues, eigenvectors) are zeros and
                          num_images 0: a caffemodel carries none, none are invented
    OUT/data/dataset.json the classes, and `resize: 0`: no JPEG re-encode when serving

config.json's "imported" section (training/workdir.IMPORTED), for people and for the
export and fine-tuning code:

    format                "caffe"
    prototxt, caffemodel, mean, synsets   the files read (absolute paths)
    caffemodel_sha1       SHA-1 of the .caffemodel
    official_bvlc_alexnet true when that is BVLC's bvlc_alexnet.caffemodel
                          (9116a64c0fbe4459d18f4bb6b56d647b63920377, its model-zoo readme)
    net_name, prototxt_form   the prototxt's name, 'layer' or 'layers' (legacy V1)
    caffe_layers          {Keras layer: Caffe layer name} of the eight learned layers
    jpeg_reencode         false: Caffe's training images were stored as raw pixels, so a
                          served image must not be re-encoded as JPEG before resizing
    resize                "warp": Caffe's ImageNet data (create_imagenet.sh) and classify.py
                          warp every image to R x R ignoring its aspect ratio (R: the mean's
                          side); this project's own data resize the shorter side
    pca                   why stats.npz holds no PCA statistics

Fine-tuning from the folder takes its weights only: the fine-tuning run's own data folder
supplies the mean image and the PCA statistics of its images (config.input.data_dir).
Caffe's bvlc_alexnet was trained without the paper's PCA lighting (its readme), so
input.lighting_std is 0 here. Nothing is written on failure: the folder is assembled
under a hidden name beside OUT and renamed when complete; every file is read and checked
before anything is built.
"""
import json
import os
import shutil
import sys
import uuid

import keras
import numpy as np
import tensorflow as tf

from keras_alexnet import config as config_lib
from keras_alexnet import locking
from keras_alexnet import model as model_lib
from keras_alexnet.data import layout
from keras_alexnet.data import stats as stats_lib
from keras_alexnet.training import reporting
from keras_alexnet.training import workdir as workdir_lib
from keras_alexnet.weights import caffe, caffe_net
from keras_alexnet.weights.caffe_net import CaffeImportError

CHECKPOINT_STEP = 0  # no step of this project's training: ckpt-0
PCA_NOTE = ("not known: a caffemodel carries no pixel statistics; stats.npz's covariance, "
            "eigenvalues and eigenvectors are zeros over num_images 0. Fine-tuning takes the "
            "PCA of its own data folder.")


def build_model(model_fields):
    """build_alexnet(**model_fields) in float32 (the checkpoint's dtype whatever the policy)."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        return model_lib.build_alexnet(**model_fields)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def load_weights(model, arrays):
    """Assigns {variable path: array} to every weight of model; all must be given, shapes equal."""
    variables = {v.path.split("/", 1)[1] if v.path.startswith(model.name + "/") else v.path: v
                 for v in model.weights}
    missing = sorted(set(variables) - set(arrays))
    extra = sorted(set(arrays) - set(variables))
    if missing or extra:
        raise CaffeImportError(f"the converted weights do not fit build_alexnet's network "
                               f"(missing {missing[:4]}, unknown {extra[:4]})")
    for path, variable in variables.items():
        if tuple(variable.shape) != arrays[path].shape:
            raise CaffeImportError(f"{path}: the network has shape {tuple(variable.shape)}, the "
                                   f"converted Caffe weights {arrays[path].shape}")
        variable.assign(arrays[path])
    return model


def run_config(spec, data_dir, record):
    """The run's config.json: get_config() with the network, its data folder and the record."""
    config = config_lib.get_config()
    config.model.update(spec.model)
    config.input.update(data_dir=data_dir, normalization="mean_image", crop="paper",
                        lighting_std=0.0, label_offset=0)
    stored = json.loads(workdir_lib.config_to_store(config).to_json())
    stored[workdir_lib.IMPORTED] = record
    return stored


def _check_target(workdir):
    if os.path.exists(workdir) and (not os.path.isdir(workdir) or os.listdir(workdir)):
        raise CaffeImportError(f"--workdir={workdir} exists and is not an empty folder; import "
                               "into a new one (nothing there is touched)")
    parent = os.path.dirname(os.path.abspath(workdir))
    if not os.path.isdir(parent):
        raise CaffeImportError(f"--workdir={workdir}: its parent folder {parent} does not exist")


def write_run(folder, config, model, classes, mean_image):
    """config.json, checkpoints/ and best/ (ckpt-0), metrics.jsonl, tensorboard/, data/."""
    _write_data(workdir_lib.imported_data_dir(folder), classes, mean_image)
    layout.write_json(os.path.join(folder, workdir_lib.CONFIG_FILENAME), config, indent=2)
    _write_checkpoints(folder, model)
    # metrics.jsonl (bin/report reads it): one event, no training, no validation errors.
    reporter = reporting.Reporter(folder)
    record = config[workdir_lib.IMPORTED]
    reporter.event("imported", CHECKPOINT_STEP, source=record["format"],
                   caffemodel_sha1=record["caffemodel_sha1"])
    reporter.kernels(CHECKPOINT_STEP, model.get_layer("conv1").kernel.numpy())
    reporter.flush()


def _write_data(data_dir, classes, mean_image):
    """labels.txt, stats.npz (the mean; zero PCA statistics over no images), dataset.json."""
    os.makedirs(data_dir)
    layout.write_labels(data_dir, classes)
    stats_lib.save(stats_lib.DatasetStats(
        mean_image=mean_image, covariance=np.zeros((3, 3)), eigenvalues=np.zeros(3),
        eigenvectors=np.zeros((3, 3)), num_images=0, num_pixels=0),
        os.path.join(data_dir, layout.STATS_FILENAME))
    # resize 0: what make_tfrecords writes when it keeps the original bytes; the export then
    # resizes served images without a JPEG re-encode (layout.writer_jpeg_quality).
    layout.write_manifest(data_dir, {
        "format": layout.FORMAT, "classes": [list(c) for c in classes],
        "resize": 0, "stats_size": int(mean_image.shape[0]), "splits": {},
        "source": "caffe import (no images; see config.json's imported section)"})


def _write_checkpoints(folder, model):
    """checkpoints/ckpt-0 as the trainer writes a checkpoint; best/ the same files."""
    checkpoint = tf.train.Checkpoint(
        model=model, step=tf.Variable(CHECKPOINT_STEP, dtype=tf.int64, name="step"),
        epoch=tf.Variable(0, dtype=tf.int64, name="epoch"))
    saved = tf.train.CheckpointManager(checkpoint, workdir_lib.checkpoints_dir(folder),
                                       max_to_keep=1).save(checkpoint_number=CHECKPOINT_STEP)
    # Hard links where the filesystem has them: the weights on disk once (233 MB at full size).
    best = workdir_lib.best_dir(folder)
    os.makedirs(best)
    for path in tf.io.gfile.glob(saved + ".*"):
        target = os.path.join(best, os.path.basename(path))
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
    prefix = os.path.join(best, os.path.basename(saved))
    workdir_lib.write_state(best, prefix, [prefix])


def import_caffe(prototxt, caffemodel, mean, synsets, workdir, *, stream=sys.stdout):
    """Checks every file, converts, writes the run folder `workdir`; returns config.json's dict."""
    _check_target(workdir)
    spec = caffe_net.network_spec(prototxt)
    classes = caffe.read_synsets(synsets, spec.model["num_classes"])
    mean_image = caffe.read_mean(mean, spec.model["image_size"])
    blobs, sha1 = caffe.read_caffemodel(caffemodel)
    arrays = caffe.convert_weights(caffe.layer_blobs(blobs, spec, caffemodel), spec.model["towers"])
    del blobs
    model = load_weights(build_model(spec.model), arrays)
    record = {
        "format": "caffe", "prototxt": os.path.abspath(prototxt),
        "caffemodel": os.path.abspath(caffemodel), "mean": os.path.abspath(mean),
        "synsets": os.path.abspath(synsets), "caffemodel_sha1": sha1,
        "official_bvlc_alexnet": sha1 == caffe.OFFICIAL_SHA1, "net_name": spec.name,
        "prototxt_form": spec.form, "caffe_layers": spec.caffe_names,
        "jpeg_reencode": False, "resize": "warp", "pca": PCA_NOTE}
    final = os.path.abspath(workdir)
    config = run_config(spec, workdir_lib.imported_data_dir(final), record)
    # Hidden, beside the target: renamed when complete, removed on any failure.
    tmp = os.path.join(os.path.dirname(final),
                       f".{os.path.basename(final)}.import-{uuid.uuid4().hex[:8]}")
    try:
        os.makedirs(tmp)
        write_run(tmp, config, model, classes, mean_image)
        os.rename(tmp, final)  # onto nothing, or an empty folder
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise CaffeImportError(f"--workdir={workdir}: cannot write the run folder "
                                   f"({locking.os_reason(e)}); nothing was left there") from None
        raise
    if stream is not None:
        what = ("BVLC's official bvlc_alexnet" if record["official_bvlc_alexnet"]
                else "not BVLC's official file")
        stream.write(f"imported {caffemodel} (SHA-1 {sha1}, {what}) into {workdir}: "
                     f"{spec.model['num_classes']} classes, LRN k={spec.model['lrn_bias']:g}\n")
    return config
