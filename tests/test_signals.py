"""Signals and full disks (issue 21 §3): SIGTERM is Ctrl-C, a full disk is a sentence, no leftovers."""
import errno
import os
import subprocess
import sys
import time

import pytest

import fixtures as fx

REPO = fx.REPO


def _workers(pid):
    """The spawned worker processes of a make_tfrecords (multiprocessing's, not its tracker)."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if ppid == pid and b"spawn_main" in cmdline:
            found.append(int(entry))
    return found


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_sigterm_stops_make_tfrecords_like_ctrl_c(tmp_path):
    import signal
    big = fx.encode(fx.picture(900, 1200, seed=3), quality=95)
    for c in ("n01", "n02"):
        for i in range(200):
            fx.write(str(tmp_path / "in" / c / f"{i}.JPEG"), big)
    out = tmp_path / "out"
    command = [sys.executable, os.path.join(REPO, "bin", "make_tfrecords"),
               f"--input_dir={tmp_path / 'in'}", f"--output_dir={out}", "--resize=64",
               "--num_workers=2", "--num_shards=8"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    workers = []
    try:
        deadline = time.time() + 240
        while len(workers) < 2 or not [n for n in os.listdir(out) if n.endswith(".tmp")]:
            assert proc.poll() is None and time.time() < deadline, "no shard begun"
            workers = _workers(proc.pid)
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)  # what systemd, docker stop and timeout send
        _, err = proc.communicate(timeout=120)
        left = [pid for pid in workers if _alive(pid)]
    finally:
        for pid in workers:  # today they stayed, blocked: never leave them behind
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
    assert left == []
    assert proc.returncode == 143, err
    assert "make_tfrecords: stopped by SIGTERM; the worker processes are stopped and temporary " \
           "shards removed" in err
    assert "Traceback" not in err
    hidden = [n for n in os.listdir(out) + os.listdir(out / ".parts") if n.endswith(".tmp")
              or ".tmp." in n]
    assert hidden == []
