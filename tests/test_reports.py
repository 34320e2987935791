"""Reports on a hand-built day in Europe/Berlin; the expected figures were worked out by hand."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kiosk.config import Settings
from kiosk.errors import ReportError
from kiosk.reports import (
    CSV_COLUMNS,
    FORMATS,
    daily_report,
    parse_day,
    range_report,
    render_daily,
    render_range,
)
from kiosk.store import Database, add_person, deactivate, open_database, record_event

BERLIN = ZoneInfo("Europe/Berlin")
DAY = date(2026, 6, 15)  # CEST, UTC+2
CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def settings(mode: str = "first_last", min_group: int = 2, expression: bool = True) -> Settings:
    return Settings.model_validate({
        "site": {"name": "HQ", "timezone": "Europe/Berlin", "workday_start": "09:00",
                 "late_grace_minutes": 5},
        "attendance": {"mode": mode},
        "expression": {"enabled": expression},
        "web": {"min_group_size": min_group},
    })


def at(d: int, h: int, m: int, s: int = 0) -> datetime:
    return datetime(2026, 6, d, h, m, s, tzinfo=BERLIN)


@pytest.fixture
def day_db(tmp_path: Path) -> Database:
    """Ann and Bob consent, Cat does not, Dan is absent, Eve is inactive."""
    db = open_database(tmp_path / "kiosk.db")
    ann = add_person(db, "E1", "Ann", expression_consent=True, now=CREATED)
    bob = add_person(db, "E2", "Bob", expression_consent=True, now=CREATED)
    cat = add_person(db, "E3", "Cat", now=CREATED)
    add_person(db, "E4", "Dan", now=CREATED)
    eve = add_person(db, "E5", "Eve", now=CREATED)
    deactivate(db, eve.id, actor="admin")

    def ev(pid: int | None, t: datetime, kind: str, label: str | None = None) -> None:
        record_event(db, pid, t, kind, "door-1", expression_label=label,
                     expression_scores={label: 1.0} if label else None)

    ev(ann.id, at(14, 23, 30), "in", "sad")  # previous local day
    ev(ann.id, at(15, 8, 50), "in", "happy")
    ev(ann.id, at(15, 12, 0), "out", "neutral")
    ev(ann.id, at(15, 17, 20), "out", "happy")
    ev(bob.id, at(15, 9, 5), "in", "sad")  # exactly workday_start + grace: on time
    ev(bob.id, at(15, 17, 0), "out", "happy")
    ev(cat.id, at(15, 9, 47, 30), "in", "angry")  # no consent: label never stored
    ev(None, at(15, 10, 0), "unknown")
    ev(None, at(15, 23, 59), "unknown")
    ev(None, at(16, 0, 10), "unknown")  # 22:10 UTC on the 15th, but the 16th locally
    ev(bob.id, at(16, 0, 20), "in")  # ditto: belongs to the 16th
    yield db
    db.close()


def test_daily_report_hand_computed(day_db: Database) -> None:
    r = daily_report(day_db, settings(), DAY)
    rows = {x.name: x for x in r.rows}
    assert list(rows) == ["Ann", "Bob", "Cat"]
    ann, bob, cat = rows["Ann"], rows["Bob"], rows["Cat"]
    # Ann 08:50 -> 17:20 = 8 h 30 min = 510 min, on time
    assert (ann.first_in, ann.last_out) == (at(15, 8, 50), at(15, 17, 20))
    assert ann.first_in.utcoffset().total_seconds() == 7200  # type: ignore[union-attr]
    assert (ann.present_minutes, ann.hours, ann.late, ann.events) == (510, 8.5, False, 3)
    assert ann.expression == {"happy": 2, "neutral": 1}
    # Bob 09:05 -> 17:00 = 7 h 55 min = 475 min; 09:05 is not after 09:00 + 5 min
    assert (bob.present_minutes, bob.hours, bob.late, bob.minutes_late) == (475, 7.92, False, 0)
    assert bob.expression == {"sad": 1, "happy": 1}
    # Cat 09:47:30, no check-out: late by 47 whole minutes, open day, 0 minutes present
    assert (cat.late, cat.minutes_late, cat.open, cat.present_minutes) == (True, 47, True, 0)
    assert cat.last_out is None and cat.expression is None and cat.status == "open"
    assert [p.name for p in r.absent] == ["Dan"]  # Eve is inactive
    assert r.unknown_faces == 2
    team = r.team_expression
    assert team is not None and team.contributors == 2
    assert team.counts == {"happy": 3, "sad": 1, "neutral": 1}
    assert team.shares == pytest.approx({"happy": 0.6, "sad": 0.2, "neutral": 0.2})


def test_team_expression_hidden_below_min_group(day_db: Database) -> None:
    r = daily_report(day_db, settings(min_group=3), DAY)
    team = r.team_expression
    assert team is not None and team.counts is None and team.contributors == 2
    assert "fewer than the minimum group size 3" in (team.hidden_reason or "")
    text = render_daily(r, "table")
    assert "Team expression: hidden" in text and "happy 3" not in text
    assert json.loads(render_daily(r, "json"))["team_expression"]["counts"] is None


def test_expression_disabled_shows_none(day_db: Database) -> None:
    r = daily_report(day_db, settings(expression=False), DAY)
    assert r.team_expression is None and all(x.expression is None for x in r.rows)
    assert "Expression" not in render_daily(r, "table")


def test_toggle_mode_sums_pairs(tmp_path: Path) -> None:
    db = open_database(tmp_path / "kiosk.db")
    p = add_person(db, "E1", "Ann", now=CREATED)
    for (h, m), kind in zip([(8, 0), (12, 0), (13, 0), (17, 30), (18, 0)],
                            ["in", "out", "in", "out", "in"], strict=True):
        record_event(db, p.id, at(15, h, m), kind, "door-1")
    r = daily_report(db, settings(mode="toggle"), DAY)
    row = r.rows[0]
    # 08:00-12:00 = 240 min, 13:00-17:30 = 270 min; the 18:00 "in" has no "out"
    assert (row.present_minutes, row.open, row.last_out) == (510, True, at(15, 17, 30))
    first_last = daily_report(db, settings(mode="first_last"), DAY).rows[0]
    assert first_last.present_minutes == 570  # 08:00 -> 17:30 in first_last reading
    db.close()


def test_dst_day_report(tmp_path: Path) -> None:
    db = open_database(tmp_path / "kiosk.db")
    p = add_person(db, "E1", "Ann", now=CREATED)
    # 29 March 2026: clocks jump 02:00 -> 03:00. 01:30 CET (00:30 UTC) to 09:30 CEST (07:30 UTC)
    record_event(db, p.id, datetime(2026, 3, 29, 0, 30, tzinfo=UTC), "in", "d")
    record_event(db, p.id, datetime(2026, 3, 29, 7, 30, tzinfo=UTC), "out", "d")
    record_event(db, p.id, datetime(2026, 3, 28, 22, 59, tzinfo=UTC), "in", "d")  # 23:59 on 28th
    row = daily_report(db, settings(), date(2026, 3, 29)).rows[0]
    assert row.first_in.strftime("%H:%M") == "01:30"  # type: ignore[union-attr]
    assert row.last_out.strftime("%H:%M %Z") == "09:30 CEST"  # type: ignore[union-attr]
    assert row.present_minutes == 7 * 60  # 8 hours on the wall clock, 7 real hours
    db.close()


def test_range_report_and_payroll_csv(day_db: Database) -> None:
    r = range_report(day_db, settings(), date(2026, 6, 14), date(2026, 6, 16))
    assert [(x.day.day, x.name) for x in r.rows] == [(14, "Ann"), (15, "Ann"), (15, "Bob"),
                                                      (15, "Cat"), (16, "Bob")]
    totals = {t.name: t for t in r.totals}
    # Ann: 14th in only (open, 0 min) + 15th 510 min; Bob: 475 + open 16th; Cat late once
    assert (totals["Ann"].days_present, totals["Ann"].present_minutes) == (2, 510)
    assert (totals["Bob"].days_present, totals["Bob"].hours) == (2, 7.92)
    assert (totals["Cat"].times_late, totals["Cat"].minutes_late) == (1, 47)
    # work days Mon 15 and Tue 16 (Sun 14 is not one); Dan never came; Eve is inactive, no events
    assert {n: t.days_absent for n, t in totals.items()} == {"Ann": 1, "Bob": 0, "Cat": 1, "Dan": 2}
    assert r.unknown_faces == 3
    rows = list(csv.reader(io.StringIO(render_range(r, "csv"))))
    assert rows[0] == CSV_COLUMNS == ["date", "employee_id", "name", "first_in", "last_out",
                                      "hours", "late", "minutes_late", "status", "corrected", "leave",
                                      "no_checkout"]
    assert rows[2] == ["2026-06-15", "E1", "Ann", "2026-06-15T08:50:00+02:00",
                       "2026-06-15T17:20:00+02:00", "8.50", "no", "0", "present", "no", "", "no"]
    assert rows[4] == ["2026-06-15", "E3", "Cat", "2026-06-15T09:47:30+02:00", "", "0.00",
                       "yes", "47", "open", "no", "", "yes"]  # a past day: no check-out
    with pytest.raises(ReportError):
        range_report(day_db, settings(), date(2026, 6, 16), date(2026, 6, 14))


def test_daily_csv_lists_absent(day_db: Database) -> None:
    rows = list(csv.DictReader(io.StringIO(render_daily(daily_report(day_db, settings(), DAY),
                                                        "csv"))))
    assert [(x["name"], x["status"]) for x in rows] == [
        ("Ann", "present"), ("Bob", "present"), ("Cat", "open"), ("Dan", "absent")]


def test_all_formats_render_and_html_escapes(tmp_path: Path) -> None:
    db = open_database(tmp_path / "kiosk.db")
    p = add_person(db, "E<1>", "<script>alert('x')</script> & Co", now=CREATED)
    record_event(db, p.id, at(15, 9, 30), "in", "d")
    daily = daily_report(db, settings(), DAY)
    rng = range_report(db, settings(), DAY, DAY)
    out: dict[str, Any] = {f: (render_daily(daily, f), render_range(rng, f)) for f in FORMATS}
    for page in out["html"]:
        assert page.startswith("<!DOCTYPE html>") and "<script>" not in page
        assert "&lt;script&gt;" in page and "&amp; Co" in page
    assert json.loads(out["json"][0])["people"][0]["minutes_late"] == 30
    assert json.loads(out["json"][1])["totals"][0]["times_late"] == 1
    table = out["table"][0].splitlines()
    header = next(line for line in table if line.startswith("Employee"))
    row = table[table.index(header) + 2]
    assert header.index("In") == row.index("09:30")  # columns aligned
    with pytest.raises(ReportError, match="unknown report format"):
        render_daily(daily, "pdf")
    db.close()


def test_parse_day() -> None:
    s = settings()
    now = datetime(2026, 6, 15, 22, 30, tzinfo=UTC)  # already the 16th in Berlin
    assert parse_day("today", s, now) == date(2026, 6, 16)
    assert parse_day("yesterday", s, now) == date(2026, 6, 15)
    assert parse_day("2026-01-02", s) == date(2026, 1, 2)
    with pytest.raises(ReportError):
        parse_day("15/06/2026", s)


def test_csv_cells_cannot_become_spreadsheet_formulas():
    from kiosk.reports import safe_cell

    assert safe_cell("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    assert safe_cell("@SUM(A1)") == "'@SUM(A1)" and safe_cell("+1 555") == "'+1 555"
    assert safe_cell("-3.5") == "-3.5" and safe_cell("Ada") == "Ada" and safe_cell(None) == ""


def test_range_absences_follow_work_days_holidays_enrolment_and_today(tmp_path: Path) -> None:
    db = open_database(tmp_path / "kiosk.db")
    s = settings()
    s.site.holidays = [date(2026, 6, 18)]  # Thursday
    ann = add_person(db, "E1", "Ann", now=CREATED)
    bob = add_person(db, "E2", "Bob", now=CREATED)
    add_person(db, "E3", "Cat", now=datetime(2026, 6, 17, 6, 0, tzinfo=UTC))  # enrolled Wednesday
    add_person(db, "E4", "Dan", now=datetime(2026, 6, 30, tzinfo=UTC))  # enrolled after the range
    leaver = add_person(db, "E5", "Eve", now=CREATED)
    for pid, day in [(ann.id, 15), (ann.id, 16), (bob.id, 15), (bob.id, 20), (leaver.id, 15)]:
        record_event(db, pid, at(day, 9, 0), "in", "door-1")
    deactivate(db, leaver.id, actor="admin")
    week = (date(2026, 6, 15), date(2026, 6, 21))  # Monday..Sunday
    # work days Mon 15, Tue 16, Wed 17, Fri 19 (Thu 18 holiday, weekend off); the week is over
    totals = {t.name: t for t in range_report(db, s, *week, today=date(2026, 6, 22)).totals}
    assert {n: t.days_absent for n, t in totals.items()} == {"Ann": 2, "Bob": 3, "Cat": 2, "Eve": None}
    assert totals["Bob"].days_present == 2  # the Saturday counts as present, not as a work day
    # mid-week: only finished days count (Mon, Tue before Wednesday)
    totals = {t.name: t for t in range_report(db, s, *week, today=date(2026, 6, 17)).totals}
    assert {n: t.days_absent for n, t in totals.items()} == {"Ann": 0, "Bob": 1, "Cat": 0, "Eve": None}
    s.site.work_days = ["mon", "tue", "wed", "thu", "fri", "sat"]
    totals = {t.name: t for t in range_report(db, s, *week, today=date(2026, 6, 22)).totals}
    assert totals["Ann"].days_absent == 3 and totals["Bob"].days_absent == 3
    text = render_range(range_report(db, s, *week, today=date(2026, 6, 22)), "table")
    assert "Days absent" in text
    db.close()


def test_work_days_must_be_weekday_names() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="mon"):
        Settings.model_validate({"site": {"work_days": ["monday"]}})
    with pytest.raises(ValidationError):
        Settings.model_validate({"site": {"holidays": ["Christmas"]}})


def test_nobody_is_absent_on_a_day_off(day_db: Database) -> None:
    sunday = date(2026, 6, 14)
    r = daily_report(day_db, settings(), sunday)
    assert [x.name for x in r.rows] == ["Ann"]  # she came in late on Sunday evening
    assert not r.work_day and r.absent == [] and r.on_leave == []
    assert "Absent: none (not a work day)" in render_daily(r, "table")
    assert [row[8] for row in csv.reader(io.StringIO(render_daily(r, "csv")))][1:] == ["open"]
    assert json.loads(render_daily(r, "json"))["work_day"] is False


def test_leave_is_not_absence(day_db: Database) -> None:
    from kiosk.store import add_leave, get_person_by_employee_id

    dan = get_person_by_employee_id(day_db, "E4")
    cat = get_person_by_employee_id(day_db, "E3")
    add_leave(day_db, dan.id, date(2026, 6, 15), date(2026, 6, 19), "holiday", actor="admin")
    add_leave(day_db, cat.id, date(2026, 6, 15), date(2026, 6, 15), "sick", actor="admin")  # came in anyway
    r = daily_report(day_db, settings(), DAY)
    assert r.absent == [] and [(x.person.name, x.kind) for x in r.on_leave] == [("Dan", "holiday")]
    assert [x.name for x in r.rows] == ["Ann", "Bob", "Cat"]  # Cat's events count; she is present
    rows = list(csv.reader(io.StringIO(render_daily(r, "csv"))))
    assert rows[-1] == ["2026-06-15", "E4", "Dan", "", "", "0.00", "no", "0", "leave", "no", "holiday",
                        "no"]
    assert "On leave: Dan (E4, holiday)" in render_daily(r, "table")
    assert json.loads(render_daily(r, "json"))["on_leave"] == [
        {"date": "2026-06-15", "employee_id": "E4", "name": "Dan", "kind": "holiday"}]
    assert "Dan (E4, holiday)" in render_daily(r, "html")

    # Mon 15 .. Sun 21: Dan's leave covers Mon-Fri; the week is over
    week = range_report(day_db, settings(), date(2026, 6, 15), date(2026, 6, 21), today=date(2026, 6, 22))
    totals = {t.name: t for t in week.totals}
    assert (totals["Dan"].days_absent, totals["Dan"].days_on_leave) == (0, 5)
    assert (totals["Cat"].days_absent, totals["Cat"].days_on_leave) == (4, 0)  # present on her sick day
    assert [(x.day.day, x.person.name) for x in week.leave] == [(d, "Dan") for d in range(15, 20)]
    csv_rows = list(csv.reader(io.StringIO(render_range(week, "csv"))))
    assert [r[8] for r in csv_rows].count("leave") == 5 and csv_rows[-1][0] == "2026-06-19"
    as_json = {t["name"]: t["days_on_leave"] for t in json.loads(render_range(week, "json"))["totals"]}
    assert as_json == {"Ann": 0, "Bob": 0, "Cat": 0, "Dan": 5}
    assert "Days on leave" in render_range(week, "table") and "On leave" in render_range(week, "html")


def test_one_csv_writer_cleans_every_cell_or_only_the_typed_ones() -> None:
    from kiosk.csv_safe import csv_text

    rows = [["=1", 2, None], ["-3.5", '+a,"b"', "@x\ny"]]
    assert csv_text(rows, ["a", "b", "c"]) == 'a,b,c\n\'=1,2,\n-3.5,"\'+a,""b""","\'@x\ny"\n'
    assert csv_text(rows, clean=[1]) == '=1,2,\n-3.5,"\'+a,""b""","@x\ny"\n'
    assert csv_text([]) == ""


