"""Classification metrics (numpy only): confusion matrix, accuracy, macro-F1, per-class recall."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """int64 n x n counts; rows are true classes, columns predicted ones."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(truth, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def summarise(matrix: np.ndarray, classes: Sequence[str]) -> dict:
    """{n, accuracy, macro_f1, recall: {class: r}} from a confusion matrix (classes with no samples skipped)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    n = float(matrix.sum())
    true_counts = matrix.sum(axis=1)
    pred_counts = matrix.sum(axis=0)
    diag = np.diag(matrix)
    present = true_counts > 0
    recall = np.divide(diag, true_counts, out=np.zeros_like(diag), where=true_counts > 0)
    precision = np.divide(diag, pred_counts, out=np.zeros_like(diag), where=pred_counts > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(diag), where=denom > 0)
    return {
        "n": int(n),
        "accuracy": round(float(diag.sum() / n), 4) if n else 0.0,
        "macro_f1": round(float(f1[present].mean()), 4) if present.any() else 0.0,
        "recall": {c: round(float(r), 4) for c, r, p in zip(classes, recall, present, strict=True) if p},
    }
