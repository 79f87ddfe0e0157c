"""Alembic's entry point. Migrations run in code only (`ArchiveStore.migrate`), on the
connection handed over in `config.attributes["connection"]`; there is no alembic.ini."""

from __future__ import annotations

from alembic import context

from archive.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite alters tables by copying them; Alembic's batch mode does that for us.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
