"""The central's door API (/api/v1/door/...) on a real SQLite file with Flask's test client, and one
real `kiosk serve` process killed with SIGKILL between two pushes of one batch."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from app_helpers import kiosk_app, opened_db
from flask import Flask
from flask.testing import FlaskClient
from net_helpers import free_port
from thread_helpers import run_in_threads

from kiosk import store
from kiosk.clock import ManualClock
from kiosk.config import Settings
from kiosk.store import Database, open_from_settings
from kiosk.web import create_app

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
API = "/api/v1/door"


def make_settings(tmp_path: Path, role: str = "central", **database: Any) -> Settings:
    return Settings.model_validate({
        "role": role,
        "database": {"path": str(tmp_path / "central.db"), "backups_kept": 0, **database},
    })


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, busy_timeout_ms=300)


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    yield from opened_db(settings)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def app(settings: Settings, db: Database, clock: ManualClock) -> Flask:
    return kiosk_app(settings, db, clock)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def enrol(client: FlaskClient, db: Database, name: str = "Main entrance", site: str = "berlin") -> str:
    """Add a door and enrol it over the API; its bearer token."""
    code = store.add_door(db, name, site=site, now=NOW).code
    r = client.post(f"{API}/enrol", json={"code": code, "version": "0.1.0"})
    assert r.status_code == 200, r.get_json()
    return str(r.get_json()["token"])


@pytest.fixture
def token(client: FlaskClient, db: Database) -> str:
    return enrol(client, db)


def ev(seq: int, person_id: int | None = None, *, at: datetime | None = None, kind: str | None = None,
       uid: str | None = None, **extra: Any) -> dict[str, Any]:
    """One event as a door sends it (uuid derived from seq unless given)."""
    return {"seq": seq, "uuid": uid or str(uuid.UUID(int=seq)), "person_id": person_id,
            "at": (at or NOW - timedelta(minutes=60 - seq % 60)).isoformat(),
            "kind": kind or ("unknown" if person_id is None else "in"),
            "distance": None if person_id is None else 0.31, "score": None if person_id is None else 0.52,
            "expression_label": None, "expression_scores": None, "expression_confidence": None,
            "review": None, **extra}


def push(client: FlaskClient, token: str, events: list[dict[str, Any]], *, clock: datetime = NOW,
         **body: Any) -> Any:
    return client.post(f"{API}/events", json={"clock": clock.isoformat(), "version": "0.1.0",
                                              "backlog": 0, "events": events, **body},
                       headers={"Authorization": f"Bearer {token}"})


def rows(db_path: Path) -> list[tuple[Any, ...]]:
    """(door_seq, device_id, person_id, kind, review, expression_label, match_distance) of stored events."""
    con = sqlite3.connect(db_path)
    try:
        return con.execute("SELECT door_seq, device_id, person_id, kind, review, expression_label, "
                           "match_distance FROM attendance_events ORDER BY door_seq").fetchall()
    finally:
        con.close()


def seqs(db: Database) -> list[int]:
    return [r[0] for r in rows(db.path)]


def error_of(r: Any) -> str:
    body = r.get_json()
    assert set(body) == {"error", "message"} and body["message"], body
    return str(body["error"])


# --- enrolment ------------------------------------------------------------------------------


def test_enrol_gives_a_token_once(client: FlaskClient, db: Database) -> None:
    new = store.add_door(db, "Main entrance", site="berlin", now=NOW)
    r = client.post(f"{API}/enrol", json={"code": new.code, "version": "0.1.0"})
    assert r.status_code == 200
    body = r.get_json()
    assert body["device_id"] == "main-entrance" and body["name"] == "Main entrance" and body["site"] == "berlin"
    assert len(body["token"]) >= 40
    door = store.get_door(db, "main-entrance")
    assert door.enrolled and door.version == "0.1.0" and door.code_expires_at is None
    con = sqlite3.connect(db.path)
    stored = con.execute("SELECT enrol_code_hash, token_hash FROM doors").fetchone()
    con.close()
    assert stored == (None, hashlib.sha256(body["token"].encode()).hexdigest())  # only the SHA-256 is kept
    assert [a.action for a in store.list_audit(db)][:2] == ["door.enrol", "door.add"]
    # the code is spent: a second use is refused, and the token stays the one handed out
    again = client.post(f"{API}/enrol", json={"code": new.code})
    assert again.status_code == 400 and error_of(again) == "bad_code"
    assert push(client, body["token"], []).status_code == 200


def test_expired_unknown_and_missing_codes_are_refused(client: FlaskClient, db: Database,
                                                       clock: ManualClock) -> None:
    new = store.add_door(db, "Side door", now=NOW)
    clock.advance(hours=24, seconds=1)
    r = client.post(f"{API}/enrol", json={"code": new.code})
    assert r.status_code == 400 and error_of(r) == "bad_code" and "expired" in r.get_json()["message"]
    r = client.post(f"{API}/enrol", json={"code": "not-a-code"})
    assert r.status_code == 400 and error_of(r) == "bad_code"
    r = client.post(f"{API}/enrol", json={"version": "1"})
    assert r.status_code == 400 and error_of(r) == "malformed"
    r = client.post(f"{API}/enrol", data=b"{oops", content_type="application/json")
    assert r.status_code == 400 and error_of(r) == "malformed"
    # a new code works, the expired one stays refused
    fresh = store.new_enrol_code(db, "Side door", now=clock.now())
    assert client.post(f"{API}/enrol", json={"code": new.code}).status_code == 400
    assert client.post(f"{API}/enrol", json={"code": fresh.code}).status_code == 200


def test_revoked_door_cannot_enrol_or_push(client: FlaskClient, db: Database, token: str) -> None:
    assert push(client, token, [ev(1)]).get_json()["last_seq"] == 1
    store.revoke_door(db, "Main entrance", actor="test")
    r = push(client, token, [ev(2)])
    assert r.status_code == 403 and error_of(r) == "revoked"
    r = client.get(f"{API}/gallery?since=0", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403
    assert seqs(db) == [1]  # the refused push stored nothing; what was stored stays
    with pytest.raises(store.DoorRevoked):
        store.new_enrol_code(db, "Main entrance")


# --- authentication, CSRF, role -------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer ", "Bearer wrong-token", "Basic abc", "bearer"])
def test_requests_without_a_valid_token_are_refused(client: FlaskClient, db: Database, token: str,
                                                    header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    r = client.post(f"{API}/events", json={"events": [ev(1)]}, headers=headers)
    assert r.status_code == 401 and error_of(r) == "unauthorized"
    r = client.get(f"{API}/gallery?since=0", headers=headers)
    assert r.status_code == 401 and r.mimetype == "application/json"
    assert seqs(db) == []


def test_no_csrf_or_cookie_needed_and_no_session_set(client: FlaskClient, token: str) -> None:
    r = push(client, token, [ev(1)])
    assert r.status_code == 200 and "Set-Cookie" not in r.headers
    assert r.headers["Cache-Control"] == "no-store"


def test_api_absent_unless_role_central(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, role="standalone")
    database = open_from_settings(settings)
    try:
        app = create_app(settings, database, secret_key="x" * 64)
        code = store.add_door(database, "Main entrance").code
        r = app.test_client().post(f"{API}/enrol", json={"code": code})
        assert r.status_code == 404
        assert not store.get_door(database, "main-entrance").enrolled
    finally:
        database.close()


# --- pushing events --------------------------------------------------------------------------


def test_new_repeated_and_overlapping_batches_store_each_seq_once(client: FlaskClient, db: Database,
                                                                   token: str) -> None:
    r = push(client, token, [ev(1), ev(2), ev(3)])
    assert r.status_code == 200 and r.get_json() == {"last_seq": 3, "stored": 3, "repeated": 0}
    # the answer was lost: the door pushes the same batch again
    r = push(client, token, [ev(1), ev(2), ev(3)])
    assert r.get_json() == {"last_seq": 3, "stored": 0, "repeated": 3}
    r = push(client, token, [ev(2), ev(3), ev(4), ev(5)])
    assert r.get_json() == {"last_seq": 5, "stored": 2, "repeated": 2}
    assert seqs(db) == [1, 2, 3, 4, 5]
    assert {r[1] for r in rows(db.path)} == {"main-entrance"}
    door = store.get_door(db, "Main entrance")
    assert door.last_seq == 5 and door.last_seen_at == NOW and door.version == "0.1.0" and door.backlog == 0


def test_gaps_and_out_of_order_seqs(client: FlaskClient, db: Database, token: str) -> None:
    assert push(client, token, [ev(1), ev(2)]).get_json()["last_seq"] == 2
    assert push(client, token, [ev(7), ev(9)]).get_json()["last_seq"] == 9  # gaps: ids the door never used
    r = push(client, token, [ev(12), ev(10), ev(11), ev(10)])  # shuffled, 10 twice with the same uuid
    assert r.get_json() == {"last_seq": 12, "stored": 3, "repeated": 0}
    # a late event below last_seq that the central does not hold is still stored
    assert push(client, token, [ev(8)]).get_json() == {"last_seq": 12, "stored": 1, "repeated": 0}
    assert seqs(db) == [1, 2, 7, 8, 9, 10, 11, 12]


def test_empty_push_is_a_heartbeat(client: FlaskClient, db: Database, token: str, clock: ManualClock) -> None:
    push(client, token, [ev(1)])
    clock.advance(60)
    r = push(client, token, [], clock=clock.now(), backlog=7, version="0.2.0")
    assert r.get_json()["last_seq"] == 1
    door = store.get_door(db, "main-entrance")
    assert door.last_seen_at == clock.now() and door.backlog == 7 and door.version == "0.2.0"


def test_same_seq_with_another_uuid_is_a_conflict_and_stores_nothing(client: FlaskClient, db: Database,
                                                                     token: str) -> None:
    push(client, token, [ev(1), ev(2)])
    r = push(client, token, [ev(2, uid=str(uuid.uuid4())), ev(3)])
    assert r.status_code == 409 and error_of(r) == "seq_conflict"
    assert seqs(db) == [1, 2]
    r = push(client, token, [ev(4), ev(4, uid=str(uuid.uuid4()))])
    assert r.status_code == 400 and "twice" in r.get_json()["message"]
    assert seqs(db) == [1, 2]


def test_two_doors_have_their_own_sequences(client: FlaskClient, db: Database, token: str) -> None:
    other = enrol(client, db, "Back door", "hamburg")
    push(client, token, [ev(1), ev(2)])
    assert push(client, other, [ev(1), ev(2), ev(3)]).get_json()["last_seq"] == 3
    assert sorted((r[1], r[0]) for r in rows(db.path)) == [
        ("back-door", 1), ("back-door", 2), ("back-door", 3), ("main-entrance", 1), ("main-entrance", 2)]


def test_pushes_are_paired_in_each_doors_site_zone_with_the_cooldown(tmp_path: Path, clock: ManualClock) -> None:
    """The API pairs with the central's settings: `sites:` zones (a Los Angeles door's 23:30 is its own
    day's check-out, though Berlin's next day), and attendance.cooldown_s across doors in toggle mode."""
    settings = Settings.model_validate({
        "role": "central", "database": {"path": str(tmp_path / "central.db"), "backups_kept": 0},
        "site": {"timezone": "Europe/Berlin"}, "attendance": {"mode": "toggle", "cooldown_s": 60},
        "sites": {"la": {"timezone": "America/Los_Angeles"}}})
    with open_from_settings(settings) as database:
        api = kiosk_app(settings, database, clock).test_client()
        la, berlin = enrol(api, database, "LA lobby", "la"), enrol(api, database, "Berlin gate", "berlin")
        ann = store.add_person(database, "E1", "Ann", now=NOW).id
        morning = datetime(2026, 11, 29, 17, 0, tzinfo=UTC)  # 09:00 in Los Angeles
        assert push(api, la, [ev(1, ann, at=morning), ev(2, ann, at=morning + timedelta(hours=14, minutes=30)),
                              ev(3, ann, at=morning + timedelta(hours=14, minutes=30, seconds=40))]).status_code == 200
        bob = store.add_person(database, "E2", "Bob", now=NOW).id
        push(api, berlin, [ev(1, bob, at=NOW), ev(2, bob, at=NOW + timedelta(seconds=30)),
                           ev(3, bob, at=NOW + timedelta(seconds=90))])
        got = [(r[1], r[0], r[3]) for r in sorted(rows(database.path))]
        assert sorted(got) == [("berlin-gate", 1, "in"), ("berlin-gate", 2, "in"), ("berlin-gate", 3, "out"),
                               ("la-lobby", 1, "in"), ("la-lobby", 2, "out"), ("la-lobby", 3, "out")]


def test_unknown_and_erased_people_are_stored_without_a_person(client: FlaskClient, db: Database,
                                                               token: str) -> None:
    ann = store.add_person(db, "E1", "Ann", now=NOW)
    bob = store.add_person(db, "E2", "Bob", now=NOW)
    store.erase_person(db, bob.id, actor="test")
    r = push(client, token, [ev(1, ann.id), ev(2, 999), ev(3, bob.id, kind="out")])
    assert r.get_json()["stored"] == 3
    got = {r[0]: r for r in rows(db.path)}
    assert got[1][2] == ann.id and got[1][4] is None and got[1][6] == pytest.approx(0.31)
    assert got[2][2] is None and got[2][3] == "in" and "not known to the central" in got[2][4]
    assert got[2][6] is None  # no match data without a person
    assert got[3][2] is None and got[3][3] == "out" and "erased" in got[3][4] and str(bob.id) not in got[3][4]


def test_expression_data_only_with_the_centrals_consent(client: FlaskClient, db: Database, token: str) -> None:
    yes = store.add_person(db, "E1", "Ann", expression_consent=True, now=NOW)
    no = store.add_person(db, "E2", "Bob", now=NOW)
    expression = {"expression_label": "happy", "expression_scores": {"happy": 0.8, "neutral": 0.2},
                  "expression_confidence": 0.8}
    push(client, token, [ev(1, yes.id, **expression), ev(2, no.id, **expression)])
    got = {r[0]: r for r in rows(db.path)}
    assert got[1][5] == "happy" and got[2][5] is None


def test_door_clock_far_off_flags_events(client: FlaskClient, db: Database, token: str) -> None:
    push(client, token, [ev(1)], clock=NOW + timedelta(seconds=100))
    assert rows(db.path)[0][4] is None
    assert store.get_door(db, "main-entrance").clock_offset_s == pytest.approx(100)
    push(client, token, [ev(2, review="the kiosk clock may have gone back")], clock=NOW - timedelta(minutes=10))
    review = rows(db.path)[1][4]
    assert "-600 s off" in review and "gone back" in review  # the door's own note is kept
    assert store.get_door(db, "main-entrance").clock_offset_s == pytest.approx(-600)


@pytest.mark.parametrize("body, what", [
    (b"{not json", "not JSON"),
    (b"[1, 2]", "object"),
    (b'{"events": {"seq": 1}}', "list"),
    (b'{"events": [{"seq": 0}]}', "seq"),
    (b'{"events": [{"seq": true}]}', "seq"),
    (b'{"events": [{"seq": "1"}]}', "seq"),
    (b'{"events": [{"seq": 2147483648}]}', "seq"),
    (b'{"events": [17]}', "object"),
    (b'{"events": [], "backlog": -1}', "backlog"),
    (b'{"events": [], "clock": "yesterday"}', "clock"),
    (b'{"events": [], "clock": "2026-11-30T08:00:00"}', "UTC offset"),
    (b'{"events": [{"seq": 1, "uuid": "u", "person_id": null, "at": "2026-11-30T08:00:00+00:00",'
     b' "kind": "unknown", "distance": NaN}]}', "not JSON"),
    (b'{"events": [{"seq": 1, "uuid": "u", "person_id": null, "at": "2026-11-30T08:00:00+00:00",'
     b' "kind": "sideways"}]}', "kind"),
    (b'{"events": [{"seq": 1, "uuid": "u", "person_id": 3, "at": "2026-11-30T08:00:00+00:00",'
     b' "kind": "unknown"}]}', "unknown"),
    (b'{"events": [{"seq": 1, "uuid": "' + b"u" * 37 + b'", "person_id": null,'
     b' "at": "2026-11-30T08:00:00+00:00", "kind": "unknown"}]}', "uuid"),
    (b"[" * 100000 + b"]" * 100000, "JSON"),
])
def test_malformed_pushes_are_400_and_store_nothing(client: FlaskClient, db: Database, token: str,
                                                    body: bytes, what: str) -> None:
    push(client, token, [ev(1)])
    # a good event first: a bad one later in the batch must not leave it stored
    if body.startswith(b'{"events": [{'):
        body = body.replace(b'{"events": [', b'{"events": [' + json.dumps(ev(2)).encode() + b", ", 1)
    r = client.post(f"{API}/events", data=body, content_type="application/json",
                    headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 400 and error_of(r) == "malformed"
    assert what in r.get_json()["message"]
    assert seqs(db) == [1]


def test_too_large_requests_are_413(client: FlaskClient, db: Database, token: str) -> None:
    from kiosk.web.door_api import MAX_BATCH, MAX_BODY_BYTES

    r = push(client, token, [ev(i) for i in range(1, MAX_BATCH + 2)])
    assert r.status_code == 413 and error_of(r) == "too_many"
    huge = b'{"events": [], "version": "' + b"x" * MAX_BODY_BYTES + b'"}'
    r = client.post(f"{API}/events", data=huge, content_type="application/json",
                    headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 413 and error_of(r) == "too_large"
    r = client.post(f"{API}/enrol", data=huge, content_type="application/json")
    assert r.status_code == 413
    assert seqs(db) == []
    # the largest batch allowed goes through in one push
    r = push(client, token, [ev(i) for i in range(1, MAX_BATCH + 1)])
    assert r.status_code == 200 and r.get_json()["last_seq"] == MAX_BATCH and len(seqs(db)) == MAX_BATCH


def test_database_locked_is_503_then_the_retry_stores(client: FlaskClient, db: Database, token: str) -> None:
    blocker = sqlite3.connect(db.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the file past busy_timeout
    try:
        r = push(client, token, [ev(1), ev(2)])
        assert r.status_code == 503 and error_of(r) == "unavailable" and r.headers["Retry-After"]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert push(client, token, [ev(1), ev(2)]).get_json() == {"last_seq": 2, "stored": 2, "repeated": 0}


# --- the gallery ----------------------------------------------------------------------------


def gallery(client: FlaskClient, token: str, since: int | str) -> Any:
    r = client.get(f"{API}/gallery?since={since}", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_gallery_whole_then_incremental(client: FlaskClient, db: Database, token: str) -> None:
    emb = np.arange(256, dtype=np.float32).reshape(2, 128) / 256
    ann = store.add_person(db, "E1", "Ann", now=NOW)
    store.add_templates(db, ann.id, emb, now=NOW)
    bob = store.add_person(db, "E2", "Bob", now=NOW)
    whole = gallery(client, token, 0)
    assert whole["full"] is True and whole["removed"] == []
    assert [p["id"] for p in whole["people"]] == [ann.id, bob.id]
    got = [np.frombuffer(base64.b64decode(t), "<f4") for t in whole["people"][0]["templates"]]
    assert np.array_equal(np.stack(got), emb) and whole["people"][1]["templates"] == []
    assert whole["people"][0] == {**whole["people"][0], "employee_id": "E1", "name": "Ann", "active": True,
                                  "expression_consent": False}
    assert whole["embedder"]
    v = whole["version"]
    assert gallery(client, token, v) == {**gallery(client, token, v), "people": [], "removed": [], "version": v}
    assert store.get_door(db, "main-entrance").gallery_version == v

    # enrolment of a new person, consent, rename: each person once, in full
    cid = store.add_person(db, "E3", "Cid", now=NOW).id
    store.add_templates(db, cid, emb[:1], now=NOW)
    store.set_consent(db, ann.id, True, actor="test")
    store.rename_person(db, bob.id, "Robert", actor="test")
    step = gallery(client, token, v)
    assert step["full"] is False and step["removed"] == [] and step["version"] == v + 4
    people = {p["id"]: p for p in step["people"]}
    assert sorted(people) == [ann.id, bob.id, cid]
    assert people[ann.id]["expression_consent"] is True and len(people[ann.id]["templates"]) == 2
    assert people[bob.id]["name"] == "Robert" and len(people[cid]["templates"]) == 1

    # erasure and deactivation: removed; activation: back in full
    v = step["version"]
    store.erase_person(db, ann.id, actor="test")
    store.deactivate(db, bob.id, actor="test")
    step = gallery(client, token, v)
    assert step["people"] == [] and step["removed"] == [ann.id, bob.id]
    store.set_active(db, bob.id, True, actor="test")
    step = gallery(client, token, step["version"])
    assert [p["name"] for p in step["people"]] == ["Robert"] and step["removed"] == []
    # the whole gallery again: the erased person's templates are nowhere in it
    whole = gallery(client, token, 0)
    assert sorted(p["id"] for p in whole["people"]) == [bob.id, cid]


def test_gallery_since_beyond_the_newest_is_whole(client: FlaskClient, db: Database, token: str) -> None:
    store.add_person(db, "E1", "Ann", now=NOW)
    answer = gallery(client, token, 10**9)
    assert answer["full"] is True and [p["name"] for p in answer["people"]] == ["Ann"]
    assert answer["version"] == store.gallery_version(db)


@pytest.mark.parametrize("since", ["abc", "-1", "1.5", "", "9" * 40, "%D9%A3"])
def test_gallery_bad_since_is_400(client: FlaskClient, token: str, since: str) -> None:
    r = client.get(f"{API}/gallery?since={since}", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 400 and error_of(r) == "malformed"


# --- a real server, killed -------------------------------------------------------------------


def _call(url: str, body: dict[str, Any] | None = None, token: str | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _chunked_push(port: int, token: str, size: int) -> int:
    """POST a body of `size` bytes with Transfer-Encoding: chunked (no Content-Length); the status."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        chunk = b"[" + b" " * (1024 * 1024 - 2) + b"]"
        conn.request("POST", f"{API}/events", body=(chunk for _ in range(size // len(chunk))),
                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                     encode_chunked=True)
        return conn.getresponse().status
    finally:
        conn.close()


def _start_server(config: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK")}
    proc = subprocess.Popen([sys.executable, "-m", "kiosk.cli", "--config", str(config), "serve"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                out = proc.stdout.read() if proc.stdout else ""
                pytest.fail(f"kiosk serve did not start: {out[-2000:]}")
            time.sleep(0.2)


@pytest.mark.slow
def test_real_server_sigkill_then_the_same_batch_is_stored_once(tmp_path: Path) -> None:
    from cli_helpers import run_cli_process

    port = free_port()
    config = tmp_path / "central.yaml"
    config.write_text(f"role: central\ndatabase:\n  path: {tmp_path / 'central.db'}\n  backups_kept: 0\n"
                      f"web:\n  host: 127.0.0.1\n  port: {port}\n")
    added = run_cli_process("doors", "add", "Main entrance", "--site", "berlin", config=config)
    assert added.returncode == 0, added.stderr
    code = next(line.split(": ", 1)[1] for line in added.stdout.splitlines() if line.startswith("enrolment code"))
    base = f"http://127.0.0.1:{port}{API}"
    now = datetime.now(UTC)
    batch = [ev(i, at=now - timedelta(minutes=5, seconds=-i)) for i in range(1, 201)]
    server = _start_server(config, port)
    try:
        status, answer = _call(f"{base}/enrol", {"code": code, "version": "0.1.0"})
        assert status == 200
        token = answer["token"]
        status, answer = _call(f"{base}/events", {"clock": now.isoformat(), "events": batch}, token)
        assert (status, answer["last_seq"], answer["stored"]) == (200, 200, 200)
    finally:
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
    assert server.returncode == -signal.SIGKILL
    server = _start_server(config, port)
    try:
        # the door never saw the answer: it pushes the same batch again, then the next one
        status, answer = _call(f"{base}/events", {"clock": now.isoformat(), "events": batch}, token)
        assert (status, answer["last_seq"], answer["stored"], answer["repeated"]) == (200, 200, 0, 200)
        status, answer = _call(f"{base}/events", {"clock": now.isoformat(), "events": batch[150:] + [ev(201)]},
                               token)
        assert (status, answer["last_seq"], answer["stored"]) == (200, 201, 1)
        status, answer = _call(f"{base}/gallery?since=0", None, "not-a-token")
        assert status == 401
        assert _chunked_push(port, token, 9 * 1024 * 1024) == 413  # no Content-Length: still bounded
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    con = sqlite3.connect(tmp_path / "central.db")
    counted = con.execute("SELECT count(*), count(DISTINCT door_seq) FROM attendance_events").fetchone()
    con.close()
    assert counted == (201, 201)
    listed = run_cli_process("doors", "list", config=config)
    assert listed.returncode == 0 and "main-entrance" in listed.stdout and "201" in listed.stdout


def test_one_batch_pushed_twice_at_once_is_stored_once(settings: Settings, db: Database, token: str) -> None:
    """Two copies of one batch race (the door timed out and pushed again while the first still ran)."""
    import threading

    door = store.authenticate_door(db, token)
    batch = [store.DoorEvent(seq=i, uuid=str(uuid.UUID(int=i)), person_id=None, at=NOW, kind="unknown")
             for i in range(1, 2001)]
    start = threading.Barrier(2)

    def run() -> int:
        mine = make_settings(Path(settings.database.path).parent, busy_timeout_ms=30000)
        with open_from_settings(mine) as database:
            start.wait()
            return store.ingest_events(database, door.id, batch, now=NOW).last_seq

    answers, errors = run_in_threads(run, 2, 60)
    assert errors == [] and answers == [2000, 2000]
    assert seqs(db) == list(range(1, 2001))
