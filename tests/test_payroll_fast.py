"""The range payroll CSV made in SQL on PostgreSQL (kiosk/reports/payroll_fast.py, kiosk/store/payroll_sql.py)
against the Python path (RangeScan) byte for byte, on seeded random data with the hard cases: names
with quotes, commas and formulas, case and casefold twins, non-ASCII, corrections, leave, open days,
days before and after today, both DST changes, removed and erased people, doors on sites and off
them; also that the fast path is the one taken (PostgreSQL, first_last) and not elsewhere, and the
site rules (zones, workday start, work days, holidays of each site) on a central with sites."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kiosk.config import Settings
from kiosk.reports import as_csv, iter_range_csv, payroll_fast
from kiosk.store import (
    Database,
    add_correction,
    add_door,
    add_leave,
    add_person,
    bulk_add_events,
    deactivate,
    erase_person,
    offset_spans,
    open_database,
)

BERLIN = ZoneInfo("Europe/Berlin")
FIRST, LAST = date(2026, 3, 16), date(2026, 11, 8)  # both 2026 DST changes: 03-29 and 10-25
TODAY = date(2026, 10, 26)  # days before it are over (no check-out), later ones not
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # corrections are refused in the future
PEOPLE = [  # (employee id, name): formulas, quotes, commas, case and casefold twins, non-ASCII
    ("E001", "Anna Schmidt"), ("e002", "anna schmidt"), ("E003", "ANNA SCHMIDT"), ("=1+1", "=SUM(A1:A9)"),
    ("-3.5", "+49 30 1234"), ("E,6", 'O\'Brien, "Jim"'), ("E007", "Zoë Ångström"), ("E008", "Straße Weiß"),
    ("E009", "STRASSE WEISS"), ("@x", "@handle"), ("E011", "Émile Zola"), ("E012", "-nan"),
    ("E013", "Removed Person"), ("E014", "Erased Person"), ("E015", "Leave Only"), ("E016", "No Door Events"),
]
DOORS = [("Main Entrance", "berlin"), ('Side, "B"', "berlin"), ("=Door", "=cmd site"),
         ("Paris door", "paris"), ("No site door", None)]
HOLIDAYS = ["2026-04-03", "2026-10-26"]


def settings_of(url: str, *, role: str = "central", sites: dict[str, Any] | None = None,
                mode: str = "first_last") -> Settings:
    return Settings.model_validate({
        "role": role, "database": {"url": url}, "attendance": {"mode": mode},
        "site": {"timezone": "Europe/Berlin", "workday_start": "08:30", "late_grace_minutes": 5,
                 "holidays": HOLIDAYS},
        **({"sites": sites} if sites else {}),
    })


def _local(day: date, minutes: int, rng: random.Random, fold: int = 0) -> datetime:
    """An aware UTC instant at `minutes` after local midnight in Berlin (fold: the second 02:xx)."""
    wall = datetime.combine(day, time(0)) + timedelta(minutes=minutes, seconds=rng.randrange(60),
                                                       microseconds=rng.randrange(1_000_000))
    return wall.replace(tzinfo=BERLIN, fold=fold).astimezone(UTC)


def _day_events(rng: random.Random, day: date, doors: list[str]) -> list[tuple[datetime, str, str]]:
    """(UTC time, kind, device) of one person-day, in one of the shapes reports must read."""
    door = rng.choice(doors)
    shape = rng.choice(["normal"] * 6 + ["open", "out only", "out before in", "twice", "night", "dst",
                                         "other device"])
    if shape == "normal":
        return [(_local(day, rng.randrange(420, 600), rng), "in", door),
                (_local(day, rng.randrange(900, 1140), rng), "out", rng.choice(doors))]
    if shape == "open":
        return [(_local(day, rng.randrange(420, 700), rng), "in", door)]
    if shape == "out only":
        return [(_local(day, rng.randrange(900, 1140), rng), "out", door)]
    if shape == "out before in":
        return [(_local(day, rng.randrange(400, 500), rng), "out", door),
                (_local(day, rng.randrange(520, 700), rng), "in", door)]
    if shape == "twice":
        return [(_local(day, 480 + i * 120 + rng.randrange(100), rng), kind, rng.choice(doors))
                for i, kind in enumerate(["in", "out", "in", "out"])]
    if shape == "night":  # near local midnight, both ends of the day
        return [(_local(day, rng.randrange(0, 40), rng), "in", door),
                (_local(day, 1380 + rng.randrange(59), rng), "out", door)]
    if shape == "dst":  # 01:00-04:00 local: on 03-29 the hour 02:xx does not exist, on 10-25 it comes twice
        return [(_local(day, rng.randrange(60, 150), rng), "in", door),
                (_local(day, rng.randrange(120, 180), rng, fold=1), "out", door),
                (_local(day, rng.randrange(180, 240), rng), "out", door)]
    return [(_local(day, rng.randrange(420, 600), rng), "in", "kiosk-1"),  # a device no door has
            (_local(day, rng.randrange(900, 1140), rng), "out", door)]


def build_organisation(db: Database, seed: int = 20261129) -> dict[str, int]:
    """Doors, people and a season of events, corrections and leave; {employee id: person id}."""
    rng = random.Random(seed)
    devices = [add_door(db, name, site=site, actor="test").door.device_id for name, site in DOORS]
    ids = {eid: add_person(db, eid, name, now=datetime(2026, 1, 5, tzinfo=UTC)).id for eid, name in PEOPLE}
    dst_days = [date(2026, 3, 27) + timedelta(days=i) for i in range(5)] + \
               [date(2026, 10, 23) + timedelta(days=i) for i in range(5)]
    season = [FIRST + timedelta(days=i) for i in range((LAST - FIRST).days + 1)]
    rows: list[dict[str, Any]] = []
    for n, (eid, _) in enumerate(PEOPLE):
        if eid in ("E015", "E016"):
            continue
        home = [devices[n % 2], devices[2 + n % 3]]  # two doors each; some at the site-less one
        for day in sorted(set(rng.sample(season, 25) + dst_days)):
            for at, kind, device in _day_events(rng, day, home):
                rows.append({"person_id": ids[eid], "occurred_at": at, "kind": kind, "device_id": device})
    for day in dst_days + rng.sample(season, 10):  # unknown faces: counted nowhere in the CSV
        rows.append({"person_id": None, "occurred_at": _local(day, 600, rng), "kind": "unknown",
                     "device_id": devices[0]})
    for day, (m_in, f_in), (m_out, f_out) in [(date(2026, 10, 25), (160, 0), (130, 1)),  # out "before" in, wall clock
                                               (date(2026, 3, 29), (110, 0), (190, 0))]:  # 01:50 -> 03:10
        rows.append({"person_id": ids["E015"], "occurred_at": _local(day, m_in, rng, f_in), "kind": "in",
                     "device_id": devices[0]})
        rows.append({"person_id": ids["E015"], "occurred_at": _local(day, m_out, rng, f_out), "kind": "out",
                     "device_id": devices[1]})
    rows.sort(key=lambda r: r["occurred_at"])
    bulk_add_events(db, rows)
    for eid, day, minutes, kind in [("E001", date(2026, 10, 20), 470, "in"), ("E003", date(2026, 10, 27), 1000, "out"),
                                    ("E007", date(2026, 3, 30), 20, "in"), ("E008", date(2026, 11, 2), 600, "in"),
                                    ("E015", date(2026, 6, 2), 500, "in"), ("E015", date(2026, 6, 2), 990, "out"),
                                    ("E011", date(2026, 10, 25), 150, "out"), ("E016", date(2026, 10, 21), 480, "in")]:
        add_correction(db, ids[eid], _local(day, minutes, rng), kind, actor="admin", note="forgot", now=NOW)
    for eid, first, last, kind in [("E001", date(2026, 3, 30), date(2026, 4, 10), "holiday"),
                                   ("E015", date(2026, 5, 25), date(2026, 6, 5), "sick"),
                                   ("E013", date(2026, 10, 19), date(2026, 10, 30), "other"),
                                   ("=1+1", date(2026, 10, 24), date(2026, 10, 27), "holiday"),
                                   ("E016", date(2026, 3, 14), date(2026, 3, 20), "sick")]:
        add_leave(db, ids[eid], first, last, kind, actor="admin", now=NOW)
    deactivate(db, ids["E013"], actor="admin", now=NOW)
    erase_person(db, ids["E014"], actor="admin", keep_events=True, now=NOW)
    return ids


@pytest.fixture(scope="module")
def org(pg_server) -> Iterator[tuple[str, Database, dict[str, int]]]:
    """A central's database on the test cluster with build_organisation's data (built once)."""
    url = pg_server.create_database("kiosk_payroll_fast")
    db = open_database(url)
    ids = build_organisation(db)
    yield url, db, ids
    db.close()


def python_csv(monkeypatch: pytest.MonkeyPatch, *args: Any, **kwargs: Any) -> str:
    """iter_range_csv's text by the Python path (RangeScan), the fast path switched off."""
    with monkeypatch.context() as m:
        m.setattr(payroll_fast, "fast_path_applies", lambda db, settings: False)
        return "".join(iter_range_csv(*args, **kwargs))


