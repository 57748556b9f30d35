"""Config files: keys, the paper's values, derived values, and errors that name the field."""
import glob
import importlib.util
import os

import pytest

from keras_alexnet import config as config_lib
from keras_alexnet import model as model_lib
from fixtures import REPO

CONFIG_FILES = sorted(glob.glob(os.path.join(REPO, "configs", "[!_]*.py")))  # not __init__.py


def load(path, arg=None):
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, (module.get_config(arg) if arg else module.get_config())


def test_every_issue_config_exists():
    names = {os.path.basename(p)[:-3] for p in CONFIG_FILES}
    assert {"paper_ilsvrc2010", "paper_ilsvrc2012", "multi_gpu", "imagenette", "demo"} <= names


@pytest.mark.parametrize("path", CONFIG_FILES, ids=os.path.basename)
def test_config_file(path):
    module, config = load(path)
    name = os.path.basename(path)
    assert f"bin/train --config=configs/{name}" in module.__doc__, "launch command in docstring"
    assert set(config.model.keys()) == {"name", *model_lib.builder_arguments("paper")}
    if not config.input.data_dir and not config.input.demo:
        with pytest.raises(config_lib.ConfigError, match="config.input.data_dir"):
            config_lib.validate(config)
        config.input.data_dir = "/data"
    config_lib.validate(config)
    # config.model is exactly what its builder takes (the export relies on it).
    kwargs = dict(config.model, image_size=67, width=0.125, fc_units=16)
    model = model_lib.build_model(kwargs)
    assert model.output_shape == (None, config.model.num_classes)


def test_paper_configs_are_the_papers_recipe():
    for name in ("paper_ilsvrc2010", "paper_ilsvrc2012"):
        _, c = load(os.path.join(REPO, "configs", f"{name}.py"))
        assert (c.batch_size, c.optimizer.learning_rate, c.optimizer.momentum,
                c.optimizer.weight_decay) == (128, 0.01, 0.9, 0.0005)
        assert (c.schedule.factor, c.schedule.max_reductions) == (0.1, 3)
        assert c.num_epochs == 90
        assert c.model.init == "paper" and c.model.dropout == 0.5 and c.model.image_size == 227
        assert c.model.fc_units == 4096 and c.model.width == 1.0 and c.model.towers == 2
        assert c.input.normalization == "mean_image" and c.input.crop == "paper"
        assert c.input.lighting_std == 0.1
    _, c2010 = load(os.path.join(REPO, "configs", "paper_ilsvrc2010.py"))
    assert c2010.input.test_split == "test"


@pytest.mark.parametrize("arg,replicas,strategy", [("4", 4, "mirrored"), ("2x4", 8, "multi_worker")])
def test_multi_gpu_scales_batch_and_learning_rate(arg, replicas, strategy):
    _, c = load(os.path.join(REPO, "configs", "multi_gpu.py"), arg)
    assert c.batch_size == 128 * replicas
    assert c.optimizer.learning_rate == pytest.approx(0.01 * replicas)
    assert c.distribution.strategy == strategy


@pytest.mark.parametrize("field,value,message", [
    ("distribution.strategy", "tpu", "config.distribution.strategy"),
    ("precision", "float8", "config.precision"),
    ("batch_size", 0, "config.batch_size"),
    ("input.normalization", "zscore", "config.input.normalization"),
    ("optimizer.momentum", 1.5, "config.optimizer.momentum"),
    ("schedule.factor", 2.0, "config.schedule.factor"),
    ("model.image_size", 50, "config.model.image_size"),
    ("steps_per_loop", 0, "config.steps_per_loop"),
    ("max_steps", -1, "config.max_steps"),
])
def test_bad_values_name_the_field(field, value, message):
    config = config_lib.get_config()
    config.input.data_dir = "/data"
    node, *path = [config] + field.split(".")
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    with pytest.raises(config_lib.ConfigError, match=message.replace(".", r"\.")):
        config_lib.validate(config)


def test_unknown_model_key_is_refused():
    config = config_lib.get_config()
    config.input.data_dir = "/data"
    config.model.depth = 8
    with pytest.raises(config_lib.ConfigError, match=r"config\.model.*depth"):
        config_lib.validate(config)


