"""§8 Negotiate: demands, quotes, counters, rejections, accepts, agreements and withdrawals, as a
provider answers them over the binding of §15.3."""

from __future__ import annotations

import secrets
from decimal import Decimal
from fractions import Fraction
from typing import Any

from cid.signing import SigningKey

from ..case import check, check_equal, fail
from ..registry.checks import written
from ..signed import digest_of, sign
from .checks import (
    agreement_issues,
    expected_price,
    quote_issues,
    rejection_issues,
)
from .context import Neg, Provider, ProviderContext, ProviderSection, offer_expiry

s = ProviderSection("provider", "8", "Negotiate")


def _other_currency(currency: str) -> str:
    return "EUR" if currency != "EUR" else "USD"


async def _rejected(ctx: ProviderContext, p: Provider, neg: Neg, reason: str, what: str) -> None:
    """The demand was answered 200 with a provider-signed rejection for ``reason``."""
    if neg.answer is None:
        fail(f"{what}: expected a rejection {reason} (HTTP 200): {neg.reply.brief()}")
    check(
        neg.typ == "cid.neg.rejection",
        f"{what}: expected a rejection {reason}, got {neg.typ}"
        + (f" ({neg.quote.get('reason')})" if neg.typ == "cid.neg.counter" else ""),
    )
    ctx.verify(neg.answer, "cid.neg.rejection", p, what=f"{what}: the rejection")
    issues = rejection_issues(neg)
    check(not issues, f"{what}: " + "; ".join(issues))
    check_equal(neg.quote["reason"], reason, f"{what}: the rejection's reason")


# --- the answer to a demand ---------------------------------------------------------------------


@s.case(
    1,
    "a demand is answered with one provider-signed quote that answers it",
    "REQ-NEG-002",
    "REQ-NEG-003",
    "REQ-NEG-005",
    "REQ-NEG-006",
    "REQ-NEG-010",
    "REQ-NEG-014",
    "REQ-NEG-015",
    "REQ-PRV-010",
    "REQ-PRV-013",
    writes=True,
)
async def quote_answers_demand(ctx: ProviderContext) -> None:
    """... answer 200 with exactly one provider-signed envelope: a quote, a counter or a
    rejection ... Every provider message of a negotiation MUST have sub the offer and a serial one
    greater than the message it answers (2 for the answer to a demand). A quote answers one demand:
    its demand MUST be the digest of that demand's envelope, and offer, offer_serial, quantity and
    duration_s MUST equal the demand's, start MUST lie in the demand's start window ... A quote's
    quote_id MUST contain at least 128 random bits; its expires MUST NOT be later than the offer
    version's effective expiry ..., and its envelope's exp MUST be expires."""
    p = await ctx.provider()
    neg = await ctx.quote(p)
    issues = quote_issues(p, neg, offer_expiry=await offer_expiry(ctx, p))
    check(not issues, "; ".join(issues))


@s.case(
    2,
    "a quote's price is the price of §7.6 for the demand, resources included",
    "REQ-NEG-015",
    "REQ-NEG-024",
    "REQ-PRV-012",
    writes=True,
)
async def quote_price(ctx: ProviderContext) -> None:
    """A provider MUST compute a quote's price as §7.6 requires, from the offer version
    offer_serial / offer_digest names, for the demand to price and duration_s; price.units MUST
    equal quantity ... The demand to price is resources with units = quantity."""
    p = await ctx.provider()
    vcpu = int((p.offer_body.get("unit") or {}).get("vcpu") or 0)
    changes: dict[str, Any] = {"quantity": 2, "duration_s": 7200}
    if vcpu:
        changes["resources"] = {"vcpu": 2 * vcpu}
    neg = await ctx.quote(p, **changes)
    body = neg.quote
    check_equal(body["price"]["units"], 2, "price.units")
    check_equal(body["price"], expected_price(p, neg.demand["body"], 2), "the quote's price")


@s.case(
    3,
    "a demand whose resources need more units than quantity is not quoted",
    "REQ-NEG-015",
    "REQ-PRV-012",
    "REQ-NEG-016",
    writes=True,
)
async def more_units_than_quantity(ctx: ProviderContext) -> None:
    """... when the demand needs more units than quantity the provider MUST counter or reject
    instead of quoting. A counter MUST name the demand and the offer as a quote does ... and MUST
    state the main difference in reason."""
    p = await ctx.provider()
    unit = p.offer_body.get("unit") or {}
    member, per_unit = next(
        ((m, int(unit.get(k) or 0)) for m, k in (("vcpu", "vcpu"), ("memory_mib", "memory_mib"))
         if unit.get(k)),
        ("", 0),
    )  # fmt: skip
    if not per_unit:
        fail("precondition: the offer's unit states neither vcpu nor memory_mib")
    neg = await ctx.send_demand(ctx.demand(p, quantity=1, resources={member: 2 * per_unit}))
    if neg.answer is None:
        fail(f"the demand was not answered: {neg.reply.brief()}")
    check(neg.typ != "cid.neg.quote", "a demand needing 2 units for quantity 1 was quoted")
    if neg.typ == "cid.neg.counter":
        ctx.verify(neg.answer, "cid.neg.counter", p, what="the counter")
        issues = quote_issues(p, neg, counter=True)
        check(not issues, "; ".join(issues))
        check_equal(neg.quote["reason"], "quantity", "the counter's reason")
    else:
        ctx.verify(neg.answer, "cid.neg.rejection", p, what="the rejection")
        check(not rejection_issues(neg), "; ".join(rejection_issues(neg)))


