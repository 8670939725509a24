"""store_probe: the row /healthz writes to prove the database takes writes.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "store_probe",
        sa.Column("probe", sa.Text(), primary_key=True),
        sa.Column(
            "written_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_table("store_probe")