def fast_csv(*args: Any, **kwargs: Any) -> str:
    """iter_range_csv's text by the fast path (asserted taken)."""
    chunks = payroll_fast.fast_range_csv(*args, **kwargs)
    assert chunks is not None
    return "".join(chunks)


MULTI_ZONE = {"paris": {"timezone": "Europe/Paris"}, "=cmd site": {"timezone": "Europe/Amsterdam"}}
"""Sites of their own zones whose offsets are Berlin's all 2026: the multi-zone SQL runs, main's
Python path (site: for all) agrees."""


@pytest.mark.parametrize("sites_config", [None, MULTI_ZONE], ids=["site-only", "zones"])
@pytest.mark.parametrize("request_kw", [
    {}, {"sites": ["berlin"]}, {"sites": ["berlin", "paris"]}, {"sites": ["=cmd site"]},
    {"person": "E,6"}, {"person": "=1+1"}, {"person": "E001", "sites": ["paris"]}, {"person": "E013"},
], ids=["all", "berlin", "berlin+paris", "formula-site", "person", "formula-person", "person+site",
        "removed-person"])
def test_fast_csv_equals_the_python_path(org, monkeypatch, sites_config, request_kw) -> None:
    url, db, ids = org
    settings = settings_of(url, sites=sites_config)
    kw: dict[str, Any] = {"sites": request_kw.get("sites")}
    if "person" in request_kw:
        kw["person_id"] = ids[request_kw["person"]]
    expected = python_csv(monkeypatch, db, settings, FIRST, LAST, TODAY, **kw)
    got = fast_csv(db, settings, FIRST, LAST, TODAY, **kw)
    assert expected.count("\n") > 1 or "person" in request_kw
    assert got == expected


