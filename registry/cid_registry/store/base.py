"""The registry's storage interface, shared by the SQLite and PostgreSQL stores.

A store keeps two things ([REQ-REG-010]):

* ``records``: the current version of each record identity ``(name, type)``:
  its envelope (canonical msgpack), serial, digest, effective expiry, the
  latest refresh envelope of an offer, and whether it was deleted (a tombstone
  is kept, so that an older serial can never be re-inserted: [REQ-SIG-032]);
* ``changes``: the append-only change feed, one row per accepted change, with
  the registry serial ``rseq`` (1, 2, 3, ... no gaps) and the hash chain value
  after it ([REQ-FEED-001], computed with :func:`cid.feed.chain_step`).

The registry verifies signatures *before* it calls the store; the store makes
the write atomic and enforces, inside its transaction, the one rule that needs
the stored state ([REQ-REG-011]): a write's serial must be above the stored
serial of its identity, except that re-submitting exactly the stored version
(same serial, same digest) is an idempotent success. Writers in several
processes (PostgreSQL) are serialised on the feed head, so ``rseq`` and the
chain stay gap-free and linear.

Names are stored twice: ``name`` (canonical text) and ``rname``, the A-labels
in reverse order joined and terminated by a space (``"ctyun tj a100 "``). Byte
order on ``rname`` is the canonical identifier order, and a namespace's
subtree is the ``rname`` prefix ``"ctyun "`` — label-wise, so ``ctyunx`` is not
inside ``ctyun`` ([REQ-ID-023]).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal

from cid.identifier import Identifier

__all__ = [
    "Change",
    "Conflict",
    "ConflictError",
    "Op",
    "Store",
    "StoredRecord",
    "Write",
    "rname_of",
]

Op = Literal["put", "refresh", "delete"]


def rname_of(name: Identifier) -> str:
    """The sortable, prefix-searchable key of a name (see the module docstring)."""
    labels = name.to_ascii().split(".") if not name.is_root else []
    return "".join(label + " " for label in reversed(labels))


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """The current version of one record identity."""

    name: str
    rtype: str
    serial: int
    """The highest serial accepted for this identity (record, refresh or tombstone)."""
    digest: str
    """Digest of the record envelope (not of a refresh)."""
    envelope: bytes
    """Canonical msgpack of the record envelope, or of the tombstone when deleted."""
    expires: int
    """Effective expiry: the record's ``exp``, or the latest refresh's."""
    refresh: bytes | None
    """Canonical msgpack of the latest refresh envelope (offers only)."""
    deleted: bool
    rseq: int
    """Registry serial of the change that produced this version."""


@dataclass(frozen=True, slots=True)
class Write:
    """One verified change to apply atomically."""

    name: str
    rname: str
    rtype: str
    op: Op
    serial: int
    digest: str
    """For put: the record's digest; for refresh: the digest of the offer it refreshes
    (the store checks it equals the stored digest); for delete: the tombstone's digest."""
    envelope: bytes
    """Canonical msgpack of the envelope carried by this change."""
    expires: int
    at: int
    """Acceptance time (seconds), recorded in the change row."""


@dataclass(frozen=True, slots=True)
class Change:
    """One row of the change feed."""

    rseq: int
    name: str
    rtype: str
    op: Op
    serial: int
    envelope: bytes
    chain: str
    at: int


class ConflictError(Exception):
    """Raised by :meth:`Store.commit` when the stored state refuses the write.

    ``reason`` is ``"rollback"`` (serial not above the stored one, and not an
    identical re-submission), ``"stale_refresh"`` (refresh for an offer version
    that is no longer current) or ``"missing"`` (refresh or delete of a
    record that does not exist). The registry maps it to a typed
    :class:`cid.errors.CidError`.
    """

    def __init__(self, reason: str, stored_serial: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.stored_serial = stored_serial


Conflict = ConflictError
"""Short alias used by the stores."""


class Store(abc.ABC):
    """Asynchronous storage for one registry catalogue."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Create the schema if needed and get ready to serve."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish in-flight writes and release resources."""

    @abc.abstractmethod
    async def get(self, name: str, rtype: str) -> StoredRecord | None:
        """The stored version of ``(name, rtype)``, deleted or not."""

    @abc.abstractmethod
    async def at_name(self, name: str) -> list[StoredRecord]:
        """Every live (not deleted) record at ``name``, ordered by type."""

    @abc.abstractmethod
    async def list_namespace(
        self, rname_prefix: str, *, after: str | None, limit: int, now: int
    ) -> list[StoredRecord]:
        """Live, unexpired records whose ``rname`` starts with ``rname_prefix``.

        Ordered by ``(rname, rtype)``; ``after`` is an exclusive cursor of the
        form ``rname + "\\x00" + rtype``.
        """

    @abc.abstractmethod
    async def commit(self, write: Write) -> Change | None:
        """Apply ``write`` atomically and append it to the feed.

        Returns the new change, or ``None`` for an idempotent re-submission of
        the stored version (nothing is written).

        Raises:
            Conflict: the stored state refuses the write.
        """

    async def commit_many(self, writes: Sequence[Write]) -> list[Change | ConflictError | None]:
        """Apply several writes in order, in as few transactions as the store can ([REQ-REG-013]).

        Each write succeeds or fails on its own, exactly as :meth:`commit` would
        one after the other; the result list holds the change, ``None``
        (idempotent) or the :class:`ConflictError` of each. Stores override this
        to share one transaction (one fsync) between the writes of a batch.
        """
        out: list[Change | ConflictError | None] = []
        for write in writes:
            try:
                out.append(await self.commit(write))
            except ConflictError as e:
                out.append(e)
        return out

    @abc.abstractmethod
    async def changes(self, since: int, limit: int) -> list[Change]:
        """Changes with ``rseq > since`` in order, at most ``limit``."""

    @abc.abstractmethod
    async def head(self) -> tuple[int, str]:
        """``(rseq, chain)`` of the last change, ``(0, CHAIN_ZERO)`` when empty."""

    @abc.abstractmethod
    async def wait_for_change(self, since: int, timeout: float) -> int:
        """Wait until the head passes ``since`` (or ``timeout`` seconds); return the head rseq.

        Must observe commits made by other processes sharing the store.
        """

    @abc.abstractmethod
    def live_records(self, rtype: str | None = None) -> AsyncIterator[StoredRecord]:
        """Every live record (optionally of one type), in ``(rname, rtype)`` order."""

    @abc.abstractmethod
    async def snapshot(self) -> tuple[int, str, list[StoredRecord]]:
        """``(rseq, chain, live records)`` read in one consistent transaction."""

    @abc.abstractmethod
    async def count(self) -> dict[str, int]:
        """Live records by type."""

    @abc.abstractmethod
    async def integrity_check(self) -> list[str]:
        """Problems found (empty when healthy): storage-engine checks, rseq gaps,
        chain values that do not recompute, records newer than the feed."""
