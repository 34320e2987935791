"""EventOutbox: the door's EventLog that never loses or doubles a check-in when the database fails.

Every decision is first appended to the journal (kiosk.journal, fsync'd), then written to the
database. When the database cannot take it (locked past busy_timeout, disk full, read-only,
I/O error) the entry stays pending, in memory and in the journal, and flush() retries the
pending entries in order with capped exponential back-off (RETRY_INITIAL_S doubling up to
RETRY_MAX_S seconds). Before inserting, the writer looks for the same event (person, time,
kind, device) in the database, so an entry whose "done" mark was lost is not inserted twice.
New decisions queue behind older pending ones (order kept; the door does not wait on a locked
database at every arrival).

last_event() merges the database's answer with what this process journalled, so cooldowns and
in/out pairing keep working while the database is unavailable. When even the journal cannot be
written (the state folder's disk is full too) entries are kept in memory and retried; the
fault is reported, and such entries are lost only if the process dies before the disk recovers.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kiosk import store
from kiosk.backoff import BackoffDelays
from kiosk.errors import PersonNotFound, StoreError
from kiosk.journal import Journal, JournalEntry
from kiosk.store import EventInfo

logger = logging.getLogger(__name__)

RETRY_INITIAL_S = 1.0  # seconds before the first retry after a failed database write
RETRY_MAX_S = 30.0  # longest wait between retries, seconds
PENDING_ID = 0  # EventInfo.id of an event journalled but not yet in the database (rows start at 1)


@dataclass(frozen=True)
class OutboxFault:
    """Why the database (or the journal) is not taking events, since when (aware UTC)."""

    error: str
    since: datetime
    journal_error: str | None = None


class EventOutbox:
    """EventLog on the database through the journal; flush() when due, fault says what is wrong."""

    def __init__(
        self,
        db: store.Database,
        device_id: str,
        journal: Journal,
        *,
        wall_clock: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
        on_recorded: Callable[[JournalEntry, EventInfo], None] | None = None,
    ) -> None:
        self.db = db
        self.device_id = device_id
        self.journal = journal
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._on_recorded = on_recorded
        self._pending: deque[JournalEntry] = deque()
        self._latest: dict[int, EventInfo] = {}  # person id -> latest event this process decided
        self._decided_until: dict[int, datetime] = {}  # person id -> latest time of any of those
        self._delays = BackoffDelays(RETRY_INITIAL_S, RETRY_MAX_S)
        self._next_try = 0.0
        self._db_error: str | None = None
        self._journal_error: str | None = None
        self._fault_since: datetime | None = None
        self.attempts_failed = 0
        self.dropped = 0
        # True: record() only journals; the caller shows the decision, then calls write_new().
        self.defer_writes = False

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> int:
        """Load the entries a previous run left pending and try to write them now; how many were loaded."""
        try:
            loaded = self.journal.open()
        except OSError as exc:
            self._journal_failed(exc)
            return 0
        self._pending.extend(loaded)
        for entry in loaded:
            self._remember(entry, PENDING_ID)
        if loaded:
            logger.warning("journal %s: %d check-in(s) from an earlier run not yet in the database; "
                           "writing them now", self.journal.path, len(loaded))
        self.flush(force=True)
        return len(loaded)

    def close(self) -> None:
        """One last write attempt, then close the journal (pending entries stay in it for the next start)."""
        self.flush(force=True)
        if self._pending:
            logger.warning("stopping with %d check-in(s) not yet in the database; they are in the "
                           "journal %s and are written at the next start", len(self._pending), self.journal.path)
        self.journal.close()

    # -- EventLog --------------------------------------------------------------------------------
    def last_event(self, person_id: int) -> EventInfo | None:
        """The person's latest event: the one this process decided last (pending or not), unless the
        database holds a later one this process did not make (e.g. a correction from the web app).

        "Last" is in the order decisions were made, so in/out pairing survives a wall clock that
        stepped back (the database orders by time).
        """
        latest = self._latest.get(person_id)
        try:
            stored = store.last_event_for(self.db, person_id)
        except StoreError as exc:
            logger.warning("cannot read person %s's last event (%s); using what this kiosk remembers",
                           person_id, exc)
            return latest
        if latest is None:
            return stored
        if stored is not None and stored.occurred_at > self._decided_until[person_id]:
            return stored
        return latest

    def record(self, person_id: int | None, at: datetime, kind: str, **fields: Any) -> EventInfo:
        """Journal the event, then write it unless older entries wait or defer_writes; id PENDING_ID
        when not yet in the database."""
        entry = JournalEntry.new(person_id, at, kind, **fields)
        self._pending.append(entry)
        self._journal(entry)
        info = self._remember(entry, PENDING_ID)
        if self.defer_writes:
            return info
        return self.write_new().get(entry.id, info)

    def write_new(self) -> dict[str, EventInfo]:
        """After record(): write now when the database was fine (no older entries wait), else leave
        it to the back-off; {entry id: stored event}."""
        return self.flush(force=self._db_error is None)

    # -- writing ---------------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Entries decided but not yet in the database."""
        return len(self._pending)

    @property
    def fault(self) -> OutboxFault | None:
        """The current database/journal fault, or None when all is well."""
        if self._db_error is None and self._journal_error is None:
            return None
        since = self._fault_since or self._wall_clock()
        return OutboxFault(self._db_error or "", since, self._journal_error)

    def flush(self, force: bool = False) -> dict[str, EventInfo]:
        """Write pending entries in order when a retry is due (or force); {entry id: stored event}."""
        written: dict[str, EventInfo] = {}
        if not self._pending or (not force and self._monotonic() < self._next_try):
            return written
        if self._journal_error is not None:
            self._rewrite_journal()
        while self._pending:
            entry = self._pending[0]
            try:
                event = self._write(entry)
            except PersonNotFound as exc:
                self._drop(entry, str(exc))
                continue
            except StoreError as exc:
                self._db_failed(exc)
                return written
            except Exception as exc:  # noqa: BLE001 - whatever the store raises, the door keeps the entry
                logger.exception("unexpected error writing a check-in (kept, retried)")
                self._db_failed(exc)
                return written
            self._pending.popleft()
            written[entry.id] = event
            self._mark_done(entry, event)
        self._db_ok()
        return written

    def _write(self, entry: JournalEntry) -> EventInfo:
        """The entry's event in the database: the one already there, or a new row."""
        existing = self._find(entry)
        if existing is not None:
            logger.info("journal entry %s is already in the database (event %d)", entry.id, existing.id)
            return existing
        return store.record_event(self.db, entry.person_id, entry.at, entry.kind, self.device_id,
                                  **entry.fields)

    def _find(self, entry: JournalEntry) -> EventInfo | None:
        """The event of this device for the same person, kind and instant, if the database has it."""
        rows = store.events_between(self.db, entry.at, entry.at + timedelta(microseconds=1),
                                    person_id=entry.person_id)
        for row in rows:
            if (row.person_id, row.kind, row.device_id, row.occurred_at) == (
                    entry.person_id, entry.kind, self.device_id, entry.at):
                return row
        return None

    def _mark_done(self, entry: JournalEntry, event: EventInfo) -> None:
        if entry.person_id is not None:
            latest = self._latest.get(entry.person_id)
            if latest is not None and latest.occurred_at == event.occurred_at:
                self._latest[entry.person_id] = event
        try:
            self.journal.mark_done(entry.id, event.id)
        except OSError as exc:  # the lookup in _write keeps it from being inserted twice later
            logger.warning("journal: cannot mark entry %s done (%s)", entry.id, exc)
        if self._on_recorded is not None:
            self._on_recorded(entry, event)

    def _drop(self, entry: JournalEntry, reason: str) -> None:
        """An entry the database can never take (its person was deleted): note it and move on."""
        self._pending.popleft()
        self.dropped += 1
        logger.error("check-in %s of person %s at %s dropped: %s", entry.id, entry.person_id,
                     entry.at.isoformat(), reason)
        try:
            self.journal.mark_dropped(entry.id, reason)
        except OSError as exc:
            logger.warning("journal: cannot mark entry %s dropped (%s)", entry.id, exc)

    def _journal(self, entry: JournalEntry) -> None:
        """Append the entry to the journal; after a journal failure, every pending entry again."""
        if self._journal_error is not None:
            self._rewrite_journal()
            return
        try:
            self.journal.append(entry)
        except OSError as exc:
            self._journal_failed(exc)

    def _rewrite_journal(self) -> None:
        """After a journal failure: append the entries that only live in memory (duplicates are ignored on read)."""
        try:
            self.journal.open()
            for entry in self._pending:
                self.journal.append(entry)
        except OSError as exc:
            self._journal_failed(exc)
            return
        logger.info("journal %s writable again", self.journal.path)
        self._journal_error = None
        if self._db_error is None:
            self._fault_since = None

    # -- state -----------------------------------------------------------------------------------
    def _remember(self, entry: JournalEntry, event_id: int) -> EventInfo:
        info = EventInfo(id=event_id, person_id=entry.person_id, occurred_at=entry.at, kind=entry.kind,
                         device_id=self.device_id)
        if entry.person_id is not None:
            self._latest[entry.person_id] = info
            until = self._decided_until.get(entry.person_id)
            self._decided_until[entry.person_id] = entry.at if until is None else max(until, entry.at)
        return info

    def _db_failed(self, exc: Exception) -> None:
        self.attempts_failed += 1
        message = str(exc) or type(exc).__name__
        if self._db_error != message:
            logger.error("database not taking check-ins (%s); %d kept in the journal, retrying", message,
                         len(self._pending))
        self._db_error = message
        self._fault_since = self._fault_since or self._wall_clock()
        self.db.close()  # fresh connections next time (a file made writable again, a reset device)
        self._next_try = self._monotonic() + self._delays.next_s()

    def _db_ok(self) -> None:
        if self._db_error is not None:
            logger.info("database taking check-ins again")
        self._db_error = None
        self._delays.reset()
        self._next_try = 0.0
        if self._journal_error is None:
            self._fault_since = None
        if not self._pending:
            try:
                self.journal.compact([])
            except OSError as exc:
                logger.debug("journal compaction failed: %s", exc)

    def _journal_failed(self, exc: OSError) -> None:
        message = f"journal {self.journal.path}: {exc.strerror or exc}"
        if self._journal_error != message:
            logger.error("cannot write the check-in journal (%s); check-ins kept in memory", message)
        self._journal_error = message
        self._fault_since = self._fault_since or self._wall_clock()


__all__ = ["PENDING_ID", "EventOutbox", "OutboxFault"]
