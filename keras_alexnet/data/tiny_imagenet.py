"""The Tiny-ImageNet-200 layout as a make_tfrecords source (`--source=tiny_imagenet`).

Tiny-ImageNet (Stanford CS231n: 200 ImageNet classes, 500 training and 50 validation
photos each, 64x64 JPEGs), as its zip unpacks:

    DIR/wnids.txt                             the class list, one WNID a line
    DIR/words.txt                             "wnid<TAB>names" for all of WordNet (class names)
    DIR/train/<wnid>/images/*.JPEG            training images, a folder per class
    DIR/train/<wnid>/<wnid>_boxes.txt         bounding boxes (not read)
    DIR/val/images/*.JPEG                     validation images, flat
    DIR/val/val_annotations.txt               "file<TAB>wnid<TAB>x0<TAB>y0<TAB>x1<TAB>y1" per image
    DIR/test/images/*.JPEG                    no labels: not converted

Labels are 0-based in sorted-WNID order over the class list, as every source gives.
Everything must agree with wnids.txt: a training folder or an annotation naming another
WNID, a listed class without its images/ folder, an annotated image that is missing and a
validation image without an annotation are errors naming the file. `wnids` (the
`--wnids FILE` flag) converts a subset of wnids.txt's classes; the others' images are left
out and counted in a note. (The copy in GitHub's rangeetpan/IMagenet lists 202 classes: the
200 of Tiny-ImageNet-200, then n02480855 and n10148035 with 500 training and 50 validation
images each; its first 200 lines are the benchmark's classes.)
"""
import os

from keras_alexnet.data.sources import Item, Source, SourceError, _fingerprint, _list_files

WNIDS_FILENAME = "wnids.txt"
WORDS_FILENAME = "words.txt"
ANNOTATIONS_FILENAME = "val_annotations.txt"
IMAGES_DIR = "images"


def _read_lines(path, what):
    if not os.path.isfile(path):
        raise SourceError(f"{path}: no such file ({what}); is --input_dir a Tiny-ImageNet folder?")
    try:
        with open(path) as f:
            return f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise SourceError(f"{path}: cannot read it ({getattr(e, 'strerror', None) or e})") from e


def read_wnids(path, what="the class list"):
    """The WNIDs of a file of one WNID a line (blank lines ignored); duplicates are an error."""
    wnids, seen = [], set()
    for number, line in enumerate(_read_lines(path, what), start=1):
        wnid = line.strip()
        if not wnid:
            continue
        if wnid in seen:
            raise SourceError(f"{path}:{number}: {wnid} is listed twice")
        seen.add(wnid)
        wnids.append(wnid)
    if not wnids:
        raise SourceError(f"{path}: no WNIDs in it")
    return wnids


def read_words(path, wnids):
    """{wnid: names} from words.txt ("wnid<TAB>names"), for the given WNIDs only."""
    wanted, names = set(wnids), {}
    for line in _read_lines(path, "the class names"):
        fields = line.split("\t", 1)
        if fields[0] in wanted and len(fields) == 2 and fields[1].strip():
            names[fields[0]] = fields[1].strip()
    return names


def _selected(input_dir, wnids_file):
    """(every WNID of DIR/wnids.txt, the sorted WNIDs to convert)."""
    listed = read_wnids(os.path.join(input_dir, WNIDS_FILENAME))
    if not wnids_file:
        return listed, sorted(listed)
    chosen = read_wnids(wnids_file, "--wnids")
    unknown = [w for w in chosen if w not in set(listed)]
    if unknown:
        raise SourceError(f"--wnids {wnids_file}: {', '.join(unknown[:5])} "
                          f"{'is' if len(unknown) == 1 else 'are'} not in "
                          f"{os.path.join(input_dir, WNIDS_FILENAME)}")
    return listed, sorted(chosen)


