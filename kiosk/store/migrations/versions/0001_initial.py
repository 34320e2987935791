"""Initial kiosk schema.

Revision ID: 0001
Revises:
Create Date: 2026-11-28

Written out by hand (not metadata.create_all) so that it stays frozen when models change.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "people",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("employee_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expression_consent", sa.Boolean(), nullable=False),
        sa.Column("consent_changed_at", sa.DateTime(), nullable=True),
        sa.Column("consent_changed_by", sa.String(100), nullable=True),
        sa.Column("erased_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_people"),
        sa.UniqueConstraint("employee_id", name="uq_people_employee_id"),
    )
    op.create_table(
        "face_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("source", sa.String(255), nullable=True),
        sa.Column("quality", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name="fk_face_templates_person_id_people",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_face_templates"),
    )
    op.create_index("ix_face_templates_person_id", "face_templates", ["person_id"])
    op.create_table(
        "enrolment_images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("image", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("source", sa.String(255), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name="fk_enrolment_images_person_id_people",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_enrolment_images"),
    )
    op.create_index("ix_enrolment_images_person_id", "enrolment_images", ["person_id"])
    op.create_table(
        "consent_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("changed_by", sa.String(100), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name="fk_consent_history_person_id_people",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_consent_history"),
    )
    op.create_index("ix_consent_history_person_id", "consent_history", ["person_id"])
    op.create_table(
        "attendance_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("expression_label", sa.String(32), nullable=True),
        sa.Column("expression_scores", sa.JSON(), nullable=True),
        sa.Column("expression_confidence", sa.Float(), nullable=True),
        sa.Column("match_distance", sa.Float(), nullable=True),
        sa.Column("match_score", sa.Float(), nullable=True),
        sa.CheckConstraint("kind IN ('in', 'out', 'unknown')", name="ck_attendance_events_kind"),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name="fk_attendance_events_person_id_people",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_attendance_events"),
    )
    op.create_index("ix_attendance_events_occurred_at", "attendance_events", ["occurred_at"])
    op.create_index(
        "ix_attendance_events_person_id_occurred_at",
        "attendance_events",
        ["person_id", "occurred_at"],
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(200), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.CheckConstraint("role IN ('admin', 'manager')", name="ck_users_role"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
    )


def downgrade() -> None:
    for table in (
        "users",
        "audit_log",
        "attendance_events",
        "consent_history",
        "enrolment_images",
        "face_templates",
        "people",
    ):
        op.drop_table(table)
