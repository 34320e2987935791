"""Attendance rules with an injected clock on a real DB: cooldown, modes, day boundary, lateness."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kiosk.attendance import Attendance, StoreEventLog, decide, lateness, local_day
from kiosk.clock import ManualClock, SystemClock, as_utc
from kiosk.config import Settings
from kiosk.store import Database, add_person, events_between

BERLIN = ZoneInfo("Europe/Berlin")


def settings(**attendance: Any) -> Settings:
    return Settings.model_validate({
        "site": {"timezone": "Europe/Berlin", "workday_start": "09:00", "late_grace_minutes": 5,
                 "device_id": "door-1"},
        "attendance": {"cooldown_s": 60, **attendance},
    })


def local(y: int, mo: int, d: int, h: int, mi: int, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=BERLIN)


def kinds(db: Database) -> list[tuple[str, str]]:
    evs = events_between(db, datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    return [(e.occurred_at.astimezone(BERLIN).strftime("%m-%d %H:%M:%S"), e.kind) for e in evs]


def test_clocks() -> None:
    clock = ManualClock(local(2026, 6, 15, 9, 0))
    assert clock.now() == datetime(2026, 6, 15, 7, 0, tzinfo=UTC)
    assert clock.advance(90) == datetime(2026, 6, 15, 7, 1, 30, tzinfo=UTC)
    assert SystemClock().now().tzinfo == UTC
    with pytest.raises(ValueError):
        as_utc(datetime(2026, 1, 1))


def test_first_last_with_cooldown(db: Database) -> None:
    ann = add_person(db, "E1", "Ann")
    clock = ManualClock(local(2026, 6, 15, 8, 55))
    att = Attendance(StoreEventLog(db, "door-1"), settings(mode="first_last"), clock)
    d = att.sighting(ann.id)
    assert (d.action, d.kind, d.late) == ("record", "in", False)
    assert d.event is not None and d.event.device_id == "door-1"
    clock.advance(59)
    assert att.sighting(ann.id).action == "ignore"  # within cooldown of the event
    clock.set(local(2026, 6, 15, 12, 0))
    assert att.sighting(ann.id).kind == "out"
    clock.set(local(2026, 6, 15, 17, 30))
    assert att.sighting(ann.id).kind == "out"  # every later one is "out"
    clock.set(local(2026, 6, 16, 9, 20))
    d = att.sighting(ann.id)
    assert (d.kind, d.late, d.minutes_late, d.local_day) == ("in", True, 20, date(2026, 6, 16))
    assert kinds(db) == [("06-15 08:55:00", "in"), ("06-15 12:00:00", "out"),
                         ("06-15 17:30:00", "out"), ("06-16 09:20:00", "in")]


def test_cooldown_counts_from_last_sighting_too(db: Database) -> None:
    ann = add_person(db, "E1", "Ann")
    clock = ManualClock(local(2026, 6, 15, 8, 0))
    att = Attendance(StoreEventLog(db, "door-1"), settings(mode="toggle"), clock)
    att.sighting(ann.id)
    for _ in range(10):  # lingering 5 minutes in front of the camera: one event
        clock.advance(30)
        assert att.sighting(ann.id).action == "ignore"
    clock.advance(61)  # away for longer than the cooldown, then back
    assert att.sighting(ann.id).kind == "out"
    assert [k for _, k in kinds(db)] == ["in", "out"]


def test_cooldown_survives_restart(db: Database) -> None:
    ann = add_person(db, "E1", "Ann")
    clock = ManualClock(local(2026, 6, 15, 8, 0))
    Attendance(StoreEventLog(db, "door-1"), settings(), clock).sighting(ann.id)
    clock.advance(30)
    fresh = Attendance(StoreEventLog(db, "door-1"), settings(), clock)  # service restarted
    assert fresh.sighting(ann.id).action == "ignore"  # from the event in the database
    clock.advance(61)  # (the ignored sighting itself restarted the cooldown)
    assert fresh.sighting(ann.id).kind == "out"


def test_toggle_alternates_and_resets_at_local_midnight(db: Database) -> None:
    ann = add_person(db, "E1", "Ann")
    clock = ManualClock(local(2026, 6, 15, 8, 0))
    att = Attendance(StoreEventLog(db, "door-1"), settings(mode="toggle"), clock)
    got = []
    for hm in [(8, 0), (12, 0), (13, 0), (23, 50)]:
        clock.set(local(2026, 6, 15, *hm))
        got.append(att.sighting(ann.id).kind)
    assert got == ["in", "out", "in", "out"]
    clock.set(local(2026, 6, 15, 23, 58))  # 8 minutes later, same day: in again
    assert att.sighting(ann.id).kind == "in"
    clock.set(local(2026, 6, 16, 0, 5))  # forgotten check-out does not carry over midnight
    d = att.sighting(ann.id)
    assert d.kind == "in" and d.reason == "first event of the day" and not d.late


def test_day_boundary_is_local_midnight_not_utc() -> None:
    # 23:30 UTC on 28 March is 00:30 on 29 March in Berlin: a new day, so "in".
    last = _event(datetime(2026, 3, 28, 20, 0, tzinfo=UTC), "in")
    d = decide(datetime(2026, 3, 28, 23, 30, tzinfo=UTC), last, None, mode="first_last",
               cooldown_s=60, tz=BERLIN)
    assert (d.kind, d.local_day) == ("in", date(2026, 3, 29))
    # the same instants in UTC are one day: "out"
    d = decide(datetime(2026, 3, 28, 23, 30, tzinfo=UTC), last, None, mode="first_last",
               cooldown_s=60, tz=ZoneInfo("UTC"))
    assert (d.kind, d.local_day) == ("out", date(2026, 3, 28))
    # New York: 03:00 UTC on 16 June is still 15 June (23:00 EDT)
    ny = ZoneInfo("America/New_York")
    last = _event(datetime(2026, 6, 15, 13, 0, tzinfo=UTC), "in")
    d = decide(datetime(2026, 6, 16, 3, 0, tzinfo=UTC), last, None, mode="first_last",
               cooldown_s=60, tz=ny)
    assert (d.kind, d.local_day) == ("out", date(2026, 6, 15))


def test_lateness_across_dst_and_grace_boundary() -> None:
    start = time(9, 0)
    # 07:10 UTC is 08:10 CET on 28 March but 09:10 CEST on 29 March (clocks went forward).
    assert lateness(datetime(2026, 3, 28, 7, 10, tzinfo=UTC), BERLIN, start, 5) == (False, 0)
    assert lateness(datetime(2026, 3, 29, 7, 10, tzinfo=UTC), BERLIN, start, 5) == (True, 10)
    assert lateness(local(2026, 6, 15, 9, 5), BERLIN, start, 5) == (False, 0)  # exactly at grace
    assert lateness(local(2026, 6, 15, 9, 5, 1), BERLIN, start, 5) == (True, 5)
    assert local_day(datetime(2026, 10, 24, 22, 30, tzinfo=UTC), BERLIN) == date(2026, 10, 25)


def test_expression_only_stored_with_consent(db: Database) -> None:
    ann = add_person(db, "E1", "Ann", expression_consent=True)
    bob = add_person(db, "E2", "Bob")
    clock = ManualClock(local(2026, 6, 15, 8, 0))
    att = Attendance(StoreEventLog(db, "door-1"), settings(), clock)
    kw: dict[str, Any] = {"expression_label": "happy", "expression_scores": {"happy": 1.0},
                          "expression_confidence": 0.9, "match_distance": 0.33}
    a = att.sighting(ann.id, **kw).event
    b = att.sighting(bob.id, **kw).event
    assert a is not None and a.expression_label == "happy"
    assert a.match_distance == pytest.approx(0.33)
    assert b is not None and b.expression_label is None and b.expression_scores is None


def test_unknown_faces_are_rate_limited(db: Database) -> None:
    clock = ManualClock(local(2026, 6, 15, 8, 0))
    att = Attendance(StoreEventLog(db, "door-1"), settings(), clock)
    assert att.unknown_face() is not None
    clock.advance(10)
    assert att.unknown_face() is None
    clock.advance(60)
    e = att.unknown_face()
    assert e is not None and e.person_id is None and e.kind == "unknown"


def _event(at: datetime, kind: str) -> Any:
    from kiosk.store import EventInfo

    return EventInfo(id=1, person_id=1, occurred_at=at, kind=kind, device_id="d")


def test_decide_is_pure_and_uses_later_anchor() -> None:
    t = datetime(2026, 6, 15, 8, 0, tzinfo=UTC)
    last = _event(t - timedelta(hours=2), "in")
    d = decide(t, last, t - timedelta(seconds=10), mode="first_last", cooldown_s=60, tz=BERLIN)
    assert d.action == "ignore" and "cooldown" in d.reason
    d = decide(t, last, t - timedelta(seconds=61), mode="first_last", cooldown_s=60, tz=BERLIN)
    assert (d.action, d.kind) == ("record", "out")
    d = decide(t, None, None, mode="toggle", cooldown_s=0, tz=BERLIN)
    assert d.kind == "in"
