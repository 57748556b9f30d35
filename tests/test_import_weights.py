"""bin/import_weights: a Caffe AlexNet computes what Caffe's network computes, as a run folder.

Caffe's side is OpenCV's Caffe importer (cv2.dnn.readNetFromCaffe, a test dependency) on
the same synthetic files, in both prototxt forms (tests/caffe_fixtures.py).
"""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf

import caffe_fixtures as cf
from fixtures import REPO
from keras_alexnet import model as model_lib
from keras_alexnet import layers as layers_lib
from keras_alexnet.data import layout
from keras_alexnet.runs import restore
from keras_alexnet.training import workdir as workdir_lib
from keras_alexnet.weights import caffe, caffe_import, caffe_net

TOP = (256 - 227) // 2  # Caffe's centre crop of a 256 image, and this project's


def _import(root, **kwargs):
    paths = cf.write_files(os.path.join(root, "caffe"), **kwargs)
    workdir = os.path.join(root, "run")
    caffe_import.import_caffe(**paths, workdir=workdir, stream=None)
    return paths, workdir


def _opencv_fc8(paths, bgr_inputs):
    """fc8 of Caffe's network on [N, 227, 227, 3] BGR inputs (mean already subtracted)."""
    net = cv2.dnn.readNetFromCaffe(paths["prototxt"], paths["caffemodel"])
    net.setInput(np.ascontiguousarray(bgr_inputs.transpose(0, 3, 1, 2), np.float32))
    return net.forward("fc8")


# The current form with Caffe's LRN default (k = 1, as bvlc_alexnet) and an .npy mean; the
# legacy form with k = 2 and a .binaryproto mean. OpenCV 4 ignores `k` and reads `bias`,
# which this importer does not know: the file says both (the same value).
CASES = {"current": dict(form="layer", k=None, mean="npy"),
         "legacy": dict(form="layers", k=2, mean="binaryproto")}


@pytest.fixture(scope="module", params=sorted(CASES))
def imported(request, tmp_path_factory):
    case = CASES[request.param]
    layers = cf.layer_list(k=case["k"])
    if case["k"]:
        layers = [(n, t, b, p.replace(f"k: {case['k']}", f"k: {case['k']} bias: {case['k']}"))
                  for n, t, b, p in layers]
    paths, workdir = _import(str(tmp_path_factory.mktemp(request.param)), form=case["form"],
                             layers=layers, mean=case["mean"])
    return {"paths": paths, "workdir": workdir, "k": case["k"] or 1.0, "form": case["form"],
            "run": restore.restore_run(workdir)}


def test_the_imported_network_computes_caffes_fc8(imported):
    """Photos through both pipelines: BGR minus Caffe's mean vs RGB minus the run's mean image."""
    rng = np.random.default_rng(0)
    photos = rng.integers(0, 256, (3, 256, 256, 3)).astype(np.float32)
    crop = slice(TOP, TOP + 227)
    mean_bgr = cf.mean_bgr().transpose(1, 2, 0)
    caffe_in = (photos[..., ::-1] - mean_bgr)[:, crop, crop]
    ours_in = (photos - imported["run"].mean_image)[:, crop, crop]
    expected = _opencv_fc8(imported["paths"], caffe_in)
    got = imported["run"].model(ours_in.astype(np.float32), training=False).numpy()
    spread = expected.max() - expected.min()
    assert spread > 100
    assert np.abs(got - expected).max() < 1e-4 * spread
    assert np.array_equal(got.argmax(-1), expected.argmax(-1))


