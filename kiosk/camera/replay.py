"""Replay camera: a folder of images (name order) or a video file, paced at a given fps.

A folder or video that is missing (at open, or removed while running) is "camera not there":
CameraUnavailableError / CameraLostError, which RetryingCamera turns into "camera offline" and
retries, as it does for an unplugged USB camera.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from kiosk.camera.base import Camera, Frame, MonotonicClock, Sleep, bgr_to_rgb
from kiosk.camera.options import ReplayOptions
from kiosk.errors import CameraError, CameraLostError, CameraUnavailableError
from kiosk.vision.faces import IMAGE_SUFFIXES

logger = logging.getLogger(__name__)


class ReplayCamera(Camera):
    """Frames from a folder of images or a video file; RGB uint8 HxWx3, timestamps from clock."""

    def __init__(
        self,
        options: ReplayOptions,
        *,
        clock: MonotonicClock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.options = options
        self._clock = clock
        self._sleep = sleep
        self._source = f"replay {options.path}"
        self._files: list[Path] | None = None
        self._video: cv2.VideoCapture | None = None
        self._is_open = False
        self._position = 0  # next frame within the folder / video
        self._delivered = 0  # frames handed out since construction
        self._next_due: float | None = None
        self._gap_until: float | None = None
        self._gap_done = False
        self.ended = False

    # -- protocol -------------------------------------------------------------------------

    def open(self) -> None:
        """Check the path and start (or resume after a simulated gap); raises CameraError."""
        if self._is_open:
            return
        self._check_gap_over()
        path = self.options.path
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise CameraUnavailableError(
                    f"{self._source}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in the folder"
                )
            self._files = files
        elif path.is_file():
            video = cv2.VideoCapture(str(path))
            if not video.isOpened():
                video.release()
                raise CameraError(f"{self._source}: not an image folder or a video OpenCV can read")
            if self._position:
                video.set(cv2.CAP_PROP_POS_FRAMES, self._position)
            self._video = video
        else:
            raise CameraUnavailableError(f"{self._source}: no such folder or video file")
        self._is_open = True
        self._next_due = None
        logger.info("opened %s", self._source)

    def read(self) -> Frame | None:
        """The next frame after pacing to fps; None once the source has ended (loop off)."""
        if not self._is_open:
            raise CameraError(f"{self._source}: read() before open()")
        if self._gap_until is not None:
            raise CameraLostError(f"{self._source}: simulated camera gap")
        gap_after = self.options.gap_after
        if gap_after is not None and not self._gap_done and self._delivered >= gap_after:
            self._gap_done = True
            self._gap_until = self._clock() + self.options.gap_s
            raise CameraLostError(
                f"{self._source}: simulated camera loss after {gap_after} frames "
                f"({self.options.gap_s:g} s)"
            )
        if self.ended:
            return None
        if not self.options.path.exists():
            raise CameraLostError(f"{self._source}: the folder or video file has gone")
        image = self._next_image()
        if image is None:
            self.ended = True
            logger.info("%s: end of source after %d frames", self._source, self._delivered)
            return None
        self._pace()
        frame = Frame(image=image, timestamp=self._clock(), index=self._delivered)
        self._delivered += 1
        return frame

    def close(self) -> None:
        """Release the video file (the position is kept for a later open())."""
        if self._video is not None:
            self._video.release()
            self._video = None
        self._is_open = False

    # -- internals ------------------------------------------------------------------------

    def _check_gap_over(self) -> None:
        if self._gap_until is None:
            return
        left = self._gap_until - self._clock()
        if left > 0:
            raise CameraUnavailableError(f"{self._source}: simulated camera gap, {left:.1f} s left")
        self._gap_until = None

    def _pace(self) -> None:
        """Sleep until the next frame is due at options.fps; never bursts to catch up."""
        fps = self.options.fps
        if fps <= 0:
            return
        now = self._clock()
        if self._next_due is None or now > self._next_due + 1.0 / fps:
            self._next_due = now
        elif now < self._next_due:
            self._sleep(self._next_due - now)
        self._next_due += 1.0 / fps

    def _next_image(self) -> npt.NDArray[np.uint8] | None:
        """RGB uint8 HxWx3 of the frame at the current position, or None at the end."""
        for _attempt in range(2):  # second pass only after a loop restart
            image = self._read_file() if self._files is not None else self._read_video()
            if image is not None:
                self._position += 1
                return image
            if not self.options.loop or self._position == 0:
                if self._position == 0:
                    raise CameraError(f"{self._source}: contains no readable frames")
                return None
            self._position = 0
            if self._video is not None:
                self._video.set(cv2.CAP_PROP_POS_FRAMES, 0)
        return None

    def _read_file(self) -> npt.NDArray[np.uint8] | None:
        assert self._files is not None
        while self._position < len(self._files):
            path = self._files[self._position]
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                return bgr_to_rgb(image, self._source)
            if not self.options.path.is_dir():  # removed between the check in read() and now
                raise CameraLostError(f"{self._source}: the folder has gone")
            logger.warning("%s: skipping unreadable image %s", self._source, path.name)
            self._files.pop(self._position)
        return None

    def _read_video(self) -> npt.NDArray[np.uint8] | None:
        assert self._video is not None
        ok, image = self._video.read()
        if not ok or image is None:
            return None
        return bgr_to_rgb(image, self._source)
