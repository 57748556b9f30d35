"""The data folder on disk: one home for its file names, its record format and their I/O.

What bin/make_tfrecords writes and everything else reads (README, "What the output
folder holds"):

    DATA/{split}-00000-of-00008 ...   TFRecord shards of tf.train.Example with FEATURE_SPEC's keys
    DATA/labels.txt                   "index<TAB>wnid<TAB>name", one line per class
    DATA/stats.npz                    training statistics (stats.py reads and writes its arrays)
    DATA/dataset.json                 the manifest: format, classes, settings, splits
    DATA/report-{split}.json / .tsv   totals, and every skipped file with its reason
    DATA/.parts/                      per-shard partial results, for resuming
    DATA/.lock                        held by the make_tfrecords writing the folder

Every file is written atomically (`atomic_output`): under a hidden temporary name,
renamed when complete, so a reader never sees half a file and an interrupted
writer leaves the previous version (or nothing) in place.
"""
import contextlib
import json
import os
import re
import struct

import tensorflow as tf

FORMAT = "keras_alexnet-tfrecords/1"  # dataset.json's "format"
LABELS_FILENAME = "labels.txt"
STATS_FILENAME = "stats.npz"
MANIFEST_FILENAME = "dataset.json"
PARTS_DIR = ".parts"
LOCK_FILENAME = ".lock"  # held by the make_tfrecords writing the folder (locking.py)
# The JPEG quality make_tfrecords re-encodes with (--quality); the export re-encodes a request
# at the quality its data was written with, so that it sees the pixels training saw.
JPEG_QUALITY = 90

# The keys of the Inception/TPU ImageNet converters, so their TFRecords read too.
# The writer (shard_writer.make_example) and the reader (input_pipeline) both use this dict.
FEATURE_SPEC = {
    "image/encoded": tf.io.FixedLenFeature((), tf.string),
    "image/format": tf.io.FixedLenFeature((), tf.string, default_value="JPEG"),
    "image/class/label": tf.io.FixedLenFeature((), tf.int64),
    "image/class/synset": tf.io.FixedLenFeature((), tf.string, default_value=""),
    "image/class/text": tf.io.FixedLenFeature((), tf.string, default_value=""),
    "image/height": tf.io.FixedLenFeature((), tf.int64, default_value=-1),
    "image/width": tf.io.FixedLenFeature((), tf.int64, default_value=-1),
    "image/filename": tf.io.FixedLenFeature((), tf.string, default_value=""),
}


class DataFolderError(ValueError):
    """A file of the data folder that cannot be read as make_tfrecords writes it (named)."""


# -- names -------------------------------------------------------------------------------------

def shard_names(split, num_shards):
    """["{split}-00000-of-NNNNN", ...]: the shard files of one split."""
    return [f"{split}-{i:05d}-of-{num_shards:05d}" for i in range(num_shards)]


def shard_pattern(data_dir, split):
    """The glob of a split's shards (also matches the Inception/TPU converters' names)."""
    return os.path.join(data_dir, f"{split}-*-of-*")


def report_paths(data_dir, split):
    """(report-{split}.json, report-{split}.tsv)."""
    return (os.path.join(data_dir, f"report-{split}.json"),
            os.path.join(data_dir, f"report-{split}.tsv"))


def part_path(data_dir, shard_name, ext):
    """DATA/.parts/<shard>.<ext>: a shard's partial statistics (npz) or skip list (json)."""
    return os.path.join(data_dir, PARTS_DIR, f"{shard_name}.{ext}")


def _in(path_or_dir, filename):
    path = str(path_or_dir)
    return os.path.join(path, filename) if tf.io.gfile.isdir(path) else path


# -- damaged shards -----------------------------------------------------------------------------

def walk_tfrecord(path, keep_first=False):
    """(records, why the file is cut short or garbled or None, first record's data or None).

    Walks the record headers only: a record is [length u64][crc u32][data][crc u32]; a
    file that ends inside a record (a copy cut short, a full disk) or whose length field is
    garbage shows here without reading the images. (Flipped bits inside the data show only
    as a CRC error when read.) keep_first: also read the first record's data.
    """
    first = None
    with tf.io.gfile.GFile(path, "rb") as f:
        size, offset, count = f.size(), 0, 0
        while offset < size:
            f.seek(offset)
            header = f.read(12)
            if len(header) < 12:
                return count, (f"cut short: {size - offset} stray bytes after record {count} "
                               f"(file size {size:,} bytes)"), first
            length = struct.unpack("<Q", header[:8])[0]
            end = offset + 12 + length + 4
            if end > size:
                return count, (f"cut short or corrupt: record {count} at byte {offset:,} claims "
                               f"{length:,} bytes, the file ends at {size:,}"), first
            if keep_first and count == 0:
                first = f.read(length)
            offset, count = end, count + 1
    return count, None, first


def tfrecord_damage(path):
    """Why a TFRecord file is cut short or garbled, or None (walk_tfrecord's second value)."""
    return walk_tfrecord(path)[1]


def _checksum_failure(files):
    """(path, why) of the first file whose records fail their checksums when read, or None."""
    for path in files:
        try:
            tf.data.TFRecordDataset(path).reduce(0, lambda n, _: n + 1).numpy()
        except tf.errors.DataLossError as e:
            return path, (getattr(e, "message", None) or str(e)).strip().splitlines()[0]
    return None


