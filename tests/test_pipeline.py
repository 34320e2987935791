"""Pipeline on replayed door scenes made from real committed photos, with the real dlib models."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from door_helpers import FACES, PEOPLE, STRANGER, person_photos

from kiosk.config import Settings
from kiosk.gallery import Gallery
from kiosk.pipeline import CheckinDecision, Pipeline, PresenceDetector, iou
from kiosk.replay_scenes import background, compose, make_scene
from kiosk.vision.faces import DlibFaceAnalyzer, load_image, make_analyzer


@pytest.fixture(scope="module")
def analyzer() -> DlibFaceAnalyzer:
    return make_analyzer()


@pytest.fixture(scope="module")
def gallery(analyzer: DlibFaceAnalyzer) -> Gallery:
    """PEOPLE enrolled as ids 1, 2 from photos 2-4 (photo 1 is what the camera sees)."""
    g = Gallery(Settings().recognition)
    for pid, name in enumerate(PEOPLE, 1):
        faces = [analyzer.largest_face(load_image(p)) for p in person_photos(name)[1:]]
        g.add(pid, np.stack([f.embedding for f in faces if f is not None and f.accepted]))
    return g


def _settings(**attendance: object) -> Settings:
    s = Settings()
    s.expression.enabled = False
    for key, value in attendance.items():
        setattr(s.attendance, key, value)
    return s


def _run(pipeline: Pipeline, frames_dir: Path, fps: float) -> list[tuple[int, CheckinDecision]]:
    out = []
    for i, path in enumerate(sorted(frames_dir.glob("*.jpg"))):
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        decision = pipeline.process(image, i / fps)
        if decision is not None:
            out.append((i, decision))
    return out


def test_iou() -> None:
    assert iou((0, 10, 10, 0), (0, 10, 10, 0)) == 1.0
    assert iou((0, 10, 10, 0), (20, 30, 30, 20)) == 0.0
    assert iou((0, 10, 10, 0), (0, 10, 10, 5)) == pytest.approx(0.5)


def test_presence_finds_a_near_face_and_scales_the_box_back() -> None:
    photo = load_image(person_photos(PEOPLE[0])[0])
    frame = compose(background(), photo, 300, (320, 240))
    boxes = PresenceDetector(400).detect(frame)
    assert len(boxes) == 1
    top, right, bottom, left = boxes[0]
    assert 100 <= bottom - top <= 300 and left < 320 < right and top < 240 < bottom
    assert PresenceDetector(400).detect(background()) == []


def test_single_frame_fast_path_only_for_close_matches(
    analyzer: DlibFaceAnalyzer, gallery: Gallery, tmp_path: Path
) -> None:
    photos = [person_photos(n)[0] for n in PEOPLE]
    make_scene(photos, None, tmp_path, fps=5.0, steady_s=2.0)
    fast = _run(Pipeline(analyzer, gallery, None, _settings()), tmp_path, 5.0)
    voted = _run(Pipeline(analyzer, gallery, None, _settings(single_frame_distance=0.0)), tmp_path, 5.0)
    assert [d.person_id for _, d in fast] == [d.person_id for _, d in voted] == [1, 2]
    assert all(d.frames_analysed == 1 for _, d in fast)  # enrolled photo: distance well under 0.36
    assert all(d.frames_used >= 2 for _, d in voted)
    assert all(f[1].timings_ms["embed"] < v[1].timings_ms["embed"] for f, v in zip(fast, voted, strict=True))


def test_clear_stranger_is_decided_on_one_frame_only_when_far(
    analyzer: DlibFaceAnalyzer, gallery: Gallery, tmp_path: Path
) -> None:
    make_scene([], FACES / "strangers" / STRANGER, tmp_path, fps=5.0, steady_s=2.0)
    fast = _run(Pipeline(analyzer, gallery, None, _settings()), tmp_path, 5.0)
    voted = _run(Pipeline(analyzer, gallery, None, _settings(single_frame_reject_distance=2.0)), tmp_path, 5.0)
    assert [d.person_id for _, d in fast] == [d.person_id for _, d in voted] == [None]
    assert fast[0][1].frames_analysed == 1  # this stranger is > 0.55 from every enrolled person
    assert voted[0][1].frames_analysed >= 2


def test_split_mirror_pass_gives_the_calibrated_embedding(
    analyzer: DlibFaceAnalyzer, gallery: Gallery, tmp_path: Path
) -> None:
    """When the first frame is not close enough, adding the mirror half equals the full mirror_tta embedding."""
    assert analyzer.settings.mirror_tta
    photos = [person_photos(n)[1] for n in PEOPLE]
    make_scene(photos, None, tmp_path, fps=5.0, steady_s=2.0)
    split = _run(Pipeline(analyzer, gallery, None, _settings(single_frame_distance=0.01)), tmp_path, 5.0)
    whole = _run(Pipeline(analyzer, gallery, None, _settings(single_frame_distance=0.0)), tmp_path, 5.0)
    assert [(f, d.person_id, d.distance) for f, d in split] == [(f, d.person_id, d.distance) for f, d in whole]


def test_one_decision_per_visit_with_the_right_identity(
    analyzer: DlibFaceAnalyzer, gallery: Gallery, tmp_path: Path
) -> None:
    photos = [person_photos(n)[0] for n in PEOPLE]
    visits = make_scene(photos, FACES / "strangers" / STRANGER, tmp_path, fps=5.0, steady_s=2.0)
    pipeline = Pipeline(analyzer, gallery, None, _settings())
    decisions = _run(pipeline, tmp_path, 5.0)
    assert [d.person_id for _, d in decisions] == [1, 2, None]
    for (frame, decision), visit in zip(decisions, visits, strict=True):
        assert visit.first_frame <= frame <= visit.last_frame
        assert not decision.recheck
        # A close match, or a face far from everyone, decides on one frame (fast paths).
        assert decision.frames_used >= 1
        assert decision.frames_analysed >= decision.frames_used
        assert set(decision.timings_ms) == {"detect", "embed", "expression", "match", "total"}
        assert decision.expression is None
    known = [d for _, d in decisions if d.known]
    assert all(d.distance <= 0.45 and 0.0 < d.score <= 1.0 for d in known)
    assert pipeline.state == "idle"


def test_a_lingering_face_is_rechecked_only_every_recheck_s(
    analyzer: DlibFaceAnalyzer, gallery: Gallery, tmp_path: Path
) -> None:
    # 1 frame per second keeps this cheap: 65 s in front of the camera.
    make_scene([person_photos(PEOPLE[1])[0]], None, tmp_path, fps=1.0, steady_s=65.0)
    pipeline = Pipeline(analyzer, gallery, None, _settings(recheck_s=30.0))
    decisions = _run(pipeline, tmp_path, 1.0)
    assert [d.person_id for _, d in decisions] == [2, 2, 2]
    assert [d.recheck for _, d in decisions] == [False, True, True]
    times = [d.t for _, d in decisions]
    assert times[1] - times[0] == pytest.approx(30.0, abs=2.0)
    assert times[2] - times[1] == pytest.approx(30.0, abs=2.0)


def test_small_faces_far_away_are_never_analysed(analyzer: DlibFaceAnalyzer, gallery: Gallery) -> None:
    photo = load_image(person_photos(PEOPLE[0])[0])
    frame = compose(background(), photo, 80, (320, 240))  # face ~60 px: too far away
    pipeline = Pipeline(analyzer, gallery, None, _settings())
    assert all(pipeline.process(frame, i * 0.2) is None for i in range(6))
    assert "embed" not in pipeline.last_frame_ms


def test_reset_and_new_gallery_start_a_new_visit(analyzer: DlibFaceAnalyzer, gallery: Gallery) -> None:
    photo = load_image(person_photos(PEOPLE[0])[0])
    frame = compose(background(), photo, 300, (320, 240))
    pipeline = Pipeline(analyzer, Gallery(), None, _settings(steady_frames=1))
    first = [pipeline.process(frame, i * 0.2) for i in range(4)]
    assert [d.person_id for d in first if d] == [None]  # empty gallery: unknown
    pipeline.set_gallery(gallery)
    pipeline.reset()
    again = [pipeline.process(frame, 1 + i * 0.2) for i in range(4)]
    assert [d.person_id for d in again if d] == [1]


def test_expression_only_for_people_who_consented(analyzer: DlibFaceAnalyzer, gallery: Gallery) -> None:
    from kiosk.vision.expression import DEFAULT_MODEL, TFLiteExpressionClassifier

    if not DEFAULT_MODEL.exists():
        pytest.skip(f"no expression model at {DEFAULT_MODEL}")
    classifier = TFLiteExpressionClassifier(DEFAULT_MODEL, check=False)
    frame = compose(background(), load_image(person_photos(PEOPLE[0])[0]), 300, (320, 240))
    for consent, expect in ((True, True), (False, False)):
        pipeline = Pipeline(analyzer, gallery, classifier, _settings(steady_frames=1),
                            consent=lambda _pid, c=consent: c)
        decisions = [d for i in range(4) if (d := pipeline.process(frame, i * 0.2))]
        assert len(decisions) == 1 and decisions[0].person_id == 1
        assert (decisions[0].expression is not None) is expect
        if expect:
            assert sum(decisions[0].expression.scores.values()) == pytest.approx(1.0, abs=1e-3)
            assert decisions[0].timings_ms["expression"] > 0


def test_next_person_in_a_queue_is_not_taken_for_the_last(
    analyzer: DlibFaceAnalyzer, gallery: Gallery, tmp_path: Path
) -> None:
    # B steps in 0.2 s after A walks off: shorter than leave_s, so the face "never left".
    photos = [person_photos(n)[0] for n in PEOPLE]
    make_scene(photos, None, tmp_path, fps=5.0, steady_s=2.0, empty_s=0.2)
    pipeline = Pipeline(analyzer, gallery, None, _settings())
    decisions = _run(pipeline, tmp_path, 5.0)
    assert [(d.person_id, d.recheck) for _, d in decisions] == [(1, False), (2, False)]
