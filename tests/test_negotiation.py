"""Negotiation messages, cross-message checks and the state machine (spec section 8)."""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cid import examples as ex
from cid.codec import decode, encode
from cid.envelope import Envelope, seal, sign_record
from cid.errors import (
    CapacityExhaustedError,
    DemandRejectedError,
    ExpiredError,
    IllegalTransitionError,
    KeyUnknownError,
    NegotiationError,
    PriceAboveLimitError,
    QuoteExpiredError,
    SchemaError,
    SignatureInvalidError,
    VerificationError,
    VoucherInvalidError,
)
from cid.identifier import Identifier
from cid.model import WireModel, validate
from cid.negotiation import (
    ACCEPT_GRACE_S,
    MAX_AGREEMENT_S,
    MESSAGE_BODIES,
    TERMINAL_STATES,
    TRANSITIONS,
    TYP_ACCEPT,
    TYP_AGREEMENT,
    TYP_COUNTER,
    TYP_DEMAND,
    TYP_QUOTE,
    TYP_REJECTION,
    TYP_WITHDRAW,
    Accept,
    Agreement,
    Counter,
    Demand,
    NegEvent,
    NegState,
    Quote,
    Rejection,
    Requester,
    TaskLimits,
    Withdraw,
    cancellation_fee,
    check_accept,
    check_agreement,
    check_audience,
    check_quote,
    deadline,
    event_for_typ,
    expire_if_due,
    parse_message,
    transition,
    verify_agreement,
    verify_demand,
)
from cid.query import ResourceDemand, price_demand, round_cost
from cid.signing import SigningKey, b64url_encode

NOW = ex.EPOCH + 60
MONTH_S = 2_628_000
OFFER = "gz.ctyun"


def digest(seed: str) -> str:
    return b64url_encode(hashlib.sha256(seed.encode()).digest())


def roundtrip(model: WireModel) -> None:
    for encoding in ("json", "msgpack"):
        data = encode(model.to_value(), encoding)
        again = validate(type(model), decode(data, encoding))
        assert again == model
        assert encode(again.to_value(), encoding) == data


def reject(model: type[WireModel], value: Any, field: str, rule: str | None = None) -> None:
    with pytest.raises(SchemaError) as info:
        validate(model, value)
    assert info.value.field == field, info.value
    if rule is not None:
        assert info.value.detail["rule"] == rule, info.value


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in changes.items():
        if v is ...:
            out.pop(k, None)
        else:
            out[k] = v
    return out


@dataclass
class Flow:
    """One complete negotiation between a requester and the Guizhou provider."""

    provider: SigningKey
    requester: SigningKey
    offer_env: Envelope
    demand: Demand
    demand_env: Envelope
    quote: Quote
    quote_env: Envelope
    accept: Accept
    agreement: Agreement
    agreement_env: Envelope


