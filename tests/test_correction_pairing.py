"""Hand corrections on a central (role: central) decide the in/out of that person-day's camera events again on the
merged stream, in the same transaction (corrections.add_correction / remove_event with a store.Pairing, built by
their callers with door_api.pairing_of): before, the camera events kept the kinds the last push gave them until
the next push touched the day. Store tests on both engines; the web page and the `kiosk events` command on a
central's SQLite file."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from app_helpers import kiosk_app
from cli_helpers import run_cli

from kiosk import store
from kiosk.clock import ManualClock
from kiosk.config import Settings
from kiosk.web import create_user

BERLIN = ZoneInfo("Europe/Berlin")
DAY = datetime(2026, 3, 2, tzinfo=BERLIN)
LATER = DAY + timedelta(days=1, hours=12)  # "now" of the corrections: the next day


def at(hour: int, minute: int = 0) -> datetime:
    return DAY.replace(hour=hour, minute=minute)


def _central_day(db: store.Database, pairing: store.Pairing | None) -> tuple[int, list[int]]:
    """Ada on a central: door A pushes her 08:00, 12:00, 13:00 and 17:00 (decided in, out, in, out); (her id,
    the event ids)."""
    door = store.add_door(db, "Gate A").door
    ada = store.add_person(db, "E1", "Ada").id
    events = [store.DoorEvent(seq=n, uuid=f"a-{n}", person_id=ada, at=at(h), kind="in")
              for n, h in enumerate((8, 12, 13, 17), start=1)]
    store.ingest_events(db, door.id, events, pairing=pairing, now=at(18))
    return ada, [e.id for e in store.events_after(db, 0, 100)]


def _kinds(db: store.Database, person_id: int) -> list[tuple[str, str, str]]:
    """(local HH:MM, kind, "hand" or "door") of the person's events in time order."""
    rows = sorted((e for e in store.events_after(db, 0, 100) if e.person_id == person_id),
                  key=lambda e: (e.occurred_at, e.id))
    return [(e.occurred_at.astimezone(BERLIN).strftime("%H:%M"), e.kind, "hand" if e.manual else "door")
            for e in rows]


TOGGLE = store.Pairing("toggle", BERLIN, cooldown_s=60.0)
CAMERA = [("08:00", "in", "door"), ("12:00", "out", "door"), ("13:00", "in", "door"), ("17:00", "out", "door")]


def test_a_correction_between_camera_events_flips_the_later_ones_and_its_removal_flips_them_back(
        db: store.Database) -> None:
    """Toggle mode: a forgotten check-out entered for 10:00 makes 12:00 an "in", 13:00 an "out", 17:00 an "in",
    at once (before the fix they stayed in/out/in/out: the 10:00 out followed by an out at 12:00); removing it
    again restores the camera's order. Both in the audit line's "repaired"."""
    ada, _ = _central_day(db, TOGGLE)
    assert _kinds(db, ada) == CAMERA
    added = store.add_correction(db, ada, at(10), "out", actor="alice", note="left for the dentist",
                                 now=LATER, pairing=TOGGLE)
    assert _kinds(db, ada) == [("08:00", "in", "door"), ("10:00", "out", "hand"), ("12:00", "in", "door"),
                               ("13:00", "out", "door"), ("17:00", "in", "door")]
    store.remove_event(db, added.id, actor="alice", reason="typed on the wrong day", now=LATER, pairing=TOGGLE)
    assert _kinds(db, ada) == CAMERA
    audit = {a.action: a.details for a in store.list_audit(db, target=f"person:{ada}")}
    assert audit["event.add"]["repaired"] == 3 and audit["event.remove"]["repaired"] == 3


def test_removing_a_camera_event_decides_the_rest_of_the_day_again(db: store.Database) -> None:
    """Toggle mode: the 12:00 sighting was someone else (removed): 13:00 becomes the "out", 17:00 an "in".
    first_last mode: a check-in entered for 07:30 makes the camera's 08:00 an "out"."""
    ada, ids = _central_day(db, TOGGLE)
    store.remove_event(db, ids[1], actor="alice", reason="not her", now=LATER, pairing=TOGGLE)
    assert _kinds(db, ada) == [("08:00", "in", "door"), ("13:00", "out", "door"), ("17:00", "in", "door")]

    first_last = store.Pairing("first_last", BERLIN)
    store.add_correction(db, ada, at(7, 30), "in", actor="alice", note="came in by the back door", now=LATER,
                         pairing=first_last)
    assert _kinds(db, ada) == [("07:30", "in", "hand"), ("08:00", "out", "door"), ("13:00", "out", "door"),
                               ("17:00", "out", "door")]


