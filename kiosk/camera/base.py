"""The Camera seam: a Frame type, the Camera protocol and helpers shared by the backends."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self, cast, runtime_checkable

import numpy as np
import numpy.typing as npt

from kiosk.errors import CameraError

logger = logging.getLogger(__name__)

MonotonicClock = Callable[[], float]
"""Returns monotonic seconds (time.monotonic or a fake)."""

Sleep = Callable[[float], None]
"""Blocks for the given seconds (time.sleep or a fake that advances a fake clock)."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One camera image: RGB uint8 HxWx3, monotonic capture time in seconds, running index from 0."""

    image: npt.NDArray[np.uint8]
    timestamp: float
    index: int


@runtime_checkable
class Camera(Protocol):
    """A frame source. read() gives the next Frame, or None when none is available now.

    None also means "finished" for a finite source; such sources set `ended = True`.
    read() raises CameraLostError when the device went away (close, then open again);
    open() raises CameraUnavailableError when the device is missing now (retrying may help)
    and CameraError for problems retrying cannot fix (bad options, missing software).
    open() on an open camera does nothing; close() on a closed one does nothing.

    The backends subclass Camera for its context-manager half; a fake needs no inheritance, only
    these five methods.
    """

    def open(self) -> None:
        """Acquire the device or file."""
        ...

    def read(self) -> Frame | None:
        """The next frame (RGB uint8 HxWx3), or None."""
        ...

    def close(self) -> None:
        """Release the device or file."""
        ...

    def __enter__(self) -> Self:
        """open() and return self (a backend that subclasses Camera inherits this)."""
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """close() (inherited like __enter__)."""
        self.close()


def bgr_to_rgb(image: npt.NDArray[Any], source: str) -> npt.NDArray[np.uint8]:
    """OpenCV image (BGR HxWx3, BGRA HxWx4 or grey HxW, uint8) -> contiguous RGB uint8 HxWx3.

    image is what OpenCV read (any dtype); CameraError unless it is 8-bit of one of those shapes.
    """
    import cv2

    if image.dtype != np.uint8:
        raise CameraError(f"{source}: frames are {image.dtype}, expected 8-bit images")
    if image.ndim == 2:
        code = cv2.COLOR_GRAY2RGB
    elif image.ndim == 3 and image.shape[2] == 3:
        code = cv2.COLOR_BGR2RGB
    elif image.ndim == 3 and image.shape[2] == 4:
        code = cv2.COLOR_BGRA2RGB
    else:
        raise CameraError(f"{source}: frames have shape {image.shape}, expected HxW, HxWx3 or HxWx4")
    return cast(npt.NDArray[np.uint8], cv2.cvtColor(image, code))  # uint8 in, uint8 out