def make_flow(quantity: int = 2, max_total: str = "100") -> Flow:
    provider = ex.provider_key()
    requester = SigningKey.from_seed(bytes(range(32)))
    offer = ex.guizhou_offer()
    offer_env = sign_record(
        offer, name=OFFER, serial=4, key=provider, nbf=ex.EPOCH, exp=ex.EPOCH + 86_400
    ).envelope
    demand = Demand(
        offer=Identifier(OFFER),
        offer_serial=4,
        quantity=quantity,
        duration_s=MONTH_S,
        start_after=NOW,
        start_before=NOW + 3600,
        max_price={"currency": "CNY", "total": Decimal(max_total)},  # type: ignore[arg-type]
        idempotency_key="idem-0000000000000001",
        requester_key=requester.public_key,
    )
    demand_env = seal(
        demand,
        typ=TYP_DEMAND,
        sub=OFFER,
        serial=1,
        key=requester,
        nbf=NOW,
        exp=NOW + 600,
        aud="ctyun",
        nonce="nonce-demand-000001",
    )
    price = price_demand(offer.price, offer.unit, ResourceDemand(units=quantity), MONTH_S)
    limits = TaskLimits(cpu_s=3600, memory_mib=2048, wall_s=3600, output_bytes=10**9)
    terms = {
        "cancellation": {"notice_s": 3600, "fee_share": "0.5"},
        "sla": {"availability": "0.999", "credit_share": "0.1"},
    }
    quote = validate(
        Quote,
        {
            "quote_id": "quote-000000000001",
            "demand": demand_env.digest(),
            "offer": OFFER,
            "offer_serial": 4,
            "offer_digest": offer_env.digest(),
            "quantity": quantity,
            "duration_s": MONTH_S,
            "start": NOW + 600,
            "price": price.to_value(),
            "limits": limits.to_value(),
            "terms": terms,
            "expires": NOW + 300,
        },
    )
    quote_env = seal(
        quote, typ=TYP_QUOTE, sub=OFFER, serial=2, key=provider, nbf=NOW, exp=NOW + 300
    )
    accept = Accept(
        quote_id=quote.quote_id, quote=quote_env.digest(), idempotency_key="idem-0000000000000002"
    )
    agreement = validate(
        Agreement,
        {
            "agreement_id": "agree-00000000000001",
            "quote_id": quote.quote_id,
            "provider": "ctyun",
            "requester": {"kid": requester.kid},
            "offer": OFFER,
            "offer_serial": 4,
            "offer_digest": offer_env.digest(),
            "quantity": quantity,
            "duration_s": MONTH_S,
            "start": NOW + 600,
            "end": NOW + 600 + MONTH_S,
            "price": price.to_value(),
            "limits": limits.to_value(),
            "terms": terms,
            "expires": NOW + 600 + MONTH_S + 86_400,
        },
    )
    agreement_env = seal(
        agreement,
        typ=TYP_AGREEMENT,
        sub=OFFER,
        serial=4,
        key=provider,
        nbf=NOW,
        exp=agreement.expires,
    ).add_signature(requester)
    return Flow(
        provider,
        requester,
        offer_env,
        demand,
        demand_env,
        quote,
        quote_env,
        accept,
        agreement,
        agreement_env,
    )


@pytest.fixture
def flow() -> Flow:
    return make_flow()


# --- messages --------------------------------------------------------------------------------


def test_messages_roundtrip(flow: Flow) -> None:
    """REQ-NEG-002: every message round-trips through canonical JSON and msgpack."""
    counter = Counter(**flow.quote.model_dump(), reason="price", message="spot price rose")
    messages: list[WireModel] = [
        flow.demand,
        flow.quote,
        counter,
        flow.accept,
        flow.agreement,
        Rejection(demand=flow.demand_env.digest(), reason="CAPACITY_EXHAUSTED", retry_after_s=60),
        Withdraw(quote_id=flow.quote.quote_id, reason="capacity reassigned"),
    ]
    for m in messages:
        roundtrip(m)
    assert set(MESSAGE_BODIES) == {
        TYP_DEMAND,
        TYP_QUOTE,
        TYP_COUNTER,
        TYP_REJECTION,
        TYP_ACCEPT,
        TYP_AGREEMENT,
        TYP_WITHDRAW,
    }


def test_parse_message_by_typ(flow: Flow) -> None:
    """REQ-NEG-002, REQ-NEG-003: the typ selects the body model; sub is the offer."""
    assert parse_message(flow.demand_env) == flow.demand
    assert parse_message(flow.quote_env) == flow.quote
    assert parse_message(flow.agreement_env) == flow.agreement
    env = seal(
        flow.accept, typ=TYP_ACCEPT, sub=OFFER, serial=3, key=flow.requester, nbf=NOW, exp=NOW + 60
    )
    assert parse_message(env) == flow.accept
    wrong = seal(
        flow.demand,
        typ="cid.record.offer",
        sub=OFFER,
        serial=1,
        key=flow.requester,
        nbf=NOW,
        exp=NOW + 60,
    )
    with pytest.raises(SchemaError) as info:
        parse_message(wrong)
    assert info.value.field == "header.typ"
    other = seal(
        flow.demand,
        typ=TYP_DEMAND,
        sub="nm.ctyun",
        serial=1,
        key=flow.requester,
        nbf=NOW,
        exp=NOW + 60,
    )
    with pytest.raises(SchemaError) as info:
        parse_message(other)
    assert info.value.field == "header.sub"
    bad_body = seal(
        {"offer": OFFER},
        typ=TYP_DEMAND,
        sub=OFFER,
        serial=1,
        key=flow.requester,
        nbf=NOW,
        exp=NOW + 60,
    )
    with pytest.raises(SchemaError) as info:
        parse_message(bad_body)
    assert info.value.field is not None and info.value.field.startswith("body.")


