"""Faults found by trying the kiosk again as a new user and as an attacker (beyond issue 11's list):
tracebacks from the CLI, a door service stopped by a full disk, two door services on one database,
names that carry terminal escapes or text-direction overrides. Each test failed on the code before
its fix."""

from __future__ import annotations

import errno
import json
import os
import struct
import sys
import zlib
from pathlib import Path

import pytest
from cli_helpers import CliResult, run_cli, run_cli_process
from net_helpers import busy_port

from kiosk import store
from kiosk.enrolment import EnrolmentError, check_employee_id, load_photos
from kiosk.errors import ImageError, KioskError, StoreError
from kiosk.vision.faces import load_image

pytestmark = pytest.mark.reliability

ROOT = Path(__file__).resolve().parents[2]


def kiosk(config: Path, *args: str) -> CliResult:
    """Run `kiosk --config config ARGS` in this process; KIOSK_* variables of the test run are dropped."""
    return run_cli(*args, config=config, cwd=ROOT)


def kiosk_process(config: Path, *args: str, timeout: float = 120) -> CliResult:
    """Run `kiosk --config config ARGS` as a real process: the door service and the web server hold
    process-wide locks, ports and signal handlers."""
    return run_cli_process(*args, config=config, cwd=ROOT, timeout=timeout)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config for the CLI: Berlin site time, database tmp_path/k.db with one person E1."""
    path = tmp_path / "kiosk.yaml"
    path.write_text(f"site:\n  timezone: Europe/Berlin\ndatabase:\n  path: {tmp_path / 'k.db'}\n")
    with store.open_database(tmp_path / "k.db") as db:
        store.add_person(db, "E1", "Zoë Example")
    return path


def _png(width: int, height: int) -> bytes:
    """A grey PNG header claiming width x height with a tiny (highly compressed) body."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    body = zlib.compress(b"\x00" * (width + 1) * 16, 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


# --- CLI tracebacks -----------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["events", "remove", "99999999999999999999", "--reason", "typo"],
                                  ["leave", "remove", "99999999999999999999"]])
def test_an_id_beyond_sqlite_integers_is_a_usage_error_not_a_traceback(config: Path, args: list[str]) -> None:
    proc = kiosk(config, *args)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "OverflowError" not in proc.stderr, proc.stderr
    assert "99999999999999999999" in proc.stderr


def test_people_show_export_to_a_folder_or_a_missing_folder_is_one_message(config: Path, tmp_path: Path) -> None:
    for target in (tmp_path, tmp_path / "no-such-folder" / "ada.json"):
        proc = kiosk(config, "people", "show", "E1", "--export", str(target))
        assert proc.returncode == 1, proc.stdout
        assert "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.startswith("error: ") and str(target) in proc.stderr
    good = tmp_path / "ada.json"
    assert kiosk(config, "people", "show", "E1", "--export", str(good)).returncode == 0
    assert json.loads(good.read_text(encoding="utf-8"))["person"]["name"] == "Zoë Example"


