"""The int8 expression model at run time: loader, checksum, scores, fusion, photo vs FER crop."""

from __future__ import annotations

import shutil
import sys
import types

import numpy as np
import pytest
from conftest import TEST_DATA

from kiosk.config import ExpressionSettings
from kiosk.errors import ModelError
from kiosk.vision import runtime
from kiosk.vision.expression import TFLiteExpressionClassifier, fuse, load_classifier
from kiosk.vision.preprocess import CLASSES


def test_shipped_model_gives_probabilities(shipped_model):
    clf = TFLiteExpressionClassifier(shipped_model)
    crop = np.tile(np.linspace(0, 255, 48, dtype=np.uint8), (48, 1))
    scores = clf.scores_for_crop(crop)
    assert scores.shape == (len(CLASSES),) and scores.dtype == np.float32
    assert abs(float(scores.sum()) - 1.0) < 1e-4 and (scores >= 0).all()
    assert np.array_equal(scores, clf.scores_for_crop(crop.copy()))


def test_shipped_model_is_small_int8(shipped_model):
    clf = TFLiteExpressionClassifier(shipped_model)
    assert shipped_model.stat().st_size <= 1_000_000
    assert clf.interpreter.get_input_details()[0]["dtype"] == np.int8
    assert clf.interpreter.get_output_details()[0]["dtype"] == np.int8


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="model file not found"):
        TFLiteExpressionClassifier(tmp_path / "nope.tflite")


def test_corrupted_model_fails_checksum(tmp_path, shipped_model):
    broken = tmp_path / "m.tflite"
    data = bytearray(shipped_model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    broken.write_bytes(bytes(data))
    shutil.copy(shipped_model.with_name(shipped_model.name + ".sha256"), tmp_path / "m.tflite.sha256")
    with pytest.raises(ModelError, match="corrupted"):
        TFLiteExpressionClassifier(broken)


def test_garbage_model_without_checksum_is_a_clear_error(tmp_path):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"this is not a flatbuffer" * 10)
    with pytest.raises(ModelError, match="not a valid TFLite model"):
        TFLiteExpressionClassifier(junk, check=False)


def test_missing_checksum_file_is_reported(tmp_path, shipped_model):
    copy = tmp_path / "m.tflite"
    shutil.copy(shipped_model, copy)
    with pytest.raises(ModelError, match="checksum file missing"):
        TFLiteExpressionClassifier(copy)


def test_loader_accepts_tflite_runtime(monkeypatch, shipped_model):
    """With only the `tflite_runtime` package importable, the loader uses it."""
    from ai_edge_litert.interpreter import Interpreter

    fake_pkg = types.ModuleType("tflite_runtime")
    fake_mod = types.ModuleType("tflite_runtime.interpreter")
    fake_mod.Interpreter = Interpreter  # same API as tflite-runtime
    monkeypatch.setitem(sys.modules, "tflite_runtime", fake_pkg)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", fake_mod)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import fails
    cls, name = runtime.interpreter_class()
    assert name == "tflite_runtime"
    clf = TFLiteExpressionClassifier(shipped_model)
    assert clf.runtime == "tflite_runtime"
    assert clf.scores_for_crop(np.full((48, 48), 128, np.uint8)).shape == (7,)


def test_no_runtime_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    with pytest.raises(ModelError, match="pip install ai-edge-litert"):
        runtime.interpreter_class()


def test_disabled_expression_never_reads_the_model(tmp_path):
    settings = ExpressionSettings(enabled=False, model=tmp_path / "does-not-exist.tflite")
    assert load_classifier(settings) is None


def test_fuse_weights_frames():
    happy = np.eye(7, dtype=np.float32)[CLASSES.index("happy")]
    sad = np.eye(7, dtype=np.float32)[CLASSES.index("sad")]
    fused = fuse([happy, sad, sad], weights=[0.9, 0.1, 0.1])
    assert fused.label == "happy"
    assert fused.confidence == pytest.approx(0.9 / 1.1, abs=1e-3)
    assert sum(fused.scores.values()) == pytest.approx(1.0, abs=1e-3)
    assert fuse([happy, sad, sad]).label == "sad"


def test_fuse_rejects_nothing():
    with pytest.raises(ValueError):
        fuse([])


def test_photo_and_its_fer_crop_agree(shipped_model):
    """A face photo (aligned by the eyes) and a FER-style crop of the same face give the same class."""
    from kiosk.vision.faces import load_image, make_analyzer

    clf = TFLiteExpressionClassifier(shipped_model)
    analyzer = make_analyzer()
    agree = total = 0
    for path in sorted((TEST_DATA / "faces" / "people").glob("*/*.jpg"))[:8]:
        image = load_image(path)
        face = analyzer.largest_face(image)
        if face is None:
            continue
        top, right, bottom, left = face.box
        # FER2013-style: a square crop around the detector box, a little wider than it.
        cy, cx, half = (top + bottom) / 2, (left + right) / 2, 0.62 * (bottom - top)
        y0, y1 = int(max(0, cy - half + 0.08 * half)), int(cy + half + 0.08 * half)
        x0, x1 = int(max(0, cx - half)), int(cx + half)
        grey = image[y0:y1, x0:x1].mean(axis=2).astype(np.uint8)
        a = clf.scores_for_face(image, face.landmarks)
        b = clf.scores_for_fer_image(grey)
        total += 1
        agree += int(a.argmax() == b.argmax())
    assert total >= 5
    assert agree / total >= 0.75


def test_mirror_averages_the_crop_and_its_mirror_image(shipped_model):
    plain = TFLiteExpressionClassifier(shipped_model)
    mirrored = TFLiteExpressionClassifier(shipped_model, mirror=True)
    crop = np.tile(np.linspace(0, 255, 48, dtype=np.uint8), (48, 1))
    expected = (plain.scores_for_crop(crop) + plain.scores_for_crop(crop[:, ::-1].copy())) / 2
    assert np.allclose(mirrored.scores_for_crop(crop), expected, atol=1e-6)


def test_model_is_found_in_a_checkout_or_an_installed_venv():
    import sys
    from pathlib import Path

    from kiosk.vision import expression

    assert expression.DEFAULT_MODEL.is_file()
    assert expression.MODEL_LOCATIONS[1] == Path(sys.prefix) / "share" / "kiosk" / "models" / "expression_int8.tflite"
