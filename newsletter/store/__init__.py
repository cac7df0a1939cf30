"""Storage: database engines (SQLite, PostgreSQL), the schema as tables, Alembic migrations."""
