"""Synthetic training samples, as in the thesis: small rotations, skews/shifts, zoom, flips, noise."""

from __future__ import annotations

import keras
from keras import layers


def augmenter(seed: int = 7) -> keras.Sequential:
    """Random geometric/contrast augmentation for float32 N x 48 x 48 x 1 batches with values 0..255 (training only)."""
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomRotation(0.04, fill_mode="nearest", seed=seed),  # about +-14 degrees
            layers.RandomTranslation(0.08, 0.08, fill_mode="nearest", seed=seed),
            layers.RandomZoom((-0.1, 0.1), fill_mode="nearest", seed=seed),
            layers.RandomContrast(0.2, seed=seed),
        ],
        name="augment",
    )


NOISE_STDDEV = 4.0  # grey levels of additive Gaussian noise, applied after augmenter()
