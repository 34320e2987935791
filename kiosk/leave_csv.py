"""Leave from a CSV file (e.g. an HR system's export) -> store.NewLeave items, or one error listing every bad line.

Columns (header row required, any order, extra columns ignored): employee_id, first_day
(YYYY-MM-DD), last_day (empty: the first day), kind (holiday, sick, other; empty: holiday).
Commas or semicolons (Excel's "CSV" in many European locales) separate the columns: the
header row decides. A field over csv's limit (131,072 characters) is one clear error.
"""

from __future__ import annotations

import csv
import logging
from datetime import date
from pathlib import Path

from kiosk.dates import check_day
from kiosk.errors import InvalidIdentity, KioskError, ReportError, listing
from kiosk.identity import clean_employee_id
from kiosk.store import Database, NewLeave, list_people
from kiosk.vocabulary import LeaveKind

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("employee_id", "first_day")
MAX_ERRORS = 20
MAX_CSV_BYTES = 2_000_000
"""Largest leave file read (about 60,000 lines): parsing takes some 35 bytes of memory per byte of CSV,
so a 100 MB upload would need 3.5 GB and take the web app down on a Pi."""


def _day(text: str, column: str) -> date:
    """A YYYY-MM-DD cell in reports' day range; ValueError naming the column otherwise."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{column} {text.strip()!r} is not a date (use YYYY-MM-DD)") from None
    try:
        return check_day(day)
    except ReportError as exc:
        raise ValueError(f"{column} {exc}") from None


def _delimiter(text: str) -> str:
    """";" when the header row is semicolon-separated (Excel in many European locales), else ","."""
    first = text.split("\n", 1)[0]
    return ";" if first.count(";") > first.count(",") else ","


def _read_rows(text: str, source: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """(stripped header names, [(line number, row)]) of CSV text; KioskError when it cannot be read."""
    reader = csv.DictReader(text.splitlines(), delimiter=_delimiter(text))
    try:
        header = [h.strip() for h in reader.fieldnames or []]
        reader.fieldnames = header
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as exc:
        what = ("a field is too long (over 131,072 characters): is this the right file?"
                if "field limit" in str(exc) else f"not readable as CSV ({exc})")
        raise KioskError(f"{source}: line {reader.line_num + 1}: {what}") from None
    return header, rows


def read_leave_csv(path: Path, db: Database) -> list[NewLeave]:
    """The leave in the CSV file at path (see parse_leave_csv)."""
    try:
        with path.open("rb") as handle:  # at most one byte over the limit, also from /dev/zero
            data = handle.read(MAX_CSV_BYTES + 1)
    except FileNotFoundError:
        raise KioskError(f"no such file: {path}") from None
    except OSError as exc:
        raise KioskError(f"cannot read {path}: {exc}") from None
    return parse_leave_csv(data, db, str(path))


def parse_leave_csv(data: bytes, db: Database, source: str) -> list[NewLeave]:
    """CSV bytes (UTF-8, a BOM allowed) checked against the people in db -> items labelled "line N";
    KioskError naming source and every bad line, or the file being over MAX_CSV_BYTES."""
    if len(data) > MAX_CSV_BYTES:
        raise KioskError(f"{source} is over {MAX_CSV_BYTES / 1e6:.0f} MB: is this the right file? "
                         "Split a larger export into parts")
    try:
        text = data.decode("utf-8-sig")  # spreadsheets often write a BOM
    except UnicodeDecodeError:
        raise KioskError(f"{source} is not UTF-8 text (save it as CSV UTF-8)") from None
    header, rows = _read_rows(text, source)
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise KioskError(f"{source}: the header row lacks {', '.join(missing)} "
                         "(columns: employee_id, first_day, last_day, kind; separated by commas or semicolons)")
    people = {p.employee_id: p.id for p in list_people(db, include_inactive=True)}
    items: list[NewLeave] = []
    errors: list[str] = []
    for line_num, row in rows:
        line = f"line {line_num}"
        employee_id = (row.get("employee_id") or "").strip()
        try:
            if employee_id:
                employee_id = clean_employee_id(employee_id)
            if employee_id not in people:
                raise ValueError(f"no person with employee id {employee_id!r}")
            first_day = _day(row.get("first_day") or "", "first_day")
            last_text = (row.get("last_day") or "").strip()
            last_day = _day(last_text, "last_day") if last_text else first_day
        except (ValueError, InvalidIdentity) as exc:
            errors.append(f"{line}: {exc}")
            continue
        kind = (row.get("kind") or "").strip() or LeaveKind.HOLIDAY
        items.append(NewLeave(people[employee_id], first_day, last_day, kind, label=line))
    if errors:
        raise KioskError(listing(f"nothing recorded: {len(errors)} line(s) of {source} are wrong", errors, MAX_ERRORS))
    if not items:
        raise KioskError(f"{source} holds no leave (only a header row?)")
    return items
