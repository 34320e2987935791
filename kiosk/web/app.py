"""The manager/admin web app: the Flask factory wiring settings, database, blueprints, the
per-request guard (sign-in, roles, CSRF), security headers and error pages; `kiosk serve`.

Security model:
- Every view needs a signed-in user unless marked @public; @admin_only views refuse managers
  (403). The check runs before any view code, for every method (default deny); every /admin/
  route also sits under the admins-only parent blueprint (admin_pages).
- Sessions are held on the server (table web_sessions, store.start_session): Flask's signed
  cookie (HttpOnly, SameSite=Lax, Secure when web.secure_cookies) carries only a random
  session token and the CSRF token. Logout deletes the session, so a copied cookie stops
  working; a password or role change, a disabled or deleted account ends all of the user's
  sessions; a session lasts at most web.session_hours; sessions survive a restart (signin).
- After login, `next` is followed only when it is a same-site path (security.safe_next_path).
- Every POST must carry the session's CSRF token (hidden field csrf_token).
- Wrong passwords (sign-in and the password-change form) are throttled per account and per
  client address with a growing wait (auth.LoginLimiter; web.login_attempts,
  web.login_address_attempts, web.login_window_s). The client address is the peer's, or the
  X-Forwarded-For hop named by a proxy in web.trusted_proxies (auth.client_address).
- The doors' API (/api/v1/door/..., role central only) authenticates by bearer token in its own
  blueprint (web/door_api.py), so the sign-in and CSRF checks skip it.
- Requests that match no route, or use a method the route does not take, get 404 / 405 before
  any CSRF check; ids in URLs are bounded to 64-bit (a larger one is a 404, not a crash).
- CSV downloads are UTF-8 without a BOM; add ?excel=1 to any CSV link for a UTF-8 BOM, so that
  Excel shows names like "Zoë" correctly (downloads).
- Pages send a strict Content-Security-Policy (no scripts, no external anything) and
  Cache-Control: no-store (they show personal data).
- Uploads stay in memory (never spooled to a temp file), bounded by MAX_CONTENT_LENGTH.
"""

from __future__ import annotations

import ctypes
import logging
import os
import secrets
import time
from datetime import timedelta
from typing import Any

from flask import Flask, Response, abort, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from kiosk import __version__
from kiosk.clock import Clock, SystemClock
from kiosk.config import Settings
from kiosk.errors import KioskError
from kiosk.store import Database, open_from_settings
from kiosk.vision.faces import FaceAnalyzer
from kiosk.vocabulary import PERSON_EVENT_KINDS, CaptureStatus, LeaveKind, Role
from kiosk.web import auth, signin
from kiosk.web.context import PUBLIC, WebContext, ctx, current_user, is_admin, required_role
from kiosk.web.downloads import add_excel_bom, excel_url
from kiosk.web.security import (
    UNSAFE_METHODS,
    IdConverter,
    KioskRequest,
    csrf_field,
    csrf_ok,
    csrf_token,
    security_headers,
)

logger = logging.getLogger(__name__)


def _secret_key(settings: Settings) -> bytes:
    """The cookie signing key from web.secret_key_file (created with mode 0600 if missing)."""
    path = settings.secret_key_path
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


