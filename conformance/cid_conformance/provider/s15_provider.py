"""§15 Provider HTTP binding: routes, media types, errors, and capacity (never oversold)."""

from __future__ import annotations

import asyncio
import secrets
import time

from cid import codec

from ..case import check, check_equal, fail
from ..registry.checks import internals_in, problem_issues
from ..signed import digest_of
from ..wire import JSON, MSGPACK
from .context import ProviderContext, ProviderSection

s = ProviderSection("provider", "15", "Provider HTTP binding")


@s.case(
    1,
    "the zone record names B/v1/negotiate and B/v1/invoke as its endpoints",
    "REQ-PRV-001",
    "REQ-NEG-001",
    writes=True,
)
async def endpoints(ctx: ProviderContext) -> None:
    """... the zone record of its namespace MUST name B/v1/negotiate as its negotiate endpoint and
    B/v1/invoke as its invoke endpoint (§3.6). A requester MUST negotiate only for an offer record
    it has verified (§6.5), with the provider whose namespace governs the offer's name, at the
    negotiate endpoint of that namespace's zone record."""
    p = await ctx.provider()
    base = ctx.options.url
    check_equal(p.negotiate, f"{base}/v1/negotiate", "the zone's negotiate endpoint")
    check_equal(p.invoke, f"{base}/v1/invoke", "the zone's invoke endpoint")


@s.case(2, "a path that matches no route is NOT_FOUND, rule route", "REQ-PRV-001")
async def unknown_route(ctx: ProviderContext) -> None:
    """A path that matches no route MUST be answered with NOT_FOUND (3001, HTTP 404), detail.rule
    route."""
    for path in ("/v1/nothing", "/v1/negotiate", "/v1/invoke/tasks/x/y/z", "/v2/negotiate/demand"):
        reply = await ctx.get(path)
        ctx.expect_error(reply, 3001, rule="route", what=f"GET {path}")
        check(reply.status == 404, f"{reply.brief()}: NOT_FOUND is HTTP 404")


@s.case(3, "a method the table does not give is METHOD_NOT_ALLOWED; GET routes answer HEAD",
        "REQ-PRV-001")  # fmt: skip
async def methods(ctx: ProviderContext) -> None:
    """... and a method the table does not give for a path with METHOD_NOT_ALLOWED (6008, HTTP
    405); a GET route also answers HEAD."""
    digest = digest_of({"header": {"n": secrets.token_hex(6)}, "body": {}})
    for method, path in (
        ("GET", "/v1/negotiate/demand"),
        ("PUT", "/v1/negotiate/accept"),
        ("GET", "/v1/invoke/tasks"),
        ("DELETE", f"/v1/invoke/tasks/{digest}"),
        ("POST", f"/v1/negotiate/{digest}"),
    ):
        reply = await ctx.request(method, path)
        ctx.expect_error(reply, 6008, what=f"{method} {path}")
        check(reply.status == 405, f"{reply.brief()}: METHOD_NOT_ALLOWED is HTTP 405")
    for path in (f"/v1/negotiate/{digest}", f"/v1/invoke/tasks/{digest}"):
        got, head = await ctx.get(path), await ctx.request("HEAD", path)
        check(head.status == got.status, f"HEAD {path} -> {head.status}, GET -> {got.status}")
        check(head.body == b"", f"HEAD {path} answered a body")


@s.case(
    4,
    "bodies in cid+msgpack and the aliases are read; answers follow Accept",
    "REQ-PRV-002",
    writes=True,
)
async def media_types(ctx: ProviderContext) -> None:
    """A request body MUST be one envelope labelled and decoded as [REQ-REG-002] requires for a
    registry ... and a provider MUST choose the encoding of a map or envelope answer from the
    request's Accept header as [REQ-REG-003] requires."""
    p = await ctx.provider()
    for ctype, enc, accept, want in (
        (MSGPACK, "msgpack", MSGPACK, MSGPACK),
        ("application/json", "json", JSON, JSON),
        ("application/x-msgpack", "msgpack", JSON, JSON),
        (JSON, "json", "application/cid+msgpack, application/cid+json;q=0.5", MSGPACK),
    ):
        env = ctx.demand(p)
        reply = await ctx.request(
            "POST",
            "/v1/negotiate/demand",
            body=codec.encode(env, enc),  # type: ignore[arg-type]
            content_type=ctype,
            accept=accept,
        )
        check(reply.status == 200, f"a demand in {ctype}: {reply.brief()}")
        check_equal(reply.media_type, want, f"the answer's media type for Accept {accept}")
        value = reply.value()
        check(
            isinstance(value, dict) and value.get("body", {}).get("demand") == digest_of(env),
            f"the answer to a demand in {ctype} does not name it",
        )
        if reply.encoding is not None:
            check(
                codec.encode(value, reply.encoding) == reply.body,
                f"the {reply.encoding} answer is not canonical",
            )


