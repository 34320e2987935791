"""Config faults found in outside testing: an empty file that `config check` passed but `run`
refused, duplicate YAML keys silently overridden, expression analysis on by default."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import CliResult, run_cli

from kiosk.config import ConfigError, Settings, door_problems, load_settings

pytestmark = pytest.mark.reliability


def _check(path: Path) -> CliResult:
    """`kiosk config check PATH`, in this process."""
    return run_cli("config", "check", str(path))


def test_empty_config_does_not_pass_check_when_run_would_refuse_it(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    proc = _check(empty)
    assert proc.returncode == 2, proc.stdout
    assert "camera.options: path: required for camera type replay" in proc.stderr
    assert "kiosk run" in proc.stderr and "Traceback" not in proc.stderr


def test_a_config_with_a_camera_passes_check(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("camera:\n  type: opencv\n  options:\n    device: 0\n")
    proc = _check(good)
    assert proc.returncode == 0, proc.stderr
    assert door_problems(load_settings(good)) == []


def test_duplicate_keys_are_an_error_naming_both_lines(tmp_path):
    dup = tmp_path / "dup.yaml"
    dup.write_text("retention:\n  attendance_days: 400\nsite:\n  name: HQ\nretention:\n  attendance_days: 1\n")
    with pytest.raises(ConfigError, match=r"lines 1 and 5: the key 'retention' is given twice"):
        load_settings(dup, environ={})
    proc = _check(dup)
    assert proc.returncode == 2 and "lines 1 and 5" in proc.stderr and "Traceback" not in proc.stderr


def test_duplicate_nested_keys_too(tmp_path):
    dup = tmp_path / "dup.yaml"
    dup.write_text("site:\n  name: HQ\n  timezone: UTC\n  name: Other\n")
    with pytest.raises(ConfigError, match=r"lines 2 and 4: the key 'name'"):
        load_settings(dup, environ={})


def test_expression_analysis_is_off_unless_turned_on(tmp_path):
    assert Settings().expression.enabled is False
    path = tmp_path / "k.yaml"
    path.write_text("site:\n  name: HQ\n")
    assert load_settings(path, environ={}).expression.enabled is False
    path.write_text("expression:\n  enabled: true\n")
    assert load_settings(path, environ={}).expression.enabled is True
