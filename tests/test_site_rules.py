"""Site rules in a central's reports (issue 13 item 4): two sites 6 hours apart (Berlin and New York)
with their own work days, holidays and workday start; events on their own zone's local date, the
day's site's lateness, home-site absences; the daily report, range CSV, JSON, a site filter and a
limited manager's pages. On both engines (the `db` fixture: SQLite file and a real PostgreSQL).

The week of Monday 15 June 2026 (Berlin UTC+2, New York UTC-4); site: is UTC, mon-fri, 09:00.
  berlin: 09:00 + 5 min grace, mon-fri, holiday Wed 17 June
  nyc:    08:00 + 10 min grace, tue-sat, holiday Fri 19 June
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from app_helpers import kiosk_app
from cli_helpers import run_cli

from kiosk.clock import ManualClock
from kiosk.config import Settings
from kiosk.reports import (
    CSV_COLUMNS,
    daily_report,
    iter_range,
    range_report,
    render_daily,
    render_range,
)
from kiosk.store import (
    Database,
    DoorEvent,
    add_correction,
    add_door,
    add_person,
    ingest_events,
    set_user_sites,
)
from kiosk.web import create_user

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
CREATED = datetime(2026, 1, 1, tzinfo=UTC)
TODAY = date(2026, 6, 22)  # the Monday after: every day of the week is over
WEEK = (date(2026, 6, 15), date(2026, 6, 20))
SITE_COLUMNS = ["site", "door_in", "door_out"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The store-reading tests here run on both engines, as the store modules' do (conftest)."""
    if "db_engine" in metafunc.fixturenames and "db" in metafunc.fixturenames:
        metafunc.parametrize("db_engine", [pytest.param(e, marks=getattr(pytest.mark, e))
                                           for e in ("sqlite", "postgresql")], indirect=True)


def settings(mode: str = "first_last") -> Settings:
    return Settings.model_validate({
        "role": "central",
        "site": {"name": "HQ", "timezone": "UTC", "workday_start": "09:00", "late_grace_minutes": 5},
        "sites": {
            "berlin": {"timezone": "Europe/Berlin", "workday_start": "09:00", "late_grace_minutes": 5,
                       "work_days": ["mon", "tue", "wed", "thu", "fri"], "holidays": ["2026-06-17"]},
            "nyc": {"timezone": "America/New_York", "workday_start": "08:00", "late_grace_minutes": 10,
                    "work_days": ["tue", "wed", "thu", "fri", "sat"], "holidays": ["2026-06-19"]},
        },
        "attendance": {"mode": mode},
        "expression": {"enabled": False},
    })


def berlin(d: int, h: int, m: int, month: int = 6) -> datetime:
    return datetime(2026, month, d, h, m, tzinfo=BERLIN)


def ny(d: int, h: int, m: int, month: int = 6) -> datetime:
    return datetime(2026, month, d, h, m, tzinfo=NEW_YORK)


class Central:
    """A central's database with the doors "Berlin main" (berlin) and "NY lobby" (nyc)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.doors = {name: add_door(db, name, site=site, now=CREATED).door
                      for name, site in (("Berlin main", "berlin"), ("NY lobby", "nyc"))}
        self.seq = 0
        self.ids: dict[str, int] = {}

    def person(self, employee_id: str, name: str) -> int:
        self.ids[name] = add_person(self.db, employee_id, name, now=CREATED).id
        return self.ids[name]

    def push(self, door: str, name: str | None, t: datetime, kind: str) -> None:
        """One event through the central's intake, as the door would push it."""
        self.seq += 1
        pid = self.ids[name] if name is not None else None
        ingest_events(self.db, self.doors[door].id, [DoorEvent(self.seq, str(uuid.uuid4()), pid, t, kind)],
                      clock=t, now=t)

    def correct(self, name: str, t: datetime, kind: str) -> None:
        add_correction(self.db, self.ids[name], t, kind, actor="admin", note="by hand", now=t,
                       retention_days=36500)


