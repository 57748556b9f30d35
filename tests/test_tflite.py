"""serving/tflite_export.py and tflite_runtime.py: the LiteRT export against the SavedModel.

The tiny model of fixtures.export_tiny_run is exported as a SavedModel (conftest's
tiny_export) and converted to .tflite in float32, dynamic-range and int8; LiteRT's answers
are compared with the SavedModel's predict_images on the same preprocessed pictures.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import fixtures as fx
from keras_alexnet.serving import predict, runtimes, tflite_export, tflite_runtime

# float32 in both runtimes, different kernels (oneDNN in TensorFlow, XNNPACK or LiteRT's
# own in LiteRT) summing in different orders: each logit differs by a few float32 rounding
# errors of the sums (eps 1.2e-7 x |terms| ~ 1e-6 here), so probabilities within 1e-5.
# Measured on the tiny model: 6e-8 (3.3e-6 on the logits of the full 227 px, 1000-class
# network, random weights).
FLOAT_ATOL = 1e-5
# int8 against float32 on 20 pictures: the tiny model's top two probabilities are 0.008-0.04
# apart, and quantization moves them by up to 0.003 (measured; dynamic range 0.0016), so a
# near-tie may flip. Measured: 20 of 20 agree in both modes. 80% leaves room for a few flips
# while a model whose quantization broke (ranges wrong, LRN miscomputed) agrees at chance, 25%.
TOP1_AGREEMENT = 0.8


@pytest.fixture(scope="module")
def converted(tiny_export):
    """{mode: path of the tiny model's .tflite version}, exported through export_run."""
    run = fx.restored_run(tiny_export["model"], tiny_export["data_dir"])
    root = os.path.join(tiny_export["root"], "tflite")
    return {mode: tflite_export.export_run(run, os.path.join(root, mode), quantize=mode)
            for mode in tflite_export.QUANTIZATIONS}


@pytest.fixture(scope="module")
def pictures(tiny_export):
    """20 natural-looking pictures through the SavedModel's own preprocessing (float32
    [20, 67, 67, 3]), and its predict_images probabilities of them."""
    loaded = tf.saved_model.load(tiny_export["path"])
    encoded = list(fx.serving_images().values()) + [
        fx.encode(fx.picture(90 + 7 * i, 120 - 5 * i, seed=300 + i)) for i in range(12)]
    images = loaded.preprocess_bytes(tf.constant(encoded)).numpy()
    expected = loaded.signatures["predict_images"](images=tf.constant(images))
    return images, expected["probabilities"].numpy(), expected["logits"].numpy()


def test_a_version_holds_the_model_labels_and_preprocessing(tiny_export, converted):
    path = converted["none"]
    assert path == os.path.join(tiny_export["root"], "tflite", "none", "1")
    assert sorted(os.listdir(os.path.dirname(path))) == ["1"]  # no temporary folder left
    assert sorted(os.listdir(path)) == ["labels.txt", "metadata.json", "model.tflite",
                                        "model.tflite.sha256", "preprocessing.npz"]
    check = subprocess.run(["sha256sum", "-c", "model.tflite.sha256"], cwd=path,
                           capture_output=True, text=True)
    assert check.returncode == 0 and "model.tflite: OK" in check.stdout
    with open(os.path.join(path, "labels.txt")) as f:
        assert [line.split("\t")[1] for line in f.read().splitlines()] == fx.SYNSETS
    mean, std = tflite_runtime.read_preprocessing(path)
    with np.load(os.path.join(tiny_export["data_dir"], "stats.npz")) as stats:
        np.testing.assert_array_equal(mean, stats["mean_image"].astype(np.float32))
    np.testing.assert_array_equal(std, np.ones(3, np.float32))


def test_float32_equals_the_saved_model(converted, pictures):
    images, probabilities, logits = pictures
    model = tflite_runtime.load(converted["none"])
    out = model.outputs(images)
    diff = np.abs(out["probabilities"] - probabilities).max()
    np.testing.assert_allclose(out["probabilities"], probabilities, rtol=0, atol=FLOAT_ATOL,
                               err_msg=f"max |difference| {diff:.2e}")
    np.testing.assert_allclose(out["logits"], logits, rtol=1e-5, atol=FLOAT_ATOL)
    print(f"float32 .tflite vs SavedModel: max |probability difference| {diff:.2e}")
    assert np.ptp(probabilities, axis=1).min() > 0.05  # far from uniform: the check could fail
    assert len(set(probabilities.argmax(1))) > 1       # and the pictures differ
    # The same answers one image at a time (the graph resized to each batch).
    np.testing.assert_allclose(model(images[:1]), probabilities[:1], atol=FLOAT_ATOL)


LITERT_ONLY = """
import sys

class Refuse:  # a phone or a server with LiteRT only: no TensorFlow, no keras_alexnet
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "keras_alexnet"):
            raise ImportError("LiteRT alone must run the model, not " + name)

sys.meta_path.insert(0, Refuse())
import numpy as np
from ai_edge_litert.interpreter import Interpreter
model, inputs, output = sys.argv[1:]
runner = Interpreter(model_path=model).get_signature_runner()
np.save(output, runner(images=np.load(inputs))["probabilities"])
"""


def test_the_file_runs_in_litert_alone(converted, pictures, tmp_path):
    images, probabilities, _ = pictures
    np.save(tmp_path / "in.npy", images)
    result = subprocess.run([sys.executable, "-c", LITERT_ONLY,
                             os.path.join(converted["none"], "model.tflite"),
                             str(tmp_path / "in.npy"), str(tmp_path / "out.npy")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), probabilities, atol=FLOAT_ATOL)


@pytest.mark.parametrize("mode", ["dynamic", "int8"])
def test_quantized_top1_agrees_with_float32(converted, pictures, mode):
    images, probabilities, _ = pictures
    quantized = tflite_runtime.load(converted[mode])(images)
    agreement = np.mean(quantized.argmax(1) == probabilities.argmax(1))
    assert agreement >= TOP1_AGREEMENT, f"{mode}: top-1 agrees on {agreement:.0%}"
    assert not np.allclose(quantized, probabilities, atol=1e-6)  # it is quantized
    np.testing.assert_allclose(quantized.sum(1), 1, atol=0.02)


def test_quantized_files_are_smaller_and_keep_lrn_in_float(tiny_export, converted):
    sizes = {m: os.path.getsize(os.path.join(p, "model.tflite")) for m, p in converted.items()}
    assert sizes["dynamic"] < sizes["none"] / 2 and sizes["int8"] < sizes["none"] / 2, sizes
    metadata = {}
    for mode, path in converted.items():
        with open(os.path.join(path, "metadata.json")) as f:
            metadata[mode] = json.load(f)
        assert metadata[mode]["quantize"] == mode
    assert metadata["none"]["float_ops"]["CONV_2D"] == 8  # conv1, 2x conv2, conv3, 2x conv4, 2x conv5
    # int8: only the two LRNs compute in float (LiteRT's LRN kernel is float32 only) ...
    assert metadata["int8"]["float_ops"] == {"LOCAL_RESPONSE_NORMALIZATION": 2}
    # All 10 of the split's images (fewer than the 200 asked for).
    assert metadata["int8"]["calibration"] == {"data_dir": tiny_export["data_dir"],
                                               "split": "validation", "images": 10}
    # ... dynamic: the convolutions take int8 weights, LRN and pooling stay float.
    assert "CONV_2D" not in metadata["dynamic"]["float_ops"]
    assert metadata["dynamic"]["float_ops"]["LOCAL_RESPONSE_NORMALIZATION"] == 2


def test_an_empty_batch_gets_an_empty_answer(converted):
    model = tflite_runtime.load(converted["int8"])
    assert model(np.zeros((0, 67, 67, 3), np.float32)).shape == (0, 4)
    with pytest.raises(ValueError, match=r"shape \[N, 67, 67, 3\], got \[2, 64, 64, 3\]"):
        model(np.zeros((2, 64, 64, 3), np.float32))


def test_the_base_path_resolves_to_its_newest_version(converted):
    base = os.path.dirname(converted["none"])
    assert tflite_runtime.resolve(base) == os.path.join(base, "1", "model.tflite")
    assert tflite_runtime.resolve(converted["none"]) == os.path.join(converted["none"],
                                                                     "model.tflite")


@pytest.mark.parametrize("damage", ["junk", "empty", "half", "cut", "png"])
def test_a_damaged_or_foreign_file_is_one_sentence(converted, tmp_path, damage):
    with open(os.path.join(converted["none"], "model.tflite"), "rb") as f:
        good = f.read()
    data = {"junk": b"not a model, just some text\n" * 20, "empty": b"",
            "half": good[:len(good) // 2], "cut": good[:-200],
            "png": fx.encode(fx.picture(20, 20), "PNG")}[damage]
    path = str(tmp_path / "model.tflite")
    with open(path, "wb") as f:
        f.write(data)
    with pytest.raises(ValueError) as raised:
        tflite_runtime.load(path)
    message = str(raised.value)
    assert message.startswith(f"{path} is not a LiteRT model") and "\n" not in message, message


def test_damaged_weights_are_caught_by_the_checksum(converted, tmp_path):
    """A flipped byte in the weights still loads in LiteRT (a flatbuffer has no checksum)."""
    import shutil
    copy = shutil.copytree(converted["none"], tmp_path / "1")
    path = os.path.join(copy, "model.tflite")
    with open(path, "rb") as f:
        data = bytearray(f.read())
    data[len(data) // 2] ^= 0x40  # inside fc6's weights, the bulk of the file
    with open(path, "wb") as f:
        f.write(bytes(data))
    os.rename(os.path.join(copy, "model.tflite.sha256"), tmp_path / "aside")
    tflite_runtime.load(path)  # LiteRT's verifier takes it: only the checksum can tell
    os.rename(tmp_path / "aside", os.path.join(copy, "model.tflite.sha256"))
    with pytest.raises(ValueError, match=r"is not the LiteRT model that was exported \(its "
                       r"SHA-256 is not the one in model.tflite.sha256"):
        tflite_runtime.load(str(copy))


def test_a_missing_model_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a .tflite file nor a folder"):
        tflite_runtime.load(str(tmp_path))


def test_calibration_reads_the_validation_split(tiny_export, monkeypatch):
    from keras_alexnet.data import input_pipeline, layout
    run = fx.restored_run(tiny_export["model"], tiny_export["data_dir"])
    listed = []
    real = input_pipeline.list_shards

    def recording(pattern):
        listed.append(pattern)
        return real(pattern)
    monkeypatch.setattr(input_pipeline, "list_shards", recording)
    images = list(tflite_export.calibration_images(run, 6)())
    assert listed == [layout.shard_pattern(tiny_export["data_dir"], "validation")]
    assert len(images) == 6 and images[0].shape == (67, 67, 3)
    # The evaluation's centre patch minus the mean image: what predict_images is given.
    loaded = tf.saved_model.load(tiny_export["path"])
    first = next(iter(tf.data.TFRecordDataset(real(listed[0])[:1])))
    encoded = tf.io.parse_single_example(first, {"image/encoded": tf.io.FixedLenFeature((), tf.string)})
    np.testing.assert_allclose(images[0], loaded.preprocess_bytes(
        encoded["image/encoded"][None]).numpy()[0], atol=1e-3)


def test_a_missing_validation_split_is_one_sentence_naming_the_folder(tiny_export, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in os.listdir(tiny_export["data_dir"]):
        if not name.startswith("validation-") and os.path.isfile(
                os.path.join(tiny_export["data_dir"], name)):
            os.link(os.path.join(tiny_export["data_dir"], name), data / name)
    run = fx.restored_run(tiny_export["model"], str(data))
    with pytest.raises(FileNotFoundError) as raised:
        tflite_export.export_run(run, str(tmp_path / "out"), quantize="int8")
    assert str(data) in str(raised.value) and "validation" in str(raised.value)
    assert "\n" not in str(raised.value)
    assert not os.path.exists(tmp_path / "out")  # refused before anything was written


def test_a_saved_model_base_path_is_refused(tiny_export, converted):
    run = fx.restored_run(tiny_export["model"], tiny_export["data_dir"])
    with pytest.raises(FileExistsError, match="holds SavedModel versions"):
        tflite_export.export_run(run, tiny_export["export_dir"])
    assert sorted(os.listdir(tiny_export["export_dir"])) == ["1"]


def test_bin_export_tflite(tiny_export, tmp_path):
    """The command line: a new version each time, --version never overwrites, int8's errors."""
    def export(*flags):
        return subprocess.run([sys.executable, os.path.join(fx.REPO, "bin", "export"),
                               f"--workdir={tiny_export['workdir']}", "--format=tflite",
                               f"--data_dir={tiny_export['data_dir']}", *flags],
                              capture_output=True, text=True, timeout=300)
    out = str(tmp_path / "alexnet_tflite")
    result = export(f"--export_dir={out}", "--quantize=dynamic")
    assert result.returncode == 0, result.stderr
    assert f"exported {os.path.join(out, '1')}" in result.stdout
    assert tflite_runtime.load(out).num_classes == 4
    again = export(f"--export_dir={out}", "--version=1")
    assert again.returncode == 1 and "never overwritten" in _error(again), again.stderr
    empty = tmp_path / "no_validation"
    empty.mkdir()
    for name in ("labels.txt", "stats.npz"):
        os.link(os.path.join(tiny_export["data_dir"], name), empty / name)
    refused = subprocess.run([sys.executable, os.path.join(fx.REPO, "bin", "export"),
                              f"--workdir={tiny_export['workdir']}", "--format=tflite",
                              f"--data_dir={empty}", "--quantize=int8", f"--export_dir={out}"],
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1 and str(empty) in _error(refused), refused.stderr
    assert sorted(os.listdir(out)) == ["1"]


def _error(result):
    """bin/export's one error line (TensorFlow's start-up log lines aside)."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("bin/export: error: ")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_bin_benchmark_tflite(tiny_export):
    """The three models' figures as one JSON line; float32's errors are bin/evaluate's."""
    from keras_alexnet.runs import evaluate as evaluate_lib
    result = subprocess.run(
        [sys.executable, os.path.join(fx.REPO, "bin", "benchmark"), "tflite",
         f"--workdir={tiny_export['workdir']}", "--batch_size=4", "--requests=2", "--steps=1",
         "--rounds=1", "--warmup=1", "--calibration_images=6"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["what"] == "tflite" and line["calibration_images"] == 6
    results = line["results"]
    assert list(results) == ["float32", "dynamic range (int8 weights)",
                             "int8 (weights and activations)"]
    expected = evaluate_lib.evaluate_checkpoint(tiny_export["workdir"], os.path.join(
        tiny_export["data_dir"], "validation-*"), stream=None)
    float32 = results["float32"]
    assert (float32["num_images"], float32["top1_error"], float32["top5_error"]) == \
        (10, round(expected.top1_error, 6), round(expected.top5_error, 6))
    assert float32["top1_agrees_with_float32"] == 1.0
    int8 = results["int8 (weights and activations)"]
    assert int8["float_ops"] == {"LOCAL_RESPONSE_NORMALIZATION": 2}
    for figures in results.values():
        assert figures["num_images"] == 10 and 0 <= figures["top1_agrees_with_float32"] <= 1
        assert figures["p50_ms"] > 0 and figures["p99_ms"] >= figures["p50_ms"]
        assert figures["images_per_sec"] > 0
    assert int8["file_bytes"] < float32["file_bytes"] / 2


def test_bin_benchmark_tflite_needs_a_workdir():
    result = subprocess.run([sys.executable, os.path.join(fx.REPO, "bin", "benchmark"), "tflite"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "benchmark tflite needs --workdir=RUN" in result.stderr


def test_predict_through_litert_ranks_as_the_saved_model(tiny_export, converted, tmp_path):
    """bin/predict --model on a .tflite version (runtimes/litert.py): the SavedModel's top 5."""
    files = [fx.write(str(tmp_path / name), data) for name, data in fx.serving_images().items()]
    for signature in ("serving_default", "ten_crop"):
        expected = predict.predict_files(tiny_export["path"], files, signature)
        for path in (converted["none"], os.path.join(converted["none"], "model.tflite")):
            got = list(predict.predict_paths(runtimes.load_classifier(path, signature), files,
                                             batch_size=3))
            assert [[c for c, _, _, _ in p.top] for p in got] == \
                [[c for c, _, _, _ in p.top] for p in expected]
            np.testing.assert_allclose([[s for *_, s in p.top] for p in got],
                                       [[s for *_, s in p.top] for p in expected], atol=FLOAT_ATOL)


def test_predict_names_a_version_without_its_labels(converted, tmp_path):
    folder = tmp_path / "1"
    folder.mkdir()
    for name in ("model.tflite", "model.tflite.sha256", "metadata.json", "preprocessing.npz"):
        fx.write(str(folder / name), open(os.path.join(converted["none"], name), "rb").read())
    with pytest.raises(ValueError, match="labels.txt, preprocessing.npz\\) are missing") as caught:
        runtimes.load_classifier(str(tmp_path))
    assert str(folder / "model.tflite") in str(caught.value) and "\n" not in str(caught.value)
