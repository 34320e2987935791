"""Typed settings: one YAML file plus KIOSK__SECTION__KEY environment overrides, validated strictly.

Every number a site would tune lives here with a default and a comment on what it trades.
Unknown or mistyped keys, wrong types and out-of-range values are errors that name the key
and, where the YAML file gave it, the line.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

ENV_PREFIX = "KIOSK__"
CONFIG_ENV = "KIOSK_CONFIG"


class ConfigError(Exception):
    """A user-fixable problem with the configuration; str() is the message to show."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # date.weekday() order


class SiteSettings(_Section):
    name: str = "Office"
    # IANA time zone; the attendance day starts at local midnight in this zone.
    timezone: str = "UTC"
    # Arrivals after this local time (plus grace) count as late.
    workday_start: time = time(9, 0)
    # Minutes after workday_start before an arrival counts as late.
    late_grace_minutes: int = Field(5, ge=0, le=240)
    # Recorded on every event, to tell kiosks apart when several share one database.
    device_id: str = "kiosk-1"
    # Days people are expected in; reports count a missed one as an absence (mon..sun).
    work_days: list[Weekday] = Field(default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"])
    # Dates nobody is expected in (public holidays, office closed), e.g. ["2026-12-25"].
    holidays: list[date] = Field(default_factory=list)

    def is_work_day(self, day: date) -> bool:
        """True when people are expected in on this local date."""
        return WEEKDAYS[day.weekday()] in self.work_days and day not in self.holidays

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like Europe/Berlin)") from exc
        return value


class DatabaseSettings(_Section):
    # SQLite file; created on first use. Relative paths are relative to the working directory.
    path: Path = Path("var/kiosk.db")
    # Copies of the database taken before a migration; how many to keep (0: no backups).
    # Backups hold biometric templates too; erasing a person erases them from the backups beside
    # the database as well, but copies moved elsewhere are out of reach.
    backups_kept: int = Field(3, ge=0, le=100)
    # A folder on another disk (USB stick, network share) where `kiosk serve` writes a copy of the
    # database every day, without biometric or expression data (see `kiosk db backup`); empty: none.
    offsite_dir: Path | None = None
    # Daily copies kept in offsite_dir; older ones are deleted. More is a longer history to go back to.
    offsite_kept: int = Field(14, ge=1, le=3650)
    # How long a writer waits for another process's lock before failing, in milliseconds.
    # Longer rides out the web app and the kiosk writing at once; shorter fails faster.
    busy_timeout_ms: int = Field(5000, ge=0, le=600_000)


class FaceQualitySettings(_Section):
    # Faces smaller than this (box height in pixels) are ignored: too far away to trust.
    min_face_px: int = Field(80, ge=20, le=2000)
    # Variance of the Laplacian on the grey face crop resized to 128x128; below this the face
    # is too blurred. LFW photos (soft, upscaled JPEGs) have a median of ~39 and 1% below 10;
    # a Gaussian blur of sigma 2 on them gives ~17. Higher rejects more soft frames (fewer
    # mistakes, more retries at the door); 20 would turn away 11% of the LFW photos.
    min_sharpness: float = Field(10.0, ge=0.0)
    # Largest head turn accepted, estimated from landmarks as |nose offset| / eye distance.
    # Lower demands a more frontal face (better matches, more "please look at the camera").
    # 99.5% of LFW faces are below 0.35.
    max_yaw_ratio: float = Field(0.35, ge=0.0, le=2.0)


# The LiteRT twin of dlib's face embedder shipped in models/ (see models/EMBEDDER.md).
SHIPPED_EMBEDDER = "face_embedder_f16.tflite"


