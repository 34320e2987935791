"""What every request needs: settings, database, clock, the signed-in user, role checks."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

from flask import current_app, g

from kiosk.clock import Clock
from kiosk.config import Settings
from kiosk.store import Database, UserInfo
from kiosk.vision.faces import FaceAnalyzer
from kiosk.vocabulary import Role
from kiosk.web.auth import LoginLimiter

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

ROLE_ATTR = "_kiosk_role"
"""View attribute: PUBLIC (no login), Role.MANAGER (any signed-in user; the default) or Role.ADMIN."""
PUBLIC = "public"
"""The role mark of a view that needs no sign-in (not a Role: nobody holds it)."""


@dataclass
class WebContext:
    """Shared state of one app: settings, open database, clock, login limiter, face analyzer."""

    settings: Settings
    db: Database
    clock: Clock
    limiter: LoginLimiter
    analyzer: FaceAnalyzer | None = None
    owns_db: bool = False
    _analyzer_lock: threading.Lock = field(default_factory=threading.Lock)

    def face_analyzer(self) -> FaceAnalyzer:
        """The face analyzer, loaded on first use (~0.5 s; only enrolment needs it)."""
        with self._analyzer_lock:
            if self.analyzer is None:
                from kiosk.vision.faces import make_analyzer

                self.analyzer = make_analyzer(self.settings.recognition.for_enrolment_server())
            return self.analyzer

    def today(self) -> date:
        """Today's local date at the site."""
        return self.clock.now().astimezone(self.settings.tz).date()


def ctx() -> WebContext:
    """The WebContext of the current app."""
    return current_app.extensions["kiosk"]  # type: ignore[no-any-return]


def current_user() -> UserInfo | None:
    """The signed-in user of this request, or None."""
    user: UserInfo | None = g.get("user")
    return user


def actor() -> str:
    """Audit-log name of the signed-in user, "web:<username>"."""
    user = current_user()
    return f"web:{user.username}" if user else "web:anonymous"


def public(view: F) -> F:
    """Mark a view as reachable without login."""
    setattr(view, ROLE_ATTR, PUBLIC)
    return view


def admin_only(view: F) -> F:
    """Mark a view as for admins only (managers get 403)."""
    setattr(view, ROLE_ATTR, Role.ADMIN)
    return view


def is_admin(user: UserInfo | None) -> bool:
    """True when user is a signed-in admin."""
    return user is not None and user.role == Role.ADMIN


def required_role(view: Callable[..., object] | None) -> str:
    """The role a view needs: PUBLIC, Role.MANAGER (default) or Role.ADMIN."""
    role: str = getattr(view, ROLE_ATTR, Role.MANAGER) if view is not None else Role.MANAGER
    return role
