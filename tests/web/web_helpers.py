"""Helpers for the web tests: settings on a temp database, sign-in through the form."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask.testing import FlaskClient

from kiosk.config import Settings

TZ = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=TZ)
ADMIN = ("alice", "admin-password-1")
MANAGER = ("bob", "manager-password-1")
_CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_settings(tmp_path: Path, **web: Any) -> Settings:
    """Settings on a database in tmp_path (Berlin time, 09:00 start, 5 min grace, expression on)."""
    return Settings.model_validate({
        "expression": {"enabled": True},
        "site": {"name": "Test office", "timezone": "Europe/Berlin", "workday_start": "09:00",
                 "late_grace_minutes": 5},
        "database": {"path": str(tmp_path / "var" / "kiosk.db"), "backups_kept": 0},
        "web": {"min_group_size": 2, **web},
    })


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