def describe_data_loss(error, patterns):
    """A sentence for a DataLossError of reading shards: which file, what is wrong, what to do."""
    files = sorted({f for p in patterns for f in tf.io.gfile.glob(str(p))})
    damaged = [(f, why) for f in files for why in [tfrecord_damage(f)] if why]
    detail = (getattr(error, "message", None) or str(error)).strip().splitlines()[0]
    if not damaged:
        # Flipped bits inside a record: only reading the records finds the shard.
        found = _checksum_failure(files)
        if found:
            damaged = [(found[0], f"a record fails its checksum, flipped bits ({found[1]})")]
    if not damaged:
        return (f"a TFRecord shard is corrupt ({detail}); its record framing looks whole, so "
                f"flipped bits inside a record are likely: check {len(files)} shards with "
                "tf.data.TFRecordDataset, or re-run bin/make_tfrecords into a new folder")
    names = "; ".join(f"{path}: {why}" for path, why in damaged[:5])
    more = f" (and {len(damaged) - 5} more)" if len(damaged) > 5 else ""
    return (f"damaged TFRecord shard{'s' if len(damaged) > 1 else ''}: {names}{more}. Delete "
            "it and re-run the same bin/make_tfrecords command: it rewrites only missing shards")


# -- atomic writes -----------------------------------------------------------------------------

def temporary_path(path):
    """The hidden name atomic_output writes `path` under until it is complete."""
    folder, name = os.path.split(os.fspath(path))
    return os.path.join(folder, f".{name}.tmp{os.path.splitext(name)[1]}")


@contextlib.contextmanager
def atomic_output(path):
    """Yields a hidden temporary path beside `path`; renames it to `path` if the block succeeds.

    The temporary name starts with a dot (no shard glob matches it) and keeps the
    extension (np.savez would otherwise append ".npz"). On an exception it is removed.
    """
    tmp = temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write(path, data):
    """Writes str or bytes to path atomically."""
    with atomic_output(path) as tmp:
        with open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
    return path


def write_json(path, obj, indent=1):
    return atomic_write(path, json.dumps(obj, indent=indent))


def read_json(path):
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


# -- labels.txt --------------------------------------------------------------------------------

# labels.txt and report-{split}.tsv are tab-separated lines; a class or file name may hold
# anything a folder or file name can. Backslash escapes keep each field on its line and
# distinct: tab \t, newline \n, carriage return \r, the backslash \\, other control
# characters, line separators and undecodable bytes of a file name (lone surrogates)
# \xNN / \uNNNN. Everything else is written as it is.
_TO_ESCAPE = re.compile(r"[\\\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_ESCAPED = re.compile(r"\\(\\|t|n|r|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4})")
_SHORT = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def escape_field(text):
    """text as one field of a tab-separated line (see above); unescape_field reverses it."""
    def one(match):
        ch = match.group()
        return _SHORT.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
    return _TO_ESCAPE.sub(one, str(text))


def unescape_field(text):
    """The text escape_field wrote (a backslash before anything else is kept as it is)."""
    def one(match):
        code = match.group(1)
        return {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}.get(code) or chr(int(code[1:], 16))
    return _ESCAPED.sub(one, text)


def tsv_line(*fields):
    """One line of escaped, tab-separated fields."""
    return "\t".join(escape_field(f) for f in fields) + "\n"


def labels_text(classes):
    """labels.txt's content for [(wnid, name)] in label order (fields escaped: escape_field)."""
    return "".join(tsv_line(i, wnid, name) for i, (wnid, name) in enumerate(classes))


def write_labels(data_dir, classes):
    return atomic_write(os.path.join(data_dir, LABELS_FILENAME), labels_text(classes))


def load_labels(path_or_dir):
    """[(wnid, name)] in label order from labels.txt (a file or the folder holding it)."""
    path = _in(path_or_dir, LABELS_FILENAME)
    labels = []
    with tf.io.gfile.GFile(path) as f:
        for number, line in enumerate(f):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 3 or fields[0] != str(number):
                raise DataFolderError(f"{path}:{number + 1}: expected '{number}<TAB>wnid<TAB>name'"
                                      f", found {line.rstrip(chr(10))[:80]!r}")
            labels.append((unescape_field(fields[1]), unescape_field(fields[2])))
    return labels


# -- dataset.json ------------------------------------------------------------------------------

def write_manifest(data_dir, manifest):
    return write_json(os.path.join(data_dir, MANIFEST_FILENAME), manifest)


def read_manifest(data_dir):
    """make_tfrecords' dataset.json, or {} for a folder written by other tools."""
    path = os.path.join(data_dir, MANIFEST_FILENAME)
    if not tf.io.gfile.exists(path):
        return {}
    return read_json(path)


def splits_complete(data_dir, splits):
    """Whether the manifest records every one of `splits` as completely written."""
    done = read_manifest(data_dir).get("splits", {})
    return all(done.get(s, {}).get("complete") for s in splits)


def writer_jpeg_quality(manifest):
    """The JPEG quality make_tfrecords re-encoded with; 0 if it kept the original bytes (--resize 0)."""
    return int(manifest.get("quality", JPEG_QUALITY)) if manifest.get("resize", 1) else 0


def split_size(data_dir, split):
    """How many examples make_tfrecords wrote for a complete split (report-{split}.json), or None."""
    path = report_paths(data_dir, split)[0]
    if not splits_complete(data_dir, [split]) or not tf.io.gfile.exists(path):
        return None
    try:
        return int(read_json(path)["written"])
    except (ValueError, KeyError, TypeError):
        return None


def shards_size(files):
    """split_size of the split whose shards are exactly `files` (one folder), else None.

    The count is the split's report: counting the records would read the data twice.
    """
    folders = {os.path.dirname(f) for f in files}
    if len(folders) != 1:
        return None
    folder = folders.pop()
    for split in read_manifest(folder).get("splits", {}):
        if sorted(tf.io.gfile.glob(shard_pattern(folder, split))) == sorted(files):
            return split_size(folder, split)
    return None
