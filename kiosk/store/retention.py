"""The retention purge: old events, expression data, kept photos, erased people and finished capture
requests go when retention says so, never on the word of a clock far ahead of the data; in the upgrade
backups beside an SQLite file too, by the same rules (erasure.rewrite_backups).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from dataclasses import replace as dataclass_replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from kiosk.config import RetentionSettings
from kiosk.errors import DatabaseUnavailable
from kiosk.store import sqlite
from kiosk.store._base import (
    changed_rows,
    newest_event_time,
    now_utc,
    strip_expressions,
    write_audit,
)
from kiosk.store.db import Database, refuse_transaction
from kiosk.store.erasure import (
    BLANK_EXPRESSIONS,
    HAS_EXPRESSIONS,
    Plan,
    Statements,
    finish_pending_erasures,
    rewrite_backups,
)
from kiosk.store.models import (
    AttendanceEvent,
    AuditEntry,
    CaptureRequest,
    EnrolmentImage,
    Leave,
    Person,
)
from kiosk.vocabulary import CAPTURES_ACTIVE

logger = logging.getLogger(__name__)

KEEP_FINISHED_CAPTURES = timedelta(days=1)  # an admin can still read the outcome the next morning
# How far the clock may run ahead of the newest stored event or audit line before the retention purge
# refuses to run: a Pi without a real-time clock can boot years off, and a purge trusting it would
# delete everything. Longer lets a site closed for a long weekend purge on its first day back;
# shorter refuses sooner. A site closed longer purges again after its first new event.
CLOCK_AHEAD_TOLERANCE = timedelta(days=2)
PURGE_REFUSED = "retention.purge_refused"  # audit action of a refusal (not counted as data time)


@dataclass(frozen=True)
class PurgeResult:
    """Counts of what purge_expired removed; refused: why it removed nothing (None: it ran)."""

    events_deleted: int
    expression_stripped: int
    images_deleted: int
    people_removed: int
    leave_deleted: int = 0
    refused: str | None = None
    backups_purged: int = 0  # upgrade backups beside the SQLite file that the same purge changed

    def counts(self) -> dict[str, int]:
        """The counts of the live database alone, {field: rows}."""
        return {k: v for k, v in asdict(self).items() if k not in ("refused", "backups_purged")}


def _newest_data_time(s: Session) -> datetime | None:
    """The newest time the data itself holds (events, audit lines other than purge refusals), or None."""
    newest_audit = s.scalar(select(func.max(AuditEntry.at)).where(AuditEntry.action != PURGE_REFUSED))
    times = [t for t in (newest_event_time(s), newest_audit) if t is not None]
    return max(times) if times else None


def _clock_ahead(now: datetime, newest: datetime | None) -> str | None:
    """Why a purge at `now` must not run (the clock is far ahead of the newest stored time), or None."""
    if newest is None or now <= newest + CLOCK_AHEAD_TOLERANCE:
        return None
    return (f"retention purge refused: the clock says {now:%Y-%m-%d %H:%M} UTC, "
            f"{(now - newest).days} days after the newest stored event or audit line "
            f"({newest:%Y-%m-%d %H:%M} UTC; more than {CLOCK_AHEAD_TOLERANCE.days} days allowed). "
            "Check the system clock (timedatectl); nothing was deleted")


def _file_time(at: datetime) -> str:
    """An aware time as the SQLite file stores it (naive UTC text, models.UTCDateTime), for raw SQL on a backup."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _backup_plan(events_cutoff: datetime, expr_cutoff: datetime, now: datetime, retention: RetentionSettings,
                 below_id: int | None) -> Plan:
    """The purge as raw SQL for each upgrade backup (erasure.rewrite_backups), the same rules as on the live file:
    events before events_cutoff (with below_id, a door's: only ids below it, and never the backup's newest),
    leave ended before it, expression data before expr_cutoff, photos unless kept, erased people with nothing
    left, finished capture requests."""
    old_events = "occurred_at < ?"
    event_params: tuple[Any, ...] = (_file_time(events_cutoff),)
    if below_id is not None:
        old_events += " AND id < ? AND id < (SELECT max(id) FROM attendance_events)"
        event_params += (below_id,)
    active = ", ".join("?" for _ in CAPTURES_ACTIVE)

    def plan(backup: Path, _runs: object) -> Statements:
        statements: Statements = [
            ("attendance_events", f"DELETE FROM attendance_events WHERE {old_events}", event_params),
            ("leave", "DELETE FROM leave WHERE last_day < ?", (events_cutoff.date().isoformat(),)),
            ("attendance_events", f"UPDATE attendance_events SET {BLANK_EXPRESSIONS} WHERE occurred_at < ? AND "
                                  f"{HAS_EXPRESSIONS}", (_file_time(expr_cutoff),)),
            ("capture_requests", f"DELETE FROM capture_requests WHERE status NOT IN ({active}) AND finished_at < ?",
             (*[str(c) for c in CAPTURES_ACTIVE], _file_time(now - KEEP_FINISHED_CAPTURES))),
        ]
        if not retention.keep_enrolment_images:
            # a WHERE: a bare DELETE truncates the table, rewriting its pages even when it is empty
            statements.append(("enrolment_images", "DELETE FROM enrolment_images WHERE id IS NOT NULL", ()))
        # a backup from before leave existed (revision 0005) has no leave table to look in
        no_leave = ("" if sqlite.read_file(backup, "leave", "SELECT 1 FROM leave LIMIT 0") is None
                    else " AND NOT EXISTS (SELECT 1 FROM leave l WHERE l.person_id = people.id)")
        statements.append(("people", "DELETE FROM people WHERE erased_at IS NOT NULL AND NOT EXISTS "
                                     "(SELECT 1 FROM attendance_events e WHERE e.person_id = people.id)" + no_leave, ()))
        return statements
    return plan


