"""The door lock: at most one door service per database (an flock on a file beside it)."""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from kiosk.errors import KioskError

logger = logging.getLogger(__name__)


class DoorLock:
    """One door service per database: an flock on <database>.door-lock, held while the service runs.

    A second `kiosk run` on the same database would record every check-in twice (and fight over the
    camera and the screen port); it gets a KioskError naming the first one's pid instead. The lock is
    a file of its own (never the database: closing a descriptor on the database file would drop
    SQLite's POSIX locks) and goes with the process, also on a crash or a power cut.
    """

    def __init__(self, database_path: Path) -> None:
        self.path = Path(database_path).with_name(Path(database_path).name + ".door-lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock (creating the database folder if needed); KioskError when another process holds it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise KioskError(f"cannot create the door lock {self.path} ({exc.strerror or exc}); "
                             "the database folder must be writable by the user running kiosk") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise KioskError(f"another door service (pid {holder}) is already running on "
                             f"{self.path.with_suffix('')}; stop it first (systemctl stop kiosk)") from None
        except OSError as exc:  # a file system without flock: run unguarded rather than not at all
            logger.warning("cannot lock %s (%s); make sure only one door service uses this database",
                           self.path, exc)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd

    @property
    def held(self) -> bool:
        """True while this process holds the lock."""
        return self._fd is not None

    def release(self) -> None:
        """Let the next door service start (the lock file itself stays)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
