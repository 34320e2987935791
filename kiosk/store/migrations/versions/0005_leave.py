"""Leave: a person's approved absence (holiday, sick, other) over whole days.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

Reports count a work day on leave as leave, not as an absence. Only the kind is stored, no
free text (a reason could reveal health details).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leave",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("recorded_by", sa.String(100), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('holiday', 'sick', 'other')", name="ck_leave_kind"),
        sa.CheckConstraint("first_day <= last_day", name="ck_leave_days"),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name="fk_leave_person_id_people",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_leave"),
    )
    op.create_index("ix_leave_person_id", "leave", ["person_id"])


def downgrade() -> None:
    op.drop_index("ix_leave_person_id", table_name="leave")
    op.drop_table("leave")
