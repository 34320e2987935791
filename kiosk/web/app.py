"""The manager/admin web app: Flask factory, login, sessions, CSRF, roles, security headers.

Security model:
- Every view needs a signed-in user unless marked @public; @admin_only views refuse managers
  (403). The check runs before any view code, for every method (default deny).
- Sessions are Flask's signed cookies (HttpOnly, SameSite=Lax, Secure when web.secure_cookies)
  holding the user id, a fingerprint of the password hash (a password change or a disabled
  account ends every session) and the login time (absolute limit web.session_hours).
- Every POST must carry the session's CSRF token (hidden field csrf_token).
- Failed logins are rate limited per client address and per username (web.login_attempts
  within web.login_window_s).
- Pages send a strict Content-Security-Policy (no scripts, no external anything) and
  Cache-Control: no-store (they show personal data).
- Uploads stay in memory (never spooled to a temp file), bounded by MAX_CONTENT_LENGTH.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from flask import (
    Flask,
    Request,
    Response,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from markupsafe import Markup
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from kiosk import __version__
from kiosk.clock import Clock, SystemClock
from kiosk.config import Settings
from kiosk.errors import KioskError
from kiosk.store import Database, get_user, open_from_settings
from kiosk.store.repo import get_user_by_id, set_user_password
from kiosk.vision.faces import FaceAnalyzer
from kiosk.web import auth
from kiosk.web.context import WebContext, actor, ctx, current_user, public, required_role

logger = logging.getLogger(__name__)

CSRF_FIELD = "csrf_token"
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")


class KioskRequest(Request):
    """Request whose uploaded files stay in memory (photos must never land in /tmp)."""

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None,
                         content_length: int | None = None) -> IO[bytes]:
        return io.BytesIO()


def _secret_key(settings: Settings) -> bytes:
    """The cookie signing key from web.secret_key_file (created with mode 0600 if missing)."""
    path = settings.web.secret_key_file or (
        Path(settings.database.path).resolve().parent / "web_secret.key")
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
            logger.info("created web session key %s", path)
        except FileExistsError:
            pass
    key = path.read_text().strip()
    if len(key) < 32:
        raise KioskError(f"web secret key file {path} is too short (delete it to make a new one)")
    return key.encode()


def csrf_token() -> str:
    """This session's CSRF token (created on first use)."""
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return str(token)


def _csrf_ok() -> bool:
    sent = request.form.get(CSRF_FIELD, "")
    expected = session.get("csrf", "")
    return bool(sent) and bool(expected) and secrets.compare_digest(str(sent), str(expected))


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("reports.board")


def _load_user() -> None:
    g.user = None
    uid = session.get("uid")
    if uid is None:
        return
    c = ctx()
    user = get_user_by_id(c.db, int(uid))
    too_old = time.time() - float(session.get("t", 0)) > c.settings.web.session_hours * 3600
    if (user is None or not user.active or too_old
            or session.get("fp") != auth.session_fingerprint(user)):
        session.pop("uid", None)
        session.pop("fp", None)
        return
    g.user = user


def create_app(
    settings: Settings,
    db: Database | None = None,
    *,
    clock: Clock | None = None,
    analyzer: FaceAnalyzer | None = None,
    secret_key: str | bytes | None = None,
) -> Flask:
    """The web app on settings' database (opened here when db is None; closed with the app)."""
    app = Flask(__name__)
    app.request_class = KioskRequest
    web = settings.web
    owns_db = db is None
    database = open_from_settings(settings) if db is None else db
    app.config.update(
        SECRET_KEY=secret_key or _secret_key(settings),
        SESSION_COOKIE_NAME="kiosk_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=web.secure_cookies,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=web.session_hours),
        MAX_CONTENT_LENGTH=int(web.max_photos * web.max_photo_mb * 1024 * 1024) + (1 << 20),
        MAX_FORM_MEMORY_SIZE=1 << 20,
        TEMPLATES_AUTO_RELOAD=False,
    )
    app.jinja_env.autoescape = True
    app.extensions["kiosk"] = WebContext(
        settings=settings, db=database, clock=clock or SystemClock(),
        limiter=auth.LoginLimiter(web.login_attempts, web.login_window_s),
        analyzer=analyzer, owns_db=owns_db,
    )

    from kiosk.web.admin import bp as admin_bp
    from kiosk.web.views import bp as reports_bp

    app.register_blueprint(reports_bp)
    app.register_blueprint(admin_bp)
    app.add_url_rule("/login", "login", login, methods=["GET", "POST"])
    app.add_url_rule("/logout", "logout", logout, methods=["POST"])
    app.add_url_rule("/account", "account", account, methods=["GET", "POST"])

    @app.context_processor
    def _globals() -> dict[str, Any]:
        return {"csrf_token": csrf_token, "user": current_user(), "site": settings.site.name,
                "version": __version__, "settings": settings,
                "csrf_field": lambda: Markup('<input type="hidden" name="csrf_token" value="{}">'
                                            ).format(csrf_token())}

    @app.before_request
    def _guard() -> Response | None:
        _load_user()
        if request.endpoint == "static":
            return None
        view = app.view_functions.get(request.endpoint or "")
        role = required_role(view)
        if role != "public":
            user = current_user()
            if user is None:
                if request.method in UNSAFE_METHODS:
                    abort(401)
                return redirect(url_for("login", next=request.full_path.rstrip("?")))
            if role == "admin" and user.role != "admin":
                logger.warning("user %s refused admin page %s", user.username, request.path)
                abort(403)
        if request.method in UNSAFE_METHODS and not _csrf_ok():
            logger.warning("CSRF check failed for %s %s", request.method, request.path)
            return Response(render_template(
                "error.html", title="Form expired",
                message="This form was not sent from this app or has expired. "
                        "Go back, reload the page and try again."), 400)
        return None

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        if request.endpoint != "static":
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(KioskError)
    def _kiosk_error(exc: KioskError) -> tuple[str, int]:
        return render_template("error.html", title="Not possible", message=str(exc)), 400

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge) -> tuple[str, int]:
        limit = app.config["MAX_CONTENT_LENGTH"] / 1e6
        msg = (f"The upload is too large: at most {web.max_photos} photos of "
               f"{web.max_photo_mb:g} MB each ({limit:.0f} MB in all).")
        return render_template("error.html", title="Upload too large", message=msg), 413

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[str, int]:
        titles = {401: "Please sign in", 403: "Admins only", 404: "Not found"}
        messages = {401: "Sign in first.", 403: "This page is for admins; ask an admin.",
                    404: "There is no such page or person."}
        code = exc.code or 500
        return render_template("error.html", title=titles.get(code, exc.name),
                               message=messages.get(code, exc.description)), code

    return app


