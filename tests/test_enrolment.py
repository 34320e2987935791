"""Enrolment with real photos and the real dlib models: good, no face, two faces, corrupt, duplicate."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TEST_DATA

from kiosk import store
from kiosk.config import Settings
from kiosk.enrolment import EnrolmentError, enrol, load_photos
from kiosk.errors import StoreError

PEOPLE = TEST_DATA / "faces" / "people"
# More photos of Venus Williams, for tests that enrol her twice (at least enrolment.min_photos each).
MORE_VENUS = sorted((TEST_DATA / "faces" / "extra" / "Venus_Williams").glob("*.jpg"))
MISC = TEST_DATA / "faces" / "misc"


def _photos(*paths):
    images, unreadable = load_photos(paths)
    return images, unreadable


def test_good_photos_enrol(enrol_env, dlib_analyzer):
    settings, db = enrol_env
    images, bad = _photos(PEOPLE / "Ray_Romano")
    result = enrol(db, settings, dlib_analyzer, name="Ray Romano", employee_id="E3", photos=images, unreadable=bad)
    assert result.templates_added == 4 and all(v.ok for v in result.verdicts)
    ids, matrix = store.all_templates(db)
    assert matrix.shape == (4, 128) and matrix.dtype == np.float32 and set(ids) == {result.person_id}
    assert [t.source for t in store.list_templates(db, result.person_id)] == [p.name for p in
                                                                             sorted((PEOPLE / "Ray_Romano").glob("*.jpg"))]
    assert {t.embedder for t in store.list_templates(db, result.person_id)} == {settings.recognition.embedder_id()}


def test_bad_photos_get_one_verdict_each_and_store_nothing(enrol_env, dlib_analyzer):
    settings, db = enrol_env
    images, bad = _photos(MISC)
    with pytest.raises(EnrolmentError) as info:
        enrol(db, settings, dlib_analyzer, name="Nobody", employee_id="E9", photos=images, unreadable=bad)
    reasons = {v.source: v.reason for v in info.value.result.verdicts}
    assert reasons["no_face.jpg"] == "no face found"
    assert reasons["two_faces.jpg"].startswith("2 faces found")
    assert "corrupt" in reasons["corrupt.jpg"] or "truncated" in reasons["corrupt.jpg"]
    assert "not an image" in reasons["not_an_image.jpg"]
    assert store.list_people(db) == []


def test_good_photos_beside_bad_ones_enrol_the_good(enrol_env, dlib_analyzer):
    settings, db = enrol_env
    images, bad = _photos(PEOPLE / "Hu_Jintao", MISC / "no_face.jpg", MISC / "corrupt.jpg")
    result = enrol(db, settings, dlib_analyzer, name="Hu", employee_id="E4", photos=images, unreadable=bad)
    assert result.templates_added == 4
    assert sum(not v.ok for v in result.verdicts) == 2


def test_duplicate_person_is_refused_unless_forced(enrol_env, dlib_analyzer):
    settings, db = enrol_env
    photos = sorted((PEOPLE / "Debbie_Reynolds").glob("*.jpg"))
    first, _ = _photos(*photos[:3])
    enrol(db, settings, dlib_analyzer, name="Debbie", employee_id="E1", photos=first)
    again, _ = _photos(photos[3], *photos[:2])  # enrolment.min_photos (3) photos of the same face
    with pytest.raises(EnrolmentError, match="Debbie \\(E1\\)"):
        enrol(db, settings, dlib_analyzer, name="Impostor", employee_id="E2", photos=again)
    assert len(store.list_people(db)) == 1
    forced = enrol(db, settings, dlib_analyzer, name="Twin", employee_id="E2", photos=again, force=True)
    assert forced.templates_added == 3 and forced.verdicts[0].duplicate_of == "Debbie (E1)"


def test_existing_employee_id_needs_replace(enrol_env, dlib_analyzer):
    settings, db = enrol_env
    photos = sorted((PEOPLE / "Venus_Williams").glob("*.jpg")) + MORE_VENUS  # 7 photos: 3 + 4
    a, _ = _photos(*photos[:3])
    first = enrol(db, settings, dlib_analyzer, name="Venus", employee_id="E2", photos=a)
    b, _ = _photos(*photos[3:])
    with pytest.raises(EnrolmentError, match="already enrolled"):
        enrol(db, settings, dlib_analyzer, name="Venus", employee_id="E2", photos=b)
    again = enrol(db, settings, dlib_analyzer, name="Venus", employee_id="E2", photos=b, replace=True)
    assert again.replaced and again.person_id == first.person_id
    assert [t.source for t in store.list_templates(db, first.person_id)] == [p.name for p in photos[3:]]


def test_someone_elses_photo_in_the_set_is_rejected(enrol_env, dlib_analyzer):
    settings, db = enrol_env
    mixed = sorted((PEOPLE / "Ray_Romano").glob("*.jpg"))[:3] + [sorted((PEOPLE / "Hu_Jintao").glob("*.jpg"))[0]]
    images, _ = _photos(*mixed)
    result = enrol(db, settings, dlib_analyzer, name="Ray", employee_id="E3", photos=images)
    verdicts = {v.source: v for v in result.verdicts}
    assert not verdicts["Hu_Jintao_0001.jpg"].ok
    assert "same person" in verdicts["Hu_Jintao_0001.jpg"].reason
    assert result.templates_added == 3


def test_enrolment_images_are_kept_only_when_configured(tmp_path, dlib_analyzer):
    settings = Settings.model_validate({"database": {"path": str(tmp_path / "k.db")},
                                        "retention": {"keep_enrolment_images": True}})
    images, _ = _photos(PEOPLE / "Ray_Romano")
    with store.open_from_settings(settings) as db:
        result = enrol(db, settings, dlib_analyzer, name="Ray", employee_id="E3", photos=images)
        kept = store.enrolment_images(db, result.person_id)
        assert len(kept) == 4 and kept[0][1][:2] == b"\xff\xd8"  # JPEG


# --- one transaction: a failure half-way leaves nothing (no real dlib: a fake analyzer) ---------------------


class _OneFaceAnalyzer:
    """Every photo shows one good face; photo i's embedding is a small step from a shared base."""

    def __init__(self, seed: int = 0) -> None:
        self.base = np.random.default_rng(seed).normal(0, 0.1, 128).astype(np.float32)
        self.calls = 0

    def analyze(self, image):
        from kiosk.vision.faces import FaceObservation

        self.calls += 1
        embedding = self.base + np.float32(0.001 * self.calls)
        return [FaceObservation(box=(0, 8, 8, 0), landmarks={}, embedding=embedding, quality=0.9,
                                sharpness=1.0, yaw_ratio=1.0)]

    def largest_face(self, image):
        return self.analyze(image)[0]


