"""bin/study: variants, the verdict rule, steps to a threshold, a tiny study end to end and resumed."""
import io
import json
import os
import subprocess
import sys

import pytest

from keras_alexnet.config import ConfigError
from keras_alexnet.study import analysis, runner, table, variants
from keras_alexnet.training import workdir as workdir_lib
from fixtures import REPO, demo_data_dir, read_events, tiny_config


# -- variants ---------------------------------------------------------------------------------

def test_variants_override_one_baseline_and_set_both_seeds():
    base = tiny_config("/data", {"model.width": 0.25})
    config = variants.make_config(base, "one_tower_half", 3)
    assert (config.model.towers, config.model.width, config.seed, config.model.seed) == (1, 0.125, 3, 3)
    assert variants.make_config(base, "no_lighting", 0).input.lighting_std == 0
    assert variants.make_config(base, "tanh", 1).model.activation == "tanh"
    assert base.model.towers == 2 and base.seed == 0  # the baseline is left as it was
    assert variants.make_config(base, "baseline", 1).to_json() == \
        variants.make_config(base, "baseline", 1).to_json()


def test_a_bad_variant_name_is_one_sentence():
    with pytest.raises(ConfigError) as e:
        variants.check_names(["baseline", "no_relu"])
    message = str(e.value)
    assert message.startswith("--variants: unknown variant 'no_relu'; known: baseline, tanh")
    assert "\n" not in message


def test_bin_study_rejects_a_bad_variant_without_a_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "bin", "study"), f"--out={tmp_path}/study",
         "--config=" + os.path.join(REPO, "configs", "demo.py"), "--variants=baseline,lrn_off"],
        capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "bin/study: error: --variants: unknown variant 'lrn_off'; known: " in proc.stderr
    assert not os.path.exists(tmp_path / "study" / "runs")


# -- the rule and the numbers ---------------------------------------------------------------

def _spread(*values):
    return analysis.spread(list(values))


def test_range_rule_verdict_holds_reversed_within_noise():
    """The study's first rule, kept beside the intervals as range_rule_verdict."""
    n = 3925  # 2 binomial SEs of a difference of two ~30% error rates: ~2.07 points

    def rule(*args):
        return analysis.compare(*args)["range_rule_verdict"]
    base = _spread(0.300, 0.305)
    assert rule(base, _spread(0.340, 0.345), +1, (n, n)) == "holds"
    assert rule(base, _spread(0.260, 0.265), +1, (n, n)) == "reversed"
    assert rule(base, _spread(0.315, 0.318), +1, (n, n)) == "within noise"
    # A wide seed range is the noise when it is larger than the binomial term.
    wide = analysis.compare(base, _spread(0.29, 0.40), +1, (n, n))
    assert wide["noise"] == pytest.approx(0.11) and wide["range_rule_verdict"] == "within noise"
    # The paper's sign: ten crops are expected to lower the error.
    assert rule(base, _spread(0.27, 0.27), -1, (n, n)) == "holds"
    # The verdict itself is the interval's: 2 seeds a side cannot resolve 4 points here.
    assert analysis.compare(base, _spread(0.340, 0.345), +1, (n, n))["verdict"] == "within noise"
    result = analysis.compare(base, _spread(0.34, 0.345), +1, (n, n))
    assert result["difference"] == pytest.approx(0.04)
    assert result["noise"] == pytest.approx(2 * ((0.3025 * 0.6975 + 0.3425 * 0.6575) / n) ** 0.5)
    assert analysis.compare(None, base, +1, (n, n)) is None


def test_steps_to_threshold_from_a_metrics_file(tmp_path):
    lines = [{"event": "train", "step": 20, "epoch": 0.2, "top1_error": 0.85},
             {"event": "train", "step": 40, "epoch": 0.4, "top1_error": 0.72},
             {"event": "train", "step": 60, "epoch": 0.6, "top1_error": 0.66},
             {"event": "eval", "step": 100, "epoch": 1, "top1_error": 0.1},
             # resumed from the checkpoint at step 40: step 60 logged again, a different value
             {"event": "train", "step": 60, "epoch": 0.6, "top1_error": 0.71},
             {"event": "train", "step": 80, "epoch": 0.8, "top1_error": 0.58}]
    text = "".join(json.dumps(e) + "\n" for e in lines) + '{"event": "train", "st'  # kill -9
    (tmp_path / "metrics.jsonl").write_text(text)
    curve = analysis.train_curve(workdir_lib.read_events(str(tmp_path)))
    assert [c[0] for c in curve] == [20, 40, 60, 80]
    assert analysis.steps_to_threshold(curve, 0.7) == {"step": 80, "epoch": 0.8}
    assert analysis.steps_to_threshold(curve, 0.75) == {"step": 40, "epoch": 0.4}
    assert analysis.steps_to_threshold(curve, 0.5) is None


