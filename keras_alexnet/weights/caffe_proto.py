"""The few messages of Caffe's caffe.proto that a network file and its weights need, built at run time.

No vendored caffe.proto and no protoc: each message below is described with
descriptor_pb2 from the field numbers caffe.proto documents (BVLC/caffe,
src/caffe/proto/caffe.proto; proto2, package caffe), added to a private descriptor
pool and turned into classes by the protobuf library. Fields not listed here are kept
as unknown fields by the binary parser and skipped by the text parser
(`parse_prototxt`), so the files of every Caffe version read.

    NetParameter      name 1, input 3, input_dim 4, input_shape 8, layers 2 (V1), layer 100
    LayerParameter    name 1, type 2 (string), bottom 3, top 4, blobs 7, the *_param below
    V1LayerParameter  the legacy form of 2014's model zoo: name 4, type 5 (enum), bottom 2,
                      top 3, blobs 6, its *_param at other numbers
    BlobProto         shape 7 (BlobShape: dim 1), data 5 (packed float), double_data 8,
                      legacy num 1, channels 2, height 3, width 4

Reading a .caffemodel goes through `WeightsNet`: the same field numbers with only names,
types and blobs, and each blob kept as its serialized bytes; `RawBlob` then reads a blob's
packed floats as one bytes field, which NumPy views without a Python float per weight
(caffe.proto has declared data packed since 2013). A blob written unpacked (wire type
5 under the same number) lands in RawBlob's unknown fields and is re-read with BlobProto.
"""
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

_F = descriptor_pb2.FieldDescriptorProto
_OPTIONAL, _REPEATED = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
_TYPES = {"string": _F.TYPE_STRING, "bytes": _F.TYPE_BYTES, "float": _F.TYPE_FLOAT,
          "double": _F.TYPE_DOUBLE, "int32": _F.TYPE_INT32, "int64": _F.TYPE_INT64,
          "uint32": _F.TYPE_UINT32, "bool": _F.TYPE_BOOL}

# V1LayerParameter.LayerType, every value (a prototxt may name any of them).
V1_LAYER_TYPES = {
    "NONE": 0, "ABSVAL": 35, "ACCURACY": 1, "ARGMAX": 30, "BNLL": 2, "CONCAT": 3,
    "CONTRASTIVE_LOSS": 37, "CONVOLUTION": 4, "DATA": 5, "DECONVOLUTION": 39, "DROPOUT": 6,
    "DUMMY_DATA": 32, "EUCLIDEAN_LOSS": 7, "ELTWISE": 25, "EXP": 38, "FLATTEN": 8,
    "HDF5_DATA": 9, "HDF5_OUTPUT": 10, "HINGE_LOSS": 28, "IM2COL": 11, "IMAGE_DATA": 12,
    "INFOGAIN_LOSS": 13, "INNER_PRODUCT": 14, "LRN": 15, "MEMORY_DATA": 29,
    "MULTINOMIAL_LOGISTIC_LOSS": 16, "MVN": 34, "POOLING": 17, "POWER": 26, "RELU": 18,
    "SIGMOID": 19, "SIGMOID_CROSS_ENTROPY_LOSS": 27, "SILENCE": 36, "SOFTMAX": 20,
    "SOFTMAX_LOSS": 21, "SPLIT": 22, "SLICE": 33, "TANH": 23, "WINDOW_DATA": 24, "THRESHOLD": 31,
}
# The V1 names of the types AlexNet uses, as LayerParameter spells them.
V1_TYPE_NAMES = {"CONVOLUTION": "Convolution", "RELU": "ReLU", "LRN": "LRN", "POOLING": "Pooling",
                 "INNER_PRODUCT": "InnerProduct", "DROPOUT": "Dropout", "SOFTMAX": "Softmax",
                 "DATA": "Data", "IMAGE_DATA": "ImageData", "MEMORY_DATA": "MemoryData",
                 "CONCAT": "Concat", "TANH": "TanH", "SIGMOID": "Sigmoid"}

_ENUMS = {
    "PoolMethod": {"MAX": 0, "AVE": 1, "STOCHASTIC": 2},
    "RoundMode": {"CEIL": 0, "FLOOR": 1},
    "NormRegion": {"ACROSS_CHANNELS": 0, "WITHIN_CHANNEL": 1},
    "LayerType": V1_LAYER_TYPES,
}

