"""Enrol a person from photos: one usable face per photo, no duplicate of someone else, then store templates.

Nothing is written unless the whole enrolment is acceptable, so a rejected enrolment leaves
the database exactly as it was.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kiosk import store
from kiosk.config import Settings
from kiosk.errors import ImageError, KioskError, PersonNotFound, StoreError
from kiosk.gallery import Gallery
from kiosk.vision.faces import IMAGE_SUFFIXES, PHOTO_MAX_SIDE, FaceAnalyzer, load_image

logger = logging.getLogger(__name__)

# Two photos of one person rarely lie further apart than this (face_recognition distance);
# a larger gap means a photo of somebody else slipped in.
SAME_PERSON_DISTANCE = 0.6


class EnrolmentError(KioskError):
    """The enrolment was refused; nothing was stored. `result` holds the per-photo verdicts."""

    def __init__(self, message: str, result: EnrolmentResult | None = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class PhotoVerdict:
    """What enrolment made of one photo; ok means its face becomes a template."""

    source: str
    ok: bool
    reason: str | None = None
    quality: float | None = None
    duplicate_of: str | None = None
    embedding: np.ndarray | None = field(default=None, repr=False)

    def describe(self) -> str:
        """One line for people: 'photo.jpg: ok (quality 0.83)' or 'photo.jpg: no face found'."""
        if self.ok:
            return f"{self.source}: ok (quality {self.quality:.2f})"
        return f"{self.source}: {self.reason}"


@dataclass
class EnrolmentResult:
    """Outcome: the stored person (None when refused) and one verdict per photo."""

    employee_id: str
    name: str
    verdicts: list[PhotoVerdict]
    person_id: int | None = None
    templates_added: int = 0
    replaced: bool = False


def expand_photo_paths(paths: Iterable[Path | str]) -> list[Path]:
    """Files as given plus the image files inside given folders (name order); KioskError if missing."""
    result: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise KioskError(f"{path}: folder holds no photos ({', '.join(sorted(IMAGE_SUFFIXES))})")
            result.extend(found)
        elif path.exists():
            result.append(path)
        else:
            raise KioskError(f"photo not found: {path}")
    return result


MAX_PHOTOS = 50
"""Most photos one enrolment reads (the web app's own limit is web.max_photos, at most 50): a folder of a
whole photo library is a mistake, and every decoded photo stays in memory until the verdicts are in."""


def load_photos(paths: Iterable[Path | str]) -> tuple[list[tuple[str, np.ndarray]], list[PhotoVerdict]]:
    """(decoded (name, RGB uint8 HxWx3) photos, verdicts for files that could not be read); KioskError for
    more than MAX_PHOTOS files, before any is decoded."""
    photos: list[tuple[str, np.ndarray]] = []
    unreadable: list[PhotoVerdict] = []
    files = expand_photo_paths(paths)
    if len(files) > MAX_PHOTOS:
        raise KioskError(f"{len(files)} photos given: at most {MAX_PHOTOS} per person (3 to 8 good ones are "
                         "best); give a folder with this person's photos only")
    for path in files:
        try:
            photos.append((path.name, load_image(path, max_side=PHOTO_MAX_SIDE)))
        except ImageError as exc:
            unreadable.append(PhotoVerdict(path.name, False, str(exc)))
    return photos, unreadable


def _judge(analyzer: FaceAnalyzer, source: str, image: np.ndarray) -> PhotoVerdict:
    faces = analyzer.analyze(image)
    if not faces:
        return PhotoVerdict(source, False, "no face found")
    if len(faces) > 1:
        return PhotoVerdict(source, False, f"{len(faces)} faces found; use a photo of this person alone")
    face = faces[0]
    if not face.accepted:
        return PhotoVerdict(source, False, face.rejected_reason or "face not usable", face.quality)
    return PhotoVerdict(source, True, None, face.quality, embedding=face.embedding)


def _check_consistency(verdicts: list[PhotoVerdict]) -> None:
    """Reject photos whose face is far from the others' (somebody else's photo in the set)."""
    good = [v for v in verdicts if v.ok]
    if len(good) < 3:
        return
    matrix = np.stack([v.embedding for v in good])
    dist = np.linalg.norm(matrix[:, None, :] - matrix[None, :, :], axis=2)
    median = np.nanmedian(np.where(np.eye(len(good), dtype=bool), np.nan, dist), axis=1)
    for verdict, spread in zip(good, median, strict=True):
        if spread > SAME_PERSON_DISTANCE:
            verdict.ok = False
            verdict.reason = (f"face differs from the other photos (distance {spread:.2f}); "
                              "is this the same person?")


def _encode_jpeg(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _display(person: store.PersonInfo) -> str:
    return f"{person.name} ({person.employee_id})"


def check_employee_id(db: store.Database, name: str, employee_id: str, *,
                      replace: bool) -> store.PersonInfo | None:
    """The person to re-enrol (replace) or None for a new one; EnrolmentError when the id cannot be used."""
    if not name.strip() or not employee_id.strip():
        raise EnrolmentError("a name and an employee id are required")
    try:
        store.clean_name(name)
    except StoreError as exc:
        raise EnrolmentError(str(exc)) from None
    existing: store.PersonInfo | None
    try:
        existing = store.get_person_by_employee_id(db, employee_id.strip())
    except PersonNotFound:
        existing = None
    if existing is not None and existing.erased_at is not None:
        raise EnrolmentError(f"employee id {employee_id} belonged to an erased person; use a new id")
    if existing is None:
        try:
            store.clean_employee_id(employee_id)
        except StoreError as exc:
            raise EnrolmentError(str(exc)) from None
    if existing is not None and not replace:
        raise EnrolmentError(f"employee id {employee_id} is already enrolled as {existing.name}; "
                             "use --replace to re-enrol them with new photos")
    return existing


def enrol(
    db: store.Database,
    settings: Settings,
    analyzer: FaceAnalyzer,
    *,
    name: str,
    employee_id: str,
    photos: Sequence[tuple[str, np.ndarray]],
    force: bool = False,
    replace: bool = False,
    expression_consent: bool = False,
    actor: str = "cli",
    unreadable: Sequence[PhotoVerdict] = (),
) -> EnrolmentResult:
    """Enrol (or with replace, re-enrol) a person from (source name, RGB uint8 HxWx3) photos.

    Raises EnrolmentError (nothing stored) when no photo is usable, when a face matches
    another enrolled person (unless force), or when the employee id exists (unless replace).
    """
    name, employee_id = name.strip(), employee_id.strip()
    existing = check_employee_id(db, name, employee_id, replace=replace)

    verdicts = list(unreadable) + [_judge(analyzer, source, image) for source, image in photos]
    _check_consistency(verdicts)
    result = EnrolmentResult(employee_id, name, verdicts, replaced=existing is not None)

    person_ids, matrix = store.all_templates(db)
    gallery = Gallery.from_arrays(matrix, person_ids.tolist(), settings.recognition)
    exclude = existing.id if existing is not None else None
    people = store.people_by_id(db) if len(gallery) else {}
    for verdict in verdicts:
        if not verdict.ok:
            continue
        other, distance = gallery.is_duplicate(verdict.embedding, exclude=exclude)
        if other is not None:
            verdict.duplicate_of = _display(people[int(other)]) if int(other) in people else f"person {other}"
            if not force:
                verdict.ok = False
                verdict.reason = (f"looks like {verdict.duplicate_of}, already enrolled "
                                  f"(distance {distance:.2f}); use --force if they are different people")
    duplicates = sorted({v.duplicate_of for v in verdicts if v.duplicate_of and not v.ok})
    if duplicates:
        raise EnrolmentError(f"nothing enrolled for {name}: a photo shows {', '.join(duplicates)}, who is "
                             "already enrolled (use --force if they really are different people)", result)
    good = [v for v in verdicts if v.ok]
    if not good:
        raise EnrolmentError(f"nothing enrolled for {name}: no photo has one usable face", result)

    embeddings = np.stack([v.embedding for v in good]).astype(np.float32)
    if existing is None:
        person = store.add_person(db, employee_id, name, expression_consent=expression_consent, actor=actor)
    else:
        person = existing
    try:
        store.add_templates(db, person.id, embeddings, sources=[v.source for v in good],
                            qualities=[v.quality for v in good], replace=existing is not None,
                            embedder=settings.recognition.embedder_id(), actor=actor)
        if settings.retention.keep_enrolment_images:
            images = dict(photos)
            for v in good:
                store.add_enrolment_image(db, person.id, _encode_jpeg(images[v.source]), source=v.source)
    except Exception:
        if existing is None:
            store.erase_person(db, person.id, actor=actor, keep_events=False)
        raise
    result.person_id = person.id
    result.templates_added = len(good)
    logger.info("enrolled %s with %d template(s)", employee_id, len(good))
    return result
