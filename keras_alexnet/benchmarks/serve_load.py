"""`bin/benchmark serve --clients=1,4,8 --batch_sizes=1,8,32`: an export under concurrent clients.

    bin/benchmark serve --saved_model=models/alexnet --images='DATA/val/*/*.JPEG' \\
        --clients=1,4,8 --batch_sizes=1,8,32 --requests=60

N client threads call the loaded SavedModel's signature (serving_default: encoded images
in, as TF Serving's clients send them) at the same time, each sending its next request as
soon as its previous one is answered (a closed loop: N users each waiting for their
answer), until the row's requests are answered. One row per (batch size B, clients N):

    requests         requests answered (N x requests per client)
    images_per_sec   B x requests / the row's wall time, first request sent to last answered
    requests_per_sec requests / the same wall time
    p50_ms, p99_ms   a request's latency, sent to answered (its queueing in TensorFlow's
                     thread pools included); with 60 requests, p99 is about the slowest
    answers_match    every answer equals the answer of the same request sent alone

The threads share one loaded model in one process, as TF Serving's request threads share
one session; TensorFlow runs their graphs side by side (the GIL is released while a graph
runs). No request batching happens here: batching_parameters.txt configures TF Serving's
(serving/batching.py), which merges such concurrent requests into one run.
"""
import os
import threading
import time

import numpy as np
import tensorflow as tf

# "The same answer": the same top 5 and probabilities within float32 rounding, in case a
# kernel splits its work differently while other requests hold the thread pool. A request
# answered with another request's images differs by far more.
ATOL = 1e-6


def make_requests(image_bytes, batch_size, count):
    """count requests of batch_size encoded images each, cycling through image_bytes;
    request k starts at image k, so requests differ as long as there are several images."""
    n = len(image_bytes)
    return [[image_bytes[(k + j) % n] for j in range(batch_size)] for k in range(count)]


def run_clients(fn, requests, clients):
    """Sends `requests` from `clients` threads at once (thread t sends requests t, t + clients,
    ... in order, each after the previous one's answer).

    Returns (answers and latencies in seconds, both in request order; the wall time from the
    first request sent to the last answered). An exception in a client is raised here.
    """
    answers, latencies = [None] * len(requests), [None] * len(requests)
    errors = []
    start = threading.Barrier(clients + 1)

    def client(t):
        start.wait()
        try:
            for i in range(t, len(requests), clients):
                sent = time.perf_counter()
                answers[i] = fn(requests[i])
                latencies[i] = time.perf_counter() - sent
        except Exception as e:  # noqa: BLE001 (re-raised in the caller's thread)
            errors.append(e)

    threads = [threading.Thread(target=client, args=(t,), daemon=True) for t in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    if errors:
        raise errors[0]
    return answers, latencies, wall


def signature_client(loaded, signature="serving_default"):
    """fn(list of encoded images) -> {"probabilities", "classes"} as NumPy, through `signature`."""
    call = loaded.signatures[signature]

    def fn(request):
        out = call(image_bytes=tf.constant(request))
        return {"probabilities": out["probabilities"].numpy(), "classes": out["classes"].numpy()}
    return fn


def same_answers(a, b):
    """Two answers of signature_client agree: the same top 5, probabilities within ATOL."""
    return (np.array_equal(a["classes"], b["classes"]) and
            np.allclose(a["probabilities"], b["probabilities"], rtol=0, atol=ATOL))


def load_table(fn, image_bytes, *, clients=(1, 4, 8), batch_sizes=(1, 8, 32), requests=60):
    """The rows of the module docstring, batch size by batch size, then by client count.

    requests: per row, rounded up to a multiple of the client count.
    """
    rows = []
    for batch_size in batch_sizes:
        batch = make_requests(image_bytes, batch_size, requests + max(clients) - 1)
        alone = [fn(r) for r in batch]  # the reference answers; also the warm-up (tracing)
        for n in clients:
            count = -(-requests // n) * n
            answers, latencies, wall = run_clients(fn, batch[:count], n)
            rows.append({
                "batch_size": batch_size, "clients": n, "requests": count,
                "images_per_sec": round(batch_size * count / wall, 1),
                "requests_per_sec": round(count / wall, 2),
                "p50_ms": round(1000 * float(np.percentile(latencies, 50)), 2),
                "p99_ms": round(1000 * float(np.percentile(latencies, 99)), 2),
                "answers_match": all(same_answers(a, b) for a, b in zip(answers, alone))})
    return rows


COLUMNS = ("batch_size", "clients", "requests", "images_per_sec", "requests_per_sec", "p50_ms",
           "p99_ms", "answers_match")


def load_benchmark(saved_model, image_bytes, *, clients, batch_sizes, requests,
                   signature="serving_default"):
    """load_table() on an export (a random full-size one is exported first if there is none)."""
    from keras_alexnet.benchmarks import serving
    path, _ = serving.resolve_or_export(saved_model)
    fn = signature_client(tf.saved_model.load(path), signature)
    rows = load_table(fn, image_bytes, clients=clients, batch_sizes=batch_sizes,
                      requests=requests)
    return {"saved_model": path, "signature": signature, "images": len(image_bytes),
            "threads": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2),
            "tensorflow": tf.__version__, "columns": list(COLUMNS),
            "rows": [[row[c] for c in COLUMNS] for row in rows]}