def week(db: Database) -> Central:
    """Bea and Ben work in Berlin, Nora and Nina in New York, Tom travels (home Berlin).

    Bea: every Berlin work day (none on the holiday, Wed 17), 09:03 on Monday (within grace).
    Ben: Monday only, 09:20 (late 20); absent Tue, Thu, Fri.
    Nora: Monday 08:20 to 21:00 New York (01:00 UTC Tuesday); Tue and Thu; absent Wed and Sat.
    Nina: Tuesday 20:30 New York (00:30 UTC Wednesday), no check-out; Thursday a check-in typed by
    hand (08:30 New York); absent Wed and Sat.
    Tom: Thursday in at Berlin 08:50, out at New York 19:30 (01:30 Friday in Berlin); Friday in
    Berlin; absent Mon and Tue; seen in Berlin the week before (his home site all week).
    An unknown face at the New York door at 22:00 on Tuesday (02:00 UTC Wednesday)."""
    c = Central(db)
    for eid, name in (("B1", "Bea"), ("B2", "Ben"), ("N1", "Nora"), ("N2", "Nina"), ("T1", "Tom")):
        c.person(eid, name)
    for d, (h, m) in {15: (9, 3), 16: (8, 55), 18: (9, 0), 19: (9, 0)}.items():
        c.push("Berlin main", "Bea", berlin(d, h, m), "in")
        c.push("Berlin main", "Bea", berlin(d, 17, 0), "out")
    c.push("Berlin main", "Ben", berlin(15, 9, 20), "in")
    c.push("Berlin main", "Ben", berlin(15, 18, 0), "out")
    c.push("NY lobby", "Nora", ny(15, 8, 20), "in")
    c.push("NY lobby", "Nora", ny(15, 21, 0), "out")
    for d, (h, m) in {16: (7, 55), 18: (8, 0)}.items():
        c.push("NY lobby", "Nora", ny(d, h, m), "in")
        c.push("NY lobby", "Nora", ny(d, 16, 0), "out")
    c.push("NY lobby", "Nina", ny(16, 20, 30), "in")
    c.push("NY lobby", None, ny(16, 22, 0), "unknown")
    c.correct("Nina", ny(18, 8, 30), "in")
    c.push("Berlin main", "Tom", berlin(8, 9, 0), "in")  # the week before: his home is Berlin
    c.push("Berlin main", "Tom", berlin(18, 8, 50), "in")
    c.push("NY lobby", "Tom", ny(18, 19, 30), "out")
    c.push("Berlin main", "Tom", berlin(19, 9, 0), "in")
    c.push("Berlin main", "Tom", berlin(19, 17, 0), "out")
    return c


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("mode", ["first_last", "toggle"])
def test_events_land_on_their_own_zones_local_day(db: Database, mode: str) -> None:
    c = week(db)
    s = settings(mode)
    tue = {r.name: r for r in daily_report(db, s, date(2026, 6, 16), today=TODAY).rows}
    # Nina's evening check-in (00:30 UTC Wednesday) is Tuesday's in New York; late by the nyc start
    nina = tue["Nina"]
    assert nina.first_in is not None and nina.first_in.isoformat() == "2026-06-16T20:30:00-04:00"
    assert (nina.site, nina.late, nina.minutes_late, nina.no_checkout) == ("nyc", True, 12 * 60 + 30, True)
    # Nora's Monday check-out (01:00 UTC Tuesday) stays on her Monday
    assert tue["Nora"].events == 2 and tue["Nora"].first_in == ny(16, 7, 55)
    mon = {r.name: r for r in daily_report(db, s, date(2026, 6, 15), today=TODAY).rows}
    nora = mon["Nora"]
    assert nora.last_out is not None and nora.last_out.isoformat() == "2026-06-15T21:00:00-04:00"
    assert (nora.present_minutes, nora.open) == (12 * 60 + 40, False)
    assert daily_report(db, s, date(2026, 6, 16), today=TODAY).unknown_faces == 1  # 22:00 in New York
    assert daily_report(db, s, date(2026, 6, 17), today=TODAY).unknown_faces == 0
    assert c.ids


