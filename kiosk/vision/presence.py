"""The door's cheap "is a face there, and where?" check, run on every frame before any analysis.

Boxes are (top, right, bottom, left) px of the full RGB uint8 HxWx3 frame, in dlib HOG's box
convention (what the landmark models expect). HOG (no upsampling, on a grey copy) or YuNet run
on a copy shrunk to `width` px; an analyzer that brings its own presence check (the fake one)
is asked for it instead (OwnPresence).
"""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from kiosk.config import Settings
from kiosk.vision.types import Box, GreyImage, RGBImage
from kiosk.vision.yunet import YuNetDetector

logger = logging.getLogger(__name__)


class FaceFinder(Protocol):
    """Face boxes of a frame, without describing the faces."""

    def detect(self, image: RGBImage) -> list[Box]:
        """Face boxes (top, right, bottom, left) in full-frame px of an RGB uint8 HxWx3 frame."""
        ...


@runtime_checkable
class OwnPresence(Protocol):
    """An analyzer that brings its own presence check (e.g. the fake analyzer's drawn faces)."""

    def presence_detector(self, width: int) -> FaceFinder:
        """The presence check for frames shrunk to width px (an implementation may ignore width)."""
        ...


class PresenceDetector:
    """Cheap "where is a face?": dlib HOG (no upsampling) on a grey copy shrunk to `width` px.

    HOG's window is 80 px, so it finds faces at least 80 * frame width / width px tall; boxes
    come back scaled to the full frame, in the same convention the landmark models expect.
    """

    def __init__(self, width: int = 400) -> None:
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self.width = width

    def detect(self, image: RGBImage) -> list[Box]:
        """Face boxes (top, right, bottom, left) in full-frame px of an RGB uint8 HxWx3 frame."""
        height, width = image.shape[:2]
        scale = min(1.0, self.width / width)
        grey: GreyImage = np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), dtype=np.uint8)
        if scale < 1.0:
            grey = np.asarray(cv2.resize(grey, (self.width, max(1, round(height * scale))),
                                         interpolation=cv2.INTER_AREA), dtype=np.uint8)
        boxes: list[Box] = []
        for rect in self._detector(grey, 0):
            top, bottom = max(0, rect.top()), min(grey.shape[0], rect.bottom())
            left, right = max(0, rect.left()), min(grey.shape[1], rect.right())
            boxes.append((round(top / scale), round(right / scale), round(bottom / scale), round(left / scale)))
        return boxes


class YuNetPresenceDetector:
    """"Where is a face?" with YuNet on a copy shrunk to `width` px; HOG-style boxes in full-frame px.

    YuNet finds faces down to ~10 px in the shrunk copy (far smaller than min_face_px), in a few
    ms, and faces that HOG's frontal window misses (turned, dim, touching the frame edge).
    """

    def __init__(self, width: int = 400, detector: YuNetDetector | None = None) -> None:
        self._detector = detector or YuNetDetector()
        self.width = width

    def detect(self, image: RGBImage) -> list[Box]:
        """Face boxes (top, right, bottom, left) in full-frame px of an RGB uint8 HxWx3 frame."""
        height, width = image.shape[:2]
        scale = min(1.0, self.width / width)
        small = image
        if scale < 1.0:
            small = np.asarray(cv2.resize(image, (self.width, max(1, round(height * scale))),
                                          interpolation=cv2.INTER_AREA), dtype=np.uint8)
        return [(min(height, round(t / scale)), min(width, round(r / scale)), min(height, round(b / scale)),
                 min(width, round(lft / scale))) for t, r, b, lft in self._detector.detect(small)]


def presence_width(settings: Settings) -> int:
    """Width (px) the presence check shrinks frames to: recognition.yunet_presence_width for YuNet,
    attendance.presence_width for HOG (and an analyzer's own check)."""
    if settings.recognition.detector == "yunet":
        return settings.recognition.yunet_presence_width
    return settings.attendance.presence_width


def make_presence_detector(settings: Settings, analyzer: object | None = None) -> FaceFinder:
    """The door's presence check: the analyzer's own (OwnPresence), else YuNet for recognition.detector
    "yunet" (the analyzer's YuNet when it has one), else HOG; on frames shrunk to presence_width()."""
    if isinstance(analyzer, OwnPresence):
        return analyzer.presence_detector(settings.attendance.presence_width)
    width = presence_width(settings)
    if settings.recognition.detector == "yunet":
        shared = getattr(analyzer, "yunet", None)
        if not isinstance(shared, YuNetDetector):
            r = settings.recognition
            shared = YuNetDetector(r.yunet_model, score_threshold=r.yunet_score, check=r.yunet_verify_checksum)
        return YuNetPresenceDetector(width, shared)
    return PresenceDetector(width)
