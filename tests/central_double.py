"""A small real central for door tests: docs/central.md's three routes over real HTTP, state in memory.

CentralDouble runs http.server in a thread on 127.0.0.1 and implements POST /api/v1/door/enrol,
POST /api/v1/door/events (each (door, seq) stored once, repeats skipped, answer: the last seq held) and
GET /api/v1/door/gallery?since= (versioned changes). Switches make the faults: stop()/start() (down:
connection refused), unavailable (503), slow_s (answer late), lose_answers (store the batch, then drop
the connection), max_batch (413), revoke(token) (403), and hold_push (store a batch, then wait for
release before answering: a door can be killed in the middle of an upload). To be replaced by the
real central in the end-to-end tests once that is merged.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from kiosk.config import RecognitionSettings

API = "/api/v1/door"
EMBEDDER = RecognitionSettings().embedder_id()


@dataclass
class Door:
    """A door known to the double."""

    device_id: str
    name: str
    site: str
    revoked: bool = False


@dataclass
class Push:
    """One POST /events that reached the double: the door, its seqs, what the door said."""

    device_id: str
    seqs: list[int]
    backlog: int
    clock: str
    stored: int


@dataclass
class CentralDouble:
    """The in-test central (see the module docstring); url after start()."""

    port: int = 0
    doors: dict[str, Door] = field(default_factory=dict)  # token -> door
    codes: dict[str, Door] = field(default_factory=dict)  # unused enrolment code -> door
    events: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)  # (device_id, seq) -> event
    order: list[tuple[str, int]] = field(default_factory=list)  # (device_id, seq) in the order stored
    pushes: list[Push] = field(default_factory=list)
    people: dict[int, dict[str, Any]] = field(default_factory=dict)  # central id -> the gallery's person object
    changes: list[tuple[int, int]] = field(default_factory=list)  # (version, person id)
    unavailable: bool = False
    slow_s: float = 0.0
    lose_answers: int = 0
    max_batch: int = 5000
    hold_push: int | None = None  # hold the answer of the push with this number (1 = the first)
    pushed: threading.Event = field(default_factory=threading.Event)  # set when the held push arrived
    release: threading.Event = field(default_factory=threading.Event)
    requests: int = 0

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    # -- life --------------------------------------------------------------------------------------
    def start(self) -> CentralDouble:
        """Listen (on the same port again after stop())."""
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the port: the door's requests are refused (the central is down)."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- admin side ----------------------------------------------------------------------------------
    def add_door(self, device_id: str = "main-entrance", name: str = "Main entrance", site: str = "berlin") -> str:
        """A one-time enrolment code for a new door."""
        code = secrets.token_hex(4)
        self.codes[code] = Door(device_id, name, site)
        return code

    def door_token(self, device_id: str = "main-entrance") -> str:
        """A token for a door, as if it had enrolled."""
        token = secrets.token_urlsafe(24)
        self.doors[token] = Door(device_id, device_id, "berlin")
        return token

    def revoke(self, token: str) -> None:
        self.doors[token].revoked = True

    def enrol_person(self, pid: int, employee_id: str, name: str, templates: np.ndarray, *, consent: bool = False,
                     active: bool = True) -> None:
        """Add or change a person (templates (N,128) float32): one gallery change."""
        with self.lock:
            self.people[pid] = {"id": pid, "employee_id": employee_id, "name": name, "active": active,
                                "expression_consent": consent,
                                "templates": [base64.b64encode(np.asarray(t, "<f4").tobytes()).decode()
                                              for t in np.atleast_2d(templates)]}
            self._change(pid)

    def set_consent(self, pid: int, consent: bool) -> None:
        with self.lock:
            self.people[pid]["expression_consent"] = consent
            self._change(pid)

    def remove_person(self, pid: int) -> None:
        """Erase a person: they go into `removed`."""
        with self.lock:
            self.people.pop(pid, None)
            self._change(pid)

    def _change(self, pid: int) -> None:
        self.changes.append((len(self.changes) + 1, pid))

    @property
    def version(self) -> int:
        return self.changes[-1][0] if self.changes else 0

    def held(self, device_id: str) -> list[int]:
        """The seqs stored for a door, in the order they were stored."""
        with self.lock:
            return [seq for door, seq in self.order if door == device_id]

    # -- routes ----------------------------------------------------------------------------------------
    def gallery(self, since: int) -> dict[str, Any]:
        with self.lock:
            changed = sorted({pid for version, pid in self.changes if version > since})
            people = [self.people[p] for p in changed if p in self.people and self.people[p]["active"]]
            removed = [p for p in changed if p not in self.people or not self.people[p]["active"]]
            return {"version": self.version, "embedder": EMBEDDER, "people": people, "removed": removed}

    def store_events(self, door: Door, body: dict[str, Any]) -> tuple[int, int]:
        """(the last seq held for door, events newly stored); skips repeats."""
        stored = 0
        with self.lock:
            for event in body["events"]:
                key = (door.device_id, int(event["seq"]))
                if key not in self.events:
                    self.events[key] = event
                    self.order.append(key)
                    stored += 1
            held = [seq for d, seq in self.events if d == door.device_id]
            return max(held, default=0), stored


def _handler(central: CentralDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
            pass

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, code: str, message: str) -> None:
            self._answer(status, {"error": code, "message": message})

        def _door(self) -> Door | None:
            auth = self.headers.get("Authorization", "")
            door = central.doors.get(auth.removeprefix("Bearer ")) if auth.startswith("Bearer ") else None
            if door is None:
                self._error(401, "bad_token", "unknown token")
            elif door.revoked:
                self._error(403, "revoked", "this door was revoked")
                return None
            return door

        def _body(self) -> dict[str, Any] | None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError:
                body = None
            if not isinstance(body, dict):
                self._error(400, "malformed", "not a JSON object")
                return None
            return body

        def _common(self) -> bool:
            central.requests += 1
            if central.slow_s:
                time.sleep(central.slow_s)
            if central.unavailable:
                self._error(503, "unavailable", "database unavailable: retry")
                return False
            return True

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if not self._common():
                return
            if url.path != API + "/gallery":
                self._error(404, "not_found", url.path)
                return
            if self._door() is None:
                return
            since = parse_qs(url.query).get("since", ["0"])[0]
            self._answer(200, central.gallery(int(since)))

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            if not self._common():
                return
            body = self._body()
            if body is None:
                return
            if url.path == API + "/enrol":
                door = central.codes.pop(str(body.get("code")), None)
                if door is None:
                    self._error(400, "bad_code", "this enrolment code is used, expired or unknown")
                    return
                token = secrets.token_urlsafe(24)
                central.doors[token] = door
                self._answer(200, {"token": token, "device_id": door.device_id, "name": door.name, "site": door.site})
                return
            if url.path != API + "/events":
                self._error(404, "not_found", url.path)
                return
            door = self._door()
            if door is None:
                return
            events = body.get("events")
            if not isinstance(events, list) or not all(isinstance(e, dict) and "seq" in e for e in events):
                self._error(400, "malformed", "events must be a list of objects with seq")
                return
            if len(events) > central.max_batch:
                self._error(413, "too_large", f"at most {central.max_batch} events per push")
                return
            last_seq, stored = central.store_events(door, body)
            central.pushes.append(Push(door.device_id, [int(e["seq"]) for e in events], int(body.get("backlog", -1)),
                                       str(body.get("clock")), stored))
            if central.hold_push is not None and len(central.pushes) == central.hold_push:
                central.pushed.set()
                central.release.wait(60)
            if central.lose_answers > 0:
                central.lose_answers -= 1
                self.close_connection = True
                return  # stored, but the door never hears it
            self._answer(200, {"last_seq": last_seq})

    return Handler
