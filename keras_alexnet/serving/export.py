"""SavedModel export for TF Serving: encoded images in, probabilities and class names out.

`export_from_workdir` rebuilds the network from WORKDIR/config.json, restores a
checkpoint, and writes a new integer version into TF Serving's model base path
(export_folder.py: the SavedModel, and in assets.extra/ the warmup requests, the
labels, the metadata and the model card); the version is written under a hidden
temporary name and renamed only when complete, so TF Serving never sees half a
model and an existing version is never overwritten.

The SavedModel is a `tf.Module` around the Keras model's call (LRN and the
tower convolutions trace into plain TensorFlow ops: no XLA, no custom ops) with
three signatures:

    serving_default  image_bytes string [None]     JPEG/PNG/GIF/BMP/WebP files, the paper's
                                                   evaluation preprocessing in the graph
    predict_images   images float32 [None, S, S, 3] already preprocessed
    ten_crop         image_bytes string [None]     softmax averaged over the paper's 10 patches

each returning probabilities float32 [None, C], logits float32 [None, C] (fc8's
output before the softmax; with ten_crop the mean of the ten crops' logits), and
the top 5 as classes int32, scores float32, synsets and class_names string
[None, 5]. The logits are there for calibration and ensembling: recovering them
from float32 probabilities fails once their spread passes ~87.

How a served image is brought to the stored size follows the run's config:
config.input.resize ('shorter_side', the paper's; 'warp', Caffe's) and
config.input.jpeg_reencode (False for weights whose training images were not
stored as JPEG, e.g. an imported Caffe network: no re-encode). The mean image, the
labels and the training config are variables of the SavedModel, so loading it
needs TensorFlow only (`tf.saved_model.load(path).signatures[...]`).
"""
import json
import os
import shutil
import uuid

import numpy as np
import tensorflow as tf
from absl import logging

from keras_alexnet import evaluation, locking
from keras_alexnet.data import layout
from keras_alexnet.serving import batching, export_folder, export_marker, image_input, model_card, triton
from keras_alexnet.serving import preprocessing as prep
from keras_alexnet.serving import warmup as warmup_lib
from keras_alexnet.training import workdir as workdir_lib

SERVING_DEFAULT = "serving_default"
PREDICT_IMAGES = "predict_images"
TEN_CROP = "ten_crop"
TOP_K = 5


class ServingModule(image_input.ImagePreprocessing):
    """The exported object: the Keras model, its statistics and labels, three signatures."""

    def __init__(self, model, mean_image, synsets, class_names, *, std=None, metadata=None,
                 jpeg_quality=layout.JPEG_QUALITY, resize=prep.SHORTER_SIDE):
        size = int(model.input_shape[1])
        super().__init__(mean_image, size, std=std, jpeg_quality=jpeg_quality, resize=resize,
                         name="alexnet_serving")
        self.model = model
        num_classes = int(model.output_shape[-1])
        if not len(synsets) == len(class_names) == num_classes:
            raise ValueError(f"{len(synsets)} labels for a model with {num_classes} classes")
        self.synsets = tf.Variable(list(synsets), dtype=tf.string, trainable=False, name="synsets")
        self.class_names = tf.Variable(list(class_names), dtype=tf.string, trainable=False,
                                       name="class_names")
        self.metadata_json = tf.Variable(json.dumps(metadata or {}, sort_keys=True),
                                         dtype=tf.string, trainable=False, name="metadata_json")
        bytes_spec = tf.TensorSpec([None], tf.string, name="image_bytes")
        images_spec = tf.TensorSpec([None, size, size, 3], tf.float32, name="images")
        # Not a signature: lets a Python client see what predict_images would need.
        self.preprocess_bytes = tf.function(self._preprocess_bytes, input_signature=[bytes_spec])
        self.serve = tf.function(self._serve, input_signature=[bytes_spec])
        self.predict_images = tf.function(self._predict_images, input_signature=[images_spec])
        self.ten_crop = tf.function(self._ten_crop, input_signature=[bytes_spec])

    def signatures(self):
        return {SERVING_DEFAULT: self.serve.get_concrete_function(),
                PREDICT_IMAGES: self.predict_images.get_concrete_function(),
                TEN_CROP: self.ten_crop.get_concrete_function()}

    def _outputs(self, logits_and_probabilities):
        logits, probabilities = logits_and_probabilities
        scores, classes = tf.math.top_k(probabilities, k=min(TOP_K, probabilities.shape[-1]))
        return {"probabilities": probabilities, "logits": logits, "scores": scores,
                "classes": classes,
                "synsets": tf.gather(self.synsets, classes),
                "class_names": tf.gather(self.class_names, classes)}

    def _forward(self, images):
        """(logits, softmax) in float32 of [B, S, S, 3], or over the crops of [B, 10, S, S, 3]
        (evaluation.logits_and_probabilities)."""
        return evaluation.logits_and_probabilities(self.logits, images)

    def logits(self, images):
        """fc8's logits of images [N, S, S, 3], N >= 0, in inference mode: N rows.

        With oneDNN's convolutions (keras_alexnet turns them on) a batch of 0 reached conv2
        with conv1's input and failed in the tower split, so an empty batch gets one zero
        image appended, whose row is sliced off again. Not a tf.cond around the network:
        tf2onnx cannot convert one (the kernels read inside its branch have no static
        shape: "kernel_shape is None" on every convolution), and onnx_export.py and users'
        own converters read predict_images. Not tf.pad either: with TensorFlow 2.21's oneDNN
        graph passes a batch padded from 0 still reached conv1 empty and failed the same way.
        For N >= 1 nothing is appended; the concat costs one copy of the input.
        """
        count = tf.shape(images)[0]
        pad = tf.zeros(tf.concat([[tf.maximum(1 - count, 0)], tf.shape(images)[1:]], 0),
                       images.dtype)
        return self.model(tf.concat([images, pad], 0), training=False)[:count]

    def _preprocess_bytes(self, image_bytes):
        return self.centre_patches(image_bytes)

    def _serve(self, image_bytes):
        return self._outputs(self._forward(self._preprocess_bytes(image_bytes)))

    def _predict_images(self, images):
        return self._outputs(self._forward(images))

    def _ten_crop(self, image_bytes):
        return self._outputs(self._forward(self.ten_crop_patches(image_bytes)))


