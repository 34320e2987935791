"""Enrolment faults from issue 11: too few or mixed photos, photos that cost unbounded memory,
names and employee ids of any length. Real photos, the real dlib models; the CLI in this process
for its messages, as a real process where its peak memory and CPU time are measured."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import run_cli
from net_helpers import free_port
from PIL import Image

from kiosk import store
from kiosk.config import ConfigError, Settings, load_settings
from kiosk.enrolment import EnrolmentError, enrol, load_photos

pytestmark = pytest.mark.reliability

ROOT = Path(__file__).resolve().parents[2]
TEST_DATA = ROOT / "tests" / "data"
PEOPLE = TEST_DATA / "faces" / "people"
RAY = sorted((PEOPLE / "Ray_Romano").glob("*.jpg"))
HU = sorted((PEOPLE / "Hu_Jintao").glob("*.jpg"))
PEAK_RSS_MB = 300  # issue 11: any accepted photo set enrols or is refused within this (and a few s)


# --- 1. too few photos, mixed photos ----------------------------------------------------------


def test_two_photos_of_two_people_are_not_enrolled_as_one(enrol_env, dlib_analyzer) -> None:
    settings, db = enrol_env
    images, _ = load_photos([RAY[0], HU[0]])
    with pytest.raises(EnrolmentError):
        enrol(db, settings, dlib_analyzer, name="Ray", employee_id="E1", photos=images)
    assert store.list_people(db) == []


def test_two_photos_of_two_people_are_both_marked_as_differing(tmp_path, dlib_analyzer) -> None:
    settings = Settings.model_validate({"database": {"path": str(tmp_path / "k.db")},
                                        "enrolment": {"min_photos": 2}})
    images, _ = load_photos([RAY[0], HU[0]])
    with store.open_from_settings(settings) as db, pytest.raises(EnrolmentError) as info:
        enrol(db, settings, dlib_analyzer, name="Ray", employee_id="E1", photos=images)
    verdicts = info.value.result.verdicts
    assert [v.ok for v in verdicts] == [False, False]
    assert all("same person" in (v.reason or "") for v in verdicts)


def test_fewer_photos_than_min_photos_are_refused(enrol_env, dlib_analyzer) -> None:
    settings, db = enrol_env
    assert settings.enrolment.min_photos == 3
    images, _ = load_photos(RAY[:1])
    with pytest.raises(EnrolmentError, match="at least 3 photos"):
        enrol(db, settings, dlib_analyzer, name="Ray", employee_id="E1", photos=images)
    assert store.list_people(db) == []


def test_fewer_usable_photos_than_min_photos_are_refused(enrol_env, dlib_analyzer) -> None:
    settings, db = enrol_env
    images, bad = load_photos([*RAY[:2], TEST_DATA / "faces" / "misc" / "no_face.jpg"])
    with pytest.raises(EnrolmentError, match="at least 3 photos"):
        enrol(db, settings, dlib_analyzer, name="Ray", employee_id="E1", photos=images, unreadable=bad)
    assert store.list_people(db) == []


def test_capture_photos_below_min_photos_is_a_config_error(tmp_path) -> None:
    path = tmp_path / "kiosk.yaml"
    path.write_text("enrolment:\n  min_photos: 6\n  capture_photos: 5\n")
    with pytest.raises(ConfigError, match="capture_photos \\(5\\) must be at least enrolment.min_photos \\(6\\)"):
        load_settings(path)


# --- the CLI: messages in this process; peak memory and time of a real process ----------------


def _config(tmp_path: Path) -> Path:
    """tmp_path/kiosk.yaml naming the database tmp_path/k.db (written once)."""
    config = tmp_path / "kiosk.yaml"
    if not config.exists():
        config.write_text(f"database:\n  path: {tmp_path / 'k.db'}\n")
    return config


def _run_cli(tmp_path: Path, *args: str, timeout: float = 60.0) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run `kiosk --config ... ARGS` on a temp database -> (process, CPU seconds, peak RSS MB of the child).

    The child is started through a small wrapper process, so RUSAGE_CHILDREN of the wrapper
    measures this one child alone (the test process's own children are not mixed in). CPU
    seconds (user + system) are steadier than wall time on a shared machine.
    """
    cmd = [sys.executable, "-m", "kiosk.cli", "--config", str(_config(tmp_path)), *args]
    wrapper = ("import resource, subprocess, sys\n"
               "p = subprocess.run(sys.argv[1:])\n"
               "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
               "sys.stderr.write(f'\\nPEAK_RSS_KB={u.ru_maxrss} CPU_S={u.ru_utime + u.ru_stime}\\n')\n"
               "sys.exit(p.returncode)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK")}
    proc = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)
    match = re.search(r"PEAK_RSS_KB=(\d+) CPU_S=([\d.]+)", proc.stderr)
    assert match, proc.stderr[-2000:]
    return proc, float(match.group(2)), int(match.group(1)) / 1024


