"""keras_alexnet: the AlexNet of Krizhevsky, Sutskever & Hinton (2012) in TensorFlow/Keras 3."""
import pathlib

from setuptools import find_packages, setup

PROGRAMS = ["make_tfrecords", "train", "evaluate", "export", "predict", "benchmark", "study", "report",
            "first_steps", "import_weights", "data_service"]

setup(
    name="keras_alexnet",
    version="0.1.0",
    description=__doc__.splitlines()[0],
    long_description=pathlib.Path(__file__).with_name("README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["keras_alexnet", "keras_alexnet.*"]),
    install_requires=[
        # The Linux `tensorflow` wheel runs on CPU too; GPU hosts add [and-cuda].
        "tensorflow>=2.21,<2.22",
        "keras>=3.10",
        "tensorflow-datasets>=4.9",
        "scipy",
        "numpy",
        "absl-py",
        "ml-collections",
        # make_tfrecords: decodes CMYK/grayscale/PNG-in-.JPEG files that
        # tf.io.decode_jpeg refuses, and detects truncated files.
        "pillow>=10",
        # bin/study's figure1.png and bin/report's figures (the Agg backend: no display needed).
        "matplotlib",
        # TF Serving's messages: the export's warmup records and bin/predict's
        # --server/--rest clients. Its 2.21 requires tensorflow>=2.21,<3, so it
        # never moves the TensorFlow above.
        "tensorflow-serving-api>=2.21,<2.22",
        "grpcio",
        # tf.summary.scalar/image (training's TensorBoard logs) and the
        # `tensorboard --logdir` command; tensorflow 2.21 no longer installs it.
        "tensorboard>=2.21,<2.22",
        # The profiler's trace viewer in `tensorboard --logdir` (config.profile_steps).
        "tensorboard-plugin-profile",
        # bin/export --format=onnx and bin/predict on a model.onnx (ONNX Runtime).
        "tf2onnx>=1.17",
        "onnxruntime",
        # bin/predict and the benchmarks on a .tflite file: LiteRT, the runtime that
        # replaces the deprecated tf.lite.Interpreter (bin/export --format=tflite
        # converts with TensorFlow's own converter).
        "ai-edge-litert",
    ],
    extras_require={
        "and-cuda": ["tensorflow[and-cuda]>=2.21,<2.22"],
        "test": ["pytest>=7", "pytest-xdist",
                 # tests/test_import_weights.py: Caffe's network computed by OpenCV's importer
                 # (OpenCV 5 dropped readNetFromCaffe).
                 "opencv-python-headless>=4.8,<5"],
    },
    # Each bin/ program is also an installed command: alexnet-train, ...
    entry_points={"console_scripts": [
        f"alexnet-{name.replace('_', '-')}=keras_alexnet.cli.{name}:run" for name in PROGRAMS]},
)
