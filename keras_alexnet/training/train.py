"""train_and_evaluate(config, workdir): the paper's training, on any tf.distribute strategy.

One custom loop for every strategy (Keras 3's model.fit breaks under
MultiWorkerMirroredStrategy, keras-team/keras#20585). The workdir's layout is
workdir.py's; the data and the config are checked before any model is built or
anything is written, each failure naming the config field or file at fault.

Checkpoints hold model, optimizer (momentum slots), step, epoch, the plateau
schedule and the best error. Re-running the same command resumes (from the newest
readable checkpoint) and ends at the same step and epoch as an uninterrupted run.
SIGTERM or Ctrl-C saves within one call of the train step (config.steps_per_loop steps;
one by default) of the signal, wherever it arrives (a
validation pass under way or not begun is skipped: the resumed run does it), and
returns. One process trains in a workdir at a time (WORKDIR/.lock).
"""
import contextlib
import glob
import os
import signal
import sys
import time

import numpy as np
import tensorflow as tf
from absl import logging

from keras_alexnet import config as config_lib
from keras_alexnet import model as model_lib
from keras_alexnet import progress
from keras_alexnet.config import ConfigError
from keras_alexnet.data import layout
from keras_alexnet.training import distribute, init_from, reporting, steps, workdir as workdir_lib
from keras_alexnet.training.schedule import PlateauSchedule


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


def _make_datasets(config, strategy, stats, *, train_seed):
    from keras_alexnet.data import input_pipeline
    data_dir, cfg = config.input.data_dir, config.input
    common = dict(stats=stats, image_size=config.model.image_size, label_offset=cfg.label_offset,
                  normalization=cfg.normalization)

    def train_fn(ctx):
        return input_pipeline.make_dataset(
            layout.shard_pattern(data_dir, cfg.train_split),
            ctx.get_per_replica_batch_size(config.batch_size), True, input_context=ctx,
            seed=train_seed, crop=cfg.crop, shuffle_buffer=cfg.shuffle_buffer,
            lighting_std=cfg.lighting_std, **common)

    def eval_fn(split, ten_crop):
        replicas = strategy.num_replicas_in_sync
        # Ten crops per image: a tenth of the images keeps the step's memory flat.
        batch = max(1, config.eval.batch_size // 10 // replicas) * replicas if ten_crop \
            else config.eval.batch_size

        def fn(ctx):
            return input_pipeline.make_dataset(
                layout.shard_pattern(data_dir, split), ctx.get_per_replica_batch_size(batch),
                False, input_context=ctx, ten_crop=ten_crop, repeat=False, **common)
        return lambda: strategy.distribute_datasets_from_function(fn)

    return strategy.distribute_datasets_from_function(train_fn), eval_fn


def check_data(config):
    """Shards, labels and statistics exist and agree with config.model/config.input."""
    from keras_alexnet.data import stats as stats_lib
    data_dir = config.input.data_dir
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"config.input.data_dir: no such folder {data_dir!r}")
    for field in ("train_split", "eval_split", "test_split"):
        split = config.input[field]
        pattern = layout.shard_pattern(data_dir, split)
        if split and not glob.glob(pattern):
            raise FileNotFoundError(f"config.input.{field}={split!r}: no TFRecord shards {pattern}")
    labels_path = os.path.join(data_dir, layout.LABELS_FILENAME)
    if os.path.exists(labels_path):
        num_labels = len(layout.load_labels(labels_path))
        if num_labels != config.model.num_classes:
            raise ConfigError(f"config.model.num_classes={config.model.num_classes} does not match "
                              f"the {num_labels} classes in {labels_path}")
    stats_path = os.path.join(data_dir, layout.STATS_FILENAME)
    stats = stats_lib.load_stats(stats_path) if os.path.exists(stats_path) else None
    if stats is None and config.input.normalization == "mean_image":
        raise FileNotFoundError(f"config.input.normalization='mean_image' needs {stats_path}")
    if stats is not None and stats.mean_image.shape[0] < config.model.image_size:
        raise ConfigError(f"config.model.image_size={config.model.image_size} is larger than the "
                          f"stored images ({stats.mean_image.shape[0]} px, {stats_path})")
    return stats


