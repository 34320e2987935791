"""The door API of a central server, /api/v1/door/{enrol,events,gallery,import} (docs/central.md): JSON
over HTTP, bearer tokens, registered by create_app only with role: central.

Every route but enrol needs `Authorization: Bearer <token>` (checked here before any view runs;
the app's sign-in and CSRF checks skip this blueprint: no cookies are read or set for a door).
Errors are JSON {"error": code, "message": one line}: 400 malformed, 401 unknown token, 403
revoked, 409 sequence conflict, 413 too large, 503 database unavailable (retry later).
"""

from __future__ import annotations

import base64
import json
import logging
import math
from datetime import date, datetime
from typing import Any, NoReturn

import numpy as np
from flask import Blueprint, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from kiosk import store
from kiosk.config import Settings
from kiosk.errors import DatabaseDamaged, DatabaseReadOnly, DatabaseUnavailable, KioskError
from kiosk.web.context import ctx

logger = logging.getLogger(__name__)

bp = Blueprint("door_api", __name__, url_prefix="/api/v1/door")

MAX_BODY_BYTES = 8 * 1024 * 1024
"""Largest request body taken (bytes): a full batch of MAX_BATCH events is well below it."""
MAX_BATCH = 5000
"""Most events in one push (central.batch on a door is at most this)."""
MAX_TEXT = 1000  # characters of a free text value (review, labels)
RETRY_AFTER_S = 30
MAX_INT = 2**31 - 1  # the largest seq, person id or backlog taken


class WireError(Exception):
    """A request refused with a JSON error: HTTP status, error code, one line for a person."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _fail(status: int, code: str, message: str) -> NoReturn:
    raise WireError(status, code, message)


def _json_error(status: int, code: str, message: str) -> Response:
    response = jsonify(error=code, message=message)
    response.status_code = status
    if status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


@bp.errorhandler(WireError)
def _wire_error(exc: WireError) -> Response:
    if exc.status >= 500 or exc.status in (401, 403, 409):
        logger.warning("door API %s %s: %s %s", request.method, request.path, exc.status, exc.message)
    return _json_error(exc.status, exc.code, exc.message)


@bp.errorhandler(KioskError)
def _kiosk_error(exc: KioskError) -> Response:
    """The store's refusals as JSON errors (see the module docstring)."""
    if isinstance(exc, DatabaseUnavailable | DatabaseReadOnly | DatabaseDamaged):
        logger.error("door API %s: database unavailable: %s", request.path, exc)
        return _json_error(503, "unavailable", f"the central's database is unavailable ({exc}); try again later")
    if isinstance(exc, store.DoorRevoked):
        return _json_error(403, "revoked", str(exc))
    if isinstance(exc, store.UnknownDoorToken | store.DoorNotFound):
        return _json_error(401, "unauthorized", str(exc))
    if isinstance(exc, store.BadEnrolCode):
        return _json_error(400, "bad_code", str(exc))
    if isinstance(exc, store.InvalidDoorEvent | store.InvalidImport):
        return _json_error(400, "malformed", str(exc))
    if isinstance(exc, store.SeqConflict):
        logger.error("door API: %s", exc)
        return _json_error(409, "seq_conflict", str(exc))
    return _json_error(400, "refused", str(exc))


@bp.errorhandler(RequestEntityTooLarge)  # by its code: the app's own 413 page would win otherwise
def _too_large(exc: RequestEntityTooLarge) -> Response:
    return _json_error(413, "too_large", f"the request is larger than {MAX_BODY_BYTES} bytes")


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return _json_error(exc.code or 500, exc.name.lower().replace(" ", "_"), exc.description or exc.name)


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    logger.exception("door API %s %s failed", request.method, request.path)
    return _json_error(500, "internal", "the central failed on this request; see its log")


@bp.before_request
def _authenticate() -> None:
    """Every request: a bounded body; every route but enrol: a door's valid bearer token (g.door)."""
    request.max_content_length = MAX_BODY_BYTES
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise RequestEntityTooLarge()
    g.door = None
    if request.endpoint == "door_api.enrol":
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        _fail(401, "unauthorized", "this needs the header Authorization: Bearer <door token>")
    g.door = store.authenticate_door(ctx().db, token.strip())


def _body() -> dict[str, Any]:
    """The request's JSON object (400 when it is not one; 413 past MAX_BODY_BYTES)."""
    raw = request.get_data(cache=False)
    try:
        payload = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        _fail(400, "malformed", f"the body is not JSON ({str(exc)[:120]})")
    if not isinstance(payload, dict):
        _fail(400, "malformed", "the body must be a JSON object")
    return payload


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a number JSON allows")


def _text(value: Any, what: str, most: int = MAX_TEXT, *, optional: bool = True) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > most:
        _fail(400, "malformed", f"{what} must be a text of at most {most} characters")
    return value


def _number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        _fail(400, "malformed", f"{what} must be a number or null")
    return float(value)


def _whole(value: Any, what: str, least: int = 0) -> int:
    """A whole number least..MAX_INT (INTEGER columns are 32-bit on PostgreSQL)."""
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= MAX_INT:
        _fail(400, "malformed", f"{what} must be a whole number from {least} to {MAX_INT}")
    return value


