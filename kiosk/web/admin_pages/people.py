"""An enrolled person's record: rename, (de)activate, expression consent, erasure and the data
export of a subject access request (/admin/people/<id>/...)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from kiosk.store import (
    PersonInfo,
    audit,
    erase_person,
    export_person,
    rename_person,
    set_active,
    set_consent,
)
from kiosk.web.context import actor, admin_only, ctx
from kiosk.web.downloads import text_download
from kiosk.web.views import person_or_404

logger = logging.getLogger(__name__)

bp = Blueprint("people", __name__)


def _set_flag(
    person_id: int, field: str, setter: Callable[..., PersonInfo],
    message: Callable[[PersonInfo, bool], str],
) -> ResponseReturnValue:
    """Set a person's yes/no flag from form field (value "1" = yes), flash, back to their page."""
    p = person_or_404(person_id)
    on = request.form.get(field) == "1"
    setter(ctx().db, p.id, on, actor=actor())
    flash(message(p, on))
    return redirect(url_for("reports.person", person_id=p.id))


@bp.route("/people/<int:person_id>/consent", methods=["POST"])
@admin_only
def consent(person_id: int) -> ResponseReturnValue:
    """Grant or withdraw expression-analysis consent (withdrawal strips past expression data)."""
    return _set_flag(person_id, "granted", set_consent,
                     lambda p, on: f"Consent {'recorded' if on else 'withdrawn'} for {p.name}.")


@bp.route("/people/<int:person_id>/active", methods=["POST"])
@admin_only
def activate(person_id: int) -> ResponseReturnValue:
    """Deactivate (not recognised, not counted absent) or reactivate a person."""
    return _set_flag(person_id, "active", set_active,
                     lambda p, on: f"{p.name} is now {'active' if on else 'inactive'}.")


@bp.route("/people/<int:person_id>/rename", methods=["POST"])
@admin_only
def rename(person_id: int) -> ResponseReturnValue:
    """Correct a person's name (the employee id stays)."""
    p = person_or_404(person_id)
    renamed = rename_person(ctx().db, p.id, request.form.get("name", ""), actor=actor())
    flash(f"Renamed {p.name} to {renamed.name}.")
    return redirect(url_for("reports.person", person_id=p.id))


@bp.route("/people/<int:person_id>/delete", methods=["GET", "POST"])
@admin_only
def delete(person_id: int) -> ResponseReturnValue:
    """Erase a person's biometric data (templates, photos, consent, expressions)."""
    p = person_or_404(person_id)
    if request.method == "POST":
        if request.form.get("confirm", "").strip() != p.employee_id:
            flash("Type the employee id exactly to confirm.", "error")
            return render_template("delete.html", p=p), 400
        keep = request.form.get("delete_events") != "1"
        result = erase_person(ctx().db, p.id, actor=actor(), keep_events=keep)
        backups = f" (also from {result.backups_scrubbed} database backup(s))" if result.backups_scrubbed else ""
        flash(f"Erased {p.name}: {result.templates_deleted} face template(s), "
              f"{result.images_deleted} photo(s) deleted{backups}; {result.events_kept} attendance "
              "record(s) kept for payroll." if keep else
              f"Erased {p.name} and all {result.events_deleted} attendance record(s){backups}.")
        return redirect(url_for("reports.people"))
    return render_template("delete.html", p=p)


@bp.route("/people/<int:person_id>/export.json")
@admin_only
def export(person_id: int) -> Response:
    """Everything held about a person, as a JSON download (subject access request)."""
    p = person_or_404(person_id)
    data = export_person(ctx().db, p.id)
    audit(ctx().db, actor(), "person.export", f"person:{p.id}", None)
    return text_download(f"person-{p.employee_id}.json",
                         json.dumps(data, indent=2, ensure_ascii=False), "application/json")
