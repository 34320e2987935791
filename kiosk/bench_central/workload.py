"""The synthetic organisation of `kiosk bench central`: sites, doors, people, a year of history and
the doors' pushed events, all from one seed (the same sizes and day give the same data).

Doors are spread round-robin over the sites ("site-1" ...), people round-robin over the doors (their
home door; its site is theirs). On every work day (Mon-Fri) each person checks in at their home door
at 08:30-09:30 local time and out at 16:30-18:00, one out in five by another door of the same site;
one event in fifty of a door's pushes is an unknown face. The pushed events fill the last work days
before today; the year of history ends the day before them, so the year's report sees none of them.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from kiosk.door_sync import event_uuid
from kiosk.errors import KioskError
from kiosk.vocabulary import EventKind

logger = logging.getLogger(__name__)

TIMEZONE = "Europe/Berlin"
WORK_DAYS = (0, 1, 2, 3, 4)  # Monday..Friday, the default site.work_days
UNKNOWN_EVERY = 50  # one pushed event in this many is an unknown face
OTHER_DOOR_EVERY = 5  # one check-out in this many is by another door of the same site


@dataclass(frozen=True)
class Sizes:
    """What to simulate: doors, pushed events, people, sites, days of history, events per push."""

    doors: int = 50
    events: int = 100_000
    people: int = 2000
    sites: int = 5
    days: int = 365
    batch: int = 500

    def check(self) -> None:
        """KioskError (one line) for sizes that cannot make a benchmark."""
        if self.sites > self.doors:
            raise KioskError(f"--sites {self.sites} is more than --doors {self.doors}: every site needs a door")
        if self.people < self.doors:
            raise KioskError(f"--people {self.people} is fewer than --doors {self.doors}: every door needs "
                             "someone who uses it")
        if self.events < self.doors:
            raise KioskError(f"--events {self.events} is fewer than --doors {self.doors}: every door pushes "
                             "at least one event")


@dataclass
class Door:
    """One simulated door: name, device id, site, and its pushed events (wire dicts, seq order)."""

    name: str
    device_id: str
    site: str
    base_seq: int = 0  # the highest sequence of its history (bulk-loaded); pushes number on from it
    events: list[dict[str, Any]] = field(default_factory=list)

    def batches(self, size: int) -> list[list[dict[str, Any]]]:
        """Its events in pushes of at most size, oldest first (as a door sends its outbox)."""
        return [self.events[i:i + size] for i in range(0, len(self.events), size)]

    def expected(self) -> dict[int, str]:
        """{seq: uuid} of every event it pushes: what the central must hold once each."""
        return {int(e["seq"]): str(e["uuid"]) for e in self.events}


@dataclass(frozen=True)
class Plan:
    """The organisation and its calendar: doors, people's home doors (index into doors),
    the history's days (first, last) and work days, and the pushed events' work days."""

    sizes: Sizes
    doors: list[Door]
    home: list[int]  # person index -> door index
    year_first: date
    year_last: date
    year_work_days: list[date]
    push_days: list[date]

    @property
    def sites(self) -> list[str]:
        """The site names in order."""
        return sorted({d.site for d in self.doors}, key=lambda s: int(s.rsplit("-", 1)[1]))

    @property
    def expected_report_rows(self) -> int:
        """Rows of the year's range CSV: one per person and work day (everybody comes every work day)."""
        return self.sizes.people * len(self.year_work_days)


def door_name(index: int) -> tuple[str, str]:
    """The name and device id of door index (0-based): ("Bench door 07", "bench-door-07")."""
    return f"Bench door {index + 1:02d}", f"bench-door-{index + 1:02d}"


def make_plan(sizes: Sizes, today: date | None = None) -> Plan:
    """Doors over sites, people over doors, and the days: pushes on the last work days before today,
    the history the `days` days before those."""
    sizes.check()
    today = today or datetime.now(UTC).date()
    doors = []
    for i in range(sizes.doors):
        name, device = door_name(i)
        doors.append(Door(name=name, device_id=device, site=f"site-{i % sizes.sites + 1}"))
    home = [i % sizes.doors for i in range(sizes.people)]
    need = math.ceil(sizes.events / (2 * sizes.people))
    push_days: list[date] = []
    day = today - timedelta(days=1)
    while len(push_days) < need:
        if day.weekday() in WORK_DAYS:
            push_days.append(day)
        day -= timedelta(days=1)
    push_days.reverse()
    year_last = push_days[0] - timedelta(days=1)
    year_first = year_last - timedelta(days=sizes.days - 1)
    work = [year_first + timedelta(days=i) for i in range(sizes.days)]
    return Plan(sizes, doors, home, year_first, year_last,
                [d for d in work if d.weekday() in WORK_DAYS], push_days)


