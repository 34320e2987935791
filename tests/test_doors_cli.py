"""`kiosk doors add|code|list|revoke` on a central's real SQLite file (in-process CLI)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from cli_helpers import run_cli

from kiosk import store
from kiosk.store import open_database


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "central.yaml"
    path.write_text(f"role: central\ndatabase:\n  path: {tmp_path / 'central.db'}\n  backups_kept: 0\n")
    return path


def code_of(stdout: str) -> str:
    return next(line.split(": ", 1)[1] for line in stdout.splitlines() if line.startswith("enrolment code: "))


def test_add_prints_a_code_that_enrols_once(config: Path, tmp_path: Path) -> None:
    r = run_cli("doors", "add", "Main entrance", "--site", "berlin", config=config)
    assert r.returncode == 0, r.stderr
    assert "main-entrance" in r.stdout and "kiosk central enrol" in r.stdout and "UTC" in r.stdout
    code = code_of(r.stdout)
    db = open_database(tmp_path / "central.db")
    try:
        con = sqlite3.connect(db.path)
        assert code not in str(con.execute("SELECT * FROM doors").fetchall())  # only its hash is stored
        con.close()
        door, token = store.enrol_door(db, code)
        assert door.site == "berlin" and store.authenticate_door(db, token).id == door.id
        with pytest.raises(store.BadEnrolCode):
            store.enrol_door(db, code)
        actions = [a.action for a in store.list_audit(db)]
        assert actions[:2] == ["door.enrol", "door.add"]
    finally:
        db.close()


def test_list_shows_state_and_reports(config: Path) -> None:
    r = run_cli("doors", "list", config=config)
    assert r.returncode == 0 and "no doors yet" in r.stdout
    run_cli("doors", "add", "Main entrance", "--site", "berlin", config=config)
    run_cli("doors", "add", "Back door", config=config)
    r = run_cli("doors", "list", config=config)
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0].startswith("device id") and len(lines) == 3
    assert any("main-entrance" in line and "berlin" in line and "waiting" in line for line in lines)
    assert any("back-door" in line and "never" in line for line in lines)


def test_revoke_then_list_and_refusals(config: Path, tmp_path: Path) -> None:
    code = code_of(run_cli("doors", "add", "Main entrance", config=config).stdout)
    db = open_database(tmp_path / "central.db")
    _, token = store.enrol_door(db, code)
    db.close()
    r = run_cli("doors", "revoke", "Main entrance", config=config)
    assert r.returncode == 0 and "revoked" in r.stdout
    assert "revoked" in run_cli("doors", "list", config=config).stdout
    db = open_database(tmp_path / "central.db")
    with pytest.raises(store.DoorRevoked):
        store.authenticate_door(db, token)
    assert [a.action for a in store.list_audit(db)][0] == "door.revoke"
    db.close()
    for args, message in [
        (("doors", "revoke", "main-entrance"), "revoked already"),
        (("doors", "revoke", "No such door"), "no door named"),
        (("doors", "add", "Main  Entrance"), "exists already"),
        (("doors", "add", "MAIN-entrance!"), "exists already"),   # the same device id
        (("doors", "add", "???"), "letters or digits"),
        (("doors", "add", "x" * 201), "1 to 200"),
        (("doors", "add", "Ok door", "--site", ""), "site"),
        (("doors", "add", "Evil\u202edoor"), "control"),
        (("doors", "code", "main-entrance"), "revoked"),
        (("doors", "add", "Manual"), "hand corrections"),   # device id "manual": the corrections' own
        (("doors", "add", "MANUAL!"), "hand corrections"),
    ]:
        r = run_cli(*args, config=config)
        assert r.returncode == 1, (args, r.stdout)
        assert r.stderr.startswith("error: ") and message in r.stderr and "Traceback" not in r.stderr, args
        assert len(r.stderr.strip().splitlines()) == 1


def test_code_makes_a_new_code_and_the_old_one_stops(config: Path, tmp_path: Path) -> None:
    old = code_of(run_cli("doors", "add", "Main entrance", config=config).stdout)
    r = run_cli("doors", "code", "Main entrance", config=config)
    assert r.returncode == 0
    new = code_of(r.stdout)
    assert new != old
    db = open_database(tmp_path / "central.db")
    try:
        with pytest.raises(store.BadEnrolCode):
            store.enrol_door(db, old)
        assert store.enrol_door(db, new)[0].device_id == "main-entrance"
    finally:
        db.close()


def test_doors_need_role_central(tmp_path: Path) -> None:
    config = tmp_path / "kiosk.yaml"
    config.write_text(f"database:\n  path: {tmp_path / 'kiosk.db'}\n")
    r = run_cli("doors", "add", "Main entrance", config=config)
    assert r.returncode == 1 and "role: central" in r.stderr and "role: standalone" in r.stderr
    assert not (tmp_path / "kiosk.db").exists()


def test_codes_can_be_typed_as_a_command_line_argument(config: Path, tmp_path: Path, monkeypatch) -> None:
    """A code is hex: one that began with "-" (token_urlsafe's alphabet) was taken for an option by
    `kiosk central enrol URL CODE` ("No such option '-M'"), found by the end-to-end test."""
    import secrets

    monkeypatch.setattr(secrets, "token_urlsafe", lambda n=None: "-M" + "x" * 22)  # the old generator, unlucky
    codes = []
    for i in range(20):
        r = run_cli("doors", "add", f"Door {i}", config=config)
        assert r.returncode == 0, r.stderr
        codes.append(code_of(r.stdout))
    assert all(len(c) == 32 and int(c, 16) >= 0 and not c.startswith("-") for c in codes)
    assert len(set(codes)) == 20
