"""The reference ledger and policy, and the pure parts of the negotiator and invoker."""

from __future__ import annotations

import asyncio
import contextlib
import random
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cid import examples as ex
from cid.errors import CapacityExhaustedError, IdempotencyConflictError, SchemaError
from cid.identifier import Identifier
from cid.invocation import TaskState
from cid.model import validate
from cid.negotiation import Demand, NegEvent, NegState, Sla
from cid.provider import ListPricePolicy, MemoryLedger, OfferVersion, Reservation
from cid.provider.invoker import _status_shape
from cid.provider.ledger import peak_reserved
from cid.provider.negotiator import NegotiationBook, new_id, priced_demand
from cid.query import ResourceDemand
from cid.record import Unit

from .conftest import DAY, NOW, Clock, Requester, offer_version

OFFER = Identifier("gz.ctyun")


def res(aid: str, quantity: int, start: int, end: int, offer: Identifier = OFFER) -> Reservation:
    return Reservation(agreement_id=aid, offer=offer, quantity=quantity, start=start, end=end)


# --- MemoryLedger ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_ledger_intervals() -> None:
    """REQ-PRV-021: reservations are per instant of [start, end); adjacent periods do not clash."""
    ledger = MemoryLedger()
    await ledger.reserve(res("a", 2, 0, 10), capacity=3)
    await ledger.reserve(res("b", 1, 5, 15), capacity=3)
    with pytest.raises(CapacityExhaustedError) as info:
        await ledger.reserve(res("c", 1, 9, 20), capacity=3)
    assert info.value.detail["free"] == 0
    await ledger.reserve(res("c", 2, 10, 20), capacity=3)  # [0,10) and [10,20) touch only
    assert await ledger.free(OFFER, at=9, capacity=3) == 0
    assert await ledger.free(OFFER, at=10, capacity=3) == 0
    assert await ledger.free(OFFER, at=15, capacity=3) == 1
    assert await ledger.free(OFFER, at=20, capacity=3) == 3
    assert ledger.peak(OFFER) == 3
    # other offers are other pools
    await ledger.reserve(res("d", 3, 0, 10, Identifier("nm.ctyun")), capacity=3)
    # idempotent re-reserve; a different reservation under the same id is a conflict
    await ledger.reserve(res("a", 2, 0, 10), capacity=3)
    with pytest.raises(IdempotencyConflictError):
        await ledger.reserve(res("a", 1, 0, 10), capacity=3)
    await ledger.release("a")
    await ledger.release("a")  # idempotent
    await ledger.release("never-reserved")
    assert await ledger.free(OFFER, at=0, capacity=3) == 3
    assert set(ledger.reservations()) == {"b", "c", "d"}
    assert ledger.prune(before=12) == 1  # "d" ended at 10
    assert set(ledger.reservations()) == {"b", "c"}
    assert await ledger.free(OFFER, at=0, capacity=2) == 2
    assert await ledger.free(OFFER, at=12, capacity=2) == 0  # never negative


@pytest.mark.asyncio
async def test_ledger_concurrent_reservations_never_oversell() -> None:
    """REQ-PRV-022: many concurrent reservations over random periods never exceed capacity."""
    rng = random.Random(7)
    ledger = MemoryLedger()
    capacity = 5
    wanted = []
    for i in range(200):
        start = rng.randrange(0, 100)
        wanted.append(res(f"r{i}", rng.randrange(1, 4), start, start + rng.randrange(1, 30)))
    outcomes = await asyncio.gather(
        *(ledger.reserve(r, capacity=capacity) for r in wanted), return_exceptions=True
    )
    assert all(o is None or isinstance(o, CapacityExhaustedError) for o in outcomes)
    held = list(ledger.reservations().values())
    assert held and ledger.peak(OFFER) <= capacity
    for t in range(0, 130):
        assert sum(r.quantity for r in held if r.start <= t < r.end) <= capacity


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 4), st.integers(0, 50), st.integers(1, 20)), max_size=25),
    st.integers(1, 8),
)
def test_peak_is_the_max_over_instants(spans: list[tuple[int, int, int]], capacity: int) -> None:
    """REQ-PRV-021: the sweep's peak equals the brute-force maximum over every instant."""
    rs = [res(f"r{i}", q, s, s + d) for i, (q, s, d) in enumerate(spans)]
    brute = max(
        (sum(r.quantity for r in rs if r.start <= t < r.end) for t in range(0, 80)), default=0
    )
    assert peak_reserved(rs, 0, 80) == brute

    async def fill() -> MemoryLedger:
        ledger = MemoryLedger()
        for r in rs:
            with contextlib.suppress(CapacityExhaustedError):
                await ledger.reserve(r, capacity=capacity)
        return ledger

    ledger = asyncio.run(fill())
    assert ledger.peak(OFFER) <= capacity


# --- ListPricePolicy ------------------------------------------------------------------------------


def demand(**kw: object) -> Demand:
    r = Requester(Clock())
    env = r.demand(**kw)  # type: ignore[arg-type]
    return validate(Demand, env.body_value)


