"""bin/export --format=onnx and bin/predict --model: ONNX Runtime computes what the SavedModel does.

Two networks, each exported both ways once a module: the tests' tiny one with the paper's
defaults (LRN within each tower, the paper's dropout: outputs halved at test time) and an
imported Caffe network (tests/caffe_fixtures.py: LRN across all 96/256 maps, k = 1, BGR
conv1 turned RGB, inverted dropout, 227 pixels). Images are the tests' smooth pictures,
through the SavedModel's own preprocessing.
"""
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
import tensorflow as tf

import caffe_fixtures as cf
import fixtures as fx
from keras_alexnet.runs import restore
from keras_alexnet.serving import client, export, onnx_export, predict, runtimes, triton
from keras_alexnet.weights import caffe_import

# Logits: |ONNX Runtime - TensorFlow| <= LOGIT_TOLERANCE x their spread (max - min). Both run
# the same float32 ops in other orders (oneDNN's and MLAS's convolution and GEMM blocking,
# ONNX's LRN on NCHW): each sum differs by a few ulps of its partial sums, ~1e-7-1e-6 of the
# spread measured here; a wrongly converted op (an LRN alpha not scaled by the window, a tower
# split in the wrong axis, fc6's flatten order) is off by a whole fraction of it.
LOGIT_TOLERANCE = 1e-5


def _both(root, run):
    """(SavedModel version path, ONNX version path) of a restore.RestoredRun under root."""
    saved = export.export_run(run, os.path.join(root, "models", "alexnet"), num_warmup_images=0)
    onnx_path = onnx_export.export_run(run, os.path.join(root, "triton", "alexnet"))
    return saved, onnx_path


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("onnx_paper"))
    data_dir = fx.write_data_dir(os.path.join(root, "data"), num_images=4)
    model = fx.trained_model()
    saved, onnx_path = _both(root, fx.restored_run(model, data_dir))
    return {"root": root, "saved": saved, "onnx": onnx_path, "model": model,
            "triton": os.path.join(root, "triton", "alexnet")}


@pytest.fixture(scope="module")
def caffe(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("onnx_caffe"))
    paths = cf.write_files(os.path.join(root, "caffe"))
    caffe_import.import_caffe(**paths, workdir=os.path.join(root, "run"), stream=None)
    run = restore.restore_run(os.path.join(root, "run"))
    saved, onnx_path = _both(root, run)
    return {"root": root, "saved": saved, "onnx": onnx_path, "model": run.model}


def _outputs_both_ways(exported):
    """(SavedModel's predict_images outputs, ONNX Runtime's) on the preprocessed test pictures."""
    loaded = tf.saved_model.load(exported["saved"])
    images = loaded.preprocess_bytes(tf.constant(list(fx.serving_images().values()))).numpy()
    assert images.std() > 10  # pictures, not zeros
    ours = loaded.signatures["predict_images"](images=tf.constant(images))
    session = onnxruntime.InferenceSession(triton.model_path(exported["onnx"]),
                                           providers=["CPUExecutionProvider"])
    theirs = dict(zip(["probabilities", "logits"],
                      session.run(["probabilities", "logits"], {"images": images})))
    return {k: ours[k].numpy() for k in ("probabilities", "logits")}, theirs, session


@pytest.mark.parametrize("which", ["paper", "caffe"])
def test_onnx_runtime_computes_the_saved_models_outputs(which, request):
    exported = request.getfixturevalue(which)
    ours, theirs, session = _outputs_both_ways(exported)
    spread = np.ptp(ours["logits"])
    assert spread > 0.1  # logits that tell the classes apart
    difference = np.abs(theirs["logits"] - ours["logits"]).max() / spread
    print(f"{which}: max |ONNX - TF| logits {difference:.2g} of their spread {spread:.3g}")
    assert difference <= LOGIT_TOLERANCE
    np.testing.assert_allclose(theirs["probabilities"], ours["probabilities"], atol=1e-6)
    assert np.array_equal(theirs["probabilities"].argmax(-1), ours["probabilities"].argmax(-1))
    size = ours["logits"].shape[-1]
    empty = session.run(["probabilities"], {"images": np.zeros((0, *session.get_inputs()[0]
                                                                 .shape[1:]), np.float32)})
    assert empty[0].shape == (0, size)


