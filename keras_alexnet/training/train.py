"""train_and_evaluate(config, workdir): the paper's training, on any tf.distribute strategy.

One custom loop for every strategy (Keras 3's model.fit breaks under
MultiWorkerMirroredStrategy, keras-team/keras#20585), its stages in loop.py. The
workdir's layout is workdir.py's; the data and the config are checked before any model
is built or anything is written, each failure naming the config field or file at fault.

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

import tensorflow as tf
from absl import logging

from keras_alexnet import config as config_lib
from keras_alexnet import progress
from keras_alexnet.config import ConfigError
from keras_alexnet.data import layout, service
from keras_alexnet.training import checkpoint_save, distribute, loop, profile, reporting, steps
from keras_alexnet.training import workdir as workdir_lib
# Raised by the loop; cli/train.py and study/runner.py catch it as train.NonFiniteLossError.
from keras_alexnet.training.loop import NonFiniteLossError  # noqa: F401


def _make_datasets(config, strategy, stats, *, train_seed, service_job=None):
    from keras_alexnet.data import input_pipeline

    def train_fn(ctx):
        return input_pipeline.from_input_config(
            config, config.input.train_split, ctx.get_per_replica_batch_size(config.batch_size),
            True, stats=stats, input_context=ctx, seed=train_seed, service_job=service_job)

    def eval_fn(split, ten_crop):
        replicas = strategy.num_replicas_in_sync
        # Ten crops per image: a tenth of the images keeps the step's memory flat.
        batch = max(1, config.eval.batch_size // 10 // replicas) * replicas if ten_crop \
            else config.eval.batch_size

        def fn(ctx):
            return input_pipeline.from_input_config(
                config, split, ctx.get_per_replica_batch_size(batch), False, stats=stats,
                input_context=ctx, ten_crop=ten_crop, repeat=False)
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
    from keras_alexnet.training import data_checks
    data_checks.check_training_data(config)  # shard sets, empty splits, labels: before step 1
    if config.input.data_service:  # a sentence now rather than tf.data's hour of retries
        try:
            target = service.check_dispatcher(config.input.data_service,
                                              "config.input.data_service")
        except service.DataServiceError as e:
            raise ConfigError(str(e)) from None
        if service.num_workers(target) == 0:  # not an error: workers may start after the trainer
            sys.stderr.write(f"warning: no tf.data worker has registered with the dispatcher at "
                             f"{target} yet; training waits for one (bin/data_service worker "
                             f"--dispatcher={target})\n")
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
    """The orchestrator: checks, then loop.py's stages in order (its docstring shows them)."""
    config, stats, precision = _prepare(config, workdir, strategy, chief)
    reporter = reporting.Reporter(distribute.write_dir(workdir, chief, scratch))
    state = loop.build(config, strategy, precision)
    loop.initialize(state, config, workdir, chief=chief, scratch=scratch)
    run = prepare_run(state, config, strategy, stats, workdir, reporter)
    try:
        with run.stopper:
            while int(state.epoch) < config.num_epochs:
                status = loop.train_epoch(state, config, run)
                if status == "done":
                    status = loop.end_of_epoch(state, config, run)
                if status != "done":
                    return {"status": "preempted" if status == "stopped" else status,
                            "step": int(state.step), "epoch": int(state.epoch)}
            return final_evaluation(state, config, run)
    except tf.errors.DataLossError as e:  # a damaged shard, in training or evaluation
        raise _explain_data_loss(e, config) from None


def _prepare(config, workdir, strategy, chief):
    """Checks the config and the data, writes config.json, sets the precision policy.

    Returns (the config with its data folder resolved, the data's statistics, the policy).
    """
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
            for folder in (workdir_lib.checkpoints_dir(workdir), workdir_lib.best_dir(workdir)):
                checkpoint_save.remove_abandoned_temporaries(folder)  # of saves killed mid-way
        except ConfigError as e:
            failure = e
        except OSError as e:  # a full disk, a read-only folder
            failure = workdir_lib.WorkdirError(f"--workdir {workdir}: cannot write there ({e})")
    _stop_unless_all_agree(strategy, failure)
    precision = distribute.set_precision(config.precision)
    if chief:
        print(f"precision: {precision}" + (" (config.precision='auto')" if config.precision == "auto"
                                           else ""), flush=True)
    if num_train_examples(config, stats) // config.batch_size < 1:
        raise ConfigError(f"config.batch_size={config.batch_size} is larger than the training set")
    return config, stats, precision


def prepare_run(state, config, strategy, stats, workdir, reporter, stopper=None):
    """The loop.Run of state from its current step: its data, its compiled steps, `reporter`
    and `stopper` (a _Stopper, not yet entered, by default)."""
    # A resumed run reshuffles from a seed that depends on where it resumes,
    # so it does not replay the batches it already trained on (through the tf.data
    # service too: a job of its own, data/service.py).
    train_ds, eval_ds = _make_datasets(config, strategy, stats,
                                       train_seed=config.seed + int(state.step),
                                       service_job=service.job_name(workdir, int(state.step)))
    train_step = steps.make_train_step(state.model, state.optimizer, strategy,
                                       global_batch_size=config.batch_size,
                                       weight_decay=config.optimizer.weight_decay,
                                       jit_compile=config.jit_compile)
    eval_step = steps.make_eval_step(state.model, strategy, num_classes=config.model.num_classes)
    # Only the chief keeps a trace; every worker makes the same calls (profile.py).
    profiler = profile.Profiler.from_config(
        config, reporter.tensorboard_dir if distribute.is_chief(strategy) else None)
    return loop.Run(workdir, reporter, stopper or _Stopper(), strategy,
               num_train_examples(config, stats) // config.batch_size, train_step,
               iter(train_ds), eval_step, eval_ds, profiler)


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


def final_evaluation(state, config, run):
    """Centre-crop and (if configured) the paper's ten-crop errors of the final weights."""
    step = int(state.step)
    results = {"status": "done", "step": step}
    ten = steps.make_eval_step(state.model, run.strategy, num_classes=config.model.num_classes)
    stop = lambda: bool(run.stopper.requested)  # noqa: E731
    for split in filter(None, (config.input.eval_split, config.input.test_split)):
        centre_result = steps.evaluate(run.eval_step, run.eval_ds(split, False)(),
                                       _eval_bar(config, split, "centre"), stop=stop)
        ten_result = (steps.evaluate(ten, run.eval_ds(split, True)(),
                                     _eval_bar(config, split, "ten crops"), stop=stop)
                      if config.eval.ten_crop and centre_result is not None else (None, None, None))
        if centre_result is None or ten_result is None:
            # Training is complete and saved; the same command redoes only this evaluation.
            print("stopped by a signal during the final evaluation; training is complete and "
                  "saved: run the same command to evaluate", file=sys.stderr, flush=True)
            run.reporter.event("preempted", step, where="final evaluation")
            run.reporter.flush()
            return {"status": "preempted", "step": step, "epoch": config.num_epochs}
        top1, top5, n = centre_result
        values = {"centre_top1_error": top1, "centre_top5_error": top5, "num_images": n}
        if config.eval.ten_crop:
            t1, t5, _ = ten_result
            values.update(ten_crop_top1_error=t1, ten_crop_top5_error=t5)
        run.reporter.event("final", step, split=split, **values)
        results[split] = values
        print(f"final {split} ({n} images): " + ", ".join(
            f"{k} {v:.2%}" for k, v in values.items() if k != "num_images"), flush=True)
    run.reporter.flush()
    logging.info("done; workdir %s", run.workdir)
    return results