@s.case(
    4,
    "a price above max_price is countered (reason price) or rejected, never quoted",
    "REQ-PRV-012",
    "REQ-NEG-016",
    "REQ-NEG-014",
    writes=True,
)
async def above_max_price(ctx: ProviderContext) -> None:
    """When the total is above max_price.total it MUST NOT send a quote: it answers with a counter
    whose reason is price and whose price is the real price, or with a rejection
    PRICE_ABOVE_LIMIT."""
    p = await ctx.provider()
    limit = {"currency": p.currency, "total": "0"}
    neg = await ctx.send_demand(ctx.demand(p, max_price=limit))
    if neg.answer is None:
        fail(f"the demand was not answered: {neg.reply.brief()}")
    real = expected_price(p, neg.demand["body"], 1)
    if Decimal(real["total"]) == 0:
        fail("precondition: the offer is free; no max_price is below its price")
    check(neg.typ != "cid.neg.quote", "a quote above max_price was sent")
    if neg.typ == "cid.neg.counter":
        ctx.verify(neg.answer, "cid.neg.counter", p, what="the counter")
        issues = quote_issues(p, neg, counter=True)
        check(not issues, "; ".join(issues))
        check_equal(neg.quote["reason"], "price", "the counter's reason")
    else:
        await _rejected(ctx, p, neg, "PRICE_ABOVE_LIMIT", "a price above max_price")


@s.case(
    5,
    "more units than the pool holds: a counter for what is free, or a rejection",
    "REQ-PRV-012",
    "REQ-NEG-016",
    writes=True,
)
async def more_than_pool(ctx: ProviderContext) -> None:
    """When the demand's resources need more units than quantity, or fewer units are free than
    needed, it MUST answer with a counter (reason quantity) or a rejection, never a quote."""
    p = await ctx.provider()
    start, end = ctx.window()
    neg = await ctx.send_demand(
        ctx.demand(p, quantity=p.units_total + 1, start_after=start, start_before=end)
    )
    if neg.answer is None:
        fail(f"the demand was not answered: {neg.reply.brief()}")
    check(neg.typ != "cid.neg.quote", f"{p.units_total + 1} units of {p.units_total} were quoted")
    if neg.typ == "cid.neg.counter":
        ctx.verify(neg.answer, "cid.neg.counter", p, what="the counter")
        issues = quote_issues(p, neg, counter=True)
        check(not issues, "; ".join(issues))
        check_equal(neg.quote["reason"], "quantity", "the counter's reason")
        check(neg.quote["quantity"] <= p.units_total, "the counter offers more than the pool")
    else:
        ctx.verify(neg.answer, "cid.neg.rejection", p, what="the rejection")
        check(not rejection_issues(neg), "; ".join(rejection_issues(neg)))
        check(
            neg.quote["reason"] in ("CAPACITY_EXHAUSTED", "DEMAND_REJECTED"),
            f"reason {neg.quote['reason']}",
        )


@s.case(
    6,
    "stale offer serial, unknown offer, other currency: signed rejections with the right reason",
    "REQ-PRV-011",
    "REQ-NEG-017",
    "REQ-NEG-042",
    writes=True,
)
async def rejections(ctx: ProviderContext) -> None:
    """... MUST answer with a rejection: DEMAND_REJECTED for an offer it does not publish ... or
    when offer_serial is not the serial of that version; PRICE_ABOVE_LIMIT when the offer is priced
    in another currency than max_price. rejected ... terminal: a party MUST answer any later message
    of the negotiation with ILLEGAL_TRANSITION (4003)."""
    p = await ctx.provider()
    stale = await ctx.send_demand(ctx.demand(p, offer_serial=p.offer_serial + 1_000_000))
    await _rejected(ctx, p, stale, "DEMAND_REJECTED", "a stale offer_serial")
    ghost = f"cidconf-none-{secrets.token_hex(4)}.{p.namespace}"
    body = ctx.demand_body(p, offer=ghost)
    env = ctx.sign("cid.neg.demand", ghost, body, serial=1, aud=p.namespace)
    unknown = await ctx.send_demand(env)
    await _rejected(ctx, p, unknown, "DEMAND_REJECTED", "an offer not published")
    other = {"currency": _other_currency(p.currency), "total": "1000000000"}
    fx = await ctx.send_demand(ctx.demand(p, max_price=other))
    await _rejected(ctx, p, fx, "PRICE_ABOVE_LIMIT", "max_price in another currency")
    # a rejected negotiation is terminal
    reply = await ctx.withdraw(p, stale, ctx.withdraw_env(p, stale, demand=stale.digest))
    ctx.expect_error(reply, 4003, what="a withdraw after the rejection")


@s.case(
    7,
    "a voucher that is not a cid.voucher envelope is refused; one not redeemed is rejected",
    "REQ-NEG-013",
    "REQ-PRV-011",
    writes=True,
)
async def vouchers(ctx: ProviderContext) -> None:
    """A voucher MUST be a signed envelope whose typ is cid.voucher (otherwise SCHEMA_VIOLATION,
    rule voucher_typ) ... A provider that does not accept the voucher MUST reject the demand with
    reason VOUCHER_INVALID."""
    p = await ctx.provider()
    bogus = ctx.sign("cid.nothing", p.offer, {"amount": "1"}, serial=1, aud=None)
    reply = (await ctx.send_demand(ctx.demand(p, voucher=bogus))).reply
    ctx.expect_error(reply, 1003, rule="voucher_typ")
    # a voucher signed by the requester itself redeems nothing anywhere
    voucher = ctx.sign("cid.voucher", p.offer, {"amount": "1000"}, serial=1, aud=None)
    neg = await ctx.send_demand(ctx.demand(p, voucher=voucher))
    await _rejected(ctx, p, neg, "VOUCHER_INVALID", "a voucher not redeemed")


