"""Where make_tfrecords finds images: an image folder, the ILSVRC-2010/2012 devkit layouts, TFDS,
Tiny-ImageNet (its layout is read in tiny_imagenet.py).

A source is a `Source`: the class list (wnid, human-readable name) in label
order, and the examples as picklable `Item`s that a worker process turns into
(name, encoded bytes, label) with `read_items`. Labels are 0-based in sorted
WNID order, the order TFDS's imagenet2012 uses.

ILSVRC layouts (after untarring the official archives; per-class training tars
unpacked into their WNID folders):

    DIR/train/<wnid>/*.JPEG            (or ILSVRC20xx_img_train/)
    DIR/val/*.JPEG                     (or ILSVRC20xx_img_val/), flat
    DIR/test/*.JPEG                    (ILSVRC-2010 only; or ILSVRC2010_img_test/)
    DIR/**/data/meta.mat               the devkit (or pass --devkit_dir)
    DIR/**/ILSVRC20xx_validation_ground_truth.txt, ILSVRC2010_test_ground_truth.txt

The devkit's ILSVRC20xx_ID numbers the synsets in its own order, not in sorted
WNID order: labels map ID -> WNID -> index in the sorted WNID list.
"""
import collections
import errno
import glob
import hashlib
import os
import re

import numpy as np

Item = collections.namedtuple("Item", "name path label")  # path: file, or "tfds:" + index
# notes: things the user should hear about that are not errors (nested folders ignored).
Source = collections.namedtuple("Source", "classes items fingerprint tfds notes", defaults=((),))

SPLIT_FOLDERS = {
    "train": ("train", "ILSVRC{year}_img_train"),
    "validation": ("val", "validation", "ILSVRC{year}_img_val"),
    "test": ("test", "ILSVRC{year}_img_test"),
}


class SourceError(ValueError):
    """Bad --input_dir / --source: the message names the path or flag."""


def _fingerprint(items):
    digest = hashlib.sha1()
    for item in sorted(items):
        digest.update(f"{item.name}\t{item.label}\n".encode())
    return digest.hexdigest()


def _list_files(folder):
    # Every regular file, whatever its extension: a stray .txt is reported as skipped, not hidden;
    # so is a symlink that leads nowhere (dangling, or a loop): read_items says which.
    names = sorted(n for n in os.listdir(folder) if not n.startswith("."))
    return [n for n in names if os.path.isfile(os.path.join(folder, n))
            or _broken_link(os.path.join(folder, n))]


def _broken_link(path):
    return os.path.islink(path) and not os.path.exists(path)


def _unreadable(path, error):
    """read_items' reason for a file that cannot be opened; symlinks that lead nowhere named."""
    if _broken_link(path):
        try:
            os.stat(path)
        except OSError as e:
            if e.errno == errno.ELOOP:
                return f"unreadable: a symlink loop (-> {os.readlink(path)} -> ...)"
        return f"unreadable: a dangling symlink (to {os.readlink(path)}, which does not exist)"
    return f"unreadable: {error.strerror or error}"


def _class_folders(input_dir):
    if not os.path.isdir(input_dir):
        raise SourceError(f"--input_dir {input_dir}: no such folder")
    classes = sorted(d for d in os.listdir(input_dir)
                     if not d.startswith(".") and os.path.isdir(os.path.join(input_dir, d)))
    if not classes:
        raise SourceError(f"--input_dir {input_dir}: no class folders (expected DIR/<class>/<image>)")
    return classes


def _nested_folders(input_dir, classes):
    """Folders inside the class folders: their files are not read (one level of classes)."""
    nested = []
    for wnid in classes:
        folder = os.path.join(input_dir, wnid)
        nested += [f"{wnid}/{n}/" for n in sorted(os.listdir(folder))
                   if not n.startswith(".") and os.path.isdir(os.path.join(folder, n))]
    return nested


def _folder_items(input_dir, classes, label_of):
    items = []
    for wnid in classes:
        for name in _list_files(os.path.join(input_dir, wnid)):
            items.append(Item(f"{wnid}/{name}", os.path.join(input_dir, wnid, name), label_of[wnid]))
    nested = _nested_folders(input_dir, classes)
    if not items:
        hint = (f"; the images are in subfolders ({', '.join(nested[:3])}): a class is one "
                "folder of images, DIR/<class>/<image>, so point --input_dir one level lower or "
                "flatten them" if nested else "")
        raise SourceError(f"--input_dir {input_dir}: the class folders hold no files{hint}")
    return items


def _empty_note(input_dir, classes, items):
    """A class folder without a file becomes a class with no images: say which."""
    filled = {item.name.split("/")[0] for item in items}  # items of DIR/<class>/<file>
    empty = [f"{wnid}/" for wnid in classes if wnid not in filled]
    if not empty:
        return ()
    more = f" and {len(empty) - 5} more" if len(empty) > 5 else ""
    return (f"{len(empty)} class folders of {input_dir} hold no files ({', '.join(empty[:5])}"
            f"{more}): each is still a class, with no images in this split",)