def test_the_networks_are_the_ones_named(paper, caffe):
    """The two cases differ where they should: LRN per tower (k = 2) and the paper's dropout,
    or Caffe's LRN across all the maps with k = 1 and inverted dropout."""
    for exported, towers, k, dropout in ((paper, 2, 2.0, "PaperDropout"),
                                         (caffe, 1, 1.0, "InvertedDropout")):
        model = exported["model"]
        for name in ("lrn1", "lrn2"):
            assert (model.get_layer(name).towers, model.get_layer(name).bias) == (towers, k)
        assert {type(layer).__name__ for layer in model.layers} >= {dropout}
    assert caffe["model"].get_layer("conv2").towers == 2  # the LRN spans the two towers


def _config_tensors(text, section):
    """[(name, data_type, dims)] of config.pbtxt's input or output list."""
    block = re.search(section + r" \[\n(.*?)\n\]", text, re.S).group(1)
    return [(name, kind, [int(d) for d in dims.split(",")]) for name, kind, dims in re.findall(
        r'name: "([^"]+)"\s+data_type: (\w+)\s+dims: \[ ([^\]]*) \]', block)]


def test_triton_config_names_the_models_inputs_and_outputs(paper, caffe):
    for exported in (paper, caffe):
        folder = os.path.dirname(exported["onnx"])
        text = open(os.path.join(folder, triton.CONFIG_FILENAME)).read()
        model = onnx.load(triton.model_path(exported["onnx"]))
        for section, values in (("input", model.graph.input), ("output", model.graph.output)):
            actual = []
            for value in values:
                dims = value.type.tensor_type.shape.dim
                assert dims[0].dim_param and not dims[0].dim_value  # the batch: Triton's
                assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
                actual.append((value.name, "TYPE_FP32", [d.dim_value for d in dims[1:]]))
            assert sorted(_config_tensors(text, section)) == sorted(actual)
        assert 'platform: "onnxruntime_onnx"' in text
        assert int(re.search(r"max_batch_size: (\d+)", text).group(1)) > 0
        assert f'label_filename: "{triton.LABELS_FILENAME}"' in text
        labels = open(os.path.join(folder, triton.LABELS_FILENAME)).read().splitlines()
        assert len(labels) == model.graph.output[0].type.tensor_type.shape.dim[1].dim_value
        assert sorted(os.listdir(folder)) == ["1", triton.CONFIG_FILENAME, triton.LABELS_FILENAME]
        assert os.listdir(exported["onnx"]) == [triton.MODEL_FILENAME]


def test_predict_through_onnx_ranks_as_the_saved_model(paper, tmp_path):
    files = []
    for name, data in fx.serving_images().items():
        files.append(fx.write(str(tmp_path / name), data))
    for signature in ("serving_default", "ten_crop"):
        expected = predict.predict_files(paper["saved"], files, signature)
        for path in (paper["triton"], triton.model_path(paper["onnx"])):
            classifier = runtimes.load_classifier(path, signature)
            got = list(predict.predict_paths(classifier, files, batch_size=3))
            assert [[c for c, _, _, _ in p.top] for p in got] == \
                [[c for c, _, _, _ in p.top] for p in expected]
            assert [p.top[0][1:3] for p in got] == [p.top[0][1:3] for p in expected]
            np.testing.assert_allclose([[s for *_, s in p.top] for p in got],
                                       [[s for *_, s in p.top] for p in expected], atol=1e-5)


