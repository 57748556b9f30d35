"""What a network exported outside TensorFlow carries besides its weights: labels and preprocessing.

A SavedModel holds its mean image, labels and config as variables. An ONNX model (or a
LiteRT one) takes preprocessed images, so a client needs the same things beside the
network: `ModelInfo` is them, and `to_strings` / `from_strings` turn it into string
key/value pairs, the form ONNX's metadata_props (and LiteRT's metadata) hold, so the
model file stays self-contained as the SavedModel is.

    keras_alexnet.metadata     JSON: export.run_metadata (config, checkpoint, image_size,
                               resize, jpeg_quality, resize_mode, normalization, ...)
    keras_alexnet.labels       JSON: {"synsets": [...], "class_names": [...]} in label order
    keras_alexnet.mean_image   base64 of the .npy of the mean image, float32 [R, R, 3] (0..255)
    keras_alexnet.std          JSON: the per-channel divisor [3] (ones for the paper's mean image)
"""
import base64
import dataclasses
import io
import json

import numpy as np

PREFIX = "keras_alexnet."
_KEYS = ("metadata", "labels", "mean_image", "std")


@dataclasses.dataclass
class ModelInfo:
    metadata: dict          # export.run_metadata's fields
    synsets: list
    class_names: list
    mean_image: np.ndarray  # float32 [R, R, 3]
    std: np.ndarray         # float32 [3]

    @property
    def image_size(self):
        return int(self.metadata["image_size"])

    def to_strings(self):
        """{key: str} (the keys above)."""
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(self.mean_image, np.float32), allow_pickle=False)
        return {PREFIX + "metadata": json.dumps(self.metadata, sort_keys=True),
                PREFIX + "labels": json.dumps({"synsets": list(self.synsets),
                                               "class_names": list(self.class_names)}),
                PREFIX + "mean_image": base64.b64encode(buffer.getvalue()).decode("ascii"),
                PREFIX + "std": json.dumps([float(v) for v in np.asarray(self.std).ravel()])}

    @classmethod
    def from_strings(cls, strings, where):
        """The ModelInfo of to_strings' pairs; ValueError naming `where` if any is missing or bad."""
        missing = [PREFIX + k for k in _KEYS if PREFIX + k not in strings]
        if missing:
            raise ValueError(f"{where}: not a keras_alexnet export (no {', '.join(missing)} in "
                             "its metadata); bin/export --format=onnx writes them")
        try:
            metadata = json.loads(strings[PREFIX + "metadata"])
            labels = json.loads(strings[PREFIX + "labels"])
            mean = np.load(io.BytesIO(base64.b64decode(strings[PREFIX + "mean_image"])),
                           allow_pickle=False)
            std = np.asarray(json.loads(strings[PREFIX + "std"]), np.float32)
            int(metadata["image_size"]), int(metadata["jpeg_quality"]), str(metadata["resize_mode"])
            info = cls(metadata, list(labels["synsets"]), list(labels["class_names"]),
                       mean.astype(np.float32), std)
        except (ValueError, KeyError, TypeError, OSError) as e:
            raise ValueError(f"{where}: its keras_alexnet metadata is damaged ({type(e).__name__}: "
                             f"{e})") from None
        if mean.ndim != 3 or std.shape != (3,) or len(info.synsets) != len(info.class_names):
            raise ValueError(f"{where}: its keras_alexnet metadata is damaged (a mean image of "
                             f"shape {mean.shape}, {std.size} std values, "
                             f"{len(info.synsets)} synsets for {len(info.class_names)} names)")
        return info
