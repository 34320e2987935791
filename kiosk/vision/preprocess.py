"""Face preprocessing shared by training and run time: eye alignment, FER-style crop, intensity normalisation.

FER2013 images are 48x48 grey faces, roughly frontal, eyes about a third down the image.
A camera face is rotated so the eyes lie on a horizontal line, cropped to the same framing
and down-sampled, so the classifier sees at run time what it saw in training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np
import numpy.typing as npt

from kiosk.vision.types import GreyImage, RGBImage

INPUT_SIZE = 48
CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")

# Where the eye centres sit in a FER2013 crop, as fractions of the side (x of the midpoint
# between the eyes, y of the eye line, eye distance). Measured with face_recognition's
# landmarks on 179 upscaled FER2013 training images: medians 0.495, 0.393, 0.359
# (tests/test_preprocess.py::test_fer_framing_matches_constants re-measures them).
EYE_MID_X = 0.5
EYE_LINE_Y = 0.39
EYE_DISTANCE = 0.36


def to_grey(image: RGBImage | GreyImage) -> GreyImage:
    """RGB uint8 HxWx3 (or grey HxW) -> grey uint8 HxW."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), dtype=np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    raise ValueError(f"expected an RGB HxWx3 or grey HxW image, got shape {image.shape}")


def normalise_intensity(grey: GreyImage) -> GreyImage:
    """Stretch grey uint8 HxW so its 1st..99th percentiles span 0..255 (deterministic)."""
    low, high = np.percentile(grey, (1.0, 99.0))
    if high - low < 1.0:
        return grey.copy()
    stretched = (grey.astype(np.float32) - low) * (255.0 / (high - low))
    out: GreyImage = np.clip(stretched + 0.5, 0, 255).astype(np.uint8)
    return out


def prepare_fer_crop(grey: GreyImage) -> GreyImage:
    """An already-cropped face (FER2013 style, any size, grey uint8) -> model input uint8 48x48."""
    grey = to_grey(grey)
    if grey.shape != (INPUT_SIZE, INPUT_SIZE):
        grey = np.asarray(cv2.resize(grey, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA), dtype=np.uint8)
    return normalise_intensity(grey)


def _centre(points: Sequence[Sequence[float]]) -> npt.NDArray[np.float64]:
    centre: npt.NDArray[np.float64] = np.asarray(points, dtype=np.float64).reshape(-1, 2).mean(axis=0)
    return centre


def eye_centres(landmarks: Mapping[str, Sequence[Sequence[float]]]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(left, right) eye centres in image (x, y) pixels from face_recognition landmarks.

    "left_eye" is the eye on the image's left (the subject's right), as face_recognition names it.
    """
    try:
        return _centre(landmarks["left_eye"]), _centre(landmarks["right_eye"])
    except KeyError as exc:
        raise ValueError(f"landmarks lack {exc.args[0]!r}; need left_eye and right_eye") from None


def align_face(image: RGBImage | GreyImage, landmarks: Mapping[str, Sequence[Sequence[float]]]) -> GreyImage:
    """RGB uint8 HxWx3 photo + landmarks of one face -> model input grey uint8 48x48.

    Rotates about the eye midpoint so the eyes are horizontal, scales the eye distance to
    EYE_DISTANCE of the side and places the eyes where FER2013 has them; then normalises.
    """
    grey = to_grey(image)
    left, right = eye_centres(landmarks)
    dx, dy = right - left
    angle = float(np.degrees(np.arctan2(dy, dx)))
    distance = float(np.hypot(dx, dy))
    if distance < 1.0:
        raise ValueError("eye landmarks coincide; cannot align the face")
    scale = EYE_DISTANCE * INPUT_SIZE / distance
    mid = (left + right) / 2.0
    matrix = cv2.getRotationMatrix2D((float(mid[0]), float(mid[1])), angle, scale)
    matrix[0, 2] += EYE_MID_X * INPUT_SIZE - mid[0]
    matrix[1, 2] += EYE_LINE_Y * INPUT_SIZE - mid[1]
    # Down-sampling by a large factor: blur first so warpAffine's bilinear sampling does not alias.
    if scale < 0.5:
        sigma = 0.5 / scale
        grey = np.asarray(cv2.GaussianBlur(grey, (0, 0), sigmaX=sigma), dtype=np.uint8)
    crop = cv2.warpAffine(
        grey, matrix, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return normalise_intensity(np.asarray(crop, dtype=np.uint8))
