"""The training loop for fast accelerators: steps per call, XLA, host reads, max_steps, the trainer benchmark."""
import os

import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet import model as model_lib
from keras_alexnet.benchmarks import trainer
from keras_alexnet.training import loop, steps, train
from fixtures import demo_data_dir, read_events, tiny_config

STEPS_PER_EPOCH = 6  # 48 training images, batch 8


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return demo_data_dir(str(tmp_path_factory.mktemp("tiny")))


def _step_and_model(*, jit_compile=False, dropout=0.5):
    """A tiny seeded AlexNet (dropout on), its optimizer and the train step, on fixed batches."""
    config = tiny_config("/unused", {"model.dropout": dropout})
    strategy = tf.distribute.get_strategy()
    model = model_lib.build_model(config.model)
    optimizer = steps.make_optimizer(config, "float32")
    optimizer.build(model.trainable_variables)
    step = steps.make_train_step(model, optimizer, strategy, global_batch_size=8,
                                 weight_decay=config.optimizer.weight_decay, jit_compile=jit_compile)
    rng = np.random.default_rng(0)
    images = rng.normal(0, 60, (6, 8, 67, 67, 3)).astype(np.float32)
    labels = rng.integers(0, 3, (6, 8)).astype(np.int32)
    iterator = iter(tf.data.Dataset.from_tensor_slices((images, labels)))
    return model, step, iterator


def test_steps_per_loop_gives_the_same_weights_and_sums():
    one_model, one_step, one_it = _step_and_model()
    one = [one_step(one_it, tf.constant(0.0), tf.constant(1)) for _ in range(6)]
    loop_model, loop_step, loop_it = _step_and_model()
    three = [loop_step(loop_it, tf.constant(0.0), tf.constant(3)) for _ in range(2)]
    # The same masks and batches in the same order: the same weights, to the bit on one CPU.
    for a, b in zip(one_model.get_weights(), loop_model.get_weights()):
        np.testing.assert_array_equal(a, b)
    one_loss = [float(x[0]) for x in one]
    assert np.isclose(float(three[0][0]), sum(one_loss[:3]), rtol=1e-6)
    assert np.isclose(float(three[1][0]), sum(one_loss[3:]), rtol=1e-6)
    assert float(three[0][1]) == sum(float(x[1]) for x in one[:3])
    assert not np.allclose(one_loss[0], one_loss[5])  # the steps did train


def test_jit_compiled_step_builds_and_runs_on_cpu():
    _, with_dropout, it = _step_and_model(jit_compile=True)
    assert np.isfinite(float(with_dropout(it, tf.constant(0.0), tf.constant(2))[0]))
    # Without dropout (XLA draws other random numbers from the same seed), the same update.
    plain_model, plain_step, plain_it = _step_and_model(dropout=0.0)
    jit_model, jit_step, jit_it = _step_and_model(jit_compile=True, dropout=0.0)
    for _ in range(2):
        plain = plain_step(plain_it, tf.constant(0.0), tf.constant(1))
        compiled = jit_step(jit_it, tf.constant(0.0), tf.constant(1))
    assert np.isfinite(float(compiled[0]))
    assert np.isclose(float(compiled[0]), float(plain[0]), rtol=1e-3)
    # XLA's kernels round differently; the update is the same within float32 noise.
    for a, b in zip(plain_model.get_weights(), jit_model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def _counting(real, calls, reads, monkeypatch):
    """make_train_step recording each call's step count; the loop's reads of its results counted."""
    made = set()

    def make(*args, **kwargs):
        step = real(*args, **kwargs)

        def wrapped(iterator, stop, num_steps):
            calls.append(int(num_steps))
            result = step(iterator, stop, num_steps)
            made.update(id(v) for v in result)
            return result
        return wrapped

    real_sum = loop._device_sum

    def counted_sum(values):
        assert all(id(v) in made for v in values)
        reads.append(len(values))
        return real_sum(values)
    monkeypatch.setattr(loop, "_device_sum", counted_sum)
    return make


@pytest.mark.parametrize("steps_per_loop", [1, 4])
def test_the_host_reads_the_step_only_at_log_checkpoint_and_epoch_boundaries(
        data_dir, tmp_path, monkeypatch, steps_per_loop):
    calls, reads = [], []
    monkeypatch.setattr(steps, "make_train_step",
                        _counting(steps.make_train_step, calls, reads, monkeypatch))
    config = tiny_config(data_dir, {"log_every_steps": 3, "checkpoint.every_steps": 4,
                                    "steps_per_loop": steps_per_loop})
    result = train.train_and_evaluate(config, str(tmp_path / "work"))
    assert result["status"] == "done" and sum(calls) == 2 * STEPS_PER_EPOCH
    # Steps 3, 4, 6 (epoch end), 8, 9, 12: six reads of (loss, correct, stop), each summing the
    # calls since the last read on the device; every call's results are read exactly once.
    boundaries = [3, 4, 6, 8, 9, 12]
    assert len(reads) == 3 * len(boundaries) and sum(reads) == 3 * len(calls)
    # A call never runs past a boundary, and runs up to steps_per_loop steps.
    ends = np.cumsum(calls).tolist()
    assert set(boundaries) <= set(ends) and max(calls) == min(steps_per_loop, 3)
    train_events = [e["step"] for e in read_events(str(tmp_path / "work"), "train")]
    assert train_events == [3, 6, 9, 12]


def test_steps_per_loop_trains_the_same_run(data_dir, tmp_path):
    results = {}
    for k in (1, 4):
        workdir = str(tmp_path / f"work-{k}")
        results[k] = train.train_and_evaluate(tiny_config(data_dir, {"steps_per_loop": k}), workdir)
        ckpt = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
        model = model_lib.build_model(tiny_config(data_dir).model)
        tf.train.Checkpoint(model=model).restore(ckpt).expect_partial()
        results[k]["weights"] = model.get_weights()
    for a, b in zip(results[1]["weights"], results[4]["weights"]):
        np.testing.assert_array_equal(a, b)
    assert results[1]["validation"] == results[4]["validation"]


def test_max_steps_stops_with_a_checkpoint_and_a_rerun_goes_on(data_dir, tmp_path):
    workdir = str(tmp_path / "work")
    first = train.train_and_evaluate(tiny_config(data_dir, {"max_steps": 8}), workdir)
    assert first == {"status": "max_steps", "step": 8, "epoch": 1}
    assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).endswith("ckpt-8")
    assert [e["epoch"] for e in read_events(workdir, "eval")] == [1]  # epoch 2 not validated
    again = train.train_and_evaluate(tiny_config(data_dir, {"max_steps": 8}), workdir)
    assert again["status"] == "max_steps" and again["step"] == 8
    done = train.train_and_evaluate(tiny_config(data_dir), workdir)
    assert done["status"] == "done" and done["step"] == 2 * STEPS_PER_EPOCH


def test_trainer_benchmark_times_bin_trains_loop(data_dir):
    rate, precision = trainer.trainer_rate(data_dir, batch_size=4, steps=2, warmup=2,
                                           image_size=67, steps_per_loop=2)
    assert rate > 0 and precision == "float32"
    config = trainer.trainer_config(data_dir, batch_size=4, steps=6, warmup=4, image_size=67)
    assert (config.max_steps, config.log_every_steps, config.model.num_classes) == (10, 2, 3)
    with pytest.raises(FileNotFoundError, match="--data .*not a folder"):
        trainer.trainer_config(os.path.join(data_dir, "train-*"), batch_size=4, steps=2, warmup=1)
