"""Never lose a run: kill -9 then restart ends where an uninterrupted run ends; SIGTERM saves.

Both run training in a child process (bin/train or train_and_evaluate) and
interrupt it from here.
"""
import json
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
    out = _sigterm_once_training(proc, workdir)
    preempted = read_events(workdir, "preempted")
    assert len(preempted) == 1
    step, _, _ = _state(workdir)
    assert step == preempted[0]["step"] > 0  # the checkpoint holds the step it stopped at
    assert "epoch 1/1000" in out  # the progress bar was shown


# A run that sends itself a signal at a chosen point: inside the train step's Nth call (the
# worst case for the loop: the step was already under way), or in the Nth evaluation batch.
SIGNAL_RUNNER = r"""
import json, os, signal, sys, time
import ml_collections
from keras_alexnet.training import steps, train
config_path, workdir, out, signame, where, call = sys.argv[1:]
config = ml_collections.ConfigDict(json.load(open(config_path)))
calls, sent = [], {}

def send():
    sent["time"] = time.time()
    os.kill(os.getpid(), getattr(signal, signame))

def wrapping(make):
    def make_wrapped(*args, **kwargs):
        step = make(*args, **kwargs)
        def wrapped(*a, **k):
            result = step(*a, **k)
            calls.append(1)
            if len(calls) == int(call):
                send()
            return result
        return wrapped
    return make_wrapped

if where == "train":
    steps.make_train_step = wrapping(steps.make_train_step)
else:
    steps.make_eval_step = wrapping(steps.make_eval_step)
result = train.train_and_evaluate(config, workdir)
json.dump(dict(result=result, sent=sent.get("time"), ended=time.time()), open(out, "w"))
"""


def _run_with_signal(config, workdir, tmp_path, signame, where, call):
    config_path = tmp_path / "signal-config.json"
    config_path.write_text(config.to_json())
    out = tmp_path / "signal-result.json"
    proc = subprocess.run([sys.executable, "-c", SIGNAL_RUNNER, str(config_path), workdir, str(out),
                           signame, where, str(call)], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
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
