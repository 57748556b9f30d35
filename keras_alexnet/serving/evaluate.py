"""Top-1 and top-5 error of a checkpoint or of an export, printed as the paper's results table.

A checkpoint is evaluated through the input pipeline (make_dataset in eval
mode: centre patch, or the ten patches with their softmax averaged); an export
through its own signatures (serving_default or ten_crop) on the records'
encoded bytes, the path a served request takes. On make_tfrecords' output the
two see the same pixels, so their errors agree: records of the stored size are
decoded alike, and any other record (`--resize 0` keeps the originals; other
converters' TFRecords) is decoded in full and resized by the same function in
both (data/preprocessing.resize_shorter_side_pillow_bicubic, Pillow's bicubic as
make_tfrecords computed the statistics with); a stored-size record's centre
patch is decoded as a window in both.

A run or export with config.input.resize='warp' (Caffe's: both sides to 256,
the aspect ratio ignored) needs the original images: make_tfrecords' default
records are already shorter-side resized and centre-cropped, and warping such a
square changes nothing, so they would give the shorter-side figure under the
warp's name. Such data is refused; records written with `--resize 0` keep the
originals and are warped, for a checkpoint through the export's own graph
(ServingModule, in memory), so the two paths still agree.
"""
import dataclasses
import json
import os
import sys

import numpy as np
import tensorflow as tf

from keras_alexnet import evaluation, progress
from keras_alexnet.data import input_pipeline, layout
from keras_alexnet.data import stats as stats_lib
from keras_alexnet.serving import export, restore
from keras_alexnet.serving import preprocessing as prep


@dataclasses.dataclass
class Result:
    setting: str
    num_images: int
    top1_errors: int
    top5_errors: int

    @property
    def top1_error(self):
        return self.top1_errors / max(self.num_images, 1)

    @property
    def top5_error(self):
        return self.top5_errors / max(self.num_images, 1)

    def as_dict(self):
        return {"setting": self.setting, "num_images": self.num_images,
                "top1_error": round(self.top1_error, 6), "top5_error": round(self.top5_error, 6)}


def count_errors(probabilities, labels, k=5):
    """(top-1 errors, top-k errors) in a batch: evaluation.top_k_hits' misses (ties are misses)."""
    top1 = evaluation.top_k_hits(probabilities, labels, 1).numpy()
    topk = evaluation.top_k_hits(probabilities, labels, k).numpy()
    return int(np.sum(~top1)), int(np.sum(~topk))


def check_labels(data, synsets, model_what, stream=sys.stderr):
    """Refuses data whose labels.txt names other classes, or orders them otherwise, than the model.

    The labels.txt beside the shards is compared with the model's synsets: with other
    classes, or the same in another order, every label number means another class and the
    errors would be meaningless. Without a labels.txt (TFRecords from elsewhere) it warns.
    """
    files = input_pipeline.list_shards(data)
    folder = os.path.dirname(files[0])
    path = os.path.join(folder, layout.LABELS_FILENAME)
    synsets = [s.decode() if isinstance(s, bytes) else str(s) for s in synsets]
    if not tf.io.gfile.exists(path):
        if stream is not None:
            stream.write(f"warning: no {layout.LABELS_FILENAME} beside {files[0]}: cannot check "
                         f"that its labels mean the {len(synsets)} classes of {model_what}\n")
        return
    data_synsets = [wnid for wnid, _ in layout.load_labels(path)]
    if data_synsets == synsets:
        return
    if len(data_synsets) != len(synsets):
        what = f"{len(data_synsets)} classes, the model has {len(synsets)}"
    else:
        i = next(i for i, (a, b) in enumerate(zip(data_synsets, synsets)) if a != b)
        what = f"label {i} is {data_synsets[i]} there, {synsets[i]} in the model"
    raise ValueError(f"--data {data}: its labels ({path}) are not the labels of {model_what} "
                     f"({what}); its error rates would be meaningless. Evaluate on data "
                     "converted with the same classes.")


def count_images(files):
    """Examples in `files` when they are exactly one split make_tfrecords wrote, else None.

    The count is the split's report-{split}.json's: counting the records would read the data twice.
    """
    folders = {os.path.dirname(f) for f in files}
    if len(folders) != 1:
        return None
    folder = folders.pop()
    for split in layout.read_manifest(folder).get("splits", {}):
        if sorted(tf.io.gfile.glob(layout.shard_pattern(folder, split))) == sorted(files):
            return layout.split_size(folder, split)
    return None


def _accumulate(batches, setting, stream, total=None, data=None):
    """Result over (probabilities, labels) batches, with the progress bar (ETA if total is known).

    A shard cut short (DataLossError) becomes a sentence naming it.
    """
    try:
        return _accumulate_unchecked(batches, setting, stream, total)
    except tf.errors.DataLossError as e:
        raise ValueError(layout.describe_data_loss(e, [data] if data else [])) from None


