"""The face embedding: its length (128, dlib's ResNet), its array type and the one check of it."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from kiosk.errors import GalleryError, KioskError

logger = logging.getLogger(__name__)

EMBEDDING_SIZE = 128
# One (128,) or several (M, 128) float32 embeddings.
Embedding = npt.NDArray[np.float32]


def as_embeddings(values: npt.ArrayLike | Iterable[npt.ArrayLike],
                  error: type[KioskError] = GalleryError) -> Embedding:
    """One (128,) or several (M, 128) embeddings -> C-contiguous float32 (M, 128), all finite.

    Anything else raises `error` (GalleryError for the gallery, InvalidTemplate for the store).
    """
    arr = np.asarray(values, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != EMBEDDING_SIZE:
        raise error(f"face embeddings must have shape ({EMBEDDING_SIZE},) or (N, {EMBEDDING_SIZE}), "
                    f"got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise error("face embeddings contain NaN or infinite values")
    return np.ascontiguousarray(arr)
