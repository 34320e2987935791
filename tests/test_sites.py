"""Sites and doors in reports (issue 13 items 4-5): a central's events pushed by doors of two
sites, the site and door columns, the site filter, home sites, manager sites, `kiosk report --site`
and `kiosk users sites`; the same queries on a real PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from cli_helpers import run_cli, run_cli_process

from kiosk.config import Settings
from kiosk.errors import ReportError, StoreError
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
    add_leave,
    add_person,
    add_user,
    day_figures,
    get_user,
    home_sites,
    ingest_events,
    list_audit,
    local_day_bounds,
    open_database,
    record_event,
    set_user_role,
    set_user_sites,
)

BERLIN = ZoneInfo("Europe/Berlin")
DAY = date(2026, 6, 15)  # a Monday
CREATED = datetime(2026, 1, 1, tzinfo=UTC)
TODAY = date(2026, 6, 20)
SITE_COLUMNS = ["site", "door_in", "door_out"]


def settings(role: str = "central", mode: str = "first_last") -> Settings:
    return Settings.model_validate({
        "role": role,
        "site": {"name": "HQ", "timezone": "Europe/Berlin", "workday_start": "09:00",
                 "late_grace_minutes": 5},
        "attendance": {"mode": mode},
        "expression": {"enabled": False},
    })


def at(d: int, h: int, m: int) -> datetime:
    return datetime(2026, 6, d, h, m, tzinfo=BERLIN)


class Central:
    """A central database with doors Berlin main + Berlin side (berlin) and Paris (paris)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.doors = {name: add_door(db, name, site=site, now=CREATED).door
                      for name, site in (("Berlin main", "berlin"), ("Berlin side", "berlin"),
                                         ("Paris", "paris"), ("Lobby", None))}
        self.seq = 0

    def push(self, door: str, person_id: int | None, t: datetime, kind: str) -> None:
        """One event pushed by a door through the central's intake (door_seq, uuid)."""
        self.seq += 1
        d = self.doors[door]
        ingest_events(self.db, d.id, [DoorEvent(self.seq, str(uuid.uuid4()), person_id, t, kind)],
                      clock=t, now=t)


@pytest.fixture
def central(tmp_path: Path) -> Iterator[Central]:
    """Bea works in Berlin (in by the main door, out by the side door), Pia in Paris; Cor has only a
    hand correction and a Berlin check-out; Dan (Berlin last week) and Pat (Paris) are absent on DAY;
    Lou has leave on DAY and was last seen in Paris. Unknown faces: 2 in Berlin, 1 in Paris."""
    db = open_database(tmp_path / "central.db")
    c = Central(db)
    ids = {}
    for eid, name in (("B1", "Bea"), ("P1", "Pia"), ("C1", "Cor"), ("D1", "Dan"), ("P2", "Pat"),
                      ("L1", "Lou"), ("N1", "Nia")):
        ids[name] = add_person(db, eid, name, now=CREATED).id
    c.ids = ids  # type: ignore[attr-defined]
    c.push("Berlin main", ids["Dan"], at(8, 9, 0), "in")  # last week: Dan's home is Berlin
    c.push("Paris", ids["Pat"], at(8, 9, 0), "in")
    c.push("Paris", ids["Lou"], at(9, 9, 0), "in")
    c.push("Berlin main", ids["Bea"], at(15, 8, 55), "in")
    c.push("Berlin side", ids["Bea"], at(15, 17, 30), "out")
    c.push("Paris", ids["Pia"], at(15, 9, 30), "in")
    c.push("Berlin main", ids["Pia"], at(15, 18, 0), "out")  # Pia's day started in Paris
    c.push("Berlin main", None, at(15, 10, 0), "unknown")
    c.push("Berlin side", None, at(15, 11, 0), "unknown")
    c.push("Paris", None, at(15, 12, 0), "unknown")
    c.push("Berlin side", ids["Cor"], at(15, 16, 0), "out")
    add_correction(db, ids["Cor"], at(15, 7, 45), "in", actor="admin", note="forgot", now=at(16, 9, 0),
                   retention_days=36500)
    add_leave(db, ids["Lou"], DAY, DAY, "holiday", actor="admin")
    # Nia: only a hand correction that day (no door, no site)
    add_correction(db, ids["Nia"], at(15, 9, 0), "in", actor="admin", note="x", now=at(16, 9, 0),
                   retention_days=36500)
    yield c
    db.close()


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("mode", ["first_last", "toggle"])
def test_site_and_doors_of_a_day(central: Central, mode: str) -> None:
    r = daily_report(central.db, settings(mode=mode), DAY, today=TODAY)
    rows = {x.name: x for x in r.rows}
    bea, pia, cor, nia = rows["Bea"], rows["Pia"], rows["Cor"], rows["Nia"]
    assert (bea.site, bea.door_in, bea.door_out) == ("berlin", "Berlin main", "Berlin side")
    assert bea.present_minutes == 8 * 60 + 35  # in by one door, out by another: one day
    assert (pia.site, pia.door_in, pia.door_out) == ("paris", "Paris", "Berlin main")
    # a correction first: the day's site is the first door event's; the check-in has no door
    assert (cor.site, cor.door_in, cor.door_out, cor.corrected) == ("berlin", None, "Berlin side", True)
    assert (nia.site, nia.door_in, nia.door_out) == (None, None, None)
    assert r.by_site and r.sites is None and r.unknown_faces == 3


