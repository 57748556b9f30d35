"""serving/export.py: SavedModel signatures, TF Serving layout, versions, standard ops only.

The export is loaded in a fresh Python process that imports TensorFlow only,
as TF Serving would load it, and compared with the in-process Keras model.
"""
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

import fixtures as fx
from keras_alexnet.data.preprocessing import ten_crops
from keras_alexnet.serving import export, export_folder, export_marker


def test_export_writes_tf_serving_layout(tiny_export):
    assert tiny_export["path"] == os.path.join(tiny_export["export_dir"], "1")
    assert sorted(os.listdir(tiny_export["export_dir"])) == ["1"]  # no temporary folder left
    for name in ("saved_model.pb", "variables", "assets.extra/tf_serving_warmup_requests",
                 "assets.extra/labels.txt", "assets.extra/metadata.json",
                 "assets.extra/MODEL_CARD.md"):
        assert os.path.exists(os.path.join(tiny_export["path"], name)), name


FRESH_PROCESS = textwrap.dedent("""
    import sys

    class RefuseProjectImports:  # TF Serving has no keras_alexnet either
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "keras_alexnet":
                raise ImportError("the SavedModel must load without " + name)

    sys.meta_path.insert(0, RefuseProjectImports())
    import numpy as np, tensorflow as tf
    saved_model, inputs, output = sys.argv[1:]
    data = np.load(inputs, allow_pickle=True)
    loaded = tf.saved_model.load(saved_model)
    results = {}
    for name in ("serving_default", "ten_crop"):
        out = loaded.signatures[name](image_bytes=tf.constant(list(data["images"])))
        for key, value in out.items():
            results[name + "/" + key] = value.numpy()
    results["preprocess_bytes"] = loaded.preprocess_bytes(tf.constant(list(data["images"]))).numpy()
    out = loaded.signatures["predict_images"](images=tf.constant(data["floats"]))
    results["predict_images/probabilities"] = out["probabilities"].numpy()
    errors = []
    for bad in (b"", b"not an image at all", bytes(data["truncated"])):
        try:
            loaded.signatures["serving_default"](image_bytes=tf.constant([bad]))
            errors.append("no error")
        except tf.errors.InvalidArgumentError as e:
            errors.append("InvalidArgumentError: " + e.message)
        # The model stays usable after a bad request.
        again = loaded.signatures["serving_default"](image_bytes=tf.constant(list(data["images"][:1])))
        results["after_error"] = again["probabilities"].numpy()
    results["errors"] = np.array(errors, object)
    results["modules"] = np.array(sorted(m for m in sys.modules if m.startswith("keras_alexnet")), object)
    results["model_type"] = np.array(type(loaded.model).__module__)
    np.savez(output, **results)
""")


@pytest.fixture(scope="module")
def served(tiny_export, tmp_path_factory):
    """The export's outputs, computed in a fresh process that imports only tensorflow."""
    tmp = tmp_path_factory.mktemp("served")
    images = fx.serving_images()
    rng = np.random.default_rng(0)
    floats = rng.normal(0, 40, (2, 67, 67, 3)).astype(np.float32)
    np.savez(tmp / "inputs.npz", images=np.array(list(images.values()), object), floats=floats,
             truncated=np.frombuffer(images["rgb.jpg"][:300], np.uint8))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    subprocess.run([sys.executable, "-c", FRESH_PROCESS, tiny_export["path"], str(tmp / "inputs.npz"),
                    str(tmp / "out.npz")], check=True, cwd=tmp, env=env, timeout=300)
    with np.load(tmp / "out.npz", allow_pickle=True) as f:
        return {"names": list(images), "images": images, "floats": floats, **dict(f)}


def _softmax(logits):
    return tf.nn.softmax(logits).numpy()


def test_fresh_process_needs_only_tensorflow(served):
    assert list(served["modules"]) == []
    # Revived as a plain TensorFlow object, not a Keras model.
    assert str(served["model_type"]).startswith("tensorflow.")


