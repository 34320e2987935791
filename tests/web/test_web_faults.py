"""Faults of the web app found in outside testing (issue 11): sessions that outlive logout,
open redirects, 500s, login lockouts, account management, graceful shutdown.

Each test failed on the code before its fix. Lives under tests/web/ to share its fixtures.
"""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from net_helpers import free_port
from web_helpers import ADMIN, MANAGER, csrf_of, login

pytestmark = pytest.mark.reliability

COOKIE = "kiosk_session"


def _copy_session(source: FlaskClient, app: Flask) -> FlaskClient:
    """A second browser holding a copy of source's session cookie."""
    cookie = source.get_cookie(COOKIE)
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie(COOKIE, cookie.value)
    return thief


def _signed_in(client: FlaskClient) -> bool:
    return client.get("/").status_code == 200


# --- 1. logout ends the session on the server ------------------------------------------------


def test_copied_cookie_stops_working_after_logout(app: Flask,
                                                  manager_client: tuple[FlaskClient, str]) -> None:
    client, token = manager_client
    thief = _copy_session(client, app)
    assert _signed_in(thief)
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert not _signed_in(client)
    assert not _signed_in(thief)


def test_logout_ends_only_that_session(app: Flask, manager_client: tuple[FlaskClient, str]) -> None:
    client, token = manager_client
    other = app.test_client()
    login(other, *MANAGER)
    client.post("/logout", data={"csrf_token": token})
    assert _signed_in(other)


def test_sessions_survive_an_app_restart(app: Flask, settings, db, clock,
                                         manager_client: tuple[FlaskClient, str]) -> None:
    from kiosk.web import create_app

    client, token = manager_client
    restarted = create_app(settings, db, clock=clock, secret_key="x" * 64)
    thief = _copy_session(client, restarted)
    assert _signed_in(thief)
    client.post("/logout", data={"csrf_token": token})
    assert not _signed_in(_copy_session(thief, create_app(settings, db, clock=clock,
                                                          secret_key="x" * 64)))


# --- 2. only same-site relative paths after login --------------------------------------------


@pytest.mark.parametrize("target", [
    "/%09/evil.example", "/%0a/evil.example", "%0a/x", "/x%0d%0aSet-Cookie:%20a=b",
    "//evil.example", "/\\evil.example", "https://evil.example/", "/%5Cevil.example",
    "%20//evil.example", "/%7f/evil.example", "javascript:alert(1)", "/ok%00",
])
def test_login_next_must_be_a_local_path(app: Flask, target: str) -> None:
    client = app.test_client()
    token = csrf_of(client)
    r = client.post(f"/login?next={target}", data={
        "username": ADMIN[0], "password": ADMIN[1], "csrf_token": token})
    assert r.status_code == 302, r.status_code
    assert r.headers["Location"] == "/"


def test_login_next_keeps_a_local_path(app: Flask) -> None:
    client = app.test_client()
    token = csrf_of(client)
    r = client.post("/login?next=/people%3Fq%3Dzo", data={
        "username": ADMIN[0], "password": ADMIN[1], "csrf_token": token})
    assert r.headers["Location"] == "/people?q=zo"


# --- 3. no 500s, no tracebacks ----------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/day?date=9999-12-31", "/day?date=0001-01-01", "/day.csv?date=9999-12-31",
    "/range?start=0001-01-01&end=0001-01-02", "/range?start=2026-06-01&end=9999-12-31",
])
def test_dates_out_of_range_are_a_clear_400(manager_client: tuple[FlaskClient, str], path: str) -> None:
    client, _ = manager_client
    r = client.get(path)
    assert r.status_code == 400, r.status_code
    assert "between" in r.get_data(as_text=True)


def test_huge_ids_are_404(admin_client: tuple[FlaskClient, str], db) -> None:
    client, _ = admin_client
    for path in ("/people/99999999999999999999", "/people/99999999999999999999/history.csv",
                 "/admin/captures/99999999999999999999", "/admin/people/99999999999999999999/delete"):
        assert client.get(path).status_code == 404, path


