"""`kiosk bench central` (kiosk/bench_central/): a tiny run against a real PostgreSQL, a real
`kiosk serve` and real HTTP, whose lost and duplicated are counted for real (and shown to count a
deleted and a doubled event); its refusals; the simulated doors' checks of the central's answers."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from cli_helpers import run_cli

from kiosk.bench_central import push
from kiosk.bench_central.central import Count, count_pushed, libpq_url
from kiosk.bench_central.workload import Sizes, make_plan, make_pushes, year_rows
from kiosk.pg_cluster import find_pg_bin

KEYS = {"doors", "events", "ingest_events_per_s", "batch_p95_ms", "lost", "duplicated", "year_report_s",
        "people", "sites", "days", "year_events", "repeated_pushes", "year_report_rows"}
TINY = ["--doors", "3", "--events", "240", "--people", "9", "--sites", "2", "--days", "10", "--batch", "25"]


def _kiosk(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`kiosk ARGS` as a real process, without the test run's KIOSK* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK")}
    return subprocess.run([sys.executable, "-m", "kiosk.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)


def _figures(proc: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    figures = json.loads(last)
    assert isinstance(figures, dict)
    return figures


def _check_tiny(r: dict[str, object]) -> None:
    assert set(r) >= KEYS, KEYS - set(r)
    assert (r["doors"], r["events"], r["people"], r["sites"], r["days"]) == (3, 240, 9, 2, 10)
    assert r["lost"] == 0 and r["duplicated"] == 0 and r["unexpected"] == 0
    assert r["stored"] == 240 and r["rows_held"] == 240
    assert r["answer_mismatches"] == 0 and r["push_errors"] == 0 and r["wrong_last_seq"] == 0
    assert r["repeated_pushes"] >= 3 and isinstance(r["repeated_events"], int) and r["repeated_events"] > 0
    assert isinstance(r["ingest_events_per_s"], float) and r["ingest_events_per_s"] > 0
    assert isinstance(r["batch_p95_ms"], float) and r["batch_p95_ms"] > 0
    assert isinstance(r["batch_alone_ms"], float) and r["batch_alone_ms"] > 0
    assert r["year_report_rows"] == r["year_report_expected_rows"] == 9 * r["year_events"] // 18  # type: ignore[operator]
    assert r["year_report_site_columns"] is True
    assert isinstance(r["year_report_s"], float) and r["year_report_s"] > 0


@pytest.mark.slow
def test_tiny_run_on_a_given_database_counts_lost_and_duplicated_for_real(pg_server) -> None:
    import psycopg

    url = pg_server.create_database("kiosk_bench_given")
    r = _figures(_kiosk("bench", "central", "--json", "--url", url, *TINY))
    _check_tiny(r)
    assert r["database"] == "--url"

    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        rows = conn.execute("SELECT device_id, door_seq, event_uuid FROM attendance_events "
                            "WHERE door_seq IS NOT NULL").fetchall()
        doors = conn.execute("SELECT device_id, site, token_hash IS NOT NULL FROM doors ORDER BY device_id").fetchall()
    # counted by hand: the history and the pushes, every (door, seq) once, enrolled doors on both sites
    assert len(rows) == r["year_events"] + 240  # type: ignore[operator]
    assert len({(d, s) for d, s, _ in rows}) == len(rows) == len({(d, u) for d, _, u in rows})
    assert doors == [("bench-door-01", "site-1", True), ("bench-door-02", "site-2", True),
                     ("bench-door-03", "site-1", True)]

    # the count itself counts: one event deleted and one stored again under another number
    expected: dict[str, dict[int, str]] = {}
    for device, seq, uuid in rows:
        expected.setdefault(device, {})[seq] = uuid
    assert count_pushed(url, expected, {}) == Count(len(rows), 0, 0, 0)
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("DELETE FROM attendance_events WHERE device_id = 'bench-door-01' AND door_seq = "
                     "(SELECT max(door_seq) FROM attendance_events WHERE device_id = 'bench-door-01')")
        conn.execute("INSERT INTO attendance_events (person_id, occurred_at, kind, device_id, door_seq, event_uuid) "
                     "SELECT person_id, occurred_at, kind, device_id, 1000000, event_uuid FROM attendance_events "
                     "WHERE device_id = 'bench-door-02' AND door_seq = 1")
    counted = count_pushed(url, expected, {})
    assert (counted.lost, counted.duplicated, counted.unexpected) == (1, 1, 1)

    # a database that holds kiosk data is refused, with one line, and left as it was
    again = _kiosk("bench", "central", "--url", url, *TINY)
    assert again.returncode == 1, again.stdout + again.stderr
    assert again.stderr.startswith("error: --url: ") and "holds kiosk data already (3 doors, 9 people" in again.stderr
    assert "Traceback" not in again.stderr and again.stdout == ""
    with psycopg.connect(libpq_url(url)) as conn:
        assert conn.execute("SELECT count(*) FROM attendance_events").fetchone() == (len(rows),)


@pytest.mark.slow
@pytest.mark.postgresql
def test_without_url_it_starts_a_throw_away_cluster_and_says_so() -> None:
    if find_pg_bin() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    proc = _kiosk("bench", "central", "--json", *TINY)
    r = _figures(proc)
    assert "no --url: starting a throw-away PostgreSQL cluster" in proc.stderr
    assert r["database"] == "throw-away cluster (fsync on)"
    _check_tiny(r)
    assert "ingest: 240 events in" in proc.stdout and "lost 0, duplicated 0" in proc.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--url", "sqlite:////tmp/kiosk.db"], "error: --url: an SQLite database is set with database.path"),
    (["--url", "mysql://x@/kiosk"], "error: --url: "),
    (["--doors", "4", "--sites", "5"], "error: --sites 5 is more than --doors 4: every site needs a door"),
    (["--doors", "10", "--people", "5"], "error: --people 5 is fewer than --doors 10"),
    (["--doors", "10", "--events", "5"], "error: --events 5 is fewer than --doors 10"),
    (["--url", "postgresql+psycopg://postgres:s3cret@/kiosk?host=/nonexistent-socket-dir&connect_timeout=2"],
     "PostgreSQL is not answering"),
])
def test_bad_input_is_one_message_and_exit_1(args: list[str], message: str) -> None:
    proc = run_cli("bench", "central", "--json", *args)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: ") and message in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr and proc.stdout == ""
    assert "s3cret" not in proc.stderr  # a password in the URL is never shown


def test_the_workload_numbers_each_door_on_from_its_history() -> None:
    plan = make_plan(Sizes(doors=4, events=203, people=10, sites=2, days=30, batch=20), today=date(2026, 3, 2))
    history = list(year_rows(plan, list(range(101, 111))))
    assert len(history) == 10 * 2 * len(plan.year_work_days) == 2 * plan.expected_report_rows
    assert plan.year_last < plan.push_days[0] and plan.push_days[-1] == date(2026, 2, 27)  # a Friday
    assert plan.year_last - plan.year_first == timedelta(days=29)
    assert make_pushes(plan, list(range(101, 111))) == 203
    assert sum(len(d.events) for d in plan.doors) == 203
    assert [d.site for d in plan.doors] == ["site-1", "site-2", "site-1", "site-2"]
    for door in plan.doors:
        seqs = [e["seq"] for e in door.events]
        assert seqs == list(range(door.base_seq + 1, door.base_seq + 1 + len(seqs)))  # no gap, from the history on
        assert door.base_seq == sum(1 for h in history if h["device_id"] == door.device_id)
        assert [e["at"] for e in door.events] == sorted(e["at"] for e in door.events)
        assert sum(len(b) for b in door.batches(20)) == len(door.events)
        assert len(set(door.expected().values())) == len(door.events)
    kinds = {e["kind"] for d in plan.doors for e in d.events}
    assert kinds <= {"in", "out", "unknown"} and {"in", "out"} <= kinds


def test_percentile_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (push.percentile(values, 50), push.percentile(values, 95), push.percentile(values, 100)) == (50, 95, 100)
    assert push.percentile([7.0], 95) == 7.0 and push.percentile([], 95) == 0.0


class _Central(http.server.BaseHTTPRequestHandler):
    """A central that answers every push with `answer` (a real HTTP server, for the door side)."""

    answer: dict[str, object] = {}
    status = 200
    bodies: list[dict[str, object]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).bodies.append(json.loads(body))
        raw = json.dumps(self.answer).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_central() -> Iterator[tuple[int, type[_Central]]]:
    handler = type("Handler", (_Central,), {"bodies": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], handler
    server.shutdown()
    server.server_close()


def _one_door() -> push.Door:
    plan = make_plan(Sizes(doors=1, events=6, people=3, sites=1, days=7, batch=3), today=date(2026, 3, 2))
    make_pushes(plan, [1, 2, 3])
    return plan.doors[0]


def test_a_wrong_answer_is_counted_not_trusted(fake_central: tuple[int, type[_Central]]) -> None:
    port, handler = fake_central
    door = _one_door()
    handler.answer = {"last_seq": 3, "stored": 0, "repeated": 3}  # claims the first batch was held already
    run = push.push_all([door], ["tok"], port, 3)
    fig = run.doors[0]
    assert fig.errors == [] and len(fig.mismatches) >= 2  # the twin pair and the second batch's wrong last_seq
    body = handler.bodies[0]
    assert set(body) == {"clock", "version", "backlog", "events"} and len(body["events"]) == 3  # type: ignore[arg-type]


def test_a_refused_push_stops_the_door_and_is_reported(fake_central: tuple[int, type[_Central]]) -> None:
    port, handler = fake_central
    handler.status, handler.answer = 403, {"error": "revoked", "message": "the door was revoked"}
    run = push.push_all([_one_door()], ["tok"], port, 3)
    fig = run.doors[0]
    assert fig.errors and "HTTP 403 revoked: the door was revoked" in fig.errors[0]
    assert fig.stored == 0 and fig.retries == 0


def test_a_central_that_is_down_is_retried_then_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(push, "RETRIES", 2)
    with __import__("socket").socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = push.push_all([_one_door()], ["tok"], port, 3)
    fig = run.doors[0]
    assert fig.retries >= 2 and fig.errors and "HTTP 0 no_answer" in fig.errors[0]
    assert run.wall_s < 10


def test_a_door_with_nothing_to_push_sends_a_heartbeat(fake_central: tuple[int, type[_Central]]) -> None:
    port, handler = fake_central
    handler.answer = {"last_seq": 0, "stored": 0, "repeated": 0}
    door = _one_door()
    door.events = []
    run = push.push_all([door], ["tok"], port, 3)
    assert run.doors[0].errors == [] and run.doors[0].mismatches == [] and run.doors[0].pushes == 1
    assert [b["events"] for b in handler.bodies] == [[]] and handler.bodies[0]["backlog"] == 0
