"""A stand-in for TF Serving, for the test suite only: gRPC and REST over real SavedModels.

TF Serving itself cannot be installed here, so bin/predict's clients are tested
against this: a model base path (EXPORT_DIR/<version>/) served under one model
name, with what the clients use of TF Serving's two APIs.

    gRPC (tensorflow.serving.PredictionService): Predict, GetModelMetadata (signature_def)
    REST: POST /v1/models/NAME[/versions/N]:predict     {"signature_name", "instances"} (row format)
          GET  /v1/models/NAME[/versions/N]/metadata

The answers follow TF Serving's: the newest version unless one is named;
NOT_FOUND for another model name or version; FAILED_PRECONDITION for an unknown
signature; INVALID_ARGUMENT (HTTP 400, {"error": message}) for inputs the
signature refuses, with TensorFlow's message; REST predictions in row format,
strings as UTF-8 or {"b64": ...}. Not a server to ship: no batching, no
version policy, no model reloading.
"""
import base64
import json
import os
import re
import threading
import time
from concurrent import futures
from http import server as http_server

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (get_model_metadata_pb2, predict_pb2,
                                     prediction_service_pb2_grpc)

HTTP_STATUS = {"INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "NOT_FOUND": 404}


class Status(Exception):
    """A failed request: code is a grpc.StatusCode name."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code, self.message = code, message


class ServedModel:
    """The versions of one model base path, loaded on first use."""

    def __init__(self, base_path, name="alexnet"):
        self.base_path, self.name = base_path, name
        self._loaded = {}
        self._lock = threading.Lock()
        self.delay = 0.0      # seconds each Predict waits first (timeout tests)
        self.drip = 0.0       # REST answers go out one byte per `drip` seconds (a slow server)
        self.tamper = None    # tamper(protocol, what, answer) -> the answer sent (broken servers);
        #                       what: "predict" or "metadata"; answer: a JSON value or a proto
        self.requests = []    # (protocol, signature, batch size, answered) of every Predict run

    def versions(self):
        return sorted(int(v) for v in os.listdir(self.base_path) if v.isdigit())

    def resolve(self, name, version=None):
        if name != self.name:
            raise Status("NOT_FOUND", f"Servable not found for request: Latest({name})")
        versions = self.versions()
        if version is None:
            if not versions:
                raise Status("NOT_FOUND", f"Servable not found for request: Latest({name})")
            return versions[-1]
        if version not in versions:
            raise Status("NOT_FOUND", f"Servable not found for request: Specific({name}, {version})")
        return version

    def _load(self, version):
        with self._lock:
            if version not in self._loaded:
                self._loaded[version] = tf.saved_model.load(
                    os.path.join(self.base_path, str(version)))
            return self._loaded[version]

    def signature_def_map(self, version):
        """The SignatureDefs of saved_model.pb, as TF Serving's model metadata reports them."""
        proto = saved_model_pb2.SavedModel()
        with open(os.path.join(self.base_path, str(version), "saved_model.pb"), "rb") as f:
            proto.ParseFromString(f.read())
        result = get_model_metadata_pb2.SignatureDefMap()
        for key, signature_def in proto.meta_graphs[0].signature_def.items():
            result.signature_def[key].CopyFrom(signature_def)
        return result

    def predict(self, protocol, version, signature, inputs):
        """{output name: ndarray} of a signature on {input name: ndarray}."""
        time.sleep(self.delay)
        signature = signature or "serving_default"
        function = self._load(version).signatures.get(signature)
        if function is None:
            raise Status("FAILED_PRECONDITION", f'Serving signature key "{signature}" not found.')
        expected = function.structured_input_signature[1]
        for name in inputs:
            if name not in expected:
                raise Status("INVALID_ARGUMENT", f"input tensor alias not found in signature: "
                             f"{name}. Inputs expected to be in the set {{{','.join(expected)}}}.")
        batch = len(next(iter(inputs.values()))) if inputs else 0
        try:
            outputs = function(**{k: tf.constant(v, expected[k].dtype) for k, v in inputs.items()})
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as e:
            self.requests.append((protocol, signature, batch, False))
            raise Status("INVALID_ARGUMENT", getattr(e, "message", None) or str(e)) from None
        self.requests.append((protocol, signature, batch, True))
        return {k: v.numpy() for k, v in outputs.items()}


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):

    def __init__(self, model):
        self.model = model

    def _version(self, spec):
        return self.model.resolve(spec.name, spec.version.value if spec.HasField("version") else None)

    def Predict(self, request, context):
        try:
            version = self._version(request.model_spec)
            outputs = self.model.predict("grpc", version, request.model_spec.signature_name,
                                         {k: tf.make_ndarray(v) for k, v in request.inputs.items()})
        except Status as e:
            context.abort(getattr(grpc.StatusCode, e.code), e.message)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.model.name
        response.model_spec.version.value = version
        response.model_spec.signature_name = request.model_spec.signature_name or "serving_default"
        for name, value in outputs.items():
            if not request.output_filter or name in request.output_filter:
                response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return _tampered(self.model, "grpc", "predict", response)

    def GetModelMetadata(self, request, context):
        try:
            version = self._version(request.model_spec)
            if list(request.metadata_field) != ["signature_def"]:
                raise Status("INVALID_ARGUMENT", "Metadata field signature_def is the one supported")
        except Status as e:
            context.abort(getattr(grpc.StatusCode, e.code), e.message)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = self.model.name
        response.model_spec.version.value = version
        response.metadata["signature_def"].Pack(self.model.signature_def_map(version))
        return response


