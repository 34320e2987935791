"""Build a camera from CameraSettings: `type` picks the backend, `options` configure it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from kiosk.camera.base import Camera, MonotonicClock, Sleep
from kiosk.camera.options import OpenCVOptions, PiCameraOptions, ReplayOptions, parse_options
from kiosk.camera.retry import RetryingCamera

if TYPE_CHECKING:
    from kiosk.config import CameraSettings


def create_camera(
    settings: CameraSettings,
    *,
    clock: MonotonicClock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> Camera:
    """An unopened camera for settings.type; CameraError on invalid options."""
    options = parse_options(settings.type, dict(settings.options))
    if isinstance(options, ReplayOptions):
        from kiosk.camera.replay import ReplayCamera

        return ReplayCamera(options, clock=clock, sleep=sleep)
    if isinstance(options, OpenCVOptions):
        from kiosk.camera.opencv import OpenCVCamera

        return OpenCVCamera(options, clock=clock)
    assert isinstance(options, PiCameraOptions)
    from kiosk.camera.picam import PiCamera

    return PiCamera(options, clock=clock)


def open_camera(
    settings: CameraSettings,
    *,
    clock: MonotonicClock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> Camera:
    """An opened camera; raises CameraError (CameraUnavailableError when it is missing now)."""
    camera = create_camera(settings, clock=clock, sleep=sleep)
    camera.open()
    return camera


def open_retrying_camera(
    settings: CameraSettings,
    *,
    clock: MonotonicClock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> RetryingCamera:
    """A RetryingCamera, opened or already retrying; raises only CameraError retrying cannot fix."""
    camera = RetryingCamera(
        create_camera(settings, clock=clock, sleep=sleep),
        initial_delay_s=settings.retry_initial_s,
        max_delay_s=settings.retry_max_s,
        clock=clock,
        sleep=sleep,
    )
    camera.open()
    return camera
