"""The shared evaluation operations: top-k hits (ties are misses) and ten-crop probabilities.

The same functions count the errors of training's eval step, bin/evaluate and the
export, so a dead network (all logits equal) is 100% wrong in every one of them.
"""
import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet import evaluation
from keras_alexnet.runs import evaluate
from keras_alexnet.training import steps
from fixtures import tiny_model

NUM_CLASSES = 10  # more than 5: top-5 is not trivially every class


def test_top_k_hits():
    scores = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3], [0.2, 0.3, 0.5]], np.float32)
    assert evaluation.top_k_hits(scores, [1, 2, 0], 1).numpy().tolist() == [True, False, False]
    assert evaluation.top_k_hits(scores, [1, 2, 0], 2).numpy().tolist() == [True, True, False]
    assert evaluation.top_k_hits(scores, [1, 2, 0], 3).numpy().all()
    assert evaluation.top_k_hits(scores, [1, 2, 0], 7).numpy().all()  # k beyond C: every class


def test_ties_are_misses():
    # Label 0 ties with class 1 for first place: not a top-1 hit, but a top-2 hit.
    scores = np.array([[0.4, 0.4, 0.2]], np.float32)
    assert not evaluation.top_k_hits(scores, [0], 1).numpy()[0]
    assert evaluation.top_k_hits(scores, [0], 2).numpy()[0]
    # tf.math.in_top_k, which the train step used before, counts the tie as a hit.
    assert tf.math.in_top_k(tf.constant([0]), scores, 1).numpy()[0]
    nan = np.array([[np.nan, 0.1, 0.2]], np.float32)
    assert not evaluation.top_k_hits(nan, [0], 2).numpy()[0]


def test_all_equal_scores_are_all_errors_in_bin_evaluate():
    uniform = np.full((6, NUM_CLASSES), 1 / NUM_CLASSES, np.float32)
    labels = np.arange(6) % NUM_CLASSES
    assert evaluate.count_errors(uniform, labels) == (6, 6)


def _dead_model():
    """A tiny AlexNet whose fc8 is all zeros: every class gets the same logit."""
    model = tiny_model(num_classes=NUM_CLASSES, fc_units=16, init="glorot", seed=0)
    fc8 = model.get_layer("fc8")
    fc8.kernel.assign(tf.zeros_like(fc8.kernel))
    fc8.bias.assign(tf.zeros_like(fc8.bias))
    return model


@pytest.mark.parametrize("ten_crop", [False, True])
def test_all_equal_logits_are_all_errors_in_the_train_time_eval_step(ten_crop):
    model = _dead_model()
    strategy = tf.distribute.get_strategy()
    rng = np.random.default_rng(0)
    shape = (7, 10, 67, 67, 3) if ten_crop else (7, 67, 67, 3)
    images = rng.normal(0, 50, shape).astype(np.float32)
    labels = (np.arange(7) % NUM_CLASSES).astype(np.int32)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    step = steps.make_eval_step(model, strategy, num_classes=NUM_CLASSES)
    assert steps.evaluate(step, dataset) == (1.0, 1.0, 7)


def test_ten_crop_probabilities_average_the_crops_softmax():
    model = tiny_model(num_classes=4, fc_units=16, init="glorot", seed=1)
    crops = np.random.default_rng(1).normal(0, 50, (2, 10, 67, 67, 3)).astype(np.float32)
    got = evaluation.class_probabilities(lambda x: model(x, training=False), tf.constant(crops))
    each = tf.nn.softmax(model(crops.reshape(-1, 67, 67, 3), training=False)).numpy()
    np.testing.assert_allclose(got.numpy(), each.reshape(2, 10, 4).mean(1), rtol=1e-6, atol=1e-7)
    single = evaluation.class_probabilities(lambda x: model(x, training=False),
                                            tf.constant(crops[:, 0]))
    np.testing.assert_allclose(single.numpy(), each.reshape(2, 10, 4)[:, 0], rtol=1e-6, atol=1e-7)