# --- what a provider refuses in a demand --------------------------------------------------------


@s.case(
    8,
    "a demand not signed by its requester_key: SIGNATURE_INVALID or KEY_UNKNOWN",
    "REQ-NEG-027",
    "REQ-NEG-006",
    "REQ-PRV-010",
    writes=True,
)
async def demand_signature(ctx: ProviderContext) -> None:
    """A provider MUST verify a demand with requester_key as the only authorised key ... and a
    signature by any other key with KEY_UNKNOWN (2002); its envelope MUST carry exactly one
    signature, made by that key."""
    p = await ctx.provider()
    env = ctx.demand(p)
    sig = env["sigs"][0]["sig"]
    env["sigs"][0]["sig"] = ("B" if sig[0] == "A" else "A") + sig[1:]
    ctx.expect_error((await ctx.send_demand(env)).reply, 2001, what="a tampered signature")
    env = ctx.demand(p)
    env["body"]["quantity"] = 2  # changed after signing
    ctx.expect_error((await ctx.send_demand(env)).reply, 2001, what="a body changed after signing")
    other = SigningKey.generate()
    body = ctx.demand_body(p)
    env = ctx.sign("cid.neg.demand", p.offer, body, serial=1, aud=p.namespace, key=other)
    ctx.expect_error((await ctx.send_demand(env)).reply, 2002, what="signed by another key")
    env = ctx.sign(
        "cid.neg.demand", p.offer, ctx.demand_body(p), serial=1, aud=p.namespace,
        keys=[ctx.key, other],
    )  # fmt: skip
    ctx.expect_error((await ctx.send_demand(env)).reply, 2002, what="a second signature")


@s.case(
    9,
    "a demand without a well-formed requester_key is SCHEMA_VIOLATION at body.requester_key",
    "REQ-NEG-027",
    writes=True,
)
async def demand_requester_key(ctx: ProviderContext) -> None:
    """... it MUST refuse a demand without a well-formed requester_key with SCHEMA_VIOLATION
    (1003), field body.requester_key."""
    p = await ctx.provider()
    for value in (..., {"alg": "ed25519", "pub": "AAAA"}, "not-a-key"):
        env = ctx.sign("cid.neg.demand", p.offer, ctx.demand_body(p, requester_key=value),
                       serial=1, aud=p.namespace)  # fmt: skip
        reply = (await ctx.send_demand(env)).reply
        ctx.expect_error(reply, 1003, what=f"requester_key {value!r}")
        got = reply.field
        check(
            isinstance(got, str) and got.startswith("body.requester_key"),
            f"expected field body.requester_key: {reply.brief()}",
        )


@s.case(
    10,
    "a demand with another or no aud is VERIFICATION_FAILED, rule audience",
    "REQ-NEG-004",
    "REQ-SEC-007",
    "REQ-PRV-010",
    writes=True,
)
async def demand_audience(ctx: ProviderContext) -> None:
    """A demand, accept or requester's withdraw MUST carry aud equal to the provider namespace,
    and a provider MUST refuse such a message with another or no aud with VERIFICATION_FAILED
    (2000), field header.aud, rule audience."""
    p = await ctx.provider()
    for aud in (f"elsewhere-{secrets.token_hex(3)}", None):
        env = ctx.sign("cid.neg.demand", p.offer, ctx.demand_body(p), serial=1, aud=aud)
        reply = (await ctx.send_demand(env)).reply
        ctx.expect_error(reply, 2000, field="header.aud", rule="audience", what=f"aud {aud}")


@s.case(
    11,
    "a demand of another typ, or whose body breaks Table 8-2, is SCHEMA_VIOLATION",
    "REQ-NEG-002",
    "REQ-NEG-011",
    writes=True,
)
async def demand_model(ctx: ProviderContext) -> None:
    """A receiver ... MUST refuse an envelope of any other typ with SCHEMA_VIOLATION (1003), rule
    typ, and MUST refuse a body that breaks its model with SCHEMA_VIOLATION (1003), field the path
    from the envelope (body.<member>…). A demand MUST have the members of Table 8-2."""
    p = await ctx.provider()
    env = ctx.sign("cid.neg.accept", p.offer, ctx.demand_body(p), serial=1, aud=p.namespace)
    ctx.expect_error((await ctx.send_demand(env)).reply, 1003, rule="typ", what="typ accept")
    for changes, where in (
        ({"max_price": ...}, "body.max_price"),
        ({"surplus": 1}, "body.surplus"),
        ({"quantity": 0}, "body.quantity"),
        ({"idempotency_key": "short"}, "body.idempotency_key"),
    ):
        env = ctx.sign("cid.neg.demand", p.offer, ctx.demand_body(p, **changes), serial=1,
                       aud=p.namespace)  # fmt: skip
        reply = (await ctx.send_demand(env)).reply
        ctx.expect_error(reply, 1003, what=str(changes))
        got = reply.field
        check(
            isinstance(got, str) and got.startswith(where),
            f"{changes}: expected field {where}: {reply.brief()}",
        )


