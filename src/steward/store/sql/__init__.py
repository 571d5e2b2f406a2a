"""The SQLAlchemy metadata store (SQLite embedded, PostgreSQL at scale)."""
