"""Fixtures for the web app: real SQLite file, fixed clock, admin and manager accounts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from app_helpers import kiosk_app, opened_db
from flask import Flask
from flask.testing import FlaskClient
from web_helpers import ADMIN, MANAGER, NOW, login, make_settings

from kiosk.clock import ManualClock
from kiosk.config import Settings
from kiosk.store import Database
from kiosk.web import create_user


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    yield from opened_db(settings)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def app(settings: Settings, db: Database, clock: ManualClock) -> Flask:
    create_user(db, *ADMIN, "admin")
    create_user(db, *MANAGER, "manager")
    return kiosk_app(settings, db, clock)


@pytest.fixture
def admin_client(app: Flask) -> tuple[FlaskClient, str]:
    client = app.test_client()
    return client, login(client, *ADMIN)


@pytest.fixture
def manager_client(app: Flask) -> tuple[FlaskClient, str]:
    client = app.test_client()
    return client, login(client, *MANAGER)
