"""Train the expression CNN with early stopping and resumable checkpoints (needs the train extra)."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from kiosk.training.augment import NOISE_STDDEV, augmenter  # noqa: E402
from kiosk.training.dataset import ExpressionData, class_weights, load_split, split_validation  # noqa: E402
from kiosk.training.model import build_model  # noqa: E402
from kiosk.training.warm_start import init_from_tflite  # noqa: E402
from kiosk.vision.preprocess import CLASSES  # noqa: E402

logger = logging.getLogger(__name__)

DONE_MARKER = "DONE"  # written when fit() ends; a later run with the same work_dir only exports


@dataclass
class TrainConfig:
    """Hyper-parameters; saved beside the checkpoints so a resumed run uses the same ones."""

    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    class_weight_power: float = 0.5
    widths: tuple[int, ...] = (32, 64, 128, 192)
    convs_per_block: int = 2
    validation_fraction: float = 0.1
    patience: int = 10
    seed: int = 13
    limit_per_class: int | None = None
    init_from: str | None = None  # an int8 .tflite of the same widths to start from (see warm_start)
    init_sha256: str | None = None
    extra: dict = field(default_factory=dict)


def _dataset(data: ExpressionData, batch: int, shuffle: bool, seed: int, augment: bool) -> tf.data.Dataset:
    x = data.images[..., None].astype(np.float32)
    y = keras.utils.to_categorical(data.labels, len(CLASSES)).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(data), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch)
    if augment:
        aug = augmenter(seed)

        def _augment(a: tf.Tensor, b: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            a = aug(a, training=True) + tf.random.normal(tf.shape(a), stddev=NOISE_STDDEV)
            return tf.clip_by_value(a, 0.0, 255.0), b

        ds = ds.map(_augment, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _sample_weights(labels: np.ndarray, power: float) -> dict[int, float]:
    return class_weights(labels, power) if power > 0 else {i: 1.0 for i in range(len(CLASSES))}


def train(data_dir: Path, work_dir: Path, config: TrainConfig | None = None,
          extra_callbacks: list | None = None) -> keras.Model:
    """Train on data_dir (Kaggle layout <class>/*.jpg); checkpoints in work_dir; returns the best model.

    Re-running with the same work_dir resumes from the last finished epoch; once training has
    finished (DONE marker), it returns the best checkpoint without training again.
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    config_path = work_dir / "train_config.json"
    if config_path.exists():
        saved = json.loads(config_path.read_text())
        saved["widths"] = tuple(saved["widths"])
        config = TrainConfig(**saved)
        logger.info("resuming with saved config %s", config_path)
    config = config or TrainConfig()
    best_path = work_dir / "best.keras"
    if (work_dir / DONE_MARKER).exists() and best_path.exists():
        logger.info("training in %s already finished; using %s", work_dir, best_path)
        return keras.models.load_model(best_path)
    config_path.write_text(json.dumps(asdict(config), indent=2))
    keras.utils.set_random_seed(config.seed)

    data = load_split(Path(data_dir), config.limit_per_class)
    train_data, val_data = split_validation(data, config.validation_fraction, config.seed)
    logger.info("train %d images, validation %d", len(train_data), len(val_data))
    train_ds = _dataset(train_data, config.batch_size, True, config.seed, augment=True)
    val_ds = _dataset(val_data, 256, False, config.seed, augment=False)

    steps = int(np.ceil(len(train_data) / config.batch_size)) * config.epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, steps - steps // 20), warmup_target=config.learning_rate,
        warmup_steps=max(1, steps // 20),
    )
    model = build_model(config.widths, config.convs_per_block)
    if config.init_from:
        sample = train_data.images[np.random.default_rng(config.seed).permutation(len(train_data))[:2048]]
        init_from_tflite(model, Path(config.init_from), sample)
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )
    callbacks = [
        keras.callbacks.BackupAndRestore(str(work_dir / "backup")),
        keras.callbacks.ModelCheckpoint(str(best_path), monitor="val_accuracy", mode="max", save_best_only=True),
        keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=config.patience,
                                      start_from_epoch=config.epochs // 2),
        keras.callbacks.CSVLogger(str(work_dir / "history.csv"), append=True),
        *(extra_callbacks or []),
    ]
    started = time.monotonic()
    model.fit(
        train_ds, validation_data=val_ds, epochs=config.epochs, callbacks=callbacks,
        class_weight=_sample_weights(train_data.labels, config.class_weight_power), verbose=2, shuffle=False,
    )
    with (work_dir / "train_seconds.txt").open("a") as log:
        log.write(f"{time.monotonic() - started:.0f}\n")
    (work_dir / DONE_MARKER).write_text("training finished; delete this file to train again\n")
    return keras.models.load_model(best_path) if best_path.exists() else model


def validation_data(data_dir: Path, work_dir: Path) -> tuple[ExpressionData, ExpressionData]:
    """The (train, validation) split a run in work_dir used."""
    saved = json.loads((Path(work_dir) / "train_config.json").read_text())
    data = load_split(Path(data_dir), saved.get("limit_per_class"))
    return split_validation(data, saved["validation_fraction"], saved["seed"])
