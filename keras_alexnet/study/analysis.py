"""The study's numbers from its runs' metrics: means and ranges over seeds, differences, verdicts.

Verdicts come from 95% confidence intervals over seeds (statistics.py, METHOD). The
range rule below, the study's first verdict rule, is kept beside them as
`range_rule_verdict` (and `noise`), so the first tables' verdicts can still be read.

Pure functions over what the runs wrote (metrics.jsonl events, the train-split
evaluation), so each is tested on synthetic numbers. runner.py collects the runs
and writes what `summarize` returns as study.json and study.md.

The noise rule (NOISE_RULE, also printed in study.md): a difference d = mean(variant) -
mean(baseline) of an error rate over seeds is beyond the noise when |d| exceeds the larger
of (a) the range (max - min over seeds) of either side and (b) two binomial standard errors
of a difference of error rates measured on n images, 2 * sqrt(sum p (1 - p) / n) over the
rates involved (two for an error difference; four for a difference of train/validation
gaps). The validation images are the same for every run, so (b) uses n, not n x seeds.
"""
import math

from keras_alexnet.study import statistics

NOISE_RULE = (
    "A difference d = mean(variant) - mean(baseline) over seeds is beyond the noise when |d| "
    "exceeds noise = max(range of the baseline's seeds, range of the variant's seeds, "
    "2 * sqrt(sum of p (1 - p) / n over the error rates compared)), where the range is "
    "max - min over seeds and n is the number of images each rate was measured on (the same "
    "validation images for every run: n, not n x seeds). Verdict: 'holds' when d has the "
    "paper's sign and |d| > noise, 'reversed' when it has the opposite sign and |d| > noise, "
    "'within noise' otherwise. With one seed per side the ranges are 0 and only the binomial "
    "term counts.")

ERROR_METRICS = ("centre_top1_error", "centre_top5_error", "ten_crop_top1_error",
                 "ten_crop_top5_error")


# -- a run's events (training/workdir.read_events) ----------------------------------------------

def final_event(events, split):
    """The last 'final' event of `split`, or None: a run is finished when it has one."""
    finals = [e for e in events if e.get("event") == "final" and e.get("split") == split]
    return finals[-1] if finals else None


def train_curve(events):
    """[(step, epoch, top1_error)] of the 'train' events, by step; a step logged again after a
    resume (the steps since the last checkpoint are redone) keeps its last value."""
    by_step = {e["step"]: (e["step"], e["epoch"], e["top1_error"])
               for e in events if e.get("event") == "train"}
    return [by_step[s] for s in sorted(by_step)]


def steps_to_threshold(curve, threshold):
    """{'step', 'epoch'} of the first logged training error <= threshold, or None (not reached).

    Each 'train' event's error is the mean over the log_every_steps steps before it
    (with dropout and augmentation on, as the paper's Figure 1 plots it).
    """
    for step, epoch, error in curve:
        if error <= threshold:
            return {"step": step, "epoch": round(epoch, 3)}
    return None


def last_epoch_train_error(curve):
    """Mean training error (dropout on) over the events of the last epoch, or None."""
    if not curve:
        return None
    last = math.ceil(curve[-1][1]) - 1
    errors = [e for _, epoch, e in curve if epoch > last]
    return sum(errors) / len(errors)


# -- statistics and verdicts ------------------------------------------------------------------

