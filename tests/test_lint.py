"""The code follows the project's lint rules (pyproject [tool.ruff.lint]); ruff comes with the test extra."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT


def test_ruff_is_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    result = subprocess.run([ruff, "check", "kiosk", "tests"], cwd=ROOT, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_is_clean():
    """Types as a gate: mypy strict on kiosk/ (training gradual), settings in pyproject [tool.mypy]."""
    mypy = Path(sys.executable).with_name("mypy")
    if not mypy.exists():
        pytest.skip("mypy is not installed (pip install -e '.[test]')")
    result = subprocess.run([str(mypy)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr


def test_a_standalone_kiosk_never_loads_the_postgresql_driver() -> None:
    """psycopg costs a process about 9 MB; only a database.url loads it (a bounded-memory web test failed
    at 303 MB against 300 when a report module imported it at the top)."""
    code = ("import sys, kiosk.web, kiosk.store, kiosk.reports, kiosk.cli, kiosk.service; "
            "print(sorted(m for m in sys.modules if m == 'psycopg' or m.startswith('psycopg.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
