"""A tiny training run exports a valid int8 model (needs the train extra; skipped without TensorFlow)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import TEST_DATA

from kiosk.training.dataset import class_weights  # no TensorFlow needed
from kiosk.vision.preprocess import CLASSES

pytest.importorskip("tensorflow", reason="the train extra is not installed (pip install -e '.[train]')")

FER_SAMPLE = TEST_DATA / "fer_sample"


def test_class_weights_favour_rare_classes():
    labels = np.array([0] * 100 + [1] * 4 + [3] * 50)
    w = class_weights(labels)
    assert w[1] > w[3] > w[0]
    assert np.mean(list(w.values())) == pytest.approx(1.0)


def test_split_is_stratified_and_seeded():
    from kiosk.training.dataset import load_split, split_validation

    data = load_split(FER_SAMPLE / "train")
    a_train, a_val = split_validation(data, 0.25, seed=3)
    b_train, b_val = split_validation(data, 0.25, seed=3)
    assert a_val.paths == b_val.paths
    assert set(a_val.paths).isdisjoint(a_train.paths)
    assert set(np.unique(a_val.labels)) == set(np.unique(data.labels))


@pytest.mark.train
def test_tiny_run_exports_valid_int8(tmp_path):
    from kiosk.training.pipeline import train_and_export
    from kiosk.vision.expression import TFLiteExpressionClassifier

    out = tmp_path / "tiny.tflite"
    summary = train_and_export(FER_SAMPLE / "train", out, work_dir=tmp_path / "work", epochs=1,
                               test_dir=FER_SAMPLE / "test")
    assert out.exists() and (tmp_path / "tiny.tflite.sha256").exists()
    report = json.loads((tmp_path / "tiny.report.json").read_text())
    assert report["classes"] == list(CLASSES)
    assert (tmp_path / "confusion_test.png").exists()
    assert 0.0 <= summary["test"]["int8"]["accuracy"] <= 1.0
    clf = TFLiteExpressionClassifier(out)  # checksum verified
    details = clf.interpreter.get_input_details()[0]
    assert details["dtype"] == np.int8 and tuple(details["shape"]) == (1, 48, 48, 1)
    assert clf.interpreter.get_output_details()[0]["dtype"] == np.int8
    scores = clf.scores_for_crop(np.full((48, 48), 120, np.uint8))
    assert scores.shape == (7,) and abs(scores.sum() - 1) < 1e-3


@pytest.mark.train
def test_training_resumes_after_a_stop(tmp_path):
    import keras

    from kiosk.training.train import TrainConfig, train

    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt  # the session ended mid-training

    work = tmp_path / "work"
    with pytest.raises(KeyboardInterrupt):
        train(FER_SAMPLE / "train", work, TrainConfig(epochs=3, patience=5), [StopAfterFirstEpoch()])
    train(FER_SAMPLE / "train", work)  # same work dir: picks up the saved config and epoch
    epochs = [line.split(",")[0] for line in (work / "history.csv").read_text().strip().splitlines()[1:]]
    assert epochs == ["0", "1", "2"]


@pytest.mark.train
def test_warm_start_reproduces_the_shipped_model(shipped_model):
    from kiosk.training.dataset import load_split
    from kiosk.training.model import build_model
    from kiosk.training.train import TrainConfig
    from kiosk.training.warm_start import init_from_tflite
    from kiosk.vision.expression import TFLiteExpressionClassifier

    crops = load_split(FER_SAMPLE / "train").images
    config = TrainConfig()
    model = build_model(config.widths, config.convs_per_block)
    init_from_tflite(model, shipped_model, crops)
    float_scores = np.asarray(model.predict(crops[..., None].astype(np.float32), verbose=0))
    int8 = TFLiteExpressionClassifier(shipped_model)
    int8_scores = np.stack([int8.scores_for_crop(crop) for crop in crops])
    assert (float_scores.argmax(1) == int8_scores.argmax(1)).mean() >= 0.9
    assert np.abs(float_scores - int8_scores).mean() < 0.05


@pytest.mark.train
def test_warm_start_refuses_another_architecture(shipped_model):
    from kiosk.errors import KioskError
    from kiosk.training.model import build_model
    from kiosk.training.warm_start import init_from_tflite

    with pytest.raises(KioskError, match="do not fit"):
        init_from_tflite(build_model((16, 32, 64, 96)), shipped_model, np.zeros((4, 48, 48), np.uint8))


@pytest.mark.train
def test_continued_run_records_where_it_started(tmp_path, shipped_model):
    from kiosk.training.pipeline import train_and_export
    from kiosk.vision.runtime import sha256_of

    out = tmp_path / "continued.tflite"
    train_and_export(FER_SAMPLE / "train", out, work_dir=tmp_path / "work", epochs=1, init_from=shipped_model,
                     learning_rate=1e-4)
    saved = json.loads((tmp_path / "continued.report.json").read_text())["train_config"]
    assert saved["init_sha256"] == sha256_of(shipped_model) and saved["learning_rate"] == 1e-4
    assert saved["init_from"] == str(shipped_model)