def test_relu_vs_tanh_steps_verdict_and_ratio():
    holds = analysis.compare_steps([100, 120], [400, 500], [900, 900])
    assert holds["verdict"] == "holds" and holds["ratio"] == pytest.approx(450 / 110)
    assert analysis.compare_steps([100, 300], [200, 500], [900, 900])["verdict"] == "within noise"
    assert analysis.compare_steps([400, 500], [100, 120], [900, 900])["verdict"] == "reversed"
    never = analysis.compare_steps([100, 120], [400, None], [900, 900])
    assert never["verdict"] == "holds" and never["ratio_is_lower_bound"]
    assert never["ratio"] == pytest.approx(650 / 110)
    assert analysis.compare_steps([100, None], [400, 500], [900, 900])["verdict"] == \
        "not reached by relu"


def _fake_run(variant, seed, errors, train_error=None, curve=()):
    keys = ("centre_top1_error", "centre_top5_error", "ten_crop_top1_error", "ten_crop_top5_error")
    return dict(name=f"{variant}-seed{seed}", variant=variant, seed=seed, status="done",
                final=dict(zip(keys, errors), num_images=3925, step=curve[-1][0] if curve else 1000),
                train_split=None if train_error is None else
                {"top1_error": train_error, "num_images": 9469},
                curve=list(curve))


def test_ten_crops_compare_only_seeds_evaluated_both_ways():
    """A seed without ten-crop errors leaves the centre-crop side too: the pairs' difference."""
    both = _fake_run("baseline", 0, (0.30, 0.08, 0.28, 0.07))
    centre_only = _fake_run("baseline", 1, (0.40, 0.10, None, None))
    d = analysis.ten_vs_centre([analysis.run_summary(r, [0.5]) for r in (both, centre_only)])
    assert d["top1"]["difference"] == pytest.approx(-0.02)  # not 0.28 - mean(0.30, 0.40)
    assert d["top1"]["seeds"] == [0]
    assert "(seeds 0, paired)" in "\n".join(table.ten_crop_section({"ten_vs_centre": d}))
    none = analysis.ten_vs_centre([analysis.run_summary(centre_only, [0.5])])
    assert none["top1"] is None
    assert "no baseline run evaluated with both crops" in "\n".join(
        table.ten_crop_section({"ten_vs_centre": none}))


def test_summary_and_markdown_on_synthetic_runs(tmp_path):
    fast = [(100, 1.0, 0.8), (200, 2.0, 0.6), (300, 3.0, 0.45)]
    slow = [(100, 1.0, 0.85), (200, 2.0, 0.75), (300, 3.0, 0.65)]
    runs = [_fake_run("baseline", s, (0.30 + s / 1000, 0.08, 0.28, 0.07), 0.20 + s / 1000, fast)
            for s in (0, 1, 2)] + \
           [_fake_run("no_lrn", s, (0.36 + s / 200, 0.10, 0.35, 0.09)) for s in (0, 1, 2)] + \
           [_fake_run("tanh", s, (0.40, 0.12, 0.39, 0.11), curve=slow) for s in (0, 1)] + \
           [_fake_run("no_dropout", s, (0.33 + s / 1000, 0.09, 0.32, 0.08), 0.02)
            for s in (0, 1, 2)]
    study = analysis.summarize(runs, ["baseline", "no_lrn", "tanh", "no_dropout"], [0.7, 0.5],
                               num_epochs=8)
    no_lrn = study["variants"]["no_lrn"]
    assert no_lrn["centre_top1_error"]["min"] == pytest.approx(0.36)
    assert no_lrn["centre_top1_error"]["max"] == pytest.approx(0.37)
    assert no_lrn["vs_baseline"]["centre_top1_error"]["verdict"] == "holds"
    assert no_lrn["vs_baseline"]["centre_top1_error"]["test"] == "welch"
    assert no_lrn["paper_delta"] == (1.4, 1.2)
    assert study["relu_vs_tanh"]["0.7"]["relu_steps"] == [200, 200, 200]
    assert study["relu_vs_tanh"]["0.7"]["tanh_steps"] == [300, 300]
    assert study["relu_vs_tanh"]["0.5"]["tanh_steps"] == [None, None]
    gap = study["gaps"]["no_dropout"]
    assert gap["baseline_gap"]["mean"] == pytest.approx(0.10)
    assert gap["variant_gap"]["mean"] == pytest.approx(0.311)
    assert gap["comparison"]["verdict"] == "holds"
    assert gap["train_comparison"]["difference"] == pytest.approx(0.02 - 0.201)
    assert gap["train_events_comparison"] is None  # no_dropout's fake runs have no curve
    assert study["regime"]["num_epochs"] == 8 and study["regime"]["overfits"]
    assert study["regime"]["baseline_gap"]["mean"] == pytest.approx(0.10)
    # The same weights evaluated both ways: the paired test.
    assert study["ten_vs_centre"]["top1"]["test"] == "paired"
    assert study["ten_vs_centre"]["top1"]["seeds"] == [0, 1, 2]
    text = table.markdown(study)
    assert "| no_lrn | 3.3 | 0,1,2 | 36.50 (36.00..37.00) |" in text
    assert "+6.40 [95% CI" in text and "**holds**" in text and "not reached" in text
    assert "Regime: 8 epochs." in text and "it overfits" in text
    assert "(8-epoch regime)" in text and "How sure: " in text
    path = table.figure1(runs, str(tmp_path / "figure1.png"), [0.7])
    assert open(path, "rb").read(4) == b"\x89PNG"


