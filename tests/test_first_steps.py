"""training/first_steps.py: the per-step probe of layer scales, dead units and softmax stiffness."""
import numpy as np
import pytest

import fixtures
from keras_alexnet.training import first_steps


@pytest.mark.parametrize("classes", [2, 10, 1000])
def test_softmax_stiffness_of_a_uniform_prediction_is_one_over_the_classes(classes):
    assert first_steps.softmax_stiffness(np.full(classes, 1.0 / classes)) == pytest.approx(1 / classes)


def test_softmax_stiffness_of_a_certain_prediction_is_zero():
    assert first_steps.softmax_stiffness([1.0, 0.0, 0.0]) == pytest.approx(0.0, abs=1e-12)


def test_probe_rows_and_stiffness_scale_with_the_learning_rate(data_dir):
    rows = {}
    for lr in (0.01, 0.02):
        config = fixtures.tiny_config(data_dir, {"optimizer.learning_rate": lr,
                                                 "model.init": "paper"})
        rows[lr] = first_steps.run(config, 2, emit=lambda row: None)
    first = rows[0.01][0]
    assert set(first["rms"]) == set(first_steps.PROBED)
    assert 0 <= first["dead6"] <= 1 and 0 <= first["dead7"] <= 1 and 0 <= first["shared7"] <= 1
    assert set(first["update"]) == {"conv1", "conv2/tower0", "conv2/tower1", "conv3",
                                    "conv4/tower0", "conv4/tower1", "conv5/tower0",
                                    "conv5/tower1", "fc6", "fc7", "fc8"}
    # Step 1 starts from the same weights and batch: only the rate differs. The rows round
    # stiffness to 3 decimals: 2 x a rounded value is off by up to 0.001, the other by 0.0005.
    assert rows[0.02][0]["stiffness"] == pytest.approx(2 * first["stiffness"], abs=1.6e-3)
    assert first["stiffness"] > 0


def test_paper_dropout_quarters_the_stiffness_of_inverted_dropout(data_dir):
    stiffness = {}
    for scaling in ("paper", "inverted"):
        config = fixtures.tiny_config(data_dir, {"model.init": "paper", "model.dropout_scaling": scaling})
        stiffness[scaling] = first_steps.run(config, 1, emit=lambda row: None)[0]["stiffness"]
    # fc8's input is h * mask in the paper's dropout and 2 h * mask in inverted dropout.
    assert stiffness["inverted"] == pytest.approx(4 * stiffness["paper"], rel=0.15)