def _same_site_doors(plan: Plan) -> list[list[int]]:
    """For each door, the indexes of the other doors of its site."""
    by_site: dict[str, list[int]] = {}
    for i, d in enumerate(plan.doors):
        by_site.setdefault(d.site, []).append(i)
    return [[j for j in by_site[d.site] if j != i] for i, d in enumerate(plan.doors)]


def _visits(plan: Plan, days: list[date], rng: random.Random) -> Iterator[tuple[int, datetime, str, int]]:
    """(person index, aware time, kind, door index) of every check-in and -out on days, day by day."""
    tz = ZoneInfo(TIMEZONE)
    others = _same_site_doors(plan)
    for day in days:
        base = datetime(day.year, day.month, day.day, tzinfo=tz)
        for p, door in enumerate(plan.home):
            t_in = base + timedelta(minutes=510 + rng.randrange(60), seconds=rng.randrange(60))
            t_out = base + timedelta(minutes=990 + rng.randrange(90), seconds=rng.randrange(60))
            out_door = door
            if others[door] and rng.randrange(OTHER_DOOR_EVERY) == 0:
                out_door = rng.choice(others[door])
            yield p, t_in.astimezone(UTC), EventKind.IN, door
            yield p, t_out.astimezone(UTC), EventKind.OUT, out_door


def year_rows(plan: Plan, person_ids: list[int], seed: int = 0) -> Iterator[dict[str, Any]]:
    """The history as attendance_events rows for store.bulk_add_events (each door numbering its
    events 1, 2, ... with their uuids, as its pushes would have); sets each door's base_seq."""
    rng = random.Random(seed)
    for p, at, kind, d in _visits(plan, plan.year_work_days, rng):
        door = plan.doors[d]
        door.base_seq += 1
        yield {"person_id": person_ids[p], "occurred_at": at, "kind": str(kind), "device_id": door.device_id,
               "door_seq": door.base_seq, "event_uuid": event_uuid(door.device_id, door.base_seq, at),
               "match_distance": 0.35, "match_score": 0.5}


def make_pushes(plan: Plan, person_ids: list[int], seed: int = 1) -> int:
    """Fill each door's events (numbered on from its base_seq in time order, as a door numbers
    its outbox) with sizes.events check-ins on the push days; returns how many."""
    rng = random.Random(seed)
    by_door: list[list[tuple[datetime, int | None, str]]] = [[] for _ in plan.doors]
    total = 0
    for p, at, kind, d in _visits(plan, plan.push_days, rng):
        if total >= plan.sizes.events:
            break
        unknown = rng.randrange(UNKNOWN_EVERY) == 0
        by_door[d].append((at, None if unknown else person_ids[p], EventKind.UNKNOWN if unknown else kind))
        total += 1
    for door, visits in zip(plan.doors, by_door, strict=True):
        visits.sort(key=lambda v: v[0])
        door.events = []
        for k, (at, pid, kind) in enumerate(visits, start=door.base_seq + 1):
            door.events.append({
                "seq": k, "uuid": event_uuid(door.device_id, k, at), "person_id": pid,
                "at": at.isoformat(), "kind": str(kind),
                "distance": None if pid is None else round(0.3 + rng.random() * 0.2, 3),
                "score": None if pid is None else round(0.4 + rng.random() * 0.3, 3),
                "expression_label": None, "expression_scores": None, "expression_confidence": None,
                "review": None})
    empty = [d.device_id for d in plan.doors if not d.events]
    if empty:  # only when events barely exceed doors and visits cluster; say so rather than hide it
        logger.warning("doors without pushed events: %s", ", ".join(empty[:5]))
    return total


def events_json(events: list[dict[str, Any]]) -> bytes:
    """A batch's "events" list as JSON bytes (the body is built around it at push time)."""
    return json.dumps(events, separators=(",", ":")).encode("utf-8")
