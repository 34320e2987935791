"""RetryingCamera: reopens a missing or lost camera with capped exponential backoff."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

from kiosk.backoff import BackoffDelays
from kiosk.camera.base import Camera, Frame, MonotonicClock, Sleep
from kiosk.errors import CameraUnavailableError

logger = logging.getLogger(__name__)

CameraState = Literal["closed", "ok", "lost", "retrying", "ended"]


@dataclass(frozen=True, slots=True)
class CameraStatus:
    """Camera health for the status page; times are monotonic seconds."""

    state: CameraState
    last_error: str | None
    reconnects: int  # successful reopens after a loss or a failed open
    failed_attempts: int  # failed opens since the camera was last ok
    next_attempt_in_s: float | None  # None unless lost/retrying
    frames: int  # frames delivered through this wrapper
    since: float  # when the state last changed

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dataclasses.asdict(self)


class RetryingCamera(Camera):
    """Wraps a Camera; read() returns None (never raises) while the camera is missing or lost.

    Reopen attempts wait initial_delay_s, then factor times longer each failure, up to
    max_delay_s. One read() call blocks for at most max_block_s, so a caller's loop can keep
    petting a watchdog; it never spins: each call either reads, sleeps or makes an attempt.
    Errors retrying cannot fix (CameraError other than CameraUnavailableError) propagate.
    Frame indices are renumbered to run on across reconnects.
    """

    def __init__(
        self,
        camera: Camera,
        *,
        initial_delay_s: float = 0.5,
        max_delay_s: float = 10.0,
        factor: float = 2.0,
        max_block_s: float = 1.0,
        idle_sleep_s: float = 0.01,
        clock: MonotonicClock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        if initial_delay_s <= 0 or max_delay_s < initial_delay_s or factor < 1 or max_block_s <= 0:
            raise ValueError("need 0 < initial_delay_s <= max_delay_s, factor >= 1, max_block_s > 0")
        self.camera = camera
        self.initial_delay_s = initial_delay_s
        self.max_delay_s = max_delay_s
        self.factor = factor
        self.max_block_s = max_block_s
        self.idle_sleep_s = idle_sleep_s
        self._clock = clock
        self._sleep = sleep
        self._state: CameraState = "closed"
        self._since = clock()
        self._last_error: str | None = None
        self._reconnects = 0
        self._failed = 0
        self._delays = BackoffDelays(initial_delay_s, max_delay_s, factor)
        self._next_attempt: float | None = None
        self._frames = 0
        self._inner_open = False
        self._was_down = False

    @property
    def ended(self) -> bool:
        """True once a finite source (replay without loop) has delivered its last frame."""
        return self._state == "ended"

    @property
    def state(self) -> CameraState:
        """closed, ok, lost (waiting for the first reopen), retrying, or ended."""
        return self._state

    def status(self) -> CameraStatus:
        """A snapshot of the camera's health."""
        next_in = None
        if self._next_attempt is not None and self._state in ("lost", "retrying"):
            next_in = max(0.0, self._next_attempt - self._clock())
        return CameraStatus(
            state=self._state,
            last_error=self._last_error,
            reconnects=self._reconnects,
            failed_attempts=self._failed,
            next_attempt_in_s=next_in,
            frames=self._frames,
            since=self._since,
        )

    def open(self) -> None:
        """Try to open now; a missing camera is not an error (reads retry), a broken config is."""
        if self._state != "closed":
            return
        self._delays.reset()
        self._attempt()

    def read(self) -> Frame | None:
        """The next frame (RGB uint8 HxWx3), or None while down, between frames or at the end."""
        if self._state == "closed":
            self.open()
        if self._state == "ended":
            return None
        if not self._inner_open:
            assert self._next_attempt is not None
            wait = self._next_attempt - self._clock()
            if wait > 0:
                self._sleep(min(wait, self.max_block_s))
                if self._next_attempt - self._clock() > 0:
                    return None
            if not self._attempt():
                return None
        try:
            frame = self.camera.read()
        except CameraUnavailableError as exc:
            self._went_down(exc, "lost")
            return None
        if frame is None:
            if getattr(self.camera, "ended", False):
                self._set_state("ended")
            else:
                self._sleep(self.idle_sleep_s)
            return None
        frame = dataclasses.replace(frame, index=self._frames)
        self._frames += 1
        return frame

    def close(self) -> None:
        """Close the camera; a later open() starts afresh."""
        self._close_inner()
        self._next_attempt = None
        self._set_state("closed")

    # -- internals ------------------------------------------------------------------------

    def _attempt(self) -> bool:
        """One open attempt; True when the camera is open."""
        try:
            self.camera.open()
        except CameraUnavailableError as exc:
            self._close_inner()
            self._failed += 1
            self._went_down(exc, "retrying")
            return False
        self._inner_open = True
        if self._was_down:
            self._reconnects += 1
            logger.info("camera back after %d failed attempt(s)", self._failed)
        self._was_down = False
        self._failed = 0
        self._delays.reset()
        self._next_attempt = None
        self._set_state("ok")
        return True

    def _went_down(self, exc: Exception, state: CameraState) -> None:
        """Record the failure and schedule the next attempt with backoff."""
        self._close_inner()
        message = str(exc)
        if state == "lost":
            logger.warning("camera lost: %s", message)
        elif self._failed == 1 or message != self._last_error:
            logger.warning("camera unavailable: %s (retrying, backing off up to %g s)", message, self.max_delay_s)
        elif self._failed % 30 == 0:
            logger.warning("camera still unavailable after %d attempts: %s", self._failed, message)
        else:
            logger.debug("camera open attempt %d failed: %s", self._failed, message)
        self._last_error = message
        self._was_down = True
        if state == "lost":
            self._delays.reset()
        self._next_attempt = self._clock() + self._delays.next_s()
        self._set_state(state)

    def _close_inner(self) -> None:
        try:
            self.camera.close()
        except Exception:  # noqa: BLE001 - a broken device may fail to close; keep going
            logger.debug("camera close failed", exc_info=True)
        self._inner_open = False

    def _set_state(self, state: CameraState) -> None:
        if state != self._state:
            self._state = state
            self._since = self._clock()