@s.case(
    12,
    "a demand whose sub is not its offer is SCHEMA_VIOLATION, rule subject",
    "REQ-NEG-003",
    writes=True,
)
async def demand_subject(ctx: ProviderContext) -> None:
    """The header's sub of every negotiation message MUST be the identifier of the offer ... a
    receiver MUST refuse a message that breaks this with SCHEMA_VIOLATION (1003), field header.sub,
    rule subject."""
    p = await ctx.provider()
    env = ctx.sign("cid.neg.demand", f"other.{p.namespace}", ctx.demand_body(p), serial=1,
                   aud=p.namespace)  # fmt: skip
    reply = (await ctx.send_demand(env)).reply
    ctx.expect_error(reply, 1003, field="header.sub", rule="subject")


@s.case(
    13,
    "a demand with serial other than 1 is refused",
    "REQ-NEG-005",
    "REQ-PRV-010",
    writes=True,
)
async def demand_serial(ctx: ProviderContext) -> None:
    """The demand MUST have serial 1 ... The provider MUST ... check ... its serial 1."""
    p = await ctx.provider()
    env = ctx.sign("cid.neg.demand", p.offer, ctx.demand_body(p), serial=2, aud=p.namespace)
    reply = (await ctx.send_demand(env)).reply
    ctx.expect_error(reply, (1003, 2006))


@s.case(
    14,
    "an empty start window, resources.units other than quantity, a duration over 365 days",
    "REQ-NEG-012",
    "REQ-NEG-024",
    "REQ-NEG-026",
    writes=True,
)
async def demand_rules(ctx: ProviderContext) -> None:
    """start_before MUST be greater than or equal to start_after (otherwise SCHEMA_VIOLATION, field
    start_before, rule start_window); resources.units, if not 0, MUST equal quantity (otherwise
    SCHEMA_VIOLATION, field resources.units, rule units); a negotiated duration_s MUST NOT exceed
    31,536,000 seconds."""
    p = await ctx.provider()
    now = ctx.now()
    for changes, field, rule in (
        ({"start_after": now + 100, "start_before": now + 50}, "start_before", "start_window"),
        ({"quantity": 2, "resources": {"units": 3}}, "resources.units", "units"),
        ({"duration_s": 31_536_001}, "duration_s", None),
    ):
        reply = (await ctx.send_demand(ctx.demand(p, **changes))).reply
        ctx.expect_error(reply, 1003, field=f"body.{field}", rule=rule, what=str(changes))


@s.case(
    15,
    "a repeated demand gets the first answer; its key with another body is IDEMPOTENCY_CONFLICT",
    "REQ-NEG-025",
    "REQ-PRV-020",
    writes=True,
)
async def demand_idempotency(ctx: ProviderContext) -> None:
    """A message repeating a remembered key with the same body MUST get the answer the first one
    got, and MUST NOT create a second negotiation ...; one repeating the key with a different body
    MUST be refused with IDEMPOTENCY_CONFLICT (4007). ... a retry MAY be a new envelope (new nonce,
    iat, exp) with the same body."""
    p = await ctx.provider()
    first = await ctx.quote(p)
    again = await ctx.send_demand(first.demand)
    check(again.answer == first.answer, f"the same envelope again: {again.reply.brief()}")
    body = first.demand["body"]
    retry = await ctx.send_demand(
        ctx.sign("cid.neg.demand", p.offer, body, serial=1, aud=p.namespace)
    )
    check(
        retry.answer == first.answer,
        f"a retry (new envelope, same body) got another answer: {retry.reply.brief()}",
    )
    view = await ctx.negotiation(retry.digest)
    check(
        view.status == 404 or (view.status == 200 and view.value().get("demand") == first.digest),
        f"the retry created a second negotiation: {view.brief()}",
    )
    changed = {**body, "quantity": body["quantity"] + 1}
    conflict = await ctx.send_demand(
        ctx.sign("cid.neg.demand", p.offer, changed, serial=1, aud=p.namespace)
    )
    ctx.expect_error(conflict.reply, 4007)


# --- accept and agreement -----------------------------------------------------------------------


@s.case(
    16,
    "an accept is answered with the agreement: it restates the quote, signed by one service key",
    "REQ-NEG-019",
    "REQ-NEG-020",
    "REQ-NEG-021",
    "REQ-PRV-014",
    "REQ-PRV-015",
    writes=True,
)
async def agreement_terms(ctx: ProviderContext) -> None:
    """... answers 200 with the agreement envelope signed by exactly one of its service keys, with
    serial one greater than the accept's. An agreement MUST restate exactly the quote_id, offer,
    offer_serial, offer_digest, quantity, duration_s, start, price, limits and terms of the quote
    ... end MUST equal start + duration_s and expires MUST NOT be earlier than end ..."""
    async with ctx.deal() as (p, neg):
        issues = agreement_issues(p, neg, ctx.key.kid)
        check(not issues, "; ".join(issues))


