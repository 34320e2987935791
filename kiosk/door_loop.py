"""The door loop (KioskService): camera -> pipeline -> attendance -> screen, with housekeeping between frames.

kiosk.service opens the parts (DoorParts) and builds the loop around them; every attribute of a
KioskService is set from its constructor on. One thread does everything that touches the database
(events, purge, gallery reloads); the door screen is served from a daemon thread that only reads the
ScreenState. A stop request (a signal) lets the frame in hand finish (its event committed) and ends
the loop. Every committed event is followed by an atomic rewrite of the status file (kiosk.door_status).
"""

from __future__ import annotations

import logging
import os
import resource
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from kiosk import __version__, sdnotify, store
from kiosk.attendance import Attendance
from kiosk.camera import Frame, RetryingCamera
from kiosk.capture import DoorEnrolment
from kiosk.clock import Clock, ReplayClock
from kiosk.config import Settings
from kiosk.door_lock import DoorLock
from kiosk.door_status import (
    CameraReport,
    DbFault,
    DoorState,
    DoorStatus,
    GalleryReport,
    JournalReport,
    ModelReport,
    RecentDecision,
    StatusWriter,
    write_status_file,
)
from kiosk.door_sync import DoorSync
from kiosk.errors import StoreError
from kiosk.gallery import Gallery
from kiosk.gc_tuning import freeze_startup_objects
from kiosk.journal import JournalEntry
from kiosk.maintenance import DailyPurge
from kiosk.outbox import EventOutbox
from kiosk.pipeline import CheckinDecision, Pipeline
from kiosk.screen import ScreenServer, ScreenState, display_name, message_for
from kiosk.store import EventInfo
from kiosk.vision.expression import ExpressionClassifier
from kiosk.vision.faces import FaceAnalyzer
from kiosk.vocabulary import EventKind

logger = logging.getLogger(__name__)

RECENT_DECISIONS = 10
"""How many of the latest decisions the status file lists."""


