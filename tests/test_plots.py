"""Every plot writes a non-empty PNG."""

import numpy as np
import pytest

from fer_common.plots import plot_confusion_matrix, plot_reliability, plot_roc_curves, plot_training_curves

CLASSES = ["anger", "happy", "sadness"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def predictions():
    rng = np.random.default_rng(0)
    y = np.array([0, 1, 2] * 10)
    logits = rng.normal(size=(30, 3)) + 2 * np.eye(3)[y]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, probabilities


def _is_png(path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_MAGIC


def test_training_curves(tmp_path):
    history = {
        "loss": [1.2, 0.8, 0.5],
        "val_loss": [1.3, 1.0, 0.9],
        "accuracy": [0.4, 0.6, 0.8],
        "val_accuracy": [0.35, 0.5, 0.6],
    }
    assert _is_png(plot_training_curves(history, tmp_path / "curves.png", "Chen: training curves"))


def test_training_curves_reject_empty_history(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        plot_training_curves({}, tmp_path / "x.png", "empty")


@pytest.mark.parametrize("normalized", [True, False])
def test_confusion_matrix(tmp_path, normalized):
    counts = [[8, 1, 1], [0, 10, 0], [3, 0, 0]]
    path = plot_confusion_matrix(counts, CLASSES, tmp_path / "sub" / "cm.png", "Confusion", normalized=normalized)
    assert _is_png(path)


def test_confusion_matrix_shape_mismatch(tmp_path):
    with pytest.raises(ValueError, match="class names"):
        plot_confusion_matrix([[1, 0], [0, 1]], CLASSES, tmp_path / "cm.png", "bad")


def test_roc_curves_with_absent_class(tmp_path, predictions):
    y, p = predictions
    assert _is_png(plot_roc_curves(y, p, CLASSES, tmp_path / "roc.png", "ROC"))
    only_two = y % 2  # class 2 absent
    assert _is_png(plot_roc_curves(only_two, p, CLASSES, tmp_path / "roc2.png", "ROC, one class absent"))


def test_reliability(tmp_path, predictions):
    y, p = predictions
    assert _is_png(plot_reliability(y, p, tmp_path / "reliability.png", "Reliability"))
