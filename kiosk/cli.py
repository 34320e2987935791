"""The `kiosk` command: parse arguments, call the package, print. User errors exit non-zero with one message."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from kiosk.config import ConfigError, Settings, door_problems, load_settings, settings_as_yaml
from kiosk.errors import KioskError

logger = logging.getLogger(__name__)

EXIT_USER_ERROR = 1
EXIT_CONFIG_ERROR = 2


def _fail(message: str, code: int = EXIT_USER_ERROR) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def friendly(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the errors a user can cause into one message and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            _fail(str(exc), EXIT_CONFIG_ERROR)
        except KioskError as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            _fail("interrupted", 130)

    return wrapper


class Context:
    """What subcommands share: the config file path, and settings loaded on first use."""

    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        return self._settings

    def open_db(self):
        from kiosk import store

        return store.open_from_settings(self.settings)


pass_ctx = click.make_pass_decorator(Context)

ROW_ID = click.IntRange(1, 2**63 - 1)
"""An event or leave id: SQLite's INTEGER range (a larger number is a usage error, not an OverflowError)."""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None, envvar="KIOSK_CONFIG",
              help="YAML settings file (default: built-in defaults; env KIOSK_CONFIG).")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="kiosk")
@click.pass_context
def main(click_ctx: click.Context, config_path: Path | None, verbose: int) -> None:
    """Attendance kiosk: face recognition check-in, records in SQLite, reports."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    click_ctx.obj = Context(config_path)


# --- config -----------------------------------------------------------------------------------


@main.group()
def config() -> None:
    """Check or show the settings."""


@config.command("check")
@click.argument("file", required=False, type=click.Path(path_type=Path))
@pass_ctx
@friendly
def config_check(ctx: Context, file: Path | None) -> None:
    """Validate FILE (or --config); exit 2 with the key and line of each problem."""
    source = file or ctx.config_path or "defaults"
    problems = door_problems(load_settings(file or ctx.config_path))
    if problems:
        raise ConfigError("\n".join(f"{source}: {p}" for p in problems))
    click.echo(f"{source}: ok")


@config.command("show")
@pass_ctx
@friendly
def config_show(ctx: Context) -> None:
    """Print the effective settings (file + environment + defaults) as YAML."""
    click.echo(settings_as_yaml(ctx.settings), nl=False)


# --- database ---------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@pass_ctx
@friendly
def db_upgrade(ctx: Context) -> None:
    """Create the database or migrate it to the newest schema (backing it up first)."""
    from kiosk import store

    result = store.upgrade_from_settings(ctx.settings, backup=True)
    where = ctx.settings.database.path
    if result.changed:
        backup = f"; backup at {result.backup}" if result.backup else ""
        click.echo(f"{where}: schema {result.before or 'none'} -> {result.after}{backup}")
    else:
        click.echo(f"{where}: schema {result.after} is current")


@db.command("status")
@pass_ctx
@friendly
def db_status(ctx: Context) -> None:
    """Show the schema revision of the database and of this version."""
    from kiosk import store

    path = ctx.settings.database.path
    click.echo(f"{path}: schema {store.current_revision(path) or 'none'} (this version: {store.head_revision()})")


@db.command("backup")
@click.argument("dest", type=click.Path(path_type=Path, dir_okay=False))
@pass_ctx
@friendly
def db_backup(ctx: Context, dest: Path) -> None:
    """Copy the database to DEST (e.g. a USB stick or network share) for safe keeping, without
    biometric data: face templates, enrolment photos and expression data are left out, so the
    copy can live where erasure cannot reach. After restoring it, enrol the faces again."""
    from kiosk import store

    source = Path(ctx.settings.database.path)
    if not source.is_file():
        raise KioskError(f"{source}: no database to copy")
    with store.open_from_settings(ctx.settings) as database:  # refuses a file that is no kiosk database
        copy = store.write_offsite_copy(source, dest)
        try:
            store.record_copy(database, "cli", copy)
        except KioskError as exc:
            raise KioskError(f"{copy.path} was written but not recorded in the audit log: {exc}") from None
    click.echo(f"{copy.path}: {copy.people} people, {copy.events} attendance events "
               "(no face templates, photos or expression data)")


# --- enrolment and people ---------------------------------------------------------------------


def _print_verdicts(verdicts) -> None:
    for verdict in verdicts:
        mark = "ok " if verdict.ok else "NO "
        click.echo(f"  {mark} {verdict.describe()}")


@main.command("enroll")
@click.option("--name", required=True, help="The person's full name.")
@click.option("--employee-id", required=True, help="Unique employee id (payroll key).")
@click.option("--force", is_flag=True, help="Enrol even if a face looks like another enrolled person.")
@click.option("--replace", is_flag=True, help="Re-enrol an existing employee id with these photos only.")
@click.option("--consent", is_flag=True, help="The person consents to expression analysis (recorded).")
@click.option("--at-kiosk", is_flag=True,
              help="No PHOTOS: the running door service photographs the person standing at the kiosk.")
@click.argument("photos", nargs=-1, type=click.Path(path_type=Path))
@pass_ctx
@friendly
def enroll(ctx: Context, name: str, employee_id: str, force: bool, replace: bool, consent: bool,
           at_kiosk: bool, photos: tuple[Path, ...]) -> None:
    """Enrol a person from PHOTOS (files or folders; each must show exactly one usable face),
    or with --at-kiosk from photos the kiosk camera takes."""
    from kiosk.enrolment import EnrolmentError, enrol, photo_loaders
    from kiosk.vision.faces import make_analyzer

    if at_kiosk and photos:
        raise click.UsageError("give PHOTOS or --at-kiosk, not both")
    if not at_kiosk and not photos:
        raise click.UsageError("give PHOTOS (files or folders), or --at-kiosk to take them with the kiosk camera")
    settings = ctx.settings
    if at_kiosk:
        _enrol_at_kiosk(ctx, name, employee_id, force=force, replace=replace, consent=consent)
        return
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
    if final.status != "done":
        raise KioskError(f"{name} ({employee_id}): not enrolled ({final.status}): {final.message or ''}".rstrip(": "))
    click.echo(f"{name} ({employee_id}): {final.message}")


@main.group()
def people() -> None:
    """List, show, change or remove enrolled people."""


def _person(database, employee_id: str):
    from kiosk import store

    return store.get_person_by_employee_id(database, employee_id)


@people.command("list")
@click.option("--all", "include_inactive", is_flag=True, help="Include deactivated people.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@pass_ctx
@friendly
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
@click.option("--export", "export_path", type=click.Path(path_type=Path), default=None,
              help="Also write everything held about the person to this JSON file.")
@pass_ctx
@friendly
def people_show(ctx: Context, employee_id: str, export_path: Path | None) -> None:
    """One person: enrolment, consent, templates, last event, current and planned leave."""
    from datetime import datetime

    from kiosk import store

    with ctx.open_db() as database:
        p = _person(database, employee_id)
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
@pass_ctx
@friendly
def people_remove(ctx: Context, employee_id: str, yes: bool, with_events: bool) -> None:
    """Erase a person's face templates and photos for good (attendance follows retention)."""
    from kiosk import store
    from kiosk.errors import PersonNotFound

    with ctx.open_db() as database:
        try:
            p = _person(database, employee_id)
        except PersonNotFound:  # an erasure cut off after its commit is finished at open (or here)
            done = [f for f in database.finished_erasures + store.finish_pending_erasures(database)
                    if f.employee_id == employee_id.strip()]
            if not done:
                raise
            click.echo(f"{employee_id}: the interrupted erasure is finished now (database vacuumed, "
                       f"{sum(len(f.backups_scrubbed) for f in done)} database backup(s) scrubbed)")
            return
        if not yes and not click.confirm(f"Erase all biometric data of {p.name} ({p.employee_id})?"):
            _fail("nothing removed")
        result = store.erase_person(database, p.id, actor="cli", keep_events=not with_events)
    click.echo(f"{p.name} ({p.employee_id}): erased {result.templates_deleted} template(s), "
               f"{result.images_deleted} photo(s)"
               + (f", also in {result.backups_scrubbed} database backup(s)" if result.backups_scrubbed else "")
               + ("" if with_events else f"; attendance kept for {ctx.settings.retention.attendance_days} days"))


