"""Fixtures for the registry store tests: one behavioural suite over SQLite and PostgreSQL.

PostgreSQL is real (STYLE 8): ``CID_TEST_PG_DSN`` if set, else
``postgresql://postgres@127.0.0.1:5432/test`` (then user ``root``); one fresh
schema per test, dropped afterwards. Without a reachable server the
PostgreSQL cases skip, unless ``CI=true``: then they fail, so that CI can never
pass by skipping them.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from cid import examples as ex
from cid_registry.store import Store
from cid_registry.store.postgres import PostgresStore
from cid_registry.store.sqlite import SqliteStore

NOW = ex.EPOCH + 60
EXP = ex.EPOCH + 3600

_PG_CANDIDATES = (
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://root@127.0.0.1:5432/test",
)
_pg_probe: tuple[str | None, str] | None = None


async def postgres_dsn() -> str:
    """A reachable PostgreSQL DSN; skip (or fail when ``CI=true``) if there is none."""
    global _pg_probe  # noqa: PLW0603 - probed once per session
    if _pg_probe is None:
        override = os.environ.get("CID_TEST_PG_DSN")
        candidates = [override] if override else list(_PG_CANDIDATES)
        errors: list[str] = []
        for dsn in candidates:
            try:
                conn = await asyncpg.connect(dsn, timeout=5)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                errors.append(f"{dsn}: {e}")
                continue
            await conn.close()
            _pg_probe = (dsn, "")
            break
        else:
            _pg_probe = (None, "; ".join(errors))
    dsn, why = _pg_probe
    if dsn is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required when CI=true but unreachable: {why}")
        pytest.skip(f"PostgreSQL unreachable: {why}")
    return dsn


# --- backends: several store instances over one database -----------------------------------


@dataclass
class Backend:
    """One database (a SQLite file or a PostgreSQL schema) and the stores opened on it.

    Each :meth:`open` returns a new store instance: two instances model two
    registry processes sharing the database.
    """

    kind: str
    target: str
    dsn: str = ""
    stores: list[Store] = field(default_factory=list)

    def new(self, **kw: Any) -> Store:
        """A store instance on this database, not yet opened."""
        store: Store
        if self.kind == "sqlite":
            store = SqliteStore(self.target, **kw)
        else:
            store = PostgresStore(self.dsn, self.target, **kw)
        self.stores.append(store)
        return store

    async def open(self, **kw: Any) -> Store:
        store = self.new(**kw)
        await store.open()
        return store

    async def raw(self, sql: str, *args: Any) -> None:
        """Run SQL behind the stores' back (to tamper with the data)."""
        if self.kind == "sqlite":
            conn = sqlite3.connect(self.target, isolation_level=None)
            try:
                conn.execute(sql, args)
            finally:
                conn.close()
        else:
            pconn = await asyncpg.connect(self.dsn)
            try:
                await pconn.execute(f'SET search_path TO "{self.target}"')
                await pconn.execute(sql, *args)
            finally:
                await pconn.close()

    def param(self, n: int) -> str:
        """The placeholder for the n-th (1-based) parameter of :meth:`raw`."""
        return "?" if self.kind == "sqlite" else f"${n}"

    async def aclose(self) -> None:
        for store in self.stores:
            await store.close()
        if self.kind == "postgresql":
            conn = await asyncpg.connect(self.dsn)
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{self.target}" CASCADE')
            finally:
                await conn.close()


async def _backend(kind: str, tmp_path: Path) -> Backend:
    if kind == "sqlite":
        return Backend("sqlite", str(tmp_path / "registry.db"))
    dsn = await postgres_dsn()
    return Backend("postgresql", f"t_{uuid.uuid4().hex[:16]}", dsn)


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """Each store's database, in turn."""
    b = await _backend(request.param, tmp_path)
    try:
        yield b
    finally:
        await b.aclose()


@pytest_asyncio.fixture
async def postgres_backend(tmp_path: Path) -> AsyncIterator[Backend]:
    """A PostgreSQL schema, for what only PostgreSQL has."""
    b = await _backend("postgresql", tmp_path)
    try:
        yield b
    finally:
        await b.aclose()


@pytest_asyncio.fixture
async def store(backend: Backend) -> Store:
    return await backend.open()