def test_a_failed_run_is_reported_and_the_study_goes_on(tmp_path, monkeypatch):
    """A worker that exits with an error: the next runs still run, the table says which failed."""
    started = []

    def fake_worker(config, workdir, *, eval_train_split, forwarder):
        started.append(os.path.basename(workdir))
        if os.path.basename(workdir) == "tanh-seed0":
            with open(workdir + ".log", "w") as f:
                f.write("error: something broke\n")
            return 1
        os.makedirs(workdir, exist_ok=True)
        event = dict(event="final", step=6, split="validation", num_images=18,
                     centre_top1_error=0.5, centre_top5_error=0.0)
        with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
            f.write(json.dumps(event) + "\n")
        return 0

    from keras_alexnet.training import train
    monkeypatch.setattr(runner, "train_in_subprocess", fake_worker)
    monkeypatch.setattr(train, "check_data", lambda config: None)  # no data: nothing trains
    out, stream = str(tmp_path / "study"), io.StringIO()
    study, failed, interrupted = runner.run_study(
        tiny_config(str(tmp_path / "no-data")), out, ["baseline", "tanh"], [0, 1],
        eval_train_split=False, stream=stream)
    assert failed == ["tanh-seed0"] and not interrupted
    assert started == ["baseline-seed0", "tanh-seed0", "baseline-seed1", "tanh-seed1"]
    assert "run 2/4 tanh-seed0: FAILED (status 1)" in stream.getvalue()
    assert "error: something broke" in stream.getvalue()
    assert study["runs"]["tanh-seed0"]["status"] == "failed"
    assert "tanh-seed0 (failed)" in open(os.path.join(out, "study.md")).read()


# -- end to end ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    """2 variants x 2 seeds, one epoch of 6 steps each, each run in its own process."""
    root = tmp_path_factory.mktemp("study")
    base = tiny_config(demo_data_dir(str(root / "data")), {"num_epochs": 1})
    out, stream = str(root / "study"), io.StringIO()
    result = runner.run_study(base, out, ["baseline", "tanh"], [0, 1], thresholds=[0.95],
                              stream=stream)
    return base, out, stream.getvalue(), result