@people.command("consent")
@click.argument("employee_id")
@click.option("--grant/--withdraw", required=True, help="Record consent to expression analysis, or withdraw it.")
@pass_ctx
@friendly
def people_consent(ctx: Context, employee_id: str, grant: bool) -> None:
    """Record or withdraw a person's consent to expression analysis (withdrawal deletes past results)."""
    from kiosk import store

    with ctx.open_db() as database:
        p = _person(database, employee_id)
        store.set_consent(database, p.id, grant, actor="cli")
    click.echo(f"{p.name} ({p.employee_id}): expression consent {'granted' if grant else 'withdrawn'}")


@people.command("rename")
@click.argument("employee_id")
@click.argument("name")
@pass_ctx
@friendly
def people_rename(ctx: Context, employee_id: str, name: str) -> None:
    """Correct the NAME of EMPLOYEE_ID (reports and the door screen use it from then on)."""
    from kiosk import store

    with ctx.open_db() as database:
        p = _person(database, employee_id)
        renamed = store.rename_person(database, p.id, name, actor="cli")
    click.echo(f"{p.employee_id}: renamed from {p.name!r} to {renamed.name!r}")


@people.command("deactivate")
@click.argument("employee_id")
@pass_ctx
@friendly
def people_deactivate(ctx: Context, employee_id: str) -> None:
    """Stop recognising a person without erasing them (e.g. long leave)."""
    from kiosk import store

    with ctx.open_db() as database:
        p = _person(database, employee_id)
        store.deactivate(database, p.id, actor="cli")
    click.echo(f"{p.name} ({p.employee_id}): deactivated")