@s.case(
    17,
    "the countersigned agreement is agreed; again the same answer; the state shows it",
    "REQ-NEG-022",
    "REQ-PRV-016",
    "REQ-PRV-019",
    "REQ-NEG-041",
    writes=True,
)
async def countersign(ctx: ProviderContext) -> None:
    """It then applies agree ... and answers 200 {"state": "agreed", "agreement_id": …,
    "demand": …}; the same agreement sent again while agreed MUST get the same answer.
    GET /v1/negotiate/{demand} MUST answer with the negotiation's current state and messages."""
    p = await ctx.provider()
    neg = await ctx.quote(p)
    view = ctx.expect_ok(await ctx.negotiation(neg.digest), what="GET the negotiation")
    check_equal(view.get("state"), "quoted", "state after the quote")
    check_equal(view.get("quote"), neg.answer, "the quote the state shows")
    check_equal(view.get("deadline"), neg.quote["expires"], "deadline of quoted")
    check_equal(view.get("requester"), {"kid": ctx.key.kid}, "requester")
    check_equal(view.get("offer"), p.offer, "offer")
    await ctx.accepted(p, neg)
    try:
        view = ctx.expect_ok(await ctx.negotiation(neg.digest), what="GET the negotiation")
        check_equal(view.get("state"), "accepted", "state after the accept")
        check_equal(view.get("agreement"), neg.agreement, "the agreement the state shows")
        reply = await ctx.countersign(neg)
        answer = ctx.expect_ok(reply, what="the countersigned agreement")
        want = {"state": "agreed", "agreement_id": neg.agreement_id, "demand": neg.digest}
        check_equal(answer, want, "the answer to the countersigned agreement")
        again = ctx.expect_ok(await ctx.countersign(neg, neg.cosigned), what="the same again")
        check_equal(again, want, "the answer to the same agreement sent again")
        view = ctx.expect_ok(await ctx.negotiation(neg.digest), what="GET the negotiation")
        check_equal(view.get("state"), "agreed", "state after the countersignature")
        check_equal(view.get("agreement"), neg.cosigned, "the co-signed agreement")
        check("deadline" not in view, "agreed has no deadline, yet the state shows one")
    finally:
        await ctx.withdraw_quietly(neg)


@s.case(
    18,
    "an agreement without both parties' valid signatures is refused",
    "REQ-NEG-022",
    "REQ-PRV-016",
    writes=True,
)
async def countersign_refused(ctx: ProviderContext) -> None:
    """An agreement MUST carry exactly two signatures, one by a service key of the provider
    namespace and one by the requester key named in requester.kid ... MUST refuse an agreement with
    any other number or set of signers with SIGNATURE_INVALID (2001). The provider MUST locate it by
    agreement_id (one it did not issue: AGREEMENT_NOT_FOUND, 4005)."""
    p = await ctx.provider()
    neg = await ctx.accepted(p, await ctx.quote(p))
    try:
        assert neg.agreement is not None
        one = neg.agreement
        reply = await ctx.countersign(neg, one)
        ctx.expect_error(reply, 2001, what="only the provider's signature")
        stranger = ctx.cosign(neg, SigningKey.generate())
        ctx.expect_error(await ctx.countersign(neg, stranger), (2001, 2002),
                         what="signed by another key than the requester's")  # fmt: skip
        good = ctx.cosign(neg)
        bad = {
            **good,
            "sigs": [good["sigs"][0], {**good["sigs"][1], "sig": good["sigs"][0]["sig"]}],
        }
        ctx.expect_error(await ctx.countersign(neg, bad), 2001, what="a bad requester signature")
        three = ctx.cosign(neg)
        three["sigs"] = [
            *three["sigs"],
            *sign(one["header"], one["body"], [SigningKey.generate()])["sigs"],
        ]
        ctx.expect_error(await ctx.countersign(neg, three), (2001, 2002), what="three signatures")
        ghost = dict(one["body"], agreement_id=secrets.token_urlsafe(18))
        env = sign(one["header"], ghost, [ctx.key])
        ctx.expect_error(await ctx.countersign(neg, env), 4005, what="an agreement not issued")
        view = ctx.expect_ok(await ctx.negotiation(neg.digest), what="GET the negotiation")
        check_equal(view.get("state"), "accepted", "state after the refused countersignatures")
    finally:
        await ctx.withdraw_quietly(neg)


@s.case(
    19,
    "an accept naming a quote not issued, or by another digest, is NEGOTIATION_FAILED quote_ref",
    "REQ-NEG-018",
    "REQ-NEG-010",
    "REQ-PRV-014",
    writes=True,
)
async def accept_quote_ref(ctx: ProviderContext) -> None:
    """A provider MUST refuse an accept that names a quote it did not issue in this negotiation, or
    names it by a different digest, with NEGOTIATION_FAILED (4000), rule quote_ref."""
    p = await ctx.provider()
    neg = await ctx.quote(p)
    env = ctx.accept_env(p, neg, quote_id=secrets.token_urlsafe(18))
    ctx.expect_error(await ctx.send_accept(neg, env), 4000, rule="quote_ref", what="unknown id")
    env = ctx.accept_env(p, neg, quote=digest_of(neg.demand))
    ctx.expect_error(await ctx.send_accept(neg, env), 4000, rule="quote_ref", what="other digest")
    other = await ctx.quote(p)
    env = ctx.accept_env(p, neg, quote_id=other.quote["quote_id"])
    ctx.expect_error(
        await ctx.send_accept(neg, env), 4000, rule="quote_ref", what="another negotiation's id"
    )


