"""serving/warmup.py: TF Serving warmup records, parsed with tensorflow_serving's field numbers."""
import os

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from tensorflow.core.framework import tensor_pb2

from keras_alexnet.serving import warmup


def _prediction_log_class():
    """PredictionLog built from tensorflow_serving's field numbers, on TF's TensorProto."""
    f = descriptor_pb2.FileDescriptorProto(name="test_prediction_log.proto",
                                           package="tensorflow.serving", syntax="proto3",
                                           dependency=["tensorflow/core/framework/tensor.proto"])
    T = descriptor_pb2.FieldDescriptorProto
    spec = f.message_type.add(name="ModelSpec")
    spec.field.add(name="name", number=1, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
    spec.field.add(name="signature_name", number=3, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
    request = f.message_type.add(name="PredictRequest")
    request.field.add(name="model_spec", number=1, type=T.TYPE_MESSAGE, label=T.LABEL_OPTIONAL,
                      type_name=".tensorflow.serving.ModelSpec")
    entry = request.nested_type.add(name="InputsEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=T.TYPE_MESSAGE, label=T.LABEL_OPTIONAL,
                    type_name=".tensorflow.TensorProto")
    request.field.add(name="inputs", number=2, type=T.TYPE_MESSAGE, label=T.LABEL_REPEATED,
                      type_name=".tensorflow.serving.PredictRequest.InputsEntry")
    log = f.message_type.add(name="PredictLog")
    log.field.add(name="request", number=1, type=T.TYPE_MESSAGE, label=T.LABEL_OPTIONAL,
                  type_name=".tensorflow.serving.PredictRequest")
    prediction_log = f.message_type.add(name="PredictionLog")
    prediction_log.field.add(name="predict_log", number=6, type=T.TYPE_MESSAGE,
                             label=T.LABEL_OPTIONAL, type_name=".tensorflow.serving.PredictLog")
    pool = descriptor_pool.DescriptorPool()
    for dependency in (tensor_pb2,):  # TensorProto and what it imports
        _add_file(pool, dependency.DESCRIPTOR)
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(
        "tensorflow.serving.PredictionLog"))


def _add_file(pool, file_descriptor):
    for dependency in file_descriptor.dependencies:
        _add_file(pool, dependency)
    try:
        pool.FindFileByName(file_descriptor.name)
    except KeyError:
        proto = descriptor_pb2.FileDescriptorProto()
        file_descriptor.CopyToProto(proto)
        pool.Add(proto)


def test_varint():
    assert warmup._varint(0) == b"\x00"
    assert warmup._varint(1) == b"\x01"
    assert warmup._varint(300) == b"\xac\x02"
    assert warmup._varint(2 ** 35) == b"\x80\x80\x80\x80\x80\x01"
    with pytest.raises(ValueError):
        warmup._varint(-1)


def test_predict_log_wire_format_parses():
    PredictionLog = _prediction_log_class()
    images = np.array([b"\xff\xd8jpeg", b"x" * 300], object)
    log = PredictionLog.FromString(warmup.predict_log({"image_bytes": images, "k": [1.5]},
                                                      "alexnet", "ten_crop"))
    request = log.predict_log.request
    assert request.model_spec.name == "alexnet"
    assert request.model_spec.signature_name == "ten_crop"
    assert sorted(request.inputs) == ["image_bytes", "k"]
    np.testing.assert_array_equal(tf.make_ndarray(request.inputs["image_bytes"]), images)
    np.testing.assert_array_equal(tf.make_ndarray(request.inputs["k"]), [1.5])


def test_warmup_file_parses_and_its_requests_run(tiny_export):
    PredictionLog = _prediction_log_class()
    path = os.path.join(tiny_export["path"], "assets.extra", "tf_serving_warmup_requests")
    loaded = tf.saved_model.load(tiny_export["path"])
    signatures = []
    for record in tf.data.TFRecordDataset(path):
        request = PredictionLog.FromString(record.numpy()).predict_log.request
        name = request.model_spec.signature_name
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        out = loaded.signatures[name](**inputs)
        assert out["probabilities"].shape[0] == next(iter(inputs.values())).shape[0]
        signatures.append((name, int(out["probabilities"].shape[0])))
    assert request.model_spec.name == "alexnet"
    # Real images from the validation shards: one alone and a batch, each signature.
    assert signatures == [("serving_default", 1), ("serving_default", 4), ("ten_crop", 1),
                          ("predict_images", 1)]
