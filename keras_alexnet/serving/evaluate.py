"""Top-1 and top-5 error of an export, through its own signatures (bin/evaluate --saved_model),
and of a checkpoint served with Caffe's warp.

The export is fed the records' encoded bytes, the path a served request takes
(serving_default, or ten_crop for the paper's ten patches); counting, the
progress bar and the table are runs/evaluate.py's, shared with a checkpoint's
evaluation. On make_tfrecords' output the two see the same pixels, so their
errors agree (runs/evaluate.py says why).

A run or export with config.input.resize='warp' (Caffe's: both sides to 256,
the aspect ratio ignored) needs the original images: make_tfrecords' default
records are already shorter-side resized and centre-cropped, and warping such a
square changes nothing, so they would give the shorter-side figure under the
warp's name. Such data is refused; records written with `--resize 0` keep the
originals and are warped, for a checkpoint through the export's own graph
(ServingModule, in memory), so the two paths still agree.
"""
import os
import sys

import tensorflow as tf

from keras_alexnet.data import checks, input_pipeline, layout
from keras_alexnet.runs import evaluate as run_evaluate
from keras_alexnet.runs import restore
from keras_alexnet.serving import export, export_folder
from keras_alexnet.serving import preprocessing as prep


def _patches(ten_crop, resize_mode=prep.SHORTER_SIDE):
    return run_evaluate.patches_name(ten_crop) + (
        ", warped to the stored size (Caffe's resize)" if resize_mode == prep.WARP else "")


def check_originals(data, stream=sys.stderr):
    """Refuses records stored resized (make_tfrecords' default) for a warp evaluation.

    Records from elsewhere (no dataset.json beside them) get a warning: they are
    warped as they are.
    """
    folder = os.path.dirname(input_pipeline.list_shards(data)[0])
    manifest = layout.read_manifest(folder)
    if not manifest:
        if stream is not None:
            stream.write(f"warning: no {layout.MANIFEST_FILENAME} beside {data}: cannot check "
                         "that its records hold the original images the warp needs\n")
        return
    if manifest.get("resize", 1):
        raise ValueError(
            f"--data {data}: make_tfrecords stored these images shorter side "
            f"{manifest.get('resize', 256)} and centre-cropped, and warping that square changes "
            "nothing, so a 'warp' evaluation of them would be the shorter-side one; convert "
            "the original images with --resize 0 to evaluate the warp")


def evaluate_checkpoint(workdir, data, *, checkpoint="best", ten_crop=False, batch_size=64,
                        data_dir=None, resize=None, stream=sys.stderr):
    """run_evaluate.Result of WORKDIR's checkpoint on the TFRecords matching `data`.

    resize: 'shorter_side' or 'warp' instead of the run's config.input.resize. The
    shorter-side resize goes through the input pipeline (runs/evaluate.py); the warp
    through the export's graph, in memory.
    """
    run = restore.restore_run(workdir, checkpoint, data_dir=data_dir, resize=resize)
    if run.resize_mode != prep.WARP:
        return run_evaluate.evaluate_checkpoint(workdir, data, ten_crop=ten_crop,
                                                batch_size=batch_size, stream=stream, run=run)
    run_evaluate.check_labels(data, run.synsets, f"the run in {workdir}", stream)
    check_originals(data, stream)
    module = export.ServingModule(run.model, run.mean_image, run.synsets, run.class_names,
                                  std=run.std, jpeg_quality=run.jpeg_quality,
                                  resize=run.resize_mode)
    return _evaluate_signature(module.ten_crop if ten_crop else module.serve, data,
                               run.label_offset, len(run.synsets), batch_size,
                               f"checkpoint {run.checkpoint_path}, {_patches(ten_crop, prep.WARP)}",
                               f"the run's, in {workdir}", stream)


def evaluate_saved_model(saved_model, data, *, ten_crop=False, batch_size=64, stream=sys.stderr):
    """run_evaluate.Result of an export on the TFRecords matching `data`, through its signatures."""
    path = export_folder.resolve_saved_model(saved_model)
    loaded = tf.saved_model.load(path)
    metadata = export_folder.read_metadata(loaded)
    synsets = loaded.synsets.numpy()
    run_evaluate.check_labels(data, synsets, f"the export {path}", stream)
    resize_mode = metadata.get("resize_mode", prep.SHORTER_SIDE)
    if resize_mode == prep.WARP:
        check_originals(data, stream)
    signature = loaded.signatures["ten_crop" if ten_crop else "serving_default"]
    return _evaluate_signature(lambda image_bytes: signature(image_bytes=image_bytes), data,
                               int(metadata.get("label_offset", 0)), len(synsets), batch_size,
                               f"export {path}, {_patches(ten_crop, resize_mode)}",
                               f"the exported run's, in {path}", stream)


def _evaluate_signature(signature, data, label_offset, num_classes, batch_size, setting,
                        whose, stream):
    """Result of a serving signature (encoded images in, "probabilities" out) on the records."""
    files = input_pipeline.list_shards(data)
    checks.check_evaluation_data(files, f"--data {data}", label_offset, num_classes, whose)
    dataset = tf.data.TFRecordDataset(files)
    dataset = dataset.map(lambda r: input_pipeline.parse_example(r, label_offset)).batch(batch_size)
    batches = ((signature(images)["probabilities"].numpy(), labels.numpy())
               for images, labels in dataset)
    return run_evaluate.accumulate(batches, setting, stream, layout.shards_size(files), data)