def spread(values):
    """{'mean', 'min', 'max', 'values'} of the finished seeds' values, or None without any."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"mean": sum(values) / len(values), "min": min(values), "max": max(values),
            "values": values}


def binomial_noise(rates_and_counts):
    """2 standard errors of a sum/difference of independent error rates: [(p, n), ...]."""
    return 2 * math.sqrt(sum(p * (1 - p) / n for p, n in rates_and_counts))


def verdict(difference, noise, expected_sign):
    """'holds', 'reversed' or 'within noise' (NOISE_RULE)."""
    if abs(difference) <= noise:
        return "within noise"
    return "holds" if difference * expected_sign > 0 else "reversed"


def compare(baseline, variant, expected_sign, counts, extra_rates=(), paired=False):
    """Difference of two spreads with its 95% interval, MDE and verdict; None if a side has no data.

    counts: (n of the baseline's rate, n of the variant's rate); extra_rates: more
    [(p, n)] in the binomial term (the train-split rates of a gap). paired: the two
    spreads' values are pairs (the same seeds, in the same order): statistics.paired,
    else statistics.welch. Also the range rule's noise and verdict (NOISE_RULE).
    """
    if baseline is None or variant is None:
        return None
    difference = variant["mean"] - baseline["mean"]
    rates = [(baseline["mean"], counts[0]), (variant["mean"], counts[1]), *extra_rates]
    noise = max(baseline["max"] - baseline["min"], variant["max"] - variant["min"],
                binomial_noise(rates))
    test = statistics.paired if paired else statistics.welch
    result = test(baseline["values"], variant["values"], expected_sign,
                  statistics.binomial_se(rates))
    return dict(result, difference=difference, noise=noise, expected_sign=expected_sign,
                range_rule_verdict=verdict(difference, noise, expected_sign))


def compare_steps(relu_steps, tanh_steps, last_steps):
    """ReLU vs tanh steps to a threshold, over seeds; None = not reached.

    The claim holds when every tanh seed is slower than every ReLU seed (a seed that
    never reached the threshold is slower than any that did), is reversed when every
    tanh seed is faster, and is within noise when the two sets of seeds overlap.
    The ratio is mean(tanh) / mean(relu); with a tanh seed that never got there it
    is a lower bound from that run's last step.
    """
    relu = [s for s in relu_steps if s is not None]
    if not relu_steps or not tanh_steps:
        return None
    result = {"relu_steps": relu_steps, "tanh_steps": tanh_steps, "ratio": None,
              "ratio_is_lower_bound": False}
    if len(relu) < len(relu_steps):
        result["verdict"] = "not reached by relu"
        return result
    inf = float("inf")
    tanh = [inf if s is None else s for s in tanh_steps]
    if min(tanh) > max(relu):
        result["verdict"] = "holds"
    elif max(tanh) < min(relu):
        result["verdict"] = "reversed"
    else:
        result["verdict"] = "within noise"
    bounded = [last if s is None else s for s, last in zip(tanh_steps, last_steps)]
    result["ratio"] = (sum(bounded) / len(bounded)) / (sum(relu) / len(relu))
    result["ratio_is_lower_bound"] = any(s is None for s in tanh_steps)
    return result


# -- the study's table ------------------------------------------------------------------------

def run_summary(run, thresholds):
    """One run's numbers: final errors, train-split error, steps to each threshold."""
    final, curve = run.get("final") or {}, run.get("curve") or []
    split = run.get("train_split") or {}
    return {
        "variant": run["variant"], "seed": run["seed"], "status": run["status"],
        **{m: final.get(m) for m in ERROR_METRICS},
        "num_images": final.get("num_images"),
        "final_step": final.get("step"),
        "train_split_top1_error": split.get("top1_error"),
        "train_split_num_images": split.get("num_images"),
        "train_top1_error_dropout_on": last_epoch_train_error(curve),
        "steps_to_threshold": {str(t): steps_to_threshold(curve, t) for t in thresholds},
    }


def _count(rows):
    counts = [r["num_images"] for r in rows if r["num_images"]]
    return min(counts) if counts else None


def _done(rows, variant):
    return [r for r in rows if r["variant"] == variant and r["status"] == "done"]


def variant_summary(rows, variant, expected_sign, paper_delta):
    """Mean and range of each error over the variant's finished seeds, and its comparison."""
    mine, base = _done(rows, variant), _done(rows, "baseline")
    summary = {"seeds_done": [r["seed"] for r in mine], "paper_delta": paper_delta}
    summary.update({m: spread([r[m] for r in mine]) for m in ERROR_METRICS})
    if variant != "baseline" and mine and base:
        counts = (_count(base), _count(mine))
        summary["vs_baseline"] = {
            m: compare(spread([r[m] for r in base]), summary[m], expected_sign, counts)
            for m in ERROR_METRICS if None not in counts}
    return summary


# The sign the paper predicts for (variant - baseline) training-split error: removing a
# regularizer lets the network fit its training images better, except weight decay, which
# "reduces the model's training error" (Sec. 5).
TRAIN_ERROR_SIGN = {"no_weight_decay": +1}


def _with_gap(rows, variant):
    return [r for r in _done(rows, variant) if r["train_split_top1_error"] is not None
            and r["centre_top1_error"] is not None]


def _train_rate(rows):
    return (sum(r["train_split_top1_error"] for r in rows) / len(rows),
            min(r["train_split_num_images"] for r in rows))


