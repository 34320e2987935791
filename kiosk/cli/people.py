"""`kiosk enroll` and `kiosk people`: enrol from photo files or at the kiosk camera; list, show,
export, rename, deactivate, record consent and erase enrolled people."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kiosk.cli.base import PATH, Context, fail, person, with_context
from kiosk.errors import KioskError
from kiosk.vocabulary import CaptureStatus

if TYPE_CHECKING:
    from kiosk import store
    from kiosk.enrolment import PhotoVerdict

logger = logging.getLogger(__name__)


def _print_verdicts(verdicts: Iterable[PhotoVerdict]) -> None:
    for verdict in verdicts:
        mark = "ok " if verdict.ok else "NO "
        click.echo(f"  {mark} {verdict.describe()}")


@click.command("enroll")
@click.option("--name", required=True, help="The person's full name.")
@click.option("--employee-id", required=True, help="Unique employee id (payroll key).")
@click.option("--force", is_flag=True, help="Enrol even if a face looks like another enrolled person.")
@click.option("--replace", is_flag=True, help="Re-enrol an existing employee id with these photos only.")
@click.option("--consent", is_flag=True, help="The person consents to expression analysis (recorded).")
@click.option("--at-kiosk", is_flag=True,
              help="No PHOTOS: the running door service photographs the person standing at the kiosk.")
@click.argument("photos", nargs=-1, type=PATH)
@with_context
def enroll(ctx: Context, name: str, employee_id: str, force: bool, replace: bool, consent: bool,
           at_kiosk: bool, photos: tuple[Path, ...]) -> None:
    """Enrol a person from PHOTOS (files or folders; each must show exactly one usable face),
    or with --at-kiosk from photos the kiosk camera takes."""
    if at_kiosk and photos:
        raise click.UsageError("give PHOTOS or --at-kiosk, not both")
    if not at_kiosk and not photos:
        raise click.UsageError("give PHOTOS (files or folders), or --at-kiosk to take them with the kiosk camera")
    if at_kiosk:
        _enrol_at_kiosk(ctx, name, employee_id, force=force, replace=replace, consent=consent)
        return
    from kiosk.enrolment import EnrolmentError, enrol, photo_loaders
    from kiosk.vision.faces import make_analyzer

    settings = ctx.settings
    loaders = photo_loaders(photos, settings.enrolment.max_photo_side)  # decoded one at a time
    with ctx.open_db() as database:
        try:
            result = enrol(database, settings, make_analyzer(settings.recognition), name=name,
                           employee_id=employee_id, photos=loaders, force=force, replace=replace,
                           expression_consent=consent)
        except EnrolmentError as exc:
            if exc.result is not None:
                click.echo(f"{name} ({employee_id}): not enrolled", err=True)
                _print_verdicts(exc.result.verdicts)
            raise
    verb = "re-enrolled" if result.replaced else "enrolled"
    click.echo(f"{name} ({employee_id}): {verb} with {result.templates_added} photo(s)")
    _print_verdicts(result.verdicts)


def _enrol_at_kiosk(ctx: Context, name: str, employee_id: str, *, force: bool, replace: bool,
                    consent: bool) -> None:
    """Queue a capture request, wait for the door service to take the photos, print the outcome."""
    from datetime import UTC, datetime

    from kiosk import store
    from kiosk.capture import wait_for_capture
    from kiosk.enrolment import check_employee_id
    from kiosk.web.status import read_status

    settings = ctx.settings
    with ctx.open_db() as database:
        check_employee_id(database, name, employee_id, replace=replace)
        service = read_status(settings, datetime.now(UTC))
        if not service.running:
            raise KioskError(f"nobody can take the photos: {service.message}; start the kiosk service "
                             "(systemctl start kiosk) or enrol from photo files")
        request = store.request_capture(database, employee_id=employee_id, name=name, actor="cli",
                                        timeout_s=settings.enrolment.capture_timeout_s,
                                        expression_consent=consent, replace=replace, force=force)
        click.echo(f"{name} ({employee_id}): stand at the door and look into the camera "
                   f"(waiting up to {settings.enrolment.capture_timeout_s:.0f} s; Ctrl-C cancels)")
        wanted = settings.enrolment.capture_photos

        def show(current: store.CaptureInfo) -> None:
            if current.active:
                click.echo(f"  {current.status}: {current.photos_taken} of {wanted} photos")

        final = wait_for_capture(database, request.id, show)
    if final.status != CaptureStatus.DONE:
        raise KioskError(f"{name} ({employee_id}): not enrolled ({final.status}): {final.message or ''}".rstrip(": "))
    click.echo(f"{name} ({employee_id}): {final.message}")


@click.group()
def people() -> None:
    """List, show, change or remove enrolled people."""


@people.command("list")
@click.option("--all", "include_inactive", is_flag=True, help="Include deactivated people.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@with_context
def people_list(ctx: Context, include_inactive: bool, as_json: bool) -> None:
    """Enrolled people: employee id, name, photos, consent, active."""
    from kiosk import store

    with ctx.open_db() as database:
        rows = store.list_people(database, include_inactive=include_inactive)
    if as_json:
        click.echo(json.dumps([{"employee_id": p.employee_id, "name": p.name, "templates": p.template_count,
                                "expression_consent": p.expression_consent, "active": p.active}
                               for p in rows], indent=2))
        return
    if not rows:
        click.echo("nobody enrolled yet (kiosk enroll --name NAME --employee-id ID PHOTO...)")
        return
    click.echo(f"{'EMPLOYEE ID':<14}{'NAME':<28}{'PHOTOS':>7}  {'CONSENT':<8}ACTIVE")
    for p in rows:
        click.echo(f"{p.employee_id:<14}{p.name[:27]:<28}{p.template_count:>7}  "
                   f"{'yes' if p.expression_consent else 'no':<8}{'yes' if p.active else 'no'}")


@people.command("show")
@click.argument("employee_id")
@click.option("--export", "export_path", type=PATH, default=None,
              help="Also write everything held about the person to this JSON file.")
@with_context
def people_show(ctx: Context, employee_id: str, export_path: Path | None) -> None:
    """One person: enrolment, consent, templates, last event, current and planned leave."""
    from datetime import datetime

    from kiosk import store

    with ctx.open_db() as database:
        p = person(database, employee_id)
        templates = store.list_templates(database, p.id)
        last = store.last_event_for(database, p.id)
        today = datetime.now(ctx.settings.tz).date()
        leave = store.leave_between(database, today, None, person_id=p.id)
        if export_path is not None:
            _write_export(export_path, json.dumps(store.export_person(database, p.id), indent=2, default=str))
    tz = ctx.settings.tz
    click.echo(f"{p.name} ({p.employee_id}){'' if p.active else ' [inactive]'}")
    click.echo(f"  enrolled:   {p.created_at.astimezone(tz):%Y-%m-%d %H:%M}")
    consent = "yes" if p.expression_consent else "no"
    if p.consent_changed_at:
        consent += f" (changed {p.consent_changed_at.astimezone(tz):%Y-%m-%d} by {p.consent_changed_by})"
    click.echo(f"  expression consent: {consent}")
    click.echo(f"  face templates: {len(templates)} ({', '.join(t.source or '?' for t in templates)})")
    if last is not None:
        click.echo(f"  last event: {last.kind} at {last.occurred_at.astimezone(tz):%Y-%m-%d %H:%M}")
    for item in leave:
        click.echo(f"  leave:      {item.kind} {item.span()} (leave {item.id})")
    if export_path is not None:
        click.echo(f"  exported to {export_path}")


def _write_export(path: Path, text: str) -> None:
    """Write a subject-access export to a new file at path; KioskError (not a traceback) when the path is a
    folder, cannot be written, or exists (like `kiosk db backup`, never overwrites: `--export kiosk.db`
    would have replaced the database with JSON)."""
    if path.is_dir():
        raise KioskError(f"{path} is a folder: give a file name for the export, e.g. {path / 'person.json'}")
    try:
        with path.open("x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        raise KioskError(f"{path} exists; choose a new file name (nothing was overwritten)") from None
    except OSError as exc:
        raise KioskError(f"cannot write the export to {path}: {exc.strerror or exc}") from None


@people.command("remove")
@click.argument("employee_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--with-events", is_flag=True,
              help="Also delete their attendance history now (default: kept until retention expires).")
@with_context
def people_remove(ctx: Context, employee_id: str, yes: bool, with_events: bool) -> None:
    """Erase a person's face templates and photos for good (attendance follows retention)."""
    from kiosk import store
    from kiosk.errors import PersonNotFound

    with ctx.open_db() as database:
        try:
            p = person(database, employee_id)
        except PersonNotFound:  # an erasure cut off after its commit is finished at open (or here)
            done = [f for f in database.finished_erasures + store.finish_pending_erasures(database)
                    if f.employee_id == employee_id.strip()]
            if not done:
                raise
            click.echo(f"{employee_id}: the interrupted erasure is finished now (database vacuumed, "
                       f"{sum(len(f.backups_scrubbed) for f in done)} database backup(s) scrubbed)")
            return
        if not yes and not click.confirm(f"Erase all biometric data of {p.name} ({p.employee_id})?"):
            fail("nothing removed")
        result = store.erase_person(database, p.id, actor="cli", keep_events=not with_events)
    click.echo(f"{p.name} ({p.employee_id}): erased {result.templates_deleted} template(s), "
               f"{result.images_deleted} photo(s)"
               + (f", also in {result.backups_scrubbed} database backup(s)" if result.backups_scrubbed else "")
               + ("" if with_events else f"; attendance kept for {ctx.settings.retention.attendance_days} days"))


