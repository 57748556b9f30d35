"""The paper's plateau schedule: divide by 10 when validation error stops improving, at most 3 times."""
import pytest
import tensorflow as tf

from keras_alexnet.training.schedule import PlateauSchedule


def run(errors, **kwargs):
    schedule = PlateauSchedule(0.01, **kwargs)
    reduced_at = [epoch for epoch, error in enumerate(errors, 1) if schedule.update(error)]
    return schedule, reduced_at


def test_divides_after_patience_epochs_without_improvement():
    #            1    2    3    4    5    6    7    8    9
    errors = [0.9, 0.8, 0.8, 0.81, 0.7, 0.7, 0.7, 0.6, 0.65]
    schedule, reduced_at = run(errors, patience=2)
    assert reduced_at == [4, 7]
    assert schedule.state()["learning_rate"] == pytest.approx(0.0001)
    assert schedule.state()["best_error"] == pytest.approx(0.6)
    assert schedule.state()["bad_epochs"] == 1


def test_patience_one_divides_on_the_first_flat_epoch():
    _, reduced_at = run([0.5, 0.5, 0.4, 0.45], patience=1)
    assert reduced_at == [2, 4]


def test_at_most_max_reductions():
    schedule, reduced_at = run([0.5] * 10, patience=1, max_reductions=3)
    assert reduced_at == [2, 3, 4]
    assert schedule.state()["reductions"] == 3
    assert schedule.state()["learning_rate"] == pytest.approx(0.01 * 1e-3)


def test_min_delta_ignores_tiny_improvements():
    _, reduced_at = run([0.5, 0.499, 0.498], patience=2, min_delta=0.01)
    assert reduced_at == [3]


def test_state_is_checkpointed(tmp_path):
    schedule, _ = run([0.5, 0.5, 0.4, 0.45], patience=1)
    path = tf.train.Checkpoint(schedule=schedule).save(str(tmp_path / "ckpt"))
    restored = PlateauSchedule(0.01, patience=1)
    tf.train.Checkpoint(schedule=restored).restore(path).assert_consumed()
    assert restored.state() == schedule.state()
    # ... and the restored schedule continues where the saved one was.
    assert restored.update(0.45) == schedule.update(0.45)
    assert restored.state() == schedule.state()


def test_fixed_epochs_divide_whatever_the_error():
    schedule = PlateauSchedule(0.01, epochs=(2, 4))
    # Improving every epoch: the heuristic would never divide; the fixed epochs do.
    reduced = [schedule.update(error, epoch=e) for e, error in enumerate([0.9, 0.8, 0.7, 0.6, 0.5], 1)]
    assert reduced == [False, True, False, True, False]
    assert schedule.state()["learning_rate"] == pytest.approx(0.0001)
    assert schedule.state()["best_error"] == pytest.approx(0.5)
    # Worse every epoch: no division outside the listed epochs, whatever the patience says.
    flat = PlateauSchedule(0.01, patience=1, epochs=(3,))
    assert [flat.update(0.9, epoch=e) for e in (1, 2, 3, 4)] == [False, False, True, False]


def test_schedule_epochs_are_validated_and_read_from_the_command_line():
    from keras_alexnet import config as config_lib
    config = config_lib.get_config()
    config.input.data_dir = "/data"
    config.schedule.epochs = (16, 21)
    config_lib.validate(config)
    for bad in ((21, 16), (0, 5), (3, 3)):
        config.schedule.epochs = bad
        with pytest.raises(config_lib.ConfigError, match="config.schedule.epochs: must be increasing"):
            config_lib.validate(config)
