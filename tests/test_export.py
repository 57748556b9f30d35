"""bin/export's library: SavedModel signatures, TF Serving layout, warmup file, errors.

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
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.protobuf import saved_model_pb2

import serving_fixtures as fx
from keras_alexnet.serving import export
from keras_alexnet.serving import restore
from keras_alexnet.data.preprocessing import ten_crops
from keras_alexnet.serving import preprocessing as prep
from keras_alexnet.serving import warmup


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The tiny model exported from memory (the checkpoint round trip is tested below)."""
    root = tmp_path_factory.mktemp("export")
    data_dir = fx.write_data_dir(str(root / "data"))
    model = fx.write_workdir(str(root / "run"), data_dir)
    path = export.export_run(fx.restored_run(model, data_dir), str(root / "models" / "alexnet"))
    return {"root": root, "workdir": str(root / "run"), "data_dir": data_dir, "model": model,
            "export_dir": str(root / "models" / "alexnet"), "path": path}


def test_export_writes_tf_serving_layout(run):
    assert run["path"] == os.path.join(run["export_dir"], "1")
    assert sorted(os.listdir(run["export_dir"])) == ["1"]  # no temporary folder left
    for name in ("saved_model.pb", "variables", "assets.extra/tf_serving_warmup_requests",
                 "assets.extra/labels.txt", "assets.extra/metadata.json"):
        assert os.path.exists(os.path.join(run["path"], name)), name


def _images():
    """Encoded test images: JPEG and PNG, RGB and grayscale, large enough for DCT scaling."""
    return {
        "rgb.jpg": fx.encode(fx.picture(100, 130, seed=1)),
        "rgb.png": fx.encode(fx.picture(97, 85, seed=2), "PNG"),
        "gray.jpg": fx.encode(fx.picture(120, 90, seed=3, channels=1)[..., 0]),
        "gray.png": fx.encode(fx.picture(81, 110, seed=4, channels=1)[..., 0], "PNG"),
        "big.jpg": fx.encode(fx.picture(330, 400, seed=5)),  # decoded at 1/4 scale
        "stored.jpg": fx.encode(fx.picture(fx.RESIZE, fx.RESIZE, seed=6)),
        "alpha.png": fx.encode(_with_alpha(fx.picture(90, 100, seed=7)), "PNG"),
        "palette.gif": fx.encode(fx.picture(84, 96, seed=8), "GIF"),
    }


def _with_alpha(rgb):
    """RGBA with alpha from transparent (left) to opaque (right): composited onto white."""
    alpha = np.broadcast_to(np.linspace(0, 255, rgb.shape[1]).astype(np.uint8), rgb.shape[:2])
    return np.dstack([rgb, alpha])


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
def served(run, tmp_path_factory):
    """The export's outputs, computed in a fresh process that imports only tensorflow."""
    tmp = tmp_path_factory.mktemp("served")
    images = _images()
    rng = np.random.default_rng(0)
    floats = rng.normal(0, 40, (2, 67, 67, 3)).astype(np.float32)
    np.savez(tmp / "inputs.npz", images=np.array(list(images.values()), object), floats=floats,
             truncated=np.frombuffer(images["rgb.jpg"][:300], np.uint8))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    subprocess.run([sys.executable, "-c", FRESH_PROCESS, run["path"], str(tmp / "inputs.npz"),
                    str(tmp / "out.npz")], check=True, cwd=tmp, env=env, timeout=300)
    with np.load(tmp / "out.npz", allow_pickle=True) as f:
        return {"names": list(images), "images": images, "floats": floats, **dict(f)}


def _reference_inputs(run, images):
    """The same preprocessing run eagerly in this process, NumPy for the mean and crops.

    Returns the centre patches and the full mean-subtracted squares (ten crops).
    """
    stats = np.load(os.path.join(run["data_dir"], "stats.npz"))
    mean = stats["mean_image"].astype(np.float32)
    top = (fx.RESIZE - 67) // 2
    centre = [prep.central_patch(b, fx.RESIZE, 67).numpy() - mean[top:top + 67, top:top + 67]
              for b in images]
    squares = [prep.scale_and_center(b, fx.RESIZE).numpy() - mean for b in images]
    return np.stack(centre), squares


