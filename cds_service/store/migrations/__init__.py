"""Versioned schema migrations: Alembic revisions in ``versions/``, run at start-up.

``upgrade(engine)`` brings a database to the latest revision in one transaction, serialised
across every process and replica that migrates the same database at the same moment: on
PostgreSQL by a transaction-level advisory lock, on SQLite by the write lock that the store's
``BEGIN IMMEDIATE`` takes. Later starters wait, then find nothing left to do.

A new revision is a new file in ``versions/`` (``down_revision`` naming the previous head);
never edit a revision that has shipped. ``schema.py`` must describe what the head leaves.

Databases made by the releases before Alembic carry a ``schema_version`` table instead of
``alembic_version``; their version is mapped to the Alembic revision with the same schema
(``LEGACY_REVISIONS``), stamped, and upgraded from there. ``schema_version`` is left as it was.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every process of this service.
PG_MIGRATION_LOCK_KEY = 0x1AA2_0C05
# schema_version.version of the hand-written migrations -> the revision with the same schema.
LEGACY_REVISIONS = {1: "0001"}


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).resolve().parent))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def upgrade(engine: Engine, where: str) -> None:
    """Create or upgrade the schema; ``where`` names the database in log lines."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK_KEY}
            )
        config = alembic_config(connection)
        known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
        current = MigrationContext.configure(connection).get_current_revision()
        if current is None:
            legacy = _legacy_version(connection)
            if legacy is not None:
                revision = LEGACY_REVISIONS.get(legacy)
                if revision is None:
                    _warn_newer(where, f"schema_version {legacy}")
                    return
                command.stamp(config, revision)
                log.info("%s: schema_version %d adopted as revision %s", where, legacy, revision)
        elif current not in known:
            _warn_newer(where, f"revision {current}")
            return
        command.upgrade(config, "head")


def _legacy_version(connection: Connection) -> int | None:
    if not inspect(connection).has_table("schema_version"):
        return None
    found = connection.execute(text("SELECT MAX(version) FROM schema_version")).scalar()
    return None if found is None else int(found)


def _warn_newer(where: str, what: str) -> None:
    log.warning(
        "%s has %s, newer than this release knows (head %s); running without migrating",
        where,
        what,
        head_revision(),
    )
