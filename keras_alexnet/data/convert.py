"""The make_tfrecords run: checks the output folder, converts the missing shards, reports.

`convert(...)` is what bin/make_tfrecords calls; shard_writer.py does the
per-shard work, sources.py finds the images and layout.py names and writes the
files. A re-run of the same command resumes; a run that would mix two datasets
in one folder is refused before anything is written.
"""
import collections
import glob
import os
import sys
import time

import numpy as np

from keras_alexnet import disk_full, locking
from keras_alexnet import progress as progress_lib
from keras_alexnet.data import layout, shard_writer
from keras_alexnet.data import stats as stats_lib
from keras_alexnet.data.sources import SourceError, open_source


def available_cpus(cgroup_root="/sys/fs/cgroup"):
    """The CPUs this process may run on: its affinity (taskset, a container's cpuset), capped by
    a cgroup v2 CPU quota (docker --cpus=2 on a 64-core host: 2), at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    try:
        with open(os.path.join(cgroup_root, "cpu.max")) as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            cpus = min(cpus, -(-int(quota) // int(period)))
    except (OSError, ValueError):  # cgroup v1, or no quota file
        pass
    return max(1, cpus)


class OutputError(ValueError):
    """The output folder holds something this run must not touch."""


def _check_manifest(out, classes, settings, split, split_entry):
    """Returns the manifest to write, or raises OutputError naming what differs."""
    path = os.path.join(out, layout.MANIFEST_FILENAME)
    manifest = layout.read_manifest(out)
    if not manifest:
        foreign = (glob.glob(os.path.join(out, "*-of-*"))
                   + glob.glob(os.path.join(out, layout.LABELS_FILENAME)))
        if foreign:
            raise OutputError(f"--output_dir {out} holds {os.path.basename(foreign[0])} but no "
                              f"{layout.MANIFEST_FILENAME}: not written by make_tfrecords; choose "
                              "another folder")
        return {"format": layout.FORMAT, "classes": classes, **settings, "splits": {split: split_entry}}
    if manifest.get("format") != layout.FORMAT:
        raise OutputError(f"{path}: unknown format {manifest.get('format')!r}")
    if [c[0] for c in manifest["classes"]] != [c[0] for c in classes]:
        raise OutputError(f"--output_dir {out} holds a different dataset ({len(manifest['classes'])} "
                          f"classes, starting {manifest['classes'][0][0]}; this input has {len(classes)}, "
                          f"starting {classes[0][0]}{_class_difference(manifest['classes'], classes)}"
                          "); choose another folder")
    for key, value in settings.items():
        if manifest.get(key) != value:
            raise OutputError(f"--output_dir {out} was written with --{key}={manifest.get(key)}, "
                              f"this run asks --{key}={value}; choose another folder")
    # Same classes: keep the names already written, unless they were bare WNIDs and this
    # run knows better (e.g. the validation split converted with --class_names).
    manifest["classes"] = [[wnid, new if kept == wnid else kept]
                           for (wnid, kept), (_, new) in zip(manifest["classes"], classes)]
    old = manifest["splits"].get(split)
    if old is not None:
        for key in ("fingerprint", "num_shards", "found"):
            if old[key] != split_entry[key]:
                raise OutputError(f"--output_dir {out} holds a different {split} split ({key} "
                                  f"{old[key]} vs {split_entry[key]} now, from {old['input_dir']}); "
                                  "choose another folder")
        split_entry["complete"] = old.get("complete", False)
    manifest["splits"][split] = split_entry
    return manifest


def _class_difference(kept, new):
    """'; missing a, b; not in the folder: c' between two class lists (wnids first)."""
    kept, new = [c[0] for c in kept], [c[0] for c in new]
    parts = []
    for what, names in (("this input lacks", [w for w in kept if w not in set(new)]),
                        ("the folder lacks", [w for w in new if w not in set(kept)])):
        if names:
            more = f" and {len(names) - 5} more" if len(names) > 5 else ""
            parts.append(f"{what} {', '.join(map(repr, names[:5]))}{more}")
    if not parts:
        parts.append("the same classes in another order")
    return "; " + "; ".join(parts)


def _check_output_outside_input(source, input_dir, output_dir):
    """An output folder inside an image folder would be read as a class on the next run.

    (The ILSVRC layouts read only DIR/train/, DIR/val/... : DIR/tfrecords/ is harmless.)
    """
    if source != "imagefolder" or not input_dir:
        return
    inside, out = os.path.realpath(input_dir), os.path.realpath(output_dir)
    if out == inside or out.startswith(inside.rstrip(os.sep) + os.sep):
        raise OutputError(f"--output_dir {output_dir} is inside --input_dir {input_dir}: its "
                          "files would be read as images (a class folder) by the next "
                          "conversion; choose an output folder outside the input")


def _report(out, split, names, found, seconds, converted):
    parts = [layout.read_json(layout.part_path(out, n, "json")) for n in names]
    skipped = sorted(s for p in parts for s in p["skipped"])
    written = sum(p["written"] for p in parts)
    reasons = collections.Counter(reason.split(":")[0] for _, reason in skipped)
    if written + len(skipped) != found:
        raise RuntimeError(f"{out}: found {found} != written {written} + skipped {len(skipped)}")
    json_path, tsv_path = layout.report_paths(out, split)
    layout.atomic_write(tsv_path, layout.tsv_line("file", "reason") + "".join(
        layout.tsv_line(name, reason) for name, reason in skipped))  # escaped as labels.txt
    summary = {"split": split, "found": found, "written": written, "skipped": len(skipped),
               "skipped_by_reason": dict(reasons), "num_shards": len(names),
               "converted_this_run": converted, "seconds_this_run": round(seconds, 2),
               "images_per_sec_this_run": round(converted / seconds, 1) if seconds > 0 else None}
    layout.write_json(json_path, summary)
    return summary


def _remove_shards(out, names):
    """Removes shards and their partial results: a split without one image has no shards."""
    for name in names:
        for path in (os.path.join(out, name), layout.part_path(out, name, "json"),
                     layout.part_path(out, name, "npz")):
            if os.path.exists(path):
                os.remove(path)


def merge_stats(out, names):
    """stats.npz from the shards' exact partial sums."""
    acc = None
    for name in names:
        with np.load(layout.part_path(out, name, "npz")) as f:
            part = stats_lib.StatsAccumulator.from_arrays(f)
        acc = part if acc is None else acc.merge(part)
    stats = acc.finalize()
    stats_lib.save(stats, os.path.join(out, layout.STATS_FILENAME))
    return stats


