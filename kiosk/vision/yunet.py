"""YuNet face detector (OpenCV FaceDetectorYN, ONNX) with boxes mapped to dlib HOG's convention.

YuNet returns per face a box (x, y, w, h), 5 landmarks (right eye, left eye, nose tip, right and
left mouth corner, in image x/y px) and a score. Its box is taller than dlib HOG's (it reaches
the hairline), and dlib's shape predictors and ResNet embedding were built on HOG-style boxes,
so `to_hog_box` maps YuNet's box onto the box HOG would draw (see HOG_FIT).
Images are RGB uint8 HxWx3; boxes leave as (top, right, bottom, left) px, clipped to the image.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from kiosk.errors import ModelError
from kiosk.vision.runtime import verify_checksum
from kiosk.vision.types import Box, Float32Array, RGBImage

logger = logging.getLogger(__name__)


MODEL_NAME = "face_detection_yunet_2023mar.onnx"
# The shipped model: models/yunet/ of a source checkout, or <venv>/share/kiosk/models/yunet/.
MODEL_LOCATIONS = (
    Path(__file__).resolve().parents[2] / "models" / "yunet" / MODEL_NAME,
    Path(sys.prefix) / "share" / "kiosk" / "models" / "yunet" / MODEL_NAME,
)
DEFAULT_MODEL = next((p for p in MODEL_LOCATIONS if p.is_file()), MODEL_LOCATIONS[0])

# HOG box from YuNet's (x, y, w, h): centre x = x + w * cx, centre y = y + h * cy, side =
# sqrt(w * h) * side (HOG boxes are square; YuNet's are ~1.3x taller than wide). Medians over
# the 161 photos of ../shared/data/faces people (first ones in name order) where both detectors
# found the face (IoU > 0.3) and HOG's box did not touch the image edge: cx 0.518 (sd 0.08),
# cy 0.529 (sd 0.02), side 0.865 (sd 0.066; side / w alone varies more, sd 0.085).
HOG_FIT = {"cx": 0.518, "cy": 0.529, "side": 0.865}
# YuNet's anchors reach faces of about 256 px: a face filling a close-up enrolment photo (600 px
# wide at 800 px) is missed or boxed badly. Images are searched at most DETECT_MAX_SIDE px a side,
# and once more, shrunk, when the largest face found is wider than LARGE_FACE_PX: then so that
# it is about RESCALED_FACE_PX wide. Door frames (640x480, faces 80-250 px) pass once, unscaled.
DETECT_MAX_SIDE = 640
LARGE_FACE_PX = 224
RESCALED_FACE_PX = 160


@dataclass(frozen=True)
class YuNetFace:
    """One YuNet detection: HOG-style box (top, right, bottom, left) px, raw (x, y, w, h), 5 points, score 0..1."""

    box: Box
    raw: tuple[float, float, float, float]
    landmarks: Float32Array  # (5, 2) float32 x, y: right eye, left eye, nose, right/left mouth corner
    score: float


def to_hog_box(x: float, y: float, w: float, h: float, width: int, height: int,
               fit: dict[str, float] | None = None) -> Box:
    """YuNet's (x, y, w, h) -> the box HOG would give, (top, right, bottom, left) px clipped to width x height."""
    fit = fit or HOG_FIT
    cx, cy, side = x + w * fit["cx"], y + h * fit["cy"], float(np.sqrt(max(w, 0.0) * max(h, 0.0))) * fit["side"]
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    right, bottom = int(round(cx + side / 2)), int(round(cy + side / 2))
    return (max(top, 0), min(right, width), min(bottom, height), max(left, 0))


class YuNetDetector:
    """cv2.FaceDetectorYN on the (checksum-verified) ONNX model; detect() takes RGB uint8 HxWx3."""

    def __init__(self, model_path: Path | str | None = None, *, score_threshold: float = 0.6,
                 nms_threshold: float = 0.3, top_k: int = 5000, check: bool = True) -> None:
        self.path = Path(model_path) if model_path else DEFAULT_MODEL
        self.score_threshold, self.nms_threshold, self.top_k = float(score_threshold), float(nms_threshold), int(top_k)
        if not self.path.is_file():
            raise ModelError(f"YuNet model file not found: {self.path}")
        if check:
            verify_checksum(self.path, setting="recognition.yunet_verify_checksum")
        try:
            self._net = cv2.FaceDetectorYN.create(str(self.path), "", (320, 320), float(score_threshold),
                                                  float(nms_threshold), int(top_k))
        except cv2.error as exc:
            raise ModelError(f"cannot load YuNet model {self.path}: not a valid ONNX face detector "
                             f"({str(exc).strip().splitlines()[-1] if str(exc).strip() else exc})") from None
        self._size: tuple[int, int] | None = None

    def _raw(self, image: RGBImage, scale: float) -> Float32Array:
        """YuNet's rows (x, y, w, h, 5 points, score) for the image shrunk by scale, in the
        image's own pixels; (0, 15) when none."""
        height, width = image.shape[:2]
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = image if scale >= 1.0 else cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        if size != self._size:
            self._net.setInputSize(size)
            self._size = size
        # The network was trained on BGR images (OpenCV order).
        # detect() gives None for no face (its stub says an array, hence `object`).
        rows: object = self._net.detect(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))[1]
        if rows is None:
            return np.zeros((0, 15), np.float32)
        found = np.array(rows, np.float32)
        found[:, :14] /= min(scale, 1.0)
        return found

    def sibling(self) -> YuNetDetector:
        """A second net on the same (already verified) model file and thresholds: one per fixed input
        size, since changing a net's input size costs ~13 ms here."""
        return YuNetDetector(self.path, score_threshold=self.score_threshold, nms_threshold=self.nms_threshold,
                             top_k=self.top_k, check=False)

    def rows(self, image: RGBImage) -> Float32Array:
        """YuNet's raw rows (x, y, w, h, 5 points x/y, score) float32 (N, 15) of an RGB uint8 HxWx3
        image at its own size (no shrinking, no rescue of large faces); (0, 15) when none."""
        return self._raw(image, 1.0)

    def faces(self, image: RGBImage) -> list[YuNetFace]:
        """All faces in an RGB uint8 HxWx3 image (any size), highest score first."""
        height, width = image.shape[:2]
        scale = min(1.0, DETECT_MAX_SIDE / max(height, width))
        found = self._raw(image, scale)
        if len(found) and float(found[:, 2].max()) * scale > LARGE_FACE_PX:  # a face too big for YuNet
            closer = self._raw(image, RESCALED_FACE_PX / float(found[:, 2].max()))
            if len(closer):
                found = closer
        out: list[YuNetFace] = []
        for row in found:
            x, y, w, h = (float(v) for v in row[:4])
            box = to_hog_box(x, y, w, h, width, height)
            if box[2] <= box[0] or box[1] <= box[3]:
                continue
            out.append(YuNetFace(box, (x, y, w, h), np.asarray(row[4:14], np.float32).reshape(5, 2),
                                 float(row[14])))
        out.sort(key=lambda f: -f.score)
        return out

    def detect(self, image: RGBImage) -> list[Box]:
        """HOG-style face boxes (top, right, bottom, left) px of an RGB uint8 HxWx3 image."""
        return [f.box for f in self.faces(image)]
