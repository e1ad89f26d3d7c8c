"""Each cell's endpoints (docs/scale.md): ``cells``, keyed by the name ``sites.cell``
holds, with the cell's broker as devices and gateways reach it (host and TLS port) and
its InfluxDB for readers (URL and database; the readers' credentials stay in their own
settings). ``sites.cell`` is not a foreign key: a site whose cell has no row keeps being
served by the endpoints each command or service is configured with, as before.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts() -> sa.DateTime:
    """models.UtcDateTime stores this: timestamptz on PostgreSQL, UTC text on SQLite."""
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cells",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("broker_host", sa.String(length=253), nullable=False),
        sa.Column("broker_port", sa.Integer(), nullable=False),
        sa.Column("influx_url", sa.String(length=500), nullable=False),
        sa.Column("influx_db", sa.String(length=64), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.CheckConstraint("broker_port BETWEEN 1 AND 65535",
                           name=op.f("ck_cells_broker_port")),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_cells")),
    )


def downgrade() -> None:
    op.drop_table("cells")
