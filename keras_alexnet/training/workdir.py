"""The training workdir on disk: one home for config.json, checkpoints/, best/ and the lock.

    WORKDIR/config.json      the run's config; a workdir holding another config is refused
    WORKDIR/checkpoints/     every checkpoint.every_steps steps and every epoch
    WORKDIR/best/            the checkpoint with the best validation top-1 error
    WORKDIR/metrics.jsonl    one JSON object per event (read_events; reporting.py writes them)
    WORKDIR/data.json        what identifies the run's data, to follow it when it moves
    WORKDIR/tensorboard/     the same scalars, and the conv1 kernels as an image (reporting.py)
    WORKDIR/.lock            held by the bin/train writing the workdir (locking.py)
    WORKDIR/data/            an imported network's labels.txt, stats.npz (weights/caffe_import.py)

The trainer writes it; bin/export, bin/evaluate and bin/report read it back (runs/restore.py).

config.json stores input.data_dir as an absolute path (an empty one for the demo data, which
lives in WORKDIR/demo_data), and never the workdir's own path: a run resumes, exports and
evaluates from any directory, and a moved or copied workdir still does.
"""
import json
import os
import re
import sys

import keras
import numpy as np
import tensorflow as tf

from keras_alexnet import locking
from keras_alexnet import model as model_lib
from keras_alexnet.config import ConfigError
from keras_alexnet.data import layout

CONFIG_FILENAME = "config.json"
CHECKPOINTS_DIR = "checkpoints"
BEST_DIR = "best"
METRICS_FILENAME = "metrics.jsonl"
DATA_FILENAME = "data.json"  # what identifies the run's data (data_identity.py)
LOCK_FILENAME = ".lock"
STATE_FILENAME = "checkpoint"  # tf.train.CheckpointManager's state file in each folder
# The folder the trainer generates the demo dataset into when config.input.data_dir is empty.
DEMO_DATA_DIR = "demo_data"
# An imported network's run folder (weights/caffe_import.py writes it): config.json has an
# IMPORTED section (where the weights came from, how their training images were stored) and
# the folder's own IMPORTED_DATA_DIR holds its labels.txt, stats.npz and dataset.json.
IMPORTED = "imported"
IMPORTED_DATA_DIR = "data"
# metrics.jsonl events that are written only after a checkpoint was saved.
_SAVED_EVENTS = ("checkpoint", "eval", "preempted")

# Fields a resumed run may change without becoming a different run: how long
# it goes on, how it logs and saves, and which machines it runs on.
RESUMABLE_CHANGES = ("num_epochs", "log_every_steps", "progress", "checkpoint", "distribution",
                     "eval", "steps_per_loop", "jit_compile", "max_steps", "fused_lrn",
                     "profile_steps")


class WorkdirError(ConfigError):
    """The workdir cannot be trained in as it is (in use, a run without a readable checkpoint)."""


def checkpoints_dir(workdir):
    return os.path.join(workdir, CHECKPOINTS_DIR)


def best_dir(workdir):
    return os.path.join(workdir, BEST_DIR)


def demo_data_dir(workdir):
    return os.path.join(workdir, DEMO_DATA_DIR)


def imported_data_dir(workdir):
    return os.path.join(workdir, IMPORTED_DATA_DIR)


# Model fields added after runs were already written, with the value every run written
# before them had: such a config.json still rebuilds the network it trained.
LEGACY_MODEL_DEFAULTS = {
    "drop_conv": "",  # every layer of the paper's network, until a study variant dropped one
    "dropout_scaling": "inverted",  # keras.layers.Dropout, until the paper's became the default
    "init_bias": 1.0,
    "lrn_bias": 2.0,  # the paper's k, before it was a field (Caffe's networks need 1)
    "lrn_per_tower": False,  # LRN across the tower boundary, until per-tower became the default
    "name": "paper",  # model.build_alexnet, the only network before config.model.name
}
# The same for config.input and the top level: runs written before these fields had
# today's defaults (make_tfrecords' storage, no fine-tuning).
LEGACY_INPUT_DEFAULTS = {"resize": "shorter_side", "jpeg_reencode": True, "data_service": "", "flip": True}
LEGACY_TOP_DEFAULTS = {"init_from": "", "init_from_skip": [], "freeze": []}
LEGACY_SCHEDULE_DEFAULTS = {"epochs": []}


# -- the lock ------------------------------------------------------------------------------------

