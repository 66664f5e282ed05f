"""Negotiation against the live provider app on loopback (spec sections 8 and 15)."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal
from typing import Any

import pytest

from cid.envelope import Envelope, seal
from cid.errors import (
    AgreementNotFoundError,
    CapacityExhaustedError,
    IdempotencyConflictError,
    IllegalTransitionError,
    KeyUnknownError,
    NegotiationError,
    NotFoundError,
    QuoteExpiredError,
    SchemaError,
    SerialRollbackError,
    VerificationError,
)
from cid.model import validate
from cid.negotiation import (
    ACCEPT_GRACE_S,
    TYP_AGREEMENT,
    TYP_COUNTER,
    TYP_QUOTE,
    TYP_REJECTION,
    Agreement,
    Counter,
    Quote,
    Rejection,
    TaskLimits,
    cancellation_fee,
    check_agreement,
    check_quote,
    parse_message,
    verify_agreement,
)
from cid.provider import ListPricePolicy, MemoryLedger, QuoteDecision, Reservation
from cid.query import price_demand
from cid.signing import SigningKey

from .conftest import DAY, Provider, Requester

pytestmark = pytest.mark.asyncio


def quote_of(env: Envelope) -> Quote:
    body = parse_message(env)
    assert isinstance(body, Quote)
    return body


async def test_full_negotiation(provider: Provider) -> None:
    """REQ-PRV-010, REQ-PRV-014, REQ-PRV-016, REQ-NEG-014, REQ-NEG-019, REQ-NEG-022: the loop."""
    r = provider.requester
    demand_env = r.demand(quantity=2, duration_s=DAY)
    quote_env = await provider.demand(demand_env)
    # the provider signed a quote that answers the demand exactly, priced by spec 7.6
    assert quote_env.typ == TYP_QUOTE
    quote_env.verify(provider.provider_keys, typ=TYP_QUOTE, now=provider.clock())
    assert quote_env.header.serial == 2
    quote = quote_of(quote_env)
    demand = parse_message(demand_env)
    check_quote(demand, demand_env.digest(), quote)  # type: ignore[arg-type]
    offer = provider.offer
    assert quote.offer_digest == offer.digest and quote.offer_serial == offer.serial
    expected = price_demand(offer.body.price, offer.body.unit, demand.resource_demand(), DAY)  # type: ignore[attr-defined]
    assert quote.price == expected
    assert quote.expires == provider.clock() + 300
    status = await provider.call("GET", f"/v1/negotiate/{demand_env.digest()}")
    assert status["state"] == "quoted" and status["deadline"] == quote.expires

    accept_env = r.accept(quote_env)
    agreement_env = await provider.accept(accept_env)
    assert agreement_env.typ == TYP_AGREEMENT
    assert [s.kid for s in agreement_env.sigs] == [provider.service_key.kid]
    agreement = validate(Agreement, agreement_env.body_value)
    check_agreement(quote, agreement)
    assert agreement.requester.kid == r.key.kid
    assert agreement.provider == provider.namespace
    assert agreement.end == agreement.start + DAY and agreement.expires >= agreement.end
    assert agreement_env.header.serial == accept_env.header.serial + 1
    # capacity is held from the accept on (REQ-PRV-021)
    assert provider.ledger.reserved(offer.name, at=agreement.start) == 2
    status = await provider.call("GET", f"/v1/negotiate/{demand_env.digest()}")
    assert status["state"] == "accepted"
    assert status["deadline"] == quote.expires + ACCEPT_GRACE_S

    cosigned = r.countersign(agreement_env)
    answer = await provider.call("POST", "/v1/negotiate/agreement", cosigned)
    assert answer == {
        "state": "agreed",
        "agreement_id": agreement.agreement_id,
        "demand": demand_env.digest(),
    }
    got = verify_agreement(
        cosigned,
        provider_keys=provider.provider_keys,
        requester_key=r.key.public_key,
        now=provider.clock(),
    )
    assert got == agreement
    # repeating the countersigned agreement gets the same answer
    assert await provider.call("POST", "/v1/negotiate/agreement", cosigned) == answer
    status = await provider.call("GET", f"/v1/negotiate/{demand_env.digest()}")
    assert status["state"] == "agreed" and "deadline" not in status
    assert Envelope.from_value(status["agreement"]).digest() == cosigned.digest()
    assert len(status["agreement"]["sigs"]) == 2
    # agreed never expires on its own (REQ-NEG-043)
    provider.clock.advance(10 * DAY)
    status = await provider.call("GET", f"/v1/negotiate/{demand_env.digest()}")
    assert status["state"] == "agreed"


async def test_msgpack_binding(provider: Provider) -> None:
    """REQ-PRV-002: request and response bodies in msgpack as well as JSON."""
    env = provider.requester.demand()
    status, value, headers = await provider.raw(
        "POST", "/v1/negotiate/demand", env, encoding="msgpack"
    )
    assert status == 200 and headers["Content-Type"] == "application/cid+msgpack"
    assert Envelope.from_value(value).typ == TYP_QUOTE


async def test_idempotent_demand_and_accept(provider: Provider) -> None:
    """REQ-NEG-025, REQ-PRV-020: a retried demand or accept gets the same answer, nothing new."""
    r = provider.requester
    demand_env = r.demand(idempotency_key="idem-retry-000000001")
    first = await provider.demand(demand_env)
    # the same body in a new envelope (new nonce, same key) is a retry
    again_env = r.demand(idempotency_key="idem-retry-000000001")
    assert again_env.digest() != demand_env.digest()
    assert (await provider.demand(again_env)).digest() == first.digest()
    assert (await provider.demand(demand_env)).digest() == first.digest()
    assert len(provider.negotiator.book.negotiations) == 1
    with pytest.raises(IdempotencyConflictError):
        await provider.demand(r.demand(idempotency_key="idem-retry-000000001", quantity=2))

    accept_env = r.accept(first, idempotency_key="idem-accept-00000001")
    agreement = await provider.accept(accept_env)
    retried = r.accept(first, idempotency_key="idem-accept-00000001")
    assert (await provider.accept(retried)).digest() == agreement.digest()
    assert (await provider.accept(accept_env)).digest() == agreement.digest()
    assert len(provider.ledger.reservations()) == 1
    # a new key on the same quote is a second accept: illegal once accepted
    with pytest.raises(IllegalTransitionError):
        await provider.accept(r.accept(first))
    # concurrent retries of one accept: one agreement
    r2 = provider.requester
    quote2 = await provider.demand(r2.demand())
    acc = r2.accept(quote2, idempotency_key="idem-accept-00000002")
    results = await asyncio.gather(*(provider.accept(acc) for _ in range(5)))
    assert len({a.digest() for a in results}) == 1
    assert len(provider.ledger.reservations()) == 2


async def test_concurrent_accepts_for_the_last_unit() -> None:
    """REQ-PRV-021, REQ-PRV-022: two accepts for the last free unit: exactly one wins."""
    for _ in range(5):
        p = await Provider(units_total=1).start()
        try:
            a, b = p.requester, p.requester
            qa = await p.demand(a.demand())
            qb = await p.demand(b.demand())
            assert qa.typ == qb.typ == TYP_QUOTE  # quotes hold no capacity
            outcomes = await asyncio.gather(
                p.accept(a.accept(qa)), p.accept(b.accept(qb)), return_exceptions=True
            )
            wins = [o for o in outcomes if isinstance(o, Envelope)]
            losses = [o for o in outcomes if isinstance(o, BaseException)]
            assert len(wins) == 1 and len(losses) == 1
            assert isinstance(losses[0], CapacityExhaustedError)
            assert losses[0].code == 4002 and losses[0].status == 409
            assert p.ledger.peak(p.offer.name) == 1
            # the loser's negotiation was rejected with a signed CAPACITY_EXHAUSTED rejection
            loser = qb if wins[0].body_value["quote_id"] == qa.body_value["quote_id"] else qa
            view = await p.call("GET", f"/v1/negotiate/{loser.body_value['demand']}")
            assert view["state"] == "rejected"
            rejection = Envelope.from_value(view["rejection"])
            rejection.verify(p.provider_keys, typ=TYP_REJECTION, now=p.clock())
            assert rejection.body_value["reason"] == "CAPACITY_EXHAUSTED"
        finally:
            await p.close()


async def test_many_concurrent_accepts_never_oversell() -> None:
    """REQ-PRV-022: twenty accepts of one unit each for a pool of seven: seven agreements."""
    p = await Provider(units_total=7).start()
    try:
        quotes = [await p.demand(p.requester.demand()) for _ in range(20)]
        outcomes = await asyncio.gather(
            *(p.accept(p.requester.accept(q)) for q in quotes), return_exceptions=True
        )
        wins = [o for o in outcomes if isinstance(o, Envelope)]
        assert len(wins) == 7
        assert all(isinstance(o, CapacityExhaustedError) for o in outcomes if o not in wins)
        assert p.ledger.peak(p.offer.name) == 7
    finally:
        await p.close()


async def test_counter_on_quantity_and_price(provider: Provider) -> None:
    """REQ-NEG-016, REQ-PRV-012: fewer units free → counter; price above max_price → counter."""
    r = provider.requester
    counter_env = await provider.demand(r.demand(quantity=5))
    assert counter_env.typ == TYP_COUNTER
    counter = parse_message(counter_env)
    assert isinstance(counter, Counter)
    assert counter.reason == "quantity" and counter.quantity == 3
    assert counter.price.units == 3
    cheap_env = await provider.demand(r.demand(quantity=1, max_total="0.01"))
    assert cheap_env.typ == TYP_COUNTER
    cheap = parse_message(cheap_env)
    assert isinstance(cheap, Counter) and cheap.reason == "price"
    assert cheap.price.total > Decimal("0.01")
    # a counter can be accepted, and the agreement states the counter's terms
    agreement_env = await provider.accept(r.accept(counter_env))
    agreement = validate(Agreement, agreement_env.body_value)
    check_agreement(counter, agreement)
    assert agreement.quantity == 3
    # the resources need more units than demanded: a counter, never a quote (REQ-NEG-015)
    more = await provider.demand(r.demand(quantity=1, resources={"vcpu": 2, "units": 1}))
    assert more.typ == TYP_REJECTION  # all 3 units are held now
    assert more.body_value["reason"] == "CAPACITY_EXHAUSTED"


async def test_resources_needing_more_units_counter() -> None:
    """REQ-NEG-015, REQ-NEG-024: stated resources that need 2 units get a counter for 2."""
    p = await Provider().start()
    try:
        env = await p.demand(p.requester.demand(quantity=1, resources={"vcpu": 2, "units": 1}))
        counter = parse_message(env)
        assert isinstance(counter, Counter)
        assert counter.reason == "quantity" and counter.quantity == 2 and counter.price.units == 2
        # attached storage is priced with the units
        env = await p.demand(p.requester.demand(quantity=1, resources={"storage_gib": 100}))
        quote = quote_of(env)
        assert [i.resource for i in quote.price.items] == ["vcpu", "memory_gib", "storage_gib"]
    finally:
        await p.close()


async def test_rejections(provider: Provider) -> None:
    """REQ-PRV-011, REQ-NEG-013, REQ-NEG-017: stale offer version, currency, vouchers, window."""
    r = provider.requester

    async def rejected(env: Envelope) -> Rejection:
        answer = await provider.demand(env)
        assert answer.typ == TYP_REJECTION
        answer.verify(provider.provider_keys, typ=TYP_REJECTION, now=provider.clock())
        body = parse_message(answer)
        assert isinstance(body, Rejection) and body.demand == env.digest()
        return body

    assert (await rejected(r.demand(offer_serial=2))).reason == "DEMAND_REJECTED"
    usd = r.demand()
    value = dict(usd.body_value, max_price={"currency": "USD", "total": "1000"})
    usd = seal(
        value,
        typ=usd.typ,
        sub=usd.header.sub,
        serial=1,
        key=r.key,
        nbf=provider.clock(),
        exp=provider.clock() + 60,
        aud="ctyun",
    )
    assert (await rejected(usd)).reason == "PRICE_ABOVE_LIMIT"
    now = provider.clock()
    assert (
        await rejected(r.demand(start_after=now - 100, start_before=now - 10))
    ).reason == "DEMAND_REJECTED"
    assert (
        await rejected(r.demand(start_after=now + 400 * DAY, start_before=now + 401 * DAY))
    ).reason == "DEMAND_REJECTED"
    voucher = seal(
        {"amount": "10"},
        typ="cid.voucher",
        sub="tianjin.gov",
        serial=1,
        key=r.key,
        nbf=now,
        exp=now + 60,
    )
    assert (await rejected(r.demand(voucher=voucher.to_value()))).reason == "VOUCHER_INVALID"
    other = Requester(provider.clock, offer="nm.ctyun")
    assert (await rejected(other.demand())).reason == "DEMAND_REJECTED"
    # every rejected negotiation is terminal: an accept of nothing is refused
    status = await provider.call("GET", f"/v1/negotiate/{usd.digest()}")
    assert status["state"] == "rejected"


async def test_quote_expiry_and_accept_deadline(provider: Provider) -> None:
    """REQ-NEG-018, REQ-NEG-043, REQ-PRV-017: quotes expire; an uncountersigned agreement too."""
    r = provider.requester
    quote_env = await provider.demand(r.demand())
    quote = quote_of(quote_env)
    provider.clock.now = quote.expires
    with pytest.raises(QuoteExpiredError):
        await provider.accept(r.accept(quote_env))
    view = await provider.call("GET", f"/v1/negotiate/{quote.demand}")
    assert view["state"] == "expired"
    # accepted but never countersigned: expires 60 s after the quote, capacity released
    quote_env = await provider.demand(r.demand())
    quote = quote_of(quote_env)
    agreement_env = await provider.accept(r.accept(quote_env))
    assert len(provider.ledger.reservations()) == 1
    provider.clock.now = quote.expires + ACCEPT_GRACE_S - 1
    assert (await provider.call("GET", f"/v1/negotiate/{quote.demand}"))["state"] == "accepted"
    provider.clock.now = quote.expires + ACCEPT_GRACE_S
    assert (await provider.call("GET", f"/v1/negotiate/{quote.demand}"))["state"] == "expired"
    assert provider.ledger.reservations() == {}
    with pytest.raises(IllegalTransitionError):
        await provider.call("POST", "/v1/negotiate/agreement", r.countersign(agreement_env))
    # an unanswered... a demand's own deadline is its envelope's exp (for a quoted state, the quote)
    demand_env = r.demand()
    await provider.demand(demand_env)
    provider.clock.advance(10_000)
    await provider.negotiator.sweep()
    assert provider.negotiator.book.negotiations[demand_env.digest()].state == "expired"


async def test_background_sweep_releases_capacity() -> None:
    """REQ-PRV-017: expiry is applied by the provider's clock even when nobody asks."""
    p = await Provider().start()
    try:
        quote_env = await p.demand(p.requester.demand())
        await p.accept(p.requester.accept(quote_env))
        assert p.ledger.reservations()
        p.clock.advance(10_000)
        for _ in range(30):
            if not p.ledger.reservations():
                break
            await asyncio.sleep(0.1)
        assert p.ledger.reservations() == {}
    finally:
        await p.close()


