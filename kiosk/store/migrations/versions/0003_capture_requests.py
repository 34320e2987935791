"""Requests to take a person's enrolment photos with the kiosk camera (capture_requests).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

The web app (or `kiosk enroll --at-kiosk`) adds a request; the door service takes it up,
photographs the person standing at the door, enrols them and records the outcome.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "capture_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("employee_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("expression_consent", sa.Boolean(), nullable=False),
        sa.Column("replace", sa.Boolean(), nullable=False),
        sa.Column("force", sa.Boolean(), nullable=False),
        sa.Column("requested_by", sa.String(100), nullable=False),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("photos_taken", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('waiting', 'capturing', 'done', 'failed', 'expired', 'cancelled')",
            name="ck_capture_requests_status",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name="fk_capture_requests_person_id_people",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_capture_requests"),
    )
    op.create_index("ix_capture_requests_status", "capture_requests", ["status"])


def downgrade() -> None:
    op.drop_index("ix_capture_requests_status", table_name="capture_requests")
    op.drop_table("capture_requests")
