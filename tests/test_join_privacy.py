"""Privacy after `kiosk central join`: the upgrade backups beside a kiosk's SQLite file keep the numbering they
were written with, so an erasure (erase_person, `kiosk people remove`, a door's gallery removal) finds the person
in each backup by employee id and the recorded renumbering (join.renumbered), never by the live id alone: the
erased person's templates leave every backup and nobody else's rows are touched. Real files, a real central
served over HTTP in a thread, the real `kiosk` command line."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from app_helpers import served_central
from cli_helpers import run_cli

from kiosk import store
from kiosk.config import Settings
from kiosk.store import erasure as erasure_module

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
PEOPLE = ("E1", "E2", "E3")


def _template(employee_id: str) -> np.ndarray:
    """A template (1, 128) float32 whose bytes are recognisable in a file: one per employee id."""
    seed = int(employee_id.lstrip("E"))
    return (np.arange(128, dtype=np.float32) * 0.013 * seed + 0.37 * seed).astype(np.float32)[None, :]


def _owned(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Per table of the file at path, rows as (employee id of their person, something of the row), sorted."""
    queries = {
        "face_templates": "SELECT p.employee_id, hex(t.embedding) FROM face_templates t JOIN people p "
                          "ON p.id = t.person_id",
        "enrolment_images": "SELECT p.employee_id, CAST(i.image AS TEXT) FROM enrolment_images i JOIN people p "
                            "ON p.id = i.person_id",
        "consent_history": "SELECT p.employee_id, c.granted FROM consent_history c JOIN people p "
                           "ON p.id = c.person_id",
        "attendance_events": "SELECT p.employee_id, e.occurred_at, e.expression_label, e.match_distance "
                             "FROM attendance_events e JOIN people p ON p.id = e.person_id",
        "people": "SELECT employee_id, active, expression_consent, erased_at IS NOT NULL FROM people",
    }
    con = sqlite3.connect(path)
    try:
        return {k: sorted(tuple(r) for r in con.execute(q)) for k, q in queries.items()}
    finally:
        con.close()


def _without(owned: dict[str, list[tuple[Any, ...]]], employee_id: str) -> dict[str, list[tuple[Any, ...]]]:
    return {k: [r for r in rows if r[0] != employee_id] for k, rows in owned.items()}


def _ids(path: Path) -> dict[str, int]:
    con = sqlite3.connect(path)
    try:
        return {eid: pid for pid, eid in con.execute("SELECT id, employee_id FROM people")}
    finally:
        con.close()


def _holds(path: Path, employee_id: str) -> bool:
    """Whether the file at path holds the bytes of employee_id's template anywhere."""
    return _template(employee_id).tobytes()[:256] in path.read_bytes()


def _kiosk(path: Path) -> dict[str, int]:
    """A standalone kiosk file with E1..E3 (templates, a photo, E1 consenting, events with expressions)."""
    with store.open_database(path) as db:
        ids = {eid: store.add_person(db, eid, f"Person {eid}", expression_consent=eid == "E1", actor="alice",
                                     now=T0).id for eid in PEOPLE}
        for n, (eid, pid) in enumerate(ids.items()):
            store.add_templates(db, pid, _template(eid), now=T0)
            store.add_enrolment_image(db, pid, f"photo of {eid}".encode(), now=T0)
            store.record_event(db, pid, T0 + timedelta(minutes=n), "in", "kiosk", expression_label="happy",
                               match_distance=0.3)
    return ids


def _backup(path: Path, minutes: int) -> Path:
    backup = store.backup_database(path, backups_kept=5, now=T0 + timedelta(minutes=minutes))
    assert backup is not None
    return backup


def _check_erased(backups: list[Path], before: dict[Path, dict[str, list[tuple[Any, ...]]]], gone: str,
                  *, row_kept: bool = True) -> None:
    """gone's templates, photos and consent left every backup, their events lost expression and match data,
    and every other person's rows in each backup are as they were."""
    for backup in backups:
        after = _owned(backup)
        assert not _holds(backup, gone), f"{gone}'s template is still in {backup.name}"
        assert _without(after, gone) == _without(before[backup], gone), f"someone else changed in {backup.name}"
        for other in {r[0] for r in before[backup]["face_templates"]} - {gone}:
            assert _holds(backup, other), f"{other}'s template left {backup.name}"
        if any(r[0] == gone for r in before[backup]["people"]):
            assert [r for r in after["face_templates"] + after["enrolment_images"] + after["consent_history"]
                    if r[0] == gone] == []
            assert all(r[2:] == (None, None) for r in after["attendance_events"] if r[0] == gone)
            assert [r[1:] for r in after["people"] if r[0] == gone] == ([(0, 0, 1)] if row_kept else [])


