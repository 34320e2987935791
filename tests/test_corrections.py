"""Attendance corrections by hand: a missed check-out added, a wrong event removed, both audited,
and the reports count them and mark the day as corrected."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from kiosk import store
from kiosk.config import Settings
from kiosk.errors import PersonNotFound, StoreError
from kiosk.reports import daily_report, render_daily

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 6, 16, 10, 0, tzinfo=UTC)


def _at(hh: int, mm: int) -> datetime:
    return datetime(2026, 6, 15, hh, mm, tzinfo=BERLIN)


SETTINGS = Settings.model_validate({"site": {"timezone": "Europe/Berlin", "workday_start": "09:00"}})


def test_missed_check_out_added_by_hand_completes_the_day(db: store.Database) -> None:
    ann = store.add_person(db, "E1", "Ann", now=NOW - timedelta(days=30))
    store.record_event(db, ann.id, _at(8, 50), "in", "door-1")
    before = daily_report(db, SETTINGS, _at(0, 0).date()).rows[0]
    assert before.status == "open" and before.hours == 0 and not before.corrected

    event = store.add_correction(db, ann.id, _at(17, 20), "out", actor="web:alice",
                                 note="  forgot to check out,\n confirmed by her manager ", now=NOW)
    assert event.manual and event.device_id == "manual" and event.recorded_by == "web:alice"
    assert event.note == "forgot to check out, confirmed by her manager"
    after = daily_report(db, SETTINGS, _at(0, 0).date()).rows[0]
    assert after.status == "present" and after.hours == 8.5 and after.corrected
    row = next(csv.DictReader(io.StringIO(render_daily(daily_report(db, SETTINGS, _at(0, 0).date()), "csv"))))
    assert (row["hours"], row["status"], row["corrected"]) == ("8.50", "present", "yes")
    assert "present (corrected)" in render_daily(daily_report(db, SETTINGS, _at(0, 0).date()), "table")
    entry = [a for a in store.list_audit(db) if a.action == "event.add"][0]
    assert entry.actor == "web:alice" and entry.target == f"person:{ann.id}"
    assert entry.details["kind"] == "out" and entry.details["note"].startswith("forgot")
    exported = store.export_person(db, ann.id)["attendance_events"]
    assert [e["recorded_by"] for e in exported] == [None, "web:alice"]


def test_wrong_event_removed_with_a_reason_stays_in_the_audit_log(db: store.Database) -> None:
    ann = store.add_person(db, "E1", "Ann")
    wrong = store.record_event(db, ann.id, _at(7, 10), "in", "door-1", match_distance=0.41)
    store.record_event(db, ann.id, _at(9, 0), "in", "door-1")
    with pytest.raises(StoreError, match="a reason is required"):
        store.remove_event(db, wrong.id, actor="alice", reason="  ")
    removed = store.remove_event(db, wrong.id, actor="alice", reason="the cleaner, mistaken for Ann", now=NOW)
    assert removed.id == wrong.id
    day = daily_report(db, SETTINGS, _at(0, 0).date()).rows[0]
    assert day.first_in == _at(9, 0) and not day.late
    entry = [a for a in store.list_audit(db) if a.action == "event.remove"][0]
    assert entry.details["at"] == wrong.occurred_at.isoformat() and entry.details["reason"].startswith("the cleaner")
    with pytest.raises(store.EventNotFound):
        store.remove_event(db, wrong.id, actor="alice", reason="again")


def test_bad_corrections_are_refused_and_change_nothing(db: store.Database) -> None:
    ann = store.add_person(db, "E1", "Ann")
    with pytest.raises(StoreError, match="'in' or 'out'"):
        store.add_correction(db, ann.id, _at(9, 0), "unknown", actor="a", note="x", now=NOW)
    with pytest.raises(StoreError, match="in the future"):
        store.add_correction(db, ann.id, NOW + timedelta(hours=1), "in", actor="a", note="x", now=NOW)
    with pytest.raises(StoreError, match="a reason is required"):
        store.add_correction(db, ann.id, _at(9, 0), "in", actor="a", note="", now=NOW)
    with pytest.raises(PersonNotFound):
        store.add_correction(db, 999, _at(9, 0), "in", actor="a", note="x", now=NOW)
    store.record_event(db, ann.id, _at(9, 0), "in", "door-1")
    store.erase_person(db, ann.id, actor="a")
    with pytest.raises(StoreError, match="erased"):
        store.add_correction(db, ann.id, _at(17, 0), "out", actor="a", note="x", now=NOW)
    assert len(store.events_between(db, _at(0, 0), _at(23, 59))) == 1


def test_a_check_out_without_check_in_is_an_open_day(db: store.Database) -> None:
    ann = store.add_person(db, "E1", "Ann")
    wrong = store.record_event(db, ann.id, _at(8, 55), "in", "door-1")
    store.add_correction(db, ann.id, _at(17, 0), "out", actor="alice", note="left by the back door", now=NOW)
    store.remove_event(db, wrong.id, actor="alice", reason="that was her twin", now=NOW)
    for mode in ("first_last", "toggle"):
        settings = SETTINGS.model_copy(update={"attendance": SETTINGS.attendance.model_copy(update={"mode": mode})})
        day = daily_report(db, settings, _at(0, 0).date()).rows[0]
        assert (day.first_in, day.status, day.hours) == (None, "open", 0), mode  # needs a check-in added
