"""`kiosk central join URL CODE` as a real process against a real `kiosk serve` central (SQLite and the
throw-away PostgreSQL cluster): killed with SIGKILL in the middle of the event upload, run again, and
everything is on the central exactly once and the kiosk's own rows are renumbered once."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
import yaml
from cli_helpers import run_cli, run_cli_process
from door_helpers import free_port_below_ephemeral

from kiosk import store

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 10, 1, 7, 0, tzinfo=UTC)
EVENTS = 3000  # camera events on the kiosk, plus one hand correction
BATCH = 25  # central.batch: 121 pushes, so the kill lands among them
KILL_AFTER = 500  # SIGKILL the join once the central holds this many of its events
DEVICE = "old-kiosk"  # the device id the central gives the door "Old kiosk"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("KIOSK")} | {"PYTHONWARNINGS": "ignore"}


@pytest.fixture(params=["sqlite", "postgresql"])
def central_location(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """The central's `database:` settings: an SQLite file, or a database on the throw-away cluster."""
    if request.param == "sqlite":
        (tmp_path / "central").mkdir()
        return {"path": str(tmp_path / "central" / "central.db"), "backups_kept": 0}
    return {"url": request.getfixturevalue("pg_server").create_database("kiosk_join_kill")}


def _kiosk(tmp_path: Path, url: str) -> tuple[Path, Path]:
    """A standalone kiosk (config, database): E1..E6 with templates, E6 erased since (events kept), EVENTS
    events of them and of unknown faces over a month, a hand correction, leave."""
    folder = tmp_path / "kiosk"
    folder.mkdir()
    db_path = folder / "kiosk.db"
    config = folder / "kiosk.yaml"
    config.write_text(yaml.safe_dump({
        "role": "standalone", "site": {"timezone": "UTC", "device_id": "kiosk"},
        "database": {"path": str(db_path), "backups_kept": 0},
        "central": {"url": url, "timeout_s": 10, "batch": BATCH}}))
    rng = np.random.default_rng(7)
    with store.open_database(db_path) as db:
        ids = [store.add_person(db, f"E{i}", f"Person {i}", actor="alice", now=T0).id for i in range(1, 7)]
        for pid in ids:
            store.add_templates(db, pid, rng.standard_normal((2, 128)).astype(np.float32), now=T0)
        who: list[int | None] = [*ids, None]
        rows = [{"person_id": who[i % len(who)], "occurred_at": T0 + timedelta(minutes=13 * i),
                 "kind": "unknown" if who[i % len(who)] is None else ("in", "out")[i % 2], "device_id": "kiosk"}
                for i in range(EVENTS)]
        store.bulk_add_events(db, rows)
        store.add_correction(db, ids[0], T0 + timedelta(days=40), "in", actor="alice", note="forgot to check in",
                             now=T0 + timedelta(days=41))
        store.add_leave(db, ids[1], date(2026, 12, 1), date(2026, 12, 3), "holiday", actor="alice", now=T0)
        store.add_leave(db, ids[5], date(2026, 12, 7), date(2026, 12, 8), "sick", actor="alice", now=T0)
        store.erase_person(db, ids[5], actor="alice", now=T0 + timedelta(days=42))
    return config, db_path


def _central_rows(engine: sa.Engine, sql: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql)))


