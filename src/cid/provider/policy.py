"""A configurable list-price quote policy: quote what is free, counter with less, else reject.

:class:`ListPricePolicy` answers a verified demand (the SDK has already checked
the signature, the audience, the offer version and the currency):

1. the start is the earliest instant of the demand's window that is not in the
   past; a window that has passed, or starts further ahead than
   ``max_start_ahead_s``, is rejected (``DEMAND_REJECTED``);
2. the units needed are those the demand's resources need (spec 7.6,
   [REQ-NEG-024]); a resource the offer neither has nor prices is rejected;
3. nothing free: rejected (``CAPACITY_EXHAUSTED``, with ``retry_after_s``);
   fewer free units than needed: a counter for the free units (reason
   ``quantity``), unless ``counter_quantity`` is off; more units needed than
   demanded but free: a counter for the units needed ([REQ-NEG-015]);
4. otherwise a quote on the demand's terms, with per-task limits derived from
   the offer's unit (:meth:`ListPricePolicy.limits_for`) and the configured
   cancellation terms and service level.

The SDK prices the answer itself from the offer version and turns a quote above
the demand's ``max_price`` into a counter (reason ``price``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from ..errors import DemandRejectedError
from ..negotiation import (
    Cancellation,
    CounterReason,
    Demand,
    RejectionReason,
    Sla,
    TaskLimits,
    Terms,
)
from ..query import ResourceDemand, units_needed
from .backend import OfferVersion, QuoteDecision

__all__ = ["ListPricePolicy"]


def _default_cancellation() -> Cancellation:
    return Cancellation(notice_s=3600, fee_share=Decimal("0.1"))


@dataclass(frozen=True)
class ListPricePolicy:
    """The reference :class:`~cid.provider.backend.QuotePolicy`.

    Attributes:
        quote_valid_s: how long a quote or counter stays acceptable.
        wall_s: the per-task wall-clock limit (capped at the agreement's duration).
        cpu_s_per_unit: per-task CPU seconds for each unit bought; default
            ``wall_s`` × the unit's vCPUs (at least one), i.e. every core busy.
        memory_mib_per_unit: per-task memory for each unit; default the unit's
            ``memory_mib`` (or ``default_memory_mib`` for a unit without memory).
        output_bytes: per-task limit on the total size of outputs.
        cancellation: the cancellation terms of every quote ([REQ-NEG-031]).
        sla: the service level of every quote, if any ([REQ-NEG-032]).
        counter_quantity: counter with the free units when fewer are free than
            needed (otherwise reject with ``CAPACITY_EXHAUSTED``).
        max_start_ahead_s: how far in the future an agreement may start.
        retry_after_s: the ``retry_after_s`` of a capacity rejection.
    """

    quote_valid_s: int = 300
    wall_s: int = 3600
    cpu_s_per_unit: int | None = None
    memory_mib_per_unit: int | None = None
    default_memory_mib: int = 1024
    output_bytes: int = 64 * 1024 * 1024
    cancellation: Cancellation = field(default_factory=_default_cancellation)
    sla: Sla | None = None
    counter_quantity: bool = True
    max_start_ahead_s: int = 30 * 86_400
    retry_after_s: int = 60

    def limits_for(self, offer: OfferVersion, quantity: int, duration_s: int) -> TaskLimits:
        """Per-task limits for ``quantity`` units of ``offer`` ([REQ-NEG-030])."""
        unit = offer.body.unit
        wall = max(1, min(self.wall_s, duration_s))
        cpu_per_unit = (
            self.cpu_s_per_unit if self.cpu_s_per_unit is not None else wall * max(unit.vcpu, 1)
        )
        mem_per_unit = (
            self.memory_mib_per_unit
            if self.memory_mib_per_unit is not None
            else unit.memory_mib or self.default_memory_mib
        )
        return TaskLimits(
            cpu_s=max(1, cpu_per_unit * quantity),
            memory_mib=max(1, mem_per_unit * quantity),
            wall_s=wall,
            output_bytes=self.output_bytes,
        )

    def terms(self) -> Terms:
        return Terms(cancellation=self.cancellation, sla=self.sla)

    def decide(
        self,
        demand: Demand,
        offer: OfferVersion,
        *,
        free_units: int,
        resources: ResourceDemand,
        now: int,
    ) -> QuoteDecision:
        """Quote, counter or reject ``demand`` (see the module docstring)."""
        start = max(now, demand.start_after)
        if start > demand.start_before:
            return self._reject(RejectionReason.DEMAND_REJECTED, "the start window has passed")
        if start - now > self.max_start_ahead_s:
            return self._reject(
                RejectionReason.DEMAND_REJECTED,
                f"starts more than {self.max_start_ahead_s} s ahead",
            )
        try:
            needed = units_needed(offer.body.unit, resources, offer.body.price)
        except DemandRejectedError as e:
            return self._reject(RejectionReason.DEMAND_REJECTED, e.message[:256])
        if free_units <= 0:
            return QuoteDecision(
                reject=RejectionReason.CAPACITY_EXHAUSTED,
                message="no units free",
                retry_after_s=self.retry_after_s,
            )
        quantity, reason, message = needed, None, None
        if needed > free_units:
            if not self.counter_quantity:
                return QuoteDecision(
                    reject=RejectionReason.CAPACITY_EXHAUSTED,
                    message=f"{needed} units needed, {free_units} free",
                    retry_after_s=self.retry_after_s,
                )
            quantity, reason = free_units, CounterReason.QUANTITY
            message = f"only {free_units} units free"
        elif needed != demand.quantity:
            # REQ-NEG-015: the resources need more units than demanded: counter, never quote
            reason, message = CounterReason.QUANTITY, f"the resources need {needed} units"
        return QuoteDecision(
            quantity=quantity,
            duration_s=demand.duration_s,
            start=start,
            limits=self.limits_for(offer, quantity, demand.duration_s),
            terms=self.terms(),
            valid_s=self.quote_valid_s,
            counter=reason,
            message=message,
        )

    @staticmethod
    def _reject(reason: RejectionReason, message: str) -> QuoteDecision:
        return QuoteDecision(reject=reason, message=message)