def purge_expired(
    db: Database, now: datetime, retention: RetentionSettings, *, actor: str = "system",
    keep_from_id: int | None = None,
) -> PurgeResult:
    """Apply retention: delete old events, strip old expression data, drop kept photos if
    not allowed, remove erased people with no events left; VACUUM when anything went (SQLite: the
    file; PostgreSQL: enrolment_images when photos went, the rest is autovacuum's).

    Never trusts a clock far ahead of the data: when now is more than CLOCK_AHEAD_TOLERANCE after the
    newest stored event or audit line, nothing is deleted and the result says why (refused; also
    logged and audit-logged). Cut-offs count back from min(now, newest stored time + tolerance).
    keep_from_id (a door of a central: its acknowledged pushed_seq): events with id >= it are kept
    whatever their age (not yet on the central), and so is the newest event, so that SQLite never hands
    out an event id (the door's sequence number) again. Then the same purge runs on every upgrade backup
    beside an SQLite file (_backup_plan; backups_purged: those changed; StoreError naming a backup that cannot
    be changed, the live purge committed already). Commits by itself: refused inside db.transaction().
    """
    refuse_transaction(db, "purge_expired")
    now = now_utc(now)
    with db.session() as s:
        newest = _newest_data_time(s)
        refused = _clock_ahead(now, newest)
        if refused:
            write_audit(s, actor, PURGE_REFUSED, None, {"reason": refused}, now)
    if refused:
        logger.warning("%s", refused)
        return PurgeResult(0, 0, 0, 0, 0, refused=refused)
    reference = now if newest is None else min(now, newest + CLOCK_AHEAD_TOLERANCE)
    events_cutoff = reference - timedelta(days=retention.attendance_days)
    expr_cutoff = reference - timedelta(days=retention.expression_days)
    with db.session() as s:
        old_events = AttendanceEvent.occurred_at < events_cutoff
        newest_id = s.scalar(select(func.max(AttendanceEvent.id))) or 0
        if keep_from_id is not None:
            old_events = old_events & (AttendanceEvent.id < min(keep_from_id, newest_id))
        n_events = changed_rows(s, delete(AttendanceEvent).where(old_events))
        # leave follows the events' retention, counted from its last (local) day
        n_leave = changed_rows(s, delete(Leave).where(Leave.last_day < events_cutoff.date()))
        n_stripped = strip_expressions(s, AttendanceEvent.occurred_at < expr_cutoff)
        n_images = 0
        if not retention.keep_enrolment_images:
            n_images = changed_rows(s, delete(EnrolmentImage))
        has_events = select(AttendanceEvent.id).where(AttendanceEvent.person_id == Person.id)
        has_leave = select(Leave.id).where(Leave.person_id == Person.id)
        n_people = changed_rows(s, (
            delete(Person).where(Person.erased_at.is_not(None), ~has_events.exists(), ~has_leave.exists())
            .execution_options(synchronize_session=False)
        ))
        s.execute(delete(CaptureRequest).where(CaptureRequest.status.not_in(CAPTURES_ACTIVE),
                                               CaptureRequest.finished_at < now - KEEP_FINISHED_CAPTURES))
        result = PurgeResult(n_events, n_stripped, n_images, n_people, n_leave)
        if any(result.counts().values()):
            write_audit(s, actor, "retention.purge", None, result.counts(), now)
    if any(result.counts().values()):
        try:
            db.vacuum(("enrolment_images",) if n_images else ())  # PostgreSQL: only photo storage
        except DatabaseUnavailable as exc:
            if db.kind == "sqlite":
                raise
            logger.warning("retention purge: rows deleted; enrolment_images not rewritten yet, a reader "
                           "held it (%s); run the purge again to rewrite it", exc)
    if db.kind == "postgresql":  # erasures whose tables were busy when they ran (erasure.finish_erasure)
        finish_pending_erasures(db)
    if db.path is not None:  # every time: a backup missed once (a power cut here) is purged the next day
        purged = rewrite_backups(db.path, "apply the retention purge", _backup_plan(
            events_cutoff, expr_cutoff, now, retention, None if keep_from_id is None else min(keep_from_id, newest_id)))
        if purged:
            result = dataclass_replace(result, backups_purged=len(purged))
            with db.session() as s:
                write_audit(s, actor, "retention.purge_backups", None, {"backups": [b.name for b in purged]}, now)
    logger.info("retention purge: %s", result)
    return result
