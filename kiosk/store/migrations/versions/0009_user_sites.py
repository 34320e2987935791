"""Managers limited to sites (issue 13): the sites a manager account may see in reports.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

user_sites: one row per (account, site); a manager with no rows sees every site (as before).
Sites are the free text of doors.site (no table of sites: a site exists by having doors).
Dialect-neutral: a plain create_table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_sites",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("site", sa.String(100), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_user_sites_user_id_users",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "site", name="pk_user_sites"),
    )


def downgrade() -> None:
    op.drop_table("user_sites")