def test_the_data_has_the_hard_cases(org, monkeypatch) -> None:
    """The differential data holds what it claims (else equality proves little)."""
    url, db, _ = org
    text = python_csv(monkeypatch, db, settings_of(url), FIRST, LAST, TODAY)
    for needle in ["'=SUM(A1:A9)", "'+49 30 1234", '"O\'Brien, ""Jim"""', "'=1+1", ",-3.5,", "'@handle",
                   ",-nan,", "Zoë Ångström", ",open,yes,,yes", ",open,no,,yes", ",open,yes,,no", ",leave,no,holiday,no,", ",leave,no,other,no,",
                   "+02:00", "+01:00", "'=cmd site", "'=Door", '"Side, ""B"""', ",present,yes,,no,",
                   "Erased Person", "Removed Person", ",-0."]:
        assert needle in text, needle
    assert "2026-10-26,=1+1" not in text and "No Door Events" in text  # a holiday: no leave row that day


def test_other_ranges_and_today(org, monkeypatch) -> None:
    """A range without rows (header only), one DST week, and today not given (both take now)."""
    url, db, ids = org
    settings = settings_of(url)
    for first, last, today in [(date(2026, 12, 1), date(2026, 12, 3), TODAY),
                               (date(2026, 10, 22), date(2026, 10, 28), None),
                               (date(2026, 3, 28), date(2026, 3, 30), date(2026, 3, 29))]:
        expected = python_csv(monkeypatch, db, settings, first, last, today)
        assert fast_csv(db, settings, first, last, today) == expected


def test_standalone_on_postgresql_has_no_site_columns(org, monkeypatch) -> None:
    url, db, _ = org
    settings = settings_of(url, role="standalone")
    expected = python_csv(monkeypatch, db, settings, FIRST, LAST, TODAY)
    got = fast_csv(db, settings, FIRST, LAST, TODAY)
    assert got == expected and got.startswith("date,employee_id,name,first_in,last_out,hours,late,"
                                              "minutes_late,status,corrected,leave,no_checkout\n")


def test_the_fast_path_is_taken_on_postgresql(org, monkeypatch) -> None:
    """iter_range_csv on PostgreSQL in first_last mode never reaches RangeScan; one chunk a day."""
    url, db, _ = org
    settings = settings_of(url)
    expected = python_csv(monkeypatch, db, settings, FIRST, LAST, TODAY)

    class Refused:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise AssertionError("the Python path ran")

    monkeypatch.setattr(as_csv, "RangeScan", Refused)
    chunks = list(iter_range_csv(db, settings, FIRST, LAST, TODAY))
    assert "".join(chunks) == expected
    days = {line[:10] for line in expected.splitlines()[1:]}
    assert len(chunks) == 1 + len(days) and all(c.endswith("\n") for c in chunks)


