"""make_tfrecords: sources, conversion of odd images, reports, resume, refusal to mix datasets."""
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import scipy.io
import tensorflow as tf
from PIL import Image

import fixtures as fx
from keras_alexnet.data import convert
from keras_alexnet.data import shard_writer
from keras_alexnet.data.layout import FEATURE_SPEC, load_labels
from keras_alexnet.data.sources import SourceError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_records(out, split):
    files = sorted(tf.io.gfile.glob(os.path.join(out, f"{split}-*")))
    records = []
    for serialized in tf.data.TFRecordDataset(files):
        ex = tf.io.parse_single_example(serialized, FEATURE_SPEC)
        records.append({k: v.numpy() for k, v in ex.items()})
    return records


def run(tmp_path, input_dir, out="out", **kwargs):
    kwargs.setdefault("num_workers", 1)
    kwargs.setdefault("stream", io.StringIO())
    return convert.convert(kwargs.pop("source", "imagefolder"), str(input_dir),
                           str(tmp_path / out), **kwargs)


def test_round_trip_writer_to_reader(tmp_path):
    root = fx.image_folder(tmp_path / "in", classes=("n02", "n01"), per_class=3)
    summary = run(tmp_path, root, resize=80, num_shards=2)
    assert summary["found"] == 6 and summary["written"] == 6 and summary["skipped"] == 0
    out = tmp_path / "out"
    assert sorted(p for p in os.listdir(out) if p.startswith("train")) == [
        "train-00000-of-00002", "train-00001-of-00002"]
    records = read_records(out, "train")
    assert len(records) == 6
    by_name = {r["image/filename"].decode(): r for r in records}
    assert set(by_name) == {f"{c}/img{i}.JPEG" for c in ("n01", "n02") for i in range(3)}
    for name, r in by_name.items():
        expected_label = 0 if name.startswith("n01") else 1  # sorted class folders
        assert r["image/class/label"] == expected_label
        assert r["image/class/synset"].decode() == name[:3]
        assert r["image/format"] == b"JPEG"
        image = tf.io.decode_jpeg(r["image/encoded"]).numpy()
        assert image.shape == (80, 80, 3) == (r["image/height"], r["image/width"], 3)
    assert load_labels(out) == [("n01", "n01"), ("n02", "n02")]
    with open(out / "labels.txt") as f:
        assert f.read() == "0\tn01\tn01\n1\tn02\tn02\n"


def test_resized_image_is_the_paper_central_crop(tmp_path):
    wide = np.zeros((60, 120, 3), np.uint8)
    wide[:, 30:90] = 255  # the central square is white, the sides black
    fx.write(str(tmp_path / "in" / "a" / "wide.jpg"), fx.encode(wide, "PNG"))
    run(tmp_path, tmp_path / "in", resize=40, num_shards=1)
    image = tf.io.decode_jpeg(read_records(tmp_path / "out", "train")[0]["image/encoded"]).numpy()
    assert image.shape == (40, 40, 3)
    assert image.min() > 200  # only the white centre survives


def test_odd_images_converted_and_broken_files_reported(tmp_path):
    root = fx.image_folder(tmp_path / "in", classes=("n01", "n02"), per_class=2)
    convertible, broken = fx.add_odd_files(root, "n02")
    summary = run(tmp_path, root, resize=0, num_shards=3)
    assert summary["found"] == 4 + 6
    assert summary["written"] == 4 + 3 and summary["skipped"] == 3
    assert summary["found"] == summary["written"] + summary["skipped"]
    records = {r["image/filename"].decode(): r for r in read_records(tmp_path / "out", "train")}
    for name in convertible:
        data = records[f"n02/{name}"]["image/encoded"]
        assert Image.open(io.BytesIO(data)).format == "JPEG"
        assert Image.open(io.BytesIO(data)).mode == "RGB"
        assert tf.io.decode_jpeg(data).shape == (96, 110, 3)
    # --resize 0 keeps an RGB JPEG's bytes as they are.
    with open(os.path.join(root, "n01", "img0.JPEG"), "rb") as f:
        assert records["n01/img0.JPEG"]["image/encoded"] == f.read()
    with open(tmp_path / "out" / "report-train.tsv") as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    reasons = dict(rows)
    assert sorted(reasons) == [f"n02/{n}" for n in broken]
    assert reasons["n02/empty.JPEG"].startswith("empty file")
    assert reasons["n02/truncated.JPEG"].startswith("corrupt or truncated")
    assert reasons["n02/notes.txt"].startswith("not an image")
    report = json.load(open(tmp_path / "out" / "report-train.json"))
    assert report["skipped"] == 3 and sum(report["skipped_by_reason"].values()) == 3


