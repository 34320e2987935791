"""The real processes of `kiosk bench central`: the central (`kiosk serve`, role central, on the
benchmark's PostgreSQL), door enrolment over its HTTP API, the count of what the database holds,
and the year's range CSV made by `kiosk report range --format csv` in its own process.

The count reads the database with psycopg and plain SQL, not through kiosk.store: it checks what
the store's intake wrote, so it does not go through the code it checks.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import TracebackType

from kiosk.bench_central.workload import TIMEZONE, Door
from kiosk.errors import KioskError

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 90.0


def kiosk_command() -> list[str]:
    """The `kiosk` console script beside this Python, else `python -c` on the CLI."""
    script = Path(sys.executable).with_name("kiosk")
    if script.exists():
        return [str(script)]
    found = shutil.which("kiosk")
    return [found] if found else [sys.executable, "-c", "from kiosk.cli import main; main()"]


def central_env(url: str, **extra: str) -> dict[str, str]:
    """The environment of a central's process: this one's without KIOSK*, role central, the URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK")}
    return env | {"KIOSK__ROLE": "central", "KIOSK__DATABASE__URL": url, "KIOSK__SITE__TIMEZONE": TIMEZONE,
                  **extra}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (/proc/<pid>/stat; 0 without /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Central:
    """A real `kiosk serve` with role central on url, listening on a free port of 127.0.0.1,
    its working directory and log in folder; a context manager (stopped with SIGTERM at the end)."""

    def __init__(self, url: str, folder: Path, threads: int) -> None:
        self.url, self.folder, self.threads = url, folder, threads
        self.port = _free_port()
        self.log = folder / "central.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Central:
        """Start the process and wait until its door API answers (KioskError with its log if not)."""
        env = central_env(self.url, KIOSK__WEB__HOST="127.0.0.1", KIOSK__WEB__PORT=str(self.port),
                          KIOSK__WEB__THREADS=str(self.threads), KIOSK__WEB__DAILY_PURGE="false",
                          KIOSK__WEB__SECRET_KEY_FILE=str(self.folder / "web_secret.key"))
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([*kiosk_command(), "serve"], env=env, cwd=self.folder,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            status = self._probe()
            if status == 401:  # the door API wants a token: it is up, and a central
                return self
            if status == 404:
                raise KioskError(f"kiosk serve has no door API (not role central?); see {self.log_tail()}")
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise KioskError(f"the central (kiosk serve) did not start: {self.log_tail()}")
            time.sleep(0.2)

    def _probe(self) -> int | None:
        try:
            with urllib.request.urlopen(f"{self.base}/api/v1/door/gallery", timeout=5) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return None

    def log_tail(self, chars: int = 800) -> str:
        """The end of the central's log, on one line."""
        try:
            return " | ".join(self.log.read_text(errors="replace")[-chars:].splitlines())
        except OSError:
            return "(no log)"

    def enrol(self, code: str) -> str:
        """Swap a door's one-time code for its token over POST /api/v1/door/enrol."""
        body = json.dumps({"code": code, "version": "bench"}).encode()
        request = urllib.request.Request(f"{self.base}/api/v1/door/enrol", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                answer = json.loads(r.read())
        except urllib.error.HTTPError as exc:
            raise KioskError(f"door enrolment refused: HTTP {exc.code} {exc.read()[:200]!r}") from None
        return str(answer["token"])

    def cpu_s(self) -> float:
        """CPU seconds the central's process has used so far."""
        return cpu_s(self.proc.pid) if self.proc is not None else 0.0

    def stop(self) -> None:
        """SIGTERM (it drains requests in flight), SIGKILL after 30 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Central:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


def libpq_url(url: str) -> str:
    """The libpq URI of a postgresql+psycopg:// URL (psycopg connects with it as it is)."""
    return "postgresql://" + url.split("://", 1)[1]


@dataclass(frozen=True)
class Count:
    """What the database holds of the pushed events: rows, lost (pushed, not held under their
    number and uuid), duplicated (rows beyond one per event uuid), unexpected (rows under a
    pushed door's number that no push sent, or with another uuid)."""

    rows: int
    lost: int
    duplicated: int
    unexpected: int


def count_pushed(url: str, expected: dict[str, dict[int, str]], base_seq: dict[str, int]) -> Count:
    """Count, in the database, the events of each door above its base_seq against expected
    {device_id: {seq: uuid}}: one SQL read of (device_id, door_seq, event_uuid)."""
    import psycopg

    devices = sorted(expected)
    with psycopg.connect(libpq_url(url), connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT e.device_id, e.door_seq, e.event_uuid FROM attendance_events e "
            "JOIN unnest(%s::text[], %s::int[]) AS b(device, base) "
            "ON e.device_id = b.device AND e.door_seq > b.base",
            (devices, [base_seq.get(d, 0) for d in devices])).fetchall()
    held: set[tuple[str, int, str]] = set()
    for device, seq, uuid in rows:
        held.add((device, int(seq), str(uuid)))
    by_uuid = Counter((device, str(uuid)) for device, _, uuid in rows)
    want = {(device, seq, uuid) for device, events in expected.items() for seq, uuid in events.items()}
    return Count(rows=len(rows), lost=len(want - held),
                 duplicated=sum(n - 1 for n in by_uuid.values() if n > 1),
                 unexpected=len(held - want))


def door_last_seqs(url: str, doors: list[Door]) -> dict[str, int]:
    """{device_id: doors.last_seq} as the central noted it."""
    import psycopg

    with psycopg.connect(libpq_url(url), connect_timeout=10) as conn:
        rows = conn.execute("SELECT device_id, last_seq FROM doors WHERE device_id = ANY(%s)",
                            ([d.device_id for d in doors],)).fetchall()
    return {str(device): int(seq) for device, seq in rows}


def server_version(url: str) -> str:
    """PostgreSQL's version string (e.g. "15.14")."""
    import psycopg

    with psycopg.connect(libpq_url(url), connect_timeout=10) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]).split(" ", 1)[0] if row else "?"


@dataclass(frozen=True)
class ReportRun:
    """One `kiosk report range --format csv` process: wall and CPU seconds, peak RSS (MB), data
    rows, bytes, and the CSV's header line."""

    seconds: float
    cpu_s: float
    peak_rss_mb: float
    rows: int
    bytes: int
    header: str


def _vm_hwm_kib(pid: int) -> int:
    """The process's peak resident set so far (VmHWM, KiB; 0 where /proc has none)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


PYTHON_PATH = ("import sys; import kiosk.reports.payroll_fast as f; f.fast_path_applies = lambda db, s: False; "
               "from kiosk.cli import main; sys.argv[0] = 'kiosk'; main()")
"""`python -c` of the kiosk CLI with the range CSV's fast path off: the Python path (RangeScan), timed as a
baseline in the same run (kiosk.bench_central.report_runs)."""


def run_range_csv(url: str, first: date, last: date, out: Path, *, python_path: bool = False) -> ReportRun:
    """`kiosk report range --from first --to last --format csv` as a central, into out; timed
    (python_path: the same command with the fast path off). Peak RSS is the child's VmHWM sampled
    every 50 ms (rusage's ru_maxrss would count this big process's pages, which the child holds
    between fork and exec)."""
    kiosk = [sys.executable, "-c", PYTHON_PATH] if python_path else kiosk_command()
    cmd = [*kiosk, "report", "range", "--from", first.isoformat(), "--to", last.isoformat(), "--format", "csv"]
    peak = 0
    with out.open("wb") as fh, (out.parent / f"{out.stem}.err").open("w+b") as err_file:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=central_env(url), cwd=out.parent, stdout=fh, stderr=err_file)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)  # this child's own CPU times
            if pid:
                break
            peak = max(peak, _vm_hwm_kib(proc.pid))
            time.sleep(0.05)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err_file.seek(0)
        err = err_file.read().decode(errors="replace")
    if proc.returncode != 0:
        raise KioskError(f"kiosk report range failed ({proc.returncode}): {err[-500:]}")
    with out.open("rb") as fh:
        header = fh.readline().decode(errors="replace").strip()
        rows = sum(1 for _ in fh)
    return ReportRun(round(seconds, 2), round(usage.ru_utime + usage.ru_stime, 2), round(peak / 1024.0, 1),
                     rows, out.stat().st_size, header)
