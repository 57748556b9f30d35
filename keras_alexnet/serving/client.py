"""Three ways to classify encoded images with an export, behind one interface.

    SavedModelClassifier(path)                          the SavedModel loaded in this process
    GrpcClassifier("HOST:8500", model_name="alexnet")   a running TF Serving, gRPC PredictionService
    RestClassifier("http://HOST:8501", ...)             a running TF Serving, REST predict API

Each is built for one signature that takes encoded image bytes (export.py's
`serving_default` or `ten_crop`, input `image_bytes` string [-1]); its input
name is read from the signature itself (TF Serving's model metadata for the
servers), so a wrong --signature fails at once with the signatures there are.
`classify(list of bytes)` returns one top-k row list per image,
[(class index, synset, name, score)] best first, or raises BadRequest when
the model refused the inputs (TF Serving's INVALID_ARGUMENT, HTTP 400: a file
that is not an image fails its whole request) and ServerError when no answer
came (server down, timeout, unknown model or version).

The requests are tensorflow-serving-api's messages (`predict_pb2`,
`get_model_metadata_pb2`) with tensors from `tf.make_tensor_proto`; REST sends
`{"signature_name": ..., "instances": [{"b64": ...}, ...]}`.
"""
import base64
import json
import urllib.parse

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2

from keras_alexnet.serving import http_request

DEFAULT_MODEL_NAME = "alexnet"
DEFAULT_SIGNATURE = "serving_default"
DEFAULT_TIMEOUT = 30.0
# What bin/predict reads; `probabilities` ([B, num_classes]) is not needed for the top k.
TOP_K_OUTPUTS = ("classes", "synsets", "class_names", "scores")
# Model metadata field TF Serving fills with the SignatureDefMap.
SIGNATURE_DEF = "signature_def"
MAX_MESSAGE_BYTES = 256 * 1024 * 1024


class BadRequest(Exception):
    """The model refused the request's inputs (an undecodable image): the message says why."""


class ServerError(Exception):
    """No usable answer: the server is unreachable, too slow, or has no such model or signature."""


def predict_request(inputs, model_name="", signature_name=DEFAULT_SIGNATURE, version=None,
                    output_filter=()):
    """A tensorflow.serving.PredictRequest.

    inputs: {input alias: array-like or TensorProto}; array-likes go through tf.make_tensor_proto.
    """
    request = predict_pb2.PredictRequest()
    if model_name:
        request.model_spec.name = model_name
    if signature_name:
        request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for key, value in inputs.items():
        if not isinstance(value, tensor_pb2.TensorProto):
            value = tf.make_tensor_proto(value)
        request.inputs[key].CopyFrom(value)
    request.output_filter.extend(output_filter)
    return request


def image_bytes_input(inputs, signature, signatures):
    """The name of the signature's one string input ({name: dtype enum}); ServerError otherwise."""
    if inputs is None:
        raise ServerError(f"no signature {signature!r}; the model has "
                          f"{', '.join(sorted(signatures)) or 'none'}")
    names = [name for name, dtype in inputs.items() if dtype == types_pb2.DT_STRING]
    if len(inputs) != 1 or len(names) != 1:
        described = ", ".join(f"{n} {types_pb2.DataType.Name(d)}" for n, d in sorted(inputs.items()))
        raise ServerError(f"signature {signature!r} takes {described}, not one tensor of encoded "
                          "image bytes (export.py's serving_default and ten_crop do)")
    return names[0]


def _text(value):
    if isinstance(value, dict) and "b64" in value:  # REST: strings that are not UTF-8
        value = base64.b64decode(value["b64"])
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def top_rows(outputs):
    """[[(class index, synset, name, score)] per image] from the signature's top-k outputs."""
    rows = []
    for classes, synsets, names, scores in zip(*(outputs[k] for k in TOP_K_OUTPUTS)):
        rows.append([(int(c), _text(s), _text(n), float(p))
                     for c, s, n, p in zip(classes, synsets, names, scores)])
    return rows


def _check_port(port, address, digits_only=False):
    """ValueError unless port (the text after HOST:, None if absent) is a port number.

    gRPC takes any number and dials it modulo 65536 (":99999" dials 34463). digits_only:
    check only a number (gRPC targets such as unix:/path have other text there).
    """
    if port is None or (digits_only and not port.isdigit()):
        return
    if not (port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"{address!r}: port {port!r} is not a port number (1 to 65535)")


