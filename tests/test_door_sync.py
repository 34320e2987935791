"""A door's sync with its central (kiosk.door_sync, kiosk.store door_cache, `kiosk central`): real SQLite
files and a real in-test central over HTTP (tests/central_double.py) with its faults switched on: down for
a while, a lost answer, 503, revoked, slow, a big backlog, a batch too large; the gallery added, removed
(no template bytes left in the file) and consent changed; the door service in process on a replay of drawn
faces; and `kiosk run` as a real process killed with SIGKILL in the middle of an upload."""

from __future__ import annotations

import json
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from central_double import CentralDouble
from cli_helpers import run_cli
from door_helpers import PEOPLE, person_photos, start_kiosk, wait_for, write_config

from kiosk import store
from kiosk.clock import ManualClock
from kiosk.config import Settings
from kiosk.door_status import CentralReport, DoorStatus, read_status_file
from kiosk.door_sync import BACKOFF_MAX_S, DoorSync, event_uuid
from kiosk.service import open_service
from kiosk.vision.faces import load_image, make_analyzer
from kiosk.vision.fake import FakeFace, FakeFaceAnalyzer, fake_embedding, fake_scene

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
DEVICE = "main-entrance"


@pytest.fixture
def central() -> Iterator[CentralDouble]:
    double = CentralDouble().start()
    yield double
    double.stop()


def _settings(tmp_path: Path, url: str, **central: Any) -> Settings:
    return Settings.model_validate({
        "role": "door", "site": {"device_id": DEVICE},
        "database": {"path": str(tmp_path / "kiosk.db")},
        "central": {"url": url, "sync_s": 1.0, "batch": 100, "timeout_s": 2.0, **central}})


@pytest.fixture
def door(tmp_path: Path, central: CentralDouble) -> Iterator[tuple[Settings, store.Database]]:
    """A door's settings (enrolled: token file written) and its database."""
    settings = _settings(tmp_path, central.url)
    settings.token_path.write_text(central.door_token(DEVICE) + "\n")
    db = store.open_database(settings.database.path)
    yield settings, db
    db.close()


def _record(db: store.Database, n: int, start: int = 0, person_id: int | None = None) -> list[int]:
    """n events, one a minute from T0 + start minutes (unknown faces unless person_id); their ids."""
    kind = "unknown" if person_id is None else "in"
    return [store.record_event(db, person_id, T0 + timedelta(minutes=start + i), kind, DEVICE).id for i in range(n)]


def _ids(db: store.Database) -> list[int]:
    return [e.id for e in store.events_after(db, 0, 1_000_000)]


def test_offline_for_a_while_then_back_everything_once_in_order(door, central: CentralDouble) -> None:
    settings, db = door
    central.stop()
    sync = DoorSync(settings)
    _record(db, 5)
    assert sync.run_round() is False
    report = sync.report()
    assert report.online is False and report.pushed_seq == 0 and report.backlog == 5 and "cannot be reached" in (
        report.error or "")
    _record(db, 7, start=5)  # the door keeps checking people in
    assert sync.run_round() is False and sync.failures == 2
    central.start()
    assert sync.run_round() is True
    assert central.held(DEVICE) == _ids(db) and len(_ids(db)) == 12
    report = sync.report()
    assert (report.online, report.pushed_seq, report.backlog, report.error) == (True, 12, 0, None)
    assert store.read_sync_state(settings.database.path).pushed_seq == 12
    sent = central.events[(DEVICE, 3)]
    assert sent["uuid"] == event_uuid(DEVICE, 3, T0 + timedelta(minutes=2)) and sent["at"] == (T0 + timedelta(minutes=2)).isoformat()
    assert sent["kind"] == "unknown" and sent["person_id"] is None


