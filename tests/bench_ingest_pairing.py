"""The central's intake with and without in/out pairing on the merged stream (docs/central.md, "Attendance
across doors"): SQLite in process, 10 doors at 5 sites, batches of 500.

    .venv/bin/python tests/bench_ingest_pairing.py [--old REV] [--rounds 2]

Workloads: "typical" (2,000 people, ~2 events a day each at their site's two doors, 10 days) and
"worst" (300 people with ~70 events each in one day). Configurations, each on a new SQLite file, in
turn, `rounds` times (so a load change hits all of them alike): no pairing; the pairing of git REV
(default: none) with site:'s zone; this tree's pairing without sites, in first_last and toggle (cooldown
60 s); with the 5 sites' zones (`sites:`). Prints events/s (events / wall s of all pushes), events per CPU
second of this process, and batch p95 ms.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

from kiosk import store

SITES = {"berlin": "Europe/Berlin", "london": "Europe/London", "new-york": "America/New_York",
         "la": "America/Los_Angeles", "tokyo": "Asia/Tokyo"}
DOORS = [(f"{site} door {n}", site) for site in SITES for n in (1, 2)]
BATCH = 500
FIRST_DAY = date(2026, 3, 2)
Event = tuple[datetime, int, str]  # (at, person index, door name)


def typical(rng: random.Random, people: int = 2000, days: int = 10) -> list[Event]:
    """Each person at their site: in 07:30-09:30 at one of its doors, out 16:00-18:30 at either."""
    out: list[Event] = []
    for p in range(people):
        site = list(SITES)[p % len(SITES)]
        tz = ZoneInfo(SITES[site])
        for d in range(days):
            day = FIRST_DAY + timedelta(days=d)
            for start, span in ((7.5, 2.0), (16.0, 2.5)):
                at = datetime(day.year, day.month, day.day, tzinfo=tz) + timedelta(hours=start + rng.random() * span)
                out.append((at.astimezone(UTC), p, f"{site} door {rng.randint(1, 2)}"))
    return out


def worst(rng: random.Random, people: int = 300, per_person: int = 70) -> list[Event]:
    """Many events per person-day: ~70 each within one local day (07:00-21:00)."""
    out: list[Event] = []
    for p in range(people):
        site = list(SITES)[p % len(SITES)]
        tz = ZoneInfo(SITES[site])
        start = datetime(FIRST_DAY.year, FIRST_DAY.month, FIRST_DAY.day, 7, tzinfo=tz)
        for _ in range(per_person):
            at = start + timedelta(seconds=rng.random() * 14 * 3600)
            out.append((at.astimezone(UTC), p, f"{site} door {rng.randint(1, 2)}"))
    return out


def run(events: list[Event], people: int, pairing: Any,
        ingest: Callable[..., Any]) -> tuple[float, float, float]:
    """(events/s, batch p95 ms, events per CPU s) of pushing events as 10 online doors would, on a new
    SQLite file (CPU s: this process's, which a busy machine disturbs less than the wall clock)."""
    with tempfile.TemporaryDirectory() as folder:
        db = store.open_database(Path(folder) / "central.db")
        try:
            t0 = datetime(2026, 1, 1, tzinfo=UTC)
            ids = store.bulk_add_people(db, [(f"E{p}", f"Person {p}") for p in range(people)], t0)
            doors = {name: store.add_door(db, name, site=site, now=t0).door for name, site in DOORS}
            pending: dict[str, list[store.DoorEvent]] = {name: [] for name in doors}
            seq = dict.fromkeys(doors, 0)
            times: list[float] = []
            cpu = [0.0]

            def push(name: str) -> None:
                batch, pending[name] = pending[name], []
                started, cpu_started = time.perf_counter(), time.process_time()
                ingest(db, doors[name].id, batch, pairing=pairing, now=batch[-1].at)
                times.append(time.perf_counter() - started)
                cpu[0] += time.process_time() - cpu_started

            for at, p, name in sorted(events):
                seq[name] += 1
                pending[name].append(store.DoorEvent(seq[name], f"{name}-{seq[name]}", ids[p], at, "in"))
                if len(pending[name]) == BATCH:
                    push(name)
            for name in doors:
                if pending[name]:
                    push(name)
        finally:
            db.close()
    p95 = statistics.quantiles(times, n=20)[-1] if len(times) > 1 else times[0]
    return len(events) / sum(times), p95 * 1000, len(events) / cpu[0]


def old_ingest(rev: str) -> ModuleType:
    """kiosk/store/ingest.py as of git REV, imported as its own module."""
    source = subprocess.run(["git", "show", f"{rev}:kiosk/store/ingest.py"], check=True, capture_output=True,
                            text=True, cwd=Path(__file__).resolve().parents[1]).stdout
    path = Path(tempfile.mkdtemp()) / "old_ingest.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_ingest", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_ingest"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", help="git revision whose pairing to compare (e.g. main)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    berlin = ZoneInfo(SITES["berlin"])
    zones = {site: ZoneInfo(z) for site, z in SITES.items()}
    configs: list[tuple[str, Any, Callable[..., Any]]] = [("no pairing", None, store.ingest_events)]
    if args.old:
        old = old_ingest(args.old)
        configs.append((f"{args.old}: first_last, site: zone", ("first_last", berlin), old.ingest_events))
        configs.append((f"{args.old}: toggle, site: zone", ("toggle", berlin), old.ingest_events))
    configs += [
        ("first_last, site: zone", store.Pairing("first_last", berlin), store.ingest_events),
        ("toggle + cooldown, site: zone", store.Pairing("toggle", berlin, cooldown_s=60), store.ingest_events),
        ("first_last, 5 site zones", store.Pairing("first_last", berlin, zones), store.ingest_events),
        ("toggle + cooldown, 5 site zones", store.Pairing("toggle", berlin, zones, 60), store.ingest_events),
    ]
    rng = random.Random(13)
    workloads = {"typical": (typical(rng), 2000), "worst": (worst(rng), 300)}
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for _ in range(args.rounds):
        for wname, (events, people) in workloads.items():
            for cname, pairing, ingest in configs:
                results.setdefault((wname, cname), []).append(run(events, people, pairing, ingest))
    for (wname, cname), runs in results.items():
        rates = ", ".join(f"{r:,.0f}" for r, _, _ in runs)
        p95s = ", ".join(f"{p:.0f}" for _, p, _ in runs)
        cpu = ", ".join(f"{c:,.0f}" for _, _, c in runs)
        sys.stdout.write(f"{wname:8} {cname:34} events/s {rates:22} per CPU s {cpu:22} batch p95 ms {p95s}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
