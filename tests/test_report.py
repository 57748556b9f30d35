"""bin/report: the figures and report.json of a tiny trained run, and the pieces behind them."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import fixtures as fx
from keras_alexnet.data import input_pipeline, layout
from keras_alexnet.data import stats as stats_lib
from keras_alexnet.report import figures, neighbours, top5
from keras_alexnet.training import workdir as workdir_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIGURES = ("curves.png", "conv1_kernels.png", "neighbours.png", "figure4_left.png")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The tiny config trained 2 epochs on the demo's shapes (3 classes, 48 train, 18 val).

    min_delta 1 makes no epoch an improvement after the first: the rate drops after epoch 2.
    """
    from keras_alexnet.training import train
    root = tmp_path_factory.mktemp("report")
    data_dir = fx.demo_data_dir(str(root))
    workdir = str(root / "run")
    train.train_and_evaluate(fx.tiny_config(data_dir, {"schedule.patience": 1,
                                                       "schedule.min_delta": 1.0}), workdir)
    return {"root": root, "data_dir": data_dir, "workdir": workdir}


def _bin_report(*flags, check=True):
    return subprocess.run([sys.executable, os.path.join(REPO, "bin", "report"), *flags],
                          check=check, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))


def _labels(data_dir, split="validation"):
    return np.concatenate([y.numpy() for _, y in input_pipeline.make_dataset(
        layout.shard_pattern(data_dir, split), 64, training=False, stats=data_dir, image_size=67,
        repeat=False)])


def _brute_force(queries, candidates, k):
    """NumPy k-NN: (indices, distances), ties to the lower index (a stable sort)."""
    q, c = np.asarray(queries, np.float64), np.asarray(candidates, np.float64)
    squared = np.sum((q[:, None, :] - c[None, :, :]) ** 2, axis=-1)
    order = np.argsort(squared, axis=1, kind="stable")[:, :k]
    return order, np.sqrt(np.take_along_axis(squared, order, axis=1))


@pytest.mark.slow
def test_bin_report_writes_the_figures_and_report_json(trained, tmp_path):
    out = str(tmp_path / "report")
    # --batch_size 5: both splits stream in several batches, the last one partial.
    done = _bin_report(f"--workdir={trained['workdir']}", f"--out={out}", "--k=3",
                       "--batch_size=5", "--num_top5=4", "--top5_seed=2")
    assert "same class" in done.stdout and "mean chroma" in done.stdout
    assert "4 validation images: the true class first for" in done.stdout
    for name in FIGURES:
        with Image.open(os.path.join(out, name)) as image:
            assert image.format == "PNG"
            assert 300 <= image.width <= 2000 and 200 <= image.height <= 2000, image.size
            pixels = np.asarray(image.convert("RGB"))
        assert pixels.std() > 10, f"{name} is blank"
    result = layout.read_json(os.path.join(out, "report.json"))
    colour = result["conv1_colour"]
    assert colour["split"] == "towers" and colour["kernels"] == [6, 6]  # width 0.125: 12 kernels
    assert 0 < colour["tower1"] < 1 and 0 < colour["tower2"] < 1
    nn = result["neighbours"]
    assert (nn["k"], nn["num_validation"], nn["num_train"]) == (3, 18, 48)
    assert nn["chance"] == pytest.approx(1 / 3)  # 3 balanced classes in both splits
    assert 0 <= nn["same_class_precision"] <= 1
    finals = workdir_lib.read_events(trained["workdir"])
    assert result["final"] == [e for e in finals if e["event"] == "final"][-1]
    assert result["checkpoint"].startswith(os.path.join(trained["workdir"], "best"))
    shown = result["top5"]["images"]
    assert [r["validation"] for r in shown] == top5.pick_images(_labels(trained["data_dir"]), 4, 2)
    assert len({r["label"] for r in shown[:3]}) == 3  # one image per class first
    for row in shown:  # 3 classes: all of them are among the "top 5", the true one marked
        assert sorted(row["classes"]) == [0, 1, 2] and row["true_rank"] == row["classes"].index(row["label"])
        assert sum(row["probabilities"]) == pytest.approx(1, abs=1e-5)


