"""Reports as JSON-ready data and JSON text (a long range written day by day, same keys and order)."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterator
from datetime import date, datetime

from kiosk.config import Settings
from kiosk.dates import iso
from kiosk.reports.model import DailyReport, LeaveDay, PersonDay, PersonTotals, RangeReport
from kiosk.reports.scan import RangeScan, check_range_request, json_site_keys
from kiosk.store import Database, read_snapshot

logger = logging.getLogger(__name__)

JsonObject = dict[str, object]
"""A JSON object as Python data (values: str, int, float, bool, None, lists and objects)."""


def _dumps(data: object) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


def person_day_json(r: PersonDay, by_site: bool = False) -> JsonObject:
    """One person-day as a JSON object (times local ISO 8601, None when missing; a central's adds
    site, door_in and door_out, None when there is none)."""
    sites: JsonObject = {"site": r.site, "door_in": r.door_in, "door_out": r.door_out} if by_site else {}
    return sites | {
        "date": r.day.isoformat(), "person_id": r.person_id, "employee_id": r.employee_id,
        "name": r.name, "first_in": iso(r.first_in) or None, "last_out": iso(r.last_out) or None,
        "present_minutes": r.present_minutes, "hours": r.hours, "open": r.open, "late": r.late,
        "minutes_late": r.minutes_late, "events": r.events, "expression": r.expression,
        "corrected": r.corrected, "no_checkout": r.no_checkout,
    }


def leave_json(x: LeaveDay) -> JsonObject:
    """One leave day as a JSON object."""
    return {"date": x.day.isoformat(), "employee_id": x.person.employee_id, "name": x.person.name,
            "kind": x.kind}


def totals_json(t: PersonTotals) -> JsonObject:
    """One person's totals as a JSON object (days_absent None: not known)."""
    return {"person_id": t.person_id, "employee_id": t.employee_id, "name": t.name,
            "days_present": t.days_present, "present_minutes": t.present_minutes,
            "hours": t.hours, "times_late": t.times_late, "minutes_late": t.minutes_late,
            "days_absent": t.days_absent, "days_on_leave": t.days_on_leave,
            "days_no_checkout": t.days_no_checkout}


def daily_as_dict(report: DailyReport) -> JsonObject:
    """The daily report as JSON-ready data."""
    team = report.team_expression
    return {
        "site": report.site, "date": report.day.isoformat(), "timezone": report.timezone,
        "mode": report.mode,
        **json_site_keys(report.by_site, report.sites, report.zones),
        "people": [person_day_json(r, report.by_site) for r in report.rows],
        "work_day": report.work_day,
        "absent": [{"employee_id": p.employee_id, "name": p.name} for p in report.absent],
        "on_leave": [leave_json(x) for x in report.on_leave],
        "unknown_faces": report.unknown_faces,
        "team_expression": None if team is None else {
            "contributors": team.contributors, "min_group_size": team.min_group_size,
            "counts": team.counts, "shares": team.shares, "hidden_reason": team.hidden_reason,
        },
    }


def range_as_dict(report: RangeReport) -> JsonObject:
    """The range report as JSON-ready data."""
    return {
        "site": report.site, "start": report.start.isoformat(), "end": report.end.isoformat(),
        "timezone": report.timezone, "mode": report.mode,
        **json_site_keys(report.by_site, report.sites, report.zones),
        "days": [person_day_json(r, report.by_site) for r in report.rows],
        "totals": [totals_json(t) for t in report.totals],
        "leave": [leave_json(x) for x in report.leave],
        "unknown_faces": report.unknown_faces,
    }


def daily_json(report: DailyReport) -> str:
    """The daily report as indented JSON text."""
    return _dumps(daily_as_dict(report)) + "\n"


def range_json(report: RangeReport) -> str:
    """The range report as indented JSON text."""
    return _dumps(range_as_dict(report)) + "\n"


def iter_range_json(db: Database, settings: Settings, start: date, end: date,
                    today: date | datetime | None, sites: Collection[str] | None = None,
                    strict: bool = True) -> Iterator[str]:
    """range_json's text, the days written as they are read (same keys, same order)."""
    check_range_request(db, settings, start, end, sites, strict)
    head = {"site": settings.site.name, "start": start.isoformat(), "end": end.isoformat(),
            "timezone": settings.site.timezone, "mode": settings.attendance.mode}

    def chunks() -> Iterator[str]:
        leave: list[LeaveDay] = []
        with read_snapshot(db) as snapshot:
            scan = RangeScan(snapshot, settings, start, end, today, sites=sites, strict=strict)
            by_site = scan.places.by_site
            yield _dumps(head | scan.site_fields_json())[:-2] + ',\n  "days": ['
            sep = "\n    "
            for rd in scan.days():
                leave += rd.leave
                if rd.rows:
                    yield sep + ",\n    ".join(json.dumps(person_day_json(r, by_site), ensure_ascii=False)
                                               for r in rd.rows)
                    sep = ",\n    "
            tail = {"totals": [totals_json(t) for t in scan.totals()],
                    "leave": [leave_json(x) for x in leave], "unknown_faces": scan.unknown_faces}
        yield "\n  ],\n" + _dumps(tail)[2:] + "\n"

    return chunks()
