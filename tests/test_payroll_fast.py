"""The range payroll CSV made in SQL on PostgreSQL (kiosk/reports/payroll_fast.py, kiosk/store/payroll_sql.py)
against the Python path (RangeScan) byte for byte, on seeded random data with the hard cases: names
with quotes, commas and formulas, case and casefold twins, non-ASCII, corrections, leave, open days,
days before and after today, both DST changes, removed and erased people, doors on sites and off
them; a second world on a central whose sites are Berlin and New York (sites: with their own zones,
work days, holidays and workday starts; evenings on the next UTC date, travellers, a move, a door
without a site, corrections in the home zone, leave, the four DST days, site filters, one person,
today as a date and as an instant); also that the fast path is the one taken (PostgreSQL, first_last)
and not elsewhere, and hand-worked site-rule rows."""

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
"""Sites of their own zones whose offsets are Berlin's all 2026: the multi-zone SQL runs on the first
world's data (TWO_ZONES below: zones far apart)."""


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
                   "Erased Person", "Removed Person"]:
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


# --- Two zones far apart: Berlin and New York (6 hours; DST changes on different dates) ----------

NEW_YORK = ZoneInfo("America/New_York")
ZONE_OF = {"berlin": BERLIN, "nyc": NEW_YORK, "paris": ZoneInfo("Europe/Paris")}
TWO_ZONES = {
    "berlin": {"timezone": "Europe/Berlin", "workday_start": "09:00", "late_grace_minutes": 5,
               "work_days": ["mon", "tue", "wed", "thu", "fri"], "holidays": ["2026-04-03", "2026-06-17", "2026-10-26"]},
    "nyc": {"timezone": "America/New_York", "workday_start": "08:00", "late_grace_minutes": 10,
            "work_days": ["tue", "wed", "thu", "fri", "sat"], "holidays": ["2026-06-19", "2026-07-04", "2026-11-03"]},
}
"""site: is UTC (08:30, grace 5, mon-fri, HOLIDAYS): the rules of people with no home site and of the
unconfigured site paris."""
ZONE_DOORS = [("Berlin main", "berlin"), ("Berlin side", "berlin"), ("NY lobby", "nyc"), ("NY garage", "nyc"),
              ("Paris door", "paris"), ("No site door", None)]
ZONE_FIRST, ZONE_LAST = date(2026, 3, 1), date(2026, 11, 8)  # US DST 03-08, 11-01; EU 03-29, 10-25
ZONE_PEOPLE = [  # (employee id, name, where they work: door sites by weight)
    ("B1", "Bea Berlin", ["berlin"]), ("B2", "=Ben Berlin", ["berlin"] * 5 + [None]),
    ("N1", "Nora New York", ["nyc"]), ("N2", "nina new york", ["nyc"] * 4 + ["kiosk"]),
    ("T1", "Tom Traveller", ["berlin", "nyc", "both"]), ("T2", "Tara Traveller", ["berlin", "nyc", "both", "both"]),
    ("M1", "Mia Siteless Door", [None] * 4 + ["nyc"]), ("S1", "Sam No Home", [None, "kiosk"]),
    ("P1", "Paul Paris", ["paris"] * 3 + ["berlin"]), ("R1", "Removed Person", ["nyc", "berlin"]),
    ("X1", "Erased Person", ["berlin"]), ("L1", "Lea Leave Only", []),
]


def _at(zone: Any, day: date, minutes: int, rng: random.Random, fold: int = 0) -> datetime:
    """An aware UTC instant `minutes` after local midnight of day in zone (fold: the second of a repeated hour)."""
    wall = datetime.combine(day, time(0)) + timedelta(minutes=minutes, seconds=rng.randrange(60),
                                                       microseconds=rng.randrange(1_000_000))
    return wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)