def _softmax(logits):
    return tf.nn.softmax(logits).numpy()


def test_fresh_process_needs_only_tensorflow(served):
    assert list(served["modules"]) == []
    # Revived as a plain TensorFlow object, not a Keras model.
    assert str(served["model_type"]).startswith("tensorflow.")


def test_serving_default_matches_keras_model(run, served):
    centre, _ = _reference_inputs(run, served["images"].values())
    np.testing.assert_allclose(served["preprocess_bytes"], centre, atol=1e-3)
    expected = _softmax(run["model"](centre, training=False))
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


def test_ten_crop_averages_the_ten_patches(run, served):
    _, squares = _reference_inputs(run, served["images"].values())
    crops = np.concatenate([ten_crops(s, 67).numpy() for s in squares])
    expected = _softmax(run["model"](crops, training=False)).reshape(len(squares), 10, -1)
    np.testing.assert_allclose(served["ten_crop/probabilities"], expected.mean(1),
                               rtol=1e-4, atol=1e-6)


def test_predict_images_takes_preprocessed_floats(run, served):
    expected = _softmax(run["model"](served["floats"], training=False))
    np.testing.assert_allclose(served["predict_images/probabilities"], expected,
                               rtol=1e-4, atol=1e-6)


def test_serving_matches_make_tfrecords_then_input_pipeline(served):
    """Serving = make_tfrecords' Pillow resize and re-encode, then the reader's decode."""
    from keras_alexnet.data import shard_writer
    from keras_alexnet.data.preprocessing import DCT_METHOD as dct
    for name, data in served["images"].items():
        ours = prep.scale_and_center(data, fx.RESIZE).numpy()
        if name == "stored.jpg":  # already what the writer stores: decoded as the reader does
            np.testing.assert_array_equal(ours, tf.io.decode_jpeg(data, dct_method=dct).numpy())
            continue
        encoded, _, _ = shard_writer.convert_image(data, fx.RESIZE, 90)
        difference = np.abs(ours - tf.io.decode_jpeg(encoded, dct_method=dct).numpy())
        # Off by a level here and there (Pillow's fixed-point weights), never systematically.
        assert difference.mean() < 0.1 and difference.max() <= 12, name


@pytest.mark.parametrize("normalization", ["mean_image", "channel"])
def test_stored_images_preprocess_as_the_input_pipeline(run, normalization):
    """On make_tfrecords' output the export sees exactly what evaluation of the checkpoint sees."""
    from keras_alexnet.data import preprocessing
    stats = restore.stats_lib.load_stats(run["data_dir"])
    mean, std = restore.normalization_arrays(stats, normalization)
    module = export.ServingModule(run["model"], mean, fx.SYNSETS, fx.NAMES, std=std)
    record = tf.constant(fx.encode(fx.picture(fx.RESIZE, fx.RESIZE, seed=9)))
    for ten_crop, ours in ((False, module.preprocess), (True, module.preprocess_ten_crops)):
        expected = preprocessing.preprocess_for_eval(record, stats, image_size=67,
                                                     normalization=normalization,
                                                     ten_crop=ten_crop)
        np.testing.assert_allclose(ours(record).numpy(), expected.numpy(), atol=1e-4)


def test_undecodable_bytes_are_invalid_argument_and_model_stays_usable(served):
    errors = list(served["errors"])
    assert "Input is empty" in errors[0]
    assert "Unknown image file format" in errors[1]
    assert "Invalid JPEG data" in errors[2]
    assert all(e.startswith("InvalidArgumentError") for e in errors)
    np.testing.assert_allclose(served["after_error"], served["serving_default/probabilities"][:1],
                               rtol=1e-5)


