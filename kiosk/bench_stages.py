"""`kiosk bench`'s side-by-side stage times: both detectors and both embedders on the same door frames.

For each frame (RGB uint8 HxWx3, a check-in's first analysed frame), interleaved so that all
variants see the same machine load, in ms:
  presence   the door's presence check (kiosk.vision.presence) on the shrunk frame: YuNet
             and dlib HOG (each gives the box the later stages use); window: YuNet's check
             only around that box (detect_near, what the door runs while it tracks a face);
  landmarks  dlib's 5-point shape in that box plus the quality checks (sharpness, yaw): what
             the door computes before embedding; landmarks68 the 68-point shape (only needed
             for the expression crop, and formerly on every analysed frame);
  chip       dlib.get_face_chip (150 px, padding 0.25) from the 5 points;
  embed      one pass of the 128-d net on that chip: the LiteRT twin and dlib's ResNet;
  mirror     the whole mirror pass (flip, landmarks, chip, net) per embedder;
  search     one gallery search (the bench's gallery).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt

from kiosk.config import Settings
from kiosk.gallery import Gallery
from kiosk.vision.faces import judge_quality, sharpness_of, yaw_ratio_of
from kiosk.vision.types import Box

logger = logging.getLogger(__name__)

DETECTORS = ("yunet", "hog")
EMBEDDERS = ("litert", "dlib")


def _summary(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "n": 0}
    return {"p50": round(float(np.percentile(values, 50)), 2), "p95": round(float(np.percentile(values, 95)), 2),
            "n": len(values)}


@contextmanager
def _clock(times: list[float]) -> Iterator[None]:
    """Appends the ms the with-block took to times."""
    start = time.perf_counter()
    yield
    times.append((time.perf_counter() - start) * 1000.0)


def _largest(boxes: list[Box]) -> Box | None:
    return max(boxes, key=lambda b: (b[2] - b[0]) * (b[1] - b[3])) if boxes else None


def stage_times(settings: Settings, frames: list[npt.NDArray[np.uint8]], gallery: Gallery,
                rounds: int = 2) -> dict[str, Any]:
    """{stage: {variant: {p50, p95, n} ms}} on frames (see the module doc), plus "faces_found"
    {detector: frames with a face}; every frame `rounds` times."""
    from kiosk.vision.faces import make_analyzer
    from kiosk.vision.presence import (
        FaceFinder,
        NearFinder,
        PresenceDetector,
        YuNetPresenceDetector,
    )

    r = settings.recognition
    analyzers = {name: make_analyzer(r.model_copy(update={"embedder": name, "detector": "yunet"}))
                 for name in EMBEDDERS}
    base = analyzers["litert"]
    embedder, encoder = base._embedder, analyzers["dlib"]._api.face_encoder
    assert embedder is not None
    api = base._api
    widths = {"yunet": r.yunet_presence_width, "hog": settings.attendance.presence_width}
    presence: dict[str, FaceFinder] = {"yunet": YuNetPresenceDetector(widths["yunet"], base.yunet),
                                       "hog": PresenceDetector(widths["hog"])}
    times: dict[str, dict[str, list[float]]] = {
        stage: {v: [] for v in variants} for stage, variants in (
            ("presence", DETECTORS), ("window", ("yunet",)), ("landmarks", DETECTORS), ("landmarks68", DETECTORS), ("chip", DETECTORS),
            ("embed", EMBEDDERS), ("mirror", EMBEDDERS), ("search", ("gallery",)))}
    found = {d: 0 for d in DETECTORS}
    for k in range(rounds):
        for image in frames:
            chip: Any = None
            chip_box: Box | None = None
            for det in DETECTORS:
                with _clock(times["presence"][det]):
                    box = _largest(presence[det].detect(image))
                if box is None:
                    continue
                found[det] += k == 0
                near = presence[det]
                if isinstance(near, NearFinder):
                    with _clock(times["window"][det]):
                        near.detect_near(image, box)
                rect = api._css_to_rect(box)
                with _clock(times["landmarks"][det]):
                    shape = api.pose_predictor_5_point(image, rect)
                    points = {"nose_tip": [(shape.part(4).x, shape.part(4).y)],
                              "left_eye": [(shape.part(i).x, shape.part(i).y) for i in (2, 3)],
                              "right_eye": [(shape.part(i).x, shape.part(i).y) for i in (0, 1)]}
                    judge_quality(box[2] - box[0], sharpness_of(image, box), yaw_ratio_of(points), r.quality)
                with _clock(times["landmarks68"][det]):
                    api.pose_predictor_68_point(image, rect)
                with _clock(times["chip"][det]):
                    got = base._dlib.get_face_chip(image, shape, size=150, padding=0.25)
                if chip_box is None or det == r.detector:
                    chip, chip_box = got, box
            if chip_box is None:
                continue
            with _clock(times["embed"]["litert"]):
                embedding = embedder.embed_chip(chip)
            with _clock(times["embed"]["dlib"]):
                encoder.compute_face_descriptor(chip)
            for name in EMBEDDERS:
                with _clock(times["mirror"][name]):
                    analyzers[name].mirror_embedding(image, chip_box)
            with _clock(times["search"]["gallery"]):
                gallery.identify(embedding)
    out: dict[str, Any] = {stage: {v: _summary(t) for v, t in variants.items()} for stage, variants in times.items()}
    out["faces_found"] = found
    out["frames"] = len(frames)
    out["presence_width"] = widths
    return out


def format_stages(stages: dict[str, Any]) -> list[str]:
    """Lines of a per-stage table (p50 / p95 ms) of a stage_times() result."""
    widths = ", ".join(f"{d} {w} px" for d, w in stages["presence_width"].items())
    lines = [f"per stage, same {stages['frames']} frames (p50/p95 ms; presence on frames shrunk to {widths})"]
    for stage in ("presence", "window", "landmarks", "landmarks68", "chip", "embed", "mirror", "search"):
        cells = ", ".join(f"{v} {s['p50']}/{s['p95']}" for v, s in stages[stage].items())
        lines.append(f"  {stage:12}{cells}")
    lines.append("  faces found: " + ", ".join(f"{d} {n}" for d, n in stages["faces_found"].items()))
    return lines