def test_the_lrn_bends_and_takes_the_files_settings(imported):
    """The LRN is not an identity on these weights (the comparison above tests it), and the
    config says the file's k, Caffe's alpha / n, across the towers, inverted dropout."""
    model = imported["run"].model
    config = imported["run"].config["model"]
    assert (config["lrn_bias"], config["lrn_alpha"], config["lrn_per_tower"]) == \
        (imported["k"], 2e-5, False)
    assert (config["dropout_scaling"], config["num_classes"], config["width"]) == \
        ("inverted", 10, 0.125)
    probe = tf.keras.Model(model.input, [model_lib.activation_output(model, "conv1"),
                                         model.get_layer("lrn1").output])
    x = np.random.default_rng(1).uniform(-128, 128, (1, 227, 227, 3)).astype(np.float32)
    relu, normalized = (a.numpy() for a in probe(x))
    on = relu > 1
    assert (relu[on] / normalized[on]).max() > 2


def test_one_tower_and_no_dropout_import_too(tmp_path):
    """Any network build_alexnet computes: without `group` (towers=1), without Dropout layers."""
    paths, workdir = _import(str(tmp_path), layers=cf.layer_list(towers=1, dropout=False),
                             blobs=cf.random_blobs(towers=1))
    run = restore.restore_run(workdir)
    assert (run.config["model"]["towers"], run.config["model"]["dropout"]) == (1, 0.0)
    x = np.random.default_rng(5).uniform(-128, 128, (2, 227, 227, 3)).astype(np.float32)
    expected = _opencv_fc8(paths, x[..., ::-1])
    got = run.model(x, training=False).numpy()
    assert np.abs(got - expected).max() < 1e-4 * (expected.max() - expected.min())


@pytest.mark.parametrize("declaration", ["input_layer", "input_dim", "input_shape"])
def test_every_input_declaration_reads(tmp_path, declaration):
    """An Input layer (today's deploy.prototxt), input + input_dim (2014), input + input_shape."""
    text = cf.prototxt(cf.layer_list(), "layer" if declaration == "input_layer" else "layers")
    if declaration == "input_shape":
        text = text.replace("input_dim: 10\ninput_dim: 3\ninput_dim: 227\ninput_dim: 227",
                            "input_shape { dim: 10 dim: 3 dim: 227 dim: 227 }")
        assert "input_shape" in text
    (tmp_path / "deploy.prototxt").write_text(text)
    spec = caffe_net.network_spec(str(tmp_path / "deploy.prototxt"))
    assert spec.blob_shapes == cf.blob_shapes()
    assert spec.form == ("layer" if declaration == "input_layer" else "layers")


def test_sizes_spelled_per_dimension_read_too(tmp_path):
    """kernel_h/kernel_w, stride_h/stride_w, pad_h/pad_w mean what kernel_size, stride, pad do."""
    layers = [(n, t, b, p.replace("kernel_size: 3 stride: 2", "kernel_h: 3 kernel_w: 3 stride_h: 2 "
                                  "stride_w: 2").replace("kernel_size: 5 stride: 1 pad: 2",
                                                         "kernel_h: 5 kernel_w: 5 pad_h: 2 pad_w: 2"))
              for n, t, b, p in cf.layer_list()]
    (tmp_path / "deploy.prototxt").write_text(cf.prototxt(layers))
    assert "kernel_h: 5" in (tmp_path / "deploy.prototxt").read_text()
    assert caffe_net.network_spec(str(tmp_path / "deploy.prototxt")).blob_shapes == cf.blob_shapes()