def _excerpt(text, limit=60):
    text = " ".join(str(text).split())
    return repr(text if len(text) <= limit else text[:limit] + "...")


def checked_top_rows(outputs, count, where):
    """top_rows of a server's answer for `count` images; ServerError if it is not one row each.

    A server (or a proxy before it) that answers with fewer rows, rows without the top-k
    fields or values of the wrong type must not be taken for predictions of some images.
    """
    for key in TOP_K_OUTPUTS:
        value = outputs[key]
        rows = [] if value is None or np.ndim(value) == 0 else [r for r in value if r is not None]
        if len(rows) != count:
            raise ServerError(f"{where} answered {len(rows)} rows of {key!r} for {count} images")
    try:
        rows = top_rows(outputs)
        widths = {len(row) for row in rows}
    except (TypeError, ValueError, KeyError, IndexError) as e:
        raise ServerError(f"{where} answered top-k outputs that are not classes, names and "
                          f"scores ({type(e).__name__}: {e})") from None
    if len(rows) != count or len(widths) > 1 or 0 in widths:
        raise ServerError(f"{where} answered {len(rows)} rows of top-k classes for {count} images")
    return rows


def served_image_bytes_input(signature_def_map, signature):
    """image_bytes_input of a signature in a server's SignatureDefMap (model metadata)."""
    signatures = {k: v for k, v in signature_def_map.signature_def.items() if not k.startswith("__")}
    found = signatures.get(signature)
    inputs = None if found is None else {k: v.dtype for k, v in found.inputs.items()}
    return image_bytes_input(inputs, signature, signatures)


class SavedModelClassifier:
    """The export's signature, in this process (TensorFlow only, no server)."""

    def __init__(self, saved_model, signature=DEFAULT_SIGNATURE):
        self.path, self.signature = saved_model, signature
        loaded = tf.saved_model.load(saved_model)
        self._loaded = loaded  # keeps the signature's variables alive
        function = loaded.signatures.get(signature)
        inputs = None if function is None else {
            name: spec.dtype.as_datatype_enum
            for name, spec in function.structured_input_signature[1].items()}
        self.input_name = image_bytes_input(inputs, signature, loaded.signatures)
        self._function = function

    def classify(self, images):
        try:
            outputs = self._function(**{self.input_name: tf.constant(list(images), tf.string)})
        except tf.errors.InvalidArgumentError as e:
            raise BadRequest(e.message) from None
        return top_rows({k: outputs[k].numpy() for k in TOP_K_OUTPUTS})


class GrpcClassifier:
    """TF Serving's PredictionService over gRPC (port 8500)."""

    def __init__(self, target, model_name=DEFAULT_MODEL_NAME, signature=DEFAULT_SIGNATURE,
                 version=None, timeout=DEFAULT_TIMEOUT):
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        if "://" in target:
            raise ValueError(f"{target!r}: a gRPC server is HOST:PORT, without a scheme")
        after_host = target.rsplit("]", 1)[-1]  # [::1]:8500
        _check_port(after_host.rsplit(":", 1)[1] if ":" in after_host else None, target, True)
        self._grpc = grpc
        self.target, self.model_name, self.signature = target, model_name, signature
        self.version, self.timeout = version, timeout
        self.channel = grpc.insecure_channel(target, options=[
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)])
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.input_name = served_image_bytes_input(self.signature_defs(), signature)

    def _spec(self, spec):
        spec.name = self.model_name
        if self.version is not None:
            spec.version.value = int(self.version)

    def _error(self, error):
        code = error.code()
        if code == self._grpc.StatusCode.DEADLINE_EXCEEDED:
            return ServerError(f"no answer from {self.target} within {self.timeout:g} s (--timeout)")
        return ServerError(f"{self.target}: {code.name}: {error.details()}")

    def signature_defs(self):
        """The model's SignatureDefMap (GetModelMetadata, field signature_def)."""
        request = get_model_metadata_pb2.GetModelMetadataRequest()
        self._spec(request.model_spec)
        request.metadata_field.append(SIGNATURE_DEF)
        try:
            response = self.stub.GetModelMetadata(request, timeout=self.timeout)
        except self._grpc.RpcError as e:
            raise self._error(e) from None
        signature_defs = get_model_metadata_pb2.SignatureDefMap()
        response.metadata[SIGNATURE_DEF].Unpack(signature_defs)
        return signature_defs

    def classify(self, images):
        request = predict_request({self.input_name: np.array(list(images), object)},
                                  self.model_name, self.signature, self.version, TOP_K_OUTPUTS)
        try:
            response = self.stub.Predict(request, timeout=self.timeout)
        except self._grpc.RpcError as e:
            if e.code() == self._grpc.StatusCode.INVALID_ARGUMENT:
                raise BadRequest(e.details()) from None
            raise self._error(e) from None
        missing = [k for k in TOP_K_OUTPUTS if k not in response.outputs]
        if missing:
            raise ServerError(f"{self.target}: the answer has no output {', '.join(missing)} "
                              f"(signature {self.signature!r} of export.py gives them)")
        outputs = {k: tf.make_ndarray(response.outputs[k]) for k in TOP_K_OUTPUTS}
        return checked_top_rows(outputs, len(images), self.target)

    def close(self):
        self.channel.close()


