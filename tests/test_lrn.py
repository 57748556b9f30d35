"""The LRN that training runs (fused_lrn.py): tf.nn.lrn's function and float32 autodiff's gradient.

The reference is TensorFlow's own float32 LRN and its registered gradient (LRNGrad),
applied to each tower's channels on their own.
"""
import numpy as np
import pytest
import keras
import tensorflow as tf

from keras_alexnet import fused_lrn
from keras_alexnet import layers as layers_lib
from fixtures import tiny_model


def reference_lrn(x, depth_radius, bias, alpha, beta, towers):
    """float32 tf.nn.lrn of each tower's channels, computed tower by tower."""
    parts = tf.split(tf.cast(x, tf.float32), towers, axis=-1)
    return tf.concat([tf.nn.local_response_normalization(p, depth_radius, bias, alpha, beta)
                      for p in parts], axis=-1)


def value_and_gradient(fn, x, upstream):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
    return y, tape.gradient(y, x, output_gradients=tf.cast(upstream, y.dtype))


def activations(shape, seed, scale):
    """ReLU-like maps, some zeros, large enough that the normalization matters."""
    rng = np.random.default_rng(seed)
    return np.maximum(rng.normal(0, scale, shape), 0).astype(np.float32)


# (depth_radius, bias, alpha, beta, towers): the paper's, its formula as printed, odd cases.
CASES = [
    (2, 2.0, 2e-5, 0.75, 2),
    (2, 2.0, 1e-4, 0.75, 1),
    (2, 1.0, 1e-2, 0.5, 2),
    (3, 1.5, 3e-3, 0.6, 3),   # the generic pow path, three towers
    (1, 2.0, 5e-3, 0.75, 4),  # towers of 3 channels: windows clipped at both ends
]