@pytest.mark.slow
def test_a_tiny_study_runs_and_writes_its_table(tiny_study):
    _, out, log, (study, failed, interrupted) = tiny_study
    assert not failed and not interrupted, log
    assert log.count(": started") == 4 and log.count(": finished in") == 4
    assert "4 of 4 runs finished, 0 failed" in log
    for name in ("baseline-seed0", "baseline-seed1", "tanh-seed0", "tanh-seed1"):
        workdir = os.path.join(out, "runs", name)
        assert len(read_events(workdir, "final")) == 1
        with open(os.path.join(workdir, "config.json")) as f:
            config = json.load(f)
        assert config["seed"] == config["model"]["seed"] == int(name[-1])
        assert config["model"]["activation"] == ("tanh" if name.startswith("tanh") else "relu")
        split = json.load(open(os.path.join(workdir, runner.TRAIN_SPLIT_FILENAME)))
        assert split["num_images"] == 48 and 0 <= split["top1_error"] <= 1
    with open(os.path.join(out, "study.json")) as f:
        written = json.load(f)
    assert set(written["runs"]) == {"baseline-seed0", "baseline-seed1", "tanh-seed0", "tanh-seed1"}
    assert written["variants"]["baseline"]["seeds_done"] == [0, 1]
    tanh = written["variants"]["tanh"]
    assert tanh["vs_baseline"]["ten_crop_top1_error"]["verdict"] in \
        ("holds", "reversed", "within noise")
    assert written["relu_vs_tanh"]["0.95"]["verdict"] in ("holds", "reversed", "within noise")
    assert written["ten_vs_centre"]["top1"]["verdict"] in ("holds", "reversed", "within noise")
    md = open(os.path.join(out, "study.md")).read()
    assert "| baseline | - | 0,1 |" in md and "| tanh | 3.1, Fig. 1 | 0,1 |" in md
    assert open(os.path.join(out, "figure1.png"), "rb").read(4) == b"\x89PNG"


@pytest.mark.slow
def test_a_tiny_study_resumes_without_redoing_finished_runs(tiny_study):
    base, out, _, _ = tiny_study
    metrics = {name: os.path.join(out, "runs", name, "metrics.jsonl")
               for name in ("baseline-seed0", "tanh-seed1")}
    before = {name: os.stat(path).st_mtime_ns for name, path in metrics.items()}
    # tanh-seed1 interrupted after its training, before the train-split evaluation.
    os.remove(os.path.join(out, "runs", "tanh-seed1", runner.TRAIN_SPLIT_FILENAME))
    stream = io.StringIO()
    study, failed, _ = runner.run_study(base, out, ["baseline", "tanh"], [0, 1],
                                        thresholds=[0.95], stream=stream)
    log = stream.getvalue()
    assert not failed, log
    assert log.count("finished before, kept") == 3 and log.count(": started") == 1
    assert "run 4/4 tanh-seed1: started" in log
    assert os.stat(metrics["baseline-seed0"]).st_mtime_ns == before["baseline-seed0"]
    # Not retrained: the same single final event, only the train split evaluated again.
    assert os.stat(metrics["tanh-seed1"]).st_mtime_ns == before["tanh-seed1"]
    assert len(read_events(os.path.join(out, "runs", "tanh-seed1"), "final")) == 1
    assert os.path.exists(os.path.join(out, "runs", "tanh-seed1", runner.TRAIN_SPLIT_FILENAME))
    assert study["runs_done"] == 4


@pytest.mark.slow
def test_a_study_folder_of_another_config_is_refused(tiny_study):
    base, out, _, _ = tiny_study
    other = base.copy_and_resolve_references()
    other.optimizer.learning_rate = 0.5
    with pytest.raises(ConfigError, match="holds a run of a different config"):
        runner.run_study(other, out, ["baseline"], [0], stream=io.StringIO())


def test_weight_decay_is_judged_on_the_training_error_with_the_papers_sign():
    """Sec. 5: without decay the training error is expected higher (not lower, as without
    dropout); both the train split in evaluation mode and the 'train' events are compared."""
    curve = [(100, 1.0, 0.5), (200, 2.0, 0.40)]
    higher = [(100, 1.0, 0.6), (200, 2.0, 0.55)]
    runs = [_fake_run("baseline", s, (0.30 + s / 1000, 0.08, 0.28, 0.07), 0.20 + s / 1000,
                      curve) for s in (0, 1, 2)] + \
           [_fake_run("no_weight_decay", s, (0.31 + s / 1000, 0.09, 0.29, 0.08), 0.26 + s / 1000,
                      higher) for s in (0, 1, 2)]
    study = analysis.summarize(runs, ["baseline", "no_weight_decay"], [0.5])
    gap = study["gaps"]["no_weight_decay"]
    assert gap["train_comparison"]["expected_sign"] == +1
    assert gap["train_comparison"]["difference"] == pytest.approx(0.06)
    assert gap["train_comparison"]["verdict"] == "holds"
    assert gap["train_events_comparison"]["difference"] == pytest.approx(0.15)
    assert study["gaps"].keys() == {"no_weight_decay"}
    text = table.markdown(study)
    assert "| no_weight_decay | " in text and "training-split error (eval mode) minus" in text
