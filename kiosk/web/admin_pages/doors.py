"""The Doors page of a central server (/admin/doors; role: central only, 404 elsewhere): every door
with its site, state, last contact, backlog, clock offset, software and gallery version, alerts for
doors silent longer than central.silent_after_s or whose clock is off by more than
central.max_clock_offset_s; add a door (its one-time code is shown once, on the answer to the form,
never stored in the session), a new code, revoke (type the door's name to confirm). Every action is
a CSRF-checked POST and audited by the store (door.add, door.code, door.revoke)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from kiosk.config import Settings
from kiosk.errors import KioskError, WebError
from kiosk.store import (
    DoorInfo,
    NewDoorCode,
    add_door,
    gallery_version,
    get_door,
    list_doors,
    new_enrol_code,
    revoke_door,
)
from kiosk.web.context import actor, admin_only, ctx

logger = logging.getLogger(__name__)

bp = Blueprint("doors", __name__)


@dataclass(frozen=True)
class DoorRow:
    """One door as the page shows it: its record, state word, seconds since last contact (None:
    never), and its alerts (empty: fine)."""

    door: DoorInfo
    state: str
    silent_s: float | None
    alerts: list[str]


def door_alerts(d: DoorInfo, now: datetime, settings: Settings) -> list[str]:
    """Why an admin should look at this door (one line each): silent longer than
    central.silent_after_s (enrolled, not revoked), or its clock off by more than max_clock_offset_s."""
    if d.revoked:
        return []
    out = []
    limit = settings.central.silent_after_s
    if d.enrolled and d.last_seen_at is not None and (now - d.last_seen_at).total_seconds() > limit:
        out.append(f"silent for {_duration((now - d.last_seen_at).total_seconds())} "
                   f"(alert after {_duration(limit)})")
    offset = d.clock_offset_s
    if offset is not None and abs(offset) > settings.central.max_clock_offset_s:
        out.append(f"clock {offset:+.0f} s off (its events are flagged for review beyond "
                   f"{settings.central.max_clock_offset_s:g} s)")
    return out


def _duration(seconds: float) -> str:
    """A duration as "45 s", "12 min", "3 h 5 min" or "2 d 4 h"."""
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 172800:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _central_only() -> None:
    if ctx().settings.role != "central":
        abort(404)


def _rows(now: datetime) -> list[DoorRow]:
    c = ctx()
    return [DoorRow(d, d.state(now), (now - d.last_seen_at).total_seconds() if d.last_seen_at else None,
                    door_alerts(d, now, c.settings)) for d in list_doors(c.db)]


def _page(new: NewDoorCode | None = None, status: int = 200) -> tuple[str, int]:
    c = ctx()
    now = c.clock.now()
    rows = _rows(now)
    return render_template("doors.html", rows=rows, newest=gallery_version(c.db), new=new,
                           alerts=[r for r in rows if r.alerts], duration=_duration,
                           silent_after=_duration(c.settings.central.silent_after_s)), status


@bp.route("/doors", methods=["GET"])
@admin_only
def doors() -> ResponseReturnValue:
    """Every door with its state, last contact, backlog, clock, versions and alerts."""
    _central_only()
    return _page()


@bp.route("/doors", methods=["POST"])
@admin_only
def doors_add() -> ResponseReturnValue:
    """Add a door (name, site); the answer shows its one-time enrolment code, once."""
    _central_only()
    name = request.form.get("name", "")[:300]
    site = request.form.get("site", "")[:300].strip() or None
    c = ctx()
    new = add_door(c.db, name, site=site, actor=actor(), now=c.clock.now())
    logger.info("door %s added on the Doors page by %s", new.door.device_id, actor())
    return _page(new)


@bp.route("/doors/<device_id>/code", methods=["POST"])
@admin_only
def doors_code(device_id: str) -> ResponseReturnValue:
    """A new one-time code for the door (shown once; the old code stops working)."""
    _central_only()
    c = ctx()
    new = new_enrol_code(c.db, _door(device_id).device_id, actor=actor(), now=c.clock.now())
    return _page(new)


@bp.route("/doors/<device_id>/revoke", methods=["POST"])
@admin_only
def doors_revoke(device_id: str) -> ResponseReturnValue:
    """Revoke the door (type its name to confirm): its requests are refused from now on."""
    _central_only()
    door = _door(device_id)
    if request.form.get("confirm", "").strip() != door.name:
        raise WebError(f"type the door's name {door.name!r} exactly to revoke it")
    c = ctx()
    revoke_door(c.db, door.device_id, actor=actor(), now=c.clock.now())
    flash(f"Door {door.name} revoked: its pushes are refused from now on; its events stay.")
    return redirect(url_for(".doors"))


def _door(device_id: str) -> DoorInfo:
    """The door with this device id; 404 when there is none."""
    try:
        door = get_door(ctx().db, device_id[:64])
    except KioskError:
        abort(404)
    if door.device_id != device_id:  # get_door also takes names; URLs carry device ids only
        abort(404)
    return door