@s.case(
    5,
    "an unsupported body type is 415, an unsatisfiable Accept 406, an oversized body 413",
    "REQ-PRV-002",
    "REQ-PRV-003",
)
async def media_type_errors(ctx: ProviderContext) -> None:
    """... of at most 262,144 octets (otherwise PAYLOAD_TOO_LARGE, 6002, HTTP 413) ... (as
    [REQ-REG-002] and [REQ-REG-003] require: UNSUPPORTED_MEDIA_TYPE, NOT_ACCEPTABLE)."""
    reply = await ctx.request("POST", "/v1/negotiate/demand", body=b"{}", content_type="text/plain",
                              accept=JSON)  # fmt: skip
    ctx.expect_error(reply, 6007, what="a text/plain body")
    reply = await ctx.request("POST", "/v1/negotiate/demand", body=b"{}", content_type=JSON,
                              accept="text/html")  # fmt: skip
    ctx.expect_error(reply, 6006, what="Accept text/html")
    big = b'{"body":{"x":"' + b"a" * 270_000 + b'"},"header":{}}'
    reply = await ctx.request("POST", "/v1/negotiate/demand", body=big, content_type=JSON,
                              accept=JSON)  # fmt: skip
    ctx.expect_error(reply, 6002, what="a body over 262,144 octets")
    for body in (b"{", b"[]", b'{"header":{},"body":{}}'):
        reply = await ctx.request("POST", "/v1/invoke/tasks", body=body, content_type=JSON,
                                  accept=JSON)  # fmt: skip
        check(
            400 <= reply.status < 500 and reply.code is not None and 1000 <= reply.code < 2000,
            f"a body that is no envelope ({body[:20]!r}): {reply.brief()}",
        )


@s.case(
    6,
    "every error is a problem with the status of Table 10-1; every answer has X-Request-Id",
    "REQ-PRV-003",
    tags=("final",),
)
async def problems(ctx: ProviderContext) -> None:
    """A provider MUST answer every error with the HTTP status that Table 10-1 gives for the
    error's code and an application/problem+json body whose cid member is the wire error ... it
    MUST carry an X-Request-Id header on every response ... and MUST NOT reveal its internals."""
    if not any(r.status >= 400 for r in ctx.seen.replies):
        await ctx.get("/v1/nothing")
    issues = []
    for reply in ctx.seen.replies:
        if not reply.headers.get("X-Request-Id"):
            issues.append(f"{reply.method} {reply.path} -> {reply.status}: no X-Request-Id")
        if reply.status < 400 or reply.method == "HEAD":
            continue
        for issue in problem_issues(reply):
            issues.append(f"{reply.brief()}: {issue}")
        leak = internals_in(reply.body.decode("utf-8", "replace"))
        if leak:
            issues.append(f"{reply.brief()}: reveals internals ({leak!r})")
    check(not issues, f"{len(issues)} answers break the rules; the first: " + "; ".join(issues[:3]))


# --- capacity -----------------------------------------------------------------------------------


@s.case(
    7,
    "an accept beyond the free units is CAPACITY_EXHAUSTED and rejected; withdrawal frees them",
    "REQ-PRV-021",
    "REQ-PRV-023",
    "REQ-NEG-044",
    "REQ-NEG-015",
    "REQ-PRV-011",
    writes=True,
)
async def capacity(ctx: ProviderContext) -> None:
    """A provider MUST reserve an agreement's quantity units ... when it accepts a quote or counter
    ... and MUST NOT let the units reserved at any instant exceed the offer's
    availability.units_total. A quote or counter holds no capacity. An accept that cannot be served
    because the units are taken MUST be answered with CAPACITY_EXHAUSTED (4002, HTTP 409),
    detail.retry_after_s set, and the negotiation moves accepted → rejected with a provider-signed
    rejection, reason CAPACITY_EXHAUSTED, naming the quote. A provider MUST release them when the
    negotiation reaches a terminal state."""
    p = await ctx.provider()
    start, end = ctx.window()
    window = {"start_after": start, "start_before": end, "quantity": p.units_total}
    a, b = await ctx.quote(p, **window), await ctx.quote(p, **window)
    await ctx.accepted(p, a)
    try:
        reply = await ctx.send_accept(b, ctx.accept_env(p, b))
        ctx.expect_error(reply, 4002, what="the accept of a quote whose units were taken")
        retry = (reply.error().get("detail") or {}).get("retry_after_s")
        check(isinstance(retry, int) and retry >= 0, f"detail.retry_after_s {retry!r}")
        view = ctx.expect_ok(await ctx.negotiation(b.digest), what="GET the losing negotiation")
        check_equal(view.get("state"), "rejected", "the losing negotiation's state")
        rejection = view.get("rejection")
        ctx.verify(rejection, "cid.neg.rejection", p, what="the rejection")
        assert isinstance(rejection, dict)
        check_equal(rejection["body"].get("reason"), "CAPACITY_EXHAUSTED", "its reason")
        check_equal(rejection["body"].get("quote_id"), b.quote["quote_id"], "its quote_id")
        check_equal(rejection["body"].get("demand"), b.digest, "its demand")
        one = await ctx.send_demand(ctx.demand(p, **{**window, "quantity": 1}))
        if one.answer is None:
            fail(f"a demand in a full window was not answered: {one.reply.brief()}")
        check(one.typ == "cid.neg.rejection", f"a demand for a full window got {one.typ}")
        check_equal(one.quote.get("reason"), "CAPACITY_EXHAUSTED", "the rejection's reason")
        check(isinstance(one.quote.get("retry_after_s"), int), "the rejection has no retry_after_s")
    finally:
        await ctx.withdraw_quietly(a)
    # the withdrawal released the units: the whole pool can be agreed again
    again = await ctx.agree(p, **window)
    await ctx.withdraw_quietly(again)


