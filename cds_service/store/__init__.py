"""Persistence: JWT replay protection, the card audit trail, feedback and the rule report.

``open_store(url)`` gives a ``Store`` for SQLite (a local file; fine for one host with several
gunicorn workers) or PostgreSQL (several hosts, replicas), on SQLAlchemy Core. Call
``migrate()`` once at start-up (Alembic revisions shipped in ``migrations/``); it is idempotent
and safe when every worker and replica calls it at the same time. A database that cannot be
reached or written raises ``StoreUnavailable`` (a ``ServiceUnavailable``: 503, not 401/500).

URLs:
- ``sqlite:///relative/path.db`` (relative to the working directory) or
  ``sqlite:////absolute/path.db``; the parent directory is created.
- ``postgresql://user:password@host:port/dbname`` (``postgres://`` too; libpq query
  parameters such as ``?sslmode=require`` or ``?host=/run/postgresql`` pass through).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

from cds_service.store.engines import (
    InsufficientSpace,
    StoreUnavailable,
    describe_postgres,
    postgres_engine,
    sqlite_engine,
)
from cds_service.store.models import CardAudit, FeedbackItem, FeedbackResult, RuleStats
from cds_service.store.sql_store import SqlStore

__all__ = [
    "CardAudit",
    "FeedbackItem",
    "FeedbackResult",
    "InsufficientSpace",
    "RuleStats",
    "SqlStore",
    "Store",
    "StoreUnavailable",
    "open_store",
]

SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")


class Store(Protocol):
    def migrate(self) -> None:
        """Create or upgrade the schema (versioned; idempotent; safe to run concurrently)."""

    def claim_jti(self, issuer: str, jti: str, expires_at: datetime) -> bool:
        """Record a token id; False if (issuer, jti) was already claimed and is still live."""

    def record_cards(self, entries: Sequence[CardAudit]) -> None:
        """Append served cards to the audit trail (a repeated card is stored once)."""

    def record_feedback(self, service_id: str, items: Sequence[FeedbackItem]) -> FeedbackResult:
        """Store feedback, each identical report once; committed before this returns."""

    def rule_report(self, since: datetime | None = None) -> list[RuleStats]:
        """Cards shown and outcomes per rule, for the pharmacy committee."""

    def ping(self) -> bool:
        """True if the database takes a write now (readiness: /healthz)."""

    def close(self) -> None:
        """Close this process's connections."""


def open_store(database_url: str) -> Store:
    """A store for ``database_url``; ValueError (saying what is accepted) for anything else.

    Does not connect: the first call that needs the database does (``migrate`` at start-up).
    """
    url = database_url.strip()
    if url.startswith(SQLITE_PREFIX):
        path = _sqlite_path(url[len(SQLITE_PREFIX) :])
        return SqlStore(sqlite_engine(path), f"SQLite file {path}", sqlite_path=path)
    if url.startswith(POSTGRES_PREFIXES):
        _check_postgres_url(url)
        return SqlStore(postgres_engine(url), describe_postgres(url))
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise ValueError(
        f"CDS_DATABASE_URL: unsupported database URL (scheme {scheme[:40]!r}); use "
        "sqlite:///relative/file.db, sqlite:////absolute/file.db or "
        "postgresql://user:password@host:port/dbname"
    )


def _sqlite_path(rest: str) -> Path:
    if not rest or rest.endswith("/"):
        raise ValueError(
            "CDS_DATABASE_URL: an SQLite URL needs a file name, e.g. sqlite:////var/lib/cds.db"
        )
    if rest == ":memory:" or "?" in rest or rest.startswith("file:"):
        raise ValueError(
            "CDS_DATABASE_URL: SQLite must be a plain file path (no :memory:, file: URIs or "
            "?options), so that every worker process shares it"
        )
    return Path(rest).absolute()


def _check_postgres_url(url: str) -> None:
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(url)
    except Exception:
        # The parser's message may quote the URL, password included: do not repeat it.
        raise ValueError(
            "CDS_DATABASE_URL: not a valid PostgreSQL URL; expected "
            "postgresql://user:password@host:port/dbname"
        ) from None