def _cli_baseline(tmp_path: Path) -> float:
    """CPU seconds of `kiosk enroll` of one tiny photo (interpreter, imports, face models): start-up."""
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    Image.new("RGB", (16, 16)).save(tiny / "tiny.png")
    _, seconds, _ = _run_cli(tmp_path, "enroll", "--name", "T", "--employee-id", "T0", str(tiny))
    return seconds


def test_cli_refuses_one_photo(tmp_path) -> None:
    proc = run_cli("enroll", "--name", "Ray", "--employee-id", "E1", str(RAY[0]), config=_config(tmp_path))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "at least 3 photos" in proc.stderr


@pytest.mark.slow
def test_cli_three_40_megapixel_pngs_are_refused_quickly_in_bounded_memory(tmp_path) -> None:
    folder = tmp_path / "big"
    folder.mkdir()
    for i in range(3):  # one colour each: ~130 KB files that decode to 40 megapixels
        Image.new("RGB", (8000, 5000), (120 + i, 110, 100)).save(folder / f"big{i}.png")
    start_up = _cli_baseline(tmp_path)
    proc, seconds, peak_mb = _run_cli(tmp_path, "enroll", "--name", "X", "--employee-id", "E9", str(folder))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "not enrolled" in proc.stderr
    assert proc.stdout.count("pixels is too large") == 3, proc.stdout  # one verdict per photo
    assert peak_mb < PEAK_RSS_MB, f"peak RSS {peak_mb:.0f} MB"
    assert seconds - start_up < 3.0, f"{seconds:.1f} CPU s (start-up {start_up:.1f} s)"


@pytest.mark.slow
def test_cli_enrols_from_6000_px_jpegs_in_bounded_memory(tmp_path) -> None:
    folder = tmp_path / "upscaled"
    folder.mkdir()
    for path in RAY[:3]:  # real 250 px photos, down- and up-scaled to 36 megapixels
        with Image.open(path) as img:
            small = img.convert("RGB").resize((200, 200), Image.Resampling.LANCZOS)
        small.resize((6000, 6000), Image.Resampling.BICUBIC).save(folder / path.name, quality=90)
    start_up = _cli_baseline(tmp_path)
    proc, seconds, peak_mb = _run_cli(tmp_path, "enroll", "--name", "Ray", "--employee-id", "E3", str(folder))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "enrolled with 3 photo(s)" in proc.stdout
    assert peak_mb < PEAK_RSS_MB, f"peak RSS {peak_mb:.0f} MB"
    assert seconds - start_up < 3.0, f"{seconds:.1f} CPU s (start-up {start_up:.1f} s)"


# --- the web upload ---------------------------------------------------------------------------


@pytest.fixture
def web_admin(tmp_path):
    """(Flask test client signed in as an admin, its CSRF token, the database)."""
    from kiosk.clock import SystemClock
    from kiosk.web import create_app, create_user

    settings = Settings.model_validate({"database": {"path": str(tmp_path / "k.db"), "backups_kept": 0}})
    db = store.open_from_settings(settings)
    create_user(db, "alice", "admin-password-1", "admin")
    app = create_app(settings, db, clock=SystemClock(), secret_key="x" * 64)
    app.testing = True
    client = app.test_client()
    token = _csrf(client, "/login")
    r = client.post("/login", data={"username": "alice", "password": "admin-password-1", "csrf_token": token})
    assert r.status_code == 302
    yield client, _csrf(client, "/account"), db
    db.close()


def _csrf(client, path: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))
    assert match
    return match.group(1)


def _post_photos(client, token: str, photos: list[tuple[str, bytes]], **form: str):
    files = [(io.BytesIO(data), name) for name, data in photos]
    return client.post("/admin/enrol", data={"csrf_token": token, **form, "photos": files},
                       content_type="multipart/form-data")


def test_web_upload_of_one_photo_is_refused(web_admin) -> None:
    client, token, db = web_admin
    r = _post_photos(client, token, [(RAY[0].name, RAY[0].read_bytes())], name="Ray", employee_id="E1")
    assert r.status_code == 400 and "at least 3 photos" in r.get_data(as_text=True)
    assert store.list_people(db) == []


