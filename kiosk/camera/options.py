"""Per-backend camera options: one strict pydantic model per `camera.type`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kiosk.errors import CameraError


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PiCameraOptions(_Options):
    """Options for type: picamera2 (Raspberry Pi camera through libcamera)."""

    # Which camera when several are attached (see `rpicam-hello --list-cameras`).
    camera_num: int = Field(0, ge=0, le=7)
    # Frame size [width, height] in pixels. Bigger finds faces further away but every
    # detection costs more: 640x480 keeps HOG detection near 1.5 s on a Pi 4.
    size: tuple[int, int] = (640, 480)
    # Seconds to wait for one frame before the camera counts as lost.
    timeout_s: float = Field(5.0, gt=0.0, le=60.0)
    # Mirror or flip the image (for a camera mounted sideways or upside down).
    hflip: bool = False
    vflip: bool = False

    @field_validator("size")
    @classmethod
    def _positive_size(cls, value: tuple[int, int]) -> tuple[int, int]:
        if min(value) < 16 or max(value) > 8192:
            raise ValueError("size must be [width, height] between 16 and 8192 pixels")
        return value


class OpenCVOptions(_Options):
    """Options for type: opencv (USB/V4L2 camera by index or path, or a stream URL)."""

    # An integer index (0 is /dev/video0), a device path, or a URL such as rtsp://host/stream.
    device: int | str = 0
    # Requested frame size; the driver may pick the nearest it supports. None keeps its default.
    width: int | None = Field(None, ge=16, le=8192)
    height: int | None = Field(None, ge=16, le=8192)
    # Requested frame rate; None keeps the driver's default.
    fps: float | None = Field(None, gt=0.0, le=240.0)
    # Consecutive failed reads before the camera counts as lost. Higher rides out glitches
    # on flaky streams; lower notices an unplugged camera sooner.
    max_read_failures: int = Field(5, ge=1, le=1000)


class ReplayOptions(_Options):
    """Options for type: replay (a folder of images in name order, or a video file)."""

    # Folder of .jpg/.jpeg/.png/.bmp/.webp images, or a video file OpenCV can read (mp4, avi, ...).
    path: Path
    # Frames per second to deliver; 0 delivers them as fast as they are asked for.
    fps: float = Field(0.0, ge=0.0, le=1000.0)
    # Start again from the first frame after the last one (otherwise the source ends).
    loop: bool = False
    # Testing aid: after this many frames the "camera" disappears once, for gap_s seconds
    # (reads raise CameraLostError, opens raise CameraUnavailableError), then comes back.
    gap_after: int | None = Field(None, ge=0)
    gap_s: float = Field(5.0, ge=0.0, le=3600.0)


OPTIONS_BY_TYPE: dict[str, type[_Options]] = {
    "picamera2": PiCameraOptions,
    "opencv": OpenCVOptions,
    "replay": ReplayOptions,
}


def options_problem(camera_type: str, options: dict[str, Any]) -> str | None:
    """A one-line description of what is wrong with the options for camera_type, or None."""
    model = OPTIONS_BY_TYPE.get(camera_type)
    if model is None:
        return f"unknown camera type {camera_type!r} (use one of {', '.join(OPTIONS_BY_TYPE)})"
    try:
        model.model_validate(options)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(options)"
            if err["type"] == "extra_forbidden":
                valid = ", ".join(model.model_fields)
                parts.append(f"{key}: unknown option for camera type {camera_type} (valid: {valid})")
            elif err["type"] == "missing":
                parts.append(f"{key}: required for camera type {camera_type}")
            else:
                parts.append(f"{key}: {err['msg']}")
        return "; ".join(parts)
    return None


def parse_options(camera_type: str, options: dict[str, Any]) -> _Options:
    """Validated options model for camera_type; raises CameraError with a clear message."""
    problem = options_problem(camera_type, options)
    if problem is not None:
        raise CameraError(f"camera.options: {problem}")
    return OPTIONS_BY_TYPE[camera_type].model_validate(options)
