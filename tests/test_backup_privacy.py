"""Privacy reaches the upgrade backups beside a kiosk's SQLite file (`<name>.bak-<UTC time>`), not only the live
file: a consent withdrawal (people.set_consent, a door applying the central's) strips the person's expression data
there, the retention purge deletes old events and strips old expression scores there, and a door's gallery pull
that replaces a local person removes that person's templates there. Each finds the person in a backup as erasure
does (erasure.person_in_backup: a backup keeps the numbering it was written with). Real files, read back with
sqlite3 and as bytes."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kiosk import store
from kiosk.config import RetentionSettings
from kiosk.errors import StoreError
from kiosk.store.migrate import upgrade

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def _scores(seed: int) -> dict[str, float]:
    """Expression scores whose JSON text is recognisable in a file's bytes."""
    return {"happy": 0.918273 + seed * 1e-6, "neutral": 0.0817}


def _template(seed: int) -> np.ndarray:
    """A template (1, 128) float32 whose bytes are recognisable in a file."""
    return (np.arange(128, dtype=np.float32) * 0.011 * seed + 0.29 * seed).astype(np.float32)[None, :]


def _in_file(path: Path, needle: bytes) -> bool:
    return needle in path.read_bytes()


def _expressions(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """{employee id: [(occurred_at, label, scores, confidence)]} of the file at path, and 'consent': [(id, flag)]."""
    con = sqlite3.connect(path)
    try:
        out: dict[str, list[tuple[Any, ...]]] = {}
        for eid, *row in con.execute(
                "SELECT p.employee_id, e.occurred_at, e.expression_label, e.expression_scores, "
                "e.expression_confidence FROM attendance_events e JOIN people p ON p.id = e.person_id "
                "ORDER BY e.occurred_at"):
            out.setdefault(eid, []).append(tuple(row))
        out["consent"] = sorted(con.execute("SELECT employee_id, expression_consent FROM people").fetchall())
        return out
    finally:
        con.close()


def _rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(path)
    try:
        return sorted(tuple(r) for r in con.execute(sql))
    finally:
        con.close()


def _backup(path: Path, minutes: int) -> Path:
    backup = store.backup_database(path, backups_kept=5, now=T0 + timedelta(minutes=minutes))
    assert backup is not None
    return backup


def _with_expressions(db: store.Database, pid: int, seed: int, at: datetime) -> None:
    store.record_event(db, pid, at, "in", "kiosk", expression_label="happy", expression_scores=_scores(seed),
                       expression_confidence=0.9, match_distance=0.3)


# --- consent withdrawal ------------------------------------------------------------------------------------


def test_a_consent_withdrawal_strips_the_persons_expressions_in_every_backup(tmp_path: Path) -> None:
    """E1 and E2 consent and have expression data; a join swaps their ids after the first backup. E1 withdraws
    (live id 2): both backups lose E1's expression data (under 1 in the old one, 2 in the new one) and E1's
    consent flag; E2's stay byte for byte. Before the fix both backups kept E1's scores."""
    path = tmp_path / "kiosk.db"
    with store.open_database(path) as db:
        for seed, eid in ((1, "E1"), (2, "E2")):
            pid = store.add_person(db, eid, f"Person {eid}", expression_consent=True, now=T0).id
            _with_expressions(db, pid, seed, T0 + timedelta(minutes=seed))
    old = _backup(path, 10)
    with store.open_database(path) as db:
        store.renumber_people(db, {1: 2, 2: 1}, actor="join:test")
    new = _backup(path, 20)
    before = {b: _expressions(b) for b in (old, new)}
    e1_scores = f"{_scores(1)['happy']}".encode()
    assert all(_in_file(b, e1_scores) for b in (old, new))

    with store.open_database(path) as db:
        info = store.set_consent(db, 2, False, actor="alice", now=T0 + timedelta(hours=1))
    assert info.employee_id == "E1" and not info.expression_consent
    for backup in (old, new):
        after = _expressions(backup)
        assert after["E1"] == [(before[backup]["E1"][0][0], None, None, None)], backup.name
        assert after["E2"] == before[backup]["E2"], f"E2 changed in {backup.name}"
        assert after["consent"] == [("E1", 0), ("E2", 1)]
        assert not _in_file(backup, e1_scores), f"E1's scores are still in the bytes of {backup.name}"
        assert _in_file(backup, f"{_scores(2)['happy']}".encode())
    assert _expressions(path)["E1"][0][1:] == (None, None, None)

    # withdrawing again changes nothing anywhere (no VACUUM of an unchanged backup)
    stamps = {b: b.stat().st_mtime_ns for b in (old, new)}
    with store.open_database(path) as db:
        store.set_consent(db, 2, False, actor="alice", now=T0 + timedelta(hours=2))
    assert {b: b.stat().st_mtime_ns for b in (old, new)} == stamps


def test_a_door_applying_the_centrals_consent_withdrawal_strips_its_backups(tmp_path: Path) -> None:
    """A door's cache: central people 5 (E1) and 6 (E2) consenting, events with expression data, a backup; the
    central says 5 withdrew: the backup loses 5's expression data too. Before the fix it kept them."""
    path = tmp_path / "door.db"

    def person(pid: int, eid: str, consent: bool) -> store.CachedPerson:
        return store.CachedPerson(pid, eid, f"Person {eid}", True, consent, _template(pid))

    with store.open_database(path) as db:
        store.apply_gallery(db, [person(5, "E1", True), person(6, "E2", True)], [], embedder=None, now=T0)
        _with_expressions(db, 5, 1, T0 + timedelta(minutes=1))
        _with_expressions(db, 6, 2, T0 + timedelta(minutes=2))
    backup = _backup(path, 10)
    before = _expressions(backup)
    with store.open_database(path) as db:
        applied = store.apply_gallery(db, [person(5, "E1", False)], [], embedder=None, now=T0 + timedelta(hours=1))
    after = _expressions(backup)
    assert after["E1"] == [(before["E1"][0][0], None, None, None)]
    assert after["E2"] == before["E2"] and after["consent"] == [("E1", 0), ("E2", 1)]
    assert not _in_file(backup, f"{_scores(1)['happy']}".encode())
    assert applied.backups_scrubbed == 1


# --- a door's gallery pull replacing a local person ------------------------------------------------------


def test_a_local_person_replaced_by_the_centrals_loses_their_templates_in_the_backups(tmp_path: Path) -> None:
    """A kiosk enrolled E1 (local 1) and E2 (local 2) before it became a door; the central's gallery has E1 as
    person 7: local 1 is renamed E1~1 and loses templates, photo and consent in the live file and in the backup
    written before (where it is still E1 at 1); E2's rows there stay. Before the fix the backup kept them."""
    path = tmp_path / "door.db"
    with store.open_database(path) as db:
        for seed, eid in ((1, "E1"), (2, "E2")):
            pid = store.add_person(db, eid, f"Person {eid}", expression_consent=True, now=T0).id
            store.add_templates(db, pid, _template(seed), now=T0)
            store.add_enrolment_image(db, pid, f"photo of {eid}".encode(), now=T0)
    backup = _backup(path, 10)
    owned = ("SELECT 'template', person_id, hex(embedding) FROM face_templates UNION ALL "
             "SELECT 'photo', person_id, hex(image) FROM enrolment_images UNION ALL "
             "SELECT 'consent', person_id, granted FROM consent_history UNION ALL "
             "SELECT 'person', id, employee_id || ' ' || active || ' ' || expression_consent FROM people")
    before = _rows(backup, owned)
    local_e1 = _template(1).tobytes()[:256]
    assert _in_file(backup, local_e1)
    with store.open_database(path) as db:
        applied = store.apply_gallery(db, [store.CachedPerson(7, "E1", "Person E1", True, False, _template(70))],
                                      [], embedder=None, now=T0 + timedelta(hours=1))
        people = {p.employee_id: p for p in store.list_people(db)}
    assert people["E1~1"].template_count == 0 and not people["E1~1"].active and people["E1"].id == 7
    assert not _in_file(path, local_e1)
    assert not _in_file(backup, local_e1), "local E1's template is still in the backup's bytes"
    assert not _in_file(backup, b"photo of E1") and _in_file(backup, b"photo of E2")
    assert _rows(backup, owned) == sorted([r for r in before if r[1] != 1] + [("person", 1, "E1 0 0")])
    assert _in_file(backup, _template(2).tobytes()[:256])
    assert applied.backups_scrubbed == 1

    # a second pull with the same answer finds nothing more to do in the backup
    stamp = backup.stat().st_mtime_ns
    with store.open_database(path) as db:
        store.apply_gallery(db, [store.CachedPerson(7, "E1", "Person E1", True, False, _template(70))], [],
                            embedder=None, now=T0 + timedelta(hours=2))
    assert backup.stat().st_mtime_ns == stamp


# --- the retention purge ---------------------------------------------------------------------------------

RETENTION = RetentionSettings(attendance_days=30, expression_days=7, keep_enrolment_images=False)
EVENTS = "SELECT id, person_id, occurred_at, expression_label, expression_scores FROM attendance_events"
KEPT = {"events": EVENTS, "leave": "SELECT person_id, first_day, last_day FROM leave",
        "people": "SELECT id, employee_id FROM people", "photos": "SELECT person_id FROM enrolment_images"}


def _retention_kiosk(path: Path) -> None:
    """E1 with events 40, 10 and 1 days before T0 (all with expression data), leave 60-50 days before, a photo;
    E2 erased, their only event 40 days before."""
    with store.open_database(path) as db:
        e1 = store.add_person(db, "E1", "Person E1", expression_consent=True, now=T0 - timedelta(days=90)).id
        e2 = store.add_person(db, "E2", "Person E2", now=T0 - timedelta(days=90)).id
        store.add_enrolment_image(db, e1, b"photo of E1", now=T0 - timedelta(days=90))
        for seed, days in ((1, 40), (2, 10), (3, 1)):
            _with_expressions(db, e1, seed, T0 - timedelta(days=days))
        store.record_event(db, e2, T0 - timedelta(days=40), "in", "kiosk")
        first = (T0 - timedelta(days=60)).date()
        store.add_leave(db, e1, first, first + timedelta(days=10), "holiday", actor="alice", now=T0 - timedelta(days=90))
        store.erase_person(db, e2, actor="alice", now=T0 - timedelta(days=20))


@pytest.mark.parametrize("keep_from_id", [None, 2])
def test_the_retention_purge_reaches_every_backup(tmp_path: Path, keep_from_id: int | None) -> None:
    """After the purge each backup holds what the live file holds of the same rows: E1's 40-day-old event and its
    leave gone, the 10-day-old event's expression data stripped, the photo gone, erased E2's event and row gone.
    A door (keep_from_id 2: events from id 2 on not acknowledged by the central) keeps E2's old event (id 4) and
    so E2's row, in the backups too.
    Before the fix the backups kept all of it."""
    path = tmp_path / "kiosk.db"
    _retention_kiosk(path)
    backups = [_backup(path, 1), _backup(path, 2)]
    with store.open_database(path) as db:
        result = store.purge_expired(db, T0, RETENTION, actor="alice", keep_from_id=keep_from_id)
    assert result.refused is None
    assert (result.events_deleted, result.expression_stripped, result.images_deleted) == (
        (2, 1, 1) if keep_from_id is None else (1, 1, 1))
    live = {k: _rows(path, q) for k, q in KEPT.items()}
    assert [e[1:4] for e in live["events"]] == (
        [(1, "2026-10-23 08:00:00.000000", None), (1, "2026-11-01 08:00:00.000000", "happy")]
        if keep_from_id is None else
        [(1, "2026-10-23 08:00:00.000000", None), (1, "2026-11-01 08:00:00.000000", "happy"),
         (2, "2026-09-23 08:00:00.000000", None)])
    assert live["leave"] == [] and live["photos"] == []
    assert live["people"] == ([(1, "E1")] if keep_from_id is None else [(1, "E1"), (2, "E2")])
    for backup in backups:
        assert {k: _rows(backup, q) for k, q in KEPT.items()} == live, backup.name
        for seed, gone in ((1, True), (2, True), (3, False)):
            assert _in_file(backup, f"{_scores(seed)['happy']}".encode()) != gone, (backup.name, seed)
        assert not _in_file(backup, b"photo of E1")
    assert result.backups_purged == 2

    # the next day's purge finds nothing more to do in the backups: none is rewritten
    stamps = [b.stat().st_mtime_ns for b in backups]
    with store.open_database(path) as db:
        again = store.purge_expired(db, T0 + timedelta(hours=1), RETENTION, actor="alice", keep_from_id=keep_from_id)
    assert again.backups_purged == 0 and [b.stat().st_mtime_ns for b in backups] == stamps


def test_a_refused_purge_leaves_the_backups_alone(tmp_path: Path) -> None:
    """A clock years ahead of the data: nothing is deleted in the live file, nor in a backup."""
    path = tmp_path / "kiosk.db"
    _retention_kiosk(path)
    backup = _backup(path, 1)
    before = {k: _rows(backup, q) for k, q in KEPT.items()}
    with store.open_database(path) as db:
        result = store.purge_expired(db, T0 + timedelta(days=3000), RETENTION, actor="alice")
    assert result.refused
    assert {k: _rows(backup, q) for k, q in KEPT.items()} == before
    assert result.backups_purged == 0


def test_the_purge_reaches_a_backup_of_an_old_schema_revision(tmp_path: Path) -> None:
    """`kiosk db upgrade` from revision 0004 (no leave table yet) leaves a backup at 0004 beside the file: the purge
    deletes the old events and the erased person's row there too."""
    path = tmp_path / "kiosk.db"
    upgrade(path, revision="0004")
    con = sqlite3.connect(path)
    con.executescript(
        "INSERT INTO people (id, employee_id, name, active, created_at, expression_consent, erased_at) VALUES "
        "(1, 'E1', 'Person E1', 1, '2026-08-01 08:00:00.000000', 1, NULL), "
        "(2, 'E2', 'Person E2', 0, '2026-08-01 08:00:00.000000', 0, '2026-10-01 08:00:00.000000');"
        "INSERT INTO attendance_events (person_id, occurred_at, kind, device_id, expression_label) VALUES "
        "(1, '2026-09-01 08:00:00.000000', 'in', 'kiosk', 'happy'), "
        "(1, '2026-11-01 08:00:00.000000', 'in', 'kiosk', 'sad'), "
        "(2, '2026-09-01 08:00:00.000000', 'in', 'kiosk', NULL);")
    con.commit()
    con.close()
    result = upgrade(path)
    assert result.backup is not None and result.after == "0009"
    with store.open_database(path) as db:
        purged = store.purge_expired(db, T0, RETENTION)
    assert _rows(result.backup, "SELECT person_id, occurred_at, expression_label FROM attendance_events") == [
        (1, "2026-11-01 08:00:00.000000", "sad")]
    assert _rows(result.backup, "SELECT id, employee_id FROM people") == [(1, "E1")]
    assert purged.backups_purged == 1
    assert _rows(path, "SELECT id, employee_id FROM people") == [(1, "E1")]


def test_an_unreadable_backup_is_named_and_the_live_purge_stands(tmp_path: Path) -> None:
    """A backup that is not a database: the purge of the live file is committed, then one StoreError names the
    backup (delete it by hand); the next purge, with the file gone, runs clean."""
    path = tmp_path / "kiosk.db"
    _retention_kiosk(path)
    bad = path.with_name(f"{path.name}.bak-20261102T080000Z")
    bad.write_bytes(b"not a database" * 100)
    with store.open_database(path) as db, pytest.raises(StoreError, match=bad.name):
        store.purge_expired(db, T0, RETENTION)
    assert _rows(path, "SELECT id FROM people") == [(1,)]
    bad.unlink()
    with store.open_database(path) as db:
        assert store.purge_expired(db, T0, RETENTION).backups_purged == 0


def test_a_rewrite_whose_vacuum_fails_leaves_no_deleted_bytes_behind(tmp_path, monkeypatch) -> None:
    """A full disk can fail the VACUUM after the commit; a retry then changes no row and skips it, so the
    deleted rows' bytes must already be gone from the file's free pages (secure_delete)."""
    import sqlite3 as real_sqlite3

    from kiosk.store import sqlite as sqlite_module

    path = tmp_path / "backup.db"
    secret = b"TEMPLATE-BYTES-OF-THE-ERASED-ONE" * 64
    with real_sqlite3.connect(path) as con:
        con.execute("CREATE TABLE face_templates (person_id INTEGER, embedding BLOB)")
        con.execute("INSERT INTO face_templates VALUES (1, ?)", (secret,))
        con.execute("INSERT INTO face_templates VALUES (2, ?)", (b"other" * 64,))
    con.close()
    assert secret in path.read_bytes()

    class NoVacuum:
        def __init__(self, con: real_sqlite3.Connection) -> None:
            self._con = con

        def execute(self, sql: str, *args: object) -> real_sqlite3.Cursor:
            if sql.strip().upper() == "VACUUM":
                raise real_sqlite3.OperationalError("database or disk is full")
            return self._con.execute(sql, *args)

        def __getattr__(self, name: str) -> object:
            return getattr(self._con, name)

    def connect_as_a_build_without_secure_delete(*args: object, **kwargs: object) -> NoVacuum:
        con = real_connect(*args, **kwargs)
        con.execute("PRAGMA secure_delete = OFF")  # Debian's default is ON; other builds' is OFF
        return NoVacuum(con)

    real_connect = real_sqlite3.connect
    monkeypatch.setattr(sqlite_module.sqlite3, "connect", connect_as_a_build_without_secure_delete)
    with pytest.raises(real_sqlite3.OperationalError):
        sqlite_module.rewrite_file(path, [("face_templates", "DELETE FROM face_templates WHERE person_id = ?", (1,))])
    monkeypatch.undo()
    assert not sqlite_module.rewrite_file(path, [("face_templates", "DELETE FROM face_templates WHERE person_id = ?", (1,))])
    assert secret not in path.read_bytes()
    assert b"other" * 64 in path.read_bytes()