@pytest.mark.slow
def test_a_join_killed_mid_upload_and_run_again_sends_everything_once(tmp_path: Path,
                                                                      central_location: dict[str, Any]) -> None:
    port = free_port_below_ephemeral()
    central_config = tmp_path / "central.yaml"
    central_config.write_text(yaml.safe_dump({
        "role": "central", "database": central_location, "site": {"timezone": "UTC"},
        "web": {"host": "127.0.0.1", "port": port}}))
    migrated = run_cli("db", "upgrade", config=central_config)
    assert migrated.returncode == 0, migrated.stderr
    location = central_location.get("url") or central_location["path"]
    with store.open_database(location, create=False) as cdb:  # the central holds E2, E1 (a swap) and E9
        held = {e: store.add_person(cdb, e, f"Central {e}").id for e in ("E2", "E1", "E9")}
        code = store.add_door(cdb, "Old kiosk", site="berlin", now=datetime.now(UTC)).code
    url = f"http://127.0.0.1:{port}"
    config, db_path = _kiosk(tmp_path, url)
    with store.open_database(db_path) as db:
        local_events = len(store.events_after(db, 0, 10 * EVENTS))
        local_audit = len(store.all_audit(db))

    logs = tmp_path / "logs"
    logs.mkdir()
    with (logs / "central.log").open("wb") as out:
        central = subprocess.Popen([sys.executable, "-m", "kiosk.cli", "--config", str(central_config), "serve"],
                                   cwd=ROOT, env=_env(), stdout=out, stderr=subprocess.STDOUT)
    engine = sa.create_engine(f"sqlite:///{location}" if "url" not in central_location else location)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert central.poll() is None and time.monotonic() < deadline, (logs / "central.log").read_text()
                time.sleep(0.1)

        # the first join, killed once the central holds some of its events
        with (logs / "join1.log").open("wb") as out:
            join = subprocess.Popen([sys.executable, "-m", "kiosk.cli", "--config", str(config), "central", "join",
                                     url, code], cwd=ROOT, env=_env(), stdout=out, stderr=subprocess.STDOUT)
        count = f"SELECT count(*) FROM attendance_events WHERE device_id = '{DEVICE}'"
        deadline = time.monotonic() + 120
        while _central_rows(engine, count)[0][0] < KILL_AFTER:
            assert join.poll() is None, (logs / "join1.log").read_text()
            assert time.monotonic() < deadline, (logs / "join1.log").read_text()
            time.sleep(0.01)
        join.send_signal(signal.SIGKILL)
        assert join.wait(10) == -signal.SIGKILL
        on_central = _central_rows(engine, count)[0][0]
        assert KILL_AFTER <= on_central < local_events, "the kill came after the upload: make EVENTS larger"
        state = store.read_sync_state(db_path)
        assert state.device_id == DEVICE and 0 < state.pushed_seq <= on_central
        with store.open_database(db_path, create=False) as db:  # renumbered before the first push
            assert len(store.renumber_record(db)["runs"]) == 1
            assert store.get_person_by_employee_id(db, "E1").id == held["E1"]

        # run again: resumed without the code, only the rest is sent
        again = run_cli_process("central", "join", url, "spent-code", config=config, env={"PYTHONWARNINGS": "ignore"},
                                timeout=180)
        assert again.returncode == 0, again.stdout + again.stderr
        assert again.stdout.startswith("resumed: joined as old-kiosk"), again.stdout
        assert "people 0 created, 5 matched" in again.stdout and "leave 0 stored, 1 repeated" in again.stdout

        # every event once, with the person the kiosk's own (renumbered) row names
        central_events = _central_rows(engine, "SELECT door_seq, person_id, kind, review FROM attendance_events "
                                               f"WHERE device_id = '{DEVICE}'")
        assert len(central_events) == local_events and len({r[0] for r in central_events}) == local_events
        with store.open_database(db_path, create=False) as db:
            local = {e.id: e for e in store.events_after(db, 0, 10 * EVENTS)}
            record = store.renumber_record(db)
            local_people = {p.employee_id: p for p in store.list_people(db, include_inactive=True,
                                                                         include_erased=True)}
            renumber_lines = [a for a in store.all_audit(db) if a.action == "join.renumber"]
        assert set(local) == {r[0] for r in central_events}
        erased = local_people["E6"]
        assert erased.id < 0 and erased.erased_at is not None
        for seq, person_id, kind, review in central_events:
            event = local[seq]
            if event.person_id == erased.id:
                assert (person_id, kind) == (None, "unknown") and "erased" in review
            else:
                assert person_id == event.person_id
        # the kiosk's rows renumbered once: one run recorded, one audit line, every person on the central's id
        assert len(record["runs"]) == 1 and len(renumber_lines) == 1
        central_people = dict(_central_rows(engine, "SELECT employee_id, id FROM people"))
        assert sorted(central_people) == ["E1", "E2", "E3", "E4", "E5", "E9"]
        assert {e: p.id for e, p in local_people.items() if p.id > 0} == central_people  # E9 came with the gallery
        # people, leave and audit once
        leave = _central_rows(engine, "SELECT person_id, first_day FROM leave")
        assert [(p, str(d)) for p, d in leave] == [(central_people["E2"], "2026-12-01")]
        audit = _central_rows(engine, "SELECT at, actor, action, target, details FROM audit_log")
        joined = [r for r in audit if (json.loads(r[4]) if isinstance(r[4], str) else r[4] or {}).get(
            "joined_from") == DEVICE]
        assert len(joined) == local_audit + 1  # + the renumbering's own line
        assert max(Counter((r[0], r[1], r[2], r[3]) for r in joined).values()) == 1
        imports = [r for r in audit if r[2] == "person.import"]
        assert len(imports) == 3  # E3, E4, E5 created once

        # a third run sends nothing
        third = run_cli_process("central", "join", url, "spent-code", config=config, timeout=120)
        assert third.returncode == 0 and "already" in third.stdout, third.stdout + third.stderr
    finally:
        engine.dispose()
        central.send_signal(signal.SIGTERM)
        try:
            central.wait(30)
        except subprocess.TimeoutExpired:
            central.kill()
            central.wait(10)
