"""Train the expression CNN (PyTorch) with early stopping and resumable checkpoints (train extra).

A run keeps everything in its work dir: train_config.json (the hyper-parameters; a resumed run
uses the saved ones), last.pt (weights, optimiser, epoch, random state; written after every
epoch), best.pt (best validation accuracy), history.csv, train_seconds.txt, and DONE at the end.
Runs on CUDA when PyTorch sees a GPU, else on the CPU (channels-last, all cores).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from kiosk.training.architecture import CONVS_PER_BLOCK, DEFAULT_WIDTHS
from kiosk.training.augment import augment_batch
from kiosk.training.dataset import ExpressionData, class_weights, load_split, split_validation
from kiosk.training.distill import mixed_loss, teacher_targets
from kiosk.training.net import ExpressionNet
from kiosk.training.warm_start import init_from_tflite
from kiosk.vision.preprocess import CLASSES

logger = logging.getLogger(__name__)

DONE_MARKER = "DONE"  # written when training ends; a later run with the same work_dir only exports
HISTORY_FIELDS = ("epoch", "accuracy", "loss", "val_accuracy", "val_loss", "learning_rate", "seconds")
EpochCallback = Callable[[int, dict], None]  # called with (epoch, logs) after each saved epoch


@dataclass
class TrainConfig:
    """Hyper-parameters; saved beside the checkpoints so a resumed run uses the same ones."""

    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 2e-3  # peak, after a linear warm-up over the first 5 % of steps; cosine to 0
    weight_decay: float = 1e-4  # AdamW, decoupled
    label_smoothing: float = 0.05
    class_weight_power: float = 0.5
    widths: tuple[int, ...] = DEFAULT_WIDTHS
    convs_per_block: int = CONVS_PER_BLOCK
    validation_fraction: float = 0.1
    patience: int = 10  # epochs without a better validation accuracy, counted from half way
    seed: int = 13
    limit_per_class: int | None = None
    init_from: str | None = None  # an int8 .tflite of the same widths to start from (see warm_start)
    init_sha256: str | None = None
    distill_from: str | None = None  # an int8 .tflite whose scores are mixed into the labels (see distill)
    distill_sha256: str | None = None
    distill_weight: float = 0.5  # share of the teacher's scores in each image's target
    erase_prob: float = 0.0  # share of training images with one randomly erased rectangle (augment)
    extra: dict = field(default_factory=dict)


def learning_rate_at(step: int, total_steps: int, peak: float) -> float:
    """Linear warm-up from 0 over 5 % of total_steps, then cosine decay to 0 at total_steps."""
    warmup = max(1, total_steps // 20)
    if step < warmup:
        return peak * step / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _as_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 N x 48 x 48 -> float32 N x 1 x 48 x 48 on device."""
    return torch.from_numpy(images).to(device=device, dtype=torch.float32).unsqueeze(1)


def _prepare(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    return tensor.contiguous(memory_format=torch.channels_last) if device.type == "cpu" else tensor


@torch.no_grad()
def predict_probabilities(net: ExpressionNet, images: np.ndarray, batch: int = 512) -> np.ndarray:
    """Softmax scores float32 N x 7 of net (eval mode) for uint8 N x 48 x 48 crops."""
    net.eval()
    device = next(net.parameters()).device
    out = [F.softmax(net(_prepare(_as_tensor(images[i:i + batch], device), device)), dim=1).cpu()
           for i in range(0, len(images), batch)]
    return torch.cat(out).numpy() if out else np.zeros((0, len(CLASSES)), np.float32)


def _validate(net: ExpressionNet, data: ExpressionData, smoothing: float) -> tuple[float, float]:
    """(accuracy, label-smoothed cross-entropy) of net on data, as in training (no class weights)."""
    scores = torch.from_numpy(predict_probabilities(net, data.images))
    labels = torch.from_numpy(data.labels)
    log_scores = torch.log(scores.clamp_min(1e-7))
    loss = (1 - smoothing) * F.nll_loss(log_scores, labels) - smoothing * log_scores.mean()
    return float((scores.argmax(1) == labels).float().mean()), float(loss)


def _load_config(config_path: Path, config: TrainConfig | None) -> TrainConfig:
    if config_path.exists():
        saved = json.loads(config_path.read_text())
        saved["widths"] = tuple(saved["widths"])
        logger.info("resuming with saved config %s", config_path)
        return TrainConfig(**saved)
    config = config or TrainConfig()
    config_path.write_text(json.dumps(asdict(config), indent=2))
    return config


def _save_atomically(state: dict, path: Path) -> None:
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)


def load_net(path: Path, config: TrainConfig) -> ExpressionNet:
    """An ExpressionNet (CPU, eval mode) with the weights saved at path (best.pt or last.pt)."""
    net = ExpressionNet(config.widths, config.convs_per_block)
    state = torch.load(path, map_location="cpu", weights_only=False)
    net.load_state_dict(state.get("model", state))
    return net.eval()


def _norm_sample(data: ExpressionData, seed: int) -> np.ndarray:
    """uint8 2048 x 48 x 48 crops of data (seeded) for the BatchNorm statistics of a loaded model."""
    return data.images[np.random.default_rng(seed).permutation(len(data))[:2048]]


def _teacher_scores(config: TrainConfig, data: ExpressionData, device: torch.device) -> torch.Tensor:
    """float32 N x 7 targets on device: config.distill_from's mirror-averaged scores for data's crops."""
    teacher = ExpressionNet(config.widths, config.convs_per_block)
    init_from_tflite(teacher, Path(str(config.distill_from)), _norm_sample(data, config.seed))
    scores = torch.from_numpy(teacher_targets(lambda x: predict_probabilities(teacher, x), data.images))
    agree = float((scores.argmax(1) == torch.from_numpy(data.labels)).float().mean())
    logger.info("teacher %s agrees with %.1f %% of the training labels", config.distill_from, 100.0 * agree)
    return scores.to(device)


