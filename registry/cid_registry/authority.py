"""What the registry accepts: verification of writes against the namespace tree.

Theory of operation
-------------------
The registry keeps an in-memory :class:`cid.trust.TrustState` (who may sign
what) and an in-memory search index, both derived from the store's change feed.
Every process - one, or several over one PostgreSQL database - maintains them
the same way: a :class:`Follower` applies the feed's changes in ``rseq`` order.
A write is handled as follows ([REQ-REG-011]):

1. catch up with the store's head, so that delegations and rotations accepted
   by any process are known;
2. verify the envelope: structure, typ, key authorised for the name, signature,
   validity window (:meth:`cid.trust.TrustState.verify`);
3. for a refresh, check it against the stored offer (version, capacity);
4. commit: the store checks the serial atomically (which is what makes
   concurrent writers safe) and the change enters the feed; the follower applies it.

A refused write leaves the store untouched: nothing is written before step 4.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cid.codec import DEFAULT_LIMITS, Limits
from cid.envelope import Envelope, SignedRecord, parse_record_body
from cid.errors import (
    CidError,
    NotFoundError,
    SchemaError,
    SerialRollbackError,
)
from cid.record import OfferBody, RefreshBody, TombstoneBody
from cid.signing import PublicKey
from cid.trust import TrustState

from .store import Change, Conflict, Store, StoredRecord, Write, rname_of
from .store.base import Op

__all__ = ["Accepted", "Authority", "Follower"]

log = logging.getLogger("cid_registry.authority")

TRUST_TYPES = ("delegation", "keyrotation")

Listener = Callable[[Change, "SignedRecord[Any] | None"], None]


@dataclass(frozen=True, slots=True)
class Accepted:
    """The outcome of an accepted write."""

    name: str
    rtype: str
    op: str
    serial: int
    digest: str
    rseq: int | None
    """The change's registry serial, ``None`` when it was an idempotent re-submission."""


class Follower:
    """Applies the change feed, in order, to the in-memory state of this process."""

    def __init__(self, store: Store, root_keys: list[PublicKey], clock: Callable[[], int]) -> None:
        self.store = store
        self.root_keys = root_keys
        self.clock = clock
        self.trust = TrustState(root_keys)
        self.applied = 0
        self._lock = asyncio.Lock()
        self._listeners: list[Listener] = []
        self.fresh: dict[int, SignedRecord[Any]] = {}
        """Records this process just committed, by rseq: listeners reuse them instead of
        decoding the change again. Entries are consumed when applied."""

    def on_change(self, listener: Listener) -> None:
        """Call ``listener(change, record)`` for every change applied (after the trust state).

        ``record`` is the verified record when this process committed the change,
        else ``None`` (the listener decodes the change's envelope itself).
        """
        self._listeners.append(listener)

    async def catch_up(self, target: int | None = None) -> int:
        """Apply changes until ``applied >= target`` (default: the store's head)."""
        if target is None:
            target = (await self.store.head())[0]
        if self.applied >= target:
            return self.applied
        async with self._lock:
            while self.applied < target:
                batch = await self.store.changes(self.applied, 1000)
                if not batch:
                    break
                for change in batch:
                    self._apply(change)
                    self.applied = change.rseq
        return self.applied

    async def apply_committed(self, committed: list[tuple[Change, SignedRecord[Any]]]) -> None:
        """Apply changes this process just committed, with their verified records.

        ``committed`` holds consecutive changes of one transaction, in order. When
        they directly follow what is applied, they are applied as they are, without
        reading them back from the store; otherwise (another process wrote in
        between) the feed is read from the store up to the last of them.
        """
        if not committed:
            return
        fresh = self.fresh
        for change, record in committed:
            fresh[change.rseq] = record  # for whichever catch-up applies them first
        async with self._lock:
            todo = [c for c, _ in committed if c.rseq > self.applied]
            if todo and todo[0].rseq == self.applied + 1:
                for change in todo:
                    self._apply(change)
                    self.applied = change.rseq
                return
        await self.catch_up(committed[-1][0].rseq)

    def _apply(self, change: Change) -> None:
        self._listen(change, self.fresh.pop(change.rseq, None))

    def _listen(self, change: Change, record: SignedRecord[Any] | None) -> None:
        if change.rtype in TRUST_TYPES:
            self._apply_trust(change)
        for listener in self._listeners:
            listener(change, record)

    def _apply_trust(self, change: Change) -> None:
        # Changes were verified when accepted; the trust state is rebuilt from
        # them without re-checking validity windows, which may have passed since.
        env = Envelope.decode(change.envelope, "msgpack")
        try:
            # verified when accepted; replayed without the (possibly since passed) windows
            self.trust.add(env, now=env.header.nbf, check_chain=False)
        except CidError as e:  # pragma: no cover - a feed change that no longer verifies
            log.error(
                "feed change %s (%s %s) not applied: %s", change.rseq, change.name, change.rtype, e
            )


def _accepted(write: Write, record: SignedRecord[Any], change: Change | None) -> Accepted:
    return Accepted(
        name=write.name,
        rtype=write.rtype,
        op=write.op,
        serial=write.serial,
        digest=write.digest if write.op != "refresh" else record.envelope.digest(),
        rseq=None if change is None else change.rseq,
    )


