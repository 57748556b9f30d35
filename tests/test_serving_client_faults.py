"""bin/predict's clients against a misbehaving server (issue 21 section 7).

tests/serving_server.py's stand-in for TF Serving, made slow or made to answer
wrongly: each case must end in a ServerError (bin/predict: one `error:` line,
status 1), never a traceback, a hang, or predictions taken for the wrong images.
"""
import os
import subprocess
import sys
import time

import pytest
import tensorflow as tf

import fixtures as fx
from keras_alexnet.serving import client, export, predict
from serving_server import TestServer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAT = fx.encode(fx.picture(90, 120, seed=1))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    data_dir = fx.write_data_dir(str(root / "data"), num_images=4)
    export.export_run(fx.restored_run(fx.trained_model(), data_dir), str(root / "models"),
                      num_warmup_images=1)
    (root / "cat.jpg").write_bytes(CAT)
    server = TestServer(str(root / "models")).start()
    yield {"root": root, "server": server, "model": server.model}
    server.stop()


@pytest.fixture
def model(served):
    yield served["model"]
    served["model"].tamper, served["model"].drip = None, 0.0


def _bin_predict(*args):
    return subprocess.run([sys.executable, os.path.join(REPO, "bin", "predict"), *args],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))


def test_the_rest_timeout_bounds_the_whole_answer_of_a_slow_drip_server(served, model):
    rest = client.RestClassifier(served["server"].rest_url, timeout=1.0)
    model.drip = 0.2  # an answer of ~1 KB at 5 bytes/s: minutes, each byte well within 1 s
    start = time.monotonic()
    with pytest.raises(client.ServerError, match=r"within 1 s \(--timeout\)"):
        rest.classify([CAT])
    assert time.monotonic() - start < 10


def _drop_key(key):
    def tamper(protocol, what, answer):
        if what == "predict" and protocol == "rest":
            return {k: v for k, v in answer.items() if k != key}
        if what == "predict":
            del answer.outputs[key]
        return answer
    return tamper


def _short_by_one(protocol, what, answer):
    if what != "predict":
        return answer
    if protocol == "rest":
        return {"predictions": answer["predictions"][:-1]}
    for name in list(answer.outputs):
        value = tf.make_ndarray(answer.outputs[name])
        answer.outputs[name].CopyFrom(tf.make_tensor_proto(value[:-1]))
    return answer


@pytest.mark.parametrize("protocol,tamper,message", [
    ("rest", _drop_key("predictions"), "without a list of 'predictions'"),
    ("rest", _short_by_one, "answered 1 rows of 'classes' for 2 images"),
    ("rest", lambda p, what, a: [1, 2, 3] if what == "predict" else a, "not a JSON object"),
    ("rest", lambda p, what, a: {"predictions": [{"classes": "x", "synsets": 1, "class_names": 2,
                                                  "scores": 3}] * 2} if what == "predict" else a,
     "not classes, names and scores"),
    ("grpc", _drop_key("scores"), "has no output scores"),
    ("grpc", _short_by_one, "answered 1 rows of 'classes' for 2 images"),
])
def test_malformed_answers_are_a_server_error(served, model, protocol, tamper, message):
    server = served["server"]
    classifier = (client.RestClassifier(server.rest_url) if protocol == "rest"
                  else client.GrpcClassifier(server.grpc_address))
    model.tamper = tamper
    with pytest.raises(client.ServerError, match=message):
        classifier.classify([CAT, CAT])
    with pytest.raises(client.ServerError, match=message):  # what bin/predict runs
        list(predict.predict_paths(classifier, [str(served["root"] / "cat.jpg")] * 2))


@pytest.mark.parametrize("metadata", [[1, 2, 3], {"metadata": [1]},
                                      {"metadata": {"signature_def": {"signature_def": 7}}}])
def test_rest_metadata_that_is_not_model_metadata_is_a_server_error(served, model, metadata):
    model.tamper = lambda protocol, what, answer: metadata if what == "metadata" else answer
    with pytest.raises(client.ServerError):
        client.RestClassifier(served["server"].rest_url)


@pytest.mark.parametrize("make,address", [(client.GrpcClassifier, "127.0.0.1:99999"),
                                          (client.GrpcClassifier, "[::1]:0"),
                                          (client.RestClassifier, "http://127.0.0.1:99999"),
                                          (client.RestClassifier, "localhost:8x01")])
def test_a_port_out_of_range_is_refused_before_dialling(make, address):
    with pytest.raises(ValueError, match="is not a port number"):
        make(address, timeout=1)


@pytest.mark.slow
def test_bin_predict_says_one_line_for_a_broken_server_and_validates_its_flags(served, model):
    server, cat = served["server"], str(served["root"] / "cat.jpg")
    model.tamper = _short_by_one
    for flag in (f"--server={server.grpc_address}", f"--rest={server.rest_url}"):
        run = _bin_predict(flag, cat, cat)
        assert run.returncode == 1 and run.stdout == "", run.stderr
        ours = [line for line in run.stderr.splitlines() if line.startswith("bin/predict")]
        assert "Traceback" not in run.stderr and len(ours) == 1
        assert ours[0].startswith("bin/predict: error: ") and "1 rows of 'classes' for 2" in ours[0]
    port = _bin_predict("--server=127.0.0.1:99999", cat)
    assert port.returncode == 1 and "--server=127.0.0.1:99999" in port.stderr
    assert "port '99999' is not a port number" in port.stderr
    for value in ("0", "-5"):
        run = _bin_predict(f"--rest={server.rest_url}", f"--timeout={value}", cat)
        assert run.returncode == 1 and f"--timeout={value}: must be a positive" in run.stderr