def test_serving_default_matches_keras_model(tiny_export, served):
    centre, _ = fx.reference_inputs(tiny_export["data_dir"], served["images"].values())
    np.testing.assert_allclose(served["preprocess_bytes"], centre, atol=1e-3)
    expected = _softmax(tiny_export["model"](centre, training=False))
    probabilities = served["serving_default/probabilities"]
    assert probabilities.shape == (len(served["names"]), fx.MODEL_KWARGS["num_classes"])
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities, expected, rtol=1e-4, atol=1e-6)
    # Far from uniform, so the comparison above could fail.
    assert np.ptp(probabilities, axis=1).min() > 0.05
    assert np.ptp(probabilities[:, 0]) > 0.01  # and the images differ


def test_top5_outputs_are_consistent(served):
    probabilities = served["serving_default/probabilities"]
    classes = served["serving_default/classes"]
    assert classes.dtype == np.int32 and classes.shape == (len(served["names"]), 4)  # 4 classes
    np.testing.assert_array_equal(classes, np.argsort(-probabilities, axis=1))
    np.testing.assert_allclose(served["serving_default/scores"],
                               np.take_along_axis(probabilities, classes, 1))
    synsets = served["serving_default/synsets"]
    names = served["serving_default/class_names"]
    for i, row in enumerate(classes):
        assert [s.decode() for s in synsets[i]] == [fx.SYNSETS[c] for c in row]
        assert [n.decode() for n in names[i]] == [fx.NAMES[c] for c in row]


def test_ten_crop_averages_the_ten_patches(tiny_export, served):
    _, squares = fx.reference_inputs(tiny_export["data_dir"], served["images"].values())
    crops = np.concatenate([ten_crops(s, 67).numpy() for s in squares])
    expected = _softmax(tiny_export["model"](crops, training=False)).reshape(len(squares), 10, -1)
    np.testing.assert_allclose(served["ten_crop/probabilities"], expected.mean(1),
                               rtol=1e-4, atol=1e-6)


def test_predict_images_takes_preprocessed_floats(tiny_export, served):
    expected = _softmax(tiny_export["model"](served["floats"], training=False))
    np.testing.assert_allclose(served["predict_images/probabilities"], expected,
                               rtol=1e-4, atol=1e-6)


def test_undecodable_bytes_are_invalid_argument_and_model_stays_usable(served):
    errors = list(served["errors"])
    assert "image_bytes[0] is empty (0 bytes)" in errors[0]  # the request's index (check_request)
    assert "image_bytes[0] is not an image" in errors[1]
    assert "image_bytes[0] is a damaged JPEG (its data is truncated or corrupt)" in errors[2]
    assert all(e.startswith("InvalidArgumentError") for e in errors)
    np.testing.assert_allclose(served["after_error"], served["serving_default/probabilities"][:1],
                               rtol=1e-5)


