"""`kiosk bench reports`: time and memory of a long range report, from the CLI and the web app.

Builds its own synthetic database in a temporary folder (N people, each in at about 09:00 and out
at about 17:00 on every work day, Mon-Fri, of the D days ending yesterday), then measures, each in
a real subprocess:
  year_csv_s / year_csv_peak_rss_mb   `kiosk report range --from .. --to .. --format csv`
                                      (wall seconds; the child's peak resident set, MB;
                                      year_csv_cpu_s: its CPU seconds, steadier on a busy machine);
  web_4x_year_csv_s / ..._peak_rss_mb `kiosk serve`, four managers downloading the range CSV at
                                      once (slowest download, seconds; the server's VmHWM, MB;
                                      web_4x_cpu_s: the server's CPU seconds for the four).
The CSV row counts are checked against what was generated (one row per person and work day).
"""

from __future__ import annotations

import http.cookiejar
import json
import logging
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypedDict
from zoneinfo import ZoneInfo

from kiosk import store
from kiosk.errors import KioskError
from kiosk.vocabulary import EventKind

logger = logging.getLogger(__name__)

TIMEZONE = "Europe/Berlin"
WORK_DAYS = (0, 1, 2, 3, 4)  # Monday..Friday, the default site.work_days
DOWNLOADS = 4
MANAGER = ("bench-manager", "bench-password-1")
TARGETS = {"year_csv_s": 3.0, "year_csv_peak_rss_mb": 300.0, "web_4x_year_csv_peak_rss_mb": 300.0}


class CliFigures(TypedDict):
    """One `kiosk report range --format csv` run: wall and CPU seconds, peak RSS (MB), rows, bytes."""

    seconds: float
    cpu_s: float
    peak_rss_mb: float
    rows: int
    bytes: int


class Download(TypedDict, total=False):
    """One web download: seconds, bytes and data rows, or the error text."""

    seconds: float
    bytes: int
    rows: int
    error: str


class WebFigures(TypedDict):
    """Concurrent web downloads: slowest and wall seconds, server CPU seconds, server peak and
    starting RSS (MB), data rows per download, bytes of one."""

    seconds: float
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    rss_before_mb: float
    rows: list[int]
    bytes: int


class WebResult(TypedDict, total=False):
    """run_report_bench's figures of the web part (absent with web=False)."""

    web_4x_year_csv_s: float
    web_4x_wall_s: float
    web_4x_cpu_s: float
    web_4x_year_csv_peak_rss_mb: float
    web_rss_before_mb: float
    web_csv_rows: list[int]


class ReportBenchResult(WebResult):
    """run_report_bench's JSON-ready figures (the web_* keys only when the web part ran)."""

    people: int
    days: int
    events: int
    start: str
    end: str
    db_mb: float
    build_s: float
    expected_csv_rows: int
    year_csv_s: float
    year_csv_cpu_s: float
    year_csv_peak_rss_mb: float
    year_csv_rows: int
    year_csv_bytes: int
    targets: dict[str, float]
    meets_targets: bool


@dataclass(frozen=True)
class SyntheticData:
    """What build_database() wrote: people, events and person-days (= CSV rows) in start..end."""

    path: Path
    people: int
    events: int
    person_days: int
    start: date
    end: date
    build_s: float


def _events(person_ids: list[int], days: list[date], tz: ZoneInfo, seed: int) -> Iterator[dict[str, object]]:
    """An "in" at 08:30-09:30 and an "out" at 16:30-18:00 local, per person and work day."""
    rng = random.Random(seed)
    for day in days:
        base = datetime(day.year, day.month, day.day, tzinfo=tz)
        for pid in person_ids:
            t_in = base + timedelta(minutes=510 + rng.randrange(60))
            t_out = base + timedelta(minutes=990 + rng.randrange(90))
            yield {"person_id": pid, "occurred_at": t_in, "kind": EventKind.IN, "device_id": "bench"}
            yield {"person_id": pid, "occurred_at": t_out, "kind": EventKind.OUT, "device_id": "bench"}


