"""`kiosk run` and photo enrolment with the fake face analyzer (kiosk.vision.fake), for end-to-end tests.

    python tests/fake_kiosk.py --config door.yaml run

is the door service as `kiosk run` starts it (logging, signals, exit status 0 after SIGTERM, 1 or 2 with
one message for a setup error), with FakeFaceAnalyzer in place of the dlib models: a real process, its
camera, database, journal, screen and sync thread, only no model to load. Its replay camera shows faces
drawn with draw_face (write_fake_scene). enrol_fake_person() is `kiosk enroll` with the fake analyzer on
photos drawn with draw_face and written as JPEG files (fake_photos).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import cv2

from kiosk import store
from kiosk.config import ConfigError, load_settings
from kiosk.enrolment import EnrolmentResult, enrol, photo_loaders
from kiosk.errors import KioskError
from kiosk.vision.fake import PHOTOS, FakeFace, FakeFaceAnalyzer, blank_frame, draw_face, fake_scene
from kiosk.vision.types import RGBImage

logger = logging.getLogger(__name__)

FRAME_SIZE = (320, 240)  # (width, height) px: small frames decode fast; the face (200 px) is well above min_face_px
FACE_PX = 200


def _write_rgb(path: Path, image: RGBImage) -> None:
    """Write an RGB uint8 HxWx3 image to path (JPEG or PNG by suffix)."""
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")


def write_fake_scene(folder: Path, person: int, fps: float, *, steady_s: float, empty_s: float) -> float:
    """Frames (JPEG, name order) of one person (photo 0) walking up, holding still steady_s, leaving, then
    empty_s of empty frames, into folder for a looped replay camera; the loop's length in seconds at fps."""
    folder.mkdir(parents=True)
    scene = fake_scene([FakeFace(person, 0)], fps, steady_s=steady_s, empty_s=empty_s, size=FRAME_SIZE,
                       side=FACE_PX)
    for i, (_, frame) in enumerate(scene):
        _write_rgb(folder / f"frame_{i:04d}.jpg", frame)
    return len(scene.frames) / fps


def fake_photos(folder: Path, person: int, photos: range = range(1, PHOTOS)) -> list[Path]:
    """Enrolment photos of a fake person (one drawn face each, photos 1..3 by default) as JPEG files."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for photo in photos:
        path = folder / f"person{person}_{photo}.jpg"
        centre = (FRAME_SIZE[0] // 2, FRAME_SIZE[1] // 2)
        _write_rgb(path, draw_face(blank_frame(FRAME_SIZE), FakeFace(person, photo), FACE_PX, centre))
        paths.append(path)
    return paths


def enrol_fake_person(config: Path, name: str, employee_id: str, photos: list[Path]) -> EnrolmentResult:
    """`kiosk --config CONFIG enroll --name NAME --employee-id ID PHOTOS` with the fake analyzer: the same
    enrol() on the database the settings name (SQLite or PostgreSQL), photo files decoded one at a time."""
    settings = load_settings(config, environ={})
    loaders = photo_loaders(photos, settings.enrolment.max_photo_side)
    with store.open_from_settings(settings) as database:
        return enrol(database, settings, FakeFaceAnalyzer(settings.recognition), name=name,
                     employee_id=employee_id, photos=loaders)


def run_door(config: Path) -> int:
    """The door service of `kiosk --config CONFIG run` with the fake analyzer; its exit status."""
    from kiosk.service import run_service

    settings = load_settings(config)
    return run_service(settings, analyzer=FakeFaceAnalyzer(settings.recognition))


def main(argv: list[str] | None = None) -> int:
    """Process entry: `python tests/fake_kiosk.py --config FILE run`."""
    parser = argparse.ArgumentParser(prog="fake_kiosk", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="YAML settings file")
    parser.add_argument("command", choices=["run"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kiosk").setLevel(logging.INFO)  # as `kiosk run`
    try:
        return run_door(args.config)
    except ConfigError as exc:
        logger.error("%s", exc)
        return 2
    except KioskError as exc:
        logger.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
