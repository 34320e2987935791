"""Red team of issue 13's central reporting (site rules, the PostgreSQL payroll fast path): hostile
site and door names, odd zones (30- and 45-minute offsets, Pacific/Apia's skipped day, Lord Howe's
30-minute DST), events exactly at local midnight, sites no door has and doors of unlisted sites;
the fast path against the Python path byte for byte, and what a user gets when things fail."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from app_helpers import kiosk_app

from kiosk.clock import ManualClock
from kiosk.config import Settings
from kiosk.errors import KioskError, StoreError
from kiosk.reports import iter_range_csv, payroll_fast
from kiosk.store import Database, add_door, add_leave, add_person, bulk_add_events, open_database

NOW = datetime(2012, 2, 1, tzinfo=UTC)
ZONES = {"kolkata": "Asia/Kolkata", "kathmandu": "Asia/Kathmandu", "apia": "Pacific/Apia",
         "lord_howe": "Australia/Lord_Howe"}
HOSTILE = ["'; DROP TABLE people; --", "back\\slash", "100% \"quoted\"", '=HYPERLINK("http://x","y")',
           "Zürich Ünïcødé ✓", "s" * 100, "%(p0)s", "a,b\nc"]


def settings_of(url: str) -> Settings:
    sites: dict[str, Any] = {name: {"timezone": zone} for name, zone in ZONES.items()}
    sites["kolkata"]["holidays"] = ["2011-12-30"]
    sites["apia"]["work_days"] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    sites["no door has this"] = {"timezone": "Asia/Kathmandu"}
    sites["'; DROP TABLE people; --"] = {"timezone": "Asia/Kolkata", "workday_start": "07:45"}
    return Settings.model_validate({
        "role": "central", "database": {"url": url}, "attendance": {"mode": "first_last"},
        "site": {"timezone": "Europe/Berlin", "workday_start": "08:30", "late_grace_minutes": 5},
        "sites": sites,
    })


def build(db: Database, seed: int = 13) -> dict[str, int]:
    """Doors in the odd zones and hostile names, people, events at local midnight and around it."""
    rng = random.Random(seed)
    doors: list[tuple[str, str | None]] = [(f"{site} door", site) for site in ZONES]
    doors += [(f"door {n}: {name}"[:50], name) for n, name in enumerate(HOSTILE) if "\n" not in name]
    doors += [("unlisted site door", "mars"), ("siteless door", None)]
    devices = {add_door(db, name, site=site, actor="test").door.device_id: site for name, site in doors}
    names = ["Ann", *HOSTILE, *(f"Person {n}" for n in range(len(devices)))]
    people = [(f"E{n:02d}", name) for n, name in enumerate(names[:len(devices)])]
    ids = {eid: add_person(db, eid, name, now=datetime(2011, 11, 1, tzinfo=UTC)).id for eid, name in people}
    rows: list[dict[str, Any]] = []
    days = [date(2011, 12, 24) + timedelta(days=i) for i in range(14)]
    for n, pid in enumerate(ids.values()):
        mine = [list(devices)[n], rng.choice(list(devices))]
        for day in days:
            device = mine[0] if rng.random() < 0.8 else mine[1]
            zone = ZoneInfo(ZONES.get(devices[device] or "", "Europe/Berlin"))
            midnight = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
            for at, kind in [(midnight, "in"), (midnight + timedelta(hours=24), "out"),
                             (midnight + timedelta(minutes=rng.randrange(400, 700)), "in"),
                             (midnight + timedelta(minutes=rng.randrange(900, 1439)), "out")]:
                if rng.random() < 0.8:
                    rows.append({"person_id": pid, "occurred_at": at, "kind": kind,
                                 "device_id": rng.choice([device, device, rng.choice(mine)])})
    rows.sort(key=lambda r: r["occurred_at"])
    bulk_add_events(db, rows)
    for n, pid in enumerate(ids.values()):
        add_leave(db, pid, date(2011, 12, 27 + n % 3), date(2011, 12, 29 + n % 3), "holiday", actor="admin", now=NOW)
    return ids


@pytest.fixture(scope="module")
def odd(pg_server) -> Iterator[tuple[Settings, Database]]:
    url = pg_server.create_database("kiosk_redteam_reports")
    db = open_database(url)
    build(db)
    yield settings_of(url), db
    db.close()


def both(monkeypatch: pytest.MonkeyPatch, *args: Any, **kwargs: Any) -> tuple[str, str]:
    """(the Python path's CSV, the fast path's CSV) of iter_range_csv(*args, **kwargs)."""
    fast = "".join(iter_range_csv(*args, **kwargs))
    with monkeypatch.context() as m:
        m.setattr(payroll_fast, "fast_path_applies", lambda db, settings: False)
        slow = "".join(iter_range_csv(*args, **kwargs))
    return slow, fast


@pytest.mark.parametrize("sites", [None, ["apia"], ["kathmandu", "kolkata"], ["lord_howe"],
                                   ["'; DROP TABLE people; --"], ["mars"], ["100% \"quoted\""], ["back\\slash"],
                                   ['=HYPERLINK("http://x","y")'], ["s" * 100]])
@pytest.mark.parametrize("today", [date(2011, 12, 30), datetime(2011, 12, 30, 10, 30, tzinfo=UTC)])
def test_odd_zones_and_hostile_names_fast_equals_python(odd, monkeypatch, sites, today) -> None:
    settings, db = odd
    slow, fast = both(monkeypatch, db, settings, date(2011, 12, 25), date(2012, 1, 5), today, sites=sites)
    if sites is None:
        assert {row[12] for row in csv.reader(io.StringIO(slow))} >= {*ZONES, "mars", ""}
    assert fast == slow


@pytest.fixture(scope="module")
def big(pg_server) -> Iterator[tuple[Settings, Database]]:
    """A central with 300 people over 120 days (megabytes of CSV: more than the socket buffers)."""
    url = pg_server.create_database("kiosk_redteam_big")
    db = open_database(url)
    device = add_door(db, "Main", site="kolkata", actor="test").door.device_id
    ids = [add_person(db, f"P{n:03d}", f"Person {n}", now=datetime(2011, 1, 1, tzinfo=UTC)).id for n in range(300)]
    start = datetime(2011, 6, 1, 3, 0, tzinfo=UTC)
    bulk_add_events(db, [{"person_id": pid, "occurred_at": start + timedelta(days=d, minutes=m), "kind": kind,
                          "device_id": device}
                         for d in range(120) for pid in ids for m, kind in ((pid % 60, "in"), (500, "out"))])
    yield settings_of(url), db
    db.close()


def _kill_other_backends(db: Database) -> None:
    """Terminate every other session on db's database (the report's among them): a lost connection."""
    with db.engine.connect() as conn:
        conn.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        conn.commit()


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "python"])
def test_a_connection_lost_mid_csv_is_one_clear_error(big, monkeypatch, fast) -> None:
    """PostgreSQL gone after the first days of a streamed CSV: a StoreError (the CLI's one line and
    exit 1, not a traceback) that says the CSV is incomplete; the next report is whole again."""
    settings, db = big
    if not fast:
        monkeypatch.setattr(payroll_fast, "fast_path_applies", lambda db, settings: False)
    chunks = iter_range_csv(db, settings, date(2011, 6, 1), date(2011, 9, 28), date(2011, 10, 1))
    got = [next(chunks), next(chunks)]
    _kill_other_backends(db)
    with pytest.raises(StoreError, match="incomplete") as caught:
        got += list(chunks)
    assert "2011-06-01..2011-09-28" in str(caught.value)
    again = "".join(iter_range_csv(db, settings, date(2011, 6, 1), date(2011, 9, 28), date(2011, 10, 1)))
    assert len(again.splitlines()) == 1 + 300 * 120


def test_the_cli_says_the_csv_is_incomplete_when_postgresql_goes(big, tmp_path) -> None:
    """`kiosk report range --format csv > file` with PostgreSQL gone mid-stream (a real process): exit
    1 and one `error:` line saying the CSV is incomplete, no traceback."""
    settings, db = big
    config = tmp_path / "kiosk.yaml"
    config.write_text(json.dumps({"role": "central", "database": {"url": settings.database.url},
                                  "sites": {"kolkata": {"timezone": "Asia/Kolkata"}}}))
    proc = subprocess.Popen([sys.executable, "-m", "kiosk.cli", "--config", str(config), "report", "range",
                             "--from", "2011-06-01", "--to", "2011-09-28", "--format", "csv"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "NO_COLOR": "1"})
    assert proc.stdout is not None and proc.stderr is not None
    head = proc.stdout.read(20_000)  # the report is running, blocked on the full pipe
    _kill_other_backends(db)
    rest = proc.stdout.read()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1, err
    assert len((head + rest).splitlines()) < 1 + 300 * 120
    assert "Traceback" not in err and [line[:6] for line in err.splitlines()] == ["error:"] and "incomplete" in err, err


def test_a_web_csv_cut_by_the_database_ends_in_a_marked_line(big, monkeypatch) -> None:
    """/range.csv with PostgreSQL gone mid-stream: the body's last line says INCOMPLETE (behind a
    proxy that speaks HTTP/1.0 to waitress, e.g. nginx's default, the cut is otherwise a clean end
    of file), and the error still ends the response (an HTTP/1.1 client sees a broken transfer)."""
    settings, db = big
    from kiosk.web import create_user

    create_user(db, "hr", "hr-password-12345", "admin")
    client = kiosk_app(settings, db, ManualClock(datetime(2011, 10, 1, tzinfo=UTC))).test_client()
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    assert client.post("/login", data={"username": "hr", "password": "hr-password-12345",
                                       "csrf_token": token}).status_code == 302
    response = client.get("/range.csv?start=2011-06-01&end=2011-09-28", buffered=False)
    body = response.iter_encoded()
    got = [next(body), next(body)]
    _kill_other_backends(db)
    with pytest.raises(KioskError, match="incomplete"):
        for chunk in body:
            got.append(chunk)
    last = b"".join(got).decode().splitlines()[-1]
    assert last.startswith("INCOMPLETE") and "2011-06-01..2011-09-28" in last, last