def _tiny_photos(n: int = 3):
    return [(f"p{i}.jpg", np.full((8, 8, 3), 40 * i, np.uint8)) for i in range(n)]


def _fail(*args, **kwargs):
    raise StoreError("injected: the insert failed")


@pytest.mark.parametrize("failing", ["add_templates", "add_enrolment_image"])
def test_a_failure_half_way_through_an_enrolment_stores_nothing(tmp_path, monkeypatch, failing):
    settings = Settings.model_validate({"database": {"path": str(tmp_path / "k.db")},
                                        "retention": {"keep_enrolment_images": True}})
    with store.open_from_settings(settings) as db:
        monkeypatch.setattr(store, failing, _fail)
        with pytest.raises(StoreError, match="injected"):
            enrol(db, settings, _OneFaceAnalyzer(), name="Ann", employee_id="E1", photos=_tiny_photos(),
                  expression_consent=True, actor="tester")
        assert store.list_people(db, include_erased=True) == []
        assert store.all_templates(db)[0].size == 0
        assert store.list_audit(db) == []  # not even the person.add of a person undone afterwards


def test_a_failed_re_enrolment_keeps_the_old_templates(tmp_path, monkeypatch):
    settings = Settings.model_validate({"database": {"path": str(tmp_path / "k.db")},
                                        "retention": {"keep_enrolment_images": True}})
    with store.open_from_settings(settings) as db:
        first = enrol(db, settings, _OneFaceAnalyzer(), name="Ann", employee_id="E1", photos=_tiny_photos())
        before = store.list_templates(db, first.person_id)
        audit_before = store.list_audit(db)
        monkeypatch.setattr(store, "add_enrolment_image", _fail)
        with pytest.raises(StoreError, match="injected"):
            enrol(db, settings, _OneFaceAnalyzer(), name="Ann", employee_id="E1", photos=_tiny_photos(4),
                  replace=True)
        assert store.list_templates(db, first.person_id) == before
        assert store.list_audit(db) == audit_before
