"""The long-running kiosk loop (`kiosk run`, under systemd): camera -> pipeline -> attendance -> screen.

One thread does everything that touches the database (events, purge, gallery reloads); the
door screen is served from a daemon thread that only reads a ScreenState. SIGTERM/SIGINT set
a flag: the frame in hand is finished (its event committed), then the loop ends and the
process exits 0. Every committed event is followed by an atomic rewrite of the status file
(service.status_file, default <database dir>/status.json) for the admin page.

Database faults never stop the door: each decision goes through an EventOutbox, which appends
it to the fsync'd journal (checkins.journal beside the status file) before the database write
and retries pending ones with back-off (kiosk.outbox). The fault shows on the door screen and
as `db_fault` in the status file; a status file that cannot be written is logged, not fatal.

Time: with service.clock "system" events carry the wall-clock time. With "replay" (tests,
demos) frame i happens at service.replay_start + i / service.replay_fps: a replayed morning
runs as fast as the CPU allows yet cooldowns, re-checks and greetings see scene time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from kiosk import __version__, sdnotify, store
from kiosk.attendance import Attendance
from kiosk.camera import Frame, RetryingCamera, open_retrying_camera
from kiosk.capture import DoorEnrolment
from kiosk.clock import Clock, ReplayClock, SystemClock
from kiosk.config import ConfigError, Settings, load_settings, status_file_problem
from kiosk.errors import KioskError, StoreError
from kiosk.gallery import Gallery
from kiosk.journal import JOURNAL_NAME, Journal, JournalEntry
from kiosk.outbox import EventOutbox
from kiosk.pipeline import CheckinDecision, Pipeline
from kiosk.screen import ScreenServer, ScreenState, display_name, message_for
from kiosk.store import EventInfo

logger = logging.getLogger(__name__)

RECENT_DECISIONS = 10


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to a temp file in the same folder, fsync, rename over path (readers never see half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, default=str)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class DoorLock:
    """One door service per database: an flock on <database>.door-lock, held while the service runs.

    A second `kiosk run` on the same database would record every check-in twice (and fight over the
    camera and the screen port); it gets a KioskError naming the first one's pid instead. The lock is
    a file of its own (never the database: closing a descriptor on the database file would drop
    SQLite's POSIX locks) and goes with the process, also on a crash or a power cut.
    """

    def __init__(self, database_path: Path) -> None:
        self.path = Path(database_path).with_name(Path(database_path).name + ".door-lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock (creating the database folder if needed); KioskError when another process holds it."""
        import fcntl

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise KioskError(f"cannot create the door lock {self.path} ({exc.strerror or exc}); "
                             "the database folder must be writable by the user running kiosk") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise KioskError(f"another door service (pid {holder}) is already running on "
                             f"{self.path.with_suffix('')}; stop it first (systemctl stop kiosk)") from None
        except OSError as exc:  # a file system without flock: run unguarded rather than not at all
            logger.warning("cannot lock %s (%s); make sure only one door service uses this database",
                           self.path, exc)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd

    @property
    def held(self) -> bool:
        """True while this process holds the lock."""
        return self._fd is not None

    def release(self) -> None:
        """Let the next door service start (the lock file itself stays)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def rss_mb() -> float:
    """Resident memory of this process in MB (from /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


class KioskService:
    """The kiosk loop; build, start(), run(), close(). Analyzer/classifier/camera are injectable."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        analyzer: Any = None,
        classifier: Any = None,
        camera: RetryingCamera | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._monotonic = monotonic
        svc = settings.service
        self.replay_clock: ReplayClock | None = None
        if clock is None and svc.clock == "replay":
            self.replay_clock = ReplayClock(svc.replay_start or datetime.now(UTC), svc.replay_fps)
            clock = self.replay_clock
        self.clock: Clock = clock or SystemClock()
        self._analyzer = analyzer
        self._classifier = classifier
        self.camera = camera
        self.db: store.Database | None = None
        self.pipeline: Pipeline | None = None
        self.door_enrolment: DoorEnrolment | None = None
        self.attendance: Attendance | None = None
        self.outbox: EventOutbox | None = None
        self.screen = ScreenState(settings.screen.message_s)
        self.screen_server: ScreenServer | None = None
        self.people: dict[int, store.PersonInfo] = {}
        self.gallery_signature: tuple[Any, ...] = ()
        self.stale_templates: dict[int, int] = {}  # person id -> templates made with other settings
        self.started_at = datetime.now(UTC)
        self.counts = {"frames": 0, "decisions": 0, "recognised": 0, "unknown": 0, "ignored": 0,
                       "events": 0, "errors": 0, "gallery_reloads": 0,
                       "enrolled_at_kiosk": 0, "journalled": 0}
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_DECISIONS)
        self.last_frame_at: datetime | None = None
        self.last_purge_day: date | None = None
        self.purge_refused: str | None = None
        self.rss_start_mb = 0.0
        self._stop = False
        self._stop_reason = ""
        self._exit_code = 0
        self._next_status = 0.0
        self._status_due = False
        self._status_failed = False
        self._next_gallery_check = 0.0
        self._next_gallery_reload = 0.0
        self._next_watchdog = 0.0
        self._watchdog_s = sdnotify.watchdog_interval()
        self._state = "starting"
        self.door_lock = DoorLock(Path(settings.database.path))

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Migrate/open the database, load models and gallery, open camera and screen; READY=1."""
        s = self.settings
        sdnotify.status("starting: database")
        problem = status_file_problem(s)
        if problem is not None:  # the first status write would replace the database with JSON
            raise ConfigError(problem)
        self.door_lock.acquire()
        result = store.upgrade_from_settings(s, backup=True)
        if result.changed:
            logger.info("database upgraded %s -> %s (backup %s)", result.before, result.after, result.backup)
        self.db = store.open_from_settings(s)
        sdnotify.status("starting: loading models")
        if self._analyzer is None:
            from kiosk.vision.faces import make_analyzer

            self._analyzer = make_analyzer(s.recognition)
        if self._classifier is None and s.expression.enabled:
            from kiosk.vision.expression import load_classifier

            self._classifier = load_classifier(s.expression)
        self.outbox = EventOutbox(self.db, s.site.device_id, Journal(s.status_path.parent / JOURNAL_NAME),
                                  wall_clock=self.clock.now, monotonic=self._monotonic,
                                  on_recorded=self._on_recorded)
        self.outbox.defer_writes = True  # greet first, then write (a locked database must not hold it up)
        sdnotify.status("starting: journal")
        self.outbox.start()
        self.attendance = Attendance(self.outbox, s, self.clock, monotonic=self._steady_seconds)
        self.pipeline = Pipeline(self._analyzer, Gallery(s.recognition), self._classifier, s, self._consent)
        self.door_enrolment = DoorEnrolment(self.db, s, self._analyzer, self.screen, self._monotonic,
                                            find_faces=self.pipeline.presence.detect)
        self.reload_gallery()
        self.purge_if_due()
        self._next_gallery_check = self._monotonic() + s.service.gallery_check_s
        if s.screen.enabled:
            try:
                self.screen_server = ScreenServer(self.screen, s.screen.host, s.screen.port, s.site.name).start()
            except OSError as exc:
                raise KioskError(f"the door screen cannot listen on {s.screen.host}:{s.screen.port} "
                                 f"({exc.strerror or exc}): another program uses that port; stop it or "
                                 "change screen.port") from None
        if self.camera is None:
            self.camera = open_retrying_camera(s.camera)
        self.rss_start_mb = rss_mb()
        self._state = "running"
        self.save_status()
        sdnotify.ready(self._status_line())
        logger.info("kiosk running: %d people, camera %s, expression %s, rss %.0f MB",
                    len(self.people), s.camera.type, "on" if self._classifier else "off", self.rss_start_mb)

    def request_stop(self, reason: str = "requested") -> None:
        """Ask the loop to end after the frame in hand (signal-safe: only sets a flag)."""
        self._stop = True
        self._stop_reason = reason

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT -> request_stop()."""

        def handler(signum: int, _frame: FrameType | None) -> None:
            self.request_stop(signal.Signals(signum).name)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def run(self, stop_after: int | None = None) -> int:
        """Process frames until stopped, the replay ends, or stop_after frames; returns the exit code: 0, or 1
        when the database file went away under the service."""
        assert self.camera is not None and self.pipeline is not None
        camera = self.camera
        while not self._stop:
            self.housekeeping()
            if self._stop:
                break
            frame = camera.read()
            if frame is None:
                if camera.ended:
                    self._stop_reason = "end of replay"
                    break
                if camera.state in ("lost", "retrying"):
                    if self.pipeline.state != "idle":
                        self.pipeline.reset()
                    self.screen.set_offline(True)
                continue
            self.screen.set_offline(False)
            self.handle_frame(frame)
            if stop_after is not None and self.counts["frames"] >= stop_after:
                self._stop_reason = f"stop after {stop_after} frames"
                break
        return self._exit_code

    def close(self) -> None:
        """Stop the screen, release the camera and database, write the final status."""
        logger.info("stopping (%s)", self._stop_reason or "done")
        sdnotify.stopping(f"stopping: {self._stop_reason or 'done'}")
        self._state = "stopped"
        if self.camera is not None:
            self.camera.close()
        if self.screen_server is not None:
            self.screen_server.stop()
            self.screen_server = None
        if self.outbox is not None:
            self.outbox.close()
        if self.door_lock.held:  # a service refused by the lock leaves the running one's status file alone
            self.save_status()
        if self.db is not None:
            self.db.close()
            self.db = None
        self.door_lock.release()

    # -- per frame -------------------------------------------------------------------------------
    def handle_frame(self, frame: Frame) -> CheckinDecision | None:
        """Run one frame through the pipeline and act on a decision."""
        assert self.pipeline is not None
        if self.replay_clock is not None:
            self.replay_clock.index = frame.index
            t = frame.index / self.replay_clock.fps
        else:
            t = frame.timestamp
        self.counts["frames"] += 1
        self.last_frame_at = self.clock.now()
        if self.door_enrolment is not None and self.door_enrolment.active:
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
        assert self.pipeline is not None and self.door_enrolment is not None
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
        assert self.attendance is not None
        at = self.clock.now()
        tz = self.settings.tz
        self.counts["decisions"] += 1
        entry: dict[str, Any] = {"at": at.isoformat(), "person_id": decision.person_id,
                                 "distance": None if decision.person_id is None else round(decision.distance, 3),
                                 "frames": decision.frames_used, "recheck": decision.recheck,
                                 "timings_ms": {k: round(v, 1) for k, v in decision.timings_ms.items()}}
        event: EventInfo | None = None
        if decision.person_id is None:
            self.counts["unknown"] += 1
            event = self.attendance.unknown_face(at)
            entry["result"] = "unknown" if event else "unknown (cooldown)"
            if not decision.recheck:
                self.screen.show(message_for("unknown", None, at.astimezone(tz)))
        else:
            pid = int(decision.person_id)
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
            if result.recorded and result.event is not None:
                event = result.event
                self.counts["recognised"] += 1
                entry.update(result=result.kind, late=result.late)
                self.screen.show(message_for(result.kind, name, at.astimezone(tz)))  # type: ignore[arg-type]
            else:
                self.counts["ignored"] += 1
                entry["result"] = "ignored"
                if not decision.recheck:
                    self.screen.show(message_for("again", name, at.astimezone(tz)))
        self.recent.append(entry)
        if event is None:
            return
        # The decision is in the journal and on screen; now the database (_on_recorded sets event_id).
        entry["event_id"] = None
        assert self.outbox is not None
        self.outbox.write_new()
        if entry["event_id"] is None:
            self.counts["journalled"] += 1
            logger.warning("event journalled, database unavailable: %s person=%s at %s (%d waiting)",
                           entry["result"], decision.person_id, at.isoformat(), self._pending())
        self.save_status()

    def _on_recorded(self, entry: JournalEntry, event: EventInfo) -> None:
        """The outbox committed an event (at once, after a fault, or from an earlier run's journal)."""
        self.counts["events"] += 1
        self._status_due = True
        for item in self.recent:
            if "event_id" in item and item["event_id"] is None and item["at"] == entry.at.isoformat():
                item["event_id"] = event.id
        logger.info("event recorded: id=%s %s person=%s events=%d", event.id, event.kind, event.person_id,
                    self.counts["events"])

    def _steady_seconds(self) -> float:
        """Seconds on a clock that never steps back: scene time in a replay, else the monotonic clock."""
        if self.replay_clock is not None:
            return self.replay_clock.index / self.replay_clock.fps
        return self._monotonic()

    def _pending(self) -> int:
        """Decisions journalled but not yet in the database."""
        return self.outbox.pending if self.outbox is not None else 0

    # -- housekeeping ------------------------------------------------------------------------------
    def housekeeping(self) -> None:
        """Watchdog, status file, gallery check/reload and the daily purge, each when due; stops the
        loop (exit status 1, systemd restarts it) when the database file was deleted or replaced."""
        if self.db is not None and self.db.moved():
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
        if self.door_enrolment is not None:
            self.door_enrolment.poll()
        if now >= self._next_gallery_check:
            self._next_gallery_check = now + svc.gallery_check_s
            force = now >= self._next_gallery_reload
            try:
                self.reload_gallery(force=force)
            except StoreError as exc:
                logger.warning("gallery check failed: %s", exc)
            self.purge_if_due()
        if self.outbox is not None:
            self.outbox.flush()
            self.screen.set_db_fault(self.outbox.fault is not None)
        if now >= self._next_status or self._status_due:
            self._next_status = now + svc.status_interval_s
            self.save_status()
            sdnotify.status(self._status_line())

    def _consent(self, person_id: int) -> bool:
        person = self.people.get(int(person_id))
        return bool(person and person.expression_consent and person.erased_at is None)

    def reload_gallery(self, force: bool = True) -> bool:
        """Reload people and templates when either changed (names, consent, photos) or force; True when reloaded."""
        assert self.db is not None and self.pipeline is not None
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

    def purge_if_due(self) -> None:
        """Apply retention once per local day (at start and after midnight)."""
        assert self.db is not None
        today = self.clock.now().astimezone(self.settings.tz).date()
        if self.last_purge_day == today:
            return
        self.last_purge_day = today
        try:
            result = store.purge_expired(self.db, self.clock.now(), self.settings.retention, actor="kiosk")
        except StoreError as exc:
            logger.warning("retention purge failed (retried tomorrow): %s", exc)
            return
        self.purge_refused = result.refused

    def _status_line(self) -> str:
        cam = self.camera.state if self.camera is not None else "closed"
        return (f"camera {cam}, {self.counts['events']} events, {len(self.people)} people, "
                f"{self.counts['frames']} frames")

    def status(self) -> dict[str, Any]:
        """The status-file content (no names: person ids only)."""
        camera: dict[str, Any] = {"state": "closed"}
        if self.camera is not None:
            camera = self.camera.status().as_dict()
            camera["since_s_ago"] = round(self._monotonic() - camera.pop("since"), 1)
        s = self.settings
        gallery = self.pipeline.gallery if self.pipeline else None
        return {
            "service": "kiosk",
            "version": __version__,
            "pid": os.getpid(),
            "state": self._state,
            "stop_reason": self._stop_reason or None,
            "started_at": self.started_at.isoformat(),
            "updated_at": datetime.now(UTC).isoformat(),
            "clock": s.service.clock,
            "now": self.clock.now().isoformat(),
            "last_frame_at": self.last_frame_at.isoformat() if self.last_frame_at else None,
            "device_id": s.site.device_id,
            "camera": camera,
            "pipeline": self.pipeline.state if self.pipeline else None,
            "capture_request": (self.door_enrolment.request.id
                                if self.door_enrolment is not None and self.door_enrolment.request else None),
            "counts": dict(self.counts),
            "db_fault": self._db_fault(),
            # why today's retention purge deleted nothing (a clock far ahead of the data), or None
            "purge_refused": self.purge_refused,
            "journal": ({"path": str(self.outbox.journal.path), "pending": self.outbox.pending,
                         "dropped": self.outbox.dropped} if self.outbox is not None else None),
            "gallery": {"templates": len(gallery) if gallery else 0,
                        "people": len(gallery.people) if gallery else 0,
                        "people_to_re_enrol": sorted(self.stale_templates)},
            "model": {"detector": s.recognition.detector, "presence_width": s.attendance.presence_width,
                      "expression": bool(self._classifier),
                      "expression_model": str(getattr(self._classifier, "path", "")) or None},
            "screen": self.screen_server.url if self.screen_server else None,
            "rss_mb": round(rss_mb(), 1),
            "rss_start_mb": round(self.rss_start_mb, 1),
            "recent": list(self.recent),
        }

    def _db_fault(self) -> dict[str, Any] | None:
        """What keeps check-ins out of the database now (for the status page), or None."""
        fault = self.outbox.fault if self.outbox is not None else None
        if fault is None:
            return None
        assert self.outbox is not None
        return {"error": fault.error or None, "journal_error": fault.journal_error,
                "since": fault.since.isoformat(), "waiting": self.outbox.pending,
                "failed_attempts": self.outbox.attempts_failed}

    def write_status(self) -> None:
        """Atomically rewrite the status file; OSError when it cannot be written."""
        write_json_atomic(self.settings.status_path, self.status())

    def save_status(self) -> bool:
        """write_status() that logs instead of raising (a full or read-only disk must not stop the door)."""
        self._status_due = False
        try:
            self.write_status()
        except OSError as exc:
            if not self._status_failed:
                logger.error("cannot write the status file %s: %s (the door keeps working)",
                             self.settings.status_path, exc)
            self._status_failed = True
            return False
        if self._status_failed:
            logger.info("status file %s written again", self.settings.status_path)
        self._status_failed = False
        return True


def run_service(
    settings: Settings,
    *,
    clock: Clock | None = None,
    stop_after: int | None = None,
    install_signals: bool = True,
    camera: RetryingCamera | None = None,
) -> int:
    """`kiosk run`: start, loop until SIGTERM/SIGINT (or replay end / stop_after frames), close; 0.

    Raises KioskError (config, database, model, camera setup) before READY=1; the CLI shows it.
    """
    service = KioskService(settings, clock=clock, camera=camera)
    if install_signals:
        service.install_signal_handlers()
    try:
        service.start()
        return service.run(stop_after=stop_after)
    finally:
        service.close()


def main(argv: list[str] | None = None) -> int:
    """Process entry `python -m kiosk.service --config FILE` (the same as `kiosk --config FILE run`)."""
    parser = argparse.ArgumentParser(prog="python -m kiosk.service", description=main.__doc__)
    parser.add_argument("--config", type=Path, default=None, help="YAML settings file")
    parser.add_argument("--stop-after", type=int, default=None, help="stop after this many frames")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO - 10 * min(args.verbose, 1),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return run_service(load_settings(args.config), stop_after=args.stop_after)
    except ConfigError as exc:
        logger.error("%s", exc)
        return 2
    except KioskError as exc:
        logger.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
