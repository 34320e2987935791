"""Tiny sd_notify(3) writer: tell systemd we are ready, alive, stopping, or what we are doing.

Every function is a no-op (returns False) when NOTIFY_SOCKET is unset, i.e. not under systemd.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

logger = logging.getLogger(__name__)


def notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send one datagram of newline-separated KEY=VALUE pairs; True when it was sent."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    elif not address.startswith("/"):
        logger.debug("unsupported NOTIFY_SOCKET %r", address)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
    except OSError as exc:
        logger.debug("sd_notify %r failed: %s", message, exc)
        return False
    return True


def ready(status_text: str | None = None) -> bool:
    """READY=1: start-up finished (Type=notify units count as started from here)."""
    message = "READY=1"
    if status_text:
        message += "\nSTATUS=" + _one_line(status_text)
    return notify(message)


def watchdog() -> bool:
    """WATCHDOG=1: still alive; send at least every watchdog_interval() / 2 seconds."""
    return notify("WATCHDOG=1")


def stopping(status_text: str | None = None) -> bool:
    """STOPPING=1: shutting down on purpose."""
    message = "STOPPING=1"
    if status_text:
        message += "\nSTATUS=" + _one_line(status_text)
    return notify(message)


def status(text: str) -> bool:
    """STATUS=...: one line shown by `systemctl status`."""
    return notify("STATUS=" + _one_line(text))


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """The watchdog timeout in seconds from WATCHDOG_USEC, or None when no watchdog is set."""
    env = os.environ if environ is None else environ
    raw = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None  # meant for another process (e.g. our parent)
    try:
        usec = int(raw)
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None


def _one_line(text: str) -> str:
    return " ".join(text.split())
