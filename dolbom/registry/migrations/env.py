"""Alembic environment for the registry schema.

``dolbom.registry.db.migrate`` passes an open connection in
``config.attributes["connection"]``. A developer running the ``alembic`` command
(``alembic -c dolbom/registry/migrations/alembic.ini revision --autogenerate -m ...``)
gets the URL from ``DOLBOM_DATABASE_URL`` instead.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from dolbom.registry.db import make_engine
from dolbom.registry.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things: later migrations rebuild tables in batch mode.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = os.environ.get("DOLBOM_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set DOLBOM_DATABASE_URL to the database to migrate")
    return url


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (conn := config.attributes.get("connection")) is not None:
    _configure(conn)
else:
    engine = make_engine(_url())
    try:
        with engine.begin() as c:
            _configure(c)
    finally:
        engine.dispose()