@pytest.mark.parametrize("mode", ["first_last", "toggle"])
def test_lateness_at_each_sites_workday_start(db: Database, mode: str) -> None:
    week(db)
    rows = {(r.name, r.day): r for r in range_report(db, settings(mode), *WEEK, today=TODAY).rows}
    mon, tue, thu = date(2026, 6, 15), date(2026, 6, 16), date(2026, 6, 18)
    assert (rows["Bea", mon].late, rows["Bea", mon].minutes_late) == (False, 0)  # 09:03 Berlin, grace 5
    assert (rows["Ben", mon].late, rows["Ben", mon].minutes_late) == (True, 20)  # 09:20 Berlin
    assert (rows["Nora", mon].late, rows["Nora", mon].minutes_late) == (True, 20)  # 08:20 New York, grace 10
    assert rows["Nora", tue].late is False and rows["Nora", thu].late is False  # 07:55, 08:00
    # a day with a correction only: the home site's rules (nyc): typed 08:30 New York, 30 min late
    nina = rows["Nina", thu]
    assert nina.first_in is not None and nina.first_in.isoformat() == "2026-06-18T08:30:00-04:00"
    assert (nina.site, nina.late, nina.minutes_late, nina.corrected) == (None, True, 30, True)


@pytest.mark.parametrize("mode", ["first_last", "toggle"])
def test_a_traveller_gets_the_day_of_the_first_door(db: Database, mode: str) -> None:
    week(db)
    rows = {(r.name, r.day): r for r in range_report(db, settings(mode), *WEEK, today=TODAY).rows}
    tom = rows["Tom", date(2026, 6, 18)]
    assert (tom.site, tom.door_in, tom.door_out) == ("berlin", "Berlin main", "NY lobby")
    assert tom.first_in is not None and tom.first_in.isoformat() == "2026-06-18T08:50:00+02:00"
    assert tom.last_out is not None and tom.last_out.isoformat() == "2026-06-19T01:30:00+02:00"
    assert (tom.present_minutes, tom.open, tom.late) == (16 * 60 + 40, False, False)
    assert ("Tom", date(2026, 6, 19)) in rows and rows["Tom", date(2026, 6, 19)].events == 2


def test_holidays_and_work_days_are_the_home_sites(db: Database) -> None:
    week(db)
    s = settings()
    wed = daily_report(db, s, date(2026, 6, 17), today=TODAY)  # Berlin's holiday, a New York work day
    assert wed.work_day and [p.name for p in wed.absent] == ["Nina", "Nora"]
    fri = daily_report(db, s, date(2026, 6, 19), today=TODAY)  # New York's holiday
    assert [p.name for p in fri.absent] == ["Ben"]
    sat = daily_report(db, s, date(2026, 6, 20), today=TODAY)  # a work day in New York only
    assert sat.work_day and [p.name for p in sat.absent] == ["Nina", "Nora"]
    sun = daily_report(db, s, date(2026, 6, 21), today=TODAY)
    assert not sun.work_day and sun.absent == [] and "none (not a work day)" in render_daily(sun, "table")
    totals = {t.name: t for t in range_report(db, s, *WEEK, today=TODAY).totals}
    assert {n: t.days_absent for n, t in totals.items()} == {"Bea": 0, "Ben": 3, "Nora": 2, "Nina": 2, "Tom": 2}
    assert totals["Nina"].days_no_checkout == 2  # Tuesday's and Thursday's check-ins
    # a work day not over yet in New York (today there) is not an absence yet
    early = range_report(db, s, *WEEK, today=datetime(2026, 6, 21, 2, 0, tzinfo=UTC))  # Sat 22:00 in NY
    assert {t.name: t.days_absent for t in early.totals}["Nora"] == 1


