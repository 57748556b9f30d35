"""bfloat16 training on CPUs without native bfloat16: convolutions whose gradients run in float32.

On x86 CPUs without AVX512-BF16/AMX, oneDNN runs bfloat16 convolutions forward
but not backward: TensorFlow's generic Conv2DBackpropInput/Filter kernels are
about 25x slower than float32 there (docs/BENCHMARKS.md). `Float32GradConv2D`
computes those two gradients in float32 and casts them back, on such CPUs only
(the probe reads /proc/cpuinfo once); everywhere else it is keras.layers.Conv2D.
The network (model.py) builds its convolutions with it.
"""
import functools
import os

import keras
import tensorflow as tf
from keras import layers


@functools.cache
def cpu_has_native_bfloat16(cpuinfo="/proc/cpuinfo"):
    """True on x86 CPUs with AVX512-BF16 or AMX-BF16 (their flags in /proc/cpuinfo)."""
    try:
        with open(cpuinfo) as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


@functools.cache
def _slow_bfloat16_convolution_gradients():
    """True where bfloat16 convolution gradients fall back to TensorFlow's slow kernels.

    On x86 CPUs without AVX512-BF16/AMX, oneDNN runs bfloat16 convolutions forward
    but not backward: TensorFlow's generic Conv2DBackpropInput/Filter kernels are
    about 25x slower than float32 there (docs/BENCHMARKS.md). GPUs are unaffected.
    """
    if tf.config.list_physical_devices("GPU"):
        return False
    if not os.path.exists("/proc/cpuinfo"):
        return False
    return not cpu_has_native_bfloat16()


def _conv2d_with_float32_gradients(x, kernel, strides, padding):
    """conv2d in the inputs' dtype whose two gradients are computed in float32."""
    stride = [1, *strides, 1]
    # A tensor, not the variable: custom_gradient must not capture variables, and
    # the cast's own gradient carries dk back to the float32 variable.
    kernel = tf.cast(tf.convert_to_tensor(kernel), x.dtype)

    @tf.custom_gradient
    def conv(x, kernel):
        def grad(dy):
            x32, k32, dy32 = (tf.cast(t, tf.float32) for t in (x, kernel, dy))
            dx = tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(x), filter=k32,
                                                out_backprop=dy32, strides=stride, padding=padding)
            dk = tf.raw_ops.Conv2DBackpropFilter(input=x32, filter_sizes=tf.shape(kernel),
                                                 out_backprop=dy32, strides=stride, padding=padding)
            return tf.cast(dx, x.dtype), tf.cast(dk, kernel.dtype)
        return tf.nn.conv2d(x, kernel, stride, padding), grad

    return conv(x, kernel)


# Registered as "keras_alexnet>Conv2D", the name this layer was saved under before it
# had its own module and class name: .keras files saved then still load.
@keras.saving.register_keras_serializable(package="keras_alexnet", name="Conv2D")
class Float32GradConv2D(layers.Conv2D):
    """keras.layers.Conv2D, except that under bfloat16 on CPUs without native bfloat16
    its gradients are computed in float32 (same result up to rounding, ~20x faster there)."""

    def convolution_op(self, inputs, kernel):
        if (inputs.dtype == tf.bfloat16 and self.dilation_rate == (1, 1)
                and self.data_format == "channels_last"
                and _slow_bfloat16_convolution_gradients()):
            return _conv2d_with_float32_gradients(inputs, kernel, self.strides,
                                                  self.padding.upper())
        return super().convolution_op(inputs, kernel)
