"""Leave in the web app: an admin records a week's holiday on the person page; the board, the range
totals and the payroll CSV count it as leave, not absence; mistakes are one message; managers only read."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

from flask.testing import FlaskClient
from web_helpers import NOW, csrf_of

from kiosk import store

MONDAY = NOW.date()  # 2026-06-15


def _count(html: str, card: str) -> int:
    match = re.search(rf'id="count-{card}">(\d+)<', html)
    assert match, card
    return int(match.group(1))


def test_admin_records_leave_and_reports_count_it(admin_client: tuple[FlaskClient, str],
                                                  db: store.Database) -> None:
    client, _ = admin_client
    ann = store.add_person(db, "E-1", "Ann Example", now=NOW - timedelta(days=60))
    store.add_person(db, "E-2", "Bob Example", now=NOW - timedelta(days=60))
    page = f"/people/{ann.id}"
    token = csrf_of(client, page)
    assert 'id="leave-form"' in client.get(page).get_data(as_text=True)
    assert (_count(client.get("/").get_data(as_text=True), "absent"),
            _count(client.get("/").get_data(as_text=True), "leave")) == (2, 0)

    r = client.post(f"/admin/people/{ann.id}/leave", data={
        "csrf_token": token, "first_day": MONDAY.isoformat(), "last_day": (MONDAY + timedelta(days=6)).isoformat(),
        "kind": "holiday"}, follow_redirects=True)
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "Recorded holiday leave for Ann Example: 2026-06-15 to 2026-06-21." in html
    leave = store.leave_between(db, person_id=ann.id)
    assert len(leave) == 1 and f'id="leave-remove-{leave[0].id}"' in html

    board = client.get("/").get_data(as_text=True)
    assert (_count(board, "absent"), _count(board, "leave")) == (1, 1)
    table = board.split('id="table-leave"')[1].split("</table>")[0]
    assert "Ann Example" in table and "holiday" in table and "Bob Example" not in table
    week = "start=2026-06-15&end=2026-06-21"
    totals = list(csv.DictReader(io.StringIO(client.get(f"/range-totals.csv?{week}").get_data(as_text=True))))
    assert {t["name"]: (t["days_absent"], t["days_on_leave"]) for t in totals} == {
        "Ann Example": ("0", "5"), "Bob Example": ("0", "0")}  # nothing finished yet on Monday noon
    days = list(csv.DictReader(io.StringIO(client.get(f"/range.csv?{week}").get_data(as_text=True))))
    assert [(d["date"], d["status"], d["leave"]) for d in days][:2] == [
        ("2026-06-15", "leave", "holiday"), ("2026-06-16", "leave", "holiday")] and len(days) == 5
    range_page = client.get(f"/range?{week}").get_data(as_text=True)
    assert "Days on leave" in range_page and range_page.split('id="table-range-leave"')[1].count("holiday") == 5
    store.record_event(db, ann.id, NOW - timedelta(days=3), "in", "door-1")  # came in on Friday 12th
    history = client.get(f"{page}/history.csv?start=2026-06-12&end=2026-06-16").get_data(as_text=True)
    assert [(d["date"], d["status"], d["leave"]) for d in csv.DictReader(io.StringIO(history))] == [
        ("2026-06-12", "open", ""), ("2026-06-15", "leave", "holiday"), ("2026-06-16", "leave", "holiday")]

    for data, message in [
        ({"first_day": "2026-06-19", "kind": "sick"}, "already has holiday leave 2026-06-15 to 2026-06-21"),
        ({"first_day": "next week", "kind": "sick"}, "not a date: &#39;next week&#39;"),
        ({"first_day": "2026-07-01", "last_day": "2026-06-30", "kind": "sick"}, "before it starts"),
        ({"first_day": "2026-07-01", "kind": "party"}, "unknown kind of leave"),
    ]:
        bad = client.post(f"/admin/people/{ann.id}/leave", data={"csrf_token": token, **data})
        assert bad.status_code == 400 and message in bad.get_data(as_text=True), data
    assert store.leave_between(db) == leave

    r = client.post(f"/admin/leave/{leave[0].id}/remove", data={"csrf_token": token}, follow_redirects=True)
    assert r.status_code == 200 and "Removed the holiday leave of 2026-06-15 to 2026-06-21." in r.get_data(as_text=True)
    assert _count(client.get("/").get_data(as_text=True), "absent") == 2
    assert client.post(f"/admin/leave/{leave[0].id}/remove", data={"csrf_token": token}).status_code == 404
    actions = [a.action for a in store.list_audit(db, target=f"person:{ann.id}")]
    assert "leave.add" in actions and "leave.remove" in actions
    sunday = client.get("/day?date=2026-06-14").get_data(as_text=True)
    assert _count(sunday, "absent") == 0 and "Nobody: not a work day." in sunday


def test_managers_see_leave_but_cannot_change_it(manager_client: tuple[FlaskClient, str],
                                                 db: store.Database) -> None:
    client, token = manager_client
    ann = store.add_person(db, "E-1", "Ann Example", now=NOW - timedelta(days=60))
    item = store.add_leave(db, ann.id, MONDAY, MONDAY, "sick", actor="web:alice")
    html = client.get(f"/people/{ann.id}").get_data(as_text=True)
    assert "2026-06-15" in html.split('id="table-leave"')[1] and 'id="leave-form"' not in html
    assert 'id="leave-remove-' not in html
    r = client.post(f"/admin/people/{ann.id}/leave", data={"csrf_token": token, "first_day": "2026-06-16",
                                                           "kind": "holiday"})
    assert r.status_code == 403
    assert client.post(f"/admin/leave/{item.id}/remove", data={"csrf_token": token}).status_code == 403
    assert store.leave_between(db) == [item]


def test_leave_page_import_and_csv(admin_client: tuple[FlaskClient, str], manager_client: tuple[FlaskClient, str],
                                   db: store.Database) -> None:
    client, _ = admin_client
    store.add_person(db, "E-1", "Ann Example", now=NOW - timedelta(days=60))
    store.add_person(db, "E-2", "Bob Example", now=NOW - timedelta(days=60))
    token = csrf_of(client, "/leave")
    assert "No leave recorded in this range." in client.get("/leave").get_data(as_text=True)

    bad = b"employee_id,first_day,last_day,kind\nE-1,2026-06-22,2026-06-26,holiday\nE-9,2026-06-22,,\nE-2,22.6.2026,,\n"
    r = client.post("/admin/leave/import", data={"csrf_token": token, "file": (io.BytesIO(bad), "hr.csv")},
                    content_type="multipart/form-data")
    html = r.get_data(as_text=True)
    assert r.status_code == 400 and "nothing recorded: 2 line(s) of hr.csv are wrong" in html
    assert "line 3: no person with employee id &#39;E-9&#39;" in html and store.leave_between(db) == []
    good = b"\xef\xbb\xbfemployee_id,first_day,last_day,kind\r\nE-1,2026-06-22,2026-06-26,holiday\r\nE-2,2026-06-23,,sick\r\n"
    r = client.post("/admin/leave/import", data={"csrf_token": token, "file": (io.BytesIO(good), "hr.csv")},
                    content_type="multipart/form-data", follow_redirects=True)
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "Recorded 2 leave entries from hr.csv." in html
    table = html.split('id="table-leave-all"')[1].split("</table>")[0]
    assert table.index("Ann Example") < table.index("Bob Example") and "2026-06-22 to 2026-06-26" in table
    rows = list(csv.DictReader(io.StringIO(client.get("/leave.csv").get_data(as_text=True))))
    assert [(r["employee_id"], r["kind"], r["work_days_in_range"]) for r in rows] == [
        ("E-1", "holiday", "5"), ("E-2", "sick", "1")]
    assert client.get("/leave.csv?start=2026-06-24&end=2026-06-30").get_data(as_text=True).count("holiday,3") == 1
    no_file = client.post("/admin/leave/import", data={"csrf_token": token}, content_type="multipart/form-data")
    assert no_file.status_code == 400 and "choose a CSV file" in no_file.get_data(as_text=True)

    manager, manager_token = manager_client
    page = manager.get("/leave").get_data(as_text=True)
    assert "Ann Example" in page and 'id="leave-import-form"' not in page
    refused = manager.post("/admin/leave/import", data={"csrf_token": manager_token,
                                                        "file": (io.BytesIO(good), "hr.csv")},
                           content_type="multipart/form-data")
    assert refused.status_code == 403 and len(store.leave_between(db)) == 2
