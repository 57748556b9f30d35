"""The training loop's stages; train.py runs them in order (train.train_and_evaluate).

    state = build(config, strategy, precision)          # model, optimizer, counters, checkpoint
    initialize(state, config, workdir)                  # resume, else the fresh initialization
    run = train.prepare_run(state, config, ...)         # data, compiled steps, reporter, signals
    while int(state.epoch) < config.num_epochs:
        train_epoch(state, config, run)                 # -> "done" / "stopped" / "max_steps"
        end_of_epoch(state, config, run)                # validation, schedule, best/, saves
    train.final_evaluation(state, config, run)           # centre and ten-crop errors

Checkpoints hold model, optimizer (momentum slots), step, epoch, the plateau schedule and
the best error (TrainState). Each stage takes the state and a Run; none keeps anything of
its own between calls, so a test calls any of them directly.
"""
import dataclasses
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from keras_alexnet import layers as layers_lib
from keras_alexnet import progress
from keras_alexnet.training import checkpoint_save, distribute, init_from, profile, reporting
from keras_alexnet.training import steps
from keras_alexnet.training import workdir as workdir_lib
from keras_alexnet.training.schedule import PlateauSchedule


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


def _all_finite(variables):
    return all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in variables)


@dataclasses.dataclass
class TrainState:
    """What a checkpoint holds, and the two managers that write it: the stages' shared state."""
    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    step: tf.Variable        # training steps done
    epoch: tf.Variable       # epochs done (trained and validated)
    best_error: tf.Variable  # the best validation top-1 error so far
    schedule: PlateauSchedule
    checkpoint: tf.train.Checkpoint
    # WORKDIR/checkpoints and WORKDIR/best; opened by initialize(), after the restore: a
    # manager reads its folder's state file, which the restore may have repaired.
    manager: tf.train.CheckpointManager = None
    best_manager: tf.train.CheckpointManager = None


def build(config, strategy, precision):
    """A fresh TrainState: config's model (initialized as config.model says), its optimizer
    built, step 0, epoch 0, no best error, the schedule at config.optimizer.learning_rate."""
    with strategy.scope():
        # config.freeze: those layers untrainable before the optimizer is built (no slots, no decay).
        model = init_from.freeze(steps.build_model(config), config.freeze)
        optimizer = steps.make_optimizer(config, precision)
        optimizer.build(model.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    best_error = tf.Variable(np.inf, dtype=tf.float64, trainable=False, name="best_error")
    schedule = PlateauSchedule(config.optimizer.learning_rate, **config.schedule)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step, epoch=epoch,
                                     schedule=schedule, best_error=best_error)
    return TrainState(model, optimizer, step, epoch, best_error, schedule, checkpoint)


def initialize(state, config, workdir, *, chief=True, scratch=None):
    """Resumes workdir's run into state, else initializes it from config.init_from if set
    (build()'s fresh initialization otherwise); opens the checkpoint managers. Returns the
    checkpoint restored, or None.

    The newest readable checkpoint (an unreadable latest is skipped, saying so); a run whose
    checkpoints are all gone is refused (WorkdirError) rather than restarted from step 0 over
    its files. Only the chief (`chief`) repairs state files; the other workers write into
    `scratch` (distribute.worker_scratch).
    """
    latest = workdir_lib.restore_latest(state.checkpoint, workdir, write=chief)
    if latest:
        layers_lib.seek_dropout(state.model, int(state.step))  # the masks an uninterrupted run draws
        print(f"resumed from {latest} at step {int(state.step)}, epoch {int(state.epoch)}",
              flush=True)
    else:  # fine-tuning: config.init_from's weights, copied by layer name before step 0
        init_from.initialize(state.model, config)
    state.manager = tf.train.CheckpointManager(
        state.checkpoint, distribute.write_dir(workdir_lib.checkpoints_dir(workdir), chief, scratch),
        max_to_keep=config.checkpoint.max_to_keep)
    state.best_manager = tf.train.CheckpointManager(
        state.checkpoint, distribute.write_dir(workdir_lib.best_dir(workdir), chief, scratch),
        max_to_keep=1)
    state.optimizer.learning_rate.assign(float(state.schedule.learning_rate))
    return latest


