"""Signals and full disks (issue 21 §3): SIGTERM is Ctrl-C, a full disk is a sentence, no leftovers."""
import errno
import os
import time

import pytest

import fixtures as fx

REPO = fx.REPO


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_sigterm_stops_make_tfrecords_like_ctrl_c(tmp_path):
    import signal
    proc, out, command = fx.start_slow_conversion(tmp_path, 200)
    workers = []
    try:
        deadline = time.time() + 240
        while len(workers) < 2 or not [n for n in os.listdir(out) if n.endswith(".tmp")]:
            assert proc.poll() is None and time.time() < deadline, "no shard begun"
            workers = fx.worker_processes(proc.pid)
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


def _hidden_temporaries(folder):
    return [os.path.join(root, n) for root, dirs, files in os.walk(folder)
            for n in dirs + files if ".tmp" in n or n.startswith(".demo-images-")]


def test_a_full_disk_while_converting_is_a_sentence_and_leaves_no_temporaries(tmp_path, monkeypatch):
    from keras_alexnet import disk_full
    from keras_alexnet.data import shard_writer
    fx.image_folder(tmp_path / "in", per_class=4)
    real, calls = shard_writer.make_example, []

    def make_example(values):
        calls.append(1)
        if len(calls) == 5:  # in the second shard
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(values)
    monkeypatch.setattr(shard_writer, "make_example", make_example)
    out = tmp_path / "out"
    with pytest.raises(disk_full.DiskFull,
                       match=rf"^the disk holding {out} is full \(no space left on device\) while "
                             r"writing the train shards; free about 1 MB for the 1 shards left "
                             r"there and run the same command again$"):
        fx.convert(tmp_path / "in", out, "train", num_shards=2, resize=64)
    assert _hidden_temporaries(out) == []
    assert os.path.exists(out / "train-00000-of-00002")  # the complete shard is kept


def test_demo_data_is_drawn_in_the_workdir_and_a_full_disk_is_a_sentence(tmp_path, monkeypatch):
    import tempfile

    from keras_alexnet import disk_full
    from keras_alexnet.data import demo_data
    work = tmp_path / "work"
    os.makedirs(work / ".demo-images-killed")  # a generation killed by SIGTERM or kill -9
    drawn = []

    def full(out_dir, **kwargs):
        drawn.append(out_dir)
        fx.write(os.path.join(out_dir, "train", "a", "0.jpg"), b"x")
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(demo_data, "make_demo_images", full)
    before = set(os.listdir(tempfile.gettempdir()))
    with pytest.raises(disk_full.DiskFull, match=rf"^the disk holding {work} is full .* while "
                                                 r"generating the demo data; free about \d+ MB"):
        demo_data.make_demo_tfrecords(str(work / "demo_data"), num_classes=2, images_per_class=2,
                                      image_size=72)
    assert os.path.dirname(drawn[0]) == str(work)  # not /tmp: a kill leaves it where it is found
    assert _hidden_temporaries(work) == []  # this one removed, the killed one's too
    assert not [n for n in set(os.listdir(tempfile.gettempdir())) - before
                if n.startswith("alexnet-demo-images-")]


def test_a_full_disk_while_saving_a_checkpoint_and_a_killed_saves_temp_folder(tmp_path, monkeypatch):
    import tensorflow as tf

    from keras_alexnet import disk_full
    from keras_alexnet.training import train, workdir as workdir_lib
    data = fx.demo_data_dir(str(tmp_path / "data"), train_per_class=4, val_per_class=1)
    config = fx.tiny_config(data, {"num_epochs": 1, "checkpoint.every_steps": 1})
    work = str(tmp_path / "work")
    workdir_lib.write_config(workdir_lib.config_to_store(config), work)
    killed = os.path.join(work, "checkpoints", "ckpt-7_temp")  # a kill -9 during a save
    os.makedirs(killed)

    def save(self, checkpoint_number=None, **kwargs):
        os.makedirs(os.path.join(self.directory, f"ckpt-{checkpoint_number}_temp"))
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(tf.train.CheckpointManager, "save", save)
    checkpoints = os.path.join(work, "checkpoints")
    with pytest.raises(disk_full.DiskFull, match=rf"^the disk holding {checkpoints} is full .* "
                                                 r"while saving the checkpoint of step 1 \(not "
                                                 r"saved; no checkpoint is the newest\); free room "
                                                 r"for one checkpoint there"):
        train.train_and_evaluate(config, work)
    assert os.listdir(checkpoints) == []  # the killed save's folder and this one's both gone
