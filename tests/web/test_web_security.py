"""Security of the web app (Flask test client): roles on every route, CSRF, uploads,
injection, login rate limiting, sessions, headers."""

from __future__ import annotations

import io
import sqlite3
from datetime import timedelta

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from web_helpers import ADMIN, MANAGER, NOW, csrf_of, login

from kiosk.store import (
    Database,
    add_person,
    add_templates,
    get_capture,
    get_person,
    record_event,
    request_capture,
)
from kiosk.web.context import required_role
from kiosk.web.uploads import UploadLimits, decode_photo

SKIP_METHODS = {"HEAD", "OPTIONS"}


def _url(rule, person_id: int) -> str:
    values = {}
    for arg in rule.arguments:
        # person 1 has capture request 1 (see the person_id fixture): every *_id is that 1
        values[arg] = person_id if arg.endswith("_id") else {"username": MANAGER[0]}.get(arg, "x")
    return rule.rule if not values else _build(rule, values)


def _build(rule, values: dict) -> str:
    path = rule.rule
    for arg, value in values.items():
        for conv in ("int:", "path:", ""):
            path = path.replace(f"<{conv}{arg}>", str(value))
    return path


def _rules(app: Flask):
    return [r for r in app.url_map.iter_rules() if r.endpoint != "static"]


@pytest.fixture
def person_id(db: Database) -> int:
    """Person 1, with capture request 1 (waiting) so that /admin/captures/<id> has one to show."""
    person = add_person(db, "E1", "Erin Example")
    request = request_capture(db, employee_id="E2", name="Nova New", timeout_s=600, actor="test")
    assert person.id == request.id == 1
    return person.id


def test_admin_routes_are_all_marked_admin(app: Flask) -> None:
    for rule in _rules(app):
        role = required_role(app.view_functions[rule.endpoint])
        if rule.rule.startswith("/admin"):
            assert role == "admin", rule.rule
        if role == "admin":
            assert rule.rule.startswith("/admin/"), f"admin view outside /admin/: {rule.rule}"
    assert sum(1 for r in _rules(app) if r.rule.startswith("/admin/")) >= 10


def test_every_admin_route_refuses_anonymous_and_manager(
    app: Flask, manager_client: tuple[FlaskClient, str], person_id: int, db: Database
) -> None:
    client, token = manager_client
    anon = app.test_client()
    checked = 0
    for rule in _rules(app):
        if required_role(app.view_functions[rule.endpoint]) != "admin":
            continue
        url = _url(rule, person_id)
        for method in sorted(rule.methods - SKIP_METHODS):
            data = {"csrf_token": token, "granted": "1", "active": "0", "confirm": "E1",
                    "username": "mallory", "password": "long-enough-password", "role": "admin"}
            r = client.open(url, method=method, data=data)
            assert r.status_code == 403, (method, url, r.status_code)
            r = anon.open(url, method=method, data=data)
            assert r.status_code in (302, 401), (method, url, r.status_code)
            if r.status_code == 302:
                assert "/login" in r.headers["Location"]
            checked += 1
    assert checked >= 15
    # and nothing changed
    p = get_person(db, person_id)
    assert p.active and not p.expression_consent and p.erased_at is None
    assert get_capture(db, 1).status == "waiting"  # not cancelled
    from kiosk.store import get_user

    assert get_user(db, "mallory") is None


def test_every_page_needs_login(app: Flask, person_id: int) -> None:
    anon = app.test_client()
    for rule in _rules(app):
        if required_role(app.view_functions[rule.endpoint]) == "public":
            continue
        url = _url(rule, person_id)
        for method in sorted(rule.methods - SKIP_METHODS):
            r = anon.open(url, method=method)
            assert r.status_code in (302, 401), (method, url)
    public = {r.endpoint for r in _rules(app)
              if required_role(app.view_functions[r.endpoint]) == "public"}
    assert public == {"login"}


