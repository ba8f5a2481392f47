"""Metrics against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from smallvision.models.metrics import classification_metrics, rates
from smallvision.report.collect import most_confused_pairs, pareto_front


def test_rates_from_a_confusion_matrix():
    # 2 classes: class 0 has 3 right and 1 wrong, class 1 has 2 right.
    confusion = np.array([[3, 1], [0, 2]])
    out = rates(confusion)
    assert out["macro_tpr"] == pytest.approx((3 / 4 + 1) / 2)
    assert out["macro_tnr"] == pytest.approx((1 + 3 / 4) / 2)
    assert out["macro_fpr"] == pytest.approx(1 - out["macro_tnr"])


def test_classification_metrics():
    truth = np.array([0, 0, 1, 1, 2, 2])
    scores = np.array([[0.8, 0.1, 0.1], [0.4, 0.5, 0.1], [0.1, 0.8, 0.1],
                       [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]])
    out = classification_metrics(truth, scores, top_k=2)
    assert out["accuracy"] == pytest.approx(5 / 6)
    assert out["balanced_accuracy"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert out["top2_accuracy"] == 1.0
    assert 0.9 < out["roc_auc_ovr"] <= 1.0
    assert "top5_accuracy" not in classification_metrics(truth, scores, top_k=5)  # needs more than 5 classes


def test_auc_skips_classes_absent_from_the_test_set():
    truth = np.array([0, 0, 1, 1])
    scores = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.6, 0.1]])
    assert classification_metrics(truth, scores)["roc_auc_ovr"] == pytest.approx(1.0)


def test_most_confused_pairs_sum_both_directions():
    confusion = {"classes": ["a", "b", "c"], "matrix": [[5, 2, 0], [3, 4, 1], [0, 0, 6]]}
    pairs = most_confused_pairs(confusion, top=5)
    assert pairs.iloc[0].to_dict() == {"class_a": "a", "class_b": "b", "a_as_b": 2, "b_as_a": 3, "total": 5}
    assert len(pairs) == 2


def test_pareto_front():
    import pandas as pd

    frame = pd.DataFrame({"train_seconds": [1, 2, 3, 4], "accuracy": [0.5, 0.9, 0.8, 0.95]})
    assert pareto_front(frame).tolist() == [True, True, False, True]