def test_precision_is_the_brute_force_knn_of_the_fc7_features(trained):
    """The streamed pass over the real run equals NumPy k-NN on the features, split by split."""
    from keras_alexnet.runs import restore
    run = restore.restore_run(trained["workdir"])
    result = neighbours.nearest_neighbours(run, 4, train_split="train", eval_split="validation",
                                           batch_size=7, query_chunk=5)
    val, val_labels = map(np.concatenate, zip(*neighbours.fc7_batches(run, "validation", 64)))
    train, train_labels = map(np.concatenate, zip(*neighbours.fc7_batches(run, "train", 64)))
    assert np.array_equal(result["val_labels"], val_labels)
    assert np.array_equal(result["train_labels"], train_labels)
    # The validation side is kept in float16: brute force on the same rounded values.
    expected, distances = _brute_force(val.astype(np.float16), train, 4)
    np.testing.assert_allclose(result["distances"], distances, rtol=1e-3, atol=1e-3)
    assert np.mean(result["indices"] == expected) > 0.95  # float32 vs float64 may swap near-ties
    precision = neighbours.same_class_precision(train_labels[result["indices"]], val_labels)
    assert precision == pytest.approx(
        np.mean(train_labels[expected] == val_labels[:, None]), abs=0.05)


def test_display_patches_are_numbered_as_make_dataset_reads(trained):
    """read_centre_patches' numbering is make_dataset(training=False)'s (no mean: same pixels)."""
    stored_size = stats_lib.load_stats(trained["data_dir"]).mean_image.shape[0]
    images = np.concatenate([x.numpy() for x, _ in input_pipeline.make_dataset(
        layout.shard_pattern(trained["data_dir"], "validation"), 4, training=False,
        image_size=67, repeat=False, stored_size=stored_size)])
    patches = neighbours.read_centre_patches(trained["data_dir"], "validation", [0, 5, 17, 3],
                                             image_size=67)
    assert sorted(patches) == [0, 3, 5, 17]
    for i, (patch, _) in patches.items():
        assert patch.dtype == np.uint8 and patch.shape == (67, 67, 3)
        np.testing.assert_array_equal(patch, np.round(images[i]).astype(np.uint8))


@pytest.mark.parametrize("batch, chunk", [(7, 5), (1, 1), (200, 100)])
def test_running_top_k_equals_brute_force(batch, chunk):
    rng = np.random.default_rng(0)
    queries, candidates = rng.normal(size=(23, 16)), rng.normal(size=(61, 16))
    top = neighbours.RunningTopK(queries.astype(np.float32), 4, query_chunk=chunk)
    for start in range(0, len(candidates), batch):
        top.add(candidates[start:start + batch].astype(np.float32))
    indices, distances = top.result()
    expected, expected_distances = _brute_force(queries, candidates, 4)
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(distances, expected_distances, rtol=1e-4, atol=1e-4)


def test_running_top_k_breaks_ties_towards_the_earlier_index():
    """Small integers: distances are exact, so ties are real and must go to the lower index."""
    rng = np.random.default_rng(1)
    queries = rng.integers(-2, 3, (30, 3)).astype(np.float16)  # float16, as collect() keeps them
    candidates = rng.integers(-2, 3, (90, 3)).astype(np.float32)
    top = neighbours.RunningTopK(queries, 6, query_chunk=4)
    for start in range(0, 90, 11):
        top.add(candidates[start:start + 11])
    expected, _ = _brute_force(queries, candidates, 6)
    np.testing.assert_array_equal(top.result()[0], expected)


def test_running_top_k_needs_k_candidates():
    top = neighbours.RunningTopK(np.zeros((2, 3), np.float32), 5)
    top.add(np.ones((4, 3), np.float32))
    with pytest.raises(ValueError, match="only 4 candidates for k=5"):
        top.result()


def test_collect_keeps_float16_unless_it_overflows():
    small = [(np.full((2, 3), 1.5, np.float32), np.array([0, 1]))]
    features, labels = neighbours.collect(small)
    assert features.dtype == np.float16 and labels.tolist() == [0, 1]
    large = small + [(np.full((1, 3), 1e6, np.float32), np.array([2]))]
    features, _ = neighbours.collect(large)
    assert features.dtype == np.float32 and features[-1, 0] == 1e6 and features[0, 0] == 1.5


