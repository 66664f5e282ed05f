"""An in-memory capacity ledger: interval reservations per offer, never oversold.

Theory of operation
-------------------
Each agreement holds ``quantity`` units of one offer over its period
``[start, end)`` ([REQ-NEG-020]). The pool has ``capacity`` units (the offer's
``availability.units_total``), and at no instant may the reservations that
cover it add up to more ([REQ-PRV-021]).

:meth:`MemoryLedger.reserve` computes the *peak* of the existing reservations
of the offer over the new period (a sweep over their start and end points) and
admits the new one only if ``peak + quantity <= capacity``. The check and the
insertion happen under one :class:`asyncio.Lock` with no ``await`` between
them, so two concurrent accepts for the last free unit cannot both pass: the
second sees the first one's units ([REQ-PRV-022]).

Release is idempotent: releasing an unknown or already released agreement does
nothing. Re-reserving the same agreement with the same figures is idempotent
too (a retried accept), while the same id with other figures is a conflict.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from ..errors import CapacityExhaustedError, IdempotencyConflictError
from ..identifier import Identifier
from .backend import Reservation

__all__ = ["MemoryLedger", "peak_reserved"]


def peak_reserved(reservations: Iterable[Reservation], start: int, end: int) -> int:
    """The most units ``reservations`` hold at any instant of ``[start, end)``."""
    points: list[tuple[int, int]] = []
    for r in reservations:
        lo, hi = max(r.start, start), min(r.end, end)
        if lo < hi:
            points.append((lo, r.quantity))
            points.append((hi, -r.quantity))
    # at equal times ends (negative) sort before starts: [a, b) and [b, c) do not overlap
    points.sort()
    peak = held = 0
    for _, delta in points:
        held += delta
        peak = max(peak, held)
    return peak


class MemoryLedger:
    """The reference :class:`~cid.provider.backend.CapacityLedger`, for one process.

    State is lost on restart; a provider that must survive restarts keeps its
    reservations in a database behind the same three methods.
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._by_id: dict[str, Reservation] = {}
        self._by_offer: dict[Identifier, dict[str, Reservation]] = {}

    async def reserve(self, reservation: Reservation, *, capacity: int) -> None:
        """Reserve ``reservation.quantity`` units over ``[start, end)`` or raise.

        Raises:
            CapacityExhaustedError: fewer units are free at some instant of the
                period; ``detail`` has ``free`` (the most that could be reserved).
            IdempotencyConflictError: the agreement id holds a different reservation.
        """
        r = reservation
        async with self._lock:
            held = self._by_id.get(r.agreement_id)
            if held is not None:
                if held == r:
                    return
                raise IdempotencyConflictError(
                    "agreement already holds another reservation",
                    detail={"agreement_id": r.agreement_id},
                )
            pool = self._by_offer.setdefault(r.offer, {})
            peak = peak_reserved(pool.values(), r.start, r.end) if r.end > r.start else 0
            # REQ-PRV-022: check and insert with no await in between (one lock holder)
            if peak + r.quantity > capacity:
                free = max(0, capacity - peak)
                raise CapacityExhaustedError(
                    f"{r.quantity} units wanted, {free} free over the period",
                    detail={"free": free, "offer": r.offer.to_text()},
                )
            pool[r.agreement_id] = r
            self._by_id[r.agreement_id] = r

    async def release(self, agreement_id: str) -> None:
        """Free an agreement's units; nothing happens if it holds none."""
        async with self._lock:
            r = self._by_id.pop(agreement_id, None)
            if r is not None:
                pool = self._by_offer.get(r.offer, {})
                pool.pop(agreement_id, None)
                if not pool:
                    self._by_offer.pop(r.offer, None)

    async def free(self, offer: Identifier, *, at: int, capacity: int) -> int:
        """Units of ``offer`` not reserved at instant ``at`` (never negative)."""
        async with self._lock:
            return max(0, capacity - self.reserved(offer, at=at))

    # -- inspection (synchronous; for tests, metrics and availability refreshes) -----------

    def reserved(self, offer: Identifier, *, at: int) -> int:
        """Units of ``offer`` reserved at instant ``at``."""
        return peak_reserved(self._by_offer.get(offer, {}).values(), at, at + 1)

    def peak(self, offer: Identifier) -> int:
        """The most units of ``offer`` reserved at any instant."""
        pool = self._by_offer.get(offer, {}).values()
        return peak_reserved(pool, 0, 2**63)

    def reservations(self) -> dict[str, Reservation]:
        """Every current reservation by agreement id (a copy)."""
        return dict(self._by_id)

    def prune(self, *, before: int) -> int:
        """Forget reservations that ended at or before ``before``; returns how many."""
        gone = [aid for aid, r in self._by_id.items() if r.end <= before]
        for aid in gone:
            r = self._by_id.pop(aid)
            pool = self._by_offer.get(r.offer, {})
            pool.pop(aid, None)
            if not pool:
                self._by_offer.pop(r.offer, None)
        return len(gone)
