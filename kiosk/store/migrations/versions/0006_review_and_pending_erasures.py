"""Events flagged for review (the clock went back) and erasures still to finish.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

attendance_events.review: NULL for an ordinary event, else why a person should look at it (it was
recorded at a time before the newest stored event: the kiosk's clock went back). Plain ALTER TABLE
ADD COLUMN: existing rows keep NULL.

pending_erasures: one row per erasure committed in the live file whose second half (scrubbing the
upgrade backups, VACUUM) has not finished yet; written in the erasure's own transaction, deleted
when the backups are clean (kiosk.store.erasure.finish_pending_erasures). No foreign key: the person
row may be gone already (erasure with events).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("attendance_events", sa.Column("review", sa.Text(), nullable=True))
    op.create_table(
        "pending_erasures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("employee_id", sa.String(64), nullable=False),
        sa.Column("with_events", sa.Boolean(), nullable=False),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("requested_by", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pending_erasures"),
    )
    op.create_index("ix_pending_erasures_employee_id", "pending_erasures", ["employee_id"])


def downgrade() -> None:
    op.drop_index("ix_pending_erasures_employee_id", table_name="pending_erasures")
    op.drop_table("pending_erasures")
    with op.batch_alter_table("attendance_events") as batch:
        batch.drop_column("review")