@s.case(
    20,
    "an accept by another key is KEY_UNKNOWN; with another aud VERIFICATION_FAILED",
    "REQ-NEG-006",
    "REQ-NEG-004",
    "REQ-SEC-007",
    "REQ-PRV-014",
    writes=True,
)
async def accept_key_and_audience(ctx: ProviderContext) -> None:
    """... every message of one negotiation MUST be signed by the same requester key as its demand
    ... A receiver MUST refuse a signature by any other key as §6.5 requires (KEY_UNKNOWN, 2002).
    ... a provider MUST refuse such a message with another or no aud with VERIFICATION_FAILED."""
    p = await ctx.provider()
    neg = await ctx.quote(p)
    try:
        env = ctx.accept_env(p, neg, key=SigningKey.generate())
        ctx.expect_error(await ctx.send_accept(neg, env), 2002, what="accept by another key")
        env = ctx.accept_env(p, neg, aud=f"elsewhere-{secrets.token_hex(3)}")
        ctx.expect_error(
            await ctx.send_accept(neg, env), 2000, field="header.aud", rule="audience", what="aud"
        )
        view = ctx.expect_ok(await ctx.negotiation(neg.digest), what="GET the negotiation")
        check_equal(view.get("state"), "quoted", "state after the refused accepts")
    finally:
        await ctx.release_all()  # what a provider accepted by mistake


@s.case(
    21,
    "an accept whose serial is not above the quote's is SERIAL_ROLLBACK",
    "REQ-NEG-005",
    "REQ-PRV-014",
    writes=True,
)
async def accept_serial(ctx: ProviderContext) -> None:
    """... every later message of the negotiation MUST have a serial greater than that of the
    message it answers; a receiver MUST refuse a message whose serial is not greater than that of
    the last message it accepted in the negotiation with SERIAL_ROLLBACK (2006)."""
    p = await ctx.provider()
    neg = await ctx.quote(p)
    env = ctx.accept_env(p, neg, serial=neg.last_serial)
    ctx.expect_error(await ctx.send_accept(neg, env), 2006)


@s.case(
    22,
    "a repeated accept gets the same agreement; its key with another body is a conflict",
    "REQ-NEG-025",
    "REQ-PRV-020",
    writes=True,
)
async def accept_idempotency(ctx: ProviderContext) -> None:
    """A message repeating a remembered key with the same body MUST get the answer the first one
    got, and MUST NOT create a second negotiation or agreement; one repeating the key with a
    different body MUST be refused with IDEMPOTENCY_CONFLICT (4007)."""
    p = await ctx.provider()
    neg = await ctx.accepted(p, await ctx.quote(p))
    try:
        assert neg.accept is not None
        first = neg.agreement
        again = await ctx.post("/v1/negotiate/accept", neg.accept)
        check(again.status == 200 and again.value() == first, f"the same accept: {again.brief()}")
        body = neg.accept["body"]
        env = ctx.sign("cid.neg.accept", p.offer, body, serial=neg.accept["header"]["serial"],
                       aud=p.namespace)  # fmt: skip
        retry = await ctx.post("/v1/negotiate/accept", env)
        check(
            retry.status == 200 and retry.value() == first,
            f"a retry of the accept (new envelope) got another answer: {retry.brief()}",
        )
        changed = ctx.sign(
            "cid.neg.accept", p.offer, {**body, "quote": digest_of(neg.demand)},
            serial=neg.accept["header"]["serial"], aud=p.namespace,
        )  # fmt: skip
        ctx.expect_error(await ctx.post("/v1/negotiate/accept", changed), 4007)
    finally:
        await ctx.withdraw_quietly(neg)


@s.case(
    23,
    "a second accept (new key) of an accepted or agreed negotiation is ILLEGAL_TRANSITION",
    "REQ-NEG-040",
    "REQ-PRV-014",
    writes=True,
)
async def accept_twice(ctx: ProviderContext) -> None:
    """An event whose (state, event) pair is not in the table MUST be refused with
    ILLEGAL_TRANSITION (4003) and MUST NOT change the state."""
    p = await ctx.provider()
    neg = await ctx.accepted(p, await ctx.quote(p))
    try:
        env = ctx.accept_env(p, neg, serial=neg.last_serial + 1)
        ctx.expect_error(await ctx.post("/v1/negotiate/accept", env), 4003, what="in accepted")
        ctx.expect_ok(await ctx.countersign(neg), what="the countersigned agreement")
        env = ctx.accept_env(p, neg, serial=neg.last_serial + 2)
        ctx.expect_error(await ctx.post("/v1/negotiate/accept", env), 4003, what="in agreed")
        view = ctx.expect_ok(await ctx.negotiation(neg.digest), what="GET the negotiation")
        check_equal(view.get("state"), "agreed", "state after the refused accept")
    finally:
        await ctx.withdraw_quietly(neg)


@s.case(
    24,
    "an accept at or after the quote's expires is QUOTE_EXPIRED and the negotiation expires",
    "REQ-NEG-018",
    "REQ-NEG-043",
    "REQ-NEG-042",
    "REQ-PRV-014",
    "REQ-PRV-004",
    writes=True,
    tags=("late",),
)
async def quote_expiry(ctx: ProviderContext) -> None:
    """A provider MUST refuse with QUOTE_EXPIRED (4001) an accept received at or after the quote's
    expires, by its own clock. ... for quoted and countered, the expires of the quote or counter.
    Before it handles any request, a provider MUST apply every deadline its clock has reached."""
    p = await ctx.provider()
    a, b = await ctx.quote(p), await ctx.quote(p)
    await ctx.sleep_until(max(a.quote["expires"], b.quote["expires"]))
    reply = await ctx.send_accept(a, ctx.accept_env(p, a))
    ctx.expect_error(reply, 4001, what="an accept after expires")
    for neg in (a, b):
        view = ctx.expect_ok(await ctx.negotiation(neg.digest), what="GET the negotiation")
        check_equal(view.get("state"), "expired", "state after the quote's expires")
    reply = await ctx.withdraw(p, b, ctx.withdraw_env(p, b, demand=b.digest))
    ctx.expect_error(reply, 4003, what="a withdraw of an expired negotiation")