def num_train_examples(config, stats):
    if config.input.num_train_examples > 0:
        return config.input.num_train_examples
    if stats is None:
        raise ConfigError("config.input.num_train_examples must be set: no stats.npz to read it from")
    return int(stats.num_images)


def _check_batch(config, strategy):
    replicas = strategy.num_replicas_in_sync
    for field, value in (("batch_size", config.batch_size), ("eval.batch_size", config.eval.batch_size)):
        if value % replicas:
            raise ConfigError(f"config.{field}={value} does not divide over {replicas} replicas "
                             "(global batch = per-replica batch x replicas)")


def _all_finite(variables):
    return all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in variables)


def _resolve_data(config, workdir):
    """An empty data_dir with input.demo: the procedural demo dataset, generated into the workdir."""
    if config.input.data_dir:
        return config
    if config.distribution.strategy == "multi_worker":
        raise ConfigError("config.input.data_dir: must be set for multi_worker (the demo data is local)")
    from keras_alexnet.data import demo_data
    config = config.copy_and_resolve_references()
    config.input.data_dir = demo_data.make_demo_tfrecords(
        workdir_lib.demo_data_dir(workdir), num_classes=config.model.num_classes,
        images_per_class=config.input.demo_images_per_class or 200,
        image_size=config.input.demo_image_size or 96, seed=config.seed)
    return config


class _Stopper:
    """Turns SIGTERM (a preempted host) and Ctrl-C (SIGINT) into a flag the loop reads between steps.

    The loop then saves a checkpoint and returns. A second Ctrl-C stops at once, unsaved.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.requested = None  # the name of the signal received
        self.previous = {}

    def __enter__(self):
        for signum in self.SIGNALS:
            try:
                self.previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: no signal handling
                pass
        return self

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # Ctrl-C twice: the user does not want to wait for the save
        self.requested = self.requested or name
        hint = " (Ctrl-C again to quit without saving)" if signum == signal.SIGINT else ""
        sys.stderr.write(f"\n{name}: saving a checkpoint after this step, then stopping{hint}\n")
        sys.stderr.flush()

    def __exit__(self, *exc):
        for signum, previous in self.previous.items():
            signal.signal(signum, previous)


def train_and_evaluate(config, workdir):
    """Trains config's AlexNet in workdir (resuming if it holds this run); returns final metrics."""
    config_lib.validate(config)
    distribute.setup_devices(config)
    strategy = distribute.make_strategy(config)
    chief = distribute.is_chief(strategy)
    with contextlib.ExitStack() as stack:
        # One bin/train per workdir: the chief holds WORKDIR/.lock until it returns (the kernel
        # frees it if the process dies). Every worker learns whether the chief may go on.
        failure = None
        if chief:
            try:
                stack.enter_context(workdir_lib.lock(workdir))
            except ConfigError as e:
                failure = e
        _stop_unless_all_agree(strategy, failure)
        scratch = stack.enter_context(distribute.worker_scratch(chief))
        return _train(config, workdir, strategy, chief, scratch)


def _stop_unless_all_agree(strategy, failure):
    """Raises `failure` on its worker, and a sentence on the others, if any worker failed."""
    if distribute.any_worker(strategy, failure is not None):
        raise failure or workdir_lib.WorkdirError(
            "another worker of this run stopped (see its log); stopping with it")


