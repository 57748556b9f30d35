"""bin/predict: the top-5 classes of image files, through an export or a running TF Serving.

The classifier is one of client.py's three (the SavedModel in process, gRPC,
REST); what happens to the files is the same for all of them. Files are sent
in batches; a file that cannot be read, or is empty, is skipped before any
request. The model refuses a whole batch when one of its files is not an
image, so such a batch is sent again one file per request: the bad file is
reported with the model's reason and skipped, the others are still classified.
"""
import dataclasses
import io

import tensorflow as tf

from keras_alexnet.serving import client, export_folder

DEFAULT_BATCH_SIZE = 8
MAX_BATCH_BYTES = 32 * 1024 * 1024  # a request's image bytes (REST adds a third for base64)


@dataclasses.dataclass
class Prediction:
    path: str
    top: list = None      # [(class index, synset, name, score)] best first
    error: str = None     # why the file was skipped
    note: str = None      # what the user should know about the file (its EXIF orientation)


def load_classifier(saved_model, signature=client.DEFAULT_SIGNATURE):
    """client.SavedModelClassifier of a SavedModel (or of a model base path's newest version)."""
    return client.SavedModelClassifier(export_folder.resolve_saved_model(saved_model), signature)


def read_image(path):
    """(bytes, None), or (None, why) for a file that cannot be read or is empty."""
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            data = f.read()
    except (OSError, tf.errors.OpError) as e:
        return None, f"cannot read: {getattr(e, 'message', None) or e}"
    if not data:
        return None, "empty file (0 bytes)"
    return data, None


# EXIF orientations 2-8: how a viewer turns the stored pixels (a phone photo taken upright
# is often stored sideways with 6 or 8). Neither make_tfrecords nor the serving graph
# applies it (TensorFlow's decoders ignore EXIF), so the model sees what it was trained on.
_ORIENTATIONS = {2: "mirrored", 3: "rotated 180 degrees", 4: "flipped upside down",
                 5: "mirrored and rotated", 6: "rotated 90 degrees clockwise",
                 7: "mirrored and rotated", 8: "rotated 90 degrees counter-clockwise"}


def exif_orientation_note(data):
    """A sentence when an image's EXIF asks viewers to turn it (Orientation 2-8), else None."""
    try:
        from PIL import Image
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            orientation = image.getexif().get(0x0112)
    except Exception:  # not an image Pillow knows, or broken EXIF: the model will say
        return None
    if orientation not in _ORIENTATIONS:
        return None
    return (f"EXIF orientation {orientation} ({_ORIENTATIONS[orientation]} when shown) is not "
            "applied: the model sees the pixels as stored, as make_tfrecords stores them")


def error_summary(message):
    """The line of a TensorFlow runtime error that names the problem, without graph details."""
    noise = ("Graph execution error", "Detected at node", "<stack traces", "\t", " ", "File ")
    lines = [line for line in message.splitlines() if line.strip() and not line.startswith(noise)]
    line = lines[-1] if lines else message.strip()
    if "assertion failed: [" in line and line.endswith("]"):  # image_input.check_request
        line = line[line.index("assertion failed: [") + len("assertion failed: ["):-1]
    return line


def _refused(path, error):
    summary = error_summary(str(error))
    if summary.startswith("image_bytes[0] is "):  # the export's request check, on one file
        return Prediction(path, error=summary[len("image_bytes[0] is "):])
    return Prediction(path, error=f"not a decodable image: {summary}")


def _classify(classifier, items):
    """Predictions for [(path, bytes)]: one request, or one per file if the model refused it."""
    try:
        rows = classifier.classify([data for _, data in items])
    except client.BadRequest as error:
        if len(items) == 1:
            return [_refused(items[0][0], error)]
        return [p for item in items for p in _classify(classifier, [item])]
    return [Prediction(path, top=top) for (path, _), top in zip(items, rows)]


def _batches(paths, batch_size, max_bytes):
    """Groups of consecutive paths, each [(path, bytes or None, error or None)]."""
    group, count, size = [], 0, 0
    for path in paths:
        data, error = read_image(path)
        if count and data and (count >= batch_size or size + len(data) > max_bytes):
            yield group
            group, count, size = [], 0, 0
        group.append((path, data, error))
        if data:
            count, size = count + 1, size + len(data)
    if group:
        yield group


def predict_paths(classifier, paths, batch_size=DEFAULT_BATCH_SIZE, max_batch_bytes=MAX_BATCH_BYTES):
    """Yields a Prediction for every path, in order, as each batch is answered.

    client.ServerError (no answer from a server) propagates: it is no file's fault.
    """
    for group in _batches(paths, max(1, batch_size), max_batch_bytes):
        readable = [(path, data) for path, data, error in group if error is None]
        answered = iter(_classify(classifier, readable) if readable else [])
        for path, data, error in group:
            if error:
                yield Prediction(path, error=error)
                continue
            prediction = next(answered)
            prediction.note = exif_orientation_note(data)
            yield prediction


def predict_files(saved_model, paths, signature=client.DEFAULT_SIGNATURE,
                  batch_size=DEFAULT_BATCH_SIZE):
    """Predictions for every path, in order, through a SavedModel in this process."""
    return list(predict_paths(load_classifier(saved_model, signature), paths, batch_size))


def format_prediction(prediction):
    if prediction.error:
        return f"{prediction.path}: skipped, {prediction.error}"
    lines = [f"{prediction.path}:"]
    for rank, (index, synset, name, score) in enumerate(prediction.top, 1):
        lines.append(f"  {rank}. {score:7.2%}  {index:4d}  {synset}  {name}")
    return "\n".join(lines)