def test_the_run_folder_is_a_run(imported):
    """What bin/train leaves: config.json, best/ and checkpoints/ with ckpt-0, the labels and
    the mean image in data/, the record of the import in config.json."""
    workdir, run = imported["workdir"], imported["run"]
    assert sorted(os.listdir(workdir)) == ["best", "checkpoints", "config.json", "data",
                                           "metrics.jsonl", "tensorboard"]
    assert [e["event"] for e in workdir_lib.read_events(workdir)] == ["imported"]
    assert os.path.basename(workdir_lib.checkpoint_path(workdir, "best")) == "ckpt-0"
    assert os.path.basename(workdir_lib.checkpoint_path(workdir, "latest")) == "ckpt-0"
    assert run.synsets == cf.WNIDS and run.class_names[3] == "class 3, thing 3"
    assert layout.load_labels(run.data_dir)[0] == (cf.WNIDS[0], "class 0, thing 0")
    np.testing.assert_allclose(run.mean_image[..., 0], cf.mean_bgr()[2], atol=1e-4)  # R = B G R's 2
    assert run.jpeg_quality == 0  # no JPEG re-encode of served images
    record = run.config[workdir_lib.IMPORTED]
    with open(imported["paths"]["caffemodel"], "rb") as f:
        import hashlib
        assert record["caffemodel_sha1"] == hashlib.sha1(f.read()).hexdigest()
    assert record["official_bvlc_alexnet"] is False
    assert (record["jpeg_reencode"], record["resize"], record["prototxt_form"]) == \
        (False, "warp", imported["form"])
    assert run.config["input"]["lighting_std"] == 0.0


def test_a_moved_run_folder_still_restores(imported, tmp_path):
    import shutil
    moved = str(tmp_path / "elsewhere")
    shutil.copytree(imported["workdir"], moved)
    assert restore.restore_run(moved).data_dir == workdir_lib.imported_data_dir(moved)
    assert restore.restore_run(moved, "latest").checkpoint_path.startswith(moved)


def test_the_official_file_is_recognised_by_its_sha1(tmp_path, monkeypatch):
    assert caffe.OFFICIAL_SHA1 == "9116a64c0fbe4459d18f4bb6b56d647b63920377"  # the readme's
    paths = cf.write_files(str(tmp_path / "caffe"))
    _, sha1 = caffe.read_caffemodel(paths["caffemodel"])
    monkeypatch.setattr(caffe, "OFFICIAL_SHA1", sha1)
    config = caffe_import.import_caffe(**paths, workdir=str(tmp_path / "run"), stream=None)
    assert config["imported"]["official_bvlc_alexnet"] is True
    assert config["imported"]["caffemodel_sha1"] == sha1


# -- the conversions, one by one -----------------------------------------------------------------

def _caffe_conv(x_chw, w_oihw, bias, pad=0, stride=1, group=1):
    """Caffe's convolution by its definition, in NumPy: group g reads input slice g."""
    x = np.pad(x_chw, ((0, 0), (pad, pad), (pad, pad)))
    out_c, in_per_group, kh, kw = w_oihw.shape
    side = (x.shape[1] - kh) // stride + 1
    out = np.zeros((out_c, side, side))
    per_group = out_c // group
    for o in range(out_c):
        g = o // per_group
        window = x[g * in_per_group:(g + 1) * in_per_group]
        for y in range(side):
            for xx in range(side):
                patch = window[:, y * stride:y * stride + kh, xx * stride:xx * stride + kw]
                out[o, y, xx] = np.sum(patch * w_oihw[o]) + bias[o]
    return out


def test_oihw_kernels_become_hwio():
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(3, 7, 7)), rng.normal(size=(4, 3, 3, 3)), rng.normal(size=4)
    got = tf.nn.conv2d(x.transpose(1, 2, 0)[None], caffe.conv_kernel(w), 1, "VALID")[0] + b
    np.testing.assert_allclose(got.numpy().transpose(2, 0, 1), _caffe_conv(x, w, b), atol=1e-9)


def test_group_2_becomes_the_two_towers():
    """Caffe's group 2 on [6, in/2, 3, 3] == TowerConv2D with tower_parts' kernels."""
    rng = np.random.default_rng(1)
    x, w, b = rng.normal(size=(4, 6, 6)), rng.normal(size=(6, 2, 3, 3)), rng.normal(size=6)
    layer = layers_lib.TowerConv2D(6, 3, towers=2, activation=None, name="conv2")
    layer.build((None, 6, 6, 4))
    for t, (kernel, bias) in enumerate(caffe.tower_parts(w, b, 2)):
        layer.convs[t].kernel.assign(kernel)
        layer.convs[t].bias.assign(bias)
    got = layer(x.transpose(1, 2, 0)[None].astype(np.float32))[0].numpy().transpose(2, 0, 1)
    np.testing.assert_allclose(got, _caffe_conv(x, w, b, pad=1, group=2), atol=1e-5)
    # Without the split (one convolution over all inputs) it would not be the same function.
    assert not np.allclose(got, _caffe_conv(x, np.concatenate([w, w], 1), b, pad=1), atol=1e-2)


