"""Red team of issue 13's joining and privacy (red2): a bad upgrade backup beside a kiosk's file, a fake central's
malicious join answer, a hand correction racing a door's push of the same person-day, event times far off.
Real SQLite files, a real PostgreSQL server (the `db` fixture), real threads; each test failed before its fix."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kiosk import store
from kiosk.errors import StoreError
from kiosk.store import ingest as ingest_module

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
SCORES = {"happy": 0.918273, "neutral": 0.0817}


def _backup(path: Path, minutes: int) -> Path:
    backup = store.backup_database(path, backups_kept=5, now=T0 + timedelta(minutes=minutes))
    assert backup is not None
    return backup


def _scores_in(path: Path) -> list[Any]:
    con = sqlite3.connect(path)
    try:
        return [r[0] for r in con.execute("SELECT expression_scores FROM attendance_events ORDER BY id")]
    finally:
        con.close()


# --- one bad backup must not shield the others ---------------------------------------------------------------


@pytest.mark.parametrize("fault", ["corrupt", "truncated"])
def test_a_bad_backup_does_not_keep_the_withdrawal_from_the_other_backups(tmp_path: Path, fault: str) -> None:
    """Two backups, the older one corrupt (or cut short by a failing SD card): a consent withdrawal withdraws in the live file, strips
    the good backup, and raises one StoreError naming the bad one and saying the live file is done. Before the
    fix the first bad backup stopped the loop: the good backup kept the scores."""
    path = tmp_path / "kiosk.db"
    with store.open_database(path) as db:
        pid = store.add_person(db, "E1", "Ada", expression_consent=True, now=T0).id
        store.record_event(db, pid, T0, "in", "kiosk", expression_label="happy", expression_scores=SCORES,
                           expression_confidence=0.9)
    bad = _backup(path, 10)
    good = _backup(path, 20)
    data = bad.read_bytes()
    bad.write_bytes(b"\x00garbage" * 4096 if fault == "corrupt" else data[:len(data) // 3])
    with store.open_database(path) as db, pytest.raises(StoreError) as raised:
        store.set_consent(db, pid, False, actor="alice", now=T0 + timedelta(hours=1))
    message = str(raised.value)
    assert bad.name in message and good.name not in message
    assert "live" in message
    with store.open_database(path) as db:
        assert not store.get_person(db, pid).expression_consent
    assert _scores_in(path) == [None]
    assert _scores_in(good) == [None], "the good backup kept the withdrawn person's scores"


# --- a hand correction while a door's push of the same person-day is in flight ---------------------------------

BERLIN = ZoneInfo("Europe/Berlin")
DAY = datetime(2026, 3, 2, tzinfo=BERLIN)
BOTH = pytest.mark.parametrize("db_engine", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)],
                               indirect=True)


def _kinds(db: store.Database, person_id: int) -> list[tuple[str, str]]:
    rows = sorted((e for e in store.events_after(db, 0, 100) if e.person_id == person_id),
                  key=lambda e: (e.occurred_at, e.id))
    return [(e.occurred_at.astimezone(BERLIN).strftime("%H:%M"), e.kind) for e in rows]


@BOTH
def test_a_correction_racing_a_push_of_the_same_day_ends_paired_right(
        db: store.Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """first_last: door A pushes Ada's 08:00 and 17:00; while that push has paired her day but not committed, HR
    adds a check-in at 07:30. The day must end 07:30 in, 08:00 out, 17:00 out. Before the fix, on PostgreSQL
    (READ COMMITTED) each transaction paired the day without the other's rows: 08:00 stayed "in"."""
    pairing = store.Pairing("first_last", BERLIN)
    door = store.add_door(db, "Gate A").door
    ada = store.add_person(db, "E1", "Ada").id
    push_paired, correction_done = threading.Event(), threading.Event()
    original = ingest_module._pair_days

    def paired_then_wait(*args: Any, **kwargs: Any) -> int:
        result = original(*args, **kwargs)
        if threading.current_thread().name == "push":
            push_paired.set()
            correction_done.wait(2.0)  # the correction either finishes meanwhile (the race) or waits for us
        return result

    monkeypatch.setattr(ingest_module, "_pair_days", paired_then_wait)
    errors: list[BaseException] = []

    def push() -> None:
        try:
            store.ingest_events(db, door.id, [
                store.DoorEvent(seq=1, uuid="a-1", person_id=ada, at=DAY.replace(hour=8), kind="in"),
                store.DoorEvent(seq=2, uuid="a-2", person_id=ada, at=DAY.replace(hour=17), kind="in")],
                pairing=pairing, now=DAY.replace(hour=18))
        except BaseException as exc:  # noqa: BLE001 - shown by the assertion below
            errors.append(exc)

    def correct() -> None:
        try:
            store.add_correction(db, ada, DAY.replace(hour=7, minute=30), "in", actor="hr", note="badge forgotten",
                                 now=DAY + timedelta(days=1), pairing=pairing)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            correction_done.set()

    pusher = threading.Thread(target=push, name="push")
    pusher.start()
    assert push_paired.wait(30)
    corrector = threading.Thread(target=correct, name="correct")
    corrector.start()
    pusher.join(60)
    corrector.join(60)
    assert not errors, errors
    assert _kinds(db, ada) == [("07:30", "in"), ("08:00", "out"), ("17:00", "out")]


