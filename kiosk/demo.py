"""`kiosk demo`: the whole job with no camera and no set-up, on photos shipped in the package.

A fresh database in a folder, three people enrolled from photos, a replayed door camera
(morning: they arrive and a stranger tries; evening: they leave), the same pipeline and
attendance rules as `kiosk run`, then the attendance log and the daily report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from kiosk import store
from kiosk.attendance import Attendance, StoreEventLog
from kiosk.clock import ManualClock
from kiosk.config import Settings
from kiosk.enrolment import enrol, load_photos
from kiosk.gallery import Gallery
from kiosk.pipeline import Pipeline
from kiosk.replay_scenes import make_scene
from kiosk.reports import daily_report, render_daily
from kiosk.vision.expression import load_classifier
from kiosk.vision.faces import load_image, make_analyzer

logger = logging.getLogger(__name__)

DEMO_DATA = Path(__file__).resolve().parent / "data" / "demo"
DEMO_DAY = date(2026, 11, 27)


@dataclass(frozen=True)
class DemoPerson:
    """Someone the demo enrols: photo folder name, employee id, consent to expression analysis."""

    folder: str
    employee_id: str
    consent: bool


DEMO_PEOPLE = (
    DemoPerson("Debbie_Reynolds", "E001", True),
    DemoPerson("Venus_Williams", "E002", True),
    DemoPerson("Ray_Romano", "E003", False),
)
ENROL_PHOTOS = 3  # the first three photos enrol; the fourth is what the camera "sees"


def demo_settings(folder: Path, expression: bool = True) -> Settings:
    """Default settings with the database inside folder, a Europe/Berlin site starting 09:00."""
    return Settings.model_validate({
        "site": {"name": "Demo office", "timezone": "Europe/Berlin", "workday_start": "09:00"},
        "database": {"path": str(folder / "kiosk.db")},
        "expression": {"enabled": expression},
    })


def _replay(frames_dir: Path, pipeline: Pipeline, attendance: Attendance, clock: ManualClock,
            start: datetime, fps: float, say: Callable[[str], None], names: dict[int, str]) -> None:
    """Feed the scene's frames through the pipeline; clock time follows the frame index."""
    frames = sorted(frames_dir.glob("frame_*.jpg"))
    for index, path in enumerate(frames):
        t = index / fps
        clock.set(start + timedelta(seconds=t))
        decision = pipeline.process(load_image(path), t=t)
        if decision is None:
            continue
        local = clock.now().astimezone(attendance.settings.tz)
        if decision.person_id is None:
            attendance.unknown_face()
            say(f"  {local:%H:%M:%S}  not recognised, please see the admin")
            continue
        expr = decision.expression
        result = attendance.sighting(
            decision.person_id,
            expression_label=expr.label if expr else None,
            expression_scores=expr.scores if expr else None,
            expression_confidence=expr.confidence if expr else None,
            match_distance=decision.distance, match_score=decision.score,
        )
        name = names[decision.person_id]
        if not result.recorded:
            say(f"  {local:%H:%M:%S}  {name}: seen again ({result.reason})")
            continue
        verb = "checked in" if result.kind == "in" else "checked out"
        mood = f", expression {expr.label} ({expr.confidence:.0%})" if expr else ""
        late = f", {result.minutes_late} min late" if result.late else ""
        say(f"  {local:%H:%M:%S}  {name} {verb} (match {decision.score:.2f}{mood}{late}) "
            f"[{decision.timings_ms.get('total', 0):.0f} ms]")


def run_demo(folder: Path, say: Callable[[str], None] = print, expression: bool = True) -> Path:
    """Run the demo in folder (created; must not hold a kiosk.db already); returns the database path.

    KioskError when folder is a file or cannot be created."""
    from kiosk.errors import KioskError

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KioskError(f"cannot use {folder} for the demo ({exc.strerror or exc}); give an empty folder (--dir)") from None
    settings = demo_settings(folder, expression)
    db_path = settings.database.path
    if Path(db_path).exists():
        raise KioskError(f"{db_path} exists; give the demo an empty folder (--dir)")
    analyzer = make_analyzer(settings.recognition)
    names: dict[int, str] = {}
    with store.open_from_settings(settings) as db:
        say(f"Database: {db_path}")
        say("Enrolling:")
        for person in DEMO_PEOPLE:
            photos = sorted((DEMO_DATA / "people" / person.folder).glob("*.jpg"))[:ENROL_PHOTOS]
            images, unreadable = load_photos(photos)
            name = person.folder.replace("_", " ")
            result = enrol(db, settings, analyzer, name=name, employee_id=person.employee_id,
                           photos=images, expression_consent=person.consent, actor="demo",
                           unreadable=unreadable)
            assert result.person_id is not None  # enrol() raises rather than return without a person
            names[result.person_id] = name
            say(f"  {name} ({person.employee_id}): {result.templates_added} photos"
                f"{', consents to expression analysis' if person.consent else ''}")

        ids, matrix = store.all_templates(db)
        gallery = Gallery.from_arrays(matrix, ids.tolist(), settings.recognition)
        consenting = {pid for pid, p in store.people_by_id(db).items() if p.expression_consent}
        classifier = load_classifier(settings.expression)
        clock = ManualClock(datetime(2026, 1, 1, tzinfo=settings.tz))
        attendance = Attendance(StoreEventLog(db, settings.site.device_id), settings, clock)
        probes = [sorted((DEMO_DATA / "people" / p.folder).glob("*.jpg"))[ENROL_PHOTOS] for p in DEMO_PEOPLE]
        stranger = sorted((DEMO_DATA / "strangers").glob("*.jpg"))[0]
        fps = 5.0
        scenes = [  # (title, local start time, arriving photos, stranger, {visit: seconds lingering})
            ("Morning at the door (Venus lingers 20 s in front of the camera):", time(8, 52),
             probes[:2], stranger, {1: 20.0}),
            ("Later that morning:", time(9, 14), probes[2:], None, {}),
            ("Evening at the door:", time(17, 31), probes[::-1], None, {}),
        ]
        for title, at, photos, other, linger in scenes:
            say(title)
            frames = folder / "frames" / at.strftime("%H%M")
            make_scene(photos, other, frames, fps=fps, linger=linger)
            pipeline = Pipeline(analyzer, gallery, classifier, settings, consent=consenting.__contains__)
            start = datetime.combine(DEMO_DAY, at, tzinfo=settings.tz)
            _replay(frames, pipeline, attendance, clock, start, fps, say, names)

        say("")
        say(render_daily(daily_report(db, settings, DEMO_DAY), "table").rstrip())
    return Path(db_path)
