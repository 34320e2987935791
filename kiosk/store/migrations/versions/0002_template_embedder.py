"""Record how each face template was made (face_templates.embedder).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

Templates made with other recognition settings (mirror pass, landmarks, jitters) are further
from today's camera embeddings; the service counts them so an admin knows whom to re-enrol.
Templates from before this revision get NULL (unknown).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("face_templates") as batch:
        batch.add_column(sa.Column("embedder", sa.String(100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("face_templates") as batch:
        batch.drop_column("embedder")