def lock(workdir):
    """Takes WORKDIR/.lock for this process (a context manager); WorkdirError if another holds it.

    The kernel releases it when the process ends in any way, so a crashed run leaves nothing
    locked. Only the chief of a multi-worker run takes it (only the chief writes the workdir).
    """
    if not locking.is_local(workdir):
        return _NoLock()
    return locking.lock_folder(
        workdir, LOCK_FILENAME, WorkdirError, flag="--workdir", holder="training",
        advice="two trainings in one workdir would overwrite each other's checkpoints. Wait for "
               "it to end, or use another --workdir.")


class _NoLock(locking.FileLock):
    """A path flock cannot lock (a bucket): nothing to hold."""

    def __init__(self):
        super().__init__("")

    def acquire(self):
        return self


# -- config.json ---------------------------------------------------------------------------------

def config_to_store(config):
    """The config as config.json keeps it: input.data_dir absolute (empty stays empty: the demo)."""
    config = config.copy_and_resolve_references()
    data_dir = config.input.data_dir
    if data_dir and locking.is_local(data_dir):
        config.input.data_dir = os.path.abspath(os.path.expanduser(data_dir))
    return config


def write_config(config, workdir):
    """WORKDIR/config.json: the ConfigDict as JSON, written atomically; and WORKDIR/data.json."""
    os.makedirs(workdir, exist_ok=True)
    layout.atomic_write(os.path.join(workdir, CONFIG_FILENAME), config.to_json(indent=2))
    data_json = os.path.join(workdir, DATA_FILENAME)
    if config.input.data_dir and not os.path.exists(data_json) and \
            os.path.isdir(config.input.data_dir):
        from keras_alexnet.training import data_identity
        data_identity.write(data_json, config.input.data_dir, config.input)


def read_config(workdir):
    """The config a workdir was trained with, as the plain dict of its config.json."""
    path = os.path.join(workdir, CONFIG_FILENAME)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path}: no {CONFIG_FILENAME}; is {workdir} a training workdir?")
    with tf.io.gfile.GFile(path) as f:
        try:
            config = json.load(f)
        except ValueError as e:
            raise WorkdirError(f"{path} is not valid JSON ({e}); is it truncated?") from None
    if isinstance(config.get("model"), dict):
        for key, value in LEGACY_MODEL_DEFAULTS.items():
            config["model"].setdefault(key, value)
    if isinstance(config.get("input"), dict):
        for key, value in LEGACY_INPUT_DEFAULTS.items():
            config["input"].setdefault(key, value)
    if isinstance(config.get("schedule"), dict):
        for key, value in LEGACY_SCHEDULE_DEFAULTS.items():
            config["schedule"].setdefault(key, value)
    for key, value in LEGACY_TOP_DEFAULTS.items():
        config.setdefault(key, value)
    return config


def _is_demo_data(input_config):
    """An empty data_dir, or (config.json written before it was kept empty) WORKDIR/demo_data."""
    data_dir = input_config.get("data_dir") or ""
    return not data_dir or (input_config.get("demo", False)
                            and os.path.basename(os.path.normpath(data_dir)) == DEMO_DATA_DIR)


def stored_data_dir(config, workdir):
    """The data folder of a run, from its config.json dict, wherever the workdir now is."""
    input_config = config.get("input", {})
    if config.get(IMPORTED):  # its labels and mean image travel with the folder
        return imported_data_dir(workdir)
    if _is_demo_data(input_config):
        return demo_data_dir(workdir)
    data_dir = input_config["data_dir"]
    if locking.is_local(data_dir) and not os.path.isdir(data_dir):
        kind = ("a relative path (config.json written before paths were stored absolute), "
                f"not found from {os.getcwd()}" if not os.path.isabs(data_dir) else "not found")
        raise FileNotFoundError(f"{os.path.join(workdir, CONFIG_FILENAME)}: input.data_dir "
                                f"{data_dir!r} is {kind}; pass --data_dir=FOLDER")
    return data_dir


def _comparable(config_dict):
    config_dict = json.loads(json.dumps(config_dict))
    input_config = config_dict.get("input", {})
    if _is_demo_data(input_config):
        input_config["data_dir"] = ""
    elif locking.is_local(input_config["data_dir"]):
        input_config["data_dir"] = os.path.realpath(input_config["data_dir"])
    input_config.pop("data_service", None)  # where the images are decoded: the same run
    return _without(config_dict, RESUMABLE_CHANGES)


