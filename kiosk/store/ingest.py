"""A central server's intake of a door's events (docs/central.md): one batch in one transaction,
each (door, seq) stored once, the answer the highest sequence held for the door.

A sequence held already with the same UUID is a repeat and skipped (the door lost our answer and
pushed again); with another UUID it is a SeqConflict and nothing of the batch is stored (the door's
database was replaced and its numbers started again: skipping would lose its events). An event of
a person the central does not have, or has erased, is stored without a person, without expression
or match data, and with review set; so are none of the others' expression data without consent.
Events from a door whose clock is off by more than max_clock_offset_s get review set.

Given a Pairing, the in/out of a person's camera events is decided again on the merged stream of every
door, in event time order per local day (first_last: the day's first event "in", later ones "out";
toggle: in, out, in ...), so someone who enters by door A and leaves by door B has one day with an in
and an out; a door's own kind is its provisional answer. Hand corrections keep their kind. Each event's
local day is in its own door's site zone (events without a door's site: the person's home site's). In toggle
mode a camera event within cooldown_s after the person's previous counted camera event of that day (any
door) does not toggle: it takes the previous event's kind and is not counted itself. The people's rows are locked
(FOR NO KEY UPDATE) before their days are read, so a push and a hand correction of one person-day pair in turn.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kiosk.store._base import now_utc
from kiosk.store.db import Database
from kiosk.store.doors import MAX_VERSION_CHARS, DoorError, DoorNotFound, DoorRevoked
from kiosk.store.models import AttendanceEvent, Door, GalleryChange, Person
from kiosk.vocabulary import EventKind, values

logger = logging.getLogger(__name__)

_CHUNK = 500  # values per IN (...) list


class SeqConflict(DoorError):
    """A pushed sequence is held already with another event UUID: the door's numbering restarted."""


class InvalidDoorEvent(DoorError):
    """A pushed event the central cannot take (bad kind, sequence, time or values)."""


@dataclass(frozen=True)
class DoorEvent:
    """One event as a door pushes it; seq: the door's own event id (>= 1), at: aware time."""

    seq: int
    uuid: str
    person_id: int | None
    at: datetime
    kind: str
    distance: float | None = None
    score: float | None = None
    expression_label: str | None = None
    expression_scores: dict[str, float] | None = None
    expression_confidence: float | None = None
    review: str | None = None


@dataclass(frozen=True)
class Pairing:
    """How intake decides in/out on the merged stream: attendance mode ("first_last" | "toggle"), site:'s
    zone (sites not in site_zones, people without a home site), each site's zone by name, cooldown (s, toggle)."""

    mode: str
    default_zone: ZoneInfo
    site_zones: Mapping[str, ZoneInfo] = field(default_factory=dict)
    cooldown_s: float = 0.0


@dataclass(frozen=True)
class IngestResult:
    """What a push did: the highest sequence held for the door, events stored, repeats skipped,
    events flagged for review, and the door's clock offset (s, door minus central) if it said."""

    last_seq: int
    stored: int
    repeated: int
    flagged: int
    clock_offset_s: float | None


def ingest_events(
    db: Database,
    door_id: int,
    events: Sequence[DoorEvent],
    *,
    clock: datetime | None = None,
    version: str | None = None,
    backlog: int | None = None,
    max_clock_offset_s: float = 120.0,
    pairing: Pairing | None = None,
    now: datetime | None = None,
) -> IngestResult:
    """Store a door's batch in one transaction (see module docstring) and note the door's report
    (seen now, clock offset, version, backlog); pairing: decide the in/out of the people's days it
    touches on the merged stream. DoorRevoked, SeqConflict, InvalidDoorEvent."""
    now = now_utc(now)
    batch = _unique_by_seq(events)
    for attempt in range(2):
        try:
            return _ingest(db, door_id, batch, clock=clock, version=version, backlog=backlog,
                           max_clock_offset_s=max_clock_offset_s, pairing=pairing, now=now)
        except IntegrityError:
            # another push of this door stored some of these sequences meanwhile; they are repeats now
            if attempt:
                raise
            logger.info("door %s: a concurrent push stored part of this batch; retrying", door_id)
    raise AssertionError("unreachable")


