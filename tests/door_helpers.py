"""Shared by the live-kiosk tests: enrolled people, a door scene of replay frames, a config file, and a
real door process (started with its output in a log, waited on, its status file read)."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from kiosk import store
from kiosk.config import Settings, load_settings
from kiosk.replay_scenes import Visit, make_scene
from kiosk.vision.faces import DlibFaceAnalyzer, load_image

ROOT = Path(__file__).resolve().parents[1]
FACES = Path(__file__).parent / "data" / "faces"
# Enrolled with photos 2-4; photo 1 walks up to the camera.
PEOPLE = ("Debbie_Reynolds", "Hu_Jintao")
STRANGER = "Adelina_Avila_0001.jpg"
REPLAY_START = "2026-03-02T08:55:00+01:00"  # a Monday morning in Berlin
FPS = 5.0


def person_photos(name: str) -> list[Path]:
    """The committed photos of a test person, in name order."""
    return sorted((FACES / "people" / name).glob("*.jpg"))


def enrol_people(db_path: Path, analyzer: DlibFaceAnalyzer, consent: tuple[str, ...] = ()) -> dict[str, int]:
    """Create the database and enrol PEOPLE (photos 2-4 each; consent: names who agreed to
    expression analysis); {name: person id}."""
    ids = {}
    with store.open_database(db_path) as db:
        for i, name in enumerate(PEOPLE):
            faces = [analyzer.largest_face(load_image(p)) for p in person_photos(name)[1:]]
            embeddings = np.stack([f.embedding for f in faces if f is not None and f.accepted])
            person = store.add_person(db, f"E{i + 1}", name.replace("_", " "), expression_consent=name in consent)
            store.add_templates(db, person.id, embeddings, embedder=analyzer.settings.embedder_id())
            ids[name] = person.id
    return ids


@dataclass(frozen=True)
class DoorScene:
    """Frames folder plus the visits in it (A, B lingering, stranger, A again)."""

    frames: Path
    visits: list[Visit]


def door_scene(out_dir: Path, linger_s: float = 120.0, tail_s: float = 20.0) -> DoorScene:
    """A arrives; B arrives and stays linger_s; a stranger; A comes back (later than the cooldown)."""
    a, b = PEOPLE
    photos = [person_photos(a)[0], person_photos(b)[0], FACES / "strangers" / STRANGER, person_photos(a)[0]]
    visits = make_scene(photos, None, out_dir, FPS, linger={1: linger_s},
                        labels=[a, b, "stranger", a], tail_s=tail_s)
    # The stranger is a visit like the others here (make_scene's own stranger slot stays empty).
    visits = [v if v.label != "stranger" else Visit(v.label, v.photo, True, v.first_frame, v.steady_from,
                                                    v.last_frame, v.fps) for v in visits]
    return DoorScene(out_dir, visits)


def write_config(path: Path, db_path: Path, frames: Path, cooldown_s: float = 60.0,
                 expression: bool = False, **camera_options: object) -> Settings:
    """A YAML config for a replayed morning (scene time, expression off, free screen port)."""
    data = {
        "site": {"timezone": "Europe/Berlin", "device_id": "door-test", "workday_start": "09:00"},
        "database": {"path": str(db_path)},
        "expression": {"enabled": expression},
        "attendance": {"cooldown_s": cooldown_s},
        "camera": {"type": "replay", "options": {"path": str(frames), "fps": 0, **camera_options},
                   "retry_initial_s": 0.2, "retry_max_s": 1.0},
        "service": {"clock": "replay", "replay_start": REPLAY_START, "replay_fps": FPS,
                    "status_interval_s": 0.5},
        "screen": {"port": 0},
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_settings(path, environ={})


# -- a real door process --------------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without KIOSK_* variables and with Python's warnings off, plus extra."""
    return {k: v for k, v in os.environ.items() if not k.startswith("KIOSK")} | {"PYTHONWARNINGS": "ignore"} | extra


def start_kiosk(args: Sequence[str], log: Path, *, env: dict[str, str] | None = None,
                append: bool = True) -> subprocess.Popen[bytes]:
    """`python ARGS` in the project root (env: clean_env()), its output added to log (log emptied
    first unless append)."""
    with log.open("ab" if append else "wb") as out:
        return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=clean_env() if env is None else env,
                                stdout=out, stderr=subprocess.STDOUT)


def wait_for(predicate: Callable[[], Any], proc: subprocess.Popen[bytes] | None, timeout: float, what: str,
             log: Path) -> float:
    """Poll predicate every 0.1 s; seconds it took. Fails (with the log) on timeout or when proc exits."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the service exited ({proc.returncode}) while waiting for {what}; log:\n"
                        f"{log.read_text()[-4000:]}")
        time.sleep(0.1)
    if proc is not None:
        proc.kill()
    pytest.fail(f"timed out waiting for {what}; log:\n{log.read_text()[-4000:]}")


def read_status(path: Path) -> dict[str, Any]:
    """The door's status file as JSON; {} while it is missing or half-written."""
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def door_settings(**attendance: object) -> Settings:
    """Default settings with expression analysis off and these attendance keys set (pipeline tests)."""
    s = Settings()
    s.expression.enabled = False
    for key, value in attendance.items():
        setattr(s.attendance, key, value)
    return s


def _ephemeral_low() -> int:
    """The lowest port the kernel hands out for bind(0) and outgoing connections (Linux; else 32768)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_below_ephemeral() -> int:
    """A free port on 127.0.0.1 for the central, below the ephemeral range: a port from bind(0) is free again
    once checked, and the doors' screens, their outgoing connections or another test's server could be given
    it before the central binds it (in the ephemeral range that is likely under -n 2, below it only another
    test picking the very same number could)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, max(20001, _ephemeral_low()))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.fail("no free port between 20000 and the ephemeral range")