def test_saved_model_cli_lists_signatures(run):
    cli = pathlib.Path(sys.executable).with_name("saved_model_cli")
    shown = subprocess.run([str(cli), "show", "--dir", run["path"], "--all"], check=True,
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


def test_graph_has_only_standard_ops_and_no_xla(run):
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString(pathlib.Path(run["path"], "saved_model.pb").read_bytes())
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


def test_versions_increment_and_never_overwrite(run, monkeypatch):
    export_dir = run["export_dir"]
    digest = hashlib.sha256(pathlib.Path(run["path"], "saved_model.pb").read_bytes()).hexdigest()
    os.makedirs(os.path.join(export_dir, ".tmp-7-stale"))  # an interrupted export's leftovers
    restored = fx.restored_run(run["model"], run["data_dir"])
    second = export.export_run(restored, export_dir, num_warmup_images=1)
    assert second == os.path.join(export_dir, "2")
    with pytest.raises(FileExistsError, match="never overwritten"):
        export.export_run(restored, export_dir, version=1)

    def failing_save(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", failing_save)
    with pytest.raises(RuntimeError, match="disk full"):
        export.export_run(restored, export_dir)
    assert sorted(os.listdir(export_dir)) == [".tmp-7-stale", "1", "2"]
    assert hashlib.sha256(pathlib.Path(run["path"], "saved_model.pb").read_bytes()).hexdigest() \
        == digest
    assert export.next_version(export_dir) == 3


def test_export_from_workdir_restores_the_checkpoint(run, tmp_path):
    """bin/export's path: config.json -> build_alexnet -> checkpoint -> SavedModel."""
    path = export.export_from_workdir(run["workdir"], str(tmp_path / "m"), checkpoint="latest",
                                      num_warmup_images=1)
    assert path == str(tmp_path / "m" / "1")
    image = fx.encode(fx.picture(100, 130, seed=1))
    served = tf.saved_model.load(path).signatures["serving_default"](
        image_bytes=tf.constant([image]))["probabilities"].numpy()
    centre, _ = _reference_inputs(run, [image])
    np.testing.assert_allclose(served, _softmax(run["model"](centre, training=False)),
                               rtol=1e-4, atol=1e-6)


def test_restore_restores_every_weight(run):
    restored = restore.restore_run(run["workdir"], "best")
    assert len(restored.model.weights) == len(run["model"].weights)
    for expected, got in zip(run["model"].weights, restored.model.weights):
        np.testing.assert_array_equal(got.numpy(), expected.numpy(), err_msg=got.path)


def test_restore_names_weights_missing_from_the_checkpoint(run, tmp_path):
    model = fx.trained_model()
    tf.train.Checkpoint(model=tf.train.Checkpoint(fc8=model.get_layer("fc8"))).save(
        str(tmp_path / "partial" / "ckpt"))
    with pytest.raises(ValueError, match="conv1/kernel"):
        restore.restore_model(restore.build_model(fx.MODEL_KWARGS), str(tmp_path / "partial" / "ckpt-1"))


def _prediction_log_class():
    """PredictionLog built from tensorflow_serving's field numbers, on TF's TensorProto."""
    f = descriptor_pb2.FileDescriptorProto(name="test_prediction_log.proto",
                                           package="tensorflow.serving", syntax="proto3",
                                           dependency=["tensorflow/core/framework/tensor.proto"])
    T = descriptor_pb2.FieldDescriptorProto
    spec = f.message_type.add(name="ModelSpec")
    spec.field.add(name="name", number=1, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
    spec.field.add(name="signature_name", number=3, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
    request = f.message_type.add(name="PredictRequest")
    request.field.add(name="model_spec", number=1, type=T.TYPE_MESSAGE, label=T.LABEL_OPTIONAL,
                      type_name=".tensorflow.serving.ModelSpec")
    entry = request.nested_type.add(name="InputsEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=T.TYPE_MESSAGE, label=T.LABEL_OPTIONAL,
                    type_name=".tensorflow.TensorProto")
    request.field.add(name="inputs", number=2, type=T.TYPE_MESSAGE, label=T.LABEL_REPEATED,
                      type_name=".tensorflow.serving.PredictRequest.InputsEntry")
    log = f.message_type.add(name="PredictLog")
    log.field.add(name="request", number=1, type=T.TYPE_MESSAGE, label=T.LABEL_OPTIONAL,
                  type_name=".tensorflow.serving.PredictRequest")
    prediction_log = f.message_type.add(name="PredictionLog")
    prediction_log.field.add(name="predict_log", number=6, type=T.TYPE_MESSAGE,
                             label=T.LABEL_OPTIONAL, type_name=".tensorflow.serving.PredictLog")
    pool = descriptor_pool.DescriptorPool()
    for dependency in (tensor_pb2,):  # TensorProto and what it imports
        _add_file(pool, dependency.DESCRIPTOR)
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(
        "tensorflow.serving.PredictionLog"))


def _add_file(pool, file_descriptor):
    for dependency in file_descriptor.dependencies:
        _add_file(pool, dependency)
    try:
        pool.FindFileByName(file_descriptor.name)
    except KeyError:
        proto = descriptor_pb2.FileDescriptorProto()
        file_descriptor.CopyToProto(proto)
        pool.Add(proto)


def test_varint():
    assert warmup._varint(0) == b"\x00"
    assert warmup._varint(1) == b"\x01"
    assert warmup._varint(300) == b"\xac\x02"
    assert warmup._varint(2 ** 35) == b"\x80\x80\x80\x80\x80\x01"
    with pytest.raises(ValueError):
        warmup._varint(-1)


def test_predict_log_wire_format_parses():
    PredictionLog = _prediction_log_class()
    images = np.array([b"\xff\xd8jpeg", b"x" * 300], object)
    log = PredictionLog.FromString(warmup.predict_log({"image_bytes": images, "k": [1.5]},
                                                      "alexnet", "ten_crop"))
    request = log.predict_log.request
    assert request.model_spec.name == "alexnet"
    assert request.model_spec.signature_name == "ten_crop"
    assert sorted(request.inputs) == ["image_bytes", "k"]
    np.testing.assert_array_equal(tf.make_ndarray(request.inputs["image_bytes"]), images)
    np.testing.assert_array_equal(tf.make_ndarray(request.inputs["k"]), [1.5])


def test_warmup_file_parses_and_its_requests_run(run):
    PredictionLog = _prediction_log_class()
    path = os.path.join(run["path"], "assets.extra", "tf_serving_warmup_requests")
    loaded = tf.saved_model.load(run["path"])
    signatures = []
    for record in tf.data.TFRecordDataset(path):
        request = PredictionLog.FromString(record.numpy()).predict_log.request
        name = request.model_spec.signature_name
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        out = loaded.signatures[name](**inputs)
        assert out["probabilities"].shape[0] == next(iter(inputs.values())).shape[0]
        signatures.append((name, int(out["probabilities"].shape[0])))
    assert request.model_spec.name == "alexnet"
    # Real images from the validation shards: one alone and a batch, each signature.
    assert signatures == [("serving_default", 1), ("serving_default", 4), ("ten_crop", 1),
                          ("predict_images", 1)]


def test_metadata_travels_inside_the_saved_model(run):
    loaded = tf.saved_model.load(run["path"])
    metadata = json.loads(loaded.metadata_json.numpy())
    assert metadata["config"]["model"] == fx.MODEL_KWARGS
    assert metadata["resize"] == fx.RESIZE and metadata["image_size"] == 67
    assert [s.decode() for s in loaded.synsets.numpy()] == fx.SYNSETS
    stats = np.load(os.path.join(run["data_dir"], "stats.npz"))
    np.testing.assert_allclose(loaded.mean_image.numpy(), stats["mean_image"], rtol=1e-6)


def test_restore_refuses_a_checkpoint_of_another_model(run, tmp_path):
    config = json.loads(pathlib.Path(run["workdir"], "config.json").read_text())
    config["model"]["fc_units"] = 16
    workdir = tmp_path / "other"
    workdir.mkdir()
    (workdir / "config.json").write_text(json.dumps(config))
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError), match="fc|shape"):
        restore.restore_run(str(workdir), os.path.join(run["workdir"], "best"))
    with pytest.raises(FileNotFoundError, match="checkpoint=latest"):
        restore.restore_run(str(workdir), "best")


def test_serving_benchmark_measures_the_three_systems(run):
    from keras_alexnet.benchmarks import serving as serving_benchmark
    images = list(_images().values())[:3]
    result = serving_benchmark.measure(run["path"], run["model"], images, requests=3, batches=1,
                                       batch_size=4, rounds=2)
    assert sorted(result) == ["keras predict (floats)", "predict_images (floats)",
                              "preprocess_bytes only (JPEG bytes)", "serving_default (JPEG bytes)"]
    for figures in result.values():
        assert len(figures["rounds"]) == 2
        assert 0 < figures["p50_ms"] <= figures["p99_ms"] and figures["images_per_sec"] > 0
