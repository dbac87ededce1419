"""Binary classification metrics in plain numpy: no division by zero, undefined values are None."""

from __future__ import annotations

import numpy as np

EPSILON = 1e-7  # Keras' clipping for binary cross-entropy


def roc_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct threshold, from (0, 0) to (1, 1)."""
    y, s = np.asarray(y_true, dtype=float).ravel(), np.asarray(scores, dtype=float).ravel()
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    last_of_ties = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[last_of_ties]
    fps = (last_of_ties + 1) - tps
    positives, negatives = y.sum(), len(y) - y.sum()
    tpr = np.r_[0.0, tps / positives] if positives else np.full(len(tps) + 1, np.nan)
    fpr = np.r_[0.0, fps / negatives] if negatives else np.full(len(fps) + 1, np.nan)
    return fpr, tpr, np.r_[np.inf, s[last_of_ties]]


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve; None when the labels hold only one class (it is undefined)."""
    y = np.asarray(y_true).ravel()
    if len(np.unique(y)) < 2:
        return None
    fpr, tpr, _ = roc_curve(y, scores)
    return float(np.trapezoid(tpr, fpr))


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den else None


def binary_metrics(y_true: np.ndarray, p_dog: np.ndarray, *, threshold: float = 0.5) -> dict:
    """Accuracy, loss, precision, recall, F1 (dog is the positive class), ROC AUC, confusion matrix."""
    y = np.asarray(y_true, dtype=float).ravel()
    p = np.asarray(p_dog, dtype=float).ravel()
    if len(y) != len(p) or not len(y):
        raise ValueError("labels and predictions must be non-empty and of the same length")
    pred = (p > threshold).astype(float)
    tp = int(((pred == 1) & (y == 1)).sum())
    tn = int(((pred == 0) & (y == 0)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    clipped = np.clip(p, EPSILON, 1 - EPSILON)
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    if precision is None or recall is None:
        f1 = None
    else:
        f1 = _ratio(2 * precision * recall, precision + recall) or 0.0
    return {
        "count": len(y),
        "accuracy": (tp + tn) / len(y),
        "loss": float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "roc_auc": roc_auc(y, p),
        # rows: true cat, true dog; columns: predicted cat, predicted dog
        "confusion_matrix": [[tn, fp], [fn, tp]],
    }
