"""The store's tables as SQLAlchemy Core sees them at run time, and the column types that
differ between SQLite and PostgreSQL.

The tables are created and changed only by the Alembic revisions in ``migrations/versions``;
this module must describe what the latest revision leaves behind.

Feedback uniqueness: an identical report (same card, outcome, outcome timestamp, accepted
suggestions and override reason) is stored once. The key columns are NOT NULL (absent values
are stored as '') because SQL unique constraints treat NULLs as distinct.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Integer,
    MetaData,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeEngine

# SQLite keeps timestamps as ISO 8601 UTC text of a fixed width, so text order is time order
# and the same instant always has the same text (unique constraints and comparisons work).
SQLITE_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def dumps_json(value: object) -> str:
    """Compact, key-sorted JSON; FHIR numbers parsed as Decimal are written as JSON numbers."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def utc(value: datetime, what: str) -> datetime:
    """``value`` in UTC; a naive datetime is refused (its meaning depends on where it came from)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, not {value.isoformat()}")
    return value.astimezone(UTC)


class UtcTimestamp(TypeDecorator[datetime]):
    """An aware UTC datetime: TIMESTAMPTZ on PostgreSQL, fixed-width text on SQLite."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Text())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = utc(value, "a timestamp")
        return value.strftime(SQLITE_TIMESTAMP_FORMAT) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return datetime.strptime(value, SQLITE_TIMESTAMP_FORMAT).replace(tzinfo=UTC)
        assert isinstance(value, datetime)
        return value.astimezone(UTC)


# JSONB on PostgreSQL, JSON text on SQLite; written by ``dumps_json`` (the engines' serializer).
JsonDocument = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
# A rowid alias on SQLite (INTEGER PRIMARY KEY), a 64-bit identity column on PostgreSQL.
RowId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

jti_claims = Table(
    "jti_claims",
    metadata,
    Column("issuer", Text, primary_key=True),
    Column("jti", Text, primary_key=True),
    Column("expires_at", UtcTimestamp, nullable=False),
)

card_audit = Table(
    "card_audit",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("hook_instance", Text, nullable=False),
    Column("service_id", Text, nullable=False),
    Column("card_uuid", Text, nullable=False),
    Column("rule", Text),
    Column("recommendation", JsonDocument),
    Column("suggestion_uuids", JsonDocument, nullable=False),
    Column("indicator", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("served_at", UtcTimestamp, nullable=False),
    Column("patient_ref", Text),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("service_id", Text, nullable=False),
    Column("card_uuid", Text, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("outcome_timestamp", UtcTimestamp, nullable=False),
    Column("accepted_suggestions", Text, nullable=False),
    Column("override_reason_system", Text, nullable=False),
    Column("override_reason_code", Text, nullable=False),
    Column("override_reason_display", Text, nullable=False),
    Column("user_comment", Text),
    Column("received_at", UtcTimestamp, nullable=False),
)

store_probe = Table(
    "store_probe",
    metadata,
    Column("probe", Text, primary_key=True),
    Column("written_at", UtcTimestamp, nullable=False),
)
