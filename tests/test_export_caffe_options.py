"""The export's logits output, and its resize / re-encode following config.input (Caffe's warp)."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import fixtures as fx
from keras_alexnet.data.preprocessing import crop_centre, ten_crops
from keras_alexnet.runs import restore
from keras_alexnet.serving import evaluate, export
from keras_alexnet.serving import preprocessing as prep
from keras_alexnet.training import workdir as workdir_lib


def test_every_signature_returns_the_models_logits(tiny_export):
    loaded = tf.saved_model.load(tiny_export["path"])
    model = tiny_export["model"]
    images = list(fx.serving_images().values())
    centre, squares = fx.reference_inputs(tiny_export["data_dir"], images)
    out = loaded.signatures["serving_default"](image_bytes=tf.constant(images))
    expected = model(centre, training=False).numpy()
    spread = np.ptp(expected)
    np.testing.assert_allclose(out["logits"].numpy(), expected, atol=1e-3 * spread)
    np.testing.assert_allclose(tf.nn.softmax(out["logits"]).numpy(), out["probabilities"].numpy(),
                               atol=1e-6)
    out = loaded.signatures["predict_images"](images=tf.constant(centre))
    np.testing.assert_allclose(out["logits"].numpy(), expected, atol=1e-5 * spread)
    out = loaded.signatures["ten_crop"](image_bytes=tf.constant(images))
    crops = np.stack([ten_crops(s, 67).numpy() for s in squares])
    crop_logits = model(crops.reshape((-1, 67, 67, 3)), training=False).numpy().reshape(
        len(images), 10, -1)
    np.testing.assert_allclose(out["logits"].numpy(), crop_logits.mean(1), atol=1e-3 * spread)
    card = open(os.path.join(tiny_export["path"], "assets.extra", "MODEL_CARD.md")).read()
    assert "`logits` float32 [-1, 4]" in card


def _caffe_input(image_bytes, mean, size=fx.RESIZE, image_size=67):
    """Caffe's test-time input: OpenCV decode, cv::resize to size x size, centre crop, minus mean."""
    import cv2  # opencv-python-headless 4.x: the Caffe import's test dependency (issue 19)
    bgr = cv2.imdecode(np.frombuffer(image_bytes, np.uint8), cv2.IMREAD_COLOR)
    warped = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_LINEAR)[..., ::-1]
    top = (size - image_size) // 2
    crop = slice(top, top + image_size)
    return warped[crop, crop].astype(np.float32) - mean[crop, crop]


def test_warp_without_reencode_is_caffes_preprocessing(tiny_export):
    run = fx.restored_run(tiny_export["model"], tiny_export["data_dir"])
    module = export.ServingModule(run.model, run.mean_image, run.synsets, run.class_names,
                                  jpeg_quality=0, resize="warp")
    mean = run.mean_image.astype(np.float32)
    for name in ("rgb.jpg", "big.jpg", "rgb.png"):
        image = fx.serving_images()[name]
        ours = module.preprocess(tf.constant(image)).numpy()
        # OpenCV's fixed-point bilinear weights: a level or two apart on some pixels.
        difference = np.abs(ours - _caffe_input(image, mean))
        assert difference.max() <= 2 and difference.mean() < 0.2, name
        shorter = export.ServingModule(run.model, run.mean_image, run.synsets, run.class_names,
                                       jpeg_quality=0).preprocess(tf.constant(image)).numpy()
        assert np.abs(shorter - ours).mean() > 1, name  # a 4:3 picture warps otherwise


def test_the_export_follows_the_runs_config(tmp_path):
    data_dir = fx.write_data_dir(str(tmp_path / "data"))
    workdir = str(tmp_path / "run")
    model = fx.write_workdir(workdir, data_dir)
    assert restore.restore_run(workdir).jpeg_quality == 90  # today's: the writer's quality
    config = workdir_lib.read_config(workdir)
    config["input"].update(jpeg_reencode=False, resize="warp")
    json.dump(config, open(os.path.join(workdir, workdir_lib.CONFIG_FILENAME), "w"))
    run = restore.restore_run(workdir)
    assert (run.jpeg_quality, run.resize_mode) == (0, "warp")
    assert restore.restore_run(workdir, resize="shorter_side").resize_mode == "shorter_side"
    path = export.export_from_workdir(workdir, str(tmp_path / "models"), num_warmup_images=0)
    metadata = json.load(open(os.path.join(path, "assets.extra", "metadata.json")))
    assert (metadata["resize_mode"], metadata["jpeg_quality"]) == ("warp", 0)
    assert "ignoring the aspect ratio (Caffe's warp" in open(
        os.path.join(path, "assets.extra", "MODEL_CARD.md")).read()
    image = fx.serving_images()["rgb.jpg"]
    out = tf.saved_model.load(path).signatures["serving_default"](image_bytes=tf.constant([image]))
    expected = model(_caffe_input(image, run.mean_image.astype(np.float32))[None], training=False)
    np.testing.assert_allclose(out["logits"].numpy(), expected.numpy(),
                               atol=0.02 * np.ptp(expected.numpy()))


def test_warp_evaluation_needs_the_original_images(tmp_path):
    data_dir = fx.write_data_dir(str(tmp_path / "data"))  # stored shorter side 80, centre crop
    workdir = str(tmp_path / "run")
    fx.write_workdir(workdir, data_dir)
    pattern = os.path.join(data_dir, "validation-*")
    with pytest.raises(ValueError, match="stored these images shorter side 80 and centre-cropped"):
        evaluate.evaluate_checkpoint(workdir, pattern, resize="warp", stream=None)

    originals = str(tmp_path / "originals")  # --resize 0: the photos as they were
    fx.convert(os.path.join(str(tmp_path / "data-images"), "val"), originals, "validation",
               num_shards=1, resize=0, stats_size=fx.RESIZE, class_names=os.path.join(
                   str(tmp_path / "data-images"), "names.txt"))
    pattern = os.path.join(originals, "validation-*")
    checkpoint = evaluate.evaluate_checkpoint(workdir, pattern, resize="warp", stream=None)
    assert "warped to the stored size" in checkpoint.setting
    config = workdir_lib.read_config(workdir)
    config["input"]["resize"] = "warp"
    json.dump(config, open(os.path.join(workdir, workdir_lib.CONFIG_FILENAME), "w"))
    path = export.export_from_workdir(workdir, str(tmp_path / "models"), num_warmup_images=0)
    exported = evaluate.evaluate_saved_model(path, pattern, stream=None)
    assert (exported.top1_errors, exported.top5_errors) == (checkpoint.top1_errors,
                                                            checkpoint.top5_errors)
    ten = evaluate.evaluate_checkpoint(workdir, pattern, ten_crop=True, stream=None)
    exported_ten = evaluate.evaluate_saved_model(path, pattern, ten_crop=True, stream=None)
    assert "10 patches, warped" in ten.setting and ten.num_images == exported_ten.num_images == 10
    assert (ten.top1_errors, ten.top5_errors) == (exported_ten.top1_errors, exported_ten.top5_errors)
    with pytest.raises(ValueError, match="centre-cropped"):
        evaluate.evaluate_saved_model(path, os.path.join(data_dir, "validation-*"), stream=None)


def test_warp_is_identity_on_a_stored_square():
    square = fx.picture(fx.RESIZE, fx.RESIZE, seed=3)
    np.testing.assert_array_equal(prep.warp(square, fx.RESIZE).numpy(), square)
    assert crop_centre(prep.warp(fx.picture(50, 120), fx.RESIZE), 67).shape == (67, 67, 3)
