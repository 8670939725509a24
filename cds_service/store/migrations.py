"""Versioned schema migrations, written once for both databases.

Append new migrations at the end; never edit one that has shipped. ``{ts}``, ``{json}`` and
``{id}`` are filled in by the dialect. The ``schema_version`` table records which have run.

Feedback uniqueness: an identical report (same card, outcome, outcome timestamp, accepted
suggestions and override reason) is stored once. The key columns are NOT NULL (absent values
are stored as '') because SQL unique constraints treat NULLs as distinct.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


SCHEMA_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at {ts} NOT NULL
)
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "jti claims, card audit trail, feedback",
        (
            """
            CREATE TABLE jti_claims (
                issuer TEXT NOT NULL,
                jti TEXT NOT NULL,
                expires_at {ts} NOT NULL,
                PRIMARY KEY (issuer, jti)
            )
            """,
            "CREATE INDEX jti_claims_expires_at ON jti_claims (expires_at)",
            """
            CREATE TABLE card_audit (
                id {id},
                hook_instance TEXT NOT NULL,
                service_id TEXT NOT NULL,
                card_uuid TEXT NOT NULL,
                rule TEXT,
                recommendation {json},
                suggestion_uuids {json} NOT NULL,
                indicator TEXT NOT NULL,
                summary TEXT NOT NULL,
                served_at {ts} NOT NULL,
                patient_ref TEXT,
                CONSTRAINT card_audit_card UNIQUE (hook_instance, card_uuid)
            )
            """,
            "CREATE INDEX card_audit_card_uuid ON card_audit (card_uuid)",
            "CREATE INDEX card_audit_served_at ON card_audit (served_at)",
            """
            CREATE TABLE feedback (
                id {id},
                service_id TEXT NOT NULL,
                card_uuid TEXT NOT NULL,
                outcome TEXT NOT NULL CHECK (outcome IN ('accepted', 'overridden')),
                outcome_timestamp {ts} NOT NULL,
                accepted_suggestions TEXT NOT NULL,
                override_reason_system TEXT NOT NULL,
                override_reason_code TEXT NOT NULL,
                override_reason_display TEXT NOT NULL,
                user_comment TEXT,
                received_at {ts} NOT NULL,
                CONSTRAINT feedback_report UNIQUE (
                    card_uuid, outcome, outcome_timestamp, accepted_suggestions,
                    override_reason_system, override_reason_code, override_reason_display
                )
            )
            """,
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version