def test_chroma_is_zero_for_grey_kernels_and_grows_with_colour():
    rng = np.random.default_rng(0)
    grey = np.repeat(rng.normal(size=(11, 11, 1, 4)), 3, axis=2)
    np.testing.assert_allclose(figures.chroma(grey), 0, atol=1e-12)
    one_channel = np.zeros((11, 11, 3, 1))
    one_channel[:, :, 0] = rng.normal(size=(11, 11, 1))
    np.testing.assert_allclose(figures.chroma(one_channel), np.sqrt(2 / 3))
    opponent = np.zeros((5, 5, 3, 1))
    opponent[:, :, 0], opponent[:, :, 1] = 1.0, -1.0  # red against green: no grey at all
    np.testing.assert_allclose(figures.chroma(opponent), 1.0)
    tinted = grey + 0.3 * rng.normal(size=grey.shape)
    assert np.all(figures.chroma(tinted) > 0.1)


def test_chance_and_precision_on_known_labels():
    train = np.array([0] * 6 + [1] * 3 + [2])  # shares 0.6, 0.3, 0.1
    val = np.array([0, 1, 1, 2])                # shares 0.25, 0.5, 0.25
    assert neighbours.chance_precision(train, val, 4) == pytest.approx(0.6 * .25 + .3 * .5 + .1 * .25)
    neighbour_labels = np.array([[0, 0], [1, 2], [0, 0], [2, 2]])
    assert neighbours.same_class_precision(neighbour_labels, val) == pytest.approx((2 + 1 + 0 + 2) / 8)


