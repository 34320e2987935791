"""Safe decoding of uploaded enrolment photos: size, count, name and type limits, then PIL.

Uploads never touch the disk: the app keeps request files in memory (see app.KioskRequest),
bounded by MAX_CONTENT_LENGTH.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass

import numpy as np

from kiosk.errors import UploadError
from kiosk.vision.faces import PHOTO_MAX_SIDE, shrink_opened

logger = logging.getLogger(__name__)

ALLOWED_FORMATS = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP"}
ALLOWED_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")


@dataclass(frozen=True)
class UploadLimits:
    """Per-request limits on enrolment photos."""

    max_files: int = 12
    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000


@dataclass(frozen=True)
class Photo:
    """A decoded upload: file name, RGB uint8 HxWx3 pixels and the original encoded bytes."""

    name: str
    image: np.ndarray
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


def decode_photo(name: str, data: bytes, limits: UploadLimits) -> Photo:
    """Check and decode one upload -> Photo (RGB uint8 HxWx3, EXIF orientation applied, at most
    PHOTO_MAX_SIDE pixels on the long side)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    name = check_filename(name)
    if not data:
        raise UploadError(f"{name}: the file is empty")
    if len(data) > limits.max_bytes:
        raise UploadError(f"{name}: {len(data) / 1e6:.1f} MB is too big "
                          f"(at most {limits.max_bytes / 1e6:.0f} MB per photo)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                fmt = probe.format or ""
                if fmt not in ALLOWED_FORMATS:
                    raise UploadError(f"{name}: {fmt or 'unknown'} images are not accepted "
                                      "(JPEG, PNG or WebP only)")
                w, h = probe.size
                if w * h > limits.max_pixels:
                    raise UploadError(f"{name}: {w}x{h} pixels is too large "
                                      f"(at most {limits.max_pixels / 1e6:.0f} megapixels)")
                probe.verify()
            with Image.open(io.BytesIO(data)) as img:
                shrink_opened(img, PHOTO_MAX_SIDE)  # twelve 40-megapixel photos held 3.8 GB at once
                img.load()
                img = ImageOps.exif_transpose(img) or img
                rgb = img.convert("RGB")
                rgb.thumbnail((PHOTO_MAX_SIDE, PHOTO_MAX_SIDE))
    except UploadError:
        raise
    except UnidentifiedImageError:
        raise UploadError(f"{name}: not an image (or an unknown format)") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise UploadError(f"{name}: image too large to decode safely") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UploadError(f"{name}: corrupt or truncated image ({exc})") from None
    image = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
    return Photo(name=name, image=image, data=data)


def decode_photos(files: list[tuple[str | None, bytes]], limits: UploadLimits) -> list[Photo]:
    """Decode all uploads (name, bytes); UploadError on the first refused one or too many."""
    files = [(n, d) for n, d in files if n or d]
    if not files:
        raise UploadError("choose at least one photo")
    if len(files) > limits.max_files:
        raise UploadError(f"{len(files)} photos sent: at most {limits.max_files} per person")
    return [decode_photo(n or "", d, limits) for n, d in files]