class RecognitionSettings(_Section):
    # Detector: "yunet" (OpenCV's YuNet CNN, models/yunet/; also the door's presence check;
    # its boxes are mapped onto HOG's so the dlib landmarks and embedding see the same crop),
    # "hog" (dlib HOG) or "cnn" (dlib CNN, slow without CUDA). On the 4,600 photos of
    # ../shared/data (people + 2,491 strangers) YuNet leaves 1.5% without a usable face, HOG
    # 2.9% (YuNet found no face at all in 2 photos; HOG in 48 of the 3,292 it ran on), and
    # detects in ~8 ms instead of ~44 ms (x86 core, 350x350 photo); with the
    # rule re-tuned for each on half A, YuNet misses 10.1% of half B's probes (HOG 10.3%) and
    # accepts 0.49% of its 1,224 strangers (HOG 0.57%). Templates enrolled with one detector
    # match faces found by the other (same photo: median embedding distance 0.02).
    detector: Literal["hog", "yunet", "cnn"] = "yunet"
    # YuNet: faces scoring below this are ignored. Lower finds more faces that are dim, turned
    # or partly hidden, and more false faces in the background.
    yunet_score: float = Field(0.6, ge=0.0, le=1.0)
    # YuNet ONNX file; empty means the one shipped in models/yunet/.
    yunet_model: Path | None = None
    # Check the YuNet model's SHA-256 against the .sha256 file beside it before loading.
    yunet_verify_checksum: bool = True
    # HOG and cnn only: times the detector upsamples the image; 1 finds smaller faces at ~4x the cost. When it
    # finds nothing, the image is searched once more without upsampling (finds a third of
    # the large faces the upsampled search misses on LFW, at a quarter of its cost).
    upsample: int = Field(1, ge=0, le=3)
    # When nothing is found, search once more (no upsampling) on a copy with a black border
    # of this fraction of the longer side: HOG needs some background around a face, so faces
    # that fill the frame or touch its edge (someone very close to the camera, tightly cropped
    # enrolment photos) are otherwise missed. 0 turns it off. On ../shared/data/faces 0.25 finds
    # 26 of the 49 faces missed without it (0.5% of photos); costs ~0.65x an upsampled search,
    # only on images where nothing was found (the door pipeline's frames have a presence box).
    edge_pad: float = Field(0.25, ge=0.0, le=1.0)
    # Random re-samplings averaged per embedding; more is steadier and linearly slower.
    num_jitters: int = Field(1, ge=1, le=100)
    # Landmarks used to align the face before embedding: "small" (5 points, what
    # face_recognition uses by default) or "large" (68 points; slightly worse on LFW).
    landmark_model: Literal["small", "large"] = "small"
    # Also embed the mirrored face and average the two embeddings (test-time augmentation),
    # for every photo and camera frame. Same-person distances shrink more than
    # different-person ones: on held-out half B of ../shared/data/faces it cuts misses from
    # 12.8% to 8.7% at the same max_distance/max_ratio and stranger acceptance (0.7%).
    # Costs a second landmark + embedding pass: describe() ~1.9x, a whole photo ~1.6x
    # (+80 ms per face on a busy x86 core; the detection is shared).
    # Templates enrolled without it still match (on half A plain templates with mirrored
    # probes miss 8.5%, mirrored ones 7.3%); re-enrol for the full gain. Each template records
    # how it was made; the service log and the admin status page list whom to re-enrol.
    mirror_tta: bool = True
    # How a person's templates are compared with a face: "mean" (their average, one row per
    # person; on LFW 3-4 points fewer misses than "min" at the same stranger acceptance)
    # or "min" (nearest single template).
    template_aggregation: Literal["mean", "min"] = "mean"
    # Accept a match only when the best distance is at most this. Lower: fewer strangers
    # accepted, more enrolled people missed. Tuned on half A of ../shared/data/faces plus half A
    # of faces-extra-strangers (1,267 strangers; 3 enrolment photos per person, YuNet,
    # mirror_tta): the largest value with at most 1% of strangers accepted. On the held-out
    # half B (693 probes, 1,224 strangers) 0.435 with max_ratio 0.9 accepts 0.49% of strangers
    # (95% CI 0.22-1.07%), takes nobody for someone else (0-0.55%) and misses 10.1% (8.1-12.6%).
    # The former 0.45 missed 7.9% but accepted 1.6% of half B's strangers (1.1-2.5%); with
    # only 147 strangers that had looked like 0.7%. See the README's table.
    max_distance: float = Field(0.435, ge=0.0, le=2.0)
    # The best distance divided by the second-best person's must be at most this (1 turns
    # the check off). Lower: fewer people taken for a look-alike colleague and fewer
    # strangers accepted, more misses. Tuned with max_distance (0.875..0.9 were best).
    max_ratio: float = Field(0.9, ge=0.0, le=1.0)
    # The best person must beat the second-best person by this much distance (0: off).
    # Higher: fewer people taken for a look-alike colleague, more misses.
    min_margin: float = Field(0.0, ge=0.0, le=2.0)
    # Cohort (z-score) normalisation against the site's own gallery: accept only when
    # (best distance - mean distance to the other enrolled people) / their standard deviation
    # is at most this (a negative number; lower is stricter). A face that is about as near to
    # everybody (a "generic" face, or a poor photo) is rejected even inside max_distance.
    # Needs 4+ enrolled people; empty turns it off. Off by default: tuned on half A it did not
    # beat plain max_distance + max_ratio on half B (at <= 1% strangers it missed 13% instead
    # of 10%); neither did per-person impostor z-scores or thresholds widened for people with
    # spread-out templates.
    max_cohort_z: float | None = Field(None, ge=-20.0, le=0.0)
    # Enrolment refuses a face within this distance of another person (unless --force).
    duplicate_distance: float = Field(0.45, ge=0.0, le=2.0)
    quality: FaceQualitySettings = FaceQualitySettings()
    # Which net turns the aligned face chip into its 128-d embedding: "dlib" (dlib's ResNet,
    # as face_recognition runs it) or "litert" (the same net converted to a float16 .tflite,
    # run by LiteRT: embeddings within 0.01 of dlib's, see models/EMBEDDER.md for the measured
    # differences and speed; about 10x faster per face). Templates record which one made them;
    # dlib's and the shipped twin's compare with each other, so switching between the two needs
    # no re-enrolment (another .tflite does: the status page lists whom). litert needs
    # num_jitters 1.
    embedder: Literal["dlib", "litert"] = "litert"
    # The litert embedder's .tflite; empty means the model shipped with the package.
    embedder_model: Path | None = None
    # Check the litert model's SHA-256 against the .sha256 file beside it before loading.
    embedder_verify_checksum: bool = True

    @model_validator(mode="after")
    def _litert_without_jitter(self) -> RecognitionSettings:
        if self.embedder == "litert" and self.num_jitters != 1:
            raise ValueError("num_jitters above 1 needs recognition.embedder: dlib "
                             "(the litert embedder does not port dlib's random jitter)")
        return self

    def embedder_id(self, embedder: str | None = None) -> str:
        """How embeddings are made under these settings (stored with each template)."""
        mirror = "on" if self.mirror_tta else "off"
        net = "dlib-resnet-v1"
        if (embedder or self.embedder) == "litert":
            model = Path(self.embedder_model).name if self.embedder_model else SHIPPED_EMBEDDER
            net = f"dlib-resnet-v1-litert:{model}"
        return f"{net} landmarks={self.landmark_model} mirror={mirror} jitters={self.num_jitters}"

    def for_enrolment_server(self) -> RecognitionSettings:
        """These settings as the web app enrols with them: the shipped LiteRT twin gives way to
        dlib's own embedder (the same templates, compatible_embedder_ids; dlib's ResNet costs
        ~25 MB of memory beside the landmark models, LiteRT's interpreter ~48 MB, and the web app
        must stay within 300 MB while it enrols on a 2 GB Pi). Other settings are kept."""
        if self.embedder == "litert" and len(self.compatible_embedder_ids()) > 1:
            return self.model_copy(update={"embedder": "dlib"})
        return self

    def compatible_embedder_ids(self) -> tuple[str, ...]:
        """Embedder ids whose templates compare with this one's: dlib and the shipped LiteRT twin
        of its network (within 0.001 of dlib's embeddings, models/EMBEDDER.md) are one; another
        .tflite is only itself. Templates made otherwise are listed for re-enrolment."""
        if self.embedder_model is not None or self.num_jitters != 1:
            return (self.embedder_id(),)
        return (self.embedder_id("dlib"), self.embedder_id("litert"))


