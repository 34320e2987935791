"""`kiosk doors`: the door kiosks of a central server (add with a one-time code, list, new code, revoke)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from kiosk.cli.base import Context, with_context
from kiosk.errors import KioskError

if TYPE_CHECKING:
    from kiosk.store import Database, NewDoorCode

logger = logging.getLogger(__name__)


@click.group()
def doors() -> None:
    """Door kiosks of this central server (docs/central.md)."""


def _open_central(ctx: Context) -> Database:
    """The database, when these settings are a central server's (KioskError otherwise)."""
    if ctx.settings.role != "central":
        raise KioskError(f"`kiosk doors` is for a central server (role: central); these settings have "
                         f"role: {ctx.settings.role} (give --config of the central)")
    return ctx.open_db()


def _say_code(new: NewDoorCode) -> None:
    """Print the door, its one-time code (until when, UTC) and what to run on the door."""
    click.echo(f"door {new.door.name!r} (device id {new.door.device_id})")
    click.echo(f"enrolment code: {new.code}")
    click.echo(f"valid once, until {new.expires_at:%Y-%m-%d %H:%M} UTC. On the door, run:")
    click.echo(f"  kiosk central enrol <this server's URL> {new.code}")


@doors.command("add")
@click.argument("name")
@click.option("--site", default=None, help="The site (office) the door belongs to, e.g. berlin.")
@with_context
def doors_add(ctx: Context, name: str, site: str | None) -> None:
    """Add the door NAME and print its one-time enrolment code (valid 24 hours)."""
    from kiosk import store

    with _open_central(ctx) as database:
        new = store.add_door(database, name, site=site, actor="cli")
    _say_code(new)


@doors.command("code")
@click.argument("name")
@with_context
def doors_code(ctx: Context, name: str) -> None:
    """A new one-time enrolment code for the door NAME (the old code stops working)."""
    from kiosk import store

    with _open_central(ctx) as database:
        new = store.new_enrol_code(database, name, actor="cli")
    _say_code(new)


@doors.command("revoke")
@click.argument("name")
@with_context
def doors_revoke(ctx: Context, name: str) -> None:
    """Refuse the door NAME's requests from now on (its events stay)."""
    from kiosk import store

    with _open_central(ctx) as database:
        door = store.revoke_door(database, name, actor="cli")
    click.echo(f"door {door.name!r} ({door.device_id}) revoked; its pushes are refused from now on")


def _ago(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "never"
    s = max(0, int((now - then).total_seconds()))
    return f"{s}s ago" if s < 120 else f"{s // 60}m ago" if s < 7200 else f"{s // 3600}h ago"


@doors.command("list")
@with_context
def doors_list(ctx: Context) -> None:
    """Doors with their state, last contact, backlog, clock offset, version and gallery lag."""
    from kiosk import store

    now = datetime.now(UTC)
    with _open_central(ctx) as database:
        rows = store.list_doors(database)
        newest = store.gallery_version(database)
    if not rows:
        click.echo("no doors yet (add one with `kiosk doors add NAME --site SITE`)")
        return
    click.echo(f"{'device id':<22}{'site':<12}{'state':<13}{'seen':<10}{'last seq':>9}{'backlog':>8}"
               f"{'clock':>8}{'gallery':>9}  version")
    for d in rows:
        clock = "-" if d.clock_offset_s is None else f"{d.clock_offset_s:+.0f}s"
        gallery = "-" if d.gallery_version is None else f"{d.gallery_version}/{newest}"
        click.echo(f"{d.device_id:<22}{(d.site or '-'):<12}{d.state(now):<13}{_ago(d.last_seen_at, now):<10}"
                   f"{d.last_seq:>9}{'-' if d.backlog is None else d.backlog:>8}{clock:>8}{gallery:>9}  "
                   f"{d.version or '-'}")