def regularizer_gap(rows, variant):
    """Sec. 4.1, 4.2, 5: validation (centre) minus train-split (eval mode) top-1 error, and the
    train-split error itself, baseline vs `variant`; None without both sides' train splits."""
    base, mine = _with_gap(rows, "baseline"), _with_gap(rows, variant)
    if not base or not mine:
        return None

    def side(rs, key):
        return spread([r[key] for r in rs])
    gaps = [spread([r["centre_top1_error"] - r["train_split_top1_error"] for r in rs])
            for rs in (base, mine)]
    counts = (_count(base), _count(mine))
    train_counts = tuple(min(r["train_split_num_images"] for r in rs) for rs in (base, mine))
    return {"baseline_gap": gaps[0], "variant_gap": gaps[1],
            "baseline_train_split": side(base, "train_split_top1_error"),
            "variant_train_split": side(mine, "train_split_top1_error"),
            "baseline_train_dropout_on": side(base, "train_top1_error_dropout_on"),
            "variant_train_dropout_on": side(mine, "train_top1_error_dropout_on"),
            "comparison": compare(gaps[0], gaps[1], +1, counts,
                                  extra_rates=[_train_rate(rs) for rs in (base, mine)]),
            "train_comparison": compare(side(base, "train_split_top1_error"),
                                        side(mine, "train_split_top1_error"),
                                        TRAIN_ERROR_SIGN.get(variant, -1), train_counts),
            # The same with dropout and augmentation on: the 'train' events' last epoch.
            "train_events_comparison": compare(side(base, "train_top1_error_dropout_on"),
                                               side(mine, "train_top1_error_dropout_on"),
                                               TRAIN_ERROR_SIGN.get(variant, -1), train_counts)}


def regime(rows, num_epochs=None):
    """The baseline's own train/validation gap: whether this regime can test a regularizer.

    'overfits' when the 95% interval of the gap (one-sample t over seeds) lies above 0.
    """
    base = _with_gap(rows, "baseline")
    if not base:
        return {"num_epochs": num_epochs, "baseline_gap": None}
    gaps = [r["centre_top1_error"] - r["train_split_top1_error"] for r in base]
    interval = statistics.paired([0.0] * len(gaps), gaps)
    overfits = interval["ci"] is not None and interval["ci"][0] > 0
    return {"num_epochs": num_epochs, "baseline_gap": spread(gaps), "gap_interval": interval,
            "overfits": overfits,
            "baseline_train_split": spread([r["train_split_top1_error"] for r in base]),
            "baseline_validation": spread([r["centre_top1_error"] for r in base])}


def ten_vs_centre(rows):
    """Sec. 6: the baseline runs' ten-crop errors against their centre-crop errors.

    Paired: only the seeds evaluated both ways count on either side (a run evaluated
    without ten crops would otherwise shift the centre-crop mean alone); `seeds` says which.
    """
    base = _done(rows, "baseline")
    n = _count(base)
    if not base or n is None:
        return None
    result = {}
    for k in ("top1", "top5"):
        centre_key, ten_key = f"centre_{k}_error", f"ten_crop_{k}_error"
        paired = [r for r in base if r[centre_key] is not None and r[ten_key] is not None]
        result[k] = compare(spread([r[centre_key] for r in paired]),
                            spread([r[ten_key] for r in paired]), -1, (n, n), paired=True)
        if result[k] is not None:
            result[k]["seeds"] = [r["seed"] for r in paired]
    return result


def relu_vs_tanh(rows, thresholds):
    """Steps (and epochs) to each training-error threshold, ReLU (baseline) vs tanh."""
    relu, tanh = _done(rows, "baseline"), _done(rows, "tanh")
    if not relu or not tanh:
        return None
    result = {}
    for t in map(str, thresholds):
        reached = {name: [r["steps_to_threshold"][t] for r in rs]
                   for name, rs in (("relu", relu), ("tanh", tanh))}
        steps = {name: [x and x["step"] for x in v] for name, v in reached.items()}
        comparison = compare_steps(steps["relu"], steps["tanh"], [r["final_step"] for r in tanh])
        comparison.update(relu_epochs=[x and x["epoch"] for x in reached["relu"]],
                          tanh_epochs=[x and x["epoch"] for x in reached["tanh"]])
        result[t] = comparison
    return result


def summarize(runs, variants, thresholds, num_epochs=None):
    """The study's table from its runs (runner.collect_runs): what study.json holds."""
    return summarize_rows({run["name"]: run_summary(run, thresholds) for run in runs},
                          variants, thresholds, num_epochs)


def summarize_rows(rows, variants, thresholds, num_epochs=None):
    """summarize from run_summary's rows by run name (study.json's 'runs': a re-tabulation)."""
    from keras_alexnet.study.variants import GAP_VARIANTS, VARIANTS
    rows_list = list(rows.values())
    return {
        "method": statistics.METHOD,
        "noise_rule": NOISE_RULE,
        "error_thresholds": list(thresholds),
        "runs": rows,
        "variants": {v: dict(section=VARIANTS[v].section, claim=VARIANTS[v].claim,
                             **variant_summary(rows_list, v, VARIANTS[v].expected_sign,
                                               VARIANTS[v].paper_delta))
                     for v in variants},
        "relu_vs_tanh": relu_vs_tanh(rows_list, thresholds),
        "regime": regime(rows_list, num_epochs),
        "gaps": {v: regularizer_gap(rows_list, v) for v in GAP_VARIANTS if v in variants},
        "ten_vs_centre": ten_vs_centre(rows_list),
    }
