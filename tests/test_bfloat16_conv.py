"""The CPU bfloat16 workaround: float32 gradients equal autodiff's, and saved files keep loading."""
import json
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet import bfloat16_conv
from fixtures import tiny_model



@pytest.mark.parametrize("strides, padding", [((1, 1), "SAME"), ((4, 4), "VALID")])
def test_bfloat16_convolution_with_float32_gradients_matches_autodiff(strides, padding):
    rng = np.random.default_rng(0)
    x = tf.cast(rng.normal(size=(2, 15, 15, 4)), tf.bfloat16)
    k = tf.cast(rng.normal(size=(3, 3, 4, 6)), tf.bfloat16)
    w = tf.constant(rng.normal(size=(1, 1, 1, 6)), tf.float32)

    def grads(conv, x, k):
        with tf.GradientTape() as tape:
            tape.watch([x, k])
            y = conv(x, k)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * w)
        return (y, *tape.gradient(loss, [x, k]))

    y, dx, dk = grads(lambda x, k: bfloat16_conv._conv2d_with_float32_gradients(
        x, k, strides, padding), x, k)
    # Reference: float32 autodiff on the same bfloat16-rounded values.
    y_ref, dx_ref, dk_ref = grads(lambda x, k: tf.nn.conv2d(x, k, [1, *strides, 1], padding),
                                  tf.cast(x, tf.float32), tf.cast(k, tf.float32))
    assert y.dtype == dx.dtype == dk.dtype == tf.bfloat16
    for got, want in [(y, y_ref), (dx, dx_ref), (dk, dk_ref)]:
        np.testing.assert_allclose(tf.cast(got, tf.float32), want, rtol=2e-2, atol=2e-2)


def test_model_gradients_agree_with_and_without_the_float32_gradient_path(monkeypatch):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = tiny_model(seed=2, dropout=0.0)
    x = np.random.default_rng(0).normal(0, 50, (2, 67, 67, 3)).astype("float32")

    def grads():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(x, training=True) ** 2)
        return [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]

    monkeypatch.setattr(bfloat16_conv, "_slow_bfloat16_convolution_gradients", lambda: True)
    fast = grads()
    monkeypatch.setattr(bfloat16_conv, "_slow_bfloat16_convolution_gradients", lambda: False)
    plain = grads()
    for a, b, v in zip(fast, plain, model.trainable_variables):
        scale = np.abs(b).max() + 1e-6
        np.testing.assert_allclose(a / scale, b / scale, atol=5e-2, err_msg=v.path)


def test_registered_name_is_the_one_saved_keras_files_hold(tmp_path):
    """Files saved when the layer was model.Conv2D name it keras_alexnet>Conv2D; they still load."""
    assert keras.saving.get_registered_name(bfloat16_conv.Float32GradConv2D) == "keras_alexnet>Conv2D"
    assert bfloat16_conv.Float32GradConv2D.__name__ != "Conv2D"  # no shadowing keras.layers.Conv2D
    model = tiny_model(seed=3)
    path = tmp_path / "new.keras"
    model.save(path)
    # Rewrite the file as the old class name wrote it: class_name "Conv2D".
    with zipfile.ZipFile(path) as z:
        files = {name: z.read(name) for name in z.namelist()}
    config = json.loads(files["config.json"])
    found = []

    def rename(node):
        if isinstance(node, dict):
            if node.get("registered_name") == "keras_alexnet>Conv2D":
                node["class_name"] = "Conv2D"
                found.append(node)
            for value in node.values():
                rename(value)
        elif isinstance(node, list):
            for value in node:
                rename(value)

    rename(config)
    assert len(found) >= 2  # conv1, conv3 (and the towers inside conv2/4/5)
    files["config.json"] = json.dumps(config).encode()
    old = tmp_path / "old.keras"
    with zipfile.ZipFile(old, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    loaded = keras.saving.load_model(old)
    assert isinstance(loaded.get_layer("conv1"), bfloat16_conv.Float32GradConv2D)
    x = np.random.default_rng(0).normal(0, 50, (2, 67, 67, 3)).astype("float32")
    np.testing.assert_allclose(loaded(x), model(x), rtol=1e-5, atol=1e-5)