def _json_value(value):
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, np.ndarray):
        return [_json_value(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def _instance_inputs(instances, expected):
    """Row format -> {input name: ndarray}; {"b64": ...} stands for bytes."""
    def value(v):
        return base64.b64decode(v["b64"]) if isinstance(v, dict) and set(v) == {"b64"} else v

    if all(isinstance(i, dict) and set(i) <= set(expected) and "b64" not in i for i in instances):
        return {name: np.array([value(i[name]) for i in instances],
                               object if expected[name].dtype == tf.string else None)
                for name in expected}
    if len(expected) != 1:
        raise Status("INVALID_ARGUMENT", "instances must name the inputs of a signature with "
                     f"{len(expected)} inputs")
    (name, spec), = expected.items()
    values = [value(i) for i in instances]
    return {name: np.array(values, object) if spec.dtype == tf.string else np.array(values)}


def _tampered(model, protocol, what, answer):
    return answer if model.tamper is None else model.tamper(protocol, what, answer)


def _rest_handler(model):
    route = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?"
                       r"(?P<verb>:predict|/metadata)$")

    class Handler(http_server.BaseHTTPRequestHandler):

        def log_message(self, *args):  # quiet test output
            pass

        def _send(self, status, body):
            data = json.dumps(body).encode()
            try:
                if model.drip:  # status line, headers and body, a byte at a time
                    head = (f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\n"
                            f"Content-Length: {len(data)}\r\n\r\n").encode()
                    for i in range(len(head) + len(data)):
                        if not model.drip:  # the test is over: stop sending
                            break
                        self.wfile.write((head + data)[i:i + 1])
                        self.wfile.flush()
                        time.sleep(model.drip)
                    self.close_connection = True
                    return
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError, OSError):  # the client gave up
                pass

        def _route(self, verb):
            match = route.match(self.path)
            if not match or match["verb"] != verb:
                raise Status("NOT_FOUND", f"Malformed request: {self.command} {self.path}")
            return model.resolve(match["name"], int(match["version"]) if match["version"] else None)

        def do_GET(self):
            try:
                version = self._route("/metadata")
            except Status as e:
                return self._send(HTTP_STATUS.get(e.code, 500), {"error": e.message})
            signature_defs = json_format.MessageToDict(model.signature_def_map(version),
                                                       preserving_proto_field_name=True)
            self._send(200, _tampered(model, "rest", "metadata", {
                "model_spec": {"name": model.name, "signature_name": "", "version": str(version)},
                "metadata": {"signature_def": signature_defs}}))

        def do_POST(self):
            try:
                version = self._route(":predict")
                try:
                    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                except ValueError as e:
                    raise Status("INVALID_ARGUMENT", f"JSON Parse error: {e}") from None
                signature = body.get("signature_name") or "serving_default"
                function = model._load(version).signatures.get(signature)
                if function is None:
                    raise Status("FAILED_PRECONDITION",
                                 f'Serving signature key "{signature}" not found.')
                inputs = _instance_inputs(body["instances"], function.structured_input_signature[1])
                outputs = model.predict("rest", version, signature, inputs)
            except Status as e:
                return self._send(HTTP_STATUS.get(e.code, 500), {"error": e.message})
            names = sorted(outputs)
            predictions = [{k: _json_value(outputs[k][i]) for k in names}
                           for i in range(len(outputs[names[0]]))]
            self._send(200, _tampered(model, "rest", "predict", {"predictions": predictions}))

    return Handler


class TestServer:
    """Both servers on free loopback ports, each in its own threads; stop() ends them."""

    __test__ = False  # not a pytest class

    def __init__(self, base_path, name="alexnet"):
        self.model = ServedModel(base_path, name)
        self.grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _PredictionService(self.model), self.grpc_server)
        self.grpc_port = self.grpc_server.add_insecure_port("127.0.0.1:0")
        self.http_server = http_server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                           _rest_handler(self.model))
        # Handler threads are joined by stop(): none is left running (a slow answer, a
        # sleeping Predict) while the interpreter shuts down.
        self.http_server.daemon_threads = False
        self.rest_port = self.http_server.server_address[1]
        self._thread = threading.Thread(target=self.http_server.serve_forever, daemon=True)

    @property
    def grpc_address(self):
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def rest_url(self):
        return f"http://127.0.0.1:{self.rest_port}"

    def start(self):
        self.grpc_server.start()
        self._thread.start()
        return self

    def stop(self):
        self.http_server.shutdown()
        self.http_server.server_close()
        self.grpc_server.stop(grace=None).wait()