def build_database(path: Path, people: int, days: int, *, today: date | None = None,
                   seed: int = 0) -> SyntheticData:
    """A kiosk database at path with `people` people and their work days over the `days` days
    ending yesterday (bulk inserts; seconds, not minutes, for a year of 500 people)."""
    t0 = time.perf_counter()
    today = today or datetime.now(UTC).date()
    end = today - timedelta(days=1)
    start = end - timedelta(days=days - 1)
    work = [start + timedelta(days=i) for i in range(days)
            if (start + timedelta(days=i)).weekday() in WORK_DAYS]
    db = store.open_database(path)
    try:
        ids = store.bulk_add_people(
            db, [(f"B{i:05d}", f"Bench Person {i:05d}") for i in range(people)],
            created_at=datetime.combine(start - timedelta(days=30), datetime.min.time(), tzinfo=UTC))
        n = store.bulk_add_events(db, _events(ids, work, ZoneInfo(TIMEZONE), seed))
    finally:
        db.close()
    return SyntheticData(path, people, n, people * len(work), start, end,
                         round(time.perf_counter() - t0, 2))


def _kiosk_command() -> list[str]:
    """The `kiosk` console script beside this Python, else `python -c` on the CLI."""
    script = Path(sys.executable).with_name("kiosk")
    if script.exists():
        return [str(script)]
    found = shutil.which("kiosk")
    return [found] if found else [sys.executable, "-c", "from kiosk.cli import main; main()"]


