"""keras_alexnet: the AlexNet of Krizhevsky, Sutskever & Hinton (NIPS 2012) in TensorFlow/Keras 3.

Modules: model (the network), preprocessing and input_pipeline (tf.data),
tfrecords and stats (make_tfrecords), train, export, evaluate, benchmark.
"""
import os

# TensorFlow enables its oneDNN CPU kernels by default only on CPUs with AVX-512
# VNNI/BF16/AMX; on AVX2 CPUs they still train this network ~1.5x faster
# (docs/BENCHMARKS.md). Takes effect when keras_alexnet is imported before
# tensorflow, as every bin/ program does; TF_ENABLE_ONEDNN_OPTS=0 turns it off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
