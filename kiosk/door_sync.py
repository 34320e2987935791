"""The door's sync thread (role: door): push events to the central, pull the gallery, every central.sync_s.

One round: 1. push the events with seq (= local event id) > pushed_seq in batches of central.batch;
the answer's last_seq becomes pushed_seq, stored atomically after the answer (a lost answer only means
the batch is sent again, and the central skips repeats); 2. GET gallery?since=gallery_version and apply
it in one local transaction (kiosk.store.apply_gallery; `full: true` replaces the whole cache), then
store the version. The door loop notices the new gallery by its signature and reloads it
(kiosk.door_loop). A failed round is retried with back-off (sync_s doubling up to BACKOFF_MAX_S);
nudge() after a decision pushes at once when online. The thread has its own database connection and
never writes events: the door loop's outbox does. Events are never deleted here, only acknowledged, and
the door's retention purge keeps every event from pushed_seq on, so kill -9 at any point loses nothing.

Numbering: an event's uuid is derived from the device id, its seq and its time, so a re-sent event is
a repeat while another event under a reused number is a conflict (409 seq_conflict). Before pushing,
the event at pushed_seq must still be the one acknowledged (same time); if the database was replaced
or restored, or that event was deleted by hand, pushed_seq goes back to 0 and everything is offered
again (the central skips what it holds). A 409 stops pushing (kept in the sync state, shown in the
status) until the door is enrolled again under a new name; the gallery is still pulled.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from kiosk import store
from kiosk.atomic_write import replace_file
from kiosk.backoff import backoff_s
from kiosk.central_client import (
    BadToken,
    CentralBadAnswer,
    CentralClient,
    CentralError,
    CentralOffline,
    CentralRejected,
    DoorRevoked,
    GalleryAnswer,
    SeqConflict,
    event_json,
)
from kiosk.config import Settings
from kiosk.door_status import CentralReport
from kiosk.errors import StoreError
from kiosk.screen.state import OFFLINE_NOTICE, REVOKED_NOTICE

logger = logging.getLogger(__name__)

BACKOFF_MAX_S = 300.0
"""Longest wait between two attempts while the central is away or refuses the door (s)."""
EVENT_UUID_NAMESPACE = uuid.UUID("5f0c3a9e-6d1b-5c4e-9a7b-2f8d1e0c4b6a")
"""uuid5 namespace of event uuids: uuid5(EVENT_UUID_NAMESPACE, f"{device_id}:{seq}:{UTC time ISO 8601}")."""
CONFLICT_HELP = ("The central holds some of this door's event numbers for other events (was the door's "
                 "database replaced?); nothing is lost here, but pushing has stopped: on the central add this "
                 "door again under a new name (`kiosk doors add NAME`), then here `kiosk central enrol URL CODE "
                 "--force`")
"""What a door whose pushes got 409 seq_conflict shows, for the admin."""


def event_uuid(device_id: str, seq: int, at: datetime) -> str:
    """The stable UUID of the door's event seq recorded at `at` (aware): the same at every push of it, and
    another one for another event that reuses the number (a replaced database), which the central refuses."""
    return str(uuid.uuid5(EVENT_UUID_NAMESPACE, f"{device_id}:{seq}:{at.astimezone(UTC).isoformat()}"))


def event_stamp(at: datetime) -> str:
    """An event's time as the sync state keeps it (UTC ISO 8601)."""
    return at.astimezone(UTC).isoformat()


def read_token(path: Path) -> str | None:
    """The door's token from its token file, or None when there is none (not enrolled)."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return token or None


def write_token_file(path: Path, token: str) -> None:
    """Write the door's token to path with mode 0600 from the start (temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, (token + "\n").encode("utf-8"), mode=0o600)


