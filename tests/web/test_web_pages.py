"""Web pages through the Flask test client: enrolment verdicts with real photos and the real
face analyzer, re-enrolment, export, deactivation, CSVs, privacy switches, kiosk status."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from web_helpers import ADMIN, NOW, csrf_of, login, make_settings

from kiosk.clock import ManualClock
from kiosk.errors import PersonNotFound
from kiosk.store import (
    Database,
    add_person,
    add_templates,
    get_person,
    get_person_by_employee_id,
    list_audit,
    open_from_settings,
    record_event,
    set_consent,
)
from kiosk.web import create_app, create_user

ROOT = Path(__file__).resolve().parents[2]
FACES = ROOT / "tests" / "data" / "faces"


def _files(*paths: Path) -> list[tuple[io.BytesIO, str]]:
    return [(io.BytesIO(p.read_bytes()), p.name) for p in paths]


def _post_enrol(client: FlaskClient, token: str, url: str, photos: list[Path], **form: str):
    data = {"csrf_token": token, **form, "photos": _files(*photos)}
    return client.post(url, data=data, content_type="multipart/form-data")


@pytest.fixture
def photos() -> dict[str, list[Path]]:
    if not (FACES / "people" / "Venus_Williams").is_dir():
        pytest.skip(f"test photos missing under {FACES}")
    found = {name: sorted((FACES / "people" / name).glob("*.jpg")) for name in ("Venus_Williams", "Ray_Romano")}
    found["more_venus"] = sorted((FACES / "extra" / "Venus_Williams").glob("*.jpg"))
    return found


@pytest.mark.slow
def test_enrol_verdicts_duplicates_and_reenrol(
    admin_client: tuple[FlaskClient, str], db: Database, photos: dict[str, list[Path]]
) -> None:
    client, token = admin_client
    venus = photos["Venus_Williams"]
    r = _post_enrol(client, token, "/admin/enrol",
                    [*venus[:3], FACES / "misc" / "no_face.jpg", FACES / "misc" / "two_faces.jpg"],
                    name="Venus Williams", employee_id="V-1", consent="1")
    html = r.get_data(as_text=True)
    assert r.status_code == 200, html[:2000]
    assert html.count("face found, used") == 3
    assert "no face found" in html and "2 faces found" in html
    person = get_person_by_employee_id(db, "V-1")
    assert person.template_count == 3
    assert person.expression_consent and person.consent_changed_by == f"web:{ADMIN[0]}"

    # the same face under another id: refused, with whom it duplicates
    # (enrolment.min_photos is 3: her fourth photo and two more)
    more = [*venus[3:], *photos["more_venus"][:2]]
    r = _post_enrol(client, token, "/admin/enrol", more, name="Not Venus", employee_id="X-9")
    html = r.get_data(as_text=True)
    assert r.status_code == 400
    assert "Venus Williams (V-1)" in html and 'id="enrol-error"' in html
    with pytest.raises(PersonNotFound):
        get_person_by_employee_id(db, "X-9")

    # a taken employee id is refused by the enrol page (re-enrol is its own page)
    r = _post_enrol(client, token, "/admin/enrol", photos["Ray_Romano"][:2],
                    name="Ray Romano", employee_id="V-1")
    assert r.status_code == 400 and "already enrolled" in r.get_data(as_text=True)

    # re-enrol replaces the templates
    r = _post_enrol(client, token, f"/admin/people/{person.id}/reenrol", more)
    assert r.status_code == 200, r.get_data(as_text=True)[:2000]
    assert get_person(db, person.id).template_count == 3
    actions = [a.action for a in list_audit(db, target=f"person:{person.id}")]
    assert "templates.replace" in actions


def test_export_deactivate_and_csvs(admin_client: tuple[FlaskClient, str], db: Database) -> None:
    client, token = admin_client
    p = add_person(db, "E-1", "Dana Data")
    q = add_person(db, "E-2", "Eli Else")
    record_event(db, p.id, NOW - timedelta(hours=3), "in", "kiosk-1")
    record_event(db, p.id, NOW - timedelta(hours=1), "out", "kiosk-1")

    r = client.get(f"/admin/people/{p.id}/export.json")
    assert r.status_code == 200 and "attachment" in r.headers["Content-Disposition"]
    data = json.loads(r.get_data(as_text=True))
    assert data["person"]["employee_id"] == "E-1" and len(data["attendance_events"]) == 2
    assert "person.export" in [a.action for a in list_audit(db, target=f"person:{p.id}")]

    r = client.post(f"/admin/people/{q.id}/active", data={"active": "0", "csrf_token": token})
    assert r.status_code == 302 and not get_person(db, q.id).active
    client.get("/")  # shows the flash message
    board = client.get("/").get_data(as_text=True)
    absent = board.split('id="table-absent"')[1].split("</table>")[0]
    assert "Eli Else" not in absent  # inactive people are not absent

    day = NOW.date().isoformat()
    expected = {
        f"/day.csv?date={day}": "first_in",
        f"/range.csv?start={day}&end={day}": "first_in",
        f"/range-totals.csv?start={day}&end={day}": "days_present",
        "/people.csv": "expression_consent",
        f"/people/{p.id}/history.csv": "minutes_late",
        "/mood.csv": "contributors",
        "/admin/audit.csv": "action",
    }
    for url, column in expected.items():
        r = client.get(url)
        assert r.status_code == 200, url
        assert r.mimetype == "text/csv" and "attachment" in r.headers["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
        assert column in rows[0], url
    rows = list(csv.DictReader(io.StringIO(client.get(f"/day.csv?date={day}").get_data(
        as_text=True))))
    assert [(x["employee_id"], x["hours"], x["status"]) for x in rows] == [("E-1", "2.00",
                                                                             "present")]
    r = client.get("/range-totals.csv", query_string={"start": day, "end": day})
    assert "Dana Data" in r.get_data(as_text=True)


def test_bad_dates_give_a_clear_message(manager_client: tuple[FlaskClient, str]) -> None:
    client, _ = manager_client
    r = client.get("/day?date=2026-13-45")
    assert r.status_code == 400 and "not a date" in r.get_data(as_text=True)
    r = client.get("/range?start=2026-06-10&end=2026-06-01")
    assert r.status_code == 400 and "before it starts" in r.get_data(as_text=True)


def test_team_expression_hidden_below_min_group(
    manager_client: tuple[FlaskClient, str], db: Database
) -> None:
    client, _ = manager_client  # min_group_size is 2 in these tests
    people = [add_person(db, f"M-{i}", f"Mood {i}") for i in range(2)]
    set_consent(db, people[0].id, True, actor="test")
    record_event(db, people[0].id, NOW - timedelta(hours=3), "in", "kiosk-1",
                 expression_label="happy")
    html = client.get("/").get_data(as_text=True)
    assert 'id="team-hidden"' in html and "1 people contributed" in html
    set_consent(db, people[1].id, True, actor="test")
    record_event(db, people[1].id, NOW - timedelta(hours=2), "in", "kiosk-1",
                 expression_label="sad")
    html = client.get("/").get_data(as_text=True)
    assert 'id="team-hidden"' not in html and "2 consenting people" in html
    mood = client.get("/mood").get_data(as_text=True)
    assert "<svg" in mood and "hidden (fewer than 2 people)" not in mood


def test_expression_off_hides_everything(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings.expression.enabled = False
    db = open_from_settings(settings)
    create_user(db, *ADMIN, "admin")
    p = add_person(db, "E-1", "Off Person", expression_consent=True)
    app = create_app(settings, db, clock=ManualClock(NOW), secret_key="o" * 64)
    client = app.test_client()
    login(client, *ADMIN)
    assert 'id="mood-off"' in client.get("/mood").get_data(as_text=True)
    assert "Team expression" not in client.get("/").get_data(as_text=True)
    assert "person-expression" not in client.get(f"/people/{p.id}").get_data(as_text=True)
    privacy = client.get("/admin/privacy").get_data(as_text=True)
    assert ">OFF<" in privacy and "KIOSK__EXPRESSION__ENABLED=true" in privacy
    assert client.get("/mood.csv").status_code == 400
    db.close()


def test_status_page_states(admin_client: tuple[FlaskClient, str], settings, clock) -> None:
    client, _ = admin_client
    assert "Service not running (no status file)" in client.get("/admin/status").get_data(
        as_text=True)
    status = Path(settings.database.path).parent / "status.json"
    status.write_text(json.dumps({"updated_at": (NOW - timedelta(minutes=30)).isoformat(),
                                  "camera": "lost"}))
    html = client.get("/admin/status").get_data(as_text=True)
    assert "Service not running (last status 30 minutes ago)" in html and "lost" in html
    status.write_text(json.dumps({"updated_at": NOW.isoformat(), "camera": "ok",
                                  "counts": {"frames": 10}}))
    html = client.get("/admin/status").get_data(as_text=True)
    assert "Service running" in html and "frames: 10" in html
    status.write_text(json.dumps({"updated_at": NOW.isoformat(), "state": "stopped",
                                  "stop_reason": "SIGTERM", "recent": [{"kind": "in"}]}))
    html = client.get("/admin/status").get_data(as_text=True)
    assert "Service stopped (SIGTERM)" in html and "kind: in" in html
    status.write_text("{not json")
    assert "unreadable" in client.get("/admin/status").get_data(as_text=True)


def test_status_page_lists_people_to_re_enrol(admin_client: tuple[FlaskClient, str], db: Database,
                                               settings) -> None:
    client, _ = admin_client
    current = add_person(db, "E-1", "Cora Current")
    add_templates(db, current.id, np.zeros((1, 128), np.float32), embedder=settings.recognition.embedder_id())
    old = add_person(db, "E-2", "Olaf Older")
    add_templates(db, old.id, np.zeros((1, 128), np.float32), embedder="dlib-resnet-v1 mirror=off")
    html = client.get("/admin/status").get_data(as_text=True)
    listed = html.split('id="re-enrol"')[1].split("</ul>")[0]
    assert "Olaf Older" in listed and "Cora Current" not in listed
    add_templates(db, old.id, np.zeros((1, 128), np.float32), embedder=settings.recognition.embedder_id(),
                  replace=True)
    assert 'id="re-enrol"' not in client.get("/admin/status").get_data(as_text=True)


def test_purge_button_applies_retention(admin_client: tuple[FlaskClient, str], db: Database,
                                        settings) -> None:
    client, token = admin_client
    p = add_person(db, "E-1", "Old Timer")
    old = NOW - timedelta(days=settings.retention.attendance_days + 5)
    record_event(db, p.id, old, "in", "kiosk-1")
    r = client.post("/admin/purge", data={"csrf_token": token}, follow_redirects=True)
    assert "1 old event(s) deleted" in r.get_data(as_text=True)
    assert any(a.action == "retention.purge" for a in list_audit(db))


def test_users_page_adds_accounts(admin_client: tuple[FlaskClient, str], app: Flask,
                                  db: Database) -> None:
    client, token = admin_client
    r = client.post("/admin/users", data={"username": "carol", "password": "carol-password-1",
                                          "role": "manager", "csrf_token": token},
                    follow_redirects=True)
    assert "Account carol (manager) created" in r.get_data(as_text=True)
    r = client.post("/admin/users", data={"username": "dave", "password": "short",
                                          "role": "manager", "csrf_token": token},
                    follow_redirects=True)
    assert "password too short" in r.get_data(as_text=True)
    other = app.test_client()
    login(other, "carol", "carol-password-1")
    assert other.get("/admin/users").status_code == 403


def test_create_app_opens_db_and_makes_a_private_key(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    app = create_app(settings)
    key = Path(settings.database.path).parent / "web_secret.key"
    assert key.exists() and stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert Path(settings.database.path).exists()
    client = app.test_client()
    assert client.get("/login").status_code == 200
    assert csrf_of(client)
    # the same key on the next start: sessions survive a restart
    first = key.read_text()
    app.extensions["kiosk"].db.close()
    app2 = create_app(settings)
    assert key.read_text() == first
    app2.extensions["kiosk"].db.close()
