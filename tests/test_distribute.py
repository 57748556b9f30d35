"""Strategy, cluster and precision choices (no cluster needed: resolvers read the environment)."""
import json

import keras
import pytest
import tensorflow as tf

from keras_alexnet import config as config_lib
from keras_alexnet.training import distribute


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("TF_CONFIG", "SLURM_JOB_ID", "SLURM_PROCID", "SLURM_STEP_NUM_TASKS",
                 "SLURM_STEP_NODELIST", "SLURM_STEP_TASKS_PER_NODE", "SLURM_NTASKS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_tf_config_cluster(clean_env):
    cluster = {"worker": ["hosta:2222", "hostb:2222"]}
    clean_env.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}}))
    resolver = distribute.cluster_resolver("auto")
    assert isinstance(resolver, tf.distribute.cluster_resolver.TFConfigClusterResolver)
    assert resolver.cluster_spec().as_dict() == cluster
    assert (resolver.task_type, resolver.task_id) == ("worker", 1)


def test_slurm_cluster_on_cpu_hosts(clean_env):
    clean_env.setenv("SLURM_JOB_ID", "7")
    clean_env.setenv("SLURM_PROCID", "1")
    clean_env.setenv("SLURM_NTASKS", "2")
    clean_env.setenv("SLURM_STEP_NUM_TASKS", "2")
    clean_env.setenv("SLURM_STEP_NODELIST", "node[1-2]")
    clean_env.setenv("SLURM_STEP_TASKS_PER_NODE", "1(x2)")
    resolver = distribute.cluster_resolver("auto")
    assert isinstance(resolver, tf.distribute.cluster_resolver.SlurmClusterResolver)
    assert resolver.cluster_spec().as_dict() == {"worker": ["node1:8888", "node2:8888"]}
    assert (resolver.task_type, resolver.task_id) == ("worker", 1)


def test_multi_worker_without_a_cluster_names_the_field(clean_env):
    with pytest.raises(config_lib.ConfigError, match="TF_CONFIG.*SLURM"):
        distribute.cluster_resolver("auto")


def test_auto_strategy_and_precision_on_cpu():
    config = config_lib.get_config()
    assert distribute.make_strategy(config) is tf.distribute.get_strategy()
    assert distribute.set_precision("auto") == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"
    assert distribute.set_precision("mixed_bfloat16") == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().compute_dtype == "bfloat16"


def test_one_device_strategy():
    config = config_lib.get_config()
    config.distribution.strategy = "one_device"
    strategy = distribute.make_strategy(config)
    assert isinstance(strategy, tf.distribute.OneDeviceStrategy)
    assert strategy.num_replicas_in_sync == 1
    assert distribute.is_chief(strategy)


def test_non_chief_writes_to_a_temporary_folder(tmp_path):
    assert distribute.write_dir(str(tmp_path), True) == str(tmp_path)
    other = distribute.write_dir(str(tmp_path), False)
    assert other != str(tmp_path) and not other.startswith(str(tmp_path))