def _nested_note(input_dir, classes):
    nested = _nested_folders(input_dir, classes)
    if not nested:
        return ()
    more = f" and {len(nested) - 5} more" if len(nested) > 5 else ""
    return (f"ignoring {len(nested)} folders inside class folders of {input_dir} "
            f"({', '.join(nested[:5])}{more}): images are read from DIR/<class>/ only, not from "
            "deeper folders",)


def read_class_names(path):
    """{wnid: name} from "wnid name" lines (LOC_synset_mapping.txt, the devkit's words.txt)."""
    names = {}
    try:
        with open(path) as f:
            for line in f:
                fields = line.strip().split(None, 1)
                if fields:
                    names[fields[0]] = fields[1] if len(fields) > 1 else fields[0]
    except OSError as e:
        raise SourceError(f"--class_names {path}: {e.strerror or e}") from e
    return names


def imagefolder(input_dir, split, class_names=None):
    """DIR/<class>/*: class folders sorted by name give labels 0..N-1.

    The human-readable name is the folder name, or its line in class_names.
    """
    del split  # one folder is one split; --split names the output shards
    classes = _class_folders(input_dir)
    items = _folder_items(input_dir, classes, {c: i for i, c in enumerate(classes)})
    names = read_class_names(class_names) if class_names else {}
    return Source([(c, names.get(c, c)) for c in classes], items, _fingerprint(items), None,
                  _nested_note(input_dir, classes) + _empty_note(input_dir, classes, items))


def _find_one(input_dir, patterns, what, flag):
    for pattern in patterns:
        found = sorted(glob.glob(os.path.join(input_dir, pattern)))
        if found:
            return found[0]
    raise SourceError(f"--input_dir {input_dir}: no {what} found (looked for {', '.join(patterns)}); "
                      f"{flag}")


def read_meta(meta_path, year):
    """[(ilsvrc_id, wnid, words)] of the 1000 leaf synsets in a devkit meta.mat."""
    import scipy.io
    meta = scipy.io.loadmat(meta_path, squeeze_me=True, struct_as_record=False)
    if "synsets" not in meta:
        raise SourceError(f"{meta_path}: no 'synsets' struct (not an ILSVRC devkit meta.mat)")
    id_field = f"ILSVRC{year}_ID"
    leaves = []
    for s in np.atleast_1d(meta["synsets"]):
        if not hasattr(s, id_field):
            raise SourceError(f"{meta_path}: synsets have no {id_field} field (wrong --source year?)")
        if int(s.num_children) == 0:
            leaves.append((int(getattr(s, id_field)), str(s.WNID), str(s.words)))
    if not leaves:
        raise SourceError(f"{meta_path}: no leaf synsets (num_children == 0)")
    return leaves


def _read_ground_truth(path):
    with open(path) as f:
        return [int(line) for line in f if line.strip()]


def ilsvrc(input_dir, split, year, devkit_dir=None):
    """The official ILSVRC-2010/2012 layout (see the module docstring)."""
    if not os.path.isdir(input_dir):
        raise SourceError(f"--input_dir {input_dir}: no such folder")
    if split == "test" and year != 2010:
        raise SourceError(f"--split test: ILSVRC-{year} test labels are not public")
    search = devkit_dir or input_dir
    meta_path = _find_one(search, ["data/meta.mat", "*/data/meta.mat", "*/*/data/meta.mat", "meta.mat"],
                          "devkit meta.mat", "pass --devkit_dir")
    leaves = read_meta(meta_path, year)
    wnids = sorted(w for _, w, _ in leaves)
    index_of = {w: i for i, w in enumerate(wnids)}
    label_of_id = {i: index_of[w] for i, w, _ in leaves}
    words = {w: text for _, w, text in leaves}
    classes = [(w, words[w]) for w in wnids]
    folders = [f.format(year=year) for f in SPLIT_FOLDERS[split]]
    split_dir = next((os.path.join(input_dir, f) for f in folders
                      if os.path.isdir(os.path.join(input_dir, f))), None)
    if split_dir is None:
        raise SourceError(f"--input_dir {input_dir}: no {split} folder (looked for {', '.join(folders)})")
    if split == "train":
        present = _class_folders(split_dir)
        unknown = [w for w in present if w not in index_of]
        if unknown:
            raise SourceError(f"{split_dir}: folders {unknown[:5]} are not ILSVRC-{year} classes "
                              f"in {meta_path}")
        items = _folder_items(split_dir, present, index_of)
        notes = _nested_note(split_dir, present) + _empty_note(split_dir, present, items)
    else:
        notes = ()
        truth_name = f"ILSVRC{year}_{split}_ground_truth.txt"
        truth_path = _find_one(search, [truth_name, "data/" + truth_name, "*/data/" + truth_name,
                                        "*/" + truth_name], truth_name, "pass --devkit_dir")
        truth = _read_ground_truth(truth_path)
        items = []
        for name in _list_files(split_dir):
            number = re.search(r"(\d+)\.\w+$", name)
            if number is None or not 1 <= int(number.group(1)) <= len(truth):
                raise SourceError(f"{split_dir}/{name}: cannot find its line in {truth_path}")
            ilsvrc_id = truth[int(number.group(1)) - 1]
            if ilsvrc_id not in label_of_id:
                raise SourceError(f"{truth_path}: ID {ilsvrc_id} is not a leaf synset of {meta_path}")
            items.append(Item(name, os.path.join(split_dir, name), label_of_id[ilsvrc_id]))
        if not items:
            raise SourceError(f"{split_dir}: empty folder")
    return Source(classes, items, _fingerprint(items), None, notes)


