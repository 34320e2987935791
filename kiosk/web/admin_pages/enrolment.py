"""Enrolment pages: enrol or re-enrol a person from uploaded photos, or ask the kiosk camera to take
them (a capture request) and follow its progress (/admin/enrol, /admin/captures/<id>, ...)."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from kiosk.errors import KioskError, UploadError, WebError
from kiosk.store import CaptureNotFound, PersonInfo, finish_capture, get_capture, request_capture
from kiosk.vocabulary import CaptureStatus
from kiosk.web.context import actor, admin_only, ctx
from kiosk.web.status import read_status
from kiosk.web.uploads import UploadLimits, read_uploads
from kiosk.web.views import person_or_404

if TYPE_CHECKING:
    from kiosk.enrolment import EnrolmentResult

logger = logging.getLogger(__name__)

bp = Blueprint("enrolment", __name__)

# Enrolments (photo decoding and face analysis) the web app runs at once; each needs up to
# ~100 MB beside the shared face models (~220 MB). Another request waits ENROLMENT_WAIT_S for
# a slot, then is told the server is busy (503).
ENROLMENT_SLOTS = threading.BoundedSemaphore(1)
ENROLMENT_WAIT_S = 5.0

FORM_FIELDS = ("name", "employee_id", "force", "consent")

CAPTURE_LABELS: dict[str, str] = {
    CaptureStatus.WAITING: "Waiting for the person at the kiosk",
    CaptureStatus.CAPTURING: "Taking photos",
    CaptureStatus.DONE: "Enrolled",
    CaptureStatus.FAILED: "Not enrolled",
    CaptureStatus.EXPIRED: "Timed out",
    CaptureStatus.CANCELLED: "Cancelled",
}
"""What the capture page says for each CaptureStatus."""


def _limits() -> UploadLimits:
    s = ctx().settings
    web = s.web
    return UploadLimits(max_files=web.max_photos, max_bytes=int(web.max_photo_mb * 1024 * 1024),
                        max_pixels=int(web.max_photo_megapixels * 1e6), max_side=s.enrolment.max_photo_side)


def _form() -> dict[str, str]:
    """The enrol form's fields, stripped (not cut to length: kiosk.identity refuses overlong ones)."""
    return {k: request.form.get(k, "").strip() for k in FORM_FIELDS}


def _enrol_form(form: dict[str, str], result: EnrolmentResult | None, error: str | None,
                person: PersonInfo | None) -> str:
    """The enrol / re-enrol page (person set: re-enrol) with a result or an error."""
    return render_template("enrol.html", form=form, result=result, error=error, person=person,
                           limits=_limits(), enrolment=ctx().settings.enrolment)


def _run_enrol(form: dict[str, str], *, replace: bool) -> tuple[EnrolmentResult | None, str | None, int]:
    """Run kiosk.enrolment.enrol on the uploaded photos -> (result or None, error message, HTTP status)."""
    from kiosk.enrolment import EnrolmentError, enrol

    c = ctx()
    if not ENROLMENT_SLOTS.acquire(timeout=ENROLMENT_WAIT_S):
        return None, "Busy: another enrolment is running right now; please try again in a minute.", 503
    try:
        photos = read_uploads(request.files.getlist("photos"), _limits())
        result = enrol(c.db, c.settings, c.face_analyzer(), name=form["name"],
                       employee_id=form["employee_id"], photos=photos,
                       force=form.get("force") == "1", replace=replace,
                       expression_consent=form.get("consent") == "1", actor=actor())
    except UploadError as exc:
        return None, str(exc), 400
    except EnrolmentError as exc:
        return exc.result, str(exc), 400
    finally:
        ENROLMENT_SLOTS.release()
    return result, None, 200


@bp.route("/enrol", methods=["GET", "POST"])
@admin_only
def enrol_page() -> ResponseReturnValue:
    """Add a person from uploaded photos; shows each photo's verdict."""
    form = _form()
    result = error = None
    status = 200
    if request.method == "POST":
        result, error, status = _run_enrol(form, replace=False)
        if error is None and result is not None:
            flash(f"Enrolled {result.name} ({result.employee_id}) with "
                  f"{result.templates_added} photo(s).")
            form = {k: "" for k in form}  # ready for the next person
    return _enrol_form(form, result, error, None), status


@bp.route("/people/<int:person_id>/reenrol", methods=["GET", "POST"])
@admin_only
def reenrol(person_id: int) -> ResponseReturnValue:
    """Replace a person's templates with new photos."""
    p = person_or_404(person_id)
    if p.erased_at is not None:
        raise WebError("this person was erased; enrol them again under a new employee id")
    form = {"name": p.name, "employee_id": p.employee_id,
            "force": request.form.get("force", ""), "consent": ""}
    result = error = None
    status = 200
    if request.method == "POST":
        result, error, status = _run_enrol(form, replace=True)
        if error is None and result is not None:
            flash(f"Re-enrolled {p.name} with {result.templates_added} photo(s).")
    return _enrol_form(form, result, error, p), status


def _ask_kiosk(form: dict[str, str], *, person: PersonInfo | None) -> ResponseReturnValue:
    """Queue a capture request (the kiosk camera takes the photos); its page, or the form with the error."""
    from kiosk.enrolment import check_employee_id

    c = ctx()
    try:
        check_employee_id(c.db, form["name"], form["employee_id"], replace=person is not None)
        request_ = request_capture(c.db, employee_id=form["employee_id"], name=form["name"],
                                   timeout_s=c.settings.enrolment.capture_timeout_s, actor=actor(),
                                   expression_consent=form.get("consent") == "1", replace=person is not None,
                                   force=form.get("force") == "1")
    except KioskError as exc:
        return _enrol_form(form, None, str(exc), person), 400
    return redirect(url_for(".capture", capture_id=request_.id))


@bp.route("/enrol/at-kiosk", methods=["POST"])
@admin_only
def enrol_at_kiosk() -> ResponseReturnValue:
    """Ask the kiosk camera to take a new person's photos."""
    return _ask_kiosk(_form(), person=None)


@bp.route("/people/<int:person_id>/reenrol/at-kiosk", methods=["POST"])
@admin_only
def reenrol_at_kiosk(person_id: int) -> ResponseReturnValue:
    """Ask the kiosk camera to take new photos of an enrolled person (replacing the old ones)."""
    p = person_or_404(person_id)
    form = {"name": p.name, "employee_id": p.employee_id, "force": request.form.get("force", ""), "consent": ""}
    return _ask_kiosk(form, person=p)


@bp.route("/captures/<int:capture_id>")
@admin_only
def capture(capture_id: int) -> str:
    """A capture request's progress (the page reloads itself every 2 s while it is active)."""
    c = ctx()
    try:
        request_ = get_capture(c.db, capture_id)
    except CaptureNotFound:
        abort(404)
    return render_template("capture.html", req=request_, st=read_status(c.settings, c.clock.now()),
                           wanted=c.settings.enrolment.capture_photos, tz=c.settings.tz,
                           labels=CAPTURE_LABELS)


@bp.route("/captures/<int:capture_id>/cancel", methods=["POST"])
@admin_only
def cancel_capture(capture_id: int) -> ResponseReturnValue:
    """Stop a capture request that is still waiting or capturing."""
    c = ctx()
    try:
        done = finish_capture(c.db, capture_id, CaptureStatus.CANCELLED, message=f"cancelled by {actor()}",
                              actor=actor())
    except CaptureNotFound:
        abort(404)
    if done.status == CaptureStatus.CANCELLED:
        flash("Cancelled: the kiosk goes back to check-ins.")
    return redirect(url_for(".capture", capture_id=capture_id))
