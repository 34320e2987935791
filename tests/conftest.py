"""Shared test fixtures: paths to committed test data, the optional large data sets, a fresh database."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = ROOT / "tests" / "data"
SHARED_DATA = Path(os.environ.get("KIOSK_SHARED_DATA", ROOT.parent / "shared" / "data"))
MODEL = ROOT / "models" / "expression_int8.tflite"


def need_shared(*parts: str) -> Path:
    """The path under ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs the large data set at {path} (../shared/data is absent on this machine)")
    return path


@pytest.fixture(scope="session")
def shipped_model() -> Path:
    """The shipped int8 expression model."""
    if not MODEL.exists():
        pytest.fail(f"the shipped model {MODEL} is missing")
    return MODEL


@pytest.fixture
def db(tmp_path: Path):
    """A fresh kiosk database (real SQLite file at head) in tmp_path, closed afterwards."""
    from kiosk.store import open_database

    database = open_database(tmp_path / "kiosk.db")
    yield database
    database.close()


@pytest.fixture(scope="session")
def dlib_analyzer():
    """The real dlib face analyzer with default settings, loaded once per test run."""
    from kiosk.vision.faces import make_analyzer

    return make_analyzer()


@pytest.fixture
def enrol_env(tmp_path: Path):
    """(Settings with the database at tmp_path/k.db, that database open); closed afterwards."""
    from kiosk import store
    from kiosk.config import Settings

    settings = Settings.model_validate({"database": {"path": str(tmp_path / "k.db")}})
    with store.open_from_settings(settings) as database:
        yield settings, database


# -- PostgreSQL (tests/pg_server.py) ------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server():
    """A throw-away PostgreSQL cluster (temp dir, private socket, fsync off) for the whole run,
    stopped and deleted at the end; skips with the reason when PostgreSQL is not installed."""
    from pg_server import PgServer, PgUnavailable

    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e . installs it)")
    try:
        server = PgServer.start()
    except PgUnavailable as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_url(pg_server) -> str:
    """SQLAlchemy URL (postgresql+psycopg://postgres@/kiosk_test?host=<socket dir>) of an empty
    database on the session's throw-away cluster; pg_server.create_database(name) makes more."""
    return pg_server.create_database("kiosk_test")
