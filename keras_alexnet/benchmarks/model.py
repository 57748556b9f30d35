"""What `bin/benchmark train` and `infer` time: the training step bin/train runs, and inference.

The train benchmark builds the paper's config (config.get_config) and times
training/steps.make_train_step, the compiled step bin/train runs: the loss, the
paper's weight decay inside the momentum, loss scaling under float16. Inputs are
synthetic, mean-subtracted-looking images. Each function returns images per
second; `bin/benchmark` prints one JSON line in the same form as
docs/seed_reference.py so the two can be compared side by side.
"""
import contextlib
import time

import numpy as np
import tensorflow as tf

from keras_alexnet import config as config_lib
from keras_alexnet import model as model_lib
from keras_alexnet.training import distribute, steps as steps_lib


def _timed(fn, steps, warmup):
    """Seconds for `steps` calls of fn after `warmup` untimed ones (fn returns a tensor)."""
    for _ in range(warmup):
        fn().numpy()
    start = time.perf_counter()
    for _ in range(steps):
        result = fn()
    result.numpy()  # the last step's value: waits for all queued work
    return time.perf_counter() - start


def parse_model_overrides(text):
    """'lrn=False,towers=1' -> {'lrn': False, 'towers': 1}; a sentence for a bad item."""
    known = config_lib.get_config().model
    overrides = {}
    for item in filter(None, (text or "").split(",")):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in known:
            raise ValueError(f"--model: {item!r} is not FIELD=VALUE with FIELD one of "
                             f"{', '.join(sorted(known))}")
        default = known[key]
        try:
            if isinstance(default, bool):
                if value.lower() not in ("true", "false"):
                    raise ValueError
                overrides[key] = value.lower() == "true"
            else:
                overrides[key] = type(default)(value)
        except ValueError:
            raise ValueError(f"--model: {item!r}: {key} takes a {type(default).__name__}") from None
    return overrides


def synthetic_batch(batch_size, image_size, num_classes):
    rng = np.random.default_rng(0)
    images = rng.normal(0, 50, (batch_size, image_size, image_size, 3)).astype(np.float32)
    labels = rng.integers(0, num_classes, batch_size).astype(np.int32)
    return images, labels


def _paper_model(**overrides):
    """config.model of the paper's config, with overrides."""
    model = config_lib.get_config().model
    model.update(overrides)
    return model


@contextlib.contextmanager
def precision_policy(precision):
    """The Keras policy bin/train would set (distribute.set_precision), reset to float32 after."""
    try:
        yield distribute.set_precision(precision)
    finally:
        distribute.set_precision("float32")


def paper_train_step(batch_size=128, image_size=227, num_classes=1000, precision="float32",
                     model_overrides=None, fused_lrn=True):
    """(model, train_step, iterator) as bin/train builds them for the paper's config.

    Call under precision_policy(precision). train_step(iterator, stop) returns the
    global (loss, correct, stop), exactly as in training/train.py. model_overrides:
    build_alexnet arguments changed from the paper's (e.g. {"lrn": False}), to time parts;
    fused_lrn: config.fused_lrn.
    """
    config = config_lib.get_config()
    config.batch_size = batch_size
    config.fused_lrn = fused_lrn
    config.model.update(image_size=image_size, num_classes=num_classes, **(model_overrides or {}))
    strategy = tf.distribute.get_strategy()
    model = steps_lib.build_model(config)
    optimizer = steps_lib.make_optimizer(config, precision)
    optimizer.build(model.trainable_variables)
    images, labels = synthetic_batch(batch_size, image_size, num_classes)
    iterator = iter(tf.data.Dataset.from_tensors((images, labels)).repeat())
    train_step = steps_lib.make_train_step(model, optimizer, strategy, global_batch_size=batch_size,
                                           weight_decay=config.optimizer.weight_decay)
    return model, train_step, iterator


def train_rate(batch_size=64, precision="float32", steps=5, warmup=2, image_size=227,
               num_classes=1000, model_overrides=None, fused_lrn=True):
    """Images/s of bin/train's step: forward, loss, backward, the paper's momentum and decay."""
    with precision_policy(precision) as policy:
        _, train_step, iterator = paper_train_step(batch_size, image_size, num_classes, policy,
                                                   model_overrides, fused_lrn)
        stop = tf.constant(0.0)
        return steps * batch_size / _timed(lambda: train_step(iterator, stop)[0], steps, warmup)


def infer_rate(batch_size=64, precision="float32", steps=5, warmup=2, image_size=227,
               num_classes=1000):
    """Images/s of the forward pass in inference mode."""
    with precision_policy(precision):
        model = model_lib.build_model(_paper_model(num_classes=num_classes, image_size=image_size))
        images = tf.constant(synthetic_batch(batch_size, image_size, num_classes)[0])
        forward = tf.function(lambda: model(images, training=False))
        return steps * batch_size / _timed(forward, steps, warmup)


def lrn_rate(batch_size=128, precision="float32", steps=5, warmup=2, image_size=227,
             fused_lrn=True):
    """Images/s of the network's two LRN layers alone, forward and gradient, as in training.

    The layers of build_alexnet (lrn1 on conv1's maps, lrn2 on conv2's) under the policy,
    on ReLU-like inputs of the policy's compute dtype; fused_lrn: config.fused_lrn.
    """
    with precision_policy(precision):
        # The paper's convolutions (the LRN layers' input shapes); fc layers of 16 units, as
        # nothing here runs them: no 58M weights to initialize for two weightless layers.
        model = model_lib.build_model(_paper_model(num_classes=2, image_size=image_size, fc_units=16),
                                      fused_lrn=fused_lrn)
        layers = [model.get_layer("lrn1"), model.get_layer("lrn2")]
        rng = np.random.default_rng(0)
        inputs = [tf.cast(np.maximum(rng.normal(0, 30, (batch_size, *layer.input.shape[1:])), 0),
                          layer.compute_dtype) for layer in layers]

        @tf.function
        def forward_and_gradient():
            total = tf.constant(0.0)
            for layer, x in zip(layers, inputs):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    y = layer(x, training=True)
                dx = tape.gradient(y, x, output_gradients=tf.ones_like(y))
                # y is used too: with only its shape needed, the forward would be pruned.
                total += tf.cast(y[0, 0, 0, 0], tf.float32) + tf.cast(dx[0, 0, 0, 0], tf.float32)
            return total

        return steps * batch_size / _timed(forward_and_gradient, steps, warmup)
