"""store.renumber_people on a real SQLite file: every row naming a person follows them (a swap and a rotation
included), erased people go to negative ids, a stale map applied again moves nobody twice, a refused or
failed renumbering changes nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select, text

from kiosk import store
from kiosk.errors import StoreError
from kiosk.store import renumber as renumber_module
from kiosk.store.models import CaptureRequest, GalleryChange

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def _kiosk(path: Path) -> tuple[store.Database, list[int]]:
    """A kiosk file with E1..E3 (E1 consenting), rows in every table that names a person."""
    db = store.open_database(path)
    ids = [store.add_person(db, f"E{i}", f"Person {i}", expression_consent=i == 1, actor="alice", now=T0).id
           for i in (1, 2, 3)]
    rng = np.random.default_rng(3)
    for n, pid in enumerate(ids):
        store.add_templates(db, pid, rng.standard_normal((n + 1, 128)).astype(np.float32), now=T0)
        store.add_enrolment_image(db, pid, f"photo of {pid}".encode(), now=T0)
        for k in range(n + 2):
            store.record_event(db, pid, T0 + timedelta(minutes=10 * k + n), "in" if k == 0 else "out", "kiosk")
        store.add_leave(db, pid, date(2026, 12, 1 + 3 * n), date(2026, 12, 2 + 3 * n), "holiday", actor="alice",
                        now=T0)
    with db.session() as s:
        s.add(CaptureRequest(employee_id="E2", name="Person 2", requested_by="alice", requested_at=T0,
                             expires_at=T0 + timedelta(minutes=5), status="done", person_id=ids[1]))
    return db, ids


def _owned(db: store.Database) -> dict[str, list[tuple[Any, ...]]]:
    """Per table, (person id, something identifying the row) sorted: who owns what."""
    queries = {
        "face_templates": "SELECT person_id, length(embedding) FROM face_templates",
        "enrolment_images": "SELECT person_id, CAST(image AS TEXT) FROM enrolment_images",
        "consent_history": "SELECT person_id, granted FROM consent_history",
        "attendance_events": "SELECT person_id, occurred_at FROM attendance_events",
        "leave": "SELECT person_id, first_day FROM leave",
        "capture_requests": "SELECT person_id, employee_id FROM capture_requests",
        "gallery_changes": "SELECT person_id, count(*) FROM gallery_changes GROUP BY person_id",
        "people": "SELECT id, employee_id FROM people",
        "audit": "SELECT target, action FROM audit_log WHERE target LIKE 'person:%' AND action <> 'join.renumber'",
    }
    with db.session() as s:
        return {k: sorted(tuple(r) for r in s.execute(text(q))) for k, q in queries.items()}


def _by_employee(owned: dict[str, list[tuple[Any, ...]]], ids: dict[int, str]) -> dict[str, list[tuple[Any, ...]]]:
    """owned with each person id replaced by the employee id it belonged to (ids: {person id: employee id})."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for table, rows in owned.items():
        if table == "audit":
            out[table] = sorted((ids[int(t.removeprefix("person:"))], a) for t, a in rows)
        else:
            out[table] = sorted((ids[r[0]], *r[1:]) for r in rows)
    return out


def test_every_row_follows_its_person_through_a_rotation(tmp_path: Path) -> None:
    db, ids = _kiosk(tmp_path / "kiosk.db")
    with db:
        assert ids == [1, 2, 3]
        before = _by_employee(_owned(db), {1: "E1", 2: "E2", 3: "E3"})
        done = store.renumber_people(db, {1: 2, 2: 3, 3: 1}, actor="join:test")
        assert (done.moved, done.local_only, done.kept) == (3, 0, 0)
        assert done.rows["attendance_events"] == 2 + 3 + 4 and done.rows["audit_log"] > 0
        assert {p.employee_id: p.id for p in store.list_people(db)} == {"E1": 2, "E2": 3, "E3": 1}
        assert _by_employee(_owned(db), {2: "E1", 3: "E2", 1: "E3"}) == before
        with db.session() as s:
            assert s.execute(text("PRAGMA foreign_key_check")).fetchall() == []
            assert s.scalar(select(GalleryChange.person_id).order_by(GalleryChange.version).limit(1)) == 2
        assert db.pragma("defer_foreign_keys") == 0  # the commit switched it off again
        assert store.renumber_record(db)["settled"] == [1, 2, 3]

        # the same (now stale) map again: everyone is settled, nobody moves (a second rotation would)
        again = store.renumber_people(db, {1: 2, 2: 3, 3: 1}, actor="join:test")
        assert (again.moved, again.kept) == (0, 3)
        assert {p.employee_id: p.id for p in store.list_people(db)} == {"E1": 2, "E2": 3, "E3": 1}
        assert len(store.renumber_record(db)["runs"]) == 1
        assert [a.action for a in store.list_audit(db, limit=1000)].count("join.renumber") == 1


