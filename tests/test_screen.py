"""Door screen: messages, expiry, the local HTTP server, and the page rendered by headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest

from kiosk.screen import (
    Message,
    ScreenServer,
    ScreenState,
    display_name,
    greeting_word,
    message_for,
)

BERLIN = ZoneInfo("Europe/Berlin")
SCREENSHOT_DIR = Path(__file__).resolve().parents[1] / "work-cache" / "screenshots"


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_messages() -> None:
    morning = datetime(2026, 3, 2, 8, 57, tzinfo=BERLIN)
    evening = datetime(2026, 3, 2, 17, 31, tzinfo=BERLIN)
    assert message_for("in", "Ada", morning) == Message("in", "Good morning, Ada", "Checked in 08:57")
    assert message_for("out", "Ada", evening) == Message("out", "Goodbye, Ada", "Checked out 17:31")
    assert message_for("unknown", None, morning) == Message("unknown", "Not recognised", "Please see the admin")
    assert message_for("again", "Ada", morning).title == "Hello, Ada"
    assert greeting_word(datetime(2026, 3, 2, 13, 0, tzinfo=BERLIN)) == "Good afternoon"
    assert greeting_word(evening.replace(hour=19)) == "Good evening"
    assert display_name("  Ada   King Lovelace ") == "Ada"
    assert display_name("Ada King", first_name_only=False) == "Ada King"


def test_state_expires_back_to_idle_and_prefers_offline_then_hint() -> None:
    clock = FakeMonotonic()
    state = ScreenState(message_s=5.0, clock=clock)
    assert state.snapshot()["kind"] == "idle"
    state.show(Message("in", "Good morning, Ada", "Checked in 08:57"))
    state.set_hint("come closer")
    snap = state.snapshot()
    assert (snap["kind"], snap["title"], snap["seq"]) == ("in", "Good morning, Ada", 1)
    clock.now += 5.1
    assert state.snapshot()["kind"] == "hint" and state.snapshot()["title"] == "Come closer"
    state.set_offline(True)
    assert state.snapshot()["kind"] == "offline"
    state.set_offline(False)
    state.set_hint(None)
    assert state.snapshot()["kind"] == "idle"
    assert [h["title"] for h in state.snapshot()["history"]] == ["Good morning, Ada"]


def test_server_serves_page_and_state() -> None:
    state = ScreenState()
    server = ScreenServer(state, "127.0.0.1", 0, "Front door").start()
    try:
        page = urllib.request.urlopen(server.url, timeout=5).read().decode()
        assert "state.json" in page and "Front door" in page and "http" not in page.split("<script>")[1]
        state.show(Message("unknown", "Not recognised", "Please see the admin"))
        data = json.loads(urllib.request.urlopen(server.url + "state.json", timeout=5).read())
        assert data["kind"] == "unknown" and data["title"] == "Not recognised"
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server.url + "nope", timeout=5)
        assert err.value.code == 404
    finally:
        server.stop()


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("chromium is not installed (apt-get install chromium)")


@pytest.mark.slow
@pytest.mark.parametrize(("message", "colour_rgb"), [
    (Message("in", "Good morning, Ada", "Checked in 08:57"), (0x1E, 0x7D, 0x46)),
    (Message("unknown", "Not recognised", "Please see the admin"), (0xA0, 0x5A, 0x12)),
])
def test_page_renders_in_headless_chromium(message: Message, colour_rgb: tuple[int, int, int],
                                           tmp_path: Path) -> None:
    chromium = _chromium()
    state = ScreenState(message_s=60.0)
    state.show(message)
    server = ScreenServer(state, "127.0.0.1", 0).start()
    shot = tmp_path / f"screen_{message.kind}.png"
    try:
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--window-size=800,480", "--virtual-time-budget=3000", f"--user-data-dir={tmp_path / 'profile'}",
             f"--screenshot={shot}", server.url],
            check=True, capture_output=True, timeout=90,
        )
    finally:
        server.stop()
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (480, 800)
    # The page polled state.json and took the message's colour (BGR in OpenCV).
    corner = image[10, 10].astype(int)
    assert np.abs(corner - np.array(colour_rgb[::-1])).max() <= 3, corner
    # Some light text in the middle band (the title).
    assert (image[150:330, 100:700] > 200).all(axis=2).sum() > 500
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, SCREENSHOT_DIR / shot.name)
