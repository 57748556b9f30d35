"""docs/TROUBLESHOOTING.md stays true: the config fields, programs and configs it names exist."""
import importlib
import os
import re

from keras_alexnet import config as config_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GROUPS = ("model", "input", "optimizer", "schedule", "eval", "checkpoint", "distribution")


def _text():
    with open(os.path.join(REPO, "docs", "TROUBLESHOOTING.md"), encoding="utf-8") as f:
        return f.read()


def test_every_config_field_it_names_exists():
    config = config_lib.get_config()
    # `model.init_bias` in prose, --config.model.init_bias=0.1 in commands.
    named = set(re.findall(rf"(?:`|--config\.)((?:{'|'.join(GROUPS)})\.[a-z_]+)", _text()))
    assert {"model.init_bias", "model.dropout_scaling", "model.lrn_alpha", "model.lrn_per_tower",
            "model.image_size", "input.normalization", "input.lighting_std"} <= named
    missing = [f for f in sorted(named) if f.split(".")[1] not in config[f.split(".")[0]]]
    assert not missing, f"docs/TROUBLESHOOTING.md names config fields that do not exist: {missing}"


def test_every_program_and_config_it_runs_exists():
    text = _text()
    for program in set(re.findall(r"\bbin/([a-z_]+)", text)):
        assert os.path.exists(os.path.join(REPO, "bin", program)), program
    for name, arg in set(re.findall(r"--config=configs/([a-z_]+)\.py(?::([a-z_]+))?", text)):
        module = importlib.import_module(f"keras_alexnet.configs.{name}")
        config = module.get_config(arg) if arg else module.get_config()
        assert config.model.num_classes > 0
