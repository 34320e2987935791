"""SQLAlchemy 2.0 typed models of the kiosk database.

Times are stored as naive UTC (SQLite text "YYYY-MM-DD HH:MM:SS.ffffff", sorts correctly)
and come back as aware UTC datetimes through UTCDateTime; naive input is refused.
The schema itself is owned by the Alembic migrations in kiosk/store/migrations/versions;
these models must match head (tests/test_migrations.py compares them).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, MappedColumn, mapped_column
from sqlalchemy.types import TypeDecorator

from kiosk.vocabulary import CaptureStatus, EventKind, LeaveKind, Role, sql_in

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetime <-> naive UTC column; naive values are refused."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to the database")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def _owned_by_person() -> MappedColumn[Any]:
    """The person_id column of a row that belongs to a person: indexed, deleted with the person."""
    return mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Person(Base):
    """An enrolled employee. erased_at set = biometric data erased, row kept for payroll events."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    employee_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expression_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    consent_changed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class FaceTemplate(Base):
    """One 128-d float32 face embedding (512 bytes little-endian) of a person."""

    __tablename__ = "face_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = _owned_by_person()
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Photo file name only (no directory), e.g. "IMG_0012.jpg".
    source: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # Enrolment quality figure (e.g. sharpness); higher is better; None when unknown.
    quality: Mapped[float | None] = mapped_column(Float, nullable=True)
    # How the embedding was made (vision.faces.embedder_id); None: before schema 0002.
    embedder: Mapped[str | None] = mapped_column(String(100), nullable=True)


class EnrolmentImage(Base):
    """An enrolment photo (encoded JPEG/PNG bytes); only kept when retention allows it."""

    __tablename__ = "enrolment_images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = _owned_by_person()
    image: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str | None] = mapped_column(String(255), nullable=True)


class ConsentChange(Base):
    """History of a person's expression-analysis consent (granted or withdrawn, by whom)."""

    __tablename__ = "consent_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = _owned_by_person()
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    granted: Mapped[bool] = mapped_column(Boolean)
    changed_by: Mapped[str] = mapped_column(String(100))