def test_cmyk_colours_survive(tmp_path):
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 220
    fx.write(str(tmp_path / "in" / "a" / "cmyk.JPEG"), fx.encode(red, mode="CMYK"))
    run(tmp_path, tmp_path / "in", resize=64, num_shards=1)
    image = tf.io.decode_jpeg(read_records(tmp_path / "out", "train")[0]["image/encoded"]).numpy()
    assert np.abs(image.reshape(-1, 3).mean(0) - [220, 0, 0]).max() < 12


def _png16(array):
    """PNG bytes of a uint16 array: 16-bit grayscale ([H, W]) or 16-bit RGB ([H, W, 3])."""
    if array.ndim == 3:
        return tf.io.encode_png(array).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")  # Pillow's mode I;16
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["gray16", "rgb16"])
def test_16_bit_pngs_are_scaled_to_8_bits_as_serving_decodes_them(tmp_path, kind):
    """A 16-bit grayscale PNG (mean ~108 of 255) was written as a near-white image."""
    from keras_alexnet.data.preprocessing import DCT_METHOD as dct
    from keras_alexnet.serving import preprocessing as serving_prep
    gray = fx.picture(90, 110, seed=4, channels=1).astype(np.float64) * 0.62
    values = np.round(gray * 257).astype(np.uint16)  # 8-bit picture in 16 bits, mean ~108 * 257
    array = values if kind == "gray16" else np.stack([values, values[::-1], values[:, ::-1]], -1)
    if kind == "gray16":
        assert Image.open(io.BytesIO(_png16(array))).mode == "I;16"
    source_mean = array.mean() / 257
    assert 90 < source_mean < 130
    fx.write(str(tmp_path / "in" / "a" / "deep.png"), _png16(array))
    high = (array >> 8).astype(np.uint8)  # each value's high byte: what 8 bits keep
    eight_bit = fx.encode(high, "PNG")
    for resize, out in ((0, "kept"), (fx.RESIZE, "resized")):
        run(tmp_path, tmp_path / "in", out=out, resize=resize, num_shards=1)
        record = read_records(tmp_path / out, "train")[0]["image/encoded"]
        written = tf.io.decode_jpeg(record, dct_method=dct).numpy().astype(np.float64)
        # Exactly as if the source had been the 8-bit image of its high bytes.
        reference = tf.io.decode_jpeg(shard_writer.convert_image(eight_bit, resize)[0],
                                      dct_method=dct).numpy()
        np.testing.assert_array_equal(written, reference)
        if resize == 0:
            assert abs(written.mean() - source_mean) < 3, (written.mean(), source_mean)
    # The export decodes the 16-bit file to the pixels the writer now stores.
    served = serving_prep.scale_and_center(_png16(array), fx.RESIZE).numpy()
    np.testing.assert_array_equal(served, serving_prep.scale_and_center(eight_bit, fx.RESIZE))
    difference = np.abs(served - written)
    assert difference.mean() < 0.1 and difference.max() <= 12


def _shard_bytes(out):
    return {n: open(os.path.join(out, n), "rb").read()
            for n in sorted(os.listdir(out)) if n.startswith("train-")}