def test_without_a_pairing_a_correction_leaves_the_camera_events_alone(db: store.Database) -> None:
    """A standalone kiosk or a door (pairing None): the camera's kinds are its own, a correction changes none."""
    ada, ids = _central_day(db, TOGGLE)
    added = store.add_correction(db, ada, at(10), "out", actor="alice", note="x", now=LATER)
    store.remove_event(db, ids[0], actor="alice", reason="y", now=LATER)
    assert _kinds(db, ada) == [("10:00", "out", "hand")] + CAMERA[1:]
    assert "repaired" not in {a.action: a.details for a in store.list_audit(db)}["event.add"]
    assert added.kind == "out"


# --- the callers: the web page and `kiosk events` on a central ---------------------------------------------


def _central_settings(tmp_path: Path) -> dict[str, object]:
    return {"role": "central", "site": {"timezone": "Europe/Berlin"},
            "attendance": {"mode": "toggle", "cooldown_s": 60},
            "database": {"path": str(tmp_path / "central.db"), "backups_kept": 0}}


def test_the_admin_page_on_a_central_decides_the_day_again(tmp_path: Path) -> None:
    """POST /admin/people/<id>/events and /admin/events/<id>/remove on a central (before the fix: in, out, in,
    out after the 10:00 out)."""
    settings = Settings.model_validate(_central_settings(tmp_path))
    with store.open_from_settings(settings) as db:
        ada, _ = _central_day(db, TOGGLE)
        create_user(db, "alice", "admin-password-1", "admin")
        client = kiosk_app(settings, db, ManualClock(LATER)).test_client()
        def csrf(page: str) -> str:
            return re.findall(r'name="csrf_token" value="([^"]+)"', client.get(page).get_data(as_text=True))[0]

        assert client.post("/login", data={"username": "alice", "password": "admin-password-1",
                                           "csrf_token": csrf("/login")}).status_code == 302
        token = csrf("/account")
        r = client.post(f"/admin/people/{ada}/events", data={
            "csrf_token": token, "date": "2026-03-02", "time": "10:00", "kind": "out", "note": "the dentist"})
        assert r.status_code == 302, r.get_data(as_text=True)[:300]
        assert [k for _, k, _ in _kinds(db, ada)] == ["in", "out", "in", "out", "in"]
        added = next(e for e in store.events_after(db, 0, 100) if e.manual)
        r = client.post(f"/admin/events/{added.id}/remove", data={"csrf_token": token, "reason": "wrong day"})
        assert r.status_code == 302
        assert _kinds(db, ada) == CAMERA


def test_kiosk_events_on_a_central_decides_the_day_again(tmp_path: Path) -> None:
    """`kiosk events add` / `remove` with role: central (before the fix the 12:00 stayed an "out")."""
    config = tmp_path / "central.yaml"
    config.write_text(yaml.safe_dump(_central_settings(tmp_path)))
    with store.open_from_settings(Settings.model_validate(_central_settings(tmp_path))) as db:
        ada, _ = _central_day(db, TOGGLE)
    proc = run_cli("events", "add", "E1", "--kind", "out", "--at", "2026-03-02 10:00", "--note", "the dentist",
                   config=config)
    assert proc.returncode == 0, proc.stderr
    added = int(re.search(r"\(event (\d+)\)", proc.stdout).group(1))  # type: ignore[union-attr]
    with store.open_from_settings(Settings.model_validate(_central_settings(tmp_path))) as db:
        assert [k for _, k, _ in _kinds(db, ada)] == ["in", "out", "in", "out", "in"]
    proc = run_cli("events", "remove", str(added), "--reason", "wrong day", config=config)
    assert proc.returncode == 0, proc.stderr
    with store.open_from_settings(Settings.model_validate(_central_settings(tmp_path))) as db:
        assert _kinds(db, ada) == CAMERA


@pytest.mark.parametrize("kind", ["in", "out"])
def test_a_correction_on_another_day_changes_nothing_there(db: store.Database, kind: str) -> None:
    """Only the correction's own person-day is decided again: the day before keeps its kinds."""
    ada, _ = _central_day(db, TOGGLE)
    store.add_correction(db, ada, at(10) - timedelta(days=1), kind, actor="alice", note="x", now=LATER,
                         pairing=TOGGLE)
    assert [k for k in _kinds(db, ada) if k[2] == "door"] == CAMERA
