"""Kiosk status for the admin page: the service's status.json, disk space, versions."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from kiosk import __version__
from kiosk.config import Settings
from kiosk.door_status import DoorState, DoorStatus, JsonObject, read_status_file

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceStatus:
    """What the kiosk service last reported; running False when missing, unreadable, stopped or stale.

    record is the typed status (None when there is no readable file); data the file's JSON object as
    written, any version, for the status page's table of everything the service reported.
    """

    path: Path
    running: bool
    message: str
    updated_at: datetime | None = None
    record: DoorStatus | None = None
    data: JsonObject = field(default_factory=dict)


def read_status(settings: Settings, now: datetime) -> ServiceStatus:
    """Read the service status file; stale after web.status_stale_s without an update."""
    path = settings.status_path
    if not path.is_file():
        return ServiceStatus(path, False, "service not running (no status file)")
    try:
        record, data = read_status_file(path)
    except (OSError, ValueError) as exc:
        return ServiceStatus(path, False, f"service status unreadable: {exc}")
    updated = record.updated_at or datetime.fromtimestamp(path.stat().st_mtime, UTC)
    age = (now - updated).total_seconds()
    if record.state is DoorState.STOPPED:
        reason = record.stop_reason
        return ServiceStatus(path, False, "service stopped" + (f" ({reason})" if reason else ""),
                             updated, record, data)
    if age > settings.web.status_stale_s:
        return ServiceStatus(path, False, f"service not running (last status {age / 60:.0f} "
                                          "minutes ago)", updated, record, data)
    return ServiceStatus(path, True, "running", updated, record, data)


def disk_usage(settings: Settings) -> dict[str, float]:
    """Free/total GB and percent used of the filesystem holding the database."""
    folder = Path(settings.database.path).resolve().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    usage = shutil.disk_usage(folder)
    return {"free_gb": usage.free / 1e9, "total_gb": usage.total / 1e9,
            "used_pct": 100.0 * usage.used / max(usage.total, 1)}


def versions() -> dict[str, str]:
    """Versions of the kiosk and the libraries that decide recognition results."""
    out = {"kiosk": __version__}
    for dist in ("dlib-bin", "face_recognition_models", "ai-edge-litert", "Flask"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out
