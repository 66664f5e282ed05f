"""What both registry stores share: the write rule, cursors, waking waiters, feed checks.

Pure helpers plus :class:`HeadSignal` (asyncio only): the SQLite and PostgreSQL
stores call them inside their own transactions, so both enforce exactly the
same rules ([REQ-REG-010], [REQ-REG-011], [REQ-FEED-001]).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

from cid.errors import InternalError, UnavailableError
from cid.feed import CHAIN_ZERO, chain_step

from .base import Conflict, StoredRecord, Write

__all__ = [
    "BATCH_SIZE",
    "MAX_PROBLEMS",
    "FeedCheck",
    "HeadSignal",
    "apply_write",
    "check_feed",
    "prefix_upper_bound",
    "split_cursor",
]

log = logging.getLogger(__name__)

BATCH_SIZE: Final = 1000
"""Rows per round trip when streaming records."""

MAX_PROBLEMS: Final = 100
"""At most this many problems are reported per kind by ``integrity_check``."""


# --- the write rule, shared with the PostgreSQL store ------------------------------------


def apply_write(stored: StoredRecord | None, write: Write, rseq: int) -> StoredRecord | None:
    """The version that ``write`` produces over ``stored``, as change ``rseq`` ([REQ-REG-011]).

    Pure: both stores call it inside their write transaction, with the row
    they just read. Returns ``None`` for an idempotent re-submission of exactly
    the stored version (nothing is to be written).

    Raises:
        Conflict: ``"rollback"`` (serial not above the stored one and not an
            identical re-submission, [REQ-SIG-032]), ``"stale_refresh"`` (a
            refresh whose base is not the stored offer version) or
            ``"missing"`` (refresh or delete of a record that is not live).
    """
    if write.op == "put":
        if stored is not None:
            if write.serial < stored.serial:
                raise Conflict("rollback", stored.serial)
            if write.serial == stored.serial:
                if (
                    not stored.deleted
                    and stored.digest == write.digest
                    and stored.envelope == write.envelope
                ):
                    return None
                raise Conflict("rollback", stored.serial)
        return StoredRecord(
            name=write.name,
            rtype=write.rtype,
            serial=write.serial,
            digest=write.digest,
            envelope=write.envelope,
            expires=write.expires,
            refresh=None,
            deleted=False,
            rseq=rseq,
        )
    if write.op == "refresh":
        # REQ-REC-060: a refresh applies to exactly one live offer version.
        if stored is None or stored.deleted or stored.rtype != "offer":
            raise Conflict("missing", None if stored is None else stored.serial)
        if write.digest != stored.digest:
            raise Conflict("stale_refresh", stored.serial)
        if write.serial <= stored.serial:
            if write.serial == stored.serial and stored.refresh == write.envelope:
                return None
            raise Conflict("rollback", stored.serial)
        return StoredRecord(
            name=stored.name,
            rtype=stored.rtype,
            serial=write.serial,
            digest=stored.digest,
            envelope=stored.envelope,
            expires=write.expires,
            refresh=write.envelope,
            deleted=False,
            rseq=rseq,
        )
    if write.op == "delete":
        if stored is None:
            raise Conflict("missing")
        if stored.deleted:
            if write.serial == stored.serial and write.envelope == stored.envelope:
                return None
            raise Conflict("missing", stored.serial)
        if write.serial <= stored.serial:
            raise Conflict("rollback", stored.serial)
        # REQ-SIG-032: the tombstone stays, carrying the serial, so that no older
        # version can be re-inserted. ``digest`` follows ``envelope``.
        return StoredRecord(
            name=stored.name,
            rtype=stored.rtype,
            serial=write.serial,
            digest=write.digest,
            envelope=write.envelope,
            expires=write.expires,
            refresh=None,
            deleted=True,
            rseq=rseq,
        )
    raise ValueError(f"unknown op {write.op!r}")


def prefix_upper_bound(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix`` (``None``: no bound).

    ``rname LIKE prefix%`` becomes the index range ``prefix <= rname < bound``
    under a binary (code point) collation.
    """
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            nxt = 0xE000 if last + 1 == 0xD800 else last + 1  # skip the surrogates
            return prefix[:-1] + chr(nxt)
        prefix = prefix[:-1]
    return None


