"""`kiosk bench` on a short replayed scene: structure of the result and the gross orders of magnitude."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from door_helpers import PEOPLE, person_photos

from kiosk.bench import add_embedder_comparison, format_bench, run_bench, search_times
from kiosk.config import Settings
from kiosk.errors import KioskError
from kiosk.gallery import Gallery
from kiosk.replay_scenes import background, make_scene
from kiosk.vision.faces import load_image, make_analyzer


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
    result = run_bench(settings, tmp_path, True, gallery=gallery, analyzer=analyzer, search_sizes=(100, 10_000))
    json.dumps(result)  # JSON-ready
    assert result["checkins"] == 2 and result["checkins_known"] == 2
    for key in ("baseline_p95_ms", "ours_p95_ms", "speedup", "search_10k_ms", "burst_speedup"):
        assert isinstance(result[key], float), key
    # Gross orders only (this machine is shared): the naive loop is slower per frame and per check-in.
    assert result["frame_speedup"] > 3
    assert result["speedup"] > 1.5
    assert result["search_10k_ms"] < 20
    assert set(result["ours"]["burst_stage_ms"]) == {"detect", "embed", "expression", "match", "store"}
    assert result["embedder"] == "litert" and isinstance(result["embed_ms_p50"], float)
    add_embedder_comparison(result, settings, person_photos(PEOPLE[0])[:2])
    assert set(result["embedders"]) == {"dlib", "litert"}
    assert all(v["n"] == 4 for v in result["embedders"].values())  # 2 faces x 2 rounds each
    assert result["embed_speedup"] > 1  # gross order only: the twin is the faster one
    text = format_bench(result)
    assert "per check-in" in text and "10000 people" in text and "dlib / litert" in text


def test_bench_without_any_face_says_so(tmp_path: Path, dlib_analyzer) -> None:
    import cv2

    for i in range(3):
        cv2.imwrite(str(tmp_path / f"frame_{i:06d}.jpg"), background())
    with pytest.raises(KioskError, match="no check-in"):
        run_bench(Settings(), tmp_path, True, gallery=Gallery(), search_sizes=(100,), analyzer=dlib_analyzer)
