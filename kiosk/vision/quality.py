"""Frame quality at the door: the sharpness gate for a face's first frame, and motion blur to test it.

A face walking up blurs along its path; the variance of the Laplacian of its crop (sharpness_of,
the measure recognition.quality.min_sharpness uses) falls with the blur. The door analyses a face
on its first large-enough frame only when the crop is sharp enough (attendance.start_sharpness),
and otherwise waits for attendance.steady_frames still frames. motion_blur() makes walking-blurred
frames (RGB uint8 HxWx3) from sharp ones for tests and measurements.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from kiosk.vision.faces import sharpness_of
from kiosk.vision.types import Box, Float32Array, RGBImage

logger = logging.getLogger(__name__)

# The replay scenes' walk: mostly sideways (38 px a frame) and a little up (4.5 px): ~7 degrees.
WALK_ANGLE_DEG = 7.0


def motion_kernel(length_px: int, angle_deg: float = WALK_ANGLE_DEG) -> Float32Array | None:
    """float32 length_px x length_px kernel of a straight smear at angle_deg (0 = sideways), sum 1;
    None for length_px <= 1 (no blur)."""
    if length_px <= 1:
        return None
    kernel = np.zeros((length_px, length_px), np.float32)
    c = (length_px - 1) / 2.0
    dx, dy = np.cos(np.radians(angle_deg)) * c, np.sin(np.radians(angle_deg)) * c
    cv2.line(kernel, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1, cv2.LINE_AA)
    return kernel / float(kernel.sum())


def motion_blur(image: RGBImage, length_px: int, angle_deg: float = WALK_ANGLE_DEG) -> RGBImage:
    """A copy of the RGB uint8 HxWx3 image smeared over length_px px along angle_deg (as a face
    moving that far during the exposure); the image itself for length_px <= 1."""
    kernel = motion_kernel(length_px, angle_deg)
    if kernel is None:
        return image
    return np.asarray(cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT), dtype=np.uint8)


def sharp_enough(image: RGBImage, box: Box, threshold: float) -> bool:
    """Whether the face in box (top, right, bottom, left px) of an RGB uint8 HxWx3 frame is at least
    threshold sharp (variance of the Laplacian, see sharpness_of); False for threshold <= 0 (gate off)."""
    return threshold > 0 and sharpness_of(image, box) >= threshold
