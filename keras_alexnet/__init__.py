"""keras_alexnet: the AlexNet of Krizhevsky, Sutskever & Hinton (NIPS 2012) in TensorFlow/Keras 3.

Top level: config (the paper's recipe), model (the paper's network), bfloat16_conv
(a CPU workaround the network's convolutions use), evaluation (the operations
training, bin/evaluate and the export share), progress (the one progress bar).
Subpackages by role, lower ones never importing higher ones: data (image sources
to TFRecords and statistics, tf.data input), training, weights (networks trained
elsewhere, imported as run folders), serving (export, evaluation, prediction),
benchmarks; cli holds the programs bin/ and the alexnet-* commands run.

The keras.applications-style API (applications.py), loaded on first use so that
`import keras_alexnet` stays cheap for the command-line programs:

    from keras_alexnet import AlexNet, preprocess_input, decode_predictions

The network's Keras layers are registered serializable as soon as TensorFlow or
Keras is imported (before or after keras_alexnet), so that keras.saving.load_model
reads the .keras files bin/export --format=keras writes.
"""
import importlib.util
import os
import sys

# TensorFlow enables its oneDNN CPU kernels by default only on CPUs with AVX-512
# VNNI/BF16/AMX; on AVX2 CPUs they still train this network ~1.5x faster
# (docs/BENCHMARKS.md). Takes effect when keras_alexnet is imported before
# tensorflow, as every bin/ program does; TF_ENABLE_ONEDNN_OPTS=0 turns it off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"

_API = ("AlexNet", "preprocess_input", "decode_predictions")


def __getattr__(name):
    if name in _API:
        from keras_alexnet import applications
        return getattr(applications, name)
    raise AttributeError(f"module 'keras_alexnet' has no attribute {name!r}")


def _register_layers():
    from keras_alexnet import input_statistics, model  # noqa: F401  (register_keras_serializable)


class _RegisterLayersAfterImport:
    """Registers the layers once the first of tensorflow/keras is imported (each imports the
    other, so the first one finishing means both are whole)."""

    def find_spec(self, name, path=None, target=None):
        if name not in ("keras", "tensorflow"):
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            exec_module = spec.loader.exec_module

            def exec_and_register(module):
                exec_module(module)
                _register_layers()

            spec.loader.exec_module = exec_and_register
        return spec


if "keras" in sys.modules or "tensorflow" in sys.modules:
    _register_layers()
else:
    sys.meta_path.insert(0, _RegisterLayersAfterImport())
