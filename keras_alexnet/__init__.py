"""keras_alexnet: the AlexNet of Krizhevsky, Sutskever & Hinton (NIPS 2012) in TensorFlow/Keras 3.

Top level: config (the paper's recipe), model (the paper's network), bfloat16_conv
(a CPU workaround the network's convolutions use), evaluation (the operations
training, bin/evaluate and the export share), progress (the one progress bar).
Subpackages by role, lower ones never importing higher ones: data (image sources
to TFRecords and statistics, tf.data input), training, weights (networks trained
elsewhere, imported as run folders), serving (export, evaluation, prediction),
benchmarks; cli holds the programs bin/ and the alexnet-* commands run.
"""
import os

# TensorFlow enables its oneDNN CPU kernels by default only on CPUs with AVX-512
# VNNI/BF16/AMX; on AVX2 CPUs they still train this network ~1.5x faster
# (docs/BENCHMARKS.md). Takes effect when keras_alexnet is imported before
# tensorflow, as every bin/ program does; TF_ENABLE_ONEDNN_OPTS=0 turns it off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
