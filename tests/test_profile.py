"""config.profile_steps (training/profile.py): a profiler trace of the window's steps only."""
import glob
import json
import os
import types

import pytest
import tensorflow as tf
from absl import flags
from ml_collections import config_flags
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from keras_alexnet import config as config_lib
from keras_alexnet.training import profile, train
from fixtures import tiny_config

STEPS_PER_EPOCH = 6  # tiny_config's 48 demo images, batch 8


@pytest.mark.parametrize("value,window", [
    ((), None), ((20, 25), (20, 25)), ((7,), (7, 7)), ([3, 4], (3, 4)), ((5, 5), (5, 5))])
def test_profile_steps_accepts_a_window(value, window):
    assert config_lib.profile_window(value) == window


@pytest.mark.parametrize("value", [(0, 3), (5, 2), (1, 2, 3), ("20", "25"), "20,25", (2.0, 3),
                                   (True, 2), -1])
def test_profile_steps_refuses_other_values_naming_the_field(value):
    config = tiny_config("/data")
    config.profile_steps = value if isinstance(value, tuple) else ()
    if not isinstance(value, tuple):  # a config file cannot set a tuple field to these
        with pytest.raises(config_lib.ConfigError, match=r"config\.profile_steps: must be"):
            config_lib.profile_window(value)
        return
    with pytest.raises(config_lib.ConfigError, match=r"config\.profile_steps: must be the first "
                                                     r"and last training steps.*got"):
        config_lib.validate(config)


@pytest.mark.parametrize("arg,window", [("20,25", (20, 25)), ("'(20, 25)'", None),
                                        ("(20, 25)", (20, 25)), ("20", (20, 20))])
def test_profile_steps_from_the_command_line(tmp_path, arg, window):
    path = tmp_path / "base.py"  # a config file, as bin/train reads one (ml_collections)
    path.write_text("from keras_alexnet import config\n"
                    "def get_config():\n    return config.get_config()\n")
    argv = ["bin/train", f"--config={path}", f"--config.profile_steps={arg}"]
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", flag_values=values, sys_argv=argv)
    values(argv)
    if window is None:  # the shell's quotes left in by mistake: a string, refused
        with pytest.raises(config_lib.ConfigError, match=r"config\.profile_steps: must be"):
            config_lib.profile_window(values.config.profile_steps)
        return
    assert config_lib.profile_window(values.config.profile_steps) == window


class _FakeProfiler:
    """tf.profiler.experimental's start, stop and Trace, recording what the loop asks for."""

    def __init__(self, monkeypatch):
        self.log = []
        monkeypatch.setattr(tf.profiler.experimental, "start",
                            lambda logdir, **kw: self.log.append(("start", logdir)))
        monkeypatch.setattr(tf.profiler.experimental, "stop", lambda: self.log.append(("stop",)))
        test = self

        class Trace:
            def __init__(self, name, step_num, _r):
                assert (name, _r) == ("train", 1)
                self.step_num = step_num

            def __enter__(self):
                test.log.append(("step", self.step_num))

            def __exit__(self, *exc):
                pass

        monkeypatch.setattr(tf.profiler.experimental, "Trace", Trace)


def _simulate(profiler, total, steps_per_loop):
    """The loop's calls over `total` steps through the profiler's hooks, as loop.train_epoch
    makes them: (first step, steps, "alone" for a call without the in-graph loop)."""
    calls, at = [], 0
    while at < total:
        count = profiler.clip(at, min(steps_per_loop, total - at))
        with profiler.step(at, count):
            calls.append((at + 1, count) + (("alone",) if profiler.one_step(at) else ()))
        at += count
        profiler.after(at, [tf.constant(0.0)])
    profiler.stop()
    return calls


def test_only_the_window_s_steps_are_traced_each_alone(monkeypatch):
    fake = _FakeProfiler(monkeypatch)
    calls = _simulate(profile.Profiler((6, 9), "/tb"), 14, steps_per_loop=4)
    # Calls of 4 steps up to step 4; the step before the window (5, untraced: the loop-free
    # step's tracing) and the window's run alone; calls of 4 steps again from step 10.
    assert calls == [(1, 4), (5, 1, "alone"), (6, 1, "alone"), (7, 1, "alone"),
                     (8, 1, "alone"), (9, 1, "alone"), (10, 4), (14, 1)]
    assert fake.log == [("start", "/tb"), ("step", 6), ("step", 7), ("step", 8), ("step", 9),
                        ("stop",)]

    fake.log.clear()
    calls = _simulate(profile.Profiler((1, 2), "/tb"), 5, steps_per_loop=1)
    assert calls == [(1, 1, "alone"), (2, 1, "alone"), (3, 1), (4, 1), (5, 1)]
    assert fake.log == [("start", "/tb"), ("step", 1), ("step", 2), ("stop",)]


def test_without_a_window_nothing_changes(monkeypatch):
    fake = _FakeProfiler(monkeypatch)
    assert _simulate(profile.Profiler(), 9, steps_per_loop=4) == [(1, 4), (5, 4), (9, 1)]
    assert fake.log == []


def test_a_window_past_the_end_is_stopped_and_one_after_it_never_starts(monkeypatch):
    fake = _FakeProfiler(monkeypatch)
    _simulate(profile.Profiler((7, 100), "/tb"), 8, steps_per_loop=1)
    assert fake.log == [("start", "/tb"), ("step", 7), ("step", 8), ("stop",)]
    fake.log.clear()
    assert _simulate(profile.Profiler((10, 12), "/tb"), 8, steps_per_loop=3) == [
        (1, 3), (4, 3), (7, 2)]  # cut before step 9, the step before the window
    assert fake.log == []