# --- attendance corrections -------------------------------------------------------------------


@main.group()
def events() -> None:
    """List a person's attendance events; correct them by hand (audited, marked in reports)."""


@events.command("list")
@click.argument("employee_id")
@click.option("--date", "day_text", default="today", show_default=True, help="Local day: YYYY-MM-DD, today, yesterday.")
@pass_ctx
@friendly
def events_list(ctx: Context, employee_id: str, day_text: str) -> None:
    """EMPLOYEE_ID's events on one day: id, time, kind, who recorded it."""
    from kiosk import store
    from kiosk.reports import parse_day

    day = parse_day(day_text, ctx.settings)
    with ctx.open_db() as database:
        p = _person(database, employee_id)
        start, end = store.local_day_bounds(day, ctx.settings.tz)
        rows = store.events_between(database, start, end, person_id=p.id)
    if not rows:
        click.echo(f"{p.name} ({p.employee_id}): no events on {day}")
    for e in rows:
        by = f"by hand ({e.recorded_by}: {e.note})" if e.manual else f"camera {e.device_id}"
        review = f"  REVIEW: {e.review}" if e.review else ""
        click.echo(f"{e.id:>8}  {e.occurred_at.astimezone(ctx.settings.tz):%Y-%m-%d %H:%M}  {e.kind:<4} {by}{review}")


@events.command("add")
@click.argument("employee_id")
@click.option("--kind", type=click.Choice(["in", "out"]), required=True, help="Check-in or check-out.")
@click.option("--at", "at_text", required=True,
              help='Local time "YYYY-MM-DD HH:MM" (site time zone); in the repeated hour when clocks go back '
                   'add its UTC offset, e.g. "2026-10-25 02:30+02:00".')
@click.option("--note", required=True, help="Why (kept with the event and in the audit log).")
@pass_ctx
@friendly
def events_add(ctx: Context, employee_id: str, kind: str, at_text: str, note: str) -> None:
    """Add a missed check-in or check-out for EMPLOYEE_ID."""
    from kiosk import store
    from kiosk.clock import parse_site_time

    at = parse_site_time(at_text, ctx.settings.tz)
    with ctx.open_db() as database:
        p = _person(database, employee_id)
        event = store.add_correction(database, p.id, at, kind, actor="cli", note=note,
                                     retention_days=ctx.settings.retention.attendance_days)
    click.echo(f"{p.name} ({p.employee_id}): check-{kind} at {at:%Y-%m-%d %H:%M} added (event {event.id})")