class ExpressionSettings(_Section):
    # Emotion inference at work is banned in the EU (AI Act Art. 5(1)(f)). Off unless a site
    # turns it on (lawful by default). When false the model is never loaded and no expression
    # data is computed or stored anywhere.
    enabled: bool = False
    # int8 TFLite model; empty means the model shipped with the package.
    model: Path | None = None
    # Check its SHA-256 against the .sha256 file beside it before loading.
    verify_checksum: bool = True
    # Also classify the mirrored face and average the two score vectors: a steadier label for
    # a second model invoke (about 1 ms here). Chosen on the validation split; see models/README.md.
    mirror_tta: bool = True


class AttendanceSettings(_Section):
    # first_last: first sighting of the day is "in", every later one "out" (the last counts).
    # toggle: sightings alternate in, out, in, out.
    mode: Literal["first_last", "toggle"] = "first_last"
    # Repeated sightings of one person within this many seconds make one event.
    cooldown_s: float = Field(60.0, ge=0.0, le=86400.0)
    # Frames analysed per check-in; more is steadier and slower at the door.
    frames_per_checkin: int = Field(3, ge=1, le=30)
    # Every frame is shrunk to this width for the cheap "is a face there?" check. With HOG (80 px
    # window) it finds faces taller than 80 * frame width / presence_width px (128 px in a
    # 640 px frame); YuNet finds far smaller ones (recognition.quality.min_face_px still
    # applies). Smaller is faster and, with HOG, needs the person closer to the camera.
    presence_width: int = Field(400, ge=80, le=4096)
    # Consecutive frames a large-enough face must hold still before it is analysed. More
    # waits for a steadier face (sharper frames) and makes the check-in start later.
    steady_frames: int = Field(2, ge=1, le=30)
    # Overlap (intersection over union) of the face box between frames that counts as still.
    steady_iou: float = Field(0.5, ge=0.0, le=1.0)
    # Stop a burst as soon as its majority is settled (e.g. 2 agreeing frames of 3). Faster
    # check-ins; false analyses every frame, and a late disagreeing frame forces a retry.
    early_decision: bool = True
    # A single analysed frame this close to one person (face_recognition distance to their
    # mean template, and passing the ratio test) decides at once: one embedding instead of two,
    # about half the check-in time. Lower sends more check-ins through the two-frame vote;
    # 0 disables the fast path. Well inside recognition.max_distance by design.
    single_frame_distance: float = Field(0.40, ge=0.0, le=2.0)
    # A first frame at least this far from everyone (one embedding, before the mirror pass)
    # decides "unknown" at once: strangers get their answer in one embedding. Lower answers
    # more faces fast but may turn away an enrolled person seen badly in that one frame (their
    # next visit to the camera is a fresh try); 2 or more disables it.
    single_frame_reject_distance: float = Field(0.55, ge=0.0, le=2.0)
    # Analysed frames after which a burst with too few usable faces (blurred, turned) gives
    # up until the face leaves or recheck_s passes. More retries; fewer "please look" waits.
    max_burst_frames: int = Field(10, ge=1, le=300)
    # A face missing for this long ends the visit; the next face is a new arrival.
    leave_s: float = Field(1.5, gt=0.0, le=600.0)
    # A face that stays in front is identified again after this long (cooldown_s still
    # keeps it to one event). Shorter notices a swap of people sooner; longer costs less.
    recheck_s: float = Field(30.0, gt=0.0, le=86400.0)