def test_web_upload_of_a_huge_png_is_refused_before_decoding(web_admin) -> None:
    client, token, db = web_admin
    buffer = io.BytesIO()
    Image.new("RGB", (8000, 5000), (120, 110, 100)).save(buffer, format="PNG")
    photos = [(p.name, p.read_bytes()) for p in RAY[:3]] + [("big.png", buffer.getvalue())]
    start = time.monotonic()
    r = _post_photos(client, token, photos, name="Ray", employee_id="E1")
    html = r.get_data(as_text=True)
    assert r.status_code == 400 and "too large" in html
    assert time.monotonic() - start < 3.0


@pytest.mark.slow
def test_a_second_web_enrolment_at_the_same_time_gets_busy_503(web_admin) -> None:
    from kiosk.web.admin_pages import enrolment as admin

    client, token, db = web_admin
    assert admin.ENROLMENT_SLOTS.acquire(timeout=1)  # another enrolment is running
    try:
        photos = [(p.name, p.read_bytes()) for p in RAY[:3]]
        start = time.monotonic()
        r = _post_photos(client, token, photos, name="Ray", employee_id="E1")
        assert r.status_code == 503 and "try again" in r.get_data(as_text=True)
        assert time.monotonic() - start < 10.0
    finally:
        admin.ENROLMENT_SLOTS.release()
    r = _post_photos(client, token, photos, name="Ray", employee_id="E1")
    assert r.status_code == 200, r.get_data(as_text=True)[:2000]


# --- 3. name and employee id lengths ----------------------------------------------------------


def test_cli_refuses_a_10002_character_name(tmp_path) -> None:
    proc = run_cli("enroll", "--name", "N" * 10_002, "--employee-id", "E1", *map(str, RAY[:3]),
                   config=_config(tmp_path))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "name is too long (10002 characters; at most 200)" in proc.stderr
    with store.open_database(tmp_path / "k.db") as db:
        assert store.list_people(db) == []


def test_enrol_refuses_an_overlong_employee_id(enrol_env, dlib_analyzer) -> None:
    settings, db = enrol_env
    images, _ = load_photos(RAY[:3])
    with pytest.raises(EnrolmentError, match="employee id is too long"):
        enrol(db, settings, dlib_analyzer, name="Ray", employee_id="E" * 65, photos=images)
    assert store.list_people(db) == []


def test_capture_request_refuses_overlong_names(db) -> None:
    from kiosk.errors import KioskError

    with pytest.raises(KioskError, match="name is too long"):
        store.request_capture(db, employee_id="E1", name="N" * 201, timeout_s=60, actor="t")
    with pytest.raises(KioskError, match="employee id is too long"):
        store.request_capture(db, employee_id="E" * 65, name="Ann", timeout_s=60, actor="t")


def test_rename_and_leave_import_use_the_same_rule(db) -> None:
    from kiosk.errors import KioskError
    from kiosk.leave_csv import parse_leave_csv

    ann = store.add_person(db, "E1", "Ann")
    with pytest.raises(KioskError, match="name is too long \\(201 characters; at most 200\\)"):
        store.rename_person(db, ann.id, "N" * 201, actor="t")
    with pytest.raises(KioskError, match="employee id is too long"):
        parse_leave_csv(f"employee_id,first_day\n{'E' * 65},2026-06-01\n".encode(), db, "leave.csv")


def test_the_limits_are_the_database_column_lengths() -> None:
    from kiosk.identity import MAX_EMPLOYEE_ID_CHARS, MAX_NAME_CHARS
    from kiosk.store.models import CaptureRequest, Person

    assert Person.__table__.c.name.type.length == CaptureRequest.__table__.c.name.type.length == MAX_NAME_CHARS
    assert (Person.__table__.c.employee_id.type.length == CaptureRequest.__table__.c.employee_id.type.length
            == MAX_EMPLOYEE_ID_CHARS)


def test_web_rename_refuses_an_overlong_name(web_admin) -> None:
    client, token, db = web_admin
    ann = store.add_person(db, "E1", "Ann")
    r = client.post(f"/admin/people/{ann.id}/rename", data={"csrf_token": token, "name": "N" * 300})
    assert r.status_code == 400 and "name is too long (300 characters; at most 200)" in r.get_data(as_text=True)
    assert store.get_person(db, ann.id).name == "Ann"


def test_web_enrol_refuses_an_overlong_employee_id(web_admin) -> None:
    client, token, db = web_admin
    photos = [(p.name, p.read_bytes()) for p in RAY[:3]]
    r = _post_photos(client, token, photos, name="Ray", employee_id="E" * 150)
    assert r.status_code == 400 and "employee id is too long (150 characters; at most 64)" in r.get_data(as_text=True)
    assert store.list_people(db) == []


# --- 2. decoding: scaled, refused from the header ---------------------------------------------


