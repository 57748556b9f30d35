"""Figure 4 (left): validation images, each with the five classes the network finds most probable.

The probabilities are the model's softmax on each image's centre patch in evaluation
mode: the input bin/evaluate's centre-crop error counts (preprocessing.preprocess_for_eval
with the run's statistics and normalization), computed by evaluation.class_probabilities
as everywhere else. The records are read by their index in make_dataset's evaluation
order (neighbours.read_records_at), so only the images shown are decoded.

top_classes returns what plot_top5 draws (and report.json keeps): per image its index,
true label, the k classes and their probabilities, most probable first, and the true
class's place among them (None when it is not among them).
"""
import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from keras_alexnet import evaluation
from keras_alexnet.data import preprocessing
from keras_alexnet.data import stats as stats_lib
from keras_alexnet.report import neighbours

FILENAME = "figure4_left.png"
TOP = 5
TRUE_COLOUR = "tab:red"  # the paper draws the correct label's bar in red
OTHER_COLOUR = "tab:blue"
COLUMNS = 4  # images per row of the figure
CHUNK = 64   # images per forward pass


def distinct_classes_first(labels, count, order=None):
    """Up to `count` indices taken in `order` (default: the split's), one per class first."""
    labels = np.asarray(labels)
    order = [int(i) for i in (range(len(labels)) if order is None else order)]
    picked, classes = [], set()
    for i in order:
        if labels[i] not in classes:
            picked.append(i)
            classes.add(labels[i])
        if len(picked) == count:
            return picked
    taken = set(picked)
    return picked + [i for i in order if i not in taken][:count - len(picked)]


def pick_images(labels, count, seed=0):
    """Up to `count` indices of a split: a seeded shuffle of it, one image per class first.

    Reproducible (the same labels and seed give the same images) and not the split's first
    images (converted splits are often sorted by class).
    """
    order = np.random.default_rng(seed).permutation(len(labels))
    return distinct_classes_first(labels, count, order)


def top_k_rows(indices, probabilities, labels, k=TOP):
    """[{validation, label, classes, probabilities, true_rank}] of probabilities [N, C], most
    probable first (equal probabilities: the lower class first)."""
    k = min(k, probabilities.shape[1])
    values, classes = tf.math.top_k(tf.convert_to_tensor(probabilities, tf.float32), k=k)
    rows = []
    for i, label, top, p in zip(indices, labels, classes.numpy(), values.numpy()):
        top = [int(c) for c in top]
        rows.append(dict(validation=int(i), label=int(label), classes=top,
                         probabilities=[float(v) for v in p],
                         true_rank=top.index(label) if label in top else None))
    return rows


def top_classes(run, split, indices, k=TOP):
    """(rows, display patches {index: uint8 [S, S, 3]}) of the split's records at `indices`.

    rows: top_k_rows of the centre patches in `indices`' order (k at most the classes).
    """
    stats = stats_lib.load_stats(run.data_dir)
    paper_size = int(stats.mean_image.shape[0])
    inputs, labels, patches = {}, {}, {}
    for i, image_bytes, label in neighbours.read_records_at(run.data_dir, split, indices,
                                                            run.label_offset):
        inputs[i] = preprocessing.preprocess_for_eval(
            image_bytes, stats, image_size=run.image_size, normalization=run.normalization)
        labels[i] = label
        patches[i] = neighbours.display_patch(image_bytes, run.image_size, paper_size)
    missing = [i for i in indices if i not in inputs]
    if missing:
        raise ValueError(f"the {split} split has no record {missing[0]} (it holds fewer)")
    indices = [int(i) for i in indices]
    probabilities = np.concatenate([
        evaluation.class_probabilities(lambda x: run.model(x, training=False),
                                       tf.stack([inputs[i] for i in indices[s:s + CHUNK]])).numpy()
        for s in range(0, len(indices), CHUNK)])
    return top_k_rows(indices, probabilities, [labels[i] for i in indices], k), patches


def _short(name, width=22):
    name = name.split(",")[0]
    return name if len(name) <= width else name[:width - 1] + "…"


def plot_top5(rows, patches, class_names, path):
    """figure4_left.png: each image, its true class under it, and its top classes as bars.

    The true class's bar is TRUE_COLOUR, the others OTHER_COLOUR. Returns the bar
    containers, one per image in `rows`' order (what was drawn, for tests).
    """
    columns = min(len(rows), COLUMNS)
    lines = -(-len(rows) // columns)
    fig = Figure(figsize=(2.6 * columns, 3.6 * lines), dpi=100)
    grid = fig.add_gridspec(2 * lines, columns, height_ratios=[1.3, 1] * lines)
    containers = []
    for n, row in enumerate(rows):
        line, column = divmod(n, columns)
        ax = fig.add_subplot(grid[2 * line, column])
        ax.imshow(patches[row["validation"]])
        ax.set_axis_off()
        ax.set_title(f"val {row['validation']}", fontsize=7)
        ax.text(0.5, -0.03, _short(class_names[row["label"]], 30), transform=ax.transAxes,
                ha="center", va="top", fontsize=8, fontweight="bold")
        ax = fig.add_subplot(grid[2 * line + 1, column])
        k = len(row["classes"])
        bar_colours = [TRUE_COLOUR if c == row["label"] else OTHER_COLOUR for c in row["classes"]]
        containers.append(ax.barh(np.arange(k), row["probabilities"], color=bar_colours))
        ax.set_yticks(np.arange(k), [_short(class_names[c]) for c in row["classes"]], fontsize=7)
        ax.invert_yaxis()  # the most probable on top
        ax.set_xlim(0, 1)
        ax.tick_params(axis="x", labelsize=6)
    k = max(len(row["classes"]) for row in rows)
    fig.suptitle(f"validation images and the network's {k} most probable classes "
                 "(centre crop; red: the true class)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    return containers