DEMAND = {
    "offer": OFFER,
    "offer_serial": 4,
    "quantity": 1,
    "duration_s": 3600,
    "start_after": 100,
    "start_before": 200,
    "max_price": {"currency": "CNY", "total": "30"},
    "idempotency_key": "idem-0000000000000001",
    "requester_key": SigningKey.from_seed(bytes(range(32))).public_key.to_value(),
}


def demand_rejections(flow_voucher: dict[str, Any]) -> list[tuple[dict[str, Any], str, str | None]]:
    return [
        (with_(DEMAND, start_before=99), "start_before", "start_window"),
        (with_(DEMAND, quantity=0), "quantity", None),
        (with_(DEMAND, quantity=1_000_001), "quantity", None),
        (with_(DEMAND, duration_s=0), "duration_s", None),
        (with_(DEMAND, duration_s=31_536_001), "duration_s", None),
        (with_(DEMAND, offer_serial=0), "offer_serial", None),
        (with_(DEMAND, offer="a..b"), "offer", "EMPTY_LABEL"),
        (
            with_(DEMAND, max_price={"currency": "CNY", "total": 30}),
            "max_price.total",
            "decimal_type",
        ),
        (with_(DEMAND, max_price={"currency": "CNY"}), "max_price.total", "missing"),
        (with_(DEMAND, max_price={"total": "1"}), "max_price.currency", "missing"),
        (with_(DEMAND, idempotency_key="short"), "idempotency_key", None),
        (with_(DEMAND, idempotency_key=...), "idempotency_key", "missing"),
        (with_(DEMAND, requester_key=...), "requester_key", "missing"),
        (with_(DEMAND, requester_key={"alg": "ed25519", "pub": "x"}), "requester_key.pub", None),
        (with_(DEMAND, extra=1), "extra", "extra_forbidden"),
        (with_(DEMAND, voucher={"header": {}}), "voucher", "envelope"),
        (with_(DEMAND, voucher=flow_voucher), "voucher", "voucher_typ"),
        (with_(DEMAND, start_after=-1), "start_after", None),
    ]


def test_demand_rejections(flow: Flow) -> None:
    """REQ-NEG-011..013, REQ-NEG-026: each invalid demand is a SchemaError naming the field."""
    for value, field, rule in demand_rejections(flow.quote_env.to_value()):
        reject(Demand, value, field, rule)
    voucher = seal(
        {"amount": "100"},
        typ="cid.voucher",
        sub="tianjin.gov",
        serial=1,
        key=flow.provider,
        nbf=NOW,
        exp=NOW + 60,
    )
    assert validate(Demand, with_(DEMAND, duration_s=MAX_AGREEMENT_S)).duration_s == 31_536_000
    ok = validate(Demand, with_(DEMAND, voucher=voucher.to_value()))
    roundtrip(ok)
    reject(Demand, with_(DEMAND, resources={"units": 2}), "resources.units", "units")
    reject(Demand, with_(DEMAND, resources={}), "resources", "empty_demand")


