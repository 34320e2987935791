"""`kiosk demo` runs the whole job on the shipped photos: as a real process (slow), and its refusal
of a used folder in this process."""

from __future__ import annotations

import sqlite3

import pytest
from cli_helpers import run_cli, run_cli_process


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    proc = run_cli_process("demo", "--dir", str(tmp_path / "d"), timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for line in ("Debbie Reynolds checked in", "Venus Williams checked in", "Ray Romano checked in",
                 "not recognised, please see the admin", "Debbie Reynolds checked out"):
        assert line in out
    assert "14 min" in out  # Ray arrives 09:14, workday starts 09:00
    con = sqlite3.connect(tmp_path / "d" / "kiosk.db")
    kinds = sorted(k for (k,) in con.execute("SELECT kind FROM attendance_events"))
    assert kinds == ["in", "in", "in", "out", "out", "out", "unknown"]
    # Ray did not consent: none of his events carries expression data.
    rows = con.execute("SELECT e.expression_label FROM attendance_events e JOIN people p ON p.id = e.person_id "
                       "WHERE p.employee_id = 'E003'").fetchall()
    assert rows and all(label is None for (label,) in rows)


def test_demo_refuses_a_used_folder(tmp_path):
    (tmp_path / "kiosk.db").write_bytes(b"")
    proc = run_cli("demo", "--dir", str(tmp_path))
    assert proc.returncode == 1
    assert "exists; give the demo an empty folder" in proc.stderr
    assert "Traceback" not in proc.stderr
