"""A joining kiosk's local people renumbered to the central's ids (`kiosk central join`, docs/central.md
"Joining"), so that every local row holding a person id (events, leave, templates, photos, consent history,
capture requests, gallery changes, audit targets "person:N") names the same person the central does.

One transaction on the kiosk's SQLite file: foreign keys deferred to the commit (PRAGMA defer_foreign_keys),
the people rows moved through temporary ids below every held one (a swap, local 1 -> 2 and 2 -> 1, never
meets a taken id), each child table in one UPDATE from a temporary map table, then PRAGMA foreign_key_check.
People erased here (not sent to the central) move to negative ids, which no central person ever has, so a
later gallery pull cannot give their row (and their history) to a central person. pending_erasures keep
their ids, in whatever numbering they were written: finishing one finds the person in each upgrade backup by the
employee id it holds (erasure.person_in_backup), not by that id.

Recorded in the same commit (sync_state row RECORD_KEY: the central ids settled and each run's moves), so a
run again after an interruption never moves a settled person twice, even given a stale map.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from kiosk.errors import StoreError
from kiosk.store._base import changed_rows, now_utc, write_audit
from kiosk.store.db import Database
from kiosk.store.models import AuditEntry, Base, Person
from kiosk.store.models import SyncState as SyncStateRow

logger = logging.getLogger(__name__)

RECORD_KEY = "join.renumbered"
"""The sync_state key of the renumbering record: {"settled": [central ids], "runs": [{"at", "moved"}]}."""
KEPT_TABLES = frozenset({"pending_erasures"})
"""Tables whose person ids are left alone (a pending erasure is finished by its employee id: module docstring)."""
_MAP_TABLE = "kiosk_renumber_map"
MAX_CENTRAL_ID = 2**31 - 1
"""The largest person id a central can answer (people.id is a 32-bit INTEGER on its PostgreSQL; the door API's
limit too): a larger one is a wrong answer, and would push this file's own next ids out of the central's range."""


class RenumberRefused(StoreError):
    """The map cannot be applied (not one-to-one, a target id held by a person who stays, a person the
    central was not told about); nothing was changed."""


@dataclass(frozen=True)
class Renumbered:
    """What renumber_people did: people moved to the central's ids, erased people moved to negative ids,
    people kept (already the central's id, or settled by an earlier run), rows changed per table."""

    moved: int
    local_only: int
    kept: int
    rows: dict[str, int] = field(default_factory=dict)


def person_id_columns() -> list[tuple[str, str]]:
    """(table, column) of every column that holds a person id (a foreign key to people.id, or named
    person_id), except KEPT_TABLES."""
    out = []
    for table in Base.metadata.sorted_tables:
        if table.name == "people" or table.name in KEPT_TABLES:
            continue
        for column in table.columns:
            if column.name == "person_id" or any(fk.column.table.name == "people" for fk in column.foreign_keys):
                out.append((table.name, column.name))
    return out


def renumber_record(db: Database) -> dict[str, Any]:
    """The renumbering record ({} when nothing was renumbered yet)."""
    with db.session() as s:
        return _read_record(s)


def _read_record(s: Session) -> dict[str, Any]:
    raw = s.scalar(select(SyncStateRow.value).where(SyncStateRow.key == RECORD_KEY))
    if raw is None:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise StoreError(f"the renumbering record ({RECORD_KEY} in sync_state) is not JSON") from None
    return data if isinstance(data, dict) else {}


def _plan(people: list[tuple[int, str, bool]], mapping: dict[int, int], settled: set[int]) -> tuple[
        dict[int, int], int]:
    """{old id: new id} of the people that move, and how many are kept; RenumberRefused when impossible."""
    if len(set(mapping.values())) != len(mapping) or any(
            isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_CENTRAL_ID for v in mapping.values()):
        raise RenumberRefused("the central's ids for this kiosk's people are not one positive id each (at most "
                              f"{MAX_CENTRAL_ID}); nothing was renumbered")
    moves: dict[int, int] = {}
    lowest = min([0] + [pid for pid, _, _ in people])
    kept = 0
    stale: list[str] = []
    for pid, employee_id, erased in people:
        if erased:
            if pid > 0:  # erased here: an id no central person has
                lowest -= 1
                moves[pid] = lowest
            else:
                kept += 1
        elif pid in settled:
            if mapping.get(pid, pid) != pid:
                stale.append(f"{pid} ({employee_id}) -> {mapping[pid]}")
            kept += 1
        elif pid in mapping:
            if mapping[pid] != pid:
                moves[pid] = mapping[pid]
            else:
                kept += 1
        elif pid > 0:
            raise RenumberRefused(f"person {pid} ({employee_id}) is not known to the central (added during the "
                                  "join?): run the join again")
        else:
            kept += 1
    if stale:
        logger.warning("%d people settled by an earlier renumbering get other ids in this map; kept (first: %s)",
                       len(stale), stale[0])
    staying = {pid for pid, _, _ in people} - set(moves)
    taken = sorted(staying & set(moves.values()))
    if taken:
        raise RenumberRefused(f"the central's id {taken[0]} is held here by a person who keeps it")
    return moves, kept


def _move(s: Session, moves: dict[int, int]) -> dict[str, int]:
    """Apply moves (foreign keys deferred); rows changed per table."""
    base = min([0] + list(moves) + list(moves.values())) - 1
    rows = [{"old": old, "tmp": base - i, "new": new} for i, (old, new) in enumerate(sorted(moves.items()))]
    s.execute(text(f"CREATE TEMP TABLE IF NOT EXISTS {_MAP_TABLE} "
                   "(old INTEGER PRIMARY KEY, tmp INTEGER UNIQUE, new INTEGER UNIQUE)"))
    s.execute(text(f"DELETE FROM temp.{_MAP_TABLE}"))
    s.execute(text(f"INSERT INTO temp.{_MAP_TABLE} (old, tmp, new) VALUES (:old, :tmp, :new)"), rows)
    changed: dict[str, int] = {}
    # people in two steps: every mover to a temporary id below all ids, then to its new one
    for src, dst in (("old", "tmp"), ("tmp", "new")):
        changed["people"] = changed_rows(s, text(
            f"UPDATE people SET id = (SELECT {dst} FROM temp.{_MAP_TABLE} WHERE {src} = people.id) "
            f"WHERE id IN (SELECT {src} FROM temp.{_MAP_TABLE})"))
    for table, column in person_id_columns():
        changed[table] = changed_rows(s, text(
            f"UPDATE {table} SET {column} = (SELECT new FROM temp.{_MAP_TABLE} WHERE old = {table}.{column}) "
            f"WHERE {column} IN (SELECT old FROM temp.{_MAP_TABLE})"))
    targets = []
    for audit_id, target in s.execute(select(AuditEntry.id, AuditEntry.target).where(AuditEntry.target.like("person:%"))):
        number = str(target).removeprefix("person:")
        if number.lstrip("-").isdigit() and int(number) in moves:
            targets.append({"id": audit_id, "target": f"person:{moves[int(number)]}"})
    if targets:
        s.execute(text("UPDATE audit_log SET target = :target WHERE id = :id"), targets)
    changed["audit_log"] = len(targets)
    s.execute(text(f"DROP TABLE temp.{_MAP_TABLE}"))
    broken = s.execute(text("PRAGMA foreign_key_check")).fetchall()
    if broken:
        raise StoreError(f"renumbering would leave {len(broken)} rows without their person "
                         f"(first: {tuple(broken[0])}); nothing was changed")
    return changed


def renumber_people(db: Database, mapping: dict[int, int], *, actor: str,
                    now: datetime | None = None) -> Renumbered:
    """Move every local person to the central's id in mapping {local id: central id}, erased people to
    negative ids, with every row that names them, in one transaction (module docstring); a person already
    settled by an earlier run is never moved again. RenumberRefused (nothing changed) when impossible."""
    if db.kind != "sqlite":
        raise StoreError("renumbering is for a kiosk's own SQLite file, not a central's database")
    now = now_utc(now)
    with db.transaction() as tx, tx.session() as s:
        # a write statement first: it begins the transaction and locks the file for writing before the
        # people are read (no one added unseen), and the PRAGMA below holds until this transaction ends
        s.execute(text("INSERT INTO sync_state (key, value) VALUES (:key, '{}') ON CONFLICT (key) DO NOTHING"),
                  {"key": RECORD_KEY})
        s.execute(text("PRAGMA defer_foreign_keys = ON"))  # switched off again by the commit
        if s.execute(text("PRAGMA defer_foreign_keys")).scalar() != 1:
            raise StoreError("cannot defer the foreign key checks to the commit; nothing was renumbered")
        record = _read_record(s)
        people = [(int(pid), str(eid), erased is not None)
                  for pid, eid, erased in s.execute(select(Person.id, Person.employee_id, Person.erased_at))]
        settled = {int(x) for x in record.get("settled", [])}
        moves, kept = _plan(people, mapping, settled)
        changed = _move(s, moves) if moves else {}
        local_only = sum(1 for new in moves.values() if new < 0)
        settled |= {moves.get(pid, pid) for pid, _, erased in people if not erased and moves.get(pid, pid) > 0}
        runs = list(record.get("runs", []))
        if moves:
            runs.append({"at": now.isoformat(), "moved": {str(k): v for k, v in sorted(moves.items())}})
            write_audit(s, actor, "join.renumber", None,
                        {"moved": len(moves) - local_only, "local_only": local_only, "rows": changed}, now)
        s.execute(update(SyncStateRow).where(SyncStateRow.key == RECORD_KEY)
                  .values(value=json.dumps({"settled": sorted(settled), "runs": runs})))
    result = Renumbered(len(moves) - local_only, local_only, kept, changed)
    logger.info("renumbered the local people to the central's ids: %s", result)
    return result
