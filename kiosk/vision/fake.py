"""A deterministic stand-in for the dlib face analyzer: a "face" is a square drawn in a known colour.

Like the replay camera for the camera, FakeFaceAnalyzer lets tests (and demos without dlib) run
the door pipeline, kiosk capture and enrolment on scenes made in memory. A FakeFace (person,
photo) is drawn as a filled square (draw_face): the person is the hue (PERSONS of them, 30
degrees apart), the photo the brightness (PHOTOS levels). Its 128-d embedding is fixed by
(person, photo): people are ~1.4 apart, two photos of one person ~PHOTO_SPREAD * 1.4, so a
gallery of photos 1-3 recognises photo 0 well inside the default thresholds. The mirror pass
adds a small fixed offset, so mirror_tta behaves as dlib's does (plain + mirror) / 2. Colours
are read from the middle of the square and matched to the nearest palette entry, so drawn
faces survive JPEG (replay folders). Satisfies the FaceAnalyzer protocol without inheritance.
"""

from __future__ import annotations

import colorsys
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from kiosk.config import RecognitionSettings
from kiosk.vision.embedding import EMBEDDING_SIZE, Embedding
from kiosk.vision.faces import FaceObservation, judge_quality
from kiosk.vision.images import check_image
from kiosk.vision.presence import FaceFinder
from kiosk.vision.types import Box, Landmarks, RGBImage

logger = logging.getLogger(__name__)

PERSONS = 12  # hues 30 degrees apart
PHOTOS = 4  # brightness levels
_VALUES = (255, 215, 175, 135)  # brightness of photo 0..3
# Pixels whose max - min channel is at least this are "face" (the replay background's wall and
# door frame stay below ~60; the darkest face colour is 135).
SATURATION_MIN = 90
# Smallest drawn square found, px a side (anything smaller is noise, e.g. JPEG ringing).
MIN_SIDE_PX = 12
# Distance of a photo's embedding from its person's centre (norm 1), and of the mirror pass.
PHOTO_SPREAD = 0.15
MIRROR_SPREAD = 0.05
# A drawn face is sharp and frontal: what describe() reports for it.
FACE_SHARPNESS = 100.0


@dataclass(frozen=True)
class FakeFace:
    """A drawable face: person 0..PERSONS-1 (the hue), photo 0..PHOTOS-1 (the brightness)."""

    person: int
    photo: int = 0

    def __post_init__(self) -> None:
        if not (0 <= self.person < PERSONS and 0 <= self.photo < PHOTOS):
            raise ValueError(f"a fake face is person 0..{PERSONS - 1}, photo 0..{PHOTOS - 1}: got {self}")

    @property
    def colour(self) -> tuple[int, int, int]:
        """RGB uint8 colour of the drawn square."""
        r, g, b = colorsys.hsv_to_rgb(self.person / PERSONS, 1.0, _VALUES[self.photo] / 255.0)
        return round(r * 255), round(g * 255), round(b * 255)


def _unit(seed: int) -> Embedding:
    vector = np.random.default_rng(seed).normal(size=EMBEDDING_SIZE)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def fake_embedding(face: FakeFace) -> Embedding:
    """The face's plain (no mirror pass) 128-d float32 embedding: its person's centre + its photo's offset."""
    centre = _unit(1000 + face.person)
    return (centre + PHOTO_SPREAD * _unit(2000 + face.person * PHOTOS + face.photo)).astype(np.float32)


def mirror_offset(face: FakeFace) -> Embedding:
    """What the mirror pass adds to the plain embedding, (128,) float32 of norm MIRROR_SPREAD."""
    return (MIRROR_SPREAD * _unit(3000 + face.person * PHOTOS + face.photo)).astype(np.float32)


def draw_face(frame: RGBImage, face: FakeFace, side: int, centre: tuple[int, int]) -> RGBImage:
    """A copy of the RGB uint8 HxWx3 frame with the face drawn as a side x side px square centred at (x, y)."""
    out = frame.copy()
    left, top = centre[0] - side // 2, centre[1] - side // 2
    cv2.rectangle(out, (left, top), (left + side - 1, top + side - 1), face.colour, thickness=-1)
    return out


def blank_frame(size: tuple[int, int] = (640, 480), grey: int = 128) -> RGBImage:
    """An empty RGB uint8 frame of size (width, height), one flat grey."""
    return np.full((size[1], size[0], 3), grey, dtype=np.uint8)


