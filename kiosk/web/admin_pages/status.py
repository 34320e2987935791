"""The kiosk status page (/admin/status): the door service's state, last events, today's
recognition counts, people to re-enrol, capture requests, off-site copies, disk and versions."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import Blueprint, render_template

from kiosk.store import (
    current_revision,
    daily_copies,
    events_between,
    latest_captures,
    latest_events,
    local_day_bounds,
    people_by_id,
    templates_not_made_by,
)
from kiosk.web.context import admin_only, ctx
from kiosk.web.status import disk_usage, read_status, versions

logger = logging.getLogger(__name__)

bp = Blueprint("status", __name__)

LATEST_EVENTS = 20


@bp.route("/status")
@admin_only
def status() -> str:
    """Kiosk service state, last events, today's recognition counts, disk, versions."""
    c = ctx()
    st = read_status(c.settings, c.clock.now())
    events = latest_events(c.db, LATEST_EVENTS)
    start, end = local_day_bounds(c.today(), c.settings.tz)
    today_events = events_between(c.db, start, end)
    counts = {"known": sum(1 for e in today_events if e.person_id is not None),
              "unknown": sum(1 for e in today_events if e.person_id is None)}
    names = people_by_id(c.db, {e.person_id for e in events if e.person_id is not None})
    stale = templates_not_made_by(c.db, c.settings.recognition.compatible_embedder_ids())
    to_re_enrol = sorted(people_by_id(c.db, stale).values(), key=lambda p: p.name.casefold())
    database = c.settings.database
    model = c.settings.expression.model
    return render_template(
        "status.html", st=st, status_file=c.settings.status_path, events=events, names=names,
        counts=counts, disk=disk_usage(c.settings), versions=versions(), to_re_enrol=to_re_enrol,
        captures=latest_captures(c.db), offsite_dir=database.offsite_dir,
        offsite=daily_copies(database.offsite_dir) if database.offsite_dir else [],
        embedder=c.settings.recognition.embedder_id(),
        schema=current_revision(database.location) if database.url or database.path.exists() else None,
        recognition=c.settings.recognition, expression=c.settings.expression,
        model=str(model) if model else "built-in model", tz=c.settings.tz,
        stale_after=timedelta(seconds=c.settings.web.status_stale_s))
