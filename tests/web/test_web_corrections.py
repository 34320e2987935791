"""Attendance corrections in the web app: an admin adds a missed check-out and removes a wrong
check-in on the person page; the history and the CSV show the corrected day; managers cannot."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

from flask.testing import FlaskClient
from web_helpers import NOW, TZ, csrf_of

from kiosk import store


def test_admin_corrects_a_day_on_the_person_page(admin_client: tuple[FlaskClient, str],
                                                 db: store.Database) -> None:
    client, _ = admin_client
    ann = store.add_person(db, "E-1", "Ann Example", now=NOW - timedelta(days=60))
    day = (NOW - timedelta(days=1)).date()
    wrong = store.record_event(db, ann.id, datetime.combine(day, datetime.min.time(), TZ).replace(hour=6), "in",
                               "door-1")
    store.record_event(db, ann.id, datetime.combine(day, datetime.min.time(), TZ).replace(hour=9, minute=2),
                       "in", "door-1")
    page = f"/people/{ann.id}"
    token = csrf_of(client, page)
    html = client.get(page).get_data(as_text=True)
    assert 'id="correction-form"' in html and f'id="remove-{wrong.id}"' in html

    r = client.post(f"/admin/people/{ann.id}/events", data={
        "csrf_token": token, "date": day.isoformat(), "time": "17:32", "kind": "out",
        "note": "forgot to check out"}, follow_redirects=True)
    assert r.status_code == 200 and "Added a check-out for Ann Example" in r.get_data(as_text=True)
    r = client.post(f"/admin/events/{wrong.id}/remove", data={"csrf_token": token, "reason": "the cleaner"},
                    follow_redirects=True)
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "Removed the check-in of" in html
    assert "web:alice: forgot to check out" in html and f'id="remove-{wrong.id}"' not in html

    csv_text = client.get(f"{page}/history.csv?start={day}&end={day}").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert [(r["first_in"][11:16], r["last_out"][11:16], r["hours"], r["corrected"]) for r in rows] == [
        ("09:02", "17:32", "8.50", "yes")]
    r = client.post(f"/admin/people/{ann.id}/rename", data={"csrf_token": token, "name": "Ann Exampel-Smith"},
                    follow_redirects=True)
    assert r.status_code == 200 and '<h1 id="person-name">Ann Exampel-Smith</h1>' in r.get_data(as_text=True)
    audit = {a.action: a for a in store.list_audit(db, target=f"person:{ann.id}")}
    assert audit["event.remove"].details["reason"] == "the cleaner"

    bad = client.post(f"/admin/people/{ann.id}/events", data={
        "csrf_token": token, "date": "yesterday", "time": "17:32", "kind": "out", "note": "x"})
    assert bad.status_code == 400 and "use YYYY-MM-DD and HH:MM" in bad.get_data(as_text=True)
    no_reason = client.post(f"/admin/people/{ann.id}/events", data={
        "csrf_token": token, "date": day.isoformat(), "time": "18:00", "kind": "out", "note": " "})
    assert no_reason.status_code == 400 and "a reason is required" in no_reason.get_data(as_text=True)
    assert len(store.events_between(db, NOW - timedelta(days=3), NOW)) == 2


def test_managers_cannot_correct(manager_client: tuple[FlaskClient, str], db: store.Database) -> None:
    client, token = manager_client
    ann = store.add_person(db, "E-1", "Ann Example")
    event = store.record_event(db, ann.id, NOW - timedelta(hours=3), "in", "door-1")
    assert 'id="correction-form"' not in client.get(f"/people/{ann.id}").get_data(as_text=True)
    r = client.post(f"/admin/events/{event.id}/remove", data={"csrf_token": token, "reason": "x"})
    assert r.status_code == 403
    assert len(store.events_between(db, NOW - timedelta(days=1), NOW)) == 1
