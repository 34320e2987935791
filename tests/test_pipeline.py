"""Pipeline state machine on door scenes: drawn faces with the fake analyzer (in memory, no dlib),
and one scene made from real committed photos with the real dlib models (slow)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from door_helpers import FACES, PEOPLE, STRANGER, door_settings, person_photos

from kiosk.config import Settings
from kiosk.gallery import Gallery
from kiosk.pipeline import CheckinDecision, Pipeline, iou
from kiosk.replay_scenes import background, compose, make_scene
from kiosk.vision.faces import DlibFaceAnalyzer, FaceAnalyzer, load_image, make_analyzer
from kiosk.vision.fake import FakeFace, FakeFaceAnalyzer, blank_frame, draw_face, fake_scene
from kiosk.vision.presence import PresenceDetector
from kiosk.vision.types import RGBImage

# The fake door: PEOPLE are fake persons 0 and 1 (ids 1, 2), enrolled from photos 1-3; photo 0
# walks up to the camera. The stranger is fake person 5, enrolled nowhere.
FAKE_PEOPLE = (0, 1)
FAKE_STRANGER = FakeFace(5)
# Seconds per fake embedding pass: makes "fewer passes" visible in the stage timings.
FAKE_PASS_S = 0.01


@pytest.fixture(scope="module")
def analyzer() -> FakeFaceAnalyzer:
    return FakeFaceAnalyzer(pass_s=FAKE_PASS_S)


@pytest.fixture(scope="module")
def gallery(analyzer: FakeFaceAnalyzer) -> Gallery:
    """Fake PEOPLE enrolled as ids 1, 2 from photos 1-3 (photo 0 is what the camera sees)."""
    return _enrolled(analyzer, [[draw_face(blank_frame(), FakeFace(p, k), 200, (320, 240)) for k in (1, 2, 3)]
                                for p in FAKE_PEOPLE])


@pytest.fixture(scope="module")
def dlib_analyzer() -> DlibFaceAnalyzer:
    return make_analyzer()


@pytest.fixture(scope="module")
def dlib_gallery(dlib_analyzer: DlibFaceAnalyzer) -> Gallery:
    """PEOPLE enrolled as ids 1, 2 from photos 2-4 (photo 1 is what the camera sees)."""
    return _enrolled(dlib_analyzer, [[load_image(p) for p in person_photos(name)[1:]] for name in PEOPLE])


def _enrolled(analyzer: FaceAnalyzer, photos: list[list[RGBImage]]) -> Gallery:
    g = Gallery(Settings().recognition)
    for pid, images in enumerate(photos, 1):
        faces = [analyzer.largest_face(image) for image in images]
        g.add(pid, np.stack([f.embedding for f in faces if f is not None and f.accepted]))
    return g


def _disk_frames(frames_dir: Path, fps: float) -> Iterator[tuple[float, RGBImage]]:
    for i, path in enumerate(sorted(frames_dir.glob("*.jpg"))):
        yield i / fps, cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _run(pipeline: Pipeline, frames: Iterable[tuple[float, RGBImage]]) -> list[tuple[int, CheckinDecision]]:
    out = []
    for i, (t, image) in enumerate(frames):
        decision = pipeline.process(image, t)
        if decision is not None:
            out.append((i, decision))
    return out


def _people(photo: int = 0) -> list[FakeFace]:
    return [FakeFace(p, photo) for p in FAKE_PEOPLE]


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


def test_single_frame_fast_path_only_for_close_matches(analyzer: FakeFaceAnalyzer, gallery: Gallery) -> None:
    scene = fake_scene(_people(), fps=5.0, steady_s=2.0)
    fast = _run(Pipeline(analyzer, gallery, None, door_settings()), scene)
    voted = _run(Pipeline(analyzer, gallery, None, door_settings(single_frame_distance=0.0)), scene)
    assert [d.person_id for _, d in fast] == [d.person_id for _, d in voted] == [1, 2]
    assert all(d.frames_analysed == 1 for _, d in fast)  # photo 0: distance ~0.16, well under 0.40
    assert all(d.frames_used >= 2 for _, d in voted)
    assert all(f[1].timings_ms["embed"] < v[1].timings_ms["embed"] for f, v in zip(fast, voted, strict=True))
    # The fast path never mirrors; the vote mirrors every analysed frame (one pass each).
    assert all(d.mirror_passes == 0 for _, d in fast)
    assert all(d.mirror_passes == d.frames_analysed for _, d in voted)


def test_clear_stranger_is_decided_on_one_frame_only_when_far(analyzer: FakeFaceAnalyzer, gallery: Gallery) -> None:
    scene = fake_scene([FAKE_STRANGER], fps=5.0, steady_s=2.0)
    fast = _run(Pipeline(analyzer, gallery, None, door_settings()), scene)
    voted = _run(Pipeline(analyzer, gallery, None, door_settings(single_frame_reject_distance=2.0)), scene)
    assert [d.person_id for _, d in fast] == [d.person_id for _, d in voted] == [None]
    assert fast[0][1].frames_analysed == 1  # this stranger is > 0.55 (~1.4) from every enrolled person
    assert voted[0][1].frames_analysed >= 2


def test_split_mirror_pass_gives_the_calibrated_embedding(analyzer: FakeFaceAnalyzer, gallery: Gallery) -> None:
    """When the first frame is not close enough, adding the mirror half equals the full mirror_tta embedding."""
    assert analyzer.settings.mirror_tta
    scene = fake_scene(_people(photo=1), fps=5.0, steady_s=2.0)
    split = _run(Pipeline(analyzer, gallery, None, door_settings(single_frame_distance=0.01)), scene)
    whole = _run(Pipeline(analyzer, gallery, None, door_settings(single_frame_distance=0.0)), scene)
    assert [(f, d.person_id, d.distance) for f, d in split] == [(f, d.person_id, d.distance) for f, d in whole]


@pytest.mark.parametrize("kind", ["fake", pytest.param("dlib", marks=pytest.mark.slow)])
def test_one_decision_per_visit_with_the_right_identity(kind: str, request: pytest.FixtureRequest,
                                                        tmp_path: Path) -> None:
    """The fake scene in memory, and the same scene from real photos (JPEG frames) with real dlib."""
    analyzer: FaceAnalyzer = request.getfixturevalue("analyzer" if kind == "fake" else "dlib_analyzer")
    gallery: Gallery = request.getfixturevalue("gallery" if kind == "fake" else "dlib_gallery")
    frames: Iterable[tuple[float, RGBImage]]
    if kind == "fake":
        scene = fake_scene([*_people(), FAKE_STRANGER], fps=5.0, steady_s=2.0)
        frames, visits = scene, scene.visits
    else:
        photos = [person_photos(n)[0] for n in PEOPLE]
        visits = make_scene(photos, FACES / "strangers" / STRANGER, tmp_path, fps=5.0, steady_s=2.0)
        frames = _disk_frames(tmp_path, 5.0)
    pipeline = Pipeline(analyzer, gallery, None, door_settings())
    decisions = _run(pipeline, frames)
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


def test_a_lingering_face_is_rechecked_only_every_recheck_s(analyzer: FakeFaceAnalyzer, gallery: Gallery) -> None:
    # 1 frame per second keeps this cheap: 65 s in front of the camera.
    scene = fake_scene([FakeFace(FAKE_PEOPLE[1])], fps=1.0, steady_s=65.0)
    pipeline = Pipeline(analyzer, gallery, None, door_settings(recheck_s=30.0))
    decisions = _run(pipeline, scene)
    assert [d.person_id for _, d in decisions] == [2, 2, 2]
    assert [d.recheck for _, d in decisions] == [False, True, True]
    times = [d.t for _, d in decisions]
    assert times[1] - times[0] == pytest.approx(30.0, abs=2.0)
    assert times[2] - times[1] == pytest.approx(30.0, abs=2.0)


def test_small_faces_far_away_are_never_analysed(analyzer: FakeFaceAnalyzer, gallery: Gallery) -> None:
    frame = draw_face(blank_frame(), FakeFace(FAKE_PEOPLE[0]), 60, (320, 240))  # face 60 px: too far away
    pipeline = Pipeline(analyzer, gallery, None, door_settings())
    assert all(pipeline.process(frame, i * 0.2) is None for i in range(6))
    assert "embed" not in pipeline.last_frame_ms


def test_a_face_just_under_the_size_limit_is_not_described(analyzer: FakeFaceAnalyzer, gallery: Gallery) -> None:
    """A face walking up at 90-99% of min_face_px costs only the presence check (its landmarks would
    be thrown away by the size rule), and the person is told to come closer."""
    q = door_settings().recognition.quality
    frame = draw_face(blank_frame(), FakeFace(FAKE_PEOPLE[0]), q.min_face_px - 4, (320, 240))
    pipeline = Pipeline(analyzer, gallery, None, door_settings())
    calls: list[object] = []
    describe = analyzer.describe
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(analyzer, "describe", lambda *a, **k: calls.append(a) or describe(*a, **k))
        assert all(pipeline.process(frame, i * 0.2) is None for i in range(6))
    assert calls == []
    assert "embed" not in pipeline.last_frame_ms
    assert pipeline.hint == "come closer"


def test_reset_and_new_gallery_start_a_new_visit(analyzer: FakeFaceAnalyzer, gallery: Gallery) -> None:
    frame = draw_face(blank_frame(), FakeFace(FAKE_PEOPLE[0]), 300, (320, 240))
    pipeline = Pipeline(analyzer, Gallery(), None, door_settings(steady_frames=1))
    first = [pipeline.process(frame, i * 0.2) for i in range(4)]
    assert [d.person_id for d in first if d] == [None]  # empty gallery: unknown
    pipeline.set_gallery(gallery)
    pipeline.reset()
    again = [pipeline.process(frame, 1 + i * 0.2) for i in range(4)]
    assert [d.person_id for d in again if d] == [1]


def test_expression_only_for_people_who_consented(analyzer: FakeFaceAnalyzer, gallery: Gallery) -> None:
    """The real expression model on the fake face's landmarks: what counts here is who gets scored."""
    from kiosk.vision.expression import DEFAULT_MODEL, TFLiteExpressionClassifier

    if not DEFAULT_MODEL.exists():
        pytest.skip(f"no expression model at {DEFAULT_MODEL}")
    classifier = TFLiteExpressionClassifier(DEFAULT_MODEL, check=False)
    frame = draw_face(blank_frame(), FakeFace(FAKE_PEOPLE[0]), 300, (320, 240))
    for consent, expect in ((True, True), (False, False)):
        pipeline = Pipeline(analyzer, gallery, classifier, door_settings(steady_frames=1),
                            consent=lambda _pid, c=consent: c)
        decisions = [d for i in range(4) if (d := pipeline.process(frame, i * 0.2))]
        assert len(decisions) == 1 and decisions[0].person_id == 1
        assert (decisions[0].expression is not None) is expect
        if expect:
            assert sum(decisions[0].expression.scores.values()) == pytest.approx(1.0, abs=1e-3)
            assert decisions[0].timings_ms["expression"] > 0


