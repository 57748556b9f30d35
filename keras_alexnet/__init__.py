"""keras_alexnet: the AlexNet of Krizhevsky, Sutskever & Hinton (NIPS 2012) in TensorFlow/Keras 3.

Modules: model (the network), preprocessing and input_pipeline (tf.data),
tfrecords and stats (make_tfrecords), train, export, evaluate, benchmark.
"""
__version__ = "0.1.0"