@people.command("consent")
@click.argument("employee_id")
@click.option("--grant/--withdraw", required=True, help="Record consent to expression analysis, or withdraw it.")
@with_context
def people_consent(ctx: Context, employee_id: str, grant: bool) -> None:
    """Record or withdraw a person's consent to expression analysis (withdrawal deletes past results)."""
    from kiosk import store

    with ctx.open_db() as database:
        p = person(database, employee_id)
        store.set_consent(database, p.id, grant, actor="cli")
    click.echo(f"{p.name} ({p.employee_id}): expression consent {'granted' if grant else 'withdrawn'}")


@people.command("rename")
@click.argument("employee_id")
@click.argument("name")
@with_context
def people_rename(ctx: Context, employee_id: str, name: str) -> None:
    """Correct the NAME of EMPLOYEE_ID (reports and the door screen use it from then on)."""
    from kiosk import store

    with ctx.open_db() as database:
        p = person(database, employee_id)
        renamed = store.rename_person(database, p.id, name, actor="cli")
    click.echo(f"{p.employee_id}: renamed from {p.name!r} to {renamed.name!r}")


@people.command("deactivate")
@click.argument("employee_id")
@with_context
def people_deactivate(ctx: Context, employee_id: str) -> None:
    """Stop recognising a person without erasing them (e.g. long leave)."""
    from kiosk import store

    with ctx.open_db() as database:
        p = person(database, employee_id)
        store.deactivate(database, p.id, actor="cli")
    click.echo(f"{p.name} ({p.employee_id}): deactivated")
