"""Sentences instead of tracebacks (issue 21 section 6): each bad input named in one line."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import fixtures as fx
from keras_alexnet.data import convert, layout, sources
from keras_alexnet.data import stats as stats_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _bin(program, *args, cwd=None):
    return subprocess.run([sys.executable, os.path.join(REPO, "bin", program), *args],
                          capture_output=True, text=True, timeout=300, cwd=cwd,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


def _our_lines(stderr):
    return [line for line in stderr.splitlines()
            if line.startswith(("FATAL", "bin/")) or "Traceback" in line]


def test_a_mistyped_config_path_is_one_sentence_naming_it(tmp_path):
    for extra in ([], ["--config.batch_size=4"]):  # an override used to reach it first
        run = _bin("train", "--config=configs/demoo.py", *extra, f"--workdir={tmp_path / 'w'}",
                   cwd=REPO)
        assert run.returncode == 1
        assert _our_lines(run.stderr) == [
            "FATAL Flags parsing error: --config=configs/demoo.py: cannot load it (No such file "
            "or directory: 'configs/demoo.py'); give a config file such as configs/demo.py"]
    assert not (tmp_path / "w").exists()


def test_a_malformed_labels_line_is_a_data_folder_error_naming_the_line(tmp_path):
    (tmp_path / layout.LABELS_FILENAME).write_text("0\tn01\tone\n1 n02 two\n")
    with pytest.raises(layout.DataFolderError, match=r"labels.txt:2: expected "
                       r"'1<TAB>wnid<TAB>name', found '1 n02 two'"):
        layout.load_labels(tmp_path)


@pytest.mark.slow
def test_bin_train_says_which_data_file_is_malformed(tmp_path):
    data_dir = fx.demo_data_dir(str(tmp_path / "data"), num_classes=2, train_per_class=2,
                                val_per_class=1)
    with open(os.path.join(data_dir, layout.LABELS_FILENAME), "a") as f:
        f.write("two\tfields\n")
    run = _bin("train", f"--config={os.path.join(REPO, 'configs', 'demo.py')}",
               f"--config.input.data_dir={data_dir}", f"--workdir={tmp_path / 'w'}")
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr[-2000:]
    lines = _our_lines(run.stderr)
    assert len(lines) == 1 and lines[0].startswith("bin/train: error: ")
    assert f"{os.path.join(data_dir, layout.LABELS_FILENAME)}:3: expected" in lines[0]


def test_a_pickle_as_stats_npz_is_never_loaded_and_named(tmp_path):
    path = tmp_path / layout.STATS_FILENAME
    with open(path, "wb") as f:  # an .npy of Python objects (unpickling it could run code)
        np.save(f, np.array([{"mean_image": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(layout.DataFolderError) as caught:
        stats_lib.load_stats(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{path}: not the statistics make_tfrecords writes")
    assert "pickled Python objects, which are never loaded" in message
    assert "allow_pickle" not in message
    path.write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(layout.DataFolderError, match="not the statistics make_tfrecords"):
        stats_lib.load_stats(tmp_path)


def test_an_unknown_tfds_name_is_one_line_with_a_hint(tmp_path):
    with pytest.raises(sources.SourceError) as caught:
        sources.open_source("tfds:imagenet2021", None, "train", str(tmp_path))
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400
    assert message.startswith("--source tfds:imagenet2021: Dataset imagenet2021 not found.")
    assert "imagenet2012" in message  # TFDS's "Did you mean"


def test_a_split_missing_a_class_is_refused_naming_the_class(tmp_path):
    fx.image_folder(tmp_path / "train", classes=("n01", "n02", "n03"), per_class=1, size=(40, 50))
    fx.image_folder(tmp_path / "val", classes=("n01", "n03"), per_class=1, size=(40, 50))
    fx.convert(tmp_path / "train", tmp_path / "out", "train", resize=32)
    with pytest.raises(convert.OutputError, match="this input lacks 'n02'"):
        fx.convert(tmp_path / "val", tmp_path / "out", "validation", resize=32)


def test_an_output_folder_inside_the_input_is_refused_on_the_first_run(tmp_path):
    root = fx.image_folder(tmp_path / "in", classes=("n01", "n02"), per_class=1, size=(40, 50))
    with pytest.raises(convert.OutputError, match="--output_dir .*/in/tfr is inside "
                       "--input_dir .*/in: "):
        fx.convert(root, tmp_path / "in" / "tfr", "train", resize=32)
    assert sorted(os.listdir(root)) == ["n01", "n02"]  # nothing written into the input


def test_export_of_latest_retries_when_a_training_rotates_it_away(tmp_path, monkeypatch, caplog):
    from keras_alexnet.runs import restore
    from keras_alexnet.training import workdir as workdir_lib
    data_dir = fx.write_data_dir(str(tmp_path / "data"), num_images=4)
    workdir = str(tmp_path / "run")
    model = fx.write_workdir(workdir, data_dir)
    folder = workdir_lib.checkpoints_dir(workdir)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), folder, 1)
    original, seen = workdir_lib.restore_model, []

    def rotating_restore(built, path):  # the trainer saves and deletes the older one meanwhile
        seen.append(path)
        if len(seen) == 1:
            manager.save(checkpoint_number=9)
            assert not tf.io.gfile.exists(path + ".index")
        return original(built, path)

    monkeypatch.setattr(workdir_lib, "restore_model", rotating_restore)
    run = restore.restore_run(workdir, "latest")
    assert run.checkpoint_path.endswith("ckpt-9") and len(seen) == 2
    assert "went away while being read" in caplog.text

    def always_gone(built, path):
        raise tf.errors.NotFoundError(None, None, f"{path}.index; No such file or directory")

    monkeypatch.setattr(workdir_lib, "restore_model", always_gone)
    with pytest.raises(ValueError, match=r"checkpoint .*ckpt-9 could not be read \(.*No such "
                       r"file.*\); a training still running may have rotated it away"):
        restore.restore_run(workdir, "latest")


def test_benchmark_infer_refuses_a_saved_model_it_would_ignore():
    run = _bin("benchmark", "infer", "--saved_model=/nonexistent")
    assert run.returncode == 1 and "images_per_sec" not in run.stdout
    assert "--saved_model is for `benchmark serve`; `benchmark infer` times a model built in " \
           "memory" in run.stderr
