"""Attendance corrections and leave: add or remove a check-in/out by hand, record or remove a
person's leave, import leave from a CSV (/admin/people/<id>/events, /admin/leave/...)."""

from __future__ import annotations

import logging
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue

from kiosk.clock import site_time
from kiosk.errors import WebError
from kiosk.leave_csv import MAX_CSV_BYTES, parse_leave_csv
from kiosk.reports import check_day, person_rules
from kiosk.store import (
    EventNotFound,
    LeaveNotFound,
    Pairing,
    add_correction,
    add_leave,
    add_leave_batch,
    remove_event,
    remove_leave,
)
from kiosk.web.context import actor, admin_only, ctx
from kiosk.web.door_api import pairing_of
from kiosk.web.views import person_or_404

logger = logging.getLogger(__name__)

bp = Blueprint("corrections", __name__)


def _person_tz(person_id: int) -> ZoneInfo:
    """The zone a person's corrections are typed in: their home site's on a central with sites:
    (reports.person_rules), else the site's."""
    c = ctx()
    return person_rules(c.db, c.settings, person_id, c.clock.now()).tz


def _pairing() -> Pairing | None:
    """On a central (role: central) the merged stream's rules (door_api.pairing_of): a correction decides the
    day's camera events again; None elsewhere."""
    settings = ctx().settings
    return pairing_of(settings) if settings.role == "central" else None


def _local_time(day_text: str, time_text: str, tz: ZoneInfo) -> datetime:
    """Form date (YYYY-MM-DD) and time (HH:MM) in zone tz -> aware datetime; WebError if bad."""
    try:
        given = datetime.combine(date.fromisoformat(day_text.strip()), time.fromisoformat(time_text.strip()))
    except ValueError:
        raise WebError(f"not a date and time: {day_text!r} {time_text!r} (use YYYY-MM-DD and HH:MM)") from None
    check_day(given.date())
    return site_time(given, tz)  # refuses a skipped or (without offset) repeated hour


def _form_day(field: str) -> date:
    """A form date (YYYY-MM-DD) -> date; WebError naming the field if bad."""
    text = request.form.get(field, "").strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise WebError(f"not a date: {text!r} (use YYYY-MM-DD)") from None
    return check_day(day)


def _person_page_from(person_id: int, day: date) -> ResponseReturnValue:
    """Redirect to the person's page showing day (local) up to today."""
    return redirect(url_for("reports.person", person_id=person_id, start=day.isoformat(),
                            end=max(day, ctx().today()).isoformat()))


@bp.route("/people/<int:person_id>/events", methods=["POST"])
@admin_only
def add_event(person_id: int) -> ResponseReturnValue:
    """Add a missed check-in or check-out by hand (with a reason; audited, marked in reports)."""
    p = person_or_404(person_id)
    at = _local_time(request.form.get("date", ""), request.form.get("time", ""), _person_tz(p.id))
    kind = request.form.get("kind", "")  # the store refuses anything but an EventKind of a person
    add_correction(ctx().db, p.id, at, kind, actor=actor(), note=request.form.get("note", ""),
                   retention_days=ctx().settings.retention.attendance_days, pairing=_pairing())
    flash(f"Added a check-{kind} for {p.name} at {at:%d %b %Y %H:%M}.")
    return _person_page_from(p.id, at.date())


@bp.route("/events/<int:event_id>/remove", methods=["POST"])
@admin_only
def remove_event_page(event_id: int) -> ResponseReturnValue:
    """Delete a wrong attendance event (with a reason; the audit log keeps what it was)."""
    try:
        removed = remove_event(ctx().db, event_id, actor=actor(), reason=request.form.get("reason", ""),
                               pairing=_pairing())
    except EventNotFound:
        abort(404)
    tz = _person_tz(removed.person_id) if removed.person_id is not None else ctx().settings.tz
    local = removed.occurred_at.astimezone(tz)
    flash(f"Removed the check-{removed.kind} of {local:%d %b %Y %H:%M}.")
    if removed.person_id is None:
        return redirect(url_for("admin.status.status"))
    return _person_page_from(removed.person_id, local.date())


@bp.route("/people/<int:person_id>/leave", methods=["POST"])
@admin_only
def add_leave_page(person_id: int) -> ResponseReturnValue:
    """Record leave over whole days (a LeaveKind; no reason is stored)."""
    p = person_or_404(person_id)
    first_day = _form_day("first_day")
    last_day = _form_day("last_day") if request.form.get("last_day", "").strip() else first_day
    item = add_leave(ctx().db, p.id, first_day, last_day, request.form.get("kind", ""), actor=actor(),
                     now=ctx().clock.now())
    flash(f"Recorded {item.kind} leave for {p.name}: {item.span()}.")
    return _person_page_from(p.id, first_day)


@bp.route("/leave/<int:leave_id>/remove", methods=["POST"])
@admin_only
def remove_leave_page(leave_id: int) -> ResponseReturnValue:
    """Delete recorded leave (cancelled or entered by mistake); the audit log keeps what it was."""
    try:
        item = remove_leave(ctx().db, leave_id, actor=actor(), now=ctx().clock.now())
    except LeaveNotFound:
        abort(404)
    flash(f"Removed the {item.kind} leave of {item.span()}.")
    return _person_page_from(item.person_id, item.first_day)


@bp.route("/leave/import", methods=["POST"])
@admin_only
def import_leave() -> ResponseReturnValue:
    """Record leave from an uploaded CSV (all or nothing; the error lists every bad line)."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise WebError("choose a CSV file to import")
    items = parse_leave_csv(upload.read(MAX_CSV_BYTES + 1), ctx().db, upload.filename)
    added = add_leave_batch(ctx().db, items, actor=actor(), now=ctx().clock.now())
    flash(f"Recorded {len(added)} leave entr{'y' if len(added) == 1 else 'ies'} from {upload.filename}.")
    first = min(x.first_day for x in added)
    return redirect(url_for("reports.leave_page", start=first.isoformat(),
                            end=max(x.last_day for x in added).isoformat()))