class AttendanceEvent(Base):
    """A check-in/out (or an unknown face: person_id NULL, kind 'unknown').

    On a central server a door's event also carries its door_seq and event_uuid (schema 0008);
    (device_id, door_seq) is unique, so a batch pushed twice is stored once. An event of a person the
    central no longer has keeps its kind with person_id NULL and review set."""

    __tablename__ = "attendance_events"
    __table_args__ = (
        CheckConstraint(sql_in("kind", EventKind), name="kind"),
        Index("ix_attendance_events_person_id_occurred_at", "person_id", "occurred_at"),
        UniqueConstraint("device_id", "door_seq"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # CASCADE: an event only disappears with its person row, and erase_person keeps the
    # row (see erasure.erase_person), so events follow retention, not erasure.
    person_id: Mapped[int | None] = mapped_column(
        ForeignKey("people.id", ondelete="CASCADE"), nullable=True
    )
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    kind: Mapped[str] = mapped_column(String(8))
    device_id: Mapped[str] = mapped_column(String(64))
    expression_label: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Per-class scores {"happy": 0.7, ...}, summing to ~1.
    # none_as_null: None is SQL NULL, not the JSON text 'null' (so IS NULL finds stripped rows).
    expression_scores: Mapped[dict[str, Any] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True
    )
    expression_confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Face-embedding distance to the matched person (lower is closer) and its score.
    match_distance: Mapped[float | None] = mapped_column(Float, nullable=True)
    match_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    # None: seen by the kiosk camera. Else the admin who entered it by hand (a correction), and why.
    recorded_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    # None: nothing odd. Else why someone should check the event, e.g. it was recorded at a time before
    # the newest stored event (the kiosk's clock went back; schema 0006).
    review: Mapped[str | None] = mapped_column(Text, nullable=True)
    # A door's own sequence number of the event (strictly increasing per door) and its UUID; NULL for
    # events recorded here (standalone kiosk, corrections). Schema 0008.
    door_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    event_uuid: Mapped[str | None] = mapped_column(String(36), nullable=True)


class Leave(Base):
    """A person's approved absence over whole local days, first_day..last_day inclusive.

    Only a kind (LeaveKind), never free text: a reason could reveal health details."""

    __tablename__ = "leave"
    __table_args__ = (
        CheckConstraint(sql_in("kind", LeaveKind), name="kind"),
        CheckConstraint("first_day <= last_day", name="days"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Like events, leave is payroll data: it stays when only a person's biometric data is erased.
    person_id: Mapped[int] = _owned_by_person()
    first_day: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(16))
    recorded_by: Mapped[str] = mapped_column(String(100))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """Who did what to whom; details never hold biometric data."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(200), nullable=True)
    details: Mapped[dict[str, Any] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True
    )


class User(Base):
    """A web-app login (password_hash is computed by the web layer)."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint(sql_in("role", Role), name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class WebSession(Base):
    """A signed-in web session: the cookie carries a random token, the table its SHA-256.

    Logout deletes the row (a copied cookie stops working); a password or role change, a
    disabled or deleted account deletes all of the user's rows. Rows outlive a restart.
    """

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the token
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UserSite(Base):
    """A site (doors.site) a manager account may see in reports; a manager with none sees every site."""

    __tablename__ = "user_sites"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    site: Mapped[str] = mapped_column(String(100), primary_key=True)


class CaptureRequest(Base):
    """An admin's request that the kiosk camera take a person's enrolment photos.

    Lifecycle: waiting -> capturing -> done | failed; waiting or capturing -> expired | cancelled.
    Holds no biometric data; finished requests are deleted a day later (purge_expired).
    """

    __tablename__ = "capture_requests"
    __table_args__ = (
        CheckConstraint(sql_in("status", CaptureStatus), name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    employee_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    expression_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    # Re-enrol an existing person (their templates are replaced) instead of adding a new one.
    replace: Mapped[bool] = mapped_column(Boolean, default=False)
    force: Mapped[bool] = mapped_column(Boolean, default=False)
    requested_by: Mapped[str] = mapped_column(String(100))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), index=True)
    # Progress or outcome for the admin, e.g. "photo 2 of 5" or why enrolment was refused.
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    photos_taken: Mapped[int] = mapped_column(Integer, default=0)
    person_id: Mapped[int | None] = mapped_column(
        ForeignKey("people.id", ondelete="SET NULL"), nullable=True
    )
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PendingErasure(Base):
    """An erasure committed in the live file whose backup scrub and VACUUM have not finished yet.

    Written in the erasure's transaction, deleted by finish_pending_erasures once every upgrade backup
    is clean; so an erasure interrupted after its commit (power cut, SIGKILL) is finished at the next
    open. No foreign key: with with_events the person row is gone already.
    """

    __tablename__ = "pending_erasures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(Integer)
    employee_id: Mapped[str] = mapped_column(String(64), index=True)
    with_events: Mapped[bool] = mapped_column(Boolean)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    requested_by: Mapped[str] = mapped_column(String(100))


class Door(Base):
    """A door kiosk known to a central server (docs/central.md): its enrolment code or token (only
    their SHA-256 hex), and what it last reported (time, clock offset, version, backlog)."""

    __tablename__ = "doors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Slug of the name, e.g. "main-entrance": the door's events carry it as attendance_events.device_id.
    device_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    site: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # SHA-256 hex of the one-time enrolment code; NULL once used.
    enrol_code_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    enrol_code_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # SHA-256 hex of the door's bearer token; NULL until the door has enrolled.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The highest event sequence of this door stored here (0: none yet).
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    # The door's clock minus ours at its last push, seconds (positive: the door runs ahead).
    clock_offset_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The door's software version and events it still has to push, as it last said.
    version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    backlog: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The gallery version the door last asked changes since (what it holds).
    gallery_version: Mapped[int | None] = mapped_column(Integer, nullable=True)


class GalleryChange(Base):
    """One change a door must know about a person (enrolment, templates, erasure, (de)activation,
    consent, rename); version is the gallery version doors pull changes since. No foreign key: an
    erased person's row may be gone. sqlite_autoincrement: a version is never handed out twice."""

    __tablename__ = "gallery_changes"
    __table_args__ = {"sqlite_autoincrement": True}

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class SyncState(Base):
    """A door's own sync bookmarks (key -> text), e.g. pushed_seq and gallery_version."""

    __tablename__ = "sync_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
