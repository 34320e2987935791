"""`kiosk central join`: a standalone kiosk's SQLite file (people, templates, events, leave, audit) joins a
central (the real app on its own SQLite file, served over real HTTP in a thread): twice (nothing twice),
interrupted after a batch and resumed (only the rest sent), then the door's sync goes on without re-sending."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from app_helpers import kiosk_app
from werkzeug.serving import make_server

from kiosk import store
from kiosk.central_join import join
from kiosk.clock import ManualClock
from kiosk.config import Settings
from kiosk.door_sync import DoorSync

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


class Interrupted(Exception):
    """Raised by a test between two batches (the join's process dying there)."""


@pytest.fixture
def central(tmp_path: Path) -> Iterator[tuple[str, store.Database]]:
    """A central (role central, SQLite) served over HTTP on a free port; its URL and database."""
    settings = Settings.model_validate({"role": "central", "database": {
        "path": str(tmp_path / "central" / "central.db"), "backups_kept": 0}})
    (tmp_path / "central").mkdir()
    with store.open_from_settings(settings) as db:
        app = kiosk_app(settings, db, ManualClock(datetime.now(UTC)))
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{server.server_port}", db
        server.shutdown()
        thread.join()


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
