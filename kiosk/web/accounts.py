"""Changes to web accounts by an admin, with their rules, for the Users page and `kiosk users`.

The rules: nobody disables, re-roles, resets or deletes their own account this way (`me`: the
signed-in admin; their own password goes through the Account page); roles are a Role; and the
last active admin is never disabled, deleted or made a manager (the store's rule: it raises
LastAdmin inside the same transaction as the change, so a concurrent change cannot slip past it).
"""

from __future__ import annotations

import logging

from kiosk.errors import WebError
from kiosk.store import Database, UserInfo, remove_user, set_user_active, set_user_role
from kiosk.web.auth import parse_role, reset_password

logger = logging.getLogger(__name__)


def refuse_own_account(me: str | None, username: str, what: str) -> None:
    """WebError when me (the acting admin's username; None: the CLI) would `what` their own account."""
    if me is not None and me == username:
        raise WebError(f"you cannot {what} your own account here; ask another admin")


def set_account_active(db: Database, username: str, active: bool, *, actor: str,
                       me: str | None = None) -> UserInfo:
    """Enable or disable an account (disabling ends its sessions; never one's own or the last admin)."""
    if not active:
        refuse_own_account(me, username, "disable")
    return set_user_active(db, username, active, actor=actor)


def set_account_password(db: Database, username: str, password: str, *, actor: str,
                         me: str | None = None) -> UserInfo:
    """Set a new password for another account (e.g. a forgotten one); its sessions end."""
    refuse_own_account(me, username, "reset the password of (use the Account page for)")
    return reset_password(db, username, password, actor=actor)


def set_account_role(db: Database, username: str, role: str, *, actor: str,
                     me: str | None = None) -> UserInfo:
    """Make an account admin or manager (WebError for another word; never one's own, never the last
    active admin a manager); its sessions end."""
    refuse_own_account(me, username, "change the role of")
    return set_user_role(db, username, parse_role(role), actor=actor)


def remove_account(db: Database, username: str, *, actor: str, me: str | None = None,
                   typed: str | None = None) -> None:
    """Delete an account and its sessions (never one's own or the last active admin); audited.

    typed: what the admin typed to confirm (must be the username); None when confirmed otherwise.
    """
    refuse_own_account(me, username, "delete")
    if typed is not None and typed.strip() != username:
        raise WebError(f"type the username {username!r} exactly to delete the account")
    remove_user(db, username, actor=actor)
