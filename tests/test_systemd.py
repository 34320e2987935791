"""systemd integration: the unit files and the sd_notify writer (over real AF_UNIX sockets)."""

from __future__ import annotations

import configparser
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiosk import sdnotify

SYSTEMD_DIR = Path(__file__).resolve().parents[1] / "systemd"
UNITS = ["kiosk.service", "kiosk-web.service", "kiosk-central.service"]


def _parse(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True, comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    return parser


# -- unit files -----------------------------------------------------------------------------


def test_kiosk_service_keys() -> None:
    unit = _parse(SYSTEMD_DIR / "kiosk.service")
    service = unit["Service"]
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "WatchdogSec": "30",
        "Restart": "on-failure",
        "RestartSec": "5",
        "User": "kiosk",
        "Group": "kiosk",
        "SupplementaryGroups": "video",
        "StateDirectory": "kiosk",
        "ConfigurationDirectory": "kiosk",
        "ExecStart": "/opt/kiosk/venv/bin/kiosk --config /etc/kiosk/kiosk.yaml run",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "PrivateDevices": "no",  # libcamera needs /dev/media*, /dev/v4l-subdev*, /dev/dma_heap/*
        "ReadWritePaths": "/var/lib/kiosk",
    }
    for key, value in expected.items():
        assert service.get(key) == value, key
    # A device allow-list would lock libcamera out of nodes whose numbers vary by board.
    assert "DevicePolicy" not in service and "DeviceAllow" not in service
    assert "AF_NETLINK" in service["RestrictAddressFamilies"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_kiosk_web_service_keys() -> None:
    unit = _parse(SYSTEMD_DIR / "kiosk-web.service")
    service = unit["Service"]
    assert service["Type"] in ("simple", "notify")
    assert service["ExecStart"] == "/opt/kiosk/venv/bin/kiosk --config /etc/kiosk/kiosk.yaml serve"
    assert service["User"] == "kiosk" and service["Group"] == "kiosk"
    assert service["StateDirectory"] == "kiosk"
    # the state dir, and where daily off-site copies go ("-": no error when nothing is mounted there)
    assert service["ReadWritePaths"].split() == ["/var/lib/kiosk", "-/var/backups/kiosk"]
    example = (SYSTEMD_DIR.parent / "deploy" / "kiosk.example.yaml").read_text()
    assert "offsite_dir: /var/backups/kiosk" in example
    assert service["ProtectSystem"] == "strict" and service["PrivateDevices"] == "yes"
    assert service["Restart"] == "on-failure"
    assert "SupplementaryGroups" not in service  # no camera access for the web app
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_kiosk_central_service_keys() -> None:
    unit = _parse(SYSTEMD_DIR / "kiosk-central.service")
    service = unit["Service"]
    assert service["ExecStart"] == "/opt/kiosk/venv/bin/kiosk --config /etc/kiosk/central.yaml serve"
    assert service["User"] == "kiosk" and service["Group"] == "kiosk"
    assert service["Restart"] == "on-failure" and int(service["RestartSec"]) > 0
    # started after PostgreSQL (Debian's clusters order themselves before postgresql.service)
    assert "postgresql.service" in unit["Unit"]["After"].split()
    assert "postgresql.service" in unit["Unit"]["Wants"].split()
    assert "Requires" not in unit["Unit"]  # a database restart must not stop the central for good
    assert service["ReadWritePaths"].split() == ["/var/lib/kiosk"]
    assert "SupplementaryGroups" not in service  # no camera on a server
    # every hardening setting of the web app, with the same value
    web = _parse(SYSTEMD_DIR / "kiosk-web.service")["Service"]
    hardening = [key for key in web if key.startswith(("Protect", "Private", "Restrict", "NoNew", "Lock",
                                                      "Capability", "Ambient", "SystemCall", "UMask"))]
    assert len(hardening) >= 20, hardening
    for key in hardening:
        assert service.get(key) == web[key], key
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def _verify(text: str, name: str, tmp_path: Path) -> tuple[int, list[str], str]:
    """Run `systemd-analyze verify` on a copy of the unit whose ExecStart is /bin/true."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (apt-get install systemd)")
    true = shutil.which("true") or "/bin/true"
    # verify checks that ExecStart exists; the venv is only there on the Pi, so point the
    # copy at /bin/true and keep everything else as shipped.
    lines = [
        f"ExecStart={true}" if line.startswith("ExecStart=") else line for line in text.splitlines()
    ]
    unit = tmp_path / name
    unit.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = subprocess.run(
        [analyze, "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0"},
        check=False,
    )
    output = result.stdout + result.stderr
    # verify exits 0 on unknown keys and bad values, so read its messages about our file;
    # messages about other units pulled in by name (time-sync.target ...) are ignored.
    problems = [line for line in output.splitlines() if line.strip() and name in line]
    return result.returncode, problems, output


@pytest.mark.parametrize("name", UNITS)
def test_systemd_analyze_verify(name: str, tmp_path: Path) -> None:
    text = (SYSTEMD_DIR / name).read_text(encoding="utf-8")
    returncode, problems, output = _verify(text, name, tmp_path)
    assert returncode == 0 and not problems, output


def test_systemd_analyze_verify_catches_mistakes(tmp_path: Path) -> None:
    text = (SYSTEMD_DIR / "kiosk.service").read_text(encoding="utf-8")
    text = text.replace("WatchdogSec=30", "WatchdogSec=thirty").replace("ProtectHome=", "ProtectHomes=")
    _, problems, _ = _verify(text, "kiosk.service", tmp_path)
    assert len(problems) == 2, problems


# -- sd_notify ------------------------------------------------------------------------------


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A bound AF_UNIX datagram socket standing in for systemd; NOTIFY_SOCKET points at it."""
    folder = tempfile.mkdtemp(prefix="sdn", dir="/tmp")  # short: socket paths max ~107 bytes
    path = os.path.join(folder, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2.0)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    try:
        yield sock
    finally:
        sock.close()
        shutil.rmtree(folder, ignore_errors=True)


def test_messages_reach_the_socket(notify_socket: socket.socket) -> None:
    assert sdnotify.ready("camera ok,\nmodels loaded")
    assert notify_socket.recv(4096) == b"READY=1\nSTATUS=camera ok, models loaded"
    assert sdnotify.watchdog()
    assert notify_socket.recv(4096) == b"WATCHDOG=1"
    assert sdnotify.status("3 check-ins today")
    assert notify_socket.recv(4096) == b"STATUS=3 check-ins today"
    assert sdnotify.stopping()
    assert notify_socket.recv(4096) == b"STOPPING=1"


def test_abstract_namespace_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"kiosk-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2.0)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_noop_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.ready() is False
    assert sdnotify.watchdog() is False
    assert sdnotify.stopping() is False
    assert sdnotify.status("x") is False


def test_missing_socket_is_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/tmp/no-such-dir-kiosk/notify")
    assert sdnotify.watchdog() is False


def test_watchdog_interval() -> None:
    assert sdnotify.watchdog_interval({}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 30.0
    pid = str(os.getpid())
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": pid}) == 30.0
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "junk"}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "0"}) is None


def test_systemd_notify_tool_agrees(notify_socket: socket.socket) -> None:
    """Our parsing of NOTIFY_SOCKET matches systemd's own client, when it is installed."""
    tool = shutil.which("systemd-notify")
    if tool is None:
        pytest.skip("systemd-notify not installed")
    # --no-block: send and return (systemd 252+ otherwise waits 5 s for a barrier reply that a
    # plain socket never sends)
    subprocess.run([tool, "--no-block", "--status=hello"], check=False, timeout=30)
    assert notify_socket.recv(4096).startswith(b"STATUS=hello")