def _zone_day(rng: random.Random, day: date, where: str | None, doors: dict[str | None, list[str]],
              home_zone: Any) -> list[tuple[datetime, str, str]]:
    """(UTC time, kind, device) of one person-day at `where` (a site, None: the site-less door, "kiosk":
    a device no door has, "both": in at Berlin, out in New York)."""
    if where == "both":
        return [(_at(BERLIN, day, rng.randrange(420, 600), rng), "in", rng.choice(doors["berlin"])),
                (_at(NEW_YORK, day, rng.randrange(600, 1260), rng), "out", rng.choice(doors["nyc"]))]
    if where == "kiosk":
        return [(_at(home_zone, day, rng.randrange(420, 600), rng), "in", "kiosk-1"),
                (_at(home_zone, day, rng.randrange(900, 1140), rng), "out", rng.choice(doors[None]))]
    zone, door = home_zone if where is None else ZONE_OF[where], rng.choice(doors[where])
    shape = rng.choice(["normal"] * 5 + ["open", "out only", "out before in", "twice", "evening", "night", "dst"])
    if shape == "normal":
        return [(_at(zone, day, rng.randrange(420, 600), rng), "in", door),
                (_at(zone, day, rng.randrange(900, 1140), rng), "out", rng.choice(doors[where]))]
    if shape == "open":
        return [(_at(zone, day, rng.randrange(420, 700), rng), "in", door)]
    if shape == "out only":
        return [(_at(zone, day, rng.randrange(900, 1140), rng), "out", door)]
    if shape == "out before in":
        return [(_at(zone, day, rng.randrange(400, 500), rng), "out", door),
                (_at(zone, day, rng.randrange(520, 700), rng), "in", door)]
    if shape == "twice":
        return [(_at(zone, day, 480 + i * 120 + rng.randrange(100), rng), kind, rng.choice(doors[where]))
                for i, kind in enumerate(["in", "out", "in", "out"])]
    if shape == "evening":  # 20:00-23:00 local: in New York the next UTC date
        return [(_at(zone, day, rng.randrange(1200, 1380), rng), "in", door)]
    if shape == "night":  # near local midnight, both ends of the day
        return [(_at(zone, day, rng.randrange(0, 40), rng), "in", door),
                (_at(zone, day, 1380 + rng.randrange(59), rng), "out", door)]
    return [(_at(zone, day, rng.randrange(60, 150), rng), "in", door),  # around 02:00 local: DST days
            (_at(zone, day, rng.randrange(120, 180), rng, fold=1), "out", door),
            (_at(zone, day, rng.randrange(180, 240), rng), "out", door)]