@pytest.mark.parametrize("towers, n", [(2, 96), (1, 12), (1, 13)])
def test_kernel_figure_splits_into_halves_and_labels_them(towers, n, tmp_path):
    kernels = np.random.default_rng(0).normal(size=(11, 11, 3, n)).astype(np.float32)
    kernels[..., : n // 2] = kernels[..., :1, : n // 2]  # the first half grey
    colour = figures.plot_kernels(kernels, towers, str(tmp_path / "k.png"))
    assert colour["kernels"] == [n // 2, n - n // 2]
    assert colour["tower1"] == pytest.approx(0, abs=1e-4) and colour["tower2"] > 0.5
    assert colour["split"] == ("towers" if towers == 2 else "halves (towers=1)")
    labels = [name for name, _ in figures.kernel_blocks(kernels, towers)]
    assert labels[0].startswith("tower 1: conv1 kernels 0-47" if towers == 2 else "half 1")
    with Image.open(tmp_path / "k.png") as image:
        assert image.format == "PNG"


def test_epoch_curves_weight_windows_keep_the_last_repeat_and_mark_drops(tmp_path):
    events = [
        {"event": "train", "step": 2, "epoch": 0.5, "top1_error": 0.9},
        {"event": "train", "step": 3, "epoch": 0.75, "top1_error": 0.1},  # lost to kill -9...
        {"event": "train", "step": 3, "epoch": 0.75, "top1_error": 0.6},  # ...and redone
        {"event": "train", "step": 4, "epoch": 1.0, "top1_error": 0.6},
        {"event": "eval", "step": 4, "epoch": 1, "top1_error": 0.5},
        {"event": "lr_reduced", "step": 4, "epoch": 1, "learning_rate": 0.001},
        {"event": "train", "step": 8, "epoch": 2.0, "top1_error": 0.4},
        {"event": "eval", "step": 8, "epoch": 2, "top1_error": 0.3},
    ]
    curves = figures.epoch_curves(events)
    assert curves["train_windows"] == ([0.5, 0.75, 1.0, 2.0], [0.9, 0.6, 0.6, 0.4])
    epochs, errors = curves["train_epochs"]
    assert epochs == [1, 2]
    assert errors == pytest.approx([(2 * 0.9 + 0.6 + 0.6) / 4, 0.4])
    assert curves["val"] == ([1, 2], [0.5, 0.3])
    assert curves["lr_drops"] == [(1, 0.001)]
    figures.plot_curves(events, str(tmp_path / "c.png"))
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_pick_queries_prefers_distinct_classes():
    assert figures.pick_queries([0, 0, 1, 1, 2], 3) == [0, 2, 4]
    assert figures.pick_queries([0, 0, 1], 3) == [0, 2, 1]


def test_the_run_curves_come_from_metrics_jsonl(trained, tmp_path):
    events = workdir_lib.read_events(trained["workdir"])
    curves = figures.plot_curves(events, str(tmp_path / "c.png"))
    assert curves["val"][0] == [1, 2]
    assert [epoch for epoch, _ in curves["lr_drops"]] == [2]  # min_delta 1: no epoch improves


def test_bad_workdir_is_one_clear_sentence(tmp_path):
    done = _bin_report(f"--workdir={tmp_path / 'nothing'}", f"--out={tmp_path / 'out'}", check=False)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("bin/report")]
    assert lines == [f"bin/report: error: {tmp_path / 'nothing' / 'config.json'}: no config.json; "
                     f"is {tmp_path / 'nothing'} a training workdir?"]


def test_other_bad_input_is_named(trained, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(ValueError, match="--out=.* is a file"):
        figures.write_report(trained["workdir"], str(a_file), stream=None)
    with pytest.raises(ValueError, match="--num_top5=0 must be at least 1"):
        figures.write_report(trained["workdir"], str(tmp_path / "o"), num_top5=0, stream=None)
    with pytest.raises(FileNotFoundError, match="data folder .*missing does not exist"):
        figures.write_report(trained["workdir"], str(tmp_path / "o"),
                            data_dir=str(tmp_path / "missing"), stream=None)
    no_events = tmp_path / "no_events"
    os.makedirs(no_events)
    for name in ("config.json", "best"):
        os.symlink(os.path.join(trained["workdir"], name), no_events / name)
    with pytest.raises(FileNotFoundError, match="metrics.jsonl: no training events"):
        figures.write_report(str(no_events), str(tmp_path / "o"), stream=None)


def test_a_demo_run_finds_its_data_from_any_folder(trained, tmp_path):
    """The trainer records the demo's data_dir relative to where it ran; restore finds it anyway."""
    from keras_alexnet.runs import restore
    workdir = tmp_path / "demo_run"
    os.makedirs(workdir)
    config = json.loads((open(os.path.join(trained["workdir"], "config.json")).read()))
    config["input"].update(demo=True, data_dir="runs/elsewhere/demo_data")
    (workdir / "config.json").write_text(json.dumps(config))
    os.symlink(os.path.join(trained["workdir"], "best"), workdir / "best")
    os.symlink(trained["data_dir"], workdir / "demo_data")
    assert restore.restore_run(str(workdir)).data_dir == str(workdir / "demo_data")


# -- Figure 4, left: the top five classes -------------------------------------------------------

def _independent_top(model, data_dir, normalization="mean_image"):
    """Every validation image's (label, probabilities float64 [C]), from make_dataset's whole
    evaluation pass and a NumPy softmax of the logits: not top5.py's by-index reading."""
    dataset = input_pipeline.make_dataset(layout.shard_pattern(data_dir, "validation"), 64,
                                          training=False, stats=data_dir, repeat=False,
                                          image_size=int(model.input_shape[1]),
                                          normalization=normalization)
    labels, logits = [], []
    for images, batch_labels in dataset:
        logits.append(np.asarray(model(images, training=False), np.float64))
        labels.append(batch_labels.numpy())
    logits = np.concatenate(logits)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.concatenate(labels), p / p.sum(axis=1, keepdims=True)


def _check_rows(rows, indices, labels, probabilities, k):
    assert [r["validation"] for r in rows] == list(indices)
    for row in rows:
        i = row["validation"]
        expected = np.argsort(-probabilities[i], kind="stable")[:k]
        assert row["label"] == labels[i]
        assert row["classes"] == expected.tolist()
        np.testing.assert_allclose(row["probabilities"], probabilities[i][expected], rtol=1e-5, atol=1e-6)
        in_top = labels[i] in expected
        assert row["true_rank"] == (expected.tolist().index(labels[i]) if in_top else None)


def test_top5_of_the_trained_run_equals_an_independent_softmax(trained):
    from keras_alexnet.runs import restore
    run = restore.restore_run(trained["workdir"])
    labels, probabilities = _independent_top(run.model, trained["data_dir"])
    indices = top5.pick_images(labels, 7, seed=5)
    rows, patches = top5.top_classes(run, "validation", indices)
    _check_rows(rows, indices, labels, probabilities, k=3)  # 3 classes: 3 bars
    expected = neighbours.read_centre_patches(trained["data_dir"], "validation", indices, image_size=67)
    for i in indices:
        np.testing.assert_array_equal(patches[i], expected[i][0])


@pytest.fixture(scope="module")
def seven_classes(tmp_path_factory):
    """7 classes of smooth pictures (2 train, 3 validation each) and an untrained 7-class tiny
    network as a restored run: the true class is outside the top 5 for some images."""
    from keras_alexnet.runs import restore
    root = tmp_path_factory.mktemp("seven")
    classes = [f"n0{c}" for c in range(7)]
    data_dir = str(root / "data")
    for split, per_class, seed in (("train", 2, 0), ("validation", 3, 1)):
        folder = fx.image_folder(str(root / split), classes, per_class, size=(80, 80), seed=seed)
        fx.convert(folder, data_dir, split, num_shards=2, resize=80)
    model = fx.tiny_model(num_classes=7, init="glorot", seed=3)
    stats = stats_lib.load_stats(data_dir)
    run = restore.RestoredRun(model=model, config={"model": {}}, checkpoint_path="(in memory)",
                              data_dir=data_dir, synsets=classes, class_names=classes,
                              mean_image=stats.mean_image, std=np.ones(3), label_offset=0,
                              normalization="mean_image")
    return run


def test_top5_when_the_true_class_is_not_among_them(seven_classes, tmp_path):
    run = seven_classes
    labels, probabilities = _independent_top(run.model, run.data_dir)
    indices = list(range(len(labels)))[::-1]  # every image, in another order than the split's
    rows, patches = top5.top_classes(run, "validation", indices)
    _check_rows(rows, indices, labels, probabilities, k=5)
    ranks = [r["true_rank"] for r in rows]
    assert None in ranks and any(r is not None for r in ranks), ranks  # both cases occur
    containers = top5.plot_top5(rows, patches, run.class_names, str(tmp_path / "f.png"))
    _check_bars(rows, containers)
    with Image.open(tmp_path / "f.png") as image:
        assert image.format == "PNG" and np.asarray(image.convert("RGB")).std() > 10


def _check_bars(rows, containers):
    """The drawn bars: one per class shown, its length the probability, red iff the true class."""
    from matplotlib import colors
    assert len(containers) == len(rows)
    for row, bars in zip(rows, containers):
        assert [bar.get_width() for bar in bars] == pytest.approx(row["probabilities"])
        marked = [j for j, bar in enumerate(bars)
                  if colors.same_color(bar.get_facecolor(), top5.TRUE_COLOUR)]
        assert marked == ([] if row["true_rank"] is None else [row["true_rank"]])
        assert all(colors.same_color(bar.get_facecolor(), top5.OTHER_COLOUR)
                   for j, bar in enumerate(bars) if j not in marked)


def test_top5_rows_order_ties_and_the_true_rank(tmp_path):
    probabilities = np.array([[0.1, 0.3, 0.05, 0.3, 0.1, 0.05, 0.1],
                              [0.4, 0.2, 0.1, 0.1, 0.1, 0.05, 0.05]])
    rows = top5.top_k_rows([4, 9], probabilities, [3, 6])
    assert rows[0]["classes"] == [1, 3, 0, 4, 6] and rows[0]["true_rank"] == 1  # ties: lower first
    assert rows[1]["classes"] == [0, 1, 2, 3, 4] and rows[1]["true_rank"] is None
    assert rows[1]["probabilities"] == pytest.approx([0.4, 0.2, 0.1, 0.1, 0.1])
    patches = {4: np.zeros((8, 8, 3), np.uint8), 9: np.full((8, 8, 3), 200, np.uint8)}
    _check_bars(rows, top5.plot_top5(rows, patches, [f"class {c}" for c in range(7)],
                                     str(tmp_path / "f.png")))


def test_pick_images_is_seeded_and_takes_one_per_class_first():
    labels = [0] * 6 + [1] * 6 + [2] * 6
    picked = top5.pick_images(labels, 5, seed=0)
    assert picked == top5.pick_images(labels, 5, seed=0) and len(set(picked)) == 5
    assert sorted(labels[i] for i in picked[:3]) == [0, 1, 2]
    assert picked != top5.pick_images(labels, 5, seed=1)
    assert sorted(top5.pick_images(labels, 30, seed=0)) == list(range(18))  # all there are
    assert top5.distinct_classes_first(labels, 4, order=[17, 0, 1, 6]) == [17, 0, 6, 1]


def test_top5_of_a_missing_record_is_named(seven_classes):
    with pytest.raises(ValueError, match="the validation split has no record 500"):
        top5.top_classes(seven_classes, "validation", [0, 500])
