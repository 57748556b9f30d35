"""The same loop on MirroredStrategy (two logical CPUs) and MultiWorkerMirroredStrategy (two processes).

Each runs in fresh child processes: logical devices and multi-worker
collectives must be set up before TensorFlow starts.
"""
import json
import os
import socket

import numpy as np
import pytest

from fixtures import child, read_events, start_training, tiny_config, wait_for

def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _start_workers(config, workdir, tmp_path=None, env=None):
    """Two bin/train processes of one MultiWorkerMirroredStrategy cluster on localhost ports;
    with tmp_path each writes its result to tmp_path/result<index>.json."""
    cluster = {"worker": [f"localhost:{_free_port()}" for _ in range(2)]}
    return [start_training(
        config, workdir,
        result_path=None if tmp_path is None else str(tmp_path / f"result{index}.json"),
        env={"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
             **(env or {})})
        for index in range(2)]


def _outputs(procs, timeout, while_running=None):
    """Every worker's output once it ends (killed if still running after); while_running first."""
    outputs = []
    try:
        if while_running is not None:
            while_running()
        for proc in procs:
            outputs.append(proc.communicate(timeout=timeout)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return outputs


def _results(procs, outputs, tmp_path):
    """The workers' result files, after asserting that both exited cleanly."""
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out[-3000:]
    return [json.loads((tmp_path / f"result{i}.json").read_text()) for i in range(2)]


@pytest.mark.slow
def test_mirrored_two_cpus_matches_the_default_strategy(data_dir, tmp_path):
    config = tiny_config(data_dir, {"num_epochs": 1, "eval.ten_crop": True})
    config_path = tmp_path / "config.json"
    config_path.write_text(config.to_json())
    got = {}
    for mode in ("default", "mirrored"):
        out = tmp_path / f"{mode}.json"
        proc = child("mirrored", mode, config_path, tmp_path / "work", out, run=True, timeout=400)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        got[mode] = json.loads(out.read_text())
    default, mirrored = got["default"], got["mirrored"]
    assert default["start"] == pytest.approx(mirrored["start"], rel=1e-6)  # same initial weights
    assert mirrored["losses"] == pytest.approx(default["losses"], rel=1e-4, abs=1e-5)
    assert default["losses"][-1] != default["losses"][0]  # the weights did move
    np.testing.assert_allclose(mirrored["fc8"][0], default["fc8"][0], rtol=1e-3, atol=1e-5)
    assert "config.batch_size=9 does not divide over 2 replicas" in mirrored["odd_batch"]
    assert mirrored["result"]["step"] == 6
    final = read_events(str(tmp_path / "work"), "final")[0]
    assert final["num_images"] == 18  # every image once, though 18 does not split into 2 x 8


@pytest.mark.slow
def test_two_multi_worker_processes_train_and_agree(data_dir, tmp_path):
    config = tiny_config(data_dir, {"num_epochs": 1, "eval.ten_crop": False,
                                    "distribution.strategy": "multi_worker"})
    workdir = str(tmp_path / "work")
    scratch = tmp_path / "tmp"  # the workers' temporary folders go here (TMPDIR)
    scratch.mkdir()
    (scratch / "alexnet-worker-killed").mkdir()  # left by a worker killed in an earlier run
    procs = _start_workers(config, workdir, tmp_path, env={"TMPDIR": str(scratch)})
    results = _results(procs, _outputs(procs, 400), tmp_path)
    # Both workers ran the same steps and see the same (all-reduced) validation error.
    assert results[0]["step"] == results[1]["step"] == 6
    assert results[0]["validation"] == results[1]["validation"]
    assert results[0]["validation"]["num_images"] == 18  # every image once, over both workers
    # Only the chief (worker 0) wrote into the workdir.
    assert len(read_events(workdir, "eval")) == 1
    assert os.path.exists(os.path.join(workdir, "checkpoints", "checkpoint"))
    assert sorted(os.listdir(workdir)) == [".lock", "best", "checkpoints", "config.json",
                                           "data.json", "metrics.jsonl", "tensorboard"]
    # The other worker's temporary folder is gone, and so is the one a killed worker left.
    assert not [n for n in os.listdir(scratch) if n.startswith("alexnet-worker-")]


@pytest.mark.slow
def test_sigterm_to_one_worker_stops_every_worker_with_a_checkpoint(data_dir, tmp_path):
    import signal
    config = tiny_config(data_dir, {"num_epochs": 1000, "eval.ten_crop": False,
                                    "checkpoint.every_steps": 100000,
                                    "distribution.strategy": "multi_worker"})
    workdir = str(tmp_path / "work")
    procs = _start_workers(config, workdir, tmp_path)

    def sigterm_the_other_worker():
        wait_for(lambda: read_events(workdir, "train"), 400, procs[0], "training to start")
        procs[1].send_signal(signal.SIGTERM)  # the worker that does not write

    results = _results(procs, _outputs(procs, 120, sigterm_the_other_worker), tmp_path)
    assert results[0] == results[1] and results[0]["status"] == "preempted"
    preempted = read_events(workdir, "preempted")
    assert len(preempted) == 1 and preempted[0]["step"] == results[0]["step"]


@pytest.mark.slow
def test_a_locked_workdir_stops_every_worker_not_only_the_chief(data_dir, tmp_path):
    """The chief cannot take WORKDIR/.lock: it says so, and the other worker does not wait for it."""
    from keras_alexnet.training import workdir as workdir_lib
    config = tiny_config(data_dir, {"num_epochs": 1, "distribution.strategy": "multi_worker"})
    workdir = str(tmp_path / "work")
    with workdir_lib.lock(workdir):  # another bin/train holds it
        procs = _start_workers(config, workdir)
        outputs = _outputs(procs, 300)  # before the fix: the other worker hung here
    assert all(proc.returncode != 0 for proc in procs)
    assert "is in use by another training" in outputs[0]
    assert "another worker of this run stopped" in outputs[1]
    assert not os.path.exists(os.path.join(workdir, "config.json"))