@dataclasses.dataclass
class Run:
    """What the epoch stages use besides the TrainState: this process's reporter and signal
    flag, the compiled steps and the data."""
    workdir: str
    reporter: reporting.Reporter
    stopper: object  # train._Stopper: .requested names a signal received, else None
    strategy: tf.distribute.Strategy
    steps_per_epoch: int
    train_step: object  # steps.make_train_step's
    train_iter: object  # the distributed training dataset's iterator
    eval_step: object   # steps.make_eval_step's
    eval_ds: object     # eval_ds(split, ten_crop)() -> a distributed evaluation dataset
    # config.profile_steps' trace (profile.py); the default traces nothing.
    profiler: profile.Profiler = dataclasses.field(default_factory=profile.Profiler)

    @property
    def alone(self):
        """One worker: a signal stops the loop right after the call it arrived in. Workers of
        a cluster agree through the steps' all-reduced flag (read with the loss, every
        log_every_steps) or, at an epoch's end, a flag all-reduced before validation."""
        return not distribute.is_multi_worker(self.strategy)

    @property
    def checkpoints_dir(self):
        return workdir_lib.checkpoints_dir(self.workdir)


def save(state, run, manager=None):
    """A checkpoint of state at its step with `manager` (state.manager by default), reported.

    Refuses (NonFiniteLossError, a "diverged" event) to save non-finite weights.
    """
    manager = manager or state.manager
    step, epoch = int(state.step), int(state.epoch)
    if not _all_finite(state.model.trainable_variables):
        run.reporter.event("diverged", step, epoch=epoch, loss=float("nan"))
        raise NonFiniteLossError(f"non-finite weights at step {step}; not saving, the last "
                                 f"good checkpoint is {state.manager.latest_checkpoint}")
    path = checkpoint_save.save_checkpoint(manager, step)  # a full disk: a sentence
    run.reporter.event("checkpoint", step, epoch=epoch, path=path)


def _stop(state, run, where):
    """Saves, reports and says where a signal stopped the run; returns "stopped"."""
    save(state, run)
    run.reporter.event("preempted", int(state.step), epoch=int(state.epoch), where=where)
    run.reporter.flush()
    print(f"stopped by {run.stopper.requested or 'a signal on another worker'} at step "
          f"{int(state.step)} ({where}); checkpoint saved in {run.checkpoints_dir}: run the same "
          "command to resume", file=sys.stderr, flush=True)
    return "stopped"


class _Window:
    """The training steps since the last "train" event: their summed loss and hits."""

    def __init__(self):
        self.loss, self.correct, self.steps, self.start = 0.0, 0.0, 0, time.time()

    def add(self, loss, correct, num_steps):
        self.loss, self.correct, self.steps = (self.loss + loss, self.correct + correct,
                                               self.steps + num_steps)

    def means(self, batch_size):
        return dict(loss=self.loss / self.steps, acc=self.correct / (self.steps * batch_size))


def train_epoch(state, config, run):
    """Trains state's current epoch to its end, or to config.max_steps, or to a signal.

    Returns "done" (the epoch's last step trained; its validation is end_of_epoch's),
    "max_steps" (config.max_steps reached: saved, the validation not run) or "stopped" (a
    signal: saved, reported). Raises NonFiniteLossError on a non-finite loss. A profiler
    trace still running is stopped when no epoch follows (the last one, a stop, an error).
    """
    status = None
    try:
        status = _train_epoch(state, config, run)
        return status
    finally:
        if status != "done" or int(state.epoch) + 1 >= config.num_epochs:
            run.profiler.stop()


def _train_epoch(state, config, run):
    ep, spe = int(state.epoch), run.steps_per_epoch
    bar = progress.ProgressBar(spe, title=f"epoch {ep + 1}/{config.num_epochs}",
                               items_per_update=config.batch_size, mode=config.progress,
                               every_steps=config.log_every_steps, skip_first=True)
    window, shown, pending, first, at = _Window(), {}, [], int(state.step) + 1, int(state.step)
    epoch_end = (ep + 1) * spe
    if config.max_steps:
        epoch_end = min(epoch_end, config.max_steps)
    while at < epoch_end:
        count, read_at = _next_call(at, epoch_end, config)
        count = run.profiler.clip(at, count)
        # A profiled step runs alone, without the step's in-graph loop (profile.py says why).
        num_steps = None if run.profiler.one_step(at) else tf.constant(count, tf.int32)
        try:
            with run.profiler.step(at, count):
                pending.append(run.train_step(run.train_iter,
                                              tf.constant(float(bool(run.stopper.requested))),
                                              num_steps))
        except tf.errors.DataLossError:
            if count == 1 and at > 0:  # the failed call applied no step: keep those done
                save(state, run)
            raise
        at += count
        run.profiler.after(at, pending[-1])
        state.step.assign(at)
        in_epoch = at - ep * spe
        stop_all = 0.0
        if at == read_at:
            # The host reads the device's sums here only (a log line, a checkpoint,
            # the epoch's end), not after every step: a GPU runs ahead meanwhile.
            loss, correct, stop_all = (float(_device_sum([p[i] for p in pending])) for i in range(3))
            pending = []
            _check_finite(state, run, loss, first)
            window.add(loss, correct, at + 1 - first)
            first = at + 1
            shown = window.means(config.batch_size)
            if at % config.log_every_steps == 0 or in_epoch == spe:
                _report_train(state, config, run, window, shown, ep + in_epoch / spe)
                window = _Window()
        bar.update(in_epoch, **shown)
        if stop_all > 0 or (run.alone and run.stopper.requested):
            return _stop(state, run, "training")
        if at % config.checkpoint.every_steps == 0:
            save(state, run)
    if config.max_steps and at >= config.max_steps:
        save(state, run)
        run.reporter.flush()
        print(f"stopped at config.max_steps={config.max_steps} (epoch {ep + 1}, its "
              f"validation not run); checkpoint saved in {run.checkpoints_dir}", flush=True)
        return "max_steps"
    return "done"


