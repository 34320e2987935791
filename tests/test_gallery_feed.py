"""The gallery feed: every change a door must know writes a gallery_changes row in its own
transaction, and changes_since() gives each changed person's full state or their removal."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from kiosk import store
from kiosk.config import RetentionSettings
from kiosk.errors import InvalidTemplate
from kiosk.store import Database

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
EMB = np.linspace(-1, 1, 3 * 128, dtype=np.float32).reshape(3, 128)


def version(db: Database) -> int:
    return store.gallery_version(db)


def test_every_change_a_door_must_know_bumps_the_version(db: Database) -> None:
    assert version(db) == 0
    steps = []
    p = store.add_person(db, "E1", "Ann", now=T0)
    steps.append(version(db))
    store.add_templates(db, p.id, EMB[:2], now=T0)
    steps.append(version(db))
    store.add_templates(db, p.id, EMB[2:], replace=True, now=T0)  # re-enrolment
    steps.append(version(db))
    store.set_consent(db, p.id, True, actor="t")
    steps.append(version(db))
    store.rename_person(db, p.id, "Anna", actor="t")
    steps.append(version(db))
    store.deactivate(db, p.id, actor="t")
    steps.append(version(db))
    store.set_active(db, p.id, True, actor="t")
    steps.append(version(db))
    store.erase_person(db, p.id, actor="t")
    steps.append(version(db))
    assert steps == list(range(1, 9))


def test_changes_that_change_nothing_do_not_bump(db: Database) -> None:
    p = store.add_person(db, "E1", "Ann", now=T0)
    v = version(db)
    store.set_consent(db, p.id, False, actor="t")
    store.rename_person(db, p.id, " Ann ", actor="t")
    store.set_active(db, p.id, True, actor="t")
    store.record_event(db, p.id, T0, "in", "kiosk-1")
    with pytest.raises(InvalidTemplate):
        store.add_templates(db, p.id, np.ones((1, 5), np.float32))
    assert version(db) == v


def test_a_rolled_back_enrolment_leaves_no_change(db: Database) -> None:
    with pytest.raises(RuntimeError), db.transaction() as tx:
        p = store.add_person(tx, "E1", "Ann", now=T0)
        store.add_templates(tx, p.id, EMB, now=T0)
        raise RuntimeError("power cut before the commit")
    assert version(db) == 0 and store.changes_since(db, 0).people == []
    with db.transaction() as tx:
        p = store.add_person(tx, "E1", "Ann", now=T0)
        store.add_templates(tx, p.id, EMB, now=T0)
    changes = store.changes_since(db, 0)
    assert changes.version == 2 and [len(x.templates) for x in changes.people] == [3]


def test_changes_since_gives_full_state_and_removals(db: Database) -> None:
    ann = store.add_person(db, "E1", "Ann", now=T0)
    store.add_templates(db, ann.id, EMB, now=T0)
    bob = store.add_person(db, "E2", "Bob", expression_consent=True, now=T0)
    store.add_templates(db, bob.id, EMB[:1], now=T0)
    cid = store.add_person(db, "E3", "Cid", now=T0)
    whole = store.changes_since(db, 0)
    assert whole.full and whole.removed == [] and whole.version == version(db)
    assert [(p.id, p.name, len(p.templates)) for p in whole.people] == [(ann.id, "Ann", 3), (bob.id, "Bob", 1),
                                                                       (cid.id, "Cid", 0)]
    assert np.array_equal(np.frombuffer(whole.people[0].templates[1], "<f4"), EMB[1])
    assert whole.people[1].expression_consent is True

    v = whole.version
    store.record_event(db, cid.id, T0, "in", "kiosk-1")
    store.erase_person(db, cid.id, actor="t")                       # row kept (it has an event)
    store.erase_person(db, bob.id, actor="t", keep_events=False)    # row deleted
    store.rename_person(db, ann.id, "Anna", actor="t")
    step = store.changes_since(db, v)
    assert not step.full and step.version == v + 3
    assert [p.name for p in step.people] == ["Anna"] and len(step.people[0].templates) == 3
    assert step.removed == [bob.id, cid.id]
    # the whole gallery no longer has them (nor any of their templates)
    whole = store.changes_since(db, 0)
    assert [p.id for p in whole.people] == [ann.id] and whole.removed == []
    # the retention purge deleting the erased row later does not resurrect anything
    store.purge_expired(db, T0 + timedelta(days=3000), RetentionSettings(), actor="t")
    assert store.changes_since(db, v).removed == [bob.id, cid.id]
    with pytest.raises(ValueError):
        store.changes_since(db, -1)


def test_since_newer_than_the_central_is_the_whole_gallery(db: Database) -> None:
    store.add_person(db, "E1", "Ann", now=T0)
    answer = store.changes_since(db, 99)
    assert answer.full and [p.name for p in answer.people] == ["Ann"] and answer.version == 1


def test_versions_are_never_handed_out_twice(db: Database) -> None:
    store.add_person(db, "E1", "Ann", now=T0)
    store.add_person(db, "E2", "Bob", now=T0)
    con = sqlite3.connect(db.path)
    con.execute("DELETE FROM gallery_changes WHERE version = 2")  # the newest row gone
    con.commit()
    con.close()
    store.add_person(db, "E3", "Cid", now=T0)
    assert version(db) == 3  # not 2 again: a door that saw 2 would miss Cid


def test_a_large_gallery_comes_whole(db: Database) -> None:
    ids = store.bulk_add_people(db, [(f"E{i:04d}", f"Person {i}") for i in range(1200)], T0)
    for pid in ids[::100]:
        store.add_templates(db, pid, EMB[:1], now=T0)
    whole = store.changes_since(db, 0)
    assert len(whole.people) == 1200 and sum(len(p.templates) for p in whole.people) == 12
