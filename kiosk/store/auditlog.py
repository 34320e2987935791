"""The audit log: append a line (who did what to whom), list and search lines, newest first.

Changes elsewhere in the store write their audit line in their own commit (_base.write_audit).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from kiosk.store._base import like_pattern, now_utc, record_of, write_audit
from kiosk.store.db import Database
from kiosk.store.models import AuditEntry

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditInfo:
    """One audit-log line."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    details: dict[str, Any] | None


def _audit_info(r: AuditEntry) -> AuditInfo:
    return record_of(AuditInfo, r)


def audit(
    db: Database,
    actor: str,
    action: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
    *,
    now: datetime | None = None,
) -> None:
    """Append an audit-log line (never put biometric data in details)."""
    with db.session() as s:
        write_audit(s, actor, action, target, details, now_utc(now))


def list_audit(
    db: Database, *, target: str | None = None, limit: int = 100
) -> list[AuditInfo]:
    """Newest audit lines first (optionally only those about target, e.g. "person:3")."""
    with db.session() as s:
        stmt = select(AuditEntry)
        if target is not None:
            stmt = stmt.where(AuditEntry.target == target)
        rows = s.scalars(stmt.order_by(AuditEntry.id.desc()).limit(limit)).all()
        return [_audit_info(r) for r in rows]


def search_audit(db: Database, text_: str = "", *, limit: int = 200) -> list[AuditInfo]:
    """Newest audit lines first whose actor, action or target contains text_ (all when empty)."""
    with db.session() as s:
        stmt = select(AuditEntry)
        if text_.strip():
            pattern = like_pattern(text_.strip())
            stmt = stmt.where(
                AuditEntry.actor.ilike(pattern, escape="\\")
                | AuditEntry.action.ilike(pattern, escape="\\")
                | AuditEntry.target.ilike(pattern, escape="\\")
            )
        rows = s.scalars(stmt.order_by(AuditEntry.id.desc()).limit(limit)).all()
        return [_audit_info(r) for r in rows]
