"""dlib's 128-d face embedder (ResNet `dlib_face_recognition_resnet_model_v1.dat`) as a TFLite twin.

Reads the network's weights straight from dlib's serialisation (no dlib needed: dat_reader),
rebuilds the same net in tf.keras (keras_net) and exports .tflite (float32, float16 or int8:
tflite_export); measure and agreement compare the twin with dlib, cli runs it all
(`kiosk train embedder`, `python -m kiosk.training.dlib_embedder`).
"""

from __future__ import annotations

from kiosk.gallery import EMBEDDING_SIZE
from kiosk.training.dlib_embedder.agreement import identity_agreement
from kiosk.training.dlib_embedder.cli import main
from kiosk.training.dlib_embedder.dat_reader import (
    DlibFormatError,
    DlibLayer,
    DlibNet,
    read_dlib_net,
)
from kiosk.training.dlib_embedder.keras_net import LEVELS, build_keras, plan
from kiosk.training.dlib_embedder.measure import (
    CHIP_PADDING,
    CHIP_SIZE,
    default_dat_path,
    distance_stats,
    extract_chips,
    paired_timing,
    tflite_embed,
)
from kiosk.training.dlib_embedder.tflite_export import export_tflite

__all__ = [
    "CHIP_PADDING",
    "CHIP_SIZE",
    "EMBEDDING_SIZE",
    "LEVELS",
    "DlibFormatError",
    "DlibLayer",
    "DlibNet",
    "build_keras",
    "default_dat_path",
    "distance_stats",
    "export_tflite",
    "extract_chips",
    "identity_agreement",
    "main",
    "paired_timing",
    "plan",
    "read_dlib_net",
    "tflite_embed",
]
