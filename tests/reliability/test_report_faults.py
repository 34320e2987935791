"""Report faults of issue 11: a person removed while a report runs, year-long reports held in
memory, forgotten check-outs shown as people still in. Each test failed before its fix."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, event

from kiosk.cli import main
from kiosk.config import Settings
from kiosk.store import Database, add_person, erase_person, open_database, record_event

pytestmark = pytest.mark.reliability

BERLIN = ZoneInfo("Europe/Berlin")
CREATED = datetime(2026, 1, 1, tzinfo=UTC)
WEEK = (date(2026, 6, 15), date(2026, 6, 21))  # Monday..Sunday


# The erasures below run while a report holds a read snapshot, so their final WAL checkpoint waits
# busy_timeout for that reader and then leaves the WAL for later (as it does at the door). The
# connections that erase, and the probe that checkpoints, wait this long instead of SQLite's 5 s.
SHORT_BUSY_MS = 200


def make_settings(db_path: Path) -> Settings:
    return Settings.model_validate({
        "site": {"name": "HQ", "timezone": "Europe/Berlin", "workday_start": "09:00",
                 "late_grace_minutes": 5},
        "database": {"path": str(db_path), "backups_kept": 0},
        "web": {"min_group_size": 2},
    })


def at(day: int, h: int, m: int = 0) -> datetime:
    return datetime(2026, 6, day, h, m, tzinfo=BERLIN)


@pytest.fixture
def week_db(tmp_path: Path) -> Iterator[Database]:
    """Ann and Bob come in Mon..Fri 09:00-17:00; Cat never comes."""
    db = open_database(tmp_path / "kiosk.db")
    ann = add_person(db, "E1", "Ann", now=CREATED)
    bob = add_person(db, "E2", "Bob", now=CREATED)
    add_person(db, "E3", "Cat", now=CREATED)
    for day in range(15, 20):
        for p in (ann, bob):
            record_event(db, p.id, at(day, 9), "in", "door-1")
            record_event(db, p.id, at(day, 17), "out", "door-1")
    yield db
    db.close()


class RemoveDuringReport:
    """Removes a person (events and row, as `kiosk people remove --with-events` does) from another
    connection right after the report's first query of attendance_events has run."""

    def __init__(self, db_path: Path, employee_id: str) -> None:
        self.db_path = db_path
        self.employee_id = employee_id
        self.fired = False

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.fired or "FROM attendance_events" not in statement:
            return
        if str(conn.engine.url.database) != str(self.db_path):
            return
        self.fired = True
        other = open_database(self.db_path, busy_timeout_ms=SHORT_BUSY_MS)
        try:
            from kiosk.store import get_person_by_employee_id

            person = get_person_by_employee_id(other, self.employee_id)
            erase_person(other, person.id, actor="test", keep_events=False)
        finally:
            other.close()


@pytest.fixture
def remove_bob(week_db: Database) -> Iterator[RemoveDuringReport]:
    hook = RemoveDuringReport(week_db.path, "E2")
    event.listen(Engine, "after_cursor_execute", hook)
    yield hook
    event.remove(Engine, "after_cursor_execute", hook)


def test_range_report_reads_one_snapshot_while_a_person_is_removed(
    week_db: Database, remove_bob: RemoveDuringReport
) -> None:
    from kiosk.reports import range_report

    s = make_settings(week_db.path)
    report = range_report(week_db, s, *WEEK, today=date(2026, 6, 22))
    assert remove_bob.fired
    # the whole report is as of before the removal: Bob's five days are all there
    assert sorted({r.name for r in report.rows}) == ["Ann", "Bob"]
    assert {t.name: t.days_present for t in report.totals} == {"Ann": 5, "Bob": 5, "Cat": 0}


def test_cli_range_csv_survives_a_person_removed_meanwhile(
    week_db: Database, remove_bob: RemoveDuringReport
) -> None:
    result = CliRunner().invoke(
        main, ["report", "range", "--from", "2026-06-15", "--to", "2026-06-21", "--format", "csv"],
        env={"KIOSK__DATABASE__PATH": str(week_db.path), "KIOSK__SITE__TIMEZONE": "Europe/Berlin"},
    )
    assert remove_bob.fired
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert sorted({r["name"] for r in rows}) == ["Ann", "Bob"] and len(rows) == 10


def _web_client(db: Database) -> Any:
    from kiosk.clock import ManualClock
    from kiosk.web import create_app, create_user

    settings = make_settings(db.path)
    create_user(db, "boss", "manager-password-1", "manager")
    app = create_app(settings, db, clock=ManualClock(datetime(2026, 6, 22, 12, tzinfo=BERLIN)),
                     secret_key="x" * 64)
    app.testing = True
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    r = client.post("/login", data={"username": "boss", "password": "manager-password-1",
                                    "csrf_token": token.group(1)})
    assert r.status_code == 302
    return client


