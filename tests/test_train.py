"""train_and_evaluate in-process on tiny TFRecords: layout, resume, metrics, precision, errors."""
import glob
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet import config as config_lib
from keras_alexnet import model as model_lib
from keras_alexnet.benchmarks import model as bench_model
from keras_alexnet.training import steps
from keras_alexnet.training import loop, train
from fixtures import read_events, tiny_config

STEPS_PER_EPOCH = 6  # 48 training images, batch 8


@pytest.fixture(scope="module")
def finished_run(data_dir, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("run") / "work")
    result = train.train_and_evaluate(tiny_config(data_dir), workdir)
    return workdir, result


def _latest_state(workdir):
    step, epoch = tf.Variable(0, dtype=tf.int64), tf.Variable(0, dtype=tf.int64)
    ckpt = tf.train.Checkpoint(step=step, epoch=epoch)
    ckpt.restore(tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))).expect_partial()
    return int(step), int(epoch)


def test_workdir_layout_and_metrics(finished_run):
    workdir, result = finished_run
    assert result["status"] == "done" and result["step"] == 2 * STEPS_PER_EPOCH
    for name in ("config.json", "checkpoints/checkpoint", "best/checkpoint", "metrics.jsonl"):
        assert os.path.exists(os.path.join(workdir, name)), name
    assert glob.glob(os.path.join(workdir, "tensorboard", "events.out.tfevents.*"))
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["model"]["width"] == 0.125
    assert _latest_state(workdir) == (2 * STEPS_PER_EPOCH, 2)

    evals = read_events(workdir, "eval")
    assert [e["epoch"] for e in evals] == [1, 2]
    assert all(0 <= e["top1_error"] <= 1 and e["top5_error"] <= e["top1_error"] for e in evals)
    assert all(e["num_images"] == 18 for e in evals)  # every validation image, once
    train_events = read_events(workdir, "train")
    assert {"loss", "top1_error", "learning_rate", "images_per_sec"} <= set(train_events[0])
    final = read_events(workdir, "final")[0]
    assert final["split"] == "validation"
    for key in ("centre_top1_error", "centre_top5_error", "ten_crop_top1_error", "ten_crop_top5_error"):
        assert 0 <= final[key] <= 1
    assert result["validation"]["centre_top1_error"] == final["centre_top1_error"]


def _tensorboard_logs(workdir):
    """WORKDIR/tensorboard as TensorBoard reads it (its plugin event accumulator)."""
    from tensorboard.backend.event_processing import plugin_event_accumulator
    accumulator = plugin_event_accumulator.EventAccumulator(
        os.path.join(workdir, "tensorboard"), size_guidance={"tensors": 0})
    return accumulator.Reload()


def test_tensorboard_has_scalars_and_conv1_kernels(finished_run):
    workdir, _ = finished_run
    logs = _tensorboard_logs(workdir)
    scalars = set(logs.PluginTagToContent("scalars"))
    assert {"train/loss", "train/top1_error", "train/learning_rate", "train/images_per_sec",
            "eval/top1_error", "eval/top5_error", "final/centre_top1_error",
            "final/ten_crop_top1_error", "final/ten_crop_top5_error"} <= scalars
    # The same values as metrics.jsonl, at the same steps.
    evals = read_events(workdir, "eval")
    logged = [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in logs.Tensors("eval/top1_error")]
    assert [step for step, _ in logged] == [e["step"] for e in evals]
    np.testing.assert_allclose([v for _, v in logged], [e["top1_error"] for e in evals], rtol=1e-6)
    final = read_events(workdir, "final")[0]
    (ten_crop,) = logs.Tensors("final/ten_crop_top1_error")
    assert float(tf.make_ndarray(ten_crop.tensor_proto)) == pytest.approx(final["ten_crop_top1_error"])

    assert set(logs.PluginTagToContent("images")) == {"conv1_kernels"}
    images = logs.Tensors("conv1_kernels")
    assert [e.step for e in images] == [e["step"] for e in evals]  # one a validation
    width, height, png = tf.make_ndarray(images[-1].tensor_proto)
    image = tf.io.decode_png(png).numpy()
    assert image.shape == (int(height), int(width), 3)
    # conv1 of the tiny model: 12 kernels 11x11 in a grid with one-pixel borders.
    assert image.shape[0] > 11 and image.shape[1] > 11 and image.std() > 0