def test_range_csv_and_json_follow_the_rules(db: Database) -> None:
    week(db)
    s = settings()
    text = "".join(iter_range(db, s, *WEEK, "csv", TODAY))
    rows = _csv(text)
    assert list(rows[0]) == CSV_COLUMNS + SITE_COLUMNS
    by = {(r["name"], r["date"]): r for r in rows}
    nina = by["Nina", "2026-06-16"]
    assert (nina["first_in"], nina["late"], nina["minutes_late"], nina["status"], nina["no_checkout"],
            nina["site"], nina["door_in"]) == ("2026-06-16T20:30:00-04:00", "yes", "750", "open", "yes",
                                               "nyc", "NY lobby")
    tom = by["Tom", "2026-06-18"]
    assert (tom["first_in"], tom["last_out"], tom["hours"], tom["site"], tom["door_out"]) == (
        "2026-06-18T08:50:00+02:00", "2026-06-19T01:30:00+02:00", "16.67", "berlin", "NY lobby")
    assert by["Nora", "2026-06-15"]["last_out"] == "2026-06-15T21:00:00-04:00"
    assert ("Nina", "2026-06-17") not in by and ("Nora", "2026-06-16") in by
    # the in-memory report gives the same CSV, and the toggle mode the same rows here
    assert render_range(range_report(db, s, *WEEK, today=TODAY), "csv") == text
    assert "".join(iter_range(db, settings("toggle"), *WEEK, "csv", TODAY)) == text
    js = json.loads("".join(iter_range(db, s, *WEEK, "json", TODAY)))
    assert js["timezones"] == {"berlin": "Europe/Berlin", "nyc": "America/New_York"}
    assert js["timezone"] == "UTC"
    day = next(d for d in js["days"] if d["name"] == "Nina" and d["date"] == "2026-06-16")
    assert (day["first_in"], day["minutes_late"], day["site"]) == ("2026-06-16T20:30:00-04:00", 750, "nyc")
    assert {t["name"]: t["days_absent"] for t in js["totals"]}["Nora"] == 2
    table = "".join(iter_range(db, s, *WEEK, "table", TODAY))
    assert "each site's own: berlin Europe/Berlin, nyc America/New_York; other rows UTC" in table
    daily_js = json.loads(render_daily(daily_report(db, s, date(2026, 6, 16), today=TODAY), "json"))
    assert daily_js["timezones"]["nyc"] == "America/New_York"


def test_a_site_filter_keeps_the_rules(db: Database) -> None:
    week(db)
    s = settings()
    rows = _csv("".join(iter_range(db, s, *WEEK, "csv", TODAY, sites=["nyc"])))
    assert {r["name"] for r in rows} == {"Nora", "Nina"} and {r["site"] for r in rows} == {"nyc"}
    assert [(r["date"], r["first_in"]) for r in rows if r["name"] == "Nina"] == [
        ("2026-06-16", "2026-06-16T20:30:00-04:00")]  # her corrections-only day has no site
    rep = range_report(db, s, *WEEK, today=TODAY, sites=["nyc"])
    assert {t.name: t.days_absent for t in rep.totals} == {"Nora": 2, "Nina": 2}
    b = daily_report(db, s, date(2026, 6, 17), today=TODAY, sites=["berlin"])
    assert b.work_day and b.absent == [] and b.rows == []  # Berlin's holiday; Nina's 00:30 UTC is Tuesday's


