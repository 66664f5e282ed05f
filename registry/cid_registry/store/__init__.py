"""Registry stores: SQLite (embedded default) and PostgreSQL (shared, several processes)."""

from __future__ import annotations

from .base import Change, Conflict, Store, StoredRecord, Write, rname_of

__all__ = ["Change", "Conflict", "Store", "StoredRecord", "Write", "open_store", "rname_of"]


def open_store(url: str) -> Store:
    """A store for ``url``: ``postgresql://...``, ``sqlite:///path`` or a bare file path."""
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(url)
    from .sqlite import SqliteStore

    path = url.removeprefix("sqlite://") if url.startswith("sqlite://") else url
    return SqliteStore(path)
