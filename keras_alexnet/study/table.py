"""study.md (the table a reader reads) and figure1.png, from the study dict analysis.summarize returns.

Errors are shown in percent, differences in points (variant minus baseline), each
mean with its range over seeds, each difference with its 95% interval, smallest
detectable effect and verdict (statistics.py).
"""
from keras_alexnet.data import layout
from keras_alexnet.study import statistics

METRIC_TITLES = {"centre_top1_error": "top-1 centre", "centre_top5_error": "top-5 centre",
                 "ten_crop_top1_error": "top-1 ten crops", "ten_crop_top5_error": "top-5 ten crops"}


def _pct(x):
    return "-" if x is None else f"{100 * x:.2f}"


def _spread(s):
    if s is None:
        return "-"
    return f"{_pct(s['mean'])} ({_pct(s['min'])}..{_pct(s['max'])})"


def _diff(c, paper_delta=None):
    """The difference with its interval and verdict; the range rule's verdict where it differs."""
    if c is None:
        return "-"
    text = statistics.describe(c, paper_delta)
    old = c.get("range_rule_verdict")
    if old and old != c["verdict"]:
        text += f" (range rule: {old}, noise {100 * c['noise']:.2f})"
    return text


def _paper(delta):
    if not delta:
        return "-"
    return " / ".join("-" if d is None else f"+{d}" for d in delta)


def error_tables(study):
    lines = ["## Final validation error (%), mean (min..max) over seeds", "",
             "| variant | section | seeds | " + " | ".join(METRIC_TITLES.values()) + " |",
             "|---|---|---|" + "---|" * len(METRIC_TITLES)]
    for name, v in study["variants"].items():
        seeds = ",".join(map(str, v["seeds_done"])) or "none finished"
        lines.append(f"| {name} | {v['section']} | {seeds} | "
                     + " | ".join(_spread(v[m]) for m in METRIC_TITLES) + " |")
    lines += ["", "## Difference to the baseline (points of error, variant minus baseline)", "",
              "| variant | claim | paper top-1 / top-5 | " + " | ".join(METRIC_TITLES.values()) + " |",
              "|---|---|---|" + "---|" * len(METRIC_TITLES)]
    for name, v in study["variants"].items():
        if name == "baseline":
            continue
        comparisons, delta = v.get("vs_baseline") or {}, v["paper_delta"] or (None, None)
        lines.append(f"| {name} | {v['claim']} | {_paper(v['paper_delta'])} | " + " | ".join(
            _diff(comparisons.get(m), delta[0 if "top1" in m else 1]) for m in METRIC_TITLES)
            + " |")
    return lines


def _steps(steps, epochs):
    return ", ".join("not reached" if s is None else f"{s} (epoch {e:.2f})"
                     for s, e in zip(steps, epochs))


def tanh_section(study):
    lines = ["## Sec. 3.1 / Figure 1: ReLU vs tanh, steps to a training error", "",
             "Training error is the mean over each logged window of steps, with dropout and "
             "augmentation on (the 'train' events of metrics.jsonl), as Figure 1 plots it. "
             "Paper: ReLU reached 25% on CIFAR-10 six times faster than tanh. "
             "Verdict 'holds' when every tanh seed is slower than every ReLU seed. "
             "Plot: figure1.png.", ""]
    result = study.get("relu_vs_tanh")
    if not result:
        return lines + ["Needs finished 'baseline' and 'tanh' runs.", ""]
    lines += ["| threshold | ReLU steps (epochs) per seed | tanh steps (epochs) per seed | "
              "tanh / ReLU | verdict |", "|---|---|---|---|---|"]
    for t, r in result.items():
        ratio = "-" if r["ratio"] is None else \
            (">= " if r["ratio_is_lower_bound"] else "") + f"{r['ratio']:.2f}x"
        lines.append(f"| {100 * float(t):.0f}% | {_steps(r['relu_steps'], r['relu_epochs'])} | "
                     f"{_steps(r['tanh_steps'], r['tanh_epochs'])} | {ratio} | **{r['verdict']}** |")
    return lines + [""]


def regime_line(study):
    """Whether the baseline overfits: a regularizer can only show its worth where it does."""
    r = study.get("regime") or {}
    epochs = f"{r['num_epochs']} epochs" if r.get("num_epochs") else "the baseline config"
    if not r.get("baseline_gap"):
        return f"Regime: {epochs}; the baseline's train/validation gap is not measured yet."
    interval = r["gap_interval"]
    ci = "" if interval["ci"] is None else \
        f", 95% CI {100 * interval['ci'][0]:+.1f}..{100 * interval['ci'][1]:+.1f}"
    verdict = ("it overfits (the gap's interval lies above 0): the regularizer verdicts below "
               "test the paper's claims" if r["overfits"] else
               "it does not measurably overfit, so a regularizer has nothing to correct here: "
               "the regularizer verdicts below are this regime's, not a test of the claims")
    return (f"Regime: {epochs}. The baseline's validation top-1 error {_spread(r['baseline_validation'])}, "
            f"its training split's (evaluation mode) {_spread(r['baseline_train_split'])}: gap "
            f"{_spread(r['baseline_gap'])} points{ci}; {verdict}.")


