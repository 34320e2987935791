"""Settings of the door: attendance rules, the camera, the door service and its screen."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from kiosk.config.base import Section


class AttendanceSettings(Section):
    """Check-in rules and the door pipeline's timing: cooldown, bursts, presence and fast paths."""

    # first_last: first sighting of the day is "in", every later one "out" (the last counts).
    # toggle: sightings alternate in, out, in, out.
    mode: Literal["first_last", "toggle"] = "first_last"
    # Repeated sightings of one person within this many seconds make one event.
    cooldown_s: float = Field(60.0, ge=0.0, le=86400.0)
    # Frames analysed per check-in; more is steadier and slower at the door.
    frames_per_checkin: int = Field(3, ge=1, le=30)
    # With recognition.detector hog, every frame is shrunk to this width for the cheap "is a face
    # there?" check: HOG (80 px window) finds faces taller than 80 * frame width / presence_width
    # px (128 px in a 640 px frame). Smaller is faster and needs the person closer to the camera.
    # (YuNet's presence check has its own width, recognition.yunet_presence_width.)
    presence_width: int = Field(400, ge=80, le=4096)
    # While a face is tracked, the presence check searches only a window around its last box (about
    # 2.2x its size: ~1.5 ms with YuNet here instead of ~4.5 ms for the whole frame), and the whole
    # frame when the face is not found there. false: every frame is searched whole.
    presence_crop: bool = True
    # With presence_crop, every presence_full_every-th frame of a tracked face is still searched
    # whole, so a larger face elsewhere (someone else stepping up) is taken up within that many
    # frames. Lower notices it sooner; higher costs less (1: always the whole frame).
    presence_full_every: int = Field(5, ge=1, le=1000)
    # Consecutive frames a large-enough face must hold still before it is analysed. More
    # waits for a steadier face (sharper frames) and makes the check-in start later.
    steady_frames: int = Field(2, ge=1, le=30)
    # A large-enough face at least this sharp (variance of the Laplacian of its crop, the measure of
    # recognition.quality.min_sharpness) is analysed at once, without waiting for steady_frames: a
    # walking face blurs and waits to hold still; a sharp one is decided 2-3 frames (~0.5 s) sooner.
    # Lower decides more faces on their first frame; higher waits for more of them; 0: always wait.
    # Door frames of ../shared/data faces 100 px high, smeared 0/5/9/15 px along the walk: median
    # 22/13/10/7; 15 lets 85% of the sharp faces through and stops both blurred single frames that
    # accepted a stranger there (README, Performance: 2 of 10,000; none of 2,950 named the wrong
    # person; `python -m kiosk.bench_blur` measures it).
    start_sharpness: float = Field(15.0, ge=0.0)
    # Overlap (intersection over union) of the face box between frames that counts as still.
    steady_iou: float = Field(0.5, ge=0.0, le=1.0)
    # Stop a burst as soon as its majority is settled (e.g. 2 agreeing frames of 3). Faster
    # check-ins; false analyses every frame, and a late disagreeing frame forces a retry.
    early_decision: bool = True
    # A single analysed frame this close to one person (distance to their mean template in
    # recognition.comparison's space, and accepted by recognition's rule) decides at once: one
    # embedding instead of two, about half the check-in time. Lower sends more check-ins
    # through the two-frame vote; 0 disables the fast path. Well inside
    # recognition.max_distance by design. On half A of ../shared/data/faces (one plain frame,
    # comparison wccn, the ratio rule of the time) 0.40 decides 83% of probes alone, none wrongly,
    # and accepts 0.24% of strangers (the raw distances before: 77% and 0.32%).
    single_frame_distance: float = Field(0.40, ge=0.0, le=2.0)
    # A first frame at least this far from everyone (one embedding, before the mirror pass)
    # decides "unknown" at once: strangers get their answer in one embedding. Lower answers
    # more faces fast but may turn away an enrolled person seen badly in that one frame (their
    # next visit to the camera is a fresh try); 2 or more disables it. Re-tuned on half A for
    # comparison wccn: 0.53 answers 51% of strangers at once and turns away 0.19% of probes
    # (0.55 on the raw distances before: 44% and 0.38%; 0.55 now would answer only 30%).
    single_frame_reject_distance: float = Field(0.53, ge=0.0, le=2.0)
    # Analysed frames after which a burst with too few usable faces (blurred, turned) gives
    # up until the face leaves or recheck_s passes. More retries; fewer "please look" waits.
    max_burst_frames: int = Field(10, ge=1, le=300)
    # A face missing for this long ends the visit; the next face is a new arrival.
    leave_s: float = Field(1.5, gt=0.0, le=600.0)
    # A face that stays in front is identified again after this long (cooldown_s still
    # keeps it to one event). Shorter notices a swap of people sooner; longer costs less.
    recheck_s: float = Field(30.0, gt=0.0, le=86400.0)