def test_photos_are_decoded_scaled_and_big_full_size_formats_refused_from_the_header(tmp_path) -> None:
    from kiosk.errors import ImageError
    from kiosk.vision.faces import load_image

    jpeg, png = tmp_path / "big.jpg", tmp_path / "big.png"
    Image.new("RGB", (6000, 4000), (90, 80, 70)).save(jpeg, quality=90)
    Image.new("RGB", (3000, 3000), (90, 80, 70)).save(png)
    assert load_image(jpeg, max_side=800).shape == (533, 800, 3)
    with pytest.raises(ImageError, match="3000x3000 pixels is too large.*PNG cannot be decoded reduced"):
        load_image(png, max_side=800)
    assert load_image(png).shape == (3000, 3000, 3)  # full size asked for: only the 50 MP cap
    huge = tmp_path / "huge.jpg"
    Image.new("L", (10_000, 5_001)).save(huge)
    with pytest.raises(ImageError, match="10000x5001 pixels is too large \\(at most 50 megapixels\\)"):
        load_image(huge)


_SERVER = '''
import sys, waitress
from kiosk.config import Settings
from kiosk.store import open_from_settings
from kiosk.web import create_app, create_user
settings = Settings.model_validate({"database": {"path": sys.argv[1], "backups_kept": 0}})
db = open_from_settings(settings)
create_user(db, "alice", "admin-password-1", "admin")
app = create_app(settings, db, secret_key="x" * 64)
app.extensions["kiosk"].face_analyzer()  # as after the first enrolment of a running server
print("ready", flush=True)
waitress.serve(app, host="127.0.0.1", port=int(sys.argv[2]), threads=4)
'''


def _multipart(fields: dict[str, str], files: list[Path]) -> tuple[bytes, str]:
    """A multipart/form-data body with fields and files (as "photos") -> (body, content type)."""
    boundary = "kiosk-test-boundary-7d1f"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    for path in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="photos"; filename="{path.name}"\r\n'
                     "Content-Type: image/jpeg\r\n\r\n".encode() + path.read_bytes() + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@pytest.mark.slow
def test_web_enrolment_of_the_largest_accepted_upload_stays_in_bounded_memory(tmp_path) -> None:
    """A real server (waitress) gets web.max_photos photos of nearly web.max_photo_mb each."""
    import http.cookiejar
    import urllib.parse
    import urllib.request

    import numpy as np

    web = Settings().web
    rng = np.random.default_rng(1)
    photos = []
    for i in range(web.max_photos):  # real faces, 3600x3600, noise added to reach ~5.9 MB
        with Image.open(RAY[i % len(RAY)]) as img:
            big = np.asarray(img.convert("RGB").resize((3600, 3600), Image.Resampling.BICUBIC), dtype=np.int16)
        noisy = np.clip(big + rng.integers(-30, 30, big.shape, dtype=np.int16), 0, 255).astype(np.uint8)
        photos.append(tmp_path / f"ray{i}.jpg")
        Image.fromarray(noisy).save(photos[-1], quality=90)
    assert all(p.stat().st_size <= web.max_photo_mb * 1024 * 1024 for p in photos)
    assert sum(p.stat().st_size for p in photos) > 0.9 * web.max_photos * web.max_photo_mb * 1e6

    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", _SERVER, str(tmp_path / "k.db"), str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        base = f"http://127.0.0.1:{port}"
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

        def token(path: str) -> str:
            for _ in range(50):  # the server may still be binding its port
                try:
                    html = opener.open(base + path, timeout=10).read().decode()
                    break
                except OSError:
                    time.sleep(0.1)
            match = re.search(r'name="csrf_token" value="([^"]+)"', html)
            assert match
            return match.group(1)

        login = urllib.parse.urlencode({"username": "alice", "password": "admin-password-1",
                                        "csrf_token": token("/login")}).encode()
        opener.open(base + "/login", data=login, timeout=10)
        body, content_type = _multipart({"csrf_token": token("/account"), "name": "Ray", "employee_id": "E1"}, photos)
        start = time.monotonic()
        reply = opener.open(urllib.request.Request(base + "/admin/enrol", data=body,
                                                   headers={"Content-Type": content_type}), timeout=120)
        seconds = time.monotonic() - start
        assert reply.status == 200 and f"with {len(photos)} photo(s)" in reply.read().decode()
        status = Path(f"/proc/{server.pid}/status").read_text()
        peak_mb = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert peak_mb < PEAK_RSS_MB, f"server peak RSS {peak_mb:.0f} MB"
    assert seconds < 30.0, f"{seconds:.1f} s"
