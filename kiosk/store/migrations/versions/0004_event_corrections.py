"""Attendance corrections: who entered an event by hand, and why.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

attendance_events.recorded_by: NULL for the kiosk camera, else the admin who added the event
(a missed check-out, a forgotten check-in); attendance_events.note: their reason. Plain
ALTER TABLE ADD COLUMN: existing rows keep NULL (made by the camera).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("attendance_events", sa.Column("recorded_by", sa.String(100), nullable=True))
    op.add_column("attendance_events", sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attendance_events") as batch:
        batch.drop_column("note")
        batch.drop_column("recorded_by")
