"""`kiosk central`: a door's link to its central server (role: door): enrol with a one-time code, show the sync."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from kiosk.cli.base import Context, fail, with_context

logger = logging.getLogger(__name__)


@click.group()
def central() -> None:
    """This door's central server: enrol the door, join with its history, show how far its sync is."""


@central.command("enrol")
@click.argument("url")
@click.argument("code")
@click.option("--force", is_flag=True, help="Replace a token this door already has.")
@with_context
def central_enrol(ctx: Context, url: str, code: str, force: bool) -> None:
    """Exchange CODE (from `kiosk doors add` on the central at URL) for this door's token (mode 0600)."""
    from kiosk import store
    from kiosk.central_client import check_url, enrol
    from kiosk.door_sync import read_token, write_token_file

    s = ctx.settings
    url = check_url(url)
    token_path = s.token_path
    state = store.read_sync_state(s.database.path)
    if read_token(token_path) is not None and not force:
        fail(f"this door already has a token in {token_path} (enrolled as {state.device_id or 'unknown'}); "
             "add --force to replace it with one for this code")
    enrolment = enrol(url, code, timeout_s=s.central.timeout_s)
    write_token_file(token_path, enrolment.token)
    if state.url and state.url != url:  # another central holds none of this door's events or gallery
        state = store.SyncState()
    # Under a new device id too, pushed_seq stays: events up to it are on the central (under the old id),
    # the rest go up under the new one. A recorded seq_conflict is cleared: pushing resumes.
    store.write_sync_state(s.database.path, store.SyncState(
        pushed_seq=state.pushed_seq, gallery_version=state.gallery_version, pushed_at=state.pushed_at,
        device_id=enrolment.device_id, name=enrolment.name, site=enrolment.site, url=url,
        enrolled_at=datetime.now(UTC).isoformat()))
    click.echo(f"enrolled as {enrolment.device_id} ({enrolment.name!r}, site {enrolment.site}) at {url}; "
               f"token written to {token_path} (mode 0600)")
    if state.conflict:
        click.echo("the earlier sequence conflict is cleared: the door pushes its events again")
    if s.role != "door" or check_url(s.central.url or url) != url:
        click.echo(f"note: set `role: door` and `central: {{url: {url}}}` in the config before `kiosk run`")
    if s.site.device_id != enrolment.device_id:
        click.echo(f"note: the central knows this door as {enrolment.device_id}; site.device_id is "
                   f"{s.site.device_id} (local records carry that one)")


@central.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of lines of text.")
@with_context
def central_status(ctx: Context, as_json: bool) -> None:
    """Show the door's enrolment, how far its events are pushed and its gallery version."""
    from kiosk import store
    from kiosk.door_status import read_status_file
    from kiosk.door_sync import CONFLICT_HELP, read_token

    s = ctx.settings
    state = store.read_sync_state(s.database.path)
    info: dict[str, Any] = {"role": s.role, "url": s.central.url or None, "token_file": str(s.token_path),
                            "enrolled": read_token(s.token_path) is not None, "device_id": state.device_id,
                            "name": state.name, "site": state.site, "pushed_seq": state.pushed_seq,
                            "gallery_version": state.gallery_version, "backlog": None, "service": None,
                            "seq_conflict": state.conflict, "action": CONFLICT_HELP if state.conflict else None}
    if Path(s.database.path).exists():
        with store.open_database(s.database.path, busy_timeout_ms=s.database.busy_timeout_ms, create=False) as db:
            info["backlog"] = store.event_backlog(db, state.pushed_seq)[0]
    try:
        status, _ = read_status_file(s.status_path)
    except (OSError, ValueError):
        status = None
    if status is not None and status.central is not None:
        c = status.central
        info["service"] = {"state": status.state, "online": c.online, "revoked": c.revoked, "error": c.error,
                           "last_push_at": c.last_push_at and c.last_push_at.isoformat(),
                           "updated_at": status.updated_at and status.updated_at.isoformat()}
    if as_json:
        click.echo(json.dumps(info))
        return
    if not info["enrolled"]:
        click.echo(f"not enrolled: no token in {s.token_path} (run `kiosk central enrol URL CODE`)")
    else:
        click.echo(f"enrolled as {state.device_id or '?'} ({state.name or '?'}, site {state.site or '?'}) "
                   f"at {state.url or s.central.url}")
    backlog = "unknown (no database yet)" if info["backlog"] is None else info["backlog"]
    click.echo(f"pushed up to event {state.pushed_seq}; waiting: {backlog}; gallery version {state.gallery_version}")
    if state.conflict:
        click.echo(f"PUSHING STOPPED (409 seq_conflict): {CONFLICT_HELP}\n  {state.conflict}")
    service = info["service"]
    if service is None:
        click.echo("door service: no status with a central part (not running as role door?)")
    else:
        link = "revoked" if service["revoked"] else {True: "online", False: "offline", None: "not tried"}[
            service["online"]]
        click.echo(f"door service ({service['state']}, {service['updated_at']}): central {link}, last push "
                   f"{service['last_push_at'] or 'never'}" + (f"; {service['error']}" if service["error"] else ""))


@central.command("join")
@click.argument("url")
@click.argument("code")
@click.option("--force", is_flag=True, help="Replace a token this kiosk already has for another central.")
@with_context
def central_join(ctx: Context, url: str, code: str, force: bool) -> None:
    """Join the central at URL with CODE, uploading this kiosk's people, templates, events, leave and audit once."""
    from kiosk.central_client import check_url
    from kiosk.central_join import join

    s = ctx.settings
    if not Path(s.database.path).exists():
        fail(f"no database at {s.database.path}: nothing to join with")
    r = join(s, url, code, force=force, batch=s.central.batch)
    if r.already:
        click.echo(f"this kiosk has joined {url} as {r.device_id} already: nothing to upload")
        return
    click.echo(f"{'resumed: ' if r.resumed else ''}joined as {r.device_id}: people {r.created} created, "
               f"{r.matched} matched; leave {r.leave_stored} stored, {r.leave_repeated} repeated; audit "
               f"{r.audit_stored} stored, {r.audit_repeated} repeated; events {r.events_stored} stored, "
               f"{r.events_repeated} repeated (pushed up to {r.pushed_seq}); gallery version {r.gallery_version}")
    if r.renumbered:
        click.echo(f"renumbered: {_count(r.renumbered, 'local person', 'local people')} moved to the central's ids")
    else:
        click.echo("renumbered: no local person moved by this run (their ids are the central's already)")
    if r.local_only:
        many = r.local_only > 1
        click.echo(f"local only: {_count(r.local_only, 'person', 'people')} erased here moved to "
                   f"{'negative ids' if many else 'a negative id'} (not sent; no central person has "
                   f"{'them' if many else 'it'})")
    else:
        click.echo("local only: no erased person moved by this run")
    for line in r.conflicts:
        click.echo(f"conflict: {line}")
    if s.role != "door":
        click.echo(f"next: set `role: door` and `central: {{url: {check_url(url)}}}` in the config, then restart")


def _count(n: int, one: str, many: str) -> str:
    """'1 local person', '2 local people' (one and many: the words after the number)."""
    return f"{n} {one if n == 1 else many}"
