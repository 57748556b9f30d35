"""The ONNX runtime adapter: a model.onnx of bin/export --format=onnx run by ONNX Runtime (CPU).

load(path) -> runtimes.Loaded(predict, info), the contract of runtimes/__init__.py.
"""
from keras_alexnet.serving.runtimes import Loaded, model_info

OUTPUT = "probabilities"


def _reason(error):
    """ONNX Runtime's message without its '[ONNXRuntimeError] : 7 : INVALID_PROTOBUF :' prefix."""
    text = " ".join(str(error).split())
    return text.rsplit(" : ", 1)[-1] if text.startswith("[ONNXRuntimeError]") else text


def load(path):
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    except Exception as e:  # ONNX Runtime's pybind errors (InvalidProtobuf, Fail, ...) share no base
        raise ValueError(f"{path}: not an ONNX model ONNX Runtime can load ({_reason(e)})") \
            from None
    info = model_info.ModelInfo.from_strings(session.get_modelmeta().custom_metadata_map, path)
    inputs = session.get_inputs()
    outputs = [o.name for o in session.get_outputs()]
    if len(inputs) != 1 or OUTPUT not in outputs:
        raise ValueError(f"{path}: takes {[i.name for i in inputs]} and gives {outputs}, not one "
                         f"image batch in and {OUTPUT!r} out as bin/export --format=onnx writes")
    name = inputs[0].name

    def predict(images):
        return session.run([OUTPUT], {name: images})[0]

    return Loaded(predict, info)
