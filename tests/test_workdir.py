"""training/workdir.py: config.json written then read back and compared; checkpoint paths."""
import os

import pytest
import tensorflow as tf

from keras_alexnet import config as config_lib
from keras_alexnet.training import workdir as workdir_lib


def test_config_round_trip(tmp_path):
    config = config_lib.get_config()
    config.input.data_dir = "/data"
    config.model.num_classes = 17
    workdir_lib.write_config(config, str(tmp_path / "run"))
    read = workdir_lib.read_config(str(tmp_path / "run"))
    assert read["model"]["num_classes"] == 17 and read["input"]["data_dir"] == "/data"
    assert read == config_lib.get_config().to_dict() | {"model": dict(config.model),
                                                        "input": dict(config.input)}
    assert sorted(os.listdir(tmp_path / "run")) == [workdir_lib.CONFIG_FILENAME]  # no temporary
    with pytest.raises(FileNotFoundError, match="is .* a training workdir"):
        workdir_lib.read_config(str(tmp_path / "nothing"))


def test_workdir_of_another_config_is_refused(tmp_path):
    config = config_lib.get_config()
    config.input.data_dir = "/data"
    assert workdir_lib.check_workdir(config, str(tmp_path)) is False
    workdir_lib.write_config(config, str(tmp_path))
    assert workdir_lib.check_workdir(config, str(tmp_path)) is True
    # How long, how often to save, and where to run may change on resume...
    config.num_epochs = 120
    config.checkpoint.every_steps = 10
    assert workdir_lib.check_workdir(config, str(tmp_path)) is True
    # ... what is trained may not.
    config.optimizer.learning_rate = 0.02
    config.model.dropout = 0.0
    before = (tmp_path / "config.json").read_text()
    with pytest.raises(config_lib.ConfigError, match="different config.*model.dropout, "
                                                     "optimizer.learning_rate"):
        workdir_lib.check_workdir(config, str(tmp_path))
    assert (tmp_path / "config.json").read_text() == before


def test_checkpoints_without_config_are_refused(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "checkpoint").write_text("x")
    config = config_lib.get_config()
    with pytest.raises(config_lib.ConfigError, match="no config.json"):
        workdir_lib.check_workdir(config, str(tmp_path))


def test_checkpoint_path_resolves_best_latest_folders_and_prefixes(tmp_path):
    workdir = str(tmp_path)
    step = tf.Variable(1)
    checkpoint = tf.train.Checkpoint(step=step)
    latest = tf.train.CheckpointManager(checkpoint, workdir_lib.checkpoints_dir(workdir), 3)
    latest.save()
    last = latest.save()
    with pytest.raises(FileNotFoundError, match="try --checkpoint=latest"):
        workdir_lib.checkpoint_path(workdir, "best")
    best = tf.train.CheckpointManager(checkpoint, workdir_lib.best_dir(workdir), 1).save()
    assert workdir_lib.checkpoint_path(workdir, "best") == best
    assert workdir_lib.checkpoint_path(workdir, "latest") == last
    assert workdir_lib.checkpoint_path(workdir, workdir_lib.checkpoints_dir(workdir)) == last
    first = last.replace("ckpt-2", "ckpt-1")
    assert workdir_lib.checkpoint_path(workdir, first) == first
    with pytest.raises(FileNotFoundError, match="neither 'best', 'latest'"):
        workdir_lib.checkpoint_path(workdir, str(tmp_path / "nope"))


def test_config_json_written_before_dropout_scaling_reads_as_inverted(tmp_path):
    """Runs trained with keras.layers.Dropout (before the paper's dropout became the default)
    and unit biases rebuild the same network from their config.json."""
    import json
    config = config_lib.get_config().to_dict()
    del config["model"]["dropout_scaling"], config["model"]["init_bias"]
    (tmp_path / workdir_lib.CONFIG_FILENAME).write_text(json.dumps(config))
    model = workdir_lib.read_config(str(tmp_path))["model"]
    assert model["dropout_scaling"] == "inverted" and model["init_bias"] == 1.0
    fresh = config_lib.get_config()
    fresh.input.data_dir = "/data"
    workdir_lib.write_config(fresh, str(tmp_path / "new"))
    assert workdir_lib.read_config(str(tmp_path / "new"))["model"]["dropout_scaling"] == "paper"


def test_config_json_written_before_lrn_per_tower_rebuilds_cross_tower_lrn(tmp_path):
    """Runs trained with LRN across the tower boundary rebuild that network, and a new run's
    per-tower default is refused in their workdir rather than resumed as a different net."""
    import json
    from keras_alexnet.serving import restore
    config = config_lib.get_config()
    config.model.update(num_classes=4, image_size=67, width=0.125, fc_units=16)
    config.input.data_dir = "/data"
    old = config.to_dict()
    del old["model"]["lrn_per_tower"]
    (tmp_path / workdir_lib.CONFIG_FILENAME).write_text(json.dumps(old))
    read = workdir_lib.read_config(str(tmp_path))["model"]
    assert read["lrn_per_tower"] is False
    model = restore.build_model(read)
    assert [model.get_layer(n).towers for n in ("lrn1", "lrn2")] == [1, 1]
    with pytest.raises(config_lib.ConfigError, match="model.lrn_per_tower"):
        workdir_lib.check_workdir(config, str(tmp_path))
    config.model.lrn_per_tower = False  # resuming the old run as it was trained
    assert workdir_lib.check_workdir(config, str(tmp_path)) is True
    assert config_lib.get_config().model.lrn_per_tower is True
