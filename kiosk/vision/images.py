"""Photo files -> RGB uint8 HxWx3 arrays: header checks before decoding, reduced JPEG decoding, EXIF.

Every photo the project reads (enrolment, uploads, replay folders, evaluations) goes through
here: too many pixels is an ImageError from the header, before anything is decoded.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from kiosk.errors import ImageError
from kiosk.vision.types import RGBImage

logger = logging.getLogger(__name__)

# Lower-case suffixes of the photo files the project reads from folders (enrolment, replay,
# evaluations, bench); load_image (Pillow) and cv2.imread both decode all of them.
IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})

# Photos with more pixels than this are refused from their header, before any decoding.
MAX_IMAGE_PIXELS = 50_000_000
# Formats that cannot be decoded at a reduced size (PNG, WebP, BMP, progressive JPEG) hold the
# whole image while decoding, 4 bytes a pixel in Pillow: above this many pixels (32 MB; an
# 8 MP camera's 3264x2448) they are refused. Measured with `kiosk enroll` (the face models
# alone take ~180 MB, three small photos peak at ~240 MB): three 8 MP PNGs peak at ~290 MB,
# three 12 MP ones at ~315 MB, 20 MP ones at ~350 MB and 2 s each. Baseline JPEG (what
# cameras and phones write) is decoded at 1/2, 1/4 or 1/8 size instead, so it is allowed up
# to MAX_IMAGE_PIXELS. Applies where a scaled-down image is asked for (enrolment, uploads);
# a caller that wants the full-size image pays for it anyway and gets max_pixels only.
MAX_FULL_DECODE_PIXELS = 8_000_000
# Where no setting says otherwise (enrolment.max_photo_side does for the CLI and the web app), photos
# for enrolment are analysed at most this many pixels on their long side: plenty for one face, and
# twelve 40-megapixel uploads no longer need 4 GB and ten minutes of CPU.
PHOTO_MAX_SIDE = 1600


def check_pixels(img: Any, name: str, max_pixels: int, full_decode_pixels: int = MAX_FULL_DECODE_PIXELS) -> None:
    """ImageError when the opened (not yet decoded) Pillow image has more than max_pixels, or more
    than full_decode_pixels in a format that cannot be decoded at a reduced size."""
    width, height = img.size
    fmt = img.format or "image"
    reducible = fmt == "JPEG" and not (img.info.get("progressive") or img.info.get("progression"))
    max_pixels = min(max_pixels, MAX_IMAGE_PIXELS)
    limit = max_pixels if reducible else min(max_pixels, full_decode_pixels)
    if width * height > limit:
        hint = "" if reducible or limit == max_pixels else (
            f"; {'progressive JPEG' if fmt == 'JPEG' else fmt} cannot be decoded reduced: "
            f"send a smaller photo or a plain JPEG (up to {max_pixels / 1e6:g} megapixels)")
        raise ImageError(f"{name}: {width}x{height} pixels is too large "
                         f"(at most {limit / 1e6:g} megapixels{hint})")


def fit_within(image: RGBImage, max_side: int | None) -> RGBImage:
    """The RGB uint8 HxWx3 image scaled down (area averaging, aspect kept) so that its longer side
    is at most max_side pixels; unchanged when already small enough or max_side is None."""
    height, width = image.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return image
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))


@contextmanager
def _pillow_errors(name: str) -> Iterator[None]:
    """Pillow's many exceptions for a bad file -> one ImageError naming the photo."""
    from PIL import Image, ImageFile, UnidentifiedImageError

    # face_recognition switches truncated-file tolerance on for everybody; a cut-off
    # upload must be an error here, not half a grey photo.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    # Pillow's own decompression-bomb guard, a backstop: check_pixels refuses above
    # MAX_IMAGE_PIXELS first, with a clearer message.
    Image.MAX_IMAGE_PIXELS = 2 * MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file (or an unknown format)") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageError(f"{name}: image too large to decode safely") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: cannot read image: corrupt or truncated ({exc})") from None


