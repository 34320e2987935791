"""Signing in and out, server-side sessions, and changing one's own password (/login, /logout,
/account; app-level endpoints "login", "logout", "account").

Sessions are held on the server (table web_sessions): the cookie carries only a random session
token and the CSRF token. Wrong passwords are throttled per account and client address
(auth.LoginLimiter); after login, `next` is followed only when it is a same-site path.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from flask import Flask, flash, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from kiosk.store import audit, end_session, get_user, session_user, set_user_password, start_session
from kiosk.web import auth
from kiosk.web.context import actor, ctx, current_user, public
from kiosk.web.security import safe_next_path

logger = logging.getLogger(__name__)


def register(app: Flask) -> None:
    """Add /login, /logout and /account to app (endpoints "login", "logout", "account")."""
    app.add_url_rule("/login", "login", login, methods=["GET", "POST"])
    app.add_url_rule("/logout", "logout", logout, methods=["POST"])
    app.add_url_rule("/account", "account", account, methods=["GET", "POST"])


def client() -> str:
    """The client's address for this request (see auth.client_address)."""
    return str(g.get("client") or request.remote_addr or "")


def _session_age() -> timedelta:
    return timedelta(hours=ctx().settings.web.session_hours)


def load_user() -> None:
    """g.user from the session token (None when there is none, or it ended or expired)."""
    g.user = None
    token = session.get("sid")
    if not isinstance(token, str):
        return
    c = ctx()
    user = session_user(c.db, token, _session_age(), now=c.clock.now())
    if user is None:
        session.pop("sid", None)
        return
    g.user = user


def _begin_session(user_id: int) -> None:
    """A fresh server-side session for the account in a fresh cookie (new CSRF token)."""
    c = ctx()
    token = start_session(c.db, user_id, _session_age(), now=c.clock.now())
    session.clear()
    session.permanent = True
    session.update(sid=token, csrf=secrets.token_urlsafe(32))


def _safe_next(target: str | None) -> str:
    """Where to go after login: target when safe_next_path accepts it, else the board."""
    return safe_next_path(target) or url_for("reports.board")


def _try_again(wait_s: float) -> str:
    """ "Try again in N seconds/minutes." for a throttled password check."""
    if wait_s < 60:
        return f"Try again in {int(wait_s) + 1} second(s)."
    return f"Try again in {int(wait_s // 60) + 1} minute(s)."


@public
def login() -> ResponseReturnValue:
    """Sign-in form and check (rate limited)."""
    c = ctx()
    error = None
    status = 200
    if request.method == "POST":
        username = request.form.get("username", "").strip()[:100]
        password = request.form.get("password", "")[:1024]
        keys = (username, client())
        wait = c.limiter.blocked_for(*keys)
        if wait > 0:
            error = f"Too many failed sign-ins. {_try_again(wait)}"
            status = 429
        else:
            user = get_user(c.db, username) if username else None
            if user is None:
                auth.burn_time(password)
                ok = False
            else:
                ok = auth.verify_password(password, user.password_hash) and user.active
            if ok and user is not None:
                c.limiter.succeeded(*keys)
                _begin_session(user.id)
                logger.info("user %s signed in from %s", user.username, client())
                audit(c.db, f"web:{user.username}", "user.login", f"user:{user.username}",
                      {"address": client()})
                return redirect(_safe_next(request.args.get("next")))
            c.limiter.failed(*keys)
            logger.warning("failed sign-in for %r from %s", username, client())
            error = "Wrong username or password."
            status = 401
    return render_template("login.html", error=error,
                           next=request.args.get("next", "")), status


def logout() -> ResponseReturnValue:
    """End the session on the server too (a copy of the cookie stops working)."""
    token = session.get("sid")
    if isinstance(token, str):
        end_session(ctx().db, token)
    session.clear()
    flash("Signed out.")
    return redirect(url_for("login"))


def account() -> ResponseReturnValue:
    """Change one's own password (the current password's check is throttled like sign-in)."""
    c = ctx()
    user = current_user()
    assert user is not None
    if request.method == "POST":
        old = request.form.get("old_password", "")[:1024]
        new = request.form.get("new_password", "")
        keys = (user.username, client())
        wait = c.limiter.blocked_for(*keys)
        if wait > 0:
            flash(f"Too many wrong passwords. {_try_again(wait)}", "error")
            return render_template("account.html"), 429
        if not auth.verify_password(old, user.password_hash):
            c.limiter.failed(*keys)
            flash("The current password is wrong.", "error")
        elif new != request.form.get("new_password2", ""):
            flash("The new passwords differ.", "error")
        else:
            auth.check_new_password(new)
            updated = set_user_password(c.db, user.username, auth.hash_password(new),
                                        actor=actor())
            _begin_session(updated.id)  # the change ended every session, this one too
            flash("Password changed.")
            return redirect(url_for("account"))
    return render_template("account.html")