def _train(config, workdir, strategy, chief, scratch):
    stored = workdir_lib.config_to_store(config)  # absolute data_dir; the demo's stays empty
    config = _resolve_data(stored, workdir)
    _check_batch(config, strategy)
    stats = check_data(config)
    failure = None
    if chief:
        try:
            workdir_lib.check_workdir(stored, workdir)
            workdir_lib.write_config(stored, workdir)
            for note in filter(None, [workdir_lib.repair_state(workdir_lib.best_dir(workdir))]):
                sys.stderr.write(f"warning: {note}\n")
        except ConfigError as e:
            failure = e
        except OSError as e:  # a full disk, a read-only folder
            failure = workdir_lib.WorkdirError(f"--workdir {workdir}: cannot write there ({e})")
    _stop_unless_all_agree(strategy, failure)
    precision = distribute.set_precision(config.precision)
    if chief:
        print(f"precision: {precision}" + (" (config.precision='auto')" if config.precision == "auto"
                                           else ""), flush=True)
    reporter = reporting.Reporter(distribute.write_dir(workdir, chief, scratch))
    steps_per_epoch = num_train_examples(config, stats) // config.batch_size
    if steps_per_epoch < 1:
        raise ConfigError(f"config.batch_size={config.batch_size} is larger than the training set")

    with strategy.scope():
        model = init_from.freeze(steps.build_model(config), config.freeze)
        optimizer = steps.make_optimizer(config, precision)
        optimizer.build(model.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    best_error = tf.Variable(np.inf, dtype=tf.float64, trainable=False, name="best_error")
    schedule = PlateauSchedule(config.optimizer.learning_rate, **config.schedule)
    ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step, epoch=epoch,
                               schedule=schedule, best_error=best_error)
    ckpt_dir = workdir_lib.checkpoints_dir(workdir)
    # The newest readable checkpoint (an unreadable latest is skipped, saying so); a run whose
    # checkpoints are all gone is refused rather than restarted from step 0 over its files.
    latest = workdir_lib.restore_latest(ckpt, workdir, write=chief)
    if latest:
        model_lib.seek_dropout(model, int(step))  # the masks an uninterrupted run would draw
        print(f"resumed from {latest} at step {int(step)}, epoch {int(epoch)}", flush=True)
    else:
        init_from.initialize(model, config)  # fine-tuning: another network's weights
    manager = tf.train.CheckpointManager(ckpt, distribute.write_dir(ckpt_dir, chief, scratch),
                                         max_to_keep=config.checkpoint.max_to_keep)
    best_manager = tf.train.CheckpointManager(
        ckpt, distribute.write_dir(workdir_lib.best_dir(workdir), chief, scratch), max_to_keep=1)
    optimizer.learning_rate.assign(float(schedule.learning_rate))

    # A resumed run reshuffles from a seed that depends on where it resumes,
    # so it does not replay the batches it already trained on.
    train_ds, eval_ds = _make_datasets(config, strategy, stats, train_seed=config.seed + int(step))
    train_iter = iter(train_ds)
    train_step = steps.make_train_step(model, optimizer, strategy, global_batch_size=config.batch_size,
                                       weight_decay=config.optimizer.weight_decay,
                                       jit_compile=config.jit_compile)
    eval_centre = steps.make_eval_step(model, strategy, num_classes=config.model.num_classes,
                                       ten_crop=False)
    # A signal is seen by this process alone: with one worker the loop stops right after the
    # call it arrived in; workers of a cluster agree through the steps' all-reduced flag (read
    # with the loss, every log_every_steps) or, at an epoch's end, a flag all-reduced before
    # the validation pass.
    alone = not distribute.is_multi_worker(strategy)

    def save(mgr=manager):
        if not _all_finite(model.trainable_variables):
            reporter.event("diverged", int(step), epoch=int(epoch), loss=float("nan"))
            raise NonFiniteLossError(f"non-finite weights at step {int(step)}; not saving, the last "
                                     f"good checkpoint is {manager.latest_checkpoint}")
        # A second save at one step (the epoch's end after a periodic save) replaces the first:
        # its files go first, so a kill during the save leaves a missing latest checkpoint,
        # which a resumed run skips, never one file of each save (a checksum error).
        workdir_lib.remove_checkpoint(os.path.join(mgr.directory, f"ckpt-{int(step)}"))
        path = mgr.save(checkpoint_number=int(step))
        reporter.event("checkpoint", int(step), epoch=int(epoch), path=path)

    def stop(stopper, where):
        save()
        reporter.event("preempted", int(step), epoch=int(epoch), where=where)
        reporter.flush()
        print(f"stopped by {stopper.requested or 'a signal on another worker'} at step "
              f"{int(step)} ({where}); checkpoint saved in {ckpt_dir}: run the same command to "
              "resume", file=sys.stderr, flush=True)
        return {"status": "preempted", "step": int(step), "epoch": int(epoch)}

    def data_error(error):
        return _explain_data_loss(error, config)

    with _Stopper() as stopper:
        while int(epoch) < config.num_epochs:
            ep = int(epoch)
            bar = progress.ProgressBar(steps_per_epoch, title=f"epoch {ep + 1}/{config.num_epochs}",
                                       items_per_update=config.batch_size, mode=config.progress,
                                       every_steps=config.log_every_steps, skip_first=True)
            window = dict(loss=0.0, correct=0.0, steps=0, start=time.time())
            shown, pending, first, at = {}, [], int(step) + 1, int(step)
            epoch_end = (ep + 1) * steps_per_epoch
            if config.max_steps:
                epoch_end = min(epoch_end, config.max_steps)
            while at < epoch_end:
                count, read_at = _next_call(at, epoch_end, config)
                try:
                    pending.append(train_step(train_iter, tf.constant(float(bool(stopper.requested))),
                                              tf.constant(count, tf.int32)))
                except tf.errors.DataLossError as e:
                    raise data_error(e) from None
                at += count
                step.assign(at)
                in_epoch = at - ep * steps_per_epoch
                stop_all = 0.0
                if at == read_at:
                    # The host reads the device's sums here only (a log line, a checkpoint,
                    # the epoch's end), not after every step: a GPU runs ahead meanwhile.
                    loss, correct, stop_all = (float(_device_sum([p[i] for p in pending]))
                                               for i in range(3))
                    pending = []
                    if not np.isfinite(loss):
                        where = f"step {at}" if first == at else f"steps {first}-{at}"
                        reporter.event("diverged", at, epoch=ep, loss=loss)
                        raise NonFiniteLossError(
                            f"non-finite training loss ({loss}) in {where}: lower "
                            f"config.optimizer.learning_rate or check the data; the last good "
                            f"checkpoint ({manager.latest_checkpoint or 'none'}) is left intact "
                            f"in {ckpt_dir}")
                    window["loss"] += loss
                    window["correct"] += correct
                    window["steps"] += at + 1 - first
                    first = at + 1
                    shown = dict(loss=window["loss"] / window["steps"],
                                 acc=window["correct"] / (window["steps"] * config.batch_size))
                    if at % config.log_every_steps == 0 or in_epoch == steps_per_epoch:
                        elapsed = time.time() - window["start"]
                        reporter.event(
                            "train", at, epoch=ep + in_epoch / steps_per_epoch, loss=shown["loss"],
                            top1_error=1 - shown["acc"], learning_rate=float(schedule.learning_rate),
                            images_per_sec=window["steps"] * config.batch_size / max(elapsed, 1e-9))
                        window = dict(loss=0.0, correct=0.0, steps=0, start=time.time())
                bar.update(in_epoch, **shown)
                if stop_all > 0 or (alone and stopper.requested):
                    return stop(stopper, "training")
                if at % config.checkpoint.every_steps == 0:
                    save()

            if config.max_steps and at >= config.max_steps:
                save()
                reporter.flush()
                print(f"stopped at config.max_steps={config.max_steps} (epoch {ep + 1}, its "
                      f"validation not run); checkpoint saved in {ckpt_dir}", flush=True)
                return {"status": "max_steps", "step": at, "epoch": ep}
            # A signal in the epoch's last step: save now, without the validation pass (a
            # resumed run does it first).
            if distribute.any_worker(strategy, bool(stopper.requested)):
                return stop(stopper, "before validation")
            try:
                result = steps.evaluate(eval_centre, eval_ds(config.input.eval_split, False)(),
                                        stop=lambda: bool(stopper.requested))
            except tf.errors.DataLossError as e:
                raise data_error(e) from None
            if result is None:  # a signal during the validation pass: it is redone on resume
                return stop(stopper, "during validation")
            top1, top5, n = result
            reduced = schedule.update(top1)
            reporter.event("eval", int(step), epoch=ep + 1, top1_error=top1, top5_error=top5,
                           num_images=n, learning_rate=float(schedule.learning_rate))
            reporter.kernels(int(step), model.get_layer("conv1").kernel.numpy())
            logging.info("epoch %d: validation top-1 error %.4f, top-5 error %.4f (%d images)",
                         ep + 1, top1, top5, n)
            print(f"epoch {ep + 1}: validation top-1 error {top1:.2%}, top-5 error {top5:.2%}",
                  flush=True)
            if reduced:
                optimizer.learning_rate.assign(float(schedule.learning_rate))
                reporter.event("lr_reduced", int(step), epoch=ep + 1, **schedule.state())
            epoch.assign_add(1)
            if top1 < float(best_error):
                best_error.assign(top1)
                save(best_manager)
            save()  # also when a periodic save just ran: epoch and schedule changed since
            reporter.flush()

        try:
            return _final_evaluation(config, model, strategy, eval_ds, reporter, int(step),
                                     workdir, stop=lambda: bool(stopper.requested))
        except tf.errors.DataLossError as e:
            raise data_error(e) from None


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


