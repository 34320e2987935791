"""The door screen (names of people arriving) answers only to loopback Host names, so a page in
the Pi's browser that rebinds its DNS name to 127.0.0.1 cannot read it."""

from __future__ import annotations

import http.client

import pytest

from kiosk.screen import ScreenServer, ScreenState
from kiosk.screen.server import host_allowed

pytestmark = pytest.mark.reliability


def _get(port: int, path: str, host: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", host)
        conn.endheaders()
        return conn.getresponse().status
    finally:
        conn.close()


def test_a_rebound_host_name_cannot_read_the_screen() -> None:
    server = ScreenServer(ScreenState(), host="127.0.0.1", port=0).start()
    try:
        assert _get(server.port, "/state.json", f"127.0.0.1:{server.port}") == 200
        assert _get(server.port, "/state.json", f"localhost:{server.port}") == 200
        assert _get(server.port, "/state.json", f"evil.example:{server.port}") == 403
        assert _get(server.port, "/", "evil.example") == 403
    finally:
        server.stop()


@pytest.mark.parametrize(("header", "bound", "allowed"), [
    ("127.0.0.1:8081", "127.0.0.1", True), ("LOCALHOST", "127.0.0.1", True), ("[::1]:8081", "127.0.0.1", True),
    ("evil.example:8081", "127.0.0.1", False), (None, "127.0.0.1", False), ("127.0.0.1.evil.example", "127.0.0.1", False),
    ("kiosk.office.lan:8081", "0.0.0.0", True),
])
def test_host_rule(header: str | None, bound: str, allowed: bool) -> None:
    assert host_allowed(header, bound) is allowed
