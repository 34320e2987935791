"""deploy/build-model.sh chains its stages: each starts from the one before, distils when told, ships the last.

The training itself is covered by test_training.py; here a stand-in `kiosk` records its arguments
and writes the files a stage leaves, so the script's own logic runs for real in seconds.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "deploy" / "build-model.sh"

STAND_IN = """#!/usr/bin/env bash
echo "$*" >> "$CALLS"
out=""
while [[ $# -gt 0 ]]; do [[ $1 == --out ]] && out=$2; shift; done
[[ -z $out ]] && exit 0
mkdir -p "$(dirname "$out")"
echo model > "$out"; echo "sum  $(basename "$out")" > "$out.sha256"
echo {} > "$(dirname "$out")/expression_int8.report.json"; echo png > "$(dirname "$out")/confusion_test.png"
"""


STAGES_LINE = re.compile(r"^STAGES=\((.*)\)$", re.MULTILINE)


def _stages(script: Path) -> list[tuple[str, str, bool]]:
    """(epochs, learning rate, distil) per stage, as the script lists them."""
    listed = STAGES_LINE.search(script.read_text()).group(1)
    stages = []
    for entry in re.findall(r'"([^"]+)"', listed):
        epochs, rate, *rest = entry.split(":")
        stages.append((epochs, rate, rest == ["distill"]))
    return stages


def _script_with_stages(tmp_path: Path, stages: str | None) -> Path:
    """The shipped script, or a copy of it with another STAGES line."""
    if stages is None:
        return SCRIPT
    copy = tmp_path / "deploy" / "build-model.sh"
    copy.parent.mkdir()
    copy.write_text(STAGES_LINE.sub(f"STAGES=({stages})", SCRIPT.read_text()))
    return copy


@pytest.mark.parametrize("stages", [None, '"2:2e-3" "3:1e-3:distill" "1:5e-4"'])
def test_stages_chain_and_the_last_one_ships(tmp_path, stages):
    script = _script_with_stages(tmp_path, stages)
    stand_in = tmp_path / "kiosk"
    stand_in.write_text(STAND_IN)
    stand_in.chmod(0o755)
    models, work, calls = tmp_path / "models", tmp_path / "work", tmp_path / "calls.txt"
    models.mkdir()
    env = os.environ | {"KIOSK": str(stand_in), "MODELS": str(models), "CALLS": str(calls)}
    subprocess.run(["bash", str(script), str(tmp_path / "fer"), str(work)], check=True, env=env,
                   capture_output=True, timeout=60)
    lines = calls.read_text().splitlines()
    stages = _stages(script)
    assert len(lines) == len(stages) + 1 and lines[-1].startswith("evaluate expressions")
    for i, ((epochs, rate, distil), line) in enumerate(zip(stages, lines, strict=False)):
        assert f"--epochs {epochs} --learning-rate {rate}" in line
        assert f"--out {work}/stage{i + 1}/expression_int8.tflite" in line
        previous = f"{work}/stage{i}/expression_int8.tflite"
        assert (f"--init-from {previous}" in line) == (i > 0)
        assert (f"--distill-from {previous}" in line) == distil
        assert ("--test-data" in line) == (i == len(stages) - 1)
    assert (models / "expression_int8.tflite").read_text() == "model\n"
    assert (models / "expression_int8.report.json").exists() and (models / "confusion_test.png").exists()