def _explain_data_loss(error, config):
    """A sentence naming the damaged shard behind a DataLossError from the input pipeline."""
    patterns = [layout.shard_pattern(config.input.data_dir, config.input[field])
                for field in ("train_split", "eval_split", "test_split") if config.input[field]]
    return ConfigError(layout.describe_data_loss(error, patterns))


def _eval_bar(config, split, what):
    """A final pass's progress: images, rate, ETA (when make_tfrecords recorded the split's size)."""
    return progress.ProgressBar(layout.split_size(config.input.data_dir, split),
                                title=f"final {split} {what}", mode=config.progress,
                                every_seconds=10.0, skip_first=True)


def _final_evaluation(config, model, strategy, eval_ds, reporter, step, workdir, stop=None):
    """Centre-crop and (if configured) the paper's ten-crop errors of the final weights."""
    results = {"status": "done", "step": step}
    centre = steps.make_eval_step(model, strategy, num_classes=config.model.num_classes,
                                  ten_crop=False)
    ten = steps.make_eval_step(model, strategy, num_classes=config.model.num_classes, ten_crop=True)
    for split in filter(None, (config.input.eval_split, config.input.test_split)):
        centre_result = steps.evaluate(centre, eval_ds(split, False)(),
                                       _eval_bar(config, split, "centre"), stop=stop)
        ten_result = (steps.evaluate(ten, eval_ds(split, True)(),
                                     _eval_bar(config, split, "ten crops"), stop=stop)
                      if config.eval.ten_crop and centre_result is not None else (None, None, None))
        if centre_result is None or ten_result is None:
            # Training is complete and saved; the same command redoes only this evaluation.
            print("stopped by a signal during the final evaluation; training is complete and "
                  "saved: run the same command to evaluate", file=sys.stderr, flush=True)
            reporter.event("preempted", step, where="final evaluation")
            reporter.flush()
            return {"status": "preempted", "step": step, "epoch": config.num_epochs}
        top1, top5, n = centre_result
        values = {"centre_top1_error": top1, "centre_top5_error": top5, "num_images": n}
        if config.eval.ten_crop:
            t1, t5, _ = ten_result
            values.update(ten_crop_top1_error=t1, ten_crop_top5_error=t5)
        reporter.event("final", step, split=split, **values)
        results[split] = values
        print(f"final {split} ({n} images): " + ", ".join(
            f"{k} {v:.2%}" for k, v in values.items() if k != "num_images"), flush=True)
    reporter.flush()
    logging.info("done; workdir %s", workdir)
    return results
