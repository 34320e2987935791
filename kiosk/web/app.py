"""The manager/admin web app: Flask factory, login, sessions, CSRF, roles, security headers.

Security model:
- Every view needs a signed-in user unless marked @public; @admin_only views refuse managers
  (403). The check runs before any view code, for every method (default deny).
- Sessions are held on the server (table web_sessions, store.start_session): Flask's signed
  cookie (HttpOnly, SameSite=Lax, Secure when web.secure_cookies) carries only a random
  session token and the CSRF token. Logout deletes the session, so a copied cookie stops
  working; a password or role change, a disabled or deleted account ends all of the user's
  sessions; a session lasts at most web.session_hours; sessions survive a restart.
- After login, `next` is followed only when it is a same-site path (safe_next_path).
- Every POST must carry the session's CSRF token (hidden field csrf_token).
- Wrong passwords (sign-in and the password-change form) are throttled per account and per
  client address with a growing wait (auth.LoginLimiter; web.login_attempts,
  web.login_address_attempts, web.login_window_s). The client address is the peer's, or the
  X-Forwarded-For hop named by a proxy in web.trusted_proxies (auth.client_address).
- Requests that match no route, or use a method the route does not take, get 404 / 405 before
  any CSRF check; ids in URLs are bounded to 64-bit (a larger one is a 404, not a crash).
- CSV downloads are UTF-8 without a BOM; add ?excel=1 to any CSV link for a UTF-8 BOM, so that
  Excel shows names like "Zoë" correctly.
- Pages send a strict Content-Security-Policy (no scripts, no external anything) and
  Cache-Control: no-store (they show personal data).
- Uploads stay in memory (never spooled to a temp file), bounded by MAX_CONTENT_LENGTH.
"""

from __future__ import annotations

import io
import itertools
import logging
import os
import secrets
import time
import unicodedata
from datetime import timedelta
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

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
from werkzeug.routing import IntegerConverter

from kiosk import __version__
from kiosk.clock import Clock, SystemClock
from kiosk.config import Settings
from kiosk.errors import KioskError
from kiosk.store import (
    Database,
    end_session,
    get_user,
    open_from_settings,
    session_user,
    set_user_password,
    start_session,
)
from kiosk.vision.faces import FaceAnalyzer
from kiosk.web import auth
from kiosk.web.context import WebContext, actor, ctx, current_user, public, required_role

logger = logging.getLogger(__name__)

CSRF_FIELD = "csrf_token"
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")


UTF8_BOM = b"\xef\xbb\xbf"
MAX_ID = 2**63 - 1  # SQLite INTEGER


class IdConverter(IntegerConverter):
    """<int:...> in URLs, at most MAX_ID: a larger number matches no route (404, not a crash)."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def excel_url(csv_url: str) -> str:
    """The same CSV link with ?excel=1 (a UTF-8 BOM in front, for Excel)."""
    return f"{csv_url}{'&' if '?' in csv_url else '?'}excel=1"


def _excel_bom(response: Response) -> None:
    """Prefix a CSV response with a UTF-8 BOM (for ?excel=1)."""
    if response.is_streamed:
        body = response.response
        response.response = itertools.chain([UTF8_BOM], body)
    else:
        response.set_data(UTF8_BOM + response.get_data())


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
    try:
        key = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:  # a folder, unreadable, or binary junk (a damaged card)
        raise KioskError(f"cannot read the web secret key file {path} ({exc}); "
                         "delete it to make a new one (everyone signs in again)") from None
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


def safe_next_path(target: str | None) -> str | None:
    """target when it is a path on this site ("/..."), else None.

    Refused: any control or format character (tab, newline, NUL, DEL, zero-width: browsers drop
    some of them, turning "/\t/evil" into "//evil"), surrounding whitespace, a backslash
    anywhere, "//" at the start, and anything with a scheme or host when parsed.
    """
    if not target or target != target.strip():
        return None
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in target):
        return None
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def _safe_next(target: str | None) -> str:
    """Where to go after login: target when safe_next_path accepts it, else the board."""
    return safe_next_path(target) or url_for("reports.board")


def _session_age() -> timedelta:
    return timedelta(hours=ctx().settings.web.session_hours)


def _load_user() -> None:
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
    app.url_map.converters["int"] = IdConverter  # before any route is added
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
    app.jinja_env.globals["excel_url"] = excel_url  # also inside imported macros
    app.extensions["kiosk"] = WebContext(
        settings=settings, db=database, clock=clock or SystemClock(),
        limiter=auth.LoginLimiter(web.login_attempts, web.login_address_attempts, web.login_window_s),
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

    trusted_proxies = auth.parse_networks(web.trusted_proxies)

    @app.before_request
    def _guard() -> Response | None:
        g.client = auth.client_address(request.remote_addr or "", request.headers.get("X-Forwarded-For"),
                                       trusted_proxies)
        if request.endpoint != "static" and ctx().db.moved():
            # Changes would go to the old, unlinked file and vanish at the next start.
            logger.error("the database file %s was deleted or replaced under the web app", ctx().db.path)
            return Response(render_template(
                "error.html", title="Restart needed",
                message="The database file was replaced or deleted while the web app ran; nothing is read or "
                        "written until it restarts (systemctl restart kiosk-web)."), 503)
        _load_user()
        if request.endpoint == "static" or request.routing_exception is not None:
            return None  # no view runs: Flask answers 404 / 405
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
        if response.mimetype == "text/csv" and request.args.get("excel") == "1":
            _excel_bom(response)
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
                from kiosk.store import audit

                audit(c.db, f"web:{user.username}", "user.login", f"user:{user.username}",
                      {"address": client()})
                return redirect(_safe_next(request.args.get("next")))
            c.limiter.failed(*keys)
            logger.warning("failed sign-in for %r from %s", username, client())
            error = "Wrong username or password."
            status = 401
    return render_template("login.html", error=error,
                           next=request.args.get("next", "")), status


def logout() -> Any:
    """End the session on the server too (a copy of the cookie stops working)."""
    token = session.get("sid")
    if isinstance(token, str):
        end_session(ctx().db, token)
    session.clear()
    flash("Signed out.")
    return redirect(url_for("login"))


def client() -> str:
    """The client's address for this request (see auth.client_address)."""
    return str(g.get("client") or request.remote_addr or "")