@s.case(
    25,
    "a withdrawn demand is terminal; the same withdraw again gets the same answer",
    "REQ-NEG-023",
    "REQ-NEG-042",
    "REQ-PRV-018",
    writes=True,
)
async def withdraw_demand(ctx: ProviderContext) -> None:
    """A requester MAY withdraw its demand before acceptance ... It answers 200 with Table 15-3;
    the same envelope sent again MUST get the same answer. ... terminal: a party MUST NOT leave
    them, and MUST answer any later message of the negotiation with ILLEGAL_TRANSITION (4003)."""
    p = await ctx.provider()
    neg = await ctx.quote(p)
    env = ctx.withdraw_env(p, neg, demand=neg.digest)
    answer = ctx.expect_ok(await ctx.withdraw(p, neg, env), what="the withdraw")
    check_equal(answer, {"state": "withdrawn", "demand": neg.digest}, "the withdraw's answer")
    again = ctx.expect_ok(await ctx.post("/v1/negotiate/withdraw", env), what="the same again")
    check_equal(again, answer, "the answer to the same withdraw again")
    reply = await ctx.send_accept(neg, ctx.accept_env(p, neg, serial=neg.last_serial + 1))
    ctx.expect_error(reply, 4003, what="an accept after the withdrawal")
    by_quote = await ctx.quote(p)
    env = ctx.withdraw_env(p, by_quote, quote_id=by_quote.quote["quote_id"])
    answer = ctx.expect_ok(await ctx.withdraw(p, by_quote, env), what="a withdraw by quote_id")
    check_equal(answer.get("state"), "withdrawn", "state after a withdraw by quote_id")


@s.case(
    26,
    "a withdraw names exactly one thing the provider holds, with the requester's key and aud",
    "REQ-NEG-023",
    "REQ-PRV-018",
    "REQ-SEC-007",
    writes=True,
)
async def withdraw_refused(ctx: ProviderContext) -> None:
    """A withdraw MUST name exactly one of a demand, a quote or counter or an agreement (otherwise
    SCHEMA_VIOLATION, field demand, rule one_ref). The provider MUST locate the negotiation by the
    reference (an agreement id it did not issue: AGREEMENT_NOT_FOUND, 4005; a quote id:
    NEGOTIATION_FAILED, rule quote_ref; a demand digest: NOT_FOUND, 3001), verify the envelope with
    the requester key as the only authorised key, check aud, require a serial greater than that of
    the last message of the negotiation (SERIAL_ROLLBACK, 2006)."""
    p = await ctx.provider()
    neg = await ctx.quote(p)
    both = ctx.withdraw_env(p, neg, demand=neg.digest, quote_id=neg.quote["quote_id"])
    ctx.expect_error(await ctx.withdraw(p, neg, both), 1003, rule="one_ref", what="two refs")
    none = ctx.withdraw_env(p, neg, reason="nothing named")
    ctx.expect_error(await ctx.withdraw(p, neg, none), 1003, rule="one_ref", what="no ref")
    refs: tuple[tuple[dict[str, Any], int], ...] = (
        ({"agreement_id": secrets.token_urlsafe(18)}, 4005),
        ({"quote_id": secrets.token_urlsafe(18)}, 4000),
        ({"demand": digest_of(ctx.demand(p))}, 3001),
    )
    for body, code in refs:
        reply = await ctx.withdraw(p, neg, ctx.withdraw_env(p, neg, **body))
        ctx.expect_error(reply, code, what=f"withdraw {sorted(body)} not held")
    env = ctx.sign("cid.neg.withdraw", p.offer, {"demand": neg.digest}, serial=3,
                   aud=p.namespace, key=SigningKey.generate())  # fmt: skip
    ctx.expect_error(await ctx.withdraw(p, neg, env), 2002, what="withdraw by another key")
    env = ctx.sign("cid.neg.withdraw", p.offer, {"demand": neg.digest}, serial=3,
                   aud=f"elsewhere-{secrets.token_hex(3)}")  # fmt: skip
    ctx.expect_error(await ctx.withdraw(p, neg, env), 2000, rule="audience", what="another aud")
    env = ctx.withdraw_env(p, neg, serial=2, demand=neg.digest)
    ctx.expect_error(await ctx.withdraw(p, neg, env), 2006, what="serial not above the quote's")
    view = ctx.expect_ok(await ctx.negotiation(neg.digest), what="GET the negotiation")
    check_equal(view.get("state"), "quoted", "state after the refused withdrawals")


def _fees(terms: dict[str, Any], times: range) -> set[str]:
    """The cancellation fee of [REQ-NEG-031] for a withdrawal at each time of ``times``."""
    total = Fraction(terms["price"]["total"])
    cancellation = terms["terms"]["cancellation"]
    notice, share = int(cancellation.get("notice_s", 0)), Fraction(cancellation["fee_share"])
    return {"0" if t <= terms["start"] - notice else written(total * share) for t in times}


