"""The read side of the reports: one consistent snapshot per report, events streamed in time order.

SQLite in WAL mode gives a reader snapshot isolation only inside one read transaction on one
connection. The sqlite3 module of Python 3.11 starts no transaction before a SELECT, so the
separate queries of a report, even in one session, each saw the newest commit: a person removed
between "events" and "people" made a report crash. read_snapshot() issues BEGIN itself on one
connection (read-only: PRAGMA query_only), and every query run through the Database it hands out
reads that connection inside that one transaction, until the with-block ends (ROLLBACK).

Writers are not held up by a snapshot (WAL); only a checkpoint cannot pass it while it lasts.
On PostgreSQL the snapshot is a REPEATABLE READ READ ONLY transaction (the engine seam, db.EngineOps).
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Integer, Select, String, bindparam, case, func, insert, literal, select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from kiosk.errors import StoreError
from kiosk.store.db import BoundDatabase, Database
from kiosk.store.models import AttendanceEvent, Door, Person, UTCDateTime
from kiosk.vocabulary import EventKind

logger = logging.getLogger(__name__)

EVENT_BATCH = 2000  # rows fetched from SQLite at a time while streaming events


class SnapshotDatabase(BoundDatabase):
    """A Database whose session() is always the one read-only transaction of a snapshot.

    Pass it to any query function of kiosk.store: they all read the same snapshot. Writes fail
    ("attempt to write a readonly database"); nothing is committed.
    """


@contextmanager
def read_snapshot(db: Database) -> Iterator[Database]:
    """A view of db frozen at its first read: every query through it sees the same commits."""
    if isinstance(db, SnapshotDatabase):  # already inside one: share it
        yield db
        return
    with db.engine.connect() as conn:
        db.ops.begin_read_snapshot(conn)  # deferred: the snapshot starts at the first SELECT
        try:
            with Session(bind=conn, expire_on_commit=False, autoflush=False) as session:
                yield SnapshotDatabase(db, session)
        finally:
            db.ops.end_read_snapshot(conn)


def _database_errors() -> tuple[type[BaseException], ...]:
    """What a failing database raises while a report streams: SQLAlchemy's wrapped driver errors, our
    StoreError, and psycopg's own (the fast path's COPY) when psycopg is loaded at all (importing it in
    every process would cost a standalone kiosk's web app about 9 MB)."""
    psycopg = sys.modules.get("psycopg")
    return (DBAPIError, StoreError) + ((psycopg.Error,) if psycopg is not None else ())


def whole_or_store_error(db: Database, chunks: Iterator[str], what: str) -> Iterator[str]:
    """chunks passed on as made; a database error while they are made (PostgreSQL gone in the
    middle of a streamed report) becomes one StoreError saying that `what` is incomplete (what was
    already passed on is not all of it). Closing this closes chunks (the report's snapshot)."""
    sent = 0
    try:
        for chunk in chunks:
            yield chunk
            sent += 1
    except _database_errors() as exc:
        from kiosk.store.postgres import database_error

        cause = exc if isinstance(exc, StoreError) else database_error(db.where, exc)
        logger.info("%s stopped after %d parts: %s", what, sent, cause)  # the caller shows the error
        raise type(cause)(f"{what} is incomplete: it stopped after {sent} part(s), the database failed ({cause}). "
                          "What was written so far is not the whole report; make it again") from exc
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def in_read_transaction(db: Database) -> bool:
    """True when db is a snapshot whose connection is inside its read transaction (for tests)."""
    if not isinstance(db, SnapshotDatabase):
        return False
    try:
        return db.ops.in_transaction(db.bound_session.connection())
    except SQLAlchemyError:  # the snapshot has ended and its connection gone back to the pool
        return False


@dataclass(frozen=True, slots=True)
class EventMark:
    """What attendance figures need of one event: person (None: unknown face), aware UTC time,
    kind (in/out/unknown) and whether it was entered by hand. No expression data."""

    person_id: int | None
    occurred_at: datetime
    kind: str
    manual: bool
    expression_label: str | None = None  # never loaded here; present so figures code can share
    device_id: str = ""  # the door (or kiosk, or "manual") that recorded it


def iter_event_marks(
    db: Database, utc_from: datetime, utc_to: datetime, *, person_id: int | None = None,
    batch: int = EVENT_BATCH,
) -> Iterator[EventMark]:
    """Events with utc_from <= occurred_at < utc_to, oldest first (ties by id), streamed from
    SQLite `batch` rows at a time (memory does not grow with the range). Use inside read_snapshot."""
    stmt = select(AttendanceEvent.person_id, AttendanceEvent.occurred_at, AttendanceEvent.kind,
                  AttendanceEvent.recorded_by.is_not(None), AttendanceEvent.device_id).where(
        AttendanceEvent.occurred_at >= utc_from.astimezone(UTC),
        AttendanceEvent.occurred_at < utc_to.astimezone(UTC),
    )
    if person_id is not None:
        stmt = stmt.where(AttendanceEvent.person_id == person_id)
    stmt = stmt.order_by(AttendanceEvent.occurred_at, AttendanceEvent.id)
    with db.session() as s:
        result = s.execute(stmt.execution_options(yield_per=batch))
        try:
            for pid, at, kind, manual, device in result:
                yield EventMark(pid, at, kind, bool(manual), device_id=device)
        finally:
            result.close()


def bulk_add_events(db: Database, rows: Iterable[dict[str, Any]], batch: int = 10_000) -> int:
    """Insert plain event rows (person_id, occurred_at aware, kind, device_id) with executemany,
    no per-event checks or audit (synthetic benchmark databases only); returns the count."""
    count = 0
    chunk: list[dict[str, Any]] = []
    with db.session() as s:
        for row in rows:
            chunk.append(row)
            if len(chunk) >= batch:
                s.execute(insert(AttendanceEvent), chunk)
                count += len(chunk)
                chunk = []
        if chunk:
            s.execute(insert(AttendanceEvent), chunk)
            count += len(chunk)
    return count


def bulk_add_people(db: Database, people: Iterable[tuple[str, str]], created_at: datetime) -> list[int]:
    """Insert active people (employee id, name) at once, no consent, no audit (synthetic benchmark
    databases only); returns their ids in the order given."""
    given = list(people)
    rows = [{"employee_id": e, "name": n, "active": True, "created_at": created_at,
             "expression_consent": False} for e, n in given]
    with db.session() as s:
        s.execute(insert(Person), rows)
        ids = dict(s.execute(select(Person.employee_id, Person.id)).tuples().all())
    return [ids[e] for e, _ in given]


class DayFigures(NamedTuple):
    """One person's events between two instants, aggregated in SQL (the first_last reading):
    first "in" and latest "out" (aware UTC; None when there is none), events, "out" events and
    whether any was entered by hand. person_id None: unknown faces (events = how many).
    A NamedTuple: a year of 500 people makes 130,000 of them, a frozen dataclass costs 3x."""

    person_id: int | None
    first_in: datetime | None
    latest_out: datetime | None
    events: int
    outs: int
    manual: bool
    # With day_figures(doors=...): the device ids of the first "in" and the latest "out", and of
    # the person's first event at one of those doors (their site for the day); None: none such.
    first_in_device: str | None = None
    latest_out_device: str | None = None
    site_device: str | None = None


def _day_figures_query(by_device: bool = False) -> Select[Any]:
    """The GROUP BY of day_figures, built once (bound values :utc_from, :utc_to, :person_id).
    Times come back as the stored text: parsing them in _utc is a third of the type machinery's cost.

    by_device: grouped by (person, device) too, with the device after the person and each group's
    first event time last: a few rows per person (the doors they used), merged in Python by
    _merge_devices."""
    e = AttendanceEvent
    figures = (
        func.min(case((e.kind == EventKind.IN, e.occurred_at)), type_=String),
        func.max(case((e.kind == EventKind.OUT, e.occurred_at)), type_=String),
        func.count(),
        func.sum(case((e.kind == EventKind.OUT, 1), else_=0)),
        func.max(case((e.recorded_by.is_not(None), 1), else_=0)),
    )
    keys = (e.person_id, e.device_id) if by_device else (e.person_id,)
    first = (func.min(e.occurred_at, type_=String),) if by_device else ()
    return select(*keys, *figures, *first).where(
        e.occurred_at >= bindparam("utc_from", type_=UTCDateTime),
        e.occurred_at < bindparam("utc_to", type_=UTCDateTime),
        (bindparam("person_id", type_=Integer).is_(None)) | (e.person_id == bindparam("person_id")),
    ).group_by(*keys)


_DAY_FIGURES = _day_figures_query()
_DAY_FIGURES_BY_DEVICE = _day_figures_query(by_device=True)


@functools.cache
def _segmented_query(inner_cuts: int) -> Select[Any]:
    """day_figures grouped by (person, device, segment): segment k holds the events from cut k on
    (bound :cut1..:cutN; 0 before :cut1), so every group lies on one local date in any zone.
    Columns as _DAY_FIGURES_BY_DEVICE's with the segment after the device."""
    e = AttendanceEvent
    seg = case(*[(e.occurred_at >= bindparam(f"cut{k}", type_=UTCDateTime), k)
                 for k in range(inner_cuts, 0, -1)], else_=0) if inner_cuts else literal(0)
    rows = select(e.person_id, e.device_id, e.kind, e.occurred_at, e.recorded_by, seg.label("seg")).where(
        e.occurred_at >= bindparam("utc_from", type_=UTCDateTime),
        e.occurred_at < bindparam("utc_to", type_=UTCDateTime),
        (bindparam("person_id", type_=Integer).is_(None)) | (e.person_id == bindparam("person_id")),
    ).subquery()
    return select(
        rows.c.person_id, rows.c.device_id, rows.c.seg,
        func.min(case((rows.c.kind == EventKind.IN, rows.c.occurred_at)), type_=String),
        func.max(case((rows.c.kind == EventKind.OUT, rows.c.occurred_at)), type_=String),
        func.count(),
        func.sum(case((rows.c.kind == EventKind.OUT, 1), else_=0)),
        func.max(case((rows.c.recorded_by.is_not(None), 1), else_=0)),
        func.min(rows.c.occurred_at, type_=String),
    ).group_by(rows.c.person_id, rows.c.device_id, rows.c.seg)


SegmentKeep = Callable[[int | None, str, bool, datetime], bool]
"""day_figures' keep: (person id, device id, entered by hand?, the segment's first instant) -> True
when that group of events belongs to the day asked for."""


def _utc(value: str | datetime | None) -> datetime | None:
    """A stored naive-UTC time (text on SQLite, datetime elsewhere) as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        return datetime.fromisoformat(value + "+00:00")  # one C call; .replace() costs as much again
    return value.replace(tzinfo=UTC)


def day_figures(db: Database, utc_from: datetime, utc_to: datetime, *,
                person_id: int | None = None, doors: Collection[str] | None = None,
                cuts: Sequence[datetime] = (), keep: SegmentKeep | None = None) -> list[DayFigures]:
    """DayFigures per person with events in utc_from <= occurred_at < utc_to (one GROUP BY query,
    one row per person: a day of 500 people is 500 rows, however many events). doors (device ids,
    a central's): group by device too and fill the *_device fields (unknown faces: a row per device).
    cuts (aware, ascending, inside the window) with keep: the events are grouped by (person, device,
    segment between cuts) and only the groups keep accepts are counted (a central whose sites lie in
    several zones: each group lies on one local date of its own zone)."""
    params: dict[str, Any] = {"utc_from": utc_from, "utc_to": utc_to, "person_id": person_id}
    if keep is not None:
        inner = [t for t in cuts if utc_from < t < utc_to]
        params |= {f"cut{k}": t for k, t in enumerate(inner, 1)}
        starts = [utc_from, *inner]
        with db.session() as s:
            segmented = s.execute(_segmented_query(len(inner)), params).tuples().all()
        kept = [(pid, device, *figures) for pid, device, seg, *figures in segmented
                if keep(pid, device, bool(figures[4]), starts[seg])]
        return _merge_devices(kept, doors or ())
    if doors is not None:
        with db.session() as s:
            grouped = s.execute(_DAY_FIGURES_BY_DEVICE, params).tuples().all()
        return _merge_devices(grouped, doors)
    with db.session() as s:
        rows = s.execute(_DAY_FIGURES, params).tuples().all()
    return [DayFigures(pid, _utc(first_in), _utc(latest_out), n, outs or 0, bool(manual))
            for pid, first_in, latest_out, n, outs, manual in rows]


def _merge_devices(grouped: Iterable[tuple[Any, ...]], doors: Collection[str]) -> list[DayFigures]:
    """One DayFigures per person from their (person, device) groups; unknown faces stay one row
    per device (site_device set when it is a door), so they can be counted per site. Times are
    compared as stored (fixed-width text on SQLite, datetimes elsewhere) and parsed once at the end."""
    acc: dict[int, list[Any]] = {}  # first_in, its device, latest_out, its device, n, outs, manual, first door time, its device
    unknown: list[DayFigures] = []
    for pid, device, first_in, latest_out, n, outs, manual, first in grouped:
        is_door = device in doors and not manual
        if pid is None:
            unknown.append(DayFigures(None, _utc(first_in), _utc(latest_out), n, outs or 0, bool(manual),
                                      site_device=device if is_door else None))
            continue
        a = acc.get(pid)
        if a is None:
            acc[pid] = [first_in, device if first_in is not None else None, latest_out,
                        device if latest_out is not None else None, n, outs or 0, bool(manual),
                        first if is_door else None, device if is_door else None]
            continue
        if first_in is not None and (a[0] is None or first_in < a[0]):
            a[0], a[1] = first_in, device
        if latest_out is not None and (a[2] is None or latest_out > a[2]):
            a[2], a[3] = latest_out, device
        a[4] += n
        a[5] += outs or 0
        a[6] = a[6] or bool(manual)
        if is_door and (a[7] is None or first < a[7]):
            a[7], a[8] = first, device
    return [DayFigures(pid, _utc(a[0]), _utc(a[2]), a[4], a[5], a[6], a[1], a[3], a[8])
            for pid, a in acc.items()] + unknown


def home_sites(db: Database, before: datetime, person_id: int | None = None,
               site_before: Mapping[str, datetime] | None = None) -> dict[int, str]:
    """Each person's home site (or only person_id's): the site of their latest event before `before`
    (aware) at a door that has a site; site_before: another bound for the events of those sites'
    doors (a central's sites in other zones: the end of the same local date there). People never
    seen at such a door are absent. One query, an index seek per person."""
    e = AttendanceEvent
    bounds = {site: t.astimezone(UTC) for site, t in (site_before or {}).items()}
    limit = e.occurred_at < before.astimezone(UTC)
    if bounds:
        latest_bound = max([before.astimezone(UTC), *bounds.values()])
        own = case(*[(Door.site == site, literal(t, UTCDateTime)) for site, t in sorted(bounds.items())],
                   else_=literal(before.astimezone(UTC), UTCDateTime))
        limit = (e.occurred_at < latest_bound) & (e.occurred_at < own)
    latest = (
        select(Door.site).select_from(e).join(Door, Door.device_id == e.device_id)
        .where(e.person_id == Person.id, e.recorded_by.is_(None), Door.site.is_not(None), limit)
        .order_by(e.occurred_at.desc(), e.id.desc()).limit(1)
        .correlate(Person).scalar_subquery()
    )
    stmt = select(Person.id, latest)
    if person_id is not None:
        stmt = stmt.where(Person.id == person_id)
    with db.session() as s:
        rows = s.execute(stmt).tuples().all()
    return {pid: site for pid, site in rows if site is not None}
