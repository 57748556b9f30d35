"""bin/evaluate: error counting, a checkpoint and its export agreeing on the same records."""
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import fixtures as fx
from keras_alexnet.data import input_pipeline, layout
from keras_alexnet.runs import evaluate
from keras_alexnet.serving import evaluate as serving_evaluate
from keras_alexnet.serving import export, export_folder

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    data_dir = fx.write_data_dir(str(root / "data"), num_images=12)
    model = fx.write_workdir(str(root / "run"), data_dir)
    path = export.export_run(fx.restored_run(model, data_dir), str(root / "models"),
                             num_warmup_images=1)
    return {"root": root, "data_dir": data_dir, "model": model, "path": path,
            "workdir": str(root / "run"), "data": os.path.join(data_dir, "validation-*")}


def test_count_errors():
    probabilities = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3], [0.2, 0.3, 0.5]])
    assert evaluate.count_errors(probabilities, np.array([1, 2, 0]), k=2) == (2, 1)
    assert evaluate.count_errors(probabilities, np.array([1, 0, 2]), k=1) == (0, 0)


def _pipeline_errors(run, ten_crop):
    """Errors of the in-memory model on the input pipeline's batches, counted here."""
    dataset = input_pipeline.make_dataset(run["data"], 5, training=False, stats=run["data_dir"],
                                          image_size=67, ten_crop=ten_crop, repeat=False)
    top1 = top2 = n = 0
    for images, labels in dataset:
        flat = tf.reshape(images, [-1, 67, 67, 3])
        p = tf.nn.softmax(run["model"](flat, training=False)).numpy()
        p = p.reshape(len(labels), -1, p.shape[-1]).mean(1)
        ranked = np.argsort(-p, axis=1)
        top1 += int(np.sum(ranked[:, 0] != labels.numpy()))
        top2 += int(np.sum(~np.any(ranked[:, :2] == labels.numpy()[:, None], axis=1)))
        n += len(labels)
    return n, top1, top2


@pytest.mark.parametrize("ten_crop", [False, True])
def test_export_evaluation_matches_the_input_pipeline(run, ten_crop):
    result = serving_evaluate.evaluate_saved_model(os.path.dirname(run["path"]), run["data"],
                                           ten_crop=ten_crop, batch_size=5, stream=None)
    n, top1, _ = _pipeline_errors(run, ten_crop)
    assert result.num_images == n == 12
    assert result.top1_errors == top1
    assert 0 < top1 < 12  # neither all right nor all wrong: the count means something
    assert result.top5_errors == 0  # 4 classes: every label is in the top 5


def _bin_evaluate(*flags):
    out = subprocess.run([sys.executable, os.path.join(REPO, "bin", "evaluate"), "--json", *flags],
                         check=True, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")).stdout
    lines = out.strip().splitlines()
    assert lines[0] == "| setting | top-1 error | top-5 error |"
    return json.loads(lines[-1]), lines[2]


@pytest.mark.slow
def test_bin_evaluate_checkpoint_and_its_export_agree(run, tmp_path):
    exported = export.export_from_workdir(run["workdir"], str(tmp_path / "m"), num_warmup_images=1)
    data = f"--data={run['data']}"
    from_checkpoint, row = _bin_evaluate(f"--workdir={run['workdir']}", data, "--batch_size=5")
    from_export, _ = _bin_evaluate(f"--saved_model={exported}", data, "--batch_size=5")
    assert from_checkpoint["num_images"] == from_export["num_images"] == 12
    assert from_checkpoint["top1_error"] == from_export["top1_error"]
    assert from_checkpoint["top5_error"] == from_export["top5_error"]
    assert row.startswith("| checkpoint ") and row.endswith("% |")
    ten = [evaluate.evaluate_checkpoint(run["workdir"], run["data"], ten_crop=True, stream=None),
           serving_evaluate.evaluate_saved_model(exported, run["data"], ten_crop=True, stream=None)]
    assert ten[0].top1_errors == ten[1].top1_errors


def test_clear_errors(run, tmp_path):
    with pytest.raises(FileNotFoundError, match="no TFRecord files match"):
        serving_evaluate.evaluate_saved_model(run["path"], str(tmp_path / "none-*"), stream=None)
    with pytest.raises(FileNotFoundError, match="neither a SavedModel"):
        export_folder.resolve_saved_model(str(tmp_path))


def _copy_data(run, tmp_path):
    import shutil
    copy = tmp_path / "data"
    shutil.copytree(run["data_dir"], copy)
    return copy


def test_data_with_other_labels_is_refused(run, tmp_path):
    copy = _copy_data(run, tmp_path)
    lines = (copy / "labels.txt").read_text().splitlines()
    swapped = [lines[1].split("\t"), lines[0].split("\t")]  # same classes, other order
    (copy / "labels.txt").write_text(
        "".join(f"{i}\t{w}\t{n}\n" for i, (_, w, n) in enumerate(swapped))
        + "".join(line + "\n" for line in lines[2:]))
    data = str(copy / "validation-*")
    with pytest.raises(ValueError, match=r"are not the labels of the export .*label 0 is "
                                         f"{fx.SYNSETS[1]} there, {fx.SYNSETS[0]} in the model"):
        serving_evaluate.evaluate_saved_model(run["path"], data, stream=None)
    with pytest.raises(ValueError, match="are not the labels of the run"):
        evaluate.evaluate_checkpoint(run["workdir"], data, stream=None)


def test_a_truncated_shard_is_named(run, tmp_path):
    copy = _copy_data(run, tmp_path)
    shard = copy / "validation-00001-of-00002"
    with open(shard, "r+b") as f:
        f.truncate(os.path.getsize(shard) - 100)
    with pytest.raises(ValueError, match=f"{shard}: cut short"):
        serving_evaluate.evaluate_saved_model(run["path"], str(copy / "validation-*"), stream=None)


def test_batch_size_0_is_a_sentence(run):
    done = subprocess.run([sys.executable, os.path.join(REPO, "bin", "evaluate"),
                           f"--saved_model={run['path']}", f"--data={run['data']}", "--batch_size=0"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "--batch_size=0" in done.stderr


def test_progress_has_a_total_rate_and_eta(run):
    stream = io.StringIO()
    serving_evaluate.evaluate_saved_model(run["path"], run["data"], batch_size=5, stream=stream)
    lines = stream.getvalue().splitlines()
    # Not a terminal: a line at once, one every 5 s, and the last.
    assert lines[0].startswith("evaluate 5/12 [") and "img/s" in lines[0] and "ETA " in lines[0]
    assert lines[-1].startswith("evaluate 12/12 [=") and "took " in lines[-1]
    assert "top1_error" in lines[-1]


def test_shards_size_from_make_tfrecords_reports(run):
    files = input_pipeline.list_shards(run["data"])
    assert len(files) == 2 and layout.shards_size(files) == 12
    assert layout.shards_size(files[:1]) is None  # one shard of two: unknown
    assert layout.shards_size(input_pipeline.list_shards(
        os.path.join(run["data_dir"], "train-*"))) == 8
