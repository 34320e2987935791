"""Admin pages: enrol, re-enrol, consent, deactivate, delete (erasure), export, audit log,
privacy settings, retention purge, web accounts and the kiosk status. All under /admin/.

Expression analysis on/off is the config key expression.enabled (not a DB override): the
privacy page shows its state and how to change it, because the kiosk service only reads
it at start (turning it off must also keep the model from being loaded).
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for

from kiosk.clock import site_time
from kiosk.errors import ImageError, KioskError, UploadError, WebError
from kiosk.leave_csv import MAX_CSV_BYTES, parse_leave_csv
from kiosk.maintenance import run_purge
from kiosk.reports import check_day
from kiosk.store import (
    CaptureNotFound,
    EventNotFound,
    LeaveNotFound,
    PersonInfo,
    UserInfo,
    add_correction,
    add_leave,
    add_leave_batch,
    audit,
    daily_copies,
    erase_person,
    export_person,
    finish_capture,
    get_capture,
    get_user,
    latest_captures,
    latest_events,
    list_users,
    record_copy,
    remove_event,
    remove_leave,
    remove_user,
    rename_person,
    request_capture,
    search_audit,
    set_active,
    set_consent,
    set_user_active,
    set_user_role,
    write_offsite_copy,
)
from kiosk.web import auth
from kiosk.web.context import actor, admin_only, ctx, current_user
from kiosk.web.status import disk_usage, read_status, versions
from kiosk.web.uploads import UploadLimits, check_photos, decode_photo
from kiosk.web.views import csv_response, file_download, person_or_404, text_download

logger = logging.getLogger(__name__)

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def _admins_only() -> None:
    """Second line of defence: every /admin/ route needs an admin, whatever its decorator."""
    user = current_user()
    if user is None:
        abort(401)
    if user.role != "admin":
        abort(403)


# Enrolments (photo decoding and face analysis) the web app runs at once; each needs up to
# ~100 MB beside the shared face models (~220 MB). Another request waits ENROLMENT_WAIT_S for
# a slot, then is told the server is busy (503).
ENROLMENT_SLOTS = threading.BoundedSemaphore(1)
ENROLMENT_WAIT_S = 5.0


def _limits() -> UploadLimits:
    s = ctx().settings
    web = s.web
    return UploadLimits(max_files=web.max_photos, max_bytes=int(web.max_photo_mb * 1024 * 1024),
                        max_pixels=int(web.max_photo_megapixels * 1e6), max_side=s.enrolment.max_photo_side)


def _uploaded_photos() -> list[tuple[str, Any]]:
    """(unique file name, RGB uint8 HxWx3 scaled to enrolment.max_photo_side, or a loader that
    raises the photo's ImageError) per uploaded photo.

    Every upload's header is checked first (UploadError refuses the lot); then the photos are
    decoded one by one. Uploads stay where the form parser spooled them (a temporary file once
    over 500 KB): the bytes of one upload at a time are in memory, never all of them, and only
    the scaled images (~1.4 MB each at 800 px) are held while faces are looked for.
    """
    limits = _limits()
    uploads = [f for f in request.files.getlist("photos") if f.filename]
    if len(uploads) > limits.max_files:  # before reading any of them
        raise UploadError(f"{len(uploads)} photos sent: at most {limits.max_files} per person")
    names = [name for name, _ in check_photos(
        ((f.filename, _peek(f, limits.max_bytes + 1)) for f in uploads), limits, keep_bytes=False)]
    seen: dict[str, int] = {}
    photos = []
    for name, upload in zip(names, uploads, strict=True):
        n = seen.get(name, 0)  # enrolment keys photos by name: make names unique
        seen[name] = n + 1
        photos.append((name if n == 0 else f"{n + 1}-{name}",
                       _decoded(name, _read_and_close(upload, limits.max_bytes + 1), limits)))
    return photos


def _peek(upload: Any, most: int) -> bytes:
    """Up to most bytes of an uploaded file, rewound so that it can be read again."""
    try:
        return upload.stream.read(most)
    finally:
        upload.stream.seek(0)


def _read_and_close(upload: Any, most: int) -> bytes:
    """Up to most bytes of an uploaded file, whose buffer or temporary file is freed at once."""
    try:
        return upload.read(most)
    finally:
        upload.close()


def _decoded(name: str, data: bytes, limits: UploadLimits) -> Any:
    """The upload as RGB uint8 HxWx3 (scaled), or a loader that raises its ImageError (its verdict)."""
    try:
        return decode_photo(name, data, limits).image
    except UploadError as exc:
        message = str(exc)

    def refused() -> Any:
        raise ImageError(message)
    return refused


def _enrol_form(form: dict[str, str], result: Any, error: str | None, person: PersonInfo | None) -> str:
    """The enrol / re-enrol page (person set: re-enrol) with a result or an error."""
    return render_template("enrol.html", form=form, result=result, error=error, person=person,
                           limits=_limits(), enrolment=ctx().settings.enrolment)


def _run_enrol(form: dict[str, str], *, replace: bool) -> tuple[Any, str | None, int]:
    """Run kiosk.enrolment.enrol on the uploaded photos -> (result or None, error message, HTTP status)."""
    from kiosk.enrolment import EnrolmentError, enrol

    c = ctx()
    if not ENROLMENT_SLOTS.acquire(timeout=ENROLMENT_WAIT_S):
        return None, "Busy: another enrolment is running right now; please try again in a minute.", 503
    try:
        photos = _uploaded_photos()
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
def enrol_page() -> Any:
    """Add a person from uploaded photos; shows each photo's verdict."""
    # Not cut to length: kiosk.identity refuses an overlong name or id with a message.
    form = {k: request.form.get(k, "").strip() for k in ("name", "employee_id", "force", "consent")}
    result = error = None
    status = 200
    if request.method == "POST":
        result, error, status = _run_enrol(form, replace=False)
        if error is None and result is not None:
            flash(f"Enrolled {result.name} ({result.employee_id}) with "
                  f"{result.templates_added} photo(s).")
            form = {k: "" for k in form}  # ready for the next person
    return _enrol_form(form, result, error, None), status


def _ask_kiosk(form: dict[str, str], *, person: PersonInfo | None) -> Any:
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
    return redirect(url_for("admin.capture", capture_id=request_.id))


@bp.route("/enrol/at-kiosk", methods=["POST"])
@admin_only
def enrol_at_kiosk() -> Any:
    """Ask the kiosk camera to take a new person's photos."""
    form = {k: request.form.get(k, "").strip() for k in ("name", "employee_id", "force", "consent")}
    return _ask_kiosk(form, person=None)


@bp.route("/people/<int:person_id>/reenrol/at-kiosk", methods=["POST"])
@admin_only
def reenrol_at_kiosk(person_id: int) -> Any:
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
                           wanted=c.settings.enrolment.capture_photos, tz=c.settings.tz)


