"""`kiosk events` and `kiosk leave`: attendance set right by hand (missed or wrong check-ins and
check-outs, whole days of leave), every change audited."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import click

from kiosk.cli.base import FILE_PATH, Context, person, with_context
from kiosk.vocabulary import PERSON_EVENT_KINDS, LeaveKind, values

if TYPE_CHECKING:
    from kiosk import store
    from kiosk.config import Settings

logger = logging.getLogger(__name__)

ROW_ID = click.IntRange(1, 2**63 - 1)
"""An event or leave id: SQLite's INTEGER range (a larger number is a usage error, not an OverflowError)."""


# --- attendance events ------------------------------------------------------------------------


def _person_tz(database: store.Database, ctx: Context, person_id: int) -> ZoneInfo:
    """The zone a person's events are typed and listed in: the site's, or on a central with sites:
    their home site's (reports.person_rules)."""
    from kiosk.reports import person_rules

    return person_rules(database, ctx.settings, person_id, datetime.now(UTC)).tz


def _pairing(settings: Settings) -> store.Pairing | None:
    """On a central (role: central) the merged stream's rules (door_api.pairing_of): a correction decides the
    day's camera events again; None elsewhere (a door's or a standalone kiosk's kinds are its own)."""
    if settings.role != "central":
        return None
    from kiosk.web.door_api import pairing_of

    return pairing_of(settings)


@click.group()
def events() -> None:
    """List a person's attendance events; correct them by hand (audited, marked in reports)."""


@events.command("list")
@click.argument("employee_id")
@click.option("--date", "day_text", default="today", show_default=True, help="Local day: YYYY-MM-DD, today, yesterday.")
@with_context
def events_list(ctx: Context, employee_id: str, day_text: str) -> None:
    """EMPLOYEE_ID's events on one day: id, time, kind, who recorded it (local times: the site's, or on a
    central with sites: the person's home site's)."""
    from kiosk import store
    from kiosk.reports import parse_day

    day = parse_day(day_text, ctx.settings)
    with ctx.open_db() as database:
        p = person(database, employee_id)
        tz = _person_tz(database, ctx, p.id)
        start, end = store.local_day_bounds(day, tz)
        rows = store.events_between(database, start, end, person_id=p.id)
    if not rows:
        click.echo(f"{p.name} ({p.employee_id}): no events on {day}")
    for e in rows:
        by = f"by hand ({e.recorded_by}: {e.note})" if e.manual else f"camera {e.device_id}"
        review = f"  REVIEW: {e.review}" if e.review else ""
        click.echo(f"{e.id:>8}  {e.occurred_at.astimezone(tz):%Y-%m-%d %H:%M}  {e.kind:<4} {by}{review}")


@events.command("add")
@click.argument("employee_id")
@click.option("--kind", type=click.Choice([kind.value for kind in PERSON_EVENT_KINDS]), required=True,
              help="Check-in or check-out.")
@click.option("--at", "at_text", required=True,
              help='Local time "YYYY-MM-DD HH:MM" in the site\'s time zone (on a central with sites: the '
                   'person\'s home site\'s, the site of their latest door event); in the repeated hour when '
                   'clocks go back add its UTC offset, e.g. "2026-10-25 02:30+02:00".')
@click.option("--note", required=True, help="Why (kept with the event and in the audit log).")
@with_context
def events_add(ctx: Context, employee_id: str, kind: str, at_text: str, note: str) -> None:
    """Add a missed check-in or check-out for EMPLOYEE_ID."""
    from kiosk import store
    from kiosk.clock import parse_site_time

    with ctx.open_db() as database:
        p = person(database, employee_id)
        at = parse_site_time(at_text, _person_tz(database, ctx, p.id))
        event = store.add_correction(database, p.id, at, kind, actor="cli", note=note,
                                     retention_days=ctx.settings.retention.attendance_days,
                                     pairing=_pairing(ctx.settings))
    click.echo(f"{p.name} ({p.employee_id}): check-{kind} at {at:%Y-%m-%d %H:%M} added (event {event.id})")