@pytest.mark.parametrize("page", ["/range", "/range.csv", "/range-totals.csv"])
def test_web_range_pages_survive_a_person_removed_meanwhile(week_db: Database, page: str) -> None:
    client = _web_client(week_db)
    hook = RemoveDuringReport(week_db.path, "E2")
    event.listen(Engine, "after_cursor_execute", hook)
    try:
        r = client.get(page, query_string={"start": "2026-06-15", "end": "2026-06-21"})
        body = r.get_data(as_text=True)
    finally:
        event.remove(Engine, "after_cursor_execute", hook)
    assert hook.fired
    assert r.status_code == 200, body[:500]
    assert "Bob" in body


# --- 2. long ranges: streamed, bounded memory ------------------------------------------------

BENCH_KEYS = {"people", "events", "year_csv_s", "year_csv_peak_rss_mb", "web_4x_year_csv_peak_rss_mb",
              "expected_csv_rows", "year_csv_rows", "web_csv_rows"}


@pytest.mark.slow
def test_bench_reports_tiny_run_gives_figures_and_right_row_count() -> None:
    import json

    result = CliRunner().invoke(main, ["bench", "reports", "--people", "5", "--days", "10", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    assert set(figures) >= BENCH_KEYS
    assert figures["people"] == 5
    work_days = figures["expected_csv_rows"] // 5
    assert 6 <= work_days <= 8 and figures["events"] == 2 * 5 * work_days  # Mon-Fri of 10 days
    assert figures["year_csv_rows"] == figures["expected_csv_rows"]
    assert figures["web_csv_rows"] == [figures["expected_csv_rows"]] * 4


TODAY = date(2026, 6, 22)


@pytest.fixture
def month_db(tmp_path: Path) -> Iterator[Database]:
    """30 people in on every work day of the 42 days before TODAY (bulk-built, as the bench does)."""
    from kiosk.bench_reports import build_database

    data = build_database(tmp_path / "kiosk.db", people=30, days=42, today=TODAY)
    assert data.person_days == 30 * 30
    db = open_database(data.path, busy_timeout_ms=SHORT_BUSY_MS)
    yield db
    db.close()


def _month() -> tuple[date, date]:
    return TODAY - timedelta(days=42), TODAY - timedelta(days=1)


def test_range_csv_is_produced_day_by_day_as_events_stream(
    month_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kiosk.reports as reports
    import kiosk.reports.scan as scan

    days_read: list[datetime] = []
    real = scan.day_figures

    def counting(db: Database, utc_from: datetime, *args: Any, **kwargs: Any) -> Any:
        days_read.append(utc_from)
        return real(db, utc_from, *args, **kwargs)

    monkeypatch.setattr(scan, "day_figures", counting)
    s = make_settings(month_db.path)
    start, end = _month()
    chunks = reports.iter_range_csv(month_db, s, start, end, today=TODAY)
    assert next(chunks).startswith("date,employee_id,name,")
    first_day = next(chunks)
    assert first_day.count("\n") == 30  # everyone's first work day, nothing more
    assert 1 <= len(days_read) <= 3  # read so far: up to the first work day, not the range
    rest = "".join(chunks)
    assert len(days_read) == 42
    full = reports.render_range(reports.range_report(month_db, s, start, end, today=TODAY), "csv")
    assert full.split("\n", 1)[1] == first_day + rest  # the same rows as the in-memory report


def test_streamed_csv_matches_in_memory_report_with_leave_and_unknown_faces(week_db: Database) -> None:
    from kiosk.reports import iter_range_csv, range_report, render_range
    from kiosk.store import add_leave, get_person_by_employee_id

    cat = get_person_by_employee_id(week_db, "E3")
    add_leave(week_db, cat.id, date(2026, 6, 17), date(2026, 6, 23), "holiday", actor="admin")
    record_event(week_db, None, at(16, 10), "unknown", "door-1")
    s = make_settings(week_db.path)
    streamed = "".join(iter_range_csv(week_db, s, *WEEK, today=TODAY))
    assert streamed == render_range(range_report(week_db, s, *WEEK, today=TODAY), "csv")
    assert streamed.count(",holiday,no\n") == 3  # Wed..Fri; the weekend is no work day


def test_web_range_csv_is_a_streamed_response(month_db: Database) -> None:
    client = _web_client(month_db)
    start, end = _month()
    r = client.get("/range.csv", query_string={"start": start.isoformat(), "end": end.isoformat()},
                   buffered=False)
    assert r.status_code == 200 and r.is_streamed
    chunks = list(r.response)
    assert len(chunks) > 10  # a chunk per day with events, not one body
    text = "".join(c.decode() if isinstance(c, bytes) else c for c in chunks)
    assert len(list(csv.DictReader(io.StringIO(text)))) == 30 * 30
    r.close()
    person = client.get("/people/1/history.csv", query_string={"start": start.isoformat(),
                                                              "end": end.isoformat()}, buffered=False)
    assert person.is_streamed and person.get_data(as_text=True).count("\n") == 1 + 30


def _spy_on_echo(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The list that every click.echo() call's message is appended to (and still printed)."""
    import click

    writes: list[str] = []
    real_echo = click.echo

    def spy(message: Any = None, *args: Any, **kwargs: Any) -> None:
        writes.append(str(message))
        real_echo(message, *args, **kwargs)

    monkeypatch.setattr(click, "echo", spy)
    return writes


def test_cli_range_csv_writes_rows_day_by_day(month_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:

    writes = _spy_on_echo(monkeypatch)
    start, end = _month()
    result = CliRunner().invoke(
        main, ["report", "range", "--from", start.isoformat(), "--to", end.isoformat(), "--format", "csv"],
        env={"KIOSK__DATABASE__PATH": str(month_db.path), "KIOSK__SITE__TIMEZONE": "Europe/Berlin"})
    assert result.exit_code == 0, result.output
    assert len(writes) > 10 and all(w.count("\n") <= 31 for w in writes)
    assert result.output.count("\n") == 1 + 30 * 30


def test_range_page_shows_a_bounded_table_with_a_csv_link(month_db: Database) -> None:
    from kiosk.reports import DAY_ROWS_SHOWN

    client = _web_client(month_db)
    start, end = _month()
    page = client.get("/range", query_string={"start": start.isoformat(), "end": end.isoformat()})
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    days_table = html[html.index('id="table-days"'):]
    days_table = days_table[:days_table.index("</table>")]
    assert days_table.count("<tr>") == 1 + DAY_ROWS_SHOWN < 1 + 30 * 30
    assert 'id="rows-cut"' in html and f"of {30 * 30} person-days" in html and "range.csv" in html
    # the totals still cover the whole range
    assert html.count(">30</td>") >= 30  # every person present on all 30 work days


@pytest.mark.parametrize("mode", ["first_last", "toggle"])
def test_range_rows_read_the_day_as_the_daily_report_does(tmp_path: Path, mode: str) -> None:
    """The range's per-day reading (SQL-aggregated in first_last mode) equals the daily report's
    per-event reading, corner cases included (an out before the first in, outs only, by hand)."""
    from dataclasses import replace

    from kiosk.reports import daily_report, range_report
    from kiosk.store import add_correction

    db = open_database(tmp_path / "kiosk.db")
    s = make_settings(db.path)
    s.attendance.mode = mode  # type: ignore[assignment]
    s.expression.enabled = False
    people = [add_person(db, f"E{i}", f"P{i}", now=CREATED) for i in range(5)]
    plan = {
        0: [(15, 8, 50, "in"), (15, 12, 0, "out"), (15, 13, 0, "in"), (15, 17, 20, "out")],
        1: [(15, 7, 0, "out"), (15, 9, 30, "in")],  # an out before the first in
        2: [(16, 17, 0, "out")],  # a check-out only
        3: [(16, 9, 6, "in"), (16, 23, 59, "out"), (17, 0, 1, "in")],  # around midnight
        4: [(17, 9, 0, "in"), (17, 9, 0, "out")],  # same instant
    }
    for i, events in plan.items():
        for d, h, m, kind in events:
            record_event(db, people[i].id, at(d, h, m), kind, "door-1")
    add_correction(db, people[1].id, at(16, 8, 0), "in", actor="admin", note="forgot")
    record_event(db, None, at(16, 12), "unknown", "door-1")
    days = [date(2026, 6, d) for d in (15, 16, 17)]
    ranged = range_report(db, s, days[0], days[-1], today=TODAY)
    daily = [row for d in days for row in daily_report(db, s, d).rows]
    assert [replace(r, expression=None) for r in ranged.rows] == daily
    assert ranged.unknown_faces == 1
    db.close()


# --- 3. forgotten check-outs ------------------------------------------------------------------


@pytest.fixture
def forgot_db(week_db: Database) -> Database:
    """On top of week_db: Cat checks in on Wednesday 17 and never checks out; on Monday 22
    (TODAY) Ann is in since 08:30 and Bob forgot nothing yet."""
    from kiosk.store import get_person_by_employee_id

    cat = get_person_by_employee_id(week_db, "E3")
    ann = get_person_by_employee_id(week_db, "E1")
    record_event(week_db, cat.id, at(17, 9, 20), "in", "door-1")
    record_event(week_db, ann.id, at(22, 8, 30), "in", "door-1")
    return week_db


def _table(html: str, table_id: str) -> str:
    start = html.index(f'id="{table_id}"')
    return html[start:html.index("</table>", start)]


def test_past_day_board_lists_a_forgotten_check_out_as_an_exception(forgot_db: Database) -> None:
    client = _web_client(forgot_db)
    html = client.get("/day", query_string={"date": "2026-06-17"}).get_data(as_text=True)
    assert "Cat" not in _table(html, "table-in")
    assert re.search(r'id="count-in">0<', html)
    assert "Cat" in _table(html, "table-no-checkout")
    assert re.search(r'id="count-no-checkout">1<', html)
    assert "#correction-form" in _table(html, "table-no-checkout")


def test_today_board_shows_running_hours_of_people_in(forgot_db: Database) -> None:
    client = _web_client(forgot_db)  # the clock stands at 12:00 on Monday 22
    html = client.get("/").get_data(as_text=True)
    inside = _table(html, "table-in")
    assert "Ann" in inside and "3.50" in inside  # 08:30 -> 12:00 so far
    assert "Ann" not in _table(html, "table-no-checkout")


def test_payroll_csv_says_no_checkout(forgot_db: Database) -> None:
    from kiosk.reports import daily_report, iter_range_csv, range_report, render_daily

    s = make_settings(forgot_db.path)
    rows = list(csv.DictReader(io.StringIO("".join(
        iter_range_csv(forgot_db, s, date(2026, 6, 15), TODAY, today=TODAY)))))
    flags = {(r["date"], r["name"]): r["no_checkout"] for r in rows}
    assert flags[("2026-06-17", "Cat")] == "yes" and flags[("2026-06-17", "Ann")] == "no"
    assert flags[("2026-06-22", "Ann")] == "no"  # today: still in, not forgotten (yet)
    totals = {t.name: t for t in range_report(forgot_db, s, date(2026, 6, 15), TODAY, today=TODAY).totals}
    assert (totals["Cat"].days_no_checkout, totals["Ann"].days_no_checkout) == (1, 0)
    day = list(csv.DictReader(io.StringIO(render_daily(
        daily_report(forgot_db, s, date(2026, 6, 17), today=TODAY), "csv"))))
    assert {r["name"]: r["no_checkout"] for r in day} == {"Ann": "no", "Bob": "no", "Cat": "yes"}


def test_range_page_lists_days_without_check_out_with_links_to_fix_them(forgot_db: Database) -> None:
    client = _web_client(forgot_db)
    html = client.get("/range", query_string={"start": "2026-06-15", "end": "2026-06-21"}).get_data(as_text=True)
    table = _table(html, "table-no-checkout")
    assert "Cat" in table and "2026-06-17" in table and "Ann" not in table
    assert re.search(r'/people/\d+\?start=2026-06-17&amp;end=2026-06-17&amp;fix=2026-06-17#correction-form',
                     table)
    assert 'href="#no-checkout"' in html  # the filter link at the top of the page


def test_person_page_lists_absences(forgot_db: Database) -> None:
    from kiosk.store import get_person_by_employee_id

    client = _web_client(forgot_db)
    cat = get_person_by_employee_id(forgot_db, "E3")
    html = client.get(f"/people/{cat.id}", query_string={"start": "2026-06-15", "end": "2026-06-21"}
                      ).get_data(as_text=True)
    absences = _table(html, "table-absences")
    assert [d for d in ("2026-06-15", "2026-06-16", "2026-06-18", "2026-06-19") if d in absences] == [
        "2026-06-15", "2026-06-16", "2026-06-18", "2026-06-19"]
    assert "2026-06-17" not in absences and "2026-06-20" not in absences  # came in; a Saturday
    assert "no check-out" in _table(html, "table-history")


def test_streamed_csv_holds_its_snapshot_until_closed(month_db: Database) -> None:
    """A person removed while the CSV is being sent is still in the rest of it (one snapshot),
    and closing the stream early ends its read transaction (the WAL can be checkpointed again)."""
    import sqlite3

    from kiosk.reports import iter_range_csv
    from kiosk.store import get_person_by_employee_id

    s = make_settings(month_db.path)
    start, end = _month()
    victim = get_person_by_employee_id(month_db, "B00007")
    chunks = iter_range_csv(month_db, s, start, end, today=TODAY)
    head = next(chunks) + next(chunks) + next(chunks)
    erase_person(month_db, victim.id, actor="test", keep_events=False)
    rest = "".join(chunks)
    assert (head + rest).count(",B00007,") == 30  # all 30 work days, before and after the removal

    again = iter_range_csv(month_db, s, start, end, today=TODAY)
    next(again), next(again)
    con = sqlite3.connect(month_db.path, timeout=SHORT_BUSY_MS / 1000)
    try:
        record_event(month_db, None, at(15, 12), "unknown", "door-1")
        assert con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 1  # a reader holds it
        again.close()
        assert con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    finally:
        con.close()


@pytest.mark.parametrize("fmt", ["table", "json", "html"])
def test_cli_range_every_format_is_bounded_and_says_the_same(
    month_db: Database, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """json and table are written day by day with the in-memory report's content; html shows all
    totals and the first DAY_ROWS_SHOWN person-days with a note (a year page was 27.7 MB)."""
    import json

    from kiosk.reports import DAY_ROWS_SHOWN, range_as_dict, range_report, render_range

    writes = _spy_on_echo(monkeypatch)
    start, end = _month()
    result = CliRunner().invoke(
        main, ["report", "range", "--from", start.isoformat(), "--to", end.isoformat(), "--format", fmt],
        env={"KIOSK__DATABASE__PATH": str(month_db.path), "KIOSK__SITE__TIMEZONE": "Europe/Berlin",
             "KIOSK__SITE__NAME": "HQ", "KIOSK__SITE__WORKDAY_START": "09:00",
             "KIOSK__SITE__LATE_GRACE_MINUTES": "5"})
    assert result.exit_code == 0, result.output
    full = range_report(month_db, make_settings(month_db.path), start, end)
    if fmt == "json":
        assert len(writes) > 10 and json.loads(result.output) == range_as_dict(full)
    elif fmt == "table":
        def words(text: str) -> list[list[str]]:
            return [line.split() for line in text.splitlines() if line.strip("- ")]

        assert len(writes) > 10 and words(result.output) == words(render_range(full, "table"))
    else:
        days = result.output.split("<h2>Days</h2>")[1].split("<h2>On leave</h2>")[0]
        assert days.count("<tr>") == 1 + DAY_ROWS_SHOWN
        assert f"first {DAY_ROWS_SHOWN} of {30 * 30} person-days" in result.output
        assert result.output.count("<tr>") < 1 + 30 * 30


def test_read_snapshot_is_one_read_only_transaction_on_one_connection(week_db: Database) -> None:
    from kiosk.store import list_people, people_by_id, read_snapshot
    from kiosk.store.reporting import in_read_transaction

    with read_snapshot(week_db) as snap:
        before = people_by_id(snap)
        assert in_read_transaction(snap)
        add_person(week_db, "E9", "Zoe", now=CREATED)  # committed by another connection meanwhile
        assert [p.name for p in list_people(snap)] == ["Ann", "Bob", "Cat"]  # not seen
        assert people_by_id(snap) == before
        with pytest.raises(Exception, match="readonly"):
            add_person(snap, "E10", "Yan", now=CREATED)
    assert not in_read_transaction(snap) and "Zoe" in [p.name for p in list_people(week_db)]
    add_person(week_db, "E11", "Xia", now=CREATED)  # the pooled connection is writable again


def test_range_lateness_on_a_dst_day_reads_as_the_daily_report(tmp_path: Path) -> None:
    """29 March 2026 (02:00 -> 03:00) with work from 01:00: 04:00 CEST is 180 wall-clock minutes
    late in both readings (attendance.lateness counts wall-clock minutes)."""
    from kiosk.reports import daily_report, range_report

    db = open_database(tmp_path / "kiosk.db")
    s = make_settings(db.path)
    s.site.workday_start = datetime(2026, 1, 1, 1, 0).time()
    s.expression.enabled = False
    p = add_person(db, "E1", "Ann", now=CREATED)
    day = date(2026, 3, 29)
    record_event(db, p.id, datetime(2026, 3, 29, 4, 0, tzinfo=BERLIN), "in", "door-1")
    daily = daily_report(db, s, day, today=TODAY).rows[0]
    ranged = range_report(db, s, day, day, today=TODAY).rows[0]
    assert (ranged.late, ranged.minutes_late) == (daily.late, daily.minutes_late) == (True, 180)
    db.close()