def test_erased_people_move_to_negative_ids_and_stay_erased(tmp_path: Path) -> None:
    db, ids = _kiosk(tmp_path / "kiosk.db")
    with db:
        store.erase_person(db, 3, actor="alice", now=T0)
        store.erase_person(db, 2, actor="alice", now=T0)
        done = store.renumber_people(db, {1: 3}, actor="join:test")  # the central's 3 is E1
        assert (done.moved, done.local_only) == (1, 2)
        people = {p.employee_id: p for p in store.list_people(db, include_inactive=True, include_erased=True)}
        assert people["E1"].id == 3 and people["E1"].erased_at is None
        assert people["E2"].id < 0 and people["E3"].id < 0 and people["E2"].id != people["E3"].id
        assert people["E2"].erased_at is not None and people["E3"].erased_at is not None
        events = store.events_between(db, T0 - timedelta(days=1), T0 + timedelta(days=1))
        assert sorted({e.person_id for e in events if e.person_id is not None}) == sorted(
            [3, people["E2"].id, people["E3"].id])
        assert store.list_audit(db, target=f"person:{people['E3'].id}")
        # a later run leaves the negative ids alone
        assert store.renumber_people(db, {3: 3}, actor="join:test").moved == 0
        assert store.get_person(db, people["E2"].id).erased_at is not None


@pytest.mark.parametrize(("mapping", "why"), [
    ({1: 2, 2: 2, 3: 3}, "not one positive id each"),
    ({1: 0, 2: 2, 3: 3}, "not one positive id each"),
    ({1: 1, 2: 2}, r"person 3 \(E3\) is not known to the central"),
])
def test_a_map_that_cannot_be_applied_changes_nothing(tmp_path: Path, mapping: dict[int, int], why: str) -> None:
    db, _ = _kiosk(tmp_path / "kiosk.db")
    with db:
        before = _owned(db)
        with pytest.raises(store.RenumberRefused, match=why):
            store.renumber_people(db, mapping, actor="join:test")
        assert _owned(db) == before and store.renumber_record(db) == {}


def test_a_target_held_by_a_settled_person_is_refused(tmp_path: Path) -> None:
    db, _ = _kiosk(tmp_path / "kiosk.db")
    with db:
        store.renumber_people(db, {1: 1, 2: 2, 3: 3}, actor="join:test")
        store.add_person(db, "E4", "Late comer", now=T0)  # local 4, enrolled between two runs
        before = _owned(db)
        with pytest.raises(store.RenumberRefused, match="id 2 is held here"):
            store.renumber_people(db, {1: 1, 2: 5, 3: 3, 4: 2}, actor="join:test")
        assert _owned(db) == before
        assert store.renumber_people(db, {1: 1, 2: 2, 3: 3, 4: 9}, actor="join:test").moved == 1
        assert store.get_person_by_employee_id(db, "E4").id == 9


def test_a_renumbering_that_fails_before_its_commit_leaves_everything(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    db, _ = _kiosk(tmp_path / "kiosk.db")
    with db:
        before = _owned(db)

        def dies(*args: object, **kwargs: object) -> None:
            raise RuntimeError("power cut")

        monkeypatch.setattr(renumber_module, "write_audit", dies)  # after every row moved, before the commit
        with pytest.raises(RuntimeError):
            store.renumber_people(db, {1: 2, 2: 1, 3: 3}, actor="join:test")
        assert _owned(db) == before and store.renumber_record(db) == {}
        monkeypatch.undo()
        assert store.renumber_people(db, {1: 2, 2: 1, 3: 3}, actor="join:test").moved == 2


def test_every_column_naming_a_person_is_renumbered() -> None:
    assert sorted(renumber_module.person_id_columns()) == [
        ("attendance_events", "person_id"), ("capture_requests", "person_id"), ("consent_history", "person_id"),
        ("enrolment_images", "person_id"), ("face_templates", "person_id"), ("gallery_changes", "person_id"),
        ("leave", "person_id")]


def test_a_central_database_is_refused(tmp_path: Path) -> None:
    class Central:
        kind = "postgresql"

    with pytest.raises(StoreError, match="SQLite"):
        store.renumber_people(Central(), {}, actor="x")  # type: ignore[arg-type]
