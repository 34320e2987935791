"""`kiosk evaluate expressions`: accuracy, macro-F1 and per-class recall on a <class>/*.jpg folder."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from kiosk.errors import KioskError
from kiosk.evaluation.metrics import confusion_matrix, summarise
from kiosk.vision.expression import TFLiteExpressionClassifier
from kiosk.vision.faces import IMAGE_SUFFIXES, FaceAnalyzer, load_image
from kiosk.vision.preprocess import CLASSES

logger = logging.getLogger(__name__)


def labelled_images(data_dir: Path, limit_per_class: int | None = None) -> list[tuple[Path, int]]:
    """(path, class index) for every image (or the first limit_per_class) under data_dir/<class>/, classes in name order."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise KioskError(f"data folder not found: {data_dir}")
    items: list[tuple[Path, int]] = []
    for folder in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        name = folder.name.lower()
        if name not in CLASSES:
            raise KioskError(f"{folder}: unknown class folder; expected some of {list(CLASSES)}")
        files = [p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
        items += [(p, CLASSES.index(name)) for p in files[:limit_per_class]]
    if not items:
        raise KioskError(f"{data_dir}: no images found in <class>/ folders")
    return items


def evaluate_expressions(
    data_dir: Path,
    classifier: TFLiteExpressionClassifier,
    *,
    faces_cropped: bool = False,
    analyzer: FaceAnalyzer | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """{n, accuracy, macro_f1, no_face, recall, confusion} (JSON-ready); no_face is the fraction with no usable face."""
    items = labelled_images(data_dir)
    truth: list[int] = []
    predicted: list[int] = []
    no_face = 0
    for i, (path, label) in enumerate(items):
        if faces_cropped:
            grey: object = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)  # None when unreadable (not in its stub)
            if grey is None:
                raise KioskError(f"cannot read image {path}")
            scores = classifier.scores_for_fer_image(np.asarray(grey, dtype=np.uint8))
        else:
            if analyzer is None:
                raise ValueError("an analyzer is needed unless faces_cropped")
            image = load_image(path)
            face = analyzer.largest_face(image)
            if face is None:
                no_face += 1
                continue
            scores = classifier.scores_for_face(image, face.landmarks)
        truth.append(label)
        predicted.append(int(np.argmax(scores)))
        if progress and (i + 1) % 500 == 0:
            progress(i + 1, len(items))
    matrix = confusion_matrix(np.asarray(truth), np.asarray(predicted), len(CLASSES))
    summary = summarise(matrix, CLASSES)
    return {"n": summary["n"], "accuracy": summary["accuracy"], "macro_f1": summary["macro_f1"],
            "no_face": round(no_face / len(items), 4), "recall": summary["recall"], "confusion": matrix.tolist()}
