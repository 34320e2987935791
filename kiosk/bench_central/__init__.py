"""`kiosk bench central`: how far one central server goes (issue 13's benchmark, docs/central.md).

On PostgreSQL (a throw-away cluster with fsync on, or --url's empty database): the schema; the
doors added through the store and enrolled over HTTP (code -> token); people and a year of history
bulk-loaded through store.bulk_add_people / bulk_add_events; then a real `kiosk serve` (role central)
and all doors pushing their outboxes at once over HTTP, with repeated batches (workload.py, push.py).
Measured: ingest_events_per_s (distinct events stored / wall seconds from the start to the last
answer), batch_p50/p95/max_ms (first pushes, all doors at once), repeat_p95_ms, batch_alone_ms
(median of a few batches pushed one at a time afterwards, on an idle central); then, counting (device, seq, uuid) in
the database, lost and duplicated; then year_report_s: the wall seconds of a `kiosk report range
--format csv` process for the year (report_startup_s: the same process for one empty day).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kiosk import store
from kiosk.bench_central.central import (
    Central,
    count_pushed,
    door_last_seqs,
    run_range_csv,
    server_version,
)
from kiosk.bench_central.push import percentile, push_all
from kiosk.bench_central.workload import Plan, Sizes, make_plan, make_pushes, year_rows
from kiosk.errors import KioskError

logger = logging.getLogger(__name__)

TARGETS = {"ingest_events_per_s": 2000.0, "lost": 0, "duplicated": 0, "year_report_s": 5.0}
BENCH_DATABASE = "kiosk_bench"
SITE_COLUMNS = ("site", "door_in", "door_out")

Note = Callable[[str], None]


def _quiet(message: str) -> None:
    logger.info("%s", message)


def _check_url(url: str) -> str:
    """The URL stripped, or KioskError with the reason database.url would give."""
    from kiosk.config.site import database_url_problem

    url = url.strip()
    problem = database_url_problem(url)
    if problem:
        raise KioskError(f"--url: {problem}")
    return url


def _require_empty(db: store.Database) -> None:
    """KioskError unless the database holds no doors, people or events (the bench writes into it)."""
    doors, people, events = store.list_doors(db), store.list_people(db), store.latest_events(db, 1)
    if doors or people or events:
        raise KioskError(f"--url: {db.where} holds kiosk data already ({len(doors)} doors, {len(people)} "
                         f"people{', events' if events else ''}); the bench writes doors, people and a year "
                         "of events into it: give it an empty database (createdb kiosk_bench)")


def _load(db: store.Database, plan: Plan, note: Note) -> tuple[list[str], list[int], float, int]:
    """Doors (codes), people and the year of history through the store: (codes, person ids,
    load seconds, history events)."""
    codes = [store.add_door(db, d.name, site=d.site, actor="bench").code for d in plan.doors]
    sizes = plan.sizes
    created = datetime.combine(plan.year_first, datetime.min.time(), tzinfo=UTC)
    ids = store.bulk_add_people(db, [(f"B{i:05d}", f"Bench Person {i:05d}") for i in range(sizes.people)],
                                created_at=created)
    note(f"loading {sizes.people} people x {len(plan.year_work_days)} work days of history "
         f"({plan.year_first}..{plan.year_last}) through store.bulk_add_events ...")
    t0 = time.perf_counter()
    n = store.bulk_add_events(db, year_rows(plan, ids))
    return codes, ids, round(time.perf_counter() - t0, 2), n


def _ingest(central: Central, plan: Plan, codes: list[str], url: str, note: Note) -> dict[str, Any]:
    """Enrol the doors, push every outbox at once, count what the database holds: the figures."""
    tokens = [central.enrol(code) for code in codes]
    events = sum(len(d.events) for d in plan.doors)
    note(f"{len(plan.doors)} doors push {events} events at once (batches of {plan.sizes.batch}) ...")
    cpu0 = central.cpu_s()
    run = push_all(plan.doors, tokens, central.port, plan.sizes.batch)
    server_cpu = central.cpu_s() - cpu0
    figures = run.doors
    stored = sum(f.stored for f in figures)
    first, repeat, alone = run.all_first_ms(), run.all_repeat_ms(), run.all_alone_ms()
    count = count_pushed(url, {d.device_id: d.expected() for d in plan.doors},
                         {d.device_id: d.base_seq for d in plan.doors})
    last = door_last_seqs(url, plan.doors)
    wrong_last = [d.device_id for d in plan.doors if d.events and last.get(d.device_id) != d.events[-1]["seq"]]
    problems = [p for f in figures for p in f.errors + f.mismatches]
    for p in problems[:10]:
        logger.warning("%s", p)
    return {
        "events": events, "stored": stored, "rows_held": count.rows,
        "pushes": sum(f.pushes for f in figures), "repeated_pushes": sum(f.repeat_pushes for f in figures),
        "repeated_events": sum(f.repeated for f in figures), "retries": sum(f.retries for f in figures),
        "ingest_s": round(run.wall_s, 2),
        "ingest_events_per_s": round(run.stored / run.wall_s, 1) if run.wall_s > 0 else 0.0,
        "batch_p50_ms": round(percentile(first, 50), 1), "batch_p95_ms": round(percentile(first, 95), 1),
        "batch_max_ms": round(max(first, default=0.0), 1), "repeat_p95_ms": round(percentile(repeat, 95), 1),
        "batch_alone_ms": round(percentile(alone, 50), 1),
        "central_cpu_s": round(server_cpu, 2),
        "lost": count.lost, "duplicated": count.duplicated, "unexpected": count.unexpected,
        "answer_mismatches": sum(len(f.mismatches) for f in figures),
        "push_errors": sum(len(f.errors) for f in figures), "wrong_last_seq": len(wrong_last),
        "problems": problems[:5],
    }


def _year_report(url: str, plan: Plan, folder: Path, note: Note) -> dict[str, Any]:
    """`kiosk report range --format csv` of the year as a process (and of one empty day, to show
    what starting the process costs); the figures, the CSV checked against the plan."""
    note(f"kiosk report range --from {plan.year_first} --to {plan.year_last} --format csv ...")
    empty_day = plan.year_first - timedelta(days=1)
    start = run_range_csv(url, empty_day, empty_day, folder / "empty.csv")
    year = run_range_csv(url, plan.year_first, plan.year_last, folder / "year.csv")
    columns = year.header.split(",")
    return {
        "year_report_s": year.seconds, "year_report_cpu_s": year.cpu_s,
        "year_report_peak_rss_mb": year.peak_rss_mb, "year_report_rows": year.rows,
        "year_report_expected_rows": plan.expected_report_rows, "year_report_mb": round(year.bytes / 2**20, 1),
        "year_report_site_columns": all(c in columns for c in SITE_COLUMNS),
        "report_startup_s": start.seconds,
        "year_report_how": "a `kiosk report range --format csv` process, wall seconds (Python start included)",
    }


def run_central_bench(sizes: Sizes, *, url: str | None = None, threads: int = 8,
                      note: Note = _quiet) -> dict[str, Any]:
    """The whole benchmark (module docstring); JSON-ready figures. KioskError for bad input or a
    database that cannot be used; nothing of a given --url database is changed if it is refused."""
    sizes.check()
    if url is not None:
        url = _check_url(url)
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kiosk-bench-central-")))
        if url is None:
            from kiosk.pg_cluster import PgServer, PgUnavailable

            note("no --url: starting a throw-away PostgreSQL cluster (initdb in /tmp, Unix socket only, "
                 "fsync on); it is stopped and deleted at the end")
            try:
                cluster = stack.enter_context(PgServer.start(durable=True))
            except PgUnavailable as exc:
                raise KioskError(str(exc)) from None
            url = cluster.create_database(BENCH_DATABASE)
            where = "throw-away cluster (fsync on)"
        else:
            where = "--url"
        db = store.open_database(url)
        stack.callback(db.close)
        _require_empty(db)
        plan = make_plan(sizes)
        codes, ids, load_s, year_events = _load(db, plan, note)
        make_pushes(plan, ids)
        load = os.getloadavg()[0]
        with Central(url, folder, threads) as central:
            ingest = _ingest(central, plan, codes, url, note)
        report = _year_report(url, plan, folder, note)
        version = server_version(url)
    result: dict[str, Any] = {
        "doors": sizes.doors, "sites": sizes.sites, "people": sizes.people, "days": sizes.days,
        "batch": sizes.batch, "central_threads": threads, "database": where, "postgresql": version,
        "loadavg_1m": round(load, 2), "year_events": year_events, "year_load_s": load_s,
        "year_first": plan.year_first.isoformat(), "year_last": plan.year_last.isoformat(),
        **ingest, **report, "targets": TARGETS,
    }
    result["meets_targets"] = (result["ingest_events_per_s"] >= TARGETS["ingest_events_per_s"]
                               and result["lost"] == 0 and result["duplicated"] == 0
                               and result["year_report_s"] <= TARGETS["year_report_s"])
    return result


def format_central_bench(r: dict[str, Any]) -> str:
    """A few human-readable lines of a run_central_bench() result."""
    return "\n".join([
        f"PostgreSQL {r['postgresql']} ({r['database']}); {r['doors']} doors on {r['sites']} sites, "
        f"{r['people']} people; load average {r['loadavg_1m']} at the start",
        f"history: {r['year_events']} events ({r['year_first']}..{r['year_last']}) bulk-loaded in {r['year_load_s']} s",
        f"ingest: {r['events']} events in {r['pushes']} pushes ({r['repeated_pushes']} repeated, {r['retries']} "
        f"retried) in {r['ingest_s']} s = {r['ingest_events_per_s']} events/s; batch p50 {r['batch_p50_ms']} ms, "
        f"p95 {r['batch_p95_ms']} ms, max {r['batch_max_ms']} ms; repeats p95 {r['repeat_p95_ms']} ms; "
        f"a batch alone (median) {r['batch_alone_ms']} ms; central CPU {r['central_cpu_s']} s",
        f"held: lost {r['lost']}, duplicated {r['duplicated']}, unexpected {r['unexpected']}; answers wrong "
        f"{r['answer_mismatches']}, push errors {r['push_errors']}, doors with a wrong last_seq {r['wrong_last_seq']}",
        f"year report (range CSV, {r['year_report_rows']} rows of {r['year_report_expected_rows']}, "
        f"{r['year_report_mb']} MB): {r['year_report_s']} s ({r['year_report_cpu_s']} s CPU, peak RSS "
        f"{r['year_report_peak_rss_mb']} MB; starting the process: {r['report_startup_s']} s)",
        f"targets {r['targets']}: {'met' if r['meets_targets'] else 'NOT met'}",
    ])


def as_json_line(result: dict[str, Any]) -> str:
    """The result as one JSON line."""
    return json.dumps(result)