@bp.route("/captures/<int:capture_id>/cancel", methods=["POST"])
@admin_only
def cancel_capture(capture_id: int) -> Any:
    """Stop a capture request that is still waiting or capturing."""
    c = ctx()
    try:
        done = finish_capture(c.db, capture_id, "cancelled", message=f"cancelled by {actor()}", actor=actor())
    except CaptureNotFound:
        abort(404)
    if done.status == "cancelled":
        flash("Cancelled: the kiosk goes back to check-ins.")
    return redirect(url_for("admin.capture", capture_id=capture_id))


@bp.route("/people/<int:person_id>/reenrol", methods=["GET", "POST"])
@admin_only
def reenrol(person_id: int) -> Any:
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


def _set_flag(
    person_id: int, field: str, setter: Callable[..., PersonInfo],
    message: Callable[[PersonInfo, bool], str],
) -> Any:
    """Set a person's yes/no flag from form field (value "1" = yes), flash, back to their page."""
    p = person_or_404(person_id)
    on = request.form.get(field) == "1"
    setter(ctx().db, p.id, on, actor=actor())
    flash(message(p, on))
    return redirect(url_for("reports.person", person_id=p.id))


@bp.route("/people/<int:person_id>/consent", methods=["POST"])
@admin_only
def consent(person_id: int) -> Any:
    """Grant or withdraw expression-analysis consent (withdrawal strips past expression data)."""
    return _set_flag(person_id, "granted", set_consent,
                     lambda p, on: f"Consent {'recorded' if on else 'withdrawn'} for {p.name}.")


