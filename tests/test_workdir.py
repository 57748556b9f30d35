"""training/workdir.py: config.json written then read back and compared; checkpoint paths; metrics.jsonl."""
import io
import json
import math
import os

import pytest
import tensorflow as tf

from keras_alexnet import config as config_lib
from keras_alexnet.training import workdir as workdir_lib


def test_config_round_trip(tmp_path):
    config = config_lib.get_config()
    config.input.data_dir = "/data"
    config.model.num_classes = 17
    workdir_lib.write_config(config, str(tmp_path / "run"))
    read = workdir_lib.read_config(str(tmp_path / "run"))
    assert read["model"]["num_classes"] == 17 and read["input"]["data_dir"] == "/data"
    # As JSON keeps it: a tuple field (profile_steps) reads back as a list.
    assert read == json.loads(json.dumps(config_lib.get_config().to_dict() | {
        "model": dict(config.model), "input": dict(config.input)}))
    assert sorted(os.listdir(tmp_path / "run")) == [workdir_lib.CONFIG_FILENAME]  # no temporary
    with pytest.raises(FileNotFoundError, match="is .* a training workdir"):
        workdir_lib.read_config(str(tmp_path / "nothing"))


def test_workdir_of_another_config_is_refused(tmp_path):
    config = config_lib.get_config()
    config.input.data_dir = "/data"
    assert workdir_lib.check_workdir(config, str(tmp_path)) is False
    workdir_lib.write_config(config, str(tmp_path))
    assert workdir_lib.check_workdir(config, str(tmp_path)) is True
    # How long, how often to save, and where to run may change on resume...
    config.num_epochs = 120
    config.checkpoint.every_steps = 10
    assert workdir_lib.check_workdir(config, str(tmp_path)) is True
    # ... what is trained may not.
    config.optimizer.learning_rate = 0.02
    config.model.dropout = 0.0
    before = (tmp_path / "config.json").read_text()
    with pytest.raises(config_lib.ConfigError, match="different config.*model.dropout, "
                                                     "optimizer.learning_rate"):
        workdir_lib.check_workdir(config, str(tmp_path))
    assert (tmp_path / "config.json").read_text() == before


def test_checkpoints_without_config_are_refused(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "checkpoint").write_text("x")
    config = config_lib.get_config()
    with pytest.raises(config_lib.ConfigError, match="no config.json"):
        workdir_lib.check_workdir(config, str(tmp_path))


def test_checkpoint_path_resolves_best_latest_folders_and_prefixes(tmp_path):
    workdir = str(tmp_path)
    step = tf.Variable(1)
    checkpoint = tf.train.Checkpoint(step=step)
    latest = tf.train.CheckpointManager(checkpoint, workdir_lib.checkpoints_dir(workdir), 3)
    latest.save()
    last = latest.save()
    with pytest.raises(FileNotFoundError, match="try --checkpoint=latest"):
        workdir_lib.checkpoint_path(workdir, "best")
    best = tf.train.CheckpointManager(checkpoint, workdir_lib.best_dir(workdir), 1).save()
    assert workdir_lib.checkpoint_path(workdir, "best") == best
    assert workdir_lib.checkpoint_path(workdir, "latest") == last
    assert workdir_lib.checkpoint_path(workdir, workdir_lib.checkpoints_dir(workdir)) == last
    first = last.replace("ckpt-2", "ckpt-1")
    assert workdir_lib.checkpoint_path(workdir, first) == first
    with pytest.raises(FileNotFoundError, match="neither 'best', 'latest'"):
        workdir_lib.checkpoint_path(workdir, str(tmp_path / "nope"))


