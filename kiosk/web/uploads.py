"""Safe decoding of uploaded enrolment photos: size, count, name and type limits, then PIL.

Uploads never touch the disk: the app keeps request files in memory (see
security.KioskRequest), bounded by MAX_CONTENT_LENGTH.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from werkzeug.datastructures import FileStorage

from kiosk.errors import ImageError, UploadError
from kiosk.vision.faces import PHOTO_MAX_SIDE, decode_image, probe_image

logger = logging.getLogger(__name__)

ALLOWED_FORMATS = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP"}
ALLOWED_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
FORMATS = frozenset(ALLOWED_FORMATS)

RGBImage = npt.NDArray[np.uint8]
"""A decoded photo: RGB uint8, height x width x 3."""
PhotoOrLoader = RGBImage | Callable[[], RGBImage]
"""A decoded photo, or a loader that raises the photo's ImageError (enrolment's photo input)."""


@dataclass(frozen=True)
class UploadLimits:
    """Per-request limits on enrolment photos; max_side: decoded photos are scaled to at most
    this many pixels on the longer side (None: full size)."""

    max_files: int = 12
    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_side: int | None = PHOTO_MAX_SIDE


@dataclass(frozen=True)
class Photo:
    """A decoded upload: file name, RGB uint8 HxWx3 pixels and the original encoded bytes."""

    name: str
    image: RGBImage
    data: bytes


def check_filename(name: str | None) -> str:
    """The upload's file name if acceptable; UploadError for paths, odd names or extensions."""
    if not name:
        raise UploadError("a photo has no file name")
    if "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
        raise UploadError(f"file name {name!r} refused: send the file itself, not a path")
    if len(name) > 200 or any(ord(c) < 32 for c in name):
        raise UploadError("file name refused: too long or with control characters")
    if not name.lower().endswith(ALLOWED_EXTENSIONS):
        raise UploadError(f"{name}: only JPEG, PNG or WebP photos are accepted")
    return name


def _check_bytes(name: str | None, data: bytes, limits: UploadLimits) -> str:
    """The checked file name; UploadError for a bad name, an empty or too big file."""
    name = check_filename(name)
    if not data:
        raise UploadError(f"{name}: the file is empty")
    if len(data) > limits.max_bytes:
        raise UploadError(f"{name}: {len(data) / 1e6:.1f} MB is too big "
                          f"(at most {limits.max_bytes / 1e6:.0f} MB per photo)")
    return name


def _check_header(name: str, data: bytes, limits: UploadLimits) -> None:
    """UploadError when the upload is no image, of a refused format or too many pixels (decodes nothing)."""
    try:
        probe_image(io.BytesIO(data), name, max_pixels=limits.max_pixels, formats=FORMATS)
    except ImageError as exc:
        raise UploadError(str(exc)) from None


def check_photo(name: str | None, data: bytes, limits: UploadLimits) -> str:
    """The file name of an upload that passes every check short of decoding (name, bytes, format,
    pixel count from the header); UploadError otherwise. Cheap: nothing is decoded."""
    name = _check_bytes(name, data, limits)
    _check_header(name, data, limits)
    return name


def decode_photo(name: str, data: bytes, limits: UploadLimits) -> Photo:
    """Check and decode one upload -> Photo (RGB uint8 HxWx3, EXIF orientation applied, scaled
    to at most limits.max_side px a side)."""
    name = check_photo(name, data, limits)
    try:
        image = decode_image(io.BytesIO(data), name, max_side=limits.max_side, max_pixels=limits.max_pixels,
                             formats=FORMATS, verify=True)
    except ImageError as exc:
        raise UploadError(str(exc)) from None
    return Photo(name=name, image=image, data=data)


def check_photos(files: Iterable[tuple[str | None, bytes]], limits: UploadLimits, *,
                 keep_bytes: bool = True) -> list[tuple[str, bytes]]:
    """The uploads (name, bytes) that all pass check_photo, nothing decoded; UploadError on the
    first refused one, none or too many. keep_bytes False: the bytes are dropped once checked
    (b"" in the result), so that a generator of uploads holds one at a time."""
    checked: list[tuple[str, bytes]] = []
    for n, d in files:
        if not (n or d):
            continue
        if len(checked) == limits.max_files:
            raise UploadError(f"more than {limits.max_files} photos sent: at most {limits.max_files} per person")
        checked.append((check_photo(n, d, limits), d if keep_bytes else b""))
    if not checked:
        raise UploadError("choose at least one photo")
    return checked


def decode_photos(files: list[tuple[str | None, bytes]], limits: UploadLimits) -> list[Photo]:
    """Decode all uploads (name, bytes); UploadError on the first refused one or too many."""
    return [decode_photo(n, d, limits) for n, d in check_photos(files, limits)]


def read_uploads(uploads: list[FileStorage], limits: UploadLimits) -> list[tuple[str, PhotoOrLoader]]:
    """(unique file name, RGB uint8 HxWx3 scaled to limits.max_side, or a loader that raises the
    photo's ImageError) per uploaded photo, for enrolment.

    Every upload's header is checked first (UploadError refuses the lot); then the photos are
    decoded one by one, each upload's buffer freed once read, so that only the scaled images
    (~1.4 MB each at 800 px) are held while faces are looked for.
    """
    uploads = [f for f in uploads if f.filename]
    if len(uploads) > limits.max_files:  # before reading any of them
        raise UploadError(f"{len(uploads)} photos sent: at most {limits.max_files} per person")
    names = [name for name, _ in check_photos(
        ((f.filename, _peek(f, limits.max_bytes + 1)) for f in uploads), limits, keep_bytes=False)]
    seen: dict[str, int] = {}
    photos: list[tuple[str, PhotoOrLoader]] = []
    for name, upload in zip(names, uploads, strict=True):
        n = seen.get(name, 0)  # enrolment keys photos by name: make names unique
        seen[name] = n + 1
        photos.append((name if n == 0 else f"{n + 1}-{name}",
                       _decoded(name, _read_and_close(upload, limits.max_bytes + 1), limits)))
    return photos


def _peek(upload: FileStorage, most: int) -> bytes:
    """Up to most bytes of an uploaded file, rewound so that it can be read again."""
    try:
        data: bytes = upload.stream.read(most)
        return data
    finally:
        upload.stream.seek(0)


def _read_and_close(upload: FileStorage, most: int) -> bytes:
    """Up to most bytes of an uploaded file, whose buffer is freed at once."""
    try:
        data: bytes = upload.read(most)
        return data
    finally:
        upload.close()


def _decoded(name: str, data: bytes, limits: UploadLimits) -> PhotoOrLoader:
    """The upload as RGB uint8 HxWx3 (scaled), or a loader that raises its ImageError (its verdict)."""
    try:
        return decode_photo(name, data, limits).image
    except UploadError as exc:
        message = str(exc)

    def refused() -> RGBImage:
        raise ImageError(message)
    return refused
