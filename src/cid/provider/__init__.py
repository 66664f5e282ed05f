"""The provider SDK: negotiate and invoke endpoints for any provider (spec sections 8, 9, 15).

:func:`create_provider_app` returns an aiohttp application implementing the
provider HTTP binding of spec section 15; a provider supplies the offer
versions it publishes and the three backend objects of
:mod:`cid.provider.backend` (a :class:`QuotePolicy`, a :class:`CapacityLedger`
and an :class:`Executor`). Reference backends: :class:`ListPricePolicy`,
:class:`MemoryLedger` and ``cid.provider.executor.LocalProcessExecutor``.
"""

from .app import create_provider_app, system_clock
from .backend import (
    CapacityLedger,
    Executor,
    OfferVersion,
    QuoteDecision,
    QuotePolicy,
    Reservation,
    TaskOutcome,
    TaskProgress,
)
from .ledger import MemoryLedger
from .policy import ListPricePolicy

__all__ = [
    "CapacityLedger",
    "Executor",
    "ListPricePolicy",
    "MemoryLedger",
    "OfferVersion",
    "QuoteDecision",
    "QuotePolicy",
    "Reservation",
    "TaskOutcome",
    "TaskProgress",
    "create_provider_app",
    "system_clock",
]