def convert(source, input_dir, output_dir, split="train", num_shards=None, num_workers=None,
            resize=256, quality=None, tfds_data_dir=None, devkit_dir=None, stats_size=256,
            class_names=None, stream=sys.stderr, wnids=None):
    """Converts one split; returns the summary dict (also in OUT/report-{split}.json).

    quality: the re-encoded JPEGs' (None: layout.JPEG_QUALITY).
    """
    if split not in ("train", "validation", "test"):
        raise SourceError(f"--split {split!r}: expected train, validation or test")
    if resize < 0 or (resize == 0 and stats_size <= 0):
        raise SourceError(f"--resize {resize}: expected 0 (keep) or a size in pixels")
    quality = layout.JPEG_QUALITY if quality is None else quality
    if not 1 <= quality <= 100:
        raise SourceError(f"--quality {quality}: expected a JPEG quality from 1 to 100")
    if num_workers is not None and num_workers < 1:
        raise SourceError(f"--num_workers {num_workers}: must be >= 1")
    _check_output_outside_input(source, input_dir, output_dir)
    src = open_source(source, input_dir, split, tfds_data_dir, devkit_dir, class_names, wnids)
    for note in src.notes:
        stream.write(f"{split}: {note}\n")
    found = len(src.items)
    num_shards = num_shards or shard_writer.default_num_shards(found)
    if num_shards < 1:
        raise SourceError(f"--num_shards {num_shards}: must be >= 1")
    out = os.path.abspath(output_dir)
    lock = locking.lock_folder(
        out, layout.LOCK_FILENAME, OutputError, flag="--output_dir", holder="make_tfrecords",
        advice="two converters in one folder would overwrite each other's files: wait for it to end",
        makedirs=os.path.join(out, layout.PARTS_DIR))
    with lock:
        try:
            return _convert_locked(src, source, input_dir, out, split, num_shards, num_workers,
                                   resize, quality, stats_size, stream)
        except Exception as e:  # noqa: BLE001  a worker's error may come back as a RuntimeError
            if not disk_full.is_disk_full(e):
                raise
            raise disk_full.DiskFull(disk_full.sentence(
                out, f"writing the {split} shards", _space_needed(out, split, num_shards))) from None