@public
def login() -> Any:
    """Sign-in form and check (rate limited)."""
    c = ctx()
    error = None
    status = 200
    if request.method == "POST":
        username = request.form.get("username", "").strip()[:100]
        password = request.form.get("password", "")[:1024]
        keys = (f"ip:{request.remote_addr}", f"user:{username.lower()}")
        wait = c.limiter.blocked_for(*keys)
        if wait > 0:
            error = (f"Too many failed sign-ins. Try again in {int(wait // 60) + 1} "
                     "minute(s).")
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
                token = secrets.token_urlsafe(32)
                session.clear()
                session.permanent = True
                session.update(uid=user.id, fp=auth.session_fingerprint(user), t=time.time(),
                               csrf=token)
                logger.info("user %s signed in from %s", user.username, request.remote_addr)
                from kiosk.store import audit

                audit(c.db, f"web:{user.username}", "user.login", f"user:{user.username}",
                      {"address": request.remote_addr})
                return redirect(_safe_next(request.args.get("next")))
            c.limiter.failed(*keys)
            logger.warning("failed sign-in for %r from %s", username, request.remote_addr)
            error = "Wrong username or password."
            status = 401
    return render_template("login.html", error=error,
                           next=request.args.get("next", "")), status


def logout() -> Any:
    """End the session."""
    session.clear()
    flash("Signed out.")
    return redirect(url_for("login"))


def account() -> Any:
    """Change one's own password."""
    c = ctx()
    user = current_user()
    assert user is not None
    if request.method == "POST":
        old = request.form.get("old_password", "")
        new = request.form.get("new_password", "")
        if not auth.verify_password(old, user.password_hash):
            flash("The current password is wrong.", "error")
        elif new != request.form.get("new_password2", ""):
            flash("The new passwords differ.", "error")
        else:
            auth.check_new_password(new)
            updated = set_user_password(c.db, user.username, auth.hash_password(new),
                                        actor=actor())
            session["fp"] = auth.session_fingerprint(updated)
            flash("Password changed.")
            return redirect(url_for("account"))
    return render_template("account.html")


def serve(settings: Settings) -> None:
    """Run the web app with waitress on web.host:web.port until stopped (`kiosk serve`).

    Daily jobs run at start and then every 24 hours: the retention purge (web.daily_purge) and
    the off-site copy (database.offsite_dir).
    """
    import threading

    import waitress

    from kiosk.web.admin import run_daily_copy, run_purge

    app = create_app(settings)
    c: WebContext = app.extensions["kiosk"]
    jobs: list[tuple[str, Callable[[], object]]] = []
    if settings.web.daily_purge:
        jobs.append(("retention purge", lambda: run_purge(c, "system:daily-purge")))
    if settings.database.offsite_dir is not None:
        jobs.append(("off-site copy", lambda: run_daily_copy(c, "system:daily-backup")))
    if jobs:
        stop = threading.Event()

        def _daily_loop() -> None:
            while not stop.is_set():
                for name, job in jobs:
                    try:
                        job()
                    except Exception:  # keep serving; the next day tries again
                        logger.exception("daily %s failed", name)
                stop.wait(24 * 3600)

        threading.Thread(target=_daily_loop, name="daily-jobs", daemon=True).start()
    logger.info("web app on http://%s:%d/", settings.web.host, settings.web.port)
    try:
        waitress.serve(app, host=settings.web.host, port=settings.web.port,
                       threads=settings.web.threads, ident="kiosk")
    finally:
        c.db.close()
