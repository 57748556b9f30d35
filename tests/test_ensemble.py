"""bin/evaluate over several runs or exports: the paper's ensembles (Sec. 6), softmax averaged."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import fixtures as fx
from keras_alexnet.data import input_pipeline
from keras_alexnet.runs import evaluate as run_evaluate
from keras_alexnet.study import ensemble


def _model(seed):
    model = fx.tiny_model(**dict(fx.MODEL_KWARGS, seed=seed))
    fc8 = model.get_layer("fc8")
    fc8.kernel.assign(fc8.kernel * 0.6)  # probabilities far from one-hot (fixtures.trained_model)
    return model


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble")
    data_dir = fx.write_data_dir(str(root / "data"), num_images=12)
    workdirs, models = [], []
    for seed in (1, 2, 3):
        workdir = str(root / f"run{seed}")
        models.append(fx.write_workdir(workdir, data_dir, _model(seed)))
        workdirs.append(workdir)
    return {"root": root, "data_dir": data_dir, "workdirs": workdirs, "models": models,
            "data": os.path.join(data_dir, "validation-*")}


def _probabilities(run, model, ten_crop):
    """One network's class probabilities on the data, computed here: softmax, mean over crops."""
    dataset = input_pipeline.make_dataset(run["data"], 5, training=False, stats=run["data_dir"],
                                          image_size=67, ten_crop=ten_crop, repeat=False)
    out, labels = [], []
    for images, y in dataset:
        logits = model(tf.reshape(images, [-1, 67, 67, 3]), training=False).numpy()
        e = np.exp(logits - logits.max(-1, keepdims=True))
        p = e / e.sum(-1, keepdims=True)
        out.append(p.reshape(len(y), -1, p.shape[-1]).mean(1))
        labels.append(y.numpy())
    return np.concatenate(out), np.concatenate(labels)


def test_an_ensemble_of_one_is_the_single_evaluation(runs):
    found = ensemble.members(runs["workdirs"][:1])
    result, singles = ensemble.evaluate_ensemble(found, runs["data"], ten_crop=True, batch_size=5,
                                                 stream=None)
    single = run_evaluate.evaluate_checkpoint(runs["workdirs"][0], runs["data"], ten_crop=True,
                                              batch_size=5, stream=None)
    assert (result.num_images, result.top1_errors, result.top5_errors) == \
        (single.num_images, single.top1_errors, single.top5_errors) == \
        (singles[0].num_images, singles[0].top1_errors, singles[0].top5_errors)
    assert 0 < single.top1_errors < 12


def test_the_ensemble_averages_the_members_probabilities(runs):
    found = ensemble.members(runs["workdirs"])
    loaded = [m.load() for m in found]
    got = list(ensemble.ensemble_batches(loaded, runs["data"], True, 5))
    averaged = np.concatenate([p for p, _, _ in got])
    each = [_probabilities(runs, model, ten_crop=True) for model in runs["models"]]
    expected = np.mean([p for p, _ in each], axis=0)
    np.testing.assert_allclose(averaged, expected, rtol=1e-5, atol=1e-6)
    assert np.array_equal(np.concatenate([y for _, y, _ in got]), each[0][1])
    # The members differ (an average of equal networks would prove nothing).
    assert not np.allclose(each[0][0], each[1][0], atol=1e-3)
    result, singles = ensemble.evaluate_ensemble(found, runs["data"], ten_crop=True, batch_size=5,
                                                 stream=None)
    labels = each[0][1]
    assert result.top1_errors == int(np.sum(expected.argmax(1) != labels))
    assert [r.top1_errors for r in singles] == [int(np.sum(p.argmax(1) != labels)) for p, _ in each]
    spread = ensemble.spread(singles)["top1_error"]
    assert spread["min"] == min(r.top1_error for r in singles)
    assert spread["mean"] == pytest.approx(np.mean([r.top1_error for r in singles]))


def _other_labels_run(runs):
    """A run whose data folder lists the same classes in another order."""
    copy = runs["root"] / "data-swapped"
    if not copy.exists():
        shutil.copytree(runs["data_dir"], copy)
        rows = [line.split("\t") for line in (copy / "labels.txt").read_text().splitlines()]
        rows[0], rows[1] = rows[1], rows[0]
        (copy / "labels.txt").write_text(
            "".join(f"{i}\t{wnid}\t{name}\n" for i, (_, wnid, name) in enumerate(rows)))
        fx.write_workdir(str(runs["root"] / "run-swapped"), str(copy), _model(4))
    return str(runs["root"] / "run-swapped")


def test_mismatched_members_are_refused_naming_the_run(runs, tmp_path):
    other = _other_labels_run(runs)
    with pytest.raises(ValueError, match=f"the run in {other} classifies other classes than "
                                         f"the run in {runs['workdirs'][0]}"):
        ensemble.members([runs["workdirs"][0], other])
    bigger = str(tmp_path / "bigger")
    shutil.copytree(runs["workdirs"][1], bigger)
    config = json.loads(open(os.path.join(bigger, "config.json")).read())
    config["model"]["image_size"] = 75
    with open(os.path.join(bigger, "config.json"), "w") as f:
        json.dump(config, f)
    with pytest.raises(ValueError, match=f"the run in {bigger} takes 75-pixel crops, the run in "
                                         f"{runs['workdirs'][0]} 67"):
        ensemble.members([runs["workdirs"][0], bigger])


def _bin_evaluate(*flags):
    return subprocess.run([sys.executable, os.path.join(fx.REPO, "bin", "evaluate"), *flags],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))


@pytest.mark.slow
def test_bin_evaluate_reports_the_ensemble_and_each_network(runs):
    done = _bin_evaluate("--json", "--workdir=" + ",".join(runs["workdirs"][:2]),
                         f"--data={runs['data']}", "--batch_size=5")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "| setting | top-1 error | top-5 error |"
    assert lines[4].startswith("| ensemble of 2 networks, softmax averaged, 1 patch (centre)")
    assert lines[5].startswith("single networks (2): top-1 error ")
    report = json.loads(lines[-1])
    assert len(report["members"]) == 2 and report["num_images"] == 12
    refused = _bin_evaluate(f"--workdir={runs['workdirs'][0]},{_other_labels_run(runs)}",
                            f"--data={runs['data']}")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith(
        f"bin/evaluate: error: the run in {_other_labels_run(runs)} classifies other classes")


@pytest.mark.slow
def test_an_ensemble_of_exports_agrees_with_that_of_their_runs(runs):
    from keras_alexnet.serving import export
    exported = [export.export_from_workdir(w, str(runs["root"] / f"models{i}"),
                                           num_warmup_images=1)
                for i, w in enumerate(runs["workdirs"][:2])]
    by_runs = ensemble.evaluate_ensemble(ensemble.members(runs["workdirs"][:2]), runs["data"],
                                         ten_crop=True, batch_size=5, stream=None)
    by_exports = ensemble.evaluate_ensemble(ensemble.members(saved_models=exported), runs["data"],
                                            ten_crop=True, batch_size=5, stream=None)
    assert [(r.top1_errors, r.top5_errors) for r in (by_runs[0], *by_runs[1])] == \
        [(r.top1_errors, r.top5_errors) for r in (by_exports[0], *by_exports[1])]
