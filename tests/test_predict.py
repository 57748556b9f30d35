"""bin/predict: top-5 names and scores per file; bad files reported and skipped."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import fixtures as fx
from keras_alexnet.serving import export
from keras_alexnet.serving import client, predict

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    data_dir = fx.write_data_dir(str(root / "data"), num_images=4)
    model = fx.trained_model()
    export.export_run(fx.restored_run(model, data_dir), str(root / "models"), num_warmup_images=1)
    files = {"cat.jpg": fx.encode(fx.picture(90, 120, seed=1)),
             "gray.png": fx.encode(fx.picture(100, 85, seed=2, channels=1)[..., 0], "PNG"),
             "notes.txt": b"not an image", "truncated.jpg": fx.encode(fx.picture(90, 90, 3))[:200],
             "empty.jpg": b""}
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


@pytest.mark.parametrize("batch_size", [1, 8])
def test_predict_files_reports_bad_files_and_keeps_going(exported, batch_size):
    paths = [str(exported / n) for n in ("cat.jpg", "notes.txt", "missing.jpg", "gray.png",
                                         "truncated.jpg", "empty.jpg")]
    results = predict.predict_files(str(exported / "models"), paths, batch_size=batch_size)
    assert [r.path for r in results] == paths
    good = {os.path.basename(r.path): r for r in results if r.error is None}
    assert sorted(good) == ["cat.jpg", "gray.png"]
    errors = {os.path.basename(r.path): r.error for r in results if r.error}
    assert errors["notes.txt"] == "not an image in a format the model reads (JPEG, PNG, GIF, BMP, WebP; TIFF and others: convert to PNG)"
    assert errors["missing.jpg"].startswith("cannot read")
    assert errors["truncated.jpg"] == "a damaged JPEG (its data is truncated or corrupt)"
    assert errors["empty.jpg"] == "empty file (0 bytes)"
    loaded = tf.saved_model.load(str(exported / "models" / "1"))
    for name, result in good.items():
        probabilities = loaded.signatures["serving_default"](
            image_bytes=tf.constant([(exported / name).read_bytes()]))["probabilities"][0].numpy()
        indices = [c for c, _, _, _ in result.top]
        assert indices == list(np.argsort(-probabilities))
        np.testing.assert_allclose([p for _, _, _, p in result.top], probabilities[indices])
        assert [(s, n) for _, s, n, _ in result.top] == [(fx.SYNSETS[i], fx.NAMES[i])
                                                          for i in indices]


def test_bin_predict(exported):
    done = subprocess.run([sys.executable, os.path.join(REPO, "bin", "predict"),
                           f"--saved_model={exported / 'models'}", str(exported / "cat.jpg"),
                           str(exported / "notes.txt"), str(exported / "gray.png")],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert done.returncode == 1  # a file was skipped
    out = done.stdout.splitlines()
    assert out[0].endswith("cat.jpg:") and out[5].endswith("gray.png:")
    assert len(out) == 10 and out[1].lstrip().startswith("1. ")
    assert any(name in out[1] for name in fx.NAMES)
    assert "notes.txt: skipped, not an image" in done.stderr
    assert "skipped 1 of 3 files" in done.stderr


class _Recorder:
    """A classifier that records its batches and refuses any batch holding b"bad..." bytes."""

    def __init__(self):
        self.batches = []

    def classify(self, images):
        self.batches.append([bytes(b[:3]) for b in images])
        if any(b.startswith(b"bad") for b in images):
            raise client.BadRequest("Graph execution error:\n\nDetected at node x\n"
                                    "bad bytes, no image\n\t [[{{node DecodeImage}}]]")
        return [[(0, "n0", "zero", 1.0)] for _ in images]


def test_batches_by_count_and_bytes_and_retries_a_refused_batch_file_by_file(tmp_path):
    for name, data in {"a": b"aaa" * 30, "b": b"bbb" * 30, "bad": b"bad" * 30, "c": b"ccc" * 100,
                       "empty": b""}.items():
        (tmp_path / name).write_bytes(data)
    names = ["a", "empty", "b", "bad", "c", "missing"]
    recorder = _Recorder()
    results = list(predict.predict_paths(recorder, [str(tmp_path / n) for n in names],
                                         batch_size=2, max_batch_bytes=250))
    assert [os.path.basename(r.path) for r in results] == names
    assert recorder.batches == [[b"aaa", b"bbb"], [b"bad"], [b"ccc"]]
    errors = {os.path.basename(r.path): r.error for r in results if r.error}
    assert errors == {"empty": "empty file (0 bytes)", "bad": "not a decodable image: bad bytes, no image",
                      "missing": errors["missing"]}
    assert errors["missing"].startswith("cannot read")
    recorder.batches.clear()
    list(predict.predict_paths(recorder, [str(tmp_path / n) for n in ("a", "bad", "b")]))
    assert recorder.batches == [[b"aaa", b"bad", b"bbb"], [b"aaa"], [b"bad"], [b"bbb"]]
