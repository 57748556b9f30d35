"""run_study: trains every (variant, seed) of a study, one process each, and writes its table.

    STUDY_DIR/runs/<variant>-seed<k>/              an ordinary bin/train workdir
    STUDY_DIR/runs/<variant>-seed<k>.config.json   the config that run trains
    STUDY_DIR/runs/<variant>-seed<k>.log           its training output (appended on resume)
    STUDY_DIR/study.json, study.md, figure1.png    the table and Figure 1 (analysis.py, table.py)

Each run is train.train_and_evaluate(config, workdir) in a fresh Python process
(`python -m keras_alexnet.study.runner CONFIG.json WORKDIR`), so TensorFlow's memory
and graph state do not pile up over a dozen trainings and a crash of one run is
reported in the table instead of ending the study. After training, the same process
evaluates the final weights on the training split in evaluation mode (centre crop, no
dropout, no augmentation) into WORKDIR/study_train_split.json: the dropout claim's
training error.

Resuming: re-run the same command. A run whose metrics.jsonl has the 'final' event
(and, with eval_train_split, whose train-split file exists) is not redone; an
interrupted one resumes from its latest checkpoint, as bin/train does. Ctrl-C or
SIGTERM is passed on to the running training as SIGTERM, which saves a checkpoint
before it stops.

Duration: runs x one training, plus about half a minute per run for the train-split
evaluation. With the quick recipe (configs/imagenette.py: about 4 minutes alone on 2
AVX-512-BF16 cores, 3-4x that on AVX2-only float32, longer on a shared machine:
docs/RESULTS.md) the default 11 variants x 2 seeds are 22 runs, about 1.5 hours idle;
configs/imagenette_overfit.py (30 epochs) takes 3.75x as long a run.

retabulate(OUT) rewrites the table from the per-run numbers of OUT/study.json alone (a
study whose run folders are gone, as docs/study).
"""
import json
import os
import signal
import subprocess
import sys
import time

from keras_alexnet import config as config_lib
from keras_alexnet.data import layout
from keras_alexnet.progress import duration
from keras_alexnet.study import analysis, table, variants as variants_lib
from keras_alexnet.training import workdir as workdir_lib

RUNS_DIR = "runs"
STUDY_JSON, STUDY_MD, FIGURE1 = "study.json", "study.md", "figure1.png"
TRAIN_SPLIT_FILENAME = "study_train_split.json"
PREEMPTED_STATUS = 3  # the worker's exit status when SIGTERM stopped the training
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_dir(out, name):
    return os.path.join(out, RUNS_DIR, name)


def plan(base, variant_names, seeds):
    """[(run name, variant, seed, config)] in the order they run: seed-major, so an
    interrupted study has every variant's first seed before any second one."""
    if len(set(seeds)) != len(seeds) or not seeds:
        raise config_lib.ConfigError(f"--seeds: expected distinct seeds, got {list(seeds)}")
    runs = []
    for seed in seeds:
        for variant in variants_lib.check_names(variant_names):
            config = variants_lib.make_config(base, variant, seed)
            try:
                config_lib.validate(config)
            except config_lib.ConfigError as e:
                raise config_lib.ConfigError(f"variant {variant!r}: {e}") from None
            runs.append((variants_lib.run_name(variant, seed), variant, seed, config))
    return runs


def is_finished(workdir, eval_split, eval_train_split):
    if analysis.final_event(workdir_lib.read_events(workdir, missing_ok=True), eval_split) is None:
        return False
    return not eval_train_split or os.path.exists(os.path.join(workdir, TRAIN_SPLIT_FILENAME))


def check_existing_runs(out, runs):
    """A run folder holding another config (a changed --config or override) is refused up front."""
    for name, _, _, config in runs:
        if os.path.isdir(run_dir(out, name)):
            workdir_lib.check_workdir(config, run_dir(out, name))