@events.command("remove")
@click.argument("event_id", type=ROW_ID)
@click.option("--reason", required=True, help="Why the event is wrong (kept in the audit log).")
@pass_ctx
@friendly
def events_remove(ctx: Context, event_id: int, reason: str) -> None:
    """Delete the wrong event EVENT_ID (see `kiosk events list`)."""
    from kiosk import store

    with ctx.open_db() as database:
        removed = store.remove_event(database, event_id, actor="cli", reason=reason)
    click.echo(f"event {event_id} removed: check-{removed.kind} at "
               f"{removed.occurred_at.astimezone(ctx.settings.tz):%Y-%m-%d %H:%M}")


# --- leave ------------------------------------------------------------------------------------


@main.group()
def leave() -> None:
    """Record leave (holiday, sick, other): reports count those work days as leave, not absence."""


def _leave_line(item, people: dict) -> str:
    p = people[item.person_id]
    return f"{item.id:>6}  {p.employee_id:<10} {p.name:<24} {item.kind:<8} {item.span()}"


@leave.command("add")
@click.argument("employee_id")
@click.option("--from", "first", required=True, help="First day: YYYY-MM-DD, today or yesterday.")
@click.option("--to", "last", default=None, help="Last day, inclusive (default: the first day).")
@click.option("--kind", type=click.Choice(["holiday", "sick", "other"]), default="holiday", show_default=True,
              help="Only the kind is stored, no reason.")
@pass_ctx
@friendly
def leave_add(ctx: Context, employee_id: str, first: str, last: str | None, kind: str) -> None:
    """Record EMPLOYEE_ID's leave over whole days."""
    from kiosk import store
    from kiosk.reports import parse_day

    first_day = parse_day(first, ctx.settings)
    last_day = parse_day(last, ctx.settings) if last else first_day
    with ctx.open_db() as database:
        p = _person(database, employee_id)
        item = store.add_leave(database, p.id, first_day, last_day, kind, actor="cli")
    work_days = sum(1 for d in item.days() if ctx.settings.site.is_work_day(d))
    click.echo(f"{p.name} ({p.employee_id}): {kind} leave {item.span()}, {work_days} work day(s) (leave {item.id})")


@leave.command("import")
@click.argument("csv_file", type=click.Path(path_type=Path, dir_okay=False))
@pass_ctx
@friendly
def leave_import(ctx: Context, csv_file: Path) -> None:
    """Record leave from CSV_FILE (e.g. an HR export), all or nothing.

    Columns: employee_id, first_day (YYYY-MM-DD), last_day (empty: one day), kind (holiday, sick,
    other; empty: holiday). Every wrong line is listed; then nothing is recorded.
    """
    from kiosk import store
    from kiosk.leave_csv import read_leave_csv

    with ctx.open_db() as database:
        items = read_leave_csv(csv_file, database)
        added = store.add_leave_batch(database, items, actor="cli")
    click.echo(f"recorded {len(added)} leave entr{'y' if len(added) == 1 else 'ies'} from {csv_file}")


@leave.command("list")
@click.argument("employee_id", required=False)
@click.option("--from", "first", default=None, help="Leave ending on or after this day (YYYY-MM-DD, today).")
@click.option("--to", "last", default=None, help="Leave starting on or before this day.")
@pass_ctx
@friendly
def leave_list(ctx: Context, employee_id: str | None, first: str | None, last: str | None) -> None:
    """Recorded leave (everyone's, or EMPLOYEE_ID's): id, employee, kind, days."""
    from kiosk import store
    from kiosk.reports import parse_day

    first_day = parse_day(first, ctx.settings) if first else None
    last_day = parse_day(last, ctx.settings) if last else None
    with ctx.open_db() as database:
        person_id = _person(database, employee_id).id if employee_id else None
        items = store.leave_between(database, first_day, last_day, person_id=person_id)
        people = store.people_by_id(database, {item.person_id for item in items})
    if not items:
        click.echo("no leave recorded" + (f" for {employee_id}" if employee_id else ""))
    for item in items:
        click.echo(_leave_line(item, people))