async def test_withdraw(provider: Provider) -> None:
    """REQ-PRV-018, REQ-NEG-023, REQ-NEG-031: withdraw a quote, an agreement (with fee)."""
    r = provider.requester
    quote_env = await provider.demand(r.demand())
    quote = quote_of(quote_env)
    w = r.withdraw(serial=3, quote_id=quote.quote_id)
    answer = await provider.call("POST", "/v1/negotiate/withdraw", w)
    assert answer == {"state": "withdrawn", "demand": quote.demand}
    assert await provider.call("POST", "/v1/negotiate/withdraw", w) == answer  # a repeat
    with pytest.raises(IllegalTransitionError):
        await provider.accept(r.accept(quote_env))

    # an agreement: free before start - notice_s, the fee share afterwards
    flow = await provider.agree(start_after=provider.clock() + 2 * 3600)
    assert provider.ledger.reservations()
    w = r.withdraw(serial=3, agreement_id=flow.agreement.agreement_id)
    with pytest.raises(SerialRollbackError):  # REQ-NEG-005: above the agreement's serial
        await provider.call("POST", "/v1/negotiate/withdraw", w)
    w = r.withdraw(serial=5, agreement_id=flow.agreement.agreement_id)
    answer = await provider.call("POST", "/v1/negotiate/withdraw", w)
    assert answer["state"] == "withdrawn"
    assert answer["cancellation_fee"] == {"currency": "CNY", "total": "0"}
    assert provider.ledger.reservations() == {}

    flow = await provider.agree()
    fee = cancellation_fee(flow.agreement, now=provider.clock())
    assert fee > 0
    w = r.withdraw(serial=5, agreement_id=flow.agreement.agreement_id)
    answer = await provider.call("POST", "/v1/negotiate/withdraw", w)
    assert Decimal(answer["cancellation_fee"]["total"]) == fee
    view = await provider.call("GET", f"/v1/negotiate/{flow.demand_env.digest()}")
    assert view["amount_due"] == answer["cancellation_fee"]
    # accepted but not countersigned: withdraw is not a legal event (Table 8-11)
    quote_env = await provider.demand(r.demand())
    agreement_env = await provider.accept(r.accept(quote_env))
    w = r.withdraw(serial=5, agreement_id=agreement_env.body_value["agreement_id"])
    with pytest.raises(IllegalTransitionError):
        await provider.call("POST", "/v1/negotiate/withdraw", w)


