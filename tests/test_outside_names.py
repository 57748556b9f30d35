"""Files and names from the outside (issue 21 section 5): what make_tfrecords does with them.

Class and file names holding tabs or newlines, symlinks that lead nowhere, empty
class folders, phone photos with an EXIF orientation.
"""
import io
import os

from PIL import Image

import fixtures as fx
from keras_alexnet.data import layout


def _tsv_rows(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    assert lines[-1] == ""  # every row ends with its newline, and only there
    return [tuple(layout.unescape_field(field) for field in line.split("\t")) for line in lines[:-1]]


def test_tabs_and_newlines_in_class_and_file_names_round_trip(tmp_path):
    root = tmp_path / "in"
    for cls in ("a\tb", "a b", "back\\slash\nnew"):
        fx.write(str(root / cls / "img.JPEG"), fx.encode(fx.picture(40, 50)))
    forged = "x\ny\tforged reason\nz.txt"  # a name that would forge rows in the report
    fx.write(str(root / "a b" / forged), b"not an image")
    out = tmp_path / "out"
    fx.convert(root, out, "train", resize=32)

    labels = layout.load_labels(out)
    assert labels == [("a\tb", "a\tb"), ("a b", "a b"), ("back\\slash\nnew", "back\\slash\nnew")]
    assert len((out / layout.LABELS_FILENAME).read_text().splitlines()) == 3  # one line a class
    rows = _tsv_rows(layout.report_paths(str(out), "train")[1])
    assert rows[0] == ("file", "reason") and len(rows) == 2
    assert rows[1][0] == f"a b/{forged}" and rows[1][1].startswith("not an image")


def test_symlinks_that_lead_nowhere_are_skipped_with_a_reason(tmp_path):
    root = tmp_path / "in"
    fx.image_folder(root, classes=("n01", "n02"), per_class=2, size=(40, 50))
    os.symlink(root / "n01" / "gone.JPEG", root / "n01" / "dangling.JPEG")
    os.symlink(root / "n02" / "loop_b.JPEG", root / "n02" / "loop_a.JPEG")
    os.symlink(root / "n02" / "loop_a.JPEG", root / "n02" / "loop_b.JPEG")
    os.symlink(root / "n01" / "img0.JPEG", root / "n02" / "good_link.JPEG")  # read through
    out = tmp_path / "out"
    summary = fx.convert(root, out, "train", resize=32)
    assert summary["found"] == 8 and summary["written"] == 5 and summary["skipped"] == 3
    reasons = dict(_tsv_rows(layout.report_paths(str(out), "train")[1])[1:])
    assert reasons["n01/dangling.JPEG"].startswith("unreadable: a dangling symlink (to ")
    assert reasons["n02/loop_a.JPEG"].startswith("unreadable: a symlink loop")
    assert reasons["n02/loop_b.JPEG"].startswith("unreadable: a symlink loop")


def test_an_empty_class_folder_is_said(tmp_path):
    root = tmp_path / "in"
    fx.image_folder(root, classes=("n01", "n03"), per_class=2, size=(40, 50))
    (root / "n02").mkdir()
    stream = io.StringIO()
    fx.convert(root, tmp_path / "out", "train", resize=32, stream=stream)
    assert "1 class folders of" in stream.getvalue()
    assert "(n02/): each is still a class, with no images in this split" in stream.getvalue()
    assert [wnid for wnid, _ in layout.load_labels(tmp_path / "out")] == ["n01", "n02", "n03"]


def _rotated_photo(path):
    """A 40x60 (height x width) picture stored with EXIF Orientation=6 (shown rotated 90 degrees)."""
    image = Image.fromarray(fx.picture(40, 60, seed=3))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    fx.write(str(path), buffer.getvalue())
    return buffer.getvalue()


class _Recorder:
    """A classifier that keeps what it is sent and answers one fixed row per image."""

    def __init__(self):
        self.sent = []

    def classify(self, images):
        self.sent += list(images)
        return [[(0, "n01", "one", 1.0)] for _ in images]


def test_exif_orientation_is_applied_nowhere_and_bin_predict_says_so(tmp_path):
    """The choice: neither make_tfrecords nor the export (nor bin/predict) turns the pixels."""
    import tensorflow as tf
    from keras_alexnet.serving import predict

    root = tmp_path / "in"
    data = _rotated_photo(root / "n01" / "phone.JPEG")
    fx.image_folder(root, classes=("n02",), per_class=1, size=(40, 50))
    fx.convert(root, tmp_path / "out", "train", resize=0, stats_size=16)
    records = {r["image/filename"].decode(): r for r in _records(tmp_path / "out")}
    stored = records["n01/phone.JPEG"]
    assert (int(stored["image/height"]), int(stored["image/width"])) == (40, 60)  # not 60x40
    assert tf.io.decode_jpeg(stored["image/encoded"]).shape == (40, 60, 3)  # as the export decodes

    plain = tmp_path / "plain.jpg"
    plain.write_bytes(fx.encode(fx.picture(40, 60, seed=3)))
    recorder = _Recorder()
    phone, other = predict.predict_paths(recorder, [str(root / "n01" / "phone.JPEG"), str(plain)])
    assert recorder.sent[0] == data  # the file's own bytes, not turned and re-encoded
    assert "EXIF orientation 6 (rotated 90 degrees clockwise when shown) is not applied" in phone.note
    assert other.note is None


def _records(data_dir):
    import tensorflow as tf
    pattern = layout.shard_pattern(str(data_dir), "train")
    for record in tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(pattern))):
        parsed = tf.io.parse_single_example(record, layout.FEATURE_SPEC)
        yield {k: v.numpy() for k, v in parsed.items()}
