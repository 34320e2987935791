"""Does a walking-blurred first frame decide wrongly? The door's first analysed frame, measured.

`python -m kiosk.bench_blur --data DIR [--strangers DIR] [--limit N] [--json]`: every person in
DIR/people is enrolled with their first `enrol` photos (as `kiosk evaluate faces`), and their next
photo and every stranger photo (DIR/strangers and the --strangers folders, the first `limit` of
them) walk up: each is composed into a 640x480 door frame as the replay scenes' first approach
frame (photo `side` px, right of the middle), smeared `length` px along the walk
(kiosk.vision.quality.motion_blur) for each length, and fed to a fresh Pipeline that analyses
the first frame whatever its sharpness. Per length and kind (known, stranger) it counts what that
single frame did: no_face, not_analysed (face too small for the door), refused (quality checks:
too small, blurred, turned), waits (sharp enough to be analysed but below
attendance.start_sharpness: the door waits for the face to hold still instead), right / wrong /
turned_away (a known face decided on this frame alone: right person, another person, "unknown"),
accepted / rejected (a stranger decided alone: as somebody, as unknown), vote (not decided alone:
more frames vote); and sharpness p10/p50/p90 (variance of the Laplacian of the face crop).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from kiosk.config import Settings
from kiosk.gallery import Gallery
from kiosk.pipeline import Pipeline
from kiosk.replay_scenes import background, compose
from kiosk.vision.faces import DlibFaceAnalyzer, load_image, make_analyzer, sharpness_of
from kiosk.vision.quality import motion_blur

logger = logging.getLogger(__name__)

LENGTHS = (0, 5, 9, 15, 25)  # px of smear in a 640x480 frame: still, walking slowly .. fast in dim light
# The replay scenes' first approach frame: the photo at 0.45 of 300 px, 0.55 of the way from the middle.
FIRST_SIDE = 135
FIRST_CENTRE = (320 + round(0.55 * 640 * 0.4), 240 + round(0.55 * 30))


def _outcome(pipeline: Pipeline, decided: bool, person: int | None, truth: int | None,
             sharpness: float, start_sharpness: float) -> str:
    """What the first frame did (see the module doc)."""
    track = pipeline._track
    if track is None:
        return "no_face"
    if not track.analysed:
        return "not_analysed"
    if not track.results:
        return "refused"
    if sharpness < start_sharpness:
        return "waits"
    if not decided:
        return "vote"
    if truth is None:
        return "rejected" if person is None else "accepted"
    return "turned_away" if person is None else ("right" if person == truth else "wrong")


def blur_study(settings: Settings, people: dict[str, list[Path]], strangers: list[Path], *,
               lengths: tuple[int, ...] = LENGTHS, enrol: int = 3,
               analyzer: DlibFaceAnalyzer | None = None) -> dict[str, Any]:
    """{"people", "strangers", "start_sharpness", "lengths": {length: {"known"|"stranger": {outcome: n,
    "sharpness": [p10, p50, p90]}}}} for people {name: photos} (those with more than `enrol`
    photos) and stranger photos; see the module doc."""
    analyzer = analyzer or make_analyzer(settings.recognition)
    first_frame = settings.model_copy(deep=True)
    first_frame.attendance.steady_frames = 1
    first_frame.attendance.start_sharpness = 0.0
    gallery = Gallery(settings.recognition)
    probes: list[tuple[Path, int | None]] = []
    for pid, (_name, photos) in enumerate(sorted(people.items()), 1):
        if len(photos) <= enrol:
            continue
        faces = [analyzer.largest_face(load_image(p)) for p in photos[:enrol]]
        embeddings = [f.embedding for f in faces if f is not None and f.accepted and f.embedding is not None]
        if embeddings:
            gallery.add(pid, np.stack(embeddings))
            probes.append((photos[enrol], pid))
    enrolled = len(probes)
    probes += [(p, None) for p in strangers]
    counts = {length: {"known": Counter[str](), "stranger": Counter[str]()} for length in lengths}
    sharp: dict[int, dict[str, list[float]]] = {length: {"known": [], "stranger": []} for length in lengths}
    bg = background()
    for n, (path, truth) in enumerate(probes, 1):
        frame = compose(bg, load_image(path), FIRST_SIDE, FIRST_CENTRE)
        kind = "stranger" if truth is None else "known"
        for length in lengths:
            image = motion_blur(frame, length)
            pipeline = Pipeline(analyzer, gallery, None, first_frame)
            decision = pipeline.process(image, 0.0)
            track = pipeline._track
            value = sharpness_of(image, track.box) if track is not None else 0.0
            if track is not None and track.analysed:
                sharp[length][kind].append(value)
            counts[length][kind][_outcome(pipeline, decision is not None,
                                          decision.person_id if decision else None, truth, value,
                                          settings.attendance.start_sharpness)] += 1
        if n % 100 == 0:
            logger.info("blur study: %d of %d photos", n, len(probes))
    return {"people": enrolled, "strangers": len(strangers), "start_sharpness": settings.attendance.start_sharpness,
            "lengths": {str(length): {kind: {**dict(counts[length][kind]), "sharpness": [
                round(float(np.percentile(v, q)), 1) for q in (10, 50, 90)] if (v := sharp[length][kind]) else []}
                for kind in ("known", "stranger")} for length in lengths}}


def format_study(result: dict[str, Any]) -> str:
    """A table of a blur_study() result, one line per smear length and kind."""
    lines = [f"{result['people']} enrolled people (one probe each), {result['strangers']} strangers; "
             f"first approach frame, start_sharpness {result['start_sharpness']}"]
    for length, kinds in result["lengths"].items():
        for kind, row in kinds.items():
            cells = ", ".join(f"{k} {v}" for k, v in sorted(row.items()) if k != "sharpness")
            lines.append(f"blur {length:>2} px {kind:8} {cells}; sharpness p10/p50/p90 {row['sharpness']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """CLI: see the module doc."""
    from kiosk.errors import KioskError
    from kiosk.evaluation.faces import list_dataset, stranger_photos

    parser = argparse.ArgumentParser(prog="python -m kiosk.bench_blur", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with people/<Name>/*.jpg (and strangers/)")
    parser.add_argument("--strangers", type=Path, action="append", default=[], help="extra stranger photos folder")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N stranger photos")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of the table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        people, strangers = list_dataset(args.data)
        if args.strangers:
            strangers += stranger_photos(args.strangers)
        settings = Settings()
        settings.expression.enabled = False
        result = blur_study(settings, people, strangers[:args.limit])
    except (KioskError, OSError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(2) from None
    sys.stdout.write((json.dumps(result) if args.json else format_study(result)) + "\n")


if __name__ == "__main__":
    main()
