"""The Users page: list and add web accounts; enable, disable, re-role, reset or delete another
one (/admin/users/...). The rules (not one's own account, never the last active admin) are
kiosk.web.accounts'; the signed-in admin changes their own password on the Account page. On a
central server, a manager can be limited to sites (comma-separated; empty: every site)."""

from __future__ import annotations

import logging

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


@bp.route("/users/<username>/active", methods=["POST"])
@admin_only
def user_active(username: str) -> ResponseReturnValue:
    """Enable or disable an account (never the last active admin: the store refuses)."""
    _account_or_404(username)
    active = request.form.get("active") == "1"
    accounts.set_account_active(ctx().db, username, active, actor=actor(), me=_me())
    flash(f"Account {username} {'enabled' if active else 'disabled'}.")
    return _back()


@bp.route("/users/<username>/password", methods=["POST"])
@admin_only
def user_password(username: str) -> ResponseReturnValue:
    """Set a new password for an account (e.g. a forgotten one); its sessions end."""
    _account_or_404(username)
    accounts.set_account_password(ctx().db, username, request.form.get("password", "")[:2048],
                                  actor=actor(), me=_me())
    flash(f"New password set for {username}; they are signed out everywhere.")
    return _back()


@bp.route("/users/<username>/role", methods=["POST"])
@admin_only
def user_role(username: str) -> ResponseReturnValue:
    """Make an account admin or manager (never the last active admin a manager); its sessions end."""
    _account_or_404(username)
    role = request.form.get("role", "")
    accounts.set_account_role(ctx().db, username, role, actor=actor(), me=_me())
    flash(f"{username} is now {role}; they are signed out everywhere.")
    return _back()


@bp.route("/users/<username>/remove", methods=["POST"])
@admin_only
def user_remove(username: str) -> ResponseReturnValue:
    """Delete an account (type its username to confirm; never the last active admin)."""
    _account_or_404(username)
    accounts.remove_account(ctx().db, username, actor=actor(), me=_me(),
                            typed=request.form.get("confirm", ""))
    flash(f"Account {username} deleted.")
    return _back()


@bp.route("/users/<username>/sites", methods=["POST"])
@admin_only
def user_sites(username: str) -> ResponseReturnValue:
    """Limit a manager to sites (comma-separated; empty: every site); a central server's only."""
    c = ctx()
    if c.settings.role != "central":
        abort(404)
    _account_or_404(username)
    sites = [x for x in request.form.get("sites", "")[:10_000].split(",") if x.strip()]
    user = set_user_sites(c.db, username, sites, actor=actor())
    flash(f"{username} sees {'only ' + ', '.join(user.sites) if user.sites else 'every site'}.")
    return _back()
