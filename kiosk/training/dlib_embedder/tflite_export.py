"""Writes a tf.keras model as a .tflite file (f32, f16, dynamic-range or int8) with its .sha256 beside it."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


def export_tflite(model: Any, out: Path, precision: str, calibration: np.ndarray | None = None) -> Path:
    """Write model as .tflite (precision 'f32', 'f16', 'dyn8' or 'int8') plus its .sha256; returns out."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if precision == "f16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        if calibration is None or len(calibration) == 0:
            raise ValueError("int8 export needs calibration chips")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

        def representative() -> Any:
            for chip in calibration:
                yield [chip[None].astype(np.float32)]

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # float32 chip in, float32 embedding out; int8 inside.
    elif precision == "dyn8":
        # Dynamic range: int8 weights, activations quantised on the fly (no calibration).
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif precision != "f32":
        raise ValueError(f"unknown precision {precision!r}")
    data = converter.convert()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    out.with_name(out.name + ".sha256").write_text(f"{digest}  {out.name}\n")
    return out