def check_workdir(config, workdir):
    """Refuses a workdir that holds a run of a different config; returns True if resuming.

    input.data_dir compares as the folder it names (a relative path of an older config.json
    from the current directory), the demo data wherever the workdir is.
    """
    path = os.path.join(workdir, CONFIG_FILENAME)
    if not os.path.exists(path):
        ckpts = checkpoints_dir(workdir)
        if os.path.isdir(ckpts) and os.listdir(ckpts):
            raise ConfigError(f"{workdir} holds checkpoints but no {CONFIG_FILENAME}; refusing to "
                              "train over a run of unknown config")
        return False
    old_config = read_config(workdir)
    old_core = _comparable(old_config)
    new_core = _comparable(json.loads(config.to_json()))
    if old_core != new_core:
        diffs = sorted(_diff(old_core, new_core))
        if diffs == ["input.data_dir"]:  # moved data: the same dataset may be resumed on
            from keras_alexnet.training import data_identity
            return data_identity.follow_moved_data(
                old_config, config, os.path.join(workdir, DATA_FILENAME), path)
        raise ConfigError(f"{workdir} holds a run of a different config ({path}); differing fields: "
                          f"{', '.join(diffs[:10])}. Use a new --workdir.")
    return True


def _without(config_dict, fields):
    return {k: v for k, v in config_dict.items() if k not in fields}


def _diff(a, b, prefix=""):
    for key in set(a) | set(b):
        va, vb = a.get(key, "<missing>"), b.get(key, "<missing>")
        if isinstance(va, dict) and isinstance(vb, dict):
            yield from _diff(va, vb, f"{prefix}{key}.")
        elif va != vb:
            yield f"{prefix}{key}"


# -- metrics.jsonl -------------------------------------------------------------------------------

# An event's fields that readers compute with, and what they must hold (the *_error fields are
# numbers too); other fields pass as they are. A non-finite number is written as the string
# "nan", "inf" or "-inf" (reporting.py) and read back as the float.
_NUMBER_FIELDS = ("epoch", "time", "loss", "learning_rate", "images_per_sec", "num_images")
_TEXT_FIELDS = ("split", "path", "where")
_NON_FINITE = ("nan", "inf", "-inf")
_warned = set()  # (path, bad line numbers) already said, so a reader polling a run says it once


def metrics_path(workdir):
    return os.path.join(workdir, METRICS_FILENAME)


def append_event(workdir, record):
    """Appends one event (a dict) to WORKDIR/metrics.jsonl as a JSON line.

    A last line cut short (a kill mid-write) is closed first, so this event starts on a
    line of its own instead of being glued to the broken one and lost with it.
    """
    with open(metrics_path(workdir), "ab+") as f:
        if f.seek(0, os.SEEK_END) > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
        f.write(json.dumps(record).encode() + b"\n")


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def as_event(record):
    """A parsed JSON line as an event (non-finite numbers as floats), or None if it is not one."""
    if not isinstance(record, dict) or not isinstance(record.get("event"), str):
        return None
    if not isinstance(record.get("step"), int) or isinstance(record["step"], bool):
        return None
    event = dict(record)
    for name, value in record.items():
        if name in _NUMBER_FIELDS or name.endswith("_error"):
            if value in _NON_FINITE:
                event[name] = float(value)
            elif not _number(value):
                return None
        elif name in _TEXT_FIELDS and not isinstance(value, str):
            return None
    return event


def _parse(line):
    try:
        return as_event(json.loads(line))
    except ValueError:
        return None


def read_events(workdir, *, missing_ok=False, stream="stderr"):
    """The events of WORKDIR/metrics.jsonl, in the order written.

    A line that is not an event (cut short by a kill mid-write, or not an event: a JSON
    list, a field of the wrong type) is skipped, and said once on `stream` with its line
    number. A run resumed after kill -9 repeats the steps since its last checkpoint:
    readers keep the last event of each step. Without the file: [] if missing_ok, else
    FileNotFoundError.
    """
    path = metrics_path(workdir)
    if not tf.io.gfile.exists(path):
        if missing_ok:
            return []
        raise FileNotFoundError(f"{path}: no training events; has bin/train run in {workdir}?")
    with tf.io.gfile.GFile(path) as f:
        lines = f.read().splitlines()
    events, bad = [], []
    for number, line in enumerate(lines, 1):
        event = _parse(line) if line.strip() else {}
        if event is None:
            bad.append(number)
        elif event:
            events.append(event)
    if bad and (path, tuple(bad)) not in _warned:
        _warned.add((path, tuple(bad)))
        numbers = ", ".join(map(str, bad[:5])) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        _say(stream, f"{path}: skipped line{'s' if len(bad) > 1 else ''} {numbers}, not a "
                     "training event (cut short by a kill, or not written by bin/train)")
    return events


# -- checkpoints ---------------------------------------------------------------------------------

