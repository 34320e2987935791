"""Load a Kaggle-layout expression data set (<split>/<class>/*.jpg) into memory, and carve validation."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from kiosk.errors import KioskError
from kiosk.evaluation.expressions import labelled_images
from kiosk.vision.preprocess import CLASSES, prepare_fer_crop

logger = logging.getLogger(__name__)


@dataclass
class ExpressionData:
    """images: uint8 N x 48 x 48 (preprocessed); labels: int64 N (index into CLASSES); paths: N names."""

    images: np.ndarray
    labels: np.ndarray
    paths: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> ExpressionData:
        """The rows at index (int array)."""
        return ExpressionData(self.images[index], self.labels[index], [self.paths[i] for i in index])


def load_split(root: Path, limit_per_class: int | None = None) -> ExpressionData:
    """Read every image under root/<class>/ (or the first limit_per_class) as a 48x48 preprocessed grey crop."""
    images: list[np.ndarray] = []
    labels: list[int] = []
    paths: list[str] = []
    for path, label in labelled_images(Path(root), limit_per_class):
        grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if grey is None:
            logger.warning("skipping unreadable image %s", path)
            continue
        images.append(prepare_fer_crop(grey.astype(np.uint8, copy=False)))
        labels.append(label)
        paths.append(f"{CLASSES[label]}/{path.name}")
    if not images:
        raise KioskError(f"{root}: no readable images")
    return ExpressionData(np.stack(images), np.asarray(labels, dtype=np.int64), paths)


def split_validation(data: ExpressionData, fraction: float = 0.1, seed: int = 13) -> tuple[ExpressionData, ExpressionData]:
    """Stratified, seeded (train, validation) split of data."""
    rng = np.random.default_rng(seed)
    val_index: list[int] = []
    for label in np.unique(data.labels):
        rows = np.flatnonzero(data.labels == label)
        rng.shuffle(rows)
        val_index.extend(rows[: max(1, int(round(len(rows) * fraction)))].tolist())
    val = np.zeros(len(data), dtype=bool)
    val[val_index] = True
    return data.subset(np.flatnonzero(~val)), data.subset(np.flatnonzero(val))


def class_weights(labels: np.ndarray, power: float = 0.5) -> dict[int, float]:
    """Per-class loss weights (n_max / n_c) ** power, normalised to mean 1; power 0 = unweighted."""
    counts = np.bincount(labels, minlength=len(CLASSES)).astype(np.float64)
    counts[counts == 0] = 1.0
    weights = (counts.max() / counts) ** power
    weights /= weights.mean()
    return {i: float(w) for i, w in enumerate(weights)}
