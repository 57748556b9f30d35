"""The test suite's fixtures: tiny images, data folders, models, workdirs and configs.

Everything is generated into temporary folders (never ../shared, never the
network). Data folders are written by make_tfrecords' own library function
(data/convert.py, with data/layout.py's feature spec and files), so every test
reads what users' data look like on disk. Workdirs hold real checkpoints of a
tiny model.
"""
import io
import json
import os
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf
from PIL import Image

from keras_alexnet import config as config_lib
from keras_alexnet import model as model_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- images ------------------------------------------------------------------------------------

def picture(height, width, seed=0, channels=3):
    """A smooth random uint8 picture [H, W, C] (smooth: JPEG keeps it close, crops differ)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, channels)).astype(np.uint8)
    image = Image.fromarray(small.squeeze(-1) if channels == 1 else small)
    return np.asarray(image.resize((width, height), Image.BILINEAR))


def encode(array, fmt="JPEG", quality=95, mode=None):
    """Encoded bytes of an image array: JPEG (optionally converted to `mode`), PNG or GIF."""
    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    if fmt == "GIF":
        image = image.convert("P")
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def image_folder(root, classes=("n02", "n01"), per_class=4, size=(100, 90), seed=0):
    """root/<class>/img{i}.JPEG with distinct RGB JPEGs (portrait and landscape); returns root."""
    for c, name in enumerate(classes):
        for i in range(per_class):
            h, w = size if (i % 2 == 0) else (size[1], size[0])
            write(os.path.join(root, name, f"img{i}.JPEG"),
                  encode(picture(h, w, seed=seed * 1000 + c * 100 + i)))
    return str(root)


def add_odd_files(root, cls):
    """The kinds of files ImageNet holds: 3 convertible, 3 to skip. Returns their names."""
    base = picture(96, 110, seed=7)
    convertible = {"gray.JPEG": encode(base, mode="L"), "cmyk.JPEG": encode(base, mode="CMYK"),
                   "png_inside.JPEG": encode(base, "PNG")}
    broken = {"empty.JPEG": b"", "truncated.JPEG": encode(base)[:300],
              "notes.txt": b"this is not an image\n"}
    for name, data in {**convertible, **broken}.items():
        write(os.path.join(root, cls, name), data)
    return sorted(convertible), sorted(broken)


# -- data folders (written by make_tfrecords' library) -----------------------------------------

def convert(input_dir, data_dir, split, **kwargs):
    """data/convert.convert of an image folder, in this process and quietly."""
    from keras_alexnet.data import convert as convert_lib
    kwargs.setdefault("num_workers", 1)
    kwargs.setdefault("stream", io.StringIO())
    return convert_lib.convert("imagefolder", str(input_dir), str(data_dir), split=split, **kwargs)


# The tests' one tiny network (tiny_model): the paper's layers at 67 pixels (the smallest
# input), an eighth of the kernels, fc6 and fc7 of 32 units.
TINY_MODEL = dict(num_classes=5, image_size=67, width=0.125, fc_units=32)
# The model of write_workdir's run (and of export_tiny_run).
MODEL_KWARGS = dict(TINY_MODEL, num_classes=4, init="glorot", seed=7)
RESIZE = 80  # the stored images' side: these tests' "256"
SYNSETS = ["n01440764", "n02102040", "n02979186", "n03000684"]
NAMES = ["tench, Tinca tinca", "English springer", "cassette player", "chain saw, chainsaw"]


def write_data_dir(data_dir, num_images=10, train_per_class=2):
    """A 4-class data folder (SYNSETS, NAMES) of RESIZE-pixel images, made by make_tfrecords.

    Validation: num_images pictures, image i of class i % 4, in two shards; train:
    train_per_class pictures per class (they give stats.npz).
    """
    assert num_images >= len(SYNSETS), "every class needs a validation image"
    root = os.path.join(os.path.dirname(os.path.abspath(data_dir)),
                        os.path.basename(os.path.normpath(data_dir)) + "-images")
    for i in range(num_images):
        write(os.path.join(root, "val", SYNSETS[i % 4], f"val_{i}.JPEG"),
              encode(picture(RESIZE, RESIZE, seed=100 + i)))
    for c, synset in enumerate(SYNSETS):
        for i in range(train_per_class):
            write(os.path.join(root, "train", synset, f"train_{i}.JPEG"),
                  encode(picture(RESIZE + 10 * i, RESIZE, seed=200 + 10 * c + i)))
    names = write(os.path.join(root, "names.txt"),
                  "".join(f"{s} {n}\n" for s, n in zip(SYNSETS, NAMES)).encode())
    for split, folder in (("train", "train"), ("validation", "val")):
        convert(os.path.join(root, folder), data_dir, split, num_shards=2, resize=RESIZE,
                class_names=names)
    return data_dir


NUM_CLASSES = 3       # the training tests' demo data
TRAIN_PER_CLASS = 16  # 48 images: 6 steps of 8 per epoch
VAL_PER_CLASS = 6     # 18 images: the last eval batch of 8 is partial on purpose


def demo_data_dir(out_dir, *, num_classes=NUM_CLASSES, train_per_class=TRAIN_PER_CLASS,
                  val_per_class=VAL_PER_CLASS, size=80, seed=0):
    """The demo's procedural shapes, converted: out_dir/tfrecords (train and validation)."""
    from keras_alexnet.data import demo_data
    images = os.path.join(out_dir, "images")
    demo_data.make_demo_images(images, num_classes=num_classes, images_per_class=train_per_class,
                               val_per_class=val_per_class, image_size=size, seed=seed)
    data = os.path.join(out_dir, "tfrecords")
    for split, folder in (("train", "train"), ("validation", "val")):
        convert(os.path.join(images, folder), data, split, num_shards=2, resize=size)
    return data


