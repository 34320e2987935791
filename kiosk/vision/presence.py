"""The door's cheap "is a face there, and where?" check, run on every frame before any analysis.

Boxes are (top, right, bottom, left) px of the full RGB uint8 HxWx3 frame, in dlib HOG's box
convention (what the landmark models expect). HOG (no upsampling, on a grey copy) or YuNet run
on a copy shrunk to `width` px; an analyzer that brings its own presence check (the fake one)
is asked for it instead (OwnPresence).

While the door tracks a face, YuNet's `detect_near(image, box)` searches only a window around the
face's last box (CROP_SPAN x its side, clamped into the frame): a fraction of the pixels of a
whole-frame search. It returns None, meaning "search the whole frame", when no face is found in the
window or the face found touches a window edge that is not the frame's (cut off, or moving out of
it). HOG has no window search: its boxes snap to a grid of cells that a window shifts (by up to
~20 px here), enough to move a decision to another frame of the approach.
"""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from kiosk.config import Settings
from kiosk.vision.types import Box, GreyImage, RGBImage
from kiosk.vision.yunet import YuNetDetector, to_hog_box

logger = logging.getLogger(__name__)

# Side of the window searched around a tracked face, in face-box sides: 2.2 leaves 0.6 of a face
# on each side, more than a face moves between two frames walking up at 5 fps (0.3-0.4 of its side
# in the replay scenes); a face that moved further is found by the whole-frame search.
CROP_SPAN = 2.2
# YuNet: the window is shrunk into one fixed square of CROP_INPUT_PX (its net keeps one input size:
# changing it costs ~13 ms), the face at most CROP_FACE_PX wide in it (never finer than the whole-
# frame search's scale); 160 px takes ~1.5 ms here against ~4.2 ms for the 320x240 whole frame.
CROP_INPUT_PX = 160
CROP_FACE_PX = round(CROP_INPUT_PX / CROP_SPAN)
# A face whose box comes this close (px, in the searched copy) to a window edge inside the frame is
# taken as cut off: the whole frame is searched instead.
EDGE_PX = 1.0


def crop_window(box: Box, frame_w: int, frame_h: int, span_px: float) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) px of a span_px square centred on box, moved inside a frame_w x frame_h frame
    and cut to it where it is larger."""
    cx, cy = (box[1] + box[3]) / 2.0, (box[0] + box[2]) / 2.0
    side = int(round(span_px))
    x0 = int(round(min(max(cx - side / 2.0, 0.0), max(frame_w - side, 0))))
    y0 = int(round(min(max(cy - side / 2.0, 0.0), max(frame_h - side, 0))))
    return x0, y0, min(frame_w, x0 + side), min(frame_h, y0 + side)


def _cut_off(left: float, top: float, right: float, bottom: float, size: tuple[int, int],
             inner: tuple[bool, bool, bool, bool]) -> bool:
    """Whether a box (px of a searched copy of size (w, h)) touches one of the copy's edges that lies
    inside the frame; inner: (left, top, right, bottom) edge inside the frame."""
    return ((inner[0] and left <= EDGE_PX) or (inner[1] and top <= EDGE_PX)
            or (inner[2] and right >= size[0] - EDGE_PX) or (inner[3] and bottom >= size[1] - EDGE_PX))


class FaceFinder(Protocol):
    """Face boxes of a frame, without describing the faces."""

    def detect(self, image: RGBImage) -> list[Box]:
        """Face boxes (top, right, bottom, left) in full-frame px of an RGB uint8 HxWx3 frame."""
        ...


@runtime_checkable
class NearFinder(Protocol):
    """A FaceFinder that can also search only around a tracked face's last box."""

    def detect(self, image: RGBImage) -> list[Box]:
        """Face boxes (top, right, bottom, left) in full-frame px of an RGB uint8 HxWx3 frame."""
        ...

    def detect_near(self, image: RGBImage, box: Box) -> list[Box] | None:
        """Face boxes in a window around box, full-frame px; None: search the whole frame instead."""
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
        self._near: YuNetDetector | None = None  # the window search's own net (input CROP_INPUT_PX square)

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

    def detect_near(self, image: RGBImage, box: Box) -> list[Box] | None:
        """Face boxes found in a window around box (the tracked face's last box), HOG-style full-frame px;
        None: search the whole frame (nothing found there, or a face cut by the window's edge)."""
        height, width = image.shape[:2]
        side = max(box[2] - box[0], box[1] - box[3], 1)
        base = min(1.0, self.width / width)  # the whole-frame search's scale
        scale = min(base, CROP_FACE_PX / side)
        window = crop_window(box, width, height, CROP_INPUT_PX / scale)
        # Shrunk like the whole-frame search (an exact 2x is ~0.1 ms; a window shrunk from the full frame
        # by another factor took ~1 ms), then the window cut out and shrunk further when the face is large.
        small = image
        if base < 1.0:
            small = np.asarray(cv2.resize(image, (self.width, max(1, round(height * base))),
                                          interpolation=cv2.INTER_AREA), dtype=np.uint8)
        sx0, sy0 = (min(round(v * base), n - 1) for v, n in zip(window[:2], small.shape[1::-1], strict=True))
        sx1, sy1 = (max(min(round(v * base), n), m + 1) for v, n, m in zip(window[2:], small.shape[1::-1],
                                                                             (sx0, sy0), strict=True))
        part = small[sy0:sy1, sx0:sx1]
        size = (min(CROP_INPUT_PX, max(1, round((sx1 - sx0) * scale / base))),
                min(CROP_INPUT_PX, max(1, round((sy1 - sy0) * scale / base))))
        if size != (sx1 - sx0, sy1 - sy0):
            part = np.asarray(cv2.resize(part, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
        square = np.asarray(cv2.copyMakeBorder(part, 0, CROP_INPUT_PX - size[1], 0, CROP_INPUT_PX - size[0],
                                               cv2.BORDER_CONSTANT, value=(0, 0, 0)), dtype=np.uint8)
        if self._near is None:
            self._near = self._detector.sibling()
        fx, fy = size[0] / (sx1 - sx0) * base, size[1] / (sy1 - sy0) * base  # searched px per frame px
        inner = (sx0 > 0, sy0 > 0, sx1 < small.shape[1], sy1 < small.shape[0])
        boxes: list[Box] = []
        for row in self._near.rows(square):
            x, y, w, h = (float(v) for v in row[:4])
            if _cut_off(x, y, x + w, y + h, size, inner):
                return None
            found = to_hog_box(sx0 / base + x / fx, sy0 / base + y / fy, w / fx, h / fy, width, height)
            if found[2] > found[0] and found[1] > found[3]:
                boxes.append(found)
        return boxes or None


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
