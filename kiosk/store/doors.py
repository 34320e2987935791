"""Door kiosks of a central server (docs/central.md): add one with a one-time enrolment code, swap
the code for a bearer token, authenticate and revoke doors, list what they last reported.

Only the SHA-256 hex of codes and tokens is stored. A code is good for one enrolment within
ENROL_CODE_TTL. Adding, enrolling, issuing a new code and revoking write audit lines.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from kiosk.errors import StoreError
from kiosk.identity import refuse_hidden
from kiosk.store._base import now_utc, write_audit
from kiosk.store.db import Database
from kiosk.store.models import Door
from kiosk.vocabulary import MANUAL_DEVICE

logger = logging.getLogger(__name__)

ENROL_CODE_TTL = timedelta(hours=24)
MAX_SITE_CHARS = 100
MAX_VERSION_CHARS = 32


class DoorError(StoreError):
    """A door cannot do or be given what was asked (base of the errors below)."""


class DoorNotFound(DoorError):
    """No door with that name or device id."""


class DuplicateDoor(DoorError):
    """A door with that name (or the same device id) exists already."""


class BadEnrolCode(DoorError):
    """An enrolment code that is unknown, used already, expired, or of a revoked door."""


class UnknownDoorToken(DoorError):
    """A bearer token no door holds."""


class DoorRevoked(DoorError):
    """The door was revoked: its requests are refused."""


@dataclass(frozen=True)
class DoorInfo:
    """A door as stored (times aware UTC; clock_offset_s = door clock minus central clock, s)."""

    id: int
    device_id: str
    name: str
    site: str | None
    created_at: datetime
    revoked_at: datetime | None
    last_seen_at: datetime | None
    last_seq: int
    clock_offset_s: float | None
    version: str | None
    backlog: int | None
    gallery_version: int | None
    enrolled: bool  # the door holds a token
    code_expires_at: datetime | None  # an unused enrolment code waits until then

    @property
    def revoked(self) -> bool:
        """True once the door was revoked."""
        return self.revoked_at is not None

    def state(self, now: datetime) -> str:
        """One word for a list: revoked, enrolled, waiting (a code is out) or code-expired."""
        if self.revoked:
            return "revoked"
        if self.code_expires_at is not None and self.code_expires_at > now:
            return "waiting" if not self.enrolled else "new-code"
        return "enrolled" if self.enrolled else "code-expired"


@dataclass(frozen=True)
class NewDoorCode:
    """A one-time enrolment code handed to an admin (shown once; only its hash is stored)."""

    door: DoorInfo
    code: str
    expires_at: datetime


def sha256_hex(secret: str) -> str:
    """SHA-256 of a code or token as 64 hex digits."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def device_slug(name: str) -> str:
    """The device id of a door name: ASCII letters and digits in lower case joined by '-',
    e.g. "Main entrance" -> "main-entrance"; DoorError when nothing is left or it is too long."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    if not slug:
        raise DoorError(f"the door name {name!r} needs some letters or digits (they make its device id)")
    if len(slug) > 64:
        raise DoorError(f"the door name {name!r} is too long (its device id {slug!r} has over 64 characters)")
    if slug == MANUAL_DEVICE:
        raise DoorError(f"the door name {name!r} would have the device id {MANUAL_DEVICE!r}, which marks hand "
                        "corrections; choose another name")
    return slug


def _clean_door_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name or len(name) > 200:
        raise DoorError("a door name is 1 to 200 characters")
    refuse_hidden(name, "a door name")
    return name


def _clean_site(site: str | None) -> str | None:
    if site is None:
        return None
    site = site.strip()
    if not site or len(site) > MAX_SITE_CHARS:
        raise DoorError(f"a site is 1 to {MAX_SITE_CHARS} characters")
    refuse_hidden(site, "a site")
    return site


def door_info(d: Door) -> DoorInfo:
    """The DoorInfo of a row."""
    return DoorInfo(d.id, d.device_id, d.name, d.site, d.created_at, d.revoked_at, d.last_seen_at,
                    d.last_seq, d.clock_offset_s, d.version, d.backlog, d.gallery_version,
                    d.token_hash is not None,
                    d.enrol_code_expires_at if d.enrol_code_hash is not None else None)


def _new_code(d: Door, now: datetime) -> str:
    code = secrets.token_hex(16)  # 128 bits; hex, so it never starts with "-" (an option on a command line)
    d.enrol_code_hash = sha256_hex(code)
    d.enrol_code_expires_at = now + ENROL_CODE_TTL
    return code


def add_door(db: Database, name: str, *, site: str | None = None, actor: str = "system",
             now: datetime | None = None) -> NewDoorCode:
    """Add a door and make its one-time enrolment code (valid ENROL_CODE_TTL); DuplicateDoor if the
    name or its device id is taken."""
    name, site = _clean_door_name(name), _clean_site(site)
    device_id = device_slug(name)
    now = now_utc(now)
    with db.session() as s:
        clash = s.scalar(select(Door).where(or_(Door.device_id == device_id, Door.name == name)))
        if clash is not None:
            raise DuplicateDoor(f"a door {clash.name!r} (device id {clash.device_id}) exists already; "
                                "choose another name")
        door = Door(device_id=device_id, name=name, site=site, created_at=now, last_seq=0)
        code = _new_code(door, now)
        s.add(door)
        s.flush()
        write_audit(s, actor, "door.add", f"door:{device_id}", {"name": name, "site": site}, now)
        logger.info("door %s added (site %s)", device_id, site)
        return NewDoorCode(door_info(door), code, now + ENROL_CODE_TTL)


def _door_row(s: Session, name_or_device_id: str) -> Door:
    key = name_or_device_id.strip()
    door = s.scalar(select(Door).where(or_(Door.device_id == key, Door.name == " ".join(key.split()))))
    if door is None:
        raise DoorNotFound(f"no door named {name_or_device_id!r} (see `kiosk doors list`)")
    return door


def get_door(db: Database, name_or_device_id: str) -> DoorInfo:
    """The door with this name or device id; DoorNotFound otherwise."""
    with db.session() as s:
        return door_info(_door_row(s, name_or_device_id))


def new_enrol_code(db: Database, name_or_device_id: str, *, actor: str = "system",
                   now: datetime | None = None) -> NewDoorCode:
    """A fresh one-time code for an existing door (the old code stops working; its token keeps
    working until the new code is used); refused for a revoked door."""
    now = now_utc(now)
    with db.session() as s:
        door = _door_row(s, name_or_device_id)
        if door.revoked_at is not None:
            raise DoorRevoked(f"the door {door.name!r} was revoked; add it again under another name")
        code = _new_code(door, now)
        write_audit(s, actor, "door.code", f"door:{door.device_id}", None, now)
        return NewDoorCode(door_info(door), code, now + ENROL_CODE_TTL)


def enrol_door(db: Database, code: str, *, version: str | None = None,
               now: datetime | None = None) -> tuple[DoorInfo, str]:
    """Swap a one-time code for the door's bearer token: (door, token). The code is spent; a token
    the door held before stops working. BadEnrolCode for an unknown, used or expired code."""
    now = now_utc(now)
    code = (code or "").strip()
    with db.session() as s:
        door = s.scalar(select(Door).where(Door.enrol_code_hash == sha256_hex(code))) if code else None
        if door is None:
            raise BadEnrolCode("this enrolment code is unknown or was used already; "
                               "make a new one with `kiosk doors code NAME`")
        expires = door.enrol_code_expires_at
        if door.revoked_at is not None:
            raise BadEnrolCode(f"the door {door.name!r} was revoked")
        if expires is None or expires <= now:
            raise BadEnrolCode(f"this enrolment code expired at {expires:%Y-%m-%d %H:%M} UTC; "
                               "make a new one with `kiosk doors code NAME`")
        token = secrets.token_urlsafe(32)
        door.token_hash = sha256_hex(token)
        door.enrol_code_hash = None
        door.enrol_code_expires_at = None
        door.last_seen_at = now
        if version is not None:
            door.version = version[:MAX_VERSION_CHARS]
        write_audit(s, f"door:{door.device_id}", "door.enrol", f"door:{door.device_id}",
                    {"version": door.version}, now)
        logger.info("door %s enrolled", door.device_id)
        return door_info(door), token


def authenticate_door(db: Database, token: str) -> DoorInfo:
    """The door holding this bearer token; UnknownDoorToken, or DoorRevoked for a revoked door."""
    if not token:
        raise UnknownDoorToken("no door token given")
    with db.session() as s:
        door = s.scalar(select(Door).where(Door.token_hash == sha256_hex(token)))
        if door is None:
            raise UnknownDoorToken("this door token is unknown; enrol the door again")
        if door.revoked_at is not None:
            raise DoorRevoked(f"the door {door.name!r} was revoked at {door.revoked_at:%Y-%m-%d %H:%M} UTC")
        return door_info(door)


def revoke_door(db: Database, name_or_device_id: str, *, actor: str = "system",
                now: datetime | None = None) -> DoorInfo:
    """Refuse the door's requests from now on (its events stay); DoorError when revoked already."""
    now = now_utc(now)
    with db.session() as s:
        door = _door_row(s, name_or_device_id)
        if door.revoked_at is not None:
            raise DoorError(f"the door {door.name!r} was revoked already at {door.revoked_at:%Y-%m-%d %H:%M} UTC")
        door.revoked_at = now
        door.enrol_code_hash = None
        door.enrol_code_expires_at = None
        write_audit(s, actor, "door.revoke", f"door:{door.device_id}", None, now)
        logger.warning("door %s revoked by %s", door.device_id, actor)
        return door_info(door)


def list_doors(db: Database) -> list[DoorInfo]:
    """All doors by site and name (revoked ones too)."""
    with db.session() as s:
        rows = s.scalars(select(Door).order_by(Door.site, Door.name, Door.id)).all()
        return [door_info(d) for d in rows]


def note_gallery_pull(db: Database, door_id: int, since: int, *, now: datetime | None = None) -> None:
    """Record that a door asked for gallery changes since `since` (what it holds) and was seen now."""
    now = now_utc(now)
    with db.session() as s:
        door = s.get(Door, door_id)
        if door is None:
            raise DoorNotFound(f"no door with id {door_id}")
        door.last_seen_at = now
        door.gallery_version = since
