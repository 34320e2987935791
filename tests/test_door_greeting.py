"""The door greets before it commits the event to the database (the journal already holds it, fsync'd):
a real door process killed with SIGKILL right after the greeting, before the commit, loses nothing
and doubles nothing when it starts again."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from door_helpers import PEOPLE, ROOT, clean_env, enrol_people, person_photos, write_config

from kiosk import store
from kiosk.config import load_settings
from kiosk.journal import JOURNAL_NAME, Journal
from kiosk.replay_scenes import make_scene
from kiosk.service import run_service
from kiosk.vision.faces import DlibFaceAnalyzer, make_analyzer

# The real door loop (kiosk.service) on the replay, with the outbox's database write after the
# greeting replaced by: say what the screen shows, then hang until killed.
CHILD = """
import sys, time
from kiosk.config import load_settings
from kiosk.outbox import EventOutbox
from kiosk.service import open_service

def greeted_then_hang(self):
    if self.pending:
        print("GREETED", service.screen.snapshot()["kind"], self.pending, flush=True)
        time.sleep(600)
    return {}

EventOutbox.write_new = greeted_then_hang
service = open_service(load_settings(sys.argv[1], environ={}))
service.run()
"""


@pytest.fixture(scope="module")
def analyzer() -> DlibFaceAnalyzer:
    return make_analyzer()


def _events(db_path: Path) -> list[tuple[int | None, str]]:
    with store.open_database(db_path, create=False) as db:
        rows = store.events_between(db, datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    return [(e.person_id, e.kind) for e in rows]


@pytest.mark.slow
def test_sigkill_after_the_greeting_before_the_commit_loses_nothing(analyzer: DlibFaceAnalyzer,
                                                                   tmp_path: Path) -> None:
    db_path = tmp_path / "kiosk.db"
    ids = enrol_people(db_path, analyzer)
    frames = tmp_path / "frames"
    make_scene([person_photos(PEOPLE[0])[0]], None, frames, 5.0, steady_s=2.0)
    config = tmp_path / "kiosk.yaml"
    settings = write_config(config, db_path, frames)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(config)], cwd=ROOT, env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("GREETED"):
                break
        assert lines and lines[-1].split() == ["GREETED", "in", "1"], "".join(lines)[-4000:]
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()
    # Killed between the greeting and the commit: not in the database, but in the journal.
    assert _events(db_path) == []
    journal = settings.status_path.parent / JOURNAL_NAME
    assert [(e.person_id, e.kind) for e in Journal(journal).open()] == [(ids[PEOPLE[0]], "in")]
    # The next starts (the same replay, nobody new within the cooldown) write it once.
    for _ in range(2):
        assert run_service(load_settings(config, environ={}), install_signals=False, analyzer=analyzer) == 0
        assert _events(db_path) == [(ids[PEOPLE[0]], "in")]
    assert Journal(journal).open() == []
