"""The door service (`kiosk run`, under systemd): open its parts, run the door loop, close.

open_service() opens everything the loop needs in order (door lock, database, models, journal,
camera, screen port; with role door the sync thread of kiosk.door_sync) and undoes what it opened
when a step fails; kiosk.door_loop.KioskService runs camera -> pipeline -> attendance -> screen on them. SIGTERM/SIGINT set a flag: the frame in
hand is finished (its event committed), then the loop ends and the process exits 0. Every committed event is followed by
an atomic rewrite of the status file (service.status_file, default <database dir>/status.json,
kiosk.door_status) for the admin page.

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
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from kiosk import __version__, sdnotify, store
from kiosk.camera import RetryingCamera, open_retrying_camera
from kiosk.clock import Clock, ReplayClock, SystemClock
from kiosk.config import ConfigError, Settings, load_settings, status_file_problem
from kiosk.door_lock import DoorLock
from kiosk.door_loop import DoorActivity, DoorParts, KioskService, StopRequest
from kiosk.door_status import DoorState, DoorStatus, StatusWriter
from kiosk.door_sync import DoorSync
from kiosk.errors import KioskError
from kiosk.journal import JOURNAL_NAME, Journal
from kiosk.outbox import EventOutbox
from kiosk.screen import ScreenServer, ScreenState
from kiosk.vision.expression import ExpressionClassifier
from kiosk.vision.faces import FaceAnalyzer

__all__ = ["DoorLock", "KioskService", "install_signal_handlers", "main", "open_service", "run_service"]

logger = logging.getLogger(__name__)


def open_service(
    settings: Settings,
    *,
    clock: Clock | None = None,
    analyzer: FaceAnalyzer | None = None,
    classifier: ExpressionClassifier | None = None,
    camera: RetryingCamera | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    stop: StopRequest | None = None,
) -> KioskService:
    """A running door service: lock, migrate and open the database, load the models (unless given), replay
    the journal, open camera and screen, load the gallery, purge when due, write the status; READY=1.

    Raises KioskError (config, lock, database, model, camera, screen port) with everything it opened
    closed again; when it got as far as the lock, the status file then says "stopped".
    """
    s = settings
    svc = s.service
    replay_clock: ReplayClock | None = None
    if clock is None and svc.clock == "replay":
        replay_clock = ReplayClock(svc.replay_start or datetime.now(UTC), svc.replay_fps)
        clock = replay_clock
    clock = clock or SystemClock()
    stop = stop or StopRequest()
    started_at = datetime.now(UTC)
    sdnotify.status("starting: database")
    problem = status_file_problem(s)
    if problem is not None:  # the first status write would replace the database with JSON
        raise ConfigError(problem)
    if s.role == "door" and not s.central.url:
        raise ConfigError("central.url: a door (role: door) needs its central server's address, "
                          "e.g. central: {url: https://kiosk.example.org}")
    lock = DoorLock(Path(s.database.path))
    lock.acquire()
    with ExitStack() as undo:
        undo.callback(lock.release)
        undo.callback(_write_stopped_status, s, clock, started_at, stop)  # runs before the release
        result = store.upgrade_from_settings(s, backup=True)
        if result.changed:
            logger.info("database upgraded %s -> %s (backup %s)", result.before, result.after, result.backup)
        db = store.open_from_settings(s)
        undo.callback(db.close)
        sdnotify.status("starting: loading models")
        if analyzer is None:
            from kiosk.vision.faces import make_analyzer

            analyzer = make_analyzer(s.recognition)
        if classifier is None and s.expression.enabled:
            from kiosk.vision.expression import load_classifier

            classifier = load_classifier(s.expression)
        activity = DoorActivity()
        outbox = EventOutbox(db, s.site.device_id, Journal(s.status_path.parent / JOURNAL_NAME),
                             wall_clock=clock.now, monotonic=monotonic, on_recorded=activity.on_recorded)
        outbox.defer_writes = True  # greet first, then write (a locked database must not hold it up)
        sdnotify.status("starting: journal")
        outbox.start()
        undo.callback(outbox.close)
        screen = ScreenState(s.screen.message_s)
        screen_server = _bind_screen(s, screen)
        if screen_server is not None:
            undo.callback(screen_server.stop)
        if camera is None:
            camera = open_retrying_camera(s.camera)
        undo.callback(camera.close)
        sync = DoorSync(s) if s.role == "door" else None  # started by begin(), stopped by close()
        parts = DoorParts(lock, db, analyzer, classifier, outbox, activity, camera, screen, screen_server, sync)
        service = KioskService(s, parts, clock=clock, replay_clock=replay_clock, monotonic=monotonic, stop=stop)
        undo.pop_all()
    try:
        service.begin()
    except BaseException:
        service.close()
        raise
    return service


def _bind_screen(settings: Settings, screen: ScreenState) -> ScreenServer | None:
    """The door screen's server, its port bound (served from begin()); None when screen.enabled is false."""
    s = settings.screen
    if not s.enabled:
        return None
    try:
        return ScreenServer(screen, s.host, s.port, settings.site.name)
    except OSError as exc:
        raise KioskError(f"the door screen cannot listen on {s.host}:{s.port} ({exc.strerror or exc}): another "
                         "program uses that port; stop it or change screen.port") from None


def _write_stopped_status(settings: Settings, clock: Clock, started_at: datetime, stop: StopRequest) -> None:
    """The status of a service that held the lock but failed to start: stopped (logged if unwritable)."""
    StatusWriter(settings.status_path).save(DoorStatus(
        version=__version__, pid=os.getpid(), state=DoorState.STOPPED, stop_reason=stop.reason or None,
        started_at=started_at, updated_at=datetime.now(UTC), clock=settings.service.clock, now=clock.now(),
        device_id=settings.site.device_id))


def install_signal_handlers(stop: StopRequest) -> None:
    """SIGTERM and SIGINT -> stop.set(signal name)."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        stop.set(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run_service(
    settings: Settings,
    *,
    clock: Clock | None = None,
    stop_after: int | None = None,
    install_signals: bool = True,
    camera: RetryingCamera | None = None,
    analyzer: FaceAnalyzer | None = None,
) -> int:
    """`kiosk run`: open, loop until SIGTERM/SIGINT (or replay end / stop_after frames), close; the exit code.

    Raises KioskError (config, database, model, camera setup) before READY=1; the CLI shows it.
    """
    stop = StopRequest()
    if install_signals:
        install_signal_handlers(stop)
    service = open_service(settings, clock=clock, camera=camera, analyzer=analyzer, stop=stop)
    try:
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
