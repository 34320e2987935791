"""OpenCV camera: a USB/V4L2 camera by index or device path, or a network stream URL."""

from __future__ import annotations

import logging
import time

import cv2

from kiosk.camera.base import Camera, Frame, MonotonicClock, bgr_to_rgb
from kiosk.camera.options import OpenCVOptions
from kiosk.errors import CameraError, CameraLostError, CameraUnavailableError

logger = logging.getLogger(__name__)


class OpenCVCamera(Camera):
    """cv2.VideoCapture source; frames converted BGR -> RGB uint8 HxWx3."""

    def __init__(self, options: OpenCVOptions, *, clock: MonotonicClock = time.monotonic) -> None:
        self.options = options
        self._clock = clock
        device = options.device
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        self._device: int | str = device
        self._source = (
            f"opencv camera {device} (/dev/video{device})" if isinstance(device, int) else f"opencv {device}"
        )
        self._capture: cv2.VideoCapture | None = None
        self._failures = 0
        self._index = 0

    def open(self) -> None:
        """Open the device or stream; raises CameraUnavailableError when it cannot be opened."""
        if self._capture is not None:
            return
        capture = cv2.VideoCapture(self._device)
        if not capture.isOpened():
            capture.release()
            hint = (
                "is it plugged in? check `ls /dev/video*` and that the user is in group video"
                if isinstance(self._device, int) or str(self._device).startswith("/dev/")
                else "check the URL and that the stream is up"
            )
            raise CameraUnavailableError(f"{self._source}: cannot open ({hint})")
        opts = self.options
        if opts.width is not None:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, opts.width)
        if opts.height is not None:
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, opts.height)
        if opts.fps is not None:
            capture.set(cv2.CAP_PROP_FPS, opts.fps)
        self._capture = capture
        self._failures = 0
        logger.info(
            "opened %s at %dx%d",
            self._source,
            int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )

    def read(self) -> Frame | None:
        """The next frame; None on a failed read; CameraLostError after max_read_failures in a row."""
        if self._capture is None:
            raise CameraError(f"{self._source}: read() before open()")
        ok, image = self._capture.read()
        if not ok or image is None:
            self._failures += 1
            if self._failures >= self.options.max_read_failures:
                raise CameraLostError(
                    f"{self._source}: no frame in {self._failures} reads (camera unplugged?)"
                )
            return None
        self._failures = 0
        frame = Frame(image=bgr_to_rgb(image, self._source), timestamp=self._clock(), index=self._index)
        self._index += 1
        return frame

    def close(self) -> None:
        """Release the device."""
        if self._capture is not None:
            self._capture.release()
            self._capture = None
