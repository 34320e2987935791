"""Facial expression scores from the int8 TFLite CNN, and score fusion over a check-in's frames."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from kiosk.config import ExpressionSettings
from kiosk.errors import ModelError
from kiosk.vision.preprocess import CLASSES, INPUT_SIZE, align_face, prepare_fer_crop
from kiosk.vision.runtime import load_interpreter
from kiosk.vision.types import Float32Array, GreyImage, RGBImage

logger = logging.getLogger(__name__)

MODEL_NAME = "expression_int8.tflite"
# The shipped model: the repository's models/ folder (source checkout, editable install), or
# <venv>/share/kiosk/models/ where a regular install puts it (pyproject data-files).
MODEL_LOCATIONS = (
    Path(__file__).resolve().parents[2] / "models" / MODEL_NAME,
    Path(sys.prefix) / "share" / "kiosk" / "models" / MODEL_NAME,
)
DEFAULT_MODEL = next((p for p in MODEL_LOCATIONS if p.is_file()), MODEL_LOCATIONS[0])

Landmarks = Mapping[str, Sequence[Sequence[float]]]


class ExpressionClassifier(Protocol):
    """Per-class expression scores for one face."""

    classes: tuple[str, ...]

    def scores_for_face(self, image: RGBImage, landmarks: Landmarks) -> Float32Array:
        """RGB uint8 HxWx3 photo + that face's landmarks -> probabilities float32 (7,)."""
        ...

    def scores_for_crop(self, crop: GreyImage) -> Float32Array:
        """Model input grey uint8 48x48 -> probabilities float32 (7,) in CLASSES order."""
        ...


@dataclass(frozen=True)
class FusedExpression:
    """Fused result of a check-in: label, confidence 0..1 and the per-class scores (sum 1)."""

    label: str
    confidence: float
    scores: dict[str, float]


class TFLiteExpressionClassifier:
    """The int8 model: input int8 1x48x48x1 (pixel - 128), output int8 1x7 (dequantised to probabilities)."""

    classes: tuple[str, ...] = CLASSES

    def __init__(self, model_path: Path | str, *, check: bool = True, prefer_runtime: str | None = None,
                 mirror: bool = False) -> None:
        self.path = Path(model_path)
        self.mirror = mirror
        self.interpreter, self.runtime = load_interpreter(self.path, check=check, prefer=prefer_runtime)
        inp = self.interpreter.get_input_details()[0]
        out = self.interpreter.get_output_details()[0]
        if tuple(inp["shape"]) != (1, INPUT_SIZE, INPUT_SIZE, 1) or int(out["shape"][-1]) != len(CLASSES):
            raise ModelError(f"{self.path}: expected input 1x{INPUT_SIZE}x{INPUT_SIZE}x1 and {len(CLASSES)} "
                             f"outputs, got {list(inp['shape'])} -> {list(out['shape'])}")
        self._in_index, self._in_dtype = inp["index"], inp["dtype"]
        self._in_scale, self._in_zero = inp["quantization"]
        self._out_index, self._out_dtype = out["index"], out["dtype"]
        self._out_scale, self._out_zero = out["quantization"]

    def _quantise(self, crop: GreyImage) -> npt.NDArray[np.generic]:
        pixels = crop.astype(np.float32)[None, :, :, None]
        if self._in_dtype == np.float32:
            return pixels
        info = np.iinfo(self._in_dtype)
        q = np.round(pixels / self._in_scale + self._in_zero)
        quantised: npt.NDArray[np.generic] = np.clip(q, info.min, info.max).astype(self._in_dtype)
        return quantised

    def scores_for_crop(self, crop: GreyImage) -> Float32Array:
        """Model input grey uint8 48x48 (see preprocess) -> probabilities float32 (7,) in CLASSES order.

        With mirror, the mean of the crop's and its mirror image's scores (2 invokes).
        """
        scores = self._invoke(crop)
        if self.mirror:
            scores = (scores + self._invoke(np.ascontiguousarray(crop[:, ::-1]))) / 2.0
        return scores

    def _invoke(self, crop: GreyImage) -> Float32Array:
        self.interpreter.set_tensor(self._in_index, self._quantise(crop))
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self._out_index)[0]
        scores = raw.astype(np.float32)
        if self._out_dtype != np.float32:
            scores = (scores - self._out_zero) * self._out_scale
        scores = np.clip(scores, 0.0, None)
        total = float(scores.sum())
        return scores / total if total > 0 else np.full(len(CLASSES), 1.0 / len(CLASSES), np.float32)

    def scores_for_face(self, image: RGBImage, landmarks: Landmarks) -> Float32Array:
        """RGB uint8 HxWx3 photo + that face's landmarks -> probabilities float32 (7,)."""
        return self.scores_for_crop(align_face(image, landmarks))

    def scores_for_fer_image(self, grey: GreyImage) -> Float32Array:
        """An already-cropped grey face (FER2013 style) -> probabilities float32 (7,)."""
        return self.scores_for_crop(prepare_fer_crop(grey))


def model_path(settings: ExpressionSettings) -> Path:
    """The configured model file, or the one shipped with the package."""
    return Path(settings.model) if settings.model else DEFAULT_MODEL


def load_classifier(settings: ExpressionSettings) -> TFLiteExpressionClassifier | None:
    """The classifier, or None when expression analysis is disabled (the model is then never read)."""
    if not settings.enabled:
        logger.info("expression analysis disabled: model not loaded")
        return None
    return TFLiteExpressionClassifier(model_path(settings), check=settings.verify_checksum,
                                      mirror=settings.mirror_tta)


def fuse(scores: Sequence[Float32Array], weights: Sequence[float] | None = None) -> FusedExpression:
    """Weighted sum of per-frame class scores (each (7,)); weights e.g. face quality 0..1."""
    if not scores:
        raise ValueError("no scores to fuse")
    matrix = np.asarray(scores, dtype=np.float64).reshape(len(scores), len(CLASSES))
    w = np.ones(len(scores)) if weights is None else np.clip(np.asarray(weights, dtype=np.float64), 0.0, None)
    if w.sum() <= 0:
        w = np.ones(len(scores))
    fused = (w[:, None] * matrix).sum(axis=0) / w.sum()
    fused /= max(fused.sum(), 1e-12)
    best = int(np.argmax(fused))
    return FusedExpression(CLASSES[best], float(fused[best]),
                           {name: round(float(v), 4) for name, v in zip(CLASSES, fused, strict=True)})
