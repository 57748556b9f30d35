"""TF Serving's request batching: `assets.extra/batching_parameters.txt` (export_folder.py).

`tensorflow_model_server --enable_batching --batching_parameters_file=FILE` merges
concurrent requests of one signature into one run of the graph. FILE is a text-format
`tensorflow.serving.BatchingParameters` (tensorflow_serving/servables/tensorflow/
session_bundle_config.proto); each field left out takes TF Serving's default. bin/export
writes one with every version, its values and the reasons for them in `#` comments, for
the user to adapt to the serving host (BUILD.md shows the launch).

The message is not in the tensorflow-serving-api package, so read_batching_parameters
builds it from the upstream .proto's field names and numbers in a private descriptor pool:
a file TF Serving would refuse for an unknown field or a wrong type is refused here too.
"""
import os

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf import wrappers_pb2

from keras_alexnet.serving import export_folder

# A request larger than max_batch_size is refused by TF Serving ("Task size ... is larger
# than maximum input batch size"), so the file never says less than the largest batch the
# export itself sends (its warmup requests, which must all succeed for the version to load).
DEFAULT_MAX_BATCH_SIZE = 64

# BatchingParameters' fields (name, number, type), as in session_bundle_config.proto.
_INT64_VALUE, _STRING_VALUE, _BOOL_VALUE = (".google.protobuf.Int64Value",
                                            ".google.protobuf.StringValue",
                                            ".google.protobuf.BoolValue")
_FIELDS = (("max_batch_size", 1, _INT64_VALUE), ("batch_timeout_micros", 2, _INT64_VALUE),
           ("max_enqueued_batches", 3, _INT64_VALUE), ("num_batch_threads", 4, _INT64_VALUE),
           ("thread_pool_name", 5, _STRING_VALUE), ("allowed_batch_sizes", 6, None),
           ("pad_variable_length_inputs", 7, None),
           ("enable_large_batch_splitting", 8, _BOOL_VALUE),
           ("max_execution_batch_size", 9, _INT64_VALUE))


def batching_parameters_text(*, max_batch_size, num_batch_threads):
    """The file's text: BatchingParameters in text format, each value with its reasons."""
    return f"""\
# TF Serving request batching for this export, read by
#   tensorflow_model_server --enable_batching --batching_parameters_file=THIS_FILE ...
# A text-format tensorflow.serving.BatchingParameters; a field left out takes TF Serving's
# default. Written by keras_alexnet's bin/export; edit it for your serving host.
#
# Requests of one signature are merged into one run of the graph: a request waits until a
# batch thread is free (or the timeout below passes), then runs with the others queued.
# A request's images stay one unit (never split across batches), and a batch fails as a
# whole: one client's undecodable image fails every request merged with it (INVALID_ARGUMENT);
# bin/predict then resends its files one per request, other clients should do the same.

# The most images one run of the graph takes. A request of more images is refused, so it
# must cover the largest request a client sends (bin/predict's --batch_size, 8 by default)
# and this export's warmup requests (which must all succeed for the version to load). The
# signatures take any batch size (their batch dimension is None). ten_crop runs 10 crops
# per image: 10x the activations of serving_default's batch.
# CPU: TF Serving's guide suggests a high value (with the timeout at 0 a batch only grows
#   while requests queue); 64 bounds a batch's memory (decoded images plus activations).
# GPU: raise it (hundreds) while throughput still improves at a latency you accept, within
#   the GPU's memory (untested here: no GPU and no model server on the machine that wrote this).
max_batch_size {{ value: {max_batch_size} }}

# How long (microseconds) the first request of a batch waits for others before the batch
# runs anyway, even if not full: the latency added to a lone request.
# CPU: 0 (TF Serving's CPU advice; requests still merge while every thread is busy), then
#   try 1000-10000 if throughput under load matters more than a lone request's latency.
# GPU: a few milliseconds (1000-5000) so that batches fill: the GPU's time per image falls
#   with the batch size.
batch_timeout_micros {{ value: 0 }}

# Batches run at the same time. CPU and GPU: the serving host's CPU cores (TF Serving's
# advice for both; decoding and resizing, in the graph, run on the CPU). {num_batch_threads} is the
# core count of the host that exported this model: set your serving host's (or delete the
# line: TF Serving then uses all the cores it sees).
num_batch_threads {{ value: {num_batch_threads} }}

# Batches that may wait for a thread; a request beyond them is refused at once (UNAVAILABLE)
# instead of waiting. Online serving: as many as num_batch_threads (TF Serving's advice: a
# load balancer retries a refused request on another replica rather than queueing here).
# Bulk jobs: raise it (thousands), bounded by memory.
max_enqueued_batches {{ value: {num_batch_threads} }}

# allowed_batch_sizes is left out: it pads each batch to the next allowed size by repeating
# a request's first image (decoded and run again, wasted work here); it is for graphs
# compiled for fixed batch sizes (XLA, TPUs), which this export is not.
"""


def write_batching_parameters(version_dir, *, largest_request, num_batch_threads=None):
    """Writes VERSION/assets.extra/batching_parameters.txt; returns its path.

    largest_request: the most images in a request the export itself sends (its warmup:
    largest_request(logs)).
    num_batch_threads: default: this host's CPU cores.
    """
    text = batching_parameters_text(
        max_batch_size=max(DEFAULT_MAX_BATCH_SIZE, int(largest_request)),
        num_batch_threads=num_batch_threads or os.cpu_count() or 1)
    export_folder.write_extra_files(version_dir, {export_folder.BATCHING_FILENAME: text})
    return export_folder.batching_path(version_dir)


def largest_request(logs):
    """The most images (first dimension of an input) in any of these PredictionLogs."""
    return max((tensor.tensor_shape.dim[0].size for log in logs
                for tensor in log.predict_log.request.inputs.values()
                if tensor.tensor_shape.dim), default=1)


def read_batching_parameters(path):
    """A batching parameters file as a dict of the fields it sets ({name: value}).

    Raises ValueError naming the file if it is not a text-format BatchingParameters.
    """
    with open(path) as f:
        text = f.read()
    message = _message_class()()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as e:
        raise ValueError(f"{path}: not a TF Serving BatchingParameters text proto ({e})") from None
    fields = {}
    for field, value in message.ListFields():
        fields[field.name] = (value.value if field.message_type is not None else
                              list(value) if field.name == "allowed_batch_sizes" else value)
    return fields


_CLASS = []


def _message_class():
    """tensorflow.serving.BatchingParameters, built once in a descriptor pool of its own."""
    if _CLASS:
        return _CLASS[0]
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    proto = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
        package="tensorflow.serving", syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"])
    message = proto.message_type.add(name="BatchingParameters")
    field_type = descriptor_pb2.FieldDescriptorProto
    for name, number, type_name in _FIELDS:
        field = message.field.add(name=name, number=number, label=field_type.LABEL_OPTIONAL)
        if type_name:
            field.type, field.type_name = field_type.TYPE_MESSAGE, type_name
        elif name == "allowed_batch_sizes":
            field.type, field.label = field_type.TYPE_INT64, field_type.LABEL_REPEATED
        else:
            field.type = field_type.TYPE_BOOL
    pool.Add(proto)
    _CLASS.append(message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")))
    return _CLASS[0]
