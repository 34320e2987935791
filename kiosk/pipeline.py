"""Frames -> check-in decisions: cheap presence check, steady-face tracking, burst analysis. No I/O.

Per frame (RGB uint8 HxWx3) the Pipeline runs only a cheap face-presence check (dlib HOG,
no upsampling, on a grey copy shrunk to attendance.presence_width; or YuNet on a shrunk copy
when recognition.detector is "yunet"); while it tracks a face seen in the frame before, only a
window around that face is searched (attendance.presence_crop; the whole frame when the face is
not in the window, and every presence_full_every-th frame). When one face is large
enough (recognition.quality.min_face_px) and holds still for attendance.steady_frames frames
(or is at least attendance.start_sharpness sharp already: not blurred by walking; see
kiosk.vision.quality), the next frames are analysed fully, but only that face: its presence box scaled back to the
frame is reused for landmarks and the 128-d embedding at full resolution, then one gallery
search, and expression scores only for people who consented. After frames_per_checkin usable frames
(or earlier when the majority is settled) it returns a CheckinDecision. The same face staying
in front triggers nothing more until it leaves (absent for leave_s), recheck_s passes, or it
moves after holding still and settles again (the next person in a queue stepping into the same spot;
not a face decided on its approach that takes one more step).

Identity rule over a burst: the accepted frames vote; the decision is that person only when
all frames that named someone named the same person and they are a majority. Disagreeing
names restart the burst once, then give "unknown". A first frame within
attendance.single_frame_distance of one person, or single_frame_reject_distance from everyone,
decides alone (one embedding). A re-check of a known face that comes
back "unknown" is dropped (no stranger event for a colleague who turned their head, nor a
second one for a stranger who stays).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, SupportsInt

import numpy as np

from kiosk.config import Settings
from kiosk.gallery import Gallery, match_score
from kiosk.vision.embedding import Embedding
from kiosk.vision.expression import ExpressionClassifier, FusedExpression, fuse
from kiosk.vision.faces import FaceAnalyzer, FaceObservation
from kiosk.vision.presence import NearFinder, make_presence_detector
from kiosk.vision.quality import sharp_enough
from kiosk.vision.types import Box, Float32Array, RGBImage

logger = logging.getLogger(__name__)

PipelineState = Literal["idle", "approaching", "analysing", "done"]
STAGES = ("presence", "detect", "embed", "expression", "match")
# Frames in a row a face must hold still after its decision before a move counts as a possible swap
# (someone else stepping into the spot): a face decided while still walking up moves once or twice
# more as it takes its place (frames overlapping by ~0.4-0.55 at 5 fps in the replay scenes).
SETTLED_FRAMES = 2


@dataclass(frozen=True)
class CheckinDecision:
    """Outcome of one check-in burst; person_id None = unknown face.

    distance/score: gallery match over the agreeing frames (inf/0 when unknown); expression:
    fused scores (None when disabled, no consent or unknown); timings_ms: per stage summed
    over the burst (detect, embed, expression, match) plus "total"; t: frame time (s).
    """

    person_id: int | None
    distance: float
    score: float
    expression: FusedExpression | None
    frames_used: int
    frames_analysed: int
    timings_ms: dict[str, float]
    t: float
    recheck: bool = False
    box: Box | None = None
    mirror_passes: int = 0

    @property
    def known(self) -> bool:
        """True when an enrolled person was recognised."""
        return self.person_id is not None


@dataclass
class _FrameResult:
    person_id: int | None
    distance: float
    quality: float
    embedding: Embedding
    scores: Float32Array | None
    score: float = 0.0  # the frame's match score (0..1; 0 when nobody was accepted)


@dataclass
class _Track:
    box: Box
    steady: int = 1
    last_seen: float = 0.0
    started: float = 0.0
    analysed: int = 0
    results: list[_FrameResult] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    retried: bool = False
    decided_at: float | None = None
    person_id: int | None = None
    known_before: bool = False
    decisions: int = 0
    mirror_passes: int = 0
    moved: bool = False  # the face held still after the decision, then moved (maybe someone else stepped in)
    still_after: int = 0  # frames since the decision that overlapped the one before by steady_iou, in a row


def _person_id(value: object) -> int:
    """The gallery's person id as an int (the door's gallery holds the store's integer ids)."""
    if isinstance(value, str | SupportsInt):
        return int(value)
    raise TypeError(f"the door pipeline needs integer person ids, got {value!r}")


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (top, right, bottom, left) boxes, 0..1."""
    top, bottom = max(a[0], b[0]), min(a[2], b[2])
    left, right = max(a[3], b[3]), min(a[1], b[1])
    inter = max(0, bottom - top) * max(0, right - left)
    area = (a[2] - a[0]) * (a[1] - a[3]) + (b[2] - b[0]) * (b[1] - b[3]) - inter
    return inter / area if area > 0 else 0.0


class Pipeline:
    """Turns a stream of frames into check-in decisions (see the module docstring)."""

    def __init__(
        self,
        analyzer: FaceAnalyzer,
        gallery: Gallery,
        classifier: ExpressionClassifier | None,
        settings: Settings,
        consent: Callable[[int], bool] = lambda _pid: False,
    ) -> None:
        self.analyzer = analyzer
        self.gallery = gallery
        self.classifier = classifier
        self.settings = settings
        self.consent = consent
        self.presence = make_presence_detector(settings, analyzer)
        self._track: _Track | None = None
        self._seen_before = False  # the previous frame's presence check found a face
        self._since_full = 0  # frames searched only around the tracked face since the last whole-frame search
        # Presence searches so far: "window" (around the tracked face, found it), "whole" (the whole
        # frame), "missed" (the window search found nothing usable, then the whole frame was searched).
        self.presence_counts = {"window": 0, "whole": 0, "missed": 0}
        # Stage times of the latest frame: "presence" always, "embed" when it was analysed.
        self.last_frame_ms: dict[str, float] = {}
        self.hint: str | None = None  # e.g. "come closer", for the door screen

    # -- public ------------------------------------------------------------------------------
    @property
    def state(self) -> PipelineState:
        """idle (no face), approaching (face not yet steady/large), analysing, or done."""
        track = self._track
        if track is None:
            return "idle"
        if track.decided_at is not None:
            return "done"
        if track.analysed:
            return "analysing"
        return "approaching"

    def reset(self) -> None:
        """Forget the current face (e.g. after the camera was lost)."""
        self._track = None
        self._seen_before = False
        self.hint = None

    def set_gallery(self, gallery: Gallery) -> None:
        """Swap in a reloaded gallery (the current burst restarts)."""
        self.gallery = gallery
        if self._track is not None and self._track.decided_at is None:
            self._track.results.clear()
            self._track.analysed = 0

    def process(self, image: RGBImage, t: float | None = None) -> CheckinDecision | None:
        """Feed one RGB uint8 HxWx3 frame taken at t seconds (monotonic; default now)."""
        t = time.monotonic() if t is None else t
        self.last_frame_ms = {}
        start = time.perf_counter()
        boxes = self._find_faces(image)
        self.last_frame_ms["presence"] = (time.perf_counter() - start) * 1000.0
        box = self._pick(boxes)
        self._seen_before = box is not None
        track = self._track
        if box is None:
            if track is not None and t - track.last_seen >= self.settings.attendance.leave_s:
                logger.debug("face left after %.1f s", t - track.started)
                self._track = None
                self.hint = None
            return None
        if track is None:
            self._track = _Track(box=box, last_seen=t, started=t)
            return self._maybe_analyse(image, t)
        same = iou(box, track.box) >= 0.2 or t - track.last_seen < 0.5
        if not same:  # a different face took over
            self._track = _Track(box=box, last_seen=t, started=t)
            return self._maybe_analyse(image, t)
        if iou(box, track.box) >= self.settings.attendance.steady_iou:
            track.steady += 1
            track.still_after += track.decided_at is not None
        else:
            track.steady = 1
            # Only a face that settled after its decision can be replaced: one still walking up or
            # settling (the decision fell on the approach) is the same person taking their place.
            track.moved = track.moved or (track.decided_at is not None and track.still_after >= SETTLED_FRAMES)
            track.still_after = 0
        track.box = box
        track.last_seen = t
        return self._maybe_analyse(image, t)

    # -- internals ---------------------------------------------------------------------------
    def _find_faces(self, image: RGBImage) -> list[Box]:
        """The presence check: around the tracked face when it was seen in the frame before (see
        attendance.presence_crop), else, or when that finds nothing usable, the whole frame."""
        a = self.settings.attendance
        track = self._track
        if (a.presence_crop and track is not None and self._seen_before and isinstance(self.presence, NearFinder)
                and self._since_full + 1 < a.presence_full_every):
            near = self.presence.detect_near(image, track.box)
            if near:
                self._since_full += 1
                self.presence_counts["window"] += 1
                return near
            self.presence_counts["missed"] += 1
        self._since_full = 0
        self.presence_counts["whole"] += 1
        return self.presence.detect(image)

    def _pick(self, boxes: list[Box]) -> Box | None:
        if not boxes:
            return None
        return max(boxes, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))

    def _maybe_analyse(self, image: RGBImage, t: float) -> CheckinDecision | None:
        track = self._track
        assert track is not None
        a = self.settings.attendance
        q = self.settings.recognition.quality
        if track.decided_at is not None:
            # A face that moved and settled again may be the next person in the queue.
            swapped = track.moved and track.steady >= a.steady_frames and t - track.decided_at >= 1.0
            if t - track.decided_at < a.recheck_s and not swapped:
                return None
            # Re-check: a fresh burst; the attendance cooldown keeps a lingering person to one event.
            track.moved = False
            track.known_before = track.person_id is not None
            track.decided_at = None
            track.results.clear()
            track.timings.clear()
            track.analysed = 0
            track.mirror_passes = 0
            track.retried = False
        height = track.box[2] - track.box[0]
        if height < q.min_face_px:  # describe() would refuse it for its size: skip its landmarks
            self.hint = "come closer"
            return None
        # A face is analysed once it held still for steady_frames frames, or at once when it is sharp
        # (walking up blurs a face; a blurred one waits until it holds still).
        if (track.analysed == 0 and track.steady < a.steady_frames
                and not sharp_enough(image, track.box, a.start_sharpness)):
            return None
        self.hint = None
        result = self._analyse(image, track)
        track.analysed += 1
        if result is not None:
            track.results.append(result)
        return self._decide(track, t)

    def _analyse(self, image: RGBImage, track: _Track) -> _FrameResult | None:
        timings = track.timings
        # The presence box (scaled back to the frame) is reused: no second detection.
        timings["detect"] = timings.get("detect", 0.0) + self.last_frame_ms.get("presence", 0.0)
        face_box = track.box
        # Fast path: the burst's first frame is embedded once, without the mirror pass; a close
        # match decides on it alone. Otherwise the mirror half is added, giving exactly the
        # mirror_tta embedding the rule was calibrated with, so nothing is computed twice.
        split_tta = self._fast_path_on() and not track.results and self.analyzer.settings.mirror_tta
        start = time.perf_counter()
        # Only dlib's 5 landmarks (chip and head turn); the 68 are computed for the expression crop alone.
        obs: FaceObservation = self.analyzer.describe(image, face_box, mirror=False if split_tta else None,
                                                      full_landmarks=False)
        embed_ms = (time.perf_counter() - start) * 1000.0
        if not split_tta and self.analyzer.settings.mirror_tta and obs.embedding is not None:
            track.mirror_passes += 1
        timings["embed"] = timings.get("embed", 0.0) + embed_ms
        self.last_frame_ms["embed"] = embed_ms
        if not obs.accepted:
            self.hint = obs.rejected_reason.split(": ")[-1] if obs.rejected_reason else None
            logger.debug("frame rejected: %s", obs.rejected_reason)
            return None
        assert obs.embedding is not None
        start = time.perf_counter()
        match = self.gallery.identify(obs.embedding)
        timings["match"] = timings.get("match", 0.0) + (time.perf_counter() - start) * 1000.0
        if split_tta and not self._close(match.person_id, match.distance) and not self._far(match.distance):
            start = time.perf_counter()
            obs.embedding = (obs.embedding + self.analyzer.mirror_embedding(image, face_box)) / 2.0
            timings["embed"] += (time.perf_counter() - start) * 1000.0
            track.mirror_passes += 1
            start = time.perf_counter()
            match = self.gallery.identify(obs.embedding)
            timings["match"] += (time.perf_counter() - start) * 1000.0
        person = None if match.person_id is None else _person_id(match.person_id)
        scores = None
        if self.classifier is not None and person is not None and self.consent(person):
            start = time.perf_counter()
            scores = self.classifier.scores_for_face(image, self.analyzer.face_landmarks(image, face_box))
            timings["expression"] = timings.get("expression", 0.0) + (time.perf_counter() - start) * 1000.0
        return _FrameResult(person, match.distance, obs.quality, obs.embedding, scores, match.score)

    def _fast_path_on(self) -> bool:
        a = self.settings.attendance
        return a.early_decision and a.single_frame_distance > 0

    def _close(self, person_id: object, distance: float) -> bool:
        return person_id is not None and distance <= self.settings.attendance.single_frame_distance

    def _far(self, distance: float) -> bool:
        return distance >= self.settings.attendance.single_frame_reject_distance

    def _confident(self, results: list[_FrameResult]) -> bool:
        """One frame so close to one person, or so far from everyone, that more frames would add nothing."""
        if len(results) != 1:
            return False
        first = results[0]
        return self._close(first.person_id, first.distance) or (first.person_id is None and self._far(first.distance))

    def _decide(self, track: _Track, t: float) -> CheckinDecision | None:
        a = self.settings.attendance
        n = a.frames_per_checkin
        results = track.results
        votes = Counter(r.person_id for r in results)
        need = n // 2 + 1  # majority of a full burst
        named = [p for p in votes if p is not None]
        settled = False
        if len(named) > 1:
            if not track.retried:
                logger.info("burst frames disagree (%s); retrying", dict(votes))
                track.retried = True
                results.clear()
                return None
            settled = True
        elif a.early_decision and max(votes.values(), default=0) >= need:
            settled = True
        elif self._fast_path_on() and self._confident(results):
            settled = True
            need = 1
        elif len(results) >= n:
            settled = True
        if not settled:
            if track.analysed >= a.max_burst_frames:
                logger.info("no usable face in %d frames; waiting for the person to leave", track.analysed)
                track.decided_at = t  # wait for leave/recheck, no event
                track.still_after = 0
                track.person_id = None
            return None
        person: int | None = None
        if len(named) == 1 and votes[named[0]] >= need and votes[named[0]] * 2 > len(results):
            person = named[0]
        agreeing = [r for r in results if r.person_id == person] if person is not None else results
        timings = {k: round(track.timings.get(k, 0.0), 3) for k in STAGES[1:]}
        start = time.perf_counter()
        distance, score = float("inf"), 0.0
        if person is not None and len(agreeing) == 1:  # that frame's own match: no second search
            distance, score = agreeing[0].distance, agreeing[0].score
        elif person is not None:
            match = self.gallery.identify(np.stack([r.embedding for r in agreeing]))
            if match.person_id == person:
                distance, score = match.distance, match.score
            else:  # averaged probes fall just outside the rule: keep the best frame's figures
                best = min(agreeing, key=lambda r: r.distance)
                distance = best.distance
                score = match_score(distance, self.settings.recognition.max_distance)
        timings["match"] += (time.perf_counter() - start) * 1000.0
        expression = None
        if person is not None:
            scored = [(r.scores, r.quality) for r in agreeing if r.scores is not None]
            if scored:
                expression = fuse([scores for scores, _ in scored], [quality for _, quality in scored])
        timings["total"] = round(sum(timings.values()), 3)
        # A re-check that names someone else is a new arrival (greeted), not a re-check.
        recheck = track.decisions > 0 and (person is None or person == track.person_id)
        track.decisions += 1
        track.decided_at = t
        track.still_after = 0
        prior_known = track.known_before
        track.person_id = person if person is not None else track.person_id
        if person is None and recheck:
            logger.debug("re-check gave unknown (known before: %s); dropped", prior_known)
            return None
        return CheckinDecision(person, distance, score, expression, len(agreeing), track.analysed,
                               timings, t, recheck=recheck, box=track.box, mirror_passes=track.mirror_passes)
