"""kiosk/bench_central/report_runs.py: the year report timed alone on one loaded database, the fast
path against the Python path in real `kiosk report range` processes (tiny sizes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from kiosk.bench_central.central import PYTHON_PATH


def test_tiny_report_runs_time_both_paths_and_compare_their_bytes(pg_server) -> None:
    url = pg_server.create_database("kiosk_report_runs")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK")}
    proc = subprocess.run([sys.executable, "-m", "kiosk.bench_central.report_runs", "--url", url, "--runs", "2",
                           "--baseline-runs", "1", "--people", "9", "--doors", "3", "--sites", "2", "--days", "10"],
                          capture_output=True, text=True, timeout=300, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["same_bytes"] is True
    assert r["fast"]["rows"] == r["python_path"]["rows"] == r["expected_rows"] > 0
    assert len(r["fast"]["runs_s"]) == 2 and len(r["python_path"]["runs_s"]) == 1
    assert r["fast"]["median_s"] > 0 and r["fast"]["peak_rss_mb"] > 0


def test_the_baseline_command_turns_the_fast_path_off() -> None:
    code = PYTHON_PATH.replace("from kiosk.cli import main; sys.argv[0] = 'kiosk'; main()",
                               "print(f.fast_path_applies(None, None))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"