@pytest.mark.slow
def test_tensorboard_command_serves_the_run(finished_run):
    """README's `tensorboard --logdir WORKDIR/tensorboard`, with the installed command."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    workdir, _ = finished_run
    command = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    assert os.path.exists(command), "tensorboard is a dependency: pip install -e . installs it"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([command, "--logdir", os.path.join(workdir, "tensorboard"),
                               "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def get(path):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return json.loads(response.read())

    try:
        scalars = {}
        deadline = time.time() + 120
        while "eval/top1_error" not in scalars.get(".", {}) and time.time() < deadline:
            assert server.poll() is None, server.stderr.read()[-2000:]
            try:
                scalars = get("/data/plugin/scalars/tags")
            except OSError:
                pass
            time.sleep(1)
        assert {"train/loss", "eval/top1_error", "final/ten_crop_top1_error"} <= set(scalars["."])
        assert "conv1_kernels" in get("/data/plugin/images/tags")["."]
        values = get("/data/plugin/scalars/scalars?run=.&tag=eval/top1_error")
        assert [step for _, step, _ in values] == [e["step"] for e in read_events(workdir, "eval")]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_checkpoint_restores_into_a_fresh_model(finished_run):
    """The export's way (model only) restores every weight the trainer's way (with optimizer) does."""
    workdir, _ = finished_run
    with open(os.path.join(workdir, "config.json")) as f:
        model_kwargs = json.load(f)["model"]
    for folder in ("checkpoints", "best"):
        path = tf.train.latest_checkpoint(os.path.join(workdir, folder))
        alone = model_lib.build_model(dict(model_kwargs, seed=123))
        tf.train.Checkpoint(model=alone).restore(path).expect_partial().assert_existing_objects_matched()
        full = model_lib.build_model(model_kwargs)
        optimizer = keras.optimizers.SGD(momentum=0.9)
        optimizer.build(full.trainable_variables)
        tf.train.Checkpoint(model=full, optimizer=optimizer).restore(path).expect_partial()
        for a, b in zip(alone.weights, full.weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_rerun_resumes_and_extends_exactly(finished_run, data_dir):
    workdir, _ = finished_run
    # The same command on a finished run trains no further.
    again = train.train_and_evaluate(tiny_config(data_dir), workdir)
    assert again["step"] == 2 * STEPS_PER_EPOCH
    # More epochs continue from the last checkpoint to the same place a 3-epoch run ends.
    longer = train.train_and_evaluate(tiny_config(data_dir, {"num_epochs": 3}), workdir)
    assert longer["step"] == 3 * STEPS_PER_EPOCH
    assert _latest_state(workdir) == (3 * STEPS_PER_EPOCH, 3)
    assert [e["epoch"] for e in read_events(workdir, "eval")] == [1, 2, 3]


def test_workdir_of_a_different_config_is_refused(finished_run, data_dir):
    workdir, _ = finished_run
    before = open(os.path.join(workdir, "config.json")).read()
    with pytest.raises(config_lib.ConfigError, match="optimizer.learning_rate"):
        train.train_and_evaluate(tiny_config(data_dir, {"optimizer.learning_rate": 0.5}), workdir)
    assert open(os.path.join(workdir, "config.json")).read() == before


def test_final_evaluation_shows_progress_with_rate_and_eta(data_dir, tmp_path, capsys):
    """bin/train's last passes (centre, ten crops) on the one progress bar, sized by the split."""
    from keras_alexnet.training import reporting
    config = tiny_config(data_dir, {"progress": "lines"})
    strategy = tf.distribute.get_strategy()
    state = loop.build(config, strategy, "float32")
    run = train.prepare_run(state, config, strategy, train.check_data(config), str(tmp_path),
                            reporting.Reporter(str(tmp_path)))
    results = train.final_evaluation(state, config, run)
    assert results["validation"]["num_images"] == 18
    lines = capsys.readouterr().err.splitlines()
    # Centre: batches of eval.batch_size 8; ten crops: 8 // 10 -> one image a step.
    for what, first in (("centre", 8), ("ten crops", 1)):
        mine = [line for line in lines if line.startswith(f"final validation {what} ")]
        assert mine[0].startswith(f"final validation {what} {first}/18 [")
        assert "img/s" in mine[0] and "ETA " in mine[0] and "top1_error" in mine[0]
        assert mine[-1].startswith(f"final validation {what} 18/18 [=") and "took " in mine[-1]


