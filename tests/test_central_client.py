"""The door's HTTP client (kiosk.central_client) against a real in-test central over HTTP: every outcome
is its own error (offline, revoked, bad token, rejected, bad answer), answers are checked."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from central_double import CentralDouble
from net_helpers import free_port

from kiosk import central_client
from kiosk.central_client import (
    BadToken,
    CentralBadAnswer,
    CentralClient,
    CentralOffline,
    CentralRejected,
    DoorRevoked,
    PushAnswer,
    SeqConflict,
    enrol,
    event_json,
)
from kiosk.store import EventInfo

NOW = datetime(2026, 11, 30, 8, 1, 5, tzinfo=UTC)


@pytest.fixture
def central() -> Iterator[CentralDouble]:
    double = CentralDouble().start()
    yield double
    double.stop()


def _events(first: int, last: int) -> list[dict[str, object]]:
    return [event_json(EventInfo(seq, None, NOW, "unknown", "door"), f"u{seq}") for seq in range(first, last + 1)]


def test_enrol_exchanges_a_code_once(central: CentralDouble) -> None:
    code = central.add_door("main-entrance", "Main entrance", "berlin")
    got = enrol(central.url + "/", code, timeout_s=5)
    assert (got.device_id, got.name, got.site) == ("main-entrance", "Main entrance", "berlin")
    assert got.token in central.doors
    with pytest.raises(CentralRejected) as refused:
        enrol(central.url, code, timeout_s=5)
    assert refused.value.status == 400 and refused.value.code == "bad_code"
    assert "used, expired or unknown" in str(refused.value)


def test_push_answers_last_seq_and_repeats_are_skipped(central: CentralDouble) -> None:
    client = CentralClient(central.url, central.door_token(), timeout_s=5)
    assert client.push_events(_events(1, 3), clock=NOW, backlog=0) == PushAnswer(3, 3, 0)
    assert client.push_events(_events(2, 5), clock=NOW, backlog=0) == PushAnswer(5, 2, 2)  # 2, 3 again: skipped
    assert central.held("main-entrance") == [1, 2, 3, 4, 5]
    assert [p.stored for p in central.pushes] == [3, 2]
    assert central.pushes[0].clock == NOW.isoformat()
    central.legacy = True  # a central that says only last_seq
    assert client.push_events(_events(5, 6), clock=NOW, backlog=0) == PushAnswer(6, None, None)


def test_a_seq_held_for_another_event_is_a_conflict_and_nothing_is_stored(central: CentralDouble) -> None:
    client = CentralClient(central.url, central.door_token(), timeout_s=5)
    client.push_events(_events(1, 3), clock=NOW, backlog=0)
    other = [{**e, "uuid": f"other-{e['seq']}"} for e in _events(3, 5)]  # 3 is held with uuid u3
    with pytest.raises(SeqConflict) as conflict:
        client.push_events(other, clock=NOW, backlog=0)
    assert isinstance(conflict.value, CentralRejected)
    assert (conflict.value.status, conflict.value.code) == (409, "seq_conflict")
    assert central.held("main-entrance") == [1, 2, 3]


def test_each_refusal_is_its_own_error(central: CentralDouble) -> None:
    token = central.door_token()
    client = CentralClient(central.url, token, timeout_s=5)
    with pytest.raises(BadToken) as bad:
        CentralClient(central.url, "not-a-token", timeout_s=5).push_events(_events(1, 1), clock=NOW, backlog=0)
    assert bad.value.status == 401
    central.max_batch = 2
    with pytest.raises(CentralRejected) as big:
        client.push_events(_events(1, 3), clock=NOW, backlog=0)
    assert big.value.status == 413 and "at most 2 events" in str(big.value)
    central.unavailable = True
    with pytest.raises(CentralOffline) as busy:
        client.gallery(0)
    assert busy.value.status == 503 and "database unavailable" in str(busy.value)
    central.unavailable = False
    central.revoke(token)
    with pytest.raises(DoorRevoked) as revoked:
        client.push_events(_events(1, 1), clock=NOW, backlog=0)
    assert revoked.value.status == 403
    assert central.events == {}  # nothing of a refused push was stored


def test_down_slow_and_lost_answers_are_offline(central: CentralDouble) -> None:
    client = CentralClient(central.url, central.door_token(), timeout_s=0.5)
    central.slow_s = 1.5
    with pytest.raises(CentralOffline, match="no answer within 0.5 s"):
        client.gallery(0)
    central.slow_s = 0.0
    central.lose_answers = 1
    with pytest.raises(CentralOffline):
        client.push_events(_events(1, 2), clock=NOW, backlog=0)
    assert central.held("main-entrance") == [1, 2]  # stored, the answer lost
    assert client.push_events(_events(1, 2), clock=NOW, backlog=0) == PushAnswer(2, 0, 2)
    assert central.held("main-entrance") == [1, 2]
    central.stop()
    with pytest.raises(CentralOffline, match="cannot be reached"):
        client.gallery(0)


def test_gallery_templates_round_trip(central: CentralDouble) -> None:
    rng = np.random.default_rng(1)
    templates = rng.normal(size=(3, 128)).astype(np.float32)
    central.enrol_person(12, "E012", "Ada", templates, consent=True)
    central.enrol_person(13, "E013", "Bob", templates[:1])
    central.remove_person(13)
    answer = CentralClient(central.url, central.door_token(), timeout_s=5).gallery(0)
    assert answer.version == 3 and answer.removed == [] and answer.embedder and answer.full is True
    (ada,) = answer.people
    assert (ada.id, ada.employee_id, ada.name, ada.active, ada.expression_consent) == (12, "E012", "Ada", True, True)
    assert ada.templates.dtype == np.float32 and np.array_equal(ada.templates, templates)
    client = CentralClient(central.url, next(iter(central.doors)), timeout_s=5)
    assert client.gallery(1).removed == [13] and client.gallery(1).full is False
    later = client.gallery(3)
    assert (later.version, later.people, later.removed, later.full) == (3, [], [], False)
    central.legacy = True
    assert client.gallery(0).full is None


def _serve(body: bytes, status: int = 200) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.mark.parametrize(("body", "match"), [
    (b"<html>proxy login</html>", "not JSON"),
    (b"[1, 2]", "not an object"),
    (b'{"version": 1, "people": []}', "lacks version, people or removed"),
    (b'{"version": 1, "removed": [], "people": [{"id": 1, "employee_id": "E1", "name": "A", '
     b'"templates": ["AAAA"]}]}', "not base64 of 128 float32"),
    (b'{"version": 1, "removed": [], "people": [{"id": 1, "employee_id": "E1", "name": "A", "templates": ["'
     + base64.b64encode(np.full(128, np.nan, "<f4").tobytes()) + b'"]}]}', "NaN or infinity"),
    (b'{"version": true, "removed": [], "people": []}', "lacks version"),
    (b'{"version": 1, "removed": [], "people": [], "full": "yes"}', "not true or false"),
])
def test_answers_that_break_the_protocol_are_bad_answers(body: bytes, match: str) -> None:
    server, url = _serve(body)
    try:
        with pytest.raises(CentralBadAnswer, match=match):
            CentralClient(url, "t", timeout_s=5).gallery(0)
    finally:
        server.shutdown()
        server.server_close()


def test_a_huge_answer_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(central_client, "MAX_ANSWER_BYTES", 1000)
    server, url = _serve(b'{"version": 1, "people": [], "removed": [], "pad": "' + b"x" * 5000 + b'"}')
    try:
        with pytest.raises(CentralBadAnswer, match="larger than"):
            CentralClient(url, "t", timeout_s=5).gallery(0)
    finally:
        server.shutdown()
        server.server_close()


def test_an_address_that_is_not_http_is_refused_and_nan_is_not_sent() -> None:
    with pytest.raises(CentralRejected, match="https://kiosk.example.org"):
        CentralClient("ftp://example.org", "t")
    with pytest.raises(CentralRejected):
        enrol("kiosk.example.org", "code")
    event = event_json(EventInfo(1, 3, NOW, "in", "door", match_distance=float("nan"), match_score=0.5), "u")
    assert event["distance"] is None and event["score"] == 0.5 and event["at"] == NOW.isoformat()


def test_a_port_nobody_listens_on_is_offline() -> None:
    port = free_port()
    with pytest.raises(CentralOffline, match="cannot be reached"):
        CentralClient(f"http://127.0.0.1:{port}", "t", timeout_s=2).gallery(0)