# message: [(field, number, type, label, default)]; a type that is not a scalar names a
# message (or an enum of _ENUMS). Defaults are caffe.proto's.
_MESSAGES = {
    "BlobShape": [("dim", 1, "int64", _REPEATED, None)],
    "BlobProto": [("shape", 7, "BlobShape", _OPTIONAL, None),
                  ("data", 5, "float", _REPEATED, None),
                  ("double_data", 8, "double", _REPEATED, None),
                  ("num", 1, "int32", _OPTIONAL, "0"), ("channels", 2, "int32", _OPTIONAL, "0"),
                  ("height", 3, "int32", _OPTIONAL, "0"), ("width", 4, "int32", _OPTIONAL, "0")],
    "ConvolutionParameter": [
        ("num_output", 1, "uint32", _OPTIONAL, None), ("bias_term", 2, "bool", _OPTIONAL, "true"),
        ("pad", 3, "uint32", _REPEATED, None), ("kernel_size", 4, "uint32", _REPEATED, None),
        ("stride", 6, "uint32", _REPEATED, None), ("dilation", 18, "uint32", _REPEATED, None),
        ("pad_h", 9, "uint32", _OPTIONAL, None), ("pad_w", 10, "uint32", _OPTIONAL, None),
        ("kernel_h", 11, "uint32", _OPTIONAL, None), ("kernel_w", 12, "uint32", _OPTIONAL, None),
        ("stride_h", 13, "uint32", _OPTIONAL, None), ("stride_w", 14, "uint32", _OPTIONAL, None),
        ("group", 5, "uint32", _OPTIONAL, "1"), ("axis", 16, "int32", _OPTIONAL, "1")],
    "LRNParameter": [
        ("local_size", 1, "uint32", _OPTIONAL, "5"), ("alpha", 2, "float", _OPTIONAL, "1"),
        ("beta", 3, "float", _OPTIONAL, "0.75"),
        ("norm_region", 4, "NormRegion", _OPTIONAL, "ACROSS_CHANNELS"),
        ("k", 5, "float", _OPTIONAL, "1")],
    "PoolingParameter": [
        ("pool", 1, "PoolMethod", _OPTIONAL, "MAX"), ("pad", 4, "uint32", _OPTIONAL, "0"),
        ("pad_h", 9, "uint32", _OPTIONAL, "0"), ("pad_w", 10, "uint32", _OPTIONAL, "0"),
        ("kernel_size", 2, "uint32", _OPTIONAL, None), ("kernel_h", 5, "uint32", _OPTIONAL, None),
        ("kernel_w", 6, "uint32", _OPTIONAL, None), ("stride", 3, "uint32", _OPTIONAL, "1"),
        ("stride_h", 7, "uint32", _OPTIONAL, None), ("stride_w", 8, "uint32", _OPTIONAL, None),
        ("global_pooling", 12, "bool", _OPTIONAL, "false"),
        ("round_mode", 13, "RoundMode", _OPTIONAL, "CEIL")],
    "InnerProductParameter": [
        ("num_output", 1, "uint32", _OPTIONAL, None), ("bias_term", 2, "bool", _OPTIONAL, "true"),
        ("axis", 5, "int32", _OPTIONAL, "1"), ("transpose", 6, "bool", _OPTIONAL, "false")],
    "DropoutParameter": [("dropout_ratio", 1, "float", _OPTIONAL, "0.5")],
    "ReLUParameter": [("negative_slope", 1, "float", _OPTIONAL, "0")],
    "InputParameter": [("shape", 1, "BlobShape", _REPEATED, None)],
    "LayerParameter": [
        ("name", 1, "string", _OPTIONAL, None), ("type", 2, "string", _OPTIONAL, None),
        ("bottom", 3, "string", _REPEATED, None), ("top", 4, "string", _REPEATED, None),
        ("blobs", 7, "BlobProto", _REPEATED, None),
        ("convolution_param", 106, "ConvolutionParameter", _OPTIONAL, None),
        ("dropout_param", 108, "DropoutParameter", _OPTIONAL, None),
        ("inner_product_param", 117, "InnerProductParameter", _OPTIONAL, None),
        ("input_param", 143, "InputParameter", _OPTIONAL, None),
        ("lrn_param", 118, "LRNParameter", _OPTIONAL, None),
        ("pooling_param", 121, "PoolingParameter", _OPTIONAL, None),
        ("relu_param", 123, "ReLUParameter", _OPTIONAL, None)],
    "V1LayerParameter": [
        ("name", 4, "string", _OPTIONAL, None), ("type", 5, "LayerType", _OPTIONAL, None),
        ("bottom", 2, "string", _REPEATED, None), ("top", 3, "string", _REPEATED, None),
        ("blobs", 6, "BlobProto", _REPEATED, None),
        ("convolution_param", 10, "ConvolutionParameter", _OPTIONAL, None),
        ("dropout_param", 12, "DropoutParameter", _OPTIONAL, None),
        ("inner_product_param", 17, "InnerProductParameter", _OPTIONAL, None),
        ("lrn_param", 18, "LRNParameter", _OPTIONAL, None),
        ("pooling_param", 19, "PoolingParameter", _OPTIONAL, None),
        ("relu_param", 30, "ReLUParameter", _OPTIONAL, None)],
    "NetParameter": [
        ("name", 1, "string", _OPTIONAL, None), ("input", 3, "string", _REPEATED, None),
        ("input_dim", 4, "int32", _REPEATED, None),
        ("input_shape", 8, "BlobShape", _REPEATED, None),
        ("layer", 100, "LayerParameter", _REPEATED, None),
        ("layers", 2, "V1LayerParameter", _REPEATED, None)],
    # What a .caffemodel is read with (see the module docstring).
    "RawBlob": [("shape", 7, "BlobShape", _OPTIONAL, None), ("data", 5, "bytes", _OPTIONAL, None),
                ("double_data", 8, "bytes", _OPTIONAL, None),
                ("num", 1, "int32", _OPTIONAL, "0"), ("channels", 2, "int32", _OPTIONAL, "0"),
                ("height", 3, "int32", _OPTIONAL, "0"), ("width", 4, "int32", _OPTIONAL, "0")],
    "WeightsLayer": [("name", 1, "string", _OPTIONAL, None), ("type", 2, "string", _OPTIONAL, None),
                     ("blobs", 7, "bytes", _REPEATED, None)],
    "WeightsV1Layer": [("name", 4, "string", _OPTIONAL, None),
                       ("type", 5, "LayerType", _OPTIONAL, None),
                       ("blobs", 6, "bytes", _REPEATED, None)],
    "WeightsNet": [("name", 1, "string", _OPTIONAL, None),
                   ("layer", 100, "WeightsLayer", _REPEATED, None),
                   ("layers", 2, "WeightsV1Layer", _REPEATED, None)],
}
_PACKED = {("BlobShape", "dim"), ("BlobProto", "data"), ("BlobProto", "double_data")}