def test_fc6_rows_go_from_chw_to_hwc_order():
    rng = np.random.default_rng(2)
    pool5_hwc = rng.normal(size=(6, 6, 5))
    w = rng.normal(size=(7, 5 * 6 * 6))
    caffe_out = w @ pool5_hwc.transpose(2, 0, 1).reshape(-1)  # Caffe flattens C, H, W
    keras_out = pool5_hwc.reshape(-1) @ caffe.fc6_kernel(w, 5, 6)  # Flatten: H, W, C
    np.testing.assert_allclose(keras_out, caffe_out)
    assert not np.allclose(pool5_hwc.reshape(-1) @ caffe.dense_kernel(w), caffe_out)


def test_conv1_reads_rgb_where_caffe_read_bgr():
    rng = np.random.default_rng(3)
    rgb, w, b = rng.normal(size=(3, 5, 5)), rng.normal(size=(2, 3, 3, 3)), np.zeros(2)
    np.testing.assert_allclose(_caffe_conv(rgb, caffe.bgr_to_rgb_kernel(w), b),
                               _caffe_conv(rgb[::-1], w, b))


def test_the_mean_reads_from_npy_and_binaryproto_as_rgb(tmp_path):
    bgr = cf.mean_bgr()
    np.save(tmp_path / "mean.npy", bgr)
    (tmp_path / "mean.binaryproto").write_bytes(cf.binaryproto_bytes(bgr))
    from_npy = caffe.read_mean(str(tmp_path / "mean.npy"), 227)
    from_proto = caffe.read_mean(str(tmp_path / "mean.binaryproto"), 227)
    assert from_npy.shape == (256, 256, 3)
    np.testing.assert_array_equal(from_npy, bgr.transpose(1, 2, 0)[..., ::-1])
    np.testing.assert_allclose(from_proto, from_npy, rtol=1e-6)


def test_synsets_keep_their_order_into_labels_txt(tmp_path):
    (tmp_path / "s.txt").write_text("n02 second thing\nn01 first, one\n")
    classes = caffe.read_synsets(str(tmp_path / "s.txt"), 2)
    layout.write_labels(str(tmp_path), classes)
    assert layout.load_labels(str(tmp_path)) == [("n02", "second thing"), ("n01", "first, one")]


def test_unpacked_floats_read_too():
    """A blob whose floats are not packed (wire type 5) reads like a packed one."""
    import struct
    values = [1.5, -2.0, 3.25]
    packed = cf.binaryproto_bytes(np.array(values).reshape(1, 1, 3))
    unpacked = bytes([0x08, 1, 0x10, 1, 0x18, 1, 0x20, 3]) + b"".join(
        bytes([0x2D]) + struct.pack("<f", v) for v in values)
    for data in (packed, unpacked):
        np.testing.assert_array_equal(caffe._blob_array(data, "x").ravel(), values)


# -- refusals: one sentence each, nothing written --------------------------------------------------

def _layers_with(old, new):
    return [(n, t, b, p.replace(old, new)) for n, t, b, p in cf.layer_list()]


def _swap_blob(name, shape):
    blobs = cf.random_blobs()
    blobs[name] = (np.zeros(shape, np.float32), blobs[name][1])
    return blobs


