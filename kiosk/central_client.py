"""The door's HTTP client for the central server's door protocol (docs/central.md, /api/v1/door/...).

Plain urllib.request and JSON; every request but enrol carries `Authorization: Bearer <token>`;
each request may take central.timeout_s seconds. Every outcome that is not an answer is one error
class, so the sync thread knows what to do: CentralOffline (no connection, timeout, a dropped answer,
5xx: retry later), DoorRevoked (403 revoked: show it, keep checking people in), BadToken (401: enrol
again), SeqConflict (409 seq_conflict: the central holds some of these sequence numbers for other events;
stop pushing until the admin adds the door again), CentralRejected (400/413/other 4xx: the request itself
is refused), CentralBadAnswer (an answer that does not follow the protocol). Answers are checked before anything is handed on.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import json
import logging
import math
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeGuard

import numpy as np

from kiosk import __version__
from kiosk.errors import KioskError
from kiosk.store import CachedPerson, EventInfo

logger = logging.getLogger(__name__)

API = "/api/v1/door"
MAX_ANSWER_BYTES = 256 * 1024 * 1024
"""Largest answer read (a gallery of ~60,000 templates); a bigger one is a CentralBadAnswer."""
TEMPLATE_BYTES = 128 * 4
"""One template on the wire: 128 float32 little-endian, base64-encoded."""


class CentralError(KioskError):
    """A request to the central did not get a usable answer; status is the HTTP status (None: none)."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class CentralOffline(CentralError):
    """No answer: connection refused or lost, timeout, DNS, or 5xx (503: database unavailable). Retry."""


class DoorRevoked(CentralError):
    """403 revoked: an admin revoked this door; its requests are refused until it is enrolled again."""


class BadToken(CentralError):
    """401: the central does not know this door's token (enrol again: `kiosk central enrol URL CODE`)."""


class CentralRejected(CentralError):
    """400, 413 or another 4xx: the central refused the request itself (code: its error code)."""


class SeqConflict(CentralRejected):
    """409 seq_conflict: the central holds some of the batch's sequence numbers for other events (this door's
    database was replaced and its numbering started again); nothing of the batch was stored."""


class CentralBadAnswer(CentralError):
    """An answer that does not follow the protocol (not JSON, wrong shape, too big)."""


@dataclass(frozen=True)
class Enrolment:
    """What `POST /enrol` gives a door: its token and who it is on the central."""

    token: str
    device_id: str
    name: str
    site: str


@dataclass(frozen=True)
class PushAnswer:
    """`POST /events`: the highest sequence the central holds for this door, events it stored from this
    batch, and events it skipped as repeats (None: a central that does not say)."""

    last_seq: int
    stored: int | None = None
    repeated: int | None = None


@dataclass(frozen=True)
class GalleryAnswer:
    """`GET /gallery?since=`: the newest change's version, the central's embedder id, the full state of every
    person changed since (templates (N,128) float32), the ids of people removed (erased or deactivated), and
    full: the answer is the whole gallery, to replace the door's cache (None: a central that does not say)."""

    version: int
    embedder: str | None
    people: list[CachedPerson]
    removed: list[int]
    full: bool | None = None


def check_url(url: str) -> str:
    """The central's base address without a trailing slash; CentralRejected unless http(s)://host."""
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise CentralRejected(f"the central's address must look like https://kiosk.example.org, got {url!r}")
    return url.strip().rstrip("/")


def event_json(event: EventInfo, uuid: str) -> dict[str, Any]:
    """One event of a push, its seq being the door's local event id (times UTC ISO 8601)."""
    return {"seq": event.id, "uuid": uuid, "person_id": event.person_id, "at": event.occurred_at.isoformat(),
            "kind": event.kind, "distance": finite_or_none(event.match_distance),
            "score": finite_or_none(event.match_score), "expression_label": event.expression_label,
            "expression_scores": event.expression_scores,
            "expression_confidence": finite_or_none(event.expression_confidence), "review": event.review}


class CentralClient:
    """Requests of one door to its central: push events, pull the gallery (enrol is enrol() below)."""

    def __init__(self, url: str, token: str, timeout_s: float = 10.0) -> None:
        self.url = check_url(url)
        self.token = token
        self.timeout_s = timeout_s

    def push_events(self, events: Sequence[Mapping[str, Any]], *, clock: datetime, backlog: int) -> PushAnswer:
        """POST /events with events (event_json) and the door's clock; the answer (last_seq: the highest
        sequence the central holds for this door). backlog: events still waiting after this batch."""
        body = {"clock": clock.isoformat(), "version": __version__, "backlog": backlog, "events": list(events)}
        answer = call_central(self.url + API + "/events", body, self.token, self.timeout_s)
        last_seq, stored, repeated = answer.get("last_seq"), answer.get("stored"), answer.get("repeated")
        if not _is_int(last_seq) or last_seq < 0:
            raise CentralBadAnswer(f"the central's answer to a push has no last_seq: {_short(answer)}")
        for name, count in (("stored", stored), ("repeated", repeated)):
            if count is not None and (not _is_int(count) or not 0 <= count <= len(events)):
                raise CentralBadAnswer(f"the central's answer to a push of {len(events)} events has {name} "
                                       f"{count!r}")
        return PushAnswer(last_seq, stored, repeated)

    def gallery(self, since: int) -> GalleryAnswer:
        """GET /gallery?since=since: what changed in the gallery after version since (0: all of it)."""
        answer = call_central(f"{self.url}{API}/gallery?since={int(since)}", None, self.token, self.timeout_s)
        return parse_gallery(answer)


