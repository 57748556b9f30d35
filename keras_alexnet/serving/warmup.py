"""TF Serving warmup records (`assets.extra/tf_serving_warmup_requests`) without tensorflow-serving-api.

TF Serving replays the records of that file, each a serialized
`tensorflow.serving.PredictionLog` in a TFRecord, when it loads a version, so
the first user request does not pay for graph initialisation. The
tensorflow-serving-api package that defines PredictionLog is not a dependency
of this project (and pins its own TensorFlow), so the few messages a Predict
warmup needs are written here in protobuf wire format. The tensors inside are
real `tensorflow.TensorProto`s made by `tf.make_tensor_proto`.

Field numbers, from tensorflow_serving/apis/{prediction_log,predict,model}.proto:
    PredictionLog.predict_log = 6      PredictLog.request = 1
    PredictRequest.model_spec = 1      PredictRequest.inputs = 2 (map<string, TensorProto>)
    ModelSpec.name = 1                 ModelSpec.signature_name = 3
"""
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2

WARMUP_FILENAME = "tf_serving_warmup_requests"
WARMUP_DIR = "assets.extra"

_LENGTH_DELIMITED = 2  # protobuf wire type of strings, bytes and sub-messages


def _varint(value):
    """Protobuf base-128 varint of a non-negative integer."""
    if value < 0:
        raise ValueError(f"varint of a negative number {value}")
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number, payload):
    """One length-delimited field: tag, length, payload (bytes or str)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return _varint(number << 3 | _LENGTH_DELIMITED) + _varint(len(payload)) + payload


def predict_log(inputs, model_name="", signature_name="serving_default"):
    """A serialized PredictionLog holding one PredictRequest.

    Args:
      inputs: {input alias: tensor-like or tf.make_tensor_proto result}.
      model_name: ModelSpec.name (TF Serving ignores it for warmup; useful for logs).
      signature_name: the signature the request runs.
    """
    spec = b""
    if model_name:
        spec += _field(1, model_name)
    if signature_name:
        spec += _field(3, signature_name)
    request = _field(1, spec)
    for key in sorted(inputs):  # deterministic bytes: maps have no order on the wire
        value = inputs[key]
        if not isinstance(value, tensor_pb2.TensorProto):
            value = tf.make_tensor_proto(value)
        entry = _field(1, key) + _field(2, value.SerializeToString())
        request += _field(2, entry)
    return _field(6, _field(1, request))


def write_warmup_file(path, logs):
    """Writes serialized PredictionLogs as TFRecords (the format TF Serving reads)."""
    with tf.io.TFRecordWriter(path) as writer:
        for log in logs:
            writer.write(log)
    return path
