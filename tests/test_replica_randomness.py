"""Every replica and every worker draws its own random numbers: dropout masks and augmentation.

Under MirroredStrategy and MultiWorkerMirroredStrategy a dropout layer's seed state
is one mirrored variable; masks drawn from it alone were the same on every replica.
The distributed runs happen in fresh child processes (logical devices and
multi-worker collectives must be set up before TensorFlow starts).
"""
import json
import socket

import numpy as np
import pytest
import tensorflow as tf

import fixtures as fx
from keras_alexnet.data import input_pipeline, shard_writer

def _run_dropout(mode, scaling, tmp_path, env=None, index=""):
    out = tmp_path / f"{mode}-{scaling}{index}.json"
    return fx.child("dropout", mode, scaling, out, env=env), out


def _finish(procs):
    outputs = []
    try:
        for proc, _ in procs:
            outputs.append(proc.communicate(timeout=300)[0])
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
    for (proc, _), text in zip(procs, outputs):
        assert proc.returncode == 0, text[-3000:]
    return [json.loads(out.read_text()) for _, out in procs]


def _dropped(replica):
    """bool [B, units]: units fc6 made positive that dropout zeroed."""
    fc6, drop6 = np.asarray(replica["fc6"]), np.asarray(replica["drop6"])
    return (fc6 > 0) & (drop6 == 0)


def _check_masks(replicas_by_step, again, seeked):
    """Masks differ between replicas and steps; a rebuilt model draws the same ones."""
    for step in replicas_by_step:
        fc6 = [np.asarray(r["fc6"]) for r in step]
        for other in fc6[1:]:  # the same inputs and weights on every replica
            np.testing.assert_allclose(other, fc6[0], rtol=1e-5, atol=1e-5)
        masks = [_dropped(r) for r in step]
        active = np.asarray(step[0]["fc6"]) > 0
        for mask in masks:
            assert 0.35 < mask[active].mean() < 0.65  # about half of the active units dropped
        for i in range(len(masks)):
            for j in range(i + 1, len(masks)):
                assert not np.array_equal(masks[i], masks[j]), \
                    f"replicas {i} and {j} drew the same dropout mask"
    assert not np.array_equal(_dropped(replicas_by_step[0][0]), _dropped(replicas_by_step[1][0]))
    for step, step_again in zip(replicas_by_step, again):  # reproducible from the model's seed
        for r, r_again in zip(step, step_again):
            np.testing.assert_array_equal(_dropped(r), _dropped(r_again))
    for r, r_seeked in zip(replicas_by_step[1], seeked[0]):  # seek_dropout(model, 1) = step 1's
        np.testing.assert_array_equal(_dropped(r), _dropped(r_seeked))


@pytest.mark.parametrize("scaling", ["paper", "inverted"])
def test_mirrored_replicas_draw_their_own_dropout_masks(scaling, tmp_path):
    (result,) = _finish([_run_dropout("mirrored", scaling, tmp_path)])
    assert result["replicas"] == 2
    _check_masks(result["first"], result["again"], result["seeked"])


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_multi_worker_workers_draw_their_own_dropout_masks(tmp_path):
    cluster = {"worker": [f"localhost:{_free_port()}" for _ in range(2)]}
    procs = [_run_dropout("multi_worker", "paper", tmp_path, index=str(i), env={
        "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})})
        for i in range(2)]
    results = _finish(procs)
    assert [r["replicas"] for r in results] == [2, 2]
    # One replica a worker: put the two workers' replicas side by side, step by step.
    joined = {key: [results[0][key][s] + results[1][key][s] for s in range(len(results[0][key]))]
              for key in ("first", "again", "seeked")}
    _check_masks(joined["first"], joined["again"], joined["seeked"])


# -- the input pipeline's crops, flips and lighting ----------------------------------------

@pytest.fixture(scope="module")
def same_image_shard(tmp_path_factory):
    """One shard holding the same image 8 times (label i): only the augmentation tells them apart."""
    path = str(tmp_path_factory.mktemp("same") / "train-00000-of-00001")
    image = fx.encode(fx.picture(80, 80, seed=3))
    with tf.io.TFRecordWriter(path) as writer:
        for label in range(8):
            writer.write(shard_writer.make_example({
                "image/encoded": image, "image/format": "JPEG", "image/class/label": label,
                "image/class/synset": "n0", "image/class/text": "x", "image/height": 80,
                "image/width": 80, "image/filename": f"{label}.JPEG"}))
    return path


def _augmented(path, seed, context=None):
    """{label: image} of one pass of the training pipeline (random crop, flip, lighting)."""
    from keras_alexnet.data.stats import DatasetStats
    stats = DatasetStats(np.full((80, 80, 3), 100.0), np.eye(3) * 50.0, np.array([300.0, 50.0, 9.0]),
                         np.eye(3), 1, 1)
    ds = input_pipeline.make_dataset(path, 1, True, stats=stats, image_size=67, seed=seed,
                                     repeat=False, input_context=context, shuffle_buffer=8)
    return {int(label[0]): image[0].numpy() for image, label in ds}


def test_workers_augment_the_same_image_differently(same_image_shard):
    """Two workers given the same config seed draw different crops, flips and lighting."""
    parts = [_augmented(same_image_shard, 7, tf.distribute.InputContext(2, i, 2))
             for i in range(2)]
    assert sorted(parts[0]) != sorted(parts[1]) and len(parts[0]) == len(parts[1]) == 4
    images = [image for part in parts for image in part.values()]
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            assert not np.allclose(images[i], images[j], atol=1.0)
    # Reproducible: the same worker with the same seed draws the same.
    again = _augmented(same_image_shard, 7, tf.distribute.InputContext(2, 1, 2))
    for label, image in parts[1].items():
        np.testing.assert_array_equal(again[label], image)


def test_one_pipeline_gives_each_example_its_own_augmentation(same_image_shard):
    """MirroredStrategy splits one pipeline's batches over its replicas: every example's draw
    is its own, so replicas (and repeats of an image) differ."""
    images = list(_augmented(same_image_shard, 7).values())
    assert len(images) == 8
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            assert not np.allclose(images[i], images[j], atol=1.0)
