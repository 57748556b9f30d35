"""bin/report: the paper's figures, regenerated from any training run.

    write_report(workdir, out) writes into `out`:
      curves.png         training and validation top-1 error per epoch, learning-rate drops marked
      conv1_kernels.png  Figure 3: conv1's kernels, the half that feeds each tower of conv2 apart
      neighbours.png     Figure 4: validation images and their nearest training images in fc7 space
      figure4_left.png   Figure 4 (left): validation images and their five most probable classes
      report.json        {"conv1_colour", "neighbours", "top5", "final", ...}

The curves come from WORKDIR/metrics.jsonl (training/workdir.read_events); the model
from a checkpoint (runs/restore.py, as bin/export and bin/evaluate); the
neighbours from a streamed pass over both splits (neighbours.py: memory bounded
on ILSVRC-size splits); the top five classes from the few images shown (top5.py).

The colour number: a kernel's chroma is the norm of its colour-opponent part
(the kernel minus its grey, the per-pixel mean over R, G, B) over its norm: 0
for a grey kernel, sqrt(2/3) for one that sees a single channel, 1 when the
channels cancel at every pixel. The paper saw one tower's kernels largely
colour-agnostic and the other's colour-specific (which is which is arbitrary).
"""
import os
import sys

import numpy as np
from matplotlib import ticker
from matplotlib.figure import Figure

from keras_alexnet.data import layout
from keras_alexnet.report import neighbours as neighbours_lib
from keras_alexnet.report import top5
from keras_alexnet.runs import restore
from keras_alexnet.training import reporting, workdir as workdir_lib

REPORT_FILENAME = "report.json"
DPI = 100


# -- curves ------------------------------------------------------------------------------------

def last_per_step(events, kind):
    """Events of one kind, the last one of each step (a resumed run repeats steps), by step."""
    by_step = {e["step"]: e for e in events if e.get("event") == kind}
    return [by_step[s] for s in sorted(by_step)]


def epoch_curves(events):
    """dict(train_windows, train_epochs, val, lr_drops): (epochs, top-1 errors) pairs and epochs.

    A 'train' event's error covers its log window (the steps since the previous
    one); an epoch's training error weights its windows by their steps.
    """
    train = last_per_step(events, "train")
    windows = ([e["epoch"] for e in train], [e["top1_error"] for e in train])
    sums = {}
    previous = 0
    for e in train:
        steps = max(e["step"] - previous, 1)
        previous = e["step"]
        epoch = int(np.ceil(e["epoch"] - 1e-9))
        total, weight = sums.get(epoch, (0.0, 0))
        sums[epoch] = (total + steps * e["top1_error"], weight + steps)
    epochs = sorted(sums)
    val = last_per_step(events, "eval")
    return dict(train_windows=windows,
                train_epochs=(epochs, [sums[e][0] / sums[e][1] for e in epochs]),
                val=([e["epoch"] for e in val], [e["top1_error"] for e in val]),
                lr_drops=[(e["epoch"], e.get("learning_rate")) for e in last_per_step(events, "lr_reduced")])


def plot_curves(events, path, title=""):
    """curves.png: top-1 error against epochs, a vertical line at each learning-rate drop."""
    curves = epoch_curves(events)
    fig = Figure(figsize=(7, 4.5), dpi=DPI)
    ax = fig.add_subplot()
    ax.plot(*curves["train_windows"], color="tab:blue", alpha=0.25, lw=1,
            label="training (per log window)")
    ax.plot(*curves["train_epochs"], "o-", color="tab:blue", ms=3, label="training (epoch mean)")
    ax.plot(*curves["val"], "s-", color="tab:orange", ms=3, label="validation (centre crop)")
    for i, (epoch, lr) in enumerate(curves["lr_drops"]):
        ax.axvline(epoch, color="grey", ls="--", lw=1,
                   label="learning rate / 10" if i == 0 else None)
        if lr is not None:
            ax.annotate(f"lr {lr:.0e}", (epoch, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(2, -10), textcoords="offset points", fontsize=7, color="grey")
    ax.set(xlabel="epoch", ylabel="top-1 error", ylim=(0, 1), title=title)
    ax.set_xlim(left=0)
    ax.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path)
    return curves


# -- Figure 3: conv1 kernels -------------------------------------------------------------------

