"""The door service's status file (service.status_file): one typed record, DoorStatus, written and read here.

The door service rewrites it atomically after every committed event and every service.status_interval_s;
the web app's status and capture pages and the CLI read it back with read_status_file(). It holds no
names (person ids only). Reading is lenient: a file from an older version, with keys missing or of
another shape, reads with defaults for what it lacks; only a file that is not a JSON object is refused.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeGuard

from kiosk.atomic_write import replace_file

logger = logging.getLogger(__name__)

JsonObject = dict[str, Any]
"""A JSON object as the json module reads and writes it (Any: the json module's seam)."""


class DoorState(StrEnum):
    """Life of the door service as the status file reports it."""

    STARTING = "starting"
    RUNNING = "running"
    STOPPED = "stopped"


@dataclass(frozen=True)
class CameraReport:
    """Camera health: state, last error, reopen counts, seconds to the next attempt, frames, seconds in this state."""

    state: str = "closed"
    last_error: str | None = None
    reconnects: int = 0  # successful reopens after a loss or a failed open
    failed_attempts: int = 0  # failed opens since the camera was last ok
    next_attempt_in_s: float | None = None  # None unless lost/retrying
    frames: int = 0  # frames delivered
    since_s_ago: float = 0.0  # seconds since the state last changed


@dataclass(frozen=True)
class DbFault:
    """What keeps check-ins out of the database: the errors, since when (UTC), how many wait, failed retries."""

    error: str | None
    journal_error: str | None
    since: datetime | None
    waiting: int
    failed_attempts: int


@dataclass(frozen=True)
class JournalReport:
    """The check-in journal: its path, decisions waiting for the database, entries dropped as unwritable."""

    path: str
    pending: int
    dropped: int


@dataclass(frozen=True)
class GalleryReport:
    """The loaded gallery: templates, people, and ids of people whose templates other settings made."""

    templates: int = 0
    people: int = 0
    people_to_re_enrol: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class ModelReport:
    """The models in use: face detector, presence width (px), expression analysis on, its model file."""

    detector: str | None = None
    presence_width: int | None = None
    expression: bool = False
    expression_model: str | None = None


@dataclass(frozen=True)
class CentralReport:
    """A door's link to its central (role: door): address, reachable (None: not tried yet), last good push
    (UTC), highest seq acknowledged, events waiting, gallery version applied, revoked, and the last problem."""

    url: str = ""
    online: bool | None = None
    last_push_at: datetime | None = None
    pushed_seq: int = 0
    backlog: int = 0
    gallery_version: int = 0
    revoked: bool = False
    enrolled: bool = False  # a token file is there
    device_id: str | None = None  # who the door is on the central (from enrolment)
    last_pull_at: datetime | None = None
    error: str | None = None  # the last failed request's one-line reason; None after a good round

    def as_json(self) -> JsonObject:
        """The status file's "central" object (times as ISO 8601 text)."""
        return {**asdict(self), "last_push_at": _iso(self.last_push_at), "last_pull_at": _iso(self.last_pull_at)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CentralReport:
        """Lenient inverse of as_json()."""
        online = data.get("online")
        return cls(url=_text(data, "url") or "", online=online if isinstance(online, bool) else None,
                   last_push_at=_time(data.get("last_push_at")), pushed_seq=_int(data, "pushed_seq"),
                   backlog=_int(data, "backlog"), gallery_version=_int(data, "gallery_version"),
                   revoked=data.get("revoked") is True, enrolled=data.get("enrolled") is True,
                   device_id=_text(data, "device_id"), last_pull_at=_time(data.get("last_pull_at")),
                   error=_text(data, "error"))


@dataclass
class RecentDecision:
    """One of the latest decisions at the door: when (UTC), whom (person id, None: unknown), how it went.

    distance is the match distance (None for unknown faces), timings_ms the pipeline's step times;
    has_event: the decision made an event, whose event_id stays None until the database has it.
    """

    at: datetime
    person_id: int | None
    distance: float | None
    frames: int
    recheck: bool
    timings_ms: dict[str, float]
    result: str = ""
    late: bool | None = None
    has_event: bool = False
    event_id: int | None = None

    def as_json(self) -> JsonObject:
        """The JSON object of the status file (late only for recorded events, event_id only with an event)."""
        out: JsonObject = {"at": self.at.isoformat(), "person_id": self.person_id, "distance": self.distance,
                           "frames": self.frames, "recheck": self.recheck, "timings_ms": dict(self.timings_ms),
                           "result": self.result}
        if self.late is not None:
            out["late"] = self.late
        if self.has_event:
            out["event_id"] = self.event_id
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecentDecision:
        """Lenient inverse of as_json()."""
        timings = data.get("timings_ms")
        return cls(at=_time(data.get("at")) or datetime.fromtimestamp(0, UTC), person_id=_int_or_none(data, "person_id"),
                   distance=_float_or_none(data, "distance"), frames=_int(data, "frames"),
                   recheck=data.get("recheck") is True,
                   timings_ms={str(k): float(v) for k, v in timings.items() if _is_number(v)}
                   if isinstance(timings, dict) else {},
                   result=_text(data, "result") or "", late=data.get("late") if isinstance(data.get("late"), bool)
                   else None, has_event="event_id" in data, event_id=_int_or_none(data, "event_id"))


@dataclass(frozen=True)
class DoorStatus:
    """The door service's last report: process, state, times (aware UTC), camera, counts, faults, gallery, models,
    and (role door) the link to the central.

    rss_mb and rss_start_mb are the resident memory now and after start-up (MB); counts are totals since
    start (frames, decisions, events, ...); screen is the door screen's URL when it is served.
    """

    service: str = "kiosk"
    version: str = ""
    pid: int | None = None
    state: DoorState | None = None  # None: not a state this version knows
    stop_reason: str | None = None
    started_at: datetime | None = None
    updated_at: datetime | None = None
    clock: str | None = None  # service.clock: "system" or "replay"
    now: datetime | None = None  # the service clock's time (scene time in a replay)
    last_frame_at: datetime | None = None
    device_id: str | None = None
    camera: CameraReport = field(default_factory=CameraReport)
    pipeline: str | None = None
    capture_request: int | None = None  # id of the capture request being served
    counts: dict[str, int] = field(default_factory=dict)
    db_fault: DbFault | None = None
    purge_refused: str | None = None  # why today's retention purge deleted nothing (a clock far ahead of the data)
    journal: JournalReport | None = None
    gallery: GalleryReport = field(default_factory=GalleryReport)
    model: ModelReport = field(default_factory=ModelReport)
    screen: str | None = None
    rss_mb: float = 0.0
    rss_start_mb: float = 0.0
    recent: list[RecentDecision] = field(default_factory=list)
    central: CentralReport | None = None  # None: not a door of a central (role standalone)

    def as_json(self) -> JsonObject:
        """The JSON object written to the status file (times as ISO 8601 text)."""
        return {
            "service": self.service, "version": self.version, "pid": self.pid,
            "state": None if self.state is None else self.state.value, "stop_reason": self.stop_reason,
            "started_at": _iso(self.started_at), "updated_at": _iso(self.updated_at), "clock": self.clock,
            "now": _iso(self.now), "last_frame_at": _iso(self.last_frame_at), "device_id": self.device_id,
            "camera": asdict(self.camera), "pipeline": self.pipeline, "capture_request": self.capture_request,
            "counts": dict(self.counts),
            "db_fault": None if self.db_fault is None else {**asdict(self.db_fault), "since": _iso(self.db_fault.since)},
            "purge_refused": self.purge_refused,
            "journal": None if self.journal is None else asdict(self.journal),
            "gallery": asdict(self.gallery), "model": asdict(self.model), "screen": self.screen,
            "rss_mb": self.rss_mb, "rss_start_mb": self.rss_start_mb,
            "recent": [r.as_json() for r in self.recent],
            "central": None if self.central is None else self.central.as_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DoorStatus:
        """The record of a status file's object, any version: what is missing or of another shape gets its default."""
        state = data.get("state")
        camera = data.get("camera")
        fault = _object(data, "db_fault")
        journal = _object(data, "journal")
        gallery = _object(data, "gallery") or {}
        model = _object(data, "model") or {}
        recent = data.get("recent")
        counts = _object(data, "counts") or {}
        central = _object(data, "central")
        return cls(
            service=_text(data, "service") or "kiosk", version=_text(data, "version") or "",
            pid=_int_or_none(data, "pid"),
            state=DoorState(state) if state in tuple(DoorState) else None,
            stop_reason=_text(data, "stop_reason"), started_at=_time(data.get("started_at")),
            updated_at=_time(data.get("updated_at")), clock=_text(data, "clock"), now=_time(data.get("now")),
            last_frame_at=_time(data.get("last_frame_at")), device_id=_text(data, "device_id"),
            camera=_camera(camera), pipeline=_text(data, "pipeline"),
            capture_request=_int_or_none(data, "capture_request"),
            counts={str(k): v for k, v in counts.items() if isinstance(v, int) and not isinstance(v, bool)},
            db_fault=None if fault is None else DbFault(
                _text(fault, "error"), _text(fault, "journal_error"), _time(fault.get("since")),
                _int(fault, "waiting"), _int(fault, "failed_attempts")),
            purge_refused=_text(data, "purge_refused"),
            journal=None if journal is None else JournalReport(
                _text(journal, "path") or "", _int(journal, "pending"), _int(journal, "dropped")),
            gallery=GalleryReport(_int(gallery, "templates"), _int(gallery, "people"),
                                  [i for i in gallery.get("people_to_re_enrol") or [] if isinstance(i, int)]),
            model=ModelReport(_text(model, "detector"), _int_or_none(model, "presence_width"),
                              model.get("expression") is True, _text(model, "expression_model")),
            screen=_text(data, "screen"),
            rss_mb=_float_or_none(data, "rss_mb") or 0.0, rss_start_mb=_float_or_none(data, "rss_start_mb") or 0.0,
            recent=[RecentDecision.from_json(r) for r in recent if isinstance(r, dict)]
            if isinstance(recent, list) else [],
            central=None if central is None else CentralReport.from_json(central),
        )


def write_json_atomic(path: Path, data: JsonObject) -> None:
    """Write JSON to a temp file in the same folder, fsync, rename over path (readers never see half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, json.dumps(data, indent=1, default=str).encode("utf-8"), mode=0o640)


def write_status_file(path: Path, status: DoorStatus) -> None:
    """Atomically replace the status file with status; OSError when it cannot be written."""
    write_json_atomic(path, status.as_json())


def read_status_file(path: Path) -> tuple[DoorStatus, JsonObject]:
    """(the record, the file's JSON object as written); OSError when unreadable, ValueError when not a JSON object."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return DoorStatus.from_json(data), data


class StatusWriter:
    """Writes the status file for the door service; a write that fails is logged once, never raised."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.failing = False

    def save(self, status: DoorStatus) -> bool:
        """Write status; False (logged at the first failure of a run of them) when the disk refused it."""
        try:
            write_status_file(self.path, status)
        except OSError as exc:
            if not self.failing:
                logger.error("cannot write the status file %s: %s (the door keeps working)", self.path, exc)
            self.failing = True
            return False
        if self.failing:
            logger.info("status file %s written again", self.path)
        self.failing = False
        return True


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _time(value: object) -> datetime | None:
    """An ISO 8601 text as an aware datetime (naive ones taken as UTC); None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def _int_or_none(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _int(data: Mapping[str, Any], key: str) -> int:
    return _int_or_none(data, key) or 0


def _float_or_none(data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    return float(value) if _is_number(value) else None


def _object(data: Mapping[str, Any], key: str) -> JsonObject | None:
    value = data.get(key)
    return value if isinstance(value, dict) else None


def _camera(value: object) -> CameraReport:
    """The camera entry: an object (this version), a bare state text (older files), or missing."""
    if isinstance(value, str):
        return CameraReport(state=value)
    if not isinstance(value, dict):
        return CameraReport()
    return CameraReport(state=_text(value, "state") or "closed", last_error=_text(value, "last_error"),
                        reconnects=_int(value, "reconnects"), failed_attempts=_int(value, "failed_attempts"),
                        next_attempt_in_s=_float_or_none(value, "next_attempt_in_s"), frames=_int(value, "frames"),
                        since_s_ago=_float_or_none(value, "since_s_ago") or 0.0)
