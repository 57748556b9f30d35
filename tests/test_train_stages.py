"""The training loop's stages (training/loop.py), each called on its own as train.py calls them."""
import os

import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet import model as model_lib
from keras_alexnet.training import loop, reporting, train, workdir as workdir_lib
from fixtures import demo_data_dir, read_events, tiny_config, write_data_dir, write_workdir

STEPS_PER_EPOCH = 6  # tiny_config's 48 demo images, batch 8


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return demo_data_dir(str(tmp_path_factory.mktemp("stages")))


def _start(config, workdir, stopper=None):
    """build, initialize and prepare_run, as train._train runs them."""
    strategy = tf.distribute.get_strategy()
    state = loop.build(config, strategy, "float32")
    latest = loop.initialize(state, config, workdir)
    run = train.prepare_run(state, config, strategy, train.check_data(config), workdir,
                            reporting.Reporter(workdir), stopper)
    return state, run, latest


def test_build_then_initialize_a_fresh_workdir_keeps_the_fresh_initialization(data_dir, tmp_path):
    config = tiny_config(data_dir)
    workdir = str(tmp_path / "work")
    state = loop.build(config, tf.distribute.get_strategy(), "float32")
    assert state.manager is None and state.best_manager is None  # opened by initialize
    assert loop.initialize(state, config, workdir) is None
    assert (int(state.step), int(state.epoch), float(state.best_error)) == (0, 0, np.inf)
    fresh = model_lib.build_model(config.model)  # config.model.seed: the same initialization
    for a, b in zip(state.model.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert state.manager.directory == workdir_lib.checkpoints_dir(workdir)
    assert state.best_manager.directory == workdir_lib.best_dir(workdir)
    assert float(state.optimizer.learning_rate) == pytest.approx(config.optimizer.learning_rate)


def test_build_then_initialize_a_saved_workdir_resumes_it(tmp_path, capsys):
    data_dir = write_data_dir(str(tmp_path / "data"))
    workdir = str(tmp_path / "run")
    saved = write_workdir(workdir, data_dir)  # through build and initialize, saved at step 1
    config = ml_collections.ConfigDict(workdir_lib.read_config(workdir))
    state = loop.build(config, tf.distribute.get_strategy(), "float32")
    latest = loop.initialize(state, config, workdir)
    assert latest == os.path.join(workdir_lib.checkpoints_dir(workdir), "ckpt-1")
    assert int(state.step) == 1
    assert f"resumed from {latest} at step 1, epoch 0" in capsys.readouterr().out
    for a, b in zip(state.model.get_weights(), saved.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert state.manager.latest_checkpoint == latest


def test_train_epoch_stops_at_max_steps_and_saves(data_dir, tmp_path):
    config = tiny_config(data_dir, {"max_steps": 3, "checkpoint.every_steps": 1000})
    workdir = str(tmp_path / "work")
    state, run, _ = _start(config, workdir)
    assert loop.train_epoch(state, config, run) == "max_steps"
    assert (int(state.step), int(state.epoch)) == (3, 0)
    assert state.manager.latest_checkpoint.endswith("ckpt-3")
    assert [e["step"] for e in read_events(workdir, "checkpoint")] == [3]
    assert read_events(workdir, "eval") == []  # the epoch's validation is not run


def test_train_epoch_then_end_of_epoch_validate_and_save_best(data_dir, tmp_path):
    config = tiny_config(data_dir, {"checkpoint.every_steps": 1000})
    workdir = str(tmp_path / "work")
    state, run, _ = _start(config, workdir)
    assert loop.train_epoch(state, config, run) == "done"
    assert (int(state.step), int(state.epoch)) == (STEPS_PER_EPOCH, 0)
    assert read_events(workdir, "checkpoint") == []  # the epoch's end saves, not train_epoch
    assert loop.end_of_epoch(state, config, run) == "done"
    assert int(state.epoch) == 1 and np.isfinite(float(state.best_error))
    [evaluation] = read_events(workdir, "eval")
    assert evaluation["epoch"] == 1 and evaluation["top1_error"] == float(state.best_error)
    assert state.best_manager.latest_checkpoint.endswith(f"ckpt-{STEPS_PER_EPOCH}")
    assert state.manager.latest_checkpoint.endswith(f"ckpt-{STEPS_PER_EPOCH}")


def test_a_requested_stop_ends_train_epoch_after_one_call_saved(data_dir, tmp_path, capsys):
    config = tiny_config(data_dir, {"checkpoint.every_steps": 1000})
    workdir = str(tmp_path / "work")
    stopper = train._Stopper()  # not entered: no signal handlers, only the flag
    stopper.requested = "SIGTERM"
    state, run, _ = _start(config, workdir, stopper)
    assert loop.train_epoch(state, config, run) == "stopped"
    assert int(state.step) == 1
    assert state.manager.latest_checkpoint.endswith("ckpt-1")
    assert [e["where"] for e in read_events(workdir, "preempted")] == ["training"]
    assert "stopped by SIGTERM at step 1 (training)" in capsys.readouterr().err
    # At an epoch's end, the same flag skips the validation pass.
    assert loop.end_of_epoch(state, config, run) == "stopped"
    assert read_events(workdir, "eval") == [] and int(state.epoch) == 0
