"""The status page's backup on a central whose database is PostgreSQL (database.url): one line that says
to use pg_dump, no download button, and a POST to the download answered with that line, never a 500."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from web_helpers import csrf_of

from kiosk import store
from kiosk.config import Settings
from kiosk.web.admin_pages.privacy import POSTGRESQL_BACKUP_NOTE

_names = itertools.count()


@pytest.fixture
def settings(tmp_path: Path, pg_server, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A central on a new database of the test cluster (files beside it: the working directory, tmp_path)."""
    monkeypatch.chdir(tmp_path)
    url = pg_server.create_database(f"kiosk_web_backup_{next(_names)}")
    return Settings.model_validate({
        "role": "central", "expression": {"enabled": True},
        "site": {"name": "Test office", "timezone": "Europe/Berlin"},
        "database": {"url": url}, "web": {"min_group_size": 2}})


def test_status_page_says_pg_dump_and_offers_no_download(admin_client: tuple[FlaskClient, str],
                                                         db: store.Database) -> None:
    assert db.kind == "postgresql"
    client, _ = admin_client
    page = client.get("/admin/status")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'id="backup-note"' in html and "pg_dump" in html and "docs/central.md, Backups" in html
    assert 'id="backup"' not in html and "Download a backup" not in html
    assert "offsite_dir" not in html  # off-site copies are of an SQLite file: refused with database.url


def test_a_posted_download_gets_the_note_not_a_500(admin_client: tuple[FlaskClient, str],
                                                   db: store.Database) -> None:
    client, _ = admin_client
    token = csrf_of(client, "/admin/status")
    r = client.post("/admin/backup", data={"csrf_token": token})
    assert r.status_code == 302 and r.headers["Location"].endswith("/admin/status")
    html = client.get("/admin/status").get_data(as_text=True)
    assert html.count("back it up on the server with pg_dump") == 2  # the flashed line and the page's own
    assert not [a for a in store.list_audit(db) if a.action == "db.backup"]  # nothing was copied
    assert "\n" not in POSTGRESQL_BACKUP_NOTE and len(POSTGRESQL_BACKUP_NOTE) < 200


def test_managers_still_get_403(manager_client: tuple[FlaskClient, str]) -> None:
    manager, token = manager_client
    assert manager.post("/admin/backup", data={"csrf_token": token}).status_code == 403
