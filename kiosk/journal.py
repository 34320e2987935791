"""The check-in journal: an fsync'd, append-only JSON-lines file holding every door decision
until the database has it.

One line per record, each ending in a newline:
  {"op": "event", "id": "<uuid hex>", "person_id": 3, "at": "<ISO UTC>", "kind": "in", "fields": {...}}
  {"op": "done", "id": "<uuid hex>", "event_id": 17}       the database holds it (event row 17)
  {"op": "dropped", "id": "<uuid hex>", "reason": "..."}   it can never go in (person deleted)
An "event" line is fsync'd before the database write is tried, so a check-in survives a
crash, a kill -9 or a power cut at any point. "done"/"dropped" lines are not fsync'd: losing one
only means the entry is looked up in the database again at the next start (the writer finds
it there and does not insert it twice).

A torn last line (a write cut off by a power cut, or a partial write on a full disk) is cut
away when the file is opened: its "event" write never completed, so its database write was
never tried. Only this module reads or writes the file.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kiosk.atomic_write import replace_file
from kiosk.clock import as_utc

logger = logging.getLogger(__name__)

JOURNAL_NAME = "checkins.journal"
# Rewrite the file without finished entries once it is bigger than this (bytes) and all is done.
COMPACT_BYTES = 256 * 1024


@dataclass(frozen=True)
class JournalEntry:
    """One door decision: who (None: unknown face), when (aware UTC), in/out/unknown, event fields."""

    id: str
    person_id: int | None
    at: datetime
    kind: str
    fields: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(cls, person_id: int | None, at: datetime, kind: str, **fields: Any) -> JournalEntry:
        """A fresh entry with a random unique id."""
        return cls(uuid.uuid4().hex, person_id, as_utc(at), kind, dict(fields))

    def to_line(self) -> bytes:
        """The entry as one JSON line (UTF-8, newline-terminated)."""
        data = {"op": "event", "id": self.id, "person_id": self.person_id, "at": self.at.isoformat(),
                "kind": self.kind, "fields": self.fields}
        return _line(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JournalEntry:
        """Parse an "event" record; KeyError/ValueError/TypeError when malformed."""
        person = data["person_id"]
        return cls(str(data["id"]), None if person is None else int(person),
                   as_utc(datetime.fromisoformat(data["at"])), str(data["kind"]), dict(data.get("fields") or {}))


def _line(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, separators=(",", ":"), default=str) + "\n").encode("utf-8")


class Journal:
    """The journal file at path; open() it, append() before each database write, mark_done() after."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    # -- reading ---------------------------------------------------------------------------------
    def open(self) -> list[JournalEntry]:
        """Open (creating) the file, cut a torn last line, and return the entries not yet done, oldest first.

        Raises OSError when the file cannot be opened or read (the caller keeps entries in memory).
        """
        self.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        try:
            data = _read_all(fd)
            complete = data.rfind(b"\n") + 1
            if complete < len(data):
                logger.warning("journal %s: cutting a torn last line (%d bytes) left by a crash",
                               self.path, len(data) - complete)
                os.ftruncate(fd, complete)
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return _pending(data[:complete], self.path)

    # -- writing ---------------------------------------------------------------------------------
    def append(self, entry: JournalEntry) -> None:
        """Append an entry's line and fsync it (durable on return); OSError when it could not be written."""
        self._append(entry.to_line(), sync=True)

    def mark_done(self, entry_id: str, event_id: int) -> None:
        """Note that the database holds the entry (as event_id); not fsync'd (see the module doc)."""
        self._append(_line({"op": "done", "id": entry_id, "event_id": event_id}), sync=False)

    def mark_dropped(self, entry_id: str, reason: str) -> None:
        """Note that the entry can never be written (e.g. the person was deleted); fsync'd."""
        self._append(_line({"op": "dropped", "id": entry_id, "reason": reason}), sync=True)

    def compact(self, pending: list[JournalEntry]) -> None:
        """Atomically replace the file by one holding only `pending` (when it has grown past COMPACT_BYTES)."""
        if self._fd is None or os.fstat(self._fd).st_size <= COMPACT_BYTES:
            return
        replace_file(self.path, b"".join(entry.to_line() for entry in pending), mode=0o640)
        _fsync_dir(self.path.parent)  # best effort, unlike replace_file's sync_folder
        self.open()
        logger.info("journal %s compacted (%d entries still pending)", self.path, len(pending))

    def close(self) -> None:
        """Close the file (entries written so far stay)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _append(self, line: bytes, *, sync: bool) -> None:
        """Write one whole line at the end; a partial write (disk full) is cut off again before raising."""
        if self._fd is None:
            self.open()
        assert self._fd is not None
        start = os.fstat(self._fd).st_size
        try:
            view = memoryview(line)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            if sync:
                os.fsync(self._fd)
        except OSError:
            try:
                os.ftruncate(self._fd, start)
            except OSError:
                logger.debug("journal %s: cannot cut a partial line (cut at the next open)", self.path)
            raise


def _read_all(fd: int) -> bytes:
    """The whole file behind fd from its start."""
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 1 << 16, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _pending(data: bytes, path: Path) -> list[JournalEntry]:
    """Entries from complete journal lines that have no "done"/"dropped" line after them, in file order."""
    entries: dict[str, JournalEntry] = {}
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            record = json.loads(raw)
            if record["op"] == "event":
                entry = JournalEntry.from_dict(record)
                entries.setdefault(entry.id, entry)
            elif record["op"] in ("done", "dropped"):
                entries.pop(str(record["id"]), None)
        except (ValueError, KeyError, TypeError) as exc:
            logger.error("journal %s line %d is damaged and skipped (%s): %r", path, number, exc, raw[:200])
    return list(entries.values())


def _fsync_dir(folder: Path) -> None:
    """fsync a directory so a rename in it survives a power cut (best effort)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
