"""Alembic environment: runs on the connection kiosk.store.db hands over (no alembic.ini)."""

from __future__ import annotations

from alembic import context

from kiosk.store.models import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Migrate on config.attributes["connection"] (foreign keys already off, see db.upgrade)."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("kiosk migrations run only through kiosk.store.db.upgrade()")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch copies the table
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
