"""Cost of the privacy work that reaches the upgrade backups, and of re-pairing a day on a hand correction on a
central (docs/central.md, "Backups and privacy", "Hand corrections re-pair the day"). Prints one JSON line.

    .venv/bin/python tests/bench_backup_privacy.py /tmp/bench-new
    git archive REV kiosk | tar -x -C /tmp/old && PYTHONPATH=/tmp/old .venv/bin/python tests/bench_backup_privacy.py /tmp/bench-old

Purge: an SQLite file with 200 people x 300 days x 2 events (expression data on all), 3 upgrade backups
written after yesterday's purge; today's purge (one day of events and one of scores age out) and the same purge
again (nothing to do). Corrections: a central's SQLite file with 2,000 people x 20 days x 4 camera events
(toggle); 40 add + remove pairs of a 10:00 check-out, with a Pairing where the code takes one.
"""

from __future__ import annotations

import inspect
import json
import shutil
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import kiosk
from kiosk import store
from kiosk.config import RetentionSettings

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
PEOPLE, DAYS = 200, 300


def _text(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S.%f")


def purge(root: Path) -> dict[str, Any]:
    """Seconds of a daily purge with 3 backups beside the file, and of a purge with nothing to do."""
    path = root / "kiosk.db"
    with store.open_database(path) as db:
        for i in range(PEOPLE):
            store.add_person(db, f"E{i}", f"P{i}", expression_consent=True, now=T0 - timedelta(days=DAYS + 1))
    rows = [(p, _text((T0 - timedelta(days=d)).replace(hour=h)), "in" if h == 8 else "out", "kiosk", "happy",
             '{"happy": 0.8, "neutral": 0.2}', 0.8, 0.3, 0.9)
            for d in range(DAYS, 0, -1) for p in range(1, PEOPLE + 1) for h in (8, 17)]
    con = sqlite3.connect(path)
    con.executemany("INSERT INTO attendance_events (person_id, occurred_at, kind, device_id, expression_label, "
                    "expression_scores, expression_confidence, match_distance, match_score) "
                    "VALUES (?,?,?,?,?,?,?,?,?)", rows)
    con.commit()
    con.close()
    retention = RetentionSettings(attendance_days=DAYS - 1, expression_days=30)
    with store.open_database(path) as db:
        store.purge_expired(db, T0 - timedelta(days=1), retention)
    for n in range(3):
        store.backup_database(path, 3, now=T0 + timedelta(minutes=n))
    out: dict[str, Any] = {"events": len(rows), "file_mb": round(path.stat().st_size / 1e6, 1)}
    for label in ("daily", "again"):
        with store.open_database(path) as db:
            wall, cpu = time.perf_counter(), time.process_time()
            r = store.purge_expired(db, T0, retention)
            out[label] = {"wall_s": round(time.perf_counter() - wall, 3), "cpu_s": round(time.process_time() - cpu, 3),
                          "events_deleted": r.events_deleted, "backups": getattr(r, "backups_purged", None)}
    return out


def corrections(root: Path) -> dict[str, Any]:
    """Milliseconds of an add + remove pair of corrections on a central's file (median, p90 of 40)."""
    path = root / "central.db"
    with store.open_database(path) as db:
        door = store.add_door(db, "A").door
        for i in range(2000):
            store.add_person(db, f"C{i}", f"C{i}", now=T0 - timedelta(days=30))
    rows = [(p, _text((T0 - timedelta(days=d)).replace(hour=h)), "in" if h in (8, 13) else "out", door.device_id)
            for d in range(20, 0, -1) for p in range(1, 2001) for h in (8, 12, 13, 17)]
    con = sqlite3.connect(path)
    con.executemany("INSERT INTO attendance_events (person_id, occurred_at, kind, device_id, door_seq, event_uuid) "
                    "VALUES (?,?,?,?,?,?)", [(*r, n, f"u{n}") for n, r in enumerate(rows, start=1)])
    con.commit()
    con.close()
    paired = "pairing" in inspect.signature(store.add_correction).parameters
    kw: dict[str, Any] = {"pairing": store.Pairing("toggle", ZoneInfo("Europe/Berlin"), cooldown_s=60)} if paired else {}
    times = []
    with store.open_database(path) as db:
        for i in range(40):
            day = (T0 - timedelta(days=1 + i % 20)).replace(hour=10)
            start = time.perf_counter()
            e = store.add_correction(db, 1 + i * 37, day, "out", actor="bench", note="bench", now=T0, **kw)
            store.remove_event(db, e.id, actor="bench", reason="bench", now=T0, **kw)
            times.append(time.perf_counter() - start)
    times.sort()
    return {"events": len(rows), "paired": paired, "median_ms": round(times[20] * 1000, 1),
            "p90_ms": round(times[36] * 1000, 1)}


def main() -> None:
    root = Path(sys.argv[1])
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    print(json.dumps({"code": kiosk.__file__, "purge": purge(root), "corrections": corrections(root)}))


if __name__ == "__main__":
    main()