def test_an_erasure_after_a_join_scrubs_the_right_person_in_every_backup(tmp_path: Path) -> None:
    """Local 1 and 2 swap (the central's 2 and 1), 3 moves to 7: E1 erased under its new id 2 leaves the backup
    written before the join (where it is 1, and 2 is E2) and the one written after it; E2 and E3 stay whole.
    Before the fix the old backup lost E2's templates and kept E1's."""
    path = tmp_path / "kiosk.db"
    assert _kiosk(path) == {"E1": 1, "E2": 2, "E3": 3}
    old = _backup(path, 1)
    with store.open_database(path) as db:
        moved = store.renumber_people(db, {1: 2, 2: 1, 3: 7}, actor="join:test")
        assert moved.moved == 3
    new = _backup(path, 2)
    assert _ids(old) == {"E1": 1, "E2": 2, "E3": 3} and _ids(new) == {"E1": 2, "E2": 1, "E3": 7}
    before = {b: _owned(b) for b in (old, new)}

    with store.open_database(path) as db:
        result = store.erase_person(db, 2, actor="admin")
    assert result.backups_scrubbed == 2
    _check_erased([old, new], before, "E1")
    assert not _holds(path, "E1") and _holds(path, "E2") and _holds(path, "E3")


def test_erasing_with_events_deletes_the_rows_of_the_right_person_in_the_backups(tmp_path: Path) -> None:
    """Two runs of renumbering (a rotation; then E4, enrolled after it, 4 -> 9): erase_person(keep_events=False)
    deletes E3's rows from each backup under the id it has there, and E4's only from the backup that holds E4."""
    path = tmp_path / "kiosk.db"
    _kiosk(path)
    first = _backup(path, 1)
    with store.open_database(path) as db:
        store.renumber_people(db, {1: 2, 2: 3, 3: 1}, actor="join:test")
        store.add_person(db, "E4", "Late", now=T0)  # id 4: enrolled during the join
        store.add_templates(db, 4, _template("E4"), now=T0)
    second = _backup(path, 2)
    with store.open_database(path) as db:
        assert store.renumber_people(db, {4: 9}, actor="join:test").moved == 1
    assert _ids(first) == {"E1": 1, "E2": 2, "E3": 3} and _ids(second) == {"E1": 2, "E2": 3, "E3": 1, "E4": 4}
    assert _ids(path) == {"E1": 2, "E2": 3, "E3": 1, "E4": 9}
    before = {b: _owned(b) for b in (first, second)}

    with store.open_database(path) as db:
        result = store.erase_person(db, 1, actor="admin", keep_events=False)
    assert result.row_deleted and result.backups_scrubbed == 2
    _check_erased([first, second], before, "E3", row_kept=False)
    assert all("E3" not in _ids(b) for b in (first, second))

    before = {b: _owned(b) for b in (first, second)}
    with store.open_database(path) as db:
        assert store.erase_person(db, 9, actor="admin").backups_scrubbed == 1  # no events: the row goes
    assert _owned(first) == before[first]
    _check_erased([second], before, "E4", row_kept=False)


