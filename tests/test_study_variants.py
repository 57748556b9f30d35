"""The study's variants of issue 20: no weight decay (Sec. 5), the central patch without flips
(Sec. 4.1), no conv4 (Sec. 7): each one change from the baseline, each trains a step."""
import json

import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet import config as config_lib
from keras_alexnet.config import ConfigError
from keras_alexnet.data import preprocessing
from keras_alexnet.study import variants
from keras_alexnet.training import train
from keras_alexnet.training import workdir as workdir_lib
from fixtures import demo_data_dir, encode, picture, tiny_config, tiny_model

NEW = {"no_weight_decay": {"optimizer.weight_decay": 0.0},
       "centre_crop_no_flip": {"input.crop": "centre", "input.flip": False},
       "no_conv4": {"model.drop_conv": "conv4"}}


def _flat(config):
    def walk(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from walk(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v
    return dict(walk(json.loads(config.to_json())))


@pytest.mark.parametrize("name", sorted(NEW))
def test_a_new_variant_differs_from_the_baseline_in_exactly_its_change(name):
    base = tiny_config("/data")
    baseline, variant = (_flat(variants.make_config(base, v, 2)) for v in ("baseline", name))
    changed = {k: variant[k] for k in variant if variant[k] != baseline[k]}
    assert changed == NEW[name]
    assert variants.VARIANTS[name].section in ("4.1", "5", "7")
    config_lib.validate(variants.make_config(base, name, 2))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return demo_data_dir(str(tmp_path_factory.mktemp("variants") / "data"))


@pytest.mark.parametrize("name", sorted(NEW))
def test_a_new_variant_trains_a_step(name, data, tmp_path):
    config = variants.make_config(tiny_config(data, {"max_steps": 1}), name, 0)
    train.train_and_evaluate(config, str(tmp_path / name))
    stored = workdir_lib.read_config(str(tmp_path / name))
    for field, value in NEW[name].items():
        section, leaf = field.split(".")
        assert stored[section][leaf] == value


def test_without_conv4_conv5_takes_conv3s_maps_and_keeps_its_kernel_shape():
    full, short = tiny_model(seed=3), tiny_model(seed=3, drop_conv="conv4")
    names = [layer.name for layer in short.layers]
    assert "conv4" not in names and "conv3" in names
    assert [w.shape for w in short.get_layer("conv5").weights] == \
        [w.shape for w in full.get_layer("conv5").weights]
    assert short.count_params() < full.count_params()
    # The same init seeds for the layers both have.
    np.testing.assert_array_equal(full.get_layer("conv5").get_weights()[0],
                                  short.get_layer("conv5").get_weights()[0])
    assert short(np.zeros((2, 67, 67, 3), "float32")).shape == (2, 5)


def test_without_conv3_conv4_takes_conv2s_pooled_maps():
    short = tiny_model(drop_conv="conv3")
    assert "conv3" not in [layer.name for layer in short.layers]
    conv2_maps = short.get_layer("conv2").output.shape[-1]
    assert short.get_layer("conv4").input.shape[-1] == conv2_maps
    assert short(np.zeros((1, 67, 67, 3), "float32")).shape == (1, 5)


def test_a_bad_drop_conv_is_refused_naming_the_field():
    config = tiny_config("/data", {"model.drop_conv": "conv5"})
    with pytest.raises(ConfigError, match=r"config.model.drop_conv: must be '' .*'conv5'"):
        config_lib.validate(config)
    with pytest.raises(ValueError, match="drop_conv"):
        tiny_model(drop_conv="fc6")
    with pytest.raises(ConfigError, match="config.input.flip: must be True or False"):
        config = tiny_config("/data")
        with config.input.ignore_type():
            config.input.flip = "no"
        config_lib.validate(config)


def test_an_old_config_json_without_the_new_fields_rebuilds_the_full_network(tmp_path):
    config = json.loads(tiny_config("/data").to_json())
    del config["model"]["drop_conv"], config["input"]["flip"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    stored = workdir_lib.read_config(str(tmp_path))
    assert stored["model"]["drop_conv"] == "" and stored["input"]["flip"] is True


def test_the_centre_crop_without_flip_is_the_evaluation_patch_every_time():
    image_bytes = tf.constant(encode(picture(80, 80, seed=3)))
    kwargs = dict(image_size=67, stored_size=80, lighting_std=0.0)
    eval_patch = preprocessing.preprocess_for_eval(image_bytes, image_size=67, stored_size=80)
    for seed in ([1, 2], [3, 4], [5, 6]):
        patch = preprocessing.preprocess_for_train(image_bytes, seed=tf.constant(seed), crop="centre",
                                                   flip=False, **kwargs)
        np.testing.assert_array_equal(patch.numpy(), eval_patch.numpy())
    # The paper's scheme moves (and mirrors) the patch: some seed differs from the centre.
    papers = [preprocessing.preprocess_for_train(image_bytes, seed=tf.constant(s), **kwargs)
              for s in ([1, 2], [3, 4], [5, 6])]
    assert any(not np.array_equal(p.numpy(), eval_patch.numpy()) for p in papers)