def test_verify_demand_with_the_key_it_names(flow: Flow) -> None:
    """REQ-NEG-027, REQ-NEG-004, REQ-NEG-005: a demand is signed by exactly its requester_key."""
    ctyun = Identifier("ctyun")
    assert verify_demand(flow.demand_env, provider=ctyun, now=NOW) == flow.demand
    stranger = SigningKey.from_seed(b"\x07" * 32)

    def sealed(body: Any, *, key: SigningKey = flow.requester, **kw: Any) -> Envelope:
        args: dict[str, Any] = {
            "typ": TYP_DEMAND, "sub": OFFER, "serial": 1, "nbf": NOW, "exp": NOW + 600,
            "aud": "ctyun",
        }  # fmt: skip
        args.update(kw)
        return seal(body, key=key, **args)

    value = flow.demand.to_value()
    # signed by another key than the one named
    with pytest.raises(KeyUnknownError):
        verify_demand(sealed(value, key=stranger), provider=ctyun, now=NOW)
    # a second signature by anyone else
    with pytest.raises(KeyUnknownError):
        verify_demand(flow.demand_env.add_signature(stranger), provider=ctyun, now=NOW)
    # the body names the stranger but the requester signed
    swapped = with_(value, requester_key=stranger.public_key.to_value())
    with pytest.raises(KeyUnknownError):
        verify_demand(sealed(swapped), provider=ctyun, now=NOW)
    for bad, field in (
        (with_(value, requester_key=...), "body.requester_key"),
        (with_(value, requester_key={"alg": "ed25519"}), "body.requester_key.pub"),
        (with_(value, requester_key="key"), "body.requester_key"),
    ):
        with pytest.raises(SchemaError) as info:
            verify_demand(sealed(bad), provider=ctyun, now=NOW)
        assert info.value.field == field, info.value
    with pytest.raises(SchemaError) as info:
        verify_demand(sealed(value, serial=2), provider=ctyun, now=NOW)
    assert info.value.detail["rule"] == "serial"
    with pytest.raises(SchemaError) as info:
        verify_demand(sealed(value, typ=TYP_ACCEPT), provider=ctyun, now=NOW)
    assert info.value.detail["rule"] == "typ"
    with pytest.raises(VerificationError) as info2:
        verify_demand(flow.demand_env, provider=Identifier("ctyunx"), now=NOW)
    assert info2.value.detail["rule"] == "audience"
    with pytest.raises(ExpiredError):
        verify_demand(flow.demand_env, provider=ctyun, now=NOW + 600)
    tampered = Envelope.from_value(with_(flow.demand_env.to_value(), body=with_(value, quantity=3)))
    with pytest.raises(SignatureInvalidError):
        verify_demand(tampered, provider=ctyun, now=NOW)
    with pytest.raises(SchemaError) as info:  # body rules are checked after the signature
        verify_demand(sealed(with_(value, quantity=0)), provider=ctyun, now=NOW)
    assert info.value.field == "body.quantity"


def test_demand_states_resources() -> None:
    """REQ-NEG-024, REQ-CAP-021: a demand prices its units plus the resources it states."""
    plain = validate(Demand, DEMAND)
    assert plain.resource_demand() == ResourceDemand(units=1)
    worked = validate(Demand, with_(DEMAND, resources={"storage_gib": 100, "units": 1}))
    roundtrip(worked)
    assert worked.resource_demand() == ResourceDemand(units=1, storage_gib=100)
    gz = ex.guizhou_offer()
    cost = price_demand(gz.price, gz.unit, worked.resource_demand(), 3 * MONTH_S)
    assert [i.resource for i in cost.items] == ["vcpu", "memory_gib", "storage_gib"]
    assert cost.units == worked.quantity


def test_quote_and_agreement_rejections(flow: Flow) -> None:
    """REQ-NEG-014..023: quotes, counters, agreements, withdrawals and rejections."""
    q = flow.quote.to_value()
    reject(Quote, with_(q, quantity=3), "price.units", "units")
    reject(Quote, with_(q, demand="x"), "demand")
    reject(
        Quote, with_(q, terms={"cancellation": {"fee_share": "2"}}), "terms.cancellation.fee_share"
    )
    reject(Quote, with_(q, terms={}), "terms.cancellation", "missing")
    reject(
        Quote,
        with_(q, limits={"cpu_s": 0, "memory_mib": 1, "wall_s": 1, "output_bytes": 0}),
        "limits.cpu_s",
    )
    reject(Counter, q, "reason", "missing")
    reject(Counter, with_(q, reason="whim"), "reason")
    a = flow.agreement.to_value()
    reject(Agreement, with_(a, end=a["end"] + 1), "end", "end")
    reject(Agreement, with_(a, expires=a["end"] - 1), "expires", "expires")
    reject(Agreement, with_(a, quantity=1), "price.units", "units")
    reject(Agreement, with_(a, provider="other"), "offer", "provider_scope")
    reject(Agreement, with_(a, requester={"kid": "short"}), "requester.kid")
    reject(Agreement, with_(a, requester={"name": "x.y"}), "requester.kid", "missing")
    reject(
        Accept,
        {"quote_id": "quote-000000000001", "quote": digest("q")},
        "idempotency_key",
        "missing",
    )
    reject(Withdraw, {}, "demand", "one_ref")
    reject(Withdraw, {"demand": digest("d"), "quote_id": "quote-000000000001"}, "demand", "one_ref")
    reject(Rejection, {"demand": digest("d"), "reason": "BORED"}, "reason")
    reject(
        Rejection,
        {"demand": digest("d"), "reason": "DECLINED", "retry_after_s": -1},
        "retry_after_s",
    )