def test_an_enrolment_photo_that_is_a_decompression_bomb_is_a_verdict_not_a_traceback(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"  # 900 megapixels in a few kB: Pillow raises DecompressionBombError
    bomb.write_bytes(_png(30_000, 30_000))
    huge = tmp_path / "huge.png"  # 64 megapixels (192 MB as RGB): too big for a Pi, below Pillow's limit
    huge.write_bytes(_png(8_000, 8_000))
    for path in (bomb, huge):
        with pytest.raises(ImageError, match="too large"):
            load_image(path)
    photos, unreadable = load_photos([bomb, huge])
    assert photos == [] and [v.ok for v in unreadable] == [False, False]


# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Ada\x1b[2J\x1b[31mLovelace", "Ada\x00Lovelace", "Ada \u202egnp.exe"])
def test_a_name_with_terminal_escapes_or_a_direction_override_is_refused(tmp_path: Path, name: str) -> None:
    with store.open_database(tmp_path / "k.db") as db:
        with pytest.raises(StoreError, match="control or text-direction"):
            store.add_person(db, "E9", name)
        person = store.add_person(db, "E1", "Ada Lovelace")
        with pytest.raises(StoreError, match="control or text-direction"):
            store.rename_person(db, person.id, name, actor="test")
        with pytest.raises(EnrolmentError, match="control or text-direction"):
            check_employee_id(db, name, "E2", replace=False)  # before any photo is analysed
        assert [p.name for p in store.list_people(db)] == ["Ada Lovelace"]


def test_a_name_over_lines_is_one_line_and_lookalike_employee_ids_are_refused(tmp_path: Path) -> None:
    with store.open_database(tmp_path / "k.db") as db:
        assert store.add_person(db, "E1", "Zoë\r\n  Example").name == "Zoë Example"
        for lookalike in ("E1\u200b", "E\u20601", "E1\t2", "E" * 65):
            with pytest.raises(StoreError, match="employee id"):
                store.add_person(db, lookalike, "Someone Else")
            with pytest.raises(EnrolmentError, match="employee id"):
                check_employee_id(db, "Someone Else", lookalike, replace=False)
        assert store.add_person(db, "AB 1234", "Plain Space").employee_id == "AB 1234"
        with pytest.raises(StoreError, match="name is too long"):
            store.add_person(db, "E3", "x" * 201)


# --- the door service ---------------------------------------------------------------------------


def test_a_second_door_service_on_the_same_database_is_refused_and_leaves_the_status_alone(tmp_path: Path) -> None:
    from kiosk.service import DoorLock

    frames = tmp_path / "frames"
    frames.mkdir()
    config = tmp_path / "kiosk.yaml"
    config.write_text(f"site:\n  timezone: Europe/Berlin\ndatabase:\n  path: {tmp_path / 'k.db'}\n"
                      f"camera:\n  type: replay\n  options:\n    path: {frames}\n"
                      "screen:\n  enabled: false\n")
    status = tmp_path / "status.json"
    status.write_text('{"state": "running"}')
    first = DoorLock(tmp_path / "k.db")  # the running door service
    first.acquire()
    try:
        proc = kiosk_process(config, "run", "--stop-after", "1")
    finally:
        first.release()
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"another door service (pid {os.getpid()}) is already running" in proc.stderr
    assert status.read_text() == '{"state": "running"}'  # the first one's status is not overwritten
    again = DoorLock(tmp_path / "k.db")  # released: the next one starts
    again.acquire()
    again.release()


def test_the_screen_port_in_use_is_one_message(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    with busy_port() as port:
        config = tmp_path / "kiosk.yaml"
        config.write_text(f"site:\n  timezone: Europe/Berlin\ndatabase:\n  path: {tmp_path / 'k.db'}\n"
                          f"expression:\n  enabled: false\n"
                          f"camera:\n  type: replay\n  options:\n    path: {frames}\n"
                          f"screen:\n  port: {port}\n")
        proc = kiosk_process(config, "run", "--stop-after", "1")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr


@pytest.mark.slow
def test_a_full_disk_for_the_status_file_does_not_stop_the_door(tmp_path: Path, monkeypatch) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from door_helpers import door_scene, enrol_people, write_config

    from kiosk import door_status
    from kiosk.service import open_service
    from kiosk.vision.faces import make_analyzer

    analyzer = make_analyzer()
    scene = door_scene(tmp_path / "frames", linger_s=4.0, tail_s=0.0)
    ids = enrol_people(tmp_path / "k.db", analyzer)
    settings = write_config(tmp_path / "kiosk.yaml", tmp_path / "k.db", scene.frames)
    settings.screen.enabled = False
    door = open_service(settings, analyzer=analyzer)

    def disk_full(path: Path, data: dict) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(door_status, "write_json_atomic", disk_full)
    try:
        assert door.run() == 0  # the whole replay, no OSError out of the loop
    finally:
        door.close()
    with store.open_database(tmp_path / "k.db") as db:
        events = store.events_between(db, scene_start(), scene_end())
    # A's check-in was followed by a failing status write; B's (and the stranger's) still got recorded.
    assert [e.person_id for e in events] == [*ids.values(), None]
    assert door.counts["events"] == 3


def scene_start():
    from datetime import datetime

    from door_helpers import REPLAY_START

    return datetime.fromisoformat(REPLAY_START)


def scene_end():
    from datetime import timedelta

    return scene_start() + timedelta(hours=1)


# --- the database file --------------------------------------------------------------------------


def test_a_database_path_that_is_a_folder_says_so(config: Path, tmp_path: Path) -> None:
    folder = tmp_path / "folder.db"
    folder.mkdir()
    config.write_text(f"site:\n  timezone: Europe/Berlin\ndatabase:\n  path: {folder}\n")
    for args in (["people", "list"], ["db", "upgrade"]):
        proc = kiosk(config, *args)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert "is a folder, not a database file" in proc.stderr
    with pytest.raises(KioskError, match="is a folder"):
        store.open_database(folder)


# --- the config file ----------------------------------------------------------------------------


def test_a_config_path_that_is_a_device_or_huge_is_one_message_not_a_memory_blowup(tmp_path: Path) -> None:
    from kiosk.config import ConfigError, load_settings

    big = tmp_path / "big.yaml"
    big.write_text("#" * 1_100_000)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_settings(Path("/dev/zero"), environ={})  # read forever before the fix
    with pytest.raises(ConfigError, match="over 1000 kB"):
        load_settings(big, environ={})


def test_demo_dir_that_is_a_file_is_one_message(tmp_path: Path) -> None:
    from kiosk.demo import run_demo

    afile = tmp_path / "kiosk.yaml"
    afile.write_text("site: {}\n")
    for folder in (afile, afile / "sub"):
        with pytest.raises(KioskError, match="give an empty folder"):
            run_demo(folder, say=lambda _line: None)  # FileExistsError / NotADirectoryError before the fix


def test_the_door_screen_shows_the_site_name_as_text_not_markup() -> None:
    import urllib.request

    from kiosk.screen import ScreenServer, ScreenState

    server = ScreenServer(ScreenState(), port=0, title='Office <img src=x onerror="alert(1)">').start()
    try:
        with urllib.request.urlopen(server.url, timeout=10) as response:  # 127.0.0.1 only
            page = response.read().decode("utf-8")
    finally:
        server.stop()
    assert "<img src=x" not in page
    assert "Office &lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page


def test_a_second_web_app_on_a_busy_port_is_one_message_and_runs_no_daily_jobs(tmp_path: Path) -> None:
    with busy_port() as port:
        config = tmp_path / "kiosk.yaml"
        config.write_text(f"site:\n  timezone: Europe/Berlin\ndatabase:\n  path: {tmp_path / 'k.db'}\n"
                          f"web:\n  host: 127.0.0.1\n  port: {port}\n")
        proc = kiosk_process(config, "serve", timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr
    with store.open_database(tmp_path / "k.db") as db:
        assert not [a for a in store.list_audit(db, limit=50) if "purge" in a.action]


# --- leave import -------------------------------------------------------------------------------


def test_a_huge_leave_csv_is_refused_before_parsing_not_gigabytes_of_memory(tmp_path: Path) -> None:
    from kiosk.leave_csv import MAX_CSV_BYTES, parse_leave_csv, read_leave_csv

    line = b"NOPE,2026-12-02\n"
    data = b"employee_id,first_day\n" + line * (MAX_CSV_BYTES // len(line) + 1)
    big = tmp_path / "hr.csv"
    big.write_bytes(data)
    with store.open_database(tmp_path / "k.db") as db:
        # Before the fix every line was parsed (a 100 MB upload took 3.5 GB), then listed as wrong.
        with pytest.raises(KioskError, match="is over 2 MB"):
            parse_leave_csv(data, db, "hr.csv")
        with pytest.raises(KioskError, match="is over 2 MB"):
            read_leave_csv(big, db)


def test_large_enrolment_photos_are_analysed_shrunk_not_at_40_megapixels(tmp_path: Path) -> None:
    """Twelve 6000x6600 JPEGs of 0.6 MB each (7 MB, under the upload limit) took the web app to 3.8 GB of
    memory and ten minutes of CPU; they are decoded at a reduced scale now, on the web and the CLI."""
    import io

    from PIL import Image

    from kiosk.vision.faces import PHOTO_MAX_SIDE
    from kiosk.web.uploads import UploadLimits, decode_photos

    buf = io.BytesIO()
    Image.new("RGB", (6000, 6600), (128, 128, 128)).save(buf, "JPEG", quality=10)
    data = buf.getvalue()
    photos = decode_photos([(f"p{i}.jpg", data) for i in range(12)], UploadLimits())
    assert all(max(p.image.shape[:2]) <= PHOTO_MAX_SIDE for p in photos)
    assert photos[0].image.shape[1] * 6600 == pytest.approx(photos[0].image.shape[0] * 6000, rel=0.01)
    path = tmp_path / "big.jpg"
    path.write_bytes(data)
    images, unreadable = load_photos([path])
    assert unreadable == [] and max(images[0][1].shape[:2]) <= PHOTO_MAX_SIDE


def test_a_correction_reason_with_terminal_escapes_is_refused(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    with store.open_database(tmp_path / "k.db") as db:
        person = store.add_person(db, "E1", "Ada Lovelace")
        at = datetime.now(UTC) - timedelta(hours=1)
        with pytest.raises(StoreError, match="control or text-direction"):
            store.add_correction(db, person.id, at, "in", actor="web:admin", note="forgot\x1b]0;pwned\x07",
                                 retention_days=400)
        event = store.add_correction(db, person.id, at, "in", actor="web:admin", note="forgot to\n check in",
                                     retention_days=400)
        assert event.note == "forgot to check in"
        with pytest.raises(StoreError, match="control or text-direction"):
            store.remove_event(db, event.id, actor="web:admin", reason="typo\x1b[2J")


def test_a_backup_named_like_the_databases_journal_is_refused_not_deleted_at_the_next_open(config: Path,
                                                                                           tmp_path: Path) -> None:
    journal = tmp_path / "k.db-journal"
    proc = kiosk(config, "db", "backup", str(journal))  # reported success, then the next open deleted it
    assert proc.returncode == 1, proc.stdout
    assert "SQLite uses for the database's own files" in proc.stderr
    assert not journal.exists()
    assert kiosk(config, "people", "list").returncode == 0


def test_people_show_export_never_overwrites_a_file_such_as_the_database(config: Path, tmp_path: Path) -> None:
    database = tmp_path / "k.db"
    before = database.read_bytes()
    proc = kiosk(config, "people", "show", "E1", "--export", str(database))  # a typo for person.json
    assert proc.returncode == 1 and "exists; choose a new file name" in proc.stderr, proc.stderr
    assert database.read_bytes() == before  # was overwritten with JSON: every record gone
    assert kiosk(config, "people", "list").returncode == 0


@pytest.mark.parametrize("damage", ["folder", "binary"])
def test_a_damaged_web_secret_key_file_is_one_message(tmp_path: Path, damage: str) -> None:
    from kiosk.config import load_settings
    from kiosk.web.app import _secret_key

    config = tmp_path / "kiosk.yaml"
    config.write_text(f"database:\n  path: {tmp_path / 'k.db'}\n")
    key = tmp_path / "web_secret.key"
    if damage == "folder":
        key.mkdir()
    else:
        key.write_bytes(bytes(range(256)) * 2)
    with pytest.raises(KioskError, match="delete it to make a new one"):
        _secret_key(load_settings(config, environ={}))  # IsADirectoryError / UnicodeDecodeError before


def test_enrolling_from_a_whole_photo_library_is_refused_before_decoding(tmp_path: Path) -> None:
    """Every photo of an enrolment is decoded and held at once: 500 phone photos took gigabytes."""
    from kiosk.enrolment import MAX_PHOTOS

    library = tmp_path / "library"
    library.mkdir()
    for i in range(MAX_PHOTOS + 1):
        (library / f"IMG_{i:04d}.jpg").write_bytes(b"not decoded")
    with pytest.raises(KioskError, match=f"{MAX_PHOTOS + 1} photos given: at most {MAX_PHOTOS}"):
        load_photos([library])


def test_evaluate_faces_cache_never_overwrites_a_file_that_is_no_cache(tmp_path: Path) -> None:
    from kiosk.evaluation.faces import load_embedding_cache, save_embedding_cache

    database = tmp_path / "kiosk.db"
    with store.open_database(database):
        pass
    before = database.read_bytes()
    with pytest.raises(KioskError, match="no embedding cache"):  # was ignored, then overwritten after the run
        load_embedding_cache(database, "key")
    assert database.read_bytes() == before
    cache = tmp_path / "cache.npz"
    save_embedding_cache(cache, "key", {"a.jpg": None})
    assert load_embedding_cache(cache, "key") == {"a.jpg": None}
    assert load_embedding_cache(cache, "other settings") == {}


def test_a_restored_backup_does_not_bring_back_a_signed_out_web_session(tmp_path: Path) -> None:
    from datetime import timedelta

    from kiosk.store import end_session, session_user, start_session
    from kiosk.web.auth import create_user

    live = tmp_path / "k.db"
    with store.open_database(live) as db:
        user = create_user(db, "alice", "a long enough password", "admin", actor="test")
        token = start_session(db, user.id, timedelta(hours=12))  # a cookie someone copies
    copy = store.write_offsite_copy(live, tmp_path / "copy.db").path
    with store.open_database(live) as db:
        end_session(db, token)  # alice signs out: the copied cookie stops working
    copy.replace(live)  # the SD card fails; the copy is restored (same web_secret.key beside it)
    for suffix in ("-wal", "-shm"):
        Path(f"{live}{suffix}").unlink(missing_ok=True)
    with store.open_database(live) as db:
        assert session_user(db, token, timedelta(hours=12)) is None  # was alice again before the fix


# --- the database file replaced under a running process -------------------------------------------


def _replace_by_rename(live: Path) -> None:
    """Restore a copy the way `mv copy.db kiosk.db` does while a process has the old file open."""
    copy = store.write_offsite_copy(live, live.with_name("copy.db")).path
    copy.replace(live)


def test_the_web_app_refuses_to_write_to_a_database_file_that_was_replaced(tmp_path: Path) -> None:
    from kiosk.config import load_settings
    from kiosk.web import create_app

    config = tmp_path / "kiosk.yaml"
    config.write_text(f"database:\n  path: {tmp_path / 'k.db'}\n")
    app = create_app(load_settings(config, environ={}), secret_key="x" * 32)
    client = app.test_client()
    assert client.get("/login").status_code == 200
    _replace_by_rename(tmp_path / "k.db")
    r = client.get("/login")  # was 200, and every change went to the unlinked file
    assert r.status_code == 503 and "systemctl restart kiosk-web" in r.get_data(as_text=True)
    app.extensions["kiosk"].db.close()


@pytest.mark.slow
def test_the_door_stops_when_its_database_file_is_deleted_instead_of_losing_check_ins(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from door_helpers import door_scene, enrol_people, write_config

    from kiosk.service import open_service
    from kiosk.vision.faces import make_analyzer

    analyzer = make_analyzer()
    scene = door_scene(tmp_path / "frames", linger_s=4.0, tail_s=0.0)
    state = tmp_path / "state"
    state.mkdir()
    enrol_people(state / "k.db", analyzer)
    settings = write_config(tmp_path / "kiosk.yaml", state / "k.db", scene.frames)
    settings.screen.enabled = False
    door = open_service(settings, analyzer=analyzer)
    try:
        for path in state.iterdir():  # `rm -rf /var/lib/kiosk/*` or a failed mount: the door must notice
            path.unlink()
        code = door.run()
    finally:
        door.close()
    assert code == 1  # systemd restarts it on the file now at database.path
    assert door.counts["events"] == 0  # before the fix: all check-ins "recorded" in the unlinked file


def test_usernames_that_differ_only_in_case_are_refused(tmp_path: Path) -> None:
    from kiosk.errors import DuplicatePerson
    from kiosk.web.auth import create_user

    with store.open_database(tmp_path / "k.db") as db:
        create_user(db, "admin", "a long enough password", "admin", actor="test")
        for lookalike in ("Admin", "ADMIN"):  # both created before: 'web:Admin' beside 'web:admin' in the audit
            with pytest.raises(DuplicatePerson, match="already taken"):
                create_user(db, lookalike, "a long enough password", "manager", actor="test")
        assert [u.username for u in store.list_users(db)] == ["admin"]


def test_a_status_file_named_like_the_database_is_refused_before_the_door_overwrites_it(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    database = tmp_path / "k.db"
    with store.open_database(database) as db:
        store.add_person(db, "E1", "Ada Lovelace")
    before = database.read_bytes()
    config = tmp_path / "kiosk.yaml"
    config.write_text(f"database:\n  path: {database}\nservice:\n  status_file: {database}\n"
                      f"camera:\n  type: replay\n  options:\n    path: {frames}\nscreen:\n  enabled: false\n")
    check = kiosk(config, "config", "check")
    assert check.returncode == 2 and "service.status_file" in check.stderr, check.stderr
    proc = kiosk_process(config, "run", "--stop-after", "1")  # replaced the database with status JSON before the fix
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert database.read_bytes() == before