def _check_finite(state, run, loss, first):
    """Raises NonFiniteLossError (reporting "diverged") on a non-finite loss of steps first..now."""
    if np.isfinite(loss):
        return
    at = int(state.step)
    where = f"step {at}" if first == at else f"steps {first}-{at}"
    run.reporter.event("diverged", at, epoch=int(state.epoch), loss=loss)
    raise NonFiniteLossError(
        f"non-finite training loss ({loss}) in {where}: lower config.optimizer.learning_rate or "
        f"check the data; the last good checkpoint ({state.manager.latest_checkpoint or 'none'}) "
        f"is left intact in {run.checkpoints_dir}")


def _report_train(state, config, run, window, shown, epoch):
    """The "train" event of a window of steps."""
    elapsed = time.time() - window.start
    run.reporter.event(
        "train", int(state.step), epoch=epoch, loss=shown["loss"], top1_error=1 - shown["acc"],
        learning_rate=float(state.schedule.learning_rate),
        images_per_sec=window.steps * config.batch_size / max(elapsed, 1e-9))


def end_of_epoch(state, config, run):
    """The epoch's validation, the schedule, best/ and the epoch's checkpoint.

    Returns "done", or "stopped" for a signal before or during the validation pass (saved
    without it: the resumed run does it first).
    """
    ep = int(state.epoch)
    if distribute.any_worker(run.strategy, bool(run.stopper.requested)):
        return _stop(state, run, "before validation")
    try:
        result = steps.evaluate(run.eval_step, run.eval_ds(config.input.eval_split, False)(),
                                stop=lambda: bool(run.stopper.requested))
    except tf.errors.DataLossError:
        save(state, run)  # the epoch's steps; the resumed run redoes its validation
        raise
    if result is None:  # a signal during the validation pass: it is redone on resume
        return _stop(state, run, "during validation")
    top1, top5, n = result
    reduced = state.schedule.update(top1, epoch=ep + 1)
    step = int(state.step)
    run.reporter.event("eval", step, epoch=ep + 1, top1_error=top1, top5_error=top5,
                       num_images=n, learning_rate=float(state.schedule.learning_rate))
    run.reporter.kernels(step, state.model.get_layer("conv1").kernel.numpy())
    logging.info("epoch %d: validation top-1 error %.4f, top-5 error %.4f (%d images)",
                 ep + 1, top1, top5, n)
    print(f"epoch {ep + 1}: validation top-1 error {top1:.2%}, top-5 error {top5:.2%}", flush=True)
    if reduced:
        state.optimizer.learning_rate.assign(float(state.schedule.learning_rate))
        run.reporter.event("lr_reduced", step, epoch=ep + 1, **state.schedule.state())
    state.epoch.assign_add(1)
    if top1 < float(state.best_error):
        state.best_error.assign(top1)
        save(state, run, state.best_manager)
    save(state, run)  # also when a periodic save just ran: epoch and schedule changed since
    run.reporter.flush()
    return "done"


def _device_sum(values):
    """The sum of a window's per-call results, added where they are: one read for the host."""
    return values[0] if len(values) == 1 else tf.add_n([tf.convert_to_tensor(v) for v in values])


def _next_call(at, epoch_end, config):
    """(steps for the next train_step call, the step where the host next reads the results).

    Up to config.steps_per_loop steps a call, never past the next step that needs the
    host: a log line, a periodic checkpoint or the epoch's end.
    """
    read_at = epoch_end
    for every in (config.log_every_steps, config.checkpoint.every_steps):
        read_at = min(read_at, (at // every + 1) * every)
    return min(config.steps_per_loop, read_at - at), read_at
