"""`kiosk train expressions`: train, export int8, evaluate float vs int8, write the report (train extra)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from kiosk.evaluation.metrics import confusion_matrix, summarise
from kiosk.training.dataset import ExpressionData, load_split
from kiosk.training.export import export_int8
from kiosk.training.model import keras_twin
from kiosk.training.train import TrainConfig, train, validation_data
from kiosk.training.warm_start import read_tflite_layers
from kiosk.vision.expression import TFLiteExpressionClassifier
from kiosk.vision.preprocess import CLASSES
from kiosk.vision.runtime import sha256_of

logger = logging.getLogger(__name__)


def float_scores(model, data: ExpressionData) -> np.ndarray:
    """Keras model probabilities float32 N x 7 for preprocessed uint8 N x 48 x 48 crops."""
    return np.asarray(model.predict(data.images[..., None].astype(np.float32), batch_size=256, verbose=0))


def int8_scores(classifier: TFLiteExpressionClassifier, data: ExpressionData) -> tuple[np.ndarray, float]:
    """(int8 model probabilities N x 7, mean milliseconds per face)."""
    started = time.perf_counter()
    scores = np.stack([classifier.scores_for_crop(crop) for crop in data.images])
    return scores, 1000.0 * (time.perf_counter() - started) / max(1, len(data))


def draw_confusion(matrix: np.ndarray, path: Path, title: str) -> Path:
    """Row-normalised confusion matrix as a PNG (rows true, columns predicted)."""
    n = len(CLASSES)
    cell, left, top = 70, 110, 60
    image = np.full((top + cell * n + 90, left + cell * n + 20, 3), 255, np.uint8)
    rows = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(image, title, (10, 30), font, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    for i in range(n):
        for j in range(n):
            shade = int(255 - 200 * rows[i, j])
            x, y = left + j * cell, top + i * cell
            cv2.rectangle(image, (x, y), (x + cell - 2, y + cell - 2), (shade, shade, 255), -1)
            colour = (255, 255, 255) if rows[i, j] > 0.6 else (0, 0, 0)
            cv2.putText(image, f"{rows[i, j]:.2f}", (x + 12, y + 40), font, 0.5, colour, 1, cv2.LINE_AA)
        cv2.putText(image, CLASSES[i], (8, top + i * cell + 40), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(image, CLASSES[i][:7], (left + i * cell + 4, top + n * cell + 25), font, 0.45,
                    (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, "rows: true class, columns: predicted", (left, top + n * cell + 60), font, 0.5,
                (80, 80, 80), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), image)
    return path


def _figures(scores: np.ndarray, labels: np.ndarray) -> tuple[dict, np.ndarray]:
    matrix = confusion_matrix(labels, scores.argmax(axis=1), len(CLASSES))
    return summarise(matrix, CLASSES), matrix


def evaluation_report(model, tflite_path: Path, data: ExpressionData, name: str, out_dir: Path) -> dict:
    """Float and int8 figures on data, their agreement, and the int8 confusion matrix PNG."""
    classifier = TFLiteExpressionClassifier(tflite_path)
    f_scores = float_scores(model, data)
    q_scores, ms = int8_scores(classifier, data)
    m_scores, m_ms = int8_scores(TFLiteExpressionClassifier(tflite_path, mirror=True), data)
    f_fig, _ = _figures(f_scores, data.labels)
    q_fig, q_matrix = _figures(q_scores, data.labels)
    m_fig, m_matrix = _figures(m_scores, data.labels)
    draw_confusion(m_matrix, out_dir / f"confusion_{name}_mirror.png",
                   f"int8 model + mirror on {name} (n={len(data)})")
    png = draw_confusion(q_matrix, out_dir / f"confusion_{name}.png", f"int8 model on {name} (n={len(data)})")
    return {
        "float": f_fig,
        "int8": q_fig,
        "int8_mirror": m_fig | {"ms_per_face": round(m_ms, 3)},
        "agreement": round(float((f_scores.argmax(1) == q_scores.argmax(1)).mean()), 4),
        "int8_ms_per_face": round(ms, 3),
        "confusion_png": png.name,
        "confusion": q_matrix.tolist(),
    }


def train_and_export(data_dir: Path, out_path: Path, *, work_dir: Path | None = None, epochs: int | None = None,
                     limit_per_class: int | None = None, test_dir: Path | None = None,
                     init_from: Path | None = None, learning_rate: float | None = None,
                     distill_from: Path | None = None, distill_weight: float | None = None,
                     erase_prob: float | None = None) -> dict:
    """Train (resumable in work_dir), export int8 to out_path, write out_path.stem + '.report.json'.

    init_from: an int8 .tflite of the same architecture to continue from (its sha256 goes in the report).
    distill_from: an int8 .tflite of the same architecture whose scores are mixed into the targets,
    distill_weight of them (see kiosk.training.distill).
    """
    out_path = Path(out_path)
    work_dir = Path(work_dir) if work_dir else out_path.parent / "train-work"
    config = TrainConfig()
    if epochs is not None:
        config = replace(config, epochs=epochs)
    if limit_per_class is not None:
        config = replace(config, limit_per_class=limit_per_class)
    if learning_rate is not None:
        config = replace(config, learning_rate=learning_rate)
    if init_from is not None:
        read_tflite_layers(Path(init_from))  # a file that is no TFLite model fails here, before loading data
        config = replace(config, init_from=str(init_from), init_sha256=sha256_of(Path(init_from)))
    if distill_from is not None:
        read_tflite_layers(Path(distill_from))
        config = replace(config, distill_from=str(distill_from), distill_sha256=sha256_of(Path(distill_from)))
    if distill_weight is not None:
        config = replace(config, distill_weight=distill_weight)
    if erase_prob is not None:
        config = replace(config, erase_prob=erase_prob)
    model = keras_twin(train(Path(data_dir), work_dir, config))  # the Keras twin converts to TFLite
    train_data, val_data = validation_data(Path(data_dir), work_dir)
    export_int8(model, train_data.images, out_path)
    report: dict = {
        "model": out_path.name,
        "bytes": out_path.stat().st_size,
        "params": int(model.count_params()),
        "classes": list(CLASSES),
        "train_config": json.loads((work_dir / "train_config.json").read_text()),
        "validation": evaluation_report(model, out_path, val_data, "validation", out_path.parent),
    }
    seconds = work_dir / "train_seconds.txt"
    if seconds.exists():
        report["train_seconds"] = sum(int(x) for x in seconds.read_text().split())
    if test_dir is not None:
        report["test"] = evaluation_report(model, out_path, load_split(Path(test_dir)), "test", out_path.parent)
    report_path = out_path.with_name(out_path.stem + ".report.json")
    report_path.write_text(json.dumps(report, indent=2))
    logger.info("report written to %s", report_path)
    return {k: v for k, v in report.items() if k not in ("train_config",)} | {"report": str(report_path)}
