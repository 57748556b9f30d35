"""bin/predict: the top-5 classes of image files, through an export's serving_default signature.

Each file is its own request, so one unreadable or undecodable file is reported
and skipped while the others are still classified.
"""
import dataclasses

import tensorflow as tf

from keras_alexnet.serving.evaluate import resolve_saved_model


@dataclasses.dataclass
class Prediction:
    path: str
    top: list = None      # [(class index, synset, name, score)] best first
    error: str = None     # why the file was skipped


def load_classifier(saved_model, signature="serving_default"):
    """The signature function of a SavedModel (or of a model base path's newest version)."""
    path = resolve_saved_model(saved_model)
    return path, tf.saved_model.load(path).signatures[signature]


def predict_file(classify, path):
    """One Prediction; a file that cannot be read or decoded gets `error` instead of `top`."""
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            data = f.read()
    except (OSError, tf.errors.OpError) as e:
        return Prediction(path, error=f"cannot read: {getattr(e, 'message', None) or e}")
    if not data:
        return Prediction(path, error="empty file (0 bytes)")
    try:
        out = classify(image_bytes=tf.constant([data]))
    except tf.errors.InvalidArgumentError as e:
        summary = error_summary(e.message)
        if summary.startswith("image_bytes[0] is "):  # the export's request check: one file
            return Prediction(path, error=summary[len("image_bytes[0] is "):])
        return Prediction(path, error=f"not a decodable image: {summary}")
    rows = zip(out["classes"][0].numpy(), out["synsets"][0].numpy(),
               out["class_names"][0].numpy(), out["scores"][0].numpy())
    return Prediction(path, top=[(int(c), s.decode(), n.decode(), float(p)) for c, s, n, p in rows])


def error_summary(message):
    """The line of a TensorFlow runtime error that names the problem, without graph details."""
    noise = ("Graph execution error", "Detected at node", "<stack traces", "\t", " ", "File ")
    lines = [line for line in message.splitlines() if line.strip() and not line.startswith(noise)]
    line = lines[-1] if lines else message.strip()
    if line.startswith("assertion failed: [") and line.endswith("]"):  # the export's check_request
        line = line[len("assertion failed: ["):-1]
    return line


def predict_files(saved_model, paths, signature="serving_default"):
    """Predictions for every path, in order."""
    _, classify = load_classifier(saved_model, signature)
    return [predict_file(classify, p) for p in paths]


def format_prediction(prediction):
    if prediction.error:
        return f"{prediction.path}: skipped, {prediction.error}"
    lines = [f"{prediction.path}:"]
    for rank, (index, synset, name, score) in enumerate(prediction.top, 1):
        lines.append(f"  {rank}. {score:7.2%}  {index:4d}  {synset}  {name}")
    return "\n".join(lines)
