"""`kiosk central join URL CODE`: a standalone kiosk joins a central with its history (docs/central.md
"Joining"): enrol as a door, upload people with templates (POST /import: the central matches people by
employee id and answers {local id: central id}), renumber the kiosk's own rows to the central's ids
(store.renumber_people), upload leave and audit lines, push every event through the door protocol (seq = local
event id, the central stores each (door, seq) once), then pull the whole gallery.

Resumable: the sync state (central_sync.json) records the enrolment and pushed_seq after each acknowledged
batch, and the renumbering is recorded in the kiosk's file in its own commit, so a join run again after an
interruption skips the enrolment, re-sends people (matched, nothing duplicated; their ids are the central's
already, nobody is moved twice) and pushes only events after pushed_seq.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kiosk import store
from kiosk.atomic_write import replace_file
from kiosk.central_client import (
    API,
    CentralBadAnswer,
    CentralClient,
    call_central,
    check_url,
    enrol,
    event_json,
)
from kiosk.config import Settings
from kiosk.door_sync import event_stamp, event_uuid, read_token, write_token_file
from kiosk.errors import KioskError
from kiosk.vocabulary import EventKind

logger = logging.getLogger(__name__)

PEOPLE_PER_REQUEST = 200  # ~100 templates of 700 base64 characters each stay far below the 8 MiB body limit
LINES_PER_REQUEST = 2000  # leave or audit lines per request
DONE_NAME = "central_join.json"
"""Written beside the database once a join finished (the whole gallery is pulled: from then on the door's
sync goes on, a join sends nothing)."""


class JoinRefused(KioskError):
    """The kiosk cannot join as asked (already enrolled elsewhere without --force, not a standalone file)."""


@dataclass
class JoinReport:
    """What a join did: enrolment (resumed or new), people created/matched on the central, leave and audit
    stored/repeated, events stored/repeated, the gallery version pulled, and conflicts (one line each)."""

    device_id: str = ""
    resumed: bool = False
    already: bool = False  # the join had finished before: nothing sent
    created: int = 0
    matched: int = 0
    leave_stored: int = 0
    leave_repeated: int = 0
    audit_stored: int = 0
    audit_repeated: int = 0
    events_stored: int = 0
    events_repeated: int = 0
    pushed_seq: int = 0
    gallery_version: int = 0
    renumbered: int = 0  # local people moved to the central's ids by this run
    local_only: int = 0  # people erased here, moved to negative ids by this run
    conflicts: list[str] = field(default_factory=list)


def _enrolment(settings: Settings, url: str, code: str, force: bool, report: JoinReport) -> store.SyncState:
    """The sync state after enrolling with code, or the recorded one when this kiosk already joined url."""
    path = settings.database.path
    state = store.read_sync_state(path)
    token = read_token(settings.token_path)
    if token is not None and state.url == url and state.device_id and not force:
        report.resumed = True
        logger.info("resuming the join to %s as %s (pushed up to %d)", url, state.device_id, state.pushed_seq)
        return state
    if token is not None and not force:
        raise JoinRefused(f"this kiosk already has a token in {settings.token_path} (for {state.url or 'unknown'}); "
                          "add --force to join with this code instead")
    enrolment = enrol(url, code, timeout_s=settings.central.timeout_s)
    write_token_file(settings.token_path, enrolment.token)
    state = store.SyncState(device_id=enrolment.device_id, name=enrolment.name, site=enrolment.site, url=url,
                            enrolled_at=datetime.now(UTC).isoformat())
    store.write_sync_state(path, state)
    return state


def _post(url: str, token: str, timeout_s: float, body: dict[str, Any]) -> dict[str, Any]:
    return call_central(url + API + "/import", body, token, timeout_s)


def _count(answer: dict[str, Any], key: str) -> int:
    value = answer.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise CentralBadAnswer(f"the central's answer to an import has no count {key}")
    return value


def _upload_people(db: store.Database, url: str, token: str, timeout_s: float, report: JoinReport) -> dict[int, int]:
    """People (with templates, erased ones left out) to the central; {local person id: central id}."""
    templates = store.standalone_templates(db)
    people = store.list_people(db, include_inactive=True, include_erased=False)
    mapping: dict[int, int] = {}
    for i in range(0, len(people), PEOPLE_PER_REQUEST):
        chunk = [{"local_id": p.id, "employee_id": p.employee_id, "name": p.name, "active": p.active,
                  "expression_consent": p.expression_consent,
                  "embedder": next((e for _, e in templates.get(p.id, []) if e), None),
                  "templates": [base64.b64encode(b).decode("ascii") for b, _ in templates.get(p.id, [])]}
                 for p in people[i:i + PEOPLE_PER_REQUEST]]
        answer = _post(url, token, timeout_s, {"people": chunk})
        got = answer.get("people")
        if not isinstance(got, dict):
            raise CentralBadAnswer("the central's answer to an import has no people")
        for p in people[i:i + PEOPLE_PER_REQUEST]:
            central_id = got.get(str(p.id))
            if not isinstance(central_id, int) or isinstance(central_id, bool) or central_id < 1:
                raise CentralBadAnswer(f"the central did not say which person local {p.id} is")
            mapping[p.id] = central_id
        report.created += _count(answer, "created")
        report.matched += _count(answer, "matched")
        report.conflicts += [str(c) for c in answer.get("conflicts") or []]
    return mapping


def _upload_lines(db: store.Database, url: str, token: str, timeout_s: float, report: JoinReport) -> None:
    """Leave (by employee id) and audit lines to the central, after the renumbering: an audit target
    person:N names the central's person N (an erased person's lines keep their negative id)."""
    employee = {p.id: p.employee_id for p in store.list_people(db, include_inactive=True, include_erased=False)}
    leave = [{"employee_id": employee[x.person_id], "first_day": x.first_day.isoformat(),
              "last_day": x.last_day.isoformat(), "kind": x.kind, "recorded_by": x.recorded_by}
             for x in store.leave_between(db) if x.person_id in employee]
    audit = [{"at": a.at.isoformat(), "actor": a.actor, "action": a.action, "target": a.target,
              "details": a.details} for a in store.all_audit(db)]
    for key, lines in (("leave", leave), ("audit", audit)):
        for i in range(0, len(lines), LINES_PER_REQUEST):
            answer = _post(url, token, timeout_s, {key: lines[i:i + LINES_PER_REQUEST]})
            setattr(report, f"{key}_stored", getattr(report, f"{key}_stored") + _count(answer, f"{key}_stored"))
            setattr(report, f"{key}_repeated",
                    getattr(report, f"{key}_repeated") + _count(answer, f"{key}_repeated"))
            report.conflicts += [str(c) for c in answer.get("conflicts") or []]


def _wire_event(event: store.EventInfo, device_id: str) -> dict[str, Any]:
    """An event as pushed: after the renumbering its person id is the central's; an erased person's
    (a negative local id) goes as unknown."""
    body = event_json(event, event_uuid(device_id, event.id, event.occurred_at))
    if event.person_id is not None and event.person_id < 1:
        body.update(person_id=None, kind=str(EventKind.UNKNOWN), expression_label=None,
                    expression_scores=None, expression_confidence=None,
                    review="recorded before the kiosk joined, for a person erased on it since")
    if event.recorded_by:
        note = f"hand correction by {event.recorded_by} on the kiosk before it joined"
        body["review"] = f"{body['review']}; {note}" if body.get("review") else note
    return body


def join(settings: Settings, url: str, code: str, *, force: bool = False, batch: int = 500,
         after_batch: Callable[[int], None] | None = None) -> JoinReport:
    """Join the central at url with code, uploading this kiosk's history once (module docstring); after_batch
    is called with pushed_seq after each acknowledged batch (tests interrupt there). CentralError, JoinRefused."""
    url = check_url(url)
    report = JoinReport()
    state = _enrolment(settings, url, code, force, report)
    assert state.device_id is not None
    report.device_id = state.device_id
    token = read_token(settings.token_path)
    if token is None:
        raise JoinRefused(f"no token in {settings.token_path} after enrolling")
    path = settings.database.path
    done = Path(path).resolve().parent / DONE_NAME
    if done.exists() and state.url == url:
        report.already, report.pushed_seq, report.gallery_version = True, state.pushed_seq, state.gallery_version
        return report
    with store.open_database(path, busy_timeout_ms=settings.database.busy_timeout_ms, create=False) as db:
        mapping = _upload_people(db, url, token, settings.central.timeout_s, report)
        renumbered = store.renumber_people(db, mapping, actor=f"join:{state.device_id}")
        report.renumbered, report.local_only = renumbered.moved, renumbered.local_only
        _upload_lines(db, url, token, settings.central.timeout_s, report)
        client = CentralClient(url, token, settings.central.timeout_s)
        while True:
            events = store.events_after(db, state.pushed_seq, batch)
            if not events:
                break
            waiting, _ = store.event_backlog(db, events[-1].id)
            answer = client.push_events([_wire_event(e, state.device_id) for e in events],
                                        clock=datetime.now(UTC), backlog=waiting)
            if answer.last_seq < events[-1].id:
                raise CentralBadAnswer(f"the central acknowledged seq {answer.last_seq} for events "
                                       f"{events[0].id}..{events[-1].id}")
            report.events_stored += answer.stored or 0
            report.events_repeated += answer.repeated or 0
            state = replace(state, pushed_seq=events[-1].id, pushed_at=event_stamp(events[-1].occurred_at))
            store.write_sync_state(path, state)
            logger.info("join: pushed events %d..%d: %s stored, %s repeated", events[0].id, events[-1].id,
                        answer.stored, answer.repeated)
            if after_batch is not None:
                after_batch(state.pushed_seq)
        gallery = client.gallery(0)
        store.apply_gallery(db, gallery.people, [], embedder=gallery.embedder, full=True,
                            pushed_seq=state.pushed_seq)
        state = replace(store.read_sync_state(path), gallery_version=gallery.version)
        store.write_sync_state(path, state)
        replace_file(done, json.dumps({"url": url, "device_id": state.device_id,
                                       "at": datetime.now(UTC).isoformat()}).encode("utf-8"), mode=0o600)
    report.pushed_seq, report.gallery_version = state.pushed_seq, state.gallery_version
    return report
