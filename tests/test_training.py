"""A tiny training run exports a valid int8 model (needs the train extra; skipped without TensorFlow)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from conftest import TEST_DATA

from kiosk.training.dataset import class_weights  # no TensorFlow needed
from kiosk.vision.preprocess import CLASSES

# Looked up, not imported: TensorFlow takes seconds to import, paid only by the tests that use it.
pytestmark = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                                reason="the train extra is not installed (pip install -e '.[train]')")

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
@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.train
def test_training_resumes_after_a_stop(tmp_path):
    from kiosk.training.train import TrainConfig, train

    def stop_after_first_epoch(epoch, logs):
        raise KeyboardInterrupt  # the session ended mid-training

    work = tmp_path / "work"
    with pytest.raises(KeyboardInterrupt):
        train(FER_SAMPLE / "train", work, TrainConfig(epochs=3, patience=5), [stop_after_first_epoch])
    train(FER_SAMPLE / "train", work)  # same work dir: picks up the saved config and epoch
    epochs = [line.split(",")[0] for line in (work / "history.csv").read_text().strip().splitlines()[1:]]
    assert epochs == ["0", "1", "2"]


@pytest.mark.train
def test_warm_start_reproduces_the_shipped_model(shipped_model):
    from kiosk.training.dataset import load_split
    from kiosk.training.net import ExpressionNet
    from kiosk.training.train import predict_probabilities
    from kiosk.training.warm_start import init_from_tflite
    from kiosk.vision.expression import TFLiteExpressionClassifier

    crops = load_split(FER_SAMPLE / "train").images
    net = ExpressionNet()
    init_from_tflite(net, shipped_model, crops)
    float_scores = predict_probabilities(net, crops)
    int8 = TFLiteExpressionClassifier(shipped_model)
    int8_scores = np.stack([int8.scores_for_crop(crop) for crop in crops])
    assert (float_scores.argmax(1) == int8_scores.argmax(1)).mean() >= 0.9
    assert np.abs(float_scores - int8_scores).mean() < 0.05


@pytest.mark.train
def test_warm_start_refuses_another_architecture(shipped_model):
    from kiosk.errors import KioskError
    from kiosk.training.net import ExpressionNet
    from kiosk.training.warm_start import init_from_tflite

    with pytest.raises(KioskError, match="do not fit"):
        init_from_tflite(ExpressionNet((16, 32, 64, 96)), shipped_model, np.zeros((4, 48, 48), np.uint8))


@pytest.mark.train
@pytest.mark.slow
def test_keras_twin_gives_the_nets_scores():
    import torch

    from kiosk.training.model import keras_twin
    from kiosk.training.net import ExpressionNet
    from kiosk.training.train import predict_probabilities

    torch.manual_seed(0)
    net = ExpressionNet()
    with torch.no_grad():  # make the BatchNorm statistics matter
        for _, norm in net.conv_norm_pairs():
            norm.running_mean.uniform_(-0.5, 0.5)
            norm.running_var.uniform_(0.5, 2.0)
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.2, 0.2)
    crops = np.random.default_rng(1).integers(0, 256, (16, 48, 48), dtype=np.uint8)
    theirs = np.asarray(keras_twin(net).predict(crops[..., None].astype(np.float32), verbose=0))
    np.testing.assert_allclose(theirs, predict_probabilities(net, crops), atol=1e-5)


def test_augmentation_keeps_shape_range_and_is_seeded():
    torch = pytest.importorskip("torch")
    from kiosk.training.augment import augment_batch

    crops = load_split_sample()
    pixels = torch.from_numpy(crops).float().unsqueeze(1)
    a = augment_batch(pixels, torch.Generator().manual_seed(3))
    b = augment_batch(pixels, torch.Generator().manual_seed(3))
    c = augment_batch(pixels, torch.Generator().manual_seed(4))
    assert a.shape == pixels.shape and float(a.min()) >= 0 and float(a.max()) <= 255
    assert torch.equal(a, b) and not torch.equal(a, c)
    changed = (a - pixels).abs().mean(dim=(1, 2, 3))
    assert float(changed.median()) > 5  # every copy differs from its original ...
    brightness_shift = (a.mean(dim=(1, 2, 3)) - pixels.mean(dim=(1, 2, 3))).abs()
    assert float(brightness_shift.mean()) < 8  # ... but keeps its overall brightness


def test_random_erasing_fills_one_rectangle_and_is_off_by_default():
    torch = pytest.importorskip("torch")
    from kiosk.training.augment import augment_batch

    pixels = torch.from_numpy(load_split_sample()).float().unsqueeze(1)
    plain = augment_batch(pixels, torch.Generator().manual_seed(3))
    off = augment_batch(pixels, torch.Generator().manual_seed(3), 0.0)
    erased = augment_batch(pixels, torch.Generator().manual_seed(3), 1.0)
    assert torch.equal(plain, off)  # the default draws nothing extra: earlier runs resume unchanged
    assert erased.shape == pixels.shape and float(erased.min()) >= 0 and float(erased.max()) <= 255
    for before, after in zip(plain[:, 0], erased[:, 0], strict=True):
        rows, cols = torch.nonzero(before != after, as_tuple=True)
        assert len(rows) > 0  # every image got a rectangle ...
        height, width = int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1
        assert 0.95 * height * width <= len(rows) <= height * width <= 0.25 * 48 * 48  # ... one, filled, bounded
    half = augment_batch(pixels, torch.Generator().manual_seed(3), 0.5)
    touched = ((half != plain).flatten(1).any(dim=1)).float().mean()
    assert 0.2 < float(touched) < 0.8


def load_split_sample() -> np.ndarray:
    from kiosk.training.dataset import load_split

    return load_split(FER_SAMPLE / "train").images


@pytest.mark.train
@pytest.mark.slow
def test_continued_run_records_where_it_started(tmp_path, shipped_model):
    from kiosk.training.pipeline import train_and_export
    from kiosk.vision.runtime import sha256_of

    out = tmp_path / "continued.tflite"
    train_and_export(FER_SAMPLE / "train", out, work_dir=tmp_path / "work", epochs=1, init_from=shipped_model,
                     learning_rate=1e-4, distill_from=shipped_model, distill_weight=0.3)
    saved = json.loads((tmp_path / "continued.report.json").read_text())["train_config"]
    assert saved["init_sha256"] == sha256_of(shipped_model) and saved["learning_rate"] == 1e-4
    assert saved["init_from"] == str(shipped_model)
    assert saved["distill_sha256"] == sha256_of(shipped_model) and saved["distill_weight"] == 0.3


def test_distilled_loss_mixes_label_and_teacher():
    import torch
    import torch.nn.functional as F

    from kiosk.training.distill import mixed_loss

    logits = torch.tensor([[2.0, 0.5, -1.0, 0.0, 0.3, 0.1, -0.2], [0.0, 0.0, 3.0, 0.0, 0.0, 1.0, 0.0]])
    labels = torch.tensor([0, 5])
    hard = F.cross_entropy(logits, labels, reduction="none", label_smoothing=0.05)
    assert torch.allclose(mixed_loss(logits, labels, None, 0.5, 0.05), hard)
    one_hot = F.one_hot(labels, 7).float()
    plain = F.cross_entropy(logits, labels, reduction="none")
    assert torch.allclose(mixed_loss(logits, labels, one_hot, 0.5, 0.0), plain)  # a teacher that agrees fully
    teacher = torch.full((2, 7), 1 / 7)
    mixed = mixed_loss(logits, labels, teacher, 0.25, 0.0)
    uniform = -F.log_softmax(logits, dim=1).mean(dim=1)
    assert torch.allclose(mixed, 0.75 * plain + 0.25 * uniform)


def test_teacher_targets_ignore_mirroring():
    from kiosk.training.distill import teacher_targets

    def lopsided(images: np.ndarray) -> np.ndarray:  # scores that depend on the left half only
        left = images[:, :, :24].mean(axis=(1, 2)) / 255.0
        return np.stack([left, 1.0 - left] + [np.zeros_like(left)] * 5, axis=1)

    crops = load_split_sample()[:6]
    targets = teacher_targets(lopsided, crops)
    mirrored = teacher_targets(lopsided, crops[:, :, ::-1].copy())
    assert targets.shape == (6, 7) and targets.dtype == np.float32
    assert np.allclose(targets, mirrored) and np.allclose(targets.sum(axis=1), 1.0)
    assert not np.allclose(lopsided(crops), lopsided(crops[:, :, ::-1].copy()))


def test_embedder_converter_runs_as_a_module(monkeypatch, capsys):
    """`python -m kiosk.training.dlib_embedder` reaches the converter's command line (the package's __main__)."""
    import runpy

    monkeypatch.setattr("sys.argv", ["python -m kiosk.training.dlib_embedder", "--help"])
    with pytest.raises(SystemExit) as stop:
        runpy.run_module("kiosk.training.dlib_embedder", run_name="__main__")
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "as a TFLite twin" in out and "--precision" in out and "--agreement" in out