class Authority:
    """Verifies writes and commits them (steps 1-4 of the module docstring)."""

    def __init__(
        self,
        store: Store,
        follower: Follower,
        *,
        clock: Callable[[], int],
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.store = store
        self.follower = follower
        self.clock = clock
        self.limits = limits

    async def submit(self, envelope: Envelope) -> Accepted:
        """Verify and commit one envelope; raise a typed :class:`CidError` when refused."""
        await self.follower.catch_up()
        now = self.clock()
        record = self.follower.trust.verify(envelope, now=now)
        write = await self._write_for(record, now)
        try:
            change = await self.store.commit(write)
        except Conflict as e:
            raise _conflict_error(e, write) from e
        if change is not None:
            await self.follower.apply_committed([(change, record)])
        return _accepted(write, record, change)

    async def submit_many(self, envelopes: list[Envelope]) -> list[Accepted | CidError]:
        """Verify and commit many envelopes, each on its own ([REQ-REG-021], [REQ-REG-013]).

        Records are committed together (one transaction, one fsync). A
        delegation or key rotation changes who may sign what, so it is
        committed on its own before the envelopes after it are verified.
        """
        await self.follower.catch_up()
        results: list[Accepted | CidError | None] = [None] * len(envelopes)
        pending: list[tuple[int, SignedRecord[Any], Write]] = []

        async def flush() -> None:
            outcomes = await self.store.commit_many([w for _, _, w in pending])
            committed: list[tuple[Change, SignedRecord[Any]]] = []
            for (i, record, write), outcome in zip(pending, outcomes, strict=True):
                if isinstance(outcome, Conflict):
                    results[i] = _conflict_error(outcome, write)
                    continue
                if outcome is not None:
                    committed.append((outcome, record))
                results[i] = _accepted(write, record, outcome)
            pending.clear()
            await self.follower.apply_committed(committed)

        now = self.clock()
        for i, envelope in enumerate(envelopes):
            try:
                # authority changes, and changes that depend on the stored state, go alone
                if envelope.header.typ.rsplit(".", 1)[-1] in (*TRUST_TYPES, "tombstone", "refresh"):
                    if pending:
                        await flush()
                    results[i] = await self.submit(envelope)
                    now = self.clock()
                    continue
                record = self.follower.trust.verify(envelope, now=now)
                pending.append((i, record, await self._write_for(record, now)))
            except CidError as err:
                results[i] = err
        if pending:
            await flush()
        return [r for r in results if r is not None]

    async def _write_for(self, record: SignedRecord[Any], now: int) -> Write:
        name = record.name
        text = name.to_text()
        header = record.header
        body = record.body
        envelope_bytes = record.envelope.encode("msgpack")

        def write(rtype: str, op: Op, digest: str) -> Write:
            return Write(
                name=text,
                rname=rname_of(name),
                rtype=rtype,
                op=op,
                serial=header.serial,
                digest=digest,
                envelope=envelope_bytes,
                expires=header.exp,
                at=now,
            )

        # The store checks serials atomically (REQ-REG-011); only a refresh needs the
        # stored offer before it can be judged.
        if isinstance(body, TombstoneBody):
            return write(body.target, "delete", record.envelope.digest())
        if isinstance(body, RefreshBody):
            stored = await self.store.get(text, "offer")
            if stored is None or stored.deleted:
                raise NotFoundError(f"no offer {name} to refresh", field="header.sub")
            self._check_serial(stored, record, envelope_bytes)
            offer = parse_record_body(Envelope.decode(stored.envelope, "msgpack"))
            total = offer.availability.units_total if isinstance(offer, OfferBody) else 0
            if body.units_free > total:
                # REQ-REC-062: a refresh cannot announce more than the pool holds
                raise SchemaError(
                    f"units_free {body.units_free} exceeds the offer's units_total {total}",
                    field="body.units_free",
                    detail={"rule": "free_le_total"},
                )
            return write("offer", "refresh", body.base)
        return write(record.record_type, "put", record.envelope.digest())

    @staticmethod
    def _check_serial(
        stored: StoredRecord | None, record: SignedRecord[Any], envelope_bytes: bytes
    ) -> None:
        # REQ-SIG-032 / REQ-REG-011: strictly increasing, except an identical re-submission.
        serial = record.serial
        if stored is None or serial > stored.serial:
            return
        if serial == stored.serial and envelope_bytes in (stored.envelope, stored.refresh):
            return
        raise SerialRollbackError(
            f"serial {serial} is not above the stored serial {stored.serial}",
            field="header.serial",
            detail={"serial": serial, "stored": stored.serial},
        )


def _conflict_error(conflict: Conflict, write: Write) -> CidError:
    if conflict.reason == "rollback":
        return SerialRollbackError(
            f"serial {write.serial} is not above the stored serial {conflict.stored_serial}",
            field="header.serial",
            detail={"serial": write.serial, "stored": conflict.stored_serial},
        )
    if conflict.reason == "stale_refresh":
        return SchemaError(
            "refresh is for an offer version that is no longer current",
            field="body.base",
            detail={"rule": "stale_refresh"},
        )
    return NotFoundError(f"no live {write.rtype} at {write.name}", field="header.sub")