def _local_time(day_text: str, time_text: str) -> datetime:
    """Form date (YYYY-MM-DD) and time (HH:MM) in the site's zone -> aware datetime; WebError if bad."""
    try:
        given = datetime.combine(date.fromisoformat(day_text.strip()), time.fromisoformat(time_text.strip()))
    except ValueError:
        raise WebError(f"not a date and time: {day_text!r} {time_text!r} (use YYYY-MM-DD and HH:MM)") from None
    check_day(given.date())
    return site_time(given, ctx().settings.tz)  # refuses a skipped or (without offset) repeated hour


@bp.route("/people/<int:person_id>/events", methods=["POST"])
@admin_only
def add_event(person_id: int) -> Any:
    """Add a missed check-in or check-out by hand (with a reason; audited, marked in reports)."""
    p = person_or_404(person_id)
    at = _local_time(request.form.get("date", ""), request.form.get("time", ""))
    kind = request.form.get("kind", "")
    add_correction(ctx().db, p.id, at, kind, actor=actor(), note=request.form.get("note", ""),
                   retention_days=ctx().settings.retention.attendance_days)
    flash(f"Added a check-{kind} for {p.name} at {at:%d %b %Y %H:%M}.")
    return _person_page_from(p.id, at.date())


def _person_page_from(person_id: int, day: date) -> Any:
    """Redirect to the person's page showing day (local) up to today."""
    return redirect(url_for("reports.person", person_id=person_id, start=day.isoformat(),
                            end=max(day, ctx().today()).isoformat()))


@bp.route("/events/<int:event_id>/remove", methods=["POST"])
@admin_only
def remove_event_page(event_id: int) -> Any:
    """Delete a wrong attendance event (with a reason; the audit log keeps what it was)."""
    try:
        removed = remove_event(ctx().db, event_id, actor=actor(), reason=request.form.get("reason", ""))
    except EventNotFound:
        abort(404)
    local = removed.occurred_at.astimezone(ctx().settings.tz)
    flash(f"Removed the check-{removed.kind} of {local:%d %b %Y %H:%M}.")
    if removed.person_id is None:
        return redirect(url_for("admin.status"))
    return _person_page_from(removed.person_id, local.date())


def _form_day(field: str) -> date:
    """A form date (YYYY-MM-DD) -> date; WebError naming the field if bad."""
    text = request.form.get(field, "").strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise WebError(f"not a date: {text!r} (use YYYY-MM-DD)") from None
    return check_day(day)


@bp.route("/people/<int:person_id>/leave", methods=["POST"])
@admin_only
def add_leave_page(person_id: int) -> Any:
    """Record leave over whole days (holiday, sick, other; no reason is stored)."""
    p = person_or_404(person_id)
    first_day = _form_day("first_day")
    last_day = _form_day("last_day") if request.form.get("last_day", "").strip() else first_day
    item = add_leave(ctx().db, p.id, first_day, last_day, request.form.get("kind", ""), actor=actor(),
                     now=ctx().clock.now())
    flash(f"Recorded {item.kind} leave for {p.name}: {item.span()}.")
    return _person_page_from(p.id, first_day)


@bp.route("/leave/<int:leave_id>/remove", methods=["POST"])
@admin_only
def remove_leave_page(leave_id: int) -> Any:
    """Delete recorded leave (cancelled or entered by mistake); the audit log keeps what it was."""
    try:
        item = remove_leave(ctx().db, leave_id, actor=actor(), now=ctx().clock.now())
    except LeaveNotFound:
        abort(404)
    flash(f"Removed the {item.kind} leave of {item.span()}.")
    return _person_page_from(item.person_id, item.first_day)


@bp.route("/leave/import", methods=["POST"])
@admin_only
def import_leave() -> Any:
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


