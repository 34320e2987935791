"""Face templates (128-d float32 embeddings, 512 bytes little-endian each) and kept enrolment photos.

Every function takes the Database (or a Transaction) first and commits before returning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import delete, func, select

from kiosk.errors import InvalidTemplate
from kiosk.store._base import now_utc, person_row, record_of, unerased_person_row, write_audit
from kiosk.store.db import Database
from kiosk.store.gallery_feed import record_gallery_change
from kiosk.store.models import EnrolmentImage, FaceTemplate, Person
from kiosk.vision.embedding import EMBEDDING_SIZE, as_embeddings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TemplateInfo:
    """A face template's metadata (the embedding itself only via all_templates/export)."""

    id: int
    person_id: int
    created_at: datetime
    source: str | None
    quality: float | None
    embedder: str | None = None


def _basename(source: str | None) -> str | None:
    if source is None:
        return None
    return source.replace("\\", "/").rsplit("/", 1)[-1] or None


def add_templates(
    db: Database,
    person_id: int,
    embeddings: npt.ArrayLike,
    *,
    sources: Sequence[str | None] | None = None,
    qualities: Sequence[float | None] | None = None,
    replace: bool = False,
    embedder: str | None = None,
    actor: str = "system",
    now: datetime | None = None,
) -> list[int]:
    """Store face templates, embeddings (N,128) or (128,) float -> stored float32; returns ids.

    sources are photo file names (any directory part is dropped); replace=True first deletes
    the person's existing templates (re-enrolment); embedder says how they were made.
    """
    emb = as_embeddings(embeddings, InvalidTemplate)
    n = emb.shape[0]
    sources = list(sources) if sources is not None else [None] * n
    qualities = list(qualities) if qualities is not None else [None] * n
    if len(sources) != n or len(qualities) != n:
        raise InvalidTemplate("sources/qualities must have one entry per template")
    now = now_utc(now)
    with db.session() as s:
        unerased_person_row(s, person_id)
        if replace:
            s.execute(delete(FaceTemplate).where(FaceTemplate.person_id == person_id))
        rows = []
        for i in range(n):
            quality = qualities[i]
            rows.append(FaceTemplate(
                person_id=person_id,
                embedding=emb[i].astype("<f4").tobytes(),
                created_at=now,
                source=_basename(sources[i]),
                quality=None if quality is None else float(quality),
                embedder=embedder,
            ))
        s.add_all(rows)
        s.flush()
        write_audit(s, actor, "templates.replace" if replace else "templates.add",
                    f"person:{person_id}", {"count": n}, now)
        record_gallery_change(s, person_id, now)
        return [r.id for r in rows]


def list_templates(db: Database, person_id: int) -> list[TemplateInfo]:
    """Metadata of a person's templates, oldest first."""
    with db.session() as s:
        rows = s.scalars(
            select(FaceTemplate)
            .where(FaceTemplate.person_id == person_id)
            .order_by(FaceTemplate.id)
        ).all()
        return [record_of(TemplateInfo, r) for r in rows]


def all_templates(db: Database) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Templates of active, non-erased people: (person_ids int64 (N,), matrix float32 (N,128))."""
    with db.session() as s:
        rows = s.execute(
            select(FaceTemplate.person_id, FaceTemplate.embedding)
            .join(Person, Person.id == FaceTemplate.person_id)
            .where(Person.active.is_(True), Person.erased_at.is_(None))
            .order_by(FaceTemplate.id)
        ).all()
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    matrix = np.empty((len(rows), EMBEDDING_SIZE), dtype=np.float32)
    for i, (_, blob) in enumerate(rows):
        matrix[i] = np.frombuffer(blob, dtype="<f4")
    return ids, matrix


def templates_not_made_by(db: Database, embedder: str | Iterable[str]) -> dict[int, int]:
    """{person id: templates made otherwise (or unknown how)} for active, non-erased people.

    embedder: one embedder id, or every id whose embeddings compare with the current one's.
    """
    ids = [embedder] if isinstance(embedder, str) else list(embedder)
    with db.session() as s:
        rows = s.execute(
            select(FaceTemplate.person_id, func.count())
            .join(Person, Person.id == FaceTemplate.person_id)
            .where(Person.active.is_(True), Person.erased_at.is_(None),
                   FaceTemplate.embedder.not_in(ids) | FaceTemplate.embedder.is_(None))
            .group_by(FaceTemplate.person_id)
        ).all()
    return {int(pid): int(n) for pid, n in rows}


def gallery_signature(db: Database) -> tuple[Any, ...]:
    """A value that changes whenever the recognisable gallery or consent changes.

    Per person: id, name, active, erased, consent, template count, newest template id and time, so a
    re-enrolment with as many photos as before is noticed too (SQLite may reuse freed row ids).
    """
    with db.session() as s:
        templates = {
            row[0]: tuple(row[1:])
            for row in s.execute(
                select(FaceTemplate.person_id, func.count(), func.max(FaceTemplate.id),
                       func.max(FaceTemplate.created_at))
                .group_by(FaceTemplate.person_id)
            )
        }
        people = s.execute(
            select(Person.id, Person.name, Person.active, Person.erased_at, Person.expression_consent)
            .order_by(Person.id)
        ).all()
    return tuple((*person, templates.get(person[0])) for person in people)


def add_enrolment_image(
    db: Database,
    person_id: int,
    image: bytes,
    *,
    source: str | None = None,
    now: datetime | None = None,
) -> int:
    """Store an encoded enrolment photo; call only when retention.keep_enrolment_images is true."""
    now = now_utc(now)
    with db.session() as s:
        person_row(s, person_id)
        row = EnrolmentImage(person_id=person_id, image=bytes(image), created_at=now,
                             source=_basename(source))
        s.add(row)
        s.flush()
        return row.id


def enrolment_images(db: Database, person_id: int) -> list[tuple[str | None, bytes]]:
    """A person's stored enrolment photos as (file name, encoded bytes)."""
    with db.session() as s:
        rows = s.execute(
            select(EnrolmentImage.source, EnrolmentImage.image)
            .where(EnrolmentImage.person_id == person_id).order_by(EnrolmentImage.id)
        ).all()
        return [(r[0], r[1]) for r in rows]