def test_policy_decisions() -> None:
    """REQ-NEG-015, REQ-NEG-016, REQ-NEG-017: quote, counter for what is free, or reject."""
    policy = ListPricePolicy(
        quote_valid_s=120,
        wall_s=600,
        output_bytes=10,
        sla=Sla.model_validate({"availability": "0.99", "credit_share": "0.1"}),
    )
    offer = offer_version()
    d = demand(quantity=2)
    q = policy.decide(d, offer, free_units=3, resources=d.resource_demand(), now=NOW)
    assert q.reject is None and q.counter is None
    assert (q.quantity, q.duration_s, q.start, q.valid_s) == (2, DAY, NOW, 120)
    assert q.limits is not None and q.limits.wall_s == 600
    assert q.limits.cpu_s == 600 * 1 * 2 and q.limits.memory_mib == 2048 * 2
    assert q.limits.output_bytes == 10
    assert q.terms is not None and q.terms.sla is not None
    c = policy.decide(d, offer, free_units=1, resources=d.resource_demand(), now=NOW)
    assert c.counter == "quantity" and c.quantity == 1
    n = policy.decide(d, offer, free_units=0, resources=d.resource_demand(), now=NOW)
    assert n.reject == "CAPACITY_EXHAUSTED" and n.retry_after_s == 60
    strict = ListPricePolicy(counter_quantity=False)
    n = strict.decide(d, offer, free_units=1, resources=d.resource_demand(), now=NOW)
    assert n.reject == "CAPACITY_EXHAUSTED"
    late = demand(start_after=NOW - 100, start_before=NOW - 1)
    assert policy.decide(
        late, offer, free_units=3, resources=late.resource_demand(), now=NOW
    ).reject
    far = demand(start_after=NOW + 40 * DAY, start_before=NOW + 41 * DAY)
    assert (
        policy.decide(far, offer, free_units=3, resources=far.resource_demand(), now=NOW).reject
        == "DEMAND_REJECTED"
    )
    gpu = demand(quantity=1, resources={"accelerators": 1})
    decision = policy.decide(gpu, offer, free_units=3, resources=gpu.resource_demand(), now=NOW)
    assert decision.reject == "DEMAND_REJECTED"  # neither held nor priced
    # a short agreement caps the wall limit at its duration
    short = demand(duration_s=60)
    s = policy.decide(short, offer, free_units=3, resources=short.resource_demand(), now=NOW)
    assert s.limits is not None and s.limits.wall_s == 60


def test_policy_limits_for_units_without_memory() -> None:
    offer = offer_version()
    bare = offer.body.model_copy(update={"unit": Unit(vcpu=0, memory_mib=0, storage_gib=10)})

    v = OfferVersion(
        name=offer.name, serial=1, digest=offer.digest, body=bare, expires=offer.expires
    )
    limits = ListPricePolicy(default_memory_mib=256).limits_for(v, 3, DAY)
    assert limits.memory_mib == 768 and limits.cpu_s == 3600 * 3
    fixed = ListPricePolicy(cpu_s_per_unit=7, memory_mib_per_unit=9).limits_for(v, 2, DAY)
    assert (fixed.cpu_s, fixed.memory_mib) == (14, 18)


def test_priced_demand_keeps_attached_resources() -> None:
    """REQ-NEG-015, REQ-NEG-024: a counter prices its own units plus the attached resources."""
    offer = offer_version()
    d = demand(quantity=1, resources={"vcpu": 2, "storage_gib": 100, "units": 1})
    assert priced_demand(d, 2, offer) == ResourceDemand(units=2, storage_gib=100)
    plain = demand(quantity=2)
    assert priced_demand(plain, 2, offer) == ResourceDemand(units=2)


# --- pure books -----------------------------------------------------------------------------------


def test_negotiation_book_idempotency_ttl() -> None:
    """REQ-NEG-025: a key is remembered for the TTL, then forgotten."""
    book = NegotiationBook(idempotency_ttl_s=100)
    err = CapacityExhaustedError("full", detail={"free": 0})
    book.remember("kid", "key-1", "h1", err, now=0)
    with pytest.raises(CapacityExhaustedError) as info:
        book.recall("kid", "key-1", "h1", now=50)
    assert info.value is not err and info.value.detail == {"free": 0}
    with pytest.raises(IdempotencyConflictError):
        book.recall("kid", "key-1", "h2", now=50)
    assert book.recall("kid", "key-1", "h1", now=100) is None
    book.forget_old(100, retain_s=100)
    assert book.recall("other", "key-1", "h1", now=0) is None


def test_status_shape_normalisation() -> None:
    """REQ-INV-021: terminal statuses get the exit code and reason Table 9-8 allows."""
    assert _status_shape(TaskState.SUCCEEDED, None, None) == (0, None)
    assert _status_shape(TaskState.FAILED, 0, None) == (None, "provider")
    assert _status_shape(TaskState.FAILED, 2, None) == (2, "exit")
    assert _status_shape(TaskState.FAILED, 300, "limit_cpu") == (None, "limit_cpu")
    assert _status_shape(TaskState.CANCELLED, 1, "Bad Reason") == (None, "provider")
    assert _status_shape(TaskState.EXPIRED, None, "deadline") == (None, "deadline")


def test_new_ids_are_opaque_ids() -> None:
    ids = {new_id("quote") for _ in range(100)}
    assert len(ids) == 100
    for i in ids:
        assert 16 <= len(i) <= 64 and i.startswith("quote-")


def test_negotiation_apply_records_history() -> None:
    """REQ-NEG-040: apply changes state only by the table, and records each step."""
    from cid.provider.negotiator import Negotiation

    r = Requester(Clock())
    env = r.demand()
    neg = Negotiation(env.digest(), validate(Demand, env.body_value), env, created=NOW)
    assert neg.deadline() == env.header.exp
    neg.apply(NegEvent.WITHDRAW, now=NOW)
    assert neg.state is NegState.WITHDRAWN and neg.closed_at == NOW
    from cid.errors import IllegalTransitionError

    with pytest.raises(IllegalTransitionError):
        neg.apply(NegEvent.QUOTE, now=NOW)
    assert neg.history == [(NegState.DEMANDED, NegEvent.WITHDRAW, NegState.WITHDRAWN, NOW)]
    assert neg.view(now=NOW)["state"] == "withdrawn"
    assert ex.EPOCH < NOW
    assert Decimal(0) == 0
    with pytest.raises(SchemaError):
        validate(Demand, {})
