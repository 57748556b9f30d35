"""Data that is wrong from the start, refused before the first step (bin/train) or batch (bin/evaluate).

Without these checks each case below trained a whole epoch (hours on ImageNet) and
then failed with a traceback, or trained silently wrong:

    shard sets       a split's shards all of one set (-of-00008 beside -of-00002: two
                     datasets in one folder), the set dataset.json records
    records          the evaluation splits' shards readable, whole and not empty (their
                     record headers are walked, the images not read); the first record
                     of every shard an image/encoded JPEG (the input pipeline decodes
                     JPEGs; another converter may store PNGs)
    labels           in 0..num_classes-1 after config.input.label_offset: make_tfrecords'
                     labels are 0-based (its dataset.json says the folder is its); other
                     folders' labels are read: every label of the evaluation splits, a
                     sample of the training split's (the first records of 16 shards)

Flipped bits inside a record pass these checks (only reading every image finds them):
layout.describe_data_loss names the shard when the input pipeline meets them.
"""
import collections
import os
import re

import numpy as np
import tensorflow as tf

from keras_alexnet.data import layout

LABEL_SAMPLE_SHARDS, LABEL_SAMPLE_RECORDS = 16, 1000  # the training split's label sample
_FORMATS = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG", "PNG"), (b"GIF8", "GIF"), (b"BM", "BMP"),
            (b"RIFF", "WebP"))


class DataError(ValueError):
    """Data that cannot train or evaluate as configured; the message is one sentence."""


def check_shard_set(files, what, manifest_shards=None):
    """Refuses a split whose shards are of several sets (-of-N), or of another set than recorded."""
    sets = collections.Counter(m.group(1) for f in files
                               for m in [re.search(r"-of-(\d+)$", os.path.basename(f))] if m)
    folder = os.path.dirname(files[0])
    if len(sets) > 1:
        counts = ", ".join(f"{n} named -of-{total}" for total, n in sorted(sets.items()))
        raise DataError(f"{what}: {folder} holds shards of several datasets ({counts}); move out "
                        "the ones that do not belong, or convert into a folder of its own")
    if manifest_shards and sets and int(next(iter(sets))) != int(manifest_shards):
        raise DataError(f"{what}: {folder}'s shards are named -of-{next(iter(sets))}, but its "
                        f"{layout.MANIFEST_FILENAME} records {manifest_shards} shards: they are "
                        "another dataset's; move them out or convert again")


def _image_format(encoded):
    return next((name for magic, name in _FORMATS if encoded.startswith(magic)), "not an image")


def check_records(files, what, *, walk=True):
    """Refuses unreadable, damaged or empty shards, and a first record holding no image the
    input pipeline decodes (JPEG, PNG, GIF, BMP, WebP).

    walk: walk every record header (counts the records, finds files cut short); False
    reads the first record of each shard only (the training split: 1,024 ImageNet shards).
    """
    total = 0
    for path in files:
        try:
            count, damage, first = layout.walk_tfrecord(path, keep_first=True) if walk else \
                _first_only(path)
        except (OSError, tf.errors.OpError) as e:
            why = getattr(e, "strerror", None) or getattr(e, "message", None) or str(e)
            raise DataError(f"{what}: cannot read {path} ({why})") from None
        if damage:
            raise DataError(f"{what}: damaged TFRecord shard {path}: {damage}. Delete it and "
                            "re-run the same bin/make_tfrecords command: it rewrites only "
                            "missing shards")
        total += count
        if first is not None:
            _check_first_record(path, first, what)
    if walk and total == 0:
        raise DataError(f"{what}: its {len(files)} shard(s) ({files[0]} ...) hold no records; "
                        "convert the split again, or point the field at another split")
    return total


def _first_only(path):
    with tf.io.gfile.GFile(path, "rb") as f:
        header = f.read(12)
        if not header:
            return 0, None, None
        if len(header) < 12:
            return 0, f"cut short: {len(header)} stray bytes", None
        length = int.from_bytes(header[:8], "little")
        data = f.read(length)
        if len(data) < length:
            return 0, f"cut short: record 0 claims {length:,} bytes", None
        return 1, None, data