class _Forwarder:
    """Ctrl-C and SIGTERM become a SIGTERM to the running training (it saves, then stops)."""

    def __init__(self):
        self.child, self.stopping, self.previous = None, False, {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def train_in_subprocess(config, workdir, *, eval_train_split, forwarder):
    """The worker process for one run; returns its exit status. Output goes to WORKDIR.log."""
    os.makedirs(os.path.dirname(workdir), exist_ok=True)
    config_path = workdir + ".config.json"
    layout.atomic_write(config_path, config.to_json(indent=2))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (REPO, os.environ.get("PYTHONPATH")) if p))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    args = [sys.executable, "-m", "keras_alexnet.study.runner", config_path, workdir,
            "1" if eval_train_split else "0"]
    with open(workdir + ".log", "a") as log:
        # Its own session: a terminal's Ctrl-C reaches only the study, which sends SIGTERM.
        forwarder.child = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True)
        if forwarder.stopping:
            forwarder.child.send_signal(signal.SIGTERM)
        status = forwarder.child.wait()
    forwarder.child = None
    return status


def _log_tail(path, lines=3):
    if not os.path.exists(path):
        return ""
    with open(path, errors="replace") as f:
        tail = [line.rstrip() for line in f.readlines()[-lines:]]
    return " | ".join(line for line in tail if line)


def _errors(workdir, eval_split):
    final = analysis.final_event(workdir_lib.read_events(workdir, missing_ok=True), eval_split) or {}
    parts = [f"{label} {final[key]:.2%}" for key, label in (
        ("centre_top1_error", "top-1 centre"), ("ten_crop_top1_error", "ten crops"))
        if key in final]
    return ", ".join(parts)


def collect_runs(out, runs, eval_split, eval_train_split, failed=()):
    """What each run left on disk: status, final event, train-split evaluation, training curve."""
    collected = []
    for name, variant, seed, _ in runs:
        workdir = run_dir(out, name)
        events = workdir_lib.read_events(workdir, missing_ok=True)
        split_path = os.path.join(workdir, TRAIN_SPLIT_FILENAME)
        status = "done" if is_finished(workdir, eval_split, eval_train_split) else \
            "failed" if name in failed else "not finished"
        collected.append(dict(
            name=name, variant=variant, seed=seed, workdir=workdir, status=status,
            final=analysis.final_event(events, eval_split), curve=analysis.train_curve(events),
            train_split=layout.read_json(split_path) if os.path.exists(split_path) else None))
    return collected


def write_study(out, base, runs, variant_names, seeds, thresholds, eval_train_split,
                failed=(), base_config_file=""):
    """study.json, study.md and figure1.png from what the runs wrote; returns the study dict."""
    eval_split = base.input.eval_split
    collected = collect_runs(out, runs, eval_split, eval_train_split, failed)
    study = analysis.summarize(collected, variant_names, thresholds, base.num_epochs)
    done = sum(r["status"] == "done" for r in collected)
    study.update(base_config_file=base_config_file, data_dir=base.input.data_dir,
                 eval_split=eval_split, seeds=list(seeds), runs_done=done,
                 runs_planned=len(collected), base_config=json.loads(base.to_json()))
    _write_table(out, study, f"the runs under `{RUNS_DIR}/` (metrics.jsonl and "
                 f"{TRAIN_SPLIT_FILENAME})")
    table.figure1(collected, os.path.join(out, FIGURE1), thresholds)
    return study


def _write_table(out, study, source):
    header = [f"Baseline config: `{study['base_config_file'] or '(given in code)'}`; data: "
              f"`{study['data_dir'] or '(demo data)'}`, split `{study['eval_split']}`; seeds "
              f"{', '.join(map(str, study['seeds']))}; {study['runs_done']} of "
              f"{study['runs_planned']} runs finished.",
              f"Written by bin/study from {source}; numbers also in study.json."]
    os.makedirs(out, exist_ok=True)
    layout.write_json(os.path.join(out, STUDY_JSON), study, indent=1)
    layout.atomic_write(os.path.join(out, STUDY_MD), table.markdown(study, header) + "\n")


def retabulate(out):
    """study.json and study.md again from the per-run numbers OUT/study.json already holds.

    For a study whose run folders are gone (docs/study keeps only study.json): the verdicts
    of this code from the same finals. figure1.png needs the training curves and is kept.
    """
    path = os.path.join(out, STUDY_JSON)
    if not os.path.exists(path):
        raise FileNotFoundError(f"--retabulate: {path} does not exist; it needs a study.json "
                                "written by bin/study")
    old = layout.read_json(path)
    try:
        rows, variant_names = old["runs"], list(old["variants"])
        study = analysis.summarize_rows(rows, variant_names, old["error_thresholds"],
                                        (old.get("base_config") or {}).get("num_epochs"))
    except (KeyError, TypeError) as e:
        raise config_lib.ConfigError(f"--retabulate: {path} lacks the per-run numbers of a "
                                     f"study.json ({e}); re-tabulate from its runs with "
                                     "--notrain instead") from None
    study.update({k: old.get(k) for k in ("base_config_file", "data_dir", "eval_split", "seeds",
                                          "runs_done", "runs_planned", "base_config")})
    _write_table(out, study, f"the per-run numbers of a previous {STUDY_JSON} (--retabulate)")
    return study


