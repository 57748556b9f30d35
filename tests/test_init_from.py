"""Fine-tuning: config.init_from / init_from_skip / freeze (training/init_from.py) in bin/train's loop."""
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet import model as model_lib
from keras_alexnet.training import init_from, steps, train
from keras_alexnet.training import workdir as workdir_lib
from tests.fixtures import MODEL_KWARGS, demo_data_dir, tiny_config, write_data_dir, write_workdir

CONVS = ["conv1", "conv2", "conv3", "conv4", "conv5"]


def _weights(workdir, model_kwargs, checkpoint="latest"):
    model = workdir_lib.restore_model(workdir_lib.build_float32_model(model_kwargs),
                                      workdir_lib.checkpoint_path(workdir, checkpoint))
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """A tiny 3-class run trained 2 steps; and a 4-class data folder to fine-tune on."""
    root = tmp_path_factory.mktemp("finetune")
    source_data = demo_data_dir(str(root / "three"))
    workdir = str(root / "source")
    train.train_and_evaluate(tiny_config(source_data, {"max_steps": 2}), workdir)
    target_data = demo_data_dir(str(root / "four"), num_classes=4, seed=1)
    return {"root": root, "workdir": workdir, "target_data": target_data}


def _finetune_config(source_run, **overrides):
    return tiny_config(source_run["target_data"], dict({
        "model.num_classes": 4, "init_from": source_run["workdir"], "freeze": CONVS,
        "max_steps": 2, "model.seed": 5}, **overrides))


def test_finetune_trains_only_what_is_not_frozen_and_resumes_on_its_own(source_run, capsys):
    config = _finetune_config(source_run)
    workdir = str(source_run["root"] / "finetuned")
    train.train_and_evaluate(config, workdir)
    assert "initialized conv1, conv2, conv3, conv4, conv5, fc6, fc7 from" in capsys.readouterr().out
    source = _weights(source_run["workdir"], config.model.to_dict() | {"num_classes": 3})
    tuned = _weights(workdir, config.model.to_dict())
    for name in CONVS:  # frozen: bit-identical after the steps
        for a, b in zip(source[name], tuned[name]):
            np.testing.assert_array_equal(a, b)
    for name in ("fc6", "fc7"):  # copied, then trained
        assert not np.array_equal(source[name][0], tuned[name][0])
    assert tuned["fc8"][0].shape == (32, 4)

    # A resume uses its own checkpoint: the source may be gone by then.
    moved = source_run["workdir"] + "-moved"
    shutil.move(source_run["workdir"], moved)
    try:
        config.max_steps = 4
        train.train_and_evaluate(config, workdir)
    finally:
        shutil.move(moved, source_run["workdir"])
    assert "resumed from" in capsys.readouterr().out
    resumed = _weights(workdir, config.model.to_dict())
    for name in CONVS:
        np.testing.assert_array_equal(source[name][0], resumed[name][0])
    assert not np.array_equal(tuned["fc8"][0], resumed["fc8"][0])  # trained on, not re-initialized


def test_frozen_layers_get_no_optimizer_slot_and_no_decay():
    model = init_from.freeze(model_lib.build_alexnet(**MODEL_KWARGS), CONVS)
    names = {v.path.split("/")[0] for v in model.trainable_variables}
    assert names == {"fc6", "fc7", "fc8"}
    assert all(not v.path.startswith("conv") for v in steps.decayed_variables(model))


# -- refusals ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_source(tmp_path_factory):
    root = tmp_path_factory.mktemp("small_source")
    data = write_data_dir(str(root / "data"))
    write_workdir(str(root / "run"), data)
    return str(root / "run")


def _target(small_source, **model):
    config = tiny_config("/unused", {"init_from": small_source})
    config.model.update(dict(MODEL_KWARGS, **model))
    return config, model_lib.build_alexnet(**config.model)


def test_copies_everything_with_the_same_classes(small_source):
    config, model = _target(small_source, seed=99)
    assert init_from.initialize(model, config) == CONVS + ["fc6", "fc7", "fc8"]
    source = _weights(small_source, MODEL_KWARGS, "best")
    np.testing.assert_array_equal(model.get_layer("fc8").get_weights()[0], source["fc8"][0])


def test_a_checkpoint_path_is_a_source(small_source):
    config, model = _target(small_source, seed=99)
    config.init_from = workdir_lib.checkpoint_path(small_source, "latest")
    assert "fc8" in init_from.initialize(model, config)


@pytest.mark.parametrize("option, value", [("lrn_per_tower", False), ("towers", 1),
                                           ("dropout_scaling", "inverted")])
def test_other_network_options_are_refused(small_source, option, value):
    config, model = _target(small_source, **{option: value})
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(init_from.InitFromError, match=f"{option}: .* in the source"):
        init_from.initialize(model, config)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_a_shape_mismatch_names_the_layer_and_both_shapes(small_source):
    config, model = _target(small_source, fc_units=16)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(init_from.InitFromError, match=r"'fc6' has shapes \[\(.*32\).*\] in .* and "
                                                      r"\[\(.*16\).*\] here"):
        init_from.initialize(model, config)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # nothing copied


def test_skip_replaces_the_default(small_source):
    config, model = _target(small_source, num_classes=5)
    config.init_from_skip = ["fc7"]  # fc8 not skipped any more: its shape is refused
    with pytest.raises(init_from.InitFromError, match="'fc8' has shapes"):
        init_from.initialize(model, config)
    config.init_from_skip = ["fc7", "fc8"]
    assert init_from.initialize(model, config) == CONVS + ["fc6"]


@pytest.mark.parametrize("field", ["init_from_skip", "freeze"])
def test_unknown_layer_names_are_refused(small_source, field):
    config, model = _target(small_source)
    with pytest.raises(init_from.InitFromError, match=f"config.{field}: no layer .*'conv6'"):
        if field == "freeze":
            init_from.freeze(model, ["conv6"])
        else:
            config.init_from_skip = ["conv6"]
            init_from.initialize(model, config)


def test_a_missing_or_foreign_source_is_refused(small_source, tmp_path):
    config, model = _target(small_source)
    config.init_from = str(tmp_path / "nothing")
    with pytest.raises(init_from.InitFromError, match="does not exist"):
        init_from.initialize(model, config)
    os.makedirs(tmp_path / "folder")
    config.init_from = str(tmp_path / "folder")
    with pytest.raises(init_from.InitFromError, match="neither a run folder"):
        init_from.initialize(model, config)
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    config.init_from = str(bad)
    with pytest.raises(init_from.InitFromError, match="bad.keras is not a .keras model"):
        init_from.initialize(model, config)


def test_a_resumed_config_json_without_the_new_fields_reads_back_as_today(small_source):
    import json
    path = os.path.join(small_source, workdir_lib.CONFIG_FILENAME)
    stored = json.load(open(path))
    for key in ("init_from", "init_from_skip", "freeze"):
        stored.pop(key, None)
    for key in ("resize", "jpeg_reencode"):
        stored["input"].pop(key, None)
    json.dump(stored, open(path, "w"))
    config = workdir_lib.read_config(small_source)
    assert (config["init_from"], config["freeze"], config["input"]["resize"],
            config["input"]["jpeg_reencode"]) == ("", [], "shorter_side", True)
    assert tf.io.gfile.exists(path)
