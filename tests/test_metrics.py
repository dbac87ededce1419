"""Metrics against hand computations, including the degenerate cases."""

import math

import numpy as np
import pytest

from shared.reports.metrics import binary_metrics, roc_auc, roc_curve

Y = [0, 0, 1, 1, 1, 0]
P = [0.2, 0.7, 0.9, 0.4, 0.8, 0.1]


def test_hand_computed_example():
    m = binary_metrics(Y, P)
    assert m["confusion_matrix"] == [[2, 1], [1, 2]]  # tn fp / fn tp
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["roc_auc"] == pytest.approx(8 / 9)  # 8 of the 9 (dog, cat) pairs ranked right
    expected = -np.mean([math.log(0.8), math.log(0.3), math.log(0.9), math.log(0.4), math.log(0.8), math.log(0.9)])
    assert m["loss"] == pytest.approx(expected)
    assert m["count"] == 6


def test_loss_agrees_with_keras():
    from tensorflow import keras

    expected = float(keras.losses.BinaryCrossentropy()(np.array(Y, "float32")[:, None],
                                                       np.array(P, "float32")[:, None]))
    assert binary_metrics(Y, P)["loss"] == pytest.approx(expected, rel=1e-5)


def test_every_prediction_one_class():
    m = binary_metrics(Y, [0.1] * 6)  # always "cat"
    assert m["confusion_matrix"] == [[3, 0], [3, 0]]
    assert m["accuracy"] == 0.5
    assert m["precision"] is None  # no dog predicted: undefined, not a division by zero
    assert m["recall"] == 0.0
    assert m["f1"] is None
    assert m["roc_auc"] == pytest.approx(0.5)  # all tied
    m = binary_metrics(Y, [0.9] * 6)  # always "dog"
    assert m["precision"] == 0.5 and m["recall"] == 1.0 and m["f1"] == pytest.approx(2 / 3)


def test_labels_of_one_class_make_auc_undefined():
    m = binary_metrics([1, 1, 1], [0.2, 0.7, 0.9])
    assert m["roc_auc"] is None
    assert m["precision"] == 1.0 and m["recall"] == pytest.approx(2 / 3)
    assert binary_metrics([0, 0], [0.1, 0.2])["recall"] is None


def test_perfect_and_inverted_rankings():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5


def test_roc_curve_ends():
    fpr, tpr, thresholds = roc_curve(Y, P)
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert thresholds[0] == np.inf


def test_threshold_is_strictly_greater_like_keras():
    assert binary_metrics([1], [0.5])["accuracy"] == 0.0


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError):
        binary_metrics([0, 1], [0.5])