def test_interrupted_run_resumes_to_the_same_result(tmp_path, monkeypatch):
    root = fx.image_folder(tmp_path / "in", classes=("n01", "n02", "n03"), per_class=4)
    run(tmp_path, root, out="whole", resize=48, num_shards=4)
    whole = tmp_path / "whole"

    real_convert, calls = shard_writer.convert_image, []

    def dies_on_seventh(*args, **kwargs):
        calls.append(1)
        if len(calls) == 7:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C inside the third shard
        return real_convert(*args, **kwargs)

    monkeypatch.setattr(shard_writer, "convert_image", dies_on_seventh)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, root, out="cut", resize=48, num_shards=4)
    cut = tmp_path / "cut"
    complete = sorted(n for n in os.listdir(cut) if n.startswith("train-"))
    assert complete == ["train-00000-of-00004", "train-00001-of-00004"]  # 3 images per shard
    assert not os.path.exists(cut / "stats.npz")
    mtimes = {n: os.stat(cut / n).st_mtime_ns for n in complete}

    monkeypatch.setattr(shard_writer, "convert_image", real_convert)
    stream = io.StringIO()
    summary = run(tmp_path, root, out="cut", resize=48, num_shards=4, stream=stream)
    assert "resuming, 2 of 4 shards complete" in stream.getvalue()
    assert summary["converted_this_run"] == 6 and summary["written"] == 12
    assert {n: os.stat(cut / n).st_mtime_ns for n in complete} == mtimes  # not rewritten
    assert _shard_bytes(cut) == _shard_bytes(whole)
    assert open(cut / "stats.npz", "rb").read() == open(whole / "stats.npz", "rb").read()
    assert not [n for n in os.listdir(cut) if n.endswith(".tmp")]
    # A third run has nothing left to do and changes nothing.
    again = run(tmp_path, root, out="cut", resize=48, num_shards=4)
    assert again["converted_this_run"] == 0 and _shard_bytes(cut) == _shard_bytes(whole)


@pytest.mark.slow
def test_worker_processes_give_the_same_shards(tmp_path):
    root = fx.image_folder(tmp_path / "in", classes=("n01", "n02"), per_class=3)
    run(tmp_path, root, out="one", resize=40, num_shards=3)
    run(tmp_path, root, out="two", resize=40, num_shards=3, num_workers=2)
    assert _shard_bytes(tmp_path / "two") == _shard_bytes(tmp_path / "one")
    assert (open(tmp_path / "two" / "stats.npz", "rb").read()
            == open(tmp_path / "one" / "stats.npz", "rb").read())


def _meta_mat(path, year, leaves, parents=()):
    """A devkit meta.mat: a `synsets` struct array like the real one (leaves have num_children 0)."""
    fields = [f"ILSVRC{year}_ID", "WNID", "words", "gloss", "num_children", "children",
              "wordnet_height", "num_train_images"]
    rows = [(i, w, f"{w} words", "gloss", 0, np.zeros((1, 0)), 0, 3) for i, w in leaves]
    rows += [(i, w, "parent", "gloss", 2, np.array([[1, 2]]), 1, 0) for i, w in parents]
    synsets = np.array(rows, dtype=[(f, object) for f in fields])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    scipy.io.savemat(path, {"synsets": synsets})


@pytest.mark.parametrize("year", [2012, 2010])
def test_ilsvrc_labels_follow_sorted_wnids_not_devkit_ids(tmp_path, year):
    # Devkit IDs 1, 2, 3 name WNIDs that sort as 3rd, 1st, 2nd.
    leaves = [(1, "n03000000"), (2, "n01000000"), (3, "n02000000")]
    root = tmp_path / "ILSVRC"
    _meta_mat(str(root / "devkit" / "data" / "meta.mat"), year, leaves, parents=[(4, "n00000001")])
    for _, wnid in leaves:
        fx.write(str(root / "train" / wnid / f"{wnid}_1.JPEG"),
                          fx.encode(fx.picture(70, 80)))
    truth = {"validation": [3, 1, 2, 1], "test": [2, 2, 3]}
    split_dirs = {"validation": "val", "test": "test"}
    for split in truth if year == 2010 else ["validation"]:
        for k, _ in enumerate(truth[split], start=1):
            fx.write(str(root / split_dirs[split] / f"ILSVRC{year}_{split_dirs[split]}_{k:08d}.JPEG"),
                              fx.encode(fx.picture(70, 80, seed=k)))
        with open(root / "devkit" / "data" / f"ILSVRC{year}_{split}_ground_truth.txt", "w") as f:
            f.write("".join(f"{i}\n" for i in truth[split]))

    run(tmp_path, root, source=f"ilsvrc{year}", resize=64, num_shards=1)
    labels = {r["image/class/synset"].decode(): r["image/class/label"]
              for r in read_records(tmp_path / "out", "train")}
    assert labels == {"n01000000": 0, "n02000000": 1, "n03000000": 2}
    assert load_labels(tmp_path / "out") == [
        ("n01000000", "n01000000 words"), ("n02000000", "n02000000 words"),
        ("n03000000", "n03000000 words")]
    id_to_label = {1: 2, 2: 0, 3: 1}
    for split in truth if year == 2010 else ["validation"]:
        run(tmp_path, root, source=f"ilsvrc{year}", resize=64, num_shards=1, split=split)
        got = sorted((r["image/filename"].decode(), r["image/class/label"])
                     for r in read_records(tmp_path / "out", split))
        assert [label for _, label in got] == [id_to_label[i] for i in truth[split]]
    if year == 2012:
        with pytest.raises(SourceError, match="not public"):
            run(tmp_path, root, source="ilsvrc2012", split="test")


