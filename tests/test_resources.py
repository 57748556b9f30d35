"""Resources (issue 21 §8): worker count from the CPUs this process may use; a moved data folder."""
import io
import os

import fixtures as fx
from keras_alexnet.data import convert as convert_lib


def test_available_cpus_follow_affinity_and_the_cgroup_quota(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # docker --cpus=1.5
    assert convert_lib.available_cpus(str(tmp_path)) == 2
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert convert_lib.available_cpus(str(tmp_path)) == 8
    assert convert_lib.available_cpus(str(tmp_path / "no-cgroup")) == 8


def test_make_tfrecords_starts_one_worker_under_taskset_c_0(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    fx.image_folder(tmp_path / "in", per_class=2)
    stream = io.StringIO()
    convert_lib.convert("imagefolder", str(tmp_path / "in"), str(tmp_path / "out"), num_shards=2,
                        resize=64, stream=stream)
    assert "(1 worker processes)" in stream.getvalue()


def test_a_run_follows_its_data_to_a_new_folder_but_not_to_other_data(tmp_path):
    import shutil

    import pytest

    from keras_alexnet.config import ConfigError
    from keras_alexnet.training import workdir as workdir_lib
    old = fx.demo_data_dir(str(tmp_path / "old"), train_per_class=2, val_per_class=1)
    other = fx.demo_data_dir(str(tmp_path / "other"), train_per_class=2, val_per_class=1, seed=1)
    work = str(tmp_path / "work")
    workdir_lib.write_config(workdir_lib.config_to_store(fx.tiny_config(old)), work)
    new = str(tmp_path / "moved")
    shutil.move(old, new)
    with pytest.raises(ConfigError, match=rf"changed from {old} to {other}, which does not hold "
                                          r"the dataset this run trained on \(its stats.npz"):
        workdir_lib.check_workdir(workdir_lib.config_to_store(fx.tiny_config(other)), work)
    assert workdir_lib.check_workdir(workdir_lib.config_to_store(fx.tiny_config(new)), work)
    # A workdir from before data.json: only the old folder, if still there, can tell.
    os.remove(os.path.join(work, workdir_lib.DATA_FILENAME))
    with pytest.raises(ConfigError, match=rf"changed from {old} \(gone\) to {new}, and there is "
                                          r"no .*data.json .* set input.data_dir in .*config.json"):
        workdir_lib.check_workdir(workdir_lib.config_to_store(fx.tiny_config(new)), work)
    shutil.copytree(new, old)
    assert workdir_lib.check_workdir(workdir_lib.config_to_store(fx.tiny_config(new)), work)