class CameraSettings(_Section):
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


class RetentionSettings(_Section):
    # Attendance events older than this are purged daily (payroll usually needs a year or more).
    attendance_days: int = Field(400, ge=1, le=36500)
    # Expression scores are stripped from events older than this; shorter is kinder.
    expression_days: int = Field(30, ge=1, le=36500)
    # Keep enrolment photos after their templates are computed (for re-enrolment with a new
    # model). False stores only the 128-d templates: less biometric data held.
    keep_enrolment_images: bool = False


class EnrolmentSettings(_Section):
    # Enrolment at the kiosk: an admin asks (web app or `kiosk enroll --at-kiosk`), the person
    # stands at the door and the kiosk's own camera takes the photos.
    # Least photos with a usable face an enrolment needs (photo files, web upload and kiosk
    # camera alike). More give the gallery more poses and let the consistency check spot a
    # photo of somebody else by majority; fewer make enrolment quicker but one odd photo
    # weighs more (with 2, a mismatch only says that one of them is wrong).
    min_photos: int = Field(3, ge=1, le=20)
    # Photos are scaled down (aspect kept) to at most this many pixels on the longer side
    # before faces are looked for. Larger finds smaller faces (a person alone is still a
    # face of 150 px or more at 800; the embedding uses a 150 px face chip); smaller is
    # quicker and needs less memory, as detection grows with the pixel count. `kiosk enroll`
    # of eight 3600 px photos here: 8 s and 266 MB peak at 800, 10 s and 294 MB at 1024,
    # 368 MB at 1600 (a Pi takes several times as long).
    max_photo_side: int = Field(800, ge=320, le=4096)
    # Photos taken at the kiosk (at least min_photos). More cover more of the small pose
    # changes at the door; fewer are quicker.
    capture_photos: int = Field(5, ge=1, le=20)
    # Least seconds between two photos taken, so they differ a little (pose, expression).
    capture_interval_s: float = Field(0.5, ge=0.0, le=10.0)
    # A request is dropped when the photos are not taken within this many seconds of asking.
    capture_timeout_s: float = Field(120.0, ge=10.0, le=3600.0)

    @model_validator(mode="after")
    def _enough_capture_photos(self) -> EnrolmentSettings:
        if self.capture_photos < self.min_photos:
            raise ValueError(f"enrolment.capture_photos ({self.capture_photos}) must be at least "
                             f"enrolment.min_photos ({self.min_photos})")
        return self


class WebSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    # Team expression figures are hidden when fewer people than this contribute.
    min_group_size: int = Field(5, ge=1, le=1000)
    # Send the session cookie only over https (set true behind a TLS proxy); false lets the
    # app work over plain http on the office network, where the cookie can be sniffed.
    secure_cookies: bool = False
    # A login lasts this many hours; longer is more convenient, shorter limits a stolen cookie.
    session_hours: float = Field(12.0, gt=0.0, le=24.0 * 30)
    # Wrong passwords allowed per account (from any address) before each further try must
    # wait: 2 s, then 4, 8, ... up to login_window_s; a quiet 2 x login_window_s forgets them.
    # Lower slows guessing more and makes a clumsy typist wait sooner.
    login_attempts: int = Field(5, ge=1, le=1000)
    # The same per client address, much higher: an office behind one NAT address shares it.
    login_address_attempts: int = Field(50, ge=1, le=100000)
    login_window_s: int = Field(300, ge=10, le=86400)
    # Reverse proxies (IP addresses or CIDR blocks) whose X-Forwarded-For header names the
    # client (for login throttling and the audit log). Empty: the header is ignored, since
    # anyone can send it.
    trusted_proxies: list[str] = Field(default_factory=list)
    # Enrolment uploads: photos per person, bytes per photo and pixels per photo. Larger
    # accepts phone photos unchanged; smaller bounds memory and decoding time on the Pi. The
    # whole upload (max_photos x max_photo_mb) is held in memory beside the face models
    # (~220 MB): 8 x 6 MB peaks at ~300 MB, 12 x 10 MB at ~400 MB. Photos above 50 megapixels
    # (PNG and WebP above 8) are refused whatever max_photo_megapixels says (kiosk.vision.faces).
    max_photos: int = Field(8, ge=1, le=50)
    max_photo_mb: float = Field(6.0, gt=0.0, le=100.0)
    max_photo_megapixels: float = Field(40.0, gt=0.0, le=200.0)
    # Signing key for session cookies; created (random, mode 0600) on first start.
    # Empty means "web_secret.key" beside the database file.
    secret_key_file: Path | None = None
    # The kiosk service's status file is "stale" (service shown as not running) when it
    # was last written more than this many seconds ago.
    status_stale_s: float = Field(120.0, gt=0.0, le=86400.0)
    # `kiosk serve` runs the retention purge (retention.*) at start and then every day.
    daily_purge: bool = True
    # Worker threads of the production server (waitress); more serves more browsers at once.
    threads: int = Field(4, ge=1, le=64)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or CIDR block: {item!r}") from None
        return [item.strip() for item in value]


class ServiceSettings(_Section):
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


class ScreenSettings(_Section):
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