def _time(value: Any, what: str) -> datetime:
    """An ISO 8601 time with a UTC offset."""
    if not isinstance(value, str) or len(value) > 64:
        _fail(400, "malformed", f"{what} must be an ISO 8601 time with a UTC offset")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        _fail(400, "malformed", f"{what} {value[:40]!r} is not an ISO 8601 time")
    if at.tzinfo is None or at.utcoffset() is None:
        _fail(400, "malformed", f"{what} {value!r} has no UTC offset")
    return at


def _scores(value: Any, seq: int) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > 32:
        _fail(400, "malformed", f"event {seq}: expression_scores must be an object of numbers or null")
    out: dict[str, float] = {}
    for k, v in value.items():
        number = _number(v, f"event {seq}: expression_scores[{str(k)[:32]!r}]")
        if len(k) > 32 or number is None:
            _fail(400, "malformed", f"event {seq}: expression_scores must map short labels to numbers")
        out[k] = number
    return out


def _event(raw: Any, index: int) -> store.DoorEvent:
    """One event of a push, checked (400 naming the event otherwise)."""
    if not isinstance(raw, dict):
        _fail(400, "malformed", f"events[{index}] must be an object")
    seq = _whole(raw.get("seq"), f"events[{index}].seq", 1)
    uuid = _text(raw.get("uuid"), f"event {seq}: uuid", 36, optional=False)
    if not uuid:
        _fail(400, "malformed", f"event {seq}: uuid must not be empty")
    person_id = raw.get("person_id")
    if person_id is not None:
        person_id = _whole(person_id, f"event {seq}: person_id", 1)
    return store.DoorEvent(
        seq=seq, uuid=str(uuid), person_id=person_id, at=_time(raw.get("at"), f"event {seq}: at"),
        kind=str(_text(raw.get("kind"), f"event {seq}: kind", 16, optional=False)),
        distance=_number(raw.get("distance"), f"event {seq}: distance"),
        score=_number(raw.get("score"), f"event {seq}: score"),
        expression_label=_text(raw.get("expression_label"), f"event {seq}: expression_label", 32),
        expression_scores=_scores(raw.get("expression_scores"), seq),
        expression_confidence=_number(raw.get("expression_confidence"), f"event {seq}: expression_confidence"),
        review=_text(raw.get("review"), f"event {seq}: review"),
    )


@bp.post("/enrol")
def enrol() -> Response:
    """{"code", "version"} -> {"token", "device_id", "name", "site"}; 400 bad_code."""
    body = _body()
    code = _text(body.get("code"), "code", 200, optional=False)
    version = _text(body.get("version"), "version", 32)
    door, token = store.enrol_door(ctx().db, str(code), version=version, now=ctx().clock.now())
    return jsonify(token=token, device_id=door.device_id, name=door.name, site=door.site)


def pairing_of(settings: Settings) -> store.Pairing:
    """The merged stream's rules from settings: attendance mode and cooldown (s), the zone of each site in
    `sites:` and site:'s zone for the rest (events without a door's site)."""
    return store.Pairing(mode=settings.attendance.mode, default_zone=settings.tz,
                         site_zones={name: settings.rules_of(name).tz for name in settings.sites},
                         cooldown_s=settings.attendance.cooldown_s)


@bp.post("/events")
def events() -> Response:
    """{"clock", "version", "backlog", "events": [...]} -> {"last_seq", "stored", "repeated"}."""
    door: store.DoorInfo = g.door
    body = _body()
    raw_events = body.get("events")
    if not isinstance(raw_events, list):
        _fail(400, "malformed", "events must be a list (empty to only report)")
    if len(raw_events) > MAX_BATCH:
        _fail(413, "too_many", f"{len(raw_events)} events in one push; at most {MAX_BATCH}")
    clock = None if body.get("clock") is None else _time(body.get("clock"), "clock")
    version = _text(body.get("version"), "version", 32)
    backlog = None if body.get("backlog") is None else _whole(body.get("backlog"), "backlog")
    batch = [_event(raw, i) for i, raw in enumerate(raw_events)]
    c = ctx()
    result = store.ingest_events(c.db, door.id, batch, clock=clock, version=version, backlog=backlog,
                                 max_clock_offset_s=c.settings.central.max_clock_offset_s,
                                 pairing=pairing_of(c.settings), now=c.clock.now())
    return jsonify(last_seq=result.last_seq, stored=result.stored, repeated=result.repeated)


@bp.get("/gallery")
def gallery() -> Response:
    """?since=<version> -> {"version", "embedder", "full", "people": [...], "removed": [...]}."""
    door: store.DoorInfo = g.door
    since_text = request.args.get("since", "0")
    if not since_text.isascii() or not since_text.isdigit() or len(since_text) > 18:
        _fail(400, "malformed", "since must be a gallery version: a whole number from 0")
    since = int(since_text)
    c = ctx()
    changes = store.changes_since(c.db, since)
    store.note_gallery_pull(c.db, door.id, since, now=c.clock.now())
    people = [{"id": p.id, "employee_id": p.employee_id, "name": p.name, "active": p.active,
               "expression_consent": p.expression_consent,
               "templates": [base64.b64encode(t).decode("ascii") for t in p.templates]}
              for p in changes.people]
    return jsonify(version=changes.version, embedder=c.settings.recognition.embedder_id(),
                   full=changes.full, people=people, removed=changes.removed)