@pytest.mark.parametrize(
    ("reason", "error"),
    [
        ("CAPACITY_EXHAUSTED", CapacityExhaustedError),
        ("PRICE_ABOVE_LIMIT", PriceAboveLimitError),
        ("QUOTE_EXPIRED", QuoteExpiredError),
        ("VOUCHER_INVALID", VoucherInvalidError),
        ("DEMAND_REJECTED", DemandRejectedError),
        ("DECLINED", NegotiationError),
    ],
)
def test_rejection_maps_to_error(reason: str, error: type[NegotiationError]) -> None:
    """REQ-NEG-017: a rejection reason is the name of its error."""
    r = Rejection(demand=digest("d"), reason=reason, retry_after_s=5)  # type: ignore[arg-type]
    err = r.to_error()
    assert type(err) is error
    assert err.detail["retry_after_s"] == 5
    if error is not NegotiationError:
        assert err.name == reason
    assert Rejection(demand=digest("d"), reason=reason, message="no").to_error().message == "no"  # type: ignore[arg-type]


# --- cross-message checks --------------------------------------------------------------------


def test_check_quote_accepts_matching_quote(flow: Flow) -> None:
    """REQ-NEG-014: a quote that satisfies the demand passes."""
    check_quote(flow.demand, flow.demand_env.digest(), flow.quote)


@pytest.mark.parametrize(
    ("change", "error", "rule"),
    [
        ({"demand": digest("other")}, NegotiationError, "demand_digest"),
        ({"offer": "nm.ctyun"}, NegotiationError, "offer"),
        ({"offer_serial": 5}, NegotiationError, "offer_serial"),
        ({"duration_s": 1}, NegotiationError, "duration"),
        ({"start": NOW - 1}, NegotiationError, "start_window"),
        ({"start": NOW + 3601}, NegotiationError, "start_window"),
    ],
)
def test_check_quote_mismatch(
    flow: Flow, change: dict[str, Any], error: type[Exception], rule: str
) -> None:
    """REQ-NEG-014: a quote that does not answer the demand exactly is refused."""
    quote = flow.quote.model_copy(update=change)
    with pytest.raises(error) as info:
        check_quote(flow.demand, flow.demand_env.digest(), quote)
    assert info.value.detail["rule"] == rule  # type: ignore[attr-defined]


def test_check_quote_quantity_and_price() -> None:
    """REQ-NEG-014, REQ-NEG-015: quantity must match; price within max_price and currency."""
    f = make_flow(quantity=2, max_total="10")
    with pytest.raises(PriceAboveLimitError) as info:
        check_quote(f.demand, f.demand_env.digest(), f.quote)
    assert info.value.detail["rule"] == "max_price"
    f = make_flow()
    other = f.quote.model_copy(update={"quantity": 3})
    with pytest.raises(NegotiationError) as info2:
        check_quote(f.demand, f.demand_env.digest(), other)
    assert info2.value.detail["rule"] == "quantity"
    usd = f.quote.model_copy(update={"price": f.quote.price.model_copy(update={"currency": "USD"})})
    with pytest.raises(PriceAboveLimitError) as info3:
        check_quote(f.demand, f.demand_env.digest(), usd)
    assert info3.value.detail["rule"] == "currency"


