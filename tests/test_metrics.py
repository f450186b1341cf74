"""Metrics pinned against values computed by hand on small arrays."""

import json
import math
import warnings

import numpy as np
import pytest

from fer_common.metrics import (
    calibration_bins,
    classification_report,
    expected_calibration_error,
    flatten_metrics,
    row_normalised,
    summarize,
    wilson_interval,
)

CLASSES = ["a", "b", "c", "d"]
# d never occurs in y_true. Predictions (arg-max): a a b b a d -> c never predicted, d predicted once.
Y_TRUE = np.array([0, 0, 0, 1, 1, 2])
PROBS = np.array(
    [
        [0.70, 0.10, 0.10, 0.10],  # a -> a, confidence 0.70, correct
        [0.45, 0.30, 0.15, 0.10],  # a -> a, 0.45, correct
        [0.30, 0.50, 0.10, 0.10],  # a -> b, 0.50, wrong
        [0.10, 0.65, 0.15, 0.10],  # b -> b, 0.65, correct
        [0.50, 0.40, 0.05, 0.05],  # b -> a, 0.50, wrong
        [0.10, 0.10, 0.30, 0.50],  # c -> d, 0.50, wrong
    ]
)


@pytest.fixture(scope="module")
def report():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no UndefinedMetricWarning spam for never-predicted classes
        return classification_report(Y_TRUE, PROBS, CLASSES)


def test_wilson_interval_known_value():
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)


def test_wilson_interval_edges_and_errors():
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(0, 5)[1] == pytest.approx(0.4345, abs=1e-4)
    assert wilson_interval(5, 5)[1] == 1.0
    assert wilson_interval(0, 27)[0] == 0.0  # exactly, not float round-off
    with pytest.raises(ValueError, match="n > 0"):
        wilson_interval(0, 0)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)


def test_accuracy_and_ci(report):
    assert report["n"] == 6
    assert report["accuracy"] == pytest.approx(3 / 6)
    assert report["accuracy_ci"] == pytest.approx(list(wilson_interval(3, 6)))


