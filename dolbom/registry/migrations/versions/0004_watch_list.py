"""The care workers' daily watch list: weak welfare signals that are not pushed
(DESIGN.md §5).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ID = sa.String(length=48)


def upgrade() -> None:
    op.create_table(
        "watch_items",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("site_id", ID, nullable=False),
        sa.Column("home_id", ID, nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("device_id", ID, nullable=True),
        sa.ForeignKeyConstraint(["home_id"], ["homes.id"], ondelete="CASCADE",
                                name=op.f("fk_watch_items_home_id_homes")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_watch_items")),
    )
    with op.batch_alter_table("watch_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_watch_items_home_id"), ["home_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_watch_items_site_id_at"), ["site_id", "at"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("watch_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_watch_items_site_id_at"))
        batch_op.drop_index(batch_op.f("ix_watch_items_home_id"))
    op.drop_table("watch_items")
