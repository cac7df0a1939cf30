"""Alembic environment for newsletter.

Migrations run only through ``newsletter.store.db`` (``newsletter db upgrade``, or automatically on
first use), which configures Alembic in code and passes an open connection inside a transaction:
there is no alembic.ini, and the whole upgrade commits or rolls back as one.
"""

from alembic import context

from newsletter.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("run migrations with `newsletter db upgrade` (newsletter.store.db)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    # The caller's transaction covers the DDL on SQLite too (newsletter.store.db starts a real one).
    transactional_ddl=True,
    # SQLite cannot ALTER most things; batch mode recreates the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
)

with context.begin_transaction():
    context.run_migrations()