def test_an_erasure_interrupted_before_a_join_is_finished_on_the_right_person(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The erasure's rows committed, its backups not scrubbed yet (the process died); the join's renumbering
    (`kiosk central join` opens the file without finishing it) moves the erased E2 to a negative id and E3 to
E2's old id: finishing the erasure scrubs E2 in both backups, not E3 in the one written after the join."""
    path = tmp_path / "kiosk.db"
    _kiosk(path)
    old = _backup(path, 1)

    def dies(*_: Any, **__: Any) -> None:
        raise KeyboardInterrupt

    with store.open_database(path) as db:
        monkeypatch.setattr(erasure_module, "finish_erasure", dies)
        with pytest.raises(KeyboardInterrupt):
            store.erase_person(db, 2, actor="admin")
        monkeypatch.undo()
        assert _holds(old, "E2")
        store.renumber_people(db, {1: 1, 3: 2}, actor="join:test")
    assert _ids(path)["E3"] == 2 and _ids(path)["E2"] < 0
    newer = _backup(path, 2)  # written after the renumbering, with the erasure still unfinished
    before = {b: _owned(b) for b in (old, newer)}
    assert _holds(newer, "E3")

    with store.open_database(path) as db:  # as open_from_settings does at the next start
        assert [f.employee_id for f in store.finish_pending_erasures(db)] == ["E2"]
    _check_erased([old, newer], before, "E2")


def test_a_door_removal_after_a_join_scrubs_the_right_person_in_the_backups(tmp_path: Path) -> None:
    """The door's gallery says central person 1 (E2 after the swap) is removed: the backups lose E2's
    templates, under 2 in the one before the join, under 1 in the one after it; E1 keeps theirs."""
    path = tmp_path / "kiosk.db"
    _kiosk(path)
    old = _backup(path, 1)
    with store.open_database(path) as db:
        store.renumber_people(db, {1: 2, 2: 1, 3: 3}, actor="join:test")
    new = _backup(path, 2)
    before = {b: _owned(b) for b in (old, new)}
    with store.open_database(path) as db:
        applied = store.apply_gallery(db, [], [1], embedder=None)
    assert applied.backups_scrubbed == 2
    for backup in (old, new):
        after = _owned(backup)
        assert not _holds(backup, "E2") and _holds(backup, "E1") and _holds(backup, "E3")
        assert _without(after, "E2") == _without(before[backup], "E2")


def test_a_person_whose_key_the_backup_lacks_is_found_by_the_recorded_moves_alone(tmp_path: Path) -> None:
    """scrub_backups without an employee id (a door removing a person it holds no row of) follows the recorded
    moves; with an employee id that a backup's row at that id does not have, that backup is left alone."""
    path = tmp_path / "kiosk.db"
    _kiosk(path)
    old = _backup(path, 1)
    with store.open_database(path) as db:
        store.renumber_people(db, {1: 2, 2: 1, 3: 3}, actor="join:test")
    before = _owned(old)
    assert erasure_module.scrub_backups(path, 3, "E9", delete_events=False) == []  # E9 is nobody there
    assert _owned(old) == before
    assert erasure_module.scrub_backups(path, 1, "", delete_events=False) == [old]  # live 1 is E2: 2 there
    assert not _holds(old, "E2") and _holds(old, "E1") and _holds(old, "E3")
    assert _without(_owned(old), "E2") == _without(before, "E2")


# --- the command line: `kiosk central join` against a real central, then `kiosk people remove` ----------


@pytest.fixture
def central(tmp_path: Path) -> Iterator[tuple[str, store.Database]]:
    """A central (role central, its own SQLite file) served over HTTP on a free port; its URL and database."""
    (tmp_path / "central").mkdir()
    settings = Settings.model_validate({"role": "central", "database": {
        "path": str(tmp_path / "central" / "central.db"), "backups_kept": 0}})
    with served_central(settings) as served:
        yield served


def test_cli_join_says_who_was_renumbered_and_a_later_remove_scrubs_the_right_person(
        tmp_path: Path, central: tuple[str, store.Database]) -> None:
    url, cdb = central
    assert (store.add_person(cdb, "E2", "Person E2").id, store.add_person(cdb, "E1", "Person E1").id) == (1, 2)
    (tmp_path / "kiosk").mkdir()
    path = tmp_path / "kiosk" / "kiosk.db"
    assert _kiosk(path) == {"E1": 1, "E2": 2, "E3": 3}
    with store.open_database(path) as db:
        store.add_person(db, "E4", "Person E4", now=T0)  # local 4, erased: not sent, moves to a negative id
        store.erase_person(db, 4, actor="alice", keep_events=False)
        for n, eid in enumerate(("E5", "E6")):  # erased, rows kept for their events: move to negative ids
            pid = store.add_person(db, eid, f"Person {eid}", now=T0).id
            store.record_event(db, pid, T0 + timedelta(minutes=5 + n), "in", "kiosk")
            store.erase_person(db, pid, actor="alice")
    old = _backup(path, 1)
    config = tmp_path / "kiosk.yaml"
    config.write_text(yaml.safe_dump({"role": "standalone", "site": {"device_id": "kiosk"},
                                      "database": {"path": str(path), "backups_kept": 3},
                                      "central": {"url": url, "timeout_s": 5.0}}))
    code = store.add_door(cdb, "Old kiosk", site="berlin", now=datetime.now(UTC)).code

    joined = run_cli("central", "join", url, code, config=config)
    assert joined.returncode == 0, joined.stderr
    lines = joined.stdout.splitlines()
    # E1 and E2 swap, E3 becomes the central's 3 (new there: its first free id), E5 and E6 (erased) go negative
    assert "renumbered: 2 local people moved to the central's ids" in lines, joined.stdout
    assert ("local only: 2 people erased here moved to negative ids (not sent; no central person has them)"
            in lines), joined.stdout
    ids = _ids(path)
    assert (ids["E1"], ids["E2"], ids["E3"]) == (2, 1, 3) and ids["E5"] < 0 and ids["E6"] < 0
    before = {old: _owned(old)}

    removed = run_cli("people", "remove", "E1", "--yes", config=config)
    assert removed.returncode == 0, removed.stderr
    assert "also in 1 database backup(s)" in removed.stdout
    _check_erased([old], before, "E1")

    again = run_cli("central", "join", url, "spent", config=config)
    assert again.returncode == 0 and "already" in again.stdout and "renumbered" not in again.stdout


def test_cli_join_resumed_after_the_renumbering_says_nobody_moved_again(
        tmp_path: Path, central: tuple[str, store.Database]) -> None:
    """The first run dies after its first batch of events (the renumbering committed); `kiosk central join` run
    again resumes and says that it moved nobody (the counts are this run's, not the first one's again)."""
    from kiosk.central_join import join

    url, cdb = central
    store.add_person(cdb, "E3", "Person E3")  # the central's 1: local 3 -> 1, local 1 and 2 -> 2 and 3
    (tmp_path / "kiosk").mkdir()
    path = tmp_path / "kiosk" / "kiosk.db"
    _kiosk(path)
    config = tmp_path / "kiosk.yaml"
    config.write_text(yaml.safe_dump({"role": "door", "site": {"device_id": "kiosk"},
                                      "database": {"path": str(path), "backups_kept": 3},
                                      "central": {"url": url, "timeout_s": 5.0, "batch": 1}}))

    def dies(seq: int) -> None:
        raise KeyboardInterrupt(seq)

    settings = Settings.model_validate(yaml.safe_load(config.read_text()))
    with pytest.raises(KeyboardInterrupt):
        join(settings, url, store.add_door(cdb, "Old kiosk", site="berlin", now=datetime.now(UTC)).code,
             batch=1, after_batch=dies)
    assert _ids(path) == {"E3": 1, "E1": 2, "E2": 3}

    resumed = run_cli("central", "join", url, "spent", config=config)
    assert resumed.returncode == 0, resumed.stderr
    lines = resumed.stdout.splitlines()
    assert lines[0].startswith("resumed: joined as") and "events 2 stored" in lines[0], resumed.stdout
    assert lines[1:3] == ["renumbered: no local person moved by this run (their ids are the central's already)",
                          "local only: no erased person moved by this run"], resumed.stdout
    assert not any(line.startswith("next:") for line in lines)  # role door already
    assert _ids(path) == {"E3": 1, "E1": 2, "E2": 3}


def test_a_local_person_renamed_by_a_gallery_pull_is_found_in_the_backup_under_the_old_key(tmp_path: Path) -> None:
    """A door enrolled without a join: the central's E2 (its id 9) arrives, the local E2 (id 2) is renamed
    E2~2. Erasing that local row scrubs E2 at 2 in the backup written before (the same row, its old key);
    E1 and E3 stay whole."""
    path = tmp_path / "kiosk.db"
    _kiosk(path)
    old = _backup(path, 1)
    with store.open_database(path) as db:
        store.apply_gallery(db, [store.CachedPerson(9, "E2", "Person E2", True, False, _template("E3") * 0)], [],
                            embedder=None)
        assert store.get_person(db, 2).employee_id == "E2~2"
    before = {old: _owned(old)}
    with store.open_database(path) as db:
        assert store.erase_person(db, 2, actor="admin").backups_scrubbed == 1
    _check_erased([old], before, "E2")