def test_toggle_mode_keeps_the_python_path(org, monkeypatch) -> None:
    url, db, _ = org
    settings = settings_of(url, mode="toggle")
    assert payroll_fast.fast_range_csv(db, settings, FIRST, LAST, TODAY) is None
    monkeypatch.setattr(payroll_fast, "payroll_days", None)  # would fail if called
    assert "".join(iter_range_csv(db, settings, FIRST, LAST, TODAY)).count("\n") > 100


def test_sqlite_keeps_the_python_path(tmp_path, monkeypatch) -> None:
    settings = Settings.model_validate({"database": {"path": str(tmp_path / "kiosk.db")}})
    db = open_database(settings.database.location)
    try:
        pid = add_person(db, "E1", "Solo", now=datetime(2026, 1, 5, tzinfo=UTC)).id
        bulk_add_events(db, [{"person_id": pid, "occurred_at": datetime(2026, 6, 15, 7, 0, tzinfo=UTC),
                              "kind": "in", "device_id": "kiosk-1"}])
        assert payroll_fast.fast_range_csv(db, settings, date(2026, 6, 15), date(2026, 6, 15), TODAY) is None
        monkeypatch.setattr(payroll_fast, "payroll_days", None)
        text = "".join(iter_range_csv(db, settings, date(2026, 6, 15), date(2026, 6, 15), TODAY))
        assert text.splitlines()[1].startswith("2026-06-15,E1,Solo,2026-06-15T07:00:00+00:00,,0.00,no,0,open")
    finally:
        db.close()


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/St_Johns", "Australia/Lord_Howe", "Asia/Kathmandu",
                                  "Pacific/Apia", "UTC"])
def test_offset_spans_match_zoneinfo(zone) -> None:
    """The UTC-offset spans the SQL reads give each instant the offset and text zoneinfo gives it."""
    tz = ZoneInfo(zone)
    start, end = datetime(2011, 1, 1, tzinfo=UTC), datetime(2013, 1, 1, tzinfo=UTC)
    spans = offset_spans(tz, start, end)
    rng = random.Random(zone)
    instants = [start + timedelta(seconds=rng.randrange(int((end - start).total_seconds()))) for _ in range(3000)]
    instants += [s.until + d for s in spans if s.until for d in (timedelta(0), timedelta(seconds=-1))]
    for at in instants:
        span = next(s for s in spans if s.until is None or at < s.until)
        local = at.astimezone(tz)
        assert span.offset_s == local.utcoffset().total_seconds(), at
        assert span.text == local.isoformat(timespec="seconds")[19:], at