def _unique_by_seq(events: Sequence[DoorEvent]) -> list[DoorEvent]:
    """The batch by sequence, checked; a sequence twice with the same UUID counts once."""
    by_seq: dict[int, DoorEvent] = {}
    kinds = values(EventKind)
    for e in events:
        if isinstance(e.seq, bool) or not isinstance(e.seq, int) or e.seq < 1:
            raise InvalidDoorEvent(f"event seq must be a whole number from 1, not {e.seq!r}")
        if e.kind not in kinds:
            raise InvalidDoorEvent(f"event {e.seq}: kind must be one of {', '.join(kinds)}, not {e.kind!r}")
        if (e.person_id is None) != (e.kind == EventKind.UNKNOWN):
            raise InvalidDoorEvent(f"event {e.seq}: kind 'unknown' goes with person_id null, and only with it")
        if e.at.tzinfo is None:
            raise InvalidDoorEvent(f"event {e.seq}: its time has no UTC offset")
        for name in ("distance", "score", "expression_confidence"):
            value = getattr(e, name)
            if value is not None and not math.isfinite(value):
                raise InvalidDoorEvent(f"event {e.seq}: {name} must be a finite number")
        seen = by_seq.get(e.seq)
        if seen is not None and seen.uuid != e.uuid:
            raise InvalidDoorEvent(f"seq {e.seq} appears twice in the batch with different UUIDs")
        by_seq[e.seq] = e
    return [by_seq[k] for k in sorted(by_seq)]


def _held(s: Session, device_id: str, seqs: list[int]) -> dict[int, str | None]:
    """{seq: uuid} of the given sequences already stored for the door."""
    held: dict[int, str | None] = {}
    for i in range(0, len(seqs), _CHUNK):
        rows = s.execute(select(AttendanceEvent.door_seq, AttendanceEvent.event_uuid).where(
            AttendanceEvent.device_id == device_id, AttendanceEvent.door_seq.in_(seqs[i:i + _CHUNK])))
        held.update({int(seq): uuid for seq, uuid in rows})
    return held


def _people(s: Session, ids: list[int]) -> dict[int, tuple[bool, bool]]:
    """{person id: (erased, expression consent)} of those that exist or existed: a person whose row
    is gone but who has gallery changes was erased (with their events, or purged later)."""
    out: dict[int, tuple[bool, bool]] = {}
    for i in range(0, len(ids), _CHUNK):
        rows = s.execute(select(Person.id, Person.erased_at, Person.expression_consent)
                         .where(Person.id.in_(ids[i:i + _CHUNK])))
        out.update({int(pid): (erased is not None, bool(consent)) for pid, erased, consent in rows})
    gone = [pid for pid in ids if pid not in out]
    for i in range(0, len(gone), _CHUNK):
        erased = s.scalars(select(GalleryChange.person_id)
                           .where(GalleryChange.person_id.in_(gone[i:i + _CHUNK])).distinct())
        out.update({int(pid): (True, False) for pid in erased})
    return out


class _Zones:
    """Which zone places each event: its door's site zone; an event without a door that has a site (a hand
    correction, a door with no site) the zone of the person's home site (the site of their latest camera
    event at a door with a site, as reports place it), else the default zone. No sites: the default alone."""

    def __init__(self, s: Session, pairing: Pairing) -> None:
        self.s, self.default, self.site_zones = s, pairing.default_zone, pairing.site_zones
        self.doors: dict[str, ZoneInfo] = {}
        self.homes: dict[int, ZoneInfo] = {}
        if self.site_zones:
            self.doors = {str(device_id): self._of_site(site) for device_id, site in
                          s.execute(select(Door.device_id, Door.site).where(Door.site.is_not(None)))}

    def _of_site(self, site: str | None) -> ZoneInfo:
        return self.site_zones.get(site, self.default) if site is not None else self.default

    def all(self) -> set[ZoneInfo]:
        """Every zone an event can be placed in."""
        return {self.default, *self.site_zones.values()}

    def of(self, person_id: int, device_id: str | None) -> ZoneInfo:
        """The zone of a person's event at device_id."""
        if not self.site_zones:
            return self.default
        zone = self.doors.get(device_id or "")
        if zone is None:
            zone = self.homes.get(person_id)
            if zone is None:
                e = AttendanceEvent
                site = self.s.scalar(
                    select(Door.site).select_from(e).join(Door, Door.device_id == e.device_id)
                    .where(e.person_id == person_id, e.recorded_by.is_(None), Door.site.is_not(None))
                    .order_by(e.occurred_at.desc(), e.id.desc()).limit(1))
                zone = self.homes[person_id] = self._of_site(site)
        return zone