def read_state(folder):
    """(latest path, all paths, problem) from a folder's checkpoint state file.

    problem is None, or why the file cannot be used (empty, not a state file). TensorFlow
    itself raises on an empty state file and silently ignores a garbled one, which would
    restart a run from step 0.
    """
    from google.protobuf import text_format
    from tensorflow.python.training import checkpoint_state_pb2
    path = os.path.join(folder, STATE_FILENAME)
    if not tf.io.gfile.exists(path):
        return None, [], None
    try:
        with tf.io.gfile.GFile(path) as f:
            text = f.read()
        state = checkpoint_state_pb2.CheckpointState()
        text_format.Parse(text, state)
    except Exception as e:  # ParseError, UnicodeDecodeError, a read error
        return None, [], f"is not a checkpoint state file ({type(e).__name__}: {_first_line(e)})"
    if not state.model_checkpoint_path:
        return None, [], "is empty" if not text.strip() else "names no checkpoint"
    full = lambda p: p if os.path.isabs(p) or "://" in p else os.path.join(folder, p)  # noqa: E731
    return full(state.model_checkpoint_path), [full(p) for p in state.all_model_checkpoint_paths], None


def write_state(folder, latest, all_paths):
    """Writes a folder's state file as tf.train.CheckpointManager does: names relative to it."""
    from google.protobuf import text_format
    from tensorflow.python.training import checkpoint_state_pb2
    state = checkpoint_state_pb2.CheckpointState(
        model_checkpoint_path=os.path.basename(latest),
        all_model_checkpoint_paths=[os.path.basename(p) for p in all_paths])
    layout.atomic_write(os.path.join(folder, STATE_FILENAME), text_format.MessageToString(state))


def checkpoint_files(folder):
    """The ckpt-N prefixes in folder that have an .index file, newest (largest N) first."""
    found = []
    for path in tf.io.gfile.glob(os.path.join(folder, "ckpt-*.index")):
        match = re.fullmatch(r"ckpt-(\d+)\.index", os.path.basename(path))
        if match:
            found.append((int(match.group(1)), path[:-len(".index")]))
    return [path for _, path in sorted(found, reverse=True)]


def remove_checkpoint(prefix):
    """Removes a checkpoint's files (PREFIX.index, PREFIX.data-*), if there are any."""
    for path in tf.io.gfile.glob(prefix + ".index") + tf.io.gfile.glob(prefix + ".data-*"):
        tf.io.gfile.remove(path)


def _exists(prefix):
    return tf.io.gfile.exists(prefix + ".index")


def _first_line(error):
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    return text.strip().splitlines()[0][:200] if text.strip() else type(error).__name__


def repair_state(folder):
    """Rewrites an unusable state file from the checkpoints present; returns a note or None."""
    latest, _, problem = read_state(folder)
    state_path = os.path.join(folder, STATE_FILENAME)
    if problem is None and (latest is None or _exists(latest)):
        return None
    present = checkpoint_files(folder)
    if not present:
        tf.io.gfile.remove(state_path)
        return (f"{state_path} {problem or f'names {latest}, which is missing'}; "
                "no checkpoint left in the folder, removed it")
    write_state(folder, present[0], present[::-1])
    return (f"{state_path} {problem or f'names {latest}, which is missing'}; rewrote it from the "
            f"{len(present)} checkpoints in the folder (newest {os.path.basename(present[0])})")


def has_saved_before(workdir):
    """Whether this workdir's run ever saved a checkpoint (its files, or metrics.jsonl says so)."""
    for folder in (checkpoints_dir(workdir), best_dir(workdir)):
        if tf.io.gfile.isdir(folder) and tf.io.gfile.listdir(folder):
            return True
    return any(e["event"] in _SAVED_EVENTS for e in read_events(workdir, missing_ok=True))