def test_range_rows_agree_with_the_daily_report_in_both_modes(central: Central) -> None:
    for mode in ("first_last", "toggle"):
        s = settings(mode=mode)
        day_rows = {(x.name, x.site, x.door_in, x.door_out) for x in daily_report(central.db, s, DAY, TODAY).rows}
        rng = range_report(central.db, s, DAY, DAY, TODAY)
        assert {(x.name, x.site, x.door_in, x.door_out) for x in rng.rows} == day_rows


def test_site_filter_daily(central: Central) -> None:
    r = daily_report(central.db, settings(), DAY, today=TODAY, sites=["paris"])
    assert [x.name for x in r.rows] == ["Pia"]
    assert [p.name for p in r.absent] == ["Pat"]  # Dan's home is Berlin; Bea etc. came
    assert [x.person.name for x in r.on_leave] == ["Lou"]  # Lou was last seen in Paris
    assert r.unknown_faces == 1 and r.sites == ["paris"]
    b = daily_report(central.db, settings(), DAY, today=TODAY, sites=["berlin"])
    assert [x.name for x in b.rows] == ["Bea", "Cor"]
    assert [p.name for p in b.absent] == ["Dan"] and b.on_leave == [] and b.unknown_faces == 2
    both = daily_report(central.db, settings(), DAY, today=TODAY, sites=["berlin", "paris"])
    assert [x.name for x in both.rows] == ["Bea", "Cor", "Pia"]  # Nia (no site) is in no site


def test_site_filter_range_totals_and_streamed_csv_match(central: Central) -> None:
    s = settings()
    rep = range_report(central.db, s, date(2026, 6, 8), DAY, TODAY, sites=["paris"])
    assert {t.name for t in rep.totals} == {"Pia", "Pat", "Lou"}
    assert all(r.site == "paris" for r in rep.rows)
    in_memory = render_range(rep, "csv")
    streamed = "".join(iter_range(central.db, s, date(2026, 6, 8), DAY, "csv", TODAY, sites=["paris"]))
    assert streamed == in_memory
    rows = _csv(streamed)
    assert list(rows[0]) == CSV_COLUMNS + SITE_COLUMNS
    assert {(x["name"], x["site"]) for x in rows} == {("Pat", "paris"), ("Lou", "paris"), ("Pia", "paris")}
    leave = [x for x in rows if x["status"] == "leave"]
    assert [(x["name"], x["site"], x["door_in"]) for x in leave] == [("Lou", "paris", "")]
    js = json.loads("".join(iter_range(central.db, s, DAY, DAY, "json", TODAY, sites=["paris"])))
    assert js["sites"] == ["paris"] and [d["door_in"] for d in js["days"]] == ["Paris"]
    table = "".join(iter_range(central.db, s, DAY, DAY, "table", TODAY, sites=["paris"]))
    assert "sites: paris" in table and "Bea" not in table and "Berlin main" in table  # Pia's out door


def test_daily_csv_columns_on_a_central_and_unchanged_on_a_standalone(central: Central, tmp_path: Path) -> None:
    rows = _csv(render_daily(daily_report(central.db, settings(), DAY, TODAY), "csv"))
    assert list(rows[0]) == CSV_COLUMNS + SITE_COLUMNS
    by_name = {x["name"]: x for x in rows}
    assert (by_name["Bea"]["site"], by_name["Bea"]["door_in"], by_name["Bea"]["door_out"]) == \
        ("berlin", "Berlin main", "Berlin side")
    assert (by_name["Dan"]["status"], by_name["Dan"]["site"]) == ("absent", "berlin")  # home site
    assert (by_name["Nia"]["site"], by_name["Nia"]["door_in"]) == ("", "")
    # a standalone kiosk (same kind of data, no doors): the payroll CSV keeps its exact columns
    db = open_database(tmp_path / "standalone.db")
    p = add_person(db, "E1", "Ann", now=CREATED)
    record_event(db, p.id, at(15, 9, 0), "in", "kiosk-1")
    s = settings(role="standalone")
    text = render_daily(daily_report(db, s, DAY, TODAY), "csv")
    assert text.splitlines()[0] == ",".join(CSV_COLUMNS)
    js = json.loads(render_daily(daily_report(db, s, DAY, TODAY), "json"))
    assert "sites" not in js and "door_in" not in js["people"][0] and "site" not in js["people"][0]
    assert "In at" not in render_daily(daily_report(db, s, DAY, TODAY), "table")
    assert "".join(iter_range(db, s, DAY, DAY, "csv", TODAY)).splitlines()[0] == ",".join(CSV_COLUMNS)
    db.close()


