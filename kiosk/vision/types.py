"""Array and box types of the vision code: RGB/grey uint8 images, float32 arrays, face boxes, landmarks."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# Images inside the program: RGB uint8 HxWx3 (colour order R, G, B), grey uint8 HxW.
RGBImage = npt.NDArray[np.uint8]
GreyImage = npt.NDArray[np.uint8]
# Model inputs and outputs (class scores, embeddings, distances): float32 of any shape.
Float32Array = npt.NDArray[np.float32]
# A face box: (top, right, bottom, left) pixels, as face_recognition draws it.
Box = tuple[int, int, int, int]
# face_recognition's landmark names -> image (x, y) pixel points.
Landmarks = dict[str, list[tuple[int, int]]]