def test_all_get_pages_render_for_their_roles(
    admin_client: tuple[FlaskClient, str], manager_client: tuple[FlaskClient, str],
    app: Flask, person_id: int, db: Database,
) -> None:
    record_event(db, person_id, NOW - timedelta(hours=3), "in", "kiosk-1")
    for client, role in ((admin_client[0], "admin"), (manager_client[0], "manager")):
        for rule in _rules(app):
            if "GET" not in rule.methods:
                continue
            needed = required_role(app.view_functions[rule.endpoint])
            if needed == "admin" and role != "admin":
                continue
            r = client.get(_url(rule, person_id))
            if rule.endpoint.startswith("admin.doors."):  # a central's page: not found on a standalone
                assert r.status_code == (404 if role == "admin" else 403), (role, rule.rule, r.status_code)
                continue
            assert r.status_code in (200, 302), (role, rule.rule, r.status_code)


def test_manager_sees_no_admin_controls(manager_client: tuple[FlaskClient, str],
                                        person_id: int) -> None:
    client, _ = manager_client
    html = client.get(f"/people/{person_id}").get_data(as_text=True)
    assert "Erin Example" in html
    for marker in ("/admin/", 'id="delete"', 'id="consent-give"', "Enrol"):
        assert marker not in html


def test_forms_without_csrf_token_are_refused(
    app: Flask, admin_client: tuple[FlaskClient, str], person_id: int, db: Database
) -> None:
    client, token = admin_client
    r = client.post(f"/admin/people/{person_id}/consent", data={"granted": "1"})
    assert r.status_code == 400
    r = client.post(f"/admin/people/{person_id}/consent",
                    data={"granted": "1", "csrf_token": "forged" + token})
    assert r.status_code == 400
    assert not get_person(db, person_id).expression_consent
    r = client.post(f"/admin/people/{person_id}/delete", data={"confirm": "E1"})
    assert r.status_code == 400 and get_person(db, person_id).erased_at is None
    r = client.post("/logout")
    assert r.status_code == 400
    fresh = app.test_client()
    r = fresh.post("/login", data={"username": ADMIN[0], "password": ADMIN[1]})
    assert r.status_code == 400
    # the real token works
    r = client.post(f"/admin/people/{person_id}/consent", data={"granted": "1",
                                                                "csrf_token": token})
    assert r.status_code == 302 and get_person(db, person_id).expression_consent
    assert get_person(db, person_id).consent_changed_by == f"web:{ADMIN[0]}"


def _jpeg(size: tuple[int, int] = (64, 64)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (120, 80, 40)).save(buf, "JPEG")
    return buf.getvalue()


def _enrol_post(client: FlaskClient, token: str, files: list[tuple[bytes, str]]):
    data = {"csrf_token": token, "name": "Upload Test", "employee_id": "U1",
            "photos": [(io.BytesIO(b), n) for b, n in files]}
    return client.post("/admin/enrol", data=data, content_type="multipart/form-data")


@pytest.mark.parametrize(("content", "name", "message"), [
    (b"this is not an image at all", "photo.jpg", "not an image"),
    (b"%PDF-1.4 fake", "scan.pdf", "only JPEG, PNG or WebP"),
    (_jpeg(), "../../etc/passwd.jpg", "not a path"),
    (_jpeg(), "/etc/photo.jpg", "not a path"),
    (b"", "empty.jpg", "empty"),
    (_jpeg()[:200], "truncated.jpg", "corrupt or truncated"),
])
def test_bad_uploads_are_refused_cleanly(admin_client: tuple[FlaskClient, str], db: Database,
                                         content: bytes, name: str, message: str) -> None:
    client, token = admin_client
    r = _enrol_post(client, token, [(content, name)])
    assert r.status_code == 400
    html = r.get_data(as_text=True)
    assert message in html
    assert "Traceback" not in html
    from kiosk.store import list_people

    assert list_people(db) == []


def test_huge_upload_is_refused(tmp_path, db: Database, clock) -> None:
    from web_helpers import make_settings

    from kiosk.web import create_app, create_user

    settings = make_settings(tmp_path, max_photo_mb=0.05, max_photos=2)
    create_user(db, "root", "root-password-1", "admin")
    app = create_app(settings, db, clock=clock, secret_key="y" * 64)
    client = app.test_client()
    token = login(client, "root", "root-password-1")
    # one photo over the per-photo limit (within the request limit)
    big = _jpeg((900, 900)) + b"\0" * 60_000
    r = _enrol_post(client, token, [(big, "big.jpg")])
    assert r.status_code == 400 and "too big" in r.get_data(as_text=True)
    # a request over the total limit
    r = _enrol_post(client, token, [(b"\xff" * 1_500_000, "huge.jpg")])
    assert r.status_code == 413 and "too large" in r.get_data(as_text=True)
    # too many photos
    r = _enrol_post(client, token, [(_jpeg(), f"p{i}.jpg") for i in range(3)])
    assert r.status_code == 400 and "at most 2" in r.get_data(as_text=True)