def build_two_zones(db: Database, seed: int = 20260615) -> dict[str, int]:
    """Doors at Berlin, New York, an unconfigured site and none; people working at one site, travelling,
    moving, at the site-less door, with no home site; corrections in the home zone (evenings too), leave
    across both sites' holidays and week-ends; a season over the four DST changes. {employee id: person id}."""
    rng = random.Random(seed)
    devices = {name: add_door(db, name, site=site, actor="test").door.device_id for name, site in ZONE_DOORS}
    doors: dict[str | None, list[str]] = {}
    for name, site in ZONE_DOORS:
        doors.setdefault(site, []).append(devices[name])
    ids = {eid: add_person(db, eid, name, now=datetime(2026, 1, 5, tzinfo=UTC)).id for eid, name, _ in ZONE_PEOPLE}
    home_zone = {"B1": BERLIN, "B2": BERLIN, "N1": NEW_YORK, "N2": NEW_YORK, "T1": BERLIN, "T2": NEW_YORK,
                 "M1": NEW_YORK, "S1": UTC, "P1": BERLIN, "R1": NEW_YORK, "X1": BERLIN}
    dst_days = [date(2026, m, d) + timedelta(days=i) for m, d in [(3, 6), (3, 27), (10, 23), (10, 30)] for i in range(5)]
    season = [ZONE_FIRST + timedelta(days=i) for i in range((ZONE_LAST - ZONE_FIRST).days + 1)]
    rows: list[dict[str, Any]] = []
    for eid, _, places in ZONE_PEOPLE:
        if not places:
            continue
        for day in sorted(set(rng.sample(season, 30) + dst_days + [ZONE_LAST])):
            where = places[0] if eid == "T2" and day < date(2026, 7, 1) else rng.choice(places)  # Tara moves
            if eid == "T1" and day == ZONE_LAST:
                where = "berlin"  # Tom's home site: Berlin
            for at, kind, device in _zone_day(rng, day, where, doors, home_zone[eid]):
                rows.append({"person_id": ids[eid], "occurred_at": at, "kind": kind, "device_id": device})
    for day in rng.sample(season, 20):  # unknown faces: counted nowhere in the CSV
        rows.append({"person_id": None, "occurred_at": _at(NEW_YORK, day, 1290, rng), "kind": "unknown",
                     "device_id": doors["nyc"][0]})
    pinned = [  # (employee id, zone, day, minutes, kind, door)
        # a day whose first door has no site: the home site's rules (nyc: 08:00 + 10), in New York time
        ("M1", NEW_YORK, date(2026, 6, 16), 500, "in", "No site door"), ("M1", NEW_YORK, date(2026, 6, 16), 1020, "out", "NY lobby"),
        # Tom (home berlin) at a New York door on a day of his leave
        ("T1", NEW_YORK, date(2026, 6, 23), 470, "in", "NY lobby"), ("T1", NEW_YORK, date(2026, 6, 23), 990, "out", "NY lobby"),
        # Hana: Berlin, then a New York evening on the last date (the next UTC date): home nyc at its end
        ("H1", BERLIN, date(2026, 11, 6), 540, "in", "Berlin main"), ("H1", BERLIN, date(2026, 11, 6), 1000, "out", "Berlin main"),
        ("H1", NEW_YORK, ZONE_LAST, 1230, "in", "NY lobby"),
        # open in New York on the evening before ZONE_TODAY's instant: not over there yet
        ("H1", NEW_YORK, date(2026, 10, 26), 1260, "in", "NY lobby"),
    ]
    ids["H1"] = add_person(db, "H1", "Hana Hopper", now=datetime(2026, 1, 5, tzinfo=UTC)).id
    for eid, zone, day, minutes, kind, door in pinned:
        rows.append({"person_id": ids[eid], "occurred_at": _at(zone, day, minutes, rng), "kind": kind,
                     "device_id": devices[door]})
    rows.sort(key=lambda r: r["occurred_at"])
    bulk_add_events(db, rows)
    corrections = [(eid, rng.choice(season), rng.choice([470, 530, 1000, 1290]), rng.choice(["in", "out"]))
                   for eid in home_zone for _ in range(3)]
    corrections += [("H1", ZONE_LAST - timedelta(days=1), 1350, "out"),  # 22:30 NY: 04:30 the next day in Berlin
                    ("N1", date(2026, 6, 18), 510, "in"), ("S1", date(2026, 3, 8), 150, "in"), ("M1", date(2026, 11, 1), 90, "out")]
    for eid, day, minutes, kind in corrections:
        zone = BERLIN if eid == "H1" and day < date(2026, 11, 7) else home_zone.get(eid, NEW_YORK)
        add_correction(db, ids[eid], _at(zone, day, minutes, rng), kind, actor="admin", note="forgot", now=NOW)
    for eid, first, last, kind in [("T1", date(2026, 6, 22), date(2026, 6, 26), "holiday"),
                                   ("N1", date(2026, 6, 15), date(2026, 7, 5), "holiday"),
                                   ("B1", date(2026, 3, 30), date(2026, 4, 10), "sick"),
                                   ("M1", date(2026, 10, 30), date(2026, 11, 4), "other"),
                                   ("S1", date(2026, 10, 23), date(2026, 10, 27), "holiday"),
                                   ("L1", date(2026, 3, 5), date(2026, 3, 12), "sick"),
                                   ("R1", date(2026, 10, 19), date(2026, 10, 30), "other"),
                                   ("H1", date(2026, 11, 2), date(2026, 11, 5), "holiday")]:
        add_leave(db, ids[eid], first, last, kind, actor="admin", now=NOW)
    deactivate(db, ids["R1"], actor="admin", now=NOW)
    erase_person(db, ids["X1"], actor="admin", keep_events=True, now=NOW)
    return ids


def two_zone_settings(url: str) -> Settings:
    return Settings.model_validate({
        "role": "central", "database": {"url": url}, "attendance": {"mode": "first_last"},
        "site": {"timezone": "UTC", "workday_start": "08:30", "late_grace_minutes": 5, "holidays": HOLIDAYS},
        "sites": TWO_ZONES,
    })


