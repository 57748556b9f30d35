"""bin/predict against a running server: gRPC and REST clients, checked against the in-process path.

The servers are tests/serving_server.py's stand-in for TF Serving, serving a real
export of the tiny model; every answer must equal what the SavedModel gives in
this process, and bad files must be handled the same way.
"""
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

import fixtures as fx
from keras_alexnet.serving import client, export, predict
from serving_server import TestServer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOOD = {"cat.jpg": fx.encode(fx.picture(90, 120, seed=1)),
        "gray.png": fx.encode(fx.picture(100, 85, seed=2, channels=1)[..., 0], "PNG"),
        "wide.jpg": fx.encode(fx.picture(70, 160, seed=3)),
        "small.png": fx.encode(fx.picture(60, 60, seed=4), "PNG"),
        "big.jpg": fx.encode(fx.picture(330, 400, seed=5))}
BAD = {"notes.txt": b"not an image", "truncated.jpg": fx.encode(fx.picture(90, 90, 3))[:200],
       "empty.jpg": b""}
# With batches of 3 readable files: (cat, gray, wide) | (notes, small, truncated) | (big).
ORDER = ["cat.jpg", "gray.png", "wide.jpg", "notes.txt", "missing.jpg", "small.png",
         "truncated.jpg", "empty.jpg", "big.jpg"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    data_dir = fx.write_data_dir(str(root / "data"), num_images=4)
    export.export_run(fx.restored_run(fx.trained_model(), data_dir), str(root / "models"),
                      num_warmup_images=1)
    for name, data in {**GOOD, **BAD}.items():
        (root / name).write_bytes(data)
    server = TestServer(str(root / "models")).start()
    yield {"root": root, "models": str(root / "models"), "server": server,
           "paths": [str(root / n) for n in ORDER]}
    server.stop()


def _classifiers(served, **kwargs):
    server = served["server"]
    return {"grpc": client.GrpcClassifier(server.grpc_address, **kwargs),
            "rest": client.RestClassifier(server.rest_url, **kwargs)}


def _reference(served, signature="serving_default"):
    """One file per call through the SavedModel in this process: what the servers must match."""
    classifier = predict.load_classifier(served["models"], signature)
    return [list(predict.predict_paths(classifier, [p], batch_size=1))[0] for p in served["paths"]]


def _assert_same(results, reference):
    assert [r.path for r in results] == [r.path for r in reference]
    for got, want in zip(results, reference):
        assert got.error == want.error, got.path
        if want.top is not None:
            assert [t[:3] for t in got.top] == [t[:3] for t in want.top], got.path
            np.testing.assert_allclose([t[3] for t in got.top], [t[3] for t in want.top],
                                       rtol=1e-6, atol=1e-7)


def test_grpc_and_rest_answer_as_the_saved_model_does(served):
    reference = _reference(served)
    errors = {os.path.basename(r.path): r.error for r in reference if r.error}
    assert sorted(errors) == ["empty.jpg", "missing.jpg", "notes.txt", "truncated.jpg"]
    # The file check in front of the export names what is wrong before the decoder sees it.
    assert "not an image in a format the model reads (JPEG, PNG, GIF, BMP, WebP; TIFF and others: convert to PNG)" in errors["notes.txt"]
    assert errors["truncated.jpg"] == "a damaged JPEG (its data is truncated or corrupt)"
    assert {r.top[0][2] for r in reference if r.top} <= set(fx.NAMES)
    for protocol, classifier in _classifiers(served).items():
        requests = served["server"].model.requests
        del requests[:]
        results = list(predict.predict_paths(classifier, served["paths"], batch_size=3))
        _assert_same(results, reference)
        # Three files a request; the batch holding bad files again one file a request.
        assert [(p, b, ok) for p, _, b, ok in requests] == [
            (protocol, 3, True), (protocol, 3, False), (protocol, 1, False), (protocol, 1, True),
            (protocol, 1, False), (protocol, 1, True)]
        assert {s for _, s, _, _ in requests} == {"serving_default"}


def test_ten_crop_and_an_explicit_version(served):
    reference = _reference(served, "ten_crop")
    for classifier in _classifiers(served, signature="ten_crop", version=1).values():
        _assert_same(list(predict.predict_paths(classifier, served["paths"], batch_size=8)),
                     reference)
    assert served["server"].model.requests[-1][1] == "ten_crop"


@pytest.mark.parametrize("kwargs, message", [
    (dict(model_name="resnet"), "NOT_FOUND|HTTP 404"),
    (dict(version=7), "NOT_FOUND|HTTP 404"),
    (dict(signature="nope"), "no signature 'nope'; the model has predict_images, serving_default, "
                             "ten_crop"),
    (dict(signature="predict_images"), "'predict_images' takes images DT_FLOAT, not one tensor of "
                                       "encoded image bytes"),
])
def test_wrong_model_version_or_signature_fails_before_any_file(served, kwargs, message):
    server = served["server"]
    for make, address in ((client.GrpcClassifier, server.grpc_address),
                          (client.RestClassifier, server.rest_url)):
        with pytest.raises(client.ServerError, match=message):
            make(address, **kwargs)


def test_timeouts_and_unreachable_servers(served):
    model = served["server"].model
    classifiers = _classifiers(served, timeout=0.3)
    model.delay = 1.5
    try:
        for classifier in classifiers.values():
            with pytest.raises(client.ServerError, match=r"within 0.3 s \(--timeout\)"):
                classifier.classify([GOOD["cat.jpg"]])
    finally:
        model.delay = 0.0
    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(client.ServerError, match="UNAVAILABLE"):
        client.GrpcClassifier(f"127.0.0.1:{port}", timeout=5)
    with pytest.raises(client.ServerError, match="cannot reach"):
        client.RestClassifier(f"http://127.0.0.1:{port}", timeout=5)
    with pytest.raises(ValueError, match="without a scheme"):
        client.GrpcClassifier(served["server"].rest_url)


def _bin_predict(*args):
    return subprocess.run([sys.executable, os.path.join(REPO, "bin", "predict"), *args],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))


@pytest.mark.slow
def test_bin_predict_prints_the_same_in_process_over_grpc_and_over_rest(served):
    server = served["server"]
    runs = {flag: _bin_predict(flag, "--batch_size=3", *served["paths"])
            for flag in (f"--saved_model={served['models']}", f"--server={server.grpc_address}",
                         f"--rest={server.rest_url}")}
    local, grpc_run, rest_run = runs.values()
    assert local.returncode == 1, local.stderr  # files were skipped
    assert "skipped 4 of 9 files" in local.stderr
    assert local.stdout.count(":\n") == 5 and "  1. " in local.stdout
    for run in (grpc_run, rest_run):
        assert run.returncode == 1
        assert run.stdout == local.stdout
        skipped = [line for line in run.stderr.splitlines() if "skipped" in line]
        assert skipped == [line for line in local.stderr.splitlines() if "skipped" in line]
    down = _bin_predict("--server=127.0.0.1:1", "--model_name=alexnet", "--timeout=5",
                        served["paths"][0])
    assert down.returncode == 1 and down.stdout == ""
    assert "bin/predict: error: --server=127.0.0.1:1: 127.0.0.1:1: UNAVAILABLE" in down.stderr
