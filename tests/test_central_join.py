"""`kiosk central join`: a standalone kiosk's SQLite file (people, templates, events, leave, audit) joins a
central (the real app on its own SQLite file, or on the throw-away PostgreSQL cluster, served over real HTTP
in a thread): twice (nothing twice), interrupted after a batch and resumed (only the rest sent), then the
door's sync goes on without re-sending; the kiosk's own rows renumbered to the central's ids."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from app_helpers import served_central

from kiosk import store
from kiosk.central_join import join
from kiosk.clock import ManualClock
from kiosk.config import Settings
from kiosk.door_sync import DoorSync

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


class Interrupted(Exception):
    """Raised by a test between two batches (the join's process dying there)."""


_DATABASES = itertools.count(1)


@pytest.fixture(params=["sqlite", "postgresql"])
def central(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, store.Database]]:
    """A central (role central; SQLite, or a new database on the throw-away PostgreSQL cluster) served over
    HTTP on a free port; its URL and database."""
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_server").create_database(f"kiosk_join_{next(_DATABASES)}")
        store.upgrade(url)
        database: dict[str, Any] = {"url": url}
    else:
        (tmp_path / "central").mkdir()
        database = {"path": str(tmp_path / "central" / "central.db"), "backups_kept": 0}
    settings = Settings.model_validate({"role": "central", "database": database})
    with served_central(settings) as served:
        yield served


def _standalone(tmp_path: Path, url: str, role: str = "standalone") -> Settings:
    return Settings.model_validate({"role": role, "site": {"device_id": "kiosk"},
                                    "database": {"path": str(tmp_path / "kiosk" / "kiosk.db"), "backups_kept": 0},
                                    "central": {"url": url, "timeout_s": 5.0, "batch": 7}})


def _fill(settings: Settings) -> dict[str, int]:
    """People (one already on the central under another name), templates, 30 events, leave; local ids."""
    Path(settings.database.path).parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    ids: dict[str, int] = {}
    with store.open_from_settings(settings) as db:
        for emp, name in (("E1", "Ada"), ("E2", "Grace"), ("E3", "Linus")):
            ids[emp] = store.add_person(db, emp, name, now=T0).id
            store.add_templates(db, ids[emp], rng.standard_normal((2, 128)).astype(np.float32), now=T0)
        for i in range(30):
            emp = ("E1", "E2", "E3")[i % 3]
            store.record_event(db, ids[emp], T0 + timedelta(minutes=10 * i), "in" if i < 15 else "out", "kiosk")
        store.record_event(db, None, T0 + timedelta(hours=6), "unknown", "kiosk")
        store.add_leave(db, ids["E2"], date(2026, 11, 10), date(2026, 11, 12), "holiday", actor="alice", now=T0)
    return ids


def _central_rows(db: store.Database) -> list[Any]:
    return sorted(((e.device_id, e.person_id, e.occurred_at) for e in
                   store.events_between(db, T0 - timedelta(days=1), T0 + timedelta(days=2))), key=lambda r: r[2])


def _code(db: store.Database) -> str:
    return store.add_door(db, "Old kiosk", site="berlin", now=datetime.now(UTC)).code