@s.case(
    27,
    "a withdrawal from an agreement states the cancellation fee of its terms",
    "REQ-NEG-031",
    "REQ-PRV-018",
    writes=True,
)
async def withdraw_agreement(ctx: ProviderContext) -> None:
    """A requester that withdraws from an agreement at a time t ≤ start − notice_s owes nothing;
    withdrawing later, it owes fee_share × the agreement's exact total ... the answer MUST state
    the cancellation fee of [REQ-NEG-031]."""
    p = await ctx.provider()
    for later in (False, True):
        changes: dict[str, Any] = {}
        if not later:
            start, end = ctx.window()
            changes = {"start_after": start, "start_before": end}
        neg = await ctx.agree(p, **changes)
        before = ctx.now()
        reply = await ctx.withdraw(p, neg)
        answer = ctx.expect_ok(reply, what="the withdrawal from the agreement")
        terms = neg.terms
        fees = _fees(terms, range(before - 2, ctx.now() + 3))
        check_equal(answer.get("state"), "withdrawn", "state")
        check_equal(answer.get("agreement_id"), neg.agreement_id, "agreement_id")
        check_equal(answer.get("demand"), neg.digest, "demand")
        fee = answer.get("cancellation_fee") or {}
        check_equal(fee.get("currency"), terms["price"]["currency"], "the fee's currency")
        check(fee.get("total") in fees, f"cancellation fee {fee.get('total')}, expected {fees}")
        view = ctx.expect_ok(await ctx.negotiation(neg.digest), what="GET the negotiation")
        check_equal(view.get("state"), "withdrawn", "state after the withdrawal")
        check_equal(view.get("amount_due"), fee, "amount_due after the withdrawal")


@s.case(
    28,
    "a withdraw in accepted, or a countersignature after a withdrawal, is ILLEGAL_TRANSITION",
    "REQ-NEG-040",
    "REQ-NEG-042",
    "REQ-PRV-016",
    "REQ-PRV-018",
    writes=True,
)
async def illegal_withdraw(ctx: ProviderContext) -> None:
    """(apply withdraw by Table 8-11: in accepted or a terminal state: ILLEGAL_TRANSITION). It then
    applies agree (in any state but accepted: ILLEGAL_TRANSITION)."""
    p = await ctx.provider()
    neg = await ctx.accepted(p, await ctx.quote(p))
    try:
        reply = await ctx.withdraw(p, neg, ctx.withdraw_env(p, neg))
        ctx.expect_error(reply, 4003, what="a withdraw in accepted")
    finally:
        await ctx.withdraw_quietly(neg)
    late = await ctx.accepted(p, await ctx.quote(p))
    cosigned = ctx.cosign(late)
    await ctx.withdraw_quietly(late)  # countersigns and withdraws
    reply = await ctx.post("/v1/negotiate/agreement", cosigned)
    ctx.expect_error(reply, 4003, what="a countersignature after the withdrawal")


@s.case(
    29,
    "an agreement's window fits the 400 days an envelope may be valid, else the demand is rejected",
    "REQ-PRV-013",
    "REQ-NEG-026",
    writes=True,
)
async def long_agreement(ctx: ProviderContext) -> None:
    """A provider MUST answer with a rejection DEMAND_REJECTED a demand whose agreement could not be
    signed with a validity window of at most 400 days from the time of the answer."""
    p = await ctx.provider()
    now = ctx.now()
    neg = await ctx.send_demand(
        ctx.demand(p, start_after=now + 36 * 86_400, start_before=now + 36 * 86_400 + 60,
                   duration_s=31_536_000)
    )  # fmt: skip
    if neg.typ in ("cid.neg.quote", "cid.neg.counter"):
        q = neg.quote
        end = q["start"] + q["duration_s"]
        check(
            end - neg.answer["header"]["nbf"] <= 400 * 86_400,  # type: ignore[index]
            f"a quote for a period ending {end}, beyond 400 days of the answer",
        )
    else:
        await _rejected(ctx, p, neg, "DEMAND_REJECTED", "an agreement past 400 days")


@s.case(
    30,
    "GET of a negotiation the provider does not hold is NOT_FOUND",
    "REQ-PRV-019",
)
async def unknown_negotiation(ctx: ProviderContext) -> None:
    """... and with NOT_FOUND (3001) for a digest that names no negotiation the provider holds."""
    reply = await ctx.negotiation(digest_of({"header": {"n": secrets.token_hex(8)}, "body": {}}))
    ctx.expect_error(reply, 3001)


@s.case(
    31,
    "an accepted negotiation not countersigned within its grace expires and frees its units",
    "REQ-PRV-017",
    "REQ-NEG-043",
    writes=True,
    tags=("last",),
)
async def accepted_grace(ctx: ProviderContext) -> None:
    """A negotiation that stays accepted until its deadline ... without the countersigned agreement
    MUST expire, and its units MUST be released at that time; a countersignature received later
    MUST be refused with ILLEGAL_TRANSITION (4003)."""
    p = await ctx.provider()
    start, end = ctx.window()
    neg = await ctx.quote(p, quantity=p.units_total, start_after=start, start_before=end)
    deadline = int(neg.quote["expires"]) + 60
    ctx.can_wait(deadline)
    await ctx.accepted(p, neg)
    view = ctx.expect_ok(await ctx.negotiation(neg.digest), what="GET the negotiation")
    check_equal(view.get("deadline"), deadline, "the deadline of accepted (expires + 60)")
    await ctx.sleep_until(deadline)
    view = ctx.expect_ok(await ctx.negotiation(neg.digest), what="GET the negotiation")
    check_equal(view.get("state"), "expired", "state after the accepted deadline")
    reply = await ctx.countersign(neg)
    ctx.expect_error(reply, 4003, what="a countersignature after the deadline")
    neg.withdrawn = True
    again = await ctx.accepted(
        p, await ctx.quote(p, quantity=p.units_total, start_after=start, start_before=end)
    )
    await ctx.withdraw_quietly(again)