def _env(db_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK")}
    env |= {"KIOSK__DATABASE__PATH": str(db_path), "KIOSK__SITE__TIMEZONE": TIMEZONE,
            "KIOSK__DATABASE__BACKUPS_KEPT": "0", **extra}
    return env


def _mb(kib: float) -> float:
    return round(kib / 1024.0, 1)


def _count_rows(path: Path) -> int:
    """Data rows of a CSV file (lines less the header)."""
    with path.open("rb") as fh:
        return max(0, sum(1 for _ in fh) - 1)


def run_cli_csv(data: SyntheticData, out: Path) -> CliFigures:
    """`kiosk report range` of the whole period as CSV into out: wall seconds, peak RSS (MB), rows."""
    cmd = [*_kiosk_command(), "report", "range", "--from", data.start.isoformat(),
           "--to", data.end.isoformat(), "--format", "csv"]
    with out.open("wb") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=_env(data.path), stdout=fh, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (ru_maxrss in KiB)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise KioskError(f"kiosk report range failed ({proc.returncode}): {err[-500:]}")
    if proc.stderr:
        proc.stderr.close()
    return {"seconds": round(seconds, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb": _mb(usage.ru_maxrss),
            "rows": _count_rows(out), "bytes": out.stat().st_size}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _vm_kib(pid: int, field: str) -> int:
    """A VmHWM / VmRSS line of /proc/<pid>/status in KiB (0 where /proc has none)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (/proc/<pid>/stat; 0 without /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _login(base: str) -> urllib.request.OpenerDirector:
    """An opener holding a signed-in manager session (through the login form)."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = opener.open(f"{base}/login", timeout=30).read().decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    if token is None:
        raise KioskError("no CSRF token on the login page")
    form = urllib.parse.urlencode({"username": MANAGER[0], "password": MANAGER[1],
                                   "csrf_token": token.group(1)}).encode()
    opener.open(f"{base}/login", data=form, timeout=30).read()
    return opener


def _wait_for_server(base: str, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{base}/login", timeout=2):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise KioskError("kiosk serve did not answer") from None
            time.sleep(0.2)


def _download(opener: urllib.request.OpenerDirector, url: str, result: Download) -> None:
    """GET url, counting bytes, lines and seconds into result (error text on failure)."""
    t0 = time.perf_counter()
    try:
        with opener.open(url, timeout=600) as r:
            if r.geturl().rstrip("/").endswith("/login"):
                raise KioskError("not signed in")
            size = lines = 0
            while chunk := r.read(1 << 16):
                size += len(chunk)
                lines += chunk.count(b"\n")
        result.update({"seconds": round(time.perf_counter() - t0, 2), "bytes": size, "rows": max(0, lines - 1)})
    except Exception as exc:  # reported in the figures, not raised from a thread
        result["error"] = str(exc)


def run_web_csv(data: SyntheticData, downloads: int = DOWNLOADS) -> WebFigures:
    """`kiosk serve` with `downloads` managers fetching the period's CSV at once: slowest seconds,
    the server's peak RSS (VmHWM, MB) and its RSS before (MB), rows of each download."""
    cmd = _kiosk_command()
    env = _env(data.path)
    subprocess.run([*cmd, "users", "add", MANAGER[0], "--role", "manager", "--password-stdin"],
                   input=(MANAGER[1] + "\n").encode(), env=env, check=True, capture_output=True)
    port = _free_port()
    env |= {"KIOSK__WEB__PORT": str(port), "KIOSK__WEB__HOST": "127.0.0.1",
            "KIOSK__WEB__DAILY_PURGE": "false", "KIOSK__WEB__THREADS": str(max(4, downloads))}
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([*cmd, "serve"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _wait_for_server(base, proc)
        opener = _login(base)
        before = _vm_kib(proc.pid, "VmRSS")
        cpu_before = _cpu_s(proc.pid)
        url = f"{base}/range.csv?" + urllib.parse.urlencode(
            {"start": data.start.isoformat(), "end": data.end.isoformat()})
        results: list[Download] = [{} for _ in range(downloads)]
        threads = [threading.Thread(target=_download, args=(opener, url, r)) for r in results]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        peak = _vm_kib(proc.pid, "VmHWM")
        cpu = _cpu_s(proc.pid) - cpu_before
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise KioskError(f"web download failed: {errors[0]}")
    return {"seconds": round(max(r["seconds"] for r in results), 2), "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2),
            "peak_rss_mb": _mb(peak), "rss_before_mb": _mb(before),
            "rows": [r["rows"] for r in results], "bytes": results[0]["bytes"]}


def run_report_bench(people: int = 500, days: int = 365, *, web: bool = True,
                     keep_dir: Path | None = None) -> ReportBenchResult:
    """Build the synthetic database, run the CLI and web measurements; JSON-ready figures."""
    with tempfile.TemporaryDirectory(prefix="kiosk-bench-reports-") as tmp:
        folder = keep_dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        data = build_database(folder / "kiosk.db", people, days)
        cli = run_cli_csv(data, folder / "range.csv")
        db_mb = round(data.path.stat().st_size / 2**20, 1)
        w = run_web_csv(data) if web else None
    web_figures: WebResult = {} if w is None else {
        "web_4x_year_csv_s": w["seconds"], "web_4x_wall_s": w["wall_s"], "web_4x_cpu_s": w["cpu_s"],
        "web_4x_year_csv_peak_rss_mb": w["peak_rss_mb"], "web_rss_before_mb": w["rss_before_mb"],
        "web_csv_rows": w["rows"]}
    measured = {"year_csv_s": cli["seconds"], "year_csv_peak_rss_mb": cli["peak_rss_mb"],
                "web_4x_year_csv_peak_rss_mb": w["peak_rss_mb"] if w is not None else 0.0}
    return {
        "people": data.people, "days": days, "events": data.events,
        "start": data.start.isoformat(), "end": data.end.isoformat(),
        "db_mb": db_mb, "build_s": data.build_s,
        "expected_csv_rows": data.person_days,
        "year_csv_s": cli["seconds"], "year_csv_cpu_s": cli["cpu_s"],
        "year_csv_peak_rss_mb": cli["peak_rss_mb"],
        "year_csv_rows": cli["rows"], "year_csv_bytes": cli["bytes"],
        **web_figures,
        "targets": TARGETS, "meets_targets": all(measured[k] <= v for k, v in TARGETS.items()),
    }


def format_report_bench(r: ReportBenchResult) -> str:
    """A few human-readable lines of a run_report_bench() result."""
    lines = [f"{r['people']} people, {r['days']} days ({r['start']}..{r['end']}), {r['events']} events, "
             f"{r['db_mb']} MB database (built in {r['build_s']} s)",
             f"kiosk report range --format csv: {r['year_csv_s']} s ({r['year_csv_cpu_s']} s CPU), peak RSS {r['year_csv_peak_rss_mb']} MB, "
             f"{r['year_csv_rows']} rows (expected {r['expected_csv_rows']})"]
    if "web_4x_year_csv_s" in r:
        lines.append(f"kiosk serve, {DOWNLOADS} CSV downloads at once: slowest {r['web_4x_year_csv_s']} s "
                     f"({r['web_4x_cpu_s']} s server CPU), "
                     f"server peak RSS {r['web_4x_year_csv_peak_rss_mb']} MB "
                     f"(before {r['web_rss_before_mb']} MB)")
    return "\n".join(lines)


def as_json_line(result: ReportBenchResult) -> str:
    """The result as one JSON line."""
    return json.dumps(result, sort_keys=False)