def face_at(image: RGBImage, box: Box) -> FakeFace | None:
    """The drawn face whose colour fills the middle of box, or None (no palette colour there)."""
    top, right, bottom, left = box
    dy, dx = max(1, (bottom - top) // 4), max(1, (right - left) // 4)
    middle = image[max(0, top + dy):max(0, bottom - dy), max(0, left + dx):max(0, right - dx)]
    if middle.size == 0:
        return None
    r, g, b = (float(v) / 255.0 for v in np.median(middle.reshape(-1, 3), axis=0))
    hue, saturation, value = colorsys.rgb_to_hsv(r, g, b)
    if saturation < 0.5 or value * 255 < _VALUES[-1] - 20:
        return None
    person = round(hue * PERSONS) % PERSONS
    photo = int(np.argmin([abs(value * 255 - v) for v in _VALUES]))
    return FakeFace(person, photo)


def _landmarks(box: Box) -> Landmarks:
    """Frontal face_recognition-style landmarks placed in the box (eyes level, nose centred)."""
    top, right, bottom, left = box
    w, h = right - left, bottom - top

    def pt(fx: float, fy: float) -> tuple[int, int]:
        return left + round(fx * w), top + round(fy * h)

    def row(fy: float, x0: float, x1: float, n: int) -> list[tuple[int, int]]:
        return [pt(x0 + (x1 - x0) * i / max(n - 1, 1), fy) for i in range(n)]

    return {
        "chin": [pt(0.05 + 0.9 * i / 16, 0.6 + 0.35 * (1 - abs(i - 8) / 8)) for i in range(17)],
        "left_eyebrow": row(0.28, 0.2, 0.42, 5),
        "right_eyebrow": row(0.28, 0.58, 0.8, 5),
        "nose_bridge": [pt(0.5, 0.35 + 0.05 * i) for i in range(4)],
        "nose_tip": row(0.58, 0.42, 0.58, 5),
        "left_eye": row(0.38, 0.25, 0.4, 6),
        "right_eye": row(0.38, 0.6, 0.75, 6),
        "top_lip": row(0.75, 0.35, 0.65, 12),
        "bottom_lip": row(0.8, 0.35, 0.65, 12),
    }


class FakeFaceAnalyzer:
    """FaceAnalyzer for drawn faces (see the module docstring); also its own presence check.

    embeddings: {FakeFace: plain (128,) embedding} to override fake_embedding for some faces;
    pass_s: seconds each embedding pass takes (a sleep), for tests that compare stage timings.
    """

    def __init__(self, settings: RecognitionSettings | None = None, *,
                 embeddings: Mapping[FakeFace, Embedding] | None = None, pass_s: float = 0.0) -> None:
        self._settings = settings or RecognitionSettings()
        self._embeddings = dict(embeddings or {})
        self.pass_s = pass_s
        self.passes = 0  # embedding passes run so far (plain and mirror)

    @property
    def settings(self) -> RecognitionSettings:
        """The recognition settings (mirror_tta and quality are honoured)."""
        return self._settings

    # -- finding -------------------------------------------------------------------------------
    def detect(self, image: RGBImage) -> list[Box]:
        """Boxes (top, right, bottom, left) px of the drawn squares in an RGB uint8 HxWx3 image."""
        r, g, b = cv2.split(check_image(image))
        spread = cv2.subtract(cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b))
        _, mask = cv2.threshold(spread, SATURATION_MIN - 1, 1, cv2.THRESH_BINARY)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
        boxes: list[Box] = []
        for x, y, w, h, area in np.asarray(stats)[1:count].tolist():
            if min(w, h) >= MIN_SIDE_PX and area >= 0.5 * w * h:
                boxes.append((int(y), int(x + w), int(y + h), int(x)))
        return boxes

    def presence_detector(self, width: int) -> FaceFinder:
        """Itself: drawn squares are found at full resolution whatever the presence width."""
        return self

    # -- FaceAnalyzer --------------------------------------------------------------------------
    def describe(self, image: RGBImage, box: Box, embed_rejected: bool = False,
                 mirror: bool | None = None, embed: bool = True, full_landmarks: bool = True) -> FaceObservation:
        """Landmarks, quality and (unless rejected) the embedding of the drawn face in box, as
        DlibFaceAnalyzer.describe (full_landmarks changes nothing here); a box without a drawn
        face is refused as blurred."""
        image = check_image(image)
        face = face_at(image, box)
        sharpness = FACE_SHARPNESS if face is not None else 0.0
        landmarks = _landmarks(box)
        reason, quality = judge_quality(box[2] - box[0], sharpness, 0.0, self.settings.quality)
        embedding = None
        if embed and (reason is None or embed_rejected):
            embedding = self._embed(face)
            if self.settings.mirror_tta if mirror is None else mirror:
                embedding = ((embedding + self._mirror(face)) / 2.0).astype(np.float32)
        return FaceObservation(box=box, landmarks=landmarks, embedding=embedding, quality=quality,
                               sharpness=sharpness, yaw_ratio=0.0, rejected_reason=reason)

    def face_landmarks(self, image: RGBImage, box: Box) -> Landmarks:
        """The drawn face's landmarks (fixed points of the box), as DlibFaceAnalyzer.face_landmarks."""
        return _landmarks(box)

    def mirror_embedding(self, image: RGBImage, box: Box) -> Embedding:
        """The mirror pass: plain embedding + mirror_offset; (plain + this) / 2 is the mirror_tta one."""
        return self._mirror(face_at(check_image(image), box))

    def analyze(self, image: RGBImage) -> list[FaceObservation]:
        """All drawn faces, largest first."""
        boxes = sorted(self.detect(image), key=lambda b: -(b[2] - b[0]) * (b[1] - b[3]))
        return [self.describe(image, b) for b in boxes]

    def largest_face(self, image: RGBImage) -> FaceObservation | None:
        """The largest drawn face, or None."""
        boxes = self.detect(image)
        if not boxes:
            return None
        return self.describe(image, max(boxes, key=lambda b: (b[2] - b[0]) * (b[1] - b[3])))

    # -- internals -----------------------------------------------------------------------------
    def _embed(self, face: FakeFace | None) -> Embedding:
        self.passes += 1
        if self.pass_s > 0:
            time.sleep(self.pass_s)
        if face is None:  # an embedding was asked for a rejected box: somebody nobody knows
            return _unit(999)
        given = self._embeddings.get(face)
        return np.asarray(given, dtype=np.float32) if given is not None else fake_embedding(face)

    def _mirror(self, face: FakeFace | None) -> Embedding:
        plain = self._embed(face)
        return plain if face is None else (plain + mirror_offset(face)).astype(np.float32)


