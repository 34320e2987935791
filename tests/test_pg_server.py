"""tests/pg_server.py: the throw-away PostgreSQL cluster behind the pg_url fixture (real server, real
socket), its skip when PostgreSQL is absent, and its clean-up when the test process is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pg_server import PgServer, find_pg_bin

TESTS = Path(__file__).resolve().parent


def test_pg_url_connects_with_psycopg_and_sqlalchemy(pg_url: str) -> None:
    import psycopg
    import sqlalchemy as sa

    assert pg_url.startswith("postgresql+psycopg://postgres@/kiosk_test?host=/tmp/kiosk-pg-")
    engine = sa.create_engine(pg_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE probe (id serial PRIMARY KEY, name text NOT NULL)"))
            conn.execute(sa.text("INSERT INTO probe (name) VALUES ('Zoë'), ('ada')"))
        with engine.connect() as conn:
            names = conn.execute(sa.text("SELECT name FROM probe ORDER BY name")).scalars().all()
            settings = conn.execute(sa.text(
                "SELECT current_setting('server_encoding'), current_setting('fsync'), "
                "current_setting('lc_collate'), current_setting('listen_addresses')")).one()
    finally:
        engine.dispose()
    assert names == ["Zoë", "ada"]  # C.UTF-8: codepoint order, as SQLite's default BINARY collation
    assert tuple(settings) == ("UTF8", "off", "C.UTF-8", "")  # no TCP port: nothing to collide on
    # psycopg itself, from the same URL's socket folder
    host = pg_url.split("host=", 1)[1]
    with psycopg.connect(host=host, user="postgres", dbname="kiosk_test") as conn:
        assert conn.execute("SELECT count(*) FROM probe").fetchone() == (2,)
        conn.execute("DROP TABLE probe")


def test_more_databases_on_the_same_cluster(pg_server: PgServer) -> None:
    import psycopg

    url = pg_server.create_database("kiosk_second")
    assert url.endswith(f"/kiosk_second?host={pg_server.socket_dir}")
    conn = psycopg.connect(pg_server.conninfo("kiosk_second"), autocommit=True)
    try:
        conn.execute("SELECT 1")
        pg_server.drop_database("kiosk_second")  # with a connection still open: it is ended
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    finally:
        conn.close()
    with pytest.raises(psycopg.OperationalError, match="kiosk_second"):
        psycopg.connect(pg_server.conninfo("kiosk_second"))
    with pytest.raises(ValueError, match="lower-case"):
        pg_server.create_database("x; DROP DATABASE postgres")


def test_not_installed_is_a_skip_with_the_reason(tmp_path: Path) -> None:
    assert find_pg_bin({"KIOSK_PG_BIN": str(tmp_path)}) is None
    assert find_pg_bin({"PATH": str(tmp_path)}, debian=tmp_path / "none") is None
    (tmp_path / "test_needs_pg.py").write_text("def test_it(pg_url):\n    assert pg_url\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "conftest",
         "-c", os.devnull, "--rootdir", str(tmp_path), str(tmp_path / "test_needs_pg.py")],
        capture_output=True, text=True, timeout=120, cwd=TESTS,
        env={**os.environ, "KIOSK_PG_BIN": str(tmp_path / "nowhere")}, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout
    assert "PostgreSQL is not installed" in result.stdout and "apt-get install postgresql" in result.stdout


@pytest.mark.slow
def test_a_killed_test_process_leaves_no_server_behind() -> None:
    if find_pg_bin() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    code = ("import os, signal, sys; sys.path.insert(0, sys.argv[1]); from pg_server import PgServer; "
            "s = PgServer.start(); print(s.folder, s.data_dir / 'postmaster.pid', flush=True); "
            "os.kill(os.getpid(), signal.SIGKILL)")
    result = subprocess.run([sys.executable, "-c", code, str(TESTS)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == -signal.SIGKILL, result.stderr
    folder, pid_file = (Path(p) for p in result.stdout.split())
    # the pid file is gone with the folder, so look for the postmaster by its data dir instead
    deadline = time.monotonic() + 15
    while folder.exists() or _postmasters(folder):
        assert time.monotonic() < deadline, f"{folder} or its server is still there"
        time.sleep(0.2)
    assert not pid_file.exists()


def _postmasters(folder: Path) -> list[int]:
    """Pids of processes whose command line names FOLDER (the orphaned server, if any)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if str(folder).encode() in cmdline and b"postgres" in cmdline:
            found.append(int(proc.name))
    return found