def test_counter_may_differ(flow: Flow) -> None:
    """REQ-NEG-016: a counter may change terms but still names the demand and offer."""
    counter = Counter(
        **flow.quote.model_copy(update={"duration_s": 7}).model_dump(), reason="duration"
    )
    check_quote(flow.demand, flow.demand_env.digest(), counter)
    with pytest.raises(NegotiationError):
        check_quote(flow.demand, digest("x"), counter)


def test_check_audience(flow: Flow) -> None:
    """REQ-NEG-004: the requester's messages are addressed to the provider namespace."""
    check_audience(flow.demand_env, Identifier("ctyun"))
    for env in (
        flow.demand_env,
        seal(
            flow.accept,
            typ=TYP_ACCEPT,
            sub=OFFER,
            serial=3,
            key=flow.requester,
            nbf=NOW,
            exp=NOW + 60,
        ),
    ):
        with pytest.raises(VerificationError) as info:
            check_audience(env, Identifier("other"))
        assert info.value.field == "header.aud"
    with pytest.raises(VerificationError):
        check_audience(flow.quote_env, Identifier("ctyun"))


def test_check_accept(flow: Flow) -> None:
    """REQ-NEG-018: an accept names the quote by id and digest, before it expires."""
    check_accept(flow.quote, flow.quote_env.digest(), flow.accept, now=NOW)
    with pytest.raises(QuoteExpiredError):
        check_accept(flow.quote, flow.quote_env.digest(), flow.accept, now=flow.quote.expires)
    with pytest.raises(NegotiationError) as info:
        check_accept(flow.quote, digest("other"), flow.accept, now=NOW)
    assert info.value.detail["rule"] == "quote_ref"
    other = flow.accept.model_copy(update={"quote_id": "quote-000000000002"})
    with pytest.raises(NegotiationError):
        check_accept(flow.quote, flow.quote_env.digest(), other, now=NOW)


def test_check_agreement(flow: Flow) -> None:
    """REQ-NEG-019: the agreement restates the quote exactly."""
    check_agreement(flow.quote, flow.agreement)
    for field, value in (("start", NOW), ("offer_serial", 9), ("quote_id", "quote-zzzzzzzzzzzz")):
        bad = flow.agreement.model_copy(update={field: value})
        with pytest.raises(NegotiationError) as info:
            check_agreement(flow.quote, bad)
        assert info.value.field == field
        assert info.value.detail["rule"] == "agreement_terms"