def test_next_person_in_a_queue_is_not_taken_for_the_last(analyzer: FakeFaceAnalyzer, gallery: Gallery) -> None:
    # B steps in 0.2 s after A walks off: shorter than leave_s, so the face "never left".
    scene = fake_scene(_people(), fps=5.0, steady_s=2.0, empty_s=0.2)
    pipeline = Pipeline(analyzer, gallery, None, door_settings())
    decisions = _run(pipeline, scene)
    assert [(d.person_id, d.recheck) for _, d in decisions] == [(1, False), (2, False)]


def test_a_face_still_settling_after_its_decision_is_not_rechecked(analyzer: FakeFaceAnalyzer,
                                                                   gallery: Gallery) -> None:
    """Decided on the approach (two frames overlapping by 0.70), then one more step forward (IoU
    0.40 < steady_iou) and standing still: the same person settling, not the next one in a queue.
    (Failed before: the step after the decision counted as "moved", and settling made a re-check.)"""
    face = FakeFace(FAKE_PEOPLE[0])
    bg = blank_frame()
    approach = [(100, (440, 240)), (130, (400, 240)), (150, (385, 240)), (200, (330, 240))]
    frames = [draw_face(bg, face, side, centre) for side, centre in approach]
    frames += [draw_face(bg, face, 210, (320, 240))] * 15  # standing still for 3 s
    pipeline = Pipeline(analyzer, gallery, None, door_settings())
    decisions = _run(pipeline, ((i / 5.0, f) for i, f in enumerate(frames)))
    assert [(i, d.person_id, d.recheck) for i, d in decisions] == [(2, 1, False)]