def test_far_future_start_on_a_person_page_is_400(admin_client: tuple[FlaskClient, str], db) -> None:
    from kiosk.store import add_person

    p = add_person(db, "E1", "Zoë Example")
    client, _ = admin_client
    for query in ("start=9999-12-01&end=9999-12-31", "start=9999-12-01", "start=0001-01-01&end=0001-01-05"):
        assert client.get(f"/people/{p.id}?{query}").status_code == 400, query
        assert client.get(f"/people/{p.id}/history.csv?{query}").status_code == 400, query


def _big_leave_csv() -> bytes:
    return b"employee_id,first_day\nE1," + b"x" * 140_000 + b"\n"


def test_leave_csv_with_a_huge_field_is_refused(admin_client: tuple[FlaskClient, str], db) -> None:
    import io

    from kiosk.store import add_person

    add_person(db, "E1", "Zoë Example")
    client, token = admin_client
    r = client.post("/admin/leave/import", data={"csrf_token": token,
                                                 "file": (io.BytesIO(_big_leave_csv()), "big.csv")},
                    content_type="multipart/form-data")
    assert r.status_code == 400
    assert "too long" in r.get_data(as_text=True)


def _cli(settings, *args: str, input: str | None = None):
    """Run `kiosk --config <settings' database> args` in-process (CliRunner)."""
    from click.testing import CliRunner

    from kiosk.cli import main

    config = settings.database.path.parent / "kiosk.yaml"
    config.write_text(f"site:\n  timezone: Europe/Berlin\ndatabase:\n  path: {settings.database.path}\n")
    return CliRunner().invoke(main, ["--config", str(config), *args], input=input)


def test_cli_leave_import_of_a_huge_field_is_one_message(settings, db, tmp_path) -> None:
    from kiosk.store import add_person

    add_person(db, "E1", "Zoë Example")
    path = tmp_path / "big.csv"
    path.write_bytes(_big_leave_csv())
    result = _cli(settings, "leave", "import", str(path))
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert "too long" in result.output


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
def test_cli_report_of_an_absurd_day_is_one_message(settings, db, day: str) -> None:
    result = _cli(settings, "report", "daily", "--date", day)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert "between" in result.output


def test_wrong_method_is_405(manager_client: tuple[FlaskClient, str]) -> None:
    client, token = manager_client
    assert client.post("/people", data={"csrf_token": token}).status_code == 405
    assert client.post("/people").status_code == 405
    assert client.put("/logout", data={"csrf_token": token}).status_code == 405
    assert client.get("/logout").status_code == 405


def test_csv_says_utf8_once_and_offers_a_bom_for_excel(admin_client: tuple[FlaskClient, str],
                                                        db) -> None:
    from kiosk.store import add_person

    add_person(db, "E1", "Zoë Example")
    client, _ = admin_client
    for path in ("/people.csv", "/day.csv", "/leave.csv", "/admin/audit.csv"):
        r = client.get(path)
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "text/csv; charset=utf-8", path
        assert not r.data.startswith(b"\xef\xbb\xbf")
        excel = client.get(f"{path}?excel=1")
        assert excel.headers["Content-Type"] == "text/csv; charset=utf-8", path
        assert excel.data.startswith(b"\xef\xbb\xbf") and excel.data[3:] == r.data, path
    assert "Zoë".encode() in client.get("/people.csv?excel=1").data


def test_semicolon_leave_csv_is_read(db) -> None:
    from kiosk.leave_csv import parse_leave_csv
    from kiosk.store import add_person

    p = add_person(db, "E1", "Zoë Example")
    items = parse_leave_csv(b"employee_id;first_day;last_day;kind\nE1;2026-06-20;2026-06-21;sick\n",
                            db, "hr.csv")
    assert [(x.person_id, str(x.first_day), str(x.last_day), x.kind) for x in items] == [
        (p.id, "2026-06-20", "2026-06-21", "sick")]


# --- 4. login throttling per account and per address, trusted proxies -------------------------


def _try_login(client: FlaskClient, username: str, password: str, address: str = "127.0.0.1",
               headers: dict[str, str] | None = None) -> int:
    token = csrf_of(client)
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token},
                       environ_base={"REMOTE_ADDR": address}, headers=headers or {}).status_code


def test_wrong_passwords_of_one_user_do_not_lock_out_the_office(app: Flask) -> None:
    client = app.test_client()
    for _ in range(7):
        assert _try_login(client, ADMIN[0], "wrong") in (401, 429)
    assert _try_login(app.test_client(), *MANAGER) == 302  # same address (office NAT), other account