@leave.command("remove")
@click.argument("leave_id", type=ROW_ID)
@pass_ctx
@friendly
def leave_remove(ctx: Context, leave_id: int) -> None:
    """Delete leave LEAVE_ID (see `kiosk leave list`); the audit log keeps what it was."""
    from kiosk import store

    with ctx.open_db() as database:
        item = store.remove_leave(database, leave_id, actor="cli")
    click.echo(f"leave {leave_id} removed: {item.kind}, {item.span()}")


# --- reports ----------------------------------------------------------------------------------


@main.group()
def report() -> None:
    """Attendance reports (table, CSV for payroll, JSON, HTML)."""


FORMAT_OPTION = click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "html"]),
                             default="table", show_default=True)


@report.command("daily")
@click.option("--date", "day", default="today", show_default=True, help="YYYY-MM-DD, today or yesterday.")
@FORMAT_OPTION
@pass_ctx
@friendly
def report_daily(ctx: Context, day: str, fmt: str) -> None:
    """One day: first in, last out, time present, late, absent, team mood."""
    from kiosk.reports import daily_report, parse_day, render_daily

    with ctx.open_db() as database:
        rendered = render_daily(daily_report(database, ctx.settings, parse_day(day, ctx.settings)), fmt)
    click.echo(rendered, nl=False)


@report.command("range")
@click.option("--from", "start", required=True, help="First day, YYYY-MM-DD.")
@click.option("--to", "end", required=True, help="Last day, YYYY-MM-DD (inclusive).")
@FORMAT_OPTION
@pass_ctx
@friendly
def report_range(ctx: Context, start: str, end: str, fmt: str) -> None:
    """A period: one row per person and day plus totals (CSV for payroll). csv, json and table are
    written day by day; html shows all totals and the first 500 person-days."""
    from kiosk.reports import iter_range, parse_day

    s = ctx.settings
    first, last = parse_day(start, s), parse_day(end, s)
    with ctx.open_db() as database:
        for chunk in iter_range(database, s, first, last, fmt):
            click.echo(chunk, nl=False)


# --- evaluation and training -----------------------------------------------------------------


@main.group()
def evaluate() -> None:
    """Measure recognition and expression accuracy on a labelled folder."""


def _progress(done: int, total: int) -> None:
    click.echo(f"  {done}/{total}", err=True)


@evaluate.command("faces")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path),
              help="Folder with people/<Name>/*.jpg and strangers/*.jpg.")
@click.option("--enrol-photos", default=3, show_default=True, type=click.IntRange(1, 50),
              help="Photos per person enrolled (first in name order); the rest are probes.")
@click.option("--cache", "cache", type=click.Path(path_type=Path), default=None,
              help="Embedding cache .npz: reused when made with the same settings, updated with new photos.")
@click.option("--half", type=click.Choice(["A", "B"]), default=None,
              help="Only one half of the people and strangers (split by CRC-32 of the name; the rule "
                   "was tuned on A, B is held out).")
@click.option("--strangers", "stranger_dirs", multiple=True, type=click.Path(path_type=Path),
              help="Another folder of stranger photos (one per stranger), added to strangers/; "
                   "repeatable. --half applies to them too (by file name).")
