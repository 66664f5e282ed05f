"""The PostgreSQL store: one catalogue shared by several registry processes.

Theory of operation
-------------------
The tables live in a dedicated schema (``cid`` unless told otherwise, so tests
can use a throw-away schema each). :meth:`PostgresStore.open` creates them
idempotently under a transaction-level advisory lock, so two processes that
start together do not race on ``CREATE``.

Every commit is one transaction that first locks the single row of the
``head`` table (``SELECT ... FOR UPDATE``). Writers of every process therefore
queue on that row: the next ``rseq`` is ``head.rseq + 1`` and the next chain
value extends ``head.chain``, so the feed stays gap-free and linear
([REQ-FEED-001]) however many registries share the database. Under the lock
the record row is read (``READ COMMITTED`` gives each statement a fresh
snapshot, so it is the latest committed version), the pure rule
:func:`~cid_registry.store.sqlite.apply_write` decides ([REQ-REG-011]), and the
change row, the record version and the head are written together.

The committing transaction also sends ``NOTIFY cid_feed`` with the payload
``"<schema> <rseq>"``, delivered when it commits. Each store keeps one
dedicated connection (outside the pool) that ``LISTEN``\\ s on the channel and
wakes :meth:`PostgresStore.wait_for_change` waiters at once; a slower poll of
the head covers a lost listener connection, and re-opens it.

Names sort with ``COLLATE "C"`` (byte order), which is the canonical
identifier order on ``rname`` ([REQ-ID-022]). Driver failures are wrapped at
the boundary: lost connections, overload and shutdowns become
:class:`cid.errors.UnavailableError`, anything else
:class:`cid.errors.InternalError`, never a :class:`~.base.Conflict`.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Final

import asyncpg

from cid.errors import InternalError, UnavailableError
from cid.feed import CHAIN_ZERO, chain_step

from ._common import (
    BATCH_SIZE,
    MAX_PROBLEMS,
    FeedCheck,
    HeadSignal,
    apply_write,
    prefix_upper_bound,
    split_cursor,
)
from .base import Change, Conflict, Op, Store, StoredRecord, Write

__all__ = ["CHANNEL", "SCHEMA_VERSION", "PostgresStore"]

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 1
"""Version of the table layout written by :meth:`PostgresStore.open`."""

CHANNEL: Final = "cid_feed"
"""The ``LISTEN``/``NOTIFY`` channel; the payload is ``"<schema> <rseq>"``."""

_LISTEN_CONNECT_TIMEOUT_S: Final = 10.0

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

_RECORD_COLUMNS: Final = "name, rtype, serial, digest, envelope, expires, refresh, deleted, rseq"
_CHANGE_COLUMNS: Final = "rseq, name, rtype, op, serial, envelope, chain, at"

_TRANSIENT: Final = (
    OSError,  # includes TimeoutError
    asyncpg.InterfaceError,  # connection closed, pool closing
    asyncpg.PostgresConnectionError,
    asyncpg.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.OperatorInterventionError,  # admin shutdown, cannot connect now, query cancelled
    asyncpg.TransactionRollbackError,  # serialization failure, deadlock
)


@contextlib.contextmanager
def _wrap_errors(action: str) -> Iterator[None]:
    """Turn driver exceptions into :class:`cid.errors.ServiceError` subclasses."""
    try:
        yield
    except _TRANSIENT as e:
        raise UnavailableError(f"PostgreSQL store: {action}: {e}") from e
    except asyncpg.PostgresError as e:
        raise InternalError(f"PostgreSQL store: {action}: {e}") from e


def _record(row: Any) -> StoredRecord:
    return StoredRecord(
        name=row["name"],
        rtype=row["rtype"],
        serial=row["serial"],
        digest=row["digest"],
        envelope=bytes(row["envelope"]),
        expires=row["expires"],
        refresh=None if row["refresh"] is None else bytes(row["refresh"]),
        deleted=bool(row["deleted"]),
        rseq=row["rseq"],
    )


def _change(row: Any) -> Change:
    op: Op = row["op"]  # the CHECK constraint admits only the three ops
    return Change(
        rseq=row["rseq"],
        name=row["name"],
        rtype=row["rtype"],
        op=op,
        serial=row["serial"],
        envelope=bytes(row["envelope"]),
        chain=row["chain"],
        at=row["at"],
    )


class PostgresStore(Store):
    """A registry store in a PostgreSQL schema (see the module docstring).

    Args:
        dsn: a ``postgresql://`` connection URL.
        schema: the schema holding the tables (created if missing).
        min_size: connections the pool keeps open.
        max_size: connections the pool opens at most.
        poll_interval: seconds between head polls while someone waits for a
            change (the fallback behind ``LISTEN``).
    """

    def __init__(
        self,
        dsn: str,
        schema: str = "cid",
        *,
        min_size: int = 1,
        max_size: int = 10,
        poll_interval: float = 1.0,
    ) -> None:
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"schema {schema!r} is not a plain SQL identifier")
        self.dsn = dsn
        self.schema = schema
        self._min_size = min_size
        self._max_size = max_size
        self._poll_interval = poll_interval
        self._pool: Any = None
        self._listener: Any = None
        self._signal = HeadSignal(self._head_rseq, poll_interval, self._listen)
        """Replaced at every :meth:`open`."""
        s = f'"{schema}"'
        self._t_head = f"{s}.head"
        self._t_changes = f"{s}.changes"
        self._t_records = f"{s}.records"
        self._t_version = f"{s}.schema_version"

    # -- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the pool, the schema if needed, and the ``LISTEN`` connection."""
        if self._pool is not None:
            return
        self._signal = HeadSignal(self._head_rseq, self._poll_interval, self._listen)
        with _wrap_errors("open"):
            pool = await asyncpg.create_pool(
                self.dsn, min_size=self._min_size, max_size=self._max_size
            )
        try:
            with _wrap_errors("create schema"):
                async with pool.acquire() as conn, conn.transaction():
                    await self._create_schema(conn)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool
        await self._listen()

    async def _create_schema(self, conn: Any) -> None:
        # Two processes opening together: the second waits here, then finds
        # everything in place. The lock ends with the transaction.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))", f"cid_registry.store:{self.schema}"
        )
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        await conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {self._t_version} (
                one boolean PRIMARY KEY DEFAULT true CHECK (one),
                version integer NOT NULL
            )"""
        )
        await conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {self._t_head} (
                one boolean PRIMARY KEY DEFAULT true CHECK (one),
                rseq bigint NOT NULL,
                chain text COLLATE "C" NOT NULL
            )"""
        )
        await conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {self._t_changes} (
                rseq bigint PRIMARY KEY CHECK (rseq >= 1),
                name text COLLATE "C" NOT NULL,
                rtype text COLLATE "C" NOT NULL,
                op text NOT NULL CHECK (op IN ('put', 'refresh', 'delete')),
                serial bigint NOT NULL,
                envelope bytea NOT NULL,
                chain text COLLATE "C" NOT NULL,
                at bigint NOT NULL
            )"""
        )
        await conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {self._t_records} (
                name text COLLATE "C" NOT NULL,
                rtype text COLLATE "C" NOT NULL,
                rname text COLLATE "C" NOT NULL,
                serial bigint NOT NULL,
                digest text COLLATE "C" NOT NULL,
                envelope bytea NOT NULL,
                expires bigint NOT NULL,
                refresh bytea,
                deleted boolean NOT NULL,
                rseq bigint NOT NULL REFERENCES {self._t_changes} (rseq),
                PRIMARY KEY (name, rtype)
            )"""
        )
        await conn.execute(
            f"CREATE INDEX IF NOT EXISTS records_by_rname ON {self._t_records} (rname, rtype)"
        )
        await conn.execute(
            f"CREATE INDEX IF NOT EXISTS records_by_rseq ON {self._t_records} (rseq)"
        )
        await conn.execute(
            f"INSERT INTO {self._t_head} (one, rseq, chain) VALUES (true, 0, $1) "
            "ON CONFLICT DO NOTHING",
            CHAIN_ZERO,
        )
        version = await conn.fetchval(f"SELECT version FROM {self._t_version}")
        if version is None:
            await conn.execute(
                f"INSERT INTO {self._t_version} (one, version) VALUES (true, $1)", SCHEMA_VERSION
            )
        elif version > SCHEMA_VERSION:
            raise InternalError(
                f"PostgreSQL store: schema {self.schema} has version {version}, newer than "
                f"this registry ({SCHEMA_VERSION})"
            )

    async def _listen(self) -> None:
        """(Re)open the dedicated ``LISTEN`` connection; on failure the poll carries on."""
        if self._listener is not None and not self._listener.is_closed():
            return
        try:
            conn = await asyncpg.connect(self.dsn, timeout=_LISTEN_CONNECT_TIMEOUT_S)
            await conn.add_listener(CHANNEL, self._on_notify)
        except (*_TRANSIENT, asyncpg.PostgresError) as e:
            log.warning("PostgreSQL store: LISTEN %s failed, polling only: %s", CHANNEL, e)
            return
        self._listener = conn

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        schema, _, rseq = payload.partition(" ")
        if schema == self.schema and rseq.isdigit():
            self._signal.advance(int(rseq))

    async def close(self) -> None:
        """Stop waiting, close the ``LISTEN`` connection, then the pool (after in-flight work)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        await self._signal.close()
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(*_TRANSIENT):
                await listener.close()
        with _wrap_errors("close"):
            await pool.close()

    def _require_pool(self) -> Any:
        if self._pool is None:
            raise UnavailableError("the PostgreSQL store is not open")
        return self._pool

    # -- writes -----------------------------------------------------------------------------

    async def commit(self, write: Write) -> Change | None:
        """Apply ``write`` in one transaction serialised on the head row."""
        (result,) = await self.commit_many([write])
        if isinstance(result, Conflict):
            raise result
        return result

    async def commit_many(self, writes: Sequence[Write]) -> list[Change | Conflict | None]:
        """Apply ``writes`` in one transaction serialised on the head row (one commit)."""
        pool = self._require_pool()
        out: list[Change | Conflict | None] = []
        with _wrap_errors("commit"):
            async with pool.acquire() as conn, conn.transaction():
                for write in writes:
                    try:
                        out.append(await self._commit_in(conn, write))
                    except Conflict as e:
                        out.append(e)
        last = max((r.rseq for r in out if isinstance(r, Change)), default=None)
        if last is not None:
            self._signal.advance(last)
        return out

    async def _commit_in(self, conn: Any, write: Write) -> Change | None:
        head = await conn.fetchrow(f"SELECT rseq, chain FROM {self._t_head} WHERE one FOR UPDATE")
        if head is None:
            raise InternalError(f"PostgreSQL store: schema {self.schema} has no head row")
        # Every writer of every process queues on the head row: from here on,
        # rseq + 1 is ours and the record row below is the latest committed.
        row = await conn.fetchrow(
            f"SELECT {_RECORD_COLUMNS} FROM {self._t_records} WHERE name = $1 AND rtype = $2",
            write.name,
            write.rtype,
        )
        rseq = int(head["rseq"]) + 1
        new = apply_write(None if row is None else _record(row), write, rseq)
        if new is None:
            return None
        chain = chain_step(head["chain"], rseq, write.envelope)
        await conn.execute(
            f"INSERT INTO {self._t_changes} ({_CHANGE_COLUMNS}) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            rseq,
            write.name,
            write.rtype,
            write.op,
            write.serial,
            write.envelope,
            chain,
            write.at,
        )
        await conn.execute(
            f"""INSERT INTO {self._t_records} (rname, {_RECORD_COLUMNS})
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                ON CONFLICT (name, rtype) DO UPDATE SET
                    rname = excluded.rname, serial = excluded.serial,
                    digest = excluded.digest, envelope = excluded.envelope,
                    expires = excluded.expires, refresh = excluded.refresh,
                    deleted = excluded.deleted, rseq = excluded.rseq""",
            write.rname,
            new.name,
            new.rtype,
            new.serial,
            new.digest,
            new.envelope,
            new.expires,
            new.refresh,
            new.deleted,
            new.rseq,
        )
        await conn.execute(f"UPDATE {self._t_head} SET rseq = $1, chain = $2", rseq, chain)
        # Delivered when (and only if) this transaction commits.
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, f"{self.schema} {rseq}")
        return Change(
            rseq=rseq,
            name=write.name,
            rtype=write.rtype,
            op=write.op,
            serial=write.serial,
            envelope=write.envelope,
            chain=chain,
            at=write.at,
        )

    # -- reads ------------------------------------------------------------------------------

    async def _fetch(self, action: str, sql: str, *args: Any) -> list[Any]:
        pool = self._require_pool()
        with _wrap_errors(action):
            rows: list[Any] = await pool.fetch(sql, *args)
        return rows

    async def get(self, name: str, rtype: str) -> StoredRecord | None:
        """The stored version of ``(name, rtype)``, deleted or not."""
        rows = await self._fetch(
            "get",
            f"SELECT {_RECORD_COLUMNS} FROM {self._t_records} WHERE name = $1 AND rtype = $2",
            name,
            rtype,
        )
        return _record(rows[0]) if rows else None

    async def at_name(self, name: str) -> list[StoredRecord]:
        """Every live (not deleted) record at ``name``, ordered by type."""
        rows = await self._fetch(
            "at_name",
            f"SELECT {_RECORD_COLUMNS} FROM {self._t_records} "
            "WHERE name = $1 AND NOT deleted ORDER BY rtype",
            name,
        )
        return [_record(r) for r in rows]

    async def list_namespace(
        self, rname_prefix: str, *, after: str | None, limit: int, now: int
    ) -> list[StoredRecord]:
        """Live, unexpired records whose ``rname`` starts with ``rname_prefix``.

        Ordered by ``(rname, rtype)``; ``after`` is an exclusive cursor of the
        form ``rname + "\\x00" + rtype``.
        """
        if limit <= 0:
            return []
        params: list[Any] = [now, rname_prefix]
        where = ["NOT deleted", "expires > $1", "rname >= $2"]
        upper = prefix_upper_bound(rname_prefix)
        if upper is not None:
            params.append(upper)
            where.append(f"rname < ${len(params)}")
        if after is not None:
            params.extend(split_cursor(after))
            where.append(f"(rname, rtype) > (${len(params) - 1}, ${len(params)})")
        params.append(limit)
        rows = await self._fetch(
            "list_namespace",
            f"SELECT {_RECORD_COLUMNS} FROM {self._t_records} WHERE {' AND '.join(where)} "
            f"ORDER BY rname, rtype LIMIT ${len(params)}",
            *params,
        )
        return [_record(r) for r in rows]

    async def changes(self, since: int, limit: int) -> list[Change]:
        """Changes with ``rseq > since`` in order, at most ``limit``."""
        if limit <= 0:
            return []
        rows = await self._fetch(
            "changes",
            f"SELECT {_CHANGE_COLUMNS} FROM {self._t_changes} "
            "WHERE rseq > $1 ORDER BY rseq LIMIT $2",
            since,
            limit,
        )
        return [_change(r) for r in rows]

    async def head(self) -> tuple[int, str]:
        """``(rseq, chain)`` of the last change, ``(0, CHAIN_ZERO)`` when empty."""
        rows = await self._fetch("head", f"SELECT rseq, chain FROM {self._t_head}")
        if not rows:
            raise InternalError(f"PostgreSQL store: schema {self.schema} has no head row")
        return int(rows[0]["rseq"]), str(rows[0]["chain"])

    async def _head_rseq(self) -> int:
        return (await self.head())[0]

    async def wait_for_change(self, since: int, timeout: float) -> int:
        """Wait until the head passes ``since`` (or ``timeout`` seconds); return the head rseq.

        Woken by ``NOTIFY`` from any process's commit, with a head poll every
        ``poll_interval`` seconds as the fallback.
        """
        return await self._signal.wait(since, timeout)

    async def live_records(self, rtype: str | None = None) -> AsyncIterator[StoredRecord]:
        """Every live record (optionally of one type), in ``(rname, rtype)`` order.

        Streamed in batches of :data:`~.sqlite.BATCH_SIZE` with a keyset
        cursor, each batch its own query: not one snapshot (use
        :meth:`snapshot`), but a record live throughout is listed once.
        """
        cursor: tuple[str, str] | None = None
        while True:
            params: list[Any] = []
            where = ["NOT deleted"]
            if rtype is not None:
                params.append(rtype)
                where.append(f"rtype = ${len(params)}")
            if cursor is not None:
                params.extend(cursor)
                where.append(f"(rname, rtype) > (${len(params) - 1}, ${len(params)})")
            params.append(BATCH_SIZE)
            rows = await self._fetch(
                "live_records",
                f"SELECT rname, {_RECORD_COLUMNS} FROM {self._t_records} "
                f"WHERE {' AND '.join(where)} ORDER BY rname, rtype LIMIT ${len(params)}",
                *params,
            )
            for row in rows:
                yield _record(row)
            if len(rows) < BATCH_SIZE:
                return
            cursor = (rows[-1]["rname"], rows[-1]["rtype"])

    async def snapshot(self) -> tuple[int, str, list[StoredRecord]]:
        """``(rseq, chain, live records)`` read in one ``REPEATABLE READ`` transaction."""
        pool = self._require_pool()
        with _wrap_errors("snapshot"):
            async with (
                pool.acquire() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                head = await conn.fetchrow(f"SELECT rseq, chain FROM {self._t_head}")
                rows = await conn.fetch(
                    f"SELECT {_RECORD_COLUMNS} FROM {self._t_records} WHERE NOT deleted "
                    "ORDER BY rname, rtype"
                )
        if head is None:
            raise InternalError(f"PostgreSQL store: schema {self.schema} has no head row")
        return int(head["rseq"]), str(head["chain"]), [_record(r) for r in rows]

    async def count(self) -> dict[str, int]:
        """Live records by type."""
        rows = await self._fetch(
            "count",
            f"SELECT rtype, count(*) AS n FROM {self._t_records} WHERE NOT deleted GROUP BY rtype",
        )
        return {str(r["rtype"]): int(r["n"]) for r in rows}

    async def integrity_check(self) -> list[str]:
        """Problems found (empty when healthy).

        Checks, in one ``REPEATABLE READ`` transaction: that ``rseq`` runs 1,
        2, 3, ... without gaps; that every chain value recomputes
        ([REQ-FEED-001]); that the head row is the last change; that no record
        is newer than the head; and that every record matches the change that
        produced it. (PostgreSQL checks its own pages; ``amcheck`` is an
        operator's tool, not run here.)
        """
        pool = self._require_pool()
        with _wrap_errors("integrity_check"):
            async with (
                pool.acquire() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                return await self._integrity_in(conn)

    async def _integrity_in(self, conn: Any) -> list[str]:
        feed = FeedCheck()
        async for row in conn.cursor(
            f"SELECT rseq, envelope, chain FROM {self._t_changes} ORDER BY rseq",
            prefetch=BATCH_SIZE,
        ):
            feed.step(int(row["rseq"]), bytes(row["envelope"]), str(row["chain"]))
        problems = feed.problems
        head = await conn.fetchrow(f"SELECT rseq, chain FROM {self._t_head}")
        if head is None:
            problems.append("the head row is missing")
        elif (head["rseq"], head["chain"]) != (feed.head, feed.chain):
            problems.append(
                f"the head row (rseq {head['rseq']}) is not the last change (rseq {feed.head})"
            )
        for row in await conn.fetch(
            f"SELECT name, rtype, rseq FROM {self._t_records} WHERE rseq > $1 "
            "ORDER BY rseq LIMIT $2",
            feed.head,
            MAX_PROBLEMS,
        ):
            problems.append(
                f"record ({row['name']}, {row['rtype']}) has rseq {row['rseq']} "
                f"beyond the head {feed.head}"
            )
        for row in await conn.fetch(
            f"""SELECT r.name, r.rtype, r.rseq FROM {self._t_records} r
                LEFT JOIN {self._t_changes} c ON c.rseq = r.rseq
                WHERE r.rseq <= $1 AND (
                    c.rseq IS NULL OR c.name <> r.name OR c.rtype <> r.rtype
                    OR c.serial <> r.serial
                    OR (c.op = 'refresh' AND (r.refresh IS NULL OR c.envelope <> r.refresh))
                    OR (c.op <> 'refresh' AND c.envelope <> r.envelope)
                    OR (c.op = 'delete') <> r.deleted)
                ORDER BY r.rseq LIMIT $2""",
            feed.head,
            MAX_PROBLEMS,
        ):
            problems.append(
                f"record ({row['name']}, {row['rtype']}) does not match change "
                f"{row['rseq']} that produced it"
            )
        return problems