class Settings(_Section):
    site: SiteSettings = SiteSettings()
    database: DatabaseSettings = DatabaseSettings()
    recognition: RecognitionSettings = RecognitionSettings()
    expression: ExpressionSettings = ExpressionSettings()
    attendance: AttendanceSettings = AttendanceSettings()
    camera: CameraSettings = CameraSettings()
    retention: RetentionSettings = RetentionSettings()
    enrolment: EnrolmentSettings = EnrolmentSettings()
    web: WebSettings = WebSettings()
    service: ServiceSettings = ServiceSettings()
    screen: ScreenSettings = ScreenSettings()

    @property
    def tz(self) -> ZoneInfo:
        """The site's time zone."""
        return ZoneInfo(self.site.timezone)

    @property
    def status_path(self) -> Path:
        """Where the door service writes its status: service.status_file, or status.json beside the database."""
        if self.service.status_file:
            return Path(self.service.status_file)
        return Path(self.database.path).resolve().parent / "status.json"


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key."""


class _DuplicateKey(Exception):
    """A mapping names the same key twice (YAML would silently keep the last one)."""

    def __init__(self, key: str, first_line: int, second_line: int) -> None:
        super().__init__(key)
        self.key, self.first_line, self.second_line = key, first_line, second_line


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    lines: dict[str, int] = {}
    for key_node, _ in node.value:
        key, line = str(key_node.value), key_node.start_mark.line + 1
        if key in lines:
            raise _DuplicateKey(key, lines[key], line)
        lines[key] = line
    mapping = loader.construct_mapping(node, deep=True)
    return _LineDict(mapping, lines)


class _LineDict(dict):
    """A dict that also knows the YAML line of each key."""

    def __init__(self, data: dict[str, Any], lines: dict[str, int]) -> None:
        super().__init__(data)
        self.lines = lines


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _line_of(data: Any, loc: tuple[Any, ...]) -> int | None:
    line = None
    node = data
    for part in loc:
        if isinstance(node, _LineDict) and str(part) in node.lines:
            line = node.lines[str(part)]
            node = node.get(part)
        else:
            break
    return line


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """KIOSK__SECTION__KEY=value (value parsed as YAML) -> nested dict."""
    result: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX):].split("__") if p]
        if not parts:
            continue
        node = result
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw) if raw != "" else ""
    return result


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _format_errors(exc: ValidationError, data: Any, source: str) -> str:
    messages = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        line = _line_of(data, loc)
        where = f"{source}, line {line}" if line else source
        if err["type"] == "extra_forbidden":
            text = "unknown key (check the spelling; see `kiosk config show` for valid keys)"
        else:
            text = err["msg"]
        messages.append(f"{where}: {key}: {text}")
    return "\n".join(messages)


MAX_CONFIG_BYTES = 1_000_000


def _read_config_text(path: Path) -> str:
    """The text of a config file (or pipe); ConfigError for a device or more than MAX_CONFIG_BYTES
    (`--config /dev/zero` would otherwise read until memory runs out)."""
    with path.open("rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
            raise ConfigError(f"cannot read config file {path}: not a regular file")
        data = handle.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"cannot read config file {path}: over {MAX_CONFIG_BYTES // 1000} kB, is this the right file?")
    return data.decode("utf-8")


def load_settings(path: Path | str | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read settings from a YAML file (or defaults when None) plus environment overrides.

    Raises ConfigError with a message naming the key and line on any problem.
    """
    environ = dict(os.environ if environ is None else environ)
    if path is None and environ.get(CONFIG_ENV):
        path = environ[CONFIG_ENV]
    data: Any = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        try:
            text = _read_config_text(path)
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
        try:
            data = yaml.load(text, Loader=_LineLoader) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f", line {mark.line + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError(f"{path}{where}: not valid YAML: {problem}") from None
        except _DuplicateKey as dup:
            raise ConfigError(f"{path}, lines {dup.first_line} and {dup.second_line}: the key "
                              f"{dup.key!r} is given twice (keep one)") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections (site:, database:, ...)")
    overrides = _env_overrides(environ)
    merged = _merge(data, overrides) if overrides else data
    if overrides and isinstance(data, _LineDict):
        merged = _LineDict(merged, data.lines)
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, merged, source)) from None


def status_file_problem(settings: Settings) -> str | None:
    """Why service.status_file must not be used (it names the database, one of SQLite's files beside it, or
    the web secret key: the door rewrites it every few seconds), or None."""
    status = settings.status_path.resolve()
    database = Path(settings.database.path).resolve()
    taken = {database.with_name(database.name + suffix) for suffix in ("", "-wal", "-shm", "-journal")}
    key = settings.web.secret_key_file or database.parent / "web_secret.key"
    if status in taken or status == Path(key).resolve():
        return (f"service.status_file: {settings.status_path} is the database's own file or the web key; "
                "the door would overwrite it every few seconds (leave it unset: status.json beside the database)")
    return None


def door_problems(settings: Settings) -> list[str]:
    """What `kiosk run` would refuse in these settings, one line each (empty: ready to run).

    Defaults are not validated by pydantic, so a file without camera options loads fine but the
    door service cannot start on it; `kiosk config check` reports these too.
    """
    from kiosk.camera.options import options_problem

    problems = []
    problem = options_problem(settings.camera.type, settings.camera.options)
    if problem is not None:
        problems.append(f"camera.options: {problem} (the door service `kiosk run` needs it; "
                        "e.g. camera: {type: opencv, options: {device: 0}})")
    status = status_file_problem(settings)
    if status is not None:
        problems.append(status)
    return problems


def settings_as_yaml(settings: Settings) -> str:
    """The effective settings as YAML text."""
    return yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False)