@events.command("remove")
@click.argument("event_id", type=ROW_ID)
@click.option("--reason", required=True, help="Why the event is wrong (kept in the audit log).")
@with_context
def events_remove(ctx: Context, event_id: int, reason: str) -> None:
    """Delete the wrong event EVENT_ID (see `kiosk events list`)."""
    from kiosk import store

    with ctx.open_db() as database:
        removed = store.remove_event(database, event_id, actor="cli", reason=reason, pairing=_pairing(ctx.settings))
        tz = _person_tz(database, ctx, removed.person_id) if removed.person_id is not None else ctx.settings.tz
    click.echo(f"event {event_id} removed: check-{removed.kind} at {removed.occurred_at.astimezone(tz):%Y-%m-%d %H:%M}")


# --- leave ------------------------------------------------------------------------------------


@click.group()
def leave() -> None:
    """Record leave (holiday, sick, other): reports count those work days as leave, not absence."""


def _leave_line(item: store.LeaveInfo, people: dict[int, store.PersonInfo]) -> str:
    """One row of `kiosk leave list`: id, employee id, name, kind, days."""
    p = people[item.person_id]
    return f"{item.id:>6}  {p.employee_id:<10} {p.name:<24} {item.kind:<8} {item.span()}"


@leave.command("add")
@click.argument("employee_id")
@click.option("--from", "first", required=True, help="First day: YYYY-MM-DD, today or yesterday.")
@click.option("--to", "last", default=None, help="Last day, inclusive (default: the first day).")
@click.option("--kind", type=click.Choice(values(LeaveKind)), default=LeaveKind.HOLIDAY.value, show_default=True,
              help="Only the kind is stored, no reason.")
@with_context
def leave_add(ctx: Context, employee_id: str, first: str, last: str | None, kind: str) -> None:
    """Record EMPLOYEE_ID's leave over whole days."""
    from kiosk import store
    from kiosk.reports import parse_day

    first_day = parse_day(first, ctx.settings)
    last_day = parse_day(last, ctx.settings) if last else first_day
    with ctx.open_db() as database:
        p = person(database, employee_id)
        item = store.add_leave(database, p.id, first_day, last_day, kind, actor="cli")
    work_days = sum(1 for d in item.days() if ctx.settings.site.is_work_day(d))
    click.echo(f"{p.name} ({p.employee_id}): {kind} leave {item.span()}, {work_days} work day(s) (leave {item.id})")


@leave.command("import")
@click.argument("csv_file", type=FILE_PATH)
@with_context
def leave_import(ctx: Context, csv_file: Path) -> None:
    """Record leave from CSV_FILE (e.g. an HR export), all or nothing.

    Columns: employee_id, first_day (YYYY-MM-DD), last_day (empty: one day), kind (holiday, sick,
    other; empty: holiday). Every wrong line is listed; then nothing is recorded.
    """
    from kiosk import store
    from kiosk.leave_csv import read_leave_csv

    with ctx.open_db() as database:
        items = read_leave_csv(csv_file, database)
        added = store.add_leave_batch(database, items, actor="cli")
    click.echo(f"recorded {len(added)} leave entr{'y' if len(added) == 1 else 'ies'} from {csv_file}")


@leave.command("list")
@click.argument("employee_id", required=False)
@click.option("--from", "first", default=None, help="Leave ending on or after this day (YYYY-MM-DD, today).")
@click.option("--to", "last", default=None, help="Leave starting on or before this day.")
@with_context
def leave_list(ctx: Context, employee_id: str | None, first: str | None, last: str | None) -> None:
    """Recorded leave (everyone's, or EMPLOYEE_ID's): id, employee, kind, days."""
    from kiosk import store
    from kiosk.reports import parse_day

    first_day = parse_day(first, ctx.settings) if first else None
    last_day = parse_day(last, ctx.settings) if last else None
    with ctx.open_db() as database:
        person_id = person(database, employee_id).id if employee_id else None
        items = store.leave_between(database, first_day, last_day, person_id=person_id)
        people = store.people_by_id(database, {item.person_id for item in items})
    if not items:
        click.echo("no leave recorded" + (f" for {employee_id}" if employee_id else ""))
    for item in items:
        click.echo(_leave_line(item, people))


@leave.command("remove")
@click.argument("leave_id", type=ROW_ID)
@with_context
def leave_remove(ctx: Context, leave_id: int) -> None:
    """Delete leave LEAVE_ID (see `kiosk leave list`); the audit log keeps what it was."""
    from kiosk import store

    with ctx.open_db() as database:
        item = store.remove_leave(database, leave_id, actor="cli")
    click.echo(f"leave {leave_id} removed: {item.kind}, {item.span()}")
