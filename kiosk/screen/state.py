"""What the door screen shows now, as plain data (thread-safe): greetings, prompts, idle."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from kiosk.vocabulary import EventKind

MessageKind = Literal["idle", "in", "out", "again", "unknown", "hint", "offline", "enrol"]

IDLE_TITLE = "Look at the camera"
IDLE_SUB = "to check in or out"
# Shown under every message while the database is not taking check-ins (they are journalled).
DB_FAULT_NOTICE = "Check-ins are being kept on this kiosk - please tell the admin (database fault)"
# Shown under every message on a door of a central server that the central refuses (revoked), or that has
# not reached it for a long time (central.offline_notice_after_s); check-ins go on locally.
REVOKED_NOTICE = "Your check-ins are saved on this kiosk - it is not connected to the office system (please tell the admin)"
OFFLINE_NOTICE = "Your check-ins are saved on this kiosk and will be sent when the connection is back"


@dataclass(frozen=True)
class Message:
    """One screen message: kind (colour on the page), big title, smaller subtitle."""

    kind: MessageKind
    title: str
    subtitle: str = ""


def greeting_word(local: datetime) -> str:
    """'Good morning' before 12:00, 'Good afternoon' before 18:00, else 'Good evening'."""
    if local.hour < 12:
        return "Good morning"
    if local.hour < 18:
        return "Good afternoon"
    return "Good evening"


def display_name(name: str, first_name_only: bool = True) -> str:
    """The name to show: the first word of it, or all of it."""
    name = " ".join(name.split())
    return name.split(" ")[0] if first_name_only and name else name


def message_for(kind: EventKind | Literal["again"], name: str | None, local: datetime) -> Message:
    """The message for a decision (the event kind, or "again": already recorded) at local time (aware,
    site zone); name already shortened."""
    hhmm = local.strftime("%H:%M")
    if kind == EventKind.IN:
        return Message("in", f"{greeting_word(local)}, {name}", f"Checked in {hhmm}")
    if kind == EventKind.OUT:
        return Message("out", f"Goodbye, {name}", f"Checked out {hhmm}")
    if kind == "again":
        return Message("again", f"Hello, {name}", "Already recorded - no need to check in again")
    return Message("unknown", "Not recognised", "Please see the admin")


class ScreenState:
    """The current message and a short history; messages fall back to idle after message_s.

    `clock` gives monotonic seconds (real time: the screen is for people, even in a replay).
    """

    def __init__(self, message_s: float = 5.0, history: int = 20,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.message_s = message_s
        self._clock = clock
        self._lock = threading.Lock()
        self._current = Message("idle", IDLE_TITLE, IDLE_SUB)
        self._shown_at = clock()
        self._seq = 0
        self._history: deque[dict[str, Any]] = deque(maxlen=history)
        self._hint: str | None = None
        self._offline = False
        self._enrolment: Message | None = None
        self._db_fault = False
        self._central_notice = ""

    def show(self, message: Message) -> None:
        """Put a greeting/notice on screen now (kept for message_s seconds)."""
        with self._lock:
            self._seq += 1
            self._current = message
            self._shown_at = self._clock()
            self._history.append({"seq": self._seq, **asdict(message)})

    def set_hint(self, hint: str | None) -> None:
        """A prompt shown instead of idle while no greeting is up (e.g. "come closer")."""
        with self._lock:
            self._hint = hint

    def set_enrolment(self, message: Message | None) -> None:
        """Enrolment at the kiosk in progress: this stays up (instead of idle or a hint) until None."""
        with self._lock:
            self._enrolment = message

    def set_offline(self, offline: bool) -> None:
        """Camera missing: say so instead of "look at the camera"."""
        with self._lock:
            self._offline = offline

    def set_db_fault(self, fault: bool) -> None:
        """The database is not taking check-ins (they wait in the journal): add a notice for the admin."""
        with self._lock:
            self._db_fault = fault

    def set_central_notice(self, notice: str | None) -> None:
        """A door of a central: REVOKED_NOTICE, OFFLINE_NOTICE or None (connected), shown under every message."""
        with self._lock:
            self._central_notice = notice or ""

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready: kind, title, subtitle, seq, db_fault, notice (the database fault's first, else the
        central link's), central_notice, and the recent messages (oldest first)."""
        with self._lock:
            fresh = self._current.kind != "idle" and self._clock() - self._shown_at < self.message_s
            if fresh:
                message = self._current
            elif self._offline:
                message = Message("offline", "Camera offline", "Please see the admin")
            elif self._enrolment:
                message = self._enrolment
            elif self._hint:
                message = Message("hint", self._hint[:1].upper() + self._hint[1:], "")
            else:
                message = Message("idle", IDLE_TITLE, IDLE_SUB)
            return {**asdict(message), "seq": self._seq, "db_fault": self._db_fault,
                    "notice": DB_FAULT_NOTICE if self._db_fault else self._central_notice,
                    "central_notice": self._central_notice, "history": list(self._history)}