@pass_ctx
@friendly
def evaluate_faces_cmd(ctx: Context, data_dir: Path, enrol_photos: int, cache: Path | None,
                       half: str | None, stranger_dirs: tuple[Path, ...]) -> None:
    """Identification and stranger rejection rates with Wilson 95% intervals; last line is JSON."""
    import tempfile

    from kiosk.evaluation.faces import evaluate_faces, make_half_split, stranger_photos

    extra = stranger_photos(stranger_dirs, half)
    with tempfile.TemporaryDirectory(prefix="kiosk-half-") as scratch:
        if half is not None:
            data_dir = make_half_split(data_dir, Path(scratch) / f"faces_{half}", half=half)
        result = evaluate_faces(data_dir, enrol_photos, ctx.settings.recognition, progress=_progress,
                                cache=cache, extra_strangers=extra)
    click.echo(json.dumps(result))


@evaluate.command("expressions")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path),
              help="Folder with <class>/*.jpg.")
@click.option("--faces-cropped", is_flag=True, help="Images are already face crops (FER2013).")
@click.option("--model", "model", type=click.Path(path_type=Path), default=None,
              help="A .tflite model (default: expression.model or the shipped one).")
@pass_ctx
@friendly
def evaluate_expressions_cmd(ctx: Context, data_dir: Path, faces_cropped: bool, model: Path | None) -> None:
    """Accuracy, macro-F1 and per-class recall; last line is JSON."""
    from kiosk.evaluation.expressions import evaluate_expressions
    from kiosk.vision.expression import TFLiteExpressionClassifier, model_path

    s = ctx.settings.expression
    path = model or model_path(s)
    classifier = TFLiteExpressionClassifier(path, check=s.verify_checksum and model is None,
                                            mirror=s.mirror_tta)
    analyzer = None
    if not faces_cropped:
        from kiosk.vision.faces import make_analyzer

        analyzer = make_analyzer(ctx.settings.recognition)
    result = evaluate_expressions(data_dir, classifier, faces_cropped=faces_cropped, analyzer=analyzer,
                                  progress=_progress)
    result.pop("confusion")
    click.echo(json.dumps(result))


@main.group()
def train() -> None:
    """Train models (needs: pip install -e .[train])."""


@train.command("expressions")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path),
              help="Training folder with <class>/*.jpg (e.g. fer2013/train).")
@click.option("--out", "out_path", required=True, type=click.Path(path_type=Path),
              help="Where to write the int8 .tflite (and .sha256, report).")
@click.option("--work-dir", type=click.Path(path_type=Path), default=None,
              help="Checkpoints; re-running with the same folder resumes (default: OUT's folder/train-work).")
@click.option("--epochs", type=click.IntRange(1, 1000), default=None, help="Override the epoch count.")
@click.option("--limit-per-class", type=click.IntRange(1), default=None, help="Use at most N images per class.")
@click.option("--test-data", type=click.Path(path_type=Path), default=None,
              help="Also evaluate float and int8 models on this folder for the report.")
@click.option("--init-from", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="Continue from the weights of an int8 .tflite of the same architecture (a later stage).")
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Peak learning rate (default 2e-3; lower when continuing with --init-from).")
@click.option("--distill-from", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="Mix this int8 .tflite's scores (same architecture) into the training targets.")
@click.option("--distill-weight", type=click.FloatRange(0, 1), default=None,
              help="Share of --distill-from's scores in each target (default 0.5).")
@click.option("--erase-prob", type=click.FloatRange(0, 1), default=None,
              help="Random erasing: share of training images with one rectangle of random grey (default 0).")
@friendly
def train_expressions(data_dir: Path, out_path: Path, work_dir: Path | None, epochs: int | None,
                      limit_per_class: int | None, test_data: Path | None, init_from: Path | None,
                      learning_rate: float | None, distill_from: Path | None, distill_weight: float | None,
                      erase_prob: float | None) -> None:
    """Train the expression CNN, export it to int8 TFLite and write an evaluation report."""
    if distill_weight is not None and distill_from is None:
        raise click.UsageError("--distill-weight needs --distill-from (the teacher model)")
    try:
        from kiosk.training.pipeline import train_and_export
    except ImportError as exc:
        raise KioskError(f"training needs the train extra: pip install -e '.[train]' ({exc})") from None
    logging.getLogger("kiosk.training").setLevel(min(logging.getLogger().level, logging.INFO))  # epoch lines
    report = train_and_export(data_dir, out_path, work_dir=work_dir, epochs=epochs,
                              limit_per_class=limit_per_class, test_dir=test_data, init_from=init_from,
                              learning_rate=learning_rate, distill_from=distill_from,
                              distill_weight=distill_weight, erase_prob=erase_prob)
    click.echo(json.dumps(report))


