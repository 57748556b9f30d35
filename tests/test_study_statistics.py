"""The study's intervals and smallest detectable effects, against values computed by hand.

For 2 degrees of freedom Student's t has a closed form, t_p = (2p - 1) sqrt(2 / (4 p (1 - p))):
t_0.975 = 0.95 sqrt(2 / 0.0975) = 4.302653, t_0.80 = 0.6 sqrt(2 / 0.64) = 1.060660.
"""
import io
import json
import math
import os

import pytest
from scipy import stats as scipy_stats

from keras_alexnet.study import analysis, runner, statistics

T975_2, T80_2 = 0.95 * math.sqrt(2 / 0.0975), 0.6 * math.sqrt(2 / 0.64)
HUGE = 10 ** 12  # images: the binomial floor vanishes


def test_the_t_quantiles_by_hand_are_scipys():
    assert T975_2 == pytest.approx(4.302653, abs=1e-6) == scipy_stats.t.ppf(0.975, 2)
    assert T80_2 == pytest.approx(1.060660, abs=1e-6) == scipy_stats.t.ppf(0.80, 2)


def test_welch_interval_and_mde_by_hand():
    # s^2 = 0.0002 a side (ddof 1), 2 seeds a side: SE = sqrt(0.0002/2 + 0.0002/2), df = 2.
    r = statistics.welch([0.30, 0.32], [0.40, 0.42], +1)
    se = math.sqrt(0.0002 / 2 + 0.0002 / 2)
    assert r["difference"] == pytest.approx(0.10)
    assert r["se"] == pytest.approx(se) and r["df"] == pytest.approx(2)
    assert r["ci"] == pytest.approx([0.10 - T975_2 * se, 0.10 + T975_2 * se])
    assert r["ci"][0] == pytest.approx(0.039151, abs=1e-6)
    assert r["mde"] == pytest.approx((T975_2 + T80_2) * se) == pytest.approx(0.075849, abs=1e-6)
    assert r["verdict"] == "holds" and not r["needs_more_seeds"]
    assert statistics.welch([0.30, 0.32], [0.40, 0.42], -1)["verdict"] == "reversed"


def test_welch_matches_scipys_own_welch_test_with_unequal_variances():
    base, variant = [0.393, 0.405, 0.396], [0.410, 0.446]
    r = statistics.welch(base, variant, +1)
    ci = scipy_stats.ttest_ind(variant, base, equal_var=False).confidence_interval(0.95)
    assert r["ci"] == pytest.approx([ci.low, ci.high])
    # Welch-Satterthwaite by hand: v = s^2/n a side, df = (vb + vv)^2 / (vb^2/(nb-1) + vv^2/(nv-1)).
    vb = (0.005 ** 2 + 0.007 ** 2 + 0.002 ** 2) / 2 / 3  # mean 0.398
    vv = ((0.410 - 0.428) ** 2 + (0.446 - 0.428) ** 2) / 1 / 2
    assert r["df"] == pytest.approx((vb + vv) ** 2 / (vb ** 2 / 2 + vv ** 2 / 1))


def test_paired_interval_by_hand():
    # Differences -0.02, -0.03, -0.01: mean -0.02, sd 0.01, SE 0.01/sqrt(3), df 2.
    r = statistics.paired([0.30, 0.40, 0.35], [0.28, 0.37, 0.34], expected_sign=-1)
    se = 0.01 / math.sqrt(3)
    assert r["difference"] == pytest.approx(-0.02) and r["se"] == pytest.approx(se)
    assert r["ci"] == pytest.approx([-0.02 - T975_2 * se, -0.02 + T975_2 * se])
    assert r["verdict"] == "within noise"  # the interval reaches +0.0048
    # In the paper's direction (lower), anything beyond the interval's low end is ruled out.
    assert r["ruled_out_beyond"] == pytest.approx(0.02 + T975_2 * se)
    assert r["needs_more_seeds"] is False  # 3 pairs


def test_the_se_is_floored_at_the_binomial_error_and_one_seed_has_no_interval():
    same = statistics.welch([0.3, 0.3], [0.32, 0.32], +1, binomial_se=0.01)
    assert same["se"] == 0.01 and same["df"] == 2
    assert same["ci"] == pytest.approx([0.02 - T975_2 * 0.01, 0.02 + T975_2 * 0.01])
    assert statistics.binomial_se([(0.3, 100), (0.4, 200)]) == \
        pytest.approx(math.sqrt(0.21 / 100 + 0.24 / 200))
    one = statistics.welch([0.3], [0.32, 0.33], +1)
    assert one["ci"] is None and one["verdict"] == "needs >= 2 seeds a side"
    assert one["needs_more_seeds"]  # 2.5 points, fewer than 3 seeds


def test_small_effects_with_few_seeds_are_flagged_and_within_noise_says_what_is_ruled_out():
    r = statistics.welch([0.300, 0.310], [0.310, 0.330], +1, binomial_se=0.0)
    assert r["needs_more_seeds"] and r["verdict"] == "within noise"
    text = statistics.describe(r, paper_delta=1.4)
    high = 100 * r["ci"][1]
    assert text.startswith("+1.50 [95% CI ")
    assert f"**within noise**: an effect of {high:.1f} points or more is ruled out, " \
           "the paper's +1.4 is not" in text
    assert text.endswith("(needs >= 3 seeds)")
    big = statistics.welch([0.300, 0.301, 0.302], [0.400, 0.401, 0.402], +1)
    assert not big["needs_more_seeds"] and "needs" not in statistics.describe(big)
    narrow = statistics.welch([0.300, 0.301, 0.302], [0.300, 0.301, 0.303], +1)
    assert "the paper's +1.4 is ruled out" in statistics.describe(narrow, paper_delta=1.4)


def test_retabulate_rewrites_the_table_from_a_study_json_alone(tmp_path):
    row = dict(status="done", centre_top5_error=0.07, ten_crop_top1_error=None,
               ten_crop_top5_error=None, num_images=3925, final_step=100,
               train_split_top1_error=0.3, train_split_num_images=9469,
               train_top1_error_dropout_on=0.35, steps_to_threshold={"0.5": None})
    runs = {f"{v}-seed{s}": dict(row, variant=v, seed=s, centre_top1_error=e)
            for v, errors in (("baseline", (0.40, 0.41)), ("no_lrn", (0.45, 0.47)))
            for s, e in enumerate(errors)}
    old = dict(runs=runs, variants={"baseline": {}, "no_lrn": {}}, error_thresholds=[0.5],
               base_config={"num_epochs": 8}, base_config_file="configs/imagenette.py",
               data_dir="/data", eval_split="validation", seeds=[0, 1], runs_done=4, runs_planned=4)
    (tmp_path / "study.json").write_text(json.dumps(old))
    study = runner.retabulate(str(tmp_path))
    c = study["variants"]["no_lrn"]["vs_baseline"]["centre_top1_error"]
    assert c == analysis.compare(analysis.spread([0.40, 0.41]), analysis.spread([0.45, 0.47]),
                                 +1, (3925, 3925))
    assert c["ci"] is not None and study["regime"]["num_epochs"] == 8
    md = (tmp_path / "study.md").read_text()
    assert "--retabulate" in md and "| no_lrn | 3.3 | 0,1 |" in md
    assert json.loads((tmp_path / "study.json").read_text())["runs"] == runs
    with pytest.raises(FileNotFoundError, match="--retabulate: .* does not exist"):
        runner.retabulate(str(tmp_path / "nothing"))