def _file_descriptor():
    proto = descriptor_pb2.FileDescriptorProto(name="keras_alexnet/caffe_subset.proto",
                                               package="caffe", syntax="proto2")
    for name, values in _ENUMS.items():
        enum = proto.enum_type.add(name=name)
        for value_name, number in values.items():
            enum.value.add(name=value_name, number=number)
    for message_name, fields in _MESSAGES.items():
        message = proto.message_type.add(name=message_name)
        for field_name, number, kind, label, default in fields:
            field = message.field.add(name=field_name, number=number, label=label)
            if kind in _TYPES:
                field.type = _TYPES[kind]
            else:
                field.type = _F.TYPE_ENUM if kind in _ENUMS else _F.TYPE_MESSAGE
                field.type_name = f".caffe.{kind}"
            if default is not None:
                field.default_value = default
            if (message_name, field_name) in _PACKED:
                field.options.packed = True
    return proto


def _classes():
    pool = descriptor_pool.DescriptorPool()  # private: no clash with another caffe.* in the process
    pool.Add(_file_descriptor())
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"caffe.{name}"))
            for name in _MESSAGES}


_CLASSES = _classes()
NetParameter = _CLASSES["NetParameter"]
LayerParameter = _CLASSES["LayerParameter"]
V1LayerParameter = _CLASSES["V1LayerParameter"]
BlobProto = _CLASSES["BlobProto"]
BlobShape = _CLASSES["BlobShape"]
RawBlob = _CLASSES["RawBlob"]
WeightsNet = _CLASSES["WeightsNet"]


def parse_prototxt(text):
    """A NetParameter from a .prototxt's text; fields this module does not describe are skipped."""
    return text_format.Parse(text, NetParameter(), allow_unknown_field=True,
                             allow_unknown_extension=True)