def _accumulate_unchecked(batches, setting, stream, total=None):
    """Result over (probabilities, labels) batches, with the progress bar (ETA if total is known).

    On a terminal the bar redraws one line; elsewhere a line every 5 seconds.
    """
    result = Result(setting, 0, 0, 0)
    # skip_first: the rate (and ETA) from the second batch on; the first one traces the model.
    bar = progress.ProgressBar(total, title="evaluate", mode="auto" if stream else "none",
                               every_seconds=5.0, skip_first=True, stream=stream)
    for probabilities, labels in batches:
        top1, top5 = count_errors(probabilities, labels)
        result.num_images += len(labels)
        result.top1_errors += top1
        result.top5_errors += top5
        bar.update(result.num_images, top1_error=round(result.top1_error, 4))
    if result.num_images == 0:
        raise ValueError(f"{setting}: no examples in the data")
    bar.update(result.num_images, final=True, top1_error=round(result.top1_error, 4))
    return result


def _patches(ten_crop, resize_mode=prep.SHORTER_SIDE):
    patches = "10 patches" if ten_crop else "1 patch (centre)"
    return patches + (", warped to the stored size (Caffe's resize)"
                      if resize_mode == prep.WARP else "")


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
    """Result of WORKDIR's checkpoint on the TFRecords matching `data`.

    resize: 'shorter_side' or 'warp' instead of the run's config.input.resize.
    """
    run = restore.restore_run(workdir, checkpoint, data_dir=data_dir, resize=resize)
    check_labels(data, run.synsets, f"the run in {workdir}", stream)
    setting = f"checkpoint {run.checkpoint_path}, {_patches(ten_crop, run.resize_mode)}"
    if run.resize_mode == prep.WARP:
        check_originals(data, stream)
        module = export.ServingModule(run.model, run.mean_image, run.synsets, run.class_names,
                                      std=run.std, jpeg_quality=run.jpeg_quality,
                                      resize=run.resize_mode)
        return _evaluate_signature(module.ten_crop if ten_crop else module.serve, data,
                                   run.label_offset, batch_size, setting, stream)
    dataset = input_pipeline.make_dataset(
        data, batch_size, training=False, stats=stats_lib.load_stats(run.data_dir),
        image_size=run.image_size, label_offset=run.label_offset, ten_crop=ten_crop,
        repeat=False, normalization=run.normalization)
    model = run.model

    @tf.function
    def probabilities(images):
        return evaluation.class_probabilities(lambda x: model(x, training=False), images)

    batches = ((probabilities(images).numpy(), labels.numpy()) for images, labels in dataset)
    return _accumulate(batches, setting, stream,
                       count_images(input_pipeline.list_shards(data)), data)


def resolve_saved_model(path):
    """A SavedModel folder, or the newest version in a TF Serving model base path."""
    if tf.io.gfile.exists(f"{path}/saved_model.pb"):
        return path
    versions = export.list_versions(path)
    if not versions:
        raise FileNotFoundError(f"{path}: neither a SavedModel (no saved_model.pb) nor a model "
                                "base path with integer versions")
    return f"{path.rstrip('/')}/{max(versions)}"


def evaluate_saved_model(saved_model, data, *, ten_crop=False, batch_size=64, stream=sys.stderr):
    """Result of an export on the TFRecords matching `data`, through its signatures."""
    path = resolve_saved_model(saved_model)
    loaded = tf.saved_model.load(path)
    metadata = json.loads(loaded.metadata_json.numpy())
    check_labels(data, loaded.synsets.numpy(), f"the export {path}", stream)
    resize_mode = metadata.get("resize_mode", prep.SHORTER_SIDE)
    if resize_mode == prep.WARP:
        check_originals(data, stream)
    signature = loaded.signatures["ten_crop" if ten_crop else "serving_default"]
    return _evaluate_signature(lambda image_bytes: signature(image_bytes=image_bytes), data,
                               int(metadata.get("label_offset", 0)), batch_size,
                               f"export {path}, {_patches(ten_crop, resize_mode)}", stream)


def _evaluate_signature(signature, data, label_offset, batch_size, setting, stream):
    """Result of a serving signature (encoded images in, "probabilities" out) on the records."""
    files = input_pipeline.list_shards(data)
    dataset = tf.data.TFRecordDataset(files)
    dataset = dataset.map(lambda r: input_pipeline.parse_example(r, label_offset)).batch(batch_size)
    batches = ((signature(images)["probabilities"].numpy(), labels.numpy())
               for images, labels in dataset)
    return _accumulate(batches, setting, stream, count_images(files), data)


def format_table(results, data):
    """The paper's table: setting | top-1 error | top-5 error."""
    lines = ["| setting | top-1 error | top-5 error |", "|---|---|---|"]
    for r in results:
        lines.append(f"| {r.setting}, {r.num_images:,} images of {data} "
                     f"| {r.top1_error:.2%} | {r.top5_error:.2%} |")
    return "\n".join(lines)