def test_tfds_source_through_mock_data(tmp_path):
    import tensorflow_datasets as tfds
    with tfds.testing.mock_data(num_examples=5):
        summary = run(tmp_path, None, source="tfds:imagenette", tfds_data_dir=str(tmp_path / "tfds"),
                      resize=40, num_shards=2, split="validation")
    assert summary["found"] == summary["written"] == 5
    records = read_records(tmp_path / "out", "validation")
    assert len(records) == 5 and len({r["image/filename"] for r in records}) == 5
    labels = load_labels(tmp_path / "out")
    assert len(labels) == 10 and labels[0][0] == "n01440764"
    for r in records:
        assert tf.io.decode_jpeg(r["image/encoded"]).shape == (40, 40, 3)
        assert labels[r["image/class/label"]][0] == r["image/class/synset"].decode()


def test_tfds_prepared_dataset_is_read_in_slices(tmp_path):
    """A dataset prepared on disk (split sizes known): each shard reads only its slice."""
    import tensorflow_datasets as tfds
    folder = tmp_path / "tfds" / "tinyset" / "1.0.0"
    os.makedirs(folder)
    features = tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(None, None, 3)),
        "label": tfds.features.ClassLabel(names=["n02", "n01", "n03"])})
    with tf.io.TFRecordWriter(str(folder / "tinyset-train.tfrecord-00000-of-00001")) as writer:
        for i in range(7):
            writer.write(features.serialize_example(
                {"image": fx.picture(30 + i, 40, seed=i), "label": i % 3}))
    tfds.folder_dataset.write_metadata(
        data_dir=str(folder), features=features, supervised_keys=("image", "label"),
        filename_template="{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}")
    summary = run(tmp_path, None, source="tfds:tinyset", tfds_data_dir=str(tmp_path / "tfds"),
                  resize=24, num_shards=3)
    assert summary["found"] == summary["written"] == 7
    records = read_records(tmp_path / "out", "train")
    assert sorted((r["image/filename"].decode(), r["image/class/label"]) for r in records) == [
        (f"train[{i}]", i % 3) for i in range(7)]
    assert load_labels(tmp_path / "out") == [("n02", "n02"), ("n01", "n01"), ("n03", "n03")]
    with pytest.raises(SourceError, match="no split 'test'"):
        run(tmp_path, None, source="tfds:tinyset", tfds_data_dir=str(tmp_path / "tfds"), split="test")


def test_missing_or_empty_input_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="no such folder"):
        run(tmp_path, tmp_path / "nope")
    os.makedirs(tmp_path / "empty")
    with pytest.raises(SourceError, match="no class folders"):
        run(tmp_path, tmp_path / "empty")
    os.makedirs(tmp_path / "hollow" / "n01")
    with pytest.raises(SourceError, match="hold no files"):
        run(tmp_path, tmp_path / "hollow")
    assert not os.path.exists(tmp_path / "out")  # nothing written on a bad input