async def test_settle_once(provider: Provider) -> None:
    """REQ-NEG-042: an agreement is settled at most once, and never after a withdrawal."""
    flow = await provider.agree()
    amount = await provider.negotiator.settle(flow.agreement.agreement_id)
    assert amount == flow.agreement.price.total
    assert provider.ledger.reservations() == {}
    with pytest.raises(IllegalTransitionError):
        await provider.negotiator.settle(flow.agreement.agreement_id)
    w = provider.requester.withdraw(serial=5, agreement_id=flow.agreement.agreement_id)
    with pytest.raises(IllegalTransitionError):
        await provider.call("POST", "/v1/negotiate/withdraw", w)
    with pytest.raises(AgreementNotFoundError):
        await provider.negotiator.settle("agr-unknown-000000000")


async def test_refusals(provider: Provider) -> None:
    """REQ-NEG-004, REQ-NEG-006, REQ-NEG-018, REQ-NEG-027: wrong key, audience, references."""
    r = provider.requester
    stranger = SigningKey.from_seed(b"\x05" * 32)
    with pytest.raises(KeyUnknownError):
        await provider.demand(r.demand(key=stranger))
    with pytest.raises(VerificationError) as info:
        await provider.demand(r.demand(aud="ctyunx"))
    assert info.value.detail["rule"] == "audience"
    quote_env = await provider.demand(r.demand())
    with pytest.raises(KeyUnknownError):  # the accept is not by the demand's requester
        await provider.accept(r.accept(quote_env, key=stranger))
    with pytest.raises(VerificationError):
        await provider.accept(r.accept(quote_env, aud="ctyunx"))
    with pytest.raises(SerialRollbackError):
        await provider.accept(r.accept(quote_env, serial=2))
    # an accept that names the quote by another digest (REQ-NEG-018)
    forged = dict(quote_env.to_value())
    forged["body"] = dict(forged["body"], expires=forged["body"]["expires"] + 1)
    with pytest.raises(NegotiationError) as info2:
        await provider.accept(r.accept(Envelope.from_value(forged)))
    assert info2.value.detail["rule"] == "quote_ref"
    unknown = dict(forged, body=dict(forged["body"], quote_id="quote-does-not-exist"))
    with pytest.raises(NegotiationError) as info2:
        await provider.accept(r.accept(Envelope.from_value(unknown)))
    assert info2.value.detail["rule"] == "quote_ref"
    with pytest.raises(SchemaError):  # the wrong message type on a route
        await provider.call("POST", "/v1/negotiate/accept", r.demand())
    with pytest.raises(NotFoundError):
        await provider.call("GET", "/v1/negotiate/" + "A" * 43)
    with pytest.raises(AgreementNotFoundError):
        await provider.call(
            "POST", "/v1/negotiate/withdraw", r.withdraw(serial=9, agreement_id="agr-000000000000x")
        )
    with pytest.raises(NotFoundError):
        await provider.call("POST", "/v1/negotiate/withdraw", r.withdraw(serial=9, demand="A" * 43))