def test_per_class_precision_recall_f1(report):
    pc = report["per_class"]
    assert pc["a"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    assert pc["b"] == pytest.approx({"precision": 1 / 2, "recall": 1 / 2, "f1": 1 / 2, "support": 2})
    # c is in the test set but never predicted: precision 0, recall 0.
    assert pc["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    # d is absent from the test set: recall and F1 undefined; its one prediction is wrong -> precision 0.
    assert pc["d"] == {"precision": 0.0, "recall": None, "f1": None, "support": 0}


def test_macro_f1_excludes_absent_class(report):
    assert report["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 0.0) / 3)


def test_confusion_matrices(report):
    assert report["confusion_matrix"] == [[2, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]]
    expected = [[2 / 3, 1 / 3, 0, 0], [0.5, 0.5, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]]
    assert np.allclose(report["confusion_matrix_normalized"], expected)


def test_roc_auc_one_vs_rest(report):
    # a: positives 0.70, 0.45, 0.30 vs negatives 0.10, 0.50, 0.10 -> 7 of 9 pairs ranked right.
    assert report["roc_auc"]["a"] == pytest.approx(7 / 9)
    # b: positives 0.65, 0.40 vs negatives 0.10, 0.30, 0.50, 0.10 -> 7 of 8.
    assert report["roc_auc"]["b"] == pytest.approx(7 / 8)
    assert report["roc_auc"]["c"] == pytest.approx(1.0)
    assert report["roc_auc"]["d"] is None


def test_loss_is_mean_cross_entropy(report):
    expected = -np.mean(np.log([0.70, 0.45, 0.30, 0.65, 0.40, 0.30]))
    assert report["loss"] == pytest.approx(expected)


def test_loss_clips_zero_probability():
    report = classification_report([0, 1], [[1.0, 0.0], [1.0, 0.0]], ["x", "y"])
    assert report["loss"] == pytest.approx((-math.log(1 - 1e-7) - math.log(1e-7)) / 2)


def test_ece_15_bins(report):
    # Bins of width 1/15: 0.45 alone (gap 0.55); three 0.50s, all wrong (0.5 each); 0.65 (0.35); 0.70 (0.30).
    assert report["ece"] == pytest.approx((0.55 + 3 * 0.5 + 0.35 + 0.30) / 6)
    bins = calibration_bins(Y_TRUE, PROBS)
    assert len(bins) == 15 and sum(b["count"] for b in bins) == 6
    assert expected_calibration_error(Y_TRUE, PROBS) == pytest.approx(report["ece"])


def test_predicted_counts(report):
    assert report["predicted"] == {"a": 3, "b": 2, "c": 0, "d": 1}


def test_report_is_json_serialisable(report):
    assert json.loads(json.dumps(report, allow_nan=False))["n"] == 6


def test_one_hot_labels_give_same_report(report):
    assert classification_report(np.eye(4)[Y_TRUE], PROBS, CLASSES) == report


def test_single_class_batch():
    r = classification_report([0, 0], [[0.9, 0.1], [0.2, 0.8]], ["x", "y"])
    assert r["accuracy"] == 0.5
    assert r["per_class"]["x"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert r["per_class"]["y"] == {"precision": 0.0, "recall": None, "f1": None, "support": 0}
    assert r["macro_f1"] == pytest.approx(2 / 3)
    assert r["roc_auc"] == {"x": None, "y": None}
    assert r["confusion_matrix_normalized"] == [[0.5, 0.5], [0.0, 0.0]]


def test_flatten_metrics_keys_and_values(report):
    flat = flatten_metrics(report, CLASSES)
    assert flat["accuracy"] == 0.5
    assert flat["loss"] == report["loss"] and flat["ece"] == report["ece"]
    assert flat["macro_f1"] == report["macro_f1"]
    assert flat["recall/a"] == pytest.approx(2 / 3)
    assert flat["precision/c"] == 0.0
    assert flat["f1/b"] == pytest.approx(0.5)
    assert flat["auc/a"] == pytest.approx(7 / 9)
    assert flat["confusion/a->b"] == pytest.approx(1 / 3)
    assert flat["confusion/c->d"] == 1.0
    # Absent class: undefined, not zero.
    assert flat["recall/d"] is None and flat["auc/d"] is None and flat["confusion/d->a"] is None
    assert len(flat) == 4 + 4 * 4 + 4 * 4


def test_invalid_inputs_are_explained():
    with pytest.raises(ValueError, match="shape"):
        classification_report([0, 1], [[0.5, 0.5]], ["x", "y"])
    with pytest.raises(ValueError, match="0..1"):
        classification_report([0, 2], [[0.5, 0.5], [0.5, 0.5]], ["x", "y"])
    with pytest.raises(ValueError, match="logits"):
        classification_report([0, 1], [[3.0, -1.0], [0.5, 0.5]], ["x", "y"])
    with pytest.raises(ValueError, match="empty"):
        classification_report([], np.zeros((0, 2)), ["x", "y"])


def test_row_normalised_is_idempotent():
    m = row_normalised([[2, 2], [0, 0]])
    assert m.tolist() == [[0.5, 0.5], [0.0, 0.0]]
    assert row_normalised(m).tolist() == m.tolist()


def test_summarize():
    s = summarize([0.8, 0.9, 1.0])
    assert s["mean"] == pytest.approx(0.9) and s["sd"] == pytest.approx(0.1) and s["n"] == 3
    assert summarize([0.7]) == {"mean": 0.7, "sd": 0.0, "values": [0.7], "n": 1}
    partial = summarize([0.5, None, float("nan")])
    assert partial == {"mean": 0.5, "sd": 0.0, "values": [0.5, None, None], "n": 1}
    assert summarize([None]) == {"mean": None, "sd": None, "values": [None], "n": 0}