def test_site_rules_on_a_central_with_sites(pg_server) -> None:
    """The fast path follows the site rules (docs/central.md): each event on its own zone's date, a
    day's times and lateness in its site's zone against its workday start and grace, corrections in
    the home site's zone, leave rows on the home site's work days (its holidays and week)."""
    url = pg_server.create_database("kiosk_payroll_sites")
    db = open_database(url)
    try:
        settings = Settings.model_validate({
            "role": "central", "database": {"url": url},
            "site": {"timezone": "Europe/Berlin", "workday_start": "09:00", "late_grace_minutes": 5},
            "sites": {"london": {"timezone": "Europe/London", "workday_start": "08:00", "late_grace_minutes": 0,
                                 "holidays": ["2026-06-16"]},
                      "tokyo": {"timezone": "Asia/Tokyo", "work_days": ["mon", "tue", "wed", "thu", "fri", "sat"]}},
        })
        doors = {site: add_door(db, f"{site.title()} door", site=site, actor="test").door.device_id
                 for site in ("london", "berlin", "tokyo")}
        created = datetime(2026, 1, 5, tzinfo=UTC)
        ids = {eid: add_person(db, eid, name, now=created).id for eid, name in
               [("L", "Lena London"), ("B", "Ben Berlin"), ("T", "Taro Tokyo")]}

        def at(text: str) -> datetime:
            return datetime.fromisoformat(text).replace(tzinfo=UTC)

        bulk_add_events(db, [
            {"person_id": ids["L"], "occurred_at": at("2026-06-15T07:10"), "kind": "in", "device_id": doors["london"]},
            {"person_id": ids["L"], "occurred_at": at("2026-06-15T16:00"), "kind": "out", "device_id": doors["london"]},
            # 23:30 in London is 00:30 the next day in Berlin: still London's 06-15
            {"person_id": ids["L"], "occurred_at": at("2026-06-15T22:30"), "kind": "out", "device_id": doors["london"]},
            {"person_id": ids["B"], "occurred_at": at("2026-06-15T07:10"), "kind": "in", "device_id": doors["berlin"]},
            {"person_id": ids["B"], "occurred_at": at("2026-06-15T16:00"), "kind": "out", "device_id": doors["berlin"]},
            # 00:30 on 06-17 in Tokyo (17:30 on 06-16 in Berlin)
            {"person_id": ids["T"], "occurred_at": at("2026-06-16T15:30"), "kind": "in", "device_id": doors["tokyo"]},
        ])
        add_correction(db, ids["L"], at("2026-06-18T07:30"), "in", actor="admin", note="forgot", now=NOW)
        for eid, first, last in [("L", "2026-06-16", "2026-06-17"), ("L", "2026-06-20", "2026-06-20"),
                                 ("T", "2026-06-27", "2026-06-27"), ("B", "2026-06-27", "2026-06-27")]:
            add_leave(db, ids[eid], date.fromisoformat(first), date.fromisoformat(last), "holiday", actor="admin",
                      now=NOW)
        text = fast_csv(db, settings, date(2026, 6, 15), date(2026, 6, 27), date(2026, 6, 20))
        assert text.splitlines()[1:] == [
            "2026-06-15,B,Ben Berlin,2026-06-15T09:10:00+02:00,2026-06-15T18:00:00+02:00,8.83,yes,10,present,no,,no,"
            "berlin,Berlin door,Berlin door",
            "2026-06-15,L,Lena London,2026-06-15T08:10:00+01:00,2026-06-15T23:30:00+01:00,15.33,yes,10,present,no,,no,"
            "london,London door,London door",
            # 06-16: a London holiday, so no leave row
            "2026-06-17,L,Lena London,,,0.00,no,0,leave,no,holiday,no,london,,",
            "2026-06-17,T,Taro Tokyo,2026-06-17T00:30:00+09:00,,0.00,no,0,open,no,,yes,tokyo,Tokyo door,",
            "2026-06-18,L,Lena London,2026-06-18T08:30:00+01:00,,0.00,yes,30,open,yes,,yes,,,",
            # 06-20 (Saturday): no London work day; 06-27 (Saturday): Tokyo's, not Berlin's
            "2026-06-27,T,Taro Tokyo,,,0.00,no,0,leave,no,holiday,no,tokyo,,",
        ]
        london = fast_csv(db, settings, date(2026, 6, 15), date(2026, 6, 27), date(2026, 6, 20), sites=["london"])
        assert [line[:13] for line in london.splitlines()[1:]] == ["2026-06-15,L,", "2026-06-17,L,"]
    finally:
        db.close()


def test_a_report_left_early_leaves_the_database_usable(org) -> None:
    """A download stopped after a few days (the web client gone) ends the COPY and the snapshot; the
    next report on the same pool is whole."""
    url, db, _ = org
    settings = settings_of(url)
    chunks = payroll_fast.fast_range_csv(db, settings, FIRST, LAST, TODAY)
    assert chunks is not None
    first = [next(chunks), next(chunks), next(chunks)]
    chunks.close()  # type: ignore[attr-defined]
    whole = fast_csv(db, settings, FIRST, LAST, TODAY)
    assert whole.startswith("".join(first)) and len(whole) > len("".join(first))


def test_hours_in_sql_are_pythons(org) -> None:
    """The hours cell from whole minutes, from the list and computed beyond it, is f"{round(m / 60, 2):.2f}"."""
    import psycopg

    from kiosk.store.payroll_sql import _hours_lookup, _Statement

    url, _, _ = org
    st = _Statement()
    sql = f"COPY (SELECT m, {_hours_lookup(st, 'm')} FROM generate_series(-400, 4000) AS g(m)) TO STDOUT (FORMAT binary)"
    with psycopg.connect("postgresql://" + url.split("://", 1)[1]) as conn, conn.cursor().copy(sql, st.params) as copy:
        copy.set_types(["int4", "text"])
        got = dict(copy.rows())
    assert len(got) == 4401
    assert got == {m: f"{round(m / 60.0, 2):.2f}" for m in range(-400, 4001)}
