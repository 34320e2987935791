"""Subject access: everything held about one person, as JSON-ready data."""

from __future__ import annotations

import base64
import logging
from dataclasses import asdict
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select

from kiosk.store._base import event_info, person_row
from kiosk.store.db import Database
from kiosk.store.models import (
    AttendanceEvent,
    AuditEntry,
    ConsentChange,
    EnrolmentImage,
    FaceTemplate,
    Leave,
)

logger = logging.getLogger(__name__)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def export_person(db: Database, person_id: int) -> dict[str, Any]:
    """Everything held about a person, JSON-ready (templates as float lists, photos base64)."""
    with db.session() as s:
        p = person_row(s, person_id)
        templates = s.scalars(
            select(FaceTemplate)
            .where(FaceTemplate.person_id == person_id)
            .order_by(FaceTemplate.id)
        ).all()
        images = s.scalars(
            select(EnrolmentImage).where(EnrolmentImage.person_id == person_id)
            .order_by(EnrolmentImage.id)
        ).all()
        consent = s.scalars(
            select(ConsentChange).where(ConsentChange.person_id == person_id)
            .order_by(ConsentChange.id)
        ).all()
        events = s.scalars(
            select(AttendanceEvent).where(AttendanceEvent.person_id == person_id)
            .order_by(AttendanceEvent.occurred_at)
        ).all()
        leave = s.scalars(select(Leave).where(Leave.person_id == person_id).order_by(Leave.first_day)).all()
        audits = s.scalars(
            select(AuditEntry).where(AuditEntry.target == f"person:{person_id}")
            .order_by(AuditEntry.id)
        ).all()
        return {
            "person": {
                "id": p.id, "employee_id": p.employee_id, "name": p.name, "active": p.active,
                "created_at": _iso(p.created_at), "expression_consent": p.expression_consent,
                "consent_changed_at": _iso(p.consent_changed_at),
                "consent_changed_by": p.consent_changed_by, "erased_at": _iso(p.erased_at),
            },
            "face_templates": [
                {"id": t.id, "created_at": _iso(t.created_at), "source": t.source,
                 "quality": t.quality,
                 "embedding": np.frombuffer(t.embedding, dtype="<f4").astype(float).tolist()}
                for t in templates
            ],
            "enrolment_images": [
                {"id": i.id, "created_at": _iso(i.created_at), "source": i.source,
                 "image_base64": base64.b64encode(i.image).decode("ascii")}
                for i in images
            ],
            "consent_history": [
                {"at": _iso(c.at), "granted": c.granted, "changed_by": c.changed_by}
                for c in consent
            ],
            "attendance_events": [
                {k: (_iso(v) if isinstance(v, datetime) else v)
                 for k, v in asdict(event_info(e)).items()}
                for e in events
            ],
            "leave": [
                {"id": x.id, "first_day": x.first_day.isoformat(), "last_day": x.last_day.isoformat(),
                 "kind": x.kind, "recorded_by": x.recorded_by, "recorded_at": _iso(x.recorded_at)}
                for x in leave
            ],
            "audit_log": [
                {"at": _iso(a.at), "actor": a.actor, "action": a.action, "details": a.details}
                for a in audits
            ],
        }