def run_study(base, out, variant_names, seeds, *, thresholds=(0.7, 0.6, 0.5),
              eval_train_split=True, train=True, base_config_file="", stream=None):
    """Trains what is not finished (unless train=False), then writes the table.

    Returns (study dict, names of runs that failed, True if interrupted).
    """
    stream = stream or sys.stdout
    runs = plan(base, variant_names, seeds)
    check_existing_runs(out, runs)
    if train and base.input.data_dir:
        from keras_alexnet.training import train as train_lib
        train_lib.check_data(base)
    failed, interrupted, start = [], False, time.time()
    eval_split = base.input.eval_split

    def say(message):
        stream.write(f"[{duration(time.time() - start)}] {message}\n")
        stream.flush()

    with _Forwarder() as forwarder:
        for i, (name, _, _, config) in enumerate(runs if train else [], 1):
            workdir, count = run_dir(out, name), f"{i}/{len(runs)}"
            if is_finished(workdir, eval_split, eval_train_split):
                say(f"run {count} {name}: finished before, kept")
                continue
            if forwarder.stopping:
                break
            say(f"run {count} {name}: started (log {workdir}.log)")
            t0 = time.time()
            status = train_in_subprocess(config, workdir, eval_train_split=eval_train_split,
                                         forwarder=forwarder)
            took = duration(time.time() - t0)
            if status == 0 and is_finished(workdir, eval_split, eval_train_split):
                say(f"run {count} {name}: finished in {took}: {_errors(workdir, eval_split)}")
            elif forwarder.stopping or status == PREEMPTED_STATUS:
                say(f"run {count} {name}: interrupted after {took}; re-run the same command to resume")
                interrupted = True
                break
            else:
                failed.append(name)
                say(f"run {count} {name}: FAILED (status {status}) after {took}: "
                    f"{_log_tail(workdir + '.log')}")
    study = write_study(out, base, runs, variant_names, seeds, thresholds, eval_train_split,
                        failed, base_config_file)
    say(f"{study['runs_done']} of {len(runs)} runs finished, {len(failed)} failed; "
        f"table in {os.path.join(out, STUDY_MD)}")
    return study, failed, interrupted


# -- the worker: one run, in its own process -------------------------------------------------

def evaluate_train_split(config, workdir):
    """The final weights' top-1/top-5 error on the training split, evaluation mode, centre crop."""
    from keras_alexnet.runs import evaluate
    data_dir = config.input.data_dir or workdir_lib.demo_data_dir(workdir)
    result = evaluate.evaluate_checkpoint(
        workdir, layout.shard_pattern(data_dir, config.input.train_split), checkpoint="latest",
        batch_size=config.eval.batch_size, data_dir=data_dir, stream=sys.stderr)
    values = dict(result.as_dict(), split=config.input.train_split)
    layout.write_json(os.path.join(workdir, TRAIN_SPLIT_FILENAME), values)
    print(f"train split ({values['num_images']} images, evaluation mode, centre crop): "
          f"top-1 error {values['top1_error']:.2%}", flush=True)
    return values


def worker(config_path, workdir, eval_train_split):
    import ml_collections

    from keras_alexnet.training import train
    with open(config_path) as f:
        config = ml_collections.ConfigDict(json.load(f))
    try:
        events = workdir_lib.read_events(workdir, missing_ok=True)
        if analysis.final_event(events, config.input.eval_split) is None:
            result = train.train_and_evaluate(config, workdir)
            if result["status"] != "done":
                return PREEMPTED_STATUS
        if eval_train_split and not os.path.exists(os.path.join(workdir, TRAIN_SPLIT_FILENAME)):
            evaluate_train_split(config, workdir)
    except (config_lib.ConfigError, FileNotFoundError, train.NonFiniteLossError) as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(worker(sys.argv[1], sys.argv[2], sys.argv[3] == "1"))
