"""A trained run, back from its workdir: the model with restored weights, its labels and statistics.

Reads the workdir the trainer writes (training/workdir.py: config.json, best/,
checkpoints/) and the data folder the config names (data/layout.py: labels.txt,
stats.npz, dataset.json). Used by bin/export and bin/evaluate.
"""
import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from keras_alexnet.data import layout
from keras_alexnet.data import stats as stats_lib
from keras_alexnet.training import workdir as workdir_lib


@dataclasses.dataclass
class RestoredRun:
    model: keras.Model
    config: dict
    checkpoint_path: str
    data_dir: str
    synsets: list
    class_names: list
    mean_image: np.ndarray  # [R, R, 3] subtracted before cropping (0..255 scale)
    std: np.ndarray         # [3] divided by after subtracting (ones for the paper's mean image)
    label_offset: int
    normalization: str
    jpeg_quality: int = layout.JPEG_QUALITY  # the served images' re-encode quality; 0: none (config.input.jpeg_reencode)
    resize_mode: str = "shorter_side"  # config.input.resize: 'shorter_side' or 'warp'

    @property
    def image_size(self):
        return int(self.model.input_shape[1])


def restore_newest(model_kwargs, workdir, checkpoint="best", attempts=3):
    """(model, checkpoint path) of `checkpoint` (workdir.checkpoint_path's 'best', 'latest', ...).

    A training still running rotates old checkpoints away: the newest one named when the
    restore began can be deleted before its files are read. 'best' and 'latest' are then
    resolved again (the next newest); any other failure to read is one sentence.
    """
    for attempt in range(attempts):
        path = workdir_lib.checkpoint_path(workdir, checkpoint)
        try:
            return (workdir_lib.restore_model(workdir_lib.build_float32_model(model_kwargs), path),
                    path)
        except (tf.errors.NotFoundError, tf.errors.DataLossError, tf.errors.OutOfRangeError) as e:
            detail = (e.message or str(e)).strip().splitlines()[0]
            if checkpoint in ("best", "latest") and attempt + 1 < attempts:
                logging.warning("%s went away while being read (a training rotating its "
                                "checkpoints?); trying the newest again", path)
                continue
            raise ValueError(f"checkpoint {path} could not be read ({detail}); a training still "
                             "running may have rotated it away: run again, or pass "
                             "--checkpoint=PATH of one it keeps") from None


def normalization_arrays(stats, normalization):
    """(mean [R, R, 3], std [3]) for 'mean_image' (the paper) or 'channel' (mean/std per channel)."""
    if normalization == "mean_image":
        return stats.mean_image, np.ones(3)
    if normalization == "channel":
        mean = np.broadcast_to(stats.channel_mean, stats.mean_image.shape)
        return np.array(mean), stats.channel_std
    raise ValueError(f"config.input.normalization: unknown {normalization!r}")


def restore_run(workdir, checkpoint="best", *, data_dir=None, resize=None):
    """Everything an export or an evaluation needs from a training workdir.

    resize: 'shorter_side' or 'warp' instead of the run's config.input.resize.
    """
    config = workdir_lib.read_config(workdir)
    input_config = config.get("input", {})
    # config.json's data_dir is absolute (relative in runs written before); an empty one is
    # the demo data, inside the workdir wherever it now is.
    data_dir = data_dir or workdir_lib.stored_data_dir(config, workdir)
    if not tf.io.gfile.isdir(data_dir):
        raise FileNotFoundError(f"data folder {data_dir} does not exist; pass --data_dir")
    labels = layout.load_labels(data_dir)
    num_classes = config["model"]["num_classes"]
    if len(labels) != num_classes:
        raise ValueError(f"{os.path.join(data_dir, layout.LABELS_FILENAME)} has {len(labels)} classes, "
                         f"config.model.num_classes is {num_classes}")
    normalization = input_config.get("normalization", "mean_image")
    mean, std = normalization_arrays(stats_lib.load_stats(data_dir), normalization)
    # Served images are re-encoded as the training images were stored: at the writer's
    # quality, or not at all for weights trained on decoded pixels (an imported Caffe run).
    quality = (layout.writer_jpeg_quality(layout.read_manifest(data_dir))
               if input_config.get("jpeg_reencode", True) else 0)
    model, path = restore_newest(config["model"], workdir, checkpoint)
    return RestoredRun(model=model, config=config, checkpoint_path=path, data_dir=data_dir,
                       synsets=[s for s, _ in labels], class_names=[n for _, n in labels],
                       mean_image=mean, std=std, label_offset=int(input_config.get("label_offset", 0)),
                       normalization=normalization, jpeg_quality=quality,
                       resize_mode=resize or input_config.get("resize", "shorter_side"))

