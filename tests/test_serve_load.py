"""benchmarks/serve_load.py: `bin/benchmark serve --clients`, an export under concurrent clients.

No timing is asserted: the tests check that the clients run at the same time, that every
answer under concurrency is the answer of the same request sent alone, and the report's shape.
"""
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import tensorflow as tf

import fixtures as fx
from keras_alexnet.benchmarks import serve_load

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def client(tiny_export):
    return serve_load.signature_client(tf.saved_model.load(tiny_export["path"]))


def test_concurrent_answers_equal_the_answers_sent_alone(client):
    images = list(fx.serving_images().values())
    requests = serve_load.make_requests(images, 3, 12)
    alone = [client(r) for r in requests]
    # Different requests get different answers: a mix-up between clients would show.
    assert not np.allclose(alone[0]["probabilities"], alone[1]["probabilities"])
    answers, latencies, wall = serve_load.run_clients(client, requests, 4)
    assert len(answers) == len(latencies) == 12 and wall > 0
    for a, b in zip(answers, alone):
        np.testing.assert_array_equal(a["classes"], b["classes"])
        np.testing.assert_allclose(a["probabilities"], b["probabilities"], rtol=0,
                                   atol=serve_load.ATOL)


def test_clients_run_at_the_same_time():
    inside = threading.Barrier(4, timeout=30)  # broken (an error) unless 4 calls overlap

    def fn(request):
        inside.wait()
        return request

    answers, _, _ = serve_load.run_clients(fn, list(range(8)), 4)
    assert answers == list(range(8))


def test_a_client_error_is_raised():
    def fn(request):
        if request == 5:
            raise ValueError("request 5 failed")
        return request

    with pytest.raises(ValueError, match="request 5 failed"):
        serve_load.run_clients(fn, list(range(8)), 3)


def test_load_table_has_a_row_per_batch_size_and_client_count(client):
    images = list(fx.serving_images().values())[:4]
    rows = serve_load.load_table(client, images, clients=(1, 3), batch_sizes=(1, 2), requests=4)
    assert [(r["batch_size"], r["clients"], r["requests"]) for r in rows] == [
        (1, 1, 4), (1, 3, 6), (2, 1, 4), (2, 3, 6)]
    for row in rows:
        assert sorted(row) == sorted(serve_load.COLUMNS)
        assert row["answers_match"] is True
        assert 0 < row["p50_ms"] <= row["p99_ms"] and row["images_per_sec"] > 0
        assert row["images_per_sec"] == pytest.approx(row["requests_per_sec"] * row["batch_size"],
                                                      rel=0.01)


def test_load_table_reports_answers_that_differ_under_concurrency():
    main = threading.main_thread()

    def fn(request):  # answers differently when not called alone (from the main thread)
        shift = 0 if threading.current_thread() is main else 1
        return {"classes": np.array([request[0] + shift]), "probabilities": np.zeros(1)}

    rows = serve_load.load_table(fn, [0, 1, 2], clients=(2,), batch_sizes=(1,), requests=2)
    assert rows[0]["answers_match"] is False


def _benchmark(*args):
    return subprocess.run([sys.executable, os.path.join(REPO, "bin", "benchmark"), "serve", *args],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))


@pytest.mark.slow
def test_bin_benchmark_serve_clients_prints_the_table(tiny_export, tmp_path):
    image = tmp_path / "a.jpg"
    image.write_bytes(fx.serving_images()["rgb.jpg"])
    done = _benchmark(f"--saved_model={tiny_export['export_dir']}", f"--images={image}",
                      "--clients=1,2", "--batch_sizes=1,3", "--requests=2")
    assert done.returncode == 0, done.stderr[-2000:]
    line = json.loads(done.stdout.strip().splitlines()[-1])
    assert line["what"] == "serve" and line["saved_model"] == tiny_export["path"]
    assert line["columns"] == list(serve_load.COLUMNS)
    assert [row[:3] for row in line["rows"]] == [[1, 1, 2], [1, 2, 2], [3, 1, 2], [3, 2, 2]]
    assert all(row[-1] is True for row in line["rows"])


@pytest.mark.parametrize("args,message", [
    (["--clients=0,4"], "--clients=0,4: must be positive integers"),
    (["--clients=two"], "--clients=two: must be positive integers"),
    (["--clients=2", "--batch_sizes=8,x"], "--batch_sizes=8,x: must be positive integers"),
    (["--batch_sizes=1,8"], "--batch_sizes is for `benchmark serve --clients=...`"),
])
def test_bad_load_flags_are_sentences(args, message):
    done = _benchmark("--saved_model=/nonexistent", *args)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert message in done.stderr
