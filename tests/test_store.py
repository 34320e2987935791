"""Repository functions on real SQLite files: pragmas, people, templates, events, erasure."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.exc import IntegrityError

from kiosk.config import RetentionSettings
from kiosk.errors import DuplicatePerson, InvalidTemplate, PersonNotFound, StoreError
from kiosk.store import (
    Database,
    add_enrolment_image,
    add_person,
    add_templates,
    add_user,
    all_templates,
    audit,
    deactivate,
    enrolment_images,
    erase_person,
    events_between,
    export_person,
    get_person,
    get_person_by_employee_id,
    get_user,
    last_event_for,
    list_audit,
    list_people,
    list_templates,
    local_day_bounds,
    open_database,
    purge_expired,
    record_event,
    rename_person,
    set_consent,
)

T0 = datetime(2026, 6, 15, 7, 0, tzinfo=UTC)
SCORES = {"happy": 0.8, "neutral": 0.2}


def test_pragmas(db: Database) -> None:
    assert db.pragma("journal_mode") == "wal"
    assert db.pragma("foreign_keys") == 1
    assert db.pragma("synchronous") == 2  # FULL
    assert db.pragma("busy_timeout") == 5000
    assert db.pragma("secure_delete") == 1


def test_foreign_keys_are_enforced(db: Database) -> None:
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO face_templates (person_id, embedding, created_at) "
            "VALUES (999, x'00', '2026-01-01 00:00:00')"
        )


def test_people(db: Database) -> None:
    ann = add_person(db, " E1 ", "Ann", now=T0)
    bob = add_person(db, "E2", "Bob", expression_consent=True, actor="admin", now=T0)
    assert ann.employee_id == "E1" and ann.active and not ann.expression_consent
    assert bob.consent_changed_by == "admin" and bob.consent_changed_at == T0
    with pytest.raises(DuplicatePerson, match="E1"):
        add_person(db, "E1", "Someone")
    with pytest.raises(StoreError):
        add_person(db, "", "Nobody")
    assert get_person_by_employee_id(db, "E2").id == bob.id
    with pytest.raises(PersonNotFound):
        get_person_by_employee_id(db, "nope")
    with pytest.raises(PersonNotFound):
        get_person(db, 999)
    deactivate(db, ann.id, actor="admin")
    assert [p.name for p in list_people(db)] == ["Ann", "Bob"]
    assert [p.name for p in list_people(db, include_inactive=False)] == ["Bob"]
    assert get_person(db, ann.id).created_at == T0  # aware UTC round trip
    actions = [a.action for a in list_audit(db, target=f"person:{ann.id}")]
    assert actions == ["person.deactivate", "person.add"]


def test_naive_datetimes_are_refused(db: Database) -> None:
    p = add_person(db, "E1", "Ann")
    with pytest.raises(ValueError, match="naive"):
        record_event(db, p.id, datetime(2026, 1, 1, 9, 0), "in", "k")


def test_templates_round_trip(db: Database) -> None:
    ann = add_person(db, "E1", "Ann")
    bob = add_person(db, "E2", "Bob")
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 128))
    b = rng.normal(size=128).astype(np.float32)
    add_templates(db, ann.id, a, sources=["/home/x/photos/a1.jpg", "a2.jpg", None],
                  qualities=[1.0, None, 3.5])
    add_templates(db, bob.id, b)
    ids, matrix = all_templates(db)
    assert ids.dtype == np.int64 and matrix.dtype == np.float32 and matrix.shape == (4, 128)
    assert ids.tolist() == [ann.id] * 3 + [bob.id]
    np.testing.assert_array_equal(matrix[:3], a.astype(np.float32))
    np.testing.assert_array_equal(matrix[3], b)
    assert [t.source for t in list_templates(db, ann.id)] == ["a1.jpg", "a2.jpg", None]
    assert get_person(db, ann.id).template_count == 3
    add_templates(db, ann.id, a[:1], replace=True)
    assert get_person(db, ann.id).template_count == 1
    deactivate(db, bob.id, actor="admin")
    assert all_templates(db)[0].tolist() == [ann.id]
    with pytest.raises(InvalidTemplate):
        add_templates(db, ann.id, np.zeros((2, 64)))
    with pytest.raises(InvalidTemplate):
        add_templates(db, ann.id, np.full(128, np.nan))
    empty_ids, empty = all_templates(open_database(db.path.with_name("other.db")))
    assert empty_ids.shape == (0,) and empty.shape == (0, 128)


def test_record_event_is_durable_and_respects_consent(db: Database) -> None:
    ann = add_person(db, "E1", "Ann", expression_consent=True)
    bob = add_person(db, "E2", "Bob")
    e1 = record_event(db, ann.id, T0, "in", "k1", expression_label="happy",
                      expression_scores=SCORES, expression_confidence=0.8, match_distance=0.31)
    e2 = record_event(db, bob.id, T0, "in", "k1", expression_label="happy",
                      expression_scores=SCORES, expression_confidence=0.8)
    record_event(db, None, T0, "unknown", "k1")
    assert e1.expression_label == "happy" and e1.expression_scores == SCORES
    assert e2.expression_label is None and e2.expression_scores is None
    assert e2.expression_confidence is None
    # committed: a separate plain connection sees all three rows at once
    con = sqlite3.connect(db.path)
    rows = con.execute(
        "SELECT person_id, kind, expression_label FROM attendance_events ORDER BY id"
    ).fetchall()
    con.close()
    assert rows == [(ann.id, "in", "happy"), (bob.id, "in", None), (None, "unknown", None)]
    with pytest.raises(StoreError):
        record_event(db, None, T0, "in", "k1")
    with pytest.raises(StoreError):
        record_event(db, ann.id, T0, "sideways", "k1")
    with pytest.raises(PersonNotFound):
        record_event(db, 999, T0, "in", "k1")


def test_withdrawing_consent_strips_expression_history(db: Database) -> None:
    ann = add_person(db, "E1", "Ann", expression_consent=True, actor="admin", now=T0)
    record_event(db, ann.id, T0, "in", "k1", expression_label="sad", expression_scores=SCORES)
    p = set_consent(db, ann.id, False, actor="manager", now=T0 + timedelta(hours=1))
    assert not p.expression_consent and p.consent_changed_by == "manager"
    ev = events_between(db, T0, T0 + timedelta(seconds=1))[0]
    assert ev.expression_label is None and ev.expression_scores is None
    history = export_person(db, ann.id)["consent_history"]
    assert [h["granted"] for h in history] == [True, False]


def test_events_between_and_last_event_for(db: Database) -> None:
    ann = add_person(db, "E1", "Ann")
    times = [T0, T0 + timedelta(hours=1), T0 + timedelta(days=1)]
    for t, kind in zip(times, ["in", "out", "in"], strict=True):
        record_event(db, ann.id, t, kind, "k1")
    got = events_between(db, T0, T0 + timedelta(hours=1))  # half-open: excludes the end
    assert [e.occurred_at for e in got] == [T0]
    assert last_event_for(db, ann.id).occurred_at == times[2]  # type: ignore[union-attr]
    assert last_event_for(db, ann.id, date(2026, 6, 15), "Europe/Berlin").kind == "out"  # type: ignore[union-attr]
    assert last_event_for(db, ann.id, date(2026, 6, 14), "Europe/Berlin") is None


def test_local_day_bounds_across_dst() -> None:
    start, end = local_day_bounds(date(2026, 3, 29), "Europe/Berlin")
    assert start == datetime(2026, 3, 28, 23, 0, tzinfo=UTC) and end - start == timedelta(hours=23)
    start, end = local_day_bounds(date(2026, 10, 25), "Europe/Berlin")
    assert end - start == timedelta(hours=25)


def _raw_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*") if p.is_file())


def test_erase_person_leaves_no_biometric_bytes(db: Database) -> None:
    ann = add_person(db, "E1", "Ann", expression_consent=True)
    bob = add_person(db, "E2", "Bob")
    # a distinctive embedding and photo we can look for in the raw file
    emb = (np.arange(128, dtype=np.float32) * 0.0123 + 0.777).astype(np.float32)
    photo = b"\xff\xd8JPEG-OF-ANN" + bytes(range(256)) * 8
    add_templates(db, ann.id, np.stack([emb, emb * 2]), sources=["ann.jpg", "ann2.jpg"])
    add_enrolment_image(db, ann.id, photo, source="ann.jpg")
    add_templates(db, bob.id, np.ones(128))
    record_event(db, ann.id, T0, "in", "k1", expression_label="happy", match_distance=0.3)
    assert emb.tobytes() in _raw_bytes(db.path) and photo[:300] in _raw_bytes(db.path)

    result = erase_person(db, ann.id, actor="admin")
    assert (result.templates_deleted, result.images_deleted) == (2, 1)
    assert result.consent_entries_deleted == 1 and result.events_kept == 1
    raw = _raw_bytes(db.path)
    assert emb.tobytes()[:64] not in raw and (emb * 2).tobytes()[:64] not in raw
    assert photo[:64] not in raw and b"JPEG-OF-ANN" not in raw
    assert enrolment_images(db, ann.id) == []
    assert all_templates(db)[0].tolist() == [bob.id]
    kept = get_person(db, ann.id)
    assert kept.erased_at is not None and not kept.active and not kept.expression_consent
    ev = last_event_for(db, ann.id)
    assert ev is not None and ev.expression_label is None and ev.match_distance is None
    assert [p.name for p in list_people(db)] == ["Bob"]
    with pytest.raises(StoreError):
        add_templates(db, ann.id, emb)
    # once retention removes the events, the bare row goes too (the door is still in use 500 days
    # on, so the purge trusts that clock; issue 11: never one far ahead of the data)
    record_event(db, bob.id, T0 + timedelta(days=500), "in", "k1")
    purge_expired(db, T0 + timedelta(days=500), RetentionSettings())
    with pytest.raises(PersonNotFound):
        get_person(db, ann.id)
    assert list_audit(db, target=f"person:{ann.id}")[0].action == "person.erase"


def test_erase_person_without_keeping_events(db: Database) -> None:
    ann = add_person(db, "E1", "Ann")
    record_event(db, ann.id, T0, "in", "k1")
    result = erase_person(db, ann.id, actor="admin", keep_events=False)
    assert result.row_deleted and result.events_deleted == 1
    assert events_between(db, T0 - timedelta(days=1), T0 + timedelta(days=1)) == []


def test_purge_expired(db: Database) -> None:
    ann = add_person(db, "E1", "Ann", expression_consent=True)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    for days in (500, 40, 5):
        record_event(db, ann.id, now - timedelta(days=days), "in", "k1",
                     expression_label="happy", expression_scores=SCORES)
    add_enrolment_image(db, ann.id, b"photo")
    result = purge_expired(db, now, RetentionSettings(attendance_days=400, expression_days=30))
    assert (result.events_deleted, result.expression_stripped, result.images_deleted) == (1, 1, 1)
    left = events_between(db, now - timedelta(days=1000), now)
    assert [e.expression_label for e in left] == [None, "happy"]
    again = purge_expired(db, now, RetentionSettings(keep_enrolment_images=True))
    assert again.events_deleted == again.expression_stripped == 0


def test_export_person_holds_everything(db: Database) -> None:
    ann = add_person(db, "E1", "Ann", expression_consent=True, actor="admin")
    add_templates(db, ann.id, np.full(128, 0.5), sources=["a.jpg"])
    add_enrolment_image(db, ann.id, b"img")
    record_event(db, ann.id, T0, "in", "k1", expression_label="happy")
    audit(db, "admin", "person.view", f"person:{ann.id}")
    data = export_person(db, ann.id)
    json.dumps(data)  # serialisable
    assert data["person"]["employee_id"] == "E1"
    assert data["face_templates"][0]["embedding"] == [0.5] * 128
    assert data["enrolment_images"][0]["image_base64"] == "aW1n"
    assert data["attendance_events"][0]["kind"] == "in"
    assert {a["action"] for a in data["audit_log"]} >= {"person.add", "person.view"}


def test_users(db: Database) -> None:
    add_user(db, "boss", "hash", "admin")
    assert get_user(db, "boss").role == "admin"  # type: ignore[union-attr]
    assert get_user(db, "nobody") is None
    with pytest.raises(DuplicatePerson):
        add_user(db, "boss", "h", "manager")
    with pytest.raises(StoreError):
        add_user(db, "x", "h", "root")


def test_open_and_upgrade_from_settings(tmp_path: Path) -> None:
    from kiosk.config import Settings
    from kiosk.store import open_from_settings, upgrade_from_settings

    s = Settings.model_validate(
        {"database": {"path": str(tmp_path / "var" / "k.db"), "busy_timeout_ms": 1234}}
    )
    assert upgrade_from_settings(s).before is None
    db = open_from_settings(s)
    assert db.pragma("busy_timeout") == 1234
    db.close()


def test_erasure_reaches_the_upgrade_backups(tmp_path: Path) -> None:
    """A backup made before an upgrade holds the same templates; erasure scrubs it too, also one
    written by an older schema revision (no capture_requests table)."""
    from kiosk.store import backup_database, upgrade

    path = tmp_path / "kiosk.db"
    old = tmp_path / "old.db"
    upgrade(old, revision="0001")
    emb = (np.arange(128, dtype=np.float32) * 0.0321 + 0.555).astype(np.float32)
    con = sqlite3.connect(old)
    con.execute("INSERT INTO people (id, employee_id, name, active, created_at, expression_consent) "
                "VALUES (1, 'E1', 'Ann', 1, '2026-06-15 07:00:00', 1)")
    con.execute("INSERT INTO face_templates (person_id, embedding, created_at) VALUES (1, ?, ?)",
                (emb.tobytes(), "2026-06-15 07:00:00"))
    con.execute("INSERT INTO attendance_events (person_id, occurred_at, kind, device_id, expression_label, "
                "match_distance) VALUES (1, '2026-06-15 07:00:00', 'in', 'k1', 'happy', 0.3)")
    con.commit()
    con.close()
    old.rename(tmp_path / "kiosk.db.bak-20260615T070000Z")
    db = open_database(path)
    ann = add_person(db, "E1", "Ann", expression_consent=True)
    add_templates(db, ann.id, np.stack([emb, emb * 2]))
    record_event(db, ann.id, T0, "in", "k1", expression_label="happy", match_distance=0.3)
    bob = add_person(db, "E2", "Bob")
    add_templates(db, bob.id, np.ones(128))
    db.close()
    newer = backup_database(path, backups_kept=3)
    assert newer is not None
    db = open_database(path)
    backups = sorted(tmp_path.glob("kiosk.db.bak-*"))
    assert len(backups) == 2 and all(emb.tobytes()[:64] in _raw_bytes(b) for b in backups)

    result = erase_person(db, ann.id, actor="admin")
    assert result.backups_scrubbed == 2
    for backup in backups:
        assert emb.tobytes()[:64] not in _raw_bytes(backup) and (emb * 2).tobytes()[:64] not in _raw_bytes(backup)
        con = sqlite3.connect(backup)
        assert con.execute("SELECT count(*) FROM face_templates WHERE person_id = 1").fetchone() == (0,)
        assert con.execute("SELECT erased_at IS NOT NULL, active FROM people WHERE id = 1").fetchone() == (1, 0)
        assert con.execute("SELECT expression_label, match_distance FROM attendance_events "
                           "WHERE person_id = 1").fetchall() == [(None, None)]  # kept for payroll, stripped
        con.close()
    con = sqlite3.connect(newer)  # Bob is untouched in the backup
    assert con.execute("SELECT count(*) FROM face_templates WHERE person_id = ?", (bob.id,)).fetchone() == (1,)
    con.close()
    assert [a.details for a in list_audit(db) if a.action == "person.erase_backups"][0]["backups"] == \
        [b.name for b in backups]
    db.close()


def test_rename_person_keeps_the_id_and_audits(db: Database) -> None:
    ann = add_person(db, "E1", "Anne Smiht")
    renamed = rename_person(db, ann.id, "  Anne   Smith ", actor="admin")
    assert (renamed.name, renamed.employee_id) == ("Anne Smith", "E1")
    assert get_person(db, ann.id).name == "Anne Smith"
    entry = [a for a in list_audit(db) if a.action == "person.rename"][0]
    assert entry.details == {"from": "Anne Smiht", "to": "Anne Smith"}
    with pytest.raises(StoreError, match="1 to 200 characters"):
        rename_person(db, ann.id, "   ", actor="admin")
    assert get_person(db, ann.id).name == "Anne Smith"


# --- the unit of work: db.transaction() ----------------------------------------------------------


def test_a_transaction_commits_every_step_at_once(db: Database) -> None:
    with db.transaction() as tx:
        ann = add_person(tx, "E1", "Ann", now=T0)
        add_templates(tx, ann.id, np.ones((2, 128), np.float32), now=T0)
        with tx.transaction() as inner:  # a nested unit of work joins the outer one
            assert inner is tx
            record_event(inner, ann.id, T0, "in", "kiosk-1")
    assert get_person(db, ann.id).template_count == 2
    assert [a.action for a in list_audit(db)] == ["templates.add", "person.add"]
    assert len(events_between(db, T0, T0 + timedelta(hours=1))) == 1


def test_a_transaction_that_raises_leaves_nothing(db: Database) -> None:
    with pytest.raises(RuntimeError), db.transaction() as tx:
        ann = add_person(tx, "E1", "Ann", expression_consent=True, now=T0)
        add_templates(tx, ann.id, np.ones((1, 128), np.float32), now=T0)
        raise RuntimeError("a later step failed")
    assert list_people(db, include_erased=True) == [] and list_audit(db) == []
    assert all_templates(db)[0].size == 0


def test_a_refused_step_inside_a_transaction_undoes_the_earlier_ones(db: Database) -> None:
    add_person(db, "E2", "Bob", now=T0)
    with pytest.raises(DuplicatePerson), db.transaction() as tx:
        add_person(tx, "E1", "Ann", now=T0)
        add_person(tx, "E2", "Bob again", now=T0)
    assert [p.employee_id for p in list_people(db)] == ["E2"]


def test_steps_that_vacuum_refuse_a_transaction(db: Database) -> None:
    ann = add_person(db, "E1", "Ann", now=T0)
    with db.transaction() as tx:
        with pytest.raises(StoreError, match="transaction"):
            erase_person(tx, ann.id, actor="admin")
        with pytest.raises(StoreError, match="transaction"):
            purge_expired(tx, T0, RetentionSettings())
    assert get_person(db, ann.id).erased_at is None


def test_sqlite_errors_inside_a_transaction_are_translated(tmp_path: Path) -> None:
    from kiosk.errors import DatabaseUnavailable

    db = open_database(tmp_path / "k.db", busy_timeout_ms=50)
    other = sqlite3.connect(tmp_path / "k.db")
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with pytest.raises(DatabaseUnavailable, match="busy"), db.transaction() as tx:
            add_person(tx, "E1", "Ann", now=T0)
        other.rollback()
        assert list_people(db) == []
    finally:
        other.close()
        db.close()


# --- plain records: record_of copies a row's columns into its record ---------------------------


def test_every_plain_record_is_built_from_its_rows_columns() -> None:
    """Each record's fields are attributes of its row model (template_count is given: a count)."""
    from dataclasses import fields

    from kiosk.store import (
        AuditInfo,
        CaptureInfo,
        EventInfo,
        LeaveInfo,
        PersonInfo,
        TemplateInfo,
        UserInfo,
    )
    from kiosk.store.models import (
        AttendanceEvent,
        AuditEntry,
        CaptureRequest,
        FaceTemplate,
        Leave,
        Person,
        User,
    )

    pairs = [(PersonInfo, Person, {"template_count"}), (EventInfo, AttendanceEvent, set()),
             (UserInfo, User, set()), (AuditInfo, AuditEntry, set()), (CaptureInfo, CaptureRequest, set()),
             (LeaveInfo, Leave, set()), (TemplateInfo, FaceTemplate, set())]
    for record, model, given in pairs:
        missing = [f.name for f in fields(record) if f.name not in given and not hasattr(model, f.name)]
        assert missing == [], (record.__name__, missing)


def test_record_of_reads_the_row_and_takes_given_values(db: Database) -> None:
    from dataclasses import replace

    from kiosk.store import PersonInfo
    from kiosk.store._base import record_of
    from kiosk.store.models import Person

    ann = add_person(db, "E1", "Ann", now=datetime(2026, 6, 15, 7, 0, tzinfo=UTC))
    with db.session() as s:
        row = s.get(Person, ann.id)
        again = record_of(PersonInfo, row, template_count=7)
    assert again == replace(ann, template_count=7)