def test_a_standalone_kiosk_joins_with_its_history_once(tmp_path: Path, central: tuple[str, store.Database]) -> None:
    url, cdb = central
    held = store.add_person(cdb, "E3", "Linus T.")  # already on the central: keeps its id and name
    settings = _standalone(tmp_path, url)
    local = _fill(settings)

    report = join(settings, url, _code(cdb), batch=7)
    assert (report.created, report.matched) == (2, 1)
    assert report.conflicts and "E3" in report.conflicts[0]
    assert (report.events_stored, report.events_repeated, report.pushed_seq) == (31, 0, 31)
    assert (report.leave_stored, report.audit_stored) == (1, report.audit_stored)
    central_ids = {p.employee_id: p.id for p in store.list_people(cdb)}
    assert central_ids["E3"] == held.id and store.get_person(cdb, held.id).name == "Linus T."
    rows = _central_rows(cdb)
    assert len(rows) == 31 and {r[0] for r in rows} == {report.device_id}
    assert sum(1 for r in rows if r[1] == central_ids["E3"]) == 10
    assert len(store.list_templates(cdb, central_ids["E1"])) == 2
    assert len(store.list_templates(cdb, held.id)) == 0  # matched: its templates are the central's
    assert [x.person_id for x in store.leave_between(cdb)] == [central_ids["E2"]]
    audit_before = len(store.all_audit(cdb))

    # again (the token is there: resumed): nothing new anywhere
    again = join(settings, url, "used-code", batch=7)
    assert again.resumed and again.already and (again.created, again.events_stored, again.leave_stored) == (0, 0, 0)
    assert _central_rows(cdb) == rows and len(store.all_audit(cdb)) == audit_before
    assert len(store.list_people(cdb)) == 3

    # the local cache now uses the central's ids (the whole gallery pulled at the end)
    with store.open_from_settings(settings) as db:
        active = {p.employee_id: p.id for p in store.list_people(db) if p.active}
    assert active == central_ids
    assert local["E1"] != central_ids["E1"] or local["E3"] != central_ids["E3"]


def test_an_interrupted_join_resumes_and_the_door_sync_goes_on(tmp_path: Path,
                                                               central: tuple[str, store.Database]) -> None:
    url, cdb = central
    settings = _standalone(tmp_path, url)
    _fill(settings)

    def die_after_two(seq: int) -> None:
        if seq >= 14:
            raise Interrupted(seq)

    with pytest.raises(Interrupted):
        join(settings, url, _code(cdb), batch=7, after_batch=die_after_two)
    assert len(_central_rows(cdb)) == 14
    assert store.read_sync_state(settings.database.path).pushed_seq == 14

    resumed = join(settings, url, "spent", batch=7)
    assert resumed.resumed and (resumed.events_stored, resumed.events_repeated) == (17, 0)
    assert (resumed.created, resumed.matched, resumed.leave_stored, resumed.leave_repeated) == (0, 3, 0, 1)
    assert resumed.audit_stored == 0 and resumed.audit_repeated > 0
    assert len(_central_rows(cdb)) == 31 and len(store.list_people(cdb)) == 3

    # the kiosk becomes a door: its sync pushes only the new event, with the central's person id
    door = _standalone(tmp_path, url, role="door")
    ada = store.get_person_by_employee_id(cdb, "E1").id
    with store.open_from_settings(door) as db:
        store.record_event(db, ada, T0 + timedelta(hours=9), "out", "kiosk")
    sync = DoorSync(door)
    try:
        assert sync.run_round()
    finally:
        sync.stop()
    rows = _central_rows(cdb)
    assert len(rows) == 32 and rows.count(rows[-1]) == 1
    assert store.read_sync_state(door.database.path).pushed_seq == 32
    assert sum(1 for r in rows if r[1] == ada) == 11