def test_an_account_is_throttled_from_any_address(app: Flask) -> None:
    client = app.test_client()
    for i in range(5):
        assert _try_login(client, MANAGER[0], "wrong", f"10.0.0.{i}") == 401
    assert _try_login(client, *MANAGER, "10.0.9.9") == 429


@pytest.mark.slow
def test_many_failures_from_one_address_are_throttled(app: Flask) -> None:
    client = app.test_client()
    limit = app.extensions["kiosk"].settings.web.login_address_attempts
    for i in range(limit):
        assert _try_login(client, f"nobody{i}", "wrong", "10.1.1.1") == 401
    assert _try_login(client, *MANAGER, "10.1.1.1") == 429
    assert _try_login(client, *MANAGER, "10.1.1.2") == 302


def test_back_off_grows_and_ends() -> None:
    from kiosk.web.auth import Backoff

    now = [1000.0]
    backoff = Backoff(free=3, base_s=2.0, max_s=60.0, forget_s=600.0, timer=lambda: now[0])
    for _ in range(3):
        assert backoff.wait("k") == 0
        backoff.failed("k")
    waits = []
    for _ in range(7):
        waits.append(backoff.wait("k"))
        now[0] += waits[-1]
        backoff.failed("k")
    assert waits == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    now[0] += 601
    assert backoff.wait("k") == 0  # a quiet spell forgets the failures


def test_password_change_form_is_rate_limited(manager_client: tuple[FlaskClient, str]) -> None:
    client, token = manager_client
    codes = [client.post("/account", data={"old_password": f"guess-{i}", "new_password": "x" * 12,
                                           "new_password2": "x" * 12, "csrf_token": token}).status_code
             for i in range(7)]
    assert codes[-1] == 429, codes
    r = client.post("/account", data={"old_password": MANAGER[1], "new_password": "x" * 12,
                                      "new_password2": "x" * 12, "csrf_token": token})
    assert r.status_code == 429


def test_forwarded_for_is_honoured_only_from_trusted_proxies(tmp_path, db, clock) -> None:
    from web_helpers import make_settings

    from kiosk.store import search_audit
    from kiosk.web import create_app, create_user

    create_user(db, *MANAGER, "manager")
    for trusted, expected in (([], "127.0.0.1"), (["127.0.0.0/8", "10.9.0.1"], "203.0.113.7")):
        settings = make_settings(tmp_path, trusted_proxies=trusted)
        app = create_app(settings, db, clock=clock, secret_key="x" * 64)
        headers = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7, 10.9.0.1"}
        assert _try_login(app.test_client(), *MANAGER, headers=headers) == 302
        logins = [a for a in search_audit(db, "") if a.action == "user.login"]
        assert logins[0].details == {"address": expected}


def test_client_address_walks_the_trusted_chain() -> None:
    from kiosk.web.auth import client_address, parse_networks

    trusted = parse_networks(["10.0.0.0/8"])
    assert client_address("10.0.0.1", "1.2.3.4, 10.0.0.5", trusted) == "1.2.3.4"
    assert client_address("10.0.0.1", "1.2.3.4, 5.6.7.8", trusted) == "5.6.7.8"
    assert client_address("10.0.0.1", "junk, 10.0.0.5", trusted) == "10.0.0.5"
    assert client_address("10.0.0.1", None, trusted) == "10.0.0.1"
    assert client_address("192.168.1.1", "1.2.3.4", trusted) == "192.168.1.1"


# --- 5. account management: reset password, change role, delete ------------------------------


def _audit_actions(db) -> list[str]:
    from kiosk.store import search_audit

    return [a.action for a in search_audit(db, "user:")]


def test_admin_resets_a_password_and_the_sessions_end(app: Flask, db,
                                                      admin_client: tuple[FlaskClient, str],
                                                      manager_client: tuple[FlaskClient, str]) -> None:
    admin, token = admin_client
    manager, _ = manager_client
    r = admin.post(f"/admin/users/{MANAGER[0]}/password",
                   data={"password": "reset-password-9", "csrf_token": token})
    assert r.status_code == 302
    assert not _signed_in(manager)
    assert _try_login(app.test_client(), *MANAGER) == 401
    assert _try_login(app.test_client(), MANAGER[0], "reset-password-9") == 302
    assert "user.password" in _audit_actions(db)
    r = admin.post(f"/admin/users/{MANAGER[0]}/password", data={"password": "short", "csrf_token": token})
    assert r.status_code == 400