def test_dst_change_days(db: Database) -> None:
    """Europe leaves summer time on Sun 25 Oct 2026, the US on Sun 1 Nov: a 25-hour day at each
    site, and a week in between where the sites are 5 hours apart."""
    c = week(db)
    c.push("Berlin main", "Bea", berlin(25, 0, 30, month=10), "in")  # 22:30 UTC on the 24th
    c.push("Berlin main", "Bea", berlin(25, 23, 30, month=10), "out")  # CET now: 22:30 UTC
    c.push("Berlin main", "Ben", berlin(26, 9, 6, month=10), "in")  # late: 09:05 is the limit
    c.push("Berlin main", "Ben", berlin(26, 0, 15, month=10), "out")  # 23:15 UTC on the 25th
    c.push("NY lobby", "Nora", ny(26, 23, 30, month=10), "in")  # 03:30 UTC on the 27th
    c.push("NY lobby", "Nora", ny(1, 0, 30, month=11), "in")  # EDT: 04:30 UTC
    c.push("NY lobby", "Nora", ny(1, 23, 30, month=11), "out")  # EST now: 04:30 UTC on the 2nd
    for mode in ("first_last", "toggle"):
        rows = {(r.name, r.day): r for r in
                range_report(db, settings(mode), date(2026, 10, 24), date(2026, 11, 2), today=TODAY).rows}
        assert set(rows) == {("Bea", date(2026, 10, 25)), ("Ben", date(2026, 10, 26)),
                             ("Nora", date(2026, 10, 26)), ("Nora", date(2026, 11, 1))}, mode
        bea = rows["Bea", date(2026, 10, 25)]
        assert bea.present_minutes == 24 * 60 and bea.last_out is not None  # a 25-hour day: 23 h on the wall, 24 real
        assert bea.last_out.isoformat() == "2026-10-25T23:30:00+01:00"
        ben = rows["Ben", date(2026, 10, 26)]
        assert (ben.late, ben.minutes_late, ben.open) == (True, 6, True)  # his out came before his in
        nora = rows["Nora", date(2026, 10, 26)]
        assert nora.first_in is not None and nora.first_in.isoformat() == "2026-10-26T23:30:00-04:00"
        sunday = rows["Nora", date(2026, 11, 1)]
        assert sunday.present_minutes == 24 * 60 and sunday.last_out is not None
        assert sunday.last_out.isoformat() == "2026-11-01T23:30:00-05:00"


# --- the web pages, a limited manager ------------------------------------------------------------

_CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def _login(client, username: str, password: str) -> None:  # type: ignore[no-untyped-def]
    token = _CSRF_RE.search(client.get("/login").get_data(as_text=True))
    assert token is not None
    r = client.post("/login", data={"username": username, "password": password, "csrf_token": token.group(1)})
    assert r.status_code == 302


def test_a_limited_managers_pages_follow_the_rules(db: Database, db_settings: Settings) -> None:
    week(db)
    s = settings().model_copy(update={"database": db_settings.database})
    create_user(db, "nyboss", "manager-password-1", "manager")
    set_user_sites(db, "nyboss", ["nyc"], actor="test")
    app = kiosk_app(s, db, ManualClock(datetime(2026, 6, 22, 3, 0, tzinfo=UTC)))  # Sunday 23:00 in NY
    client = app.test_client()
    _login(client, "nyboss", "manager-password-1")
    rows = _csv(client.get("/range.csv?start=2026-06-15&end=2026-06-20").get_data(as_text=True))
    assert {r["site"] for r in rows} == {"nyc"} and "Bea" not in {r["name"] for r in rows}
    nina = next(r for r in rows if r["name"] == "Nina")
    assert (nina["date"], nina["first_in"], nina["minutes_late"]) == ("2026-06-16", "2026-06-16T20:30:00-04:00", "750")
    day = _csv(client.get("/day.csv?date=2026-06-17").get_data(as_text=True))
    assert sorted((r["name"], r["status"]) for r in day) == [("Nina", "absent"), ("Nora", "absent")]
    totals = _csv(client.get("/range-totals.csv?start=2026-06-15&end=2026-06-20").get_data(as_text=True))
    assert {r["name"]: r["days_absent"] for r in totals} == {"Nina": "2", "Nora": "2"}
    board = client.get("/day?date=2026-06-16").get_data(as_text=True)
    assert "20:30" in board and "America/New_York" in board


