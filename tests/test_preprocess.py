"""Shared face preprocessing: deterministic, FER framing, eye alignment."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import TEST_DATA, need_shared

from kiosk.vision import preprocess
from kiosk.vision.preprocess import (
    INPUT_SIZE,
    align_face,
    eye_centres,
    normalise_intensity,
    prepare_fer_crop,
)


def _face_photo():
    from kiosk.vision.faces import load_image, make_analyzer

    photos = sorted((TEST_DATA / "faces" / "people").glob("*/*.jpg"))
    image = load_image(photos[0])
    face = make_analyzer().largest_face(image)
    assert face is not None
    return image, face


def test_normalise_stretches_contrast_and_is_deterministic():
    rng = np.random.default_rng(0)
    dull = rng.integers(100, 140, size=(48, 48), dtype=np.uint8)
    out = normalise_intensity(dull)
    assert out.dtype == np.uint8 and out.shape == (48, 48)
    assert out.min() <= 5 and out.max() >= 250
    assert np.array_equal(out, normalise_intensity(dull.copy()))


def test_flat_image_is_left_alone():
    flat = np.full((48, 48), 77, np.uint8)
    assert np.array_equal(normalise_intensity(flat), flat)


def test_prepare_fer_crop_resizes_any_size():
    grey = np.tile(np.arange(96, dtype=np.uint8), (96, 1))
    out = prepare_fer_crop(grey)
    assert out.shape == (INPUT_SIZE, INPUT_SIZE) and out.dtype == np.uint8


def test_align_face_levels_the_eyes():
    image, face = _face_photo()
    o_left, o_right = eye_centres(face.landmarks)
    original = np.degrees(np.arctan2(o_right[1] - o_left[1], o_right[0] - o_left[0]))
    # Rotate the photo by 12 degrees; after alignment the eye line must be level again.
    h, w = image.shape[:2]
    rot = cv2.warpAffine(image, cv2.getRotationMatrix2D((w / 2, h / 2), 12, 1.0), (w, h),
                         borderMode=cv2.BORDER_REPLICATE)
    from kiosk.vision.faces import make_analyzer

    rotated_face = make_analyzer().largest_face(rot)
    assert rotated_face is not None
    left, right = eye_centres(rotated_face.landmarks)
    assert abs(np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0])) - original) > 8
    crop = align_face(rot, rotated_face.landmarks)
    big = np.dstack([cv2.resize(crop, (192, 192), interpolation=cv2.INTER_CUBIC)] * 3)
    import face_recognition

    marks = face_recognition.face_landmarks(big, [(0, 192, 192, 0)])[0]
    l2, r2 = eye_centres(marks)
    assert abs(np.degrees(np.arctan2(r2[1] - l2[1], r2[0] - l2[0]))) < 4
    assert abs((l2[1] + r2[1]) / 2 / 192 - preprocess.EYE_LINE_Y) < 0.06


def test_align_face_is_deterministic():
    image, face = _face_photo()
    assert np.array_equal(align_face(image, face.landmarks), align_face(image.copy(), face.landmarks))


def test_align_face_needs_eyes():
    with pytest.raises(ValueError, match="left_eye"):
        align_face(np.zeros((100, 100, 3), np.uint8), {"nose_tip": [(5, 5)]})


@pytest.mark.shared_data
def test_fer_framing_matches_constants():
    """Re-measure where FER2013 puts the eyes; the alignment constants must agree."""
    import face_recognition

    files = sorted(need_shared("fer2013", "train").glob("*/*.jpg"))[::400][:60]
    ys, ds = [], []
    for f in files:
        big = cv2.resize(cv2.imread(str(f), 0), (192, 192), interpolation=cv2.INTER_CUBIC)
        rgb = np.dstack([big] * 3)
        boxes = face_recognition.face_locations(rgb, 1)
        if boxes:
            left, right = eye_centres(face_recognition.face_landmarks(rgb, boxes[:1])[0])
            ys.append((left[1] + right[1]) / 2 / 192)
            ds.append(np.hypot(*(right - left)) / 192)
    assert len(ys) >= 20
    assert abs(np.median(ys) - preprocess.EYE_LINE_Y) < 0.03
    assert abs(np.median(ds) - preprocess.EYE_DISTANCE) < 0.04
