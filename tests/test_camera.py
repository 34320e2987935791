"""Camera sources: replay (folder, video), opencv, picamera2 (absent / faked), RetryingCamera."""

from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from kiosk.camera import (
    Camera,
    Frame,
    RetryingCamera,
    create_camera,
    open_camera,
    open_retrying_camera,
)
from kiosk.camera.options import ReplayOptions
from kiosk.camera.picam import NOT_INSTALLED
from kiosk.camera.replay import ReplayCamera
from kiosk.config import CameraSettings, ConfigError, load_settings
from kiosk.errors import CameraError, CameraLostError, CameraUnavailableError, KioskError

# Distinct RGB colours, one per frame.
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]


class FakeTime:
    """A monotonic clock plus a sleep that advances it and records each call."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def _rgb_image(colour: tuple[int, int, int], h: int = 48, w: int = 64) -> np.ndarray:
    image = np.zeros((h, w, 3), np.uint8)
    image[:] = colour
    return image


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    # Names chosen so that name order differs from creation order.
    for i, colour in reversed(list(enumerate(COLOURS[:3]))):
        cv2.imwrite(str(folder / f"frame_{i:03d}.png"), cv2.cvtColor(_rgb_image(colour), cv2.COLOR_RGB2BGR))
    (folder / "notes.txt").write_text("not an image")
    return folder


def _write_video(path: Path, fourcc: str, n: int = 5) -> bool:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, (64, 48))
    if not writer.isOpened():
        return False
    for colour in COLOURS[:n]:
        writer.write(cv2.cvtColor(_rgb_image(colour), cv2.COLOR_RGB2BGR))
    writer.release()
    return path.stat().st_size > 0


def _replay(path: Path, **options: object) -> CameraSettings:
    return CameraSettings(type="replay", options={"path": str(path), **options})


# -- replay ---------------------------------------------------------------------------------


def test_replay_folder_in_name_order_rgb_then_ends(image_folder: Path) -> None:
    fake = FakeTime()
    camera = create_camera(_replay(image_folder), clock=fake.clock, sleep=fake.sleep)
    assert isinstance(camera, Camera)
    with camera:
        frames = [camera.read() for _ in range(3)]
        assert all(isinstance(f, Frame) for f in frames)
        for i, frame in enumerate(frames):
            assert frame is not None
            assert frame.image.dtype == np.uint8 and frame.image.shape == (48, 64, 3)
            assert tuple(int(v) for v in frame.image[0, 0]) == COLOURS[i]
            assert frame.index == i
        assert camera.read() is None
        assert camera.read() is None
        assert camera.ended  # type: ignore[attr-defined]
    assert fake.sleeps == []  # fps 0: as fast as asked


def test_replay_folder_loops(image_folder: Path) -> None:
    with open_camera(_replay(image_folder, loop=True)) as camera:
        colours = []
        for _ in range(7):
            frame = camera.read()
            assert frame is not None
            colours.append(tuple(int(v) for v in frame.image[0, 0]))
    assert colours == [COLOURS[i % 3] for i in range(7)]


@pytest.mark.parametrize(("suffix", "fourcc"), [(".avi", "MJPG"), (".mp4", "mp4v")])
def test_replay_video_file(tmp_path: Path, suffix: str, fourcc: str) -> None:
    video = tmp_path / f"clip{suffix}"
    if not _write_video(video, fourcc):
        pytest.skip(f"this OpenCV build cannot write {fourcc} {suffix}")
    with open_camera(_replay(video)) as camera:
        frames = []
        while (frame := camera.read()) is not None:
            frames.append(frame)
    assert len(frames) == 5
    for frame, colour in zip(frames, COLOURS, strict=True):
        assert frame.image.shape == (48, 64, 3) and frame.image.dtype == np.uint8
        # Lossy codec: the frame colour is close to what was written, in RGB order.
        assert np.abs(frame.image[24, 32].astype(int) - colour).max() < 40


def test_replay_video_loops_and_resumes_after_close(tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    assert _write_video(video, "MJPG", n=3)
    camera = create_camera(_replay(video, loop=True))
    camera.open()
    firsts = [camera.read() for _ in range(2)]
    camera.close()
    camera.open()  # resumes at the third frame
    rest = [camera.read() for _ in range(3)]
    camera.close()
    got = [int(np.argmax(f.image[24, 32])) for f in firsts + rest if f is not None]
    # Dominant channel of red, green, blue, red, green.
    assert got == [0, 1, 2, 0, 1]


def test_replay_fps_pacing_with_fake_clock(image_folder: Path) -> None:
    fake = FakeTime(start=10.0)
    with open_camera(_replay(image_folder, fps=10, loop=True), clock=fake.clock, sleep=fake.sleep) as camera:
        stamps = []
        for _ in range(4):
            frame = camera.read()
            assert frame is not None
            stamps.append(round(frame.timestamp - 10.0, 6))
        assert stamps == [0.0, 0.1, 0.2, 0.3]
        assert fake.sleeps == [0.1, 0.1, 0.1]
        # A consumer slower than fps gets frames at once, without a burst to catch up.
        fake.now += 1.0
        a = camera.read()
        b = camera.read()
        assert a is not None and b is not None
        assert round(b.timestamp - a.timestamp, 6) == 0.1


@pytest.mark.parametrize("what", ["missing", "empty", "not_video"])
def test_replay_bad_path_is_clear_error(tmp_path: Path, what: str) -> None:
    if what == "missing":
        path, expected = tmp_path / "nowhere", "no such folder or video file"
    elif what == "empty":
        path, expected = tmp_path / "empty", "no images"
        path.mkdir()
    else:
        path, expected = tmp_path / "notes.txt", "not an image folder or a video"
        path.write_text("hello")
    with pytest.raises(CameraError, match=expected) as info:
        open_camera(_replay(path))
    # A missing or empty folder may appear/fill later (retried, "camera offline"); a file that is
    # not a video will not become one.
    assert isinstance(info.value, CameraUnavailableError) is (what != "not_video")
    assert isinstance(info.value, KioskError)


def test_options_validated_per_backend() -> None:
    with pytest.raises(CameraError, match=r"colour: unknown option for camera type replay \(valid: path"):
        create_camera(CameraSettings.model_construct(type="replay", options={"path": "x", "colour": 1}))
    with pytest.raises(CameraError, match="path: required for camera type replay"):
        create_camera(CameraSettings(type="replay"))
    with pytest.raises(CameraError, match="max_read_failures: Input should be greater than or equal to 1"):
        create_camera(CameraSettings.model_construct(type="opencv", options={"max_read_failures": 0}))


def test_config_file_reports_bad_camera_options_with_line(tmp_path: Path) -> None:
    config = tmp_path / "kiosk.yaml"
    config.write_text("camera:\n  type: opencv\n  options:\n    device: 0\n    fps: -5\n")
    with pytest.raises(ConfigError, match=r"line 3: camera.options: fps: Input should be greater than 0"):
        load_settings(config, environ={})


# -- RetryingCamera -------------------------------------------------------------------------


class FlakyCamera:
    """A fake camera: fails the first `fail_opens` opens, then serves frames until `lose_after`."""

    def __init__(self, fail_opens: int = 0, lose_after: int | None = None) -> None:
        self.fail_opens = fail_opens
        self.lose_after = lose_after
        self.opens = 0
        self.closes = 0
        self.served = 0
        self.is_open = False

    def open(self) -> None:
        self.opens += 1
        if self.fail_opens > 0:
            self.fail_opens -= 1
            raise CameraUnavailableError("fake: not plugged in")
        self.is_open = True

    def read(self) -> Frame | None:
        assert self.is_open
        if self.lose_after is not None and self.served >= self.lose_after:
            self.lose_after = None
            raise CameraLostError("fake: unplugged")
        self.served += 1
        return Frame(image=np.zeros((2, 2, 3), np.uint8), timestamp=0.0, index=0)

    def close(self) -> None:
        self.closes += 1
        self.is_open = False

    def __enter__(self) -> FlakyCamera:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def test_retrying_backoff_sequence_is_capped() -> None:
    fake = FakeTime()
    inner = FlakyCamera(fail_opens=7)
    camera = RetryingCamera(
        inner, initial_delay_s=0.5, max_delay_s=10.0, max_block_s=60.0, clock=fake.clock, sleep=fake.sleep
    )
    camera.open()  # first attempt fails: not an error
    assert camera.state == "retrying"
    results = [camera.read() for _ in range(7)]
    assert results[:6] == [None] * 6 and results[6] is not None
    assert fake.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    status = camera.status()
    assert status.state == "ok" and status.reconnects == 1 and status.failed_attempts == 0
    assert status.last_error == "fake: not plugged in"
    assert inner.opens == 8


def test_retrying_blocks_at_most_max_block_and_never_spins() -> None:
    fake = FakeTime()
    inner = FlakyCamera(fail_opens=3)
    camera = RetryingCamera(
        inner, initial_delay_s=2.0, max_delay_s=4.0, max_block_s=1.0, clock=fake.clock, sleep=fake.sleep
    )
    camera.open()
    calls = 0
    while camera.read() is None:
        calls += 1
        assert calls < 100
    # Waits of 2, 4, 4 seconds, each cut into sleeps of at most 1 s; every None slept.
    assert fake.sleeps == [1.0] * 10
    assert calls == 9 and inner.opens == 4  # the last sleep is followed by a good frame
    assert camera.status().as_dict()["reconnects"] == 1


def test_retrying_recovers_from_lost_camera_and_renumbers() -> None:
    fake = FakeTime()
    inner = FlakyCamera(lose_after=2)
    camera = RetryingCamera(inner, initial_delay_s=0.5, clock=fake.clock, sleep=fake.sleep)
    with camera:
        a, b = camera.read(), camera.read()
        assert camera.read() is None  # lost
        status = camera.status()
        assert status.state == "lost" and status.last_error == "fake: unplugged"
        assert status.next_attempt_in_s == 0.5
        c = camera.read()  # sleeps 0.5, reopens, reads
    assert a is not None and b is not None and c is not None
    assert [a.index, b.index, c.index] == [0, 1, 2]
    assert fake.sleeps == [0.5]
    assert camera.status().reconnects == 1 and camera.state == "closed"
    assert inner.closes >= 2


def test_retrying_replay_gap_end_to_end(image_folder: Path) -> None:
    fake = FakeTime()
    settings = _replay(image_folder, gap_after=2, gap_s=3.0, loop=True)
    settings.retry_initial_s = 1.0
    settings.retry_max_s = 1.0
    camera = open_retrying_camera(settings, clock=fake.clock, sleep=fake.sleep)
    seen = []
    states = []
    for _ in range(8):
        frame = camera.read()
        seen.append(None if frame is None else frame.index)
        states.append(camera.state)
    assert seen == [0, 1, None, None, None, 2, 3, 4]
    assert states[2:5] == ["lost", "retrying", "retrying"]
    assert camera.status().reconnects == 1


def test_retrying_propagates_errors_retrying_cannot_fix(tmp_path: Path) -> None:
    not_a_video = tmp_path / "notes.txt"
    not_a_video.write_text("not a video")
    with pytest.raises(CameraError, match="not an image folder or a video"):
        open_retrying_camera(_replay(not_a_video))


def test_retrying_replay_folder_missing_is_offline_not_an_error(tmp_path: Path, image_folder: Path) -> None:
    """A replay folder that is not there (yet) is a camera that is not there: retried."""
    fake = FakeTime()
    folder = tmp_path / "later"
    camera = open_retrying_camera(_replay(folder), clock=fake.clock, sleep=fake.sleep)
    assert camera.read() is None and camera.state == "retrying"
    assert "no such folder" in (camera.status().last_error or "")
    shutil.copytree(image_folder, folder)
    frame = None
    for _ in range(40):
        frame = frame or camera.read()
    assert frame is not None and camera.state == "ok"


def test_retrying_reports_end_of_replay(image_folder: Path) -> None:
    camera = open_retrying_camera(_replay(image_folder))
    frames = 0
    while not camera.ended:
        if camera.read() is not None:
            frames += 1
    assert frames == 3 and camera.status().state == "ended"


# -- opencv ---------------------------------------------------------------------------------


def test_opencv_missing_device_index_is_clear_error() -> None:
    settings = CameraSettings(type="opencv", options={"device": 57})
    with pytest.raises(CameraUnavailableError, match=r"opencv camera 57 .*cannot open .*group video"):
        open_camera(settings)


def test_opencv_stream_reads_rgb_then_counts_as_lost(tmp_path: Path) -> None:
    video = tmp_path / "stream.avi"
    assert _write_video(video, "MJPG", n=2)
    settings = CameraSettings(type="opencv", options={"device": str(video), "max_read_failures": 2})
    with open_camera(settings) as camera:
        first = camera.read()
        assert first is not None and first.image.shape == (48, 64, 3)
        assert int(np.argmax(first.image[24, 32])) == 0  # red in RGB order
        assert camera.read() is not None
        assert camera.read() is None  # one failed read: a glitch
        with pytest.raises(CameraLostError, match="no frame in 2 reads"):
            camera.read()


# -- picamera2 ------------------------------------------------------------------------------


def test_picamera2_not_installed_is_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # makes `import picamera2` fail
    camera = create_camera(CameraSettings(type="picamera2"))  # creating does not import it
    with pytest.raises(CameraError) as info:
        camera.open()
    assert str(info.value) == NOT_INSTALLED
    assert not isinstance(info.value, CameraUnavailableError)


class _FakePicamera2:
    """Stands in for picamera2.Picamera2: frames in libcamera RGB888 (B, G, R) order."""

    cameras: list[dict[str, str]] = [{"Model": "imx708"}]
    stall = False

    def __init__(self, camera_num: int = 0) -> None:
        self.configured: dict[str, object] | None = None
        self.started = False

    @staticmethod
    def global_camera_info() -> list[dict[str, str]]:
        return _FakePicamera2.cameras

    def create_video_configuration(self, **kwargs: object) -> dict[str, object]:
        return dict(kwargs)

    def configure(self, config: dict[str, object]) -> None:
        self.configured = config

    def start(self) -> None:
        self.started = True

    def capture_array(self, name: str = "main", wait: object = None) -> str:
        return "job"

    def wait(self, job: str, timeout: float | None = None) -> np.ndarray:
        if _FakePicamera2.stall:
            raise TimeoutError
        width, height = self.configured["main"]["size"]  # type: ignore[index]
        image = np.zeros((height, width, 3), np.uint8)
        image[..., 0] = 255  # blue first in memory
        return image

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        pass


def test_picamera2_backend_with_fake_module(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("picamera2")
    module.Picamera2 = _FakePicamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", module)
    monkeypatch.setattr(_FakePicamera2, "cameras", [{"Model": "imx708"}])
    settings = CameraSettings(type="picamera2", options={"size": [320, 240]})
    with open_camera(settings) as camera:
        frame = camera.read()
        assert frame is not None and frame.image.shape == (240, 320, 3)
        assert tuple(int(v) for v in frame.image[0, 0]) == (0, 0, 255)  # blue, in RGB order
        monkeypatch.setattr(_FakePicamera2, "stall", True)
        with pytest.raises(CameraLostError, match="no frame within 5 s"):
            camera.read()
    monkeypatch.setattr(_FakePicamera2, "cameras", [])
    with pytest.raises(CameraUnavailableError, match="not detected"):
        open_camera(settings)


def test_replay_options_model_forbids_extra() -> None:
    with pytest.raises(Exception, match="Extra inputs are not permitted"):
        ReplayOptions.model_validate({"path": "x", "speed": 2})
    assert ReplayCamera(ReplayOptions(path=Path("x"))).ended is False


def test_bgr_to_rgb_takes_grey_bgr_and_bgra_and_refuses_the_rest() -> None:
    from kiosk.camera.base import bgr_to_rgb

    bgr = np.zeros((2, 3, 3), np.uint8)
    bgr[..., 0] = 255  # blue in OpenCV's order
    for image in (bgr, cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)):
        rgb = bgr_to_rgb(image, "cam")
        assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
        assert tuple(int(v) for v in rgb[0, 0]) == (0, 0, 255)
    grey = bgr_to_rgb(np.full((2, 3), 7, np.uint8), "cam")
    assert grey.shape == (2, 3, 3) and int(grey.min()) == int(grey.max()) == 7
    with pytest.raises(CameraError, match="cam: frames are float32, expected 8-bit images"):
        bgr_to_rgb(np.zeros((2, 3, 3), np.float32), "cam")
    with pytest.raises(CameraError, match=r"cam: frames have shape \(2, 3, 2\), expected HxW"):
        bgr_to_rgb(np.zeros((2, 3, 2), np.uint8), "cam")
