"""The SQLite store: the registry's embedded default.

Theory of operation
-------------------
One :class:`sqlite3.Connection` lives on one dedicated worker thread (a
single-thread executor). Every operation is a plain synchronous function
handed to that thread, so the event loop never blocks on the disk and the
writes of this process are serialised in submission order.

Durability: the database runs in WAL mode with ``synchronous=FULL``, so the
WAL is fsynced at every commit and a write that :meth:`SqliteStore.commit`
acknowledged survives ``kill -9`` and power loss ([REQ-REG-010]).

Several processes may open the same file (a second registry process, the
crash test). A commit is one ``BEGIN IMMEDIATE`` transaction: it takes the
database's write lock *before* it reads the feed head, so the next ``rseq``
is allocated under the lock and the feed stays gap-free and linear across
processes. ``busy_timeout`` makes a writer wait for the lock instead of
failing. Inside the transaction the pure function :func:`apply_write` decides
the outcome from the stored row ([REQ-REG-011]), then the change row and the
new record version are written together.

:meth:`SqliteStore.wait_for_change` is woken at once by commits of this
process (:class:`HeadSignal`), and by a cheap poll of the head every
``poll_interval`` seconds (only while someone waits) for commits of other
processes.

Driver failures are wrapped at the boundary: a locked or unreachable database
becomes :class:`cid.errors.UnavailableError`, anything else
:class:`cid.errors.InternalError`. :class:`~cid_registry.store.base.Conflict`
is only ever the stored state refusing a write.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

from cid.errors import InternalError, UnavailableError
from cid.feed import CHAIN_ZERO, chain_step_raw
from cid.signing import b64url_decode, b64url_encode

from ._common import (
    BATCH_SIZE,
    MAX_PROBLEMS,
    HeadSignal,
    apply_write,
    check_feed,
    prefix_upper_bound,
    split_cursor,
)
from .base import Change, Conflict, Op, Store, StoredRecord, Write

__all__ = ["SCHEMA_VERSION", "SqliteStore"]

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA_VERSION: Final = 1
"""Version of the table layout written by :meth:`SqliteStore.open`."""

_OPS: Final[frozenset[str]] = frozenset({"put", "refresh", "delete"})

_DDL: Final = (
    """CREATE TABLE IF NOT EXISTS schema_version (
        version INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS changes (
        rseq INTEGER PRIMARY KEY CHECK (rseq >= 1),
        name TEXT NOT NULL,
        rtype TEXT NOT NULL,
        op TEXT NOT NULL CHECK (op IN ('put', 'refresh', 'delete')),
        serial INTEGER NOT NULL,
        envelope BLOB NOT NULL,
        chain TEXT NOT NULL,
        at INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS records (
        name TEXT NOT NULL,
        rtype TEXT NOT NULL,
        rname TEXT NOT NULL,
        serial INTEGER NOT NULL,
        digest TEXT NOT NULL,
        envelope BLOB NOT NULL,
        expires INTEGER NOT NULL,
        refresh BLOB,
        deleted INTEGER NOT NULL CHECK (deleted IN (0, 1)),
        rseq INTEGER NOT NULL REFERENCES changes (rseq),
        PRIMARY KEY (name, rtype)
    )""",
    "CREATE INDEX IF NOT EXISTS records_by_rname ON records (rname, rtype)",
    "CREATE INDEX IF NOT EXISTS records_by_rseq ON records (rseq)",
)

_RECORD_COLUMNS: Final = "name, rtype, serial, digest, envelope, expires, refresh, deleted, rseq"
_CHANGE_COLUMNS: Final = "rseq, name, rtype, op, serial, envelope, chain, at"


# --- row conversion ------------------------------------------------------------------------


def _record(row: tuple[Any, ...]) -> StoredRecord:
    name, rtype, serial, digest, envelope, expires, refresh, deleted, rseq = row
    return StoredRecord(
        name=name,
        rtype=rtype,
        serial=serial,
        digest=digest,
        envelope=bytes(envelope),
        expires=expires,
        refresh=None if refresh is None else bytes(refresh),
        deleted=bool(deleted),
        rseq=rseq,
    )


def _change(row: tuple[Any, ...]) -> Change:
    rseq, name, rtype, op, serial, envelope, chain, at = row
    if op not in _OPS:
        raise InternalError(f"change {rseq} has an unknown op {op!r}")
    checked_op: Op = op
    return Change(
        rseq=rseq,
        name=name,
        rtype=rtype,
        op=checked_op,
        serial=serial,
        envelope=bytes(envelope),
        chain=chain,
        at=at,
    )


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection, mode: str = "DEFERRED") -> Iterator[None]:
    """``BEGIN <mode>`` ... ``COMMIT``, rolled back on any exception."""
    conn.execute(f"BEGIN {mode}")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error as e:  # the original error matters more
                log.warning("rollback failed: %s", e)
        raise


def _head(conn: sqlite3.Connection) -> tuple[int, str]:
    row = conn.execute("SELECT rseq, chain FROM changes ORDER BY rseq DESC LIMIT 1").fetchone()
    return (0, CHAIN_ZERO) if row is None else (row[0], row[1])


_IN_CHUNK: Final = 400
"""Names per ``IN (...)`` lookup (well under SQLite's bound on statement parameters)."""


def _stored_versions(
    conn: sqlite3.Connection, identities: set[tuple[str, str]]
) -> dict[tuple[str, str], StoredRecord]:
    """The stored version of each ``(name, rtype)`` that has one."""
    names = sorted({name for name, _ in identities})
    found: dict[tuple[str, str], StoredRecord] = {}
    for i in range(0, len(names), _IN_CHUNK):
        chunk = names[i : i + _IN_CHUNK]
        rows = conn.execute(
            f"SELECT {_RECORD_COLUMNS} FROM records WHERE name IN ({', '.join('?' * len(chunk))})",
            chunk,
        ).fetchall()
        for row in rows:
            if (row[0], row[1]) in identities:
                found[(row[0], row[1])] = _record(row)
    return found


class _HeadRead:
    """One head read on the worker thread, shared by the callers queued before it starts."""

    __slots__ = ("future", "started")

    def __init__(self) -> None:
        self.started = False
        self.future: asyncio.Future[tuple[int, str]]

    def __call__(self, conn: sqlite3.Connection) -> tuple[int, str]:
        self.started = True  # set before the read: later callers start a read of their own
        return _head(conn)


# --- the store -----------------------------------------------------------------------------


class SqliteStore(Store):
    """A registry store in one SQLite file (see the module docstring).

    Args:
        path: the database file (created if missing); ``":memory:"`` for a
            private throw-away store.
        poll_interval: seconds between head polls while someone waits for a change.
        busy_timeout: seconds a writer waits for another process's write lock.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        poll_interval: float = 0.2,
        busy_timeout: float = 10.0,
    ) -> None:
        self.path = os.fspath(path)
        self._busy_timeout = busy_timeout
        self._poll_interval = poll_interval
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._signal = HeadSignal(self._head_rseq, poll_interval)
        """Replaced at every :meth:`open`."""
        self._queued: list[tuple[list[Write], asyncio.Future[list[Change | Conflict | None]]]] = []
        """Writes waiting for the next group commit, with the future of their caller."""
        self._writing = False
        """Whether a task is committing queued writes."""
        self._head_read: _HeadRead | None = None
        """The head read waiting for the worker thread, if any (see :meth:`head`)."""

    # -- plumbing ---------------------------------------------------------------------------

    async def _submit(self, fn: Callable[[], T], *, own_thread: bool = False) -> T:
        """Run ``fn()`` on the worker thread (or any thread), wrapping driver errors."""
        executor = self._executor
        if executor is None:
            raise UnavailableError("the SQLite store is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(
                None if own_thread else executor, fn
            )
        except sqlite3.OperationalError as e:
            # locked, busy, I/O error, disk full, cannot open: the database is not usable now
            raise UnavailableError(f"SQLite store {self.path}: {e}") from e
        except sqlite3.Error as e:
            raise InternalError(f"SQLite store {self.path}: {e}") from e

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the worker thread, wrapping driver errors."""
        return await self._submit(functools.partial(self._call, fn))

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:  # closed while this call was queued
            raise UnavailableError("the SQLite store is closed")
        return fn(conn)

    async def _head_rseq(self) -> int:
        return (await self.head())[0]

    # -- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the file, set the durability pragmas and create the schema if needed."""
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cid-sqlite")
        self._signal = HeadSignal(self._head_rseq, self._poll_interval)
        try:
            await self._submit(self._open_on_thread)
        except BaseException:
            await self._shutdown()
            raise

    def _open_on_thread(self) -> None:
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            mode = self._enter_wal(conn)
            if mode.lower() not in {"wal", "memory"}:
                raise InternalError(f"SQLite store {self.path}: cannot use WAL (mode {mode!r})")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            with _transaction(conn, "IMMEDIATE"):
                for statement in _DDL:
                    conn.execute(statement)
                row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
                if row[0] is None:
                    conn.execute(
                        "INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,)
                    )
                elif row[0] > SCHEMA_VERSION:
                    raise InternalError(
                        f"SQLite store {self.path}: schema version {row[0]} is newer than "
                        f"this registry ({SCHEMA_VERSION})"
                    )
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _enter_wal(self, conn: sqlite3.Connection) -> str:
        """Switch to WAL mode (persistent in the file), retrying while another opener holds it.

        Switching takes an exclusive lock, and when several processes open a
        fresh file at once SQLite can answer "database is locked" at once,
        without consulting ``busy_timeout``: so wait here, up to the same limit.
        """
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            except sqlite3.OperationalError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.005)

    async def close(self) -> None:
        """Let queued work finish, then close the connection and the worker thread."""
        if self._executor is None:
            return
        await self._signal.close()
        await self._shutdown()

    async def _shutdown(self) -> None:
        executor = self._executor
        if executor is None:
            return

        def close_on_thread() -> None:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

        # Queued behind every operation already submitted: they finish first.
        try:
            await asyncio.get_running_loop().run_in_executor(executor, close_on_thread)
        finally:
            self._executor = None
            executor.shutdown(wait=False)

    # -- writes -----------------------------------------------------------------------------

    async def commit(self, write: Write) -> Change | None:
        """Apply ``write`` in one ``BEGIN IMMEDIATE`` transaction (see the module docstring)."""
        (result,) = await self.commit_many([write])
        if isinstance(result, Conflict):
            raise result
        return result

    async def commit_many(self, writes: Sequence[Write]) -> list[Change | Conflict | None]:
        """Apply ``writes`` in one ``BEGIN IMMEDIATE`` transaction: one fsync for the batch.

        Group commit: the writes of callers that arrive while a transaction is
        being written go together into the next one, in arrival order, each
        write still succeeding or failing on its own. Every caller is answered
        only once the transaction holding its writes is committed (and fsynced),
        so what is acknowledged survives a crash ([REQ-REG-010]); a driver failure
        fails every caller of that transaction, none of whose writes is kept.
        """
        if self._executor is None:
            raise UnavailableError("the SQLite store is not open")
        future: asyncio.Future[list[Change | Conflict | None]] = (
            asyncio.get_running_loop().create_future()
        )
        self._queued.append((list(writes), future))
        if not self._writing:
            self._writing = True
            asyncio.get_running_loop().create_task(self._write_queued(), name="cid-sqlite-commit")
        results = await future
        last = max((r.rseq for r in results if isinstance(r, Change)), default=None)
        if last is not None:
            self._signal.advance(last)
        return results

    async def _write_queued(self) -> None:
        """Commit the queued writes, one transaction per round, until none are left."""
        try:
            while self._queued:
                group, self._queued = self._queued, []
                writes = [w for ws, _ in group for w in ws]
                try:
                    results = await self._run(
                        functools.partial(self._commit_many_on_thread, writes)
                    )
                except asyncio.CancelledError:
                    for _, future in group:
                        future.cancel()
                    raise
                except Exception as e:
                    for _, future in group:
                        if not future.done():
                            future.set_exception(e)
                    continue
                at = 0
                for ws, future in group:
                    if not future.done():
                        future.set_result(results[at : at + len(ws)])
                    at += len(ws)
        finally:
            self._writing = False

    @staticmethod
    def _commit_many_on_thread(
        writes: list[Write], conn: sqlite3.Connection
    ) -> list[Change | Conflict | None]:
        out: list[Change | Conflict | None] = []
        change_rows: list[tuple[Any, ...]] = []
        record_rows: dict[tuple[str, str], tuple[Any, ...]] = {}
        with _transaction(conn, "IMMEDIATE"):
            # The write lock is held from here on: the head read below is the
            # latest of every process, and nobody else can allocate rseq + 1.
            rseq, chain = _head(conn)
            chain_raw = b64url_decode(chain, length=32)
            # the stored versions of every identity written, read in a few statements;
            # a later write of the same identity sees the version an earlier one produced
            stored = _stored_versions(conn, {(w.name, w.rtype) for w in writes})
            for write in writes:
                identity = (write.name, write.rtype)
                try:
                    new = apply_write(stored.get(identity), write, rseq + 1)
                except Conflict as e:
                    out.append(e)
                    continue
                if new is None:
                    out.append(None)
                    continue
                rseq += 1
                chain_raw = chain_step_raw(chain_raw, rseq, write.envelope)
                change = Change(
                    rseq=rseq,
                    name=write.name,
                    rtype=write.rtype,
                    op=write.op,
                    serial=write.serial,
                    envelope=write.envelope,
                    chain=b64url_encode(chain_raw),
                    at=write.at,
                )
                out.append(change)
                stored[identity] = new
                change_rows.append(
                    (rseq, write.name, write.rtype, write.op, write.serial, write.envelope,
                     change.chain, write.at)
                )  # fmt: skip
                record_rows[identity] = (
                    write.rname, new.name, new.rtype, new.serial, new.digest, new.envelope,
                    new.expires, new.refresh, int(new.deleted), new.rseq,
                )  # fmt: skip
            conn.executemany(
                f"INSERT INTO changes ({_CHANGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                change_rows,
            )
            conn.executemany(
                f"""INSERT INTO records (rname, {_RECORD_COLUMNS})
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (name, rtype) DO UPDATE SET
                        rname = excluded.rname, serial = excluded.serial,
                        digest = excluded.digest, envelope = excluded.envelope,
                        expires = excluded.expires, refresh = excluded.refresh,
                        deleted = excluded.deleted, rseq = excluded.rseq""",
                record_rows.values(),
            )
        return out

    # -- reads ------------------------------------------------------------------------------

    async def get(self, name: str, rtype: str) -> StoredRecord | None:
        """The stored version of ``(name, rtype)``, deleted or not."""

        def read(conn: sqlite3.Connection) -> StoredRecord | None:
            row = conn.execute(
                f"SELECT {_RECORD_COLUMNS} FROM records WHERE name = ? AND rtype = ?",
                (name, rtype),
            ).fetchone()
            return None if row is None else _record(row)

        return await self._run(read)

    async def at_name(self, name: str) -> list[StoredRecord]:
        """Every live (not deleted) record at ``name``, ordered by type."""

        def read(conn: sqlite3.Connection) -> list[StoredRecord]:
            rows = conn.execute(
                f"SELECT {_RECORD_COLUMNS} FROM records WHERE name = ? AND deleted = 0 "
                "ORDER BY rtype",
                (name,),
            ).fetchall()
            return [_record(r) for r in rows]

        return await self._run(read)

    async def list_namespace(
        self, rname_prefix: str, *, after: str | None, limit: int, now: int
    ) -> list[StoredRecord]:
        """Live, unexpired records whose ``rname`` starts with ``rname_prefix``.

        Ordered by ``(rname, rtype)``; ``after`` is an exclusive cursor of the
        form ``rname + "\\x00" + rtype``.
        """
        if limit <= 0:
            return []
        where = ["deleted = 0", "expires > ?", "rname >= ?"]
        params: list[Any] = [now, rname_prefix]
        upper = prefix_upper_bound(rname_prefix)
        if upper is not None:
            where.append("rname < ?")
            params.append(upper)
        if after is not None:
            where.append("(rname, rtype) > (?, ?)")
            params.extend(split_cursor(after))
        params.append(limit)
        sql = (
            f"SELECT {_RECORD_COLUMNS} FROM records WHERE {' AND '.join(where)} "
            "ORDER BY rname, rtype LIMIT ?"
        )

        def read(conn: sqlite3.Connection) -> list[StoredRecord]:
            return [_record(r) for r in conn.execute(sql, params).fetchall()]

        return await self._run(read)

    async def changes(self, since: int, limit: int) -> list[Change]:
        """Changes with ``rseq > since`` in order, at most ``limit``."""
        if limit <= 0:
            return []

        def read(conn: sqlite3.Connection) -> list[Change]:
            rows = conn.execute(
                f"SELECT {_CHANGE_COLUMNS} FROM changes WHERE rseq > ? ORDER BY rseq LIMIT ?",
                (since, limit),
            ).fetchall()
            return [_change(r) for r in rows]

        return await self._run(read)

    async def head(self) -> tuple[int, str]:
        """``(rseq, chain)`` of the last change, ``(0, CHAIN_ZERO)`` when empty.

        Callers that arrive while a head read is queued but has not started yet
        share it: it runs after each of them arrived, so its answer is as fresh
        for all of them as a read of their own (every write path starts with one).
        """
        shared = self._head_read
        if shared is not None and not shared.started:
            return await asyncio.shield(shared.future)
        read = _HeadRead()
        read.future = asyncio.ensure_future(self._run(read))
        self._head_read = read

        def done(_: object) -> None:
            if self._head_read is read:
                self._head_read = None

        read.future.add_done_callback(done)
        return await asyncio.shield(read.future)

    async def wait_for_change(self, since: int, timeout: float) -> int:
        """Wait until the head passes ``since`` (or ``timeout`` seconds); return the head rseq.

        Commits of this store wake the waiters at once; commits of other
        processes are seen by the head poll within ``poll_interval``.
        """
        return await self._signal.wait(since, timeout)

    async def live_records(self, rtype: str | None = None) -> AsyncIterator[StoredRecord]:
        """Every live record (optionally of one type), in ``(rname, rtype)`` order.

        Streamed in batches of :data:`BATCH_SIZE` with a keyset cursor, each
        batch its own read: the stream is not one snapshot (use
        :meth:`snapshot` for that), but a record live throughout is listed once.
        """
        cursor: tuple[str, str] | None = None
        while True:
            batch = await self._run(functools.partial(self._live_batch, rtype, cursor))
            for _, record in batch:
                yield record
            if len(batch) < BATCH_SIZE:
                return
            rname, last = batch[-1]
            cursor = (rname, last.rtype)

    @staticmethod
    def _live_batch(
        rtype: str | None, cursor: tuple[str, str] | None, conn: sqlite3.Connection
    ) -> list[tuple[str, StoredRecord]]:
        where = ["deleted = 0"]
        params: list[Any] = []
        if rtype is not None:
            where.append("rtype = ?")
            params.append(rtype)
        if cursor is not None:
            where.append("(rname, rtype) > (?, ?)")
            params.extend(cursor)
        params.append(BATCH_SIZE)
        rows = conn.execute(
            f"SELECT rname, {_RECORD_COLUMNS} FROM records WHERE {' AND '.join(where)} "
            "ORDER BY rname, rtype LIMIT ?",
            params,
        ).fetchall()
        return [(row[0], _record(row[1:])) for row in rows]

    async def snapshot(self) -> tuple[int, str, list[StoredRecord]]:
        """``(rseq, chain, live records)`` read in one consistent transaction."""

        def read(conn: sqlite3.Connection) -> tuple[int, str, list[StoredRecord]]:
            with _transaction(conn):
                rseq, chain = _head(conn)
                rows = conn.execute(
                    f"SELECT {_RECORD_COLUMNS} FROM records WHERE deleted = 0 ORDER BY rname, rtype"
                ).fetchall()
            return rseq, chain, [_record(r) for r in rows]

        return await self._run(read)

    async def count(self) -> dict[str, int]:
        """Live records by type."""

        def read(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute(
                "SELECT rtype, count(*) FROM records WHERE deleted = 0 GROUP BY rtype"
            ).fetchall()
            return {rtype: n for rtype, n in rows}

        return await self._run(read)

    async def integrity_check(self) -> list[str]:
        """Problems found (empty when healthy).

        Checks, in one read transaction: SQLite's own ``integrity_check`` and
        ``foreign_key_check``; that ``rseq`` runs 1, 2, 3, ... without gaps;
        that every chain value recomputes from the previous one and the change's
        envelope ([REQ-FEED-001]); that no record is newer than the head; and
        that every record matches the change that produced it.
        """
        if self.path == ":memory:" or "mode=memory" in self.path:
            return await self._run(self._integrity_on_thread)
        # A full check reads the whole file: it must not stall the worker, so it
        # runs on a connection and thread of its own (in WAL mode a reader and
        # the writer do not block each other).
        return await self._submit(self._integrity_on_own_connection, own_thread=True)

    def _integrity_on_own_connection(self) -> list[str]:
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        try:
            return self._integrity_on_thread(conn)
        finally:
            conn.close()

    @staticmethod
    def _integrity_on_thread(conn: sqlite3.Connection) -> list[str]:
        problems: list[str] = []
        with _transaction(conn):
            for (message,) in conn.execute("PRAGMA integrity_check(100)"):
                if message != "ok":
                    problems.append(f"sqlite integrity_check: {message}")
            for table, rowid, parent, _ in conn.execute("PRAGMA foreign_key_check"):
                problems.append(f"sqlite foreign_key_check: {table} row {rowid} -> {parent}")
            feed = check_feed(
                conn.execute("SELECT rseq, envelope, chain FROM changes ORDER BY rseq")
            )
            problems.extend(feed.problems)
            for name, rtype, rseq in conn.execute(
                "SELECT name, rtype, rseq FROM records WHERE rseq > ? ORDER BY rseq LIMIT ?",
                (feed.head, MAX_PROBLEMS),
            ):
                problems.append(
                    f"record ({name}, {rtype}) has rseq {rseq} beyond the head {feed.head}"
                )
            for name, rtype, rseq in conn.execute(
                f"""SELECT r.name, r.rtype, r.rseq FROM records r
                    LEFT JOIN changes c ON c.rseq = r.rseq
                    WHERE r.rseq <= ? AND ({_MISMATCH_SQL})
                    ORDER BY r.rseq LIMIT ?""",
                (feed.head, MAX_PROBLEMS),
            ):
                problems.append(
                    f"record ({name}, {rtype}) does not match change {rseq} that produced it"
                )
        return problems


_MISMATCH_SQL: Final = """c.rseq IS NULL OR c.name != r.name OR c.rtype != r.rtype
    OR c.serial != r.serial
    OR (c.op = 'refresh' AND (r.refresh IS NULL OR c.envelope != r.refresh))
    OR (c.op != 'refresh' AND c.envelope != r.envelope)
    OR (c.op = 'delete') != (r.deleted != 0)"""
"""A record row that the change at its ``rseq`` did not produce (shared with PostgreSQL)."""