def test_bin_predict_model_runs_the_onnx_export_and_names_a_corrupt_file(paper, tmp_path):
    image = fx.write(str(tmp_path / "cat.jpg"), fx.encode(fx.picture(90, 120, seed=1)))
    notes = fx.write(str(tmp_path / "notes.txt"), b"not an image")
    corrupt = tmp_path / "corrupt" / "1" / triton.MODEL_FILENAME
    data = open(triton.model_path(paper["onnx"]), "rb").read()
    fx.write(str(corrupt), data[:len(data) // 2])  # cut short
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    runs = {key: subprocess.run([sys.executable, os.path.join(fx.REPO, "bin", "predict"),
                                 f"--model={model}", image, notes], capture_output=True,
                                text=True, timeout=300, env=env)
            for key, model in (("good", paper["triton"]), ("corrupt", corrupt.parent.parent))}
    expected = predict.predict_files(paper["saved"], [image])  # what --saved_model prints
    assert runs["good"].returncode == 1  # notes.txt skipped
    assert runs["good"].stdout == "".join(predict.format_prediction(p) + "\n" for p in expected)
    assert "notes.txt: skipped, not an image" in runs["good"].stderr
    assert runs["corrupt"].returncode == 1 and runs["corrupt"].stdout == ""
    assert "Traceback" not in runs["corrupt"].stderr
    error = [line for line in runs["corrupt"].stderr.splitlines() if "bin/predict" in line]
    assert len(error) == 1 and error[0].startswith(
        f"bin/predict: error: {corrupt}: not an ONNX model ONNX Runtime can load ("), error


def test_wrong_files_are_one_sentence_each(paper, tmp_path):
    stripped = onnx.load(triton.model_path(paper["onnx"]))
    del stripped.metadata_props[:]  # someone else's ONNX model: no labels, no mean image
    onnx.save(stripped, str(tmp_path / "other.onnx"))
    fx.write(str(tmp_path / "zeros.onnx"), b"\0" * 100)
    fx.write(str(tmp_path / "model.tflite"), b"TFL3")
    fx.write(str(tmp_path / "photo.jpg"), fx.encode(fx.picture(20, 20)))
    cases = {"other.onnx": "not a keras_alexnet export (no keras_alexnet.metadata",
             "zeros.onnx": "not an ONNX model ONNX Runtime can load",
             "model.tflite": "is not a LiteRT model (",  # runtimes/litert.py's sentence
             "photo.jpg": "not a model bin/predict reads",
             "missing": "no such file or folder"}
    for name, sentence in cases.items():
        with pytest.raises(ValueError, match=re.escape(f"{tmp_path / name}")) as caught:
            runtimes.load_classifier(str(tmp_path / name))
        assert sentence in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(ValueError, match="takes serving_default or ten_crop"):
        runtimes.load_classifier(paper["triton"], "predict_images")
    assert isinstance(runtimes.load_classifier(paper["saved"]), client.SavedModelClassifier)


def test_exports_go_into_folders_of_their_own_kind(paper, tmp_path):
    run = fx.restored_run(paper["model"], os.path.join(paper["root"], "data"))
    models = os.path.dirname(paper["saved"])
    with pytest.raises(FileExistsError, match="holds SavedModel versions"):
        onnx_export.export_run(run, models)
    with pytest.raises(FileExistsError, match="is a Triton model folder"):
        export.export_run(run, paper["triton"], num_warmup_images=0)
    with pytest.raises(FileExistsError, match="1 exists; a version is never overwritten"):
        onnx_export.export_run(run, paper["triton"], version=1)
    assert sorted(os.listdir(models)) == ["1"]
    # A config.pbtxt of another network (or edited) is not replaced: refused, left as it was.
    other = tmp_path / "other"
    other.mkdir()
    (other / triton.CONFIG_FILENAME).write_text("max_batch_size: 8\n")
    with pytest.raises(FileExistsError, match="describes another model"):
        onnx_export.export_run(run, str(other))
    assert sorted(os.listdir(other)) == [triton.CONFIG_FILENAME]
    assert (other / triton.CONFIG_FILENAME).read_text() == "max_batch_size: 8\n"


def test_bin_export_format_onnx_writes_the_next_version(paper, tmp_path):
    folder = str(tmp_path / "alexnet")
    shutil.copytree(paper["triton"], folder)
    workdir = str(tmp_path / "run")
    fx.write_workdir(workdir, os.path.join(paper["root"], "data"), paper["model"])
    done = subprocess.run([sys.executable, os.path.join(fx.REPO, "bin", "export"),
                           f"--workdir={workdir}", "--format=onnx", f"--export_dir={folder}"],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert done.returncode == 0, done.stderr
    path = os.path.join(folder, "2")
    assert f"exported {triton.model_path(path)} (ONNX opset 13)" in done.stdout
    assert sorted(os.listdir(folder)) == ["1", "2", triton.CONFIG_FILENAME, triton.LABELS_FILENAME]
    assert os.listdir(path) == [triton.MODEL_FILENAME]  # no marker, no temporary left
    images = np.random.default_rng(3).normal(0, 40, (2, 67, 67, 3)).astype(np.float32)
    first, second = (onnxruntime.InferenceSession(triton.model_path(os.path.join(folder, v)))
                     .run(["logits"], {"images": images})[0] for v in "12")
    np.testing.assert_allclose(second, first, atol=1e-6)  # the checkpoint of the same weights
