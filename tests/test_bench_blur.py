"""kiosk.bench_blur on the committed photos: what a walking-blurred first frame decides (real models)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from door_helpers import FACES

from kiosk.bench_blur import blur_study, format_study
from kiosk.config import Settings
from kiosk.evaluation.faces import list_dataset


@pytest.mark.slow
def test_blur_study_on_the_committed_photos(dlib_analyzer) -> None:
    people, strangers = list_dataset(FACES)
    settings = Settings()
    settings.expression.enabled = False
    result = blur_study(settings, people, strangers, lengths=(0, 25), analyzer=dlib_analyzer)
    assert result["people"] >= 3 and result["strangers"] == len(strangers) >= 2
    sharp, smeared = result["lengths"]["0"], result["lengths"]["25"]
    for row in (sharp, smeared):
        assert sum(v for k, v in row["known"].items() if k != "sharpness") == result["people"]
        assert sum(v for k, v in row["stranger"].items() if k != "sharpness") == result["strangers"]
        assert not row["known"].get("wrong") and not row["stranger"].get("accepted")
    assert sharp["known"].get("right", 0) >= 2  # sharp first frames of enrolled people decide alone, right
    assert sharp["known"]["sharpness"][1] > settings.attendance.start_sharpness
    # A 25 px smear: what is still found reads far less sharp, and nothing is decided on it alone.
    assert not smeared["known"].get("right") and not smeared["stranger"].get("rejected")
    assert "blur 25 px known" in format_study(result)


def test_blur_study_without_data_is_one_clear_error(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "kiosk.bench_blur", "--data", str(tmp_path / "none")],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 2
    assert run.stderr.startswith("error: ") and "people" in run.stderr and "Traceback" not in run.stderr
