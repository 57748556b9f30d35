"""data/layout.py: each file of the data folder written, then read back; the atomic write."""
import glob
import os

import pytest
import tensorflow as tf

from keras_alexnet.data import layout, shard_writer


def test_labels_round_trip(tmp_path):
    classes = [("n01440764", "tench, Tinca tinca"), ("n02", "two\twords\nsplit"), ("n03", "n03")]
    layout.write_labels(str(tmp_path), classes)
    # Tabs and newlines are escaped, not folded into spaces: names come back as they were.
    assert layout.load_labels(tmp_path) == classes
    assert (tmp_path / layout.LABELS_FILENAME).read_text().splitlines()[1] == \
        "1\tn02\ttwo\\twords\\nsplit"
    (tmp_path / "old.txt").write_text("0\tn01\tAC\\DC, 50%\n")  # a lone backslash reads as written
    assert layout.load_labels(tmp_path / "old.txt") == [("n01", "AC\\DC, 50%")]
    assert layout.load_labels(tmp_path / layout.LABELS_FILENAME) == layout.load_labels(tmp_path)
    (tmp_path / "bad.txt").write_text("0\tn01\tone\n2\tn02\ttwo\n")
    with pytest.raises(ValueError, match="bad.txt:2: expected '1<TAB>wnid<TAB>name'"):
        layout.load_labels(tmp_path / "bad.txt")


def test_manifest_round_trip(tmp_path):
    assert layout.read_manifest(str(tmp_path)) == {}  # other tools' folders have none
    manifest = {"format": layout.FORMAT, "classes": [["n01", "a"]], "resize": 256, "quality": 85,
                "splits": {"train": {"complete": True}, "validation": {"complete": False}}}
    layout.write_manifest(str(tmp_path), manifest)
    assert layout.read_manifest(str(tmp_path)) == manifest
    assert layout.splits_complete(str(tmp_path), ("train",))
    assert not layout.splits_complete(str(tmp_path), ("train", "validation"))
    assert layout.writer_jpeg_quality(manifest) == 85
    assert layout.writer_jpeg_quality(dict(manifest, resize=0)) == 0  # original bytes kept
    assert layout.writer_jpeg_quality({}) == layout.JPEG_QUALITY == 90


def test_example_round_trip_through_the_feature_spec(tmp_path):
    values = {"image/encoded": b"\xff\xd8bytes", "image/format": "JPEG", "image/class/label": 7,
              "image/class/synset": "n07", "image/class/text": "seven", "image/height": 12,
              "image/width": 34, "image/filename": "a/b.JPEG"}
    assert set(values) == set(layout.FEATURE_SPEC)
    name = layout.shard_names("validation", 1)[0]
    assert name == "validation-00000-of-00001"
    path = os.path.join(tmp_path, name)
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(shard_writer.make_example(values))
    assert glob.glob(layout.shard_pattern(str(tmp_path), "validation")) == [path]
    record = next(iter(tf.data.TFRecordDataset(path)))
    parsed = {k: v.numpy() for k, v in tf.io.parse_single_example(record, layout.FEATURE_SPEC).items()}
    assert parsed == {k: v.encode() if isinstance(v, str) else v for k, v in values.items()}


def test_atomic_write_replaces_whole_files_and_leaves_nothing_on_failure(tmp_path):
    path = tmp_path / "train-00000-of-00001"
    layout.atomic_write(str(path), b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with layout.atomic_output(str(path)) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"half")
            # The temporary file is hidden from the shard pattern readers glob.
            assert glob.glob(layout.shard_pattern(str(tmp_path), "train")) == [str(path)]
            raise RuntimeError("disk full")
    assert path.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == [path.name]
    layout.write_json(str(tmp_path / "r.json"), {"a": [1, 2]})
    assert layout.read_json(str(tmp_path / "r.json")) == {"a": [1, 2]}
