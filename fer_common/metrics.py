"""Classification metrics every replication reports, as plain JSON-serialisable values.

Conventions (chosen once here so every replication reports the same way):
- A class the model never predicts has precision 0 (scikit-learn's `zero_division=0`), silently.
- A class absent from `y_true` has recall and F1 `None` (JSON null): they are undefined, and a 0 would
  drag macro-F1 down for a class the test set never asked about. Macro-F1 averages the classes present
  in `y_true` only. Its precision is still recorded (0 if it was predicted, since every such prediction
  is wrong).
- The row of an absent class in the normalised confusion matrix is all zeros (a matrix needs numbers),
  but its flattened `confusion/<class>-><pred>` rates are `None`, like its recall.
- One-vs-rest ROC AUC is `None` when the class is absent or is the only class present (undefined).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

# Keras clips probabilities to [eps, 1 - eps] with eps = 1e-7 before taking the log; match it so our
# loss equals the one Keras reports for the same predictions.
LOSS_EPSILON = 1e-7
ECE_BINS = 15


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion `successes / n` (95% for z = 1.96)."""
    if n <= 0:
        raise ValueError(f"wilson_interval needs n > 0, got n={n}")
    if not 0 <= successes <= n:
        raise ValueError(f"wilson_interval needs 0 <= successes <= n, got successes={successes}, n={n}")
    p = successes / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    # The bounds are exactly 0 and 1 at the ends; the formula leaves float round-off (1e-17) there.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def as_labels(y_true: Sequence[int] | np.ndarray, n_classes: int) -> np.ndarray:
    """Integer labels from integer labels or one-hot rows, checked against the number of classes."""
    y = np.asarray(y_true)
    if y.ndim == 2:
        if y.shape[1] != n_classes:
            raise ValueError(f"one-hot labels have {y.shape[1]} columns, expected {n_classes} classes")
        y = y.argmax(axis=1)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D integers or 2-D one-hot, got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError("labels must be integer class indices")
        y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, got {int(y.min())}..{int(y.max())}")
    return y.astype(np.int64)


def as_probabilities(probabilities: np.ndarray | Sequence[Sequence[float]], n: int, n_classes: int) -> np.ndarray:
    """Float (n, n_classes) probabilities, finite and within [0, 1]."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.shape != (n, n_classes):
        raise ValueError(f"probabilities must have shape ({n}, {n_classes}), got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("probabilities contain NaN or infinity")
    if p.size and (p.min() < -1e-6 or p.max() > 1 + 1e-6):
        raise ValueError("probabilities must lie in [0, 1] (pass softmax outputs, not logits)")
    return np.clip(p, 0.0, 1.0)


def _checked(y_true, probabilities, class_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    if len(class_names) < 2:
        raise ValueError(f"need at least 2 classes, got {list(class_names)}")
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"class names must be unique, got {list(class_names)}")
    y = as_labels(y_true, len(class_names))
    if y.size == 0:
        raise ValueError("cannot compute metrics on an empty test set")
    return y, as_probabilities(probabilities, len(y), len(class_names))


def categorical_cross_entropy(y: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean categorical cross-entropy, probabilities clipped as Keras does."""
    p_true = np.clip(probabilities[np.arange(len(y)), y], LOSS_EPSILON, 1.0 - LOSS_EPSILON)
    return float(-np.mean(np.log(p_true)))


def calibration_bins(y_true, probabilities, n_bins: int = ECE_BINS) -> list[dict]:
    """Equal-width confidence bins (lo, hi]: count, accuracy and mean confidence of each.

    Confidence is the top-class probability; a prediction is correct when its arg-max is the label.
    Empty bins have accuracy and confidence None.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"probabilities must be 2-D, got shape {p.shape}")
    y = as_labels(y_true, p.shape[1])
    p = as_probabilities(p, len(y), p.shape[1])
    confidence = p.max(axis=1)
    correct = p.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # right=True puts a confidence equal to an edge into the bin that edge closes: (lo, hi].
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        mask = index == b
        count = int(mask.sum())
        bins.append(
            {
                "lo": float(edges[b]),
                "hi": float(edges[b + 1]),
                "count": count,
                "accuracy": float(correct[mask].mean()) if count else None,
                "confidence": float(confidence[mask].mean()) if count else None,
            }
        )
    return bins


def expected_calibration_error(y_true, probabilities, n_bins: int = ECE_BINS) -> float:
    """ECE: bin-size-weighted mean |accuracy - confidence| over equal-width confidence bins."""
    return ece_from_bins(calibration_bins(y_true, probabilities, n_bins))


def ece_from_bins(bins: list[dict]) -> float:
    """ECE of bins made by `calibration_bins`."""
    total = sum(b["count"] for b in bins)
    if total == 0:
        raise ValueError("cannot compute ECE on an empty test set")
    gap = sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"])
    return float(gap / total)


def _row_normalised(matrix: np.ndarray) -> np.ndarray:
    sums = matrix.sum(axis=1, keepdims=True).astype(np.float64)
    # Empty rows (class absent from y_true) become zeros rather than NaN.
    return np.divide(matrix, sums, out=np.zeros(matrix.shape, dtype=np.float64), where=sums > 0)


def row_normalised(matrix: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """Each row divided by its sum; all-zero rows stay zero. Idempotent on normalised matrices."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"a confusion matrix must be square, got shape {m.shape}")
    return _row_normalised(m)


