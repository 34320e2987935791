"""Request hardening for the web app: CSRF tokens, same-site `next` paths, bounded URL ids,
in-memory uploads and the security headers every response carries."""

from __future__ import annotations

import io
import logging
import secrets
import unicodedata
from typing import IO, Any
from urllib.parse import urlsplit

from flask import Request, Response, request, session
from markupsafe import Markup
from werkzeug.routing import IntegerConverter

logger = logging.getLogger(__name__)

CSRF_FIELD = "csrf_token"
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
MAX_ID = 2**63 - 1  # SQLite INTEGER


class IdConverter(IntegerConverter):
    """<int:...> in URLs, at most MAX_ID: a larger number matches no route (404, not a crash)."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:  # werkzeug's untyped seam
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


class KioskRequest(Request):
    """Request whose uploaded files stay in memory (photos must never land in /tmp)."""

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None,
                         content_length: int | None = None) -> IO[bytes]:
        return io.BytesIO()


def csrf_token() -> str:
    """This session's CSRF token (created on first use)."""
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return str(token)


def csrf_field() -> Markup:
    """The hidden form field carrying this session's CSRF token."""
    return Markup('<input type="hidden" name="csrf_token" value="{}">').format(csrf_token())


def csrf_ok() -> bool:
    """True when this request's form carries the session's CSRF token."""
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


def security_headers(response: Response, *, static: bool) -> None:
    """Set the strict CSP, no sniffing or framing, same-origin referrers; no-store unless static."""
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    if not static:
        response.headers["Cache-Control"] = "no-store"
