"""Top-1 and top-5 error of a training run's checkpoint, and the paper's results table.

A checkpoint is evaluated through the input pipeline (make_dataset in eval
mode: centre patch, or the ten patches with their softmax averaged); an export
(serving/evaluate.py, with this module's counting and table) through its own
signatures (serving_default or ten_crop) on the records' encoded bytes, the
path a served request takes. On make_tfrecords' output the
two see the same pixels, so their errors agree: records of the stored size are
decoded alike, and any other record (`--resize 0` keeps the originals; other
converters' TFRecords) is decoded in full and resized by the same function in
both (data/preprocessing.resize_shorter_side_pillow_bicubic, Pillow's bicubic as
make_tfrecords computed the statistics with); a stored-size record's centre
patch is decoded as a window in both.
"""
import dataclasses
import os
import sys

import numpy as np
import tensorflow as tf

from keras_alexnet import evaluation, progress
from keras_alexnet.data import checks, input_pipeline, layout
from keras_alexnet.runs import restore


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


def accumulate(batches, setting, stream, total=None, data=None):
    """Result over (probabilities, labels) batches, with the progress bar (ETA if total is known).

    A shard cut short (DataLossError) becomes a sentence naming it.
    """
    try:
        return _accumulate(batches, setting, stream, total)
    except tf.errors.DataLossError as e:
        raise ValueError(layout.describe_data_loss(e, [data] if data else [])) from None


def _accumulate(batches, setting, stream, total=None):
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


def patches_name(ten_crop):
    return "10 patches" if ten_crop else "1 patch (centre)"


def evaluate_checkpoint(workdir, data, *, checkpoint="best", ten_crop=False, batch_size=64,
                        data_dir=None, stream=sys.stderr, run=None):
    """Result of WORKDIR's checkpoint on the TFRecords matching `data`, through the input pipeline.

    run: the restore.RestoredRun of that checkpoint, if already restored. A run served with
    Caffe's warp is evaluated through the export's graph instead (serving/evaluate.py).
    """
    run = run or restore.restore_run(workdir, checkpoint, data_dir=data_dir)
    check_labels(data, run.synsets, f"the run in {workdir}", stream)
    checks.check_evaluation_data(input_pipeline.list_shards(data), f"--data {data}",
                                 run.label_offset, len(run.synsets), f"the run's, in {workdir}")
    return accumulate(checkpoint_batches(run, data, ten_crop, batch_size),
                      f"checkpoint {run.checkpoint_path}, {patches_name(ten_crop)}",
                      stream, layout.shards_size(input_pipeline.list_shards(data)), data)


def checkpoint_batches(run, data, ten_crop, batch_size):
    """(probabilities [B, C], labels [B]) numpy batches of a restored run on the records of
    `data`, in their order, through the input pipeline (centre patch or ten crops averaged)."""
    dataset = input_pipeline.from_input_config(run.config, None, batch_size, False,
                                               data_dir=run.data_dir, file_pattern=data,
                                               ten_crop=ten_crop, repeat=False)
    model = run.model

    @tf.function
    def probabilities(images):
        return evaluation.class_probabilities(lambda x: model(x, training=False), images)

    return ((probabilities(images).numpy(), labels.numpy()) for images, labels in dataset)


def format_table(results, data):
    """The paper's table: setting | top-1 error | top-5 error."""
    lines = ["| setting | top-1 error | top-5 error |", "|---|---|---|"]
    for r in results:
        lines.append(f"| {r.setting}, {r.num_images:,} images of {data} "
                     f"| {r.top1_error:.2%} | {r.top5_error:.2%} |")
    return "\n".join(lines)
