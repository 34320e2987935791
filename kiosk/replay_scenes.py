"""Synthetic door scenes for replay: photos composed onto a background as people arriving.

Each visit is: the face grows over a few frames (walking up), holds still in front of the
camera (with a pixel of jitter), shrinks away, then a few empty frames. Frames are written as
frame_000000.jpg ... (640x480 by default) for the replay camera; make_scene() returns what
should be recognised where, so tests, the demo and the benchmark can check the result.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from kiosk.vision.faces import load_image

logger = logging.getLogger(__name__)

FRAME_SIZE = (640, 480)  # width, height
# Photo side in pixels when the person stands in front of the camera (LFW photos: face ~3/4).
STEADY_PHOTO_PX = 300


@dataclass(frozen=True)
class Visit:
    """One arrival in a scene: who (photo, label), and which frames (inclusive) they are in."""

    label: str
    photo: Path
    stranger: bool
    first_frame: int
    steady_from: int
    last_frame: int
    fps: float

    @property
    def start_s(self) -> float:
        """Seconds from the scene start to the first frame of the visit."""
        return self.first_frame / self.fps

    @property
    def steady_s(self) -> float:
        """Seconds from the scene start to when the face holds still."""
        return self.steady_from / self.fps


def background(size: tuple[int, int] = FRAME_SIZE, seed: int = 0) -> npt.NDArray[np.uint8]:
    """A plain "entrance" scene, RGB uint8 HxWx3: a wall gradient, a door frame, some noise."""
    width, height = size
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    wall = 150.0 + 40.0 * y - 20.0 * x
    image = np.stack([wall * 0.95, wall * 0.9, wall * 0.8], axis=-1)
    image[:, : width // 12] *= 0.6  # door frame left
    image[:, -width // 12:] *= 0.6  # door frame right
    image += rng.normal(0.0, 3.0, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def _feather_mask(side: int) -> npt.NDArray[np.float32]:
    """float32 side x side alpha: 1 inside an ellipse, fading to 0 at the photo's edges."""
    mask = np.zeros((side, side), np.float32)
    cv2.ellipse(mask, (side // 2, side // 2), (int(side * 0.42), int(side * 0.48)), 0, 0, 360, 1.0, -1)
    blur = max(3, (side // 10) | 1)
    return cast(npt.NDArray[np.float32], cv2.GaussianBlur(mask, (blur, blur), 0)[:, :, None])


def compose(bg: npt.NDArray[np.uint8], photo: npt.NDArray[np.uint8], side: int,
            centre: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """bg (RGB uint8 HxWx3) with photo scaled to side x side px, feathered, centred at (x, y)."""
    out = bg.astype(np.float32)
    scaled = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA if side < photo.shape[0]
                        else cv2.INTER_LINEAR).astype(np.float32)
    alpha = _feather_mask(side)
    height, width = bg.shape[:2]
    left, top = centre[0] - side // 2, centre[1] - side // 2
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + side, width), min(top + side, height)
    if x1 <= x0 or y1 <= y0:
        return bg.copy()
    px0, py0 = x0 - left, y0 - top
    patch = scaled[py0:py0 + (y1 - y0), px0:px0 + (x1 - x0)]
    a = alpha[py0:py0 + (y1 - y0), px0:px0 + (x1 - x0)]
    out[y0:y1, x0:x1] = a * patch + (1.0 - a) * out[y0:y1, x0:x1]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


class _Writer:
    """Writes numbered JPEG frames; identical consecutive frames become hard links (fast, small)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.count = 0
        self._last: tuple[int, Path] | None = None

    def write(self, image: npt.NDArray[np.uint8], key: int | None = None) -> None:
        path = self.out_dir / f"frame_{self.count:06d}.jpg"
        if key is not None and self._last is not None and self._last[0] == key:
            try:
                os.link(self._last[1], path)
            except OSError:
                path.write_bytes(self._last[1].read_bytes())
        else:
            ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                                    [cv2.IMWRITE_JPEG_QUALITY, 90])
            if not ok:  # pragma: no cover - cv2 always encodes uint8 RGB
                raise OSError(f"cannot encode frame {path}")
            path.write_bytes(data.tobytes())
            self._last = (key, path) if key is not None else None
        self.count += 1


@dataclass(frozen=True)
class Arrival:
    """One person to walk up in a scene: photo, label, stranger or not, and how they look.

    mirror: the photo flipped left-right (the other side of the face); side: photo side px when
    standing in front (default STEADY_PHOTO_PX: smaller is further away); gain: brightness factor.
    """

    photo: Path
    label: str
    stranger: bool = False
    mirror: bool = False
    side: int | None = None
    gain: float = 1.0


def make_scene(
    people_photos: list[Path],
    stranger: Path | None,
    out_dir: Path,
    fps: float = 5.0,
    *,
    steady_s: float = 2.0,
    empty_s: float = 2.0,
    linger: dict[int, float] | None = None,
    size: tuple[int, int] = FRAME_SIZE,
    labels: list[str] | None = None,
    tail_s: float = 0.0,
) -> list[Visit]:
    """Write a scene of arrivals as numbered JPEG frames into out_dir; returns the visits in order.

    people_photos: one photo per arriving person (in order), then the stranger (if any) arrives.
    steady_s: seconds each face holds still; linger {visit index: seconds} overrides it for
    some visits (a person staying in front of the camera). empty_s: empty frames between visits.
    labels: names for the visits (default: the photo's parent folder name, "stranger").
    tail_s: extra seconds of empty frames at the end.
    """
    entries = [(p, False) for p in people_photos] + ([(stranger, True)] if stranger is not None else [])
    arrivals = [Arrival(Path(photo), labels[i] if labels and i < len(labels) else (
        "stranger" if is_stranger else Path(photo).parent.name), is_stranger)
        for i, (photo, is_stranger) in enumerate(entries)]
    return make_arrivals_scene(arrivals, out_dir, fps, steady_s=steady_s, empty_s=empty_s, linger=linger,
                               size=size, tail_s=tail_s)


def make_arrivals_scene(
    arrivals: list[Arrival],
    out_dir: Path,
    fps: float = 5.0,
    *,
    steady_s: float = 2.0,
    empty_s: float = 2.0,
    linger: dict[int, float] | None = None,
    size: tuple[int, int] = FRAME_SIZE,
    tail_s: float = 0.0,
) -> list[Visit]:
    """make_scene() for Arrival entries (mirrored, further away, darker); returns the visits in order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("frame_*.jpg"):
        old.unlink()
    bg = background(size)
    width, height = size
    writer = _Writer(out_dir)
    empty_frames = max(1, round(empty_s * fps))
    for _ in range(empty_frames):
        writer.write(bg, key=-1)
    linger = linger or {}
    visits: list[Visit] = []
    centre = (width // 2, height // 2)
    for i, arrival in enumerate(arrivals):
        photo = load_image(arrival.photo)
        if arrival.mirror:
            photo = np.ascontiguousarray(photo[:, ::-1])
        if arrival.gain != 1.0:
            photo = np.clip(photo.astype(np.float32) * arrival.gain, 0, 255).astype(np.uint8)
        side = min(arrival.side or STEADY_PHOTO_PX, height - 20)
        first = writer.count
        # Walking up: the face grows and slides to the middle.
        approach = [0.45, 0.6, 0.75, 0.9]
        for f in approach:
            c = (int(centre[0] + (1 - f) * width * 0.4), centre[1] + int((1 - f) * 30))
            writer.write(compose(bg, photo, int(side * f), c))
        steady_from = writer.count
        hold = max(1, round(linger.get(i, steady_s) * fps))
        still = compose(bg, photo, side, centre)
        jittered = compose(bg, photo, side, (centre[0] + 2, centre[1] + 1))
        for k in range(hold):
            # A pixel of jitter every few frames; identical frames are hard links on disk.
            writer.write(jittered if (k // 8) % 2 else still, key=(i * 2 + (k // 8) % 2) * 1000)
        for f in (0.8, 0.6):  # leaving: shrinks and slides out
            c = (int(centre[0] - (1 - f) * width * 0.6), centre[1])
            writer.write(compose(bg, photo, int(side * f), c))
        last = writer.count - 1
        for _ in range(empty_frames):
            writer.write(bg, key=-1)
        visits.append(Visit(arrival.label, arrival.photo, arrival.stranger, first, steady_from, last, fps))
    for _ in range(round(tail_s * fps)):
        writer.write(bg, key=-1)
    logger.info("scene: %d frames, %d visits in %s", writer.count, len(visits), out_dir)
    return visits
