"""The one rule for a person's name and employee id, wherever they come from (CLI, web forms,
capture requests, leave CSV files, the store itself): trimmed, not empty, no control
characters, and no longer than the database columns (kiosk.store.models) hold.

Imports nothing from the rest of the package, so the store can use it too.
"""

from __future__ import annotations

import unicodedata

from kiosk.errors import InvalidIdentity

# Characters, as the columns Person.name / CaptureRequest.name (String(200)) and
# Person.employee_id / CaptureRequest.employee_id (String(64)) hold them.
MAX_NAME_CHARS = 200
MAX_EMPLOYEE_ID_CHARS = 64


def _checked(what: str, text: str, most: int) -> str:
    if not text:
        raise InvalidIdentity(f"{what} is required (1 to {most} characters)")
    if len(text) > most:
        raise InvalidIdentity(f"{what} is too long ({len(text)} characters; at most {most})")
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in text):
        raise InvalidIdentity(f"{what} must not contain control characters")
    return text


def clean_name(name: str) -> str:
    """A person's name with runs of white space made one space; InvalidIdentity if empty,
    longer than MAX_NAME_CHARS or holding control characters."""
    return _checked("a name", " ".join((name or "").split()), MAX_NAME_CHARS)


def clean_employee_id(employee_id: str) -> str:
    """An employee id without surrounding white space; InvalidIdentity if empty, longer than
    MAX_EMPLOYEE_ID_CHARS or holding control characters."""
    return _checked("an employee id", (employee_id or "").strip(), MAX_EMPLOYEE_ID_CHARS)
