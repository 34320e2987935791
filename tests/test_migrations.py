"""Schema migrations: create, no-op at head, a second revision on a filled DB, refusals."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

import kiosk.store.migrate as store_migrate
from kiosk.errors import DatabaseOutdated, DatabaseTooNew, NotAKioskDatabase, StoreError
from kiosk.store import (
    add_person,
    add_templates,
    all_templates,
    current_revision,
    head_revision,
    list_people,
    list_templates,
    open_database,
    record_event,
    templates_not_made_by,
    upgrade,
)
from kiosk.store import sqlite as store_sqlite
from kiosk.store.db import Database
from kiosk.store.models import Base

T0 = datetime(2026, 6, 15, 7, 0, tzinfo=UTC)

SECOND_REVISION = '''
"""Test-only next revision: adds people.note (exercises SQLite batch mode)."""
import sqlalchemy as sa
from alembic import op

revision = "0099"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("people") as batch:
        batch.add_column(sa.Column("note", sa.String(100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("people") as batch:
        batch.drop_column("note")
'''


def _write_sql(path: Path, *statements: str | tuple[str, tuple[object, ...]]) -> None:
    """Run statements (SQL text, or (SQL, parameters)) on the file with plain sqlite3; commit, close."""
    con = sqlite3.connect(path)
    try:
        for statement in statements:
            sql, params = (statement, ()) if isinstance(statement, str) else statement
            con.execute(sql, params)
        con.commit()
    finally:
        con.close()


def _fill(path: Path) -> None:
    db = open_database(path)
    p = add_person(db, "E1", "Ann", now=T0)
    add_templates(db, p.id, np.ones((2, 128), np.float32), now=T0)
    record_event(db, p.id, T0, "in", "kiosk-1")
    db.close()


@pytest.fixture
def two_revisions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped migrations plus a second revision, used as the code's head."""
    mig = tmp_path / "migrations"
    shutil.copytree(store_migrate.MIGRATIONS_DIR, mig, ignore=shutil.ignore_patterns("__pycache__"))
    (mig / "versions" / "0099_note.py").write_text(SECOND_REVISION)
    monkeypatch.setattr(store_migrate, "MIGRATIONS_DIR", mig)
    return mig


