"""A LiteRT (.tflite) export, loaded in LiteRT: preprocessed float32 images in, probabilities out.

    predict = tflite_runtime.load("models/alexnet_tflite")   # or VERSION/, or VERSION/model.tflite
    probabilities = predict(images)   # float32 [N, S, S, 3], preprocessed as for predict_images

The runtime is `ai_edge_litert.interpreter.Interpreter` (tf.lite.Interpreter is
deprecated): the file runs in LiteRT alone, without TensorFlow or this project
(`Interpreter(model_path=...).get_signature_runner()(images=...)`). This module is the
reading half of the folder tflite_export.py writes:

    EXPORT_DIR/<version>/model.tflite         the network, one signature (SIGNATURE)
    EXPORT_DIR/<version>/model.tflite.sha256  its SHA-256, as `sha256sum -c` reads it
    EXPORT_DIR/<version>/labels.txt           data/layout.py's format
    EXPORT_DIR/<version>/metadata.json        image size, resize, normalization, quantization,
                                              the ops kept in float, the run's config
    EXPORT_DIR/<version>/preprocessing.npz    mean_image [R, R, 3] and std [3], as the SavedModel
                                              subtracts and divides before predict_images

A file that is not a LiteRT model (damaged, cut short, another format) is one sentence
naming it, never a crash in the flatbuffer reader: the file is checked against its
SHA-256 when the export's checksum file is beside it (a flatbuffer has no checksum of its
own: damaged weights would load and answer wrongly), against the flatbuffer's own
structure (its identifier, its root table inside the file), then by LiteRT's verifier.
"""
import hashlib
import os
import struct

import numpy as np

MODEL_FILENAME = "model.tflite"
CHECKSUM_FILENAME = MODEL_FILENAME + ".sha256"
PREPROCESSING_FILENAME = "preprocessing.npz"
SIGNATURE = "serving_default"  # the converter's name for a model's one signature
INPUT, PROBABILITIES, LOGITS = "images", "probabilities", "logits"
_IDENTIFIER = b"TFL3"  # LiteRT's flatbuffer file identifier, bytes 4-8


def resolve(path):
    """The model.tflite of a .tflite file, a version folder or a model base path (newest version)."""
    if os.path.isfile(path):
        return path
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: no such file or folder")
    if os.path.isfile(os.path.join(path, MODEL_FILENAME)):
        return os.path.join(path, MODEL_FILENAME)
    versions = [int(n) for n in os.listdir(path) if n.isdigit()
                and os.path.isfile(os.path.join(path, n, MODEL_FILENAME))]
    if not versions:
        raise FileNotFoundError(f"{path}: neither a .tflite file nor a folder holding "
                                f"{MODEL_FILENAME} (or integer versions that hold one)")
    return os.path.join(path, str(max(versions)), MODEL_FILENAME)


def check_model_bytes(content, path):
    """Raises ValueError (one sentence naming path) unless content looks like a whole LiteRT model.

    A flatbuffer starts with the offset of its root table (uint32, little-endian) and, for
    LiteRT, the identifier TFL3; a cut-short file's root table or its vtable falls outside
    the bytes. What passes here is left to the interpreter, whose own errors are caught too.
    """
    what = None
    if len(content) < 16:
        what = f"{len(content)} bytes, too short for a model"
    elif content[4:8] != _IDENTIFIER:
        what = f"it does not carry LiteRT's identifier {_IDENTIFIER.decode()} (another format?)"
    else:
        root = struct.unpack_from("<I", content, 0)[0]
        vtable = root - struct.unpack_from("<i", content, root)[0] if root + 4 <= len(content) else -1
        if not 8 <= root < len(content) or not 0 <= vtable < len(content) - 4:
            what = "its structure points past its end (cut short?)"
    if what:
        raise ValueError(f"{path} is not a LiteRT model ({what}); export it again with "
                         "bin/export --format=tflite")


