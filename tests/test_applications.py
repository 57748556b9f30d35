"""keras_alexnet.AlexNet / preprocess_input / decode_predictions, and .keras files (applications.py)."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import fixtures as fx
from keras_alexnet import AlexNet, decode_predictions, preprocess_input
from keras_alexnet import applications
from keras_alexnet.training import init_from
from keras_alexnet.training import workdir as workdir_lib


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("applications")
    data_dir = fx.write_data_dir(str(root / "data"))
    workdir = str(root / "run")
    model = fx.write_workdir(workdir, data_dir)
    with np.load(os.path.join(data_dir, "stats.npz")) as stats:
        mean = stats["mean_image"].astype(np.float32)
    return {"root": root, "workdir": workdir, "data_dir": data_dir, "model": model, "mean": mean}


def _images():
    return np.stack([fx.picture(fx.RESIZE, fx.RESIZE, seed=s) for s in (1, 2, 3)])


def test_three_lines_give_the_runs_predictions(run):
    model = AlexNet(weights=run["workdir"])
    images = _images()
    probs = model.predict(preprocess_input(images), verbose=0)
    top = (fx.RESIZE - 67) // 2
    patch = images[:, top:top + 67, top:top + 67].astype(np.float32) - \
        run["mean"][top:top + 67, top:top + 67]
    expected = tf.nn.softmax(run["model"](patch, training=False)).numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    decoded = decode_predictions(probs, top=2)
    assert len(decoded) == 3 and len(decoded[0]) == 2
    best = int(np.argmax(expected[0]))
    assert decoded[0][0] == (fx.SYNSETS[best], fx.NAMES[best], pytest.approx(expected[0, best]))
    # A 67x67 input is taken as the patch itself; another size is resized like training's.
    np.testing.assert_allclose(preprocess_input(images[:, top:top + 67, top:top + 67]), patch)
    other = preprocess_input(fx.picture(120, 90, seed=4), model=model)
    assert other.shape == (1, 67, 67, 3)


def test_logits_features_and_the_convolutional_base(run):
    logits = AlexNet(weights=run["workdir"], classifier_activation=None)
    x = preprocess_input(_images(), model=logits)
    np.testing.assert_allclose(logits(x).numpy(), run["model"](x, training=False).numpy(),
                               rtol=1e-5, atol=1e-5)
    base = AlexNet(weights=run["workdir"], include_top=False)
    assert base.layers[-1].name == "pool5" and base.output_shape == (None, 1, 1, 32)
    pooled = AlexNet(weights=run["workdir"], include_top=False, pooling="avg",
                     input_shape=(99, 99, 3))
    assert pooled.output_shape == (None, 32)
    import keras
    features = keras.Model(logits.input, logits.get_layer("fc7").output)
    assert features(x).shape == (3, 32)
    images = keras.Input((67, 67, 3))
    wrapped = AlexNet(weights=run["workdir"], input_tensor=images)
    assert wrapped.inputs[0] is images
    np.testing.assert_allclose(wrapped(x).numpy(), tf.nn.softmax(logits(x)).numpy(), atol=1e-6)


def test_wrong_mean_is_refused(run, tmp_path):
    first = AlexNet(weights=run["workdir"])  # noqa: F841  (alive: preprocess_input sees it)
    other_data = fx.write_data_dir(str(tmp_path / "other"), train_per_class=3)
    with np.load(os.path.join(other_data, "stats.npz")) as stats:
        assert not np.array_equal(stats["mean_image"], run["mean"])
    second = AlexNet(weights=run["workdir"], data_dir=other_data)
    with pytest.raises(ValueError, match="came with 2 different mean images"):
        preprocess_input(_images())
    assert preprocess_input(_images(), model=second).shape == (3, 67, 67, 3)
    bare = AlexNet(**{k: v for k, v in fx.MODEL_KWARGS.items() if k != "num_classes"}, classes=4)
    with pytest.raises(ValueError, match="has no input_statistics layer"):
        preprocess_input(_images(), model=bare)
    with pytest.raises(ValueError, match=r"expected \[N, 4\]"):
        decode_predictions(np.zeros((1, 5)), model=second)


def test_options_the_weights_cannot_have_are_refused(run):
    with pytest.raises(ValueError, match="classes=10, but the weights' classifier has 4"):
        AlexNet(weights=run["workdir"], classes=10)
    with pytest.raises(ValueError, match="fc6 reads 67x67"):
        AlexNet(weights=run["workdir"], input_shape=(99, 99, 3))
    with pytest.raises(ValueError, match="towers: 2 in the source, 1 here"):
        AlexNet(weights=run["workdir"], towers=1)
    with pytest.raises(ValueError, match="does not exist"):
        AlexNet(weights=str(run["root"] / "nothing"))
    with pytest.raises(ValueError, match="nothing is downloaded; import Caffe's bvlc_alexnet"):
        AlexNet(weights="imagenet")


LOAD = textwrap.dedent("""
    import sys
    import keras_alexnet  # before keras: the layers register when TensorFlow arrives
    import keras, numpy as np
    model = keras.saving.load_model(sys.argv[1])
    x = keras_alexnet.preprocess_input(np.load(sys.argv[2]), model=model)
    np.save(sys.argv[3], model.predict(x, verbose=0))
""")


def test_keras_file_loads_in_a_fresh_process_and_initializes(run, tmp_path):
    path = applications.save_keras(workdir_lib.checkpoint_path(run["workdir"]),
                                   str(tmp_path / "alexnet.keras"))
    with pytest.raises(FileExistsError, match="never overwritten"):
        applications.save_keras(run["workdir"], path)
    assert os.listdir(tmp_path) == ["alexnet.keras"]
    np.save(tmp_path / "images.npy", _images())
    subprocess.run([sys.executable, "-c", LOAD, path, str(tmp_path / "images.npy"),
                    str(tmp_path / "out.npy")], check=True, cwd=fx.REPO)
    expected = AlexNet(weights=run["workdir"]).predict(
        preprocess_input(_images(), model=AlexNet(weights=path)), verbose=0)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-6)
    config = fx.tiny_config("/unused", {"init_from": path})
    config.model.update(fx.MODEL_KWARGS)
    target = init_from.freeze(AlexNet(**fx.MODEL_KWARGS, classifier_activation=None), [])
    assert init_from.initialize(target, config)[-1] == "fc8"
    config.model.lrn_per_tower = False
    with pytest.raises(init_from.InitFromError, match="lrn_per_tower"):
        init_from.initialize(target, config)


def test_bin_export_format_keras(run, tmp_path):
    out = str(tmp_path / "m.keras")
    result = subprocess.run([sys.executable, os.path.join(fx.REPO, "bin", "export"),
                             f"--workdir={run['workdir']}", "--format=keras",
                             f"--export_dir={out}"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert os.path.exists(out) and f"exported {out}" in result.stdout
    again = subprocess.run([sys.executable, os.path.join(fx.REPO, "bin", "export"),
                            f"--workdir={run['workdir']}", "--format=keras",
                            f"--export_dir={out}"], capture_output=True, text=True)
    assert again.returncode == 1 and "bin/export: error:" in again.stderr \
        and "never overwritten" in again.stderr
