"""`kiosk db`: create or migrate the database schema, show its revision, and write an off-site copy
without biometric data (SQLite; a PostgreSQL database is backed up with pg_dump)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from kiosk.cli.base import FILE_PATH, Context, with_context
from kiosk.errors import KioskError

logger = logging.getLogger(__name__)


def _where(ctx: Context) -> str:
    """The configured database for messages: the SQLite file, or the URL without its password."""
    from kiosk import store

    return store.describe_location(ctx.settings.database.location)


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@with_context
def db_upgrade(ctx: Context) -> None:
    """Create the database or migrate it to the newest schema (an SQLite file is backed up first;
    back PostgreSQL up with pg_dump before an update)."""
    from kiosk import store

    result = store.upgrade_from_settings(ctx.settings, backup=True)
    where = _where(ctx)
    if result.changed:
        backup = f"; backup at {result.backup}" if result.backup else ""
        if ctx.settings.database.url is not None and result.before is not None:
            backup = "; not backed up here (PostgreSQL: pg_dump before an update)"
        click.echo(f"{where}: schema {result.before or 'none'} -> {result.after}{backup}")
    else:
        click.echo(f"{where}: schema {result.after} is current")


@db.command("status")
@with_context
def db_status(ctx: Context) -> None:
    """Show the schema revision of the database and of this version."""
    from kiosk import store

    location = ctx.settings.database.location
    click.echo(f"{_where(ctx)}: schema {store.current_revision(location) or 'none'} "
               f"(this version: {store.head_revision()})")


@db.command("backup")
@click.argument("dest", type=FILE_PATH)
@with_context
def db_backup(ctx: Context, dest: Path) -> None:
    """Copy the database to DEST (e.g. a USB stick or network share) for safe keeping, without
    biometric data: face templates, enrolment photos and expression data are left out, so the
    copy can live where erasure cannot reach. After restoring it, enrol the faces again."""
    from kiosk import store

    if ctx.settings.database.url is not None:
        raise KioskError(f"{_where(ctx)} is PostgreSQL: `kiosk db backup` copies an SQLite file. Back it up with "
                         "pg_dump, e.g. runuser -u postgres -- pg_dump -Fc kiosk > kiosk-$(date +%F).dump "
                         "(docs/central.md, Backups)")
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
