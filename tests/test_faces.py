"""Face analyzer on real committed photos with the real dlib models."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from kiosk.config import RecognitionSettings
from kiosk.errors import ImageError, KioskError
from kiosk.vision.faces import (
    YAW_5_POINT_SCALE,
    DlibFaceAnalyzer,
    FaceAnalyzer,
    load_image,
    make_analyzer,
    yaw_ratio_of,
)

FACES = Path(__file__).parent / "data" / "faces"
MISC = FACES / "misc"


@pytest.fixture(scope="module")
def analyzer() -> DlibFaceAnalyzer:
    return make_analyzer()


def _a_photo() -> Path:
    return sorted((FACES / "people").glob("*/*.jpg"))[0]


def test_protocol_is_satisfied(analyzer: DlibFaceAnalyzer) -> None:
    seam: FaceAnalyzer = analyzer
    assert seam is analyzer


def test_one_face_with_embedding(analyzer: DlibFaceAnalyzer) -> None:
    image = load_image(_a_photo())
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    faces = analyzer.analyze(image)
    assert len(faces) == 1
    face = faces[0]
    top, right, bottom, left = face.box
    assert 0 <= top < bottom <= image.shape[0] and 0 <= left < right <= image.shape[1]
    assert face.embedding is not None
    assert face.embedding.shape == (128,) and face.embedding.dtype == np.float32
    assert 0.0 < face.quality <= 1.0 and face.rejected_reason is None and face.accepted
    # 68-point landmarks for the expression module's eye alignment.
    assert len(face.landmarks["left_eye"]) == 6 and len(face.landmarks["right_eye"]) == 6
    assert len(face.landmarks["chin"]) == 17
    again = analyzer.largest_face(image)
    assert again is not None and again.box == face.box
    np.testing.assert_allclose(again.embedding, face.embedding, atol=1e-6)


def test_same_person_is_nearer_than_other_person(analyzer: DlibFaceAnalyzer) -> None:
    people = sorted((FACES / "people").iterdir())
    a1, a2 = (analyzer.largest_face(load_image(p)).embedding for p in sorted(people[0].glob("*.jpg"))[:2])
    b1 = analyzer.largest_face(load_image(sorted(people[1].glob("*.jpg"))[0])).embedding
    assert np.linalg.norm(a1 - a2) < 0.5 < np.linalg.norm(a1 - b1)


def test_no_face(analyzer: DlibFaceAnalyzer) -> None:
    image = load_image(MISC / "no_face.jpg")
    assert analyzer.analyze(image) == []
    assert analyzer.largest_face(image) is None


def test_two_faces_largest_first(analyzer: DlibFaceAnalyzer) -> None:
    image = load_image(MISC / "two_faces.jpg")
    faces = analyzer.analyze(image)
    assert len(faces) == 2
    assert faces[0].height >= faces[1].height
    assert all(f.embedding is not None for f in faces)
    largest = analyzer.largest_face(image)
    assert largest is not None and largest.box == faces[0].box


@pytest.mark.parametrize("name", ["corrupt.jpg", "not_an_image.jpg", "missing.jpg"])
def test_bad_files_raise_clear_error(name: str) -> None:
    with pytest.raises(ImageError) as info:
        load_image(MISC / name)
    assert isinstance(info.value, KioskError)
    assert name in str(info.value) and "\n" not in str(info.value)


def test_grey_image_becomes_rgb(tmp_path: Path) -> None:
    from PIL import Image

    path = tmp_path / "grey.png"
    Image.fromarray(np.full((20, 30), 77, np.uint8)).save(path)
    image = load_image(path)
    assert image.shape == (20, 30, 3) and image.dtype == np.uint8


def test_blurred_face_rejected(analyzer: DlibFaceAnalyzer) -> None:
    blurred = cv2.GaussianBlur(load_image(_a_photo()), (0, 0), 5)
    face = analyzer.largest_face(blurred)
    assert face is not None and face.embedding is None and not face.accepted
    assert face.rejected_reason is not None and "blurred" in face.rejected_reason


def test_small_face_rejected(analyzer: DlibFaceAnalyzer) -> None:
    small = cv2.resize(load_image(_a_photo()), None, fx=0.22, fy=0.22, interpolation=cv2.INTER_AREA)
    canvas = np.full((320, 320, 3), 128, np.uint8)
    canvas[100:100 + small.shape[0], 100:100 + small.shape[1]] = small
    face = analyzer.largest_face(canvas)
    assert face is not None and face.height < analyzer.settings.quality.min_face_px
    assert face.rejected_reason is not None and "too small" in face.rejected_reason


def test_yaw_ratio() -> None:
    frontal = {"left_eye": [(40, 50)], "right_eye": [(80, 50)], "nose_tip": [(60, 70)]}
    turned = {"left_eye": [(40, 50)], "right_eye": [(80, 50)], "nose_tip": [(76, 70)]}
    assert yaw_ratio_of(frontal) == pytest.approx(0.0)
    assert yaw_ratio_of(turned) == pytest.approx(0.4)


def test_wrong_array_type(analyzer: DlibFaceAnalyzer) -> None:
    with pytest.raises(ImageError):
        analyzer.analyze(np.zeros((10, 10, 3), np.float32))


@pytest.fixture(scope="module")
def plain() -> DlibFaceAnalyzer:
    """The analyzer without mirror test-time augmentation and without the padded retry."""
    return make_analyzer(RecognitionSettings(mirror_tta=False, edge_pad=0.0))


@pytest.fixture(scope="module")
def hog() -> DlibFaceAnalyzer:
    """The HOG analyzer (default settings otherwise)."""
    return make_analyzer(RecognitionSettings(detector="hog"))


@pytest.fixture(scope="module")
def plain_hog() -> DlibFaceAnalyzer:
    """HOG without mirror test-time augmentation and without the padded retry."""
    return make_analyzer(RecognitionSettings(detector="hog", mirror_tta=False, edge_pad=0.0))


def _mirror_box(box: tuple[int, int, int, int], width: int) -> tuple[int, int, int, int]:
    top, right, bottom, left = box
    return (top, width - 1 - left, bottom, width - 1 - right)


def test_mirror_tta_is_mean_of_original_and_mirrored(analyzer: DlibFaceAnalyzer, plain: DlibFaceAnalyzer) -> None:
    assert analyzer.settings.mirror_tta
    image = load_image(_a_photo())
    face = analyzer.largest_face(image)
    assert face is not None and face.embedding is not None
    flipped = np.ascontiguousarray(image[:, ::-1])
    mirrored_box = _mirror_box(face.box, image.shape[1])
    expected = (plain.embed(image, face.box) + plain.embed(flipped, mirrored_box)) / 2.0
    np.testing.assert_allclose(face.embedding, expected, atol=1e-5)
    assert face.embedding.dtype == np.float32 and face.embedding.shape == (128,)
    # Averaging over both mirror images makes the embedding blind to a horizontal flip.
    np.testing.assert_allclose(analyzer.embed(flipped, mirrored_box), face.embedding, atol=1e-5)
    assert np.linalg.norm(plain.embed(flipped, mirrored_box) - plain.embed(image, face.box)) > 0.01


def test_mirror_tta_tightens_same_person_distances(analyzer: DlibFaceAnalyzer, plain: DlibFaceAnalyzer) -> None:
    photos = sorted((FACES / "people").glob("*/*.jpg"))
    boxes = {p: plain.largest_face(load_image(p)).box for p in photos}  # type: ignore[union-attr]

    def mean_distances(an: DlibFaceAnalyzer) -> tuple[float, float]:
        emb = {p: an.embed(load_image(p), boxes[p]) for p in photos}
        pairs = [(a, b) for i, a in enumerate(photos) for b in photos[i + 1:]]
        same = [float(np.linalg.norm(emb[a] - emb[b])) for a, b in pairs if a.parent == b.parent]
        other = [float(np.linalg.norm(emb[a] - emb[b])) for a, b in pairs if a.parent != b.parent]
        return float(np.mean(same)), float(np.mean(other))

    same_plain, other_plain = mean_distances(plain)
    same_tta, other_tta = mean_distances(analyzer)
    # Measured on these 16 photos: same person 0.341 -> 0.326, different people 0.860 -> 0.853.
    assert same_tta < same_plain - 0.005
    assert same_tta / other_tta < same_plain / other_plain


def test_face_filling_the_frame_found_with_edge_pad(hog: DlibFaceAnalyzer, plain_hog: DlibFaceAnalyzer,
                                                    plain: DlibFaceAnalyzer) -> None:
    analyzer = hog
    photo = FACES / "people" / "Ray_Romano" / "Ray_Romano_0003.jpg"
    image = load_image(photo)
    full = analyzer.largest_face(image)
    assert full is not None and full.embedding is not None
    top, right, bottom, left = full.box
    h, w = bottom - top, right - left
    # A tight crop (the inner 80% of the face box): no background around the face for HOG.
    crop = np.ascontiguousarray(image[top + h // 10:bottom - h // 10, left + w // 10:right - w // 10])
    assert plain_hog.detect(crop) == []
    # YuNet (the default detector) finds it without the padded retry.
    assert len(plain.detect(crop)) == 1
    face = analyzer.largest_face(crop)
    assert face is not None and face.accepted and face.embedding is not None
    t, r, b, lft = face.box
    assert 0 <= t < b <= crop.shape[0] and 0 <= lft < r <= crop.shape[1]
    assert float(np.linalg.norm(face.embedding - full.embedding)) < 0.45


def test_door_path_skips_the_68_points_and_embeds_the_same(analyzer: DlibFaceAnalyzer) -> None:
    """describe(full_landmarks=False), the door's path: the same embedding bit for bit (the chip
    comes from the 5 points either way), the 5 points as landmarks, the head turn on the 68-point
    scale; face_landmarks() gives the 68 points for the expression crop."""
    for path in sorted((FACES / "people").glob("*/*.jpg"))[:4]:
        image = load_image(path)
        box = analyzer.detect(image)[0]
        full = analyzer.describe(image, box)
        door = analyzer.describe(image, box, full_landmarks=False)
        assert full.embedding is not None and door.embedding is not None
        assert np.array_equal(full.embedding, door.embedding)
        assert set(door.landmarks) == {"nose_tip", "left_eye", "right_eye"} and "chin" in full.landmarks
        assert door.yaw_ratio == pytest.approx(yaw_ratio_of(door.landmarks) * YAW_5_POINT_SCALE)
        assert abs(door.yaw_ratio - full.yaw_ratio) < 0.1  # frontal photos: both near 0
        assert door.rejected_reason == full.rejected_reason is None
        assert analyzer.face_landmarks(image, box) == full.landmarks