def _train_items(input_dir, listed, label_of):
    train_dir = os.path.join(input_dir, "train")
    if not os.path.isdir(train_dir):
        raise SourceError(f"{train_dir}: no such folder; is --input_dir a Tiny-ImageNet folder?")
    folders = sorted(d for d in os.listdir(train_dir)
                     if not d.startswith(".") and os.path.isdir(os.path.join(train_dir, d)))
    unknown = [d for d in folders if d not in set(listed)]
    if unknown:
        raise SourceError(f"{train_dir}: folders {', '.join(unknown[:5])} are not classes of "
                          f"{os.path.join(input_dir, WNIDS_FILENAME)}")
    items, left_out = [], 0
    for wnid in listed:
        folder = os.path.join(train_dir, wnid, IMAGES_DIR)
        if not os.path.isdir(folder):
            raise SourceError(f"{folder}: no such folder (class {wnid} of "
                              f"{os.path.join(input_dir, WNIDS_FILENAME)})")
        names = _list_files(folder)
        if not names:
            raise SourceError(f"{folder}: no images (class {wnid})")
        if wnid not in label_of:
            left_out += len(names)
            continue
        items += [Item(f"{wnid}/{n}", os.path.join(folder, n), label_of[wnid]) for n in names]
    return items, left_out


def _validation_items(input_dir, listed, label_of):
    val_dir = os.path.join(input_dir, "val")
    folder = os.path.join(val_dir, IMAGES_DIR)
    annotations = os.path.join(val_dir, ANNOTATIONS_FILENAME)
    if not os.path.isdir(folder):
        raise SourceError(f"{folder}: no such folder; is --input_dir a Tiny-ImageNet folder?")
    lines = _read_lines(annotations, "the validation labels")
    present, known = set(_list_files(folder)), set(listed)
    wnid_of = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        where = f"{annotations}:{number}"
        if len(fields) < 2 or not fields[0] or not fields[1]:
            raise SourceError(f"{where}: expected 'file<TAB>wnid<TAB>box', got {line[:80]!r}")
        name, wnid = fields[0], fields[1]
        if wnid not in known:
            raise SourceError(f"{where}: {wnid} is not a class of "
                              f"{os.path.join(input_dir, WNIDS_FILENAME)}")
        if name in wnid_of:
            raise SourceError(f"{where}: {name} is annotated twice")
        if name not in present:
            raise SourceError(f"{where}: the image {os.path.join(folder, name)} is missing")
        wnid_of[name] = wnid
    unlabelled = sorted(present - set(wnid_of))
    if unlabelled:
        raise SourceError(f"{os.path.join(folder, unlabelled[0])}: no line in {annotations}"
                          + (f" (nor have {len(unlabelled) - 1} other images)" if len(unlabelled) > 1 else ""))
    items = [Item(n, os.path.join(folder, n), label_of[w])
             for n, w in sorted(wnid_of.items()) if w in label_of]
    return items, len(wnid_of) - len(items)


def tiny_imagenet(input_dir, split, wnids_file=None):
    """The Tiny-ImageNet layout (module docstring): train or validation."""
    if not os.path.isdir(input_dir):
        raise SourceError(f"--input_dir {input_dir}: no such folder")
    if split == "test":
        raise SourceError("--split test: Tiny-ImageNet's test images have no public labels; "
                          "convert train and validation")
    listed, wnids = _selected(input_dir, wnids_file)
    label_of = {w: i for i, w in enumerate(wnids)}
    read = _train_items if split == "train" else _validation_items
    items, left_out = read(input_dir, listed, label_of)
    if not items:
        raise SourceError(f"--input_dir {input_dir}: no {split} images of the chosen classes")
    names = read_words(os.path.join(input_dir, WORDS_FILENAME), wnids)
    notes = ()
    if left_out:
        others = [w for w in listed if w not in label_of]
        notes = (f"leaving out {left_out} {split} images of the {len(others)} classes of "
                 f"{os.path.join(input_dir, WNIDS_FILENAME)} not in --wnids {wnids_file} "
                 f"({', '.join(others[:5])}{' ...' if len(others) > 5 else ''})",)
    return Source([(w, names.get(w, w)) for w in wnids], items, _fingerprint(items), None, notes)
