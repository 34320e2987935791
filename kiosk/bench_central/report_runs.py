"""The year report alone, timed several times on one loaded database: `python -m
kiosk.bench_central.report_runs [--url URL] [--runs 5] [--baseline-runs N]` (the whole `kiosk bench
central` loads a year, ~70 s, for one timing; docs/central.md, Benchmark).

Without --url a throw-away PostgreSQL cluster is started (durable, as the bench's) and the bench's
organisation and year bulk-loaded once (2,000 people, 50 doors on 5 sites, by default). Each round
times the `kiosk report range --format csv` process (the fast path on PostgreSQL), then, for the
first --baseline-runs rounds, the same process with the fast path off (the Python path): both under
the same load. The last line is JSON: medians and each run's wall and CPU seconds, peak RSS, rows,
whether the two paths' CSVs were the same bytes, and the load average before and after.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from kiosk import store
from kiosk.bench_central import BENCH_DATABASE, _load, _require_empty
from kiosk.bench_central.central import ReportRun, run_range_csv
from kiosk.bench_central.workload import Plan, Sizes, make_plan

ROUNDS = 5  # timings of each path: more is a steadier median on a shared machine, and takes longer


def _summary(runs: list[ReportRun]) -> dict[str, Any]:
    """Median wall and CPU seconds, the largest peak RSS, and every run's wall seconds."""
    if not runs:
        return {}
    return {"median_s": round(statistics.median(r.seconds for r in runs), 2),
            "cpu_median_s": round(statistics.median(r.cpu_s for r in runs), 2),
            "peak_rss_mb": max(r.peak_rss_mb for r in runs), "rows": runs[0].rows,
            "runs_s": [r.seconds for r in runs]}


def time_reports(url: str, plan: Plan, folder: Path, runs: int, baseline_runs: int) -> dict[str, Any]:
    """runs timings of the fast path and baseline_runs of the Python path, interleaved; the figures."""
    load_before = os.getloadavg()[0]
    fast: list[ReportRun] = []
    python: list[ReportRun] = []
    same = None
    for i in range(max(runs, baseline_runs)):
        if i < runs:
            fast.append(run_range_csv(url, plan.year_first, plan.year_last, folder / "fast.csv"))
        if i < baseline_runs:
            python.append(run_range_csv(url, plan.year_first, plan.year_last, folder / "python.csv",
                                        python_path=True))
            same = filecmp.cmp(folder / "fast.csv", folder / "python.csv", shallow=False) if fast else None
    return {"year_first": plan.year_first.isoformat(), "year_last": plan.year_last.isoformat(),
            "fast": _summary(fast), "python_path": _summary(python), "same_bytes": same,
            "expected_rows": plan.expected_report_rows, "loadavg_1m_before": round(load_before, 2),
            "loadavg_1m_after": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    """The command line (module docstring); the JSON line on stdout, progress on stderr."""
    parser = argparse.ArgumentParser(prog="python -m kiosk.bench_central.report_runs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="an empty PostgreSQL database (else a throw-away cluster)")
    parser.add_argument("--runs", type=int, default=ROUNDS, help="timings of the fast path")
    parser.add_argument("--baseline-runs", type=int, default=ROUNDS, help="timings of the Python path (0: none)")
    parser.add_argument("--people", type=int, default=Sizes.people)
    parser.add_argument("--doors", type=int, default=Sizes.doors)
    parser.add_argument("--sites", type=int, default=Sizes.sites)
    parser.add_argument("--days", type=int, default=Sizes.days)
    args = parser.parse_args(argv)
    sizes = Sizes(doors=args.doors, people=args.people, sites=args.sites, days=args.days)

    def note(message: str) -> None:
        sys.stderr.write(message + "\n")

    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kiosk-report-runs-")))
        url = args.url
        if url is None:
            from kiosk.pg_cluster import PgServer

            note("starting a throw-away PostgreSQL cluster (fsync on)")
            url = stack.enter_context(PgServer.start(durable=True)).create_database(BENCH_DATABASE)
        db = store.open_database(url)
        stack.callback(db.close)
        _require_empty(db)
        plan = make_plan(sizes)
        _, _, load_s, events = _load(db, plan, note)
        note(f"{events} events loaded in {load_s} s; timing the year's range CSV ...")
        result = {"people": sizes.people, "doors": sizes.doors, "sites": sizes.sites, "year_events": events,
                  "year_load_s": load_s, **time_reports(url, plan, folder, args.runs, args.baseline_runs)}
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