@pytest.fixture(scope="module")
def two_zones(pg_server) -> Iterator[tuple[str, Database, dict[str, int]]]:
    """A central's database with build_two_zones' data (built once)."""
    url = pg_server.create_database("kiosk_payroll_two_zones")
    db = open_database(url)
    ids = build_two_zones(db)
    yield url, db, ids
    db.close()


ZONE_TODAY = datetime(2026, 10, 27, 2, 30, tzinfo=UTC)  # 03:30 on 10-27 in Berlin, 22:30 on 10-26 in New York


@pytest.mark.parametrize("today", [TODAY, ZONE_TODAY], ids=["date", "instant"])
@pytest.mark.parametrize("request_kw", [
    {}, {"sites": ["berlin"]}, {"sites": ["nyc"]}, {"sites": ["berlin", "nyc"]}, {"sites": ["paris"]},
    {"person": "T1"}, {"person": "T1", "sites": ["berlin"]}, {"person": "M1"}, {"person": "H1"}, {"person": "S1"},
    {"person": "R1", "sites": ["nyc"]},
], ids=["all", "berlin", "nyc", "both-sites", "unconfigured-site", "traveller", "traveller+berlin",
        "siteless-door", "moved-last-day", "no-home", "removed+nyc"])
def test_two_zones_fast_csv_equals_the_python_path(two_zones, monkeypatch, today, request_kw) -> None:
    url, db, ids = two_zones
    settings = two_zone_settings(url)
    kw: dict[str, Any] = {"sites": request_kw.get("sites")}
    if "person" in request_kw:
        kw["person_id"] = ids[request_kw["person"]]
    expected = python_csv(monkeypatch, db, settings, ZONE_FIRST, ZONE_LAST, today, **kw)
    assert expected.count("\n") > 5
    assert fast_csv(db, settings, ZONE_FIRST, ZONE_LAST, today, **kw) == expected


@pytest.mark.parametrize(("first", "last"), [
    (date(2026, 3, 7), date(2026, 3, 9)), (date(2026, 3, 28), date(2026, 3, 30)),
    (date(2026, 10, 24), date(2026, 10, 26)), (date(2026, 10, 31), date(2026, 11, 2)),
    (date(2026, 11, 7), date(2026, 11, 7)), (date(2026, 6, 16), date(2026, 6, 23)),
], ids=["us-spring", "eu-spring", "eu-autumn", "us-autumn", "day-before-last", "june"])
@pytest.mark.parametrize("sites", [None, ["berlin"], ["nyc"]], ids=["all", "berlin", "nyc"])
def test_two_zones_short_ranges(two_zones, monkeypatch, first, last, sites) -> None:
    """Short ranges (home sites as of their own last date): the DST days of both zones, the day before
    Hana's New York evening (her correction's date is her home's), a June week with leave."""
    url, db, _ = two_zones
    settings = two_zone_settings(url)
    expected = python_csv(monkeypatch, db, settings, first, last, ZONE_TODAY, sites=sites)
    assert fast_csv(db, settings, first, last, ZONE_TODAY, sites=sites) == expected