class RestClassifier:
    """TF Serving's REST API (port 8501): POST /v1/models/NAME[/versions/N]:predict."""

    def __init__(self, url, model_name=DEFAULT_MODEL_NAME, signature=DEFAULT_SIGNATURE,
                 version=None, timeout=DEFAULT_TIMEOUT):
        if "://" not in url:
            url = "http://" + url
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"{url!r}: a REST server is http://HOST:PORT")
        after_host = urllib.parse.urlsplit(url).netloc.rsplit("@", 1)[-1].rsplit("]", 1)[-1]
        _check_port(after_host.split(":", 1)[1] if ":" in after_host else None, url)
        self.signature, self.timeout = signature, timeout
        self.model_url = f"{url.rstrip('/')}/v1/models/{urllib.parse.quote(model_name)}"
        if version is not None:
            self.model_url += f"/versions/{int(version)}"
        self.input_name = served_image_bytes_input(self.signature_defs(), signature)

    def _call(self, url, body=None):
        data = None if body is None else json.dumps(body).encode()
        try:
            status, text = http_request.request(url, data, timeout=self.timeout,
                                                headers={"Content-Type": "application/json"})
        except http_request.Timeout:
            raise ServerError(f"no answer from {url} within {self.timeout:g} s (--timeout)") \
                from None
        except http_request.Unreachable as e:
            raise ServerError(f"cannot reach {url}: {e}") from None
        text = text.decode("utf-8", "replace")
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        if status != 200:
            message = answer.get("error") if isinstance(answer, dict) else None
            message = message or text.strip()[:200] or f"HTTP {status}"
            if status == 400:
                raise BadRequest(message)
            raise ServerError(f"{url}: HTTP {status}: {message}")
        if not isinstance(answer, dict):
            raise ServerError(f"{url} answered {_excerpt(text)}, not a JSON object")
        return answer

    def signature_defs(self):
        """The model's SignatureDefMap (GET .../metadata)."""
        from google.protobuf import json_format
        try:
            metadata = self._call(self.model_url + "/metadata")
        except BadRequest as e:
            raise ServerError(f"{self.model_url}/metadata: {e}") from None
        signature_defs = get_model_metadata_pb2.SignatureDefMap()
        found = metadata.get("metadata")
        found = found.get(SIGNATURE_DEF) if isinstance(found, dict) else None
        try:
            json_format.ParseDict(found if isinstance(found, dict) else {}, signature_defs,
                                  ignore_unknown_fields=True)
        except json_format.ParseError as e:
            raise ServerError(f"{self.model_url}/metadata: not TF Serving's model metadata "
                              f"({e})") from None
        return signature_defs

    def classify(self, images):
        body = {"signature_name": self.signature,
                "instances": [{"b64": base64.b64encode(b).decode("ascii")} for b in images]}
        url = self.model_url + ":predict"
        predictions = self._call(url, body).get("predictions")
        if not isinstance(predictions, list) or not all(isinstance(p, dict) for p in predictions):
            raise ServerError(f"{url} answered without a list of 'predictions' (one object "
                              "per image)")
        outputs = {k: [p.get(k) for p in predictions] for k in TOP_K_OUTPUTS}
        return checked_top_rows(outputs, len(images), url)
