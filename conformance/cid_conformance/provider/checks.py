"""Checks of what a provider signs: quotes against demands, agreements against quotes, statuses,
results and receipts against agreements.

Each function returns the problems it finds (an empty list when the object is right),
so that a case can report all of them at once. Models and the cost arithmetic come
from the pure library (:mod:`cid.negotiation`, :mod:`cid.invocation`, :mod:`cid.query`);
the comparisons are the suite's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from cid.errors import CidError
from cid.invocation import Receipt, TaskResult, TaskStatus, Usage, receipt_cost
from cid.model import validate
from cid.negotiation import Agreement, Counter, Quote, Rejection
from cid.query import ResourceDemand, price_demand
from cid.record import OfferBody

from .context import Neg, Provider, random_id_issue

__all__ = [
    "REJECTION_REASONS",
    "STATUS_REASONS",
    "agreement_issues",
    "expected_price",
    "model_issue",
    "quote_issues",
    "receipt_issues",
    "status_issues",
]

REJECTION_REASONS: Final = {
    "CAPACITY_EXHAUSTED",
    "PRICE_ABOVE_LIMIT",
    "QUOTE_EXPIRED",
    "VOUCHER_INVALID",
    "DEMAND_REJECTED",
    "DECLINED",
}
"""[REQ-NEG-017]."""

STATUS_REASONS: Final = {
    "exit",
    "limit_cpu",
    "limit_memory",
    "limit_wall",
    "limit_output",
    "input_fetch",
    "input_digest",
    "image_digest",
    "deadline",
    "requested",
    "provider",
}
"""The reason tokens of [REQ-INV-024]."""

_PINNED: Final = (
    "quote_id",
    "offer",
    "offer_serial",
    "offer_digest",
    "quantity",
    "duration_s",
    "start",
    "price",
    "limits",
    "terms",
)


def model_issue(model: type[Any], value: Any, what: str) -> str | None:
    """None when ``value`` is a valid ``model``, else why not."""
    try:
        validate(model, value, where=what)
    except CidError as e:
        return f"{what} breaks its model: {e.message} (field {e.field})"
    return None


def expected_price(p: Provider, demand: Mapping[str, Any], quantity: int) -> dict[str, Any]:
    """The price §7.6 gives for ``quantity`` units of the demand ([REQ-NEG-015], [REQ-NEG-024])."""
    offer = validate(OfferBody, p.offer_body, where="offer")
    raw = demand.get("resources")
    if raw and quantity == demand["quantity"]:
        resources = validate(ResourceDemand, {**raw, "units": quantity}, where="resources")
    else:
        resources = ResourceDemand(units=quantity)
    cost = price_demand(offer.price, offer.unit, resources, int(demand["duration_s"]))
    return cost.to_value()


def quote_issues(
    p: Provider, neg: Neg, *, counter: bool = False, offer_expiry: int | None = None
) -> list[str]:
    """What is wrong with a quote (or counter) as the answer to ``neg.demand``."""
    assert neg.answer is not None
    env, demand = neg.answer, neg.demand["body"]
    hdr, body = env["header"], env["body"]
    issues: list[str] = []
    bad = model_issue(Counter if counter else Quote, body, "the quote")
    if bad:
        return [bad]
    # REQ-NEG-003, REQ-PRV-010: sub is the offer; serial one above the demand's
    if hdr.get("sub") != p.offer or body["offer"] != p.offer:
        issues.append(f"sub {hdr.get('sub')!r} / offer {body['offer']!r} is not {p.offer}")
    if hdr.get("serial") != 2:
        issues.append(f"serial {hdr.get('serial')}, not 2 (one above the demand's)")
    # REQ-NEG-010, REQ-NEG-014: it answers this demand, on the offer version verified
    if body["demand"] != neg.digest:
        issues.append("demand is not the digest of the demand envelope")
    if body["offer_digest"] != p.offer_digest or body["offer_serial"] != p.offer_serial:
        issues.append(
            f"offer version {body['offer_serial']}/{body['offer_digest']} is not the one "
            f"published ({p.offer_serial}/{p.offer_digest})"
        )
    if not counter:
        for member in ("quantity", "duration_s"):
            if body[member] != demand[member]:
                issues.append(f"{member} {body[member]} is not the demand's {demand[member]}")
        if not demand["start_after"] <= body["start"] <= demand["start_before"]:
            issues.append(f"start {body['start']} is outside the demand's window")
        price = body["price"]
        if price["currency"] != demand["max_price"]["currency"]:
            issues.append(f"price currency {price['currency']} is not max_price's")
        elif _total(price) > _total(demand["max_price"]):
            issues.append(f"price total {price['total']} is above max_price")
    # REQ-NEG-015, REQ-PRV-012: the price §7.6 gives, for price.units = quantity units
    if body["price"].get("units") != body["quantity"]:
        issues.append(f"price.units {body['price'].get('units')} is not quantity")
    try:
        want = expected_price(p, demand, int(body["quantity"]))
    except CidError as e:
        want = {"error": e.message}
    if body["price"] != want:
        issues.append(f"price {body['price']} is not the price of §7.6: {want}")
    # REQ-PRV-013: expiry, envelope exp, id
    if body["expires"] != hdr.get("exp"):
        issues.append(f"expires {body['expires']} is not the envelope's exp {hdr.get('exp')}")
    if offer_expiry is not None and body["expires"] > offer_expiry:
        issues.append(f"expires {body['expires']} is after the offer version's exp {offer_expiry}")
    if body["start"] < hdr.get("nbf", 0):
        issues.append(f"start {body['start']} is before the time the quote was signed")
    issue = random_id_issue(body["quote_id"], "quote_id")
    if issue:
        issues.append(issue)
    return issues


def _total(value: Mapping[str, Any]) -> Decimal:
    return Decimal(str(value["total"]))


def agreement_issues(p: Provider, neg: Neg, requester_kid: str) -> list[str]:
    """What is wrong with the provider-signed agreement ([REQ-NEG-019]..[REQ-NEG-021],
    [REQ-PRV-014], [REQ-PRV-015])."""
    assert neg.agreement is not None and neg.accept is not None and neg.answer is not None
    env, quote = neg.agreement, neg.answer["body"]
    hdr, body = env["header"], env["body"]
    bad = model_issue(Agreement, body, "the agreement")
    if bad:
        return [bad]
    issues: list[str] = []
    for member in _PINNED:
        if body.get(member) != quote.get(member):
            issues.append(f"{member} differs from the quote's: {body.get(member)!r}")
    if body["end"] != body["start"] + body["duration_s"]:
        issues.append(f"end {body['end']} is not start + duration_s")
    if body["expires"] < body["end"]:
        issues.append(f"expires {body['expires']} is before end {body['end']}")
    if hdr.get("exp", 0) < body["end"]:
        issues.append(f"the envelope's exp {hdr.get('exp')} is before end")
    if hdr.get("exp") != body["expires"]:
        issues.append(f"the envelope's exp {hdr.get('exp')} is not expires {body['expires']}")
    if body["expires"] > body["end"] + 7 * 86_400:
        issues.append("expires is more than 7 days after end")
    if hdr.get("exp", 0) - hdr.get("nbf", 0) > 400 * 86_400:
        issues.append("the envelope's validity window is longer than 400 days")
    if body["provider"] != p.namespace:
        issues.append(f"provider {body['provider']!r} is not the namespace {p.namespace}")
    if body["requester"].get("kid") != requester_kid:
        issues.append(f"requester.kid {body['requester'].get('kid')} is not the requester key's")
    if hdr.get("sub") != p.offer:
        issues.append(f"sub {hdr.get('sub')!r} is not the offer")
    if hdr.get("serial") != neg.accept["header"]["serial"] + 1:
        issues.append(f"serial {hdr.get('serial')} is not one above the accept's")
    issue = random_id_issue(body["agreement_id"], "agreement_id")
    if issue:
        issues.append(issue)
    return issues


def rejection_issues(neg: Neg) -> list[str]:
    assert neg.answer is not None
    body = neg.answer["body"]
    bad = model_issue(Rejection, body, "the rejection")
    if bad:
        return [bad]
    issues = []
    if body["demand"] != neg.digest:
        issues.append("the rejection does not name the demand's digest")
    if body["reason"] not in REJECTION_REASONS:
        issues.append(f"reason {body['reason']!r} is not a token of [REQ-NEG-017]")
    if neg.answer["header"].get("serial") != 2:
        issues.append(f"serial {neg.answer['header'].get('serial')}, not 2")
    return issues


def status_issues(value: Mapping[str, Any], task_id: str, neg: Neg) -> list[str]:
    """Table 9-6/9-8 ([REQ-INV-021]), the task id and the agreement."""
    body = value["body"]
    issues = []
    bad = model_issue(TaskStatus, body, "the status")
    if bad:
        issues.append(bad)
    if body.get("task_id") != task_id:
        issues.append(f"task_id {body.get('task_id')!r} is not the task's")
    if "agreement_id" in body and body["agreement_id"] != neg.agreement_id:
        issues.append("agreement_id is not the agreement's")
    if value["header"].get("sub") != neg.terms["offer"]:
        issues.append(f"sub {value['header'].get('sub')!r} is not the agreement's offer")
    return issues


def result_issues(value: Mapping[str, Any], task_id: str, limits: Mapping[str, Any]) -> list[str]:
    body = value["body"]
    bad = model_issue(TaskResult, body, "the result")
    if bad:
        return [bad]
    issues = []
    if body["task_id"] != task_id:
        issues.append("the result names another task")
    total = sum(o["size_bytes"] for o in body.get("outputs", []))
    if total > limits["output_bytes"]:
        issues.append(f"outputs add up to {total} octets, above output_bytes")
    return issues


def receipt_issues(value: Mapping[str, Any], neg: Neg, task_id: str, *, now: int) -> list[str]:
    """[REQ-INV-030]..[REQ-INV-033], [REQ-PRV-040]."""
    hdr, body = value["header"], value["body"]
    bad = model_issue(Receipt, body, "the receipt")
    if bad:
        return [bad]
    agreement = validate(Agreement, neg.terms, where="agreement")
    receipt = validate(Receipt, body, where="receipt")
    issues = []
    if receipt.task_id != task_id:
        issues.append("the receipt names another task")
    if receipt.agreement_id != agreement.agreement_id:
        issues.append("the receipt names another agreement")
    u, lim = receipt.usage, agreement.limits
    if u.cpu_s > lim.cpu_s or u.wall_s > lim.wall_s or u.output_bytes > lim.output_bytes:
        issues.append(f"usage {u.to_value()} is above the limits {lim.to_value()}")
    if u.memory_mib_s > lim.memory_mib * u.wall_s:
        issues.append("usage.memory_mib_s is above memory_mib x wall_s")
    if not agreement.start <= receipt.issued <= agreement.expires:
        issues.append(f"issued {receipt.issued} is outside [start, expires] of the agreement")
    if receipt.issued > now + 300:
        issues.append(f"issued {receipt.issued} is in the future")
    want = receipt_cost(agreement, Usage.model_validate(u.to_value()))
    if receipt.cost != want:
        issues.append(f"cost {receipt.cost.to_value()} is not {want.to_value()} ([REQ-INV-032])")
    if hdr.get("serial") != 1:
        issues.append(f"serial {hdr.get('serial')}, not 1")
    if hdr.get("nbf") != receipt.issued:
        issues.append(f"nbf {hdr.get('nbf')} is not issued {receipt.issued}")
    if hdr.get("exp") != agreement.expires:
        issues.append(f"exp {hdr.get('exp')} is not the agreement's expires {agreement.expires}")
    if hdr.get("sub") != agreement.offer.to_text():
        issues.append("sub is not the agreement's offer")
    return issues