def test_config_json_written_before_dropout_scaling_reads_as_inverted(tmp_path):
    """Runs trained with keras.layers.Dropout (before the paper's dropout became the default)
    and unit biases rebuild the same network from their config.json."""
    import json
    config = config_lib.get_config().to_dict()
    del config["model"]["dropout_scaling"], config["model"]["init_bias"]
    (tmp_path / workdir_lib.CONFIG_FILENAME).write_text(json.dumps(config))
    model = workdir_lib.read_config(str(tmp_path))["model"]
    assert model["dropout_scaling"] == "inverted" and model["init_bias"] == 1.0
    fresh = config_lib.get_config()
    fresh.input.data_dir = "/data"
    workdir_lib.write_config(fresh, str(tmp_path / "new"))
    assert workdir_lib.read_config(str(tmp_path / "new"))["model"]["dropout_scaling"] == "paper"


# -- a bad latest checkpoint, a broken state file, a run without checkpoints (issue 9, item 7) ---

def _three_checkpoints(workdir):
    """checkpoints/ckpt-4, -8 and -12 of a step variable and a weight, as the trainer saves them."""
    step, weight = tf.Variable(0, dtype=tf.int64), tf.Variable(tf.zeros([64, 64]))
    checkpoint = tf.train.Checkpoint(step=step, weight=weight)
    manager = tf.train.CheckpointManager(checkpoint, workdir_lib.checkpoints_dir(workdir), 3)
    for n in (4, 8, 12):
        step.assign(n)
        weight.assign(tf.fill([64, 64], float(n)))
        manager.save(checkpoint_number=n)
    step.assign(0)
    weight.assign(tf.zeros([64, 64]))
    return checkpoint, step, weight


def _ckpt(workdir, n):
    return os.path.join(workdir_lib.checkpoints_dir(workdir), f"ckpt-{n}")


def test_an_unreadable_latest_checkpoint_falls_back_to_the_newest_readable(tmp_path):
    import glob
    import io
    workdir = str(tmp_path)
    checkpoint, step, weight = _three_checkpoints(workdir)
    data = glob.glob(_ckpt(workdir, 12) + ".data-*")[0]
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 2)  # a copy cut short, a full disk
    said = io.StringIO()
    assert workdir_lib.restore_latest(checkpoint, workdir, stream=said) == _ckpt(workdir, 8)
    assert int(step) == 8 and float(weight[0, 0]) == 8.0
    assert "ckpt-12 is unreadable" in said.getvalue()
    assert f"Resuming from {_ckpt(workdir, 8)}, the newest readable checkpoint" in said.getvalue()
    # The state file now names the one the run goes on from.
    assert tf.train.latest_checkpoint(workdir_lib.checkpoints_dir(workdir)) == _ckpt(workdir, 8)


def test_a_deleted_latest_checkpoint_is_not_a_restart_at_step_0(tmp_path):
    workdir = str(tmp_path)
    checkpoint, step, _ = _three_checkpoints(workdir)
    for path in tf.io.gfile.glob(_ckpt(workdir, 12) + ".*"):
        os.remove(path)  # the state file still names ckpt-12
    assert tf.train.latest_checkpoint(workdir_lib.checkpoints_dir(workdir)) is None  # TF: step 0
    import io
    said = io.StringIO()
    assert workdir_lib.restore_latest(checkpoint, workdir, stream=said) == _ckpt(workdir, 8)
    assert int(step) == 8
    assert "ckpt-12, the latest checkpoint" in said.getvalue() and "is missing" in said.getvalue()


@pytest.mark.parametrize("content", ["", "not a state file {{{\n", "\x00\x01garbage"])
def test_a_corrupt_or_empty_state_file_is_a_sentence_not_a_traceback(tmp_path, content):
    import io
    workdir = str(tmp_path)
    checkpoint, step, _ = _three_checkpoints(workdir)
    state = os.path.join(workdir_lib.checkpoints_dir(workdir), "checkpoint")
    with open(state, "w") as f:
        f.write(content)
    said = io.StringIO()
    assert workdir_lib.restore_latest(checkpoint, workdir, stream=said) == _ckpt(workdir, 12)
    assert int(step) == 12
    assert f"{state} is" in said.getvalue()
    # bin/export and bin/evaluate's --checkpoint=latest too: the newest file, said so.
    with open(state, "w") as f:
        f.write(content)
    assert workdir_lib.checkpoint_path(workdir, "latest") == _ckpt(workdir, 12)


