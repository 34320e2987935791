"""Enrolment at the kiosk: capture requests in the store, the photo collector and the door's capture
state machine (fake face analyzer, drawn faces), and the door service taking the photos of a person
standing at a replayed door (real face analyzer, real SQLite, in process; slow)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml
from door_helpers import PEOPLE, enrol_people, person_photos, write_config

from kiosk import store
from kiosk.capture import DoorEnrolment, PhotoCollector, crop_around, wait_for_capture
from kiosk.config import RetentionSettings
from kiosk.errors import PersonNotFound
from kiosk.replay_scenes import make_scene
from kiosk.service import KioskService, open_service
from kiosk.vision.faces import DlibFaceAnalyzer, make_analyzer
from kiosk.vision.fake import FakeFace, FakeFaceAnalyzer, blank_frame, draw_face

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def _ask(db: store.Database, employee_id: str = "E9", now: datetime = T0, **kw) -> store.CaptureInfo:
    return store.request_capture(db, employee_id=employee_id, name="Ray Romano", timeout_s=120,
                                 actor="ann", now=now, **kw)


def test_request_lifecycle_one_at_a_time(db: store.Database) -> None:
    first = _ask(db, expression_consent=True)
    assert first.status == "waiting" and first.active and first.expires_at == T0 + timedelta(seconds=120)
    with pytest.raises(store.CaptureBusy, match="already taking photos for Ray Romano \\(E9\\), asked by ann"):
        _ask(db, "E10", now=T0 + timedelta(seconds=5))
    taken = store.take_capture(db, now=T0 + timedelta(seconds=10))
    assert taken is not None and taken.id == first.id and taken.status == "capturing"
    assert taken.expression_consent and not taken.replace
    assert store.take_capture(db, now=T0 + timedelta(seconds=11)).id == first.id  # left by a stopped service
    progress = store.capture_progress(db, first.id, 2, "photo 2 of 5", now=T0 + timedelta(seconds=12))
    assert (progress.photos_taken, progress.message, progress.status) == (2, "photo 2 of 5", "capturing")
    done = store.finish_capture(db, first.id, "done", message="enrolled", now=T0 + timedelta(seconds=20))
    assert done.status == "done" and not done.active and done.finished_at == T0 + timedelta(seconds=20)
    # a finished request is not changed again, and the door is free for the next one
    assert store.finish_capture(db, first.id, "failed", message="late").status == "done"
    second = _ask(db, "E10", now=T0 + timedelta(seconds=30))
    assert store.latest_captures(db, now=T0 + timedelta(seconds=31))[0].id == second.id
    actions = [a.action for a in store.list_audit(db)]
    assert {"capture.request", "capture.start", "capture.done"} <= set(actions)
    with pytest.raises(ValueError):
        store.finish_capture(db, second.id, "waiting")
    with pytest.raises(store.CaptureNotFound):
        store.get_capture(db, 999)


def test_requests_expire_and_can_be_cancelled(db: store.Database) -> None:
    first = _ask(db)
    later = T0 + timedelta(seconds=121)
    assert store.take_capture(db, now=later) is None  # nobody took it up in time
    expired = store.get_capture(db, first.id, now=later)
    assert expired.status == "expired" and "nobody stood at the kiosk" in (expired.message or "")
    second = _ask(db, now=later)  # the door is free again
    cancelled = store.finish_capture(db, second.id, "cancelled", message="cancelled by ann", actor="ann",
                                     now=later)
    assert cancelled.status == "cancelled" and store.take_capture(db, now=later) is None


def test_finished_requests_go_after_a_day_and_with_the_person(db: store.Database) -> None:
    old = _ask(db)
    store.finish_capture(db, old.id, "failed", message="no face", now=T0 + timedelta(seconds=60))
    store.purge_expired(db, T0 + timedelta(hours=23), RetentionSettings())
    assert store.get_capture(db, old.id, now=T0 + timedelta(hours=23)).status == "failed"  # kept a day
    store.purge_expired(db, T0 + timedelta(hours=25), RetentionSettings())
    with pytest.raises(store.CaptureNotFound):
        store.get_capture(db, old.id)
    person = store.add_person(db, "E9", "Ray Romano")
    request = _ask(db, now=datetime.now(UTC))
    store.erase_person(db, person.id, actor="ann", keep_events=False)
    with pytest.raises(store.CaptureNotFound):  # the request named the erased person
        store.get_capture(db, request.id)


@pytest.fixture(scope="module")
def analyzer() -> DlibFaceAnalyzer:
    return make_analyzer()


@pytest.fixture
def fake() -> FakeFaceAnalyzer:
    return FakeFaceAnalyzer()


def test_collector_keeps_one_face_crops_spaced_in_time(fake: FakeFaceAnalyzer) -> None:
    analyzer = fake
    photo = draw_face(blank_frame(), FakeFace(0), 300, (320, 240))
    collector = PhotoCollector(analyzer, analyzer.detect, wanted=2, interval_s=0.5)
    assert collector.offer(np.zeros((480, 640, 3), np.uint8), 0.0) == "look at the camera"
    two = np.concatenate([photo, draw_face(blank_frame(), FakeFace(1), 300, (320, 240))], axis=1)
    assert collector.offer(two, 0.1) == "one person at a time, please"
    assert collector.offer(photo, 0.2).startswith("photo 1 of 2")
    assert collector.offer(photo, 0.4).startswith("photo 1 of 2")  # too soon after the first
    assert collector.offer(photo, 0.8).startswith("photo 2 of 2") and collector.complete
    name, crop = collector.photos[0]
    assert name == "kiosk-1.jpg" and crop.dtype == np.uint8 and crop.shape[2] == 3
    assert crop.shape[0] < photo.shape[0] or crop.shape[1] < photo.shape[1] or crop.shape == photo.shape
    assert crop_around(photo, (100, 200, 200, 100), margin=0.5).shape == (200, 200, 3)
    assert len(analyzer.analyze(crop)) == 1  # the crop still shows the face for enrolment


def _door(tmp_path: Path, photo: Path, analyzer: DlibFaceAnalyzer, linger_s: float = 8.0,
          again: Path | None = None):
    """Enrolled PEOPLE, a scene with `photo` standing at the door (then `again` arriving), a service."""
    db_path = tmp_path / "kiosk.db"
    enrol_people(db_path, analyzer)
    frames = tmp_path / "frames"
    photos = [photo] + ([again] if again else [])
    make_scene(photos, None, frames, 5.0, linger={0: linger_s}, labels=[str(i) for i in range(len(photos))],
               tail_s=1.0)
    settings = write_config(tmp_path / "kiosk.yaml", db_path, frames)
    settings.screen.enabled = False
    return db_path, settings


def _run_door(settings, analyzer: DlibFaceAnalyzer) -> tuple[KioskService, list[str]]:
    """Run the door service (in process) to the end of the replay; (service, screen titles shown)."""
    service = open_service(settings, analyzer=analyzer)
    try:
        service.run()
        return service, [m["title"] for m in service.screen.snapshot()["history"]]
    finally:
        service.close()


@pytest.mark.slow
def test_service_takes_the_photos_and_enrols_the_person_at_the_door(tmp_path: Path,
                                                                   analyzer: DlibFaceAnalyzer) -> None:
    ray = person_photos("Ray_Romano")
    db_path, settings = _door(tmp_path, ray[0], analyzer, again=ray[1])
    with store.open_database(db_path) as db:
        request = store.request_capture(db, employee_id="E9", name="Ray Romano", timeout_s=120, actor="ann",
                                        expression_consent=True)
    service, history = _run_door(settings, analyzer)
    assert service.counts["enrolled_at_kiosk"] == 1
    assert "Welcome, Ray" in history
    with store.open_database(db_path) as db:
        done = store.get_capture(db, request.id)
        assert done.status == "done", done.message
        assert done.photos_taken == settings.enrolment.capture_photos
        person = store.get_person_by_employee_id(db, "E9")
        assert done.person_id == person.id and person.expression_consent
        templates = store.list_templates(db, person.id)
        assert [t.source for t in templates] == [f"kiosk-{i}.jpg" for i in range(1, 6)]
        assert all(t.embedder == settings.recognition.embedder_id() for t in templates)
        assert store.enrolment_images(db, person.id) == []  # keep_enrolment_images is off
        # from then on the kiosk knows him: his arrival after the enrolment is a check-in
        events = store.events_between(db, datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
        assert [e.kind for e in events if e.person_id == person.id] == ["in"]
        assert [e for e in events if e.person_id is None] == []  # never "unknown" while enrolling
        audit = [(a.actor, a.action) for a in store.list_audit(db)]
        assert ("ann (at the kiosk)", "person.add") in audit and ("kiosk", "capture.done") in audit


@pytest.mark.slow
def test_enrolment_at_the_door_refuses_someone_already_enrolled(tmp_path: Path,
                                                               analyzer: DlibFaceAnalyzer) -> None:
    db_path, settings = _door(tmp_path, person_photos(PEOPLE[0])[0], analyzer)
    with store.open_database(db_path) as db:
        request = store.request_capture(db, employee_id="E9", name="Somebody Else", timeout_s=120, actor="ann")
    service, history = _run_door(settings, analyzer)
    assert "Enrolment not finished" in history and service.counts["enrolled_at_kiosk"] == 0
    with store.open_database(db_path) as db:
        failed = store.get_capture(db, request.id)
        assert failed.status == "failed" and "Debbie Reynolds (E1)" in (failed.message or "")
        with pytest.raises(PersonNotFound):
            store.get_person_by_employee_id(db, "E9")
        assert len(store.list_people(db)) == len(PEOPLE)



def _kiosk_cli(config: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK")}
    return subprocess.run([sys.executable, "-m", "kiosk.cli", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.slow
def test_cli_enrols_at_the_kiosk_with_the_service_running(tmp_path: Path, analyzer: DlibFaceAnalyzer) -> None:
    """Two real processes: the door service on a looping scene of Ray at the door, and the CLI."""
    db_path, _ = _door(tmp_path, person_photos("Ray_Romano")[0], analyzer, linger_s=6.0)
    config = tmp_path / "kiosk.yaml"
    settings = write_config(config, db_path, tmp_path / "frames", loop=True)
    data = yaml.safe_load(config.read_text())
    data["enrolment"] = {"capture_timeout_s": 900}  # a loaded test machine can be very slow
    config.write_text(yaml.safe_dump(data))
    args = ("enroll", "--name", "Ray Romano", "--employee-id", "R-1", "--at-kiosk")
    refused = _kiosk_cli(config, *args)  # no service yet: one clear message, nothing queued
    assert refused.returncode == 1 and "nobody can take the photos: service not running" in refused.stderr
    assert "Traceback" not in refused.stderr
    both = _kiosk_cli(config, *args, str(person_photos("Ray_Romano")[1]))
    assert both.returncode == 2 and "not both" in both.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK")}
    log = (tmp_path / "service.log").open("wb")
    service = subprocess.Popen([sys.executable, "-m", "kiosk.service", "--config", str(config)],
                               stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        status = settings.status_path
        deadline = time.monotonic() + 120
        while not (status.exists() and json.loads(status.read_text()).get("state") == "running"):
            assert service.poll() is None and time.monotonic() < deadline, (tmp_path / "service.log").read_text()
            time.sleep(0.5)
        done = _kiosk_cli(config, *args)
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=60)
        log.close()
    assert done.returncode == 0, done.stderr + (tmp_path / "service.log").read_text()[-3000:]
    assert "R-1): stand at the door" in done.stdout and "enrolled with 5 photo(s)" in done.stdout
    assert service.returncode == 0
    with store.open_database(db_path) as db:
        assert store.get_person_by_employee_id(db, "R-1").template_count == 5


def test_waiting_reports_progress_and_ctrl_c_cancels(db: store.Database) -> None:
    request = _ask(db, now=datetime.now(UTC))
    seen: list[tuple[str, int]] = []

    def door(_seconds: float) -> None:  # the service's side, one step per poll
        if not seen[1:]:
            store.take_capture(db)
        else:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        wait_for_capture(db, request.id, lambda c: seen.append((c.status, c.photos_taken)), sleep=door)
    assert seen == [("waiting", 0), ("capturing", 0)]
    cancelled = store.get_capture(db, request.id)
    assert cancelled.status == "cancelled" and cancelled.message == "cancelled from the command line"


def test_door_notices_a_cancel_and_goes_back_to_check_ins(db: store.Database, fake: FakeFaceAnalyzer) -> None:
    from kiosk.config import Settings
    from kiosk.screen import ScreenState

    clock = [100.0]
    screen = ScreenState(message_s=5.0, clock=lambda: clock[0])
    door = DoorEnrolment(db, Settings(), fake, screen, monotonic=lambda: clock[0])
    door.poll()
    assert not door.active and screen.snapshot()["kind"] == "idle"
    request = _ask(db, now=datetime.now(UTC))
    door.poll()  # not due yet: checks once a second
    assert not door.active
    clock[0] += 1.0
    door.poll()
    assert door.active and screen.snapshot()["title"] == "Enrolment: Ray"
    assert store.get_capture(db, request.id).status == "capturing"
    store.finish_capture(db, request.id, "cancelled", message="cancelled by web:ann", actor="web:ann")
    clock[0] += 1.0
    door.poll()
    shown = screen.snapshot()
    assert not door.active and (shown["title"], shown["subtitle"]) == ("Enrolment stopped", "Cancelled by the admin")
    clock[0] += 6.0
    assert screen.snapshot()["kind"] == "idle"


def test_door_ends_a_capture_at_its_deadline(db: store.Database, fake: FakeFaceAnalyzer) -> None:
    from kiosk.config import Settings
    from kiosk.screen import ScreenState

    mono, wall = [100.0], [datetime.now(UTC)]
    screen = ScreenState(clock=lambda: mono[0])
    door = DoorEnrolment(db, Settings(), fake, screen, monotonic=lambda: mono[0], wall_clock=lambda: wall[0])
    request = _ask(db, now=wall[0])
    door.poll()
    assert door.active
    wall[0] += timedelta(seconds=121)  # nobody stood still long enough
    mono[0] += 1.0
    door.poll()
    ended = store.get_capture(db, request.id)
    assert not door.active and ended.status == "expired"
    assert "the photos were not all taken" in (ended.message or "") and "(0 of 5)" in (ended.message or "")
    assert screen.snapshot()["subtitle"] == "Timed out"


def test_a_capture_in_progress_is_not_expired_by_the_store_and_done_always_wins(db: store.Database) -> None:
    request = _ask(db)
    store.take_capture(db, now=T0 + timedelta(seconds=1))
    late = T0 + timedelta(seconds=150)  # past the deadline: the door service decides, not the reader
    assert store.get_capture(db, request.id, now=late).status == "capturing"
    orphaned = store.get_capture(db, request.id, now=T0 + timedelta(seconds=181))
    assert orphaned.status == "expired" and "kiosk service stopped" in (orphaned.message or "")
    done = store.finish_capture(db, request.id, "done", message="enrolled with 5 photo(s)", person_id=None,
                                now=T0 + timedelta(seconds=182))
    assert done.status == "done" and done.message == "enrolled with 5 photo(s) (the request had been expired meanwhile)"
    assert store.finish_capture(db, request.id, "cancelled").status == "done"
