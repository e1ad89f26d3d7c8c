"""Gateways' children: which devices a gateway may forward (DESIGN.md §3).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(length=48)


def upgrade() -> None:
    op.create_table(
        "gateway_children",
        sa.Column("device_id", ID, nullable=False),
        sa.Column("gateway_id", ID, nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], ondelete="CASCADE",
                                name=op.f("fk_gateway_children_device_id_devices")),
        sa.ForeignKeyConstraint(["gateway_id"], ["devices.id"], ondelete="CASCADE",
                                name=op.f("fk_gateway_children_gateway_id_devices")),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_gateway_children")),
    )
    op.create_index(op.f("ix_gateway_children_gateway_id"), "gateway_children",
                    ["gateway_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_gateway_children_gateway_id"), table_name="gateway_children")
    op.drop_table("gateway_children")