def test_a_lost_answer_means_the_batch_is_sent_again_and_stored_once(door, central: CentralDouble) -> None:
    settings, db = door
    _record(db, 5)
    central.lose_answers = 1
    sync = DoorSync(settings)
    assert sync.run_round() is False
    assert store.read_sync_state(settings.database.path).pushed_seq == 0  # only an answer advances it
    assert central.held(DEVICE) == [1, 2, 3, 4, 5]
    assert sync.run_round() is True
    assert [p.seqs for p in central.pushes] == [[1, 2, 3, 4, 5]] * 2
    assert [p.stored for p in central.pushes] == [5, 0]
    assert central.held(DEVICE) == [1, 2, 3, 4, 5] and sync.state.pushed_seq == 5


def test_503_backs_off_up_to_five_minutes_and_recovers(door, central: CentralDouble) -> None:
    settings, db = door
    _record(db, 2)
    central.unavailable = True
    sync = DoorSync(settings)
    delays = []
    for _ in range(12):
        assert sync.run_round() is False
        delays.append(sync.next_delay(False))
    assert "503" in (sync.report().error or "") and sync.report().online is False
    assert 0.9 <= delays[0] <= 1.1 and 1.8 <= delays[1] <= 2.2 and 3.6 <= delays[2] <= 4.4
    assert max(delays) <= BACKOFF_MAX_S * 1.1 and delays[-1] >= BACKOFF_MAX_S * 0.9
    assert central.events == {}
    central.unavailable = False
    assert sync.run_round() is True and central.held(DEVICE) == [1, 2]
    assert sync.failures == 0 and sync.next_delay(True) == settings.central.sync_s


def test_a_revoked_door_shows_it_and_keeps_its_events_for_later(door, central: CentralDouble, tmp_path: Path) -> None:
    settings, db = door
    central.revoke(settings.token_path.read_text().strip())
    _record(db, 3)
    sync = DoorSync(settings)
    assert sync.run_round() is False
    report = sync.report()
    assert report.revoked and report.online is True and "revoked" in (report.error or "")
    status = DoorStatus(central=report).as_json()
    assert status["central"]["revoked"] is True and DoorStatus.from_json(status).central == report
    _record(db, 2, start=3)  # still checking people in locally
    assert _ids(db) == [1, 2, 3, 4, 5] and central.events == {}
    settings.token_path.write_text(central.door_token(DEVICE))  # enrolled again with a new code
    assert sync.run_round() is True and not sync.report().revoked
    assert central.held(DEVICE) == [1, 2, 3, 4, 5]


def test_a_slow_central_times_out_and_the_batch_is_stored_once(door, central: CentralDouble) -> None:
    settings, db = door
    settings = settings.model_copy(update={"central": settings.central.model_copy(update={"timeout_s": 0.3})})
    _record(db, 4)
    central.slow_s = 1.0
    sync = DoorSync(settings)
    assert sync.run_round() is False and "no answer within 0.3 s" in (sync.report().error or "")
    time.sleep(1.0)  # the slow request finishes on the central after the door gave up on it
    central.slow_s = 0.0
    assert sync.run_round() is True
    assert central.held(DEVICE) == [1, 2, 3, 4] and sync.state.pushed_seq == 4


def test_a_big_backlog_goes_up_in_several_batches_in_order(door, central: CentralDouble) -> None:
    settings, db = door
    rows = [{"person_id": None, "occurred_at": T0 + timedelta(seconds=i), "kind": "unknown", "device_id": DEVICE}
            for i in range(1234)]
    store.bulk_add_events(db, rows)
    sync = DoorSync(settings)
    assert sync.run_round() is True
    assert [len(p.seqs) for p in central.pushes] == [100] * 12 + [34]
    assert [p.backlog for p in central.pushes] == [1234 - 100 * (i + 1) for i in range(12)] + [0]
    assert central.held(DEVICE) == list(range(1, 1235)) and sync.report().backlog == 0
    central.max_batch = 30  # a central that takes less: the door halves its batch until it fits
    _record(db, 70, start=2000)
    assert sync.run_round() is True and sync.batch == 25
    assert central.held(DEVICE) == list(range(1, 1305))


