"""serving/warmup.py: TF Serving warmup records, parsed back with tensorflow-serving-api and replayed."""
import os

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from keras_alexnet.serving import warmup


def _records(path):
    """Every record of a warmup file, parsed as tensorflow-serving-api's PredictionLog."""
    return [prediction_log_pb2.PredictionLog.FromString(r.numpy())
            for r in tf.data.TFRecordDataset(path)]


def test_predict_log_round_trips(tmp_path):
    images = np.array([b"\xff\xd8jpeg", b"x" * 300], object)
    logs = [warmup.predict_log({"image_bytes": images, "k": [1.5]}, "alexnet", "ten_crop"),
            warmup.predict_log({"images": np.zeros((1, 2, 2, 3), np.float32)})]
    path = warmup.write_warmup_file(str(tmp_path / "requests"), logs)
    first, second = _records(path)
    assert first.WhichOneof("log_type") == "predict_log"
    request = first.predict_log.request
    assert request.model_spec.name == "alexnet"
    assert request.model_spec.signature_name == "ten_crop"
    assert not request.model_spec.HasField("version")
    assert sorted(request.inputs) == ["image_bytes", "k"]
    np.testing.assert_array_equal(tf.make_ndarray(request.inputs["image_bytes"]), images)
    np.testing.assert_array_equal(tf.make_ndarray(request.inputs["k"]), [1.5])
    assert second.predict_log.request.model_spec.signature_name == "serving_default"
    floats = tf.make_ndarray(second.predict_log.request.inputs["images"])
    assert floats.dtype == np.float32 and floats.shape == (1, 2, 2, 3)
    assert warmup.read_warmup_file(path) == [first, second]


def test_records_are_deterministic(tmp_path):
    inputs = {"b": [1.0], "a": np.array([b"x"], object), "c": [2]}
    for name in ("one", "two"):
        warmup.write_warmup_file(str(tmp_path / name), [warmup.predict_log(inputs, "m")])
    assert (tmp_path / "one").read_bytes() == (tmp_path / "two").read_bytes()


def test_warmup_file_parses_and_its_requests_run(tiny_export):
    path = os.path.join(tiny_export["path"], "assets.extra", "tf_serving_warmup_requests")
    loaded = tf.saved_model.load(tiny_export["path"])
    signatures = []
    for log in _records(path):
        request = log.predict_log.request
        name = request.model_spec.signature_name
        signature = loaded.signatures[name]
        # Each request names exactly its signature's inputs, with their dtypes.
        specs = signature.structured_input_signature[1]
        assert sorted(request.inputs) == sorted(specs)
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        assert all(inputs[k].dtype == specs[k].dtype for k in specs)
        out = signature(**inputs)
        assert out["probabilities"].shape[0] == next(iter(inputs.values())).shape[0]
        assert np.isfinite(out["probabilities"].numpy()).all()
        signatures.append((name, int(out["probabilities"].shape[0])))
        assert request.model_spec.name == "alexnet"
    # Real images from the validation shards: one alone and a batch, each signature.
    assert signatures == [("serving_default", 1), ("serving_default", 4), ("ten_crop", 1),
                          ("predict_images", 1)]