def test_two_zones_data_has_the_cases(two_zones, monkeypatch) -> None:
    """The two-zone data holds what the differential is meant to cover (site rules, docs/central.md)."""
    url, db, ids = two_zones
    settings = two_zone_settings(url)
    text = python_csv(monkeypatch, db, settings, ZONE_FIRST, ZONE_LAST, TODAY)
    lines = text.splitlines()
    for needle in ["-04:00,", "-05:00,", "+01:00,", "+02:00,", "+00:00,", ",leave,no,holiday,no,nyc,,",
                   ",leave,no,sick,no,berlin,,", ",leave,no,other,no,nyc,,", ",present,yes,,no,,,",
                   ",Paris door,", ",No site door,", "Removed Person", "Erased Person", "'=Ben Berlin"]:
        assert needle in text, needle
    # the site-less door's day takes Mia's home site's rules: New York time, 08:00 + 10 min grace
    assert any(line.startswith("2026-06-16,M1,Mia Siteless Door,2026-06-16T08:20:") and ",yes,20,present," in line
               and line.endswith(",No site door,NY lobby") for line in lines)
    # a traveller: in at Berlin, out in New York, one Berlin day out after midnight Berlin time
    assert any(",T1,Tom Traveller," in line and line.endswith(",berlin,Berlin main,NY lobby") for line in lines) or \
        any(line.endswith(",berlin,Berlin side,NY garage") for line in lines)
    # an evening check-in in New York (the next UTC date) is that New York date's
    assert any(line.startswith("2026-11-08,H1,Hana Hopper,2026-11-08T20:30:") for line in lines)
    # today as an instant: each zone's own date (10-26 in New York, 10-27 in Berlin)
    instant = python_csv(monkeypatch, db, settings, date(2026, 10, 26), date(2026, 10, 26), ZONE_TODAY)
    assert ",H1,Hana Hopper,2026-10-26T21:00:" in instant and ",open,no,,no,nyc,NY lobby," in instant
    # Tom came in New York on a day of his leave: no leave row that day, with or without a filter
    berlin = python_csv(monkeypatch, db, settings, ZONE_FIRST, ZONE_LAST, TODAY, sites=["berlin"])
    assert "2026-06-23,T1,Tom Traveller,2026-06-23T07:50:" in text and "2026-06-23,T1," not in berlin
    assert "2026-06-24,T1,Tom Traveller,,,0.00,no,0,leave,no,holiday,no,berlin,," in berlin
    assert ids


def test_dst_days_lateness_wall_clock_hours_real(pg_server, monkeypatch) -> None:
    """A workday start before the DST change (01:30): lateness counts wall-clock minutes (as at the door),
    hours count real minutes; both paths agree, in Berlin and in New York."""
    url = pg_server.create_database("kiosk_payroll_dst_lateness")
    db = open_database(url)
    try:
        settings = Settings.model_validate({
            "role": "central", "database": {"url": url}, "site": {"timezone": "UTC"},
            "sites": {"berlin": {"timezone": "Europe/Berlin", "workday_start": "01:30", "late_grace_minutes": 0},
                      "nyc": {"timezone": "America/New_York", "workday_start": "01:30", "late_grace_minutes": 0}},
        })
        doors = {site: add_door(db, f"{site} door", site=site, actor="test").door.device_id for site in ("berlin", "nyc")}
        ids = {site: add_person(db, site[0].upper(), f"{site} person", now=datetime(2026, 1, 5, tzinfo=UTC)).id
               for site in doors}
        rows = []
        for site, zone, spring, autumn, repeated in [("berlin", BERLIN, date(2026, 3, 29), date(2026, 10, 25), 2),
                                                     ("nyc", NEW_YORK, date(2026, 3, 8), date(2026, 11, 1), 1)]:
            # in after the spring jump (03:30), and in the second pass of the autumn's repeated hour
            for day, wall, fold in [(spring, time(3, 30), 0), (autumn, time(repeated, 45), 1)]:
                at = datetime.combine(day, wall).replace(tzinfo=zone, fold=fold).astimezone(UTC)
                rows += [{"person_id": ids[site], "occurred_at": at, "kind": "in", "device_id": doors[site]},
                         {"person_id": ids[site], "occurred_at": at + timedelta(hours=3), "kind": "out",
                          "device_id": doors[site]}]
        bulk_add_events(db, rows)
        first, last = date(2026, 3, 1), date(2026, 11, 2)
        expected = python_csv(monkeypatch, db, settings, first, last, TODAY)
        assert fast_csv(db, settings, first, last, TODAY) == expected
        got = {line.split(",")[0]: line.split(",")[5:8] for line in expected.splitlines()[1:]}
        assert got == {"2026-03-29": ["3.00", "yes", "120"], "2026-10-25": ["3.00", "yes", "75"],  # wall: 02:45 - 01:30
                       "2026-03-08": ["3.00", "yes", "120"], "2026-11-01": ["3.00", "yes", "15"]}  # wall: 01:45 - 01:30
    finally:
        db.close()