def _tfds_error(error):
    """One line of TFDS's error for an unknown name (it lists all ~460 datasets), with its hint."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    first = lines[0] if lines else type(error).__name__
    hint = next((line for line in lines if line.startswith("Did you mean")), None)
    return (f"{first}{' ' + hint if hint else ''} (`tfds build NAME` prepares one; "
            "tfds.list_builders() names them all)")


def tfds_source(name, split, data_dir):
    """A TFDS image classification dataset already prepared in data_dir (no download)."""
    import tensorflow_datasets as tfds
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        info = builder.info
    except Exception as e:  # tfds raises several types for an unknown name
        raise SourceError(f"--source tfds:{name}: {_tfds_error(e)}") from None
    image_key, label_key = info.supervised_keys or ("image", "label")
    names = info.features[label_key].names
    classes = [(n, n) for n in names]
    skip = tfds.decode.SkipDecoding()
    if info.splits:  # a prepared dataset knows its split sizes and reads slices of them
        if split not in info.splits:
            raise SourceError(f"--source tfds:{name} has no split {split!r} (has {sorted(info.splits)})")
        count, sliceable = info.splits[split].num_examples, True
    else:  # no split metadata (e.g. tfds.testing.mock_data): count, then skip/take
        try:
            count = sum(1 for _ in builder.as_dataset(split=split, decoders={image_key: skip}))
        except Exception as e:  # not prepared, unknown split: tfds raises several types
            raise SourceError(f"--source tfds:{name} split {split!r} in --tfds_data_dir "
                              f"{data_dir}: {e}") from e
        sliceable = False
    items = [Item(f"{split}[{i}]", f"tfds:{i}", -1) for i in range(count)]
    spec = dict(name=name, split=split, data_dir=data_dir, image_key=image_key, label_key=label_key,
                sliceable=sliceable)
    fingerprint = hashlib.sha1(f"tfds:{name}:{info.version}:{split}:{count}".encode()).hexdigest()
    return Source(classes, items, fingerprint, spec)


def open_source(source, input_dir, split, tfds_data_dir=None, devkit_dir=None, class_names=None,
                wnids=None):
    """The Source named by --source (imagefolder | ilsvrc2010 | ilsvrc2012 | tiny_imagenet | tfds:NAME)."""
    if wnids and source != "tiny_imagenet":
        raise SourceError(f"--wnids is for --source=tiny_imagenet, not --source={source}")
    if source == "tiny_imagenet":
        from keras_alexnet.data import tiny_imagenet  # it imports this module
        return tiny_imagenet.tiny_imagenet(input_dir, split, wnids)
    if source == "imagefolder":
        return imagefolder(input_dir, split, class_names)
    if source in ("ilsvrc2010", "ilsvrc2012"):
        return ilsvrc(input_dir, split, int(source[-4:]), devkit_dir)
    if source.startswith("tfds:") and len(source) > 5:
        return tfds_source(source[5:], split, tfds_data_dir)
    raise SourceError(f"--source {source!r}: expected imagefolder, ilsvrc2010, ilsvrc2012, "
                      "tiny_imagenet or tfds:NAME")


def read_items(items, tfds_spec):
    """Yields (item, bytes or None, label, error or None) for a worker, one at a time."""
    if tfds_spec is None:
        for item in items:
            try:
                with open(item.path, "rb") as f:
                    yield item, f.read(), item.label, None
            except OSError as e:
                yield item, None, item.label, _unreadable(item.path, e)
        return
    if not items:
        return
    import tensorflow_datasets as tfds
    first, last = int(items[0].path[5:]), int(items[-1].path[5:])
    builder = tfds.builder(tfds_spec["name"], data_dir=tfds_spec["data_dir"])
    split = tfds_spec["split"]
    decoders = {tfds_spec["image_key"]: tfds.decode.SkipDecoding()}
    if tfds_spec["sliceable"]:
        ds = builder.as_dataset(split=f"{split}[{first}:{last + 1}]", shuffle_files=False,
                                decoders=decoders)
    else:
        ds = builder.as_dataset(split=split, shuffle_files=False, decoders=decoders)
        ds = ds.skip(first).take(last + 1 - first)
    for item, example in zip(items, tfds.as_numpy(ds)):
        yield item, bytes(example[tfds_spec["image_key"]]), int(example[tfds_spec["label_key"]]), None