def test_bad_site_filters_are_one_clear_error(central: Central, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no door belongs to site 'rome'.*berlin, paris"):
        daily_report(central.db, settings(), DAY, sites=["rome"])
    with pytest.raises(ReportError, match="no door belongs to site 'rome'"):
        iter_range(central.db, settings(), DAY, DAY, "csv", sites=["rome"])  # before any chunk
    # a manager's own limit naming a site no door has yet: no error, just no rows
    assert daily_report(central.db, settings(), DAY, sites=["rome"], strict=False).rows == []
    with pytest.raises(ReportError, match="only on a central server"):
        daily_report(central.db, settings(role="standalone"), DAY, sites=["berlin"])


def test_day_figures_by_door_and_home_sites(central: Central) -> None:
    start, end = local_day_bounds(DAY, BERLIN)
    doors = {d.device_id for d in central.doors.values()}
    figs = {f.person_id: f for f in day_figures(central.db, start, end, doors=doors) if f.person_id}
    plain = {f.person_id: f for f in day_figures(central.db, start, end) if f.person_id}
    for pid, f in figs.items():  # the same figures as the one-row-per-person query
        assert f[:6] == plain[pid][:6]
    ids = central.ids  # type: ignore[attr-defined]
    assert figs[ids["Cor"]].first_in_device == "manual" and figs[ids["Cor"]].site_device == "berlin-side"
    unknown = [f for f in day_figures(central.db, start, end, doors=doors) if f.person_id is None]
    assert sorted((f.site_device, f.events) for f in unknown) == [
        ("berlin-main", 1), ("berlin-side", 1), ("paris", 1)]
    home = home_sites(central.db, end)
    assert home[ids["Pia"]] == "berlin"  # her latest door event was Berlin's
    assert home[ids["Dan"]] == "berlin" and home[ids["Lou"]] == "paris" and ids["Nia"] not in home
    before = home_sites(central.db, local_day_bounds(date(2026, 6, 14), BERLIN)[1])  # as of the 14th
    assert ids["Pia"] not in before and before[ids["Dan"]] == "berlin"


def test_a_door_without_site_and_the_lobby(central: Central) -> None:
    """Events at a door with no site have a door but no site: shown unfiltered, in no site's report."""
    ids = central.ids  # type: ignore[attr-defined]
    central.push("Lobby", ids["Dan"], at(15, 9, 30), "in")
    rows = {x.name: x for x in daily_report(central.db, settings(), DAY, TODAY).rows}
    assert (rows["Dan"].site, rows["Dan"].door_in) == (None, "Lobby")
    assert "Dan" not in {x.name for x in daily_report(central.db, settings(), DAY, TODAY, sites=["berlin"]).rows}


# --- manager sites -------------------------------------------------------------------------------


def test_manager_sites_are_stored_audited_and_cleared_for_admins(tmp_path: Path) -> None:
    db = open_database(tmp_path / "k.db")
    add_user(db, "boss", "x", "admin")
    add_user(db, "bob", "x", "manager")
    user = set_user_sites(db, "bob", [" paris ", "berlin", "paris"], actor="cli")
    assert user.sites == ("berlin", "paris") and user.site_limit == frozenset({"berlin", "paris"})
    assert get_user(db, "bob").sites == ("berlin", "paris")  # type: ignore[union-attr]
    entry = list_audit(db, target="user:bob")[0]
    assert entry.action == "user.sites" and entry.details == {"from": [], "to": ["berlin", "paris"]}
    with pytest.raises(StoreError, match="admins see every site"):
        set_user_sites(db, "boss", ["berlin"], actor="cli")
    with pytest.raises(StoreError, match="1 to 100 characters"):
        set_user_sites(db, "bob", ["x" * 101], actor="cli")
    assert get_user(db, "bob").sites == ("berlin", "paris")  # type: ignore[union-attr]  # nothing lost
    set_user_role(db, "bob", "admin", actor="cli")
    bob = get_user(db, "bob")
    assert bob is not None and bob.sites == () and bob.site_limit is None
    set_user_role(db, "bob", "manager", actor="cli")
    assert get_user(db, "bob").site_limit is None  # type: ignore[union-attr]  # demoted: every site
    db.close()


# --- the CLI -------------------------------------------------------------------------------------


def _config(tmp_path: Path, db_path: Path, role: str = "central") -> Path:
    path = tmp_path / f"{role}.yaml"
    path.write_text(yaml.safe_dump({"role": role, "database": {"path": str(db_path), "backups_kept": 0},
                                    "site": {"timezone": "Europe/Berlin"}}))
    return path


def test_cli_report_site_and_users_sites(central: Central, tmp_path: Path) -> None:
    config = _config(tmp_path, central.db.path)
    proc = run_cli("report", "daily", "--date", "2026-06-15", "--site", "berlin", "--format", "csv",
                   config=config)
    assert proc.returncode == 0, proc.stderr
    rows = _csv(proc.stdout)
    assert {x["name"] for x in rows} == {"Bea", "Cor", "Dan"} and {x["site"] for x in rows} == {"berlin"}
    proc = run_cli("report", "range", "--from", "2026-06-15", "--to", "2026-06-15", "--site", "rome",
                   config=config)
    assert proc.returncode != 0 and "no door belongs to site 'rome'" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    add_user(central.db, "bob", "x", "manager")
    proc = run_cli("users", "sites", "bob", "berlin", "rome", config=config)
    assert proc.returncode == 0, proc.stderr
    assert "sees only berlin, rome" in proc.stdout and "no door has the site 'rome'" in proc.stdout
    assert "sites: berlin, rome" in run_cli("users", "list", config=config).stdout
    assert "sees every site" in run_cli("users", "sites", "bob", config=config).stdout
    assert get_user(central.db, "bob").sites == ()  # type: ignore[union-attr]
    proc = run_cli("users", "sites", "nobody", "berlin", config=config)
    assert proc.returncode != 0 and "no user 'nobody'" in proc.stderr and "Traceback" not in proc.stderr
    standalone = _config(tmp_path, central.db.path, role="standalone")
    proc = run_cli("users", "sites", "bob", "berlin", config=standalone)
    assert proc.returncode != 0 and "role: central" in proc.stderr


def test_cli_report_site_as_a_real_process(central: Central, tmp_path: Path) -> None:
    proc = run_cli_process("report", "range", "--from", "2026-06-15", "--to", "2026-06-15", "--site", "paris",
                           "--format", "csv", config=_config(tmp_path, central.db.path))
    assert proc.returncode == 0, proc.stderr
    assert [(x["name"], x["status"], x["door_in"], x["door_out"]) for x in _csv(proc.stdout)] == [
        ("Lou", "leave", "", ""), ("Pia", "present", "Paris", "Berlin main")]


# --- PostgreSQL ----------------------------------------------------------------------------------


def test_site_queries_on_postgresql(pg_server) -> None:  # type: ignore[no-untyped-def]
    """day_figures by door, home_sites and user sites are plain SQLAlchemy: the same answers on a
    real PostgreSQL (schema from the models; the engine's own PostgreSQL support is another part)."""
    import sqlalchemy as sa

    from kiosk.store.models import Base

    url = pg_server.create_database("kiosk_sites")
    engine = sa.create_engine(url)
    Base.metadata.create_all(engine)
    db = Database(Path("pg"), engine)
    try:
        c = Central(db)
        a = add_person(db, "A1", "Ada", now=CREATED).id
        c.push("Paris", a, at(15, 8, 0), "in")
        c.push("Berlin main", a, at(15, 8, 0).replace(second=1), "in")
        c.push("Berlin side", a, at(15, 17, 0), "out")
        c.push("Paris", None, at(15, 9, 0), "unknown")
        start, end = local_day_bounds(DAY, BERLIN)
        figs = day_figures(db, start, end, doors={d.device_id for d in c.doors.values()})
        ada = next(f for f in figs if f.person_id == a)
        assert (ada.first_in_device, ada.latest_out_device, ada.site_device, ada.events) == \
            ("paris", "berlin-side", "paris", 3)
        assert [(f.site_device, f.events) for f in figs if f.person_id is None] == [("paris", 1)]
        assert home_sites(db, end) == {a: "berlin"}
        add_user(db, "bob", "x", "manager")
        assert set_user_sites(db, "bob", ["paris"], actor="t").sites == ("paris",)
        assert get_user(db, "bob").sites == ("paris",)  # type: ignore[union-attr]
    finally:
        engine.dispose()
