"""make_tfrecords --source=tiny_imagenet on a generated miniature of the Tiny-ImageNet layout."""
import io
import os
import subprocess
import sys

import pytest
import tensorflow as tf

import fixtures as fx
from keras_alexnet.data import convert
from keras_alexnet.data.layout import FEATURE_SPEC, load_labels
from keras_alexnet.data.sources import SourceError

# wnids.txt's order is not sorted order: labels must follow the sorted WNIDs.
WNIDS = ["n03000003", "n01000001", "n02000002"]
WORDS = {"n01000001": "goldfish, Carassius auratus", "n02000002": "tabby, tabby cat",
         "n03000003": "school bus"}
VAL = [("val_0.JPEG", "n02000002"), ("val_1.JPEG", "n03000003"), ("val_2.JPEG", "n01000001"),
       ("val_3.JPEG", "n02000002"), ("val_4.JPEG", "n03000003")]


def tiny_layout(root, wnids=WNIDS, per_class=2, val=VAL):
    """root/ as Tiny-ImageNet unpacks: wnids.txt, words.txt, train/<wnid>/images/, val/."""
    fx.write(os.path.join(root, "wnids.txt"), "".join(w + "\n" for w in wnids).encode())
    words = ["n00001740\tentity"] + [f"{w}\t{WORDS.get(w, 'thing')}" for w in wnids]
    fx.write(os.path.join(root, "words.txt"), ("\n".join(words) + "\n").encode())
    for c, wnid in enumerate(wnids):
        for i in range(per_class):
            fx.write(os.path.join(root, "train", wnid, "images", f"{wnid}_{i}.JPEG"),
                     fx.encode(fx.picture(64, 64, seed=10 * c + i)))
        fx.write(os.path.join(root, "train", wnid, f"{wnid}_boxes.txt"),
                 "".join(f"{wnid}_{i}.JPEG\t0\t0\t63\t63\n" for i in range(per_class)).encode())
    for k, (name, wnid) in enumerate(val):
        fx.write(os.path.join(root, "val", "images", name), fx.encode(fx.picture(64, 64, seed=100 + k)))
    fx.write(os.path.join(root, "val", "val_annotations.txt"),
             "".join(f"{name}\t{wnid}\t1\t2\t60\t61\n" for name, wnid in val).encode())
    fx.write(os.path.join(root, "test", "images", "test_0.JPEG"), fx.encode(fx.picture(64, 64)))
    return str(root)


def run(tmp_path, root, split="train", out="out", **kwargs):
    stream = io.StringIO()
    summary = convert.convert("tiny_imagenet", str(root), str(tmp_path / out), split=split,
                              num_workers=1, num_shards=1, resize=72, stream=stream, **kwargs)
    return summary, stream.getvalue()


def records(out, split):
    files = tf.io.gfile.glob(os.path.join(out, f"{split}-*"))
    found = {}
    for serialized in tf.data.TFRecordDataset(sorted(files)):
        ex = tf.io.parse_single_example(serialized, FEATURE_SPEC)
        found[ex["image/filename"].numpy().decode()] = (
            int(ex["image/class/label"]), ex["image/class/synset"].numpy().decode(),
            int(ex["image/height"]), int(ex["image/width"]))
    return found


def test_layout_converts_with_sorted_wnid_labels_and_words_names(tmp_path):
    root = tiny_layout(tmp_path / "tiny")
    summary, _ = run(tmp_path, root)
    assert summary["written"] == 6 and summary["skipped"] == 0  # the boxes files are not images
    label = {w: i for i, w in enumerate(sorted(WNIDS))}
    train = records(tmp_path / "out", "train")
    assert train == {f"{w}/{w}_{i}.JPEG": (label[w], w, 72, 72) for w in WNIDS for i in range(2)}
    assert load_labels(tmp_path / "out") == [(w, WORDS[w]) for w in sorted(WNIDS)]

    summary, _ = run(tmp_path, root, split="validation")
    assert summary["written"] == len(VAL)
    val = records(tmp_path / "out", "validation")
    assert {name: v[:2] for name, v in val.items()} == {n: (label[w], w) for n, w in VAL}


