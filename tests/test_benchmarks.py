"""bin/benchmark: the train benchmark times bin/train's step; every benchmark answers one JSON line."""
import json
import os
import subprocess
import sys

import pytest

import fixtures as fx
from keras_alexnet.benchmarks import memory
from keras_alexnet.benchmarks import model as model_benchmark
from keras_alexnet.training import steps

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = dict(image_size=67, num_classes=5)


def test_train_benchmark_times_the_step_bin_train_runs(monkeypatch):
    built = []
    real = steps.make_train_step

    def recording(*args, **kwargs):
        built.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(steps, "make_train_step", recording)
    rate = model_benchmark.train_rate(batch_size=2, steps=1, warmup=1, **SMALL)
    assert rate > 0
    # The paper's weight decay and the global batch, as training/train.py passes them.
    assert built == [dict(global_batch_size=2, weight_decay=0.0005)]


def test_train_benchmark_times_parts_of_the_network():
    assert model_benchmark.parse_model_overrides("lrn=False,towers=1,width=0.5") == {
        "lrn": False, "towers": 1, "width": 0.5}
    assert model_benchmark.parse_model_overrides("") == {}
    for bad in ("lrn", "depth=3", "lrn=maybe", "towers=two"):
        with pytest.raises(ValueError, match="--model: "):
            model_benchmark.parse_model_overrides(bad)
    model, _, _ = model_benchmark.paper_train_step(2, model_overrides={"lrn": False}, **SMALL)
    assert not any("lrn" in layer.name for layer in model.layers)


@pytest.mark.parametrize("fused", [True, False])
def test_lrn_benchmark_times_the_layers_training_runs(fused, monkeypatch):
    from keras_alexnet import fused_lrn
    calls = []
    real = fused_lrn.lrn
    monkeypatch.setattr(fused_lrn, "lrn", lambda *a, **k: calls.append(a[1:]) or real(*a, **k))
    assert model_benchmark.lrn_rate(batch_size=2, steps=1, warmup=1, image_size=67,
                                    precision="mixed_bfloat16", fused_lrn=fused) > 0
    # Both layers, with the paper's hyper-parameters and towers, only when fused.
    assert calls == ([(2, 2.0, 2e-5, 0.75, 2)] * 2 if fused else [])


def test_memory_benchmark_reports_the_step(monkeypatch):
    result = memory.train_step_memory(batch_size=2, steps=2, **SMALL)
    assert result["peak_rss_mib_after_steps"] >= result["peak_rss_mib_after_build"] > 0
    assert result["precision"] == "float32" and result["seconds_per_step_after_first"] > 0


def _benchmark(*args):
    return subprocess.run([sys.executable, os.path.join(REPO, "bin", "benchmark"), *args],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))


@pytest.mark.slow
def test_bin_benchmark_infer_prints_one_json_line():
    done = _benchmark("infer", "--batch_size=2", "--steps=1", "--warmup=1", "--image_size=67",
                      "--num_classes=5")
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout.strip().splitlines()[-1])
    assert line["what"] == "infer" and line["images_per_sec"] > 0 and line["batch_size"] == 2


def test_bin_benchmark_refuses_unknown_benchmarks_and_missing_flags():
    unknown = _benchmark("fly")
    assert unknown.returncode != 0 and "train|trainer|infer|lrn|input|serve|memory|request_memory" in unknown.stderr
    serve = _benchmark("serve")
    assert serve.returncode != 0 and "--saved_model" in serve.stderr
    trainer = _benchmark("trainer")
    assert trainer.returncode != 0 and "--data=FOLDER" in trainer.stderr
    bad_model = _benchmark("train", "--model=depth=3")
    assert bad_model.returncode == 1 and "--model: 'depth=3'" in bad_model.stderr
    not_a_folder = _benchmark("trainer", "--data=/nonexistent/train-*")
    assert not_a_folder.returncode == 1 and "not a folder" in not_a_folder.stderr
    assert "Traceback" not in not_a_folder.stderr


def test_serving_benchmark_measures_the_three_systems(tiny_export):
    from keras_alexnet.benchmarks import serving as serving_benchmark
    images = list(fx.serving_images().values())[:3]
    result = serving_benchmark.measure(tiny_export["path"], tiny_export["model"], images, requests=3, batches=1,
                                       batch_size=4, rounds=2)
    assert sorted(result) == ["keras predict (floats)", "predict_images (floats)",
                              "preprocess_bytes only (JPEG bytes)", "serving_default (JPEG bytes)"]
    for figures in result.values():
        assert len(figures["rounds"]) == 2
        assert 0 < figures["p50_ms"] <= figures["p99_ms"] and figures["images_per_sec"] > 0


@pytest.mark.parametrize("args,message", [
    (["train", "--batch_size=0"], "--batch_size=0"),
    (["infer", "--image_size=20"], "--image_size=20"),
    (["input", "--data=/nonexistent/train-*"], "no TFRecord files match"),
    (["serve", "--saved_model=/nonexistent", "--images=/nonexistent/*.jpg"], "no files"),
])
def test_bin_benchmark_bad_flags_are_sentences(args, message):
    done = _benchmark(*args, "--steps=1", "--warmup=0")
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert message in done.stderr