class DoorSync:
    """The sync thread of a door: start(), nudge() after a decision, report() for the status file, stop()."""

    def __init__(self, settings: Settings, *, wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.central = settings.central
        self.wall_clock = wall_clock
        self._monotonic = monotonic
        self.database_path = Path(settings.database.path)
        self.state = store.read_sync_state(self.database_path)
        self.batch = self.central.batch
        self.failures = 0
        self._db: store.Database | None = None
        self._full_pull_done = False
        self._lock = threading.Lock()
        self._report = CentralReport(url=self.central.url, pushed_seq=self.state.pushed_seq,
                                     gallery_version=self.state.gallery_version, device_id=self.state.device_id,
                                     error=self._conflict_text(self.state))
        self._last_good = monotonic()  # the start counts: a door that never gets through says so after a while
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def _conflict_text(state: store.SyncState) -> str | None:
        return None if state.conflict is None else f"seq_conflict: {CONFLICT_HELP} ({state.conflict})"

    @property
    def device_id(self) -> str:
        """Who the door is on the central: the enrolled device id, else site.device_id."""
        return self.state.device_id or self.settings.site.device_id

    # -- the thread ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Run rounds in a daemon thread until stop()."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="door-sync", daemon=True)
            self._thread.start()
            logger.info("door sync started: central %s every %g s, batch %d", self.central.url,
                        self.central.sync_s, self.batch)

    def nudge(self) -> None:
        """A decision was recorded: push at once if the central is online (else the back-off stands)."""
        self._wake.set()

    def stop(self) -> None:
        """End the thread (a request in flight may take central.timeout_s) and close its database."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self.central.timeout_s + 5.0)
            if self._thread.is_alive():
                logger.warning("the door sync thread did not stop in time (a request to the central hangs)")
            self._thread = None
        else:
            self._close_db()

    def report(self) -> CentralReport:
        """The central part of the status record (a snapshot)."""
        with self._lock:
            return self._report

    def screen_notice(self) -> str | None:
        """What the door screen says about the link for the people checking in: REVOKED_NOTICE when the
        central refuses this door, OFFLINE_NOTICE after central.offline_notice_after_s (s) without a good
        round, else None."""
        with self._lock:
            report, last_good = self._report, self._last_good
        if report.revoked:
            return REVOKED_NOTICE
        if report.enrolled and self._monotonic() - last_good > self.central.offline_notice_after_s:
            return OFFLINE_NOTICE
        return None

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                ok = self.run_round()
                self._wait(self.next_delay(ok), ok)
        finally:
            self._close_db()

    def next_delay(self, ok: bool) -> float:
        """Seconds to the next round: sync_s after a good round; after the n-th failure in a row
        sync_s * 2**(n-1) up to BACKOFF_MAX_S, +-10 % so that many doors do not retry in step."""
        if ok:
            return float(self.central.sync_s)
        return self._backoff_s() * random.uniform(0.9, 1.1)

    def _backoff_s(self) -> float:
        """sync_s doubled for each failure in a row after the first, up to BACKOFF_MAX_S (no jitter)."""
        return backoff_s(self.central.sync_s, BACKOFF_MAX_S, self.failures - 1)

    def _wait(self, delay: float, online: bool) -> None:
        deadline = self._monotonic() + delay
        while not self._stopping.is_set():
            remaining = deadline - self._monotonic()
            if remaining <= 0:
                return
            if self._wake.wait(remaining):
                self._wake.clear()
                if online:
                    return

    # -- one round -------------------------------------------------------------------------------------
    def run_round(self) -> bool:
        """Push everything waiting, then pull the gallery; True when both went through (report updated)."""
        token = read_token(self.settings.token_path)
        if token is None:
            self._set(enrolled=False, online=None, error="not enrolled: run `kiosk central enrol URL CODE`")
            return True  # nothing to retry: look for the token file again at the next round
        try:
            client = CentralClient(self.central.url, token, self.central.timeout_s)
            db = self._database()
            self._reread_state()
            if self.state.conflict is None:
                self._push(client, db)
            else:  # pushing stopped (409): the status still shows what waits
                self._set(backlog=store.event_backlog(db, self.state.pushed_seq)[0])
            self._pull(client, db)
        except DoorRevoked as exc:
            self._failed(exc, online=True, revoked=True)
        except (BadToken, CentralRejected, CentralBadAnswer) as exc:
            self._failed(exc, online=True)
        except CentralOffline as exc:
            self._failed(exc, online=False)
        except CentralError as exc:
            self._failed(exc, online=False)
        except StoreError as exc:
            self._close_db()
            self._failed(exc, online=None, where="the door's database")
        except OSError as exc:
            self._failed(exc, online=None, where="the sync state file")
        else:
            if self.failures:
                logger.info("the central at %s answers again", self.central.url)
            self.failures = 0
            with self._lock:
                self._last_good = self._monotonic()
            self._set(enrolled=True, online=True, revoked=False, error=self._conflict_text(self.state))
            return True
        return False

    def _failed(self, exc: Exception, *, online: bool | None, revoked: bool = False, where: str = "") -> None:
        self.failures += 1
        message = f"{where}: {exc}" if where else str(exc)
        log = logger.warning if self.failures == 1 or revoked else logger.info
        log("door sync failed (attempt %d, next in up to %.0f s): %s", self.failures,
            self._backoff_s(), message)
        fields: dict[str, object] = {"enrolled": True, "error": message, "revoked": revoked}
        if online is not None:
            fields["online"] = online
        self._set(**fields)

    def _push(self, client: CentralClient, db: store.Database) -> None:
        """Push batches until nothing waits; pushed_seq advances only by an answer."""
        self._check_numbering(db)
        while not self._stopping.is_set():
            waiting, newest = store.event_backlog(db, self.state.pushed_seq)
            self._set(backlog=waiting)
            events = store.events_after(db, self.state.pushed_seq, self.batch)
            if not events:
                return
            body = [event_json(e, event_uuid(self.device_id, e.id, e.occurred_at)) for e in events]
            try:
                answer = client.push_events(body, clock=self.wall_clock(), backlog=max(0, waiting - len(events)))
            except SeqConflict as exc:
                self._save(conflict=f"seq {events[0].id}..{events[-1].id} refused at "
                                    f"{datetime.now(UTC).isoformat(timespec='seconds')}: {exc}")
                logger.error("the central refused events %d..%d (409 seq_conflict): %s. %s", events[0].id,
                             events[-1].id, exc, CONFLICT_HELP)
                self._set(error=self._conflict_text(self.state))
                return
            except CentralRejected as exc:
                if exc.status == 413 and self.batch > 1:
                    self.batch = max(1, self.batch // 2)
                    logger.warning("the central refused a batch of %d events as too large: sending %d at a time",
                                   len(events), self.batch)
                    continue
                raise
            logger.info("pushed events %d..%d (%d): %s stored, %s repeated, the central holds up to %d; %d waiting",
                        events[0].id, events[-1].id, len(events), _count(answer.stored), _count(answer.repeated),
                        answer.last_seq, max(0, waiting - len(events)))
            if answer.repeated:
                logger.info("%d of these events were on the central already (an earlier answer was lost, or the "
                            "door offered its events again)", answer.repeated)
            self._acknowledged(db, answer.last_seq, events, newest)

    def _check_numbering(self, db: store.Database) -> None:
        """Start again from seq 0 when the event at pushed_seq is not the one the central acknowledged (the
        database was replaced or restored, or that event deleted by hand): the central skips repeats and
        refuses numbers it holds for other events (409), so nothing is skipped unseen."""
        seq, stamp = self.state.pushed_seq, self.state.pushed_at
        if seq == 0:
            return
        found = store.events_after(db, seq - 1, 1)
        here = found[0] if found and found[0].id == seq else None
        if here is not None and (stamp is None or event_stamp(here.occurred_at) == stamp):
            if stamp is None:
                self._save(pushed_at=event_stamp(here.occurred_at))
            return
        what = "is gone" if here is None else f"is another one (recorded {event_stamp(here.occurred_at)}, not {stamp})"
        logger.warning("the event %d the central acknowledged last %s: was the database replaced or restored? "
                       "Offering every local event again from the first (the central skips those it holds)",
                       seq, what)
        self._save(pushed_seq=0, pushed_at="")
        self._set(pushed_seq=0)

    def _acknowledged(self, db: store.Database, last_seq: int, events: list[store.EventInfo], newest: int) -> None:
        """Store the central's last_seq as pushed_seq; CentralBadAnswer when it did not take the batch."""
        before = self.state.pushed_seq
        first, last = events[0].id, events[-1].id
        if last_seq > last:
            logger.error("the central holds seq %d, beyond this batch's last %d (newest local event %d): was "
                         "the door's database replaced? Those events count as repeats there", last_seq, last, newest)
            last_seq = last
        at = {e.id: e.occurred_at for e in events}.get(last_seq)
        if at is None and last_seq > 0:
            found = store.events_after(db, last_seq - 1, 1)
            at = found[0].occurred_at if found and found[0].id == last_seq else None
        self._save(pushed_seq=last_seq, pushed_at=event_stamp(at) if at is not None else "")
        self._set(pushed_seq=last_seq, last_push_at=datetime.now(UTC))
        if last_seq < last:
            if last_seq < before:
                logger.warning("the central holds only up to seq %d, less than it acknowledged before (%d): "
                               "restored from a backup? Pushing again from there", last_seq, before)
            raise CentralBadAnswer(f"the central acknowledged seq {last_seq} for a batch of seq {first}..{last}")

    def _pull(self, client: CentralClient, db: store.Database) -> None:
        """Fetch gallery changes since the stored version and apply them; the version is stored after."""
        since = self.state.gallery_version
        answer = client.gallery(since)
        if answer.version < since and not answer.full:  # a central that does not say `full`
            logger.warning("the central's gallery version went back (%d < %d): fetching the whole gallery",
                           answer.version, since)
            answer = client.gallery(0)
            answer = GalleryAnswer(answer.version, answer.embedder, answer.people, answer.removed, True)
        full = answer.full if answer.full is not None else since == 0
        if full and since > 0:
            logger.warning("the central sends its whole gallery (version %d; this door had %d: the central was "
                           "restored or is another one): replacing the whole cache", answer.version, since)
        same_whole = full and self._full_pull_done and answer.version == since  # e.g. a central with no change yet
        if same_whole or (not full and answer.version == since and not answer.people and not answer.removed):
            self._set(last_pull_at=datetime.now(UTC))
            return
        compatible = self.settings.recognition.compatible_embedder_ids()
        if answer.embedder and answer.embedder not in compatible and answer.people:
            logger.warning("the central's templates were made by %s; this door computes %s: recognition is "
                           "not calibrated for them", answer.embedder, ", ".join(compatible))
        applied = store.apply_gallery(db, answer.people, answer.removed, embedder=answer.embedder, full=full,
                                      pushed_seq=self.state.pushed_seq)
        self._full_pull_done = self._full_pull_done or full
        self._save(gallery_version=answer.version)
        self._set(gallery_version=answer.version, last_pull_at=datetime.now(UTC))
        if applied.people or applied.removed:
            logger.info("gallery version %d from the central: %d people written, %d removed", answer.version,
                        applied.people, applied.removed)

    # -- helpers -------------------------------------------------------------------------------------
    def _database(self) -> store.Database:
        """The sync thread's own connection, opened again when the file was replaced under it."""
        if self._db is not None and self._db.moved():
            logger.warning("the database file %s was replaced: the sync opens the new one", self.database_path)
            self._close_db()
        if self._db is None:
            self._db = store.open_database(self.database_path, busy_timeout_ms=self.settings.database.busy_timeout_ms,
                                           create=False)
        return self._db

    def _close_db(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _reread_state(self) -> None:
        """Take up what `kiosk central enrol --force` changed meanwhile (a new device id, a conflict cleared)."""
        state = store.read_sync_state(self.database_path)
        if state.device_id != self.state.device_id or state.conflict != self.state.conflict:
            logger.info("sync state changed on disk (enrolled as %s, conflict %s)", state.device_id,
                        "none" if state.conflict is None else "recorded")
            self._set(device_id=state.device_id, error=self._conflict_text(state))
        self.state = state

    def _save(self, *, pushed_seq: int | None = None, gallery_version: int | None = None,
              pushed_at: str | None = None, conflict: str | None = None) -> None:
        """Store the sync state with these changes (atomically, before anything relies on it); pushed_at ""
        clears it."""
        state = store.read_sync_state(self.database_path)
        state = replace(state, pushed_seq=state.pushed_seq if pushed_seq is None else pushed_seq,
                        gallery_version=state.gallery_version if gallery_version is None else gallery_version,
                        pushed_at=state.pushed_at if pushed_at is None else pushed_at or None,
                        conflict=state.conflict if conflict is None else conflict)
        store.write_sync_state(self.database_path, state)
        self.state = state

    def _set(self, **changes: object) -> None:
        with self._lock:
            self._report = replace(self._report, **changes)  # type: ignore[arg-type]


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)