def save(module, export_dir, *, version=None, warmup_images=(), model_name="alexnet",
         extra_files=None):
    """Writes module as EXPORT_DIR/<version> (a new version unless given); returns its path.

    warmup_images: encoded image bytes for assets.extra/tf_serving_warmup_requests.
    assets.extra/batching_parameters.txt (batching.py) is written too.
    extra_files: {name: text} written into assets.extra/ (labels, metadata for humans).
    """
    triton.check_not_triton(export_dir)

    def write(tmp):
        tf.saved_model.save(module, tmp, signatures=module.signatures())
        export_folder.write_extra_files(tmp, extra_files or {})
        logs = warmup_logs(warmup_images, module.image_size, model_name)
        warmup_lib.write_warmup_file(export_folder.warmup_path(tmp), logs)
        batching.write_batching_parameters(tmp, largest_request=batching.largest_request(logs))

    return write_version(export_dir, version, write)


def write_version(export_dir, version, write):
    """Calls write(folder) to fill EXPORT_DIR/<version> (default: a new one); returns its path.

    The folder is a hidden temporary one until write returns, then renamed: a version is
    complete or absent, and an existing one is never overwritten. The SavedModel (save) and
    the ONNX model (onnx_export.py) are written this way.
    """
    make_export_dir(export_dir)
    remove_abandoned_temporaries(export_dir)
    version = export_folder.next_version(export_dir) if version is None else int(version)
    final = os.path.join(export_dir, str(version))
    if tf.io.gfile.exists(final):
        raise FileExistsError(f"{final} exists; a version is never overwritten")
    # Dot-prefixed: TF Serving only loads folders whose names are integers. Held (locked)
    # while written, so that another export can tell it from one whose writer was killed.
    tmp = os.path.join(export_dir, f"{TMP_PREFIX}{version}-{uuid.uuid4().hex[:8]}")
    held = None
    try:
        if locking.is_local(tmp):
            os.makedirs(tmp)
            held = locking.hold_folder(tmp)
            export_marker.mark(tmp)
        write(tmp)
        if tf.io.gfile.exists(final):  # another export took this number meanwhile
            raise FileExistsError(f"{final} appeared during the export; nothing overwritten")
        export_marker.unmark(tmp)
        tf.io.gfile.rename(tmp, final, overwrite=False)
    except BaseException:
        if tf.io.gfile.exists(tmp):
            tf.io.gfile.rmtree(tmp)
        raise
    finally:
        if held is not None:
            held.release()
    return final


TMP_PREFIX = ".tmp-"


def make_export_dir(export_dir):
    """Creates export_dir; FileExistsError naming it when it cannot be (a file on its path)."""
    try:
        tf.io.gfile.makedirs(export_dir)
    except (OSError, tf.errors.OpError) as e:
        parent = export_dir
        while parent and not tf.io.gfile.exists(parent):
            parent = os.path.dirname(parent)
        why = (f"{parent} is a file, not a folder" if parent and not tf.io.gfile.isdir(parent)
               else getattr(e, "message", None) or str(e))
        raise FileExistsError(f"--export_dir {export_dir}: cannot create it ({why})") from None


