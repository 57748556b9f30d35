"""Data: image sources -> TFRecord shards and statistics on disk (layout.py), and tf.data input.

The lowest layer: nothing here imports keras_alexnet.training or keras_alexnet.serving
(tests/test_layout.py checks it).
"""
