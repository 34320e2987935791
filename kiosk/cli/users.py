"""`kiosk users`: web app accounts (admins enrol and erase; managers read reports)."""

from __future__ import annotations

import logging
import sys

import click

from kiosk.cli.base import Context, with_context
from kiosk.vocabulary import Role, values

logger = logging.getLogger(__name__)

PASSWORD_STDIN = click.option("--password-stdin", is_flag=True,
                              help="Read the password from standard input (for scripts).")


@click.group()
def users() -> None:
    """Web app accounts (admins enrol and erase; managers read reports)."""


def _read_password(password_stdin: bool) -> str:
    """A new password from standard input (--password-stdin) or asked twice on the terminal."""
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    password: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@users.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(values(Role)), required=True)
@PASSWORD_STDIN
@with_context
def users_add(ctx: Context, username: str, role: str, password_stdin: bool) -> None:
    """Create a web account; asks for the password twice (at least 10 characters)."""
    from kiosk.web import create_user

    password = _read_password(password_stdin)
    with ctx.open_db() as database:
        user = create_user(database, username, password, role, actor="cli")
    click.echo(f"{user.username}: {user.role} account created")


@users.command("passwd")
@click.argument("username")
@PASSWORD_STDIN
@with_context
def users_passwd(ctx: Context, username: str, password_stdin: bool) -> None:
    """Set a new password for USERNAME; their web sessions end."""
    from kiosk.web.auth import reset_password

    password = _read_password(password_stdin)
    with ctx.open_db() as database:
        reset_password(database, username, password, actor="cli")
    click.echo(f"{username}: password changed, signed out everywhere")


@users.command("role")
@click.argument("username")
@click.argument("role", type=click.Choice(values(Role)))
@with_context
def users_role(ctx: Context, username: str, role: str) -> None:
    """Make USERNAME an admin or a manager (never the last active admin); their sessions end."""
    from kiosk.store import set_user_role

    with ctx.open_db() as database:
        set_user_role(database, username, role, actor="cli")
    click.echo(f"{username}: now {role}")


@users.command("remove")
@click.argument("username")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_context
def users_remove(ctx: Context, username: str, yes: bool) -> None:
    """Delete the account USERNAME (never the last active admin); audited."""
    from kiosk.store import remove_user

    if not yes:
        click.confirm(f"Delete the web account {username}?", abort=True)
    with ctx.open_db() as database:
        remove_user(database, username, actor="cli")
    click.echo(f"{username}: account deleted")


@users.command("list")
@with_context
def users_list(ctx: Context) -> None:
    """Web accounts with their roles."""
    from kiosk import store

    with ctx.open_db() as database:
        for user in store.list_users(database):
            click.echo(f"{user.username:<24}{user.role:<9}{'active' if user.active else 'disabled'}")
