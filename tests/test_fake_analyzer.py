"""The fake face analyzer: drawn faces found, told apart and embedded deterministically, like dlib's."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from kiosk.config import Settings
from kiosk.gallery import Gallery
from kiosk.replay_scenes import background
from kiosk.vision.embedding import EMBEDDING_SIZE
from kiosk.vision.faces import FaceAnalyzer
from kiosk.vision.fake import (
    PERSONS,
    PHOTOS,
    FakeFace,
    FakeFaceAnalyzer,
    blank_frame,
    draw_face,
    face_at,
    fake_embedding,
    fake_scene,
)
from kiosk.vision.presence import OwnPresence, make_presence_detector


def _jpeg(image: np.ndarray) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return np.ascontiguousarray(cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))


def test_it_is_a_face_analyzer_with_its_own_presence_check() -> None:
    fake = FakeFaceAnalyzer()
    seam: FaceAnalyzer = fake
    assert seam is fake and isinstance(fake, OwnPresence)
    assert make_presence_detector(Settings(), fake) is fake  # no YuNet, no dlib


def test_drawn_faces_are_found_largest_first_and_nothing_on_a_wall() -> None:
    fake = FakeFaceAnalyzer()
    frame = draw_face(draw_face(background(), FakeFace(0), 120, (150, 200)), FakeFace(3, 2), 200, (450, 240))
    assert sorted(fake.detect(frame)) == [(140, 210, 260, 90), (140, 550, 340, 350)]
    faces = fake.analyze(frame)
    assert [f.box for f in faces] == [(140, 550, 340, 350), (140, 210, 260, 90)]
    assert all(f.accepted and f.embedding is not None and f.embedding.shape == (EMBEDDING_SIZE,) for f in faces)
    assert fake.detect(background()) == [] and fake.largest_face(blank_frame()) is None


def test_every_face_survives_jpeg() -> None:
    wall = background()
    for person in range(PERSONS):
        for photo in range(PHOTOS):
            face = FakeFace(person, photo)
            image = _jpeg(draw_face(wall, face, 100, (320, 240)))
            (box,) = FakeFaceAnalyzer().detect(image)
            assert face_at(image, box) == face


def test_embeddings_are_fixed_close_within_a_person_far_between_people() -> None:
    assert np.array_equal(fake_embedding(FakeFace(2, 1)), fake_embedding(FakeFace(2, 1)))
    same = np.linalg.norm(fake_embedding(FakeFace(2, 0)) - fake_embedding(FakeFace(2, 3)))
    other = np.linalg.norm(fake_embedding(FakeFace(2, 0)) - fake_embedding(FakeFace(3, 0)))
    assert same < 0.3 and other > 1.0
    gallery = Gallery(Settings().recognition)
    fake = FakeFaceAnalyzer()
    for person in (0, 1):
        photos = [draw_face(blank_frame(), FakeFace(person, k), 200, (320, 240)) for k in (1, 2, 3)]
        gallery.add(person + 1, np.stack([fake.largest_face(p).embedding for p in photos]))  # type: ignore[union-attr]
    probe = fake.largest_face(draw_face(blank_frame(), FakeFace(1, 0), 200, (320, 240)))
    assert probe is not None and gallery.identify(probe.embedding).person_id == 2
    stranger = fake.largest_face(draw_face(blank_frame(), FakeFace(7), 200, (320, 240)))
    assert stranger is not None and gallery.identify(stranger.embedding).person_id is None


def test_mirror_pass_and_quality_follow_dlibs_rules() -> None:
    fake = FakeFaceAnalyzer(pass_s=0.0)
    frame = draw_face(blank_frame(), FakeFace(4), 200, (320, 240))
    box = fake.detect(frame)[0]
    plain = fake.describe(frame, box, mirror=False).embedding
    both = fake.describe(frame, box).embedding  # mirror_tta is on by default
    assert plain is not None and both is not None
    assert np.array_equal(both, ((plain + fake.mirror_embedding(frame, box)) / 2.0).astype(np.float32))
    small = draw_face(blank_frame(), FakeFace(4), 40, (320, 240))
    face = fake.largest_face(small)
    assert face is not None and not face.accepted and face.embedding is None
    assert face.rejected_reason is not None and face.rejected_reason.endswith("come closer")
    checked = fake.describe(frame, box, embed=False)
    assert checked.rejected_reason is None and checked.embedding is None
    wall = fake.describe(frame, (0, 100, 100, 0))  # no drawn face there
    assert wall.rejected_reason is not None and "blurred" in wall.rejected_reason


def test_scene_visits_match_the_frames() -> None:
    scene = fake_scene([FakeFace(0), FakeFace(1)], fps=5.0, steady_s=2.0, tail_s=1.0)
    fake = FakeFaceAnalyzer()
    assert [v.face for v in scene.visits] == [FakeFace(0), FakeFace(1)]
    for visit in scene.visits:
        steady = scene.frames[visit.steady_from]
        assert face_at(steady, fake.detect(steady)[0]) == visit.face
        assert fake.detect(scene.frames[visit.last_frame + 1]) == []
    assert len(scene.frames) == scene.visits[-1].last_frame + 1 + 10 + 5
    assert [t for t, _ in scene][:2] == [0.0, 0.2]
    with pytest.raises(ValueError):
        FakeFace(PERSONS)
