"""The paper's learning-rate schedule: divide by 10 when the validation error stops improving.

"The heuristic which we followed was to divide the learning rate by 10 when the
validation error rate stopped improving with the current learning rate. [...]
reduced three times prior to termination." The state lives in tf.Variables so
that it is part of the training checkpoint and a resumed run continues the
same schedule.

`epochs` (config.schedule.epochs) replaces the heuristic with fixed epochs: the rate is
divided after each listed epoch whatever the validation error says, for runs whose
validation set is too small for "stopped improving" to be told from noise (a dip of one
epoch on 1,000 images can cut the rate early; docs/RESULTS.md section 4).
"""
import math

import tensorflow as tf


class PlateauSchedule(tf.Module):
    """Learning rate, best error, epochs without improvement, reductions so far.

    `update(error)` is called once per epoch with the validation top-1 error;
    after `patience` epochs without an improvement of more than `min_delta`,
    the rate is multiplied by `factor`, at most `max_reductions` times.
    """

    def __init__(self, learning_rate, *, factor=0.1, patience=2, min_delta=0.0, max_reductions=3,
                 epochs=(), name="plateau_schedule"):
        super().__init__(name=name)
        self.epochs = tuple(int(e) for e in epochs)
        self.factor = float(factor)
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.max_reductions = int(max_reductions)
        self.learning_rate = tf.Variable(float(learning_rate), dtype=tf.float64, trainable=False,
                                         name="learning_rate")
        self.best_error = tf.Variable(math.inf, dtype=tf.float64, trainable=False, name="best_error")
        self.bad_epochs = tf.Variable(0, dtype=tf.int64, trainable=False, name="bad_epochs")
        self.reductions = tf.Variable(0, dtype=tf.int64, trainable=False, name="reductions")

    def update(self, error, epoch=None):
        """Records one epoch's validation error; returns True if the rate was divided.

        epoch: the number of epochs finished (1 after the first), which `epochs` needs.
        """
        error = float(error)
        if self.epochs:
            self.best_error.assign(min(error, float(self.best_error)))
            if epoch not in self.epochs:
                return False
            return self._reduce()
        if error < float(self.best_error) - self.min_delta:
            self.best_error.assign(error)
            self.bad_epochs.assign(0)
            return False
        self.bad_epochs.assign_add(1)
        if int(self.bad_epochs) < self.patience or int(self.reductions) >= self.max_reductions:
            return False
        return self._reduce()

    def _reduce(self):
        self.learning_rate.assign(float(self.learning_rate) * self.factor)
        self.reductions.assign_add(1)
        self.bad_epochs.assign(0)
        return True

    def state(self):
        """A plain dict of the state, for logs and tests."""
        return {"learning_rate": float(self.learning_rate),
                "best_error": float(self.best_error),
                "bad_epochs": int(self.bad_epochs),
                "reductions": int(self.reductions)}
