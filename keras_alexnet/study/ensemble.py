"""Ensembles of networks (the paper's Sec. 6, Table 2: five CNNs averaged, 40.7% -> 38.1% top-1).

`bin/evaluate --workdir=A,B,C` (or `--saved_model=A,B,C`) averages the members' softmax
outputs, each already averaged over its crops with --ten_crop (the paper averaged over the
ten patches and over the networks), and reports the ensemble's top-1/top-5 error beside
every member's and the members' spread. Checkpoints go through the input pipeline
(runs/evaluate.checkpoint_batches), exports through their own signatures, as a single
evaluation does; so an ensemble of one is that single evaluation.

Members must agree on what they classify, and this is checked before any model is
restored: the same classes in the same order (labels.txt of a run's data, an export's
synsets) and the same input size (config.model.image_size). Each refusal is one sentence
naming the member that differs.
"""
import dataclasses
import sys

import numpy as np
import tensorflow as tf

from keras_alexnet import evaluation
from keras_alexnet.data import checks, input_pipeline, layout
from keras_alexnet.runs import evaluate as run_evaluate
from keras_alexnet.runs import restore
from keras_alexnet.training import workdir as workdir_lib


@dataclasses.dataclass
class Member:
    what: str           # "the run in RUN" / "the export PATH", for sentences
    synsets: list
    image_size: int     # None: not recorded (an export without its config)
    label_offset: int
    load: object        # () -> (setting, batches(data, ten_crop, batch_size) -> iterator)


def _workdir_member(workdir, checkpoint, data_dir):
    config = workdir_lib.read_config(workdir)  # cheap: no model yet
    folder = data_dir or workdir_lib.stored_data_dir(config, workdir)
    synsets = [s for s, _ in layout.load_labels(folder)]

    def load():
        run = restore.restore_run(workdir, checkpoint, data_dir=data_dir)
        if run.resize_mode != "shorter_side":
            raise ValueError(f"the run in {workdir} is evaluated with Caffe's warp; evaluate it "
                             "on its own (bin/evaluate --workdir=" + workdir + ")")
        return (f"checkpoint {run.checkpoint_path}",
                lambda data, ten_crop, batch_size: run_evaluate.checkpoint_batches(
                    run, data, ten_crop, batch_size))
    return Member(f"the run in {workdir}", synsets, int(config["model"]["image_size"]),
                  int(config.get("input", {}).get("label_offset", 0)), load)


def _export_member(saved_model):
    from keras_alexnet.serving import export_folder
    path = export_folder.resolve_saved_model(saved_model)
    loaded = tf.saved_model.load(path)
    metadata = export_folder.read_metadata(loaded)
    synsets = [s.decode() for s in loaded.synsets.numpy()]
    size = ((metadata.get("config") or {}).get("model") or {}).get("image_size")

    def load():
        signatures = loaded.signatures

        def batches(data, ten_crop, batch_size):
            signature = signatures["ten_crop" if ten_crop else "serving_default"]
            files = input_pipeline.list_shards(data)
            records = tf.data.TFRecordDataset(files).map(
                lambda r: input_pipeline.parse_example(r, int(metadata.get("label_offset", 0))))
            return ((signature(image_bytes=images)["probabilities"].numpy(), labels.numpy())
                    for images, labels in records.batch(batch_size))
        return f"export {path}", batches
    return Member(f"the export {path}", synsets, size, int(metadata.get("label_offset", 0)), load)


def members(workdirs=(), saved_models=(), *, checkpoint="best", data_dir=None):
    """The ensemble's members, checked to classify the same classes at the same input size."""
    found = [_workdir_member(w, checkpoint, data_dir) for w in workdirs] + \
            [_export_member(s) for s in saved_models]
    first = found[0]
    for m in found[1:]:
        if m.synsets != first.synsets:
            raise ValueError(
                f"{m.what} classifies other classes than {first.what} ({len(m.synsets)} vs "
                f"{len(first.synsets)} classes, or another order); an ensemble averages the "
                "probabilities of the same classes")
        if None not in (m.image_size, first.image_size) and m.image_size != first.image_size:
            raise ValueError(f"{m.what} takes {m.image_size}-pixel crops, {first.what} "
                             f"{first.image_size}; an ensemble's members must see the same "
                             "crops")
    return found


def ensemble_batches(loaded, data, ten_crop, batch_size):
    """(ensemble probabilities, labels, [each member's probabilities]) per batch of `data`."""
    iterators = [batches(data, ten_crop, batch_size) for _, batches in loaded]
    for outputs in zip(*iterators):
        labels = outputs[0][1]
        if any(not np.array_equal(l, labels) for _, l in outputs[1:]):
            raise ValueError(f"--data {data}: the members read its records in different orders "
                             "or with different label offsets")
        probabilities = [p for p, _ in outputs]
        yield evaluation.ensemble_probabilities(probabilities).numpy(), labels, probabilities


def evaluate_ensemble(found, data, *, ten_crop=False, batch_size=64, stream=sys.stderr):
    """(the ensemble's Result, [each member's Result]) on the TFRecords matching `data`."""
    for m in found:
        run_evaluate.check_labels(data, m.synsets, m.what, stream)
    files = input_pipeline.list_shards(data)
    checks.check_evaluation_data(files, f"--data {data}", found[0].label_offset,
                                 len(found[0].synsets), f"{found[0].what}'s")
    loaded = [m.load() for m in found]
    patches = run_evaluate.patches_name(ten_crop)
    singles = [run_evaluate.Result(f"{setting}, {patches}", 0, 0, 0) for setting, _ in loaded]

    def batches():
        for probabilities, labels, each in ensemble_batches(loaded, data, ten_crop, batch_size):
            for result, p in zip(singles, each):
                top1, top5 = run_evaluate.count_errors(p, labels)
                result.num_images += len(labels)
                result.top1_errors += top1
                result.top5_errors += top5
            yield probabilities, labels
    ensemble = run_evaluate.accumulate(
        batches(), f"ensemble of {len(found)} networks, softmax averaged, {patches}", stream,
        layout.shards_size(files), data)
    return ensemble, singles


def spread(singles):
    """{'top1_error'|'top5_error': {'mean', 'min', 'max'}} over the members."""
    return {k: {"mean": float(np.mean(v)), "min": float(min(v)), "max": float(max(v))}
            for k, v in (("top1_error", [r.top1_error for r in singles]),
                         ("top5_error", [r.top5_error for r in singles]))}


def format_report(ensemble, singles, data):
    """The paper's table with every member and the ensemble, and the members' spread."""
    s = spread(singles)
    return (run_evaluate.format_table([*singles, ensemble], data) + "\n"
            f"single networks ({len(singles)}): top-1 error {s['top1_error']['mean']:.2%} "
            f"({s['top1_error']['min']:.2%}..{s['top1_error']['max']:.2%}), top-5 "
            f"{s['top5_error']['mean']:.2%} ({s['top5_error']['min']:.2%}.."
            f"{s['top5_error']['max']:.2%}); the ensemble: {ensemble.top1_error:.2%} / "
            f"{ensemble.top5_error:.2%}")