# -- models and workdirs ----------------------------------------------------------------------

def tiny_model(**overrides):
    """The tiny network (TINY_MODEL) through model.build_model, as the trainer builds it.

    overrides: any config.model field (seed, init, dropout, name, ...), and fused_lrn.
    """
    options = {"fused_lrn": overrides.pop("fused_lrn")} if "fused_lrn" in overrides else {}
    return model_lib.build_model({**TINY_MODEL, **overrides}, **options)


def trained_model():
    """The tiny model with weights that a rebuild from config.json does not reproduce."""
    model = tiny_model(**dict(MODEL_KWARGS, seed=1234))
    # Small logits: probabilities far from one-hot (and from uniform), so comparisons of
    # them mean something. 0.6: the paper's dropout already halves fc7's outputs at test time.
    fc8 = model.get_layer("fc8")
    fc8.kernel.assign(fc8.kernel * 0.6)
    return model


def restored_run(model, data_dir):
    """What restore.restore_run returns for write_workdir's run, with the in-memory model."""
    from keras_alexnet.data import stats as stats_lib
    from keras_alexnet.runs import restore
    stats = stats_lib.load_stats(data_dir)
    return restore.RestoredRun(
        model=model, config={"model": MODEL_KWARGS}, checkpoint_path="(in memory)",
        data_dir=data_dir, synsets=SYNSETS, class_names=NAMES, mean_image=stats.mean_image,
        std=np.ones(3), label_offset=0, normalization="mean_image")


def write_workdir(workdir, data_dir, model=None):
    """config.json, checkpoints/ and best/ of a run of MODEL_KWARGS stopped at step 1 (ckpt-1),
    written by the trainer's own stages (loop.build, loop.initialize): the same checkpoint
    (model, optimizer slots, step, epoch, schedule, best error) with `model`'s weights.
    No metrics.jsonl. Returns the model.
    """
    from keras_alexnet.training import loop, workdir as workdir_lib
    model = model or trained_model()
    config = config_lib.get_config()
    config.model.update(MODEL_KWARGS)
    config.input.update(data_dir=data_dir, label_offset=0, normalization="mean_image")
    config.precision = "float32"
    workdir_lib.write_config(config, workdir)
    state = loop.build(config, tf.distribute.get_strategy(), config.precision)
    loop.initialize(state, config, workdir)
    state.model.set_weights(model.get_weights())
    state.step.assign(1)
    for manager in (state.manager, state.best_manager):
        manager.save(checkpoint_number=1)
    return model


# -- exports ---------------------------------------------------------------------------------

def serving_images():
    """Encoded test images: JPEG and PNG, RGB and grayscale, large enough for DCT scaling."""
    return {
        "rgb.jpg": encode(picture(100, 130, seed=1)),
        "rgb.png": encode(picture(97, 85, seed=2), "PNG"),
        "gray.jpg": encode(picture(120, 90, seed=3, channels=1)),
        "gray.png": encode(picture(81, 110, seed=4, channels=1), "PNG"),
        "big.jpg": encode(picture(330, 400, seed=5)),  # decoded at 1/4 scale
        "stored.jpg": encode(picture(RESIZE, RESIZE, seed=6)),
        "alpha.png": encode(with_alpha(picture(90, 100, seed=7)), "PNG"),
        "palette.gif": encode(picture(84, 96, seed=8), "GIF"),
    }


