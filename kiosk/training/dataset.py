"""Load a Kaggle-layout expression data set (<split>/<class>/*.jpg) into memory, and carve validation."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from kiosk.errors import KioskError
from kiosk.vision.faces import IMAGE_SUFFIXES
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

    def subset(self, index: np.ndarray) -> "ExpressionData":
        """The rows at index (int array)."""
        return ExpressionData(self.images[index], self.labels[index], [self.paths[i] for i in index])


def class_dirs(root: Path) -> dict[str, Path]:
    """The class folders under root, checked against CLASSES; raises KioskError if none match."""
    root = Path(root)
    if not root.is_dir():
        raise KioskError(f"data folder not found: {root}")
    found = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    unknown = sorted(set(found) - set(CLASSES))
    if unknown:
        raise KioskError(f"{root}: unknown class folder(s) {unknown}; expected some of {list(CLASSES)}")
    if not found:
        raise KioskError(f"{root}: no class folders; expected <class>/*.jpg with classes {list(CLASSES)}")
    return found


def load_split(root: Path, limit_per_class: int | None = None) -> ExpressionData:
    """Read every image under root/<class>/ as a 48x48 preprocessed grey crop."""
    images: list[np.ndarray] = []
    labels: list[int] = []
    paths: list[str] = []
    for name, folder in sorted(class_dirs(root).items()):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if limit_per_class is not None:
            files = files[:limit_per_class]
        for path in files:
            grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if grey is None:
                logger.warning("skipping unreadable image %s", path)
                continue
            images.append(prepare_fer_crop(grey))
            labels.append(CLASSES.index(name))
            paths.append(f"{name}/{path.name}")
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