def checksum_text(content):
    """The checksum file's line for a model's bytes: `sha256sum`'s format."""
    return f"{hashlib.sha256(content).hexdigest()}  {MODEL_FILENAME}\n"


def check_checksum(content, path):
    """Raises ValueError when the checksum file beside path holds another SHA-256."""
    checksum = os.path.join(os.path.dirname(path), CHECKSUM_FILENAME)
    if not os.path.isfile(checksum):
        return
    with open(checksum) as f:
        expected = f.read().split()[:1]
    if expected != [hashlib.sha256(content).hexdigest()]:
        raise ValueError(f"{path} is not the LiteRT model that was exported (its SHA-256 is not "
                         f"the one in {CHECKSUM_FILENAME}: damaged or replaced); export it again "
                         "with bin/export --format=tflite")


def interpreter(path, num_threads=None):
    """An ai_edge_litert Interpreter of a checked .tflite file (resolve()'s rules for path)."""
    from ai_edge_litert.interpreter import Interpreter
    path = resolve(path)
    with open(path, "rb") as f:
        content = f.read()
    check_checksum(content, path)
    check_model_bytes(content, path)
    try:
        model = Interpreter(model_content=content, num_threads=num_threads)
        runner = model.get_signature_runner(SIGNATURE)
    except (ValueError, RuntimeError) as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path} is not a LiteRT model of this project's export ({detail}); "
                         "export it again with bin/export --format=tflite") from None
    inputs = runner.get_input_details()
    if INPUT not in inputs or PROBABILITIES not in runner.get_output_details():
        raise ValueError(f"{path}: its signature takes {sorted(inputs)}, not this project's "
                         f"{INPUT!r} -> {PROBABILITIES!r}; export it with bin/export --format=tflite")
    return model


class Classifier:
    """callable(images float32 [N, S, S, 3]) -> probabilities float32 [N, C], through LiteRT.

    One Interpreter is not thread-safe: give each thread its own (load() again).
    """

    def __init__(self, path, num_threads=None):
        self.path = resolve(path)
        self._interpreter = interpreter(self.path, num_threads)
        self._runner = self._interpreter.get_signature_runner(SIGNATURE)
        image = self._runner.get_input_details()[INPUT]["shape_signature"]
        self.image_size = int(image[1])
        self.num_classes = int(self._runner.get_output_details()[PROBABILITIES]["shape_signature"][-1])

    def outputs(self, images):
        """{'probabilities', 'logits'}: float32 [N, C] each."""
        images = np.asarray(images, np.float32)
        size = self.image_size
        if images.ndim != 4 or images.shape[1:] != (size, size, 3):
            raise ValueError(f"{self.path} takes preprocessed images of shape [N, {size}, "
                             f"{size}, 3], got {list(images.shape)}")
        if not len(images):  # LiteRT cannot resize a graph to a batch of 0
            empty = np.zeros((0, self.num_classes), np.float32)
            return {PROBABILITIES: empty, LOGITS: empty.copy()}
        return {k: np.array(v) for k, v in self._runner(**{INPUT: images}).items()}

    def __call__(self, images):
        return self.outputs(images)[PROBABILITIES]


def load(path, num_threads=None):
    """Classifier of a .tflite file, a version folder or a model base path (its newest version)."""
    return Classifier(path, num_threads)


def read_preprocessing(path):
    """(mean_image [R, R, 3], std [3]) saved beside the model.tflite resolve(path) finds."""
    folder = os.path.dirname(resolve(path))
    npz = os.path.join(folder, PREPROCESSING_FILENAME)
    if not os.path.isfile(npz):
        raise FileNotFoundError(f"{npz} is missing: the mean image the model's inputs are "
                                "centred with; export again with bin/export --format=tflite")
    with np.load(npz) as arrays:
        return arrays["mean_image"].astype(np.float32), arrays["std"].astype(np.float32)