def split_cursor(after: str) -> tuple[str, str]:
    """``(rname, rtype)`` of an ``rname + "\\x00" + rtype`` cursor.

    A cursor without the separator is taken as an rname alone: listing resumes
    with the first record at that rname.
    """
    rname, _, rtype = after.partition("\x00")
    return rname, rtype


# --- waking waiters ------------------------------------------------------------------------


class HeadSignal:
    """Wakes :meth:`Store.wait_for_change` waiters when the feed head moves.

    ``advance(rseq)`` is called by the store's own commits (immediately) and by
    whatever else learns of a new head (PostgreSQL notifications). For commits
    of other processes, one poll task per store reads the head every
    ``poll_interval`` seconds while at least one waiter exists, so that a
    thousand long-polling followers cost one query per interval, not a thousand.
    """

    def __init__(
        self,
        read_head: Callable[[], Awaitable[int]],
        poll_interval: float,
        before_poll: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._read_head = read_head
        self._before_poll = before_poll
        self._poll_interval = poll_interval
        self._known = 0
        self._event = asyncio.Event()
        self._waiters = 0
        self._poller: asyncio.Task[None] | None = None
        self._closed = False

    def advance(self, rseq: int) -> None:
        """Record that the head reached ``rseq``; wake the waiters if it moved."""
        if rseq > self._known:
            self._known = rseq
            event, self._event = self._event, asyncio.Event()
            event.set()

    async def wait(self, since: int, timeout: float) -> int:
        """Wait until the head passes ``since`` or ``timeout`` seconds pass; return the head."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._known > since or self._closed:
            return self._known  # a head this process has seen already (no read needed)
        self.advance(await self._read_head())
        if self._known > since or self._closed:
            return self._known
        self._waiters += 1
        try:
            self._ensure_poller()
            while self._known <= since and not self._closed:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._event.wait(), remaining)
        finally:
            self._waiters -= 1
        return self._known

    def _ensure_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(
                self._poll(), name="cid-store-head-poll"
            )

    async def _poll(self) -> None:
        # No await between the test below and the task ending, so a waiter that
        # arrives later always finds the task done and starts a new one.
        while True:
            await asyncio.sleep(self._poll_interval)
            if self._waiters == 0 or self._closed:
                return
            try:
                if self._before_poll is not None:
                    await self._before_poll()
                self.advance(await self._read_head())
            except (UnavailableError, InternalError) as e:
                log.warning("polling the feed head failed: %s", e)

    async def close(self) -> None:
        """Stop polling and release every waiter."""
        self._closed = True
        self._event.set()
        if self._poller is not None and not self._poller.done():
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        self._poller = None


class FeedCheck:
    """The result of replaying a change feed: its head and the problems found."""

    def __init__(self) -> None:
        self.head = 0
        self.chain = CHAIN_ZERO
        self.problems: list[str] = []
        self._gaps = 0
        self._breaks = 0

    def step(self, rseq: int, envelope: bytes, chain: str) -> None:
        """Replay one change row (rows must come in ``rseq`` order)."""
        if rseq != self.head + 1:
            self._gaps += 1
            if self._gaps <= MAX_PROBLEMS:
                self.problems.append(f"feed gap: rseq {rseq} follows {self.head}")
        expected = chain_step(self.chain, rseq, envelope)
        if chain != expected:
            self._breaks += 1
            if self._breaks <= MAX_PROBLEMS:
                self.problems.append(f"chain broken at rseq {rseq}: the value does not recompute")
        # Continue from the stored value: each link is checked on its own, so an
        # altered envelope breaks one link, an altered chain value the two it joins.
        self.head, self.chain = rseq, chain


def check_feed(rows: Iterable[tuple[Any, ...]]) -> FeedCheck:
    """Replay ``(rseq, envelope, chain)`` rows in order ([REQ-FEED-001])."""
    check = FeedCheck()
    for rseq, envelope, chain in rows:
        check.step(rseq, bytes(envelope), chain)
    return check