def _roc_auc(y: np.ndarray, scores: np.ndarray) -> float | None:
    positives = int(y.sum())
    if positives == 0 or positives == len(y):
        return None  # undefined with a single class present
    return float(roc_auc_score(y, scores))


def classification_report(y_true, probabilities, class_names: Sequence[str]) -> dict:
    """Every per-run metric the replications report, as a JSON-serialisable dict (see module notes)."""
    y, p = _checked(y_true, probabilities, class_names)
    names = list(class_names)
    k = len(names)
    labels = list(range(k))
    y_pred = p.argmax(axis=1)

    precision, recall, f1, support = precision_recall_fscore_support(
        y, y_pred, labels=labels, average=None, zero_division=0
    )
    present = support > 0
    per_class = {}
    for i, name in enumerate(names):
        per_class[name] = {
            "precision": float(precision[i]),
            "recall": float(recall[i]) if present[i] else None,
            "f1": float(f1[i]) if present[i] else None,
            "support": int(support[i]),
        }
    macro_f1 = float(np.mean(f1[present]))

    counts = sk_confusion_matrix(y, y_pred, labels=labels)
    correct = int(np.trace(counts))
    low, high = wilson_interval(correct, len(y))
    predicted = np.bincount(y_pred, minlength=k)
    return {
        "n": int(len(y)),
        "class_names": names,
        "accuracy": correct / len(y),
        "accuracy_ci": [low, high],
        "macro_f1": macro_f1,
        "per_class": per_class,
        "confusion_matrix": counts.astype(int).tolist(),
        "confusion_matrix_normalized": _row_normalised(counts).tolist(),
        "roc_auc": {name: _roc_auc(y == i, p[:, i]) for i, name in enumerate(names)},
        "loss": categorical_cross_entropy(y, p),
        "ece": expected_calibration_error(y, p),
        "predicted": {name: int(predicted[i]) for i, name in enumerate(names)},
    }


def flatten_metrics(report: dict, class_names: Sequence[str]) -> dict[str, float | None]:
    """Scalar metrics keyed as metadata `metric:` names refer to them; undefined ones are None."""
    names = list(class_names)
    missing = [name for name in names if name not in report["per_class"]]
    if missing:
        raise ValueError(f"report has no per-class entry for {missing}")
    flat: dict[str, float | None] = {key: report[key] for key in ("accuracy", "loss", "macro_f1", "ece")}
    for name in names:
        entry = report["per_class"][name]
        flat[f"recall/{name}"] = entry["recall"]
        flat[f"precision/{name}"] = entry["precision"]
        flat[f"f1/{name}"] = entry["f1"]
        flat[f"auc/{name}"] = report["roc_auc"][name]
    matrix = report["confusion_matrix_normalized"]
    for i, true_name in enumerate(names):
        absent = report["per_class"][true_name]["support"] == 0
        for j, pred_name in enumerate(names):
            flat[f"confusion/{true_name}->{pred_name}"] = None if absent else float(matrix[i][j])
    return flat


def _defined(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def summarize(values: Iterable[float | None]) -> dict:
    """Mean and sample sd (ddof=1; 0.0 for one value) over seeds.

    `values` is kept as given, in seed order, with undefined entries (None or NaN) as None; `mean`, `sd`
    and `n` use the defined values only, and mean/sd are None when there are none.
    """
    kept = [float(v) if _defined(v) else None for v in values]
    defined = [v for v in kept if v is not None]
    n = len(defined)
    if n == 0:
        return {"mean": None, "sd": None, "values": kept, "n": 0}
    sd = float(np.std(defined, ddof=1)) if n > 1 else 0.0
    return {"mean": float(np.mean(defined)), "sd": sd, "values": kept, "n": n}