def _pair_days(s: Session, touched: list[tuple[int, datetime, str | None]], pairing: Pairing) -> int:
    """Decide in/out again for each (person, local day) touched, on all their events of that day in time
    order (camera events only; hand corrections keep their kind and count in the order), each event's day in
    its own zone (_Zones); touched: (person id, time, device id) of new events; returns the kinds changed."""
    zones = _Zones(s, pairing)

    def day_of(pid: int, at: datetime, device_id: str | None) -> Any:
        """The local day; None for a time at the very edge of datetime's range (a door's broken clock: year 1 or
        9999), which is stored with its door's kind and not paired (its day and the next are not representable)."""
        try:
            day = now_utc(at).astimezone(zones.of(pid, device_id)).date()
        except OverflowError:
            return None
        return day if date.min < day < date.max else None

    days = {(pid, day) for pid, at, device_id in touched if (day := day_of(pid, at, device_id)) is not None}
    if not days:
        return 0
    # the UTC window that holds every local day touched in any zone (an event's own zone places it below)
    local_days = {d for _, d in days}
    lo = min(datetime.combine(min(local_days), time(0), tzinfo=z) for z in zones.all())
    hi = max(datetime.combine(max(local_days) + timedelta(days=1), time(0), tzinfo=z) for z in zones.all())
    toggle_cooldown = pairing.cooldown_s if pairing.mode == "toggle" else 0.0
    pids = sorted({pid for pid, _ in days})
    changes: list[dict[str, Any]] = []
    person_kinds = (EventKind.IN, EventKind.OUT)
    for i in range(0, len(pids), _CHUNK):
        # the people's rows locked, in id order, before their days are read: a hand correction and a push of the
        # same person-day pair one after the other, the second seeing the first's rows (PostgreSQL's READ
        # COMMITTED: each statement sees what committed before it). NO KEY UPDATE: it does not wait for the KEY
        # SHARE locks the new events' foreign keys hold. SQLite: the write lock serialises anyway.
        s.execute(select(Person.id).where(Person.id.in_(pids[i:i + _CHUNK])).order_by(Person.id)
                  .with_for_update(key_share=True))
        rows = s.execute(select(AttendanceEvent.id, AttendanceEvent.person_id, AttendanceEvent.occurred_at,
                                AttendanceEvent.kind, AttendanceEvent.recorded_by, AttendanceEvent.device_id)
                         .where(AttendanceEvent.person_id.in_(pids[i:i + _CHUNK]),
                                AttendanceEvent.occurred_at >= lo, AttendanceEvent.occurred_at < hi,
                                AttendanceEvent.kind.in_(person_kinds))
                         .order_by(AttendanceEvent.person_id, AttendanceEvent.occurred_at, AttendanceEvent.id)).all()
        previous: dict[tuple[int, Any], str] = {}  # the kind of the day's previous event
        counted: dict[tuple[int, Any], datetime] = {}  # the time of the day's previous counted camera event
        for eid, pid, at, kind, recorded_by, device_id in rows:
            day = day_of(int(pid), at, device_id)
            key = (int(pid), day)
            if day is None or key not in days:
                continue
            before = previous.get(key)
            if recorded_by is None:
                anchor = counted.get(key)
                if before is not None and anchor is not None and \
                        (now_utc(at) - anchor).total_seconds() < toggle_cooldown:
                    want = before  # seen again within the cooldown (at another door): neither in nor out
                else:
                    want = EventKind.IN if before is None else (
                        EventKind.OUT if pairing.mode == "first_last" or before == EventKind.IN else EventKind.IN)
                    counted[key] = now_utc(at)
                if want != kind:
                    changes.append({"id": eid, "kind": str(want)})
                    kind = want
            previous[key] = str(kind)
    if changes:
        s.execute(update(AttendanceEvent), changes)
    return len(changes)


def pair_again(s: Session, touched: Sequence[tuple[int, datetime, str | None]], pairing: Pairing) -> int:
    """Decide in/out again on the merged stream (module docstring) for the (person, local day) of each (person id,
    aware time, device id placing it: a door's, or vocabulary.MANUAL_DEVICE) in touched, in s (the caller's
    transaction: a hand correction added or removed on a central); returns the camera events whose kind changed."""
    return _pair_days(s, list(touched), pairing)


