"""The store on both engines: database.url, what behaves the same on SQLite and PostgreSQL (types,
constraints, snapshots), and PostgreSQL's own faults (server down, refused login, read-only, locks,
deadlocks), its erasure (no template bytes left in the cluster's table files) and its migrations."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from cli_helpers import run_cli
from sqlalchemy.exc import IntegrityError
from thread_helpers import run_in_threads

from kiosk.config import ConfigError, RetentionSettings, Settings, door_problems, load_settings
from kiosk.errors import DatabaseReadOnly, DatabaseUnavailable, StoreError
from kiosk.store import (
    Database,
    add_enrolment_image,
    add_person,
    add_templates,
    all_templates,
    current_revision,
    erase_person,
    events_between,
    finish_pending_erasures,
    get_person,
    head_revision,
    list_audit,
    list_people,
    list_templates,
    open_database,
    purge_expired,
    read_snapshot,
    record_event,
    upgrade,
)
from kiosk.store import postgres as store_postgres

T0 = datetime(2026, 6, 15, 7, 0, tzinfo=UTC)
CENTRAL_URL = "postgresql+psycopg://kiosk@/kiosk?host=/run/postgresql"


# -- database.url in the settings ---------------------------------------------------------------


def _settings(database: dict[str, object]) -> Settings:
    return Settings.model_validate({"database": database})


def test_database_url_takes_postgresql_and_points_elsewhere_for_the_rest(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = _settings({"url": CENTRAL_URL, "path": "unused.db"})
    assert s.database.location == CENTRAL_URL and s.database.folder == tmp_path
    # files that live beside an SQLite file go to the working directory (the central's unit: /var/lib/kiosk)
    assert s.token_path == tmp_path / "door.token" and s.status_path == tmp_path / "status.json"
    assert any(p.startswith("database.url: the door service keeps") for p in door_problems(s))
    plain = _settings({"path": str(tmp_path / "var" / "k.db")})
    assert plain.database.location == tmp_path / "var" / "k.db" and plain.database.folder == tmp_path / "var"
    assert not any("database.url" in p for p in door_problems(plain))
    assert _settings({"url": "  "}).database.url is None  # empty: the SQLite file


@pytest.mark.parametrize(("url", "message"), [
    ("sqlite:///var/kiosk.db", "set with database.path"),
    ("sqlite:////abs/kiosk.db", "set with database.path"),
    ("postgresql://kiosk:s3cret@db/kiosk", "only postgresql+psycopg:// URLs"),
    ("mysql+pymysql://kiosk:s3cret@db/kiosk", "only postgresql+psycopg:// URLs"),
    ("postgresql+psycopg://kiosk:s3cret@db.example.org", "names no database"),
    ("/var/lib/kiosk/kiosk.db", "only postgresql+psycopg:// URLs"),
])
def test_a_url_the_kiosk_cannot_use_is_one_clear_config_error(tmp_path: Path, url: str, message: str) -> None:
    config = tmp_path / "k.yaml"
    config.write_text(f"role: central\ndatabase:\n  url: '{url}'\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config, environ={})
    text = str(info.value)
    assert f"{config}, line 3: database.url:" in text and message in text
    assert "s3cret" not in text and len(text.splitlines()) == 1
    # the store refuses the same URLs when handed one directly
    with pytest.raises(StoreError, match="database.url: "):
        open_database(url if "://" in url else f"x://{url}")


def test_offsite_copies_are_refused_with_a_url(tmp_path: Path) -> None:
    config = tmp_path / "k.yaml"
    config.write_text(f"database:\n  url: {CENTRAL_URL}\n  offsite_dir: /mnt/usb\n")
    with pytest.raises(ConfigError, match="off-site copies are made of the SQLite file.*pg_dump"):
        load_settings(config, environ={})


def test_cli_db_backup_on_postgresql_says_pg_dump_and_fails(tmp_path: Path) -> None:
    config = tmp_path / "central.yaml"
    config.write_text("role: central\ndatabase:\n  url: postgresql+psycopg://kiosk:s3cret@/kiosk?host=/nowhere\n")
    proc = run_cli("db", "backup", tmp_path / "copy.db", config=config)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "is PostgreSQL" in proc.stderr and "pg_dump" in proc.stderr and "s3cret" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "copy.db").exists()


# -- the same behaviour on both engines (the `db` fixture runs these on SQLite and PostgreSQL) ---------


def test_the_engine_is_known(db: Database) -> None:
    assert db.kind in ("sqlite", "postgresql") and not db.moved()
    if db.kind == "postgresql":
        assert db.path is None and "postgresql+psycopg://postgres@/kiosk_store" in db.where
        with pytest.raises(StoreError, match="PRAGMA.*SQLite's"):
            db.pragma("journal_mode")
        with db.engine.connect() as conn:  # sessions in UTC, the busy timeout as lock_timeout
            assert conn.exec_driver_sql("SHOW TimeZone").scalar() == "UTC"
            assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "5s"
    else:
        assert db.path is not None and db.where == str(db.path) and db.pragma("journal_mode") == "wal"


def test_types_round_trip_the_same(db: Database) -> None:
    """UTCDateTime (aware, microseconds), JSON (None is SQL NULL), LargeBinary (float32 bytes exact),
    Boolean, Float: what goes in comes out, on either engine."""
    at = datetime(2026, 6, 15, 7, 0, 1, 123456, tzinfo=UTC)
    ann = add_person(db, "E1", "Ann", expression_consent=True, actor="admin", now=at)
    rng = np.random.default_rng(7)
    emb = rng.normal(size=(3, 128)).astype(np.float32)
    add_templates(db, ann.id, emb, qualities=[1.5, None, 2.25], now=at)
    ids, matrix = all_templates(db)
    assert ids.tolist() == [ann.id] * 3 and matrix.tobytes() == emb.tobytes()  # bit for bit, in order
    assert [t.quality for t in list_templates(db, ann.id)] == [1.5, None, 2.25]
    scores = {"happy": 0.625, "neutral": 0.375}
    e1 = record_event(db, ann.id, at, "in", "k1", expression_label="happy", expression_scores=scores,
                      expression_confidence=0.625, match_distance=0.3125)
    record_event(db, ann.id, at + timedelta(hours=8), "out", "k1")
    got = events_between(db, at, at + timedelta(days=1))
    assert [e.id for e in got] == [e1.id, e1.id + 1]
    assert got[0].occurred_at == at and got[0].occurred_at.tzinfo is not None
    assert got[0].expression_scores == scores and got[1].expression_scores is None
    assert got[0].match_distance == 0.3125
    person = get_person(db, ann.id)
    assert person.created_at == at and person.expression_consent is True and person.active is True
    with db.engine.connect() as conn:  # None is SQL NULL, not the JSON text 'null'
        nulls = conn.execute(sa.text("SELECT count(*) FROM attendance_events WHERE expression_scores IS NULL"))
        assert nulls.scalar() == 1


def test_constraints_hold_the_same(db: Database) -> None:
    """Foreign keys, the CHECK constraints built from kiosk.vocabulary, unique keys: refused by the
    database itself, whatever the engine (raw SQL past the store's own checks)."""
    ann = add_person(db, "E1", "Ann", now=T0)
    bad = [
        ("INSERT INTO face_templates (person_id, embedding, created_at) VALUES (999, :b, :t)", "fk"),
        ("INSERT INTO attendance_events (person_id, occurred_at, kind, device_id) VALUES (:p, :t, 'sideways', 'k')",
         "ck_attendance_events"),
        ("INSERT INTO leave (person_id, first_day, last_day, kind, recorded_by, recorded_at) "
         "VALUES (:p, '2026-06-10', '2026-06-09', 'holiday', 'a', :t)", "ck_leave"),
        ("INSERT INTO leave (person_id, first_day, last_day, kind, recorded_by, recorded_at) "
         "VALUES (:p, '2026-06-10', '2026-06-10', 'party', 'a', :t)", "ck_leave"),
        ("INSERT INTO users (username, password_hash, role, created_at, active) VALUES ('x', 'h', 'root', :t, :a)",
         "ck_users"),
        ("INSERT INTO people (employee_id, name, active, created_at, expression_consent) "
         "VALUES ('E1', 'Again', :a, :t, :a)", "employee_id"),
    ]
    naive = T0.replace(tzinfo=None)
    for sql, name in bad:
        with pytest.raises(IntegrityError) as info, db.engine.begin() as conn:
            conn.execute(sa.text(sql), {"b": b"\x00" * 512, "t": naive, "p": ann.id, "a": True})
        assert name in str(info.value.orig).lower() or db.kind == "sqlite"  # SQLite names few constraints
    assert [p.name for p in list_people(db)] == ["Ann"]


def test_a_report_snapshot_holds_while_a_person_is_removed(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A report reads one snapshot: the person erased meanwhile (rows deleted, events too) is still
    whole in it; on PostgreSQL the table rewrite waits for the report and is finished afterwards."""
    monkeypatch.setattr(store_postgres, "VACUUM_LOCK_TIMEOUT_MS", 200)  # how long the rewrite waits
    ann = add_person(db, "E1", "Ann", now=T0)
    bob = add_person(db, "E2", "Bob", now=T0)
    add_templates(db, ann.id, np.ones((2, 128), np.float32), now=T0)
    record_event(db, ann.id, T0, "in", "k1")
    record_event(db, bob.id, T0, "in", "k1")
    # SQLite: the eraser's VACUUM checkpoint waits for the reader as long as its busy timeout, then
    # leaves the old pages to the next checkpoint (logged); a short one keeps this test short
    eraser = open_database(db.path, busy_timeout_ms=100) if db.path is not None else db
    with read_snapshot(db) as snap:
        assert [p.name for p in list_people(snap)] == ["Ann", "Bob"]  # reads people and face_templates
        result = erase_person(eraser, ann.id, actor="admin", keep_events=False)
        assert result.row_deleted and result.templates_deleted == 2
        assert result.files_pending is (db.kind == "postgresql")  # the rewrite waits for the report
        assert [p.name for p in list_people(snap)] == ["Ann", "Bob"]
        assert [e.person_id for e in events_between(snap, T0, T0 + timedelta(hours=1))] == [ann.id, bob.id]
        assert get_person(snap, ann.id).template_count == 2
    assert [p.name for p in list_people(db)] == ["Bob"]
    assert [e.person_id for e in events_between(db, T0, T0 + timedelta(hours=1))] == [bob.id]
    finished = finish_pending_erasures(db)  # PostgreSQL: the report has ended, the rewrite runs now
    assert [f.person_id for f in finished] == ([ann.id] if db.kind == "postgresql" else [])
    assert finish_pending_erasures(db) == []
    assert list_audit(db, target=f"person:{ann.id}")[0].action == (
        "person.erase_finished" if db.kind == "postgresql" else "person.erase")
    if eraser is not db:
        eraser.close()


# -- PostgreSQL: faults ----------------------------------------------------------------------------


def _dead_url(tmp_path: Path, database: str = "kiosk") -> str:
    return f"postgresql+psycopg://kiosk:s3cret@/{database}?host={tmp_path}"  # a socket dir with no server


def test_postgresql_down_is_unavailable_with_one_clear_message(tmp_path: Path) -> None:
    url = _dead_url(tmp_path)
    for call in (lambda: open_database(url), lambda: upgrade(url), lambda: current_revision(url)):
        with pytest.raises(DatabaseUnavailable) as info:
            call()
        text = str(info.value)
        assert "PostgreSQL is not answering" in text and "is the server running" in text
        assert "s3cret" not in text and "kiosk:***@" in text and len(text.splitlines()) == 1
    config = tmp_path / "central.yaml"
    config.write_text(f"role: central\ndatabase:\n  url: '{url}'\n")
    for args in (("db", "status"), ("db", "upgrade")):
        proc = run_cli(*args, config=config)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert "PostgreSQL is not answering" in proc.stderr and "s3cret" not in proc.stderr


def test_missing_database_and_refused_logins_say_so(pg_server) -> None:
    missing = pg_server.url("no_such_db")
    with pytest.raises(DatabaseUnavailable, match="database does not exist.*createdb"):
        open_database(missing)
    with pytest.raises(DatabaseUnavailable, match="refused the login.*pg_hba.conf"):
        open_database(pg_server.url("postgres").replace("postgres@", "nobody@"))
    # a role that must give a password (scram), given the wrong one: refused, the password never shown
    name = "kiosk_pw"
    conn = sa.create_engine(pg_server.url("postgres"), isolation_level="AUTOCOMMIT").connect()
    try:
        conn.exec_driver_sql(f"DROP ROLE IF EXISTS {name}")
        conn.exec_driver_sql(f"CREATE ROLE {name} LOGIN PASSWORD 'right-one'")
        hba = pg_server.data_dir / "pg_hba.conf"
        original = hba.read_text()
        hba.write_text(f"local all {name} scram-sha-256\n" + original)
        conn.exec_driver_sql("SELECT pg_reload_conf()")
        time.sleep(0.2)
        url = f"postgresql+psycopg://{name}:wrong-one@/postgres?host={pg_server.socket_dir}"
        with pytest.raises(DatabaseUnavailable) as info:
            open_database(url)
        assert "refused the login" in str(info.value) and "password authentication failed" in str(info.value)
        assert "wrong-one" not in str(info.value)
    finally:
        hba.write_text(original)
        conn.exec_driver_sql("SELECT pg_reload_conf()")
        conn.close()


def test_a_read_only_database_refuses_writes_and_keeps_what_it_holds(pg_server) -> None:
    url = pg_server.create_database("kiosk_read_only")
    db = open_database(url)
    add_person(db, "E1", "Ann", now=T0)
    db.close()
    admin = sa.create_engine(pg_server.url("postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql("ALTER DATABASE kiosk_read_only SET default_transaction_read_only = on")
    admin.dispose()
    db = open_database(url)
    try:
        with pytest.raises(DatabaseReadOnly, match="read-only.*nothing was changed"):
            add_person(db, "E2", "Bob", now=T0)
        with pytest.raises(DatabaseReadOnly), db.transaction() as tx:
            record_event(tx, 1, T0, "in", "k1")
        assert [p.name for p in list_people(db)] == ["Ann"]
    finally:
        db.close()
        pg_server.drop_database("kiosk_read_only")


def test_a_lock_held_past_the_busy_timeout_is_busy_and_changes_nothing(pg_server) -> None:
    url = pg_server.create_database("kiosk_locked")
    db = open_database(url, busy_timeout_ms=100)
    other = sa.create_engine(pg_server.url("kiosk_locked")).connect()
    try:
        other.exec_driver_sql("BEGIN")
        other.exec_driver_sql("LOCK TABLE people IN EXCLUSIVE MODE")  # another process is writing
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match="busy.*try again"), db.transaction() as tx:
            record_event(tx, None, T0, "unknown", "k1")
            add_person(tx, "E1", "Ann", now=T0)
        assert time.monotonic() - started < 3
        other.rollback()
        assert list_people(db) == [] and events_between(db, T0, T0 + timedelta(hours=1)) == []
    finally:
        other.close()
        db.close()
        pg_server.drop_database("kiosk_locked")


def test_a_deadlock_is_translated_and_the_other_side_goes_on(pg_server) -> None:
    """Two writers taking the same rows in opposite order: PostgreSQL cancels one; the store's side
    comes out as DatabaseUnavailable (try again) with nothing written, the other commits."""
    url = pg_server.create_database("kiosk_deadlock")
    db = open_database(url + "&options=-c%20deadlock_timeout%3D100")  # the given options are kept
    ann, bob = add_person(db, "E1", "Ann", now=T0), add_person(db, "E2", "Bob", now=T0)
    other = sa.create_engine(pg_server.url("kiosk_deadlock")).connect()
    errors: list[BaseException] = []
    try:
        other.exec_driver_sql("BEGIN")
        other.exec_driver_sql(f"UPDATE people SET name = 'Bob (other)' WHERE id = {bob.id}")

        def store_side() -> None:
            try:
                with db.transaction() as tx, tx.session() as s:
                    s.execute(sa.text("UPDATE people SET name = 'Ann (store)' WHERE id = :i"), {"i": ann.id})
                    s.execute(sa.text("UPDATE people SET name = 'Bob (store)' WHERE id = :i"), {"i": bob.id})
            except BaseException as exc:  # noqa: BLE001 - looked at below
                errors.append(exc)

        thread = threading.Thread(target=store_side)
        thread.start()
        time.sleep(0.05)  # the store's side waits for Bob first: its deadlock check runs first
        other.exec_driver_sql(f"UPDATE people SET name = 'Ann (other)' WHERE id = {ann.id}")
        thread.join(10)
        other.commit()
        assert len(errors) == 1 and isinstance(errors[0], DatabaseUnavailable)
        assert "conflicted with another one" in str(errors[0]) and "try again" in str(errors[0])
        assert sorted(p.name for p in list_people(db)) == ["Ann (other)", "Bob (other)"]
    finally:
        other.close()
        db.close()
        pg_server.drop_database("kiosk_deadlock")


@pytest.mark.slow
def test_a_server_stopped_mid_use_is_unavailable_then_back_without_a_restart(tmp_path: Path) -> None:
    """Stop PostgreSQL under an open Database: the next write is DatabaseUnavailable (nothing half
    written); start it again: the same Database works (stale connections are replaced)."""
    pytest.importorskip("psycopg")
    from pg_server import PgServer, PgUnavailable

    try:
        server = PgServer.start()
    except PgUnavailable as exc:
        pytest.skip(str(exc))
    try:
        url = server.create_database("kiosk_restart")
        admin = sa.create_engine(server.url("postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:  # the throw-away cluster's default is off; the kiosk relies on on
            conn.exec_driver_sql("ALTER DATABASE kiosk_restart SET synchronous_commit = on")
        admin.dispose()
        db = open_database(url)
        add_person(db, "E1", "Ann", now=T0)
        server._pg_ctl("stop", "-m", "immediate")  # the server dies (no shutdown checkpoint)
        with pytest.raises(DatabaseUnavailable, match="not answering|starting or stopping"):
            add_person(db, "E2", "Bob", now=T0)
        with pytest.raises(DatabaseUnavailable):
            list_people(db)
        server._pg_ctl("start", "-w", "-l", str(server.log_file))
        add_person(db, "E3", "Cy", now=T0)
        assert [p.employee_id for p in list_people(db)] == ["E1", "E3"]
        db.close()
    finally:
        server.stop()


# -- PostgreSQL: erasure reaches the table files ------------------------------------------------------


def _table_files(pg_server, db: Database) -> bytes:
    """Every file of db's database in the cluster's data dir, after a CHECKPOINT (dirty pages written)."""
    with db.engine.connect() as conn:
        conn.exec_driver_sql("CHECKPOINT")
        oid = conn.exec_driver_sql("SELECT oid FROM pg_database WHERE datname = current_database()").scalar()
    folder = pg_server.data_dir / "base" / str(oid)
    return b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())


@pytest.mark.parametrize("keep_events", [True, False])
def test_erasure_leaves_no_template_bytes_in_the_table_files(pg_server, pg_store, keep_events: bool) -> None:
    db = open_database(pg_store.empty())
    try:
        ann, bob = add_person(db, "E1", "Ann", expression_consent=True), add_person(db, "E2", "Bob")
        emb = (np.arange(128, dtype=np.float32) * 0.0123 + 0.777).astype(np.float32)
        photo = b"JPEG-OF-ANN" + np.random.default_rng(1).bytes(6000)  # incompressible: stored as given (TOAST)
        add_templates(db, ann.id, np.stack([emb, emb * 2]), sources=["ann.jpg", "ann2.jpg"])
        add_enrolment_image(db, ann.id, photo, source="ann.jpg")
        add_templates(db, bob.id, np.full(128, 0.25, np.float32))
        record_event(db, ann.id, T0, "in", "k1", expression_label="happy", match_distance=0.3)
        # pieces of the photo inside its TOAST chunks (about 2 kB each)
        pieces = [emb.tobytes()[:64], (emb * 2).tobytes()[-64:], photo[:64], photo[2100:2164], photo[4100:4164]]
        raw = _table_files(pg_server, db)
        assert all(piece in raw for piece in pieces)

        result = erase_person(db, ann.id, actor="admin", keep_events=keep_events)
        assert (result.templates_deleted, result.images_deleted, result.files_pending) == (2, 1, False)
        raw = _table_files(pg_server, db)
        assert not any(piece in raw for piece in pieces)
        assert np.full(128, 0.25, np.float32).tobytes() in raw  # Bob's template is still there
        assert all_templates(db)[0].tolist() == [bob.id]
    finally:
        db.close()


def test_the_retention_purge_rewrites_photo_storage(pg_server, pg_store) -> None:
    db = open_database(pg_store.empty())
    try:
        ann = add_person(db, "E1", "Ann", now=T0)
        photo = b"PHOTO-OF-ANN" + np.random.default_rng(2).bytes(5000)
        add_enrolment_image(db, ann.id, photo, now=T0)
        record_event(db, ann.id, T0, "in", "k1")
        pieces = [photo[:64], photo[2100:2164], photo[4100:4164]]
        assert all(piece in _table_files(pg_server, db) for piece in pieces)
        result = purge_expired(db, T0 + timedelta(hours=1), RetentionSettings(keep_enrolment_images=False))
        assert result.images_deleted == 1
        raw = _table_files(pg_server, db)
        assert not any(piece in raw for piece in pieces)
    finally:
        db.close()


def test_upgrades_from_two_processes_at_once_migrate_once(pg_server) -> None:
    """Two services starting on an empty database: the migration lock lets one create the schema;
    the other finds it at head."""
    url = pg_server.create_database("kiosk_race")
    done, raised = run_in_threads(lambda: upgrade(url), 3, 30)
    results: list[object] = [*done, *raised]
    try:
        befores = sorted(str(getattr(r, "before", r)) for r in results)
        assert befores == sorted(["None", head_revision(), head_revision()]), results
        assert current_revision(url) == head_revision()
    finally:
        pg_server.drop_database("kiosk_race")


def test_store_postgres_hides_passwords() -> None:
    assert store_postgres.display("postgresql+psycopg://kiosk:s3cret@db/kiosk") == \
        "postgresql+psycopg://kiosk:***@db/kiosk"
    assert store_postgres.is_url(CENTRAL_URL) and not store_postgres.is_url(Path("/var/kiosk.db"))
    with pytest.raises(StoreError, match="database.url: .*set with database.path"):
        open_database("sqlite:///kiosk.db")


def test_cli_db_upgrade_and_status_on_postgresql(pg_server, tmp_path: Path) -> None:
    url = pg_server.create_database("kiosk_cli")
    config = tmp_path / "central.yaml"
    config.write_text(f"role: central\ndatabase:\n  url: '{url}'\n")
    try:
        proc = run_cli("db", "status", config=config)
        assert proc.returncode == 0 and proc.stdout.strip() == \
            f"{url}: schema none (this version: {head_revision()})"
        proc = run_cli("db", "upgrade", config=config)
        assert proc.returncode == 0 and proc.stdout.strip() == f"{url}: schema none -> {head_revision()}"
        proc = run_cli("db", "upgrade", config=config)
        assert proc.returncode == 0 and proc.stdout.strip() == f"{url}: schema {head_revision()} is current"
        assert run_cli("db", "status", config=config).stdout.startswith(f"{url}: schema {head_revision()} ")
    finally:
        pg_server.drop_database("kiosk_cli")


def test_postgresql_rewrites_every_table_an_erasure_deletes_from() -> None:
    from kiosk.store import erasure

    assert tuple(table for table, _ in erasure._BIOMETRIC_TABLES) == store_postgres.ERASED_TABLES


def test_the_web_app_runs_on_postgresql(pg_store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The central's web app on PostgreSQL: sign-in, the status page (schema from database.url), the
    daily report (a snapshot), the secret key in the working directory (database.folder)."""
    import re

    from kiosk.clock import ManualClock
    from kiosk.store import open_from_settings
    from kiosk.web import create_app, create_user

    monkeypatch.chdir(tmp_path)
    settings = Settings.model_validate({"role": "central", "database": {"url": pg_store.empty()}})
    with open_from_settings(settings) as db:
        create_user(db, "alice", "admin-password-1", "admin")
        ann = add_person(db, "E1", "Ann", now=T0)
        record_event(db, ann.id, T0, "in", "k1")
        app = create_app(settings, db, clock=ManualClock(T0 + timedelta(hours=3)))
        app.testing = True
        client = app.test_client()
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True))
        assert token is not None
        signed_in = client.post("/login", data={"username": "alice", "password": "admin-password-1",
                                                "csrf_token": token.group(1)})
        assert signed_in.status_code == 302
        assert (tmp_path / "web_secret.key").is_file()
        status = client.get("/admin/status").get_data(as_text=True)
        assert f"<th>Database schema</th><td>{head_revision()}</td>" in status
        report = client.get("/?date=2026-06-15")
        assert report.status_code == 200 and "Ann" in report.get_data(as_text=True)


def test_one_batch_pushed_twice_at_once_is_stored_once_on_both_engines(db_settings: Settings) -> None:
    """The central's intake on either engine: two copies of one batch race (the door lost the first
    answer and pushed again); each (door, seq) is stored once and both answers hold the whole batch."""
    from kiosk import store

    with store.open_from_settings(db_settings) as db:
        door = store.add_door(db, "Main entrance", site="berlin", now=T0).door
        batch = [store.DoorEvent(seq=i, uuid=f"00000000-0000-0000-0000-{i:012d}", person_id=None, at=T0,
                                 kind="unknown") for i in range(1, 1001)]
        start = threading.Barrier(2)

        def push() -> int:
            with store.open_database(db_settings.database.location, busy_timeout_ms=30_000) as mine:
                start.wait()
                return store.ingest_events(mine, door.id, batch, now=T0).last_seq

        answers, errors = run_in_threads(push, 2, 60)
        assert errors == [] and answers == [1000, 1000]
        assert len(events_between(db, T0 - timedelta(seconds=1), T0 + timedelta(seconds=1))) == 1000
        assert store.ingest_events(db, door.id, batch[:10], now=T0).last_seq == 1000  # a repeat: no error
