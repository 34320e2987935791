"""The door service's own retention purge with a clock far ahead of the data: nothing deleted,
and the refusal is in the status file the admin Status page shows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from door_helpers import write_config

from kiosk import store
from kiosk.clock import ManualClock
from kiosk.service import open_service
from kiosk.vision.faces import make_analyzer

pytestmark = pytest.mark.reliability


def test_door_purge_at_a_clock_in_2028_deletes_nothing_and_says_so(tmp_path: Path) -> None:
    db_path = tmp_path / "kiosk.db"
    frames = tmp_path / "frames"
    frames.mkdir()
    settings = write_config(tmp_path / "kiosk.yaml", db_path, frames)
    settings.screen.enabled = False
    with store.open_database(db_path) as db:
        person = store.add_person(db, "E1", "Ada Lovelace")
        for day in range(1, 29):
            store.record_event(db, person.id, datetime(2026, 2, day, 8, 0, tzinfo=UTC), "in", "door-test")
    service = open_service(settings, clock=ManualClock(datetime(2028, 6, 1, 9, 0, tzinfo=UTC)),
                           analyzer=make_analyzer(settings.recognition))
    try:
        service.write_status()
        status = json.loads(settings.status_path.read_text())
    finally:
        service.close()
    assert status["purge_refused"] and "clock" in status["purge_refused"]
    with store.open_database(db_path) as db:
        assert len(store.events_between(db, datetime(2026, 1, 1, tzinfo=UTC),
                                        datetime(2026, 12, 31, tzinfo=UTC))) == 28
