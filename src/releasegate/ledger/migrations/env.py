"""Alembic environment: always online, on the connection ``schema.upgrade`` passes in."""

from alembic import context

connection = context.config.attributes["connection"]
# The caller already began the transaction; DDL runs inside it (SQLite and PostgreSQL
# both roll DDL back), so a failed migration leaves no half-built schema.
context.configure(connection=connection, target_metadata=None, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