def _ingest(
    db: Database, door_id: int, batch: list[DoorEvent], *, clock: datetime | None, version: str | None,
    backlog: int | None, max_clock_offset_s: float, pairing: Pairing | None, now: datetime,
) -> IngestResult:
    with db.session() as s:
        # the door's row locked (PostgreSQL; SQLite's BEGIN IMMEDIATE serialises anyway): one push
        # of a door at a time, so two copies of one batch never race each other
        door = s.get(Door, door_id, with_for_update=True)
        if door is None:
            raise DoorNotFound(f"no door with id {door_id}")
        if door.revoked_at is not None:
            raise DoorRevoked(f"the door {door.name!r} was revoked")
        offset = None if clock is None else (now_utc(clock) - now).total_seconds()
        clock_note = None
        if offset is not None and abs(offset) > max_clock_offset_s:
            clock_note = (f"door {door.device_id}'s clock was {offset:+.0f} s off the central's "
                          f"(limit {max_clock_offset_s:g} s) when it pushed this event")
            logger.warning("door %s: clock off by %+.0f s; its events are flagged", door.device_id, offset)
        held = _held(s, door.device_id, [e.seq for e in batch])
        conflicts = [e.seq for e in batch if e.seq in held and held[e.seq] != e.uuid]
        if conflicts:
            raise SeqConflict(
                f"door {door.device_id}: sequence(s) {', '.join(map(str, conflicts[:5]))} are held already for "
                "other events (its database was replaced and numbering restarted?); add the door again "
                "under a new name so that its events keep their own numbers")
        new = [e for e in batch if e.seq not in held]
        people = _people(s, sorted({e.person_id for e in new if e.person_id is not None}))
        rows = [_row(door.device_id, e, people, clock_note) for e in new]
        if rows:
            s.execute(insert(AttendanceEvent), rows)
        if pairing is not None:
            repaired = _pair_days(s, [(r["person_id"], r["occurred_at"], r["device_id"]) for r in rows
                                      if r["person_id"] is not None and r["kind"] in (EventKind.IN, EventKind.OUT)],
                                  pairing)
            if repaired:
                logger.info("door %s: in/out of %d events decided again on the merged stream of all doors",
                            door.device_id, repaired)
        flagged = sum(1 for r in rows if r["review"])
        if new:
            door.last_seq = max(door.last_seq, new[-1].seq)
        door.last_seen_at = now
        if offset is not None:
            door.clock_offset_s = offset
        if version is not None:
            door.version = version[:MAX_VERSION_CHARS]
        if backlog is not None:
            door.backlog = max(0, backlog)
        result = IngestResult(door.last_seq, len(rows), len(batch) - len(new), flagged, offset)
    if result.stored or result.repeated:
        logger.info("door %s: %d events stored, %d repeats skipped, last_seq %d",
                    door_id, result.stored, result.repeated, result.last_seq)
    return result


def _row(device_id: str, e: DoorEvent, people: dict[int, tuple[bool, bool]],
         clock_note: str | None) -> dict[str, Any]:
    """The attendance_events values of one new event."""
    notes = [e.review] if e.review else []
    person_id = e.person_id
    consent = False
    keep_match = True
    if person_id is not None:
        erased, consent = people.get(person_id, (True, False))
        if person_id not in people or erased:
            notes.append(f"recognised at the door as person {person_id}, who is not known to the central; "
                         "stored without a person" if person_id not in people else
                         "recognised at the door as a person erased since; stored without a person")
            person_id, consent, keep_match = None, False, False
    if clock_note:
        notes.append(clock_note)
    return {
        "person_id": person_id,
        "occurred_at": e.at,
        "kind": e.kind,
        "device_id": device_id,
        "expression_label": e.expression_label if consent else None,
        "expression_scores": ({str(k): float(v) for k, v in e.expression_scores.items()}
                              if consent and e.expression_scores is not None else None),
        "expression_confidence": e.expression_confidence if consent else None,
        "match_distance": e.distance if keep_match else None,
        "match_score": e.score if keep_match else None,
        "review": "; ".join(notes) or None,
        "door_seq": e.seq,
        "event_uuid": e.uuid,
    }
