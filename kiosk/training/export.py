"""Full-integer int8 TFLite export (int8 input and output) with a representative data set."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from kiosk.vision.runtime import sha256_of

logger = logging.getLogger(__name__)


def export_int8(model, representative: np.ndarray, out_path: Path, samples: int = 500, seed: int = 0) -> Path:
    """Convert a Keras model to int8 .tflite at out_path and write out_path.sha256 beside it.

    representative: uint8 N x 48 x 48 preprocessed training crops used to calibrate the ranges.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    chosen = representative[rng.permutation(len(representative))[:samples]]

    def gen():
        for crop in chosen:
            yield [crop.astype(np.float32)[None, :, :, None]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = gen
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    data = converter.convert()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(data)
    write_checksum(out_path)
    logger.info("wrote %s (%d bytes)", out_path, len(data))
    return out_path


def write_checksum(path: Path) -> Path:
    """Write '<sha256>  <name>' to path.sha256 (sha256sum format)."""
    sums = path.with_name(path.name + ".sha256")
    sums.write_text(f"{sha256_of(path)}  {path.name}\n")
    return sums