def enrol(url: str, code: str, *, timeout_s: float = 10.0) -> Enrolment:
    """POST /enrol: exchange a one-time enrolment code for this door's token (CentralRejected bad_code)."""
    answer = call_central(check_url(url) + API + "/enrol", {"code": code.strip(), "version": __version__}, None,
                      timeout_s)
    fields = {k: answer.get(k) for k in ("token", "device_id", "name", "site")}
    if not all(isinstance(v, str) for v in fields.values()) or not fields["token"] or not fields["device_id"]:
        raise CentralBadAnswer(f"the central's answer to enrol lacks token, device_id, name or site: "
                               f"{_short({k: v for k, v in answer.items() if k != 'token'})}")
    return Enrolment(**{k: str(v) for k, v in fields.items()})


def parse_gallery(answer: Mapping[str, Any]) -> GalleryAnswer:
    """The GalleryAnswer of a gallery JSON object; CentralBadAnswer for any field of the wrong shape."""
    version, people, removed = answer.get("version"), answer.get("people"), answer.get("removed")
    embedder, full = answer.get("embedder"), answer.get("full")
    if not _is_int(version) or version < 0 or not isinstance(people, list) or not isinstance(removed, list):
        raise CentralBadAnswer(f"the central's gallery answer lacks version, people or removed: {_short(answer)}")
    if embedder is not None and not isinstance(embedder, str):
        raise CentralBadAnswer("the central's gallery answer has an embedder that is not text")
    if full is not None and not isinstance(full, bool):
        raise CentralBadAnswer(f"the central's gallery answer has full {_short(full)}, not true or false")
    if not all(_is_int(i) for i in removed):
        raise CentralBadAnswer("the central's gallery answer has a removed id that is not a number")
    return GalleryAnswer(version, embedder, [_person(p) for p in people], [int(i) for i in removed], full)


def _person(data: object) -> CachedPerson:
    """One person of a gallery answer; templates decoded to (N,128) float32."""
    if not isinstance(data, dict):
        raise CentralBadAnswer("a person in the central's gallery answer is not an object")
    pid, eid, name, templates = data.get("id"), data.get("employee_id"), data.get("name"), data.get("templates")
    if not _is_int(pid) or not isinstance(eid, str) or not isinstance(name, str) or not isinstance(templates, list):
        raise CentralBadAnswer(f"a person in the central's gallery answer lacks id, employee_id, name or "
                               f"templates (id {pid!r})")
    rows = []
    for text in templates:
        try:
            raw = base64.b64decode(text, validate=True) if isinstance(text, str) else b""
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != TEMPLATE_BYTES:
            raise CentralBadAnswer(f"person {pid}: a template is not base64 of 128 float32 ({len(raw)} bytes)")
        rows.append(np.frombuffer(raw, dtype="<f4"))
    matrix = np.stack(rows).astype(np.float32) if rows else np.empty((0, 128), dtype=np.float32)
    if not np.all(np.isfinite(matrix)):
        raise CentralBadAnswer(f"person {pid}: a template holds NaN or infinity")
    return CachedPerson(int(pid), eid, name, data.get("active") is not False, data.get("expression_consent") is True,
                        matrix)


def call_central(url: str, body: Mapping[str, Any] | None, token: str | None, timeout_s: float) -> dict[str, Any]:
    """One JSON request (POST with body, else GET); the answer's JSON object, or one of the errors above."""
    headers = {"Accept": "application/json", "User-Agent": f"kiosk-door/{__version__}"}
    data = None
    if body is not None:
        data = json.dumps(body, allow_nan=False).encode("utf-8")
        headers["Content-Type"] = "application/json"
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if body is not None else "GET")
    where = urllib.parse.urlsplit(url).netloc
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 (http(s) checked)
            raw = response.read(MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise _http_error(exc, where) from None
    except (TimeoutError, urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        if isinstance(reason, TimeoutError | socket.timeout):
            reason = f"no answer within {timeout_s:g} s"
        raise CentralOffline(f"the central at {where} cannot be reached: {reason}") from None
    if len(raw) > MAX_ANSWER_BYTES:
        raise CentralBadAnswer(f"the central's answer is larger than {MAX_ANSWER_BYTES // 2**20} MiB")
    try:
        answer = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise CentralBadAnswer(f"the central at {where} answered something that is not JSON: {raw[:80]!r}") from None
    if not isinstance(answer, dict):
        raise CentralBadAnswer(f"the central at {where} answered JSON that is not an object: {_short(answer)}")
    return answer


def _http_error(exc: urllib.error.HTTPError, where: str) -> CentralError:
    """The error class of an HTTP error status, with the central's own one-line message."""
    code: str | None = None
    message = ""
    try:
        body = json.loads(exc.read(65536) or b"{}")
        if isinstance(body, dict):
            code = body["error"] if isinstance(body.get("error"), str) else None
            message = body["message"] if isinstance(body.get("message"), str) else ""
    except (OSError, ValueError, http.client.HTTPException):
        pass
    status = exc.code
    text = f"the central at {where} answered {status} {code or exc.reason}" + (f": {message}" if message else "")
    if status == 403 and code == "revoked":
        return DoorRevoked(text, status, code)
    if status == 401:
        return BadToken(text, status, code)
    if status == 409 and code == "seq_conflict":
        return SeqConflict(text, status, code)
    if status >= 500 or status in (408, 429):
        return CentralOffline(text, status, code)
    if 400 <= status < 500:
        return CentralRejected(text, status, code)
    return CentralBadAnswer(text, status, code)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _short(value: object) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 120 else text[:117] + "..."


def finite_or_none(value: float | None) -> float | None:
    """value unless NaN or infinite (JSON has no such numbers)."""
    return None if value is None or not math.isfinite(value) else value