def test_saved_model_cli_lists_signatures(tiny_export):
    cli = pathlib.Path(sys.executable).with_name("saved_model_cli")
    shown = subprocess.run([str(cli), "show", "--dir", tiny_export["path"], "--all"], check=True,
                           capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")).stdout
    blocks = {b.split("'")[0]: b for b in shown.split("signature_def['")[1:]}
    assert {"serving_default", "predict_images", "ten_crop"} <= set(blocks)

    def tensor(block, kind, key, dtype, shape):
        entry = block.split(f"{kind}['{key}'] tensor_info:")[1]
        assert f"dtype: {dtype}" in entry.split("name:")[0], (key, entry[:120])
        assert f"shape: {shape}" in entry.split("name:")[0], (key, entry[:120])

    for name in ("serving_default", "ten_crop"):
        tensor(blocks[name], "inputs", "image_bytes", "DT_STRING", "(-1)")
    tensor(blocks["predict_images"], "inputs", "images", "DT_FLOAT", "(-1, 67, 67, 3)")
    for block in (blocks["serving_default"], blocks["predict_images"], blocks["ten_crop"]):
        tensor(block, "outputs", "probabilities", "DT_FLOAT", "(-1, 4)")
        tensor(block, "outputs", "classes", "DT_INT32", "(-1, 4)")
        tensor(block, "outputs", "scores", "DT_FLOAT", "(-1, 4)")
        tensor(block, "outputs", "synsets", "DT_STRING", "(-1, 4)")
        tensor(block, "outputs", "class_names", "DT_STRING", "(-1, 4)")


def test_graph_has_only_standard_ops_and_no_xla(tiny_export):
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString(pathlib.Path(tiny_export["path"], "saved_model.pb").read_bytes())
    ops, attrs = set(), set()
    for graph in proto.meta_graphs:
        nodes = list(graph.graph_def.node)
        for function in graph.graph_def.library.function:
            nodes += list(function.node_def)
            attrs |= set(function.attr)
        for node in nodes:
            ops.add(node.op)
            attrs |= set(node.attr)
    assert {"Conv2D", "LRN", "DecodeJpeg", "Softmax"} <= ops
    assert not [op for op in ops if "xla" in op.lower()]
    assert not [a for a in attrs if "xla" in a.lower()]
    registered = set(dir(tf.raw_ops))
    functions = {f.signature.name for g in proto.meta_graphs for f in g.graph_def.library.function}
    assert ops - registered - functions == set()  # no custom op


def test_versions_increment_and_never_overwrite(tiny_export, monkeypatch):
    export_dir = tiny_export["export_dir"]
    digest = hashlib.sha256(pathlib.Path(tiny_export["path"], "saved_model.pb").read_bytes()).hexdigest()
    os.makedirs(os.path.join(export_dir, ".tmp-7-stale"))  # an interrupted export's leftovers
    export_marker.mark(os.path.join(export_dir, ".tmp-7-stale"))
    restored = fx.restored_run(tiny_export["model"], tiny_export["data_dir"])
    second = export.export_run(restored, export_dir, num_warmup_images=1)
    assert second == os.path.join(export_dir, "2")
    with pytest.raises(FileExistsError, match="never overwritten"):
        export.export_run(restored, export_dir, version=1)

    def failing_save(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", failing_save)
    with pytest.raises(RuntimeError, match="disk full"):
        export.export_run(restored, export_dir)
    # The killed export's folder went with the next export; this failed one removed its own.
    assert sorted(os.listdir(export_dir)) == ["1", "2"]
    assert hashlib.sha256(pathlib.Path(tiny_export["path"], "saved_model.pb").read_bytes()).hexdigest() \
        == digest
    assert export_folder.next_version(export_dir) == 3


def test_metadata_travels_inside_the_saved_model(tiny_export):
    loaded = tf.saved_model.load(tiny_export["path"])
    metadata = json.loads(loaded.metadata_json.numpy())
    assert metadata["config"]["model"] == fx.MODEL_KWARGS
    assert metadata["resize"] == fx.RESIZE and metadata["image_size"] == 67
    assert [s.decode() for s in loaded.synsets.numpy()] == fx.SYNSETS
    stats = np.load(os.path.join(tiny_export["data_dir"], "stats.npz"))
    np.testing.assert_allclose(loaded.mean_image.numpy(), stats["mean_image"], rtol=1e-6)


def test_a_killed_exports_temporary_folder_is_removed_by_the_next_not_a_live_ones(tmp_path):
    from keras_alexnet import locking
    export_dir = str(tmp_path / "models")
    abandoned = os.path.join(export_dir, ".tmp-3-0badc0de")  # its export was killed (kill -9)
    live = os.path.join(export_dir, ".tmp-4-00c0ffee")  # an export still writing
    os.makedirs(os.path.join(abandoned, "variables"))
    os.makedirs(live)
    for folder in (abandoned, live):
        export_marker.mark(folder)
    held = locking.hold_folder(live)
    try:
        assert export.remove_abandoned_temporaries(export_dir) == [abandoned]
        assert sorted(os.listdir(export_dir)) == [".tmp-4-00c0ffee"]
    finally:
        held.release()


def test_an_export_deletes_no_tmp_folder_it_cannot_prove_it_wrote(tmp_path, caplog):
    export_dir = tmp_path / "models"
    users = export_dir / ".tmp-important"  # a user's folder that happens to have the prefix
    users.mkdir(parents=True)
    (users / "thesis.tex").write_text("years of work")
    forged = export_dir / ".tmp-5-cafecafe"  # the marker's name, not its text
    forged.mkdir()
    (forged / export_marker.MARKER_FILENAME).write_text("something else")
    (forged / "data").write_text("keep")
    elsewhere = tmp_path / "elsewhere"  # a marked folder reached through a symlink
    elsewhere.mkdir()
    export_marker.mark(str(elsewhere))
    (elsewhere / "data").write_text("keep")
    os.symlink(elsewhere, export_dir / ".tmp-6-linked")
    killed = export_dir / ".tmp-7-0badc0de"  # what a killed export leaves
    killed.mkdir()
    export_marker.mark(str(killed))
    assert export.remove_abandoned_temporaries(str(export_dir)) == [str(killed)]
    assert (users / "thesis.tex").read_text() == "years of work"
    assert (forged / "data").exists() and (elsewhere / "data").exists()
    assert (export_dir / ".tmp-6-linked").is_symlink()
    assert "left" in caplog.text and ".tmp-important alone" in caplog.text


def test_a_finished_version_carries_no_marker(tiny_export):
    assert not os.path.exists(os.path.join(tiny_export["path"], export_marker.MARKER_FILENAME))


def test_a_bad_image_in_a_batch_request_is_named_by_its_index(tiny_export):
    serve = tf.saved_model.load(tiny_export["path"]).signatures["serving_default"]
    good = fx.encode(fx.picture(90, 100, seed=1))
    for bad, message in ((b"", r"image_bytes\[2\] is empty"),
                         (b"this is not an image", r"image_bytes\[2\] is not an image")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            serve(image_bytes=tf.constant([good, good, bad, good]))
    assert serve(image_bytes=tf.constant([good]))["probabilities"].shape == (1, 4)


def test_a_truncated_jpeg_in_a_batch_request_is_named_by_its_index(tiny_export):
    loaded = tf.saved_model.load(tiny_export["path"])
    good = fx.encode(fx.picture(90, 100, seed=1))
    truncated = fx.encode(fx.picture(120, 90, seed=2))[:600]  # header whole, data cut short
    garbled = bytearray(fx.encode(fx.picture(120, 90, seed=3)))
    garbled[-200:] = b"\xff" * 200
    for name in ("serving_default", "ten_crop"):
        for bad in (truncated, bytes(garbled)):
            with pytest.raises(tf.errors.InvalidArgumentError,
                               match=r"image_bytes\[2\] is a damaged JPEG"):
                loaded.signatures[name](image_bytes=tf.constant([good, good, bad, good]))
    # JPEGs of every kind the converter reads still go through the check.
    import io
    from PIL import Image
    kinds = []
    for mode, options in (("RGB", {"progressive": True}), ("L", {}), ("CMYK", {})):
        buffer = io.BytesIO()
        Image.fromarray(fx.picture(80, 70, seed=4)).convert(mode).save(buffer, "JPEG", **options)
        kinds.append(buffer.getvalue())
    out = loaded.signatures["serving_default"](image_bytes=tf.constant([good, *kinds]))
    assert out["probabilities"].shape == (4, 4)


def test_an_empty_request_batch_gives_an_empty_result(tiny_export):
    loaded = tf.saved_model.load(tiny_export["path"])
    for name in ("serving_default", "ten_crop"):
        out = loaded.signatures[name](image_bytes=tf.constant([], tf.string))
        assert out["probabilities"].shape == (0, 4) and out["class_names"].shape == (0, 4)
    out = loaded.signatures["predict_images"](images=tf.zeros([0, 67, 67, 3]))
    assert out["logits"].shape == (0, 4) and out["classes"].shape == (0, 4)


def test_an_export_dir_under_a_file_is_a_sentence(tiny_export, tmp_path):
    (tmp_path / "file").write_text("x")
    restored = fx.restored_run(tiny_export["model"], tiny_export["data_dir"])
    with pytest.raises(FileExistsError, match="file is a file, not a folder"):
        export.export_run(restored, str(tmp_path / "file" / "models"), num_warmup_images=0)


def test_model_card_says_what_the_model_is(tiny_export, tmp_path):
    workdir = tiny_export["workdir"]
    # The trainer's events: epoch 1 is the checkpoint write_workdir saved (ckpt-1), epoch 2 the best.
    events = [{"event": "train", "step": 1, "loss": 1.2},
              {"event": "eval", "step": 1, "epoch": 1, "top1_error": 0.5, "top5_error": 0.1,
               "num_images": 10},
              {"event": "eval", "step": 2, "epoch": 2, "top1_error": 0.25, "top5_error": 0.01,
               "num_images": 10},
              {"event": "final", "step": 2, "split": "validation", "centre_top1_error": 0.3,
               "centre_top5_error": 0.05, "ten_crop_top1_error": 0.2, "ten_crop_top5_error": 0.0,
               "num_images": 10}]
    with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
        f.write("".join(json.dumps(e) + "\n" for e in events) + '{"event": "eval", "st')  # cut short
    export_dir = str(tmp_path / "models" / "resnet_not")
    path = export.export_from_workdir(workdir, export_dir, num_warmup_images=1)
    card = pathlib.Path(path, "assets.extra", "MODEL_CARD.md").read_text()
    assert card.startswith("# resnet_not, version 1: AlexNet (4 classes)\n")
    assert "ckpt-1` (step 1)" in card and f"Training workdir: `{workdir}`" in card
    # Trained on: the data folder's splits, as make_tfrecords wrote them.
    assert f"Data folder: `{tiny_export['data_dir']}` (4 classes)" in card
    assert "- `validation`: 10 images, converted by make_tfrecords from imagefolder" in card
    assert "- `train`: 8 images" in card
    # The errors the run reached, from metrics.jsonl.
    assert "| end of training (step 2), validation, 1 patch (centre) | 10 | 30.00% | 5.00% |" in card
    assert "| end of training (step 2), validation, 10 patches | 10 | 20.00% | 0.00% |" in card
    assert "| best epoch 2 (step 2), validation, 1 patch (centre) | 10 | 25.00% | 1.00% |" in card
    assert "| epoch 1 (step 1, **this export**), validation, 1 patch (centre) | 10 | 50.00% |" in card
    # Preprocessing, signatures with names, dtypes and shapes, labels, config, serving.
    assert f"shorter side to {fx.RESIZE} px, central {fx.RESIZE}x{fx.RESIZE}" in card
    assert "mean image" in card and "central 67x67 patch" in card
    assert ("| `serving_default` | `image_bytes` string [-1] | `class_names` string [-1, 4], "
            "`classes` int32 [-1, 4], `logits` float32 [-1, 4], `probabilities` float32 [-1, 4], "
            "`scores` float32 [-1, 4], "
            "`synsets` string [-1, 4] |") in card
    assert "| `predict_images` | `images` float32 [-1, 67, 67, 3] |" in card
    assert "| `ten_crop` | `image_bytes` string [-1] |" in card
    assert f"0. `{fx.SYNSETS[0]}` {fx.NAMES[0]}" in card and f"3. `{fx.SYNSETS[3]}`" in card
    assert "| `model.image_size` | `67` |" in card and "| `model.width` | `0.125` |" in card
    assert "| `batch_size` | `128` |" in card
    assert (f"--mount type=bind,source={os.path.abspath(export_dir)},target=/models/resnet_not"
            in card)
    assert "-e MODEL_NAME=resnet_not tensorflow/serving" in card
    assert "bin/predict --server=localhost:8500 --model_name=resnet_not photo.jpg" in card
    assert f"bin/predict --saved_model={os.path.join(os.path.abspath(export_dir), '1')}" in card


def test_model_card_without_a_workdir(tiny_export):
    card = pathlib.Path(tiny_export["path"], "assets.extra", "MODEL_CARD.md").read_text()
    assert "Not recorded (no metrics.jsonl in the training workdir)." in card
    assert "Training workdir: not recorded" in card
    assert "| `serving_default` | `image_bytes` string [-1] |" in card


def test_the_model_cards_serving_commands_survive_a_shell(tmp_path):
    """A path with spaces stays one argument; one with $(...) or backquotes runs nothing."""
    from keras_alexnet.serving import model_card
    export_dir = str(tmp_path / "my models $(touch pwned) `touch pwned2` it's, \"x\"")
    version_dir = os.path.join(export_dir, "3")
    lines = model_card.serving_commands("alex net", export_dir, version_dir)
    script = "\n".join(lines).replace("docker run", "printf '<%s>\\n'")
    script = script.replace("bin/predict", "printf '<%s>\\n'").replace("tensorflow/serving", "")
    script = "\n".join(line.split("   #")[0] for line in script.splitlines())
    out = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout
    assert not list(tmp_path.glob("pwned*"))
    assert f"<--saved_model={version_dir}>" in out.splitlines()
    assert "<--model_name=alex net>" in out.splitlines() and "<MODEL_NAME=alex net>" in out
    mount = next(line for line in out.splitlines() if line.startswith("<type=bind"))[1:-1]
    import csv
    fields = next(csv.reader([mount]))
    assert fields == ["type=bind", f"source={export_dir}", "target=/models/alex net"]
