"""What bin/benchmark times: training steps and inference on synthetic input.

Each function returns images per second; `bin/benchmark` prints one JSON line in
the same form as ../shared/bench/seed_reference.py so the two can be compared
side by side.
"""
import time

import keras
import numpy as np
import tensorflow as tf

from keras_alexnet import model as model_lib


def _timed(fn, steps, warmup):
    """Seconds for `steps` calls of fn after `warmup` untimed ones (fn returns a tensor)."""
    for _ in range(warmup):
        fn().numpy()
    start = time.perf_counter()
    for _ in range(steps):
        result = fn()
    result.numpy()  # the last step's value: waits for all queued work
    return time.perf_counter() - start


def _synthetic_batch(batch_size, image_size, num_classes):
    rng = np.random.default_rng(0)
    images = tf.constant(rng.normal(0, 50, (batch_size, image_size, image_size, 3)), tf.float32)
    labels = tf.constant(rng.integers(0, num_classes, batch_size), tf.int32)
    return images, labels


def train_rate(batch_size=64, precision="float32", steps=5, warmup=2, image_size=227,
               num_classes=1000):
    """Images/s of full training steps: forward, backward, SGD momentum update."""
    keras.mixed_precision.set_global_policy(precision)
    try:
        model = model_lib.build_alexnet(num_classes, image_size)
        optimizer = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        images, labels = _synthetic_batch(batch_size, image_size, num_classes)

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                loss = loss_fn(labels, model(images, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        return steps * batch_size / _timed(step, steps, warmup)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def infer_rate(batch_size=64, precision="float32", steps=5, warmup=2, image_size=227,
               num_classes=1000):
    """Images/s of the forward pass in inference mode."""
    keras.mixed_precision.set_global_policy(precision)
    try:
        model = model_lib.build_alexnet(num_classes, image_size)
        images, _ = _synthetic_batch(batch_size, image_size, num_classes)
        forward = tf.function(lambda: model(images, training=False))
        return steps * batch_size / _timed(forward, steps, warmup)
    finally:
        keras.mixed_precision.set_global_policy("float32")