def test_a_malformed_import_is_refused_and_stores_nothing(tmp_path: Path,
                                                         central: tuple[str, store.Database]) -> None:
    import json
    import urllib.error
    import urllib.request

    url, cdb = central
    settings = _standalone(tmp_path, url)
    _fill(settings)
    join(settings, url, _code(cdb), batch=50)
    token = settings.token_path.read_text().strip()
    before = len(store.list_people(cdb))
    bad = {"people": [{"local_id": 9, "employee_id": "E9", "name": "X", "active": True,
                       "expression_consent": False, "templates": ["bm90IGEgdGVtcGxhdGU="]}]}
    request = urllib.request.Request(url + "/api/v1/door/import", data=json.dumps(bad).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 400 and json.loads(caught.value.read())["error"] == "malformed"
    assert len(store.list_people(cdb)) == before
    nobody = urllib.request.Request(url + "/api/v1/door/import", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(nobody, timeout=5)
    assert caught.value.code == 401


def test_the_local_history_is_renumbered_to_the_centrals_ids(tmp_path: Path,
                                                              central: tuple[str, store.Database]) -> None:
    """Local ids 1 and 2 are the central's 2 and 1 (a swap), the erased local 3 is where the central puts the new
    E4: after the join every local row names its own person, and the door judges Y's first check-in by Y's day."""
    from kiosk.attendance import Attendance, StoreEventLog

    url, cdb = central
    grace_c = store.add_person(cdb, "E2", "Grace").id  # central 1
    ada_c = store.add_person(cdb, "E1", "Ada").id  # central 2
    settings = _standalone(tmp_path, url)
    Path(settings.database.path).parent.mkdir(parents=True)
    rng = np.random.default_rng(2)
    morning = T0  # 08:00 UTC
    with store.open_from_settings(settings) as db:
        ada = store.add_person(db, "E1", "Ada", expression_consent=True, actor="alice", now=T0).id  # local 1
        grace = store.add_person(db, "E2", "Grace", actor="alice", now=T0).id  # local 2
        linus = store.add_person(db, "E3", "Linus", now=T0).id  # local 3, erased below
        bob = store.add_person(db, "E4", "Bob", now=T0).id  # local 4; the central makes E4 its 3
        assert (ada, grace, linus, bob) == (1, 2, 3, 4) and (grace_c, ada_c) == (1, 2)
        for pid in (ada, grace, bob):
            store.add_templates(db, pid, rng.standard_normal((2, 128)).astype(np.float32), now=T0)
        store.record_event(db, grace, morning - timedelta(days=1), "in", "kiosk")
        store.record_event(db, linus, morning - timedelta(days=1), "in", "kiosk")
        x_in = store.record_event(db, ada, morning, "in", "kiosk").id  # X's morning
        store.record_event(db, bob, morning + timedelta(minutes=5), "in", "kiosk")
        store.add_leave(db, grace, date(2026, 11, 20), date(2026, 11, 21), "holiday", actor="alice", now=T0)
        store.erase_person(db, linus, actor="alice", now=T0)

    report = join(settings, url, _code(cdb), batch=3)
    bob_c = store.get_person_by_employee_id(cdb, "E4").id
    assert (report.created, report.matched, bob_c) == (1, 2, 3)

    with store.open_from_settings(settings) as db:
        # Y's first check-in of the day after the join is an "in", whatever X did this morning
        door = _standalone(tmp_path, url, role="door")
        attendance = Attendance(StoreEventLog(db, "kiosk"), door, ManualClock(morning + timedelta(hours=1)))
        decision = attendance.sighting(grace_c)
        assert decision.recorded and decision.kind == "in", decision.reason
        # X's morning names X (the central's E1), not Y
        x_event = store.events_after(db, x_in - 1, 1)[0]
        assert x_event.person_id == ada_c
        assert store.get_person(db, ada_c).employee_id == "E1"
        assert [x.person_id for x in store.leave_between(db)] == [grace_c]
        assert store.get_person(db, bob_c).employee_id == "E4"
        # the erased Linus stays erased, under an id no central person can take
        erased = [p for p in store.list_people(db, include_inactive=True, include_erased=True)
                  if p.employee_id.startswith("E3")]
        assert len(erased) == 1 and erased[0].id < 0 and erased[0].erased_at is not None
        assert len(store.list_templates(db, erased[0].id)) == 0
        # audit lines name the central's ids: Ada's consent line was person:1, is person:2
        consent = [a for a in store.list_audit(db, limit=1000) if a.action == "person.consent"
                   or (a.action == "person.add" and a.details and a.details.get("employee_id") == "E1")]
        assert consent and all(a.target == f"person:{ada_c}" for a in consent)
    # the central's copies of the audit lines name its own people too
    added = [a for a in store.all_audit(cdb) if a.action == "person.add" and a.details
             and a.details.get("joined_from") and a.details.get("employee_id") == "E1"]
    assert added and added[0].target == f"person:{ada_c}"
