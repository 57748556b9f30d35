"""Strategy, cluster and precision choices (no cluster needed: resolvers read the environment)."""
import json

import keras
import pytest
import tensorflow as tf

from keras_alexnet import config as config_lib
from keras_alexnet import bfloat16_conv
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
    # 'auto' follows this machine's CPU (the fake-cpuinfo tests below cover both kinds).
    expected = "mixed_bfloat16" if bfloat16_conv.cpu_has_native_bfloat16() else "float32"
    assert distribute.set_precision("auto") == expected
    assert keras.mixed_precision.global_policy().name == expected
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


def _fake_gpus(monkeypatch, capabilities):
    import tensorflow as tf
    gpus = [f"GPU:{i}" for i in range(len(capabilities))]
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: gpus if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "get_device_details",
                        lambda gpu: {"compute_capability": capabilities[gpus.index(gpu)]})


@pytest.mark.parametrize("capabilities, expected", [
    ([(8, 0)], "mixed_bfloat16"), ([(9, 0), (8, 6)], "mixed_bfloat16"),
    ([(7, 0)], "mixed_float16"), ([(8, 0), (7, 5)], "mixed_float16")])
def test_auto_precision_on_gpus_follows_the_compute_capability(monkeypatch, capabilities, expected):
    _fake_gpus(monkeypatch, capabilities)
    assert distribute.resolve_precision("auto") == expected


@pytest.mark.parametrize("flags, expected", [
    ("fpu sse avx2 avx512f avx512_bf16", "mixed_bfloat16"), ("fpu avx2 amx_bf16", "mixed_bfloat16"),
    ("fpu sse avx2 fma", "float32")])
def test_auto_precision_on_cpus_follows_native_bfloat16(monkeypatch, tmp_path, flags, expected):
    from keras_alexnet import bfloat16_conv
    _fake_gpus(monkeypatch, [])
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    read_flags = bfloat16_conv.cpu_has_native_bfloat16.__wrapped__  # uncached
    monkeypatch.setattr(bfloat16_conv, "cpu_has_native_bfloat16", lambda: read_flags(str(cpuinfo)))
    assert distribute.resolve_precision("auto") == expected
    assert distribute.resolve_precision("float32") == "float32"