def test_a_resumed_run_traces_only_the_window_s_remaining_steps(monkeypatch):
    fake = _FakeProfiler(monkeypatch)
    profiler = profile.Profiler((3, 6), "/tb")
    at = 4  # resumed after step 4
    while at < 8:
        with profiler.step(at, 1):
            pass
        at += 1
        profiler.after(at, [])
    assert fake.log == [("start", "/tb"), ("step", 5), ("step", 6), ("stop",)]


def test_a_worker_without_a_logdir_cuts_its_calls_the_same_but_traces_nothing(monkeypatch):
    fake = _FakeProfiler(monkeypatch)
    assert _simulate(profile.Profiler((6, 9), None), 14, 4) == _simulate(
        profile.Profiler((6, 9), "/tb"), 14, 4)
    assert fake.log == [("start", "/tb"), ("step", 6), ("step", 7), ("step", 8), ("step", 9),
                        ("stop",)]  # the second Profiler's trace only


# -- end to end: bin/train's loop writes the trace where TensorBoard's profile plugin reads it --

def _sessions(workdir):
    """{session folder: sorted step numbers of the "train" step markers in its trace}."""
    sessions = {}
    for path in glob.glob(os.path.join(workdir, "tensorboard", "plugins", "profile", "*",
                                       "*.xplane.pb")):
        space = xplane_pb2.XSpace()
        with open(path, "rb") as f:
            space.ParseFromString(f.read())
        steps = set()
        for plane in space.planes:
            stat_names = {k: m.name for k, m in plane.stat_metadata.items()}
            for line in plane.lines:
                for event in line.events:
                    if plane.event_metadata[event.metadata_id].name != "train":
                        continue
                    steps |= {s.int64_value for s in event.stats
                              if stat_names[s.metadata_id] == "step_num"}
        sessions[os.path.basename(os.path.dirname(path))] = sorted(steps)
    return sessions


def _profile_tab(logdir):
    """(runs, tools of the first, the input-pipeline analyser's step rows) as TensorBoard's
    profile plugin (xprof, what tensorboard-plugin-profile installs) finds and reads them."""
    from etils import epath
    from xprof import profile_plugin
    from xprof.convert import raw_to_tool_data
    context = types.SimpleNamespace(logdir=logdir, data_provider=None,
                                    flags=types.SimpleNamespace(master_tpu_unsecure_channel=""))
    plugin = profile_plugin.ProfilePlugin(context)
    runs = list(plugin.generate_runs())
    tools = plugin.run_tools_imp(runs[0]) if runs else []
    files = glob.glob(os.path.join(logdir, "plugins", "profile", runs[0], "*.xplane.pb"))
    data, _ = raw_to_tool_data.xspace_to_tool_data([epath.Path(f) for f in files],
                                                   "input_pipeline_analyzer", {})
    steps = [row["c"][0]["v"] for row in json.loads(data)[1]["rows"]]  # the step-time table
    return runs, tools, steps


def test_a_run_traces_the_window_and_a_resume_past_it_does_not(data_dir, tmp_path):
    workdir = str(tmp_path / "run")
    result = train.train_and_evaluate(
        tiny_config(data_dir, {"num_epochs": 1, "profile_steps": (2, 3)}), workdir)
    assert result["status"] == "done"
    sessions = _sessions(workdir)
    assert list(sessions.values()) == [[2, 3]]  # one trace, steps 2 and 3 only
    # `tensorboard --logdir WORKDIR/tensorboard`'s Profile tab lists it, and its analysers
    # see the two steps (the step markers), so the step-time graph and input share have them.
    runs, tools, steps = _profile_tab(os.path.join(workdir, "tensorboard"))
    assert runs == list(sessions)
    assert {"overview_page", "input_pipeline_analyzer"} <= set(tools)
    assert steps == ["train 2", "train 3"]
    longer = train.train_and_evaluate(
        tiny_config(data_dir, {"num_epochs": 2, "profile_steps": (2, 3)}), workdir)
    assert longer["step"] == 2 * STEPS_PER_EPOCH
    assert _sessions(workdir) == sessions  # steps 7-12 are past the window: no new trace


def test_a_window_past_the_run_s_end_is_stopped_and_no_window_traces_nothing(data_dir, tmp_path):
    workdir = str(tmp_path / "long")
    config = tiny_config(data_dir, {"num_epochs": 2, "steps_per_loop": 2,
                                    "profile_steps": (5, 100)})
    assert train.train_and_evaluate(config, workdir)["status"] == "done"
    # Across the epoch's end (step 6), one trace to the last step, a marker a step; none
    # before step 5 (steps_per_loop=2 before the window).
    sessions = _sessions(workdir)
    assert list(sessions.values()) == [[5, 6, 7, 8, 9, 10, 11, 12]]
    runs, _, steps = _profile_tab(os.path.join(workdir, "tensorboard"))
    # The analyser (xprof 2.24) leaves out a longer trace's first and last steps.
    assert runs == list(sessions)
    assert set(range(6, 12)) <= {int(s.split()[1]) for s in steps} <= set(range(5, 13))
    plain = str(tmp_path / "plain")
    assert train.train_and_evaluate(tiny_config(data_dir, {"num_epochs": 1}), plain)["status"] \
        == "done"
    assert os.path.isdir(os.path.join(plain, "tensorboard"))
    assert not os.path.exists(os.path.join(plain, "tensorboard", "plugins", "profile"))