@bp.route("/people/<int:person_id>/rename", methods=["POST"])
@admin_only
def rename(person_id: int) -> Any:
    """Correct a person's name (the employee id stays)."""
    p = person_or_404(person_id)
    renamed = rename_person(ctx().db, p.id, request.form.get("name", ""), actor=actor())
    flash(f"Renamed {p.name} to {renamed.name}.")
    return redirect(url_for("reports.person", person_id=p.id))


@bp.route("/people/<int:person_id>/active", methods=["POST"])
@admin_only
def activate(person_id: int) -> Any:
    """Deactivate (not recognised, not counted absent) or reactivate a person."""
    return _set_flag(person_id, "active", set_active,
                     lambda p, on: f"{p.name} is now {'active' if on else 'inactive'}.")


@bp.route("/people/<int:person_id>/delete", methods=["GET", "POST"])
@admin_only
def delete(person_id: int) -> Any:
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


@bp.route("/audit")
@admin_only
def audit_log() -> str:
    """The audit log, newest first, with a search field."""
    q = request.args.get("q", "").strip()[:100]
    return render_template("audit.html", entries=search_audit(ctx().db, q, limit=300), q=q)


@bp.route("/audit.csv")
@admin_only
def audit_csv() -> Response:
    """The (searched) audit log as CSV."""
    q = request.args.get("q", "").strip()[:100]
    tz = ctx().settings.tz
    return csv_response("audit-log.csv", ["at", "actor", "action", "target", "details"],
                        [[a.at.astimezone(tz).isoformat(timespec="seconds"), a.actor, a.action,
                          a.target or "", json.dumps(a.details) if a.details else ""]
                         for a in search_audit(ctx().db, q, limit=100_000)])


@bp.route("/privacy")
@admin_only
def privacy() -> str:
    """Expression analysis state, retention periods, consent overview."""
    from kiosk.store import list_people

    people = list_people(ctx().db)
    return render_template("privacy.html", retention=ctx().settings.retention,
                           expression=ctx().settings.expression,
                           consenting=sum(p.expression_consent for p in people),
                           total=len(people))


@bp.route("/purge", methods=["POST"])
@admin_only
def purge() -> Any:
    """Run the retention purge now."""
    r = run_purge(ctx(), actor())
    if r.refused:
        flash(r.refused, "error")
        return redirect(url_for("admin.privacy"))
    flash(f"Retention purge: {r.events_deleted} old event(s) deleted, {r.expression_stripped} "
          f"expression record(s) stripped, {r.images_deleted} photo(s), {r.leave_deleted} old leave record(s) "
          f"and {r.people_removed} erased person row(s) removed.")
    return redirect(url_for("admin.privacy"))


@bp.route("/backup", methods=["POST"])
@admin_only
def backup() -> Response:
    """The database as a download for safe keeping, without biometric data (store.write_offsite_copy)."""
    c = ctx()
    with tempfile.TemporaryDirectory(prefix="kiosk-backup-") as folder:
        copy = write_offsite_copy(Path(c.settings.database.path), Path(folder) / "kiosk.db")
        body = copy.path.read_bytes()
    record_copy(c.db, actor(), copy, target="download")
    stamp = c.clock.now().astimezone(c.settings.tz).strftime("%Y%m%d-%H%M")
    return file_download(f"kiosk-backup-{stamp}.db", body, "application/vnd.sqlite3")