def test_verify_agreement_needs_both_parties(flow: Flow) -> None:
    """REQ-NEG-022: an agreement verifies only with both signatures."""
    pk = {flow.provider.kid: flow.provider.public_key}
    got = verify_agreement(
        flow.agreement_env, provider_keys=pk, requester_key=flow.requester.public_key, now=NOW
    )
    assert got == flow.agreement
    roundtrip(got)
    again = Envelope.decode(flow.agreement_env.encode("msgpack"), "msgpack")
    verify_agreement(again, provider_keys=pk, requester_key=flow.requester.public_key, now=NOW)
    one_sig = seal(
        flow.agreement,
        typ=TYP_AGREEMENT,
        sub=OFFER,
        serial=4,
        key=flow.provider,
        nbf=NOW,
        exp=flow.agreement.expires,
    )
    with pytest.raises(SignatureInvalidError):
        verify_agreement(
            one_sig, provider_keys=pk, requester_key=flow.requester.public_key, now=NOW
        )
    stranger = SigningKey.from_seed(b"\x09" * 32)
    with pytest.raises(KeyUnknownError):  # a stranger co-signed instead of the requester
        verify_agreement(
            one_sig.add_signature(stranger),
            provider_keys=pk,
            requester_key=flow.requester.public_key,
            now=NOW,
        )
    with pytest.raises(SignatureInvalidError):
        verify_agreement(
            flow.agreement_env, provider_keys=pk, requester_key=flow.provider.public_key, now=NOW
        )
    # the body names a different requester than the one who signed
    wrong = seal(
        flow.agreement.model_copy(update={"requester": Requester(kid=stranger.kid)}),
        typ=TYP_AGREEMENT,
        sub=OFFER,
        serial=4,
        key=flow.provider,
        nbf=NOW,
        exp=flow.agreement.expires,
    ).add_signature(flow.requester)
    with pytest.raises(SignatureInvalidError) as info:
        verify_agreement(wrong, provider_keys=pk, requester_key=flow.requester.public_key, now=NOW)
    assert info.value.field == "body.requester.kid"
    wrong_sub = seal(
        flow.agreement,
        typ=TYP_AGREEMENT,
        sub="nm.ctyun",
        serial=4,
        key=flow.provider,
        nbf=NOW,
        exp=flow.agreement.expires,
    ).add_signature(flow.requester)
    with pytest.raises(SchemaError):
        verify_agreement(
            wrong_sub, provider_keys=pk, requester_key=flow.requester.public_key, now=NOW
        )
    with pytest.raises(ExpiredError):
        verify_agreement(
            flow.agreement_env,
            provider_keys=pk,
            requester_key=flow.requester.public_key,
            now=flow.agreement.expires,
        )
    with pytest.raises(SignatureInvalidError):  # no signature by any provider key
        verify_agreement(
            flow.agreement_env,
            provider_keys={stranger.kid: stranger.public_key},
            requester_key=flow.provider.public_key,
            now=NOW,
        )
    tampered = Envelope.from_value(
        with_(flow.agreement_env.to_value(), body=with_(flow.agreement_env.body_value, quantity=1))
    )
    with pytest.raises(SignatureInvalidError):
        verify_agreement(
            tampered, provider_keys=pk, requester_key=flow.requester.public_key, now=NOW
        )


def test_cancellation_fee(flow: Flow) -> None:
    """REQ-NEG-031: free before start - notice_s, then fee_share of the exact total."""
    a = flow.agreement
    assert cancellation_fee(a, now=a.start - 3600) == 0
    # 2 units x (5 CNY per vCPU + 1 CNY per GiB x 2 GiB) per month, for the billed time
    billed = a.price.items[0].billed_s
    assert a.price.exact_total() == Fraction(14 * billed, MONTH_S)
    half = round_cost(a.price.exact_total() / 2)
    assert cancellation_fee(a, now=a.start - 3599) == half > 0
    assert cancellation_fee(a, now=a.end) == half


# --- state machine ---------------------------------------------------------------------------

LEGAL = [
    ("demanded", "quote", "quoted"),
    ("demanded", "counter", "countered"),
    ("demanded", "reject", "rejected"),
    ("demanded", "withdraw", "withdrawn"),
    ("demanded", "expire", "expired"),
    ("quoted", "accept", "accepted"),
    ("quoted", "reject", "rejected"),
    ("quoted", "withdraw", "withdrawn"),
    ("quoted", "expire", "expired"),
    ("countered", "accept", "accepted"),
    ("countered", "reject", "rejected"),
    ("countered", "withdraw", "withdrawn"),
    ("countered", "expire", "expired"),
    ("accepted", "agree", "agreed"),
    ("accepted", "reject", "rejected"),
    ("accepted", "expire", "expired"),
    ("agreed", "settle", "settled"),
    ("agreed", "withdraw", "withdrawn"),
]


@pytest.mark.parametrize(("state", "event", "after"), LEGAL)
def test_legal_transitions(state: str, event: str, after: str) -> None:
    """REQ-NEG-041: the transition table of spec 8.4."""
    assert transition(state, event) == after
    assert transition(NegState(state), NegEvent(event)) is NegState(after)


def test_table_is_exactly_the_spec_table() -> None:
    """REQ-NEG-041: nothing more, nothing less."""
    assert {(s.value, e.value, t.value) for (s, e), t in TRANSITIONS.items()} == set(LEGAL)


@pytest.mark.parametrize(
    ("state", "event"),
    [(s, e) for s in NegState for e in NegEvent if (s, e) not in TRANSITIONS],
)
def test_every_illegal_transition_raises(state: NegState, event: NegEvent) -> None:
    """REQ-NEG-040: every pair outside the table is ILLEGAL_TRANSITION."""
    with pytest.raises(IllegalTransitionError) as info:
        transition(state, event)
    assert info.value.detail == {"state": state.value, "event": event.value}
    assert info.value.status == 409