async def test_capacity_returns_after_withdrawal() -> None:
    """REQ-PRV-023: released units can be sold again at once."""
    p = await Provider(units_total=1).start()
    try:
        flow = await p.agree()
        refused = await p.demand(p.requester.demand())
        assert refused.typ == TYP_REJECTION
        assert refused.body_value["reason"] == "CAPACITY_EXHAUSTED"
        assert refused.body_value["retry_after_s"] == 60
        w = p.requester.withdraw(serial=5, agreement_id=flow.agreement.agreement_id)
        await p.call("POST", "/v1/negotiate/withdraw", w)
        again = await p.agree()
        assert again.agreement.quantity == 1
    finally:
        await p.close()


class GatedLedger(MemoryLedger):
    """A ledger whose reservations wait for the test to open a gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def reserve(self, reservation: Reservation, *, capacity: int) -> None:
        self.waiting.set()
        await self.gate.wait()
        await super().reserve(reservation, capacity=capacity)


async def test_expiry_while_reserving_releases_the_units() -> None:
    """REQ-PRV-017, REQ-PRV-023: a negotiation that expires mid-reservation holds nothing."""
    p = Provider()
    ledger = GatedLedger()
    p.ledger = ledger
    p.negotiator.ledger = ledger
    await p.start()
    try:
        quote_env = await p.demand(p.requester.demand())
        quote = quote_of(quote_env)
        accepting = asyncio.create_task(p.accept(p.requester.accept(quote_env)))
        await asyncio.wait_for(ledger.waiting.wait(), timeout=5)
        p.clock.now = quote.expires + ACCEPT_GRACE_S
        assert await p.negotiator.sweep() == [quote.demand]
        ledger.gate.set()
        with pytest.raises(IllegalTransitionError):
            await accepting
        assert ledger.reservations() == {}
        assert p.negotiator.book.negotiations[quote.demand].state == "expired"
    finally:
        await p.close()


class OddPolicy:
    """A policy that answers "quote" but changes the terms, or breaks the rules."""

    def __init__(self, **changes: Any) -> None:
        self.changes = changes

    def decide(self, demand: Any, offer: Any, **kw: Any) -> QuoteDecision:
        base = ListPricePolicy().decide(demand, offer, **kw)
        return dataclasses.replace(base, **self.changes)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [({"duration_s": 7200}, "duration"), ({"quantity": 1}, "quantity"), ({"start": 10**10}, None)],
)
async def test_policy_changes_make_counters(changes: dict[str, Any], reason: str | None) -> None:
    """REQ-NEG-014, REQ-NEG-016: a policy's "quote" that differs from the demand is a counter."""
    p = await Provider(policy=OddPolicy(**changes)).start()  # type: ignore[arg-type]
    try:
        answer = await p.demand(p.requester.demand(quantity=2))
        if reason is None:  # a start far outside the window and beyond 400 days
            assert answer.typ == TYP_REJECTION
        else:
            assert answer.typ == TYP_COUNTER and answer.body_value["reason"] == reason
    finally:
        await p.close()