# --- a wrong or malicious join answer ----------------------------------------------------------------------------


@pytest.mark.parametrize("central_id", [2**31, 2**63 - 1, 10**20])
def test_a_central_id_beyond_the_centrals_range_is_refused_and_nothing_moves(tmp_path: Path, central_id: int) -> None:
    """A central's person ids are 32-bit (PostgreSQL INTEGER). A map giving 2**63 - 1 was applied (the kiosk's next
    own person got a random 19-digit id), 10**20 came out as a bare OverflowError; now RenumberRefused, nothing
    changed, and the next person still gets the next small id."""
    path = tmp_path / "kiosk.db"
    with store.open_database(path) as db:
        for eid in ("E1", "E2"):
            store.add_person(db, eid, eid, now=T0)
        with pytest.raises(store.RenumberRefused, match="nothing was renumbered"):
            store.renumber_people(db, {1: central_id, 2: 5}, actor="join:test")
        assert [p.id for p in store.list_people(db, include_inactive=True)] == [1, 2]
        assert store.renumber_record(db) == {}
        assert store.add_person(db, "E3", "E3", now=T0).id == 3


# --- clock jumps in event times ---------------------------------------------------------------------------------


@BOTH
def test_a_push_with_event_times_at_the_edge_of_the_calendar_is_stored_and_the_rest_paired(db: store.Database) -> None:
    """A door whose clock jumped to year 9999 (or back to year 1) pushes those events with a normal one: before the
    fix the pairing raised OverflowError (date value out of range), so the whole batch was refused every time
    and the door's outbox stuck behind it. Now all three are stored, the odd ones with the door's own kind."""
    pairing = store.Pairing("toggle", ZoneInfo("America/New_York"), cooldown_s=60.0)
    door = store.add_door(db, "Gate A").door
    ada = store.add_person(db, "E1", "Ada").id
    times = [datetime(9999, 12, 31, 23, 0, tzinfo=UTC), datetime(1, 1, 1, 1, 0, tzinfo=UTC),
             datetime(2026, 3, 2, 13, 0, tzinfo=UTC)]
    result = store.ingest_events(db, door.id, [
        store.DoorEvent(seq=n, uuid=f"u-{n}", person_id=ada, at=at, kind="out")
        for n, at in enumerate(times, start=1)], pairing=pairing, now=times[2])
    assert result.stored == 3 and result.last_seq == 3
    kinds = {e.occurred_at.year: e.kind for e in store.events_after(db, 0, 10)}
    assert kinds == {9999: "out", 1: "out", 2026: "in"}
