"""The procedural demo dataset: real JPEG files in class folders, converted by make_tfrecords."""
import glob
import os

import numpy as np
import pytest
from PIL import Image

from keras_alexnet.data import demo_data
from keras_alexnet.data import input_pipeline, layout
from keras_alexnet.data import stats


def test_images_are_jpegs_in_class_folders(tmp_path):
    demo_data.make_demo_images(str(tmp_path), num_classes=10, images_per_class=3, val_per_class=2,
                               image_size=48, seed=1)
    for split, count in (("train", 3), ("val", 2)):
        assert sorted(os.listdir(tmp_path / split)) == sorted(demo_data.CLASSES)
        for name in demo_data.CLASSES:
            files = sorted(glob.glob(str(tmp_path / split / name / "*.jpg")))
            assert len(files) == count
            with Image.open(files[0]) as image:
                assert image.format == "JPEG" and image.size == (48, 48) and image.mode == "RGB"


def test_same_seed_same_images_other_seed_other_images():
    a = demo_data.draw("ring", 40, np.random.default_rng(3))
    b = demo_data.draw("ring", 40, np.random.default_rng(3))
    c = demo_data.draw("ring", 40, np.random.default_rng(4))
    assert a.dtype == np.uint8 and a.shape == (40, 40, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_a_class_is_a_shape_not_a_colour():
    """Mean colours of two classes overlap: the network must learn shapes and textures."""
    rng = np.random.default_rng(0)
    means = {name: np.array([demo_data.draw(name, 32, rng).mean((0, 1)) for _ in range(40)])
             for name in ("circle", "checkerboard")}
    assert abs(means["circle"].mean() - means["checkerboard"].mean()) < 20
    assert means["circle"].std(0).min() > 20  # colours vary a lot within a class


def test_unknown_class_count_is_refused(tmp_path):
    with pytest.raises(ValueError, match="num_classes=11"):
        demo_data.make_demo_images(str(tmp_path), num_classes=11)


def test_make_demo_tfrecords_converts_and_is_not_repeated(tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    out = str(tmp_path / "data")
    demo_data.make_demo_tfrecords(out, num_classes=3, images_per_class=4, image_size=72, seed=0)
    assert len(glob.glob(os.path.join(out, "train-*-of-00002"))) == 2
    assert len(glob.glob(os.path.join(out, "validation-*-of-00002"))) == 2
    labels = layout.load_labels(out)
    assert [wnid for wnid, _ in labels] == sorted(demo_data.CLASSES[:3])
    s = stats.load_stats(out)
    assert s.num_images == 12 and s.mean_image.shape == (72, 72, 3)
    ds = input_pipeline.make_dataset(os.path.join(out, "validation-*"), 3, False, stats=s,
                                     image_size=67, repeat=False)
    assert sum(int(y.shape[0]) for _, y in ds) == 3  # one validation image per class
    mtime = os.path.getmtime(os.path.join(out, "stats.npz"))
    demo_data.make_demo_tfrecords(out, num_classes=3, images_per_class=4, image_size=72, seed=0)
    assert os.path.getmtime(os.path.join(out, "stats.npz")) == mtime
    assert not [n for n in os.listdir(scratch) if n.startswith("alexnet-demo-images")]  # temporary
