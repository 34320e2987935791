"""Classification metrics (numpy only): confusion matrix, accuracy, macro-F1, per-class recall."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Counts = npt.NDArray[np.int64]
# summarise(): {"n": int, "accuracy": float, "macro_f1": float, "recall": {class: float}}.
Summary = dict[str, int | float | dict[str, float]]


def confusion_matrix(truth: npt.ArrayLike, predicted: npt.ArrayLike, n_classes: int) -> Counts:
    """int64 n x n counts; rows are true classes, columns predicted ones."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(truth, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def summarise(matrix: npt.ArrayLike, classes: Sequence[str]) -> Summary:
    """{n, accuracy, macro_f1, recall: {class: r}} from a confusion matrix (classes with no samples skipped)."""
    counts = np.asarray(matrix, dtype=np.float64)
    n = float(counts.sum())
    true_counts = counts.sum(axis=1)
    pred_counts = counts.sum(axis=0)
    diag = np.diag(counts)
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


# z for a two-sided 95% interval.
Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval (low, high) of a proportion successes / n; (0, 1) when n is 0.

    Unlike the normal approximation it stays inside 0..1 and is usable for 0 of n: 0 of 1,000
    gives (0, 0.0038), the honest "below 0.4%" that "0.0%" is not.
    """
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be within 0..{n}, got {successes}")
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    low = 0.0 if successes == 0 else max(0.0, float(centre - half))
    high = 1.0 if successes == n else min(1.0, float(centre + half))
    return low, high