def _space_needed(out, split, num_shards):
    """'about N MB for the K shards left', from the shards already complete."""
    names = layout.shard_names(split, num_shards)
    done = [os.path.getsize(os.path.join(out, n)) for n in names
            if shard_writer.is_complete(out, n)]
    left = num_shards - len(done)
    if not done:
        return f"room for {left} shards"
    megabytes = max(1, round(sum(done) / len(done) * left / 1e6))
    return f"about {megabytes:,} MB for the {left} shards left"


def _convert_locked(src, source, input_dir, out, split, num_shards, num_workers, resize, quality,
                    stats_size, stream):
    found = len(src.items)
    classes = [list(c) for c in src.classes]
    settings = {"resize": resize, "quality": quality, "stats_size": resize or stats_size}
    entry = {"source": source, "input_dir": os.path.abspath(input_dir) if input_dir else None,
             "fingerprint": src.fingerprint, "found": found, "num_shards": num_shards,
             "complete": False}
    manifest = _check_manifest(out, classes, settings, split, entry)
    layout.write_manifest(out, manifest)
    classes = [tuple(c) for c in manifest["classes"]]
    layout.write_labels(out, classes)

    names = layout.shard_names(split, num_shards)
    shards = shard_writer.split_into_shards(src.items, num_shards, shuffle=split == "train" and not src.tfds)
    tasks = [dict(out=out, name=name, items=items, classes=classes, tfds=src.tfds, resize=resize,
                  quality=quality, stats=split == "train", stats_size=resize or stats_size)
             for name, items in zip(names, shards) if not shard_writer.is_complete(out, name)]
    todo = sum(len(t["items"]) for t in tasks)
    workers = num_workers or available_cpus()
    stream.write(f"{split}: {found} files from {input_dir or source} -> {num_shards} shards in {out}"
                 f" ({min(workers, len(tasks))} worker processes)\n")
    if todo < found:
        stream.write(f"{split}: resuming, {num_shards - len(tasks)} of {num_shards} shards complete\n")
    progress = progress_lib.ProgressBar(todo, title=split, stream=stream, every_seconds=15.0)
    start = time.perf_counter()
    tasks = [t for t in tasks if t["items"]] + [t for t in tasks if not t["items"]]
    if tasks:
        progress.update(shard_writer.run_tasks(tasks, workers, progress), final=True)
    summary = _report(out, split, names, found, time.perf_counter() - start, todo)
    if summary["written"] == 0:
        _remove_shards(out, names)
        reasons = ", ".join(f"{k}: {v}" for k, v in summary["skipped_by_reason"].items())
        raise SourceError(f"{input_dir or source}: none of the {found} files is an image that "
                          f"can be converted ({reasons}); no shards written, the files and "
                          f"reasons are listed in {layout.report_paths(out, split)[1]}")
    if split == "train":
        stats = merge_stats(out, names)
        summary["stats"] = {"num_images": stats.num_images,
                            "eigenvalues": [round(v, 3) for v in stats.eigenvalues]}
    manifest["splits"][split]["complete"] = True
    layout.write_manifest(out, manifest)
    stream.write(f"{split}: found {found} = written {summary['written']} + skipped "
                 f"{summary['skipped']} {summary['skipped_by_reason'] or ''} in {num_shards} shards "
                 f"-> {out} ({summary['images_per_sec_this_run']} img/s this run)\n")
    if summary["skipped"]:
        stream.write(f"{split}: skipped files are listed in {layout.report_paths(out, split)[1]}\n")
    return summary