def restore_latest(checkpoint, workdir, *, write=True, stream="stderr"):
    """Restores the newest readable checkpoint of the run into `checkpoint`; returns its path.

    Tries the latest checkpoint that WORKDIR/checkpoints' state file names, then every
    checkpoint of checkpoints/ and best/ from the newest step down, saying on `stream`
    which ones it skipped and why (a truncated or corrupt file, a deleted latest, a broken
    state file). With write, the state file then names the one restored, so the run goes on
    from it. Returns None for a fresh workdir; raises WorkdirError for a run that saved
    checkpoints of which none can be read: restarting it from step 0 would rotate its
    older checkpoints away and replace best/.
    """
    folder = checkpoints_dir(workdir)
    state_path = os.path.join(folder, STATE_FILENAME)
    latest, _, problem = read_state(folder)
    notes = []
    if problem:
        notes.append(f"{state_path} {problem}")
    if latest and not _exists(latest):
        notes.append(f"{latest}, the latest checkpoint {state_path} names, is missing")
    steps_of = {}
    for path in checkpoint_files(folder) + checkpoint_files(best_dir(workdir)):
        steps_of.setdefault(int(path.rsplit("-", 1)[1]), []).append(path)
    candidates = [latest] if latest and _exists(latest) else []
    candidates += [p for step in sorted(steps_of, reverse=True) for p in steps_of[step]
                   if p not in candidates]
    for path in candidates:
        try:
            checkpoint.restore(path).assert_existing_objects_matched()
        except Exception as e:  # noqa: BLE001  any failure to read it: try the next one
            notes.append(f"{path} is unreadable ({type(e).__name__}: {_first_line(e)})")
            continue
        if notes:
            _say(stream, "; ".join(notes) + f". Resuming from {path}, the newest readable checkpoint.")
            if write:  # the state names the one restored; the others rotate away first
                others = [p for p in checkpoint_files(folder)[::-1] if p != path]
                if os.path.dirname(path) == folder:
                    write_state(folder, path, others + [path])
                elif tf.io.gfile.exists(state_path):
                    tf.io.gfile.remove(state_path)
        return path
    if notes or has_saved_before(workdir):
        why = "; ".join(notes) if notes else f"{folder} and {best_dir(workdir)} hold no checkpoint"
        raise WorkdirError(
            f"{workdir} holds a run that saved checkpoints, but none can be read: {why}. Refusing "
            f"to restart it from step 0 over the old run (its metrics and best/ would be "
            f"replaced): put a checkpoint back into {folder}, or train in a new --workdir.")
    return None


def _say(stream, text):
    stream = sys.stderr if stream == "stderr" else stream  # the one at call time (tests swap it)
    if stream is not None:
        stream.write(f"warning: {text}\n")
        stream.flush()


def checkpoint_path(workdir, checkpoint="best"):
    """The checkpoint prefix for 'best', 'latest', a checkpoint folder or a prefix path."""
    if checkpoint in ("best", "latest"):
        folder = best_dir(workdir) if checkpoint == "best" else checkpoints_dir(workdir)
        path = _newest_in(folder)
        if path is None:
            hint = " (try --checkpoint=latest)" if checkpoint == "best" else ""
            raise FileNotFoundError(f"no checkpoint in {folder}{hint}")
        return path
    if tf.io.gfile.isdir(checkpoint):
        path = _newest_in(checkpoint)
        if path is None:
            raise FileNotFoundError(f"--checkpoint={checkpoint}: no checkpoint in this folder")
        return path
    if not tf.io.gfile.exists(checkpoint + ".index"):
        raise FileNotFoundError(f"--checkpoint={checkpoint}: neither 'best', 'latest', a folder "
                                "nor a checkpoint prefix (no .index file)")
    return checkpoint


def _newest_in(folder, stream="stderr"):
    """The latest checkpoint the state file names; else (saying why) the newest file present."""
    latest, _, problem = read_state(folder)
    if latest and _exists(latest):
        return latest
    present = checkpoint_files(folder)
    if present and (problem or latest):
        why = problem or f"names {latest}, which is missing"
        _say(stream, f"{os.path.join(folder, STATE_FILENAME)} {why}; using {present[0]}, the "
                     "newest checkpoint in the folder")
    return present[0] if present else None


def build_float32_model(model_kwargs):
    """model.build_model(config.model) in float32 (for reading a checkpoint), whatever policy the run trained under."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        return model_lib.build_model(model_kwargs)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def restore_model(model, path):
    """Loads the `model` entry of a training checkpoint; fails unless every weight was restored.

    Every weight is first set to NaN, so one the checkpoint does not hold (a
    different architecture, or a layer whose variables the checkpoint did not
    track) is named instead of silently keeping its random initial value.
    """
    for weight in model.weights:
        weight.assign(np.full(weight.shape, np.nan, weight.dtype))
    # expect_partial: the optimizer, step and schedule entries are not needed here.
    tf.train.Checkpoint(model=model).restore(path).expect_partial()
    missing = [w.path for w in model.weights if np.isnan(w.numpy()).any()]
    if missing:
        raise ValueError(f"{path} holds no value for {len(missing)} of the model's "
                         f"{len(model.weights)} weights ({', '.join(missing[:8])}); was it "
                         "written for another config.model, or by a model.py whose "
                         "tf.train.Checkpoint did not track these layers?")
    return model