@dataclass(frozen=True)
class FakeVisit:
    """One arrival in a fake scene: who, and which frames (inclusive) they are in."""

    label: str
    face: FakeFace
    first_frame: int
    steady_from: int
    last_frame: int


@dataclass(frozen=True)
class FakeScene:
    """Frames (RGB uint8 HxWx3; repeated frames are the same array, do not write to them) and visits."""

    frames: list[RGBImage]
    visits: list[FakeVisit]
    fps: float

    def __iter__(self) -> Iterator[tuple[float, RGBImage]]:
        """(frame time s, frame) from 0."""
        return ((i / self.fps, frame) for i, frame in enumerate(self.frames))


def fake_scene(faces: Sequence[FakeFace], fps: float = 5.0, *, steady_s: float = 2.0, empty_s: float = 2.0,
               linger: Mapping[int, float] | None = None, labels: Sequence[str] | None = None,
               tail_s: float = 0.0, size: tuple[int, int] = (640, 480), side: int = 300) -> FakeScene:
    """Arrivals as kiosk.replay_scenes.make_scene makes them (walk up growing, hold still with a
    pixel of jitter for steady_s or linger[i] s, walk off, empty_s of empty frames), in memory."""
    width, height = size
    bg = blank_frame(size)
    side = min(side, height - 20)
    centre = (width // 2, height // 2)
    empty = max(1, round(empty_s * fps))
    frames: list[RGBImage] = [bg] * empty
    visits: list[FakeVisit] = []
    for i, face in enumerate(faces):
        first = len(frames)
        for f in (0.45, 0.6, 0.75, 0.9):  # walking up: grows and slides to the middle
            c = (int(centre[0] + (1 - f) * width * 0.4), centre[1] + int((1 - f) * 30))
            frames.append(draw_face(bg, face, int(side * f), c))
        steady_from = len(frames)
        still = draw_face(bg, face, side, centre)
        jittered = draw_face(bg, face, side, (centre[0] + 2, centre[1] + 1))
        hold = max(1, round((linger or {}).get(i, steady_s) * fps))
        frames += [jittered if (k // 8) % 2 else still for k in range(hold)]
        for f in (0.8, 0.6):  # leaving: shrinks and slides out
            frames.append(draw_face(bg, face, int(side * f), (int(centre[0] - (1 - f) * width * 0.6), centre[1])))
        last = len(frames) - 1
        frames += [bg] * empty
        label = labels[i] if labels and i < len(labels) else f"person {face.person}"
        visits.append(FakeVisit(label, face, first, steady_from, last))
    frames += [bg] * round(tail_s * fps)
    return FakeScene(frames, visits, fps)
