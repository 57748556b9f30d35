"""LRN and its gradient for training, as XLA kernels that read and write the mixed-precision dtype.

`tf.nn.local_response_normalization` has float32 kernels only on CPU (and no float16
one on GPU), so under mixed precision the layer used to cast bfloat16 maps to float32
and back around it, and its CPU gradient (LRNGrad) is a scalar loop: on conv1's and
conv2's maps at batch 128 the LRN took ~0.45 s of a ~1.05 s bfloat16 step on a 2-core
AVX-512 CPU (docs/BENCHMARKS.md); these kernels do the same work ~5x faster. `lrn(x, ...)`
here computes the same function with `tf.custom_gradient`: the forward and the gradient are
one and two XLA-compiled loops
that read bfloat16 (or float16, or float32) and compute in float32 inside, so the numbers
are float32's rounded once (tests/test_lrn.py checks both against float32 `tf.nn.lrn`
and its autodiff); the only float32 tensor written is the gradient's intermediate.

    b_i = x_i * n_i^-beta,  n_i = bias + alpha * sum_{j in W(i)} x_j^2
    dx_j = dy_j * n_j^-beta - 2 alpha beta x_j * sum_{i in W(j)} dy_i x_i n_i^(-beta-1)

W(i) is channel i's window of 2 * depth_radius + 1 channels inside its tower: with
towers=2 each half of the channels is normalized on its own (the paper's two GPUs).
With relu=True the kernels normalize relu(x) and their gradient includes the ReLU's:
model.py builds conv1 and conv2 without activation and lets lrn1 and lrn2 apply the ReLU,
which saves the ReLU gradient's own pass over conv1's and conv2's maps.

Training only: layers.LocalResponseNormalization calls it with training=True; inference
(evaluation, the SavedModel for TF Serving) runs `tf.nn.local_response_normalization`,
so no XLA reaches an exported graph. The window sums are written as shifted copies
(concatenate and select), the form XLA's CPU backend fuses into one loop; a banded
matmul, slices of a padded copy or XLA's own LRN (a reduce-window) measured 2-3.4x slower.
"""
import functools

import numpy as np
import tensorflow as tf


def _neg_power(n, beta, extra=0):
    """n ** -(beta + extra) for n > 0 and a whole number extra, in XLA CPU's cheapest form.

    The paper's beta 0.75 as sqrt(sqrt(n)) / n (0.5 as sqrt(n) / n): square roots and a
    division, each correctly rounded. XLA's CPU rsqrt is a long sequence: the forward kernel
    on conv1's maps took 49 ms with rsqrt(n) * sqrt(rsqrt(n)), 152 with pow, 30 this way
    (docs/BENCHMARKS.md).
    """
    denominator = n
    for _ in range(extra):
        denominator = denominator * n
    if beta == 0.75:
        return tf.sqrt(tf.sqrt(n)) / denominator
    if beta == 0.5:
        return tf.sqrt(n) / denominator
    return tf.exp(-(beta + extra) * tf.math.log(n))


def _window_sum(v, depth_radius, towers):
    """Sum over each channel's window of 2 * depth_radius + 1 channels within its tower."""
    channels = v.shape[-1]
    per_tower = channels // towers
    position = np.arange(channels) % per_tower
    total = v
    for k in range(-depth_radius, depth_radius + 1):
        if k == 0 or abs(k) >= per_tower:
            continue
        inside = tf.constant((position + k >= 0) & (position + k < per_tower))
        if k > 0:
            shifted = tf.concat([v[..., k:], tf.zeros_like(v[..., :k])], -1)
        else:
            shifted = tf.concat([tf.zeros_like(v[..., k:]), v[..., :k]], -1)
        total = total + tf.where(inside, shifted, tf.zeros_like(shifted))
    return total


@functools.cache
def lrn_function(depth_radius, bias, alpha, beta, towers, relu=False):
    """The LRN (of relu(x) with relu) as a function of x with its own gradient, cached."""
    depth_radius, towers = int(depth_radius), int(towers)
    bias, alpha, beta = float(bias), float(alpha), float(beta)

    def activated(x):
        xf = tf.cast(x, tf.float32)
        return tf.nn.relu(xf) if relu else xf

    def norm(xf):
        return bias + alpha * _window_sum(xf * xf, depth_radius, towers)

    @tf.function(jit_compile=True)
    def forward(x):
        xf = activated(x)
        return tf.cast(xf * _neg_power(norm(xf), beta), x.dtype)

    # The gradient in two loops: the second sums the first's output over each window,
    # which a single loop would recompute five times.
    @tf.function(jit_compile=True)
    def scaled_upstream(x, dy):
        xf = activated(x)
        return tf.cast(dy, tf.float32) * xf * _neg_power(norm(xf), beta, extra=1)

    @tf.function(jit_compile=True)
    def input_gradient(x, dy, scaled):
        xf = activated(x)
        dx = (tf.cast(dy, tf.float32) * _neg_power(norm(xf), beta)
              - (2.0 * alpha * beta) * xf * _window_sum(scaled, depth_radius, towers))
        if relu:  # the ReLU's gradient: none where it cut x to 0
            dx = tf.where(xf > 0.0, dx, 0.0)
        return tf.cast(dx, x.dtype)

    @tf.custom_gradient
    def lrn(x):
        def grad(dy):
            dy = tf.cast(dy, x.dtype)
            return input_gradient(x, dy, scaled_upstream(x, dy))
        # stop_gradient: no tape records the call (which would compile a variant
        # returning every float32 intermediate for a gradient that is never used).
        return forward(tf.stop_gradient(x)), grad

    return lrn


def lrn(x, depth_radius, bias, alpha, beta, towers=1, relu=False):
    """Cross-channel LRN of x ([..., C], any float dtype) per tower, as tf.nn.lrn computes it.

    relu: normalize relu(x), the ReLU and its gradient inside the same kernels (one pass
    over the maps less in the gradient than a separate ReLU's).
    """
    if x.shape[-1] is None or x.shape[-1] % towers:
        raise ValueError(f"LRN needs a known channel count that splits into {towers} towers, "
                         f"got shape {x.shape}")
    return lrn_function(depth_radius, bias, alpha, beta, towers, bool(relu))(x)