def test_admin_changes_a_role_and_the_sessions_end(app: Flask, db,
                                                   admin_client: tuple[FlaskClient, str],
                                                   manager_client: tuple[FlaskClient, str]) -> None:
    from kiosk.store import get_user

    admin, token = admin_client
    manager, _ = manager_client
    assert admin.post(f"/admin/users/{MANAGER[0]}/role",
                      data={"role": "admin", "csrf_token": token}).status_code == 302
    assert get_user(db, MANAGER[0]).role == "admin"
    assert not _signed_in(manager)
    assert "user.role" in _audit_actions(db)
    assert admin.post(f"/admin/users/{MANAGER[0]}/role",
                      data={"role": "boss", "csrf_token": token}).status_code == 400


def test_admin_deletes_an_account(app: Flask, db, admin_client: tuple[FlaskClient, str],
                                  manager_client: tuple[FlaskClient, str]) -> None:
    from kiosk.store import get_user

    admin, token = admin_client
    manager, _ = manager_client
    assert admin.post(f"/admin/users/{MANAGER[0]}/remove",
                      data={"confirm": "wrong", "csrf_token": token}).status_code == 400
    assert get_user(db, MANAGER[0]) is not None
    assert admin.post(f"/admin/users/{MANAGER[0]}/remove",
                      data={"confirm": MANAGER[0], "csrf_token": token}).status_code == 302
    assert get_user(db, MANAGER[0]) is None
    assert not _signed_in(manager)
    assert _try_login(app.test_client(), *MANAGER) == 401
    assert "user.remove" in _audit_actions(db)
    assert admin.post("/admin/users/nobody/remove",
                      data={"confirm": "nobody", "csrf_token": token}).status_code == 404


def test_users_page_offers_the_account_actions(admin_client: tuple[FlaskClient, str]) -> None:
    admin, _ = admin_client
    html = admin.get("/admin/users").get_data(as_text=True)
    for action in ("password", "role", "remove"):
        assert f"/admin/users/{MANAGER[0]}/{action}" in html


def test_never_no_active_admin(db, admin_client: tuple[FlaskClient, str]) -> None:
    from kiosk.errors import LastAdmin
    from kiosk.store import get_user, remove_user, set_user_active, set_user_role

    admin, token = admin_client
    assert admin.post(f"/admin/users/{ADMIN[0]}/role", data={"role": "manager", "csrf_token": token}
                      ).status_code == 400
    assert admin.post(f"/admin/users/{ADMIN[0]}/remove", data={"confirm": ADMIN[0], "csrf_token": token}
                      ).status_code == 400
    for change in (lambda: set_user_role(db, ADMIN[0], "manager", actor="t"),
                   lambda: remove_user(db, ADMIN[0], actor="t"),
                   lambda: set_user_active(db, ADMIN[0], False, actor="t")):
        with pytest.raises(LastAdmin):
            change()
    assert get_user(db, ADMIN[0]).role == "admin" and get_user(db, ADMIN[0]).active
    # a second admin makes it possible; a disabled admin does not count
    set_user_role(db, MANAGER[0], "admin", actor="t")
    set_user_active(db, MANAGER[0], False, actor="t")
    with pytest.raises(LastAdmin):
        remove_user(db, ADMIN[0], actor="t")
    set_user_active(db, MANAGER[0], True, actor="t")
    set_user_role(db, ADMIN[0], "manager", actor="t")
    assert get_user(db, ADMIN[0]).role == "manager"