@pytest.mark.parametrize("depth_radius,bias,alpha,beta,towers", CASES)
def test_forward_and_gradient_match_tf_lrn_in_float32(depth_radius, bias, alpha, beta, towers):
    params = (depth_radius, bias, alpha, beta, towers)
    scale = 5.0 / np.sqrt(alpha)  # alpha * x^2 of order 25: far from the identity
    x = tf.constant(activations((3, 5, 4, 12), 0, scale))
    upstream = tf.constant(np.random.default_rng(1).normal(0, 1, (3, 5, 4, 12)), tf.float32)
    y, dx = value_and_gradient(lambda v: fused_lrn.lrn(v, *params), x, upstream)
    y_ref, dx_ref = value_and_gradient(lambda v: reference_lrn(v, *params), x, upstream)
    assert y.dtype == tf.float32 and dx.dtype == tf.float32
    # The normalization is strong here: the output is far from the input.
    assert np.max(np.abs(y_ref.numpy() - x.numpy())) > 0.5 * np.max(np.abs(x.numpy()))
    np.testing.assert_allclose(y.numpy(), y_ref.numpy(), rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(dx.numpy(), dx_ref.numpy(), rtol=2e-5,
                               atol=2e-5 * np.max(np.abs(dx_ref.numpy())))


def test_relu_inside_equals_a_relu_before_it():
    """relu=True: tf.nn.lrn of relu(x), and the gradient through both, in float32."""
    params = (2, 2.0, 2e-5, 0.75, 2)
    rng = np.random.default_rng(7)
    x = tf.constant(rng.normal(0, 600.0, (3, 5, 4, 16)), tf.float32)  # half of it negative
    upstream = tf.constant(rng.normal(0, 1, (3, 5, 4, 16)), tf.float32)
    y, dx = value_and_gradient(lambda v: fused_lrn.lrn(v, *params, relu=True), x, upstream)
    y_ref, dx_ref = value_and_gradient(lambda v: reference_lrn(tf.nn.relu(v), *params), x,
                                       upstream)
    assert np.mean(dx_ref.numpy() == 0) > 0.3  # the ReLU's gradient cut these
    np.testing.assert_array_equal(dx.numpy() == 0, dx_ref.numpy() == 0)
    np.testing.assert_allclose(y.numpy(), y_ref.numpy(), rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(dx.numpy(), dx_ref.numpy(), rtol=2e-5,
                               atol=2e-5 * np.max(np.abs(dx_ref.numpy())))


@pytest.mark.parametrize("dtype", [tf.bfloat16, tf.float16])
def test_low_precision_is_float32_rounded_once(dtype):
    """bfloat16/float16 in and out, float32 inside: the float32 result rounded to the dtype.

    A computation in the low precision itself would be off by several of its units.
    """
    params = (2, 2.0, 2e-5, 0.75, 2)
    x = tf.cast(activations((4, 9, 9, 96), 2, 400.0), dtype)  # conv1-like: 96 maps in 2 towers
    upstream = tf.cast(np.random.default_rng(3).normal(0, 1e-3, (4, 9, 9, 96)), dtype)
    y, dx = value_and_gradient(lambda v: fused_lrn.lrn(v, *params), x, upstream)
    y_ref, dx_ref = value_and_gradient(lambda v: reference_lrn(v, *params),
                                       tf.cast(x, tf.float32), tf.cast(upstream, tf.float32))
    assert y.dtype == dtype and dx.dtype == dtype
    for got, ref in ((y, y_ref), (dx, dx_ref)):
        rounded = tf.cast(tf.cast(ref, dtype), tf.float32).numpy()
        got = tf.cast(got, tf.float32).numpy()
        assert np.mean(got == rounded) > 0.99  # the same number but for float32 ties
        # One unit in the last place at most (float16's subnormals have a fixed one, 2^-24).
        ulp = np.maximum(np.abs(rounded) * (2.0 ** -7 if dtype == tf.bfloat16 else 2.0 ** -10),
                         1e-38 if dtype == tf.bfloat16 else 2.0 ** -24)
        assert np.all(np.abs(got - rounded) <= ulp)


def _graph_ops(fn, *specs):
    graph_def = tf.function(fn).get_concrete_function(*specs).graph.as_graph_def()
    nodes = list(graph_def.node)
    functions = list(graph_def.library.function)
    for f in functions:
        nodes.extend(f.node_def)
    compiled = [f.signature.name for f in functions if f.attr["_XlaMustCompile"].b]
    compiled += [n.name for n in nodes if n.attr["_XlaMustCompile"].b]
    return {n.op for n in nodes}, compiled


def test_training_runs_the_fused_lrn_and_inference_tf_lrn():
    layer = layers_lib.LocalResponseNormalization(towers=2)
    spec = tf.TensorSpec([None, 6, 6, 8], tf.float32)
    ops, compiled = _graph_ops(lambda x: layer(x, training=False), spec)
    assert "LRN" in ops and not compiled
    ops, compiled = _graph_ops(lambda x: layer(x, training=True), spec)
    assert "LRN" not in ops and compiled
    plain = layers_lib.LocalResponseNormalization(towers=2, fused_training=False)
    ops, compiled = _graph_ops(lambda x: plain(x, training=True), spec)
    assert "LRN" in ops and not compiled


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_layer_training_and_inference_agree(policy, fused, relu):
    """Both paths of the layer compute the same numbers under every policy."""
    keras.mixed_precision.set_global_policy(policy)
    try:
        layer = layers_lib.LocalResponseNormalization(towers=2, fused_training=fused, relu=relu)
        x = np.random.default_rng(4).normal(0, 300.0, (2, 7, 7, 16)).astype(np.float32)
        if not relu:
            x = np.maximum(x, 0)
        train, infer = layer(x, training=True), layer(x, training=False)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert train.dtype == infer.dtype == layer.compute_dtype
    tol = 1e-6 if policy == "float32" else 2.0 ** -7
    np.testing.assert_allclose(tf.cast(train, tf.float32), tf.cast(infer, tf.float32), rtol=tol)


def test_fused_lrn_trains_the_network_like_tf_lrn():
    """A few SGD steps of the tiny network give the same weights with either LRN."""
    rng = np.random.default_rng(5)
    images = rng.normal(0, 60, (4, 67, 67, 3)).astype(np.float32)
    labels = np.array([0, 1, 2, 3], np.int32)
    weights = []
    for fused in (True, False):
        model = tiny_model(dropout=0.0, seed=3, fused_lrn=fused)
        optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
        for _ in range(3):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels, model(images, training=True)))
            optimizer.apply(tape.gradient(loss, model.trainable_variables),
                            model.trainable_variables)
        weights.append(model.get_weights())
    changed = [np.max(np.abs(w - w0))
               for w, w0 in zip(weights[0], tiny_model(seed=3).get_weights())]
    assert max(changed) > 1e-3  # the steps moved the weights
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_channels_must_split_into_towers():
    with pytest.raises(ValueError, match="splits into 2 towers"):
        fused_lrn.lrn(tf.ones((1, 2, 2, 5)), 2, 2.0, 1e-4, 0.75, towers=2)
