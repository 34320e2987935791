"""Settings of the site (time zone, work days), its database and how long records are kept."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from kiosk.config.base import Section

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # date.weekday() order


def _office_week() -> list[Weekday]:
    """Monday to Friday, the default work days."""
    return ["mon", "tue", "wed", "thu", "fri"]


def known_zone(value: str) -> str:
    """value when it names an IANA time zone; ValueError (the config error's text) otherwise."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r} (use an IANA name like Europe/Berlin)") from exc
    return value


class SiteSettings(Section):
    """The site: its name, time zone, working hours, work days and holidays."""

    name: str = "Office"
    # IANA time zone; the attendance day starts at local midnight in this zone.
    timezone: str = "UTC"
    # Arrivals after this local time (plus grace) count as late.
    workday_start: time = time(9, 0)
    # Minutes after workday_start before an arrival counts as late.
    late_grace_minutes: int = Field(5, ge=0, le=240)
    # Recorded on every event, to tell kiosks apart when several share one database.
    device_id: str = "kiosk-1"
    # Days people are expected in; reports count a missed one as an absence (mon..sun).
    work_days: list[Weekday] = Field(default_factory=_office_week)
    # Dates nobody is expected in (public holidays, office closed), e.g. ["2026-12-25"].
    holidays: list[date] = Field(default_factory=list)

    def is_work_day(self, day: date) -> bool:
        """True when people are expected in on this local date."""
        return WEEKDAYS[day.weekday()] in self.work_days and day not in self.holidays

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value)


DATABASE_URL_SCHEME = "postgresql+psycopg"
DATABASE_URL_EXAMPLE = "postgresql+psycopg://kiosk@/kiosk?host=/run/postgresql"


def database_url_problem(url: str) -> str | None:
    """Why url cannot be database.url (one line that never repeats the URL: it may hold a password)."""
    scheme = url.split("://", 1)[0] if "://" in url else url.split(":", 1)[0]
    if scheme.lower().startswith("sqlite"):
        return ("an SQLite database is set with database.path (the file), not database.url; database.url is "
                f"for PostgreSQL, e.g. {DATABASE_URL_EXAMPLE}")
    if scheme != DATABASE_URL_SCHEME:
        return (f"only {DATABASE_URL_SCHEME}:// URLs are supported (PostgreSQL through psycopg 3), "
                f"not {scheme or '?'}://...; e.g. {DATABASE_URL_EXAMPLE}")
    try:
        name = urlsplit(url).path.lstrip("/")
    except ValueError:
        return f"not a valid URL; e.g. {DATABASE_URL_EXAMPLE}"
    if not name:
        return f"the URL names no database (the part after the host and /), e.g. {DATABASE_URL_EXAMPLE}"
    return None


class DatabaseSettings(Section):
    """The database: an SQLite file (path, the default) or a PostgreSQL server (url, a central);
    migration backups, the daily off-site copy and the lock wait (ms)."""

    # SQLite file; created on first use. Relative paths are relative to the working directory.
    # Unused when url is set.
    path: Path = Path("var/kiosk.db")
    # PostgreSQL instead of the SQLite file (a central server, role: central), as
    # postgresql+psycopg://USER[:PASSWORD]@[HOST]/DBNAME[?host=SOCKET_DIR]; empty: the SQLite file.
    # Keep passwords out of it: peer authentication over the socket, or ~/.pgpass.
    # Files otherwise kept beside the database (web_secret.key, status.json, door.token) then go
    # to the working directory (kiosk-central.service: /var/lib/kiosk) unless set elsewhere.
    url: str | None = None
    # Copies of the database taken before a migration; how many to keep (0: no backups).
    # Backups hold biometric templates too; erasing a person erases them from the backups beside
    # the database as well, but copies moved elsewhere are out of reach.
    backups_kept: int = Field(3, ge=0, le=100)
    # A folder on another disk (USB stick, network share) where `kiosk serve` writes a copy of the
    # database every day, without biometric or expression data (see `kiosk db backup`); empty: none.
    offsite_dir: Path | None = None
    # Daily copies kept in offsite_dir; older ones are deleted. More is a longer history to go back to.
    offsite_kept: int = Field(14, ge=1, le=3650)
    # How long a writer waits for another process's lock before failing, in milliseconds.
    # Longer rides out the web app and the kiosk writing at once; shorter fails faster.
    busy_timeout_ms: int = Field(5000, ge=0, le=600_000)

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        problem = database_url_problem(value.strip())
        if problem is not None:
            raise ValueError(problem)
        return value.strip()

    @model_validator(mode="after")
    def _no_file_copies_of_a_server(self) -> DatabaseSettings:
        if self.url is not None and self.offsite_dir is not None:
            raise ValueError("offsite_dir: off-site copies are made of the SQLite file; with database.url "
                             "back PostgreSQL up with pg_dump (docs/central.md, Backups)")
        return self

    @property
    def location(self) -> Path | str:
        """What kiosk.store opens: the url when set, else the SQLite file's path."""
        return self.url if self.url is not None else self.path

    @property
    def folder(self) -> Path:
        """The folder for files kept beside the database (web_secret.key, status.json, door.token):
        the SQLite file's folder, or with a url the working directory (absolute)."""
        if self.url is not None:
            return Path.cwd()
        return Path(self.path).resolve().parent



class RetentionSettings(Section):
    """How long events (days) and expression scores (days) are kept, and whether enrolment photos are."""

    # Attendance events older than this are purged daily (payroll usually needs a year or more).
    attendance_days: int = Field(400, ge=1, le=36500)
    # Expression scores are stripped from events older than this; shorter is kinder.
    expression_days: int = Field(30, ge=1, le=36500)
    # Keep enrolment photos after their templates are computed (for re-enrolment with a new
    # model). False stores only the 128-d templates: less biometric data held.
    keep_enrolment_images: bool = False