def test_cli_manages_accounts(settings, db) -> None:
    from kiosk.store import get_user
    from kiosk.web import create_user, verify_password

    create_user(db, *ADMIN, "admin")
    create_user(db, *MANAGER, "manager")
    r = _cli(settings, "users", "passwd", MANAGER[0], "--password-stdin", input="cli-password-77\n")
    assert r.exit_code == 0, r.output
    assert verify_password("cli-password-77", get_user(db, MANAGER[0]).password_hash)
    r = _cli(settings, "users", "role", MANAGER[0], "admin")
    assert r.exit_code == 0 and get_user(db, MANAGER[0]).role == "admin", r.output
    r = _cli(settings, "users", "remove", MANAGER[0], "--yes")
    assert r.exit_code == 0 and get_user(db, MANAGER[0]) is None, r.output
    for args in (("role", ADMIN[0], "manager"), ("remove", ADMIN[0], "--yes"), ("remove", "nobody", "--yes")):
        r = _cli(settings, "users", *args)
        assert r.exit_code == 1 and isinstance(r.exception, SystemExit), r.output
    assert "last active admin" in _cli(settings, "users", "remove", ADMIN[0], "--yes").output
    assert [a for a in _audit_actions(db) if a.startswith("user.")][:3] == [
        "user.remove", "user.role", "user.password"]


# --- 6. kiosk serve stops cleanly on SIGTERM ------------------------------------------------


def _wait_until_serving(proc, port: int) -> None:
    import time
    import urllib.request

    deadline = time.time() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2):
                return
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"server did not answer: {proc.communicate(timeout=5)[0][-2000:]}")
            time.sleep(0.3)


@pytest.mark.slow
def test_serve_finishes_the_request_in_flight_and_exits_0_on_sigterm(tmp_path) -> None:
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KIOSK")},
           "KIOSK__DATABASE__PATH": str(tmp_path / "kiosk.db"), "KIOSK__WEB__PORT": str(port),
           "KIOSK__WEB__HOST": "127.0.0.1", "KIOSK__WEB__DAILY_PURGE": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "kiosk.cli", "serve"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_until_serving(proc, port)
        body = b"username=someone&password=wrong-password"
        conn = socket.create_connection(("127.0.0.1", port), timeout=10)
        conn.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)  # a request is half sent: it must still be answered
        time.sleep(0.5)
        conn.sendall(body[10:])
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
        conn.close()
        assert answer.startswith(b"HTTP/1.1 "), answer[:200]
        out = proc.communicate(timeout=30)[0]
        assert proc.returncode == 0, out[-2000:]
        assert "Traceback" not in out
        with pytest.raises(OSError):  # nobody listens any more
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_trusted_proxies_setting_is_strict(tmp_path) -> None:
    from pydantic import ValidationError
    from web_helpers import make_settings

    assert make_settings(tmp_path).web.trusted_proxies == []
    assert make_settings(tmp_path, trusted_proxies=[" 10.0.0.0/8", "::1"]).web.trusted_proxies == [
        "10.0.0.0/8", "::1"]
    with pytest.raises(ValidationError, match="not an IP address or CIDR block"):
        make_settings(tmp_path, trusted_proxies=["proxy.example"])


def test_absurd_days_in_admin_forms_are_refused(admin_client: tuple[FlaskClient, str], db) -> None:
    from kiosk.leave_csv import parse_leave_csv
    from kiosk.store import add_person, leave_between

    p = add_person(db, "E1", "Zoë Example")
    client, token = admin_client
    for day in ("9999-12-31", "0001-01-01"):
        r = client.post(f"/admin/people/{p.id}/leave", data={"first_day": day, "kind": "holiday",
                                                              "csrf_token": token})
        assert r.status_code == 400 and "between" in r.get_data(as_text=True)
        r = client.post(f"/admin/people/{p.id}/events", data={"date": day, "time": "00:00", "kind": "in",
                                                               "note": "forgot", "csrf_token": token})
        assert r.status_code == 400 and "between" in r.get_data(as_text=True)
    assert leave_between(db) == []
    from kiosk.errors import KioskError

    with pytest.raises(KioskError, match="line 2: first_day 9999-12-31 is out of range"):
        parse_leave_csv(b"employee_id,first_day\nE1,9999-12-31\n", db, "hr.csv")


def test_pages_link_the_excel_csv(admin_client: tuple[FlaskClient, str], db) -> None:
    from kiosk.store import add_person

    p = add_person(db, "E1", "Zoë Example")
    client, _ = admin_client
    for page in ("/people", "/admin/audit", f"/people/{p.id}", "/leave"):
        html = client.get(page).get_data(as_text=True)
        assert "excel=1" in html and "CSV for Excel" in html, page