def test_check_filename_refuses_paths() -> None:
    from kiosk.errors import UploadError
    from kiosk.web.uploads import check_filename

    for bad in ("C:\\Users\\me\\photo.jpg", "a/b.jpg", "..", ".hidden.jpg", "x\x00.jpg",
                "photo.exe", "a" * 300 + ".jpg"):
        with pytest.raises(UploadError):
            check_filename(bad)
    assert check_filename("IMG_0012.JPG") == "IMG_0012.JPG"


def test_decode_photo_refuses_pixel_bombs() -> None:
    data = _jpeg((3000, 3000))
    with pytest.raises(Exception, match="too large"):
        decode_photo("bomb.jpg", data, UploadLimits(max_pixels=1_000_000))
    photo = decode_photo("ok.jpg", _jpeg(), UploadLimits())
    assert photo.image.dtype == np.uint8 and photo.image.shape == (64, 64, 3)


INJECTIONS = [
    "<script>alert('x')</script>",
    "Robert'); DROP TABLE people;--",
    "\" onmouseover=\"alert(1)",
    "=HYPERLINK(\"http://evil\")",
    "' OR '1'='1",
    "%_%",
]


def test_injection_in_names_and_search_is_harmless(
    admin_client: tuple[FlaskClient, str], manager_client: tuple[FlaskClient, str],
    db: Database, settings,
) -> None:
    for i, text in enumerate(INJECTIONS):
        pid = add_person(db, f"X{i}-{text}"[:60], text).id
        record_event(db, pid, NOW - timedelta(hours=2), "in", "kiosk-1")
    client, _ = manager_client
    for path in ("/", "/people", "/range", f"/people/{pid}", "/people?q=%3Cscript%3E"):
        html = client.get(path).get_data(as_text=True)
        assert "<script>alert" not in html
        assert "&lt;script&gt;alert" in html or path.startswith("/people/")
        assert '" onmouseover="' not in html
    # searches are parameters, not SQL
    for q, expected in (("' OR '1'='1", 1), ("%", 1), ("_", 1), ("o_e", 0), ("nobody", 0),
                        ("'; DROP TABLE people;--", 0), ("<script>", 1)):
        html = client.get("/people", query_string={"q": q}).get_data(as_text=True)
        rows = html.count('href="/people/')
        assert rows == expected, (q, rows)
    admin, _ = admin_client
    r = admin.get("/admin/audit", query_string={"q": "' OR 1=1 --"})
    assert r.status_code == 200 and "Nothing found" in r.get_data(as_text=True)
    with sqlite3.connect(settings.database.path) as con:
        assert con.execute("SELECT count(*) FROM people").fetchone()[0] == len(INJECTIONS)
    # CSV cells that a spreadsheet would run as formulas are defused
    csv_text = client.get("/day.csv", query_string={"date": "2026-06-15"}).get_data(as_text=True)
    assert "'=HYPERLINK" in csv_text
    assert "\n=HYPERLINK" not in csv_text and ",=HYPERLINK" not in csv_text


def test_login_is_rate_limited(app: Flask) -> None:
    client = app.test_client()
    for _ in range(5):
        token = csrf_of(client)
        r = client.post("/login", data={"username": ADMIN[0], "password": "wrong",
                                        "csrf_token": token})
        assert r.status_code == 401 and "Wrong username or password" in r.get_data(as_text=True)
    token = csrf_of(client)
    r = client.post("/login", data={"username": ADMIN[0], "password": ADMIN[1],
                                    "csrf_token": token})
    assert r.status_code == 429 and "Too many failed sign-ins" in r.get_data(as_text=True)
    # another user from the same address is not (the per-address limit is much higher:
    # tests/web/test_web_faults.py covers it)
    r = client.post("/login", data={"username": MANAGER[0], "password": MANAGER[1],
                                    "csrf_token": token})
    assert r.status_code == 302


