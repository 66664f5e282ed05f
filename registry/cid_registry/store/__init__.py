"""Registry stores: SQLite (embedded default) and PostgreSQL (shared, several processes)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .base import Change, Conflict, Store, StoredRecord, Write, rname_of

__all__ = ["Change", "Conflict", "Store", "StoredRecord", "Write", "open_store", "rname_of"]


def open_store(url: str) -> Store:
    """A store for ``url``: ``postgresql://...``, ``sqlite:///path`` or a bare file path."""
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        # `?schema=NAME` picks the SQL schema (default "cid"); it is not a server setting
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        schema = next((v for k, v in query if k == "schema"), "cid")
        rest = urlencode([(k, v) for k, v in query if k != "schema"])
        return PostgresStore(urlunsplit(parts._replace(query=rest)), schema)
    from .sqlite import SqliteStore

    path = url.removeprefix("sqlite://") if url.startswith("sqlite://") else url
    return SqliteStore(path)
