"""Attendance rules: turn a recognised sighting into "record in/out" or "ignore". No I/O here
besides the small EventLog interface (StoreEventLog adapts kiosk.store to it).

Cooldown: a sighting is ignored when it comes within attendance.cooldown_s of the LATER of
  (a) the person's last recorded event (from the database, so it survives restarts), and
  (b) the person's last sighting seen by this process, ignored ones included (in memory).
So someone standing at the kiosk makes one event, however long they stay; walking away and
coming back after the cooldown makes the next one. A sighting within cooldown_s of EITHER anchor
is ignored (they differ only when the wall clock stepped back). Given a monotonic clock,
Attendance measures (b) on it, so a wall clock stepping back (NTP on a Pi without a real-time
clock) neither ends nor stretches the cooldown of someone still standing at the door; events
after such a step carry the clock's (earlier) time and a warning is logged.

Modes (attendance.mode), with the day starting at local midnight in site.timezone:
  first_last  the person's first event of the local day is "in", every later one "out"
              (reports use the last "out" as departure).
  toggle      in, out, in, out ... within a local day; a new day always starts with "in"
              (a forgotten check-out does not carry over midnight).
Lateness: the day's first "in" is late when its local time is after workday_start plus
late_grace_minutes; minutes late count from workday_start (whole minutes, rounded down).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

from kiosk.clock import Clock, SystemClock, as_utc
from kiosk.config import Settings
from kiosk.store import Database, EventInfo, last_event_for, record_event
from kiosk.vocabulary import EventKind

logger = logging.getLogger(__name__)

Mode = Literal["first_last", "toggle"]


@dataclass(frozen=True)
class Decision:
    """Outcome of one sighting: record an "in"/"out" event, or ignore it (reason says why)."""

    action: Literal["record", "ignore"]
    kind: EventKind | None
    reason: str
    at: datetime
    local_day: date
    late: bool = False
    minutes_late: int = 0
    event: EventInfo | None = None

    @property
    def recorded(self) -> bool:
        """True when an event was (or is to be) written."""
        return self.action == "record"


def local_day(at: datetime, tz: ZoneInfo) -> date:
    """The local calendar day (in tz) of an aware datetime."""
    return as_utc(at).astimezone(tz).date()


def lateness(
    first_in: datetime, tz: ZoneInfo, workday_start: time, grace_minutes: int
) -> tuple[bool, int]:
    """(late?, minutes late counted from workday_start) for a day's first "in" (aware)."""
    local = as_utc(first_in).astimezone(tz)
    start = datetime.combine(local.date(), workday_start, tzinfo=tz)
    late = local > start + timedelta(minutes=grace_minutes)
    minutes = int((local - start).total_seconds() // 60) if late else 0
    return late, minutes


def decide(
    at: datetime,
    last_event: EventInfo | None,
    last_sighting: datetime | None,
    *,
    mode: Mode,
    cooldown_s: float,
    tz: ZoneInfo,
    workday_start: time = time(9, 0),
    grace_minutes: int = 0,
) -> Decision:
    """Pure rule: what to do with a sighting of a person at `at` (aware), given their history."""
    at = as_utc(at)
    day = local_day(at, tz)
    anchors = [t for t in (last_event.occurred_at if last_event else None, last_sighting) if t]
    if anchors:
        nearest = min(anchors, key=lambda t: abs((at - t).total_seconds()))
        since = (at - nearest).total_seconds()
        if abs(since) < cooldown_s:
            return Decision("ignore", None, f"cooldown ({since:.0f}s < {cooldown_s:.0f}s)", at, day)
        if at < max(anchors):
            logger.warning("sighting at %s is earlier than the person's last event/sighting at %s "
                           "(did the clock go back?)", at, max(anchors))
    same_day = last_event is not None and local_day(last_event.occurred_at, tz) == day
    if not same_day:
        kind = EventKind.IN
        reason = "first event of the day"
    elif mode == "first_last":
        kind, reason = EventKind.OUT, "later event of the day"
    else:
        assert last_event is not None
        kind = EventKind.OUT if last_event.kind == EventKind.IN else EventKind.IN
        reason = f"toggle after {last_event.kind!r}"
    late, minutes = (False, 0)
    if kind == EventKind.IN and not same_day:
        late, minutes = lateness(at, tz, workday_start, grace_minutes)
    return Decision("record", kind, reason, at, day, late, minutes)


class EventLog(Protocol):
    """What the rules need from storage."""

    def last_event(self, person_id: int) -> EventInfo | None:
        """The person's most recent event, any day."""
        ...

    def record(self, person_id: int | None, at: datetime, kind: str, **fields: object) -> EventInfo:
        """Write an event durably and return it."""
        ...


class StoreEventLog:
    """EventLog on the kiosk database, stamping every event with this kiosk's device id."""

    def __init__(self, db: Database, device_id: str) -> None:
        self.db = db
        self.device_id = device_id

    def last_event(self, person_id: int) -> EventInfo | None:
        """The person's most recent event (any day) from the database."""
        return last_event_for(self.db, person_id)

    def record(self, person_id: int | None, at: datetime, kind: str, **fields: object) -> EventInfo:
        """record_event(...) with this kiosk's device id; committed on return."""
        return record_event(self.db, person_id, at, kind, self.device_id, **fields)  # type: ignore[arg-type]


class Attendance:
    """Applies the rules to sightings and records the resulting events through an EventLog."""

    def __init__(self, log: EventLog, settings: Settings, clock: Clock | None = None,
                 monotonic: Callable[[], float] | None = None) -> None:
        """monotonic: seconds on a clock that never steps (None: in-memory cooldowns use clock too)."""
        self.log = log
        self.settings = settings
        self.clock = clock or SystemClock()
        self._monotonic = monotonic
        self._last_sighting: dict[int, datetime] = {}
        self._last_seen_mono: dict[int, float] = {}  # person id -> monotonic s of the last sighting
        self._last_unknown: datetime | None = None

    def sighting(
        self,
        person_id: int,
        at: datetime | None = None,
        *,
        expression_label: str | None = None,
        expression_scores: dict[str, float] | None = None,
        expression_confidence: float | None = None,
        match_distance: float | None = None,
        match_score: float | None = None,
    ) -> Decision:
        """Handle a recognised person seen at `at` (default clock.now()); records or ignores.

        Expression fields are stored only for consenting people (enforced by the store).
        """
        at = as_utc(at or self.clock.now())
        a = self.settings.attendance
        decision = decide(
            at,
            self.log.last_event(person_id),
            self._sighting_anchor(person_id, at),
            mode=a.mode,
            cooldown_s=a.cooldown_s,
            tz=self.settings.tz,
            workday_start=self.settings.site.workday_start,
            grace_minutes=self.settings.site.late_grace_minutes,
        )
        self._last_sighting[person_id] = max(at, self._last_sighting.get(person_id, at))
        if self._monotonic is not None:
            self._last_seen_mono[person_id] = self._monotonic()
        if not decision.recorded:
            logger.debug("person %s ignored: %s", person_id, decision.reason)
            return decision
        assert decision.kind is not None
        event = self.log.record(
            person_id, at, decision.kind,
            expression_label=expression_label,
            expression_scores=expression_scores,
            expression_confidence=expression_confidence,
            match_distance=match_distance,
            match_score=match_score,
        )
        logger.info("person %s: %s at %s (%s)", person_id, decision.kind, at, decision.reason)
        return Decision(decision.action, decision.kind, decision.reason, at, decision.local_day,
                        decision.late, decision.minutes_late, event)

    def _sighting_anchor(self, person_id: int, at: datetime) -> datetime | None:
        """The last sighting as a wall time for decide(): `at` minus the monotonic seconds since it
        (immune to wall-clock steps) when a monotonic clock is given, else the remembered time."""
        seen = self._last_seen_mono.get(person_id)
        if self._monotonic is None or seen is None:
            return self._last_sighting.get(person_id)
        return at - timedelta(seconds=max(0.0, self._monotonic() - seen))

    def unknown_face(self, at: datetime | None = None) -> EventInfo | None:
        """Record an unknown face (no identity, no expression), at most one per cooldown_s."""
        at = as_utc(at or self.clock.now())
        cooldown = self.settings.attendance.cooldown_s
        last = self._last_unknown
        if last is not None and abs((at - last).total_seconds()) < cooldown:
            return None
        self._last_unknown = at
        return self.log.record(None, at, EventKind.UNKNOWN)
