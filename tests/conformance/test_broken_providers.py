"""The suite catches broken providers: each variant of the reference provider breaks one rule.

Every variant is the real reference provider (``cid_provider``, real task processes) with
one part wrapped: an aiohttp middleware that rewrites what the client sees, or a wrapper
around one method of its negotiator, invoker or ledger (instance attributes only, so
that variants can run side by side in one process). For each, the whole provider suite
runs; the test checks that exactly the expected cases fail, that each of them cites the
requirement the variant breaks (or one the same defect breaks with it), that no case
errors, and so that the rest passes.

The cases that wait in real time (a quote's expiry, an agreement's end, a deadline,
limits) run only in the variants that break what they check.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from cid.envelope import Envelope, seal
from cid.errors import KeyUnknownError, SignatureInvalidError
from cid.invocation import TYP_RECEIPT, TaskEvent, task_id_of
from cid.provider.app import INVOKER, NEGOTIATOR
from cid.signing import SigningKey

from .conftest import Middleware, judge_broken, reference_provider, run_suite

pytestmark = pytest.mark.asyncio

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
WAITING = ["provider/8/24", "provider/9/14", "provider/9/22", "provider/9/23"]
"""Cases that wait in real time: run only where a variant breaks what they check."""


@dataclass
class Variant:
    breaks: str
    """The requirement the variant breaks: every failing case must cite it (or one of ``also``)."""
    fails: set[str]
    """Exactly the cases that fail."""
    middlewares: list[Middleware] = field(default_factory=list)
    patch: Callable[[Any], None] | None = None
    also: tuple[str, ...] = ()


# --- building blocks ----------------------------------------------------------------------------


def wrap(obj: Any, name: str, make: Callable[[Any], Any]) -> None:
    """Replace ``obj.name`` (on the instance) by ``make(original)``."""
    setattr(obj, name, make(getattr(obj, name)))


def negotiator(provider: Any) -> Any:
    return provider.app[NEGOTIATOR]


def invoker(provider: Any) -> Any:
    return provider.app[INVOKER]


def lenient(envelope: Envelope, swallow: type[Exception]) -> Envelope:
    """The same envelope, whose verification lets ``swallow`` pass."""

    class Lenient(Envelope):
        def verify(self, keys: Any, **kw: Any) -> None:
            try:
                super().verify(keys, **kw)
            except swallow:
                return

    return Lenient(envelope.header, envelope.header_value, envelope.body_value, envelope.sigs)


def with_header(envelope: Envelope, **changes: Any) -> Envelope:
    """The envelope as the provider reads it, with header members changed (signature intact)."""
    return dataclasses.replace(envelope, header=envelope.header.model_copy(update=changes))


def problem(request: web.Request, code: int, name: str, status: int) -> web.Response:
    """A well-formed problem answer (so that only the rule the variant breaks is broken)."""
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
    err = {"code": code, "name": name, "message": name, "retryable": False}
    body = {
        "cid": err,
        "detail": name,
        "instance": request.path,
        "status": status,
        "title": name,
        "type": f"urn:cid:error:{name}",
        "request_id": request_id,
    }
    return web.Response(
        text=json.dumps(body),
        status=status,
        content_type="application/problem+json",
        headers={"X-Request-Id": request_id},
    )


def _code(response: web.StreamResponse) -> int | None:
    if (
        not isinstance(response, web.Response)
        or response.content_type != "application/problem+json"
    ):
        return None
    try:
        code = json.loads(bytes(response.body or b""))["cid"]["code"]  # type: ignore[arg-type]
    except (ValueError, KeyError, TypeError):
        return None
    return code if isinstance(code, int) else None


# --- the variants -----------------------------------------------------------------------------


def demand_bad_signature(provider: Any) -> None:
    wrap(
        negotiator(provider),
        "demand",
        lambda orig: lambda env: orig(lenient(env, SignatureInvalidError)),
    )


def accept_other_key(provider: Any) -> None:
    wrap(
        negotiator(provider), "accept", lambda orig: lambda env: orig(lenient(env, KeyUnknownError))
    )


def demand_any_audience(provider: Any) -> None:
    neg = negotiator(provider)
    wrap(neg, "demand", lambda orig: lambda env: orig(with_header(env, aud=neg.namespace)))


def accept_rolled_back_serial(provider: Any) -> None:
    n = negotiator(provider)

    def make(orig: Any) -> Any:
        async def accept(env: Envelope) -> Any:
            neg = n.book.by_quote(str(env.body_value.get("quote_id")))
            if neg is not None and env.header.serial <= neg.last_serial:
                env = with_header(env, serial=neg.last_serial + 1)
            return await orig(env)

        return accept

    wrap(n, "accept", make)


def ignore_quote_expiry(provider: Any) -> None:
    n = negotiator(provider)
    n.book.expire_due = lambda now: []

    async def no_expiry(neg: Any, *, now: int) -> None:
        return None

    n._expire_if_due = no_expiry

    def make(orig: Any) -> Any:
        async def accept(env: Envelope) -> Any:
            neg = n.book.by_quote(str(env.body_value.get("quote_id")))
            saved = n.clock
            if neg is not None and neg.quote is not None:
                expires = neg.quote.expires
                n.clock = lambda: min(saved(), expires - 1)
            try:
                return await orig(env)
            finally:
                n.clock = saved

        return accept

    wrap(n, "accept", make)


def oversell(provider: Any) -> None:
    ledger = negotiator(provider).ledger

    def make(orig: Any) -> Any:
        async def reserve(reservation: Any, *, capacity: int) -> None:
            await orig(reservation, capacity=capacity + 1000)

        return reserve

    wrap(ledger, "reserve", make)


def keep_future_units(provider: Any) -> None:
    """Withdrawing from an agreement that has not started keeps its units."""
    n = negotiator(provider)

    def make(orig: Any) -> Any:
        async def release(agreement_id: str) -> None:
            neg = n.book.by_agreement(agreement_id)
            if (
                neg is not None
                and neg.agreement is not None
                and neg.agreement.start > n.clock() + 3600
            ):
                return
            await orig(agreement_id)

        return release

    wrap(n.ledger, "release", make)


def agreement_other_terms(provider: Any) -> None:
    def make(orig: Any) -> Any:
        def agreement(neg: Any, quote: Any, *, now: int) -> Any:
            a = orig(neg, quote, now=now)
            c = a.terms.cancellation.model_copy(update={"fee_share": Decimal("0.5")})
            return a.model_copy(update={"terms": a.terms.model_copy(update={"cancellation": c})})

        return agreement

    wrap(negotiator(provider), "_agreement", make)


def double_price(provider: Any) -> None:
    def make(orig: Any) -> Any:
        def offers(name: Any) -> Any:
            v = orig(name)
            if v is None:
                return v
            price = v.body.price
            items = [i.model_copy(update={"amount": i.amount * 2}) for i in price.items]
            body = v.body.model_copy(update={"price": price.model_copy(update={"items": items})})
            return dataclasses.replace(v, body=body)

        return offers

    wrap(negotiator(provider), "offers", make)


def replayed_tasks(provider: Any) -> None:
    inv = invoker(provider)

    def make(orig: Any) -> Any:
        async def submit(env: Envelope) -> Any:
            known = inv.book.tasks.get(task_id_of(env))
            return known if known is not None else await orig(env)

        return submit

    wrap(inv, "submit", make)


def bigger_limits(provider: Any) -> None:
    inv = invoker(provider)

    def make(orig: Any) -> Any:
        def agreements(agreement_id: str) -> Any:
            agreement, key = orig(agreement_id)
            lim = agreement.limits
            big = lim.model_copy(
                update={k: getattr(lim, k) * 10 for k in ("cpu_s", "memory_mib", "output_bytes")}
            )
            return agreement.model_copy(update={"limits": big}), key

        return agreements

    wrap(inv, "agreements", make)


def ignore_cancel(provider: Any) -> None:
    def make(orig: Any) -> Any:
        async def stop(rec: Any, event: Any, reason: str, *, now: int) -> None:
            if event is TaskEvent.CANCEL and reason == "requested":
                return
            await orig(rec, event, reason, now=now)

        return stop

    wrap(invoker(provider), "_stop", make)


def early_result(provider: Any) -> None:
    inv = invoker(provider)

    def make(orig: Any) -> Any:
        def result(task_id: str) -> Any:
            rec = inv.book.get(task_id)
            return rec if not rec.terminal else orig(task_id)

        return result

    wrap(inv, "result", make)


def _reseal_receipts(
    provider: Any, change: Callable[[dict[str, Any]], dict[str, Any]], key: SigningKey
) -> None:
    book = invoker(provider).book

    def make(orig: Any) -> Any:
        def finalise(rec: Any, outcome: Any, *, now: int) -> None:
            orig(rec, outcome, now=now)
            env = rec.receipt_env
            if env is None:
                return
            h = env.header
            new = seal(change(dict(env.body_value)), typ=TYP_RECEIPT, sub=h.sub, serial=h.serial,
                       key=key, nbf=h.nbf, exp=h.exp)  # fmt: skip
            listed = book.receipts.get(rec.agreement_id, [])
            book.receipts[rec.agreement_id] = [new if r is env else r for r in listed]
            rec.receipt_env = new

        return finalise

    wrap(book, "finalise", make)


def receipts_by_a_stranger(provider: Any) -> None:
    _reseal_receipts(provider, lambda body: body, SigningKey.generate())


def receipt_usage_off(provider: Any) -> None:
    def change(body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "usage": {**body["usage"], "wall_s": body["usage"]["wall_s"] + 1}}

    _reseal_receipts(provider, change, provider.service_key)


def short_status_nonces(provider: Any) -> None:
    """Statuses carry a nonce of 16 characters (96 bits), the same every time."""
    book = invoker(provider).book

    def make(orig: Any) -> Any:
        def sign_status(rec: Any, *, now: int) -> Envelope:
            env = orig(rec, now=now)
            h = env.header
            new = seal(dict(env.body_value), typ=h.typ, sub=h.sub, serial=h.serial,
                       key=provider.service_key, nbf=h.nbf, exp=h.exp,
                       nonce="0123456789abcdef")  # fmt: skip
            rec.statuses[-1] = new
            return new

        return sign_status

    wrap(book, "_sign_status", make)


def rewrite_code(old: int, new: int, name: str, status: int) -> Middleware:
    @web.middleware
    async def mw(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        return problem(request, new, name, status) if _code(response) == old else response

    return mw


@web.middleware
async def replay_status_400(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if _code(response) == 5001:
        response.set_status(400)
    return response


@web.middleware
async def msgpack_label(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if isinstance(response, web.Response) and response.content_type == "application/cid+msgpack":
        response.content_type = "application/msgpack"
    return response


VARIANTS: dict[str, Variant] = {
    "accepts a demand with a bad signature": Variant(
        "REQ-NEG-027", {"provider/8/8"}, patch=demand_bad_signature
    ),
    "accepts an accept signed by another key": Variant(
        "REQ-NEG-006", {"provider/8/20"}, patch=accept_other_key
    ),
    "accepts a demand for another audience": Variant(
        "REQ-NEG-004", {"provider/8/10"}, patch=demand_any_audience
    ),
    "accepts an accept whose serial is not above the quote's": Variant(
        "REQ-NEG-005", {"provider/8/21"}, patch=accept_rolled_back_serial
    ),
    "accepts an expired quote": Variant(
        "REQ-NEG-018", {"provider/8/24"}, patch=ignore_quote_expiry, also=("REQ-NEG-043",)
    ),
    "oversells capacity": Variant(
        "REQ-PRV-021", {"provider/15/7", "provider/15/8"}, patch=oversell
    ),
    "keeps the units of a withdrawn agreement": Variant(
        "REQ-PRV-023", {"provider/15/7"}, patch=keep_future_units
    ),
    "an agreement that does not restate the quote": Variant(
        "REQ-NEG-019", {"provider/8/16"}, patch=agreement_other_terms
    ),
    "quotes a price that is not the offer's": Variant(
        "REQ-NEG-015",
        {"provider/8/1", "provider/8/2", "provider/8/3", "provider/8/4", "provider/8/5"},
        patch=double_price,
        also=("REQ-PRV-012",),
    ),
    "accepts a replayed task": Variant("REQ-INV-005", {"provider/9/8"}, patch=replayed_tasks),
    "admits tasks beyond the agreement's limits": Variant(
        "REQ-INV-012", {"provider/9/15"}, patch=bigger_limits
    ),
    "ignores a cancel": Variant("REQ-INV-022", {"provider/9/18"}, patch=ignore_cancel),
    "answers the result of a running task": Variant(
        "REQ-PRV-035", {"provider/9/21"}, patch=early_result
    ),
    "receipts signed by a key the zone does not name": Variant(
        "REQ-INV-030",
        {"provider/9/2", "provider/9/5", "provider/9/18"},
        patch=receipts_by_a_stranger,
    ),
    "a receipt whose cost is not its usage's": Variant(
        "REQ-INV-032", {"provider/9/2"}, patch=receipt_usage_off
    ),
    "IDEMPOTENCY_CONFLICT answered as NEGOTIATION_FAILED": Variant(
        "REQ-NEG-025",
        {"provider/8/15", "provider/8/22"},
        [rewrite_code(4007, 4000, "NEGOTIATION_FAILED", 409)],
    ),
    "REPLAY_DETECTED with HTTP 400": Variant("REQ-PRV-003", {"provider/15/6"}, [replay_status_400]),
    "predictable nonces in statuses": Variant(
        "REQ-SEC-008", {"provider/15/10"}, patch=short_status_nonces
    ),
    "labels MessagePack application/msgpack": Variant(
        "REQ-PRV-002", {"provider/15/4"}, [msgpack_label]
    ),
}


async def _check(name: str, variant: Variant, tmp: Path) -> list[str]:
    """Run the suite against one broken variant; the problems found with what it reported."""
    async with reference_provider(tmp, middlewares=variant.middlewares, patch=variant.patch) as dep:
        exclude = [a for c in WAITING if c not in variant.fails for a in ("--exclude", c)]
        code, results = await run_suite(dep.args("--strict", "--allow-writes", *exclude))
    problems = judge_broken(
        code, results, breaks=variant.breaks, also=variant.also, fails=variant.fails
    )
    return [f"{name}: {p}" for p in problems]


@pytest.mark.slow
async def test_every_broken_provider_is_caught(tmp_path: Path) -> None:
    """Each variant fails exactly its expected cases, all citing the rule it breaks."""
    assert len(VARIANTS) >= 15
    gate = asyncio.Semaphore(9)

    async def one(i: int, name: str) -> list[str]:
        async with gate:
            folder = tmp_path / f"v{i}"
            folder.mkdir()
            return await _check(name, VARIANTS[name], folder)

    outcomes = await asyncio.gather(*(one(i, n) for i, n in enumerate(VARIANTS)))
    problems = [p for found in outcomes for p in found]
    assert not problems, "\n".join(problems)
