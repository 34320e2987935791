"""dlib's 128-d face embedder as a LiteRT (.tflite) twin: aligned face chip in, embedding out.

The model (models/face_embedder_f16.tflite, built by kiosk/training/dlib_embedder/ from dlib's
CC0 `dlib_face_recognition_resnet_model_v1.dat`; see models/EMBEDDER.md) takes the same chip
dlib's compute_face_descriptor makes: dlib.get_face_chip(image, shape, size=150, padding=0.25),
RGB, float32 pixel values 0..255, shape (1, 150, 150, 3). dlib's input normalisation
((pixel - mean) / 256) is inside the model. Its SHA-256 is checked before loading.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np

from kiosk.errors import ImageError, ModelError
from kiosk.vision.embedding import EMBEDDING_SIZE, Embedding
from kiosk.vision.runtime import load_interpreter
from kiosk.vision.types import RGBImage

logger = logging.getLogger(__name__)

CHIP_SIZE = 150
CHIP_PADDING = 0.25
MODEL_NAME = "face_embedder_f16.tflite"
# The shipped model: the repository's models/ folder (source checkout, editable install), or
# <venv>/share/kiosk/models/ where a regular install puts it (pyproject data-files).
MODEL_LOCATIONS = (
    Path(__file__).resolve().parents[2] / "models" / MODEL_NAME,
    Path(sys.prefix) / "share" / "kiosk" / "models" / MODEL_NAME,
)
DEFAULT_MODEL = next((p for p in MODEL_LOCATIONS if p.is_file()), MODEL_LOCATIONS[0])


class LiteRTFaceEmbedder:
    """dlib ResNet twin on LiteRT: RGB uint8 150x150x3 face chip -> 128-d float32 embedding."""

    def __init__(self, model_path: Path | str | None = None, *, check: bool = True, threads: int = 1,
                 prefer_runtime: str | None = None) -> None:
        self.path = Path(model_path) if model_path else DEFAULT_MODEL
        self.interpreter, self.runtime = load_interpreter(self.path, check=check, threads=threads,
                                                          prefer=prefer_runtime)
        inp = self.interpreter.get_input_details()[0]
        out = self.interpreter.get_output_details()[0]
        if (tuple(inp["shape"]) != (1, CHIP_SIZE, CHIP_SIZE, 3) or inp["dtype"] != np.float32
                or int(out["shape"][-1]) != EMBEDDING_SIZE or out["dtype"] != np.float32):
            raise ModelError(f"{self.path}: expected a float32 1x{CHIP_SIZE}x{CHIP_SIZE}x3 input and a float32 "
                             f"{EMBEDDING_SIZE}-d output, got {list(inp['shape'])} {np.dtype(inp['dtype']).name}"
                             f" -> {list(out['shape'])} {np.dtype(out['dtype']).name}")
        self._in_index = inp["index"]
        self._out_index = out["index"]

    def embed_chip(self, chip: RGBImage) -> Embedding:
        """RGB uint8 (150, 150, 3) chip (dlib.get_face_chip, padding 0.25) -> float32 (128,)."""
        chip = np.asarray(chip)
        if chip.shape != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ImageError(f"expected a {CHIP_SIZE}x{CHIP_SIZE}x3 face chip, got shape {chip.shape}")
        self.interpreter.set_tensor(self._in_index, chip.astype(np.float32)[None])
        self.interpreter.invoke()
        return np.array(self.interpreter.get_tensor(self._out_index)[0], dtype=np.float32)


def model_path(configured: Path | str | None) -> Path:
    """The configured embedder model file, or the one shipped with the package."""
    return Path(configured) if configured else DEFAULT_MODEL