def test_unknown_states_and_events_raise() -> None:
    """REQ-NEG-040: unknown names are illegal too, never a ValueError."""
    with pytest.raises(IllegalTransitionError):
        transition("limbo", "quote")
    with pytest.raises(IllegalTransitionError):
        transition("demanded", "haggle")
    with pytest.raises(IllegalTransitionError):
        deadline("limbo", demand_exp=1)


def test_terminal_states_have_no_exit() -> None:
    """REQ-NEG-042: terminal states are final."""
    assert {s for s in NegState if not any(k[0] is s for k in TRANSITIONS)} == TERMINAL_STATES


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list(NegEvent)), max_size=20))
def test_random_event_sequences_stay_defined(events: list[NegEvent]) -> None:
    """REQ-NEG-040..042: any event sequence either moves by the table or raises; never elsewhere."""
    state = NegState.DEMANDED
    for event in events:
        try:
            nxt = transition(state, event)
        except IllegalTransitionError:
            assert (state, event) not in TRANSITIONS
            continue
        assert nxt in NegState
        assert state not in TERMINAL_STATES
        state = nxt
    assert state in NegState


def test_event_for_typ() -> None:
    """REQ-NEG-002: each message typ after the demand is one event."""
    assert event_for_typ(TYP_QUOTE) is NegEvent.QUOTE
    assert event_for_typ(TYP_AGREEMENT) is NegEvent.AGREE
    assert event_for_typ(TYP_WITHDRAW) is NegEvent.WITHDRAW
    with pytest.raises(IllegalTransitionError):
        event_for_typ(TYP_DEMAND)


def test_deadlines_and_expiry() -> None:
    """REQ-NEG-043: demands expire at header.exp, quotes at expires, accepts after a grace."""
    assert deadline("demanded", demand_exp=500) == 500
    assert deadline("quoted", demand_exp=500, quote_expires=400) == 400
    assert deadline("countered", demand_exp=500, quote_expires=400) == 400
    assert deadline("accepted", demand_exp=500, quote_expires=400) == 400 + ACCEPT_GRACE_S
    for s in ("agreed", "settled", "rejected", "withdrawn", "expired"):
        assert deadline(s, demand_exp=500, quote_expires=400) is None
    for s in ("quoted", "countered", "accepted"):
        with pytest.raises(SchemaError):
            deadline(s, demand_exp=500)
    assert expire_if_due("quoted", now=399, due=400) is NegState.QUOTED
    assert expire_if_due("quoted", now=400, due=400) is NegState.EXPIRED
    assert expire_if_due("agreed", now=10**9, due=400) is NegState.AGREED
    assert expire_if_due("settled", now=10**9, due=400) is NegState.SETTLED
    assert expire_if_due("demanded", now=10**9, due=None) is NegState.DEMANDED


def test_full_happy_path(flow: Flow) -> None:
    """REQ-NEG-001..022: demand → quote → accept → agreement → settled, checked end to end."""
    state = NegState.DEMANDED
    pk = {flow.provider.kid: flow.provider.public_key}
    flow.quote_env.verify(pk, typ=TYP_QUOTE, now=NOW)
    quote = parse_message(flow.quote_env)
    assert isinstance(quote, Quote)
    check_quote(flow.demand, flow.demand_env.digest(), quote)
    state = transition(state, event_for_typ(flow.quote_env.typ))
    check_accept(quote, flow.quote_env.digest(), flow.accept, now=NOW + 10)
    state = transition(state, NegEvent.ACCEPT)
    agreement = verify_agreement(
        flow.agreement_env, provider_keys=pk, requester_key=flow.requester.public_key, now=NOW + 20
    )
    check_agreement(quote, agreement)
    state = transition(state, NegEvent.AGREE)
    assert agreement.offer_digest == flow.offer_env.digest()
    assert transition(state, NegEvent.SETTLE) is NegState.SETTLED