def remove_abandoned_temporaries(export_dir):
    """Removes the .tmp-* folders of exports that were killed; returns their paths.

    Only a folder this module made is removed: a real folder (not a symlink) holding its
    marker, that no live export holds. Any other .tmp-* folder (a user's, or one of an
    export older than the marker) is left as it is, with a warning saying why.
    """
    if not locking.is_local(export_dir):
        return []
    removed = []
    for name in sorted(os.listdir(export_dir)):
        path = os.path.join(export_dir, name)
        if not name.startswith(TMP_PREFIX) or not os.path.isdir(path) or locking.in_use(path):
            continue
        if os.path.islink(path) or not export_marker.is_marked(path):
            logging.warning("left %s alone: its name looks like an export's temporary folder, "
                            "but it has no %s written by bin/export", path,
                            export_marker.MARKER_FILENAME)
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
        logging.warning("removed %s, left by an export that did not finish", path)
    return removed


def warmup_logs(images, image_size, model_name="alexnet"):
    """Serialized PredictionLogs: each signature once, one image and a batch."""
    images = [bytes(b) for b in images] or synthetic_images()
    logs = [warmup_lib.predict_log({"image_bytes": np.array(images[:1], object)}, model_name,
                                   SERVING_DEFAULT)]
    if len(images) > 1:
        logs.append(warmup_lib.predict_log({"image_bytes": np.array(images, object)},
                                           model_name, SERVING_DEFAULT))
    logs.append(warmup_lib.predict_log({"image_bytes": np.array(images[:1], object)},
                                       model_name, TEN_CROP))
    zeros = np.zeros((1, image_size, image_size, 3), np.float32)
    logs.append(warmup_lib.predict_log({"images": zeros}, model_name, PREDICT_IMAGES))
    return logs


def synthetic_images():
    """Two smooth test pictures (an RGB JPEG and a grayscale PNG) for when no data is at hand."""
    y, x = np.mgrid[0:240, 0:320]
    rgb = np.stack([x * 255 // 319, y * 255 // 239, (x + y) * 255 // 558], -1).astype(np.uint8)
    gray = rgb[:180, :150, :1]
    return [tf.io.encode_jpeg(rgb, quality=90).numpy(), tf.io.encode_png(gray).numpy()]


def read_tfrecord_images(pattern, limit):
    """Up to `limit` encoded images from TFRecord shards matching pattern (for warmup)."""
    files = sorted(tf.io.gfile.glob(pattern))
    if not files or limit <= 0:
        return []
    spec = {"image/encoded": layout.FEATURE_SPEC["image/encoded"]}
    dataset = tf.data.TFRecordDataset(files[:1]).take(limit)
    return [tf.io.parse_single_example(r, spec)["image/encoded"].numpy() for r in dataset]


def run_metadata(run):
    """What an export records of a restore.RestoredRun: config, checkpoint, preprocessing."""
    return {"config": run.config, "checkpoint": run.checkpoint_path,
            "image_size": run.image_size, "resize": int(run.mean_image.shape[0]),
            "label_offset": run.label_offset, "normalization": run.normalization,
            "jpeg_quality": run.jpeg_quality, "resize_mode": run.resize_mode}


def serving_module(run, metadata):
    """The ServingModule of a restore.RestoredRun."""
    return ServingModule(run.model, run.mean_image, run.synsets, run.class_names, std=run.std,
                         metadata=metadata, jpeg_quality=run.jpeg_quality, resize=run.resize_mode)


def export_run(run, export_dir, *, version=None, num_warmup_images=4, model_name=None,
               workdir=None):
    """Exports a restore.RestoredRun (model, labels, statistics); returns the version's path.

    workdir: the training workdir, whose metrics.jsonl gives the model card its errors.
    """
    metadata = dict(run_metadata(run), signatures=[SERVING_DEFAULT, PREDICT_IMAGES, TEN_CROP])
    module = serving_module(run, metadata)
    warmup = read_tfrecord_images(layout.shard_pattern(run.data_dir, "validation"),
                                  num_warmup_images)
    labels = layout.labels_text(zip(run.synsets, run.class_names))
    model_name = model_name or os.path.basename(os.path.normpath(export_dir))
    version = export_folder.next_version(export_dir) if version is None else int(version)
    card = model_card.model_card(  # the card names the version
        module.signatures(), metadata, synsets=run.synsets, class_names=run.class_names,
        model_name=model_name, version=version, export_dir=export_dir, data_dir=run.data_dir,
        events=workdir_lib.read_events(workdir, missing_ok=True) if workdir else [],
        workdir=workdir)
    path = save(module, export_dir, version=version, warmup_images=warmup, model_name=model_name,
                extra_files=export_folder.extra_files(labels=labels, metadata=metadata, card=card))
    logging.info("exported %s (checkpoint %s)", path, run.checkpoint_path)
    return path


def export_from_workdir(workdir, export_dir, checkpoint="best", *, data_dir=None, resize=None,
                        **kwargs):
    """Restores WORKDIR's checkpoint and exports it; returns the new version's path.

    resize: 'shorter_side' or 'warp' instead of the run's config.input.resize.
    """
    from keras_alexnet.runs import restore  # keras_alexnet's model code: export time only

    return export_run(restore.restore_run(workdir, checkpoint, data_dir=data_dir, resize=resize),
                      export_dir, workdir=workdir, **kwargs)
