"""Registry changes the rules read, counted by triggers (docs/alerts.md, "Registry
refresh"): the rules process re-reads only the homes changed since its last look; and
rule state saved packed (``home_rule_state.packed``), the JSON ``state`` of the rows
saved before kept and read.

``registry_version`` is one row, a number raised by every change the rules care about;
``registry_changes`` holds, per home, the number of its latest change. Triggers on
``homes``, ``residents``, ``resident_settings`` and ``devices`` raise both, on inserts,
deletes and updates of only the columns the rules read (``UPDATE OF``): ingest's
last-seen writes (``last_seen_at``, ``last_state``, ``last_boot``, ``fw``) change
nothing here.

On PostgreSQL the number is taken by updating that one row, which holds its lock to
the end of the transaction: registry writers commit in the order of their numbers, so
a reader that saw number N has seen every change up to N. Registry writes are rare
(the API, the command line); ingest never takes this lock.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(length=48)

# table → (columns the rules read, expression of the home of a NEW/OLD row)
WATCHED: dict[str, tuple[tuple[str, ...], str]] = {
    "homes": (("id", "site_id", "mode"), "{row}.id"),
    "residents": (("home_id", "wandering"), "{row}.home_id"),
    "resident_settings": (("resident_id", "key", "value"),
                          "(SELECT home_id FROM residents WHERE id = {row}.resident_id)"),
    "devices": (("home_id", "kind", "power", "hb_s", "revoked_at"), "{row}.home_id"),
}


def _sqlite_note(home: str) -> str:
    # DELETE then INSERT, not INSERT OR REPLACE: an outer statement's conflict clause
    # (INSERT OR IGNORE ...) would override the trigger's.
    # (S608: the SQL is made of this module's constants only.)
    return ("UPDATE registry_version SET n = n + 1 WHERE id = 1;\n"  # noqa: S608
            f"DELETE FROM registry_changes WHERE home_id = {home};\n"
            "INSERT INTO registry_changes (home_id, n)\n"
            "  SELECT h, (SELECT n FROM registry_version WHERE id = 1)\n"
            f"  FROM (SELECT {home} AS h) WHERE h IS NOT NULL;\n")


def _sqlite_up() -> None:
    for table, (cols, home) in WATCHED.items():
        new, old = home.format(row="NEW"), home.format(row="OLD")
        op.execute(f"CREATE TRIGGER registry_{table}_ins AFTER INSERT ON {table} "
                   f"FOR EACH ROW BEGIN\n{_sqlite_note(new)}END")
        op.execute(f"CREATE TRIGGER registry_{table}_del AFTER DELETE ON {table} "
                   f"FOR EACH ROW BEGIN\n{_sqlite_note(old)}END")
        op.execute(f"CREATE TRIGGER registry_{table}_upd AFTER UPDATE OF {', '.join(cols)} "
                   f"ON {table} FOR EACH ROW BEGIN\n{_sqlite_note(old)}{_sqlite_note(new)}END")


def _pg_up() -> None:
    op.execute("""
CREATE FUNCTION registry_note(home varchar) RETURNS void AS $$
DECLARE v bigint;
BEGIN
  IF home IS NULL THEN RETURN; END IF;
  UPDATE registry_version SET n = n + 1 WHERE id = 1 RETURNING n INTO v;
  INSERT INTO registry_changes (home_id, n) VALUES (home, v)
    ON CONFLICT (home_id) DO UPDATE SET n = EXCLUDED.n;
END $$ LANGUAGE plpgsql""")
    for table, (cols, home) in WATCHED.items():
        new, old = home.format(row="NEW"), home.format(row="OLD")
        op.execute(f"""
CREATE FUNCTION registry_{table}_changed() RETURNS trigger AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN PERFORM registry_note({old}); END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN PERFORM registry_note({new}); END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql""")
        op.execute(f"CREATE TRIGGER registry_{table}_changed "
                   f"AFTER INSERT OR DELETE OR UPDATE OF {', '.join(cols)} ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION registry_{table}_changed()")


def upgrade() -> None:
    op.create_table(
        "registry_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_version")),
    )
    op.create_table(
        "registry_changes",
        sa.Column("home_id", ID, nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("home_id", name=op.f("pk_registry_changes")),
    )
    op.create_index(op.f("ix_registry_changes_n"), "registry_changes", ["n"])
    op.execute("INSERT INTO registry_version (id, n) VALUES (1, 0)")
    with op.batch_alter_table("home_rule_state") as batch:
        batch.add_column(sa.Column("packed", sa.LargeBinary(), nullable=True))
        batch.alter_column("state", existing_type=sa.JSON(), nullable=True)
    if op.get_bind().dialect.name == "postgresql":
        _pg_up()
    else:
        _sqlite_up()


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    for table in WATCHED:
        if pg:
            op.execute(f"DROP TRIGGER registry_{table}_changed ON {table}")
            op.execute(f"DROP FUNCTION registry_{table}_changed()")
        else:
            for what in ("ins", "del", "upd"):
                op.execute(f"DROP TRIGGER registry_{table}_{what}")
    if pg:
        op.execute("DROP FUNCTION registry_note(varchar)")
    # a state saved packed only is dropped: the old version starts those homes afresh
    op.execute("DELETE FROM home_rule_state WHERE state IS NULL")
    with op.batch_alter_table("home_rule_state") as batch:
        batch.alter_column("state", existing_type=sa.JSON(), nullable=False)
        batch.drop_column("packed")
    op.drop_index(op.f("ix_registry_changes_n"), table_name="registry_changes")
    op.drop_table("registry_changes")
    op.drop_table("registry_version")