def test_loss_goes_down_on_a_learnable_dataset(data_dir, tmp_path):
    config = tiny_config(data_dir, {"num_epochs": 8, "model.dropout": 0.0, "eval.ten_crop": False,
                                    "checkpoint.every_steps": 1000,
                                    "log_every_steps": STEPS_PER_EPOCH,
                                    "optimizer.learning_rate": 0.005})
    train.train_and_evaluate(config, str(tmp_path / "work"))
    events = read_events(str(tmp_path / "work"), "train")
    losses = [e["loss"] for e in events]
    errors = [e["top1_error"] for e in events]
    assert len(losses) == 8  # one per epoch
    assert np.mean(losses[-2:]) < 0.8 * losses[0], losses
    assert np.mean(errors[-2:]) < np.mean(errors[:2]), errors


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains(data_dir, tmp_path, precision):
    config = tiny_config(data_dir, {"num_epochs": 1, "precision": precision, "eval.ten_crop": False})
    result = train.train_and_evaluate(config, str(tmp_path / "work"))
    assert result["step"] == STEPS_PER_EPOCH
    losses = [e["loss"] for e in read_events(str(tmp_path / "work"), "train")]
    assert losses and all(np.isfinite(losses))
    # Variables stay float32 under mixed precision; the checkpoint loads into a float32 model.
    keras.mixed_precision.set_global_policy("float32")
    model = model_lib.build_model(config.model)
    path = tf.train.latest_checkpoint(str(tmp_path / "work" / "checkpoints"))
    tf.train.Checkpoint(model=model).restore(path).expect_partial().assert_existing_objects_matched()


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(data_dir, tmp_path, monkeypatch):
    real_make_train_step = steps.make_train_step

    def poisoned(model, *args, **kwargs):
        """The real step; at the 5th call the weights and the loss turn NaN (as in a divergence)."""
        step, calls = real_make_train_step(model, *args, **kwargs), []

        def wrapper(iterator, stop, *rest):
            loss, correct, stop_all = step(iterator, stop, *rest)
            calls.append(1)
            if len(calls) == 5:
                kernel = model.get_layer("fc8").kernel
                kernel.assign(np.full(kernel.shape, np.nan, np.float32))
                loss = tf.constant(np.nan)
            return loss, correct, stop_all
        return wrapper

    monkeypatch.setattr(steps, "make_train_step", poisoned)
    workdir = str(tmp_path / "work")
    # The host reads the loss every log_every_steps (2 here): the NaN of step 5 is seen at step 6,
    # before the checkpoint due there.
    with pytest.raises(train.NonFiniteLossError, match=r"non-finite training loss .* in steps 5-6"):
        train.train_and_evaluate(tiny_config(data_dir, {"checkpoint.every_steps": 2}), workdir)
    assert [e["step"] for e in read_events(workdir, "diverged")] == [6]
    latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    assert latest.endswith("ckpt-4")  # the last good one; nothing saved after the NaN
    model = model_lib.build_model(tiny_config(data_dir).model)
    tf.train.Checkpoint(model=model).restore(latest).expect_partial()
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())


def test_weight_decay_is_the_papers_update_rule():
    """v <- 0.9 v - 0.0005 lr w - lr grad; w <- w + v, on the kernel only (not the bias)."""
    lr, momentum, decay, batch = 0.1, 0.9, 0.05, 4  # a large decay makes a wrong rule visible
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, 5)).astype(np.float32)
    y = rng.integers(0, 3, batch).astype(np.int32)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, bias_initializer="ones")])
    assert [v.path for v in steps.decayed_variables(model)] == ["sequential/dense/kernel"]
    config = tiny_config("/unused")
    config.optimizer.update(learning_rate=lr, momentum=momentum, weight_decay=decay)
    optimizer = steps.make_optimizer(config, "float32")
    optimizer.build(model.trainable_variables)
    strategy = tf.distribute.get_strategy()
    step = steps.make_train_step(model, optimizer, strategy, global_batch_size=batch,
                                 weight_decay=decay)
    w, b = (v.numpy().astype(np.float64) for v in model.trainable_variables)
    vw, vb = np.zeros_like(w), np.zeros_like(b)
    iterator = iter(tf.data.Dataset.from_tensors((x, y)).repeat())
    for _ in range(3):
        logits = x @ w + b
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        dlogits = (p - np.eye(3)[y]) / batch
        gw, gb = x.T @ dlogits, dlogits.sum(0)
        vw = momentum * vw - decay * lr * w - lr * gw
        vb = momentum * vb - lr * gb  # biases are not decayed
        w, b = w + vw, b + vb
        step(iterator, tf.constant(0.0))
    np.testing.assert_allclose(model.trainable_variables[0].numpy(), w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.trainable_variables[1].numpy(), b, rtol=1e-5, atol=1e-6)