class CameraSettings(Section):
    """The door camera: backend type, its options and the reopen back-off (s)."""

    # picamera2 (Pi camera), opencv (USB index or stream URL) or replay (folder / video file).
    type: Literal["picamera2", "opencv", "replay"] = "replay"
    # Backend options as a plain dict, e.g. {device: 0} or {path: frames/, fps: 5};
    # each type's valid keys are in kiosk/camera/options.py.
    options: dict[str, Any] = Field(default_factory=dict)
    # Seconds before the first attempt to reopen a missing or lost camera; the wait doubles
    # after each failed attempt. Shorter recovers sooner, longer probes the device less.
    retry_initial_s: float = Field(0.5, gt=0.0, le=60.0)
    # Longest wait between reopen attempts. Shorter notices a replugged camera sooner at
    # the cost of more failed opens (and log lines) while it stays unplugged.
    retry_max_s: float = Field(10.0, gt=0.0, le=600.0)

    @field_validator("options")
    @classmethod
    def _valid_options(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        from pydantic_core import PydanticCustomError

        from kiosk.camera.options import options_problem

        camera_type = info.data.get("type")
        if camera_type is not None:
            problem = options_problem(camera_type, value)
            if problem is not None:
                raise PydanticCustomError("camera_options", "{problem}", {"problem": problem})
        return value

    @model_validator(mode="after")
    def _retry_order(self) -> CameraSettings:
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError("retry_max_s must be at least retry_initial_s")
        return self




class ServiceSettings(Section):
    """The door service: its status file, gallery reloads and clock (system or replay)."""

    # Where `kiosk run` writes its status for the admin page; empty: status.json beside the database.
    status_file: Path | None = None
    # Seconds between status-file writes (also written after every event). Shorter is fresher.
    status_interval_s: float = Field(2.0, gt=0.0, le=3600.0)
    # Seconds between cheap checks for changed enrolments/consent (then the gallery is reloaded).
    gallery_check_s: float = Field(5.0, gt=0.0, le=3600.0)
    # Full gallery reload interval whatever the check says (re-enrolments with the same count).
    gallery_reload_s: float = Field(300.0, gt=0.0, le=86400.0)
    # "system": event times from the wall clock. "replay": time warp for tests and demos;
    # frame i happens at replay_start + i / replay_fps, however fast frames are processed.
    clock: Literal["system", "replay"] = "system"
    # Start of replay time (aware ISO time); empty: the moment the service starts.
    replay_start: datetime | None = None
    replay_fps: float = Field(5.0, gt=0.0, le=1000.0)

    @field_validator("replay_start")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            raise ValueError("replay_start needs a time zone, e.g. 2026-03-02T08:55:00+01:00")
        return value


class ScreenSettings(Section):
    """The door screen (a local page): address and how long greetings stay up (s)."""

    # The door screen: a local web page (chromium --kiosk) showing greetings and prompts.
    enabled: bool = True
    # Keep 127.0.0.1: the page shows names of people arriving to anyone who can reach it.
    host: str = "127.0.0.1"
    # 0 picks a free port (tests); the Pi's browser opens http://127.0.0.1:<port>/.
    port: int = Field(8081, ge=0, le=65535)
    # Seconds a greeting stays up. Longer is easier to read; shorter shows names less long.
    message_s: float = Field(5.0, gt=0.0, le=120.0)
    # Greet by first name only ("Good morning, Ada") rather than the full name.
    first_name_only: bool = True
