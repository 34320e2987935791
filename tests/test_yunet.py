"""YuNet detector on real committed photos: checksum, boxes against HOG's, landmarks, the analyzer and presence."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from kiosk.config import RecognitionSettings, Settings
from kiosk.errors import ModelError
from kiosk.pipeline import iou
from kiosk.vision.faces import DlibFaceAnalyzer, load_image, make_analyzer
from kiosk.vision.presence import PresenceDetector, YuNetPresenceDetector, make_presence_detector
from kiosk.vision.yunet import DEFAULT_MODEL, YuNetDetector, to_hog_box

FACES = Path(__file__).parent / "data" / "faces"
PHOTOS = sorted((FACES / "people").glob("*/*.jpg")) + sorted((FACES / "strangers").glob("*.jpg"))


@pytest.fixture(scope="module")
def yunet() -> YuNetDetector:
    return YuNetDetector()


@pytest.fixture(scope="module")
def hog() -> DlibFaceAnalyzer:
    return make_analyzer(RecognitionSettings(detector="hog"))


@pytest.fixture(scope="module")
def yunet_analyzer() -> DlibFaceAnalyzer:
    return make_analyzer(RecognitionSettings(detector="yunet"))


def test_shipped_model_with_checksum_and_licence() -> None:
    assert DEFAULT_MODEL.is_file()
    assert DEFAULT_MODEL.with_name(DEFAULT_MODEL.name + ".sha256").is_file()
    assert "Apache License" in (DEFAULT_MODEL.parent / "LICENSE").read_text()


def test_tampered_model_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / DEFAULT_MODEL.name
    data = bytearray(DEFAULT_MODEL.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    shutil.copy(DEFAULT_MODEL.with_name(DEFAULT_MODEL.name + ".sha256"), tmp_path)
    with pytest.raises(ModelError, match="corrupted or was replaced"):
        YuNetDetector(copy)
    with pytest.raises(ModelError, match="corrupted or was replaced"):
        make_analyzer(RecognitionSettings(detector="yunet", yunet_model=copy))
    (tmp_path / (copy.name + ".sha256")).unlink()
    with pytest.raises(ModelError, match="recognition.yunet_verify_checksum"):
        YuNetDetector(copy)
    with pytest.raises(ModelError, match="not found"):
        YuNetDetector(tmp_path / "missing.onnx")
    # Not an ONNX file, checksum off: one clear error, no OpenCV traceback.
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load YuNet"):
        YuNetDetector(junk, check=False)


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: p.stem)
def test_finds_each_committed_face_like_hog(photo: Path, yunet: YuNetDetector, hog: DlibFaceAnalyzer) -> None:
    image = load_image(photo)
    faces = yunet.faces(image)
    assert faces, f"YuNet found no face in {photo.name}"
    face = max(faces, key=lambda f: f.raw[2] * f.raw[3])
    assert 0.6 <= face.score <= 1.0
    x, y, w, h = face.raw
    # Its 5 landmarks (eyes, nose, mouth corners) lie inside its own box.
    assert np.all((face.landmarks[:, 0] >= x) & (face.landmarks[:, 0] <= x + w))
    assert np.all((face.landmarks[:, 1] >= y) & (face.landmarks[:, 1] <= y + h))
    # The right eye (as seen in the image: the person's right) is left of the left eye.
    assert face.landmarks[0, 0] < face.landmarks[1, 0]
    hog_box = max(hog.detect(image), key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))
    assert iou(face.box, hog_box) > 0.5


def test_to_hog_box_is_square_and_clipped() -> None:
    top, right, bottom, left = to_hog_box(100, 100, 100, 130, 1000, 1000)
    assert right - left == pytest.approx(bottom - top, abs=1)
    assert top > 100 and bottom < 230  # HOG's box starts below YuNet's (which reaches the hairline)
    assert to_hog_box(-20, -20, 100, 130, 60, 60) == (0, 60, 60, 0)


def test_analyzer_with_yunet_embeds_like_hog(yunet_analyzer: DlibFaceAnalyzer, hog: DlibFaceAnalyzer) -> None:
    photo = PHOTOS[0]
    image = load_image(photo)
    face = yunet_analyzer.largest_face(image)
    ref = hog.largest_face(image)
    assert face is not None and face.accepted and ref is not None and ref.embedding is not None
    assert face.embedding is not None and face.embedding.shape == (128,)
    # Same photo, the box from another detector: the embedding barely moves (same person is < 0.45).
    assert float(np.linalg.norm(face.embedding - ref.embedding)) < 0.2
    # 68-point landmarks on the YuNet box for the expression crop.
    assert len(face.landmarks["left_eye"]) == 6 and len(face.landmarks["chin"]) == 17
    assert yunet_analyzer.detect(load_image(FACES / "misc" / "no_face.jpg")) == []
    assert len(yunet_analyzer.analyze(load_image(FACES / "misc" / "two_faces.jpg"))) == 2


def test_presence_detector_follows_the_setting() -> None:
    assert isinstance(make_presence_detector(Settings(recognition={"detector": "hog"})), PresenceDetector)
    presence = make_presence_detector(Settings())  # YuNet is the default
    assert isinstance(presence, YuNetPresenceDetector)
    image = load_image(PHOTOS[0])
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[60:60 + image.shape[0], 200:200 + image.shape[1]] = image
    boxes = presence.detect(frame)
    assert len(boxes) == 1
    top, right, bottom, left = boxes[0]
    assert 60 <= top < bottom <= 60 + image.shape[0] and 200 <= left < right <= 200 + image.shape[1]
    assert presence.detect(np.zeros((480, 640, 3), np.uint8)) == []


def test_door_checkins_with_yunet(yunet_analyzer: DlibFaceAnalyzer, tmp_path: Path) -> None:
    import cv2
    from door_helpers import PEOPLE, STRANGER, person_photos

    from kiosk.gallery import Gallery
    from kiosk.pipeline import Pipeline
    from kiosk.replay_scenes import make_scene

    settings = Settings(recognition={"detector": "yunet"})
    settings.expression.enabled = False
    gallery = Gallery(settings.recognition)
    for pid, name in enumerate(PEOPLE, 1):
        faces = [yunet_analyzer.largest_face(load_image(p)) for p in person_photos(name)[1:]]
        gallery.add(pid, np.stack([f.embedding for f in faces if f is not None and f.accepted]))
    make_scene([person_photos(n)[0] for n in PEOPLE], FACES / "strangers" / STRANGER, tmp_path,
               fps=5.0, steady_s=2.0)
    pipeline = Pipeline(yunet_analyzer, gallery, None, settings)
    assert isinstance(pipeline.presence, YuNetPresenceDetector)
    decisions = []
    for i, path in enumerate(sorted(tmp_path.glob("*.jpg"))):
        decision = pipeline.process(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), i / 5.0)
        if decision is not None:
            decisions.append(decision.person_id)
    assert decisions == [1, 2, None]