def gap_section(study):
    r = study.get("regime") or {}
    label = f" ({r['num_epochs']}-epoch regime)" if r.get("num_epochs") else ""
    lines = [f"## Sec. 4.1, 4.2, 5: the regularizers, training vs validation{label}", "",
             "Gap = validation top-1 error (centre crop) minus the training split's top-1 error "
             "measured in evaluation mode (no dropout, centre crop, no augmentation) with the final "
             "weights. The training error with dropout and augmentation on (the 'train' events, "
             "mean of the last epoch) is shown for reference. Paper: without dropout (4.2) or "
             "without random crops and flips (4.1) the network overfits substantially (expected: a "
             "larger gap); weight decay reduces the training error (5; expected: a higher "
             "training-split error without it, the verdict that counts for no_weight_decay).", "",
             regime_line(study), ""]
    gaps = {v: g for v, g in (study.get("gaps") or {}).items() if g}
    if not gaps:
        return lines + ["Needs finished 'baseline' runs and runs of no_dropout, centre_crop_no_flip, "
                        "no_lighting or no_weight_decay, with their train-split evaluation.", ""]
    first = next(iter(gaps.values()))
    lines += ["| variant | gap (points) | training split, eval mode (%) | training, dropout on (%) |",
              "|---|---|---|---|",
              f"| baseline | {_spread(first['baseline_gap'])} | "
              f"{_spread(first['baseline_train_split'])} | {_spread(first['baseline_train_dropout_on'])} |"]
    lines += [f"| {v} | {_spread(g['variant_gap'])} | {_spread(g['variant_train_split'])} | "
              f"{_spread(g['variant_train_dropout_on'])} |" for v, g in gaps.items()]
    lines += ["", "| variant | gap minus the baseline's | training-split error (eval mode) minus "
              "the baseline's | training error (dropout on) minus the baseline's |", "|---|---|---|---|"]
    lines += [f"| {v} | {_diff(g['comparison'])} | {_diff(g['train_comparison'])} | "
              f"{_diff(g.get('train_events_comparison'))} |" for v, g in gaps.items()]
    return lines + [""]


def ten_crop_section(study):
    lines = ["## Sec. 6: ten crops vs the centre crop (baseline runs)", "",
             "Ten-crop minus centre-crop error of the same final weights (paper: ten crops lower "
             "the error).", ""]
    d = study.get("ten_vs_centre")
    if not d:
        return lines + ["Needs finished 'baseline' runs.", ""]
    out = []
    for k, label in (("top1", "top-1"), ("top5", "top-5")):
        if d.get(k) is None:
            out.append(f"- {label}: no baseline run evaluated with both crops")
        else:
            seeds = ",".join(map(str, d[k].get("seeds", [])))
            out.append(f"- {label}: {_diff(d[k])}" + (f" (seeds {seeds}, paired)" if seeds else ""))
    return lines + out + [""]


def markdown(study, header=()):
    lines = ["# Replication study: the paper's claims re-tested", "", *header, "",
             "How sure: " + study.get("method", "-"), "",
             "The first verdict rule (the range rule, shown where its verdict differs): "
             + study["noise_rule"], ""]
    lines += error_tables(study) + [""] + tanh_section(study) + gap_section(study) \
        + ten_crop_section(study)
    runs = study["runs"].values()
    unfinished = [f"{r['variant']}-seed{r['seed']} ({r['status']})" for r in runs
                  if r["status"] != "done"]
    if unfinished:
        lines += ["## Runs not finished", "", ", ".join(unfinished), ""]
    return "\n".join(lines)


def figure1(runs, path, thresholds=()):
    """Training error vs epochs: ReLU (baseline) solid, tanh dashed, one line per seed."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    seeds = sorted({r["seed"] for r in runs})
    for run in runs:
        curve = run.get("curve") or []
        if run["variant"] not in ("baseline", "tanh") or not curve:
            continue
        style = "-" if run["variant"] == "baseline" else "--"
        label = f"{'ReLU' if run['variant'] == 'baseline' else 'tanh'}, seed {run['seed']}"
        ax.plot([c[1] for c in curve], [c[2] for c in curve], style, label=label,
                color=colours[seeds.index(run["seed"]) % len(colours)])
    for t in thresholds:
        ax.axhline(t, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel("epochs")
    ax.set_ylabel("training error rate")
    ax.set_ylim(0, 1)
    ax.set_title("Figure 1: ReLU (solid) vs tanh (dashed)")
    if ax.get_lines() and any(not line.get_label().startswith("_") for line in ax.get_lines()):
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "no 'baseline' or 'tanh' training curves yet", ha="center",
                transform=ax.transAxes)
    fig.tight_layout()
    with layout.atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path