@bp.route("/status")
@admin_only
def status() -> str:
    """Kiosk service state, last events, today's recognition counts, disk, versions."""
    c = ctx()
    now = c.clock.now()
    st = read_status(c.settings, now)
    events = latest_events(c.db, 20)
    from kiosk.store import events_between, local_day_bounds, people_by_id

    start, end = local_day_bounds(c.today(), c.settings.tz)
    today_events = events_between(c.db, start, end)
    counts = {"known": sum(1 for e in today_events if e.person_id is not None),
              "unknown": sum(1 for e in today_events if e.person_id is None)}
    names = people_by_id(c.db, {e.person_id for e in events if e.person_id is not None})
    from kiosk.store import current_revision, templates_not_made_by

    stale = templates_not_made_by(c.db, c.settings.recognition.compatible_embedder_ids())
    to_re_enrol = sorted(people_by_id(c.db, stale).values(), key=lambda p: p.name.casefold())

    model = c.settings.expression.model
    return render_template(
        "status.html", st=st, status_file=c.settings.status_path, events=events, names=names,
        counts=counts, disk=disk_usage(c.settings), versions=versions(), to_re_enrol=to_re_enrol,
        captures=latest_captures(c.db), offsite_dir=c.settings.database.offsite_dir,
        offsite=daily_copies(c.settings.database.offsite_dir) if c.settings.database.offsite_dir else [],
        embedder=c.settings.recognition.embedder_id(),
        schema=current_revision(c.settings.database.path) if c.settings.database.path.exists()
        else None, recognition=c.settings.recognition, expression=c.settings.expression,
        model=str(model) if model else "built-in model", tz=c.settings.tz,
        stale_after=timedelta(seconds=c.settings.web.status_stale_s))


@bp.route("/users", methods=["GET", "POST"])
@admin_only
def users() -> Any:
    """Web accounts: list, add."""
    c = ctx()
    if request.method == "POST":
        username = request.form.get("username", "")
        password = request.form.get("password", "")
        role = request.form.get("role", "manager")
        try:
            auth.create_user(c.db, username, password, role, actor=actor())
        except KioskError as exc:
            flash(str(exc), "error")
        else:
            flash(f"Account {username.strip()} ({role}) created.")
        return redirect(url_for("admin.users"))
    return render_template("users.html", users=list_users(c.db))


def _account_or_404(username: str) -> UserInfo:
    """The web account with this username; aborts with 404 when there is none."""
    user = get_user(ctx().db, username)
    if user is None:
        abort(404)
    return user


def _not_myself(username: str, what: str) -> None:
    """WebError when the signed-in admin would change their own account here."""
    me = current_user()
    if me is not None and me.username == username:
        raise WebError(f"you cannot {what} your own account here; ask another admin")


@bp.route("/users/<username>/active", methods=["POST"])
@admin_only
def user_active(username: str) -> Any:
    """Enable or disable an account (never the last active admin: the store refuses)."""
    c = ctx()
    active = request.form.get("active") == "1"
    if not active:
        _not_myself(username, "disable")
    _account_or_404(username)
    set_user_active(c.db, username, active, actor=actor())
    flash(f"Account {username} {'enabled' if active else 'disabled'}.")
    return redirect(url_for("admin.users"))


@bp.route("/users/<username>/password", methods=["POST"])
@admin_only
def user_password(username: str) -> Any:
    """Set a new password for an account (e.g. a forgotten one); its sessions end."""
    _not_myself(username, "reset the password of (use the Account page for)")
    _account_or_404(username)
    auth.reset_password(ctx().db, username, request.form.get("password", "")[:2048], actor=actor())
    flash(f"New password set for {username}; they are signed out everywhere.")
    return redirect(url_for("admin.users"))


@bp.route("/users/<username>/role", methods=["POST"])
@admin_only
def user_role(username: str) -> Any:
    """Make an account admin or manager (never the last active admin a manager); its sessions end."""
    _not_myself(username, "change the role of")
    _account_or_404(username)
    role = request.form.get("role", "")
    if role not in auth.ROLES:
        raise WebError(f"role must be one of {', '.join(auth.ROLES)}")
    set_user_role(ctx().db, username, role, actor=actor())
    flash(f"{username} is now {role}; they are signed out everywhere.")
    return redirect(url_for("admin.users"))


@bp.route("/users/<username>/remove", methods=["POST"])
@admin_only
def user_remove(username: str) -> Any:
    """Delete an account (type its username to confirm; never the last active admin)."""
    _not_myself(username, "delete")
    _account_or_404(username)
    if request.form.get("confirm", "").strip() != username:
        raise WebError(f"type the username {username!r} exactly to delete the account")
    remove_user(ctx().db, username, actor=actor())
    flash(f"Account {username} deleted.")
    return redirect(url_for("admin.users"))