def _bytes_of(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*") if p.is_file())


def test_gallery_added_consent_and_removed_reach_the_door_file(door, central: CentralDouble) -> None:
    settings, db = door
    ada = np.stack([fake_embedding(FakeFace(0, k)) for k in (1, 2, 3)]).astype(np.float32)
    bob = np.stack([fake_embedding(FakeFace(1, k)) for k in (1, 2)]).astype(np.float32)
    central.enrol_person(501, "E501", "Ada Lovelace", ada, consent=True)
    central.enrol_person(502, "E502", "Bob Marley", bob)
    sync = DoorSync(settings)
    before = store.gallery_signature(db)
    assert sync.run_round() is True
    assert store.gallery_signature(db) != before  # the door loop reloads on this
    ids, matrix = store.all_templates(db)
    assert sorted(set(ids.tolist())) == [501, 502] and np.array_equal(matrix[ids == 501], ada)
    assert store.get_person(db, 501).expression_consent and store.get_person(db, 501).name == "Ada Lovelace"
    assert sync.report().gallery_version == 2 == store.read_sync_state(settings.database.path).gallery_version
    # an event of Ada's with expression data, pushed; then she withdraws consent on the central
    store.record_event(db, 501, T0, "in", DEVICE, expression_label="happy", expression_confidence=0.9,
                       match_distance=0.3)
    central.set_consent(501, False)
    assert sync.run_round() is True
    assert central.events[(DEVICE, 1)]["person_id"] == 501
    assert not store.get_person(db, 501).expression_consent
    assert store.events_after(db, 0, 10)[0].expression_label is None
    # Bob is erased on the central: no template of his is left in the door's files
    assert bob[0].tobytes() in _bytes_of(db.path)
    central.remove_person(502)
    assert sync.run_round() is True
    ids, _ = store.all_templates(db)
    assert set(ids.tolist()) == {501} and store.list_templates(db, 502) == []
    assert not store.get_person(db, 502).active
    db.close()
    sync.stop()
    raw = _bytes_of(db.path)
    assert all(t.tobytes() not in raw for t in bob) and ada[0].tobytes() in raw
    assert sync.report().gallery_version == 4


def test_a_full_gallery_replaces_what_the_door_had_and_a_bad_state_file_is_safe(door, central: CentralDouble) -> None:
    settings, db = door
    local = store.add_person(db, "E501", "Old local row")
    store.add_templates(db, local.id, np.ones((1, 128), np.float32))
    leftover = store.add_person(db, "E900", "Left before the door joined")
    store.add_templates(db, leftover.id, np.full((1, 128), 2.0, np.float32))
    central.enrol_person(501, "E501", "Ada", np.stack([fake_embedding(FakeFace(0, 1))]))
    _record(db, 3)
    store.write_sync_state(settings.database.path, store.SyncState(pushed_seq=3, gallery_version=0))
    central.store_events(central.doors[settings.token_path.read_text().strip()],
                         {"events": [{"seq": e.id, "uuid": event_uuid(DEVICE, e.id, e.occurred_at)}
                                     for e in store.events_after(db, 0, 10)]})
    sync = DoorSync(settings)
    assert sync.run_round() is True
    ids, _ = store.all_templates(db)
    assert set(ids.tolist()) == {501}  # the leftovers are not recognised any more
    assert store.get_person(db, local.id).employee_id == f"E501~{local.id}"
    # a state file that cannot be read: the door pushes from 0 again and the central skips the repeats
    store.sync_state_path(settings.database.path).write_text("{not json")
    sync = DoorSync(settings)
    assert sync.state.pushed_seq == 0 and sync.run_round() is True
    assert central.held(DEVICE) == [1, 2, 3] and sync.state.pushed_seq == 3


def test_two_people_swapping_employee_ids_in_one_answer(door, central: CentralDouble) -> None:
    settings, db = door
    one = np.stack([fake_embedding(FakeFace(0, 1))])
    central.enrol_person(501, "E1", "Ada", one)
    central.enrol_person(502, "E2", "Bob", one)
    sync = DoorSync(settings)
    assert sync.run_round() is True
    central.enrol_person(501, "E2", "Ada", one)
    central.enrol_person(502, "E1", "Bob", one)
    assert sync.run_round() is True, sync.report().error
    assert (store.get_person(db, 501).employee_id, store.get_person(db, 502).employee_id) == ("E2", "E1")


def test_a_full_answer_replaces_the_cache_also_when_since_is_past_zero(door, central: CentralDouble) -> None:
    """The central was restored from an older backup: the door's version (4) is newer than the central's (2),
    the central answers `full: true` with its whole gallery, and the door drops everyone it does not list."""
    settings, db = door
    ada, bob, cy = (np.stack([fake_embedding(FakeFace(i, 1))]).astype(np.float32) for i in range(3))
    central.enrol_person(501, "E501", "Ada", ada)
    central.enrol_person(502, "E502", "Bob", bob)
    sync = DoorSync(settings)
    assert sync.run_round() is True
    central.enrol_person(503, "E503", "Cy", cy)  # version 3, then the backup is restored to version 2 ...
    central.set_consent(501, True)
    assert sync.run_round() is True and sync.state.gallery_version == 4
    assert set(store.all_templates(db)[0].tolist()) == {501, 502, 503}
    central.restore(2)
    del central.people[503]  # ... which never had Cy
    central.people[501]["expression_consent"] = False
    pulls = central.requests
    assert sync.run_round() is True
    assert central.requests - pulls == 1  # one pull: the full answer is used as it is
    assert set(store.all_templates(db)[0].tolist()) == {501, 502}
    assert not store.get_person(db, 503).active and not store.get_person(db, 501).expression_consent
    assert sync.state.gallery_version == 2 == sync.report().gallery_version
    assert sync.run_round() is True and set(store.all_templates(db)[0].tolist()) == {501, 502}  # incremental now
    db.close()
    assert cy[0].tobytes() not in _bytes_of(Path(settings.database.path))


def test_the_same_whole_gallery_again_is_not_written_again(door, central: CentralDouble) -> None:
    """A central whose people carry no gallery change yet (version 0, e.g. a synthetic database) answers every
    pull with its whole gallery: the door writes it once, not every round (the door loop would reload)."""
    settings, db = door
    central.enrol_person(501, "E501", "Ada", np.stack([fake_embedding(FakeFace(0, 1))]))
    central.changes.clear()
    sync = DoorSync(settings)
    assert sync.run_round() is True and set(store.all_templates(db)[0].tolist()) == {501}
    signature = store.gallery_signature(db)
    assert sync.run_round() is True and store.gallery_signature(db) == signature
    assert sync.report().last_pull_at is not None


def test_a_legacy_central_without_full_still_gets_a_whole_gallery_when_its_version_went_back(
        door, central: CentralDouble) -> None:
    settings, db = door
    central.legacy = True
    central.enrol_person(501, "E501", "Ada", np.stack([fake_embedding(FakeFace(0, 1))]))
    store.write_sync_state(settings.database.path, store.SyncState(gallery_version=9))
    store.add_person(db, "E777", "Cached long ago")
    sync = DoorSync(settings)
    assert sync.run_round() is True
    assert set(store.all_templates(db)[0].tolist()) == {501} and sync.state.gallery_version == 1
    assert not store.get_person(db, store.get_person_by_employee_id(db, "E777").id).active


def _replace_database(settings: Settings, db: store.Database) -> store.Database:
    """Put a fresh database file where the door's was (the sync state file beside it stays)."""
    db.close()
    path = Path(settings.database.path)
    for p in path.parent.glob(path.name + "*"):
        p.unlink()
    return store.open_database(path)


def test_a_replaced_database_is_noticed_and_a_reused_number_stops_pushing_with_a_conflict(
        door, central: CentralDouble, tmp_path: Path) -> None:
    """The door's file is replaced (a new SD card) but central_sync.json stays: its events 1..3 reuse numbers
    the central holds for other events. Without the check the door would push from 6 and never send them;
    with it the door offers them from 0, the central refuses (409), pushing stops, nothing local is lost,
    the status says what to do; enrolled again under a new name, everything goes up once."""
    settings, db = door
    _record(db, 5)
    sync = DoorSync(settings)
    assert sync.run_round() is True and sync.state.pushed_seq == 5 and sync.state.pushed_at
    db = _replace_database(settings, db)
    try:
        _record(db, 3, start=60)  # ids 1..3 again, other events
        pushes = len(central.pushes)
        assert sync.run_round() is True  # online; the gallery is still pulled
        state = store.read_sync_state(settings.database.path)
        assert state.conflict and "seq 1..3" in state.conflict and state.pushed_seq == 0
        assert central.held(DEVICE) == [1, 2, 3, 4, 5] and len(central.pushes) == pushes  # nothing stored
        report = sync.report()
        assert report.online and "seq_conflict" in (report.error or "") and "kiosk doors add" in (report.error or "")
        _record(db, 1, start=70)
        assert sync.run_round() is True and central.held(DEVICE) == [1, 2, 3, 4, 5]  # pushing has stopped
        assert sync.report().backlog == 4
        assert _ids(db) == [1, 2, 3, 4]  # and nothing is lost here
        config = tmp_path / "kiosk.yaml"
        config.write_text(yaml.safe_dump({"role": "door", "database": {"path": str(settings.database.path)},
                                          "site": {"device_id": DEVICE}, "central": {"url": central.url}}))
        status = run_cli("central", "status", config=config)
        assert status.returncode == 0 and "PUSHING STOPPED" in status.stdout and "kiosk doors add" in status.stdout
        assert json.loads(run_cli("central", "status", "--json", config=config).stdout)["seq_conflict"]
        enrolled = run_cli("central", "enrol", central.url, central.add_door("main-entrance-2"), "--force",
                           config=config)
        assert enrolled.returncode == 0 and "conflict is cleared" in enrolled.stdout, enrolled.stderr
        assert sync.run_round() is True and sync.report().error is None
        assert central.held("main-entrance-2") == [1, 2, 3, 4] and central.held(DEVICE) == [1, 2, 3, 4, 5]
        assert central.events[("main-entrance-2", 1)]["at"] == (T0 + timedelta(minutes=60)).isoformat()
    finally:
        db.close()


def test_a_database_restored_from_an_older_copy_offers_its_events_again(door, central: CentralDouble) -> None:
    """The door's file goes back to a copy holding events 1..3 after 1..5 were pushed: the event at pushed_seq
    is gone, so the door offers 1..3 again (repeats) and the central holds everything once."""
    settings, db = door
    _record(db, 3)
    copy = Path(settings.database.path).with_name("copy.db")
    db.close()
    shutil.copyfile(settings.database.path, copy)
    db = store.open_database(settings.database.path)
    try:
        _record(db, 2, start=3)
        sync = DoorSync(settings)
        assert sync.run_round() is True and sync.state.pushed_seq == 5
    finally:
        db.close()
    for p in Path(settings.database.path).parent.glob("kiosk.db*"):
        p.unlink()
    shutil.copyfile(copy, settings.database.path)
    assert sync.run_round() is True
    assert sync.state.pushed_seq == 3 and central.held(DEVICE) == [1, 2, 3, 4, 5]
    assert [p.stored for p in central.pushes][-1] == 0 and not sync.state.conflict


def test_the_doors_purge_keeps_what_the_central_lacks_and_the_newest_event(door, central: CentralDouble) -> None:
    """A door offline for longer than retention: the purge deletes only acknowledged old events and keeps the
    newest, so the next event gets a new id and nothing unpushed is lost."""
    from kiosk.maintenance import run_purge

    settings, db = door
    settings = settings.model_copy(update={"retention": settings.retention.model_copy(update={"attendance_days": 30})})
    _record(db, 4)  # 1..4 at T0, pushed
    sync = DoorSync(settings)
    assert sync.run_round() is True and sync.state.pushed_seq == 4
    central.stop()
    _record(db, 3, start=10)  # 5..7, never pushed: the central is away for 60 days
    later = T0 + timedelta(days=60)
    store.record_event(db, None, later, "unknown", DEVICE)  # 8, the newest: the purge reads the data's time

    class Target:
        def __init__(self, s: Settings, at: datetime = later) -> None:
            self.db, self.settings, self.clock = db, s, ManualClock(at)

    result = run_purge(Target(settings), "test")
    assert result.events_deleted == 3 and _ids(db) == [4, 5, 6, 7, 8]  # 4 = pushed_seq: the check's anchor
    # everything pushed went too on a door with nothing waiting: the newest row stays, ids go on from it
    central.start()
    assert sync.run_round() is True and central.held(DEVICE) == list(range(1, 9))
    result = run_purge(Target(settings), "test")
    assert _ids(db) == [8] and store.record_event(db, None, later, "unknown", DEVICE).id == 9
    # a standalone kiosk purges as before: everything past retention
    standalone = settings.model_copy(update={"role": "standalone"})
    store.record_event(db, None, later + timedelta(days=40), "unknown", DEVICE)
    run_purge(Target(standalone, later + timedelta(days=40)), "test")
    assert _ids(db) == [10]


@pytest.mark.parametrize("after_s", [None, 90.0])
def test_screen_notice_for_a_revoked_or_long_offline_door(door, central: CentralDouble,
                                                          after_s: float | None) -> None:
    """The offline notice comes central.offline_notice_after_s (default 30 min) after the last good round,
    not before (on the sync's monotonic clock: a wall clock step changes nothing)."""
    from kiosk.screen import ScreenState
    from kiosk.screen.state import OFFLINE_NOTICE, REVOKED_NOTICE

    settings, db = door
    if after_s is None:
        assert settings.central.offline_notice_after_s == 1800.0
    else:
        settings.central.offline_notice_after_s = after_s
    delay = settings.central.offline_notice_after_s
    now = [1000.0]
    sync = DoorSync(settings, monotonic=lambda: now[0])
    screen = ScreenState()
    assert sync.run_round() is True and sync.screen_notice() is None
    now[0] += delay + 5  # online all along: no notice however long since the start
    assert sync.run_round() is True and sync.screen_notice() is None
    central.stop()
    assert sync.run_round() is False
    now[0] += delay - 1
    assert sync.run_round() is False and sync.screen_notice() is None  # a short outage: nobody needs to know
    now[0] += 2
    screen.set_central_notice(sync.screen_notice())
    shown = screen.snapshot()
    assert shown["notice"] == OFFLINE_NOTICE and shown["title"] == "Look at the camera"  # still greeting people
    assert "admin" not in OFFLINE_NOTICE and "central" not in OFFLINE_NOTICE.lower()
    central.start()
    central.revoke(settings.token_path.read_text().strip())
    assert sync.run_round() is False and sync.screen_notice() == REVOKED_NOTICE
    screen.set_db_fault(True)
    screen.set_central_notice(sync.screen_notice())
    assert screen.snapshot()["notice"] != REVOKED_NOTICE and screen.snapshot()["central_notice"] == REVOKED_NOTICE
    settings.token_path.write_text(central.door_token(DEVICE))
    assert sync.run_round() is True and sync.screen_notice() is None


def test_a_door_without_a_central_address_does_not_start(tmp_path: Path) -> None:
    from kiosk.config import ConfigError

    settings = _settings(tmp_path, "")
    with pytest.raises(ConfigError, match="central.url"):
        open_service(settings, analyzer=FakeFaceAnalyzer())
    assert not Path(settings.database.path).exists()


def test_cli_enrol_writes_the_token_0600_and_status_shows_the_sync(tmp_path: Path, central: CentralDouble) -> None:
    config = tmp_path / "kiosk.yaml"
    db_path = tmp_path / "kiosk.db"
    config.write_text(yaml.safe_dump({"role": "door", "database": {"path": str(db_path)},
                                      "site": {"device_id": DEVICE}, "central": {"url": central.url}}))
    code = central.add_door(DEVICE)
    proc = run_cli("central", "enrol", central.url, code, config=config)
    assert proc.returncode == 0, proc.stderr
    token = tmp_path / "door.token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600 and token.read_text().strip() in central.doors
    assert f"enrolled as {DEVICE}" in proc.stdout
    again = run_cli("central", "enrol", central.url, code, config=config)
    assert again.returncode == 1 and "--force" in again.stderr and "Traceback" not in again.stderr
    used = run_cli("central", "enrol", central.url, code, "--force", config=config)
    assert used.returncode == 1 and "used, expired or unknown" in used.stderr
    assert token.read_text().strip() in central.doors  # the token it had is kept
    down = run_cli("central", "enrol", "http://127.0.0.1:9", "x", "--force", config=config)
    assert down.returncode == 1 and "cannot be reached" in down.stderr
    store.open_database(db_path).close()
    status = run_cli("central", "status", "--json", config=config)
    info = json.loads(status.stdout)
    assert info["enrolled"] and info["device_id"] == DEVICE and info["backlog"] == 0 and info["pushed_seq"] == 0
    text = run_cli("central", "status", config=config)
    assert f"enrolled as {DEVICE}" in text.stdout and "gallery version 0" in text.stdout


@pytest.mark.slow
def test_the_door_service_recognises_cached_people_and_pushes_at_once(tmp_path: Path, central: CentralDouble) -> None:
    """open_service with role door in process: the gallery comes from the central, the door loop reloads it,
    a check-in of the central's person 501 is pushed at once; after the central removes 501, nobody is."""
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, (_, image) in enumerate(fake_scene([FakeFace(0)], fps=5.0, empty_s=3.0)):
        cv2.imwrite(str(frames / f"{i:04d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    central.enrol_person(501, "E501", "Ada Lovelace", np.stack([fake_embedding(FakeFace(0, k)) for k in (1, 2, 3)]))
    settings = Settings.model_validate({
        "role": "door", "site": {"device_id": DEVICE, "timezone": "Europe/Berlin"},
        "database": {"path": str(tmp_path / "kiosk.db")},
        "camera": {"type": "replay", "options": {"path": str(frames), "fps": 10}},
        "service": {"clock": "replay", "replay_start": "2026-03-02T08:55:00+01:00", "gallery_check_s": 0.2},
        "screen": {"enabled": False}, "central": {"url": central.url, "sync_s": 60, "timeout_s": 2}})
    settings.token_path.write_text(central.door_token(DEVICE))

    def run_door() -> list[store.EventInfo]:
        service = open_service(settings, analyzer=FakeFaceAnalyzer(settings.recognition))
        try:
            service.run()
            deadline = time.monotonic() + 5  # sync_s is 60: only the nudge after the event pushes it
            while service.sync and service.sync.report().backlog and time.monotonic() < deadline:
                time.sleep(0.05)
            status = service.status()
        finally:
            service.close()
        assert status.central is not None and status.central.online and status.central.gallery_version
        with store.open_database(settings.database.path) as db:
            return store.events_after(db, 0, 100)

    first = run_door()
    assert [(e.person_id, e.kind) for e in first] == [(501, "in")]
    assert central.held(DEVICE) == [first[0].id] and central.events[(DEVICE, first[0].id)]["person_id"] == 501
    central.remove_person(501)
    second = run_door()[1:]
    assert second and all(e.person_id is None for e in second)
    assert central.held(DEVICE) == [e.id for e in first + second]
    saved, _ = read_status_file(settings.status_path)
    assert isinstance(saved.central, CentralReport) and saved.central.pushed_seq == second[-1].id


# -- a real `kiosk run` killed in the middle of an upload ----------------------------------------------------

def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return start_kiosk(["-m", "kiosk.cli", "--config", str(config), "run"], log)


@pytest.mark.slow
def test_kiosk_run_killed_mid_upload_loses_nothing_and_sends_nothing_twice(tmp_path: Path,
                                                                        central: CentralDouble) -> None:
    from kiosk.replay_scenes import make_scene

    analyzer = make_analyzer()
    for pid, name in enumerate(PEOPLE, start=101):
        faces = [analyzer.largest_face(load_image(p)) for p in person_photos(name)[1:]]
        central.enrol_person(pid, f"E{pid}", name.replace("_", " "),
                             np.stack([f.embedding for f in faces if f is not None and f.accepted]))
    frames = tmp_path / "frames"
    make_scene([person_photos(PEOPLE[0])[0]], None, frames, 5.0, empty_s=4.0, tail_s=2.0)
    db_path = tmp_path / "kiosk.db"
    config = tmp_path / "kiosk.yaml"
    write_config(config, db_path, frames, cooldown_s=3600, loop=True)
    data = yaml.safe_load(config.read_text())
    data["camera"]["options"]["fps"] = 10
    data["role"] = "door"
    data["central"] = {"url": central.url, "batch": 100, "sync_s": 0.5, "timeout_s": 5}
    data["service"]["gallery_check_s"] = 0.5
    config.write_text(yaml.safe_dump(data))
    device = data["site"]["device_id"]
    (tmp_path / "door.token").write_text(central.door_token(device))
    with store.open_database(db_path) as db:  # a week offline: 1,000 events waiting before the door starts
        store.bulk_add_events(db, [{"person_id": None, "occurred_at": T0 + timedelta(minutes=i), "kind": "unknown",
                                    "device_id": device} for i in range(1000)])
    log = tmp_path / "door.log"
    central.hold_push = 3  # the third batch is stored, then its answer waits: the door dies meanwhile
    proc = _start(config, log)
    wait_for(central.pushed.is_set, proc, 120, "the third push", log)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    central.release.set()
    assert store.read_sync_state(db_path).pushed_seq == 200  # batch 3 was never acknowledged
    central.hold_push = None

    proc = _start(config, log)
    status = tmp_path / "status.json"

    def all_pushed() -> bool:
        try:
            s, _ = read_status_file(status)
        except (OSError, ValueError):
            return False
        return bool(s.central and s.central.online and s.central.backlog == 0 and s.counts.get("recognised"))

    wait_for(all_pushed, proc, 180, "a recognised check-in and an empty backlog", log)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, log.read_text()[-3000:]
    with store.open_database(db_path) as db:
        local = _ids(db)
        recognised = [e for e in store.events_after(db, 1000, 100) if e.person_id is not None]
    assert recognised and {e.person_id for e in recognised} <= {101, 102}
    held = central.held(device)
    assert sorted(held) == local == held  # every event, in order, once
    sent: dict[int, int] = {}
    for push in central.pushes:
        for seq in push.seqs:
            sent[seq] = sent.get(seq, 0) + 1
    again = sorted(seq for seq, n in sent.items() if n > 1)
    assert again == list(range(201, 301))  # only the batch whose answer was lost went twice
    assert sum(p.stored for p in central.pushes) == len(local)