def probe_image(source: Path | IO[bytes], name: str, *, max_pixels: int = MAX_IMAGE_PIXELS,
                formats: frozenset[str] | None = None) -> tuple[int, int]:
    """(width, height) px of a photo (a path or a binary file object) from its header, decoding
    nothing; ImageError if it is no image, of a format not in formats, or too large (check_pixels)."""
    from PIL import Image

    with _pillow_errors(name), Image.open(source) as probe:
        _check_format(probe, name, formats)
        check_pixels(probe, name, max_pixels)
        return probe.size


def decode_image(source: Path | IO[bytes], name: str, *, max_side: int | None = None,
                 max_pixels: int = MAX_IMAGE_PIXELS, formats: frozenset[str] | None = None,
                 verify: bool = False) -> RGBImage:
    """Decode a photo (a path or a binary file object) -> RGB uint8 HxWx3, EXIF orientation applied,
    grey made RGB, the longer side at most max_side px (None: full size).

    The header is checked first (check_pixels): too many pixels is an ImageError before anything
    is decoded. JPEGs are decoded reduced (draft mode) when max_side allows, and no full-size
    copy outlives the decoding. formats: Pillow format names accepted (None: any); verify: run
    Pillow's structural check of the file first (file objects only).
    """
    from PIL import Image

    with _pillow_errors(name):
        if verify:
            with Image.open(source) as probe:
                probe.verify()
            if not isinstance(source, Path):
                source.seek(0)
        with Image.open(source) as img:
            _check_format(img, name, formats)
            check_pixels(img, name, max_pixels, MAX_FULL_DECODE_PIXELS if max_side is not None else max_pixels)
            rgb = _decode_reduced(img, max_side)
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def _check_format(img: Any, name: str, formats: frozenset[str] | None) -> None:
    if formats is not None and img.format not in formats:
        raise ImageError(f"{name}: {img.format or 'unknown'} images are not accepted "
                         f"({', '.join(sorted(formats))} only)")


def _decode_reduced(img: Any, max_side: int | None) -> Any:
    """The opened Pillow image decoded and scaled to at most max_side px a side, as an RGB Pillow image."""
    from PIL import Image, ImageOps

    if max_side is not None and img.format == "JPEG":
        scale = max_side / max(img.size)
        if scale < 1.0:  # libjpeg decodes at 1/2, 1/4 or 1/8 size, no smaller than asked
            img.draft("RGB", (max(1, int(img.size[0] * scale)), max(1, int(img.size[1] * scale))))
    img.load()
    if img.mode not in ("RGB", "L"):
        img = img.convert("RGB")  # palette, alpha, 16-bit: one full-size copy (within the pixel limit)
    if max_side is not None and max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    img = ImageOps.exif_transpose(img) or img
    return img.convert("RGB")


def load_image(path: Path | str, *, max_side: int | None = None,
               max_pixels: int = MAX_IMAGE_PIXELS) -> RGBImage:
    """Read a photo file -> RGB uint8 HxWx3 (EXIF orientation applied, grey made RGB), scaled
    down to at most max_side px a side (None: full size); ImageError if missing, unreadable,
    or above max_pixels (see decode_image)."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"image not found: {path}")
    if not path.is_file():
        raise ImageError(f"not a file: {path}")
    try:
        return decode_image(path, path.name, max_side=max_side, max_pixels=max_pixels)
    except ImageError as exc:
        raise ImageError(str(exc).replace(f"{path.name}: ", f"{path}: ", 1)) from None


def check_image(image: object) -> RGBImage:
    """The image as a C-contiguous RGB uint8 HxWx3 array (grey HxW made RGB); ImageError otherwise."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ImageError("expected an RGB uint8 numpy image")
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"expected an RGB HxWx3 image, got shape {image.shape}")
    return np.ascontiguousarray(image)