def chroma(kernels):
    """Per kernel [h, w, 3, n] -> [n]: norm of (kernel - its per-pixel grey) / norm of kernel."""
    kernels = np.asarray(kernels, np.float64)
    colour = kernels - kernels.mean(axis=2, keepdims=True)
    total = np.sqrt(np.sum(kernels ** 2, axis=(0, 1, 2)))
    return np.sqrt(np.sum(colour ** 2, axis=(0, 1, 2))) / np.maximum(total, 1e-12)


def normalize_each(kernels):
    """Each kernel [h, w, 3, i] to 0..1 on its own (one range over its 3 channels keeps its hue)."""
    lo = kernels.min(axis=(0, 1, 2), keepdims=True)
    hi = kernels.max(axis=(0, 1, 2), keepdims=True)
    return (kernels - lo) / np.maximum(hi - lo, 1e-12)


def kernel_blocks(kernels, towers):
    """[(label, kernels [h, w, 3, m])] for the two halves of conv1's output channels.

    conv2's tower0 sees conv1's first half of channels, tower1 the second; with
    towers=1 no tower is fed by one half, and the labels say the split is for comparison.
    """
    n = kernels.shape[-1]
    half = n // 2
    ranges = [(0, half), (half, n)]
    if towers == 2:
        names = [f"tower {t + 1}: conv1 kernels {a}-{b - 1} (feed conv2/tower{t})"
                 for t, (a, b) in enumerate(ranges)]
    else:
        names = [f"half {t + 1}: conv1 kernels {a}-{b - 1} (towers=1: conv2 sees all {n}; "
                 "halves for comparison)" for t, (a, b) in enumerate(ranges)]
    return [(name, kernels[..., a:b]) for name, (a, b) in zip(names, ranges)]


def plot_kernels(kernels, towers, path):
    """conv1_kernels.png; returns {"tower1": mean chroma, "tower2": ..., ...}."""
    kernels = np.asarray(kernels, np.float32)
    blocks = kernel_blocks(kernels, towers)
    fig = Figure(figsize=(8, 7.5), dpi=DPI)
    colour = {}
    for t, (name, block) in enumerate(blocks):
        ax = fig.add_subplot(2, 1, t + 1)
        ax.imshow(reporting.kernel_grid(normalize_each(block))[0], interpolation="nearest")
        ax.set_axis_off()
        value = float(np.mean(chroma(block))) if block.shape[-1] else float("nan")
        colour[f"tower{t + 1}"] = round(value, 4)
        ax.set_title(f"{name}\nmean chroma {value:.3f}", fontsize=9)
    fig.suptitle(f"conv1: {kernels.shape[-1]} kernels {kernels.shape[0]}x{kernels.shape[1]}"
                 f"x{kernels.shape[2]}, each scaled to its own range", fontsize=10)
    fig.savefig(path)
    colour.update(split="towers" if towers == 2 else "halves (towers=1)",
                  kernels=[b.shape[-1] for _, b in blocks],
                  metric="mean over kernels of |kernel - per-pixel grey| / |kernel|")
    return colour


# -- Figure 4: nearest neighbours --------------------------------------------------------------

def pick_queries(val_labels, count):
    """Up to `count` validation indices, of distinct classes first, in the split's order."""
    return top5.distinct_classes_first(val_labels, count)


def _short(name, width=16):
    name = name.split(",")[0]
    return name if len(name) <= width else name[:width - 1] + "…"


def plot_neighbours(queries, result, val_patches, train_patches, class_names, path):
    """neighbours.png: one row per query, the query then its k nearest (green: same class)."""
    k = result["indices"].shape[1]
    fig = Figure(figsize=(1.5 * (k + 1), 1.7 * len(queries)), dpi=DPI)
    for row, q in enumerate(queries):
        image, label = val_patches[q]
        ax = fig.add_subplot(len(queries), k + 1, row * (k + 1) + 1)
        ax.imshow(image)
        ax.set_title(f"val {q}\n{_short(class_names[label])}", fontsize=7, fontweight="bold")
        ax.set_axis_off()
        for j in range(k):
            t = int(result["indices"][q, j])
            neighbour, neighbour_label = train_patches[t]
            ax = fig.add_subplot(len(queries), k + 1, row * (k + 1) + j + 2)
            ax.imshow(neighbour)
            same = neighbour_label == label
            ax.set_title(f"{_short(class_names[neighbour_label])}\nd {result['distances'][q, j]:.3g}",
                         fontsize=7, color="tab:green" if same else "tab:red")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set(color="tab:green" if same else "tab:red", lw=2)
    fig.suptitle(f"validation images (left) and their {k} nearest training images in fc7 space",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path)


