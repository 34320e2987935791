"""Web-app accounts (users with a role) and their sign-in sessions; the last active admin is kept.

Password hashes are made by the web layer; a session token is stored only as its SHA-256.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from kiosk.errors import DuplicatePerson, LastAdmin, StoreError
from kiosk.store._base import now_utc, record_of, write_audit
from kiosk.store.db import Database
from kiosk.store.models import User, WebSession
from kiosk.vocabulary import Role, one_of

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UserInfo:
    """A web-app account."""

    id: int
    username: str
    password_hash: str
    role: str
    created_at: datetime
    active: bool


def _check_role(role: str) -> None:
    """StoreError naming the roles unless role is one of them."""
    try:
        one_of(Role, role, "role")
    except ValueError as exc:
        raise StoreError(str(exc)) from None


def _user_info(u: User) -> UserInfo:
    return record_of(UserInfo, u)


def add_user(
    db: Database, username: str, password_hash: str, role: str, *, actor: str = "system",
    now: datetime | None = None,
) -> UserInfo:
    """Create a web account; password_hash must already be hashed by the caller."""
    _check_role(role)
    username = username.strip()
    if not username:
        raise StoreError("username must not be empty")
    now = now_utc(now)
    with db.session() as s:
        # "Admin" beside "admin" would be a look-alike actor in the audit log (and share a sign-in throttle)
        taken = s.scalar(select(User.username).where(func.lower(User.username) == username.lower()))
        if taken is not None:
            raise DuplicatePerson(f"username {username!r} is already taken"
                                  + ("" if taken == username else f" (as {taken!r}; names differ in more than case)"))
        user = User(username=username, password_hash=password_hash, role=role,
                    created_at=now, active=True)
        s.add(user)
        s.flush()
        write_audit(s, actor, "user.add", f"user:{username}", {"role": role}, now)
        return _user_info(user)


def get_user(db: Database, username: str) -> UserInfo | None:
    """The account with this username, or None."""
    with db.session() as s:
        user = s.scalar(select(User).where(User.username == username))
        return None if user is None else _user_info(user)


def get_user_by_id(db: Database, user_id: int) -> UserInfo | None:
    """The account with this id, or None."""
    with db.session() as s:
        user = s.get(User, user_id)
        return None if user is None else _user_info(user)


def list_users(db: Database) -> list[UserInfo]:
    """All web accounts by username."""
    with db.session() as s:
        return [_user_info(u) for u in s.scalars(select(User).order_by(User.username)).all()]


def count_admins(db: Database) -> int:
    """Number of active admin accounts."""
    with db.session() as s:
        return s.scalar(
            select(func.count()).select_from(User)
            .where(User.role == Role.ADMIN, User.active.is_(True))
        ) or 0


def _require_user(s: Session, username: str) -> User:
    """The account row with this username; StoreError when there is none."""
    user = s.scalar(select(User).where(User.username == username))
    if user is None:
        raise StoreError(f"no user {username!r}")
    return user


def _keep_an_admin(s: Session, user: User, what: str) -> None:
    """LastAdmin when user is the only active admin (so it must stay one)."""
    if user.role != Role.ADMIN or not user.active:
        return
    others = s.scalar(select(func.count()).select_from(User).where(
        User.role == Role.ADMIN, User.active.is_(True), User.id != user.id)) or 0
    if others == 0:
        raise LastAdmin(f"cannot {what} {user.username}: it is the last active admin account; "
                        "make another admin first")


def _end_user_sessions(s: Session, user_id: int) -> None:
    """Delete every web session of the account (inside the caller's transaction)."""
    s.execute(delete(WebSession).where(WebSession.user_id == user_id))


def set_user_active(
    db: Database, username: str, active: bool, *, actor: str, now: datetime | None = None
) -> UserInfo:
    """Enable or disable a web account (a disabled account cannot log in; its sessions end)."""
    now = now_utc(now)
    with db.session() as s:
        user = _require_user(s, username)
        if not active:
            _keep_an_admin(s, user, "disable")
            _end_user_sessions(s, user.id)
        if user.active != active:
            user.active = active
            write_audit(s, actor, "user.enable" if active else "user.disable", f"user:{username}",
                        None, now)
        return _user_info(user)


def set_user_password(
    db: Database, username: str, password_hash: str, *, actor: str, now: datetime | None = None
) -> UserInfo:
    """Replace an account's password hash (hashed by the caller); its sessions end."""
    now = now_utc(now)
    with db.session() as s:
        user = _require_user(s, username)
        user.password_hash = password_hash
        _end_user_sessions(s, user.id)
        write_audit(s, actor, "user.password", f"user:{username}", None, now)
        return _user_info(user)


def set_user_role(
    db: Database, username: str, role: str, *, actor: str, now: datetime | None = None
) -> UserInfo:
    """Make an account admin or manager (never the last active admin a manager); its sessions end."""
    _check_role(role)
    now = now_utc(now)
    with db.session() as s:
        user = _require_user(s, username)
        if user.role != role:
            if role != Role.ADMIN:
                _keep_an_admin(s, user, "make a manager")
            write_audit(s, actor, "user.role", f"user:{username}", {"from": user.role, "to": role}, now)
            user.role = role
            _end_user_sessions(s, user.id)
        return _user_info(user)


def remove_user(db: Database, username: str, *, actor: str, now: datetime | None = None) -> None:
    """Delete an account and its sessions (never the last active admin); audited."""
    now = now_utc(now)
    with db.session() as s:
        user = _require_user(s, username)
        _keep_an_admin(s, user, "delete")
        _end_user_sessions(s, user.id)
        write_audit(s, actor, "user.remove", f"user:{username}", {"role": user.role}, now)
        s.delete(user)


# --- sign-in sessions ------------------------------------------------------------------------


def _token_id(token: str) -> str:
    """The stored id of a session token: its SHA-256 (hex); the token itself is never stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(db: Database, user_id: int, max_age: timedelta, *, now: datetime | None = None) -> str:
    """A new random session token for the account (sessions older than max_age are dropped)."""
    now = now_utc(now)
    token = secrets.token_urlsafe(32)
    with db.session() as s:
        s.execute(delete(WebSession).where(WebSession.created_at < now - max_age))
        s.add(WebSession(id=_token_id(token), user_id=user_id, created_at=now))
    return token


def session_user(
    db: Database, token: str, max_age: timedelta, *, now: datetime | None = None
) -> UserInfo | None:
    """The active account of a live session token, or None (unknown, ended, expired, disabled)."""
    now = now_utc(now)
    with db.session() as s:
        row = s.get(WebSession, _token_id(token))
        if row is None or row.created_at < now - max_age:
            return None
        user = s.get(User, row.user_id)
        return _user_info(user) if user is not None and user.active else None


def end_session(db: Database, token: str) -> None:
    """End one web session (logout): its token stops working everywhere."""
    with db.session() as s:
        s.execute(delete(WebSession).where(WebSession.id == _token_id(token)))
