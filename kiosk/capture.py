"""Enrolment at the kiosk: the door camera takes the photos of a person an admin asked for.

An admin queues a capture request (web app or `kiosk enroll --at-kiosk`, see store.captures).
The door service hands every frame to DoorEnrolment while a request is active instead of to
the check-in pipeline: it keeps a photo whenever exactly one usable face is in view (and at
least enrolment.capture_interval_s of frame time after the previous one), then enrols the
person from those photos with the same checks as photo enrolment (kiosk.enrolment.enrol:
duplicates of other people, consistency) and records the outcome on the request.
Runs on the service thread only (it writes to the database).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np

from kiosk import store
from kiosk.config import Settings
from kiosk.enrolment import EnrolmentError, enrol
from kiosk.errors import KioskError, StoreError
from kiosk.screen import ScreenState, display_name
from kiosk.screen.state import Message
from kiosk.vision.faces import FaceAnalyzer
from kiosk.vision.presence import make_presence_detector
from kiosk.vision.types import Box, RGBImage
from kiosk.vocabulary import CaptureStatus

logger = logging.getLogger(__name__)

CHECK_S = 1.0  # seconds between looks at the request table (new requests, cancels, expiry)


def crop_around(image: RGBImage, box: Box, margin: float = 0.8) -> RGBImage:
    """The face box (top, right, bottom, left) grown by margin x its size on each side, clipped
    to the RGB uint8 HxWx3 image: enough context to find the face again, little background."""
    top, right, bottom, left = box
    dy, dx = int((bottom - top) * margin), int((right - left) * margin)
    h, w = image.shape[:2]
    return np.ascontiguousarray(image[max(0, top - dy):min(h, bottom + dy), max(0, left - dx):min(w, right + dx)])


class PhotoCollector:
    """Keeps up to `wanted` face crops from frames, one per interval_s of frame time.

    Per frame only the door's cheap presence detector and a quality check run (no embedding):
    the kept crops are analysed fully once, when the person is enrolled from them.
    """

    def __init__(self, analyzer: FaceAnalyzer, find_faces: Callable[[RGBImage], list[Box]], wanted: int,
                 interval_s: float) -> None:
        self.analyzer = analyzer
        self.find_faces = find_faces  # RGB uint8 HxWx3 frame -> face boxes (top, right, bottom, left) px
        self.wanted = wanted
        self.interval_s = interval_s
        self.photos: list[tuple[str, RGBImage]] = []
        self._last_taken: float | None = None

    @property
    def taken(self) -> int:
        """Photos kept so far."""
        return len(self.photos)

    @property
    def complete(self) -> bool:
        """All wanted photos taken."""
        return self.taken >= self.wanted

    def offer(self, image: RGBImage, t: float) -> str:
        """Look at one RGB uint8 HxWx3 frame taken at t seconds; keep a crop if it is usable.
        Returns the prompt for the person ("photo 2 of 5", "come closer", ...)."""
        if self.complete:
            return "all photos taken"
        if self._last_taken is not None and t - self._last_taken < self.interval_s:
            return self._progress()
        boxes = self.find_faces(image)
        if not boxes:
            return "look at the camera"
        if len(boxes) > 1:
            return "one person at a time, please"
        face = self.analyzer.describe(image, boxes[0], embed=False)
        if face.rejected_reason:
            return face.rejected_reason.split(": ")[-1]
        self.photos.append((f"kiosk-{len(self.photos) + 1}.jpg", crop_around(image, face.box)))
        self._last_taken = t
        return self._progress()

    def _progress(self) -> str:
        return f"photo {len(self.photos)} of {self.wanted}: look at the camera, move your head a little"


class DoorEnrolment:
    """The door service's side of capture requests: take one up, photograph, enrol, report."""

    def __init__(self, db: store.Database, settings: Settings, analyzer: FaceAnalyzer, screen: ScreenState,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 find_faces: Callable[[RGBImage], list[Box]] | None = None) -> None:
        self.db = db
        # The door pipeline's presence detector (the service passes it), or one of the same width.
        self.find_faces = find_faces or make_presence_detector(settings, analyzer).detect
        self._wall_clock = wall_clock  # real time (aware UTC), for the request's deadline
        self.settings = settings
        self.analyzer = analyzer
        self.screen = screen
        self._monotonic = monotonic
        self.request: store.CaptureInfo | None = None
        self.collector: PhotoCollector | None = None
        self._next_check = 0.0
        self._prompt = ""

    @property
    def active(self) -> bool:
        """A request is being captured: frames belong to it, not to check-ins."""
        return self.request is not None

    def poll(self) -> None:
        """Every CHECK_S: take up a waiting request, or notice that the active one was cancelled or expired."""
        now = self._monotonic()
        if now < self._next_check:
            return
        self._next_check = now + CHECK_S
        try:
            if self.request is None:
                request = store.take_capture(self.db)
                if request is not None:
                    self._start(request)
            else:
                self._still_wanted()
        except StoreError as exc:
            logger.warning("capture request check failed: %s", exc)

    def _still_wanted(self) -> bool:
        """End the capture (False) when the admin cancelled it or its deadline passed."""
        assert self.request is not None
        current = store.get_capture(self.db, self.request.id)
        if current.active and self._wall_clock() >= current.expires_at:
            current = store.finish_capture(self.db, current.id, CaptureStatus.EXPIRED, message=(
                f"timed out: the photos were not all taken by {current.expires_at:%H:%M:%S} UTC "
                f"({self.collector.taken if self.collector else 0} of {self.settings.enrolment.capture_photos})"))
        if current.active:
            return True
        logger.info("capture request %d ended: %s", current.id, current.status)
        reasons: dict[str, str] = {CaptureStatus.CANCELLED: "Cancelled by the admin",
                                   CaptureStatus.EXPIRED: "Timed out"}
        why = reasons.get(current.status, "")
        self._stop(Message("unknown", "Enrolment stopped", why))
        return False

    def _start(self, request: store.CaptureInfo) -> None:
        e = self.settings.enrolment
        self.request = request
        self.collector = PhotoCollector(self.analyzer, self.find_faces, e.capture_photos, e.capture_interval_s)
        self._prompt = ""
        logger.info("capture request %d: taking %d photos for %s", request.id, e.capture_photos,
                    request.employee_id)
        self._show("look at the camera")

    def _show(self, prompt: str) -> None:
        assert self.request is not None
        name = display_name(self.request.name, self.settings.screen.first_name_only)
        self.screen.set_enrolment(Message("enrol", f"Enrolment: {name}", prompt[:1].upper() + prompt[1:]))

    def _stop(self, message: Message | None) -> None:
        self.request, self.collector = None, None
        self.screen.set_enrolment(None)
        if message is not None:
            self.screen.show(message)

    def handle(self, image: RGBImage, t: float) -> bool:
        """Use one RGB uint8 HxWx3 frame (frame time t, s); True when a person was enrolled."""
        assert self.request is not None and self.collector is not None
        request, collector = self.request, self.collector
        before = len(collector.photos)
        prompt = collector.offer(image, t)
        if prompt != self._prompt:
            self._prompt = prompt
            self._show(prompt)
            if len(collector.photos) != before:
                try:
                    store.capture_progress(self.db, request.id, len(collector.photos), prompt)
                except StoreError as exc:
                    logger.warning("cannot record capture progress: %s", exc)
        if not collector.complete:
            return False
        try:
            if not self._still_wanted():  # cancelled or timed out while the photos were taken
                return False
        except StoreError as exc:
            logger.warning("capture request check failed (enrolling anyway): %s", exc)
        return self._enrol(request, collector.photos)

    def _enrol(self, request: store.CaptureInfo, photos: list[tuple[str, RGBImage]]) -> bool:
        name = display_name(request.name, self.settings.screen.first_name_only)
        actor = f"{request.requested_by} (at the kiosk)"
        try:
            result = enrol(self.db, self.settings, self.analyzer, name=request.name,
                           employee_id=request.employee_id, photos=photos, force=request.force,
                           replace=request.replace, expression_consent=request.expression_consent, actor=actor)
        except KioskError as exc:
            lines = [str(exc)]
            if isinstance(exc, EnrolmentError) and exc.result is not None:
                lines += [v.describe() for v in exc.result.verdicts if not v.ok]
            self._finish(request, CaptureStatus.FAILED, "\n".join(lines))
            logger.warning("capture request %d: not enrolled: %s", request.id, exc)
            self._stop(Message("unknown", "Enrolment not finished", "Please see the admin"))
            return False
        verb = "re-enrolled" if result.replaced else "enrolled"
        self._finish(request, CaptureStatus.DONE, f"{verb} with {result.templates_added} photo(s) from the kiosk camera",
                     result.person_id)
        logger.info("capture request %d: %s %s", request.id, verb, request.employee_id)
        self._stop(Message("in", f"Welcome, {name}", "Enrolled: from now on just look at the camera"))
        return True

    def _finish(self, request: store.CaptureInfo, status: CaptureStatus, message: str, person_id: int | None = None) -> None:
        try:
            store.finish_capture(self.db, request.id, status, message=message, person_id=person_id)
        except StoreError as exc:  # the enrolment itself is committed (or refused) either way
            logger.warning("cannot record the outcome of capture request %d: %s", request.id, exc)


def wait_for_capture(db: store.Database, capture_id: int, on_change: Callable[[store.CaptureInfo], None],
                     poll_s: float = 1.0, sleep: Callable[[float], None] = time.sleep) -> store.CaptureInfo:
    """For `kiosk enroll --at-kiosk`: poll the request until it finishes (the store expires it at
    its deadline); on_change sees each new status or photo count. KeyboardInterrupt cancels it."""
    seen: tuple[str, int] | None = None
    try:
        while True:
            current = store.get_capture(db, capture_id)
            if (current.status, current.photos_taken) != seen:
                seen = (current.status, current.photos_taken)
                on_change(current)
            if not current.active:
                return current
            sleep(poll_s)
    except KeyboardInterrupt:
        store.finish_capture(db, capture_id, CaptureStatus.CANCELLED, message="cancelled from the command line", actor="cli")
        raise
