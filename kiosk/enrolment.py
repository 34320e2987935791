"""Enrol a person from photos: one usable face per photo, no duplicate of someone else, then store templates.

Nothing is written unless the whole enrolment is acceptable, so a rejected enrolment leaves
the database exactly as it was; an accepted one is stored in one transaction (a failure while
storing leaves nothing behind either). At least enrolment.min_photos photos must have a usable face,
and all of them must look like one person.

Memory: photos are analysed one at a time, scaled down to enrolment.max_photo_side first; a
photo may be given as a loader (a function returning the image), so that only one decoded
photo is held at a time. Only the embedding (and, if kept, a JPEG) of each photo stays.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from kiosk import store
from kiosk.config import RecognitionSettings, Settings
from kiosk.errors import ImageError, InvalidIdentity, KioskError, PersonNotFound
from kiosk.gallery import Gallery
from kiosk.identity import clean_employee_id, clean_name
from kiosk.vision.faces import IMAGE_SUFFIXES, PHOTO_MAX_SIDE, FaceAnalyzer, fit_within, load_image

logger = logging.getLogger(__name__)

# Two photos of one person rarely lie further apart than this (face_recognition distance);
# a larger gap means a photo of somebody else slipped in.
SAME_PERSON_DISTANCE = 0.6

# An enrolment photo: (source name, RGB uint8 HxWx3 image, or a function that loads it and
# may raise ImageError).
Image = npt.NDArray[np.uint8]
Embedding = npt.NDArray[np.float32]
Photo = tuple[str, Image | Callable[[], Image]]


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
    embedding: Embedding | None = field(default=None, repr=False)
    jpeg: bytes | None = field(default=None, repr=False)  # the (scaled) photo, when images are kept

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
whole photo library is a mistake, and it is refused before any photo is decoded."""


def _embedder_id(analyzer: FaceAnalyzer, settings: Settings) -> str:
    """The embedder id of the analyzer's own recognition settings (the web app enrols with dlib's
    embedder under the LiteRT twin's settings), else the configured one."""
    own = getattr(analyzer, "settings", None)
    return (own if isinstance(own, RecognitionSettings) else settings.recognition).embedder_id()


def load_photos(paths: Iterable[Path | str],
                max_side: int | None = PHOTO_MAX_SIDE) -> tuple[list[tuple[str, Image]], list[PhotoVerdict]]:
    """(decoded (name, RGB uint8 HxWx3, longer side <= max_side px) photos, verdicts for files that
    could not be read). Holds every photo at once: enrol() from photo_loaders() holds one.
    KioskError for more than MAX_PHOTOS files, before any is decoded."""
    photos: list[tuple[str, Image]] = []
    unreadable: list[PhotoVerdict] = []
    for path in _photo_files(paths):
        try:
            photos.append((path.name, load_image(path, max_side=max_side)))
        except ImageError as exc:
            unreadable.append(PhotoVerdict(path.name, False, str(exc)))
    return photos, unreadable


def _photo_files(paths: Iterable[Path | str]) -> list[Path]:
    """expand_photo_paths(), refused (KioskError) above MAX_PHOTOS files before any is decoded."""
    files = expand_photo_paths(paths)
    if len(files) > MAX_PHOTOS:
        raise KioskError(f"{len(files)} photos given: at most {MAX_PHOTOS} per person (3 to 8 good ones are "
                         "best); give a folder with this person's photos only")
    return files


def photo_loaders(paths: Iterable[Path | str], max_side: int) -> list[Photo]:
    """(file name, loader) for the photo files and folders given: enrol() decodes each file
    (scaled to at most max_side px a side) only when it comes to it; KioskError if one is missing
    or there are more than MAX_PHOTOS."""
    def loader(path: Path) -> Callable[[], Image]:
        return lambda: load_image(path, max_side=max_side)
    return [(path.name, loader(path)) for path in _photo_files(paths)]


def _judge(analyzer: FaceAnalyzer, source: str, photo: Image | Callable[[], Image],
           max_side: int, keep_jpeg: bool) -> PhotoVerdict:
    """The verdict on one photo (loaded now if it is a loader, scaled to at most max_side px a side)."""
    try:
        image = fit_within(photo() if callable(photo) else photo, max_side)
    except ImageError as exc:
        return PhotoVerdict(source, False, str(exc))
    verdict = _judge_image(analyzer, source, image)
    if verdict.ok and keep_jpeg:
        verdict.jpeg = _encode_jpeg(image)
    return verdict


