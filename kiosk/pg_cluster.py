"""A throw-away PostgreSQL cluster (tests, `kiosk bench central`): initdb into a temp dir, a private
Unix socket, fsync off (on with durable=True).

    with PgServer.start() as server:            # or find_pg_bin() is None: PostgreSQL not installed
        url = server.create_database("kiosk_test")   # postgresql+psycopg://postgres@/kiosk_test?host=...

The cluster listens on no TCP port at all (listen_addresses=''), only on a socket in its own temp
dir, so several test runs on one machine never collide. Run as root, initdb and the server run as
the `postgres` user (PostgreSQL refuses root). A watcher process stops the cluster and deletes the
dir when the test process dies without cleaning up (kill -9), so no orphaned server is left behind.
"""

from __future__ import annotations

import logging
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

logger = logging.getLogger(__name__)

BINARIES = ("initdb", "pg_ctl", "postgres")
DEBIAN_PG = Path("/usr/lib/postgresql")  # Debian's postgresql-<version> packages: <version>/bin
SUPERUSER = "postgres"  # the cluster's superuser role, whoever runs it
# Settings for speed over safety: a crash loses the cluster, which is thrown away anyway.
UNSAFE = ("fsync", "synchronous_commit", "full_page_writes")  # left at PostgreSQL's default with durable=True
SETTINGS = {
    "listen_addresses": "''",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",  # 50 simulated doors plus the central's pool and the tests
    "shared_buffers": "'128MB'",
    "log_min_messages": "warning",
    "timezone": "'UTC'",
}
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

# Run by the watcher: wait for the test process to go away, then stop the cluster and delete it.
_WATCHER = """
import os, shutil, subprocess, sys, time
pid, pg_ctl, data, folder, user = sys.argv[1:6]
uid = int(user) if user else None
while True:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        break
    except PermissionError:
        pass
    if not os.path.isdir(data):
        sys.exit(0)
    time.sleep(1.0)
subprocess.run([pg_ctl, "stop", "-D", data, "-m", "immediate", "-s"], user=uid, check=False,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
shutil.rmtree(folder, ignore_errors=True)
"""


class PgUnavailable(RuntimeError):
    """PostgreSQL's server binaries are not installed (the reason names where they were looked for)."""


def find_pg_bin(environ: Mapping[str, str] | None = None, debian: Path = DEBIAN_PG) -> Path | None:
    """The folder holding initdb, pg_ctl and postgres: $KIOSK_PG_BIN when set (only there), else
    Debian's newest /usr/lib/postgresql/<version>/bin, else PATH; None when not installed."""
    env = os.environ if environ is None else environ
    if env.get("KIOSK_PG_BIN"):
        chosen = Path(env["KIOSK_PG_BIN"])
        return chosen if all(os.access(chosen / name, os.X_OK) for name in BINARIES) else None
    candidates: list[Path] = []
    if debian.is_dir():
        versions = [p for p in debian.iterdir() if p.name.isdigit()]
        candidates += [p / "bin" for p in sorted(versions, key=lambda p: int(p.name), reverse=True)]
    on_path = shutil.which("pg_ctl", path=env.get("PATH", os.defpath))
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if all(os.access(folder / name, os.X_OK) for name in BINARIES):
            return folder
    return None