def test_wnids_file_converts_a_subset_and_says_what_it_leaves_out(tmp_path):
    root = tiny_layout(tmp_path / "tiny")
    fx.write(str(tmp_path / "two.txt"), b"n03000003\nn02000002\n")
    _, said = run(tmp_path, root, split="validation", wnids=str(tmp_path / "two.txt"))
    assert "leaving out 1 validation images of the 1 classes" in said and "n01000001" in said
    val = records(tmp_path / "out", "validation")
    assert {name: v[:2] for name, v in val.items()} == {
        "val_0.JPEG": (0, "n02000002"), "val_1.JPEG": (1, "n03000003"),
        "val_3.JPEG": (0, "n02000002"), "val_4.JPEG": (1, "n03000003")}
    assert [w for w, _ in load_labels(tmp_path / "out")] == ["n02000002", "n03000003"]
    _, said = run(tmp_path, root, split="train", wnids=str(tmp_path / "two.txt"))
    assert "leaving out 2 train images" in said
    assert sorted(v[0] for v in records(tmp_path / "out", "train").values()) == [0, 0, 1, 1]


def _remove(path):
    os.remove(path)


def _annotate(root, line):
    with open(os.path.join(root, "val", "val_annotations.txt"), "a") as f:
        f.write(line)


# (what is broken, split, error naming it)
BROKEN = {
    "no wnids.txt": ("train", lambda r: _remove(os.path.join(r, "wnids.txt")), r"wnids\.txt: no such file"),
    "no words.txt": ("validation", lambda r: _remove(os.path.join(r, "words.txt")),
                     r"words\.txt: no such file"),
    "no train folder": ("train", lambda r: os.rename(os.path.join(r, "train"), os.path.join(r, "training")),
                        r"/train: no such folder"),
    "class without images/": ("train", lambda r: os.rename(
        os.path.join(r, "train", "n02000002", "images"), os.path.join(r, "train", "n02000002", "img")),
        r"n02000002/images: no such folder"),
    "unlisted training folder": ("train", lambda r: os.makedirs(os.path.join(r, "train", "n09999999")),
                                 r"n09999999 are not classes of .*wnids\.txt"),
    "no annotations": ("validation", lambda r: _remove(os.path.join(r, "val", "val_annotations.txt")),
                       r"val_annotations\.txt: no such file"),
    "unknown wnid": ("validation", lambda r: _annotate(r, "val_0.JPEG\tn09999999\t0\t0\t1\t1\n"),
                     r"val_annotations\.txt:6: n09999999 is not a class of .*wnids\.txt"),
    "missing image": ("validation", lambda r: _remove(os.path.join(r, "val", "images", "val_2.JPEG")),
                      r"val_annotations\.txt:3: the image .*val_2\.JPEG is missing"),
    "unannotated image": ("validation", lambda r: fx.write(
        os.path.join(r, "val", "images", "val_9.JPEG"), fx.encode(fx.picture(64, 64))),
        r"val_9\.JPEG: no line in .*val_annotations\.txt"),
    "malformed line": ("validation", lambda r: _annotate(r, "val_0.JPEG n01000001\n"),
                       r"val_annotations\.txt:6: expected 'file<TAB>wnid<TAB>box'"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_folder_not_in_the_layout_is_refused_naming_what_is_missing(tmp_path, case):
    split, break_it, message = BROKEN[case]
    root = tiny_layout(tmp_path / "tiny")
    break_it(root)
    with pytest.raises(SourceError, match=message):
        run(tmp_path, root, split=split)
    assert not os.path.exists(tmp_path / "out")  # refused before anything is written


def test_bad_flags_are_refused(tmp_path):
    root = tiny_layout(tmp_path / "tiny")
    with pytest.raises(SourceError, match="test images have no public labels"):
        run(tmp_path, root, split="test")
    fx.write(str(tmp_path / "other.txt"), b"n01000001\nn05555555\n")
    with pytest.raises(SourceError, match=r"--wnids .*other\.txt: n05555555 is not in .*wnids\.txt"):
        run(tmp_path, root, wnids=str(tmp_path / "other.txt"))
    with pytest.raises(SourceError, match="--wnids is for --source=tiny_imagenet"):
        convert.convert("imagefolder", os.path.join(root, "train"), str(tmp_path / "o"),
                        wnids=str(tmp_path / "other.txt"), stream=io.StringIO())
    with pytest.raises(SourceError, match="no such folder"):
        run(tmp_path, tmp_path / "nowhere")


def test_command_line_reads_the_layout_and_refuses_a_wrong_folder(tmp_path):
    root = tiny_layout(tmp_path / "tiny")
    command = [sys.executable, os.path.join(fx.REPO, "bin", "make_tfrecords"), "--source=tiny_imagenet",
               f"--input_dir={root}", f"--output_dir={tmp_path / 'out'}", "--split=validation",
               "--resize=72", "--num_workers=1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "found 5 = written 5 + skipped 0" in result.stderr
    wrong = [a if not a.startswith("--input_dir") else f"--input_dir={root}/train" for a in command]
    result = subprocess.run(wrong, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "wnids.txt: no such file" in result.stderr
