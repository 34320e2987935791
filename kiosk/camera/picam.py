"""Raspberry Pi camera through picamera2/libcamera; picamera2 is imported only in open()."""

from __future__ import annotations

import logging
import time
from typing import Any

from kiosk.camera.base import Camera, Frame, MonotonicClock
from kiosk.camera.options import PiCameraOptions
from kiosk.errors import CameraError, CameraLostError, CameraUnavailableError

logger = logging.getLogger(__name__)

NOT_INSTALLED = (
    "picamera2 is not installed; on Raspberry Pi OS run apt install python3-picamera2 "
    "and create the venv with --system-site-packages"
)


class PiCamera(Camera):
    """Picamera2 source; frames RGB uint8 HxWx3 at options.size."""

    def __init__(self, options: PiCameraOptions, *, clock: MonotonicClock = time.monotonic) -> None:
        self.options = options
        self._clock = clock
        self._source = f"picamera2 camera {options.camera_num}"
        self._camera: Any = None
        self._index = 0

    def open(self) -> None:
        """Start the camera; CameraError if picamera2 is missing, CameraUnavailableError if no camera."""
        if self._camera is not None:
            return
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise CameraError(NOT_INSTALLED) from None
        except Exception as exc:  # e.g. numpy ABI mismatch inside picamera2's own imports
            raise CameraError(f"picamera2 failed to import: {exc}") from None
        opts = self.options
        try:
            found = len(Picamera2.global_camera_info())
        except Exception as exc:
            raise CameraUnavailableError(f"{self._source}: libcamera failed: {exc}") from None
        if found <= opts.camera_num:
            raise CameraUnavailableError(
                f"{self._source}: not detected ({found} camera(s) found; check the ribbon cable "
                "and `rpicam-hello --list-cameras`)"
            )
        camera = None
        try:
            camera = Picamera2(opts.camera_num)
            kwargs: dict[str, Any] = {"main": {"size": tuple(opts.size), "format": "RGB888"}}
            if opts.hflip or opts.vflip:
                from libcamera import Transform  # type: ignore[import-not-found, unused-ignore]  # Pi only

                kwargs["transform"] = Transform(hflip=int(opts.hflip), vflip=int(opts.vflip))
            camera.configure(camera.create_video_configuration(**kwargs))
            camera.start()
        except Exception as exc:  # libcamera raises RuntimeError/IndexError for busy or missing
            if camera is not None:
                _close_quietly(camera)
            raise CameraUnavailableError(f"{self._source}: cannot start: {exc}") from None
        self._camera = camera
        logger.info("opened %s at %dx%d", self._source, *opts.size)

    def read(self) -> Frame | None:
        """The next frame; CameraLostError when none arrives within options.timeout_s."""
        if self._camera is None:
            raise CameraError(f"{self._source}: read() before open()")
        try:
            job = self._camera.capture_array("main", wait=False)
            array = self._camera.wait(job, timeout=self.options.timeout_s)
        except TimeoutError:
            raise CameraLostError(
                f"{self._source}: no frame within {self.options.timeout_s:g} s"
            ) from None
        except Exception as exc:
            raise CameraLostError(f"{self._source}: capture failed: {exc}") from None
        # libcamera "RGB888" is B, G, R in memory: reverse the channels to get RGB.
        image = array[:, :, 2::-1].copy()
        frame = Frame(image=image, timestamp=self._clock(), index=self._index)
        self._index += 1
        return frame

    def close(self) -> None:
        """Stop and release the camera."""
        if self._camera is not None:
            _close_quietly(self._camera)
            self._camera = None


def _close_quietly(camera: Any) -> None:
    try:
        camera.stop()
    except Exception:  # noqa: BLE001 - already broken; closing is best effort
        logger.debug("picamera2 stop failed", exc_info=True)
    try:
        camera.close()
    except Exception:  # noqa: BLE001
        logger.debug("picamera2 close failed", exc_info=True)
