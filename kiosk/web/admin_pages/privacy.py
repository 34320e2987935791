"""Privacy and backups: the privacy page (expression analysis, retention, consent overview), the
retention purge on demand, the audit log (page and CSV) and a database backup download (an SQLite
copy; on a central with database.url there is none: backup_note() says to use pg_dump instead).

Expression analysis on/off is the config key expression.enabled (not a DB override): the
privacy page shows its state and how to change it, because the kiosk service only reads
it at start (turning it off must also keep the model from being loaded).
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from kiosk.maintenance import run_purge
from kiosk.store import list_people, record_copy, search_audit, write_offsite_copy
from kiosk.web.context import actor, admin_only, ctx
from kiosk.web.downloads import csv_response, file_download

logger = logging.getLogger(__name__)

bp = Blueprint("privacy", __name__)

AUDIT_PAGE_ROWS = 300
AUDIT_CSV_ROWS = 100_000
POSTGRESQL_BACKUP_NOTE = ("This database is PostgreSQL: back it up on the server with pg_dump, e.g. "
                          "runuser -u postgres -- pg_dump -Fc kiosk > central-$(date +%F).dump "
                          "(docs/central.md, Backups); there is no download here.")


@bp.app_template_global()
def backup_note() -> str | None:
    """Why the status page offers no backup download (PostgreSQL: pg_dump), or None (SQLite: it does)."""
    return POSTGRESQL_BACKUP_NOTE if ctx().settings.database.url is not None else None


def _search_text() -> str:
    """The ?q= search text, stripped and cut to 100 characters."""
    return request.args.get("q", "").strip()[:100]


@bp.route("/privacy")
@admin_only
def privacy() -> str:
    """Expression analysis state, retention periods, consent overview."""
    people = list_people(ctx().db)
    return render_template("privacy.html", retention=ctx().settings.retention,
                           expression=ctx().settings.expression,
                           consenting=sum(p.expression_consent for p in people),
                           total=len(people))


@bp.route("/purge", methods=["POST"])
@admin_only
def purge() -> ResponseReturnValue:
    """Run the retention purge now."""
    r = run_purge(ctx(), actor())
    if r.refused:
        flash(r.refused, "error")
        return redirect(url_for(".privacy"))
    flash(f"Retention purge: {r.events_deleted} old event(s) deleted, {r.expression_stripped} "
          f"expression record(s) stripped, {r.images_deleted} photo(s), {r.leave_deleted} old leave record(s) "
          f"and {r.people_removed} erased person row(s) removed.")
    return redirect(url_for(".privacy"))


@bp.route("/audit")
@admin_only
def audit_log() -> str:
    """The audit log, newest first, with a search field."""
    q = _search_text()
    return render_template("audit.html", entries=search_audit(ctx().db, q, limit=AUDIT_PAGE_ROWS), q=q)


@bp.route("/audit.csv")
@admin_only
def audit_csv() -> Response:
    """The (searched) audit log as CSV."""
    q = _search_text()
    tz = ctx().settings.tz
    return csv_response("audit-log.csv", ["at", "actor", "action", "target", "details"],
                        [[a.at.astimezone(tz).isoformat(timespec="seconds"), a.actor, a.action,
                          a.target or "", json.dumps(a.details) if a.details else ""]
                         for a in search_audit(ctx().db, q, limit=AUDIT_CSV_ROWS)])


@bp.route("/backup", methods=["POST"])
@admin_only
def backup() -> ResponseReturnValue:
    """The database as a download for safe keeping, without biometric data (store.write_offsite_copy);
    on PostgreSQL the status page again with the pg_dump note."""
    c = ctx()
    note = backup_note()
    if note is not None:
        flash(note, "error")
        return redirect(url_for("admin.status.status"))
    with tempfile.TemporaryDirectory(prefix="kiosk-backup-") as folder:
        copy = write_offsite_copy(Path(c.settings.database.path), Path(folder) / "kiosk.db")
        body = copy.path.read_bytes()
    record_copy(c.db, actor(), copy, target="download")
    stamp = c.clock.now().astimezone(c.settings.tz).strftime("%Y%m%d-%H%M")
    return file_download(f"kiosk-backup-{stamp}.db", body, "application/vnd.sqlite3")