def _try_again(wait_s: float) -> str:
    """ "Try again in N seconds/minutes." for a throttled password check."""
    if wait_s < 60:
        return f"Try again in {int(wait_s) + 1} second(s)."
    return f"Try again in {int(wait_s // 60) + 1} minute(s)."


def account() -> Any:
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


def serve(settings: Settings) -> None:
    """Run the web app with waitress on web.host:web.port until stopped (`kiosk serve`).

    Daily jobs run at start and then every 24 hours: the retention purge (web.daily_purge) and
    the off-site copy (database.offsite_dir).
    """

    import waitress

    from kiosk.maintenance import start_daily_jobs

    app = create_app(settings)
    c: WebContext = app.extensions["kiosk"]
    try:  # before the daily jobs: a second `kiosk serve` must not purge or copy
        server = waitress.create_server(app, host=settings.web.host, port=settings.web.port,
                                        threads=settings.web.threads, ident="kiosk")
    except OSError as exc:  # port taken (another `kiosk serve`?), or an address this machine lacks
        c.db.close()
        raise KioskError(f"the web app cannot listen on {settings.web.host}:{settings.web.port} "
                         f"({exc.strerror or exc}): is another `kiosk serve` running? Stop it or "
                         "change web.port / web.host") from None
    start_daily_jobs(c)
    logger.info("web app on http://%s:%d/", settings.web.host, settings.web.port)
    try:
        _run_until_stopped(server)
    finally:
        c.db.close()


DRAIN_S = 20.0  # after SIGTERM, requests in flight get this long to finish (systemd waits 90 s)


def _run_until_stopped(server: Any, drain_s: float = DRAIN_S) -> None:
    """Serve until SIGTERM or SIGINT; then stop accepting, finish the requests in flight, return.

    waitress alone dies on SIGTERM mid-response (exit status -15); this loop is waitress's
    own (one poll at a time), checking a stop flag the signal handler sets.
    """
    import signal
    import threading

    from waitress import wasyncore

    stop = threading.Event()

    def _on_signal(signum: int, _frame: Any) -> None:
        logger.info("signal %d: finishing the requests in flight, then stopping", signum)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _on_signal)
    adj = server.adj
    while not stop.is_set():
        wasyncore.loop(timeout=adj.asyncore_loop_timeout, map=server._map,
                       use_poll=adj.asyncore_use_poll, count=1)
    wasyncore.dispatcher.close(server)  # the listening socket: no new connections
    deadline = time.monotonic() + drain_s
    while _busy_channels(server) and time.monotonic() < deadline:
        wasyncore.loop(timeout=0.1, map=server._map, use_poll=adj.asyncore_use_poll, count=1)
    server.task_dispatcher.shutdown(timeout=max(0.0, deadline - time.monotonic()) + 1)
    wasyncore.close_all(server._map)
    logger.info("web app stopped")


def _busy_channels(server: Any) -> int:
    """Connections with a request half received, queued, running or a response not yet sent;
    idle keep-alive connections are closed here."""
    from waitress.channel import HTTPChannel

    busy = 0
    for channel in list(server._map.values()):
        if not isinstance(channel, HTTPChannel):
            continue
        if channel.requests or channel.request is not None or channel.total_outbufs_len:
            busy += 1
        else:
            channel.close()
    return busy
