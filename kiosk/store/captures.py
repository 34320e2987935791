"""Capture requests: an admin asks the kiosk camera to take a person's enrolment photos.

The web app or the CLI adds a request (request_capture); the door service takes the oldest
waiting one (take_capture), reports progress (capture_progress) and the outcome
(finish_capture). One request is active (waiting or capturing) at a time: there is one door.
Times are real UTC time on both sides (not a replay's scene time): a person walks to the door.
Requests hold no biometric data; finished ones are deleted a day later (purge_expired).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from kiosk.errors import StoreError
from kiosk.identity import clean_employee_id, clean_name
from kiosk.store._base import now_utc, record_of, write_audit
from kiosk.store.db import Database
from kiosk.store.models import CaptureRequest
from kiosk.vocabulary import CAPTURES_ACTIVE as ACTIVE
from kiosk.vocabulary import CAPTURES_FINISHED, CaptureStatus

logger = logging.getLogger(__name__)

ORPHANED_AFTER = timedelta(seconds=60)  # a capture still running this long after its deadline lost its service


class CaptureBusy(StoreError):
    """Another capture request is still waiting or being captured."""


class CaptureNotFound(StoreError):
    """No capture request with this id."""


@dataclass(frozen=True)
class CaptureInfo:
    """A capture request as stored; times aware UTC."""

    id: int
    employee_id: str
    name: str
    expression_consent: bool
    replace: bool
    force: bool
    requested_by: str
    requested_at: datetime
    expires_at: datetime
    status: str
    message: str | None
    photos_taken: int
    person_id: int | None
    finished_at: datetime | None

    @property
    def active(self) -> bool:
        """Still waiting for the person or being photographed."""
        return self.status in ACTIVE


def _info(r: CaptureRequest) -> CaptureInfo:
    return record_of(CaptureInfo, r)


def _finish(s: Session, r: CaptureRequest, status: str, message: str | None, actor: str, now: datetime) -> None:
    r.status, r.message, r.finished_at = status, message, now
    write_audit(s, actor, f"capture.{status}", f"capture:{r.id}", {"employee_id": r.employee_id}, now)


def _expire(s: Session, now: datetime) -> None:
    """Expire waiting requests past their deadline, and capturing ones ORPHANED_AFTER later (the
    door service ends its own capture at the deadline; one still capturing then has lost its service)."""
    late = (((CaptureRequest.status == CaptureStatus.WAITING) & (CaptureRequest.expires_at <= now))
            | ((CaptureRequest.status == CaptureStatus.CAPTURING)
               & (CaptureRequest.expires_at <= now - ORPHANED_AFTER)))
    for r in s.scalars(select(CaptureRequest).where(late)):
        why = ("nobody stood at the kiosk" if r.status == CaptureStatus.WAITING
               else "the kiosk service stopped before the photos were taken")
        _finish(s, r, CaptureStatus.EXPIRED, f"timed out: {why} (deadline {r.expires_at:%H:%M:%S} UTC)", "kiosk", now)


def _active(s: Session) -> CaptureRequest | None:
    return s.scalars(select(CaptureRequest).where(CaptureRequest.status.in_(ACTIVE))
                     .order_by(CaptureRequest.id).limit(1)).first()


def request_capture(
    db: Database,
    *,
    employee_id: str,
    name: str,
    timeout_s: float,
    actor: str,
    expression_consent: bool = False,
    replace: bool = False,
    force: bool = False,
    now: datetime | None = None,
) -> CaptureInfo:
    """Queue a request that expires timeout_s seconds from now; CaptureBusy if one is active."""
    employee_id, name = clean_employee_id(employee_id), clean_name(name)
    now = now_utc(now)
    with db.session() as s:
        _expire(s, now)
        busy = _active(s)
        if busy is not None:
            raise CaptureBusy(f"the kiosk is already taking photos for {busy.name} ({busy.employee_id}), "
                              f"asked by {busy.requested_by}; wait until {busy.expires_at:%H:%M:%S} UTC "
                              "or cancel that request")
        r = CaptureRequest(employee_id=employee_id, name=name, expression_consent=expression_consent,
                           replace=replace, force=force, requested_by=actor, requested_at=now,
                           expires_at=now + timedelta(seconds=timeout_s), status=CaptureStatus.WAITING,
                           photos_taken=0)
        s.add(r)
        s.flush()
        write_audit(s, actor, "capture.request", f"capture:{r.id}",
               {"employee_id": employee_id, "replace": replace}, now)
        return _info(r)


def get_capture(db: Database, capture_id: int, now: datetime | None = None) -> CaptureInfo:
    """The request (expired first if its time is up); CaptureNotFound otherwise."""
    now = now_utc(now)
    with db.session() as s:
        _expire(s, now)
        r = s.get(CaptureRequest, capture_id)
        if r is None:
            raise CaptureNotFound(f"no capture request {capture_id} (finished ones are kept for a day)")
        return _info(r)


def take_capture(db: Database, now: datetime | None = None) -> CaptureInfo | None:
    """For the door service: the oldest active request, now marked capturing; None if none.

    One door per database: a request already capturing was left by a service that stopped
    mid-way, and the photos start again.
    """
    now = now_utc(now)
    with db.session() as s:
        _expire(s, now)
        r = _active(s)
        if r is None:
            return None
        r.status = CaptureStatus.CAPTURING
        write_audit(s, "kiosk", "capture.start", f"capture:{r.id}", {"employee_id": r.employee_id}, now)
        return _info(r)


def capture_progress(db: Database, capture_id: int, photos_taken: int, message: str | None,
                     now: datetime | None = None) -> CaptureInfo:
    """Record progress of an active request; returns it as stored (status shows a cancel or expiry)."""
    now = now_utc(now)
    with db.session() as s:
        _expire(s, now)
        s.execute(update(CaptureRequest)
                  .where(CaptureRequest.id == capture_id, CaptureRequest.status == CaptureStatus.CAPTURING)
                  .values(photos_taken=photos_taken, message=message))
        r = s.get(CaptureRequest, capture_id)
        if r is None:
            raise CaptureNotFound(f"no capture request {capture_id}")
        return _info(r)


def finish_capture(db: Database, capture_id: int, status: str, *, message: str | None = None,
                   person_id: int | None = None, actor: str = "kiosk",
                   now: datetime | None = None) -> CaptureInfo:
    """End an active request as done, failed, expired or cancelled; a finished one is returned
    unchanged, except that "done" always wins: the request must say that the person was enrolled
    (a cancel or an expiry that came while the enrolment was being stored)."""
    if status not in CAPTURES_FINISHED:
        raise ValueError(f"cannot finish a capture as {status!r}")
    now = now_utc(now)
    with db.session() as s:
        r = s.get(CaptureRequest, capture_id)
        if r is None:
            raise CaptureNotFound(f"no capture request {capture_id}")
        if r.status in ACTIVE or (status == CaptureStatus.DONE
                                  and r.status in (CaptureStatus.EXPIRED, CaptureStatus.CANCELLED)):
            if r.status not in ACTIVE:
                message = f"{message} (the request had been {r.status} meanwhile)"
            r.person_id = person_id if person_id is not None else r.person_id
            _finish(s, r, status, message, actor, now)
        return _info(r)


def latest_captures(db: Database, limit: int = 5, now: datetime | None = None) -> list[CaptureInfo]:
    """The newest requests first (active and those finished within the last day)."""
    now = now_utc(now)
    with db.session() as s:
        _expire(s, now)
        rows = s.scalars(select(CaptureRequest).order_by(CaptureRequest.id.desc()).limit(limit))
        return [_info(r) for r in rows]