def _check_first_record(path, data, what):
    try:
        feature = tf.train.Example.FromString(data).features.feature
    except Exception:  # noqa: BLE001  (protobuf's DecodeError)
        raise DataError(f"{what}: {path}, record 0, is not a tf.train.Example") from None
    encoded = feature["image/encoded"].bytes_list.value if "image/encoded" in feature else []
    if not encoded:
        raise DataError(f"{what}: {path}, record 0, has no image/encoded feature (not image "
                        "classification TFRecords of the Inception/TPU converters' keys)")
    kind = _image_format(encoded[0])
    if kind == "not an image":
        raise DataError(f"{what}: {path}, record 0, holds no image the input pipeline decodes in "
                        "image/encoded (JPEG, PNG, GIF, BMP or WebP; TIFF and others are not): "
                        "convert the images with bin/make_tfrecords")


def label_range(files, sample=False):
    """(smallest, largest) image/class/label in files; sample: the first records of 16 shards."""
    if sample:
        step = max(1, len(files) // LABEL_SAMPLE_SHARDS)
        files = files[::step][:LABEL_SAMPLE_SHARDS]
    spec = {"image/class/label": layout.FEATURE_SPEC["image/class/label"]}
    per_file = LABEL_SAMPLE_RECORDS // len(files) + 1 if sample else -1
    records = tf.data.Dataset.from_tensor_slices(files).interleave(
        lambda f: tf.data.TFRecordDataset(f).take(per_file), cycle_length=min(8, len(files)),
        num_parallel_calls=tf.data.AUTOTUNE)
    labels = records.map(lambda r: tf.io.parse_single_example(r, spec)["image/class/label"],
                         num_parallel_calls=tf.data.AUTOTUNE).batch(8192)
    lo, hi = np.inf, -np.inf
    for batch in labels.as_numpy_iterator():
        if len(batch):
            lo, hi = min(lo, int(batch.min())), max(hi, int(batch.max()))
    return (None, None) if lo == np.inf else (lo, hi)


def check_label_ranges(ranges, num_classes, label_offset, source=""):
    """Refuses labels outside 0..num_classes-1 after the offset; ranges: {what: (lo, hi)}.

    source: where the offset comes from, when not this run's config (bin/evaluate).
    """
    flag = "config.input.label_offset"
    ranges = {what: r for what, r in ranges.items() if r[0] is not None}
    bad = {what: (lo, hi) for what, (lo, hi) in ranges.items()
           if lo - label_offset < 0 or hi - label_offset >= num_classes}
    if not bad:
        return
    what, (lo, hi) = next(iter(bad.items()))
    fits = [offset for offset in sorted({lo for lo, _ in ranges.values()} | {0, 1})
            if all(lo - offset >= 0 and hi - offset < num_classes for lo, hi in ranges.values())]
    found = "; ".join(f"{w}: {lo}..{hi}" for w, (lo, hi) in ranges.items())
    advice = (f"set {flag}={fits[0]}" if fits else
              "no one offset fits every split (the splits count from different bases, or hold "
              "more classes than the model): convert them again with one converter")
    raise DataError(f"{what}: labels run {lo}..{hi}, but with {flag}={label_offset} the "
                    f"model's {num_classes} classes need {label_offset}..{label_offset + num_classes - 1}"
                    f" ({found}); {advice} (the Inception/TPU converters write 1-based labels, "
                    f"bin/make_tfrecords 0-based ones){f'; the offset is {source}' if source else ''}")


def check_make_tfrecords_offset(manifest, data_dir, label_offset, source=""):
    """make_tfrecords' folders hold 0-based labels: any other offset misreads every one."""
    if manifest.get("format") == layout.FORMAT and label_offset != 0:
        where = f" ({source})" if source else ""
        raise DataError(f"config.input.label_offset={label_offset}{where}, but {data_dir} was "
                        f"written by bin/make_tfrecords ({layout.MANIFEST_FILENAME}), whose labels "
                        "are 0-based: set config.input.label_offset=0")


def check_evaluation_data(files, what, label_offset, num_classes, source):
    """bin/evaluate's checks of its --data shards (what: the flag and value, for the sentence;
    source: where label_offset comes from)."""
    folder = os.path.dirname(files[0])
    manifest = layout.read_manifest(folder)
    check_shard_set(files, what)
    check_records(files, what)
    check_make_tfrecords_offset(manifest, folder, label_offset, source)
    if manifest.get("format") != layout.FORMAT:
        check_label_ranges({what: label_range(files)}, num_classes, label_offset, source)