def _run_as() -> int | None:
    """The uid to run the cluster as: the postgres user's when we are root, else None (ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SUPERUSER).pw_uid
    except KeyError:
        raise RuntimeError(
            "running as root, and PostgreSQL refuses to run as root; there is no 'postgres' user to "
            "run it as (Debian's postgresql package creates one)") from None


@dataclass
class PgServer:
    """A running throw-away cluster: its binaries, temp dir, data dir and Unix socket dir."""

    bin_dir: Path
    folder: Path  # the temp dir: socket, log, and data/ below it
    uid: int | None  # the user the server runs as (None: this process's)
    watcher: subprocess.Popen[bytes] | None = None
    durable: bool = False  # fsync and synchronous commits on (see start)
    databases: list[str] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self.folder / "data"

    @property
    def socket_dir(self) -> Path:
        """The folder holding the server's socket .s.PGSQL.5432 (the libpq `host`)."""
        return self.folder

    @property
    def log_file(self) -> Path:
        """The server's log."""
        return self.folder / "server.log"

    @classmethod
    def start(cls, bin_dir: Path | None = None, timeout_s: float = 60.0, *, durable: bool = False) -> PgServer:
        """initdb into a new temp dir and start the server on a private socket; raise PgUnavailable
        when the binaries are missing, RuntimeError (with the server log) when it does not start.
        durable: keep fsync, synchronous_commit and full_page_writes on, as a real server has them
        (a benchmark's commits then cost what they cost in production); else all off (tests)."""
        bin_dir = bin_dir or find_pg_bin()
        if bin_dir is None:
            raise PgUnavailable(
                "PostgreSQL is not installed (no initdb, pg_ctl and postgres in "
                f"{os.environ.get('KIOSK_PG_BIN') or '/usr/lib/postgresql/*/bin or on PATH'}): "
                "apt-get install postgresql, or bash deploy/dev-setup.sh --test as root")
        uid = _run_as()
        # Short, in /tmp: a socket path must stay under ~107 bytes.
        folder = Path(tempfile.mkdtemp(prefix="kiosk-pg-", dir="/tmp"))
        server = cls(bin_dir=bin_dir, folder=folder, uid=uid, durable=durable)
        try:
            if uid is not None:
                os.chown(folder, uid, -1)
            folder.chmod(0o755)  # the socket: any local user may connect (trust, throw-away)
            server._initdb()
            server._pg_ctl("start", "-w", "-t", str(int(timeout_s)), "-l", str(server.log_file))
            server.watcher = server._watch()
            server._wait_ready(timeout_s)
        except BaseException:
            server.stop()
            raise
        return server

    def _cmd(self, args: list[str], timeout_s: float = 120.0) -> None:
        """Run a PostgreSQL program as the cluster's user; raise RuntimeError with its output on failure."""
        result = subprocess.run(args, user=self.uid, capture_output=True, text=True, timeout=timeout_s,
                                check=False, cwd=self.folder, env={**os.environ, "LC_ALL": "C.UTF-8"})
        if result.returncode != 0:
            log = self.log_file.read_text(errors="replace")[-4000:] if self.log_file.exists() else ""
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n"
                               f"{result.stdout}{result.stderr}{log}")

    def _initdb(self) -> None:
        """Create the cluster: UTF-8, C.UTF-8 (codepoint order, as SQLite's BINARY), trust, no fsync unless durable."""
        self._cmd([str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
                   "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions"])
        lines = [f"{key} = {value}" for key, value in SETTINGS.items() if not (self.durable and key in UNSAFE)]
        lines.append(f"unix_socket_directories = '{self.socket_dir}'")
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# kiosk throw-away cluster (kiosk/pg_cluster.py)\n" + "\n".join(lines) + "\n")

    def _pg_ctl(self, *args: str) -> None:
        """Run pg_ctl on this cluster."""
        self._cmd([str(self.bin_dir / "pg_ctl"), *args, "-D", str(self.data_dir), "-s"])

    def _watch(self) -> subprocess.Popen[bytes]:
        """Start the watcher that stops the cluster once this process is gone."""
        return subprocess.Popen(
            [sys.executable, "-c", _WATCHER, str(os.getpid()), str(self.bin_dir / "pg_ctl"),
             str(self.data_dir), str(self.folder), "" if self.uid is None else str(self.uid)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)  # a Ctrl+C to the test run does not stop it before its job

    def _wait_ready(self, timeout_s: float) -> None:
        """Wait until the server accepts connections on its socket."""
        import psycopg

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with psycopg.connect(self.conninfo("postgres"), connect_timeout=5):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def conninfo(self, database: str) -> str:
        """A libpq connection string for DATABASE as the superuser, over the socket."""
        return f"host={self.socket_dir} port=5432 user={SUPERUSER} dbname={database}"

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of DATABASE: postgresql+psycopg://postgres@/DATABASE?host=SOCKET_DIR."""
        return f"postgresql+psycopg://{SUPERUSER}@/{database}?host={quote(str(self.socket_dir), safe='/')}"

    def create_database(self, name: str) -> str:
        """Create an empty database NAME ([a-z_][a-z0-9_]*) and return its SQLAlchemy URL."""
        import psycopg
        from psycopg import sql

        if not _NAME.fullmatch(name):
            raise ValueError(f"database name {name!r}: use lower-case letters, digits and _")
        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.databases.append(name)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database NAME, closing its connections first."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if name in self.databases:
            self.databases.remove(name)

    def running(self) -> bool:
        """True while the postmaster's pid file exists and that process is alive."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
            os.kill(pid, 0)
        except (OSError, ValueError):
            return False
        return True

    def stop(self) -> None:
        """Stop the server (immediately: nothing here is worth a checkpoint) and delete its dir."""
        try:
            if self.running():
                self._pg_ctl("stop", "-m", "immediate")
        finally:
            if self.watcher is not None:
                self.watcher.kill()
                self.watcher.wait(timeout=10)
                self.watcher = None
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> PgServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