def with_alpha(rgb):
    """RGBA with alpha from transparent (left) to opaque (right): composited onto white."""
    alpha = np.broadcast_to(np.linspace(0, 255, rgb.shape[1]).astype(np.uint8), rgb.shape[:2])
    return np.dstack([rgb, alpha])


def reference_inputs(data_dir, images, image_size=67):
    """The export's preprocessing run eagerly in this process, NumPy for the mean and crops.

    Returns the centre patches and the full mean-subtracted squares (ten crops).
    """
    from keras_alexnet.serving import preprocessing as prep
    with np.load(os.path.join(data_dir, "stats.npz")) as stats:
        mean = stats["mean_image"].astype(np.float32)
    top = (RESIZE - image_size) // 2
    centre = [prep.stored_centre_patch(b, RESIZE, image_size).numpy()
              - mean[top:top + image_size, top:top + image_size] for b in images]
    squares = [prep.scale_and_center(b, RESIZE).numpy() - mean for b in images]
    return np.stack(centre), squares


def export_tiny_run(root):
    """A data folder, a workdir and the tiny model exported from memory, under root."""
    from keras_alexnet.serving import export
    root = str(root)
    data_dir = write_data_dir(os.path.join(root, "data"))
    model = write_workdir(os.path.join(root, "run"), data_dir)
    export_dir = os.path.join(root, "models", "alexnet")
    path = export.export_run(restored_run(model, data_dir), export_dir)
    return {"root": root, "workdir": os.path.join(root, "run"), "data_dir": data_dir,
            "model": model, "export_dir": export_dir, "path": path}


# -- training configs and processes ------------------------------------------------------------

def tiny_config(data_dir, overrides=None):
    """A few seconds of training: the tiny model (TINY_MODEL, glorot, 3 classes), batch 8.

    overrides: {"dotted.field": value}, applied with ConfigDict.update_from_flattened_dict.
    """
    config = config_lib.get_config()
    config.input.data_dir = data_dir
    config.input.shuffle_buffer = 64
    config.model.update(dict(TINY_MODEL, num_classes=NUM_CLASSES, init="glorot", seed=0))
    config.batch_size = 8
    config.eval.batch_size = 8
    config.num_epochs = 2
    config.precision = "float32"
    config.progress = "none"
    config.log_every_steps = 2
    config.checkpoint.every_steps = 4
    config.update_from_flattened_dict(overrides or {})
    return config


CHILDREN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "children.py")


def child(name, *args, env=None, run=False, timeout=300):
    """children.NAME(*args) in a fresh Python process: a Popen (stdout with stderr, text), or
    with run=True the finished subprocess.run (stdout and stderr apart). The child imports
    this tree (PYTHONPATH) and logs quietly."""
    argv = [sys.executable, CHILDREN, name, *map(str, args)]
    full_env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    if run:
        return subprocess.run(argv, env=full_env, capture_output=True, text=True, timeout=timeout)
    return subprocess.Popen(argv, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def start_training(config, workdir, *, result_path=None, env=None):
    """train_and_evaluate(config, workdir) in a fresh Python process (child(): a Popen)."""
    os.makedirs(os.path.dirname(os.path.abspath(workdir)), exist_ok=True)
    path = os.path.abspath(workdir) + ".config.json"
    with open(path, "w") as f:
        f.write(config.to_json())
    return child("train", path, workdir, *([result_path] if result_path else []), env=env)


def read_events(workdir, kind=None):
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        events = [json.loads(line) for line in f if line.strip()]
    return [e for e in events if kind is None or e["event"] == kind]


def wait_for(predicate, timeout, proc=None, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended (rc {proc.returncode}) before {what}:\n"
                                 f"{proc.stdout.read()[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def worker_processes(pid):
    """The worker processes of a make_tfrecords (spawned by multiprocessing; not its tracker)."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if ppid == pid and b"spawn_main" in cmdline:
            found.append(int(entry))
    return found


def start_slow_conversion(tmp_path, per_class):
    """bin/make_tfrecords over 2 classes of `per_class` large JPEGs (~25 ms a conversion, so a
    shard takes seconds), 2 workers, 8 shards: (its Popen, its output folder, its command)."""
    big = encode(picture(900, 1200, seed=3), quality=95)
    for c in ("n01", "n02"):
        for i in range(per_class):
            write(str(tmp_path / "in" / c / f"{i}.JPEG"), big)
    out = tmp_path / "out"
    command = [sys.executable, os.path.join(REPO, "bin", "make_tfrecords"),
               f"--input_dir={tmp_path / 'in'}", f"--output_dir={out}", "--resize=64",
               "--num_workers=2", "--num_shards=8"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    return proc, out, command