# --- hand corrections: typed and listed in the person's home site's zone ---------------------------


def test_web_corrections_are_typed_in_the_home_sites_zone(db: Database, db_settings: Settings) -> None:
    c = week(db)
    s = settings().model_copy(update={"database": db_settings.database})
    create_user(db, "alice", "admin-password-1", "admin")
    app = kiosk_app(s, db, ManualClock(datetime(2026, 6, 22, 12, 0, tzinfo=UTC)))
    client = app.test_client()
    _login(client, "alice", "admin-password-1")
    page = f"/people/{c.ids['Nina']}?start=2026-06-16&end=2026-06-18"
    html = client.get(page).get_data(as_text=True)
    assert "local in America/New_York (the zone of Nina's home site)" in html
    assert "16 Jun 2026 20:30" in html and "18 Jun 2026 08:30" in html  # listed in New York time
    token = _CSRF_RE.search(html)
    assert token is not None
    r = client.post(f"/admin/people/{c.ids['Nina']}/events", data={
        "csrf_token": token.group(1), "date": "2026-06-16", "time": "23:10", "kind": "out", "note": "left late"},
        follow_redirects=True)
    assert r.status_code == 200 and "16 Jun 2026 23:10" in r.get_data(as_text=True)
    row = next(x for x in range_report(db, s, date(2026, 6, 16), date(2026, 6, 16), today=TODAY).rows
               if x.name == "Nina")
    assert row.last_out is not None and row.last_out.isoformat() == "2026-06-16T23:10:00-04:00"  # 03:10 UTC Wed
    assert (row.present_minutes, row.open, row.corrected) == (160, False, True)


def test_cli_corrections_are_typed_in_the_home_sites_zone(db: Database, db_settings: Settings,
                                                          tmp_path: Path) -> None:
    week(db)
    config = tmp_path / "central.yaml"
    data = settings().model_dump(mode="json", include={"role", "site", "sites"})
    data["database"] = {"url": db_settings.database.url} if db_settings.database.url else \
        {"path": str(db_settings.database.path), "backups_kept": 0}
    config.write_text(yaml.safe_dump(data))
    proc = run_cli("events", "add", "N1", "--kind", "out", "--at", "2026-06-17 18:00", "--note", "forgot",
                   config=config)
    assert proc.returncode == 0, proc.stderr
    assert "at 2026-06-17 18:00" in proc.stdout
    listed = run_cli("events", "list", "N1", "--date", "2026-06-15", config=config)
    assert listed.returncode == 0, listed.stderr
    assert "2026-06-15 08:20" in listed.stdout and "2026-06-15 21:00" in listed.stdout  # her Monday, NY time
    rows = {r.day: r for r in range_report(db, settings(), date(2026, 6, 17), date(2026, 6, 17), today=TODAY).rows
            if r.name == "Nora"}
    out = rows[date(2026, 6, 17)].last_out
    assert out is not None and out.isoformat() == "2026-06-17T18:00:00-04:00"  # 22:00 UTC
    assert "home site" in run_cli("events", "add", "--help").stdout


def test_the_central_example_configs_sites_block_is_valid_once_uncommented() -> None:
    example = Path(__file__).resolve().parents[1] / "deploy" / "kiosk-central.example.yaml"
    lines = example.read_text().splitlines()
    start = lines.index("# sites:")
    block = [lines[start][2:]]
    for line in lines[start + 1:]:
        if not line.startswith("#   "):
            break
        block.append(line[2:])
    data = yaml.safe_load(example.read_text()) | yaml.safe_load("\n".join(block))
    s = Settings.model_validate(data)
    assert s.rules_of("london").tz.key == "Europe/London" and s.rules_of("new-york").late_grace_minutes == 10
    assert s.rules_of("london").late_grace_minutes == 5  # left out: site:'s
