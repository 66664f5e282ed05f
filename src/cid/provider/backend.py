"""The small backend interface a provider implements to speak negotiate and invoke.

The provider SDK (:func:`cid.provider.create_provider_app`) does everything the
protocol requires - verification, state machines, idempotency, replay refusal,
receipts - and asks the backend only three business questions:

* :class:`QuotePolicy`: what to answer a verified demand (a quote's terms, a
  counter, or a rejection);
* :class:`CapacityLedger`: reserve units atomically when a quote is accepted,
  release them when an agreement ends (never more than the pool holds);
* :class:`Executor`: run a task within limits, report its state, give its
  outputs and its metered usage.

Reference implementations: :class:`cid.provider.policy.ListPricePolicy`,
:class:`cid.provider.ledger.MemoryLedger`, and
:class:`cid.provider.executor.LocalProcessExecutor` (real local processes
with enforced limits).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..identifier import Identifier
from ..invocation import TaskDefinition, TaskState, Usage
from ..negotiation import CounterReason, Demand, RejectionReason, TaskLimits, Terms
from ..query import ResourceDemand
from ..record import OfferBody

__all__ = [
    "CapacityLedger",
    "Executor",
    "OfferVersion",
    "QuoteDecision",
    "QuotePolicy",
    "Reservation",
    "TaskOutcome",
    "TaskProgress",
]


@dataclass(frozen=True, slots=True)
class OfferVersion:
    """One offer version the provider publishes: what demands are priced against."""

    name: Identifier
    serial: int
    digest: str
    body: OfferBody
    expires: int


@dataclass(frozen=True)
class QuoteDecision:
    """A policy's answer to a verified demand.

    Exactly one of the three shapes:

    * a quote: ``quantity``/``duration_s``/``start`` as demanded (``counter`` is ``None``);
    * a counter: the changed ``quantity``, ``duration_s`` or ``start`` and ``counter`` set;
    * a rejection: ``reject`` set (the others are ignored).

    The SDK computes the price itself from the offer version (spec 7.6) so that a
    policy can never quote a price the offer does not justify.
    """

    quantity: int = 0
    duration_s: int = 0
    start: int = 0
    limits: TaskLimits | None = None
    terms: Terms | None = None
    valid_s: int = 300
    """How long the quote or counter stays acceptable."""
    counter: CounterReason | None = None
    message: str | None = None
    reject: RejectionReason | None = None
    retry_after_s: int | None = None


@runtime_checkable
class QuotePolicy(Protocol):
    def decide(
        self,
        demand: Demand,
        offer: OfferVersion,
        *,
        free_units: int,
        resources: ResourceDemand,
        now: int,
    ) -> QuoteDecision:
        """Answer a verified demand (its price limit is checked by the SDK afterwards)."""
        ...


@dataclass(frozen=True, slots=True)
class Reservation:
    agreement_id: str
    offer: Identifier
    quantity: int
    start: int
    end: int


@runtime_checkable
class CapacityLedger(Protocol):
    """Units of each offer, reserved per agreement; atomic, never oversold ([REQ-PRV-021])."""

    async def reserve(self, reservation: Reservation, *, capacity: int) -> None:
        """Reserve ``reservation.quantity`` units over [start, end).

        Raises:
            CapacityExhaustedError: fewer than ``quantity`` units are free at some
                instant of the period; nothing is reserved.
        """
        ...

    async def release(self, agreement_id: str) -> None:
        """Free an agreement's units (withdrawal, expiry of the period). Idempotent."""
        ...

    async def free(self, offer: Identifier, *, at: int, capacity: int) -> int:
        """Units of ``offer`` not reserved at instant ``at``."""
        ...


@dataclass(frozen=True)
class TaskProgress:
    """A state change of a running task, as the executor reports it."""

    state: TaskState
    at: int
    exit_code: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class TaskOutcome:
    """What a finished task produced and consumed."""

    state: TaskState
    exit_code: int | None
    reason: str | None
    stdout: bytes
    stderr: bytes
    outputs: Mapping[str, bytes] = field(default_factory=dict)
    """Result files by relative path."""
    usage: Usage | None = None
    started: int = 0
    finished: int = 0


@runtime_checkable
class Executor(Protocol):
    """Runs tasks with their limits enforced for real ([REQ-INV-040]..)."""

    async def start(self, task_id: str, task: TaskDefinition, limits: TaskLimits) -> None:
        """Queue the task; it runs at most once per ``task_id`` ([REQ-INV-005])."""
        ...

    def events(self, task_id: str) -> AsyncIterator[TaskProgress]:
        """The task's state changes from now until it is terminal."""
        ...

    async def wait(self, task_id: str) -> TaskOutcome:
        """Wait for the task to end and return its outcome."""
        ...

    async def cancel(self, task_id: str) -> bool:
        """Stop the task; ``False`` when it had already ended."""
        ...

    async def release(self, task_id: str) -> None:
        """Forget a finished task and remove what it left behind (its working directory).

        Called by the SDK once it holds the task's outcome.
        """
        ...

    async def close(self) -> None:
        """Stop every task and clean up (working directories, processes)."""
        ...