def test_a_run_whose_checkpoints_are_all_gone_is_refused(tmp_path):
    import shutil
    workdir = str(tmp_path)
    checkpoint, _, _ = _three_checkpoints(workdir)
    with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
        f.write('{"event": "train", "step": 2}\n{"event": "checkpoint", "step": 4}\n')
    for n in (4, 8, 12):
        for path in tf.io.gfile.glob(_ckpt(workdir, n) + ".data-*"):
            with open(path, "r+b") as f:
                f.truncate(10)
    with pytest.raises(workdir_lib.WorkdirError, match="none can be read.*ckpt-12 is unreadable.*"
                                                       "Refusing to restart it from step 0"):
        workdir_lib.restore_latest(checkpoint, workdir, stream=None)
    shutil.rmtree(workdir_lib.checkpoints_dir(workdir))  # deleted by hand
    with pytest.raises(workdir_lib.WorkdirError, match="hold no checkpoint. Refusing"):
        workdir_lib.restore_latest(checkpoint, workdir, stream=None)
    # A run stopped before its first checkpoint has nothing to lose: it starts (again).
    with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
        f.write('{"event": "train", "step": 2}\n')
    assert workdir_lib.restore_latest(checkpoint, workdir, stream=None) is None


def test_best_checkpoint_is_a_fallback_too(tmp_path):
    import shutil
    workdir = str(tmp_path)
    checkpoint, step, _ = _three_checkpoints(workdir)
    step.assign(8)
    tf.train.CheckpointManager(checkpoint, workdir_lib.best_dir(workdir), 1).save(checkpoint_number=8)
    shutil.rmtree(workdir_lib.checkpoints_dir(workdir))
    step.assign(0)
    assert workdir_lib.restore_latest(checkpoint, workdir, stream=None).endswith("best/ckpt-8")
    assert int(step) == 8


# -- the workdir lock (item 8) -------------------------------------------------------------------

def test_one_training_at_a_time_per_workdir_and_a_killed_one_leaves_it_unlocked(tmp_path):
    import signal
    import subprocess
    import sys
    workdir = str(tmp_path / "run")
    with workdir_lib.lock(workdir):
        with pytest.raises(workdir_lib.WorkdirError, match=r"in use by another training \(pid "
                                                           rf"{os.getpid()} on "):
            workdir_lib.lock(workdir)
    with workdir_lib.lock(workdir):  # released on exit
        pass
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from keras_alexnet.training import workdir; "
         "workdir.lock(sys.argv[1]); print('locked', flush=True); time.sleep(300)", workdir],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(workdir_lib.WorkdirError, match=f"pid {holder.pid} "):
            workdir_lib.lock(workdir)
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    finally:
        if holder.poll() is None:
            holder.kill()
    with workdir_lib.lock(workdir):  # the kernel released the dead process's lock
        pass


