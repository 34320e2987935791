"""Soft targets from a teacher model (self-distillation against FER2013's noisy labels; train extra).

FER2013's labels are noisy (people agree with them about 65 % of the time); training on a mix of the
hard label and a trained model's scores for the same image lets the net learn from the teacher's
view of ambiguous faces instead of fitting the noise. Measured once, from stage 3 with stage 3 as
teacher: it did not beat stage 3 (models/README.md), so the shipped recipe does not use it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F


def teacher_targets(score: Callable[[np.ndarray], np.ndarray], images: np.ndarray) -> np.ndarray:
    """float32 N x 7 teacher scores for uint8 N x 48 x 48 crops: the mean of each crop's and its mirror image's.

    score: the teacher, uint8 N x 48 x 48 -> float N x 7 probabilities. The mirror mean makes the
    targets independent of the flips that augmentation draws.
    """
    return ((score(images) + score(images[:, :, ::-1].copy())) / 2.0).astype(np.float32)


def mixed_loss(logits: torch.Tensor, labels: torch.Tensor, soft: torch.Tensor | None, weight: float,
               smoothing: float) -> torch.Tensor:
    """Per-image loss N: (1 - weight) x label-smoothed cross-entropy with labels + weight x cross-entropy with soft.

    logits: float N x 7; labels: int64 N; soft: float N x 7 teacher scores (rows sum to 1) or None.
    """
    hard = F.cross_entropy(logits, labels, reduction="none", label_smoothing=smoothing)
    if soft is None or weight <= 0.0:
        return hard
    return (1.0 - weight) * hard - weight * (soft * F.log_softmax(logits, dim=1)).sum(dim=1)
