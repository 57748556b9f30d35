"""TF Serving warmup records: `assets.extra/tf_serving_warmup_requests` (export_folder.py).

TF Serving replays the records of that file, each a serialized
`tensorflow.serving.PredictionLog` in a TFRecord, when it loads a version, so
the first user request does not pay for graph initialisation. The messages
are tensorflow-serving-api's (`prediction_log_pb2`, `predict_pb2`), the
tensors `tf.make_tensor_proto`'s: the same request a gRPC client sends
(client.predict_request).
"""
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from keras_alexnet.serving import client


def predict_log(inputs, model_name="", signature_name="serving_default"):
    """A PredictionLog holding one PredictRequest.

    Args:
      inputs: {input alias: tensor-like or tf.make_tensor_proto result}.
      model_name: ModelSpec.name (TF Serving ignores it for warmup; useful for logs).
      signature_name: the signature the request runs.
    """
    log = prediction_log_pb2.PredictionLog()
    log.predict_log.request.CopyFrom(client.predict_request(inputs, model_name, signature_name))
    return log


def write_warmup_file(path, logs):
    """Writes PredictionLogs as TFRecords (the format TF Serving reads)."""
    with tf.io.TFRecordWriter(path) as writer:
        for log in logs:
            # Deterministic: the inputs map in key order, so an export's bytes do not vary.
            writer.write(log.SerializeToString(deterministic=True))
    return path


def read_warmup_file(path):
    """The PredictionLogs of a warmup file, parsed with tensorflow-serving-api."""
    return [prediction_log_pb2.PredictionLog.FromString(record.numpy())
            for record in tf.data.TFRecordDataset(path)]