async def test_policy_producing_an_invalid_quote_is_internal() -> None:
    """REQ-PRV-003: a policy bug is INTERNAL, without details."""
    broken = TaskLimits.model_construct(cpu_s=0, memory_mib=1, wall_s=1, output_bytes=0)
    p = await Provider(policy=OddPolicy(limits=broken)).start()  # type: ignore[arg-type]
    try:
        status, value, _ = await p.raw("POST", "/v1/negotiate/demand", p.requester.demand())
        assert status == 500 and value["cid"]["name"] == "INTERNAL"
    finally:
        await p.close()


async def test_expired_offer_and_forgetting(provider: Provider) -> None:
    """REQ-PRV-011, REQ-PRV-020: an expired offer version is not priced; memory is bounded."""
    p = Provider(idempotency_ttl_s=100)
    await p.start()
    try:
        env = p.requester.demand()
        quote_env = await p.demand(env)
        w = p.requester.withdraw(serial=3, demand=env.digest())
        await p.call("POST", "/v1/negotiate/withdraw", w)
        p.clock.advance(101)
        await p.negotiator.sweep()
        assert env.digest() not in p.negotiator.book.negotiations
        assert p.negotiator.book.by_quote(quote_env.body_value["quote_id"]) is None
        p.offers[p.offer.name] = dataclasses.replace(p.offer, expires=p.clock())
        answer = await p.demand(p.requester.demand())
        assert answer.typ == TYP_REJECTION
        assert answer.body_value["message"] == "the offer has expired"
    finally:
        await p.close()
