"""The Users page: list and add web accounts; enable, disable, re-role, reset or delete another
one (/admin/users/...). The rules (not one's own account, never the last active admin) are
kiosk.web.accounts'; the signed-in admin changes their own password on the Account page. On a
central server, a manager can be limited to sites (comma-separated; empty: every site)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from kiosk.errors import KioskError
from kiosk.store import UserInfo, get_user, list_users, set_user_sites
from kiosk.vocabulary import Role
from kiosk.web import accounts, auth
from kiosk.web.context import actor, admin_only, ctx, current_user

logger = logging.getLogger(__name__)

bp = Blueprint("users", __name__)

ROLE_HINTS: dict[str, str] = {Role.MANAGER: "reports only", Role.ADMIN: "enrolment, deletion, settings"}
"""What each Role may do, for the add-account form."""
NEW_ACCOUNT_ROLE = Role.MANAGER
"""The role a new account gets unless the form names another (the fewest rights)."""


def _me() -> str | None:
    """The signed-in admin's username."""
    user = current_user()
    return user.username if user is not None else None


def _account_or_404(username: str) -> UserInfo:
    """The web account with this username; aborts with 404 when there is none."""
    user = get_user(ctx().db, username)
    if user is None:
        abort(404)
    return user


def _back() -> ResponseReturnValue:
    return redirect(url_for(".users"))


@bp.route("/users", methods=["GET", "POST"])
@admin_only
def users() -> ResponseReturnValue:
    """Web accounts: list, add."""
    c = ctx()
    if request.method == "POST":
        username = request.form.get("username", "")
        password = request.form.get("password", "")
        role = request.form.get("role", NEW_ACCOUNT_ROLE)
        try:
            auth.create_user(c.db, username, password, role, actor=actor())
        except KioskError as exc:
            flash(str(exc), "error")
        else:
            flash(f"Account {username.strip()} ({role}) created.")
        return _back()
    return render_template("users.html", users=list_users(c.db), roles=ROLE_HINTS,
                           new_role=NEW_ACCOUNT_ROLE, with_sites=c.settings.role == "central")


def _account_change(rule: str) -> Callable[[Callable[[str], str]], Callable[[str], ResponseReturnValue]]:
    """Register change as the admins' POST /users/<username>/<rule>: 404 for an unknown account,
    else change(username) runs and the line it returns is flashed on the Users page."""

    def register(change: Callable[[str], str]) -> Callable[[str], ResponseReturnValue]:
        @functools.wraps(change)
        def view(username: str) -> ResponseReturnValue:
            _account_or_404(username)
            flash(change(username))
            return _back()

        return bp.route(f"/users/<username>/{rule}", methods=["POST"])(admin_only(view))

    return register


@_account_change("active")
def user_active(username: str) -> str:
    """Enable or disable an account (never the last active admin: the store refuses)."""
    active = request.form.get("active") == "1"
    accounts.set_account_active(ctx().db, username, active, actor=actor(), me=_me())
    return f"Account {username} {'enabled' if active else 'disabled'}."


@_account_change("password")
def user_password(username: str) -> str:
    """Set a new password for an account (e.g. a forgotten one); its sessions end."""
    accounts.set_account_password(ctx().db, username, request.form.get("password", "")[:2048],
                                  actor=actor(), me=_me())
    return f"New password set for {username}; they are signed out everywhere."


@_account_change("role")
def user_role(username: str) -> str:
    """Make an account admin or manager (never the last active admin a manager); its sessions end."""
    role = request.form.get("role", "")
    accounts.set_account_role(ctx().db, username, role, actor=actor(), me=_me())
    return f"{username} is now {role}; they are signed out everywhere."


@_account_change("remove")
def user_remove(username: str) -> str:
    """Delete an account (type its username to confirm; never the last active admin)."""
    accounts.remove_account(ctx().db, username, actor=actor(), me=_me(),
                            typed=request.form.get("confirm", ""))
    return f"Account {username} deleted."


@_account_change("sites")
def user_sites(username: str) -> str:
    """Limit a manager to sites (comma-separated; empty: every site); a central server's only."""
    c = ctx()
    if c.settings.role != "central":
        abort(404)
    sites = [x for x in request.form.get("sites", "")[:10_000].split(",") if x.strip()]
    user = set_user_sites(c.db, username, sites, actor=actor())
    return f"{username} sees {'only ' + ', '.join(user.sites) if user.sites else 'every site'}."