def test_output_holding_another_dataset_is_refused(tmp_path):
    first = fx.image_folder(tmp_path / "a", classes=("n01", "n02"), per_class=2)
    run(tmp_path, first, resize=40, num_shards=1)
    before = _shard_bytes(tmp_path / "out")
    other = fx.image_folder(tmp_path / "b", classes=("n07", "n08"), per_class=2)
    with pytest.raises(convert.OutputError, match="different dataset"):
        run(tmp_path, other, resize=40, num_shards=1)
    with pytest.raises(convert.OutputError, match="resize"):
        run(tmp_path, first, resize=64, num_shards=1)
    more = fx.image_folder(tmp_path / "c", classes=("n01", "n02"), per_class=3)
    with pytest.raises(convert.OutputError, match="different train split"):
        run(tmp_path, more, resize=40, num_shards=1)
    assert _shard_bytes(tmp_path / "out") == before
    assert load_labels(tmp_path / "out") == [("n01", "n01"), ("n02", "n02")]
    # The same classes from another split are welcome, and may bring better names.
    fx.write(str(tmp_path / "names.txt"), b"n01 tench\n")
    run(tmp_path, first, resize=40, num_shards=1, split="validation",
        class_names=str(tmp_path / "names.txt"))
    assert load_labels(tmp_path / "out") == [("n01", "tench"), ("n02", "n02")]
    assert _shard_bytes(tmp_path / "out") == before
    # TFRecords from elsewhere (no dataset.json) are not touched either.
    os.makedirs(tmp_path / "foreign")
    open(tmp_path / "foreign" / "train-00000-of-00001", "wb").close()
    with pytest.raises(convert.OutputError, match="not written by make_tfrecords"):
        run(tmp_path, first, out="foreign")


@pytest.mark.slow
def test_command_line_converts_resumes_and_names_classes(tmp_path):
    root = fx.image_folder(tmp_path / "in", classes=("n01", "n02"), per_class=3)
    fx.add_odd_files(root, "n01")
    fx.write(str(tmp_path / "names.txt"), b"n01 tench, Tinca tinca\nn02 English springer\n")
    command = [sys.executable, os.path.join(REPO, "bin", "make_tfrecords"), f"--input_dir={root}",
               f"--output_dir={tmp_path / 'out'}", "--resize=40", "--num_workers=2",
               f"--class_names={tmp_path / 'names.txt'}"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "found 12 = written 9 + skipped 3" in first.stderr and "img/s" in first.stderr
    assert load_labels(tmp_path / "out") == [("n01", "tench, Tinca tinca"), ("n02", "English springer")]
    before = _shard_bytes(tmp_path / "out")
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "resuming, 8 of 8 shards complete" in again.stderr
    assert _shard_bytes(tmp_path / "out") == before


def test_command_line_reports_errors_without_a_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "bin", "make_tfrecords"),
         f"--input_dir={tmp_path / 'missing'}", f"--output_dir={tmp_path / 'out'}"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "missing: no such folder" in result.stderr and "Traceback" not in result.stderr


def test_command_line_help_lists_its_flags():
    result = subprocess.run([sys.executable, os.path.join(REPO, "bin", "make_tfrecords"), "--helpshort"],
                            capture_output=True, text=True, timeout=60)
    for flag in ("--source", "--input_dir", "--output_dir", "--split", "--num_shards", "--resize"):
        assert flag in result.stdout + result.stderr


# -- issue 9: a dead worker, a second converter, and sentences instead of tracebacks ----------

def _cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