def test_a_face_that_held_still_then_moved_and_settled_is_rechecked(analyzer: FakeFaceAnalyzer,
                                                                    gallery: Gallery) -> None:
    """After its decision the face holds still, then moves (someone else stepped into the spot, before
    leave_s) and settles: that is checked again at once (the queue case, without waiting recheck_s)."""
    bg = blank_frame()
    a, b = FakeFace(FAKE_PEOPLE[0]), FakeFace(FAKE_PEOPLE[1])
    frames = [draw_face(bg, a, 200, (320, 240))] * 10 + [draw_face(bg, b, 200, (380, 250))] * 10
    pipeline = Pipeline(analyzer, gallery, None, door_settings())
    decisions = _run(pipeline, ((i / 5.0, f) for i, f in enumerate(frames)))
    assert [(d.person_id, d.recheck) for _, d in decisions] == [(1, False), (2, False)]


@pytest.mark.slow
@pytest.mark.parametrize("blur_px", [0, 9, 25])
def test_walking_blur_waits_for_a_still_face_and_decides_right(blur_px: int, dlib_analyzer: DlibFaceAnalyzer,
                                                               dlib_gallery: Gallery, tmp_path: Path) -> None:
    """Two enrolled people and a stranger walk up, their approach frames smeared blur_px px along the
    walk (real models): the same decisions, one each. A sharp face is decided on its first large-enough
    frame (attendance.start_sharpness), a blurred one once it holds still; without the gate every
    face waits for steady_frames."""
    from kiosk.vision.quality import motion_blur

    visits = make_scene([person_photos(n)[0] for n in PEOPLE], FACES / "strangers" / STRANGER, tmp_path, 5.0)
    approach = {i for v in visits for i in range(v.first_frame, v.steady_from)}
    frames = [(t, motion_blur(image, blur_px) if i in approach else image)
              for i, (t, image) in enumerate(_disk_frames(tmp_path, 5.0))]
    offsets = {}
    for gate in (True, False):
        settings = door_settings() if gate else door_settings(start_sharpness=0.0)
        decisions = _run(Pipeline(dlib_analyzer, dlib_gallery, None, settings), frames)
        assert [(d.person_id, d.recheck) for _, d in decisions] == [(1, False), (2, False), (None, False)], gate
        assert all(v.first_frame <= i <= v.last_frame for (i, _), v in zip(decisions, visits, strict=True))
        offsets[gate] = [i - v.first_frame for (i, _), v in zip(decisions, visits, strict=True)]
    assert min(offsets[False]) >= 2, offsets  # without the gate: held still for steady_frames (2) first
    if blur_px == 0:
        assert offsets[True] == [0, 0, 0], offsets  # sharp: the first frame decides
    elif blur_px == 25:  # smeared below start_sharpness: every face waits to hold still, as without the gate
        assert offsets[True] == offsets[False], offsets
