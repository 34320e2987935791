"""Fixtures for the web app: real SQLite file, fixed clock, admin and manager accounts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kiosk.clock import ManualClock
from kiosk.config import Settings
from kiosk.store import Database, open_from_settings
from kiosk.web import create_app, create_user

TZ = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=TZ)
ADMIN = ("alice", "admin-password-1")
MANAGER = ("bob", "manager-password-1")
_CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_settings(tmp_path: Path, **web: Any) -> Settings:
    """Settings on a database in tmp_path (Berlin time, 09:00 start, 5 min grace)."""
    return Settings.model_validate({
        "site": {"name": "Test office", "timezone": "Europe/Berlin", "workday_start": "09:00",
                 "late_grace_minutes": 5},
        "database": {"path": str(tmp_path / "var" / "kiosk.db"), "backups_kept": 0},
        "web": {"min_group_size": 2, **web},
    })


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = open_from_settings(settings)
    yield database
    database.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def app(settings: Settings, db: Database, clock: ManualClock) -> Flask:
    create_user(db, *ADMIN, "admin")
    create_user(db, *MANAGER, "manager")
    application = create_app(settings, db, clock=clock, secret_key="x" * 64)
    application.testing = True
    return application


def csrf_of(client: FlaskClient, path: str = "/login") -> str:
    """The CSRF token the app puts in the forms of path."""
    html = client.get(path).get_data(as_text=True)
    match = _CSRF_RE.search(html)
    assert match, f"no csrf token on {path}"
    return match.group(1)


def login(client: FlaskClient, username: str, password: str) -> str:
    """Sign in through the form; returns the session's CSRF token."""
    token = csrf_of(client)
    response = client.post("/login", data={"username": username, "password": password,
                                           "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return csrf_of(client, "/account")


@pytest.fixture
def admin_client(app: Flask) -> tuple[FlaskClient, str]:
    client = app.test_client()
    return client, login(client, *ADMIN)


@pytest.fixture
def manager_client(app: Flask) -> tuple[FlaskClient, str]:
    client = app.test_client()
    return client, login(client, *MANAGER)
