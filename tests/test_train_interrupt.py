"""Never lose a run: kill -9 then restart ends where an uninterrupted run ends; SIGTERM saves.

Both run training in a child process (bin/train or train_and_evaluate) and
interrupt it from here.
"""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet.training.schedule import PlateauSchedule
from fixtures import (REPO, child, convert, encode, read_events, start_training,
                      tiny_config, wait_for, write)

STEPS_PER_EPOCH = 6


def _sigterm_once_training(proc, workdir, before=None):
    """SIGTERM to a bin/train process once it has trained a step (before() first); its output,
    after asserting that it exited cleanly. The process is killed if anything fails."""
    try:
        wait_for(lambda: read_events(workdir, "train"), 300, proc, "training to start")
        if before is not None:
            before()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-3000:]
    return out


def _state(workdir):
    """Step, epoch and schedule of the checkpoint a rerun resumes from (the newest readable)."""
    from keras_alexnet.training import workdir as workdir_lib
    step, epoch = tf.Variable(0, dtype=tf.int64), tf.Variable(0, dtype=tf.int64)
    schedule = PlateauSchedule(1.0)

    class Partial(tf.train.Checkpoint):  # the model and optimizer entries are not needed here
        def restore(self, path):
            return super().restore(path).expect_partial()

    workdir_lib.restore_latest(Partial(step=step, epoch=epoch, schedule=schedule), workdir,
                               write=False, stream=None)
    return int(step), int(epoch), schedule.state()


def _flat_colour_data(root):
    """3 classes of 4 flat-coloured images stored at 67 pixels, the crop size.

    Every training crop and flip of such an image is the image itself, and with lighting
    off, a batch of the whole training set holds the same 12 examples whatever the seed
    that shuffles them: a resumed run (which reshuffles from a seed of its step) trains
    on what an uninterrupted run trains on, in another order within the batch.
    """
    colours = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]
    for split, folder in (("train", "train"), ("validation", "val")):
        for c, colour in enumerate(colours):
            for i in range(4):
                shade = np.array(colour, np.uint8) + np.uint8(8 * i)
                write(os.path.join(root, "images", folder, f"n0{c}", f"{i}.JPEG"),
                      encode(np.full((67, 67, 3), shade, np.uint8)))
        convert(os.path.join(root, "images", folder), os.path.join(root, "data"), split,
                num_shards=2, resize=67)
    return os.path.join(root, "data")


def _weights(workdir, config):
    """The model weights and momentum slots of a workdir's newest checkpoint."""
    from keras_alexnet.training import loop, workdir as workdir_lib
    state = loop.build(config, tf.distribute.get_strategy(), "float32")
    workdir_lib.restore_latest(state.checkpoint, workdir, write=False, stream=None)
    return [v.numpy() for v in state.model.weights + list(state.optimizer.momentums)]


