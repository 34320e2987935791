"""Face evaluation protocol on the committed photos, and the calibration targets on held-out half B."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kiosk.config import RecognitionSettings
from kiosk.evaluation.faces import (
    RESULT_KEYS,
    EvaluationDataError,
    cache_key,
    embed_dataset,
    evaluate_faces,
    half_of,
    load_embedding_cache,
    make_half_split,
    score_protocol,
    stranger_photos,
)
from kiosk.evaluation.metrics import wilson_interval
from kiosk.evaluation.wccn import learn_wccn
from kiosk.evaluation.wccn import main as wccn_main
from kiosk.gallery import DEFAULT_WCCN
from kiosk.vision.faces import load_image, make_analyzer

ROOT = Path(__file__).parents[1]
FACES = Path(__file__).parent / "data" / "faces"
SHARED_FACES = ROOT / ".." / "shared" / "data" / "faces"
# Embeddings of all shared photos under the default settings, written by an earlier live run of
# evaluate_faces(..., cache=...) (see the README); a live run of half B takes about 15 minutes
# on a busy core (mirror_tta embeds every face twice).
EMBEDDING_CACHE = ROOT / "work-cache" / "faces_embeddings.npz"
SHARED_EXTRA = ROOT / ".." / "shared" / "data" / "faces-extra-strangers"
# Targets on held-out half B (issue 14): strangers taken for somebody, enrolled people taken for
# somebody else, enrolled people not recognised (a photo without a usable face counts).
# Measured with YuNet, comparison wccn with the matrix learned from half A's people only and the
# normalised rule tuned on half A (max_distance 0.44, max_normalised_distance 0.1175, cohort 5 x
# 0.4, isolation 0.2, slope 0.01, max_ratio 0.95): with half B's 156 people enrolled, strangers
# 0.33% (4 of 1,224), wrong person 0% (of 693), missed 8.5% (59); with all 295 enrolled 0.74%
# (9), 0%, 8.8% (61). These are the targets themselves.
STRANGER_TARGET, WRONG_TARGET, MISSED_LIMIT = 0.01, 0.002, 0.09


def test_evaluate_on_committed_photos(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    cache = tmp_path / "emb.npz"
    result = evaluate_faces(FACES, enrol_photos=3, progress=lambda d, t: calls.append((d, t)), cache=cache)
    assert tuple(result) == RESULT_KEYS
    n_people = len(list((FACES / "people").iterdir()))
    assert result["people"] == n_people and result["templates"] == 3 * n_people
    assert result["probes"] >= n_people and result["strangers"] == 2
    assert result["identified"] + result["wrong_person"] + result["missed"] == pytest.approx(1.0)
    assert result["identified"] >= 0.75 and result["wrong_person"] == 0.0
    assert result["stranger_accepted"] == 0.0 and result["no_face"] == 0.0
    assert calls[-1][0] == calls[-1][1] == len(calls)
    # The second run reads every embedding from the cache and gives the same figures.
    assert len(load_embedding_cache(cache, cache_key(RecognitionSettings()))) == len(calls)
    again = evaluate_faces(FACES, enrol_photos=3, cache=cache, analyzer=None)
    assert again == result


def test_wilson_interval_known_values() -> None:
    # Wilson score intervals (z = 1.96): Brown, Cai & DasGupta's 81 of 263; 5 of 10; edges.
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 1000) == pytest.approx((0.0, 0.00383), abs=1e-5)
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_extra_strangers_are_probed_with_intervals(tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    # The enrolled people's probe photos under stranger names: accepted, so the rate is not 0.
    for photo in sorted((FACES / "people").glob("*/*_0004.jpg")):
        (extra / photo.name).write_bytes(photo.read_bytes())
    photos = stranger_photos([extra])
    assert len(photos) == 4
    result = evaluate_faces(FACES, enrol_photos=3, extra_strangers=photos)
    assert result["strangers"] == 6
    assert result["counts"]["stranger_accepted"] == round(result["stranger_accepted"] * 6) >= 3
    low, high = result["ci95"]["stranger_accepted"]
    assert low < result["stranger_accepted"] < high
    assert [half_of(p.stem) for p in stranger_photos([extra], half="A")] == ["A"] * len(
        stranger_photos([extra], half="A"))
    with pytest.raises(EvaluationDataError):
        stranger_photos([tmp_path / "missing"])


def test_cache_key_changes_with_embedding_settings() -> None:
    default = cache_key(RecognitionSettings())
    assert cache_key(RecognitionSettings(mirror_tta=False)) != default
    assert cache_key(RecognitionSettings(edge_pad=0.0)) != default
    hog = cache_key(RecognitionSettings(detector="hog"))
    assert hog != default and cache_key(RecognitionSettings(detector="hog", upsample=2)) != hog
    yunet = cache_key(RecognitionSettings(detector="yunet"))
    assert yunet == default and cache_key(RecognitionSettings(detector="yunet", yunet_score=0.8)) != yunet
    # The decision rule is applied after the cache: changing it keeps the embeddings.
    assert cache_key(RecognitionSettings(max_distance=0.4, max_ratio=0.8)) == default


def test_bad_folder(tmp_path: Path) -> None:
    with pytest.raises(EvaluationDataError):
        evaluate_faces(tmp_path)


def test_half_split_is_deterministic(tmp_path: Path) -> None:
    names = [p.name for p in (FACES / "people").iterdir()]
    assert [half_of(n) for n in names] == [half_of(n) for n in names]
    dst = make_half_split(FACES, tmp_path / "B", half="B")
    linked = sorted(p.name for p in (dst / "people").iterdir())
    assert linked == sorted(n for n in names if half_of(n) == "B")
    assert all(half_of(p.stem) == "B" for p in (dst / "strangers").iterdir())


@pytest.mark.shared_data
@pytest.mark.slow
def test_calibration_targets_on_held_out_half(tmp_path: Path) -> None:
    if not SHARED_FACES.is_dir():
        pytest.skip(f"needs the shared face data at {SHARED_FACES.resolve()}")
    EMBEDDING_CACHE.parent.mkdir(parents=True, exist_ok=True)
    half_b = make_half_split(SHARED_FACES, tmp_path / "faces_B", half="B")
    extra = stranger_photos([SHARED_EXTRA], half="B") if SHARED_EXTRA.is_dir() else []
    settings = RecognitionSettings()
    # Live (a fresh clone, CI) every photo is embedded: about 3 minutes on one core with YuNet and
    # the LiteRT embedder; with the cache filled by an earlier run it takes seconds. All of half B's
    # strangers count: a sample of a few hundred cannot tell 0.9% from 1.1%.
    # The A->B check: the WCCN matrix learned from half A's people only (the shipped one has
    # seen half B's people too), the thresholds as shipped (tuned on half A).
    half_a = make_half_split(SHARED_FACES, tmp_path / "faces_A", half="A")
    people_a, _ = embed_dataset(half_a, settings, cache=EMBEDDING_CACHE, strangers=False)
    from kiosk.evaluation.wccn import save_matrix

    save_matrix(learn_wccn(people_a), tmp_path / "wccn_A.npy")
    settings_a = settings.model_copy(update={"comparison_model": tmp_path / "wccn_A.npy"})
    result = evaluate_faces(half_b, enrol_photos=3, settings=settings_a, cache=EMBEDDING_CACHE,
                            extra_strangers=extra)
    assert result["people"] > 100 and result["strangers"] > 100 + len(extra) * 0.9
    # The cache must still be what the pipeline computes: re-embed a few cached photos live.
    cached = load_embedding_cache(EMBEDDING_CACHE, cache_key(settings))
    sample = sorted(half_b.glob("people/*/*.jpg"))[::97] + extra[::211]
    analyzer = make_analyzer(settings)
    for photo in sample:
        rel = photo.relative_to(half_b).as_posix() if photo.is_relative_to(half_b) else str(photo.resolve())
        face = analyzer.largest_face(load_image(photo))
        live = face.embedding if face is not None and face.accepted else None
        if cached[rel] is None or live is None:
            assert cached[rel] is None and live is None, photo
        else:
            np.testing.assert_allclose(cached[rel], live, atol=1e-4, err_msg=str(photo))
    # The shipped matrix is what learn_wccn makes of all the shared people (reproducible).
    people_b, _ = embed_dataset(half_b, settings, cache=EMBEDDING_CACHE, strangers=False)
    np.testing.assert_allclose(learn_wccn({**people_a, **people_b}), np.load(DEFAULT_WCCN), atol=1e-4)
    # Targets, on people and strangers neither the matrix nor the rule was tuned on (half A).
    assert result["stranger_accepted"] <= STRANGER_TARGET
    assert result["wrong_person"] <= WRONG_TARGET
    assert result["missed"] <= MISSED_LIMIT


def test_wccn_shrinks_the_directions_one_person_varies_in(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(20, 128))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    # Every person's photos vary along axis 0 only (a pose direction), a little elsewhere.
    people = {f"p{i}": [(c + rng.normal(0, 0.3) * np.eye(128)[0] + rng.normal(0, 0.01, 128)).astype(np.float32)
                        for _ in range(5)] + [None] for i, c in enumerate(centres)}
    w = learn_wccn(people)
    assert w.shape == (128, 128) and w.dtype == np.float32 and np.allclose(w, w.T, atol=1e-5)
    gain = np.linalg.norm(w, axis=0)
    assert gain[0] < 0.5 * np.median(gain[1:])
    with pytest.raises(ValueError):
        learn_wccn(people, ridge=0.0)
    from kiosk.errors import KioskError

    with pytest.raises(KioskError, match="2 or more people"):
        learn_wccn({"one": people["p0"], "lonely": [people["p1"][0]]})


def test_wccn_command_writes_matrix_and_checksum(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import hashlib
    import json

    out = tmp_path / "w.npy"
    assert wccn_main(["--data", str(FACES), "--out", str(out), "--cache", str(tmp_path / "emb.npz")]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["people"] == len(list((FACES / "people").iterdir())) and line["half"] is None
    assert (tmp_path / "w.npy.sha256").read_text().split()[0] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert np.load(out).shape == (128, 128)
    # Bad input: one message, exit 1, nothing written.
    assert wccn_main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.npy")]) == 1
    assert "people/<Name>" in capsys.readouterr().err and not (tmp_path / "x.npy").exists()


def _lookalike_folder(tmp_path: Path) -> Path:
    """FACES' people, and as strangers/ the half-A people's probe photos under names of half B."""
    data = tmp_path / "lookalikes"
    (data / "strangers").mkdir(parents=True)
    (data / "people").symlink_to((FACES / "people").resolve())
    names = (f"Stranger_{i}" for i in range(1000))
    for photo in sorted((FACES / "people").glob("*/*_0004.jpg")):
        if half_of(photo.parent.name) == "A":
            name = next(n for n in names if half_of(n) == "B")
            (data / "strangers" / f"{name}.jpg").write_bytes(photo.read_bytes())
    return data


def test_enrol_all_scores_one_half_against_the_whole_gallery(tmp_path: Path) -> None:
    # Half B alone enrols only half B's people, so a stranger who looks like somebody of half A
    # is never at risk; enrolling everybody (the site's real gallery size) puts them at risk.
    data = _lookalike_folder(tmp_path)
    b_people = [p.name for p in (FACES / "people").iterdir() if half_of(p.name) == "B"]
    alone = evaluate_faces(data, enrol_photos=3, half="B")
    everybody = evaluate_faces(data, enrol_photos=3, half="B", enrol_all=True)
    assert alone["people"] == len(b_people) and everybody["people"] == len(list((FACES / "people").iterdir()))
    assert everybody["templates"] == 3 * everybody["people"]
    # The same probes (half B's people) and strangers (3 look-alikes of half A's people) are scored.
    assert everybody["probes"] == alone["probes"] == sum(
        len(list((FACES / "people" / n).glob("*.jpg"))) - 3 for n in b_people)
    assert everybody["strangers"] == alone["strangers"] == 3
    assert everybody["no_face"] == alone["no_face"]
    assert alone["counts"]["stranger_accepted"] == 0
    assert everybody["counts"]["stranger_accepted"] >= 2
    with pytest.raises(ValueError, match="half"):
        evaluate_faces(data, half="C")


def test_score_protocol_scores_only_enrolled_people() -> None:
    e = np.ones(128, dtype=np.float32)
    with pytest.raises(ValueError, match="enrolled"):
        score_protocol({"a": [e, e], "b": [e, e]}, [], 1, RecognitionSettings(), gallery_people=["a"],
                       probe_people=["b"])


def test_evaluate_command_enrol_all_and_half_matrix(tmp_path: Path) -> None:
    import json

    from cli_helpers import run_cli

    data = _lookalike_folder(tmp_path)
    cache = tmp_path / "emb.npz"
    args = ("evaluate", "faces", "--data", data, "--cache", cache, "--half", "B")
    plain = json.loads(run_cli(*args).stdout.strip().splitlines()[-1])
    proc = run_cli(*args, "--enrol-all", "--wccn-half", "A")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["people"] == 4 and plain["people"] == 1 and result["probes"] == plain["probes"]
    assert plain["counts"]["stranger_accepted"] == 0 and result["counts"]["stranger_accepted"] >= 2
    # The matrix of half A's people (3 here) changes the distances, so the rates may differ from
    # the shipped matrix's, but the command learns it in a scratch folder and leaves nothing behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.npz", "lookalikes"]
    # Bad combinations: one message each, exit 2 (usage), no traceback.
    alone = run_cli("evaluate", "faces", "--data", data, "--enrol-all")
    assert alone.returncode == 2 and "--enrol-all needs --half" in alone.stderr
    cfg = tmp_path / "length.yaml"
    cfg.write_text("recognition:\n  comparison: length\n")
    length = run_cli(*args, "--wccn-half", "A", config=cfg)
    assert length.returncode == 2 and "needs recognition.comparison: wccn" in length.stderr
    assert "Traceback" not in alone.stderr + length.stderr


@pytest.mark.shared_data
@pytest.mark.slow
def test_rates_at_the_held_out_gallery_size(tmp_path: Path) -> None:
    # Issue 14's held-out gallery has 297 people; the halves alone ~150. With everybody of the
    # shared folder enrolled (295) and half B's probes and strangers scored, the shipped rule
    # (tuned on half A) is what the README's "~300 people" table says: all three targets are met
    # (the ratio rule before it missed 78 of half B's 693 probes, 11.3%). Counts within 2 of the
    # table's (live embeddings may move one or two).
    if not SHARED_FACES.is_dir() or not SHARED_EXTRA.is_dir():
        pytest.skip(f"needs the shared face data at {SHARED_FACES.resolve()}")
    from kiosk.evaluation.wccn import learn_from_folder

    learn_from_folder(SHARED_FACES, tmp_path / "wccn_A.npy", half="A", cache=EMBEDDING_CACHE)
    settings = RecognitionSettings(comparison_model=tmp_path / "wccn_A.npy")
    table = {"A": (6, 0, 49), "B": (9, 0, 61)}  # strangers accepted, wrong person, missed
    for half, (strangers, wrong, missed) in table.items():
        result = evaluate_faces(SHARED_FACES, 3, settings, cache=EMBEDDING_CACHE, half=half, enrol_all=True,
                                extra_strangers=stranger_photos([SHARED_EXTRA], half))
        assert result["people"] == 295 and result["probes"] == {"A": 531, "B": 693}[half]
        counts = result["counts"]
        assert abs(counts["stranger_accepted"] - strangers) <= 2, (half, counts)
        assert abs(counts["wrong_person"] - wrong) <= 2 and abs(counts["missed"] - missed) <= 2, (half, counts)
    assert result["stranger_accepted"] <= STRANGER_TARGET and result["wrong_person"] <= WRONG_TARGET
    assert result["missed"] <= MISSED_LIMIT
    # Smaller sites: the normalised rule must not loosen when fewer people are enrolled (its cohort
    # is then farther away; gallery_size_slope makes up for it). Random galleries of half B's
    # people, each scored on its own people's probes and all of half B's strangers.
    people, strangers = embed_dataset(SHARED_FACES, settings, cache=EMBEDDING_CACHE, strangers_half="B",
                                      extra_strangers=stranger_photos([SHARED_EXTRA], "B"))
    half_b = [name for name in people if half_of(name) == "B"]
    rng = np.random.default_rng(0)
    for size in (3, 10, 30, 80):
        missed = []
        for _ in range(5):
            gallery = [str(n) for n in rng.choice(half_b, size, replace=False)]
            small = score_protocol(people, strangers, 3, settings, gallery_people=gallery)
            assert small["stranger_accepted"] <= STRANGER_TARGET, (size, small["counts"])
            assert small["wrong_person"] <= WRONG_TARGET, (size, small["counts"])
            missed.append(small["missed"])
        assert float(np.mean(missed)) <= MISSED_LIMIT, (size, missed)
