"""Gallery: one template matrix, identify() with the calibrated rule, add/remove, search speed."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from kiosk.config import RecognitionSettings
from kiosk.errors import GalleryError
from kiosk.gallery import Gallery
from kiosk.vision.faces import load_image, make_analyzer

FACES = Path(__file__).parent / "data" / "faces"


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    """n random 128-d float32 vectors with the norm of dlib embeddings (~1)."""
    v = rng.normal(size=(n, 128)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def embeddings() -> dict[str, list[np.ndarray]]:
    """Real embeddings of the committed test photos: {name: [emb per photo]} plus 'strangers'."""
    analyzer = make_analyzer()
    out: dict[str, list[np.ndarray]] = {}
    for person in sorted((FACES / "people").iterdir()):
        faces = [analyzer.largest_face(load_image(p)) for p in sorted(person.glob("*.jpg"))]
        out[person.name] = [f.embedding for f in faces if f is not None and f.embedding is not None]
    faces = [analyzer.largest_face(load_image(p)) for p in sorted((FACES / "strangers").glob("*.jpg"))]
    out["strangers"] = [f.embedding for f in faces if f is not None and f.embedding is not None]
    return out


def test_identify_enrolled_probe_and_reject_stranger(embeddings: dict[str, list[np.ndarray]]) -> None:
    gallery = Gallery()
    people = [n for n in embeddings if n != "strangers"]
    for name in people:
        gallery.add(name, np.stack(embeddings[name][:3]))
    assert len(gallery) == 3 * len(people)
    assert gallery.templates.dtype == np.float32 and gallery.templates.shape == (len(gallery), 128)
    for name in people:
        match = gallery.identify(embeddings[name][3])
        assert match.person_id == name, (name, match)
        assert 0.0 < match.score <= 1.0 and match.distance < gallery.settings.max_distance
    for emb in embeddings["strangers"]:
        match = gallery.identify(emb)
        assert match.person_id is None and match.score == 0.0
        assert match.candidate in people


def test_several_frames_and_duplicate_check(embeddings: dict[str, list[np.ndarray]]) -> None:
    people = [n for n in embeddings if n != "strangers"]
    gallery = Gallery()
    for name in people:
        gallery.add(name, np.stack(embeddings[name][:3]))
    name = people[0]
    frames = np.stack([embeddings[name][3], embeddings[name][3]])
    assert gallery.identify(frames).person_id == name
    other, dist = gallery.nearest_other_person(embeddings[name][3], exclude=name)
    assert other in people and other != name and dist > gallery.settings.duplicate_distance
    dup, _ = gallery.is_duplicate(embeddings[name][3])
    assert dup == name
    assert gallery.is_duplicate(embeddings[name][3], exclude=name)[0] is None


def test_remove_person(embeddings: dict[str, list[np.ndarray]]) -> None:
    people = [n for n in embeddings if n != "strangers"]
    gallery = Gallery()
    for name in people:
        gallery.add(name, np.stack(embeddings[name][:3]))
    gone = people[0]
    assert gallery.remove(gone) == 3
    assert gone not in gallery and gone not in gallery.people
    assert gallery.remove(gone) == 0
    assert gallery.identify(embeddings[gone][3]).person_id != gone
    with pytest.raises(GalleryError):
        gallery.templates_of(gone)
    rebuilt = Gallery.from_arrays(gallery.templates, gallery.person_ids)
    assert rebuilt.people == gallery.people
    assert rebuilt.identify(embeddings[people[1]][3]).person_id == people[1]


def test_empty_gallery_and_bad_shapes() -> None:
    gallery = Gallery()
    match = gallery.identify(np.zeros(128, np.float32))
    assert match.person_id is None and match.distance == float("inf")
    assert gallery.nearest_other_person(np.zeros(128, np.float32)) == (None, float("inf"))
    with pytest.raises(GalleryError):
        gallery.add("x", np.zeros(64, np.float32))
    with pytest.raises(GalleryError):
        gallery.identify(np.full(128, np.nan, np.float32))


def test_margin_rejects_look_alikes() -> None:
    rng = np.random.default_rng(1)
    base = _unit(rng, 1)[0]
    gallery = Gallery(RecognitionSettings(max_distance=0.5, min_margin=0.05))
    gallery.add("a", base)
    gallery.add("b", base + 0.001)  # a twin: best and second best are equally near
    match = gallery.identify(base)
    assert match.person_id is None and match.margin < 0.05 and match.candidate in ("a", "b")


def test_search_10k_people_is_fast() -> None:
    rng = np.random.default_rng(0)
    people = _unit(rng, 10_000)
    templates = np.repeat(people, 3, axis=0) + rng.normal(0, 0.01, (30_000, 128)).astype(np.float32)
    ids = np.repeat(np.arange(10_000), 3).tolist()
    gallery = Gallery.from_arrays(templates, ids)
    assert gallery.templates.shape == (30_000, 128) and len(gallery.people) == 10_000
    probe = templates[12_345] + 0.01
    assert gallery.identify(probe).person_id == 12_345 // 3
    runs = []
    for _ in range(30):
        t0 = time.perf_counter()
        gallery.identify(probe)
        runs.append(time.perf_counter() - t0)
    # ~0.2 ms median on one loaded x86 core (one centroid row per person; the single probe
    # goes through einsum, not multi-threaded BLAS, whose thread wake-ups cost milliseconds).
    assert float(np.median(runs)) < 0.002


def test_cohort_z_rejects_a_face_about_as_near_to_everybody() -> None:
    rng = np.random.default_rng(7)
    people = _unit(rng, 20)
    settings = RecognitionSettings(max_distance=2.0, max_ratio=1.0, max_cohort_z=-3.0)
    gallery = Gallery(settings)
    for i, emb in enumerate(people):
        gallery.add(i, emb)
    # Near person 3: far below the others' distances (z << -3), accepted.
    near = people[3] + 0.05 * _unit(rng, 1)[0]
    assert gallery.identify(near).person_id == 3
    # The mean of everybody: about equally near to all, nearest by a hair; z > -3, rejected,
    # while without the cohort check the loose rule takes it for somebody.
    generic = people.mean(axis=0)
    assert gallery.identify(generic).person_id is None
    assert Gallery.from_arrays(people, range(20), RecognitionSettings(max_distance=2.0, max_ratio=1.0,
                                                                      max_normalised_distance=None)
                               ).identify(generic).known
    # Fewer than 4 people: no cohort to compare with; the check is skipped.
    small = Gallery.from_arrays(people[:3], range(3), settings)
    assert small.identify(people[1]).person_id == 1


def _spread_gallery(n: int, settings: RecognitionSettings, seed: int = 3) -> tuple[Gallery, np.ndarray]:
    """n face-like people, ids 0..n-1: unit vectors about 1.0 apart in the comparison space (cosine
    0.75, as different people's dlib embeddings; random 128-d directions would be 2.0 apart)."""
    rng = np.random.default_rng(seed)
    centre = _unit(rng, 1)[0]
    people = centre + np.sqrt(1 / 3) * _unit(rng, n)
    people = (people / np.linalg.norm(people, axis=1, keepdims=True)).astype(np.float32)
    return Gallery.from_arrays(people, range(n), settings), people


def _towards(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """The unit vector a fraction t of the way from a to b (along the great circle)."""
    v = (1 - t) * a + t * b
    return (v / np.linalg.norm(v)).astype(np.float32)


def test_normalised_distance_refuses_a_face_between_two_people_that_the_distance_alone_accepts() -> None:
    # Accept only when the distance is at most half the second-best person's (cohort of one).
    settings = RecognitionSettings(comparison="length", max_distance=2.0, cohort_size=1, cohort_weight=0.5,
                                   isolation_weight=0.0, max_normalised_distance=0.0, gallery_size_slope=0.0)
    gallery, people = _spread_gallery(40, settings)
    loose = Gallery.from_arrays(people, range(40), settings.model_copy(update={"max_normalised_distance": None}))
    # Nearest person 0, but almost as near person 1 (and the rest of the cohort far away).
    between = _towards(people[0], people[1], 0.45)
    assert loose.identify(between).person_id == 0
    match = gallery.identify(between)
    assert match.person_id is None and match.candidate == 0
    # A face close to person 0 alone is accepted.
    assert gallery.identify(_towards(people[0], people[1], 0.05)).person_id == 0


def test_normalised_threshold_is_stricter_for_a_small_gallery() -> None:
    settings = RecognitionSettings(comparison="length")
    big, _ = _spread_gallery(295, settings)
    small, _ = _spread_gallery(3, settings)
    huge, _ = _spread_gallery(2_000, settings)
    assert big.normalised_threshold() == pytest.approx(settings.max_normalised_distance)
    assert small.normalised_threshold() == pytest.approx(settings.max_normalised_distance + 0.01 * np.log(3 / 295))
    assert huge.normalised_threshold() == pytest.approx(settings.max_normalised_distance)  # never looser than tuned
    off = Gallery(settings.model_copy(update={"max_normalised_distance": None}))
    assert off.normalised_threshold() == float("inf")


def test_isolation_gives_leeway_to_a_person_whose_nearest_colleague_is_far() -> None:
    settings = RecognitionSettings(comparison="length", max_distance=2.0, cohort_weight=0.0, isolation_weight=0.5,
                                   max_normalised_distance=0.0, gallery_size_slope=0.0)
    _, people = _spread_gallery(3, settings, seed=5)
    twin = _towards(people[0], people[1], 0.3)  # person 3 stands near person 0
    gallery = Gallery.from_arrays(np.vstack([people, twin]), range(4), settings)
    probe_far = _towards(people[2], -people[0], 0.2)  # as far from person 2 as ...
    probe_near = _towards(people[0], -people[2], 0.2)  # ... this one from person 0
    d2 = float(gallery.distances(probe_far)[0, 2])
    d0 = float(gallery.distances(probe_near)[0, 0])
    assert d2 == pytest.approx(d0, abs=1e-3)
    assert gallery.identify(probe_far).person_id == 2  # person 2's nearest colleague is far away
    assert gallery.identify(probe_near).person_id is None  # person 0 has a look-alike colleague


def test_a_face_equally_near_two_people_is_refused_by_default() -> None:
    # Two enrolled people with almost the same templates (twins, or one person enrolled twice with
    # --force): the normalised distance alone could accept the face and pick either; the default
    # max_ratio (0.95) refuses such a near-tie.
    settings = RecognitionSettings(comparison="length")
    gallery, people = _spread_gallery(30, settings)
    twin = _towards(people[0], people[1], 0.002)
    gallery.add("twin", twin)
    probe = _towards(people[0], people[2], 0.05)
    match = gallery.identify(probe)
    assert match.person_id is None and match.candidate in (0, "twin")
    loose = Gallery.from_arrays(np.vstack([people, twin]), [*range(30), "twin"],
                                settings.model_copy(update={"max_ratio": 1.0}))
    assert loose.identify(probe).known
    # Without the twin the same face is accepted.
    assert Gallery.from_arrays(people, range(30), settings).identify(probe).person_id == 0


def test_one_person_enrolled_is_judged_by_max_distance_alone() -> None:
    settings = RecognitionSettings(comparison="length")
    gallery, people = _spread_gallery(1, settings)
    assert gallery.identify(_towards(people[0], -people[0] + 1e-3, 0.1)).person_id == 0
    assert np.isnan(gallery.normalised_distance(0.3, 0, np.zeros(0, np.float32)))


def test_one_match_score_and_one_embedding_check() -> None:
    from kiosk.errors import InvalidTemplate
    from kiosk.gallery import match_score
    from kiosk.vision.embedding import EMBEDDING_SIZE, as_embeddings

    assert match_score(0.0, 0.435) == 1.0 and match_score(0.435, 0.435) == 0.0
    assert match_score(0.2, 0.4) == pytest.approx(0.5) and match_score(0.9, 0.4) == 0.0
    assert match_score(0.0, 0.0) == 1.0
    assert as_embeddings(np.zeros(EMBEDDING_SIZE)).shape == (1, EMBEDDING_SIZE)
    assert as_embeddings(np.zeros((3, EMBEDDING_SIZE), np.float64)).dtype == np.float32
    with pytest.raises(GalleryError, match=r"must have shape \(128,\) or \(N, 128\), got \(2, 127\)"):
        as_embeddings(np.zeros((2, 127)))
    with pytest.raises(InvalidTemplate, match="NaN or infinite"):  # the store's error, same check
        as_embeddings(np.full(EMBEDDING_SIZE, np.nan), InvalidTemplate)


def test_comparison_spaces_keep_templates_raw(embeddings: dict[str, list[np.ndarray]]) -> None:
    from kiosk.gallery import COMPARISON_LENGTH, comparison_matrix, unit_rows

    name = next(n for n in embeddings if n != "strangers")
    a, b = embeddings[name][0], embeddings[name][3]
    raw = Gallery(RecognitionSettings(comparison="raw"))
    raw.add(name, a)
    assert raw.distances(b)[0, 0] == pytest.approx(float(np.linalg.norm(a - b)), abs=1e-5)
    # Length: a face's scale does not matter, only its direction.
    length = Gallery(RecognitionSettings(comparison="length"))
    length.add(name, a)
    assert length.identify(1.3 * b).distance == pytest.approx(length.identify(b).distance, abs=1e-5)
    assert raw.identify(1.3 * b).distance != pytest.approx(raw.identify(b).distance, abs=1e-3)
    # WCCN (the default): sqrt(2) * unit(unit(e) @ W), templates stored as given.
    gallery = Gallery()
    gallery.add(name, a)
    w = comparison_matrix(gallery.settings)
    assert w is not None and w.shape == (128, 128) and w.dtype == np.float32
    expect = COMPARISON_LENGTH * np.linalg.norm(unit_rows(unit_rows(a) @ w) - unit_rows(unit_rows(b) @ w))
    assert gallery.identify(b).distance == pytest.approx(float(expect), abs=1e-5)
    np.testing.assert_array_equal(gallery.templates[0], a)
    np.testing.assert_array_equal(gallery.templates_of(name)[0], a)
    # A zero vector is no face, but must not turn into NaN distances.
    assert np.isfinite(gallery.identify(np.zeros(128, np.float32)).distance)


def test_wccn_matrix_is_checked_before_use(tmp_path: Path) -> None:
    from kiosk.errors import ModelError
    from kiosk.evaluation.wccn import save_matrix
    from kiosk.gallery import DEFAULT_WCCN

    good = tmp_path / "w.npy"
    save_matrix(np.load(DEFAULT_WCCN), good)
    assert Gallery(RecognitionSettings(comparison_model=good)).identify(np.ones(128, np.float32)).person_id is None
    changed = tmp_path / "changed.npy"
    w = np.load(DEFAULT_WCCN)
    save_matrix(w, changed)
    w[0, 0] += 1e-3
    np.save(changed, w, allow_pickle=False)  # replaced after its checksum was written
    with pytest.raises(ModelError, match="corrupted or was replaced"):
        Gallery(RecognitionSettings(comparison_model=changed))
    # Without the check the replaced file is used; a wrong shape is refused either way.
    Gallery(RecognitionSettings(comparison_model=changed, comparison_verify_checksum=False))
    bad = tmp_path / "bad.npy"
    save_matrix(np.eye(64, dtype=np.float32), bad)
    with pytest.raises(ModelError, match="128x128"):
        Gallery(RecognitionSettings(comparison_model=bad))
    with pytest.raises(ModelError, match="not found"):
        Gallery(RecognitionSettings(comparison_model=tmp_path / "missing.npy"))
    (tmp_path / "nosum.npy").write_bytes(good.read_bytes())
    with pytest.raises(ModelError, match="recognition.comparison_verify_checksum"):
        Gallery(RecognitionSettings(comparison_model=tmp_path / "nosum.npy"))
    # comparison length and raw never read the matrix.
    Gallery(RecognitionSettings(comparison="length", comparison_model=tmp_path / "missing.npy"))