@pytest.mark.slow
def test_sigkill_then_restart_ends_like_an_uninterrupted_run(tmp_path):
    """Killed in its fourth epoch and restarted, a run ends at the step, epoch, schedule,
    weights and momentum of the same run uninterrupted.

    Not bit-identical: the restarted run shuffles from a seed of its step (so that it does
    not replay batches), which here only reorders the one batch of every epoch (see
    _flat_colour_data), and a sum in another order rounds differently in float32. Measured
    once (CPU, float32): at most 3e-8 apart, 1.3e-7 of the largest weight, where training
    moved them by up to 0.17; the tolerance below is 1e-5 of the largest weight.
    """
    data_dir = _flat_colour_data(str(tmp_path))
    # One step an epoch (a batch of all 12 images), no dropout (its masks follow the order
    # within the batch), a learning rate that moves the weights, a checkpoint every step.
    config = tiny_config(data_dir, {"num_epochs": 8, "eval.ten_crop": False, "batch_size": 12,
                                    "checkpoint.every_steps": 1, "schedule.patience": 1,
                                    "model.dropout": 0.0, "input.lighting_std": 0.0,
                                    "optimizer.learning_rate": 0.01})
    workdir, reference = str(tmp_path / "work"), str(tmp_path / "uninterrupted")
    proc = start_training(config, workdir)
    try:
        wait_for(lambda: any(e["epoch"] >= 3 for e in read_events(workdir, "eval")), 300, proc,
                 "the third epoch's evaluation")
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    step, epoch, _ = _state(workdir)
    assert step < 8 and epoch < 8  # really interrupted
    for run in (start_training(config, workdir), start_training(config, reference)):
        out, _ = run.communicate(timeout=300)
        assert run.returncode == 0, out[-3000:]
    assert _state(workdir) == _state(reference)
    assert _state(workdir)[:2] == (8, 8)
    restarted, uninterrupted = _weights(workdir, config), _weights(reference, config)
    initial = _weights(str(tmp_path / "fresh"), config)
    assert max(np.max(np.abs(a - b)) for a, b in zip(uninterrupted, initial)) > 1e-2  # they moved
    for a, b in zip(restarted, uninterrupted):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * max(np.max(np.abs(b)), 1e-3))


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_cleanly(data_dir, tmp_path):
    workdir = str(tmp_path / "work")
    args = [sys.executable, os.path.join(REPO, "bin", "train"), "--config",
            os.path.join(REPO, "configs", "demo.py"), f"--workdir={workdir}",
            f"--config.input.data_dir={data_dir}", "--config.model.num_classes=3",
            "--config.model.width=0.125", "--config.model.fc_units=32",
            "--config.batch_size=8", "--config.eval.batch_size=8", "--config.num_epochs=1000",
            "--config.checkpoint.every_steps=100000", "--config.progress=lines"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    out = _sigterm_once_training(proc, workdir)
    preempted = read_events(workdir, "preempted")
    assert len(preempted) == 1
    step, _, _ = _state(workdir)
    assert step == preempted[0]["step"] > 0  # the checkpoint holds the step it stopped at
    assert "epoch 1/1000" in out  # the progress bar was shown


def _run_with_signal(config, workdir, tmp_path, signame, where, call):
    config_path = tmp_path / "signal-config.json"
    config_path.write_text(config.to_json())
    out = tmp_path / "signal-result.json"
    proc = child("signal_run", config_path, workdir, out, signame, where, call, run=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("signame,call,saved_at", [
    ("SIGTERM", 3, 3),   # mid-epoch: saved at the step the signal came in, not one later
    ("SIGINT", 3, 3),    # Ctrl-C: the same, not a KeyboardInterrupt traceback
    ("SIGTERM", 6, 6),   # the epoch's last step: saved before the validation pass, skipping it
])
def test_a_signal_saves_within_the_step_it_arrives_in(data_dir, tmp_path, signame, call, saved_at):
    config = tiny_config(data_dir, {"num_epochs": 2, "eval.ten_crop": False,
                                    "checkpoint.every_steps": 1000})
    workdir = str(tmp_path / "work")
    run, stderr = _run_with_signal(config, workdir, tmp_path, signame, "train", call)
    assert run["result"] == {"status": "preempted", "step": saved_at, "epoch": 0}
    assert "Traceback" not in stderr and f"stopped by {signame} at step {saved_at}" in stderr
    assert _state(workdir)[:2] == (saved_at, 0)
    assert [e["step"] for e in read_events(workdir, "preempted")] == [saved_at]
    assert read_events(workdir, "eval") == []  # no validation pass after the signal
    if call == STEPS_PER_EPOCH:
        # The resumed run does the skipped validation first, then the second epoch.
        resumed = start_training(config, workdir)
        out, _ = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, out[-3000:]
        assert [(e["epoch"], e["step"]) for e in read_events(workdir, "eval")] == [
            (1, STEPS_PER_EPOCH), (2, 2 * STEPS_PER_EPOCH)]
        assert _state(workdir)[:2] == (2 * STEPS_PER_EPOCH, 2)


@pytest.mark.slow
def test_a_signal_during_validation_stops_it_and_resume_redoes_it(data_dir, tmp_path):
    config = tiny_config(data_dir, {"num_epochs": 1, "eval.ten_crop": False,
                                    "checkpoint.every_steps": 1000})
    workdir = str(tmp_path / "work")
    run, _ = _run_with_signal(config, workdir, tmp_path, "SIGTERM", "eval", 1)
    assert run["result"] == {"status": "preempted", "step": STEPS_PER_EPOCH, "epoch": 0}
    assert read_events(workdir, "eval") == []
    assert read_events(workdir, "preempted")[0]["where"] == "during validation"
    resumed = start_training(config, workdir)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out[-3000:]
    assert [e["epoch"] for e in read_events(workdir, "eval")] == [1]
    assert _state(workdir)[:2] == (STEPS_PER_EPOCH, 1)


@pytest.mark.slow
def test_a_second_training_in_the_same_workdir_is_refused(data_dir, tmp_path):
    from keras_alexnet.training import train, workdir as workdir_lib
    config = tiny_config(data_dir, {"num_epochs": 1000, "checkpoint.every_steps": 100000})
    workdir = str(tmp_path / "work")
    first = start_training(config, workdir)

    def refused():
        with pytest.raises(workdir_lib.WorkdirError, match=rf"in use by another training \(pid "
                                                           rf"{first.pid} "):
            train.train_and_evaluate(config, workdir)

    _sigterm_once_training(first, workdir, before=refused)
    assert len(read_events(workdir, "preempted")) == 1  # the first run, undisturbed