MAX_IMPORT_ITEMS = 5000  # people, leave or audit lines in one import request


def _list(body: dict[str, Any], key: str) -> list[Any]:
    value = body.get(key, [])
    if not isinstance(value, list):
        _fail(400, "malformed", f"{key} must be a list")
    if len(value) > MAX_IMPORT_ITEMS:
        _fail(413, "too_many", f"{len(value)} {key} in one request; at most {MAX_IMPORT_ITEMS}")
    return value


def _object(raw: Any, what: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        _fail(400, "malformed", f"{what} must be an object")
    return raw


def _day(value: Any, what: str) -> date:
    if not isinstance(value, str) or len(value) != 10:
        _fail(400, "malformed", f"{what} must be a day YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        _fail(400, "malformed", f"{what} {value!r} is not a day YYYY-MM-DD")


def _import_person(raw: Any, i: int) -> store.ImportPerson:
    p = _object(raw, f"people[{i}]")
    templates = p.get("templates", [])
    if not isinstance(templates, list) or len(templates) > 100:
        _fail(400, "malformed", f"people[{i}].templates must be a list of at most 100 templates")
    blobs: list[bytes] = []
    for t in templates:
        try:
            blob = base64.b64decode(str(t), validate=True)
        except ValueError:
            blob = b""
        vector = np.frombuffer(blob, dtype="<f4") if len(blob) == 512 else None
        if vector is None or not np.isfinite(vector).all():
            _fail(400, "malformed", f"people[{i}]: a template must be base64 of 128 finite float32 LE")
        blobs.append(blob)
    if not isinstance(p.get("active"), bool) or not isinstance(p.get("expression_consent"), bool):
        _fail(400, "malformed", f"people[{i}]: active and expression_consent must be true or false")
    return store.ImportPerson(
        local_id=_whole(p.get("local_id"), f"people[{i}].local_id", 1),
        employee_id=str(_text(p.get("employee_id"), f"people[{i}].employee_id", 64, optional=False)),
        name=str(_text(p.get("name"), f"people[{i}].name", 200, optional=False)),
        active=bool(p["active"]), expression_consent=bool(p["expression_consent"]), templates=blobs,
        embedder=_text(p.get("embedder"), f"people[{i}].embedder", 100))


def _import_leave(raw: Any, i: int) -> store.ImportLeave:
    item = _object(raw, f"leave[{i}]")
    return store.ImportLeave(
        employee_id=str(_text(item.get("employee_id"), f"leave[{i}].employee_id", 64, optional=False)),
        first_day=_day(item.get("first_day"), f"leave[{i}].first_day"),
        last_day=_day(item.get("last_day"), f"leave[{i}].last_day"),
        kind=str(_text(item.get("kind"), f"leave[{i}].kind", 16, optional=False)),
        recorded_by=str(_text(item.get("recorded_by"), f"leave[{i}].recorded_by", 100, optional=False)))


def _import_audit(raw: Any, i: int) -> store.ImportAudit:
    a = _object(raw, f"audit[{i}]")
    details = a.get("details")
    if details is not None and (not isinstance(details, dict) or len(json.dumps(details)) > 4 * MAX_TEXT):
        _fail(400, "malformed", f"audit[{i}].details must be a small object or null")
    return store.ImportAudit(
        at=_time(a.get("at"), f"audit[{i}].at"),
        actor=str(_text(a.get("actor"), f"audit[{i}].actor", 100, optional=False)),
        action=str(_text(a.get("action"), f"audit[{i}].action", 64, optional=False)),
        target=_text(a.get("target"), f"audit[{i}].target", 200), details=details)


@bp.post("/import")
def import_standalone() -> Response:
    """A joining kiosk's {"people", "leave", "audit"} (any of them) -> {"people": {local id: central id},
    "created", "matched", "leave_stored", "leave_repeated", "audit_stored", "audit_repeated", "conflicts"}."""
    door: store.DoorInfo = g.door
    body = _body()
    people = [_import_person(raw, i) for i, raw in enumerate(_list(body, "people"))]
    leave = [_import_leave(raw, i) for i, raw in enumerate(_list(body, "leave"))]
    audit = [_import_audit(raw, i) for i, raw in enumerate(_list(body, "audit"))]
    c = ctx()
    r = store.import_standalone(c.db, door.device_id, people, leave, audit, now=c.clock.now())
    return jsonify(people={str(k): v for k, v in r.people.items()}, created=r.created, matched=r.matched,
                   leave_stored=r.leave_stored, leave_repeated=r.leave_repeated, audit_stored=r.audit_stored,
                   audit_repeated=r.audit_repeated, conflicts=r.conflicts)
