"""Leave on a real SQLite file: recording, refusals, removal, erasure, retention, export, backups."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from kiosk.config import RetentionSettings
from kiosk.errors import StoreError
from kiosk.store import (
    Database,
    LeaveNotFound,
    NewLeave,
    add_leave,
    add_leave_batch,
    add_person,
    erase_person,
    export_person,
    leave_between,
    list_audit,
    open_database,
    purge_expired,
    record_event,
    remove_leave,
)

T0 = datetime(2026, 6, 15, 7, 0, tzinfo=UTC)
JUNE = date(2026, 6, 1)


def test_add_list_and_remove_leave_with_an_audit_trail(db: Database) -> None:
    ann = add_person(db, "E1", "Ann")
    bob = add_person(db, "E2", "Bob")
    holiday = add_leave(db, ann.id, date(2026, 6, 8), date(2026, 6, 12), "holiday", actor="admin", now=T0)
    add_leave(db, bob.id, date(2026, 6, 10), date(2026, 6, 10), "sick", actor="admin", now=T0)
    assert holiday.days()[0] == date(2026, 6, 8) and len(holiday.days()) == 5 and holiday.covers(date(2026, 6, 12))
    assert [(x.person_id, x.kind) for x in leave_between(db, date(2026, 6, 12), date(2026, 6, 20))] == \
        [(ann.id, "holiday")]
    assert len(leave_between(db, date(2026, 6, 10), date(2026, 6, 10))) == 2
    assert leave_between(db, date(2026, 6, 13), None) == []
    assert [x.kind for x in leave_between(db, person_id=bob.id)] == ["sick"]

    removed = remove_leave(db, holiday.id, actor="manager-ann", now=T0)
    assert removed == holiday and leave_between(db, person_id=ann.id) == []
    actions = [(a.action, a.actor, a.details["kind"]) for a in list_audit(db) if a.action.startswith("leave.")]
    assert sorted(actions) == [("leave.add", "admin", "holiday"), ("leave.add", "admin", "sick"),
                               ("leave.remove", "manager-ann", "holiday")]
    with pytest.raises(LeaveNotFound, match="no leave with id"):
        remove_leave(db, holiday.id, actor="admin")


@pytest.mark.parametrize(("first", "last", "kind", "message"), [
    (date(2026, 6, 9), date(2026, 6, 8), "holiday", "ends .* before it starts"),
    (date(2026, 6, 8), date(2026, 6, 8), "party", "unknown kind of leave 'party'"),
    (date(2026, 1, 1), date(2027, 1, 2), "holiday", "longer than 366 days"),
    (date(2026, 6, 12), date(2026, 6, 20), "sick", "already has holiday leave 2026-06-08 to 2026-06-12"),
])
def test_bad_leave_is_refused_and_nothing_changes(db: Database, first: date, last: date, kind: str,
                                                  message: str) -> None:
    ann = add_person(db, "E1", "Ann")
    add_leave(db, ann.id, date(2026, 6, 8), date(2026, 6, 12), "holiday", actor="admin")
    with pytest.raises(StoreError, match=message):
        add_leave(db, ann.id, first, last, kind, actor="admin")
    assert [(x.first_day, x.last_day) for x in leave_between(db)] == [(date(2026, 6, 8), date(2026, 6, 12))]


def test_leave_is_payroll_data_through_erasure(db: Database) -> None:
    ann = add_person(db, "E1", "Ann")
    bob = add_person(db, "E2", "Bob")
    record_event(db, ann.id, T0, "in", "k1")
    add_leave(db, ann.id, JUNE, JUNE, "holiday", actor="admin")
    add_leave(db, bob.id, JUNE, JUNE, "sick", actor="admin")
    assert export_person(db, ann.id)["leave"][0]["kind"] == "holiday"
    erase_person(db, ann.id, actor="admin")  # events kept for payroll: leave stays with them
    assert [x.person_id for x in leave_between(db)] == [ann.id, bob.id]
    with pytest.raises(StoreError, match="has been erased"):
        add_leave(db, ann.id, date(2026, 7, 1), date(2026, 7, 1), "holiday", actor="admin")
    erase_person(db, bob.id, actor="admin", keep_events=False)  # everything goes
    assert [x.person_id for x in leave_between(db)] == [ann.id]


def test_retention_purges_old_leave_and_then_the_erased_person(db: Database) -> None:
    ann = add_person(db, "E1", "Ann")
    now = datetime(2026, 12, 1, tzinfo=UTC)
    add_leave(db, ann.id, date(2025, 6, 1), date(2025, 6, 5), "holiday", actor="admin")  # > 400 days ago
    add_leave(db, ann.id, date(2026, 11, 2), date(2026, 11, 3), "sick", actor="admin")
    erase_person(db, ann.id, actor="admin")  # no events: the row goes at once, with all leave
    assert leave_between(db) == []
    bob = add_person(db, "E2", "Bob")
    add_leave(db, bob.id, date(2025, 6, 1), date(2025, 6, 5), "holiday", actor="admin")
    recent = add_leave(db, bob.id, date(2026, 11, 2), date(2026, 11, 3), "sick", actor="admin")
    result = purge_expired(db, now, RetentionSettings(attendance_days=400))
    assert leave_between(db) == [recent] and result.leave_deleted == 1
    assert [a.details["leave_deleted"] for a in list_audit(db) if a.action == "retention.purge"] == [1]
    # the door is still in use 400 days on, so the purge trusts that clock (issue 11: not one far ahead of the data)
    record_event(db, bob.id, now + timedelta(days=400), "in", "kiosk-1")
    assert purge_expired(db, now + timedelta(days=400), RetentionSettings(attendance_days=400)) is not None
    assert leave_between(db) == []


def test_erasure_takes_leave_out_of_upgrade_backups_only_with_the_person(tmp_path: Path) -> None:
    from kiosk.store import backup_database

    path = tmp_path / "kiosk.db"
    db = open_database(path)
    ann = add_person(db, "E1", "Ann")
    bob = add_person(db, "E2", "Bob")
    record_event(db, ann.id, T0, "in", "k1")
    add_leave(db, ann.id, JUNE, JUNE, "holiday", actor="admin")
    add_leave(db, bob.id, JUNE, JUNE, "sick", actor="admin")
    db.close()
    backup = backup_database(path, backups_kept=3)
    assert backup is not None
    db = open_database(path)
    erase_person(db, ann.id, actor="admin")  # keeps her events, so her leave stays too
    erase_person(db, bob.id, actor="admin", keep_events=False)
    db.close()
    con = sqlite3.connect(backup)
    assert con.execute("SELECT person_id, kind FROM leave ORDER BY person_id").fetchall() == [(ann.id, "holiday")]
    con.close()


def test_a_batch_is_recorded_whole_or_not_at_all(db: Database) -> None:
    ann = add_person(db, "E1", "Ann")
    bob = add_person(db, "E2", "Bob")
    add_leave(db, bob.id, date(2026, 7, 1), date(2026, 7, 3), "holiday", actor="admin")
    good = NewLeave(ann.id, date(2026, 7, 6), date(2026, 7, 10), "holiday", "line 2")
    batch = [good,
             NewLeave(ann.id, date(2026, 7, 9), date(2026, 7, 9), "sick", "line 3"),  # overlaps line 2
             NewLeave(bob.id, date(2026, 7, 2), date(2026, 7, 2), "sick", "line 4"),  # overlaps stored leave
             NewLeave(bob.id, date(2026, 8, 2), date(2026, 8, 1), "other", "line 5")]
    with pytest.raises(StoreError) as caught:
        add_leave_batch(db, batch, actor="cli")
    assert str(caught.value).splitlines() == [
        "nothing recorded: 3 of 4 leave entries are wrong",
        "line 3: overlaps line 2 (holiday 2026-07-06 to 2026-07-10)",
        "line 4: Bob already has holiday leave 2026-07-01 to 2026-07-03 (leave 1); remove it first to change it",
        "line 5: leave ends (2026-08-01) before it starts (2026-08-02)"]
    assert [x.person_id for x in leave_between(db)] == [bob.id]
    assert [a.action for a in list_audit(db)].count("leave.add") == 1  # Bob's, from before
    added = add_leave_batch(db, [good, NewLeave(bob.id, date(2026, 8, 3), date(2026, 8, 3), "other")], actor="cli")
    assert [(x.person_id, x.kind) for x in added] == [(ann.id, "holiday"), (bob.id, "other")]
    assert len(leave_between(db)) == 3
