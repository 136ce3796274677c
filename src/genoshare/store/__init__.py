"""Metadata database (SQLAlchemy 2, SQLite or PostgreSQL by URL) and object storage (by URL)."""