def test_empty_database_is_created_at_head(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "kiosk.db"
    result = upgrade(path)
    assert result.before is None and result.after == head_revision() and result.backup is None
    assert current_revision(path) == head_revision() == "0009"
    assert list(tmp_path.glob("sub/*.bak-*")) == []


def test_models_match_migrations(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.db"
    upgrade(path)
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_upgrade_filled_db_at_head_is_a_noop(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.db"
    _fill(path)
    before = path.read_bytes()
    result = upgrade(path, backup=True)
    assert not result.changed and result.backup is None
    assert list(tmp_path.glob("*.bak-*")) == []
    assert path.read_bytes() == before
    db = open_database(path)
    assert [p.name for p in list_people(db)] == ["Ann"]
    db.close()


def test_second_revision_on_filled_db_backs_up_and_keeps_data(
    tmp_path: Path, two_revisions: Path
) -> None:
    path = tmp_path / "kiosk.db"
    upgrade(path, revision="0009")
    with pytest.raises(DatabaseOutdated, match="kiosk db upgrade"):
        open_database(path)
    # open_database refuses a DB that is behind, so fill it through the bare engine setup
    engine = store_sqlite.make_engine(path, 1000, foreign_keys=True)
    db = Database(path, engine)
    p = add_person(db, "E1", "Ann", now=T0)
    add_templates(db, p.id, np.ones((2, 128), np.float32), now=T0)
    record_event(db, p.id, T0, "in", "kiosk-1")
    db.close()

    results = [upgrade(path, backups_kept=2)]
    assert results[0].before == "0009" and results[0].after == "0099"
    assert results[0].backup is not None and results[0].backup.exists()
    assert current_revision(results[0].backup) == "0009"  # the backup is the old DB
    db = open_database(path)
    ids, matrix = all_templates(db)  # batch copy of `people` did not cascade to templates
    assert ids.tolist() == [p.id, p.id] and matrix.shape == (2, 128)
    assert [x.name for x in list_people(db)] == ["Ann"]
    db.close()
    con = sqlite3.connect(path)
    assert "note" in [r[1] for r in con.execute("PRAGMA table_info(people)")]
    assert con.execute("SELECT count(*) FROM attendance_events").fetchone() == (1,)
    con.close()


def test_backups_are_pruned(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.db"
    _fill(path)
    made = [store_sqlite.backup_database(path, 2, now=datetime(2026, 1, d, tzinfo=UTC))
            for d in (1, 2, 3)]
    left = sorted(p.name for p in tmp_path.glob("kiosk.db.bak-*"))
    assert left == [made[1].name, made[2].name]  # type: ignore[union-attr]
    assert store_sqlite.backup_database(path, 0) is None


def test_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.db"
    _fill(path)
    _write_sql(path, "UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(DatabaseTooNew, match="9999"):
        open_database(path)
    with pytest.raises(DatabaseTooNew):
        upgrade(path)


def test_foreign_files_are_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    _write_sql(other, "CREATE TABLE stuff (x)")
    with pytest.raises(NotAKioskDatabase, match="without a kiosk schema"):
        upgrade(other)
    text = tmp_path / "notes.db"
    text.write_text("hello, this is not a database at all")
    with pytest.raises(NotAKioskDatabase, match="not an SQLite database"):
        open_database(text)
    assert text.read_text() == "hello, this is not a database at all"


def _break_second_revision(two_revisions: Path) -> None:
    """Make 0099 delete every template and then fail (a function that does not exist)."""
    broken = SECOND_REVISION.replace(
        'batch.add_column(sa.Column("note", sa.String(100), nullable=True))',
        'batch.add_column(sa.Column("note", sa.String(100), nullable=True))\n'
        '    op.execute("DELETE FROM face_templates")\n'
        '    op.execute("SELECT no_such_function()")',
    )
    (two_revisions / "versions" / "0099_note.py").write_text(broken)


def test_failed_migration_changes_nothing(tmp_path: Path, two_revisions: Path) -> None:
    _break_second_revision(two_revisions)
    path = tmp_path / "kiosk.db"
    upgrade(path, revision="0009")
    db = Database(path, store_sqlite.make_engine(path, 1000, foreign_keys=True))
    p = add_person(db, "E1", "Ann", now=T0)
    add_templates(db, p.id, np.ones((2, 128), np.float32), now=T0)
    db.close()
    with pytest.raises(StoreError, match="nothing changed.*no_such_function"):
        upgrade(path)
    assert current_revision(path) == "0009"
    con = sqlite3.connect(path)
    assert con.execute("SELECT count(*) FROM face_templates").fetchone() == (2,)
    assert "note" not in [r[1] for r in con.execute("PRAGMA table_info(people)")]
    con.close()


def test_0002_records_template_embedder_and_keeps_old_templates(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.db"
    upgrade(path, revision="0001")
    _write_sql(path,  # a database filled by the 0001 code: raw rows, no embedder column
               "INSERT INTO people (id, employee_id, name, active, created_at, expression_consent) "
               "VALUES (1, 'E1', 'Ann', 1, '2026-06-15 07:00:00', 0)",
               ("INSERT INTO face_templates (person_id, embedding, created_at) VALUES (1, ?, ?)",
                (np.ones(128, "<f4").tobytes(), "2026-06-15 07:00:00")))
    result = upgrade(path, backups_kept=1)
    assert (result.before, result.after) == ("0001", "0009") and result.backup is not None
    db = open_database(path)
    ids, matrix = all_templates(db)
    assert ids.tolist() == [1] and np.allclose(matrix, 1.0)
    assert list_templates(db, 1)[0].embedder is None
    assert templates_not_made_by(db, "any") == {1: 1}  # unknown counts as made otherwise
    add_templates(db, 1, np.zeros((1, 128), np.float32), embedder="today", replace=True)
    assert list_templates(db, 1)[0].embedder == "today"
    assert templates_not_made_by(db, "today") == {}
    db.close()


def test_revisions_read_from_file_names_match_alembics_view():
    """db.head_revision() reads migration file names (no Alembic import at start-up); it must
    agree with Alembic's own chain, which is one line from 0001 to the head."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(store_migrate.alembic_config())
    assert store_migrate.head_revision() == script.get_current_head()
    assert store_migrate.known_revisions() == {rev.revision for rev in script.walk_revisions()}


def test_0008_adds_doors_and_door_sequences_keeping_events(tmp_path: Path) -> None:
    """A 0007 database with events upgrades: the events stay (door_seq NULL, several per device),
    and (device_id, door_seq) is unique from then on."""
    from sqlalchemy.exc import IntegrityError

    path = tmp_path / "kiosk.db"
    upgrade(path, revision="0007")
    con = sqlite3.connect(path)
    con.execute("INSERT INTO people (id, employee_id, name, active, created_at, expression_consent) "
                "VALUES (1, 'E1', 'Ann', 1, '2026-06-15 07:00:00', 0)")
    for minute in (0, 1):
        con.execute("INSERT INTO attendance_events (person_id, occurred_at, kind, device_id) "
                    f"VALUES (1, '2026-06-15 07:0{minute}:00', 'in', 'kiosk-1')")
    con.commit()
    con.close()
    result = upgrade(path, backups_kept=1)
    assert (result.before, result.after) == ("0007", "0009")
    con = sqlite3.connect(path)
    assert con.execute("SELECT count(*), count(door_seq), count(event_uuid) FROM attendance_events").fetchone() \
        == (2, 0, 0)
    assert {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} >= {
        "doors", "gallery_changes", "sync_state"}
    con.close()
    db = open_database(path)
    with db.session() as s:
        from kiosk.store.models import AttendanceEvent

        s.add(AttendanceEvent(person_id=1, occurred_at=T0, kind="in", device_id="door-a", door_seq=1))
        s.add(AttendanceEvent(person_id=1, occurred_at=T0, kind="in", device_id="door-b", door_seq=1))
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(AttendanceEvent(person_id=1, occurred_at=T0, kind="out", device_id="door-a", door_seq=1))
    db.close()

# -- PostgreSQL (the central server): the same migrations, the same schema ------------------------------


# the revision SECOND_REVISION (the test-only next one) builds on: the shipped head
BASE = SECOND_REVISION.split('down_revision = "', 1)[1].split('"', 1)[0]


@pytest.fixture
def pg_db(pg_server, request: pytest.FixtureRequest):
    """(url, name) of a new empty database on the session's PostgreSQL cluster, dropped afterwards."""
    name = "mig_" + request.node.name.lower().replace("[", "_").replace("]", "").replace("-", "_")[:50]
    url = pg_server.create_database(name)
    yield url, name
    pg_server.drop_database(name)


def _schema_names(engine_url: str) -> dict[str, dict[str, object]]:
    """{table: {pk, fks, indexes, uniques, checks: names; columns: {name: (type family, nullable)}}}."""
    engine = create_engine(engine_url)
    families = {"INTEGER": "int", "BIGINT": "int", "VARCHAR": "text", "TEXT": "text", "FLOAT": "float",
                "DOUBLE_PRECISION": "float", "DATETIME": "time", "TIMESTAMP": "time", "DATE": "date",
                "BOOLEAN": "bool", "BLOB": "bytes", "BYTEA": "bytes", "JSON": "json"}
    out: dict[str, dict[str, object]] = {}
    with engine.connect() as conn:
        insp = sa.inspect(conn)
        for table in insp.get_table_names():
            if table == "alembic_version":
                continue
            out[table] = {
                "pk": insp.get_pk_constraint(table)["name"],
                "fks": sorted((f["name"], f["referred_table"], (f.get("options") or {}).get("ondelete"))
                              for f in insp.get_foreign_keys(table)),
                "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                                  for i in insp.get_indexes(table)
                                  if not i.get("duplicates_constraint")),  # PostgreSQL: a unique key's index
                "uniques": sorted(u["name"] for u in insp.get_unique_constraints(table)),
                "checks": sorted(c["name"] for c in insp.get_check_constraints(table)),
                "columns": {c["name"]: (families[type(c["type"]).__name__.upper()], c["nullable"])
                            for c in insp.get_columns(table)},
            }
    engine.dispose()
    return out


def test_postgresql_migrates_from_empty_to_head_one_revision_at_a_time(pg_db) -> None:
    url, _ = pg_db
    revisions = sorted(store_migrate.known_revisions())
    for rev in revisions:
        result = upgrade(url, revision=rev)
        assert result.after == rev and result.backup is None  # PostgreSQL: pg_dump is the admin's
        assert current_revision(url) == rev
    assert current_revision(url) == head_revision()
    assert not upgrade(url).changed  # at head: nothing to do


def test_models_match_head_on_postgresql(pg_db) -> None:
    url, _ = pg_db
    upgrade(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert diff == []


def test_both_engines_get_the_same_schema_names_and_types(tmp_path: Path, pg_db) -> None:
    """The naming convention, constraint names, indexes, ON DELETE rules, column types and NULL rules
    come out the same from the same migrations on SQLite and PostgreSQL."""
    url, _ = pg_db
    upgrade(url)
    upgrade(tmp_path / "kiosk.db")
    on_pg, on_sqlite = _schema_names(url), _schema_names(f"sqlite:///{tmp_path / 'kiosk.db'}")
    assert sorted(on_pg) == sorted(on_sqlite)
    con = sqlite3.connect(tmp_path / "kiosk.db")
    autoincrement = {name for name, sql in con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
                     if "AUTOINCREMENT" in (sql or "")}
    con.close()
    for table in on_pg:
        if table in autoincrement:  # SQLite's AUTOINCREMENT key is a column clause: it keeps no name
            assert (on_pg[table]["pk"], on_sqlite[table]["pk"]) == (f"pk_{table}", None)
            on_sqlite[table]["pk"] = on_pg[table]["pk"]
        assert on_pg[table] == on_sqlite[table], table
    # the migrations name their CHECK constraints in full and Alembic applies the naming convention
    # again (ck_<table>_<name>): the same doubled name on both engines, so later migrations find them
    assert on_pg["attendance_events"]["checks"] == ["ck_attendance_events_ck_attendance_events_kind"]
    assert on_pg["leave"]["checks"] == ["ck_leave_ck_leave_days", "ck_leave_ck_leave_kind"]


def test_postgresql_refuses_what_it_must_not_touch(pg_db) -> None:
    url, _ = pg_db
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE stuff (x integer)")
    with pytest.raises(NotAKioskDatabase, match="PostgreSQL database without a kiosk schema version.*stuff"):
        upgrade(url)
    with pytest.raises(NotAKioskDatabase):
        open_database(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE stuff")
    upgrade(url, revision=sorted(store_migrate.known_revisions())[-2])
    with pytest.raises(DatabaseOutdated, match="kiosk db upgrade.*pg_dump"):
        open_database(url)
    upgrade(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(DatabaseTooNew, match="9999"):
        open_database(url)
    with pytest.raises(DatabaseTooNew):
        upgrade(url)
    engine.dispose()
    with pytest.raises(StoreError, match="no kiosk database"):
        open_database(url.replace(url.split("/")[3].split("?")[0], "postgres"), create=False)


def test_second_revision_on_a_filled_postgresql_database_keeps_data(pg_db, two_revisions: Path) -> None:
    url, _ = pg_db
    upgrade(url, revision=BASE)
    with pytest.raises(DatabaseOutdated):
        open_database(url)
    from kiosk.store import postgres as store_postgres

    db = Database(None, store_postgres.make_engine(url, 1000), store_postgres.PostgresOps(url))
    p = add_person(db, "E1", "Ann", now=T0)
    add_templates(db, p.id, np.ones((2, 128), np.float32), now=T0)
    record_event(db, p.id, T0, "in", "kiosk-1")
    db.close()
    result = upgrade(url)
    assert (result.before, result.after, result.backup) == (BASE, "0099", None)
    db = open_database(url)
    ids, matrix = all_templates(db)
    assert ids.tolist() == [p.id, p.id] and matrix.shape == (2, 128)
    db.close()
    engine = create_engine(url)
    with engine.connect() as conn:
        assert "note" in [c["name"] for c in sa.inspect(conn).get_columns("people")]
    engine.dispose()


def test_a_failed_postgresql_migration_changes_nothing(pg_db, two_revisions: Path) -> None:
    _break_second_revision(two_revisions)
    url, _ = pg_db
    upgrade(url, revision=BASE)
    from kiosk.store import postgres as store_postgres

    db = Database(None, store_postgres.make_engine(url, 1000), store_postgres.PostgresOps(url))
    p = add_person(db, "E1", "Ann", now=T0)
    add_templates(db, p.id, np.ones((2, 128), np.float32), now=T0)
    db.close()
    with pytest.raises(StoreError, match="nothing changed.*no_such_function"):
        upgrade(url)
    assert current_revision(url) == BASE
    engine = create_engine(url)
    with engine.connect() as conn:  # DDL and DELETE rolled back together
        assert conn.exec_driver_sql("SELECT count(*) FROM face_templates").scalar() == 2
        assert "note" not in [c["name"] for c in sa.inspect(conn).get_columns("people")]
    engine.dispose()
