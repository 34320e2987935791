"""Face detection, landmarks, quality checks and 128-d embeddings with face_recognition (dlib).

Images are RGB uint8 HxWx3 numpy arrays; boxes are (top, right, bottom, left) pixels, as in
face_recognition. Each face is detected once; its box is reused for landmarks and embedding.
With RecognitionSettings.mirror_tta the embedding is the mean of the face's and its mirror
image's embeddings (test-time augmentation). With RecognitionSettings.embedder "litert" the
embedding net runs as its LiteRT twin (kiosk/vision/embedder.py) on dlib's own face chip.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from kiosk.config import RecognitionSettings
from kiosk.errors import ImageError
from kiosk.vision.dlib_models import load_face_recognition
from kiosk.vision.yunet import YuNetDetector

logger = logging.getLogger(__name__)

Box = tuple[int, int, int, int]
Landmarks = dict[str, list[tuple[int, int]]]

# Lower-case suffixes of the photo files the project reads from folders (enrolment, replay,
# evaluations, bench); load_image (Pillow) and cv2.imread both decode all of them.
IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})

EMBEDDING_SIZE = 128
# The grey face crop is resized to this square before measuring sharpness, so the
# threshold does not depend on how many pixels the face covers.
SHARPNESS_CROP_PX = 128

# face_recognition's names for ranges of the 68 dlib points.
_PARTS_68: dict[str, range] = {
    "chin": range(0, 17),
    "left_eyebrow": range(17, 22),
    "right_eyebrow": range(22, 27),
    "nose_bridge": range(27, 31),
    "nose_tip": range(31, 36),
    "left_eye": range(36, 42),
    "right_eye": range(42, 48),
    "top_lip": range(48, 55),
    "bottom_lip": range(60, 67),
}


@dataclass
class FaceObservation:
    """One detected face: box (top, right, bottom, left) px, 68-point landmarks, 128-d float32 embedding."""

    box: Box
    landmarks: Landmarks
    embedding: np.ndarray | None
    quality: float
    sharpness: float
    yaw_ratio: float
    rejected_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def height(self) -> int:
        """Box height in pixels."""
        return self.box[2] - self.box[0]

    @property
    def accepted(self) -> bool:
        """True when the face passed the quality checks and has an embedding."""
        return self.rejected_reason is None and self.embedding is not None


class FaceAnalyzer(Protocol):
    """Finds faces in an RGB uint8 HxWx3 image and describes them."""

    def analyze(self, image: np.ndarray) -> list[FaceObservation]: ...

    def largest_face(self, image: np.ndarray) -> FaceObservation | None: ...


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


def fit_within(image: np.ndarray, max_side: int | None) -> np.ndarray:
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


def probe_image(source: Any, name: str, *, max_pixels: int = MAX_IMAGE_PIXELS,
                formats: frozenset[str] | None = None) -> tuple[int, int]:
    """(width, height) px of a photo (a path or a binary file object) from its header, decoding
    nothing; ImageError if it is no image, of a format not in formats, or too large (check_pixels)."""
    from PIL import Image

    with _pillow_errors(name), Image.open(source) as probe:
        _check_format(probe, name, formats)
        check_pixels(probe, name, max_pixels)
        return probe.size


def decode_image(source: Any, name: str, *, max_side: int | None = None,
                 max_pixels: int = MAX_IMAGE_PIXELS, formats: frozenset[str] | None = None,
                 verify: bool = False) -> np.ndarray:
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
               max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
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


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ImageError("expected an RGB uint8 numpy image")
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"expected an RGB HxWx3 image, got shape {image.shape}")
    return np.ascontiguousarray(image)


def sharpness_of(image: np.ndarray, box: Box) -> float:
    """Variance of the Laplacian of the grey face crop resized to 128x128 (higher = sharper)."""
    top, right, bottom, left = box
    crop = image[max(top, 0):max(bottom, 0), max(left, 0):max(right, 0)]
    if crop.size == 0:
        return 0.0
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    interp = cv2.INTER_AREA if grey.shape[0] > SHARPNESS_CROP_PX else cv2.INTER_LINEAR
    grey = cv2.resize(grey, (SHARPNESS_CROP_PX, SHARPNESS_CROP_PX), interpolation=interp)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def yaw_ratio_of(landmarks: Landmarks) -> float:
    """Head turn estimate: |nose tip offset from the eye midpoint along the eye axis| / eye distance.

    0 for a frontal face; about 0.5 when the nose sits under one eye.
    """
    try:
        left = np.mean(np.asarray(landmarks["left_eye"], dtype=np.float64), axis=0)
        right = np.mean(np.asarray(landmarks["right_eye"], dtype=np.float64), axis=0)
        nose_pts = np.asarray(landmarks["nose_tip"], dtype=np.float64)
    except KeyError:
        return 0.0
    # The middle point of the 68-point nose_tip row is the tip; the 5-point model has one point.
    nose = nose_pts[len(nose_pts) // 2]
    axis = right - left
    dist = float(np.hypot(*axis))
    if dist < 1e-6:
        return 0.0
    offset = float(np.dot(nose - (left + right) / 2.0, axis / dist))
    return abs(offset) / dist


def _shape_to_landmarks(shape: Any) -> Landmarks:
    points = [(int(shape.part(i).x), int(shape.part(i).y)) for i in range(shape.num_parts)]
    if shape.num_parts == 68:
        out = {name: [points[i] for i in idx] for name, idx in _PARTS_68.items()}
        # face_recognition closes the lips with these extra points.
        out["top_lip"] += [points[64], points[63], points[62], points[61], points[60]]
        out["bottom_lip"] = [points[i] for i in range(54, 60)] + [points[48], points[60]] + [
            points[67], points[66], points[65], points[64]]
        return out
    return {"nose_tip": [points[4]], "left_eye": points[2:4], "right_eye": points[0:2]}


class DlibFaceAnalyzer:
    """FaceAnalyzer on dlib's models: YuNet, HOG or dlib CNN detector, dlib landmarks, and
    ResNet embeddings by dlib or (settings.embedder "litert") by its LiteRT twin
    (kiosk.vision.embedder) on the same dlib face chip.
    """

    def __init__(self, settings: RecognitionSettings | None = None) -> None:
        self.settings = settings or RecognitionSettings()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import dlib
        self._dlib = dlib
        self._api = load_face_recognition()  # ModelError naming a missing/damaged model file
        if self.settings.embedder == "dlib":
            self._api.face_encoder  # noqa: B018 - load it now (ModelError at start, not at the first face)
        self._embedder: Any = None
        if self.settings.embedder == "litert":
            from kiosk.vision.embedder import LiteRTFaceEmbedder, model_path

            self._embedder = LiteRTFaceEmbedder(model_path(self.settings.embedder_model),
                                                check=self.settings.embedder_verify_checksum)
        self.yunet: YuNetDetector | None = None
        if self.settings.detector == "yunet":
            s = self.settings
            self.yunet = YuNetDetector(s.yunet_model, score_threshold=s.yunet_score,
                                       check=s.yunet_verify_checksum)

    # -- detection ---------------------------------------------------------------------------
    def detect(self, image: np.ndarray) -> list[Box]:
        """Face boxes (top, right, bottom, left) px in an RGB uint8 HxWx3 image."""
        image = _check_image(image)
        s = self.settings
        if self.yunet is not None:
            boxes = self.yunet.detect(image)
            if not boxes and s.edge_pad > 0:
                boxes = self._detect_padded(image, s.edge_pad)
            return boxes
        boxes = self._api.face_locations(image, s.upsample, s.detector)
        if not boxes and s.upsample > 0:
            # Without upsampling the HOG pyramid finds some large faces the upsampled one
            # misses (~1/3 of LFW's misses), for a quarter of the cost.
            boxes = self._api.face_locations(image, 0, s.detector)
        if not boxes and s.edge_pad > 0:
            boxes = self._detect_padded(image, s.edge_pad)
        return boxes

    def _detect_padded(self, image: np.ndarray, fraction: float) -> list[Box]:
        """Boxes found on a copy with a black border of fraction x the longer side, clipped to the image."""
        height, width = image.shape[:2]
        pad = int(round(fraction * max(height, width)))
        padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        boxes: list[Box] = []
        if self.yunet is not None:
            found = self.yunet.detect(padded)
        else:
            found = self._api.face_locations(padded, 0, self.settings.detector)
        for top, right, bottom, left in found:
            box = (max(top - pad, 0), min(right - pad, width), min(bottom - pad, height), max(left - pad, 0))
            if box[2] > box[0] and box[1] > box[3]:
                boxes.append(box)
        return boxes

    def embed(self, image: np.ndarray, box: Box) -> np.ndarray:
        """128-d float32 embedding of the face in box (top, right, bottom, left) px of an RGB uint8 HxWx3 image.

        With mirror_tta the mirrored image (box mirrored too) is embedded as well and the two
        embeddings are averaged (2x the time); no quality checks.
        """
        return self._embed(_check_image(image), box)

    def _embed(self, image: np.ndarray, box: Box, shape68: Any = None, mirror: bool | None = None) -> np.ndarray:
        s = self.settings
        embedding = self._embed_once(image, box, shape68 if s.landmark_model == "large" else None)
        if s.mirror_tta if mirror is None else mirror:
            embedding = (embedding + self.mirror_embedding(image, box)) / 2.0
        return embedding.astype(np.float32)

    def mirror_embedding(self, image: np.ndarray, box: Box) -> np.ndarray:
        """128-d float32 embedding of the mirrored face: (plain + this) / 2 is the mirror_tta embedding."""
        width = image.shape[1]
        top, right, bottom, left = box
        mirrored_box = (top, width - 1 - left, bottom, width - 1 - right)
        return self._embed_once(np.ascontiguousarray(image[:, ::-1]), mirrored_box)

    def _embed_once(self, image: np.ndarray, box: Box, shape: Any = None) -> np.ndarray:
        s = self.settings
        if shape is None:
            rect = self._api._css_to_rect(box)
            if s.landmark_model == "large":
                shape = self._api.pose_predictor_68_point(image, rect)
            else:
                shape = self._api.pose_predictor_5_point(image, rect)
        if self._embedder is not None:
            # The chip compute_face_descriptor makes (150 px, padding 0.25), into the LiteRT twin.
            chip = self._dlib.get_face_chip(image, shape, size=150, padding=0.25)
            return self._embedder.embed_chip(chip)
        desc = self._api.face_encoder.compute_face_descriptor(image, shape, s.num_jitters)
        return np.asarray(desc, dtype=np.float32)

    def describe(self, image: np.ndarray, box: Box, embed_rejected: bool = False,
                 mirror: bool | None = None, embed: bool = True) -> FaceObservation:
        """Landmarks, quality and (unless rejected) the 128-d float32 embedding of the face in box.

        mirror overrides settings.mirror_tta for this call (False: one embedding pass only);
        embed=False only checks the quality (no embedding, so the result is never `accepted`).
        """
        image = _check_image(image)
        s = self.settings
        q = s.quality
        rect = self._api._css_to_rect(box)
        shape68 = self._api.pose_predictor_68_point(image, rect)
        landmarks = _shape_to_landmarks(shape68)
        height = box[2] - box[0]
        sharp = sharpness_of(image, box)
        yaw = yaw_ratio_of(landmarks)
        reason: str | None = None
        if height < q.min_face_px:
            reason = f"face too small ({height} px < {q.min_face_px} px): come closer"
        elif sharp < q.min_sharpness:
            reason = f"face blurred (sharpness {sharp:.0f} < {q.min_sharpness:.0f}): hold still"
        elif yaw > q.max_yaw_ratio:
            reason = f"face turned away (yaw {yaw:.2f} > {q.max_yaw_ratio:.2f}): look at the camera"
        quality = (
            min(1.0, height / (2.0 * max(q.min_face_px, 1)))
            * min(1.0, sharp / (4.0 * max(q.min_sharpness, 1e-6)))
            * max(0.0, 1.0 - yaw / (2.0 * max(q.max_yaw_ratio, 1e-6)))
        )
        embedding = None
        if embed and (reason is None or embed_rejected):
            embedding = self._embed(image, box, shape68, mirror)
        return FaceObservation(box=tuple(int(v) for v in box), landmarks=landmarks,  # type: ignore[arg-type]
                               embedding=embedding, quality=float(quality), sharpness=sharp,
                               yaw_ratio=yaw, rejected_reason=reason)

    # -- FaceAnalyzer ------------------------------------------------------------------------
    def analyze(self, image: np.ndarray) -> list[FaceObservation]:
        """All faces in an RGB uint8 HxWx3 image, largest first."""
        image = _check_image(image)
        boxes = sorted(self.detect(image), key=lambda b: -(b[2] - b[0]) * (b[1] - b[3]))
        return [self.describe(image, b) for b in boxes]

    def largest_face(self, image: np.ndarray) -> FaceObservation | None:
        """The largest face in an RGB uint8 HxWx3 image (only it is embedded), or None."""
        image = _check_image(image)
        boxes = self.detect(image)
        if not boxes:
            return None
        box = max(boxes, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))
        return self.describe(image, box)


def make_analyzer(settings: RecognitionSettings | None = None) -> DlibFaceAnalyzer:
    """The face analyzer configured by settings (loads the dlib models once, ~0.5 s)."""
    return DlibFaceAnalyzer(settings)
