"""study.md (the table a reader reads) and figure1.png, from the study dict analysis.summarize returns.

Errors are shown in percent, differences in points (variant minus baseline), each
mean with its range over seeds.
"""
from keras_alexnet.data import layout

METRIC_TITLES = {"centre_top1_error": "top-1 centre", "centre_top5_error": "top-5 centre",
                 "ten_crop_top1_error": "top-1 ten crops", "ten_crop_top5_error": "top-5 ten crops"}


def _pct(x):
    return "-" if x is None else f"{100 * x:.2f}"


def _spread(s):
    if s is None:
        return "-"
    return f"{_pct(s['mean'])} ({_pct(s['min'])}..{_pct(s['max'])})"


def _diff(c):
    if c is None:
        return "-"
    return f"{100 * c['difference']:+.2f} (noise {100 * c['noise']:.2f}): **{c['verdict']}**"


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
        comparisons = v.get("vs_baseline") or {}
        lines.append(f"| {name} | {v['claim']} | {_paper(v['paper_delta'])} | "
                     + " | ".join(_diff(comparisons.get(m)) for m in METRIC_TITLES) + " |")
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


def dropout_section(study):
    lines = ["## Sec. 4.2: dropout, the training vs validation gap", "",
             "Gap = validation top-1 error (centre crop) minus the training split's top-1 error "
             "measured in evaluation mode (no dropout, centre crop, no augmentation) with the final "
             "weights. For reference, the training error with dropout on (the 'train' events, mean "
             "of the last epoch) is also shown. Paper: without dropout the network overfits "
             "substantially (expected: a larger gap).", ""]
    d = study.get("dropout_gap")
    if not d:
        return lines + ["Needs finished 'baseline' and 'no_dropout' runs with their train-split "
                        "evaluation.", ""]
    lines += ["| variant | gap (points) | training error, dropout on (%) |", "|---|---|---|",
              f"| baseline | {_spread(d['baseline_gap'])} | {_spread(d['baseline_train_dropout_on'])} |",
              f"| no_dropout | {_spread(d['no_dropout_gap'])} | "
              f"{_spread(d['no_dropout_train_dropout_on'])} |",
              "", f"no_dropout gap minus baseline gap: {_diff(d['comparison'])}", ""]
    return lines


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
             "Noise rule: " + study["noise_rule"], ""]
    lines += error_tables(study) + [""] + tanh_section(study) + dropout_section(study) \
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