def test_session_cookie_flags_and_headers(app: Flask) -> None:
    client = app.test_client()
    token = csrf_of(client)
    r = client.post("/login", data={"username": ADMIN[0], "password": ADMIN[1],
                                    "csrf_token": token})
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    page = client.get("/")
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Cache-Control"] == "no-store"
    assert "<script" not in page.get_data(as_text=True)


def test_secure_cookie_setting(tmp_path, db: Database, clock) -> None:
    from web_helpers import make_settings

    from kiosk.web import create_app, create_user

    create_user(db, "sec", "secure-password-1", "admin")
    app = create_app(make_settings(tmp_path, secure_cookies=True), db, clock=clock,
                     secret_key="z" * 64)
    client = app.test_client()
    token = csrf_of(client)
    r = client.post("/login", data={"username": "sec", "password": "secure-password-1",
                                    "csrf_token": token})
    assert "Secure" in r.headers["Set-Cookie"]


def test_disabled_account_and_password_change_end_sessions(
    app: Flask, admin_client: tuple[FlaskClient, str], manager_client: tuple[FlaskClient, str],
) -> None:
    admin, token = admin_client
    manager, mtoken = manager_client
    assert manager.get("/").status_code == 200
    r = admin.post(f"/admin/users/{MANAGER[0]}/active", data={"active": "0",
                                                               "csrf_token": token})
    assert r.status_code == 302
    assert manager.get("/").status_code == 302  # signed out
    # the last admin cannot disable themselves
    r = admin.post(f"/admin/users/{ADMIN[0]}/active", data={"active": "0", "csrf_token": token})
    assert r.status_code == 400
    # password change: other sessions of the same account end
    other = app.test_client()
    login(other, *ADMIN)
    r = admin.post("/account", data={"old_password": ADMIN[1], "new_password": "new-password-22",
                                     "new_password2": "new-password-22", "csrf_token": token})
    assert r.status_code == 302
    assert admin.get("/").status_code == 200
    assert other.get("/").status_code == 302


def test_open_redirect_refused(app: Flask) -> None:
    client = app.test_client()
    token = csrf_of(client)
    r = client.post("/login?next=//evil.example/x", data={
        "username": ADMIN[0], "password": ADMIN[1], "csrf_token": token})
    assert r.status_code == 302 and r.headers["Location"] == "/"


def test_create_user_validates(db: Database) -> None:
    from kiosk.errors import DuplicatePerson, WebError
    from kiosk.web import create_user, verify_password

    with pytest.raises(WebError, match="too short"):
        create_user(db, "carol", "short", "manager")
    with pytest.raises(WebError, match="role"):
        create_user(db, "carol", "long-enough-pw", "root")
    with pytest.raises(WebError, match="username"):
        create_user(db, "carol smith<", "long-enough-pw", "manager")
    user = create_user(db, "carol", "long-enough-pw", "manager")
    assert user.password_hash.startswith("scrypt$")
    assert "long-enough-pw" not in user.password_hash
    assert verify_password("long-enough-pw", user.password_hash)
    assert not verify_password("long-enough-pX", user.password_hash)
    with pytest.raises(DuplicatePerson):
        create_user(db, "carol", "long-enough-pw", "admin")


def test_templates_not_exposed_to_managers(manager_client: tuple[FlaskClient, str],
                                           person_id: int, db: Database) -> None:
    add_templates(db, person_id, np.full(128, 0.125, dtype=np.float32), sources=["a.jpg"])
    client, _ = manager_client
    assert client.get(f"/admin/people/{person_id}/export.json").status_code == 403
    html = client.get(f"/people/{person_id}").get_data(as_text=True)
    assert "a.jpg" not in html


def test_the_web_app_limits_glibc_heaps_for_its_threads() -> None:
    """On glibc (Linux, the Pi) create_app caps malloc arenas, which keeps the enrolment peak bounded."""
    import platform

    from kiosk.web.app import limit_malloc_arenas

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc only")
    assert limit_malloc_arenas() is True