def _patches(run, split, indices, labels):
    """Display patches of the records at `indices`, checked against the feature pass's labels."""
    patches = neighbours_lib.read_centre_patches(run.data_dir, split, indices,
                                                 image_size=run.image_size,
                                                 label_offset=run.label_offset)
    _check_labels(split, {i: label for i, (_, label) in patches.items()}, labels)
    return patches


def _check_labels(split, read, labels):
    """Records read back by index {index: label} must carry the feature pass's labels."""
    for i, label in read.items():
        if label != labels[i]:
            raise RuntimeError(f"{split} record {i}: label {label}, the feature pass saw "
                               f"{labels[i]}; the two reads numbered the records differently")


# -- the report --------------------------------------------------------------------------------

def write_report(workdir, out, *, data_dir=None, checkpoint="best", k=5, num_queries=5,
                 num_top5=8, top5_seed=0, batch_size=128, query_chunk=2048, stream=sys.stderr):
    """Writes the four figures and report.json into `out`; returns the report dict."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out={out} is a file, not a folder")
    if k < 1 or num_queries < 1 or num_top5 < 1:
        raise ValueError(f"--k={k}, --num_queries={num_queries} and --num_top5={num_top5} "
                         "must be at least 1")
    run = restore.restore_run(workdir, checkpoint, data_dir=data_dir)
    events = workdir_lib.read_events(workdir)
    os.makedirs(out, exist_ok=True)
    splits = run.config.get("input", {})
    train_split, eval_split = splits.get("train_split", "train"), splits.get("eval_split", "validation")

    plot_curves(events, os.path.join(out, "curves.png"), title=os.path.basename(os.path.abspath(workdir)))
    colour = plot_kernels(run.model.get_layer("conv1").kernel.numpy(),
                          run.config["model"].get("towers", 2), os.path.join(out, "conv1_kernels.png"))

    result = neighbours_lib.nearest_neighbours(run, k, train_split=train_split, eval_split=eval_split,
                                               batch_size=batch_size, query_chunk=query_chunk,
                                               stream=stream)
    queries = pick_queries(result["val_labels"], num_queries)
    shown = {int(t) for q in queries for t in result["indices"][q]}
    plot_neighbours(queries, result, _patches(run, eval_split, queries, result["val_labels"]),
                    _patches(run, train_split, shown, result["train_labels"]), run.class_names,
                    os.path.join(out, "neighbours.png"))

    shown_top5 = top5.pick_images(result["val_labels"], num_top5, top5_seed)
    rows, top5_patches = top5.top_classes(run, eval_split, shown_top5)
    _check_labels(eval_split, {r["validation"]: r["label"] for r in rows}, result["val_labels"])
    top5.plot_top5(rows, top5_patches, run.class_names, os.path.join(out, top5.FILENAME))

    neighbour_labels = result["train_labels"][result["indices"]]
    finals = [e for e in events if e.get("event") == "final"]
    report = {
        "workdir": os.path.abspath(workdir), "checkpoint": run.checkpoint_path,
        "data_dir": run.data_dir,
        "conv1_colour": colour,
        "neighbours": {
            "k": k, "feature": "fc7", "dim": int(run.model.get_layer("fc7").units),
            "distance": "euclidean",
            "same_class_precision": round(neighbours_lib.same_class_precision(
                neighbour_labels, result["val_labels"]), 6),
            "chance": round(neighbours_lib.chance_precision(
                result["train_labels"], result["val_labels"], len(run.class_names)), 6),
            "num_validation": int(len(result["val_labels"])),
            "num_train": int(len(result["train_labels"])),
            "shown": [{"validation": q, "train": [int(t) for t in result["indices"][q]]}
                      for q in queries]},
        "top5": {"split": eval_split, "crop": "centre", "seed": top5_seed, "images": rows},
        # The run's last 'final' event; null for a run that has not finished.
        "final": finals[-1] if finals else None,
    }
    layout.write_json(os.path.join(out, REPORT_FILENAME), report)
    return report
