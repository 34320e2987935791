"""Scheduled jobs of both services: the retention purge and the daily off-site copy.

The door service purges once per local day (DailyPurge, at start and after midnight); the web app
(`kiosk serve`) runs both jobs at start and then every 24 hours (start_daily_jobs), and its privacy
page's "purge now" calls run_purge. Each job takes anything with the open database, the settings and
the clock (the web app's WebContext, the door service).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Protocol

from kiosk.clock import Clock
from kiosk.config import Settings
from kiosk.errors import StoreError
from kiosk.store import (
    Database,
    OffsiteCopy,
    PurgeResult,
    purge_expired,
    read_sync_state,
    record_copy,
    write_daily_copy,
)

logger = logging.getLogger(__name__)

DAY_S = 24 * 3600.0
"""Seconds between two runs of the web app's daily jobs."""

PURGE_ACTOR = "system:daily-purge"
"""Audit-log actor of the web app's daily retention purge."""
COPY_ACTOR = "system:daily-backup"
"""Audit-log actor of the web app's daily off-site copy."""
DOOR_ACTOR = "kiosk"
"""Audit-log actor of the door service's own retention purge."""


class MaintenanceTarget(Protocol):
    """What a scheduled job needs: the open database, the settings and the clock."""

    @property
    def db(self) -> Database: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def clock(self) -> Clock: ...


def run_purge(c: MaintenanceTarget, who: str) -> PurgeResult:
    """Apply the retention settings now (store.purge_expired), audited as who; its PurgeResult. A door of a
    central keeps every event the central has not acknowledged (and its newest: ids are never reused)."""
    door_file = c.db.path if c.settings.role == "door" else None  # a door's database is always a file
    keep = read_sync_state(door_file).pushed_seq if door_file is not None else None
    return purge_expired(c.db, c.clock.now(), c.settings.retention, actor=who, keep_from_id=keep)


def run_daily_copy(c: MaintenanceTarget, who: str) -> OffsiteCopy | None:
    """Write today's copy to database.offsite_dir when set (store.write_daily_copy); None if none was due."""
    d = c.settings.database
    if d.offsite_dir is None:
        return None
    today = c.clock.now().astimezone(c.settings.tz).date()
    copy = write_daily_copy(Path(d.path), d.offsite_dir, d.offsite_kept, today)
    if copy is not None:
        record_copy(c.db, who, copy)
    return copy


class DailyPurge:
    """The door service's retention purge: once per local day at the site, a failure retried the next day.

    refused says why the latest purge deleted nothing (e.g. a clock far ahead of the data), else None.
    """

    def __init__(self, who: str = DOOR_ACTOR) -> None:
        self.who = who
        self.last_day: date | None = None
        self.refused: str | None = None

    def run_if_due(self, c: MaintenanceTarget) -> None:
        """Purge unless today's purge already ran (or failed: then tomorrow)."""
        today = c.clock.now().astimezone(c.settings.tz).date()
        if self.last_day == today:
            return
        self.last_day = today
        try:
            result = run_purge(c, self.who)
        except StoreError as exc:
            logger.warning("retention purge failed (retried tomorrow): %s", exc)
            return
        self.refused = result.refused


Job = tuple[str, Callable[[], object]]
"""A named job: (name for the log, what to run)."""


def daily_jobs(c: MaintenanceTarget) -> list[Job]:
    """The web app's daily jobs its settings ask for: the retention purge (web.daily_purge) and the
    off-site copy (database.offsite_dir)."""
    jobs: list[Job] = []
    if c.settings.web.daily_purge:
        jobs.append(("retention purge", lambda: run_purge(c, PURGE_ACTOR)))
    if c.settings.database.offsite_dir is not None:
        jobs.append(("off-site copy", lambda: run_daily_copy(c, COPY_ACTOR)))
    return jobs


def start_daily_jobs(c: MaintenanceTarget, every_s: float = DAY_S) -> threading.Event | None:
    """Run daily_jobs(c) now and then every every_s seconds in a daemon thread (a failing job is logged,
    the others still run); the Event that stops the loop, or None when no job is asked for."""
    jobs = daily_jobs(c)
    if not jobs:
        return None
    stop = threading.Event()

    def _daily_loop() -> None:
        while not stop.is_set():
            for name, job in jobs:
                try:
                    job()
                except Exception:  # keep serving; the next day tries again
                    logger.exception("daily %s failed", name)
            stop.wait(every_s)

    threading.Thread(target=_daily_loop, name="daily-jobs", daemon=True).start()
    return stop