def test_a_workdir_under_a_file_is_a_sentence(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(workdir_lib.WorkdirError, match="file is a file, not a folder"):
        workdir_lib.lock(str(tmp_path / "file" / "run"))


# -- paths in config.json (item 11) --------------------------------------------------------------

def test_config_json_stores_an_absolute_data_dir_and_never_the_workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    config = config_lib.get_config()
    config.input.data_dir = "data"
    stored = workdir_lib.config_to_store(config)
    assert stored.input.data_dir == str(tmp_path / "data")
    assert config.input.data_dir == "data"  # the caller's config is left as it was
    demo = config_lib.get_config()
    demo.input.demo = True
    assert workdir_lib.config_to_store(demo).input.data_dir == ""  # the demo: WORKDIR/demo_data
    workdir_lib.write_config(stored, "run")
    monkeypatch.chdir("/")
    assert workdir_lib.stored_data_dir(workdir_lib.read_config(str(tmp_path / "run")),
                                       str(tmp_path / "run")) == str(tmp_path / "data")


def test_config_json_of_older_runs_still_resumes(tmp_path, monkeypatch):
    """Older config.json files hold data_dir as given: relative, or WORKDIR/demo_data."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    old = config_lib.get_config()
    old.input.data_dir = "data"
    workdir_lib.write_config(old, "run")
    config = workdir_lib.config_to_store(old)
    assert workdir_lib.check_workdir(config, "run") is True  # the same folder
    demo = config_lib.get_config()
    demo.input.demo = True
    demo.input.data_dir = "old/place/run/demo_data"
    workdir_lib.write_config(demo, "moved")
    demo.input.data_dir = ""
    assert workdir_lib.check_workdir(workdir_lib.config_to_store(demo), "moved") is True
    assert workdir_lib.stored_data_dir(workdir_lib.read_config("moved"), "moved") == \
        os.path.join("moved", "demo_data")
    monkeypatch.chdir("/")
    with pytest.raises(FileNotFoundError, match="'data' is a relative path .* pass --data_dir"):
        workdir_lib.stored_data_dir(workdir_lib.read_config(str(tmp_path / "run")),
                                    str(tmp_path / "run"))

def test_config_json_written_before_lrn_per_tower_rebuilds_cross_tower_lrn(tmp_path):
    """Runs trained with LRN across the tower boundary rebuild that network, and a new run's
    per-tower default is refused in their workdir rather than resumed as a different net."""
    import json
    config = config_lib.get_config()
    config.model.update(num_classes=4, image_size=67, width=0.125, fc_units=16)
    config.input.data_dir = "/data"
    old = config.to_dict()
    del old["model"]["lrn_per_tower"]
    (tmp_path / workdir_lib.CONFIG_FILENAME).write_text(json.dumps(old))
    read = workdir_lib.read_config(str(tmp_path))["model"]
    assert read["lrn_per_tower"] is False
    model = workdir_lib.build_float32_model(read)
    assert [model.get_layer(n).towers for n in ("lrn1", "lrn2")] == [1, 1]
    with pytest.raises(config_lib.ConfigError, match="model.lrn_per_tower"):
        workdir_lib.check_workdir(config, str(tmp_path))
    config.model.lrn_per_tower = False  # resuming the old run as it was trained
    assert workdir_lib.check_workdir(config, str(tmp_path)) is True
    assert config_lib.get_config().model.lrn_per_tower is True


def test_config_json_written_before_model_name_and_lrn_bias_reads_as_the_paper_net(tmp_path):
    """Runs written before config.model.name and config.model.lrn_bias existed rebuild the
    paper's network with the paper's k = 2, and resume under today's default config."""
    import json
    config = config_lib.get_config()
    config.model.update(num_classes=4, image_size=67, width=0.125, fc_units=16)
    config.input.data_dir = "/data"
    old = config.to_dict()
    del old["model"]["name"], old["model"]["lrn_bias"]
    (tmp_path / workdir_lib.CONFIG_FILENAME).write_text(json.dumps(old))
    read = workdir_lib.read_config(str(tmp_path))["model"]
    assert read["name"] == "paper" and read["lrn_bias"] == 2.0
    model = workdir_lib.build_float32_model(read)
    assert [model.get_layer(n).bias for n in ("lrn1", "lrn2")] == [2.0, 2.0]
    assert workdir_lib.check_workdir(config, str(tmp_path)) is True  # the same run
    config.model.lrn_bias = 1.0  # Caffe's k: another network, refused in this workdir
    with pytest.raises(config_lib.ConfigError, match="model.lrn_bias"):
        workdir_lib.check_workdir(config, str(tmp_path))


# -- metrics.jsonl: one reader, one writer ---------------------------------------------------------

_NOT_EVENTS = ['[1, 2, 3]', '"text"', '{"event": "eval", "step": "7"}', '{"step": 3}',
               '{"event": "eval", "step": 8, "top1_error": "low"}', '{"event": "train", "step": true}',
               '{"event": "final", "step": 9, "split": 3}', '{"event": "eval", "step": 4, "ep',
               '{"event": "eval", "step": 5, "top1_error": "low"}', '{"event": "train", "step": 6, "loss": []}']


def test_read_events_skips_lines_that_are_not_events_and_says_so_once(tmp_path):
    good = ['{"event": "train", "step": 1, "epoch": 0.5, "loss": "nan", "top1_error": 0.9}',  # nan: as written
            '{"event": "eval", "step": 2, "epoch": 1, "top1_error": 0.5, "extra": [1]}']
    lines = [good[0]] + _NOT_EVENTS + ["", good[1]]
    (tmp_path / workdir_lib.METRICS_FILENAME).write_text("\n".join(lines))
    said = io.StringIO()
    events = workdir_lib.read_events(str(tmp_path), stream=said)
    assert [e["step"] for e in events] == [1, 2]
    assert math.isnan(events[0]["loss"]) and events[1]["extra"] == [1]
    path = os.path.join(str(tmp_path), workdir_lib.METRICS_FILENAME)
    assert said.getvalue().count("\n") == 1  # one warning for all of them
    assert said.getvalue().startswith(f"warning: {path}: skipped lines 2, 3, 4, 5, 6 and 5 more")
    again = io.StringIO()
    assert [e["step"] for e in workdir_lib.read_events(str(tmp_path), stream=again)] == [1, 2]
    assert again.getvalue() == ""  # said once


def test_readers_of_a_run_take_lines_that_are_not_events(tmp_path):
    """bin/export's model card, the has-it-saved check and the study read past them."""
    from keras_alexnet.serving import model_card
    from keras_alexnet.study import analysis
    (tmp_path / workdir_lib.METRICS_FILENAME).write_text("\n".join(_NOT_EVENTS[:3]) + "\n")
    assert workdir_lib.has_saved_before(str(tmp_path)) is False
    events = workdir_lib.read_events(str(tmp_path), stream=None)
    assert events == [] and model_card.error_rows(events) == []
    assert analysis.final_event(events, "validation") is None


def test_read_events_without_the_file(tmp_path):
    assert workdir_lib.read_events(str(tmp_path), missing_ok=True) == []
    with pytest.raises(FileNotFoundError, match="no training events"):
        workdir_lib.read_events(str(tmp_path))


def test_the_writer_starts_on_a_new_line_after_a_line_cut_short(tmp_path):
    """A kill mid-write leaves half a line; the resumed run's first event is not glued to it."""
    from keras_alexnet.training import reporting
    path = tmp_path / workdir_lib.METRICS_FILENAME
    path.write_text('{"event": "checkpoint", "step": 4, "epoch": 1, "path": "c"}\n{"event": "tra')
    reporter = reporting.Reporter(str(tmp_path))
    reporter.event("train", 5, epoch=1.25, loss=2.0)
    reporter.event("train", 6, epoch=1.5, loss=1.5)
    said = io.StringIO()
    events = workdir_lib.read_events(str(tmp_path), stream=said)
    assert [(e["event"], e["step"]) for e in events] == [("checkpoint", 4), ("train", 5), ("train", 6)]
    assert "skipped line 2," in said.getvalue()
    assert path.read_text().endswith('"loss": 1.5}\n')
    assert workdir_lib.has_saved_before(str(tmp_path)) is True


def test_config_json_written_before_lrn_bias_reads_as_the_papers_k(tmp_path):
    """A run from before model.lrn_bias rebuilds with k = 2 and resumes under today's default."""
    import json
    config = config_lib.get_config()
    config.input.data_dir = "/data"
    old = config.to_dict()
    del old["model"]["lrn_bias"]
    (tmp_path / workdir_lib.CONFIG_FILENAME).write_text(json.dumps(old))
    assert workdir_lib.read_config(str(tmp_path))["model"]["lrn_bias"] == 2.0
    assert workdir_lib.check_workdir(config, str(tmp_path)) is True
    config.model.lrn_bias = 1.0
    with pytest.raises(config_lib.ConfigError, match="model.lrn_bias"):
        workdir_lib.check_workdir(config, str(tmp_path))
