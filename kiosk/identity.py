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


def refuse_hidden(text: str, what: str) -> None:
    """InvalidIdentity when text holds a control character (terminal escapes, NUL) or an invisible
    format character such as a bidi override (U+202E shows 'exe.gnp' as 'png.exe'): they corrupt
    tables and mislead whoever reads the text."""
    bad = sorted({c for c in text if unicodedata.category(c) in ("Cc", "Cf")})
    if bad:
        raise InvalidIdentity(f"{what} {text!r} holds control or text-direction characters "
                              f"({', '.join(f'U+{ord(c):04X}' for c in bad)}); type it again without them")


def _checked(what: str, text: str, most: int) -> str:
    if not text:
        raise InvalidIdentity(f"{what} is required (1 to {most} characters)")
    if len(text) > most:
        raise InvalidIdentity(f"{what} is too long ({len(text)} characters; at most {most})")
    refuse_hidden(text, what)
    return text


def clean_name(name: str) -> str:
    """A person's name with runs of white space (newlines, tabs) made one space; InvalidIdentity if
    empty, longer than MAX_NAME_CHARS or holding control or text-direction characters."""
    return _checked("a name", " ".join((name or "").split()), MAX_NAME_CHARS)


def clean_employee_id(employee_id: str) -> str:
    """An employee id without surrounding white space; InvalidIdentity if empty, longer than
    MAX_EMPLOYEE_ID_CHARS, or holding control, invisible or text-direction characters or white
    space other than a plain space (two ids that look alike on payroll must be the same id)."""
    employee_id = _checked("an employee id", (employee_id or "").strip(), MAX_EMPLOYEE_ID_CHARS)
    if any((c.isspace() and c != " ") or unicodedata.category(c) in ("Zl", "Zp") for c in employee_id):
        raise InvalidIdentity(f"the employee id {employee_id!r} holds invisible characters or odd spaces; "
                              "use letters, digits, signs and plain spaces only")
    return employee_id