@s.case(
    8,
    "of concurrent accepts for the same units exactly as many succeed as the units allow",
    "REQ-PRV-022",
    "REQ-PRV-021",
    writes=True,
)
async def concurrent_accepts(ctx: ProviderContext) -> None:
    """Checking that units are free and reserving them MUST be one atomic step, so that of any
    number of concurrent accepts competing for the same units exactly as many succeed as the units
    allow."""
    p = await ctx.provider()
    start, end = ctx.window()
    n = p.units_total + 2
    quotes = [await ctx.quote(p, start_after=start, start_before=end) for _ in range(n)]
    envs = [ctx.accept_env(p, q) for q in quotes]
    replies = await asyncio.gather(
        *(ctx.send_accept(q, e) for q, e in zip(quotes, envs, strict=True))
    )
    won = [q for q, r in zip(quotes, replies, strict=True) if r.status == 200]
    try:
        for r in replies:
            check(r.status == 200 or r.code == 4002, f"a concurrent accept: {r.brief()}")
        check_equal(len(won), p.units_total, f"accepts that won of {n} for {p.units_total} units")
    finally:
        for q in won:
            await ctx.withdraw_quietly(q)


@s.case(
    9,
    "the published units_free follows the reservations",
    "REQ-PRV-024",
    writes=True,
)
async def units_free(ctx: ProviderContext) -> None:
    """The units_free a provider publishes for an offer (refresh records) SHOULD be the units not
    reserved at the time the record is signed."""
    await ctx.release_all()  # agreements earlier cases could not end
    async with ctx.deal() as (p, neg):
        deadline = time.monotonic() + min(10.0, ctx.options.max_wait_s)
        free = None
        while time.monotonic() < deadline:
            free = await _published_free(ctx, p.offer)
            if free == p.units_total - neg.terms["quantity"]:
                return
            await asyncio.sleep(0.2)
        fail(f"units_free published {free}, expected {p.units_total - neg.terms['quantity']}")


async def _published_free(ctx: ProviderContext, offer: str) -> int | None:
    records, _ = await ctx._resolve(offer, "offer")
    best: tuple[int, int] | None = None
    for r in records:
        if not isinstance(r, dict):
            continue
        body, hdr = r.get("body", {}), r.get("header", {})
        if hdr.get("typ") == "cid.record.refresh":
            free = body.get("units_free")
        else:
            free = (body.get("availability") or {}).get("units_free")
        if isinstance(free, int) and (best is None or hdr.get("serial", 0) > best[0]):
            best = (hdr.get("serial", 0), free)
    return None if best is None else best[1]


@s.case(
    10,
    "nonces in the provider's messages are 128-bit random values, never repeated",
    "REQ-SEC-008",
    tags=("final",),
)
async def provider_nonces(ctx: ProviderContext) -> None:
    """A nonce MUST be unpredictable: at least 128 bits from a cryptographically secure random
    source (22 base64url characters or more)."""
    seen: dict[str, str] = {}
    for what, nonce in ctx.seen.nonces:
        check(len(nonce) >= 22, f"{what} carries the nonce {nonce!r}, shorter than 128 bits")
        check(nonce not in seen, f"{what} repeats the nonce of {seen.get(nonce)}")
        seen[nonce] = what


@s.case(
    11,
    "HEAD of a negotiation and of a task answers as GET does, without a body",
    "REQ-PRV-001",
    writes=True,
)
async def head_routes(ctx: ProviderContext) -> None:
    """... a GET route also answers HEAD."""
    async with ctx.deal() as (p, neg):
        task = await ctx.run(p, neg)
        await ctx.finished(p, task.task_id)
        for path in (
            f"/v1/negotiate/{neg.digest}",
            f"/v1/invoke/tasks/{task.task_id}",
            f"/v1/invoke/tasks/{task.task_id}/result",
            f"/v1/invoke/tasks/{task.task_id}/stdout",
            f"/v1/invoke/agreements/{neg.agreement_id}/receipts",
        ):
            got, head = await ctx.get(path), await ctx.request("HEAD", path, accept=JSON)
            check(got.status == 200, f"GET {path}: {got.brief()}")
            check(head.status == 200, f"HEAD {path} -> {head.status}, GET -> 200")
            check(head.body == b"", f"HEAD {path} answered a body")
            check_equal(head.media_type, got.media_type, f"HEAD {path}'s Content-Type")
