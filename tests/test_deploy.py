"""deploy/: the Pi install script (dry runs as real processes, shellcheck) and the example config."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from kiosk.config import CameraSettings, load_settings

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "deploy" / "install-pi.sh"
EXAMPLE = ROOT / "deploy" / "kiosk.example.yaml"

# Commands that change the system: in these tests they are stubs that log their calls.
MUTATING = ["apt-get", "useradd", "usermod", "runuser", "python3", "chown", "chmod"]


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture
def sandbox(tmp_path: Path) -> dict[str, Path]:
    """Fake PATH stubs plus install targets inside tmp_path."""
    fakebin = tmp_path / "fakebin"
    fakebin.mkdir()
    log = tmp_path / "mutations.log"
    for name in MUTATING:
        _stub(fakebin, name, f'echo "{name} $*" >> "{log}"')
    _stub(fakebin, "dpkg-query", '[ "$FAKE_INSTALLED" = 1 ] && echo "install ok installed" && exit 0; exit 1')
    _stub(
        fakebin,
        "id",
        'case "$1" in -u) [ "$FAKE_USER" = 1 ] && echo 999 && exit 0; exit 1;; '
        '-nG) echo "kiosk video"; exit 0;; esac; exit 1',
    )
    _stub(
        fakebin,
        "systemctl",
        f'if [ "$1" = is-enabled ]; then [ "$FAKE_ENABLED" = 1 ] && exit 0; exit 1; fi\n'
        f'echo "systemctl $*" >> "{log}"',
    )
    os_release = tmp_path / "os-release"
    os_release.write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\n')
    return {
        "root": tmp_path,
        "fakebin": fakebin,
        "log": log,
        "prefix": tmp_path / "opt" / "kiosk",
        "etc": tmp_path / "etc" / "kiosk",
        "state": tmp_path / "var" / "lib" / "kiosk",
        "units": tmp_path / "units",
        "os_release": os_release,
    }


def _run(sandbox: dict[str, Path], *args: str, **fake: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{sandbox['fakebin']}:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(sandbox["root"]),
        "LANG": "C.UTF-8",
        "KIOSK_PREFIX": str(sandbox["prefix"]),
        "KIOSK_ETC": str(sandbox["etc"]),
        "KIOSK_STATE": str(sandbox["state"]),
        "KIOSK_UNIT_DIR": str(sandbox["units"]),
        "KIOSK_OS_RELEASE": str(sandbox["os_release"]),
        **fake,
    }
    bash = shutil.which("bash") or "/bin/bash"
    return subprocess.run(
        [bash, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_help_and_bad_option(sandbox: dict[str, Path]) -> None:
    result = _run(sandbox, "--help")
    assert result.returncode == 0
    assert "--dry-run" in result.stdout and "Usage:" in result.stdout
    result = _run(sandbox, "--frobnicate")
    assert result.returncode == 2 and "unknown option: --frobnicate" in result.stderr


def test_refuses_to_change_anything_without_root(sandbox: dict[str, Path]) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root")
    result = _run(sandbox)
    assert result.returncode == 1 and "must run as root" in result.stderr


def test_dry_run_on_a_fresh_pi_lists_every_step_and_changes_nothing(sandbox: dict[str, Path]) -> None:
    before = _tree(sandbox["root"])
    result = _run(sandbox, "--dry-run", "--with-browser")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    prefix, etc, state, units = (str(sandbox[k]) for k in ("prefix", "etc", "state", "units"))
    expected = [
        "would run: apt-get update",
        "would run: apt-get install -y --no-install-recommends python3-venv python3-dev "
        "python3-picamera2 libopenblas0 chromium-browser",
        "would run: useradd --system --user-group --groups video",
        f"would run: install -d -m 0755 {prefix}",
        f"would run: install -d -m 0755 {etc}",
        f"would run: install -d -m 0750 -o kiosk -g kiosk {state}",
        f"would run: python3 -m venv --system-site-packages {prefix}/venv",
        f"would run: {prefix}/venv/bin/python -m pip install --disable-pip-version-check {ROOT}",
        f"would write: {prefix}/.source-sha256",
        "-m pip install --disable-pip-version-check --no-deps face-recognition==1.3.0",
        "-m pip install --disable-pip-version-check simplejpeg==1.9.0",
        f"would run: install -m 0640 -o root -g kiosk {EXAMPLE} {etc}/kiosk.yaml",
        f"would run: install -m 0644 {ROOT}/systemd/kiosk.service {units}/kiosk.service",
        f"would run: install -m 0644 {ROOT}/systemd/kiosk-web.service {units}/kiosk-web.service",
        "would run: systemctl daemon-reload",
        f"would run: runuser -u kiosk -- env -C {state} {prefix}/venv/bin/kiosk --config {etc}/kiosk.yaml db upgrade",
        "would run: systemctl enable kiosk.service",
        "would run: systemctl enable kiosk-web.service",
        "would run: systemctl restart kiosk.service kiosk-web.service",
    ]
    position = 0
    for line in expected:
        found = out.find(line, position)
        assert found >= 0, f"missing or out of order: {line}\n---\n{out}"
        position = found + len(line)
    assert "Dry run: nothing will be changed" in out
    assert not sandbox["log"].exists(), sandbox["log"].read_text()  # no command was run
    assert _tree(sandbox["root"]) == before  # nothing was created


def test_dry_run_on_an_installed_pi_has_nothing_to_do(sandbox: dict[str, Path]) -> None:
    """Everything in place (packages, user, venv, same source, config, units): only the
    idempotent db upgrade and start remain."""
    prefix, venv_bin = sandbox["prefix"], sandbox["prefix"] / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    versions = {"face-recognition": "1.3.0", "simplejpeg": "1.9.0"}
    cases = " ".join(f'{name}) echo "Version: {v}";;' for name, v in versions.items())
    _stub(venv_bin, "python", f'[ "$1 $2 $3" = "-m pip show" ] && case "$4" in {cases} esac; exit 0')
    _stub(venv_bin, "kiosk", "exit 0")
    files = sorted(
        p for p in [ROOT / "pyproject.toml", *(ROOT / "kiosk").rglob("*")]
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )
    lines = "".join(
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(ROOT)}\n"
        for p in sorted(files, key=lambda p: str(p.relative_to(ROOT)).encode())
    )
    (prefix / ".source-sha256").write_text(hashlib.sha256(lines.encode()).hexdigest() + "\n")
    sandbox["etc"].mkdir(parents=True)
    (sandbox["etc"] / "kiosk.yaml").write_text("site: {name: Mine}\n")
    sandbox["state"].mkdir(parents=True)
    sandbox["units"].mkdir()
    for unit in ("kiosk.service", "kiosk-web.service"):
        shutil.copy(ROOT / "systemd" / unit, sandbox["units"] / unit)

    result = _run(sandbox, "--dry-run", FAKE_INSTALLED="1", FAKE_USER="1", FAKE_ENABLED="1")
    assert result.returncode == 0, result.stderr
    actions = re.findall(r"would (?:run|write): (.*)", result.stdout)
    assert len(actions) == 2, result.stdout
    assert actions[0].endswith("db upgrade")
    assert actions[1] == "systemctl start kiosk.service kiosk-web.service"
    assert "kiosk from this source tree already installed" in result.stdout
    assert "exists; left as it is" in result.stdout
    assert (sandbox["etc"] / "kiosk.yaml").read_text() == "site: {name: Mine}\n"
    assert not sandbox["log"].exists()


def test_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed (apt-get install shellcheck)")
    result = subprocess.run(
        [shellcheck, "--severity=style", str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout


def test_script_is_strict_bash() -> None:
    text = SCRIPT.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert os.access(SCRIPT, os.X_OK)


# -- example config -------------------------------------------------------------------------


def test_example_config_loads() -> None:
    settings = load_settings(EXAMPLE, environ={})
    assert settings.camera.type == "picamera2"
    assert str(settings.database.path) == "/var/lib/kiosk/kiosk.db"  # the unit's writable dir
    assert yaml.safe_load(EXAMPLE.read_text())  # plain YAML too


def test_example_config_commented_cameras_are_valid() -> None:
    """The commented-out camera alternatives are valid when uncommented."""
    text = EXAMPLE.read_text()
    pairs = re.findall(r"#\s+type: (\w+)\n\s*#\s+options: (\{[^}]*\})", text)
    assert {t for t, _ in pairs} == {"opencv", "replay"}
    for camera_type, options in pairs:
        CameraSettings(type=camera_type, options=yaml.safe_load(options))