def train(data_dir: Path, work_dir: Path, config: TrainConfig | None = None,
          extra_callbacks: Sequence[EpochCallback] | None = None) -> ExpressionNet:
    """Train on data_dir (Kaggle layout <class>/*.jpg); checkpoints in work_dir; returns the best net (CPU).

    Re-running with the same work_dir resumes after the last finished epoch; once training has
    finished (DONE marker), it returns the best checkpoint without training again.
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    config = _load_config(work_dir / "train_config.json", config)
    best_path, last_path = work_dir / "best.pt", work_dir / "last.pt"
    if (work_dir / DONE_MARKER).exists() and best_path.exists():
        logger.info("training in %s already finished; using %s", work_dir, best_path)
        return load_net(best_path, config)

    torch.manual_seed(config.seed)
    data = load_split(Path(data_dir), config.limit_per_class)
    train_data, val_data = split_validation(data, config.validation_fraction, config.seed)
    logger.info("train %d images, validation %d", len(train_data), len(val_data))
    device = _device()
    net = ExpressionNet(config.widths, config.convs_per_block)
    if config.init_from and not last_path.exists():
        init_from_tflite(net, Path(config.init_from), _norm_sample(train_data, config.seed))
    soft_targets = _teacher_scores(config, train_data, device) if config.distill_from else None
    memory_format = torch.channels_last if device.type == "cpu" else torch.preserve_format
    net = net.to(device=device, memory_format=memory_format)  # type: ignore[call-overload]  # not in torch's stubs
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay,
                                  eps=1e-7)
    generator = torch.Generator().manual_seed(config.seed)
    progress: dict[str, Any] = {"epoch": 0, "step": 0, "best_val": -1.0, "best_epoch": -1}
    if last_path.exists():
        state = torch.load(last_path, map_location=device, weights_only=False)
        net.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        generator.set_state(state["generator"])
        progress = state["progress"]
        logger.info("resuming after epoch %d of %d", progress["epoch"], config.epochs)

    weights = class_weights(train_data.labels, config.class_weight_power) if config.class_weight_power > 0 else {}
    loss_weight = torch.tensor([weights.get(i, 1.0) for i in range(len(CLASSES))], device=device)
    images = _as_tensor(train_data.images, device)
    labels = torch.from_numpy(train_data.labels).to(device)
    steps_per_epoch = math.ceil(len(train_data) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    history = work_dir / "history.csv"
    started = time.monotonic()
    try:
        while progress["epoch"] < config.epochs:
            epoch, epoch_started = progress["epoch"], time.monotonic()
            net.train()
            order = torch.randperm(len(train_data), generator=generator).to(device)
            seen, correct, loss_sum = 0, 0, 0.0
            for start in range(0, len(order), config.batch_size):
                rows = order[start:start + config.batch_size]
                lr = learning_rate_at(progress["step"], total_steps, config.learning_rate)
                for group in optimiser.param_groups:
                    group["lr"] = lr
                batch = _prepare(augment_batch(images[rows], generator, config.erase_prob), device)
                logits = net(batch)
                per_image = mixed_loss(logits, labels[rows], None if soft_targets is None else soft_targets[rows],
                                       config.distill_weight, config.label_smoothing)
                loss = (per_image * loss_weight[labels[rows]]).mean()
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                progress["step"] += 1
                seen += len(rows)
                correct += int((logits.argmax(1) == labels[rows]).sum())
                loss_sum += float(loss.detach()) * len(rows)
            val_accuracy, val_loss = _validate(net, val_data, config.label_smoothing)
            logs = {"epoch": epoch, "accuracy": round(correct / seen, 4), "loss": round(loss_sum / seen, 4),
                    "val_accuracy": round(val_accuracy, 4), "val_loss": round(val_loss, 4),
                    "learning_rate": f"{lr:.3g}", "seconds": round(time.monotonic() - epoch_started)}
            progress["epoch"] = epoch + 1
            if val_accuracy > progress["best_val"]:
                progress["best_val"], progress["best_epoch"] = val_accuracy, epoch
                _save_atomically({"model": net.state_dict()}, best_path)
            _save_atomically({"model": net.state_dict(), "optimiser": optimiser.state_dict(),
                              "generator": generator.get_state(), "progress": progress}, last_path)
            _append_history(history, logs)
            logger.info("epoch %d/%d %s", epoch + 1, config.epochs, logs)
            for callback in extra_callbacks or ():
                callback(epoch, logs)
            if epoch >= config.epochs // 2 and epoch - progress["best_epoch"] >= config.patience:
                logger.info("early stop: no better validation accuracy for %d epochs", config.patience)
                break
    finally:
        with (work_dir / "train_seconds.txt").open("a") as log:
            log.write(f"{time.monotonic() - started:.0f}\n")
    (work_dir / DONE_MARKER).write_text("training finished; delete this file to train again\n")
    return load_net(best_path, config)


def _append_history(path: Path, logs: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HISTORY_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(logs)


def validation_data(data_dir: Path, work_dir: Path) -> tuple[ExpressionData, ExpressionData]:
    """The (train, validation) split a run in work_dir used."""
    saved = json.loads((Path(work_dir) / "train_config.json").read_text())
    data = load_split(Path(data_dir), saved.get("limit_per_class"))
    return split_validation(data, saved["validation_fraction"], saved["seed"])