REFUSALS = {
    "caffenet": (dict(layers=cf.layer_list(caffenet=True)), "pools before the LRN"),
    "not_alexnet": (dict(layers=cf.layer_list()[:2] + [
        ("conv1_2", "Convolution", "conv1", "convolution_param { num_output: 12 kernel_size: 3 }")
    ] + [(n, t, "conv1_2" if b == "conv1" and n == "norm1" else b, p)
         for n, t, b, p in cf.layer_list()[2:]]),
        r"'conv1_2' \(Convolution\) is not the network build_alexnet computes"),
    "leaky_relu": (dict(layers=cf.layer_list(negative_slope=0.1)), "negative slope"),
    "pool_size": (dict(layers=_layers_with("kernel_size: 3 stride: 2", "kernel_h: 3 kernel_w: 2 "
                                           "stride: 2")), "pooling 'pool1' is not AlexNet's"),
    "lrn_size": (dict(layers=_layers_with("local_size: 5", "local_size: 3")), "local_size 3"),
    "widths": (dict(layers=_layers_with("num_output: 48 kernel_size: 3 stride: 1 pad: 1 }",
                                        "num_output: 40 kernel_size: 3 stride: 1 pad: 1 }")),
               "not one multiple of AlexNet's"),
    "blob_shape": (dict(blobs=_swap_blob("conv3", (48, 30, 3, 3))),
                   r"layer 'conv3''s weights have shape \(48, 30, 3, 3\), the prototxt's network "
                   r"needs \(48, 32, 3, 3\)"),
    "missing_layer": (dict(blobs={k: v for k, v in cf.random_blobs().items() if k != "fc8"}),
                      "has no weights for layer 'fc8'"),
}


def _no_trace(root):
    """Nothing but the inputs in root: no run folder, no hidden temporary."""
    return sorted(os.listdir(root)) == ["caffe"]


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_files_that_are_not_this_network_are_refused(tmp_path, case):
    kwargs, message = REFUSALS[case]
    paths = cf.write_files(str(tmp_path / "caffe"), **kwargs)
    with pytest.raises(caffe_net.CaffeImportError, match=message):
        caffe_import.import_caffe(**paths, workdir=str(tmp_path / "run"), stream=None)
    assert _no_trace(tmp_path)


def test_another_input_size_is_refused(tmp_path):
    paths = cf.write_files(str(tmp_path / "caffe"))
    with open(paths["prototxt"], "w") as f:
        f.write(cf.prototxt(cf.layer_list(), size=224))
    with pytest.raises(caffe_net.CaffeImportError, match=r"input \[10, 3, 224, 224\]; only "
                       r"\[N, 3, 227, 227\] imports"):
        caffe_import.import_caffe(**paths, workdir=str(tmp_path / "run"), stream=None)
    assert _no_trace(tmp_path)


@pytest.mark.parametrize("cut", [0.6, 0.001])
def test_a_truncated_caffemodel_is_refused(tmp_path, cut):
    paths = cf.write_files(str(tmp_path / "caffe"))
    data = open(paths["caffemodel"], "rb").read()
    with open(paths["caffemodel"], "wb") as f:
        f.write(data[:int(len(data) * cut)])
    with pytest.raises(caffe_net.CaffeImportError, match="is truncated or not a Caffe model"):
        caffe_import.import_caffe(**paths, workdir=str(tmp_path / "run"), stream=None)
    assert _no_trace(tmp_path)


def test_a_mean_of_the_wrong_size_and_a_wrong_synsets_count_are_refused(tmp_path):
    paths = cf.write_files(str(tmp_path / "caffe"))
    np.save(str(tmp_path / "caffe" / "small.npy"), cf.mean_bgr(200))
    with pytest.raises(caffe_net.CaffeImportError, match=r"small.npy has shape \(3, 200, 200\)"):
        caffe_import.import_caffe(**dict(paths, mean=str(tmp_path / "caffe" / "small.npy")),
                                  workdir=str(tmp_path / "run"), stream=None)
    (tmp_path / "caffe" / "nine.txt").write_text(cf.synset_text(9))
    with pytest.raises(caffe_net.CaffeImportError, match="names 9 classes; the network's fc8 has 10"):
        caffe_import.import_caffe(**dict(paths, synsets=str(tmp_path / "caffe" / "nine.txt")),
                                  workdir=str(tmp_path / "run"), stream=None)
    assert _no_trace(tmp_path)