@train.command("embedder", context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@friendly
def train_embedder(args: tuple[str, ...]) -> None:
    """Convert dlib's face embedder (.dat) to LiteRT and measure it against dlib (--help: its options)."""
    from kiosk.training.dlib_embedder import main as convert

    code = convert(list(args), prog="kiosk train embedder")
    if code:
        raise SystemExit(code)


# --- web app and accounts ---------------------------------------------------------------------


@main.command("serve")
@pass_ctx
@friendly
def serve(ctx: Context) -> None:
    """Run the manager/admin web app on web.host:web.port until stopped."""
    from kiosk.web import serve as serve_web

    click.echo(f"serving on http://{ctx.settings.web.host}:{ctx.settings.web.port}/ (Ctrl+C stops)", err=True)
    serve_web(ctx.settings)


@main.group()
def users() -> None:
    """Web app accounts (admins enrol and erase; managers read reports)."""


@users.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "manager"]), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
@pass_ctx
@friendly
def users_add(ctx: Context, username: str, role: str, password_stdin: bool) -> None:
    """Create a web account; asks for the password twice (at least 10 characters)."""
    from kiosk.web import create_user

    password = _read_password(password_stdin)
    with ctx.open_db() as database:
        user = create_user(database, username, password, role, actor="cli")
    click.echo(f"{user.username}: {user.role} account created")


def _read_password(password_stdin: bool) -> str:
    """A new password from standard input (--password-stdin) or asked twice on the terminal."""
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@users.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
@pass_ctx
@friendly
def users_passwd(ctx: Context, username: str, password_stdin: bool) -> None:
    """Set a new password for USERNAME; their web sessions end."""
    from kiosk.web.auth import reset_password

    password = _read_password(password_stdin)
    with ctx.open_db() as database:
        reset_password(database, username, password, actor="cli")
    click.echo(f"{username}: password changed, signed out everywhere")


@users.command("role")
@click.argument("username")
@click.argument("role", type=click.Choice(["admin", "manager"]))
@pass_ctx
@friendly
def users_role(ctx: Context, username: str, role: str) -> None:
    """Make USERNAME an admin or a manager (never the last active admin); their sessions end."""
    from kiosk.store import set_user_role

    with ctx.open_db() as database:
        set_user_role(database, username, role, actor="cli")
    click.echo(f"{username}: now {role}")


@users.command("remove")
@click.argument("username")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
@friendly
def users_remove(ctx: Context, username: str, yes: bool) -> None:
    """Delete the account USERNAME (never the last active admin); audited."""
    from kiosk.store import remove_user

    if not yes:
        click.confirm(f"Delete the web account {username}?", abort=True)
    with ctx.open_db() as database:
        remove_user(database, username, actor="cli")
    click.echo(f"{username}: account deleted")


@users.command("list")
@pass_ctx
@friendly
def users_list(ctx: Context) -> None:
    """Web accounts with their roles."""
    from kiosk import store

    with ctx.open_db() as database:
        for user in store.list_users(database):
            click.echo(f"{user.username:<24}{user.role:<9}{'active' if user.active else 'disabled'}")


# --- the door service and benchmarks -----------------------------------------------------------


@main.command("run")
@click.option("--stop-after", type=click.IntRange(1), default=None, help="Stop after N frames (testing).")
@pass_ctx
@friendly
def run(ctx: Context, stop_after: int | None) -> None:
    """The door service: camera -> recognition -> attendance events -> door screen (systemd runs this)."""
    from kiosk.camera.options import parse_options
    from kiosk.service import run_service

    camera = ctx.settings.camera
    parse_options(camera.type, camera.options)  # a camera mistake stops us before anything starts
    logging.getLogger("kiosk").setLevel(min(logging.getLogger().level, logging.INFO))
    sys.exit(run_service(ctx.settings, stop_after=stop_after))


