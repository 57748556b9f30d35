"""config.profile_steps: a TensorFlow profiler trace of a window of training steps.

    bin/train --config=configs/imagenette.py --workdir=RUN --config.profile_steps=20,25
    tensorboard --logdir RUN/tensorboard          # the Profile tab

The trace is written where TensorBoard's profile plugin (tensorboard-plugin-profile, a
dependency) finds it, beside the run's scalars:

    WORKDIR/tensorboard/plugins/profile/<date_time>/<host>.xplane.pb

Steps are counted from 1 (the step counter after the step trained). The trace starts just
before the call of the train step that trains the window's first step and stops once the
last step's results are back on the host (so a GPU's queued work is in it). Each step of
the window is a call of its own, inside `tf.profiler.experimental.Trace("train",
step_num=..., _r=1)`: the step markers the Profile tab's overview page (step-time graph)
and input-pipeline analyser read. Those calls run the train step without its in-graph loop
(num_steps=None, steps.make_train_step): the analysers do not attribute ops run inside a
tf.while_loop to the marker around it (a trace of the looped step gives "No step time
measured"). The step before the window runs that way too, untraced, so that tracing and
compiling it stay out of the window; calls of config.steps_per_loop steps resume after it.

A window across an epoch's end holds that epoch's validation pass too; one reaching past
the run's last step (or cut short by a signal, max_steps or an error) is stopped when
training stops, before the final evaluation. A resumed run traces only the window's steps it
has still to train. Only the chief writes a trace (the other workers' would be deleted with
their scratch folders), but every worker runs the same calls (steps alone, loops cut at the
same steps), as the workers of a cluster must.
"""
import contextlib

import tensorflow as tf
from absl import logging

from keras_alexnet import config as config_lib


class Profiler:
    """The trace of config.profile_steps for the training loop (loop.train_epoch).

    window: (first, last) step, or None (nothing is traced, no call is cut).
    logdir: where the trace goes (the Reporter's TensorBoard folder); None: no trace, the
    calls still cut at the window's edges (a worker other than the chief).
    """

    def __init__(self, window=None, logdir=None):
        self.window = window
        self.logdir = logdir
        self.active = False
        self.sessions = 0  # traces started by this Profiler

    @classmethod
    def from_config(cls, config, logdir):
        # A config rebuilt from an older run's config.json may lack the field: no trace.
        return cls(config_lib.profile_window(config.get("profile_steps", ())), logdir)

    def one_step(self, at):
        """True when the call of step at + 1 is a step alone, without the in-graph loop: a step
        of the window or the one before it (module docstring)."""
        return self.window is not None and self.window[0] - 1 <= at + 1 <= self.window[1]

    def clip(self, at, count):
        """The steps of the next call (at + 1 ...): 1 for one_step(at), else `count` cut so
        that the call ends before the step before the window (or starts after the window)."""
        if self.window is None:
            return count
        if self.one_step(at):
            return 1
        edge = self.window[0] - 2  # the last step before the ones run alone
        return edge - at if at < edge < at + count else count

    def step(self, at, count):
        """A context for the call of steps at + 1 .. at + count: starts the trace at the window's
        first step and marks a step of a running trace."""
        if self.window is None or self.logdir is None:
            return contextlib.nullcontext()
        first, last = self.window
        if not self.active and first <= at + 1 <= last:
            self._start()
        if not self.active:
            return contextlib.nullcontext()
        return tf.profiler.experimental.Trace("train", step_num=at + 1, _r=1)

    def after(self, at, outputs):
        """After a call that brought the step counter to `at`: at the window's last step, waits
        for the call's results (outputs: its tensors) and stops the trace."""
        if self.active and at >= self.window[1]:
            for tensor in outputs:
                tensor.numpy()  # the step has run, on every device
            self.stop()

    def stop(self):
        """Stops a running trace (writing it); nothing if none runs."""
        if self.active:
            self.active = False
            tf.profiler.experimental.stop()
            logging.info("profiler trace of config.profile_steps=%s written under %s",
                         self.window, self.logdir)

    def _start(self):
        try:
            tf.profiler.experimental.start(self.logdir)
        except (tf.errors.AlreadyExistsError, tf.errors.UnavailableError) as e:
            # Another trace (a user's own) is running in this process: keep it, train on.
            logging.warning("config.profile_steps: no trace (%s)", e.message)
            self.logdir = None  # the calls are still cut at the window's edges, as elsewhere
            return
        self.active = True
        self.sessions += 1
