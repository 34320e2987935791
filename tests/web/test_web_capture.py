"""Enrolment at the kiosk through the web app: the admin asks, the door service (in process, on
a replayed door with the person standing there) takes the photos, the page shows the outcome."""

from __future__ import annotations

from pathlib import Path

import pytest
from door_helpers import person_photos, write_config
from flask.testing import FlaskClient
from web_helpers import csrf_of

from kiosk import store
from kiosk.config import Settings
from kiosk.replay_scenes import make_scene
from kiosk.service import open_service
from kiosk.vision.faces import make_analyzer


def _ask(client: FlaskClient, token: str, url: str = "/admin/enrol/at-kiosk", **form: str):
    return client.post(url, data={"csrf_token": token, **form})


@pytest.mark.slow
def test_admin_asks_the_kiosk_and_sees_the_person_enrolled(
    admin_client: tuple[FlaskClient, str], db: store.Database, settings: Settings, tmp_path: Path
) -> None:
    client, _ = admin_client
    token = csrf_of(client, "/admin/enrol")
    assert 'id="kiosk-submit"' in client.get("/admin/enrol").get_data(as_text=True)
    store.add_person(db, "E-5", "Already Here")
    r = _ask(client, token, name="Somebody", employee_id="E-5")
    assert r.status_code == 400 and "already enrolled" in r.get_data(as_text=True)
    r = _ask(client, token, name="", employee_id="R-1")
    assert r.status_code == 400 and "a name and an employee id are required" in r.get_data(as_text=True)

    r = _ask(client, token, name="Ray Romano", employee_id="R-1", consent="1")
    assert r.status_code == 302, r.get_data(as_text=True)[:2000]
    page = r.headers["Location"]
    html = client.get(page).get_data(as_text=True)
    assert 'data-status="waiting"' in html and 'http-equiv="refresh"' in html
    assert 'id="capture-service"' in html  # no kiosk service has written a status yet
    r = _ask(client, token, name="Venus Williams", employee_id="V-1")
    assert r.status_code == 400 and "already taking photos for Ray Romano (R-1)" in r.get_data(as_text=True)

    # the door: Ray stands at the kiosk; the service takes his photos and enrols him
    frames = tmp_path / "frames"
    make_scene([person_photos("Ray_Romano")[0]], None, frames, 5.0, linger={0: 8.0}, labels=["ray"])
    door = write_config(tmp_path / "kiosk.yaml", settings.database.path, frames)
    door.screen.enabled = False
    service = open_service(door, analyzer=make_analyzer(door.recognition))
    try:
        service.run()
    finally:
        service.close()

    html = client.get(page).get_data(as_text=True)
    assert 'data-status="done"' in html, html[:3000]
    assert 'http-equiv="refresh"' not in html and 'id="person-link"' in html
    assert "enrolled with 5 photo(s) from the kiosk camera" in html
    ray = store.get_person_by_employee_id(db, "R-1")
    assert ray.template_count == 5 and ray.expression_consent
    assert ray.consent_changed_by == "web:alice (at the kiosk)"


def test_capture_request_can_be_cancelled(admin_client: tuple[FlaskClient, str], db: store.Database) -> None:
    client, _ = admin_client
    token = csrf_of(client, "/admin/enrol")
    person = store.add_person(db, "E-7", "Eve Example")
    r = _ask(client, token, f"/admin/people/{person.id}/reenrol/at-kiosk")
    assert r.status_code == 302
    capture_id = int(r.headers["Location"].rstrip("/").split("/")[-1])
    assert store.get_capture(db, capture_id).replace
    r = client.post(f"/admin/captures/{capture_id}/cancel", data={"csrf_token": token}, follow_redirects=True)
    html = r.get_data(as_text=True)
    assert 'data-status="cancelled"' in html and "cancelled by web:alice" in html
    assert store.take_capture(db) is None  # the kiosk has nothing to do
    status_page = client.get("/admin/status").get_data(as_text=True)  # the admin finds it again there
    assert 'id="captures"' in status_page and f"/admin/captures/{capture_id}" in status_page
    assert client.get("/admin/captures/999").status_code == 404
    r = client.post(f"/admin/captures/{capture_id}/cancel", data={}, follow_redirects=False)
    assert r.status_code in (400, 403)  # no CSRF token: refused


def test_managers_cannot_ask_the_kiosk(manager_client: tuple[FlaskClient, str], db: store.Database) -> None:
    client, token = manager_client
    r = _ask(client, token, name="Ray Romano", employee_id="R-1")
    assert r.status_code == 403 and store.latest_captures(db) == []
