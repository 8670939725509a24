"""jti claims, card audit trail, feedback.

The schema of the hand-written migration 1 (``schema_version`` 1), column for column, so that
databases made before Alembic are stamped with this revision and upgraded from it.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

TIMESTAMP = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")
JSON_DOCUMENT = sa.Text().with_variant(JSONB(), "postgresql")


def _id() -> sa.Column[int]:
    # SQLite: INTEGER PRIMARY KEY AUTOINCREMENT; PostgreSQL: BIGINT GENERATED ALWAYS AS IDENTITY.
    return sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        sa.Identity(always=True),
        primary_key=True,
    )


def upgrade() -> None:
    op.create_table(
        "jti_claims",
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("jti", sa.Text(), nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("issuer", "jti"),
    )
    op.create_index("jti_claims_expires_at", "jti_claims", ["expires_at"])
    op.create_table(
        "card_audit",
        _id(),
        sa.Column("hook_instance", sa.Text(), nullable=False),
        sa.Column("service_id", sa.Text(), nullable=False),
        sa.Column("card_uuid", sa.Text(), nullable=False),
        sa.Column("rule", sa.Text()),
        sa.Column("recommendation", JSON_DOCUMENT),
        sa.Column("suggestion_uuids", JSON_DOCUMENT, nullable=False),
        sa.Column("indicator", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("served_at", TIMESTAMP, nullable=False),
        sa.Column("patient_ref", sa.Text()),
        sa.UniqueConstraint("hook_instance", "card_uuid", name="card_audit_card"),
        sqlite_autoincrement=True,
    )
    op.create_index("card_audit_card_uuid", "card_audit", ["card_uuid"])
    op.create_index("card_audit_served_at", "card_audit", ["served_at"])
    op.create_table(
        "feedback",
        _id(),
        sa.Column("service_id", sa.Text(), nullable=False),
        sa.Column("card_uuid", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("outcome_timestamp", TIMESTAMP, nullable=False),
        sa.Column("accepted_suggestions", sa.Text(), nullable=False),
        sa.Column("override_reason_system", sa.Text(), nullable=False),
        sa.Column("override_reason_code", sa.Text(), nullable=False),
        sa.Column("override_reason_display", sa.Text(), nullable=False),
        sa.Column("user_comment", sa.Text()),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("outcome IN ('accepted', 'overridden')"),
        sa.UniqueConstraint(
            "card_uuid",
            "outcome",
            "outcome_timestamp",
            "accepted_suggestions",
            "override_reason_system",
            "override_reason_code",
            "override_reason_display",
            name="feedback_report",
        ),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("card_audit")
    op.drop_table("jti_claims")