def test_dates_and_times_as_text() -> None:
    from kiosk.dates import LAST_DAY, check_day, hm, iso

    t = at(15, 8, 5, 9)
    assert (hm(t), hm(None), hm(None, missing="")) == ("08:05", "-", "")
    assert (iso(t), iso(None)) == ("2026-06-15T08:05:09+02:00", "")
    assert check_day(LAST_DAY) == LAST_DAY
    with pytest.raises(ReportError, match="out of range"):
        check_day(date(2100, 1, 1))


def test_html_report_templates_ship_with_the_package() -> None:
    from importlib.resources import files

    names = {p.name for p in files("kiosk.reports").joinpath("templates").iterdir()}
    assert {"report.html", "daily.html", "range.html", "_table.html"} <= names


def test_standalone_reports_keep_their_shape_without_sites(day_db: Database) -> None:
    """Issue 13: only a central shows sites and doors; a standalone kiosk's payroll CSV keeps these
    exact twelve columns (existing imports rely on them) and no format gains a site or door."""
    header = ("date,employee_id,name,first_in,last_out,hours,late,minutes_late,status,corrected,"
              "leave,no_checkout")
    r = daily_report(day_db, settings(), DAY)
    assert render_daily(r, "csv").splitlines()[0] == header
    assert render_range(range_report(day_db, settings(), DAY, DAY), "csv").splitlines()[0] == header
    data = json.loads(render_daily(r, "json"))
    assert "sites" not in data and not {"site", "door_in", "door_out"} & set(data["people"][0])
    assert "In at" not in render_daily(r, "table") and "In at" not in render_daily(r, "html")
    with pytest.raises(ReportError, match="only on a central server"):
        daily_report(day_db, settings(), DAY, sites=["berlin"])


def test_range_report_counts_real_hours_on_a_dst_day_as_the_daily_report_does(tmp_path: Path) -> None:
    """first_last range rows (SQL figures) gave wall-clock hours across the DST jump (8 h for 7 real
    hours) while the daily report gave 7 h; both give the real time now."""
    db = open_database(tmp_path / "kiosk.db")
    p = add_person(db, "E1", "Ann", now=CREATED)
    record_event(db, p.id, datetime(2026, 3, 29, 0, 30, tzinfo=UTC), "in", "d")  # 01:30 CET
    record_event(db, p.id, datetime(2026, 3, 29, 7, 30, tzinfo=UTC), "out", "d")  # 09:30 CEST
    day = date(2026, 3, 29)
    daily = daily_report(db, settings(), day).rows[0]
    ranged = range_report(db, settings(), day, day).rows[0]
    assert daily.present_minutes == ranged.present_minutes == 7 * 60
    db.close()