@main.group("bench", invoke_without_command=True)
@click.option("--frames", "frames_dir", type=click.Path(path_type=Path), default=None,
              help="Replayed frames (default: a scene made from the shipped test photos).")
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of the figures.")
@click.pass_context
def bench(click_ctx: click.Context, frames_dir: Path | None, as_json: bool) -> None:
    """Check-in latency of our pipeline against the naive per-frame baseline, and gallery search."""
    if click_ctx.invoked_subcommand is not None:
        return
    _bench_pipeline(click_ctx.obj, frames_dir, as_json)


@friendly
def _bench_pipeline(ctx: Context, frames_dir: Path | None, as_json: bool) -> None:
    from kiosk.bench import SAMPLE_FACES, add_embedder_comparison, format_bench, run_bench

    result = run_bench(ctx.settings, frames_dir, as_json)
    photos = sorted((SAMPLE_FACES / "people").glob("*/*.jpg"))
    if photos:  # both embedders side by side on the same faces (needs a source checkout)
        add_embedder_comparison(result, ctx.settings, photos)
    click.echo(format_bench(result))
    if as_json:
        click.echo(json.dumps(result))


@bench.command("expressions")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path),
              help="Face crops in <class>/*.jpg (e.g. fer2013/test).")
@click.option("--model", type=click.Path(path_type=Path), default=None, help="Our .tflite (default: shipped).")
@click.option("--limit", type=click.IntRange(1), default=None, help="At most N images per class.")
@pass_ctx
@friendly
def bench_expressions(ctx: Context, data_dir: Path, model: Path | None, limit: int | None) -> None:
    """Our int8 expression model against the fer package's mini-Xception, same crops, same runtime."""
    from kiosk.evaluation.peer import compare_with_peer
    from kiosk.vision.expression import model_path

    result = compare_with_peer(data_dir, model or model_path(ctx.settings.expression), limit,
                               mirror=ctx.settings.expression.mirror_tta)
    click.echo(f"{'model':<10}{'accuracy':>10}{'macro-F1':>10}{'ms/face':>9}{'bytes':>10}   (n={result['n']})")
    for name in ("ours", "fer_peer"):
        r = result[name]
        click.echo(f"{name:<10}{r['accuracy']:>10.4f}{r['macro_f1']:>10.4f}{r['ms_per_face']:>9.3f}{r['bytes']:>10}")
    click.echo(json.dumps(result))


@bench.command("reports")
@click.option("--people", type=click.IntRange(1, 100_000), default=500, show_default=True)
@click.option("--days", type=click.IntRange(1, 999), default=365, show_default=True)
@click.option("--no-web", is_flag=True, help="Skip the `kiosk serve` downloads.")
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of the figures.")
@friendly
def bench_reports(people: int, days: int, no_web: bool, as_json: bool) -> None:
    """Time and peak memory of a range CSV (CLI, and 4 downloads at once from `kiosk serve`) on
    a synthetic database of PEOPLE x DAYS built in a temporary folder."""
    from kiosk.bench_reports import as_json_line, format_report_bench, run_report_bench

    result = run_report_bench(people, days, web=not no_web)
    click.echo(format_report_bench(result))
    if as_json:
        click.echo(as_json_line(result))


# --- demo -------------------------------------------------------------------------------------


@main.command("demo")
@click.option("--dir", "folder", type=click.Path(path_type=Path), default=None,
              help="Empty folder for the demo database and frames (default: a new temporary folder).")
@click.option("--no-expression", is_flag=True, help="Run with expression analysis switched off.")
@friendly
def demo(folder: Path | None, no_expression: bool) -> None:
    """Enrol three people from shipped photos, replay a day at the door, print log and report."""
    import tempfile

    from kiosk.demo import run_demo

    folder = folder or Path(tempfile.mkdtemp(prefix="kiosk-demo-"))
    run_demo(folder, say=click.echo, expression=not no_expression)


if __name__ == "__main__":
    main()
