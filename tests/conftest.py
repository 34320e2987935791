"""Shared test fixtures: paths to committed test data, the optional large data sets, a fresh database
(on SQLite, and on PostgreSQL in the store's test modules), the throw-away PostgreSQL cluster."""

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


# -- a fresh database on either engine -----------------------------------------------------------

ENGINES = ("sqlite", "postgresql")
# Modules whose tests taking `db`, `db_settings` or `enrol_env` run once per engine (test ids
# [sqlite] and [postgresql]; the PostgreSQL run skips with the reason when the server cannot start).
# Elsewhere these fixtures are SQLite files only.
BOTH_ENGINES = {"test_store", "test_leave", "test_corrections", "test_enrolment", "test_store_engines",
                "test_gallery_feed", "test_ingest_pairing", "test_correction_pairing"}
ENGINE_FIXTURES = ("db", "db_settings", "enrol_env")
# Tests of those modules that are about SQLite files (WAL, PRAGMAs, locks, the file's bytes): their
# PostgreSQL run is skipped with this reason. A new test can say so with @pytest.mark.sqlite_only("why").
SQLITE_ONLY = {
    "test_store.py::test_pragmas": "SQLite's PRAGMAs (PostgreSQL's settings: test_store_engines.py)",
    "test_store.py::test_foreign_keys_are_enforced": "raw SQLite SQL (x'00' blob literal); "
                                                     "PostgreSQL: test_store_engines.py",
    "test_store.py::test_templates_round_trip": "opens a second SQLite file beside the first "
                                                "(PostgreSQL: test_store_engines.py)",
    "test_store.py::test_record_event_is_durable_and_respects_consent": "reads the file with sqlite3",
    "test_store.py::test_erase_person_leaves_no_biometric_bytes": "reads the SQLite file's bytes "
                                                                  "(PostgreSQL: test_store_engines.py "
                                                                  "reads the cluster's table files)",
    "test_gallery_feed.py::test_versions_are_never_handed_out_twice": "reads the file with sqlite3",
    "test_gallery_feed.py::test_a_rolled_back_enrolment_leaves_no_change": (
        "counts exact versions after a rollback; a PostgreSQL sequence skips the rolled-back number "
        "(versions only grow, gaps are allowed)"),
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run the store modules' database tests on both engines (see BOTH_ENGINES)."""
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    used = [name for name in ENGINE_FIXTURES if name in metafunc.fixturenames]
    if module in BOTH_ENGINES and used and "db_engine" in metafunc.fixturenames:
        # parametrise the outermost one; the others take its engine through request
        metafunc.parametrize("db_engine", [pytest.param(e, marks=getattr(pytest.mark, e)) for e in ENGINES],
                             indirect=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that needs the PostgreSQL server carries the `postgresql` marker (-m "not postgresql")."""
    for item in items:
        if {"pg_server", "pg_url", "pg_store"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgresql)


@pytest.fixture
def db_engine(request: pytest.FixtureRequest) -> str:
    """The engine a test's database is on: "sqlite" (the default), or "postgresql" (parametrised in
    BOTH_ENGINES modules; skipped for SQLite-only tests)."""
    engine = getattr(request, "param", "sqlite")
    if engine == "postgresql":
        marker = request.node.get_closest_marker("sqlite_only")
        reason = (marker.args[0] if marker and marker.args else None) or \
            SQLITE_ONLY.get(f"{request.node.path.name}::{request.node.originalname}")
        if marker is not None or reason is not None:
            pytest.skip(f"SQLite only: {reason or 'about the SQLite file'}")
    return str(engine)


class PgStore:
    """One PostgreSQL database at head for the store's tests, emptied (TRUNCATE, ids from 1) before each."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        from kiosk.store import upgrade

        self.url = url
        upgrade(url)
        self.engine = sa.create_engine(url, connect_args={"options": "-c lock_timeout=5000"})
        with self.engine.connect() as conn:
            names = sa.inspect(conn).get_table_names()
        self.tables = ", ".join(f'"{t}"' for t in sorted(names) if t != "alembic_version")

    def empty(self) -> str:
        """Delete every row (the schema stays at head) and return the URL; a test that left a
        transaction open fails here after 5 s instead of hanging."""
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f"TRUNCATE {self.tables} RESTART IDENTITY CASCADE")
        return self.url


@pytest.fixture(scope="session")
def pg_store(pg_server):
    """The store tests' PostgreSQL database (kiosk_store on the session's cluster), at head."""
    store = PgStore(pg_server.create_database("kiosk_store"))
    yield store
    store.engine.dispose()


@pytest.fixture
def db_settings(db_engine: str, tmp_path: Path, request: pytest.FixtureRequest):
    """Settings whose database is fresh and empty at head: a new SQLite file in tmp_path, or (engine
    postgresql) the emptied pg_store database, with the working directory tmp_path (database.folder)."""
    from kiosk.config import Settings

    if db_engine == "postgresql":
        url = request.getfixturevalue("pg_store").empty()
        request.getfixturevalue("monkeypatch").chdir(tmp_path)
        return Settings.model_validate({"database": {"url": url}})
    return Settings.model_validate({"database": {"path": str(tmp_path / "kiosk.db")}})


@pytest.fixture
def db(db_settings):
    """A fresh kiosk database at head (a real SQLite file in tmp_path, or PostgreSQL, see db_settings),
    closed afterwards."""
    from kiosk.store import open_database

    database = open_database(db_settings.database.location)
    yield database
    database.close()


@pytest.fixture(scope="session")
def dlib_analyzer():
    """The real dlib face analyzer with default settings, loaded once per test run."""
    from kiosk.vision.faces import make_analyzer

    return make_analyzer()


@pytest.fixture
def enrol_env(db_settings):
    """(Settings with a fresh database, that database open via open_from_settings); closed afterwards.
    On both engines in the BOTH_ENGINES modules (test_enrolment), else an SQLite file in tmp_path."""
    from kiosk import store

    with store.open_from_settings(db_settings) as database:
        yield db_settings, database


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
