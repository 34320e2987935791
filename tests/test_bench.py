"""`kiosk bench` on a short replayed scene: structure of the result and the gross orders of magnitude."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from door_helpers import PEOPLE, person_photos

from kiosk.bench import (
    SAMPLE_STRANGER_PERSON,
    add_embedder_comparison,
    format_bench,
    run_bench,
    sample_arrivals,
    search_times,
)
from kiosk.config import Settings
from kiosk.errors import KioskError
from kiosk.gallery import Gallery
from kiosk.replay_scenes import background, make_scene
from kiosk.vision.faces import load_image, make_analyzer
from kiosk.vision.presence import presence_width


def test_search_times_structure() -> None:
    result = search_times((100, 1000), probes=20)
    assert set(result) == {"100", "1000"}
    assert all(v["n"] == 20 and 0 < v["p50"] <= v["p95"] for v in result.values())


def test_no_frames_is_a_clear_error(tmp_path: Path, dlib_analyzer) -> None:
    with pytest.raises(KioskError, match="no replay frames"):
        run_bench(Settings(), tmp_path, analyzer=dlib_analyzer)


@pytest.mark.slow
def test_bench_on_a_short_scene(tmp_path: Path) -> None:
    settings = Settings()
    settings.expression.enabled = False
    analyzer = make_analyzer(settings.recognition)
    gallery = Gallery(settings.recognition)
    for pid, name in enumerate(PEOPLE, 1):
        faces = [analyzer.largest_face(load_image(p)) for p in person_photos(name)[1:]]
        gallery.add(pid, np.stack([f.embedding for f in faces if f is not None]))
    make_scene([person_photos(n)[0] for n in PEOPLE], None, tmp_path, 5.0, steady_s=1.0, empty_s=1.0)
    result = run_bench(settings, tmp_path, True, gallery=gallery, analyzer=analyzer, search_sizes=(100, 10_000),
                       repeats=2, expected=list(PEOPLE), names=dict(enumerate(PEOPLE, 1)))
    json.dumps(result)  # JSON-ready
    assert result["checkins"] == 2 and result["checkins_known"] == 2 and result["checkins_correct"] == 2
    # Two passes over the same frames; the headline figures are the medians of the passes' own.
    assert result["repeats"] == 2 and len(result["passes"]) == 2
    assert result["ours_p95_ms"] == pytest.approx(np.median([p["ours_p95_ms"] for p in result["passes"]]), abs=0.01)
    assert result["speedup"] == pytest.approx(np.median([p["speedup"] for p in result["passes"]]), abs=0.01)
    # Both detectors and both embedders, stage by stage, on the same frames.
    stages = result["stages"]
    assert stages["faces_found"] == {"yunet": 2, "hog": 2}
    for stage, variants in (("presence", {"yunet", "hog"}), ("window", {"yunet"}), ("landmarks", {"yunet", "hog"}),
                            ("chip", {"yunet", "hog"}), ("embed", {"litert", "dlib"}), ("mirror", {"litert", "dlib"})):
        assert set(stages[stage]) == variants and all(v["n"] == 4 for v in stages[stage].values()), stage
    assert stages["embed"]["dlib"]["p50"] > stages["embed"]["litert"]["p50"]  # gross order only
    for key in ("baseline_p95_ms", "ours_p95_ms", "speedup", "search_10k_ms", "burst_speedup"):
        assert isinstance(result[key], float), key
    # Gross orders only (this machine is shared): the naive loop is slower per frame and per check-in.
    assert result["frame_speedup"] > 3
    assert result["speedup"] > 1.5
    assert result["search_10k_ms"] < 20
    assert set(result["ours"]["burst_stage_ms"]) == {"detect", "embed", "expression", "match", "store"}
    # The door's order: journal (durable), greeting, then the database commit, timed apart.
    ours = result["ours"]
    assert ours["commit_ms"]["n"] == 4 and ours["commit_ms"]["p50"] > 0
    assert ours["checkin_commit_ms"]["p50"] > ours["checkin_ms"]["p50"]
    assert result["events_written"] == 2  # every decision of the first pass reached the scratch database
    # The tracked face is searched for only around its last box on most of its frames.
    searches = result["presence_searches"]
    assert searches["window"] > searches["missed"] and searches["window"] > 2
    assert result["embedder"] == "litert" and isinstance(result["embed_ms_p50"], float)
    add_embedder_comparison(result, settings, person_photos(PEOPLE[0])[:2])
    assert set(result["embedders"]) == {"dlib", "litert"}
    assert all(v["n"] == 4 for v in result["embedders"].values())  # 2 faces x 2 rounds each
    assert result["embed_speedup"] > 1  # gross order only: the twin is the faster one
    text = format_bench(result)
    assert "per check-in" in text and "commit after greeting" in text and "window" in text and "10000 people" in text and "dlib / litert" in text and "per stage" in text


def test_bench_without_any_face_says_so(tmp_path: Path, dlib_analyzer) -> None:
    import cv2

    for i in range(3):
        cv2.imwrite(str(tmp_path / f"frame_{i:06d}.jpg"), background())
    with pytest.raises(KioskError, match="no check-in"):
        run_bench(Settings(), tmp_path, True, gallery=Gallery(), search_sizes=(100,), analyzer=dlib_analyzer)


def test_sample_scene_has_enough_checkins_people_and_strangers() -> None:
    """The default bench scene: at least 20 check-ins of several enrolled people and 3+ strangers,
    all from committed photos; nobody walks up with a photo they were enrolled with."""
    enrol, arrivals = sample_arrivals()
    assert len(arrivals) >= 20 and len(enrol) >= 3
    assert SAMPLE_STRANGER_PERSON not in enrol
    strangers = [a for a in arrivals if a.stranger]
    identities = {a.photo.parent.name if a.photo.parent.parent.name == "people" else a.photo.stem for a in strangers}
    assert len(identities) >= 3 and len(strangers) >= 5
    assert {a.label for a in arrivals if not a.stranger} == set(enrol)
    enrolled_photos = {p for photos in enrol.values() for p in photos}
    assert not any(a.photo in enrolled_photos for a in arrivals)
    assert all(a.photo.is_file() for a in arrivals)


def test_presence_width_is_per_detector() -> None:
    settings = Settings()
    assert settings.recognition.detector == "yunet"
    assert presence_width(settings) == settings.recognition.yunet_presence_width == 320
    settings.recognition.detector = "hog"
    assert presence_width(settings) == settings.attendance.presence_width == 400


@pytest.mark.slow
def test_sample_scene_decides_every_visit_once_with_and_without_the_window(tmp_path: Path, dlib_analyzer) -> None:
    """The bench's own scene (25 arrivals, real models): every visit decided right, once, and no
    re-check of a face that is still settling after its decision, whether tracked faces are searched
    in a window or in the whole frame. (Failed before: 5 re-checks with the window, 2 without; the
    window's boxes differ a little from the whole frame's, so decisions fell on the approach more often.)"""
    from kiosk.bench import load_frames, sample_scene
    from kiosk.pipeline import Pipeline

    settings = Settings()
    settings.expression.enabled = False
    gallery, visits, names = sample_scene(tmp_path, dlib_analyzer, settings)
    frames = load_frames(tmp_path)
    for crop in (True, False):
        settings.attendance.presence_crop = crop
        pipeline = Pipeline(dlib_analyzer, gallery, None, settings)
        decisions = [(i, d) for i, frame in enumerate(frames) if (d := pipeline.process(frame, i / 5.0))]
        assert [d.recheck for _, d in decisions].count(True) == 0, (crop, [i for i, d in decisions if d.recheck])
        assert len(decisions) == len(visits) == 25
        for (i, d), visit in zip(decisions, visits, strict=True):
            assert visit.first_frame <= i <= visit.last_frame
            assert (names[d.person_id] if d.person_id is not None else "stranger") == visit.label, (i, visit)