MALLOC_ARENAS = 2  # glibc heaps the web app's worker threads share (glibc's default: 8 per core)
_M_ARENA_MAX = -8  # mallopt parameter number in glibc's malloc.h


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Let the request threads share `arenas` glibc heaps instead of one each, before they start: a
    thread that decodes an enrolment photo in a heap of its own kept about 5 MB more at the peak (the
    bounded-memory enrolment test measured 293.7 MB every time with 2, 294-299 MB without). True when
    set (glibc); elsewhere nothing happens."""
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False


def create_app(
    settings: Settings,
    db: Database | None = None,
    *,
    clock: Clock | None = None,
    analyzer: FaceAnalyzer | None = None,
    secret_key: str | bytes | None = None,
) -> Flask:
    """The web app on settings' database (opened here when db is None; closed with the app)."""
    limit_malloc_arenas()
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
    # also inside imported macros; the vocabulary, so that templates compare with no spelled-out words
    app.jinja_env.globals.update(excel_url=excel_url, Role=Role, CaptureStatus=CaptureStatus,
                                 LeaveKind=LeaveKind, PERSON_EVENT_KINDS=PERSON_EVENT_KINDS)
    app.extensions["kiosk"] = WebContext(
        settings=settings, db=database, clock=clock or SystemClock(),
        limiter=auth.LoginLimiter(web.login_attempts, web.login_address_attempts, web.login_window_s),
        analyzer=analyzer, owns_db=owns_db,
    )
    _register_views(app)
    if settings.role == "central":  # the doors' JSON API (docs/central.md); absent (404) otherwise
        from kiosk.web.door_api import bp as door_api_bp

        app.register_blueprint(door_api_bp)
    _add_request_hooks(app, settings)
    _add_error_pages(app, settings)
    return app


def _register_views(app: Flask) -> None:
    """The reports pages (/), the admin area (/admin/...) and sign-in (/login, /logout, /account)."""
    from kiosk.web.admin_pages import bp as admin_bp
    from kiosk.web.views import bp as reports_bp

    app.register_blueprint(reports_bp)
    app.register_blueprint(admin_bp)
    signin.register(app)


def _add_request_hooks(app: Flask, settings: Settings) -> None:
    """Template globals, the guard before every request and the headers after it."""

    @app.context_processor
    def _globals() -> dict[str, object]:
        return {"csrf_token": csrf_token, "user": current_user(), "site": settings.site.name,
                "version": __version__, "settings": settings, "csrf_field": csrf_field}

    trusted_proxies = auth.parse_networks(settings.web.trusted_proxies)

    @app.before_request
    def _guard() -> ResponseReturnValue | None:
        g.client = auth.client_address(request.remote_addr or "", request.headers.get("X-Forwarded-For"),
                                       trusted_proxies)
        if request.endpoint != "static" and ctx().db.moved():
            # Changes would go to the old, unlinked file and vanish at the next start.
            logger.error("the database file %s was deleted or replaced under the web app", ctx().db.path)
            return Response(render_template(
                "error.html", title="Restart needed",
                message="The database file was replaced or deleted while the web app ran; nothing is read or "
                        "written until it restarts (systemctl restart kiosk-web)."), 503)
        signin.load_user()
        if request.endpoint == "static" or request.routing_exception is not None:
            return None  # no view runs: Flask answers 404 / 405
        if request.blueprint == "door_api":
            return None  # bearer tokens, no cookies or CSRF: kiosk.web.door_api checks every request
        view = app.view_functions.get(request.endpoint or "")
        role = required_role(view)
        if role != PUBLIC:
            user = current_user()
            if user is None:
                if request.method in UNSAFE_METHODS:
                    abort(401)
                return redirect(url_for("login", next=request.full_path.rstrip("?")))
            if role == Role.ADMIN and not is_admin(user):
                logger.warning("user %s refused admin page %s", user.username, request.path)
                abort(403)
        if request.method in UNSAFE_METHODS and not csrf_ok():
            logger.warning("CSRF check failed for %s %s", request.method, request.path)
            return Response(render_template(
                "error.html", title="Form expired",
                message="This form was not sent from this app or has expired. "
                        "Go back, reload the page and try again."), 400)
        return None

    @app.after_request
    def _headers(response: Response) -> Response:
        security_headers(response, static=request.endpoint == "static")
        if response.mimetype == "text/csv" and request.args.get("excel") == "1":
            add_excel_bom(response)
        return response


def _add_error_pages(app: Flask, settings: Settings) -> None:
    """Error pages: refused actions (KioskError, 400), too large uploads (413), HTTP errors."""
    web = settings.web

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
