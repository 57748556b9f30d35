"""runs/restore.py: a workdir's checkpoint back into a model, every weight or a clear error."""
import json
import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf

import fixtures as fx
from keras_alexnet.runs import restore
from keras_alexnet.serving import export
from keras_alexnet.training import workdir as workdir_lib


def _softmax(logits):
    return tf.nn.softmax(logits).numpy()


def test_export_from_workdir_restores_the_checkpoint(tiny_export, tmp_path):
    """bin/export's path: config.json -> build_alexnet -> checkpoint -> SavedModel."""
    path = export.export_from_workdir(tiny_export["workdir"], str(tmp_path / "m"), checkpoint="latest",
                                      num_warmup_images=1)
    assert path == str(tmp_path / "m" / "1")
    image = fx.encode(fx.picture(100, 130, seed=1))
    served = tf.saved_model.load(path).signatures["serving_default"](
        image_bytes=tf.constant([image]))["probabilities"].numpy()
    centre, _ = fx.reference_inputs(tiny_export["data_dir"], [image])
    np.testing.assert_allclose(served, _softmax(tiny_export["model"](centre, training=False)),
                               rtol=1e-4, atol=1e-6)


def test_restore_restores_every_weight(tiny_export):
    restored = restore.restore_run(tiny_export["workdir"], "best")
    assert len(restored.model.weights) == len(tiny_export["model"].weights)
    for expected, got in zip(tiny_export["model"].weights, restored.model.weights):
        np.testing.assert_array_equal(got.numpy(), expected.numpy(), err_msg=got.path)


def test_restore_names_weights_missing_from_the_checkpoint(tiny_export, tmp_path):
    model = fx.trained_model()
    tf.train.Checkpoint(model=tf.train.Checkpoint(fc8=model.get_layer("fc8"))).save(
        str(tmp_path / "partial" / "ckpt"))
    with pytest.raises(ValueError, match="conv1/kernel"):
        workdir_lib.restore_model(workdir_lib.build_float32_model(fx.MODEL_KWARGS), str(tmp_path / "partial" / "ckpt-1"))


def test_restore_refuses_a_checkpoint_of_another_model(tiny_export, tmp_path):
    config = json.loads(pathlib.Path(tiny_export["workdir"], "config.json").read_text())
    config["model"]["fc_units"] = 16
    workdir = tmp_path / "other"
    workdir.mkdir()
    (workdir / "config.json").write_text(json.dumps(config))
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError), match="fc|shape"):
        restore.restore_run(str(workdir), os.path.join(tiny_export["workdir"], "best"))
    with pytest.raises(FileNotFoundError, match="checkpoint=latest"):
        restore.restore_run(str(workdir), "best")