@pytest.mark.slow
def test_a_killed_worker_stops_the_run_naming_its_shard_and_a_rerun_resumes(tmp_path):
    import signal
    import time
    # 75 images a shard: seconds of work each, so the kill lands mid-shard
    proc, out, command = fx.start_slow_conversion(tmp_path, 300)
    try:
        deadline = time.time() + 240
        while not (out / ".parts").is_dir() or not [
                n for n in os.listdir(out / ".parts") if n.endswith(".json")]:
            assert proc.poll() is None and time.time() < deadline, "no shard completed"
            time.sleep(0.05)
        workers = fx.worker_processes(proc.pid)
        assert len(workers) == 2
        # The busier worker (more CPU time) wrote that shard and is now inside its next one;
        # the other may still be starting up.
        busy = max(workers, key=_cpu_ticks)
        os.kill(busy, signal.SIGKILL)  # as the out-of-memory killer would
        _, err = proc.communicate(timeout=120)  # today: waits forever
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    assert f"worker process {busy} was killed by SIGKILL" in err
    # The busier worker is inside a shard: a worker killed between two shards holds none, and
    # the others then write the rest (the run does not stop for it).
    assert re.search(r"while writing shard train-000\d\d-of-00008", err), err
    assert "Traceback" not in err
    complete = sorted(n for n in os.listdir(out) if n.startswith("train-"))
    assert complete  # kept
    again = subprocess.run(command, capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert again.returncode == 0, again.stderr
    assert f"resuming, {len(complete)} of 8 shards complete" in again.stderr
    assert "found 600 = written 600 + skipped 0" in again.stderr


def test_a_second_converter_into_the_same_folder_is_refused(tmp_path):
    from keras_alexnet import locking
    root = fx.image_folder(tmp_path / "in", classes=("n01", "n02"), per_class=2)
    os.makedirs(tmp_path / "out")
    with locking.FileLock(tmp_path / "out" / ".lock"):  # what a running make_tfrecords holds
        with pytest.raises(convert.OutputError, match=rf"in use by another make_tfrecords \(pid "
                                                      rf"{os.getpid()} "):
            run(tmp_path, root, resize=40, num_shards=1)
    assert run(tmp_path, root, resize=40, num_shards=1)["written"] == 4  # released


def test_a_folder_of_only_non_images_is_a_sentence_and_leaves_no_shards(tmp_path):
    for c in ("n01", "n02"):
        fx.write(str(tmp_path / "in" / c / "notes.txt"), b"not an image\n")
    with pytest.raises(SourceError, match=r"none of the 2 files is an image .*not an image.*: 2.*"
                                          r"report-train.tsv"):
        run(tmp_path, tmp_path / "in", resize=40, num_shards=2)
    names = os.listdir(tmp_path / "out")
    assert not [n for n in names if n.startswith("train-")], names
    assert "report-train.tsv" in names and not os.path.exists(tmp_path / "out" / "stats.npz")


def test_an_output_dir_under_a_file_is_a_sentence(tmp_path):
    root = fx.image_folder(tmp_path / "in", classes=("n01", "n02"), per_class=1)
    fx.write(str(tmp_path / "file"), b"x")
    with pytest.raises(convert.OutputError, match="file is a file, not a folder"):
        run(tmp_path, root, out="file/out")


@pytest.mark.parametrize("quality", [0, 101, -5])
def test_quality_outside_1_to_100_is_refused(tmp_path, quality):
    root = fx.image_folder(tmp_path / "in", classes=("n01", "n02"), per_class=1)
    with pytest.raises(SourceError, match=f"--quality {quality}: expected a JPEG quality from 1 to 100"):
        run(tmp_path, root, quality=quality)


def test_nested_class_subfolders_are_reported_as_ignored(tmp_path):
    root = fx.image_folder(tmp_path / "in", classes=("n01", "n02"), per_class=2)
    fx.write(str(tmp_path / "in" / "n01" / "more" / "x.JPEG"), fx.encode(fx.picture(50, 50)))
    stream = io.StringIO()
    summary = run(tmp_path, root, resize=40, num_shards=1, stream=stream)
    assert summary["found"] == 4
    assert "ignoring 1 folders inside class folders" in stream.getvalue()
    assert "n01/more/" in stream.getvalue()
    nested = tmp_path / "deep"
    fx.write(str(nested / "n01" / "sub" / "a.JPEG"), fx.encode(fx.picture(50, 50)))
    with pytest.raises(SourceError, match=r"hold no files; the images are in subfolders \(n01/sub/\)"):
        run(tmp_path, nested, out="out2")


def test_command_line_bounds_are_sentences(tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "bin", "make_tfrecords"), f"--input_dir={tmp_path}",
         f"--output_dir={tmp_path / 'out'}", "--quality=0"], capture_output=True, text=True,
        timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "--quality" in result.stderr and "1" in result.stderr
