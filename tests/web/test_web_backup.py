"""The admin status page's backup download: a real SQLite file without biometric or expression data."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import numpy as np
from flask.testing import FlaskClient
from web_helpers import NOW, csrf_of

from kiosk import store


def test_admin_downloads_a_backup_without_biometrics(admin_client: tuple[FlaskClient, str], db: store.Database,
                                                     tmp_path: Path) -> None:
    client, _ = admin_client
    ann = store.add_person(db, "E-1", "Ann Example", expression_consent=True, now=NOW - timedelta(days=9))
    template = np.random.default_rng(2).normal(size=128).astype(np.float32)
    store.add_templates(db, ann.id, template[None, :])
    store.record_event(db, ann.id, NOW - timedelta(hours=3), "in", "door-1", expression_label="sad",
                       expression_scores={"sad": 1.0}, expression_confidence=1.0, match_distance=0.2)
    token = csrf_of(client, "/admin/status")
    assert 'id="backup"' in client.get("/admin/status").get_data(as_text=True)
    r = client.post("/admin/backup", data={"csrf_token": token})
    assert r.status_code == 200 and r.mimetype == "application/vnd.sqlite3"
    assert 'filename="kiosk-backup-' in r.headers["Content-Disposition"]
    body = r.get_data()
    assert body.startswith(b"SQLite format 3\x00") and template.tobytes() not in body
    saved = tmp_path / "downloaded.db"
    saved.write_bytes(body)
    con = sqlite3.connect(saved)
    try:
        assert con.execute("SELECT name FROM people").fetchall() == [("Ann Example",)]
        assert con.execute("SELECT count(*) FROM face_templates").fetchone() == (0,)
        assert con.execute("SELECT kind, expression_label, match_distance FROM attendance_events").fetchall() == [
            ("in", None, None)]
    finally:
        con.close()
    assert [a.actor for a in store.list_audit(db) if a.action == "db.backup"] == ["web:alice"]
    assert len(store.list_templates(db, ann.id)) == 1  # the live database keeps them


def test_managers_and_forged_posts_get_no_backup(manager_client: tuple[FlaskClient, str],
                                                 admin_client: tuple[FlaskClient, str]) -> None:
    manager, token = manager_client
    assert manager.post("/admin/backup", data={"csrf_token": token}).status_code == 403
    admin, _ = admin_client
    assert admin.post("/admin/backup", data={"csrf_token": "forged"}).status_code in (400, 403)


def test_daily_copies_show_on_the_status_page(admin_client: tuple[FlaskClient, str], app, settings,
                                              tmp_path: Path) -> None:
    from kiosk.maintenance import run_daily_copy

    client, _ = admin_client
    assert "No daily copies: set" in client.get("/admin/status").get_data(as_text=True)
    settings.database.offsite_dir = tmp_path / "usb"
    settings.database.offsite_dir.mkdir()
    copy = run_daily_copy(app.extensions["kiosk"], "system:daily-backup")
    assert copy is not None and copy.path.name == f"kiosk-{NOW.date().isoformat()}.db"
    assert run_daily_copy(app.extensions["kiosk"], "system:daily-backup") is None  # once a day
    html = client.get("/admin/status").get_data(as_text=True)
    assert "Daily copies in" in html and f"newest {copy.path.name}" in html