def test_model_name_picks_the_builder_whose_arguments_are_checked(monkeypatch):
    """config.model.name names a builder of model.BUILDERS; the other keys are its arguments,
    so a second network is one builder function away."""
    config = config_lib.get_config()
    config.input.data_dir = "/data"
    assert config.model.name == "paper" and config_lib.validate(config)
    config.model.name = "resnet"
    with pytest.raises(config_lib.ConfigError,
                       match=r"config\.model\.name: unknown network 'resnet'"):
        config_lib.validate(config)

    def wide(num_classes=1000, image_size=227, *, width=2.0, seed=None, name="wide"):
        return model_lib.build_alexnet(num_classes, image_size, width=width, seed=seed, name=name)

    monkeypatch.setitem(model_lib.BUILDERS, "wide", wide)
    config.model.name = "wide"  # the paper's keys are not the wide builder's
    with pytest.raises(config_lib.ConfigError, match=r"config\.model: .*unknown \[.*'lrn'"):
        config_lib.validate(config)
    config.model = dict(name="wide", num_classes=4, image_size=67, width=0.125, seed=0)
    config_lib.validate(config)
    model = model_lib.build_model(config.model)
    assert model.name == "wide" and model.output_shape == (None, 4)


def test_bin_train_refuses_a_bad_config_with_one_clear_line(tmp_path):
    import subprocess
    import sys
    workdir = tmp_path / "work"
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "bin", "train"),
         f"--config={os.path.join(REPO, 'configs', 'paper_ilsvrc2012.py')}", f"--workdir={workdir}",
         "--config.distribution.strategy=tpu", "--config.input.data_dir=/data"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "bin/train: error: config.distribution.strategy: unknown strategy 'tpu'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not workdir.exists()


def test_unknown_fields_are_named():
    config = config_lib.get_config()
    config.input.data_dir = "/data"
    config.optimizer.learning_rat = 0.1  # a typo of learning_rate
    config.foo = 1
    with pytest.raises(config_lib.ConfigError, match=r"config.foo: unknown field "
                                                     r"\(and config.optimizer.learning_rat\)"):
        config_lib.validate(config)


def test_an_unknown_field_on_the_command_line_is_a_sentence(tmp_path):
    import subprocess
    import sys
    done = subprocess.run([sys.executable, os.path.join(REPO, "bin", "train"),
                           f"--config={os.path.join(REPO, 'configs', 'demo.py')}",
                           f"--workdir={tmp_path}", "--config.optimizer.learning_rat=0.1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "--config.optimizer.learning_rat: the config has no field 'optimizer.learning_rat'" \
        in done.stderr


@pytest.mark.slow
def test_an_installed_package_has_the_configs_and_alexnet_study_its_default(tmp_path):
    """A non-editable install, run away from the repository: bin/study's default baseline
    (configs/imagenette.py) is a file of the installed package, and loads; every config file
    is installed; first_steps is an alexnet-* command."""
    import shutil
    import subprocess
    import sys
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside setup.py
    shutil.copytree(os.path.join(REPO, "keras_alexnet"), source / "keras_alexnet",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.py", "README.md"):
        shutil.copy(os.path.join(REPO, name), source / name)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(site), str(source)],
                   check=True, capture_output=True, timeout=600)
    shutil.rmtree(source)
    check = ("import importlib.util, keras_alexnet, keras_alexnet.cli.study as s\n"
             "spec = importlib.util.spec_from_file_location('baseline', s.DEFAULT_CONFIG)\n"
             "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
             "print(keras_alexnet.__file__, s.DEFAULT_CONFIG, module.get_config().model.image_size)")
    done = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(site)), timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    package, default, image_size = done.stdout.split()
    assert package == str(site / "keras_alexnet" / "__init__.py")
    assert default == str(site / "keras_alexnet" / "configs" / "imagenette.py")
    assert int(image_size) == 107
    assert {os.path.basename(p) for p in CONFIG_FILES} <= set(os.listdir(site / "keras_alexnet" / "configs"))
    assert (site / "bin" / "alexnet-first-steps").exists()  # first_steps is a command too