def _judge_image(analyzer: FaceAnalyzer, source: str, image: Image) -> PhotoVerdict:
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
    """Reject photos whose face is far from the others' (somebody else's photo in the set).

    Each face is judged by its median distance to the other faces; with two faces that is their
    distance, so two photos of different people are both rejected (which one is wrong is unknown).
    """
    good = [v for v in verdicts if v.ok]
    if len(good) < 2:
        return
    matrix = np.stack([_embedding(v) for v in good])
    dist = np.linalg.norm(matrix[:, None, :] - matrix[None, :, :], axis=2)
    median = np.nanmedian(np.where(np.eye(len(good), dtype=bool), np.nan, dist), axis=1)
    for verdict, spread in zip(good, median, strict=True):
        if spread > SAME_PERSON_DISTANCE:
            verdict.ok = False
            verdict.reason = (f"face differs from the other photos (distance {spread:.2f}); "
                              "is this the same person?")


def _embedding(verdict: PhotoVerdict) -> Embedding:
    """The 128-d float32 embedding of an accepted photo's face."""
    if verdict.embedding is None:
        raise ValueError(f"{verdict.source}: no embedding")
    return verdict.embedding


def _encode_jpeg(image: Image) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _display(person: store.PersonInfo) -> str:
    return f"{person.name} ({person.employee_id})"


def clean_identity(name: str, employee_id: str) -> tuple[str, str]:
    """(name, employee id) as kiosk.identity cleans them; EnrolmentError when either is unusable."""
    if not name.strip() or not employee_id.strip():
        raise EnrolmentError("a name and an employee id are required")
    try:
        return clean_name(name), clean_employee_id(employee_id)
    except InvalidIdentity as exc:
        raise EnrolmentError(str(exc)) from None


def check_employee_id(db: store.Database, name: str, employee_id: str, *,
                      replace: bool) -> store.PersonInfo | None:
    """The person to re-enrol (replace) or None for a new one; EnrolmentError when the name or
    id cannot be used."""
    name, employee_id = clean_identity(name, employee_id)
    existing: store.PersonInfo | None
    try:
        existing = store.get_person_by_employee_id(db, employee_id)
    except PersonNotFound:
        existing = None
    if existing is not None and existing.erased_at is not None:
        raise EnrolmentError(f"employee id {employee_id} belonged to an erased person; use a new id")
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
    photos: Sequence[Photo],
    force: bool = False,
    replace: bool = False,
    expression_consent: bool = False,
    actor: str = "cli",
    unreadable: Sequence[PhotoVerdict] = (),
) -> EnrolmentResult:
    """Enrol (or with replace, re-enrol) a person from (source name, RGB uint8 HxWx3 image or its
    loader) photos, analysed one at a time.

    Raises EnrolmentError (nothing stored) when fewer than enrolment.min_photos photos are
    usable, when a face matches another enrolled person (unless force), or when the employee
    id exists (unless replace) or the name or id is unusable.
    """
    name, employee_id = clean_identity(name, employee_id)
    existing = check_employee_id(db, name, employee_id, replace=replace)
    e = settings.enrolment
    keep = settings.retention.keep_enrolment_images
    verdicts = list(unreadable) + [_judge(analyzer, source, photo, e.max_photo_side, keep)
                                   for source, photo in photos]
    _check_consistency(verdicts)
    result = EnrolmentResult(employee_id, name, verdicts, replaced=existing is not None)

    person_ids, matrix = store.all_templates(db)
    gallery = Gallery.from_arrays(matrix, person_ids.tolist(), settings.recognition)
    exclude = existing.id if existing is not None else None
    people = store.people_by_id(db) if len(gallery) else {}
    for verdict in verdicts:
        if not verdict.ok:
            continue
        other, distance = gallery.is_duplicate(_embedding(verdict), exclude=exclude)
        if other is not None:
            known = people.get(other) if isinstance(other, int) else None
            verdict.duplicate_of = _display(known) if known is not None else f"person {other}"
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
    if len(good) < e.min_photos:
        raise EnrolmentError(f"nothing enrolled for {name}: only {len(good)} photo(s) can be used; at least "
                             f"{e.min_photos} photos of the person alone are needed", result)

    embeddings = np.stack([_embedding(v) for v in good]).astype(np.float32)
    # one unit of work: person, consent, templates, photos and their audit lines commit together or
    # not at all (a failure half-way leaves the database as it was, with nothing to undo)
    with db.transaction() as tx:
        if existing is None:
            person = store.add_person(tx, employee_id, name, expression_consent=expression_consent, actor=actor)
        else:
            person = existing
        store.add_templates(tx, person.id, embeddings, sources=[v.source for v in good],
                            qualities=[v.quality for v in good], replace=existing is not None,
                            embedder=_embedder_id(analyzer, settings), actor=actor)
        for v in good:
            if v.jpeg is not None:
                store.add_enrolment_image(tx, person.id, v.jpeg, source=v.source)
    result.person_id = person.id
    result.templates_added = len(good)
    logger.info("enrolled %s with %d template(s)", employee_id, len(good))
    return result
