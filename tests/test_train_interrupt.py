"""Never lose a run: kill -9 then restart ends where an uninterrupted run ends; SIGTERM saves.

Both run training in a child process (bin/train or train_and_evaluate) and
interrupt it from here.
"""
import os
import signal
import subprocess
import sys

import pytest
import tensorflow as tf

from keras_alexnet.training.schedule import PlateauSchedule
from fixtures import REPO, demo_data_dir, read_events, start_training, tiny_config, wait_for

STEPS_PER_EPOCH = 6


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return demo_data_dir(str(tmp_path_factory.mktemp("tiny")))


def _state(workdir):
    step, epoch = tf.Variable(0, dtype=tf.int64), tf.Variable(0, dtype=tf.int64)
    schedule = PlateauSchedule(1.0)
    path = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    tf.train.Checkpoint(step=step, epoch=epoch, schedule=schedule).restore(path).expect_partial()
    return int(step), int(epoch), schedule.state()


@pytest.mark.slow
def test_sigkill_then_restart_ends_like_an_uninterrupted_run(data_dir, tmp_path):
    # A learning rate too small to change the predictions keeps the validation
    # error flat, so the schedule divides at epochs 2, 3 and 4 whatever the
    # batches: the interrupted run must carry that state through the restart.
    config = tiny_config(data_dir, {"num_epochs": 5, "eval.ten_crop": False,
                                    "checkpoint.every_steps": 2, "schedule.patience": 1,
                                    "optimizer.learning_rate": 1e-9})
    workdir = str(tmp_path / "work")
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
    assert step < 5 * STEPS_PER_EPOCH and epoch < 5  # really interrupted
    restarted = start_training(config, workdir)
    out, _ = restarted.communicate(timeout=300)
    assert restarted.returncode == 0, out[-3000:]
    step, epoch, schedule = _state(workdir)
    assert (step, epoch) == (5 * STEPS_PER_EPOCH, 5)
    assert schedule["reductions"] == 3
    assert schedule["learning_rate"] == pytest.approx(1e-9 * 1e-3)
    reductions = [e["epoch"] for e in read_events(workdir, "lr_reduced")]
    assert sorted(set(reductions)) == [2, 3, 4]


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
    try:
        wait_for(lambda: read_events(workdir, "train"), 300, proc, "training to start")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-3000:]
    preempted = read_events(workdir, "preempted")
    assert len(preempted) == 1
    step, _, _ = _state(workdir)
    assert step == preempted[0]["step"] > 0  # the checkpoint holds the step it stopped at
    assert "epoch 1/1000" in out  # the progress bar was shown
