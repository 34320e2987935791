"""Many doors (issue 13): doors, the gallery change feed, a door's sync state, door sequences on events.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

doors: the door kiosks of a central server, with the SHA-256 of their enrolment code and token.
gallery_changes: one row per change a door must know (version autoincrement, never reused).
sync_state: key -> value bookmarks of a door (pushed_seq, gallery_version).
attendance_events.door_seq / event_uuid: a door's own number and UUID of an event, unique per
(device_id, door_seq) so a repeated push is stored once; NULL for events recorded locally (several
NULLs never collide, on SQLite and PostgreSQL alike).

Dialect-neutral: plain create_table and batch_alter_table (a table copy on SQLite, ALTER on PostgreSQL).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "doors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("site", sa.String(100), nullable=True),
        sa.Column("enrol_code_hash", sa.String(64), nullable=True),
        sa.Column("enrol_code_expires_at", sa.DateTime(), nullable=True),
        sa.Column("token_hash", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(), nullable=True),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("clock_offset_s", sa.Float(), nullable=True),
        sa.Column("version", sa.String(32), nullable=True),
        sa.Column("backlog", sa.Integer(), nullable=True),
        sa.Column("gallery_version", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_doors"),
        sa.UniqueConstraint("device_id", name="uq_doors_device_id"),
        sa.UniqueConstraint("enrol_code_hash", name="uq_doors_enrol_code_hash"),
        sa.UniqueConstraint("token_hash", name="uq_doors_token_hash"),
    )
    op.create_table(
        "gallery_changes",
        sa.Column("version", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("version", name="pk_gallery_changes"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "sync_state",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_sync_state"),
    )
    with op.batch_alter_table("attendance_events") as batch:
        batch.add_column(sa.Column("door_seq", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("event_uuid", sa.String(36), nullable=True))
        batch.create_unique_constraint("uq_attendance_events_device_id_door_seq", ["device_id", "door_seq"])


def downgrade() -> None:
    with op.batch_alter_table("attendance_events") as batch:
        batch.drop_constraint("uq_attendance_events_device_id_door_seq", type_="unique")
        batch.drop_column("event_uuid")
        batch.drop_column("door_seq")
    op.drop_table("sync_state")
    op.drop_table("gallery_changes")
    op.drop_table("doors")
