"""Face detection, landmarks, quality checks and 128-d embeddings with face_recognition (dlib).

Images are RGB uint8 HxWx3 numpy arrays; boxes are (top, right, bottom, left) pixels, as in
face_recognition. Each face is detected once; its box is reused for landmarks and embedding.
With RecognitionSettings.mirror_tta the embedding is the mean of the face's and its mirror
image's embeddings (test-time augmentation). With RecognitionSettings.embedder "litert" the
embedding net runs as its LiteRT twin (kiosk/vision/embedder.py) on dlib's own face chip.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from kiosk.config import FaceQualitySettings, RecognitionSettings
from kiosk.vision.dlib_models import load_face_recognition
from kiosk.vision.embedder import LiteRTFaceEmbedder, model_path
from kiosk.vision.embedding import Embedding
from kiosk.vision.images import (
    IMAGE_SUFFIXES,
    MAX_FULL_DECODE_PIXELS,
    MAX_IMAGE_PIXELS,
    PHOTO_MAX_SIDE,
    check_image,
    check_pixels,
    decode_image,
    fit_within,
    load_image,
    probe_image,
)
from kiosk.vision.types import Box, Landmarks, RGBImage
from kiosk.vision.yunet import YuNetDetector

logger = logging.getLogger(__name__)

# The photo helpers moved to kiosk.vision.images; they are still importable from here.
__all__ = [
    "IMAGE_SUFFIXES", "MAX_FULL_DECODE_PIXELS", "MAX_IMAGE_PIXELS", "PHOTO_MAX_SIDE", "Box", "DlibFaceAnalyzer",
    "FaceAnalyzer", "FaceObservation", "Landmarks", "check_pixels", "decode_image", "fit_within", "judge_quality",
    "load_image", "make_analyzer", "probe_image", "sharpness_of", "yaw_ratio_of",
]

# The grey face crop is resized to this square before measuring sharpness, so the
# threshold does not depend on how many pixels the face covers.
SHARPNESS_CROP_PX = 128

# The head turn measured on dlib's 5 points (eye corners, base of the nose) times this is on the
# 68-point scale that quality.max_yaw_ratio was set on: least-squares fit over the 4,598 photos of
# ../shared/data with a face (correlation 0.91; |difference| median 0.011, 99th pct 0.105).
YAW_5_POINT_SCALE = 0.92

# face_recognition's names for ranges of the 68 dlib points.
_PARTS_68: dict[str, range] = {
    "chin": range(0, 17),
    "left_eyebrow": range(17, 22),
    "right_eyebrow": range(22, 27),
    "nose_bridge": range(27, 31),
    "nose_tip": range(31, 36),
    "left_eye": range(36, 42),
    "right_eye": range(42, 48),
    "top_lip": range(48, 55),
    "bottom_lip": range(60, 67),
}


@dataclass
class FaceObservation:
    """One detected face: box (top, right, bottom, left) px, 68-point landmarks, 128-d float32 embedding."""

    box: Box
    landmarks: Landmarks
    embedding: Embedding | None
    quality: float
    sharpness: float
    yaw_ratio: float
    rejected_reason: str | None = None

    @property
    def height(self) -> int:
        """Box height in pixels."""
        return self.box[2] - self.box[0]

    @property
    def accepted(self) -> bool:
        """True when the face passed the quality checks and has an embedding."""
        return self.rejected_reason is None and self.embedding is not None


class FaceAnalyzer(Protocol):
    """Finds faces in an RGB uint8 HxWx3 image and describes them: what the door pipeline, kiosk
    capture, enrolment and the evaluations call. DlibFaceAnalyzer is the real one,
    kiosk.vision.fake.FakeFaceAnalyzer the deterministic stand-in for tests."""

    @property
    def settings(self) -> RecognitionSettings:
        """The recognition settings the analyzer runs with (mirror_tta, quality, embedder id)."""
        ...

    def analyze(self, image: RGBImage) -> list[FaceObservation]:
        """All faces, largest first, each described (and embedded when usable)."""
        ...

    def largest_face(self, image: RGBImage) -> FaceObservation | None:
        """The largest face (only it is embedded), or None when there is none."""
        ...

    def describe(self, image: RGBImage, box: Box, embed_rejected: bool = False,
                 mirror: bool | None = None, embed: bool = True, full_landmarks: bool = True) -> FaceObservation:
        """Landmarks, quality and (unless rejected) the 128-d float32 embedding of the face in box;
        mirror overrides settings.mirror_tta, embed=False checks the quality only, full_landmarks=False
        gives only the 5 points the embedding needs (the door's path; face_landmarks() gives the 68)."""
        ...

    def face_landmarks(self, image: RGBImage, box: Box) -> Landmarks:
        """The 68-point landmarks (face_recognition's names, image px) of the face in box (expression crop)."""
        ...

    def mirror_embedding(self, image: RGBImage, box: Box) -> Embedding:
        """128-d float32 embedding of the mirrored face: (plain + this) / 2 is the mirror_tta one."""
        ...


def judge_quality(height: int, sharpness: float, yaw: float, q: FaceQualitySettings) -> tuple[str | None, float]:
    """(reason the face is refused or None, quality 0..1) from its box height px, sharpness and yaw ratio."""
    reason: str | None = None
    if height < q.min_face_px:
        reason = f"face too small ({height} px < {q.min_face_px} px): come closer"
    elif sharpness < q.min_sharpness:
        reason = f"face blurred (sharpness {sharpness:.0f} < {q.min_sharpness:.0f}): hold still"
    elif yaw > q.max_yaw_ratio:
        reason = f"face turned away (yaw {yaw:.2f} > {q.max_yaw_ratio:.2f}): look at the camera"
    quality = (
        min(1.0, height / (2.0 * max(q.min_face_px, 1)))
        * min(1.0, sharpness / (4.0 * max(q.min_sharpness, 1e-6)))
        * max(0.0, 1.0 - yaw / (2.0 * max(q.max_yaw_ratio, 1e-6)))
    )
    return reason, float(quality)


def sharpness_of(image: RGBImage, box: Box) -> float:
    """Variance of the Laplacian of the grey face crop resized to 128x128 (higher = sharper)."""
    top, right, bottom, left = box
    crop = image[max(top, 0):max(bottom, 0), max(left, 0):max(right, 0)]
    if crop.size == 0:
        return 0.0
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    interp = cv2.INTER_AREA if grey.shape[0] > SHARPNESS_CROP_PX else cv2.INTER_LINEAR
    grey = cv2.resize(grey, (SHARPNESS_CROP_PX, SHARPNESS_CROP_PX), interpolation=interp)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def yaw_ratio_of(landmarks: Landmarks) -> float:
    """Head turn estimate: |nose tip offset from the eye midpoint along the eye axis| / eye distance.

    0 for a frontal face; about 0.5 when the nose sits under one eye.
    """
    try:
        left = np.mean(np.asarray(landmarks["left_eye"], dtype=np.float64), axis=0)
        right = np.mean(np.asarray(landmarks["right_eye"], dtype=np.float64), axis=0)
        nose_pts = np.asarray(landmarks["nose_tip"], dtype=np.float64)
    except KeyError:
        return 0.0
    # The middle point of the 68-point nose_tip row is the tip; the 5-point model has one point.
    nose = nose_pts[len(nose_pts) // 2]
    axis = right - left
    dist = float(np.hypot(*axis))
    if dist < 1e-6:
        return 0.0
    offset = float(np.dot(nose - (left + right) / 2.0, axis / dist))
    return abs(offset) / dist


def _shape_to_landmarks(shape: Any) -> Landmarks:
    points = [(int(shape.part(i).x), int(shape.part(i).y)) for i in range(shape.num_parts)]
    if shape.num_parts == 68:
        out = {name: [points[i] for i in idx] for name, idx in _PARTS_68.items()}
        # face_recognition closes the lips with these extra points.
        out["top_lip"] += [points[64], points[63], points[62], points[61], points[60]]
        out["bottom_lip"] = [points[i] for i in range(54, 60)] + [points[48], points[60]] + [
            points[67], points[66], points[65], points[64]]
        return out
    return {"nose_tip": [points[4]], "left_eye": points[2:4], "right_eye": points[0:2]}


class DlibFaceAnalyzer:
    """FaceAnalyzer on dlib's models: YuNet, HOG or dlib CNN detector, dlib landmarks, and
    ResNet embeddings by dlib or (settings.embedder "litert") by its LiteRT twin
    (kiosk.vision.embedder) on the same dlib face chip.
    """

    def __init__(self, settings: RecognitionSettings | None = None) -> None:
        self.settings = settings or RecognitionSettings()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import dlib
        self._dlib = dlib
        self._api = load_face_recognition()  # ModelError naming a missing/damaged model file
        if self.settings.embedder == "dlib":
            self._api.face_encoder  # noqa: B018 - load it now (ModelError at start, not at the first face)
        self._embedder: LiteRTFaceEmbedder | None = None
        if self.settings.embedder == "litert":
            self._embedder = LiteRTFaceEmbedder(model_path(self.settings.embedder_model),
                                                check=self.settings.embedder_verify_checksum,
                                                threads=self.settings.embedder_threads)
        self.yunet: YuNetDetector | None = None
        if self.settings.detector == "yunet":
            s = self.settings
            self.yunet = YuNetDetector(s.yunet_model, score_threshold=s.yunet_score,
                                       check=s.yunet_verify_checksum)

    # -- detection ---------------------------------------------------------------------------
    def detect(self, image: RGBImage) -> list[Box]:
        """Face boxes (top, right, bottom, left) px in an RGB uint8 HxWx3 image."""
        image = check_image(image)
        s = self.settings
        if self.yunet is not None:
            boxes = self.yunet.detect(image)
            if not boxes and s.edge_pad > 0:
                boxes = self._detect_padded(image, s.edge_pad)
            return boxes
        boxes = self._api.face_locations(image, s.upsample, s.detector)
        if not boxes and s.upsample > 0:
            # Without upsampling the HOG pyramid finds some large faces the upsampled one
            # misses (~1/3 of LFW's misses), for a quarter of the cost.
            boxes = self._api.face_locations(image, 0, s.detector)
        if not boxes and s.edge_pad > 0:
            boxes = self._detect_padded(image, s.edge_pad)
        return boxes

    def _detect_padded(self, image: RGBImage, fraction: float) -> list[Box]:
        """Boxes found on a copy with a black border of fraction x the longer side, clipped to the image."""
        height, width = image.shape[:2]
        pad = int(round(fraction * max(height, width)))
        padded = np.asarray(cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0)),
                            dtype=np.uint8)
        boxes: list[Box] = []
        if self.yunet is not None:
            found = self.yunet.detect(padded)
        else:
            found = self._api.face_locations(padded, 0, self.settings.detector)
        for top, right, bottom, left in found:
            box = (max(top - pad, 0), min(right - pad, width), min(bottom - pad, height), max(left - pad, 0))
            if box[2] > box[0] and box[1] > box[3]:
                boxes.append(box)
        return boxes

    def embed(self, image: RGBImage, box: Box) -> Embedding:
        """128-d float32 embedding of the face in box (top, right, bottom, left) px of an RGB uint8 HxWx3 image.

        With mirror_tta the mirrored image (box mirrored too) is embedded as well and the two
        embeddings are averaged (2x the time); no quality checks.
        """
        return self._embed(check_image(image), box)

    def _embed(self, image: RGBImage, box: Box, shape: Any = None, mirror: bool | None = None) -> Embedding:
        """shape: the face's dlib shape of settings.landmark_model's kind, when already computed."""
        s = self.settings
        embedding = self._embed_once(image, box, shape)
        if s.mirror_tta if mirror is None else mirror:
            embedding = (embedding + self.mirror_embedding(image, box)) / 2.0
        return embedding.astype(np.float32)

    def mirror_embedding(self, image: RGBImage, box: Box) -> Embedding:
        """128-d float32 embedding of the mirrored face: (plain + this) / 2 is the mirror_tta embedding."""
        width = image.shape[1]
        top, right, bottom, left = box
        mirrored_box = (top, width - 1 - left, bottom, width - 1 - right)
        return self._embed_once(np.ascontiguousarray(image[:, ::-1]), mirrored_box)

    def _embed_once(self, image: RGBImage, box: Box, shape: Any = None) -> Embedding:
        s = self.settings
        if shape is None:
            rect = self._api._css_to_rect(box)
            if s.landmark_model == "large":
                shape = self._api.pose_predictor_68_point(image, rect)
            else:
                shape = self._api.pose_predictor_5_point(image, rect)
        if self._embedder is not None:
            # The chip compute_face_descriptor makes (150 px, padding 0.25), into the LiteRT twin.
            chip = self._dlib.get_face_chip(image, shape, size=150, padding=0.25)
            return self._embedder.embed_chip(chip)
        desc = self._api.face_encoder.compute_face_descriptor(image, shape, s.num_jitters)
        return np.asarray(desc, dtype=np.float32)

    def describe(self, image: RGBImage, box: Box, embed_rejected: bool = False,
                 mirror: bool | None = None, embed: bool = True, full_landmarks: bool = True) -> FaceObservation:
        """Landmarks, quality and (unless rejected) the 128-d float32 embedding of the face in box.

        mirror overrides settings.mirror_tta for this call (False: one embedding pass only);
        embed=False only checks the quality (no embedding, so the result is never `accepted`).
        full_landmarks=False skips dlib's 68-point predictor (about 3 ms here): the landmarks are
        then the 5 points of the chip (eyes, nose), and the head turn is measured on them.
        """
        image = check_image(image)
        rect = self._api._css_to_rect(box)
        shape = None
        if full_landmarks or self.settings.landmark_model == "large":
            shape = self._api.pose_predictor_68_point(image, rect)
        else:
            shape = self._api.pose_predictor_5_point(image, rect)
        landmarks = _shape_to_landmarks(shape)
        sharp = sharpness_of(image, box)
        yaw = yaw_ratio_of(landmarks) * (1.0 if shape.num_parts == 68 else YAW_5_POINT_SCALE)
        reason, quality = judge_quality(box[2] - box[0], sharp, yaw, self.settings.quality)
        embedding = None
        if embed and (reason is None or embed_rejected):
            same_kind = (shape.num_parts == 68) == (self.settings.landmark_model == "large")
            embedding = self._embed(image, box, shape if same_kind else None, mirror)
        top, right, bottom, left = (int(v) for v in box)
        return FaceObservation(box=(top, right, bottom, left), landmarks=landmarks, embedding=embedding,
                               quality=quality, sharpness=sharp, yaw_ratio=yaw, rejected_reason=reason)

    def face_landmarks(self, image: RGBImage, box: Box) -> Landmarks:
        """The 68-point landmarks (face_recognition's names, image px) of the face in box."""
        image = check_image(image)
        return _shape_to_landmarks(self._api.pose_predictor_68_point(image, self._api._css_to_rect(box)))

    # -- FaceAnalyzer ------------------------------------------------------------------------
    def analyze(self, image: RGBImage) -> list[FaceObservation]:
        """All faces in an RGB uint8 HxWx3 image, largest first."""
        image = check_image(image)
        boxes = sorted(self.detect(image), key=lambda b: -(b[2] - b[0]) * (b[1] - b[3]))
        return [self.describe(image, b) for b in boxes]

    def largest_face(self, image: RGBImage) -> FaceObservation | None:
        """The largest face in an RGB uint8 HxWx3 image (only it is embedded), or None."""
        image = check_image(image)
        boxes = self.detect(image)
        if not boxes:
            return None
        box = max(boxes, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))
        return self.describe(image, box)


def make_analyzer(settings: RecognitionSettings | None = None) -> DlibFaceAnalyzer:
    """The face analyzer configured by settings (loads the dlib models once, ~0.5 s)."""
    return DlibFaceAnalyzer(settings)