def rss_mb() -> float:
    """Resident memory of this process in MB (from /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


class StopRequest:
    """Set from a signal handler (only a flag and a reason): end the loop after the frame in hand."""

    def __init__(self) -> None:
        self.requested = False
        self.reason = ""

    def set(self, reason: str) -> None:
        """Ask for the stop, saying why (e.g. "SIGTERM")."""
        self.requested = True
        self.reason = reason

    def is_set(self) -> bool:
        """Whether a stop was asked for (a call: it can change between two looks)."""
        return self.requested


class DoorActivity:
    """What the door did since start: counts (frames, decisions, events, ...) and the latest decisions."""

    def __init__(self) -> None:
        self.counts = {"frames": 0, "decisions": 0, "recognised": 0, "unknown": 0, "ignored": 0,
                       "events": 0, "errors": 0, "gallery_reloads": 0,
                       "enrolled_at_kiosk": 0, "journalled": 0}
        self.recent: deque[RecentDecision] = deque(maxlen=RECENT_DECISIONS)
        self.status_due = False  # an event was committed: rewrite the status file at the next housekeeping

    def on_recorded(self, entry: JournalEntry, event: EventInfo) -> None:
        """The outbox committed an event (at once, after a fault, or from an earlier run's journal)."""
        self.counts["events"] += 1
        self.status_due = True
        for item in self.recent:
            if item.has_event and item.event_id is None and item.at.isoformat() == entry.at.isoformat():
                item.event_id = event.id
        logger.info("event recorded: id=%s %s person=%s events=%d", event.id, event.kind, event.person_id,
                    self.counts["events"])


@dataclass(frozen=True)
class DoorParts:
    """What the door loop runs on, opened by kiosk.service.open_service: lock held, database open and
    migrated, models loaded, journal replayed, camera opened, screen port bound (None: screen off)."""

    lock: DoorLock
    db: store.Database
    analyzer: FaceAnalyzer
    classifier: ExpressionClassifier | None  # None: expression analysis off
    outbox: EventOutbox
    activity: DoorActivity
    camera: RetryingCamera
    screen: ScreenState
    screen_server: ScreenServer | None  # None: screen.enabled is false
    sync: DoorSync | None = None  # role door: the thread that pushes events to the central and pulls the gallery


class KioskService:
    """The door loop on opened parts: begin(), run(), close(). kiosk.service.open_service builds one."""

    def __init__(self, settings: Settings, parts: DoorParts, *, clock: Clock, replay_clock: ReplayClock | None,
                 monotonic: Callable[[], float], stop: StopRequest) -> None:
        s = settings
        self.settings = settings
        self.clock = clock
        self.replay_clock = replay_clock  # scene time of a replay: frame index / fps
        self._monotonic = monotonic
        self.stop = stop
        self.door_lock = parts.lock
        self.db = parts.db
        self.camera = parts.camera
        self.screen = parts.screen
        self.screen_server = parts.screen_server
        self.outbox = parts.outbox
        self.activity = parts.activity
        self.classifier = parts.classifier
        self.sync = parts.sync
        self.attendance = Attendance(self.outbox, s, self.clock, monotonic=self._steady_seconds)
        self.pipeline = Pipeline(parts.analyzer, Gallery(s.recognition), parts.classifier, s, self._consent)
        self.door_enrolment = DoorEnrolment(self.db, s, parts.analyzer, self.screen, self._monotonic,
                                            find_faces=self.pipeline.presence.detect)
        self.purge = DailyPurge()
        self.status_writer = StatusWriter(s.status_path)
        self.people: dict[int, store.PersonInfo] = {}
        self.gallery_signature: tuple[object, ...] = ()
        self.stale_templates: dict[int, int] = {}  # person id -> templates made with other settings
        self.started_at = datetime.now(UTC)
        self.last_frame_at: datetime | None = None
        self.rss_start_mb = 0.0
        self._exit_code = 0
        self._next_status = 0.0
        self._next_gallery_check = 0.0
        self._next_gallery_reload = 0.0
        self._next_watchdog = 0.0
        self._watchdog_s = sdnotify.watchdog_interval()
        self._state = DoorState.STARTING

    @property
    def counts(self) -> dict[str, int]:
        """Totals since start: frames, decisions, recognised, unknown, ignored, events, errors, ..."""
        return self.activity.counts

    @property
    def last_purge_day(self) -> date | None:
        """The local day of the latest retention purge."""
        return self.purge.last_day

    @property
    def purge_refused(self) -> str | None:
        """Why the latest retention purge deleted nothing, or None."""
        return self.purge.refused

    # -- life cycle ----------------------------------------------------------------------------
    def begin(self) -> None:
        """Load the gallery, purge when due, serve the screen, write the first status; READY=1."""
        s = self.settings
        self.reload_gallery()
        self.purge.run_if_due(self)
        self._next_gallery_check = self._monotonic() + s.service.gallery_check_s
        if self.screen_server is not None:
            self.screen_server.start()
        if self.sync is not None:
            self.sync.start()
        self.rss_start_mb = rss_mb()
        frozen = freeze_startup_objects()  # no full garbage collection of start-up objects inside a check-in
        self._state = DoorState.RUNNING
        self.save_status()
        sdnotify.ready(self._status_line())
        logger.info("kiosk running: %d people, camera %s, expression %s, rss %.0f MB, %d start-up objects "
                    "frozen", len(self.people), s.camera.type, "on" if self.classifier else "off",
                    self.rss_start_mb, frozen)

    def request_stop(self, reason: str = "requested") -> None:
        """Ask the loop to end after the frame in hand (signal-safe: only sets a flag)."""
        self.stop.set(reason)

    def run(self, stop_after: int | None = None) -> int:
        """Process frames until stopped, the replay ends, or stop_after frames; returns the exit code: 0, or 1
        when the database file went away under the service."""
        camera = self.camera
        while not self.stop.is_set():
            self.housekeeping()
            if self.stop.is_set():
                break
            frame = camera.read()
            if frame is None:
                if camera.ended:
                    self.stop.reason = "end of replay"
                    break
                if camera.state in ("lost", "retrying"):
                    if self.pipeline.state != "idle":
                        self.pipeline.reset()
                    self.screen.set_offline(True)
                continue
            self.screen.set_offline(False)
            self.handle_frame(frame)
            if stop_after is not None and self.counts["frames"] >= stop_after:
                self.stop.reason = f"stop after {stop_after} frames"
                break
        return self._exit_code

    def close(self) -> None:
        """Stop the screen, release the camera and database, write the final status, release the lock."""
        logger.info("stopping (%s)", self.stop.reason or "done")
        sdnotify.stopping(f"stopping: {self.stop.reason or 'done'}")
        self._state = DoorState.STOPPED
        if self.sync is not None:
            self.sync.stop()
        self.camera.close()
        if self.screen_server is not None:
            self.screen_server.stop()
            self.screen_server = None
        self.outbox.close()
        self.save_status()
        self.db.close()
        self.door_lock.release()

    # -- per frame -------------------------------------------------------------------------------
    def handle_frame(self, frame: Frame) -> CheckinDecision | None:
        """Run one frame through the pipeline and act on a decision."""
        if self.replay_clock is not None:
            self.replay_clock.index = frame.index
            t = frame.index / self.replay_clock.fps
        else:
            t = frame.timestamp
        self.counts["frames"] += 1
        self.last_frame_at = self.clock.now()
        if self.door_enrolment.active:
            self._enrolment_frame(frame, t)
            return None
        decision = self.pipeline.process(frame.image, t)
        self.screen.set_hint(self.pipeline.hint if self.pipeline.state in ("approaching", "analysing") else None)
        if decision is not None:
            try:
                self.act(decision)
            except StoreError as exc:  # e.g. locked beyond busy_timeout: keep the kiosk alive
                self.counts["errors"] += 1
                logger.error("could not record a check-in: %s", exc)
        return decision

    def _enrolment_frame(self, frame: Frame, t: float) -> None:
        """A capture request is active: the frame is for its photos, not for check-ins."""
        if self.pipeline.state != "idle":
            self.pipeline.reset()
        self.screen.set_hint(None)
        if self.door_enrolment.handle(frame.image, t):
            self.counts["enrolled_at_kiosk"] += 1
            try:
                self.reload_gallery(force=True)
            except StoreError as exc:
                logger.warning("gallery reload after enrolment failed (retried at the next check): %s", exc)

    def act(self, decision: CheckinDecision) -> None:
        """Hand a decision to the attendance rules, update the screen, the counts and the status."""
        at = self.clock.now()
        local = at.astimezone(self.settings.tz)
        self.counts["decisions"] += 1
        entry = RecentDecision(at=at, person_id=decision.person_id,
                               distance=None if decision.person_id is None else round(decision.distance, 3),
                               frames=decision.frames_used, recheck=decision.recheck,
                               timings_ms={k: round(v, 1) for k, v in decision.timings_ms.items()})
        event: EventInfo | None = None
        if decision.person_id is None:
            self.counts["unknown"] += 1
            event = self.attendance.unknown_face(at)
            entry.result = "unknown" if event else "unknown (cooldown)"
            if not decision.recheck:
                self.screen.show(message_for(EventKind.UNKNOWN, None, local))
        else:
            event = self._sighting(decision, int(decision.person_id), at, entry)
        self.recent.append(entry)
        if event is None:
            return
        # The decision is in the journal and on screen; now the database (on_recorded sets event_id).
        entry.has_event = True
        self.outbox.write_new()
        if entry.event_id is None:
            self.counts["journalled"] += 1
            logger.warning("event journalled, database unavailable: %s person=%s at %s (%d waiting)",
                           entry.result, decision.person_id, at.isoformat(), self.outbox.pending)
        elif self.sync is not None:
            self.sync.nudge()
        self.save_status()

    def _sighting(self, decision: CheckinDecision, pid: int, at: datetime, entry: RecentDecision) -> EventInfo | None:
        """Person pid recognised: the attendance rules decide in/out or ignore; greet them; the event or None."""
        expr = decision.expression
        result = self.attendance.sighting(
            pid, at,
            expression_label=expr.label if expr else None,
            expression_scores=expr.scores if expr else None,
            expression_confidence=expr.confidence if expr else None,
            match_distance=decision.distance, match_score=decision.score,
        )
        person = self.people.get(pid)
        name = display_name(person.name, self.settings.screen.first_name_only) if person else "there"
        local = at.astimezone(self.settings.tz)
        if result.recorded and result.event is not None and result.kind is not None:
            self.counts["recognised"] += 1
            entry.result, entry.late = result.kind, result.late
            self.screen.show(message_for(result.kind, name, local))
            return result.event
        self.counts["ignored"] += 1
        entry.result = "ignored"
        if not decision.recheck:
            self.screen.show(message_for("again", name, local))
        return None

    @property
    def recent(self) -> deque[RecentDecision]:
        """The latest decisions (RECENT_DECISIONS of them), oldest first."""
        return self.activity.recent

    def _steady_seconds(self) -> float:
        """Seconds on a clock that never steps back: scene time in a replay, else the monotonic clock."""
        if self.replay_clock is not None:
            return self.replay_clock.index / self.replay_clock.fps
        return self._monotonic()

    # -- housekeeping ------------------------------------------------------------------------------
    def housekeeping(self) -> None:
        """Watchdog, status file, gallery check/reload and the daily purge, each when due; stops the
        loop (exit status 1, systemd restarts it) when the database file was deleted or replaced."""
        if self.db.moved():
            logger.error("the database file %s was deleted or replaced while the door ran; stopping so that "
                         "check-ins are not written to the old, unlinked file (a restart opens the file there now)",
                         self.db.path)
            self.request_stop("database file deleted or replaced")
            self._exit_code = 1
            return
        now = self._monotonic()
        if self._watchdog_s and now >= self._next_watchdog:
            sdnotify.watchdog()
            self._next_watchdog = now + min(self._watchdog_s / 3.0, 10.0)
        svc = self.settings.service
        self.door_enrolment.poll()
        if now >= self._next_gallery_check:
            self._next_gallery_check = now + svc.gallery_check_s
            force = now >= self._next_gallery_reload
            try:
                self.reload_gallery(force=force)
            except StoreError as exc:
                logger.warning("gallery check failed: %s", exc)
            self.purge.run_if_due(self)
        self.outbox.flush()
        self.screen.set_db_fault(self.outbox.fault is not None)
        if self.sync is not None:
            self.screen.set_central_notice(self.sync.screen_notice())
        if now >= self._next_status or self.activity.status_due:
            self._next_status = now + svc.status_interval_s
            self.save_status()
            sdnotify.status(self._status_line())

    def _consent(self, person_id: int) -> bool:
        person = self.people.get(int(person_id))
        return bool(person and person.expression_consent and person.erased_at is None)

    def reload_gallery(self, force: bool = True) -> bool:
        """Reload people and templates when either changed (names, consent, photos) or force; True when reloaded."""
        signature = store.gallery_signature(self.db)
        if not force and signature == self.gallery_signature:
            return False
        self.people = {p.id: p for p in store.list_people(self.db, include_inactive=True)}
        ids, matrix = store.all_templates(self.db)
        gallery = Gallery.from_arrays(matrix, ids.tolist(), self.settings.recognition)
        self.pipeline.set_gallery(gallery)
        self.gallery_signature = signature
        self._next_gallery_reload = self._monotonic() + self.settings.service.gallery_reload_s
        self.counts["gallery_reloads"] += 1
        logger.info("gallery loaded: %d templates of %d people", len(gallery), len(gallery.people))
        self.stale_templates = store.templates_not_made_by(self.db, self.settings.recognition.compatible_embedder_ids())
        if self.stale_templates:
            logger.warning("%d people have templates made with other recognition settings (or before the "
                           "kiosk recorded them): re-enrol them for the calibrated accuracy (person ids %s)",
                           len(self.stale_templates), sorted(self.stale_templates)[:20])
        return True

    # -- status ------------------------------------------------------------------------------------
    def _status_line(self) -> str:
        return (f"camera {self.camera.state}, {self.counts['events']} events, {len(self.people)} people, "
                f"{self.counts['frames']} frames")

    def status(self) -> DoorStatus:
        """The status-file record (no names: person ids only)."""
        cam = self.camera.status()
        s = self.settings
        gallery = self.pipeline.gallery
        fault = self.outbox.fault
        request = self.door_enrolment.request
        return DoorStatus(
            version=__version__, pid=os.getpid(), state=self._state, stop_reason=self.stop.reason or None,
            started_at=self.started_at, updated_at=datetime.now(UTC), clock=s.service.clock, now=self.clock.now(),
            last_frame_at=self.last_frame_at, device_id=s.site.device_id,
            camera=CameraReport(cam.state, cam.last_error, cam.reconnects, cam.failed_attempts,
                                cam.next_attempt_in_s, cam.frames, round(self._monotonic() - cam.since, 1)),
            pipeline=self.pipeline.state, capture_request=request.id if request else None,
            counts=dict(self.counts),
            db_fault=None if fault is None else DbFault(
                fault.error or None, fault.journal_error, fault.since, self.outbox.pending,
                self.outbox.attempts_failed),
            purge_refused=self.purge.refused,
            journal=JournalReport(str(self.outbox.journal.path), self.outbox.pending, self.outbox.dropped),
            gallery=GalleryReport(len(gallery), len(gallery.people), sorted(self.stale_templates)),
            model=ModelReport(s.recognition.detector, s.attendance.presence_width, bool(self.classifier),
                              str(getattr(self.classifier, "path", "")) or None),
            screen=self.screen_server.url if self.screen_server else None,
            rss_mb=round(rss_mb(), 1), rss_start_mb=round(self.rss_start_mb, 1), recent=list(self.recent),
            central=self.sync.report() if self.sync is not None else None,
        )

    def write_status(self) -> None:
        """Atomically rewrite the status file; OSError when it cannot be written."""
        write_status_file(self.settings.status_path, self.status())

    def save_status(self) -> bool:
        """write_status() that logs instead of raising (a full or read-only disk must not stop the door)."""
        self.activity.status_due = False
        return self.status_writer.save(self.status())