def test_a_folder_with_anything_in_it_is_not_written_into(tmp_path):
    paths = cf.write_files(str(tmp_path / "caffe"))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(caffe_net.CaffeImportError, match="exists and is not an empty folder"):
        caffe_import.import_caffe(**paths, workdir=str(tmp_path / "run"), stream=None)
    assert os.listdir(tmp_path / "run") == ["notes.txt"]
    caffe_import.import_caffe(**paths, workdir=str(tmp_path / "empty"), stream=None)
    assert "config.json" in os.listdir(tmp_path / "empty")


# -- the run folder with the project's programs ---------------------------------------------------

@pytest.mark.slow
def test_bin_import_weights_then_bin_evaluate(tmp_path):
    """The command writes the folder; bin/evaluate takes it as a trained run; errors are one line."""
    import fixtures
    widths = dict(cf.WIDTHS, fc8=4)
    paths = cf.write_files(str(tmp_path / "caffe"), widths=widths,
                           classes=list(zip(fixtures.SYNSETS, fixtures.NAMES)))
    data = fixtures.write_data_dir(str(tmp_path / "data"))
    flags = [f"--caffe_prototxt={paths['prototxt']}", f"--caffemodel={paths['caffemodel']}",
             f"--mean={paths['mean']}", f"--synsets={paths['synsets']}"]
    command = [sys.executable, os.path.join(REPO, "bin", "import_weights"), *flags]
    done = subprocess.run(command + [f"--workdir={tmp_path / 'run'}"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert "not BVLC's official file" in done.stdout
    evaluated = subprocess.run(
        [sys.executable, os.path.join(REPO, "bin", "evaluate"), f"--workdir={tmp_path / 'run'}",
         f"--data={data}/validation-*", "--json"], capture_output=True, text=True)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout.strip().splitlines()[-1])["num_images"] == 10
    refused = subprocess.run(command + [f"--workdir={tmp_path / 'run'}"], capture_output=True,
                             text=True)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    errors = [line for line in refused.stderr.splitlines() if "bin/import_weights" in line]
    assert len(errors) == 1 and errors[0].startswith("bin/import_weights: error: --workdir=")


def test_the_export_of_an_import_serves_what_the_model_computes(tmp_path):
    """bin/export's SavedModel on a photo == the Keras model on the same pixels minus the mean."""
    from keras_alexnet.serving import export
    from keras_alexnet.serving import preprocessing as prep
    _, workdir = _import(str(tmp_path), fc8_scale=0.003)
    path = export.export_from_workdir(workdir, str(tmp_path / "models"), num_warmup_images=0)
    loaded = tf.saved_model.load(path)
    photo = tf.io.encode_jpeg(np.random.default_rng(4).integers(0, 256, (256, 256, 3), np.uint8),
                              quality=95).numpy()
    served = loaded.signatures["serving_default"](image_bytes=tf.constant([photo]))
    run = restore.restore_run(workdir)
    pixels = tf.io.decode_jpeg(photo, channels=3, dct_method=prep.DCT_METHOD).numpy()
    patch = (pixels.astype(np.float32) - run.mean_image)[TOP:TOP + 227, TOP:TOP + 227]
    expected = tf.nn.softmax(run.model(patch[None].astype(np.float32), training=False)).numpy()
    assert 0.05 < expected.max() < 0.95  # neither one-hot nor uniform: the comparison means something
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=2e-5)
    assert served["synsets"].numpy()[0, 0].decode() == cf.WNIDS[int(expected.argmax())]
    metadata = json.loads(loaded.metadata_json.numpy())
    assert metadata["config"]["imported"]["caffemodel_sha1"]
