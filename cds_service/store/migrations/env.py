"""Alembic's environment script: run the revisions on the connection ``upgrade`` hands over,
inside its transaction (so inside its migration lock)."""

from __future__ import annotations

from alembic import context

context.configure(connection=context.config.attributes["connection"], target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
