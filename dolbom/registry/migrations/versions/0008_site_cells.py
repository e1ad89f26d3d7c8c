"""Each site belongs to a cell (docs/scale.md): ``sites.cell``, ``default`` for every site
so far. The alert services of a cell take only its sites' homes; moving a site to
another cell is a registry change for each of its homes (``registry_changes``, 0007),
so both cells' rules processes see it at their next refresh.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_TRIGGER = """
CREATE TRIGGER registry_sites_cell AFTER UPDATE OF cell ON sites FOR EACH ROW
WHEN OLD.cell IS NOT NEW.cell BEGIN
UPDATE registry_version SET n = n + 1 WHERE id = 1;
DELETE FROM registry_changes WHERE home_id IN (SELECT id FROM homes WHERE site_id = NEW.id);
INSERT INTO registry_changes (home_id, n)
  SELECT id, (SELECT n FROM registry_version WHERE id = 1) FROM homes WHERE site_id = NEW.id;
END"""

PG_FUNCTION = """
CREATE FUNCTION registry_sites_cell_changed() RETURNS trigger AS $$
BEGIN
  IF OLD.cell IS DISTINCT FROM NEW.cell THEN
    PERFORM registry_note(h.id) FROM homes h WHERE h.site_id = NEW.id;
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql"""


def upgrade() -> None:
    with op.batch_alter_table("sites") as batch:
        batch.add_column(sa.Column("cell", sa.String(length=32), nullable=False,
                                   server_default="default"))
        batch.create_index(batch.f("ix_sites_cell"), ["cell"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute("CREATE TRIGGER registry_sites_cell AFTER UPDATE OF cell ON sites "
                   "FOR EACH ROW EXECUTE FUNCTION registry_sites_cell_changed()")
    else:
        op.execute(SQLITE_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER registry_sites_cell ON sites")
        op.execute("DROP FUNCTION registry_sites_cell_changed()")
    else:
        op.execute("DROP TRIGGER registry_sites_cell")
    with op.batch_alter_table("sites") as batch:
        batch.drop_index(batch.f("ix_sites_cell"))
        batch.drop_column("cell")