def test_training_accuracy_counts_a_tie_as_a_miss_as_validation_does():
    """A dead network (every logit equal) has no correct prediction in training either."""
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(
        3, kernel_initializer="zeros", bias_initializer="zeros")])
    config = tiny_config("/unused")
    config.optimizer.update(learning_rate=1e-9, weight_decay=0.0)
    optimizer = steps.make_optimizer(config, "float32")
    optimizer.build(model.trainable_variables)
    step = steps.make_train_step(model, optimizer, tf.distribute.get_strategy(),
                                 global_batch_size=4, weight_decay=0.0)
    labels = np.zeros(4, np.int32)  # argmax of equal logits is class 0: a "hit" by argmax
    iterator = iter(tf.data.Dataset.from_tensors((np.ones((4, 5), np.float32), labels)).repeat())
    _, correct, _ = step(iterator, tf.constant(0.0))
    assert float(correct) == 0.0


class GradientDtypes(steps.PaperMomentum):
    """PaperMomentum noting the dtype of every gradient its update receives."""

    dtypes = []

    def update_step(self, gradient, variable, learning_rate):
        self.dtypes.append(gradient.dtype)
        super().update_step(gradient, variable, learning_rate)


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_paper_momentum_equals_sgd_on_the_l2_penalised_loss(precision):
    """PaperMomentum's fused update is Keras SGD on loss + wd/2 |w|^2 (the old train step),
    with and without momentum; under mixed_bfloat16 it takes the bfloat16 gradients without
    their cast to float32, with the same result; a weight_decay other than the optimizer's is
    refused."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, 6)).astype(np.float32)
    y = rng.integers(0, 4, 8).astype(np.int32)
    strategy = tf.distribute.get_strategy()
    GradientDtypes.dtypes = []
    for momentum in (0.9, 0.0):
        weights = []
        for optimizer in (GradientDtypes(0.05, momentum=momentum, weight_decay=0.01),
                          keras.optimizers.SGD(0.05, momentum=momentum)):
            keras.utils.set_random_seed(0)
            with bench_model.precision_policy(precision):
                model = keras.Sequential([keras.Input((6,)),
                                          keras.layers.Dense(5, activation="relu"),
                                          keras.layers.Dense(4, bias_initializer="ones")])
            optimizer.build(model.trainable_variables)
            step = steps.make_train_step(model, optimizer, strategy, global_batch_size=8,
                                         weight_decay=0.01)
            iterator = iter(tf.data.Dataset.from_tensors((x, y)).repeat())
            for _ in range(4):
                step(iterator, tf.constant(0.0))
            weights.append(model.get_weights())
        for fused, keras_sgd in zip(*weights):
            np.testing.assert_allclose(fused, keras_sgd, rtol=1e-5, atol=1e-6)
    expected = tf.bfloat16 if precision == "mixed_bfloat16" else tf.float32
    assert GradientDtypes.dtypes and set(GradientDtypes.dtypes) == {expected}
    with pytest.raises(ValueError, match="weight_decay=0.0005 but the optimizer applies 0.01"):
        steps.make_train_step(model, steps.PaperMomentum(0.05, weight_decay=0.01), strategy,
                              global_batch_size=8, weight_decay=0.0005)


@pytest.mark.parametrize("change,message", [
    ({"input.data_dir": "/nonexistent/tfrecords"}, "config.input.data_dir"),
    ({"input.eval_split": "test"}, r"config.input.eval_split='test': no TFRecord shards"),
    ({"model.num_classes": 5}, r"config.model.num_classes=5 does not match the 3 classes"),
    ({"model.image_size": 99}, r"config.model.image_size=99 is larger than the stored images"),
    ({"distribution.strategy": "tpu"}, "config.distribution.strategy"),
    ({"precision": "int8"}, "config.precision"),
])
def test_bad_config_fails_fast_naming_the_field(data_dir, tmp_path, change, message):
    workdir = tmp_path / "work"
    with pytest.raises((config_lib.ConfigError, FileNotFoundError), match=message):
        train.train_and_evaluate(tiny_config(data_dir, change), str(workdir))
    assert not (workdir / "config.json").exists()  # nothing written


@pytest.fixture(scope="module")
def one_epoch_run(data_dir, tmp_path_factory):
    """A finished 1-epoch run with checkpoints at steps 2, 4 and 6 (copied by the tests below)."""
    workdir = str(tmp_path_factory.mktemp("one") / "work")
    config = tiny_config(data_dir, {"num_epochs": 1, "eval.ten_crop": False,
                                    "checkpoint.every_steps": 2})
    train.train_and_evaluate(config, workdir)
    return config, workdir


def _copy(workdir, tmp_path):
    import shutil
    copy = str(tmp_path / "work")
    shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns(".lock"))
    return copy


def test_training_resumes_from_the_newest_readable_checkpoint(one_epoch_run, tmp_path, capsys):
    config, original = one_epoch_run
    workdir = _copy(original, tmp_path)
    latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    assert latest.endswith("ckpt-6")
    with open(latest + ".index", "r+b") as f:
        f.truncate(20)  # corrupt
    result = train.train_and_evaluate(tiny_config(config.input.data_dir, {
        "num_epochs": 2, "eval.ten_crop": False, "checkpoint.every_steps": 2}), workdir)
    err = capsys.readouterr()
    assert "checkpoints/ckpt-6 is unreadable" in err.err and "Resuming from" in err.err
    # best/ holds the same step 6 (saved at the epoch's end): the newest readable one.
    assert "best/ckpt-6 at step 6, epoch 1" in err.out
    assert result["step"] == 2 * STEPS_PER_EPOCH
    assert _latest_state(workdir) == (2 * STEPS_PER_EPOCH, 2)


def test_a_run_without_readable_checkpoints_is_refused_not_restarted(one_epoch_run, tmp_path):
    import shutil
    config, original = one_epoch_run
    workdir = _copy(original, tmp_path)
    shutil.rmtree(os.path.join(workdir, "checkpoints"))
    shutil.rmtree(os.path.join(workdir, "best"))
    before = {name: open(os.path.join(workdir, name)).read() for name in ("config.json", "metrics.jsonl")}
    with pytest.raises(config_lib.ConfigError, match="holds a run that saved checkpoints, but none "
                                                     "can be read"):
        train.train_and_evaluate(config, workdir)
    assert {name: open(os.path.join(workdir, name)).read() for name in before} == before
    assert not os.path.exists(os.path.join(workdir, "checkpoints", "checkpoint"))


def test_relative_paths_work_from_anywhere_and_a_moved_workdir_resumes_and_exports(
        one_epoch_run, tmp_path, monkeypatch):
    import shutil
    from keras_alexnet.serving import export
    config, _ = one_epoch_run
    data_dir = config.input.data_dir
    os.symlink(data_dir, tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    relative = tiny_config("data", {"num_epochs": 1, "eval.ten_crop": False})
    train.train_and_evaluate(relative, "runs/a")  # both paths relative to this directory
    with open(os.path.join("runs", "a", "config.json")) as f:
        assert json.load(f)["input"]["data_dir"] == str(tmp_path / "data")
    shutil.move(str(tmp_path / "runs" / "a"), str(tmp_path / "moved"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    workdir = str(tmp_path / "moved")
    # The same run, asked for from another directory by absolute path: resumed, not refused.
    longer = train.train_and_evaluate(
        tiny_config(str(tmp_path / "data"), {"num_epochs": 2, "eval.ten_crop": False}), workdir)
    assert longer["step"] == 2 * STEPS_PER_EPOCH
    path = export.export_from_workdir(workdir, "models", num_warmup_images=1)
    assert os.path.exists(os.path.join(path, "saved_model.pb"))


def test_a_truncated_shard_is_named(data_dir, tmp_path):
    import shutil
    copy = str(tmp_path / "data")
    shutil.copytree(data_dir, copy)
    shard = os.path.join(copy, "train-00001-of-00002")
    with open(shard, "r+b") as f:
        f.truncate(os.path.getsize(shard) - 1000)
    with pytest.raises(config_lib.ConfigError, match=f"{shard}: cut short"):
        train.train_and_evaluate(tiny_config(copy, {"num_epochs": 1}), str(tmp_path / "work"))


def test_an_unknown_config_field_is_named(data_dir, tmp_path):
    config = tiny_config(data_dir)
    with config.unlocked():
        config.optimizer.learning_rat = 0.1  # a typo: silently ignored until now
    with pytest.raises(config_lib.ConfigError, match="config.optimizer.learning_rat: unknown field"):
        train.train_and_evaluate(config, str(tmp_path / "work"))
