"""§12 Registry: HTTP binding, change feed and operations."""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from cid import codec
from cid.envelope import Envelope
from cid.errors import CidError
from cid.feed import chain_step
from cid.identifier import Identifier
from cid.latency import LatencyModel
from cid.model import validate
from cid.signing import b64url_encode

from ..case import Section, check, check_equal, fail, skip
from ..signed import digest_of
from ..spec import find_spec_dir
from ..wire import JSON, MSGPACK, Reply, name_segment, raw_exchange
from . import data
from .checks import internals_in, problem_issues, verify_resolve_answer
from .context import REFERRAL_URL, RegistryContext

s2 = Section("registry", "12.2", "Endpoints")
s3 = Section("registry", "12.3", "Messages, errors and limits")
s4 = Section("registry", "12.4", "Store and write processing")
s5 = Section("registry", "12.5", "Writes")
s6 = Section("registry", "12.6", "Resolve")
s7 = Section("registry", "12.7", "List")
s8 = Section("registry", "12.8", "Search")
s9 = Section("registry", "12.9", "Change feed")
s10 = Section("registry", "12.10", "Snapshot")
s11 = Section("registry", "12.11", "Operations")

_GET_ENDPOINTS = (
    "/v1/names/.",
    "/v1/namespaces/.",
    "/v1/feed",
    "/v1/snapshot",
    "/v1/latency-model",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
)


# --- 12.2 endpoints ----------------------------------------------------------------------


@s2.case(1, "every GET endpoint of Table 12-1 answers GET and HEAD alike", "REQ-REG-001")
async def get_endpoints(ctx: RegistryContext) -> None:
    """A registry MUST serve the endpoints of Table 12-1 ... A GET endpoint also answers HEAD."""
    for path in _GET_ENDPOINTS:
        got = await ctx.get(path)
        check(got.status in (200, 404), f"GET {path}: {got.brief()}")
        if path != "/v1/names/.":
            check(got.status == 200, f"GET {path}: {got.brief()}")
        head = await ctx.request("HEAD", path)
        check(head.status == got.status, f"HEAD {path} -> {head.status}, GET -> {got.status}")
        check(head.body == b"", f"HEAD {path} returned a body of {len(head.body)} octets")


@s2.case(2, "a path not in Table 12-1 is NOT_FOUND with rule route", "REQ-REG-001")
async def unknown_path(ctx: RegistryContext) -> None:
    """A path not in the table MUST be answered with NOT_FOUND (3001), detail.rule route."""
    for path in ("/v1/unknown", "/v2/feed", "/v1/feed/extra", "/"):
        reply = await ctx.get(path)
        ctx.expect_error(reply, 3001, rule="route")
        check(reply.status == 404, f"{reply.brief()}: NOT_FOUND is HTTP 404")


@s2.case(3, "a method the table does not give is METHOD_NOT_ALLOWED", "REQ-REG-001")
async def wrong_method(ctx: RegistryContext) -> None:
    """... and a method the table does not give for a path with METHOD_NOT_ALLOWED (6008)."""
    for method, path in (
        ("DELETE", "/v1/feed"),
        ("PUT", "/v1/records"),
        ("GET", "/v1/records"),
        ("GET", "/v1/records/batch"),
        ("POST", "/v1/snapshot"),
        ("GET", "/v1/search"),
        ("POST", "/healthz"),
        ("DELETE", "/v1/names/."),
    ):
        reply = await ctx.request(method, path)
        ctx.expect_error(reply, 6008)
        check(reply.status == 405, f"{reply.brief()}: METHOD_NOT_ALLOWED is HTTP 405")


# --- 12.3 messages, errors and limits ----------------------------------------------------

_SMALL_QUERY = {"limit": 1, "within": "nothing.cid-conformance.invalid"}


@s3.case(
    1,
    "request bodies in cid+json, cid+msgpack and the aliases are accepted",
    "REQ-REG-002",
    "REQ-ENC-020",
)
async def content_type_aliases(ctx: RegistryContext) -> None:
    """A registry MUST also accept the aliases application/json (JSON), application/msgpack and
    application/x-msgpack (MessagePack); it compares the media type case-insensitively and
    ignores its parameters."""
    for ctype, enc in (
        (JSON, "json"),
        (MSGPACK, "msgpack"),
        ("application/json", "json"),
        ("application/msgpack", "msgpack"),
        ("application/x-msgpack", "msgpack"),
        ("Application/CID+JSON; charset=utf-8", "json"),
    ):
        reply = await ctx.request(
            "POST",
            "/v1/search",
            body=codec.encode(_SMALL_QUERY, enc),  # type: ignore[arg-type]
            content_type=ctype,
            accept=JSON,
        )
        check(reply.status == 200, f"Content-Type {ctype!r}: {reply.brief()}")


@s3.case(
    2,
    "other or missing Content-Type is UNSUPPORTED_MEDIA_TYPE with detail.accepted",
    "REQ-REG-002",
    "REQ-ENC-020",
)
async def content_type_refused(ctx: RegistryContext) -> None:
    """It MUST refuse any other media type, or a missing Content-Type, with
    UNSUPPORTED_MEDIA_TYPE (6007, HTTP 415), detail.accepted listing the media types it accepts."""
    body = codec.encode_json(_SMALL_QUERY)
    for ctype in ("text/plain", "application/xml", "application/cid+cbor", None):
        reply = await ctx.request("POST", "/v1/search", body=body, content_type=ctype)
        ctx.expect_error(reply, 6007)
        check(reply.status == 415, f"{reply.brief()}: UNSUPPORTED_MEDIA_TYPE is HTTP 415")
        accepted = (reply.error().get("detail") or {}).get("accepted")
        check(
            isinstance(accepted, list) and JSON in accepted and MSGPACK in accepted,
            f"detail.accepted {accepted!r} does not list {JSON} and {MSGPACK}",
        )


_ACCEPT_CASES = (
    (None, "json"),
    ("", "json"),
    (JSON, "json"),
    (MSGPACK, "msgpack"),
    ("application/json", "json"),
    ("application/msgpack", "msgpack"),
    ("application/x-msgpack", "msgpack"),
    ("*/*", "json"),
    ("application/*", "json"),
    ("application/json;q=0.5, application/cid+msgpack;q=0.1", "json"),
    ("*/*, application/cid+msgpack", "msgpack"),
    ("application/cid+msgpack;q=0.4, application/cid+json;q=0.9", "json"),
    ("application/cid+json;q=0, application/cid+msgpack", "msgpack"),
    ("text/html, application/cid+msgpack;q=0.2", "msgpack"),
    ("application/cid+msgpack, application/cid+json", "msgpack"),
)


@s3.case(
    3,
    "the response encoding follows Accept, labelled without parameters, Vary: Accept",
    "REQ-REG-003",
    "REQ-ENC-020",
)
async def accept_negotiation(ctx: RegistryContext) -> None:
    """A registry MUST choose the encoding of a response from the request's Accept header ... A
    negotiated response MUST be labelled application/cid+json or application/cid+msgpack (without
    parameters) and carry Vary: Accept."""
    for accept, want in _ACCEPT_CASES:
        headers = {} if accept is None else {"Accept": accept}
        reply = await ctx.get("/v1/feed", query={"limit": "1"}, headers=headers)
        check(reply.status == 200, f"Accept {accept!r}: {reply.brief()}")
        ctype = reply.headers.get("Content-Type", "")
        expected = JSON if want == "json" else MSGPACK
        check(
            ctype == expected, f"Accept {accept!r}: Content-Type {ctype!r}, expected {expected!r}"
        )
        vary = [v.strip().lower() for v in reply.headers.get("Vary", "").split(",")]
        check(
            "accept" in vary, f"Accept {accept!r}: no `Vary: Accept` ({reply.headers.get('Vary')})"
        )


@s3.case(4, "no acceptable encoding is NOT_ACCEPTABLE with detail.offered", "REQ-REG-003")
async def not_acceptable(ctx: RegistryContext) -> None:
    """When no listed range names an encoding, it MUST answer NOT_ACCEPTABLE (6006, HTTP 406),
    detail.offered listing application/cid+json and application/cid+msgpack."""
    for accept in ("text/html", "application/xml, text/*", "application/cid+json;q=0"):
        reply = await ctx.get("/v1/feed", headers={"Accept": accept})
        ctx.expect_error(reply, 6006)
        check(reply.status == 406, f"{reply.brief()}: NOT_ACCEPTABLE is HTTP 406")
        offered = (reply.error().get("detail") or {}).get("offered")
        check(
            isinstance(offered, list) and set(offered) == {JSON, MSGPACK},
            f"detail.offered is {offered!r}",
        )


@s3.case(5, "Accept is decided before the request body is read", "REQ-REG-003")
async def accept_before_body(ctx: RegistryContext) -> None:
    """A registry MUST choose the encoding of a response ... before it reads the request body."""
    reply = await ctx.request(
        "POST", "/v1/search", body=b"\xff\x00 not a body", content_type=JSON, accept="text/html"
    )
    ctx.expect_error(reply, 6006)


@s3.case(6, "error answers are problem+json whatever Accept says", "REQ-REG-004", "REQ-ERR-007")
async def errors_not_negotiated(ctx: RegistryContext) -> None:
    """A registry MUST answer every error ... with a body of media type application/problem+json
    (RFC 9457), whatever the request's Accept."""
    for accept in (MSGPACK, JSON, "*/*"):
        reply = await ctx.get("/v1/no-such-endpoint", accept=accept)
        issues = problem_issues(reply)
        check(not issues, f"Accept {accept}: {reply.brief()}: " + "; ".join(issues))


@s3.case(
    7,
    "problem bodies carry the wire error with the status of Table 10-1",
    "REQ-REG-004",
    "REQ-ERR-001",
    "REQ-ERR-002",
    "REQ-ERR-007",
)
async def problem_shape(ctx: RegistryContext) -> None:
    """One JSON object with the members of Table 12-2, whose cid member is the wire error object
    of §10.2; the HTTP status MUST be the one Table 10-1 gives for the error's code."""
    provoked = [
        await ctx.get("/v1/unknown"),
        await ctx.request("DELETE", "/v1/feed"),
        await ctx.request("POST", "/v1/search", body=b"{}", content_type="text/plain"),
        await ctx.get("/v1/feed", headers={"Accept": "text/html"}),
        await ctx.get("/v1/names/a..b"),
        await ctx.get("/v1/names/.", query={"types": "bogus"}),
        await ctx.get("/v1/feed", query={"since": "x"}),
        await ctx.request("POST", "/v1/search", body=b"{", content_type=JSON),
        await ctx.post("/v1/search", {"limit": 0}),
        await ctx.post("/v1/records", {"header": {}, "body": {}, "sigs": []}),
    ]
    for reply in provoked:
        check(reply.status >= 400, f"expected an error: {reply.brief()}")
        issues = problem_issues(reply)
        check(not issues, f"{reply.brief()}: " + "; ".join(issues))


@s3.case(
    8,
    "every error answered during the run is a well-formed problem",
    "REQ-REG-004",
    "REQ-ERR-002",
    "REQ-ERR-007",
    tags=["last"],
)
async def all_errors_well_formed(ctx: RegistryContext) -> None:
    """(Every error answer the suite received in this run, checked against Tables 10-1 and 12-2.)"""
    check(ctx.errors_seen, "no error answer was seen in this run")
    bad = []
    for reply in ctx.errors_seen:
        issues = problem_issues(reply)
        if issues:
            bad.append(f"{reply.brief()}: {'; '.join(issues)}")
    check(not bad, f"{len(bad)} of {len(ctx.errors_seen)} error answers are malformed", *bad[:10])


@s3.case(9, "error answers reveal no internals", "REQ-REG-005", tags=["last"])
async def no_internals(ctx: RegistryContext) -> None:
    """A registry MUST NOT reveal its internals in an error response: no stack trace, exception or
    class name, file path, connection string, SQL text or storage-driver message."""
    hostile = [
        b"\x00" * 16,
        b"{" * 200,
        b'{"header": {"alg": "ed25519"}, "body": [], "sigs": "x"}',
        b"\xc1\xc1\xc1",
        codec.encode_json(
            {
                "header": {"typ": "cid.record.offer", "sub": "' OR 1=1 --"},
                "body": {},
                "sigs": [{"kid": "x", "sig": "y"}],
            }
        ),
    ]
    replies = [
        await ctx.request("POST", "/v1/records", body=b, content_type=ct)
        for b in hostile
        for ct in (JSON, MSGPACK)
    ]
    replies += [
        await ctx.get("/v1/names/%00"),
        await ctx.get("/v1/namespaces/.", query={"cursor": "!!"}),
    ]
    for reply in [*replies, *ctx.errors_seen]:
        if reply.status < 400:
            continue
        leak = internals_in(reply.body.decode("utf-8", "replace"))
        check(leak is None, f"{reply.brief()}: the error reveals internals ({leak!r})")


async def _declared_body(ctx: RegistryContext, path: str, length: int) -> Any:
    """Announce a body of ``length`` octets and send none of it: the answer must come anyway."""
    from yarl import URL

    url = URL(ctx.http.base)
    head = (
        f"POST {url.path.rstrip('/')}{path} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
        f"Content-Type: {JSON}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    )
    return await raw_exchange(ctx.http.base, head, timeout_s=5.0)


@s3.case(
    10,
    "a body announced over its bound is PAYLOAD_TOO_LARGE before it is read",
    "REQ-REG-008",
    "REQ-SEC-009",
)
async def payload_too_large(ctx: RegistryContext) -> None:
    """A body whose Content-Length exceeds its endpoint's bound MUST be refused with
    PAYLOAD_TOO_LARGE (6002, HTTP 413), detail.rule max_body_bytes and detail.limit the bound,
    before any of it is read."""
    for path, bound in (
        ("/v1/records", 262_144),
        ("/v1/search", 65_536),
        ("/v1/records/batch", 8_388_608),
    ):
        try:
            reply = await _declared_body(ctx, path, bound + 1)
        except TimeoutError:
            fail(
                f"POST {path} with Content-Length {bound + 1} and no body: no answer in 5 s "
                "(the registry waits for a body it should refuse unread)"
            )
        check(reply is not None, f"POST {path}: connection closed without an answer")
        assert reply is not None
        check(
            reply.status == 413, f"POST {path} with Content-Length {bound + 1}: HTTP {reply.status}"
        )
        err = json.loads(reply.body).get("cid", {})
        detail = err.get("detail", {})
        check(err.get("code") == 6002, f"POST {path}: code {err.get('code')}, not 6002")
        check(detail.get("rule") == "max_body_bytes", f"POST {path}: detail {detail!r}")
        limit = detail.get("limit")
        check(isinstance(limit, int) and limit <= bound, f"POST {path}: detail.limit {limit!r}")


@s3.case(11, "a chunked body over the endpoint bound is LIMIT_EXCEEDED max_bytes", "REQ-REG-008")
async def chunked_too_large(ctx: RegistryContext) -> None:
    """A body sent without Content-Length is read up to the server-wide bound ... and is then
    decoded under its endpoint's bound, which refuses a larger body with LIMIT_EXCEEDED (1002),
    rule max_bytes."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"within":"' + b"a" * 70_000
        yield b'"}'

    reply = await ctx.request("POST", "/v1/search", body=chunks(), content_type=JSON)
    if reply.status == 413:
        ctx.expect_error(reply, 6002)
        return
    ctx.expect_error(reply, 1002, rule="max_bytes")


@s3.case(
    12,
    "a body that does not arrive in time is MALFORMED read_timeout",
    "REQ-REG-009",
    tags=["late"],
)
async def read_timeout(ctx: RegistryContext) -> None:
    """A body that is not received and decoded within the read timeout MUST be refused with
    MALFORMED (1000), detail.rule read_timeout."""
    from yarl import URL

    url = URL(ctx.http.base)
    limit = ctx.options.read_timeout_s
    head = (
        f"POST {url.path.rstrip('/')}/v1/search HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
        f"Content-Type: {JSON}\r\nContent-Length: 40\r\nConnection: close\r\n\r\n"
    )
    try:
        reply = await raw_exchange(ctx.http.base, head, [b'{"limit":'], timeout_s=limit + 10)
    except TimeoutError:
        fail(f"a body that never completes was not refused within {limit + 10:g} s")
    check(reply is not None, "the registry closed the connection without an answer")
    assert reply is not None
    check(reply.status == 400, f"HTTP {reply.status}, expected 400")
    err = json.loads(reply.body).get("cid", {})
    check(err.get("code") == 1000, f"code {err.get('code')}, expected MALFORMED (1000)")
    check((err.get("detail") or {}).get("rule") == "read_timeout", f"detail {err.get('detail')}")
    check(reply.elapsed_s <= limit + 5, f"answered after {reply.elapsed_s:.1f} s")


@s3.case(
    13,
    "rate limiting: RATE_LIMITED with Retry-After; operations endpoints exempt",
    "REQ-REG-006",
    tags=["final"],
)
async def rate_limit(ctx: RegistryContext) -> None:
    """A registry MUST limit the rate of requests of each client and MUST answer a request over the
    limit with RATE_LIMITED (6001, HTTP 429), detail.retry_after_s ... and the same number in a
    Retry-After header. /healthz, /readyz and /metrics MUST NOT be rate limited."""
    limited: Reply | None = None
    sent = 0
    path = f"/v1/names/{name_segment('rate-probe.cid-conformance.invalid')}"
    while limited is None and sent < ctx.options.rate_probe_max:
        batch = await asyncio.gather(
            *(ctx.http.get(path, retry_rate_limited=False) for _ in range(100))
        )
        sent += len(batch)
        limited = next((r for r in batch if r.status == 429), None)
    if limited is None:
        fail(f"{sent} requests in a burst were never answered RATE_LIMITED")
    assert limited is not None
    ctx.expect_error(limited, 6001)
    detail = limited.error().get("detail") or {}
    retry = detail.get("retry_after_s")
    check(isinstance(retry, int) and retry >= 1, f"detail.retry_after_s is {retry!r}")
    check(
        limited.headers.get("Retry-After") == str(retry),
        f"Retry-After {limited.headers.get('Retry-After')!r}, detail says {retry}",
    )
    for op in ("/healthz", "/readyz", "/metrics"):
        replies = await asyncio.gather(
            *(ctx.http.get(op, retry_rate_limited=False) for _ in range(5))
        )
        check(
            all(r.status == 200 for r in replies),
            f"{op} answered {[r.status for r in replies]} while the client is limited",
        )


# --- 12.4 store and write processing ---------------------------------------------------


async def _head_rseq(ctx: RegistryContext) -> int:
    reply = await ctx.get("/readyz")
    if reply.status == 200:
        value = reply.json()
        if isinstance(value.get("rseq"), int):
            return int(value["rseq"])
    page = (await ctx.get("/v1/feed", query={"since": "0", "limit": "1"})).value()
    last = page["head"]["body"]["rseq"]
    # walk to the head with an empty page
    while True:
        nxt = (await ctx.get("/v1/feed", query={"since": str(last)})).value()
        if not nxt["changes"]:
            return int(last)
        last = nxt["changes"][-1]["rseq"]


@s4.case(1, "a refused write leaves the store and the feed unchanged", "REQ-REG-011", writes=True)
async def refused_write_changes_nothing(ctx: RegistryContext) -> None:
    """A registry ... MUST refuse it at the first step that fails with that step's error, and MUST
    leave the store unchanged when it refuses it."""
    w = await ctx.world()
    before = await _head_rseq(ctx)
    bad = ctx.sign_as(w, "offer", ctx.unique(), data.GUIZHOU)
    bad["sigs"][0]["sig"] = b64url_encode(bytes(64))
    reply = await ctx.submit(bad)
    ctx.expect_error(reply, 2001)
    check(await _head_rseq(ctx) == before, "the registry serial moved after a refused write")
    got = await ctx.resolve(bad["header"]["sub"])
    ctx.expect_error(got, 3001)


@s4.case(2, "verification comes before the serial rule", "REQ-REG-011", "REQ-SIG-030", writes=True)
async def verify_before_serial(ctx: RegistryContext) -> None:
    """A registry MUST process a write in the order of the steps below (2. Verify ... 4. Commit:
    ... the serial rule)."""
    w = await ctx.world()
    rel = ctx.unique()
    await ctx.accepted(ctx.sign_as(w, "offer", rel, data.GUIZHOU, serial=5))
    stale = ctx.sign_as(w, "offer", rel, data.offer(title="older"), serial=4)
    stale["sigs"][0]["sig"] = b64url_encode(bytes(64))
    ctx.expect_error(await ctx.submit(stale), 2001)


@s4.case(
    3,
    "SERIAL_ROLLBACK names header.serial with detail.serial and detail.stored",
    "REQ-REG-011",
    "REQ-SIG-032",
    writes=True,
)
async def rollback_detail(ctx: RegistryContext) -> None:
    """anything else is SERIAL_ROLLBACK (2006), field header.serial, detail.serial and
    detail.stored the two serials."""
    w = await ctx.world()
    rel = ctx.unique()
    await ctx.accepted(ctx.sign_as(w, "offer", rel, data.GUIZHOU, serial=9))
    reply = await ctx.submit(ctx.sign_as(w, "offer", rel, data.GUIZHOU, serial=3))
    ctx.expect_error(reply, 2006, field="header.serial")
    detail = reply.error().get("detail") or {}
    check(detail.get("serial") == 3 and detail.get("stored") == 9, f"detail {detail!r}")


@s4.case(
    4,
    "a deleted identity keeps refusing the versions it deleted",
    "REQ-REG-010",
    "REQ-REC-051",
    writes=True,
)
async def tombstone_kept(ctx: RegistryContext) -> None:
    """A deleted identity MUST keep its tombstone as its current version for as long as the store
    exists, so that no older version can be re-inserted."""
    w = await ctx.world()
    rel = ctx.unique()
    v1 = ctx.sign_as(w, "offer", rel, data.GUIZHOU, serial=1)
    await ctx.accepted(v1)
    await ctx.accepted(
        ctx.sign_as(w, "tombstone", rel, {"target": "offer"}, serial=2),
        status=(200,),
        what="tombstone",
    )
    for env in (v1, ctx.sign_as(w, "offer", rel, data.offer(title="replayed"), serial=2)):
        ctx.expect_error(await ctx.submit(env), 2006)
    ctx.expect_error(await ctx.resolve(w.name(rel)), 3001)


@s4.case(
    5,
    "the feed is append-only: early changes read again are unchanged",
    "REQ-REG-010",
    writes=True,
    tags=["last"],
)
async def feed_append_only(ctx: RegistryContext) -> None:
    """The feed is append-only: a change MUST NOT be altered or removed."""
    w = await ctx.world()
    first = await ctx.get(
        "/v1/feed", query={"since": str(w.first_rseq - 1), "limit": "5"}, accept=JSON
    )
    page = first.value()
    check(page["changes"], "the feed lost the run's first changes")
    check(page["changes"][0]["rseq"] == w.first_rseq, "the run's first change moved")
    check(
        digest_of(page["changes"][0]["envelope"]) == digest_of(w.envelopes["delegation"]),
        "the run's first change no longer carries the delegation the suite submitted",
    )


# --- 12.5 writes --------------------------------------------------------------------------

_ACCEPTED = {"name", "type", "op", "serial", "digest", "rseq"}


@s5.case(1, "a new version is 201 with an Accepted map", "REQ-REG-020", "REQ-REG-022", writes=True)
async def accepted_new(ctx: RegistryContext) -> None:
    """answer an accepted write with an Accepted map (Table 12-5): with status 201 when the write
    created a new record version (op put, with a new change)."""
    w = await ctx.world()
    rel = ctx.unique()
    env = ctx.sign_as(w, "offer", rel, data.GUIZHOU, serial=3)
    reply = await ctx.submit(env)
    check(reply.status == 201, f"expected 201: {reply.brief()}")
    acc = reply.value()
    check(set(acc) == _ACCEPTED, f"Accepted members {sorted(acc)}, expected {sorted(_ACCEPTED)}")
    check_equal(acc["name"], w.name(rel), "Accepted.name")
    check_equal((acc["type"], acc["op"], acc["serial"]), ("offer", "put", 3), "type, op, serial")
    check_equal(acc["digest"], digest_of(env), "Accepted.digest (the envelope digest)")
    check(isinstance(acc["rseq"], int) and acc["rseq"] >= 1, f"rseq {acc['rseq']!r}")


@s5.case(
    2,
    "an identical re-submission is 200, idempotent, without rseq",
    "REQ-REG-020",
    "REQ-SIG-038",
    "REQ-FEED-001",
    writes=True,
)
async def idempotent(ctx: RegistryContext) -> None:
    """... and with status 200 when it was ... an idempotent re-submission (no rseq)."""
    w = await ctx.world()
    env = ctx.sign_as(w, "offer", ctx.unique(), data.GUIZHOU)
    first = await ctx.accepted(env)
    before = await _head_rseq(ctx)
    reply = await ctx.submit(env)
    check(reply.status == 200, f"re-submission: {reply.brief()}")
    acc = reply.value()
    check("rseq" not in acc, f"an idempotent re-submission got rseq {acc.get('rseq')}")
    check_equal(acc.get("digest"), first["digest"], "digest of the re-submission")
    check(await _head_rseq(ctx) == before, "an idempotent re-submission moved the registry serial")


@s5.case(
    3,
    "a higher serial makes a new change with the next rseq",
    "REQ-REG-020",
    "REQ-FEED-001",
    writes=True,
)
async def update(ctx: RegistryContext) -> None:
    """Every change a registry accepts MUST get the next registry serial ... one more than the
    change before it."""
    w = await ctx.world()
    rel = ctx.unique()
    a = await ctx.accepted(ctx.sign_as(w, "offer", rel, data.GUIZHOU, serial=1))
    b = await ctx.accepted(ctx.sign_as(w, "offer", rel, data.offer(title="v2"), serial=2))
    check(b["rseq"] > a["rseq"], f"rseq {b['rseq']} after {a['rseq']}")
    resolved = (await ctx.resolve(w.name(rel))).value()
    titles = [r["body"].get("title") for r in resolved["records"]]
    check_equal(titles, ["v2"], "the current version after the update")


@s5.case(4, "a batch decides each element on its own, in order", "REQ-REG-021", writes=True)
async def batch_mixed(ctx: RegistryContext) -> None:
    """A registry MUST decide every element on its own, in array order ... and MUST answer 200
    with {"results": [...]} holding, for each element in order, {"ok": <Accepted>} or
    {"error": <wire error object>} whose detail.index is the element's zero-based index."""
    w = await ctx.world()
    rel = ctx.unique()
    good1 = ctx.sign_as(w, "offer", f"a.{rel}", data.GUIZHOU)
    bad = ctx.sign_as(w, "offer", f"b.{rel}", data.GUIZHOU)
    bad["sigs"][0]["sig"] = b64url_encode(bytes(64))
    good2 = ctx.sign_as(w, "offer", f"c.{rel}", data.GUIZHOU)
    rollback = ctx.sign_as(w, "offer", f"a.{rel}", data.offer(title="dup"), serial=1)
    reply = await ctx.post("/v1/records/batch", {"records": [good1, bad, good2, good1, rollback]})
    check(reply.status == 200, f"batch: {reply.brief()}")
    results = reply.value().get("results")
    check(isinstance(results, list) and len(results) == 5, f"results: {results!r}")
    kinds = [next(iter(r)) if isinstance(r, dict) and len(r) == 1 else r for r in results]
    check_equal(kinds, ["ok", "error", "ok", "ok", "error"], "outcome of each element")
    check_equal(results[0]["ok"]["op"], "put", "element 0 op")
    check("rseq" not in results[3]["ok"], "element 3 (a repeat of element 0) got an rseq")
    check_equal(
        (results[1]["error"]["code"], results[1]["error"]["detail"].get("index")),
        (2001, 1),
        "element 1 error code and detail.index",
    )
    check_equal(
        (results[4]["error"]["code"], results[4]["error"]["detail"].get("index")),
        (2006, 4),
        "element 4 error code and detail.index",
    )
    ctx.expect_error(await ctx.resolve(w.name(f"b.{rel}")), 3001)
    check((await ctx.resolve(w.name(f"c.{rel}"))).status == 200, "element 2 was not stored")


@s5.case(5, "a batch of any other shape is SCHEMA_VIOLATION rule batch", "REQ-REG-021")
async def batch_shape(ctx: RegistryContext) -> None:
    """{"records": [envelope, ...]}; any other shape MUST be refused with SCHEMA_VIOLATION (1003),
    field records, rule batch."""
    shapes: list[Any] = [{"envelopes": []}, [], {"records": {}}, {"records": [], "extra": 1}]
    for value in shapes:
        reply = await ctx.post("/v1/records/batch", value)
        ctx.expect_error(reply, 1003, field="records", rule="batch")


@s5.case(
    6,
    "a refresh is 200 op refresh; the offer is served with it",
    "REQ-REG-022",
    "REQ-REG-023",
    "REQ-REC-060",
    writes=True,
)
async def refresh_accepted(ctx: RegistryContext) -> None:
    """refresh: the same offer envelope and digest; serial the refresh's; effective expiry the
    refresh's exp; latest refresh this one, replacing any earlier one."""
    w = await ctx.world()
    rel = ctx.unique()
    offer = ctx.sign_as(w, "offer", rel, data.GUIZHOU, serial=1)
    await ctx.accepted(offer)
    r1 = ctx.sign_as(w, "refresh", rel, {"base": digest_of(offer), "units_free": 10}, serial=2)
    r2 = ctx.sign_as(w, "refresh", rel, {"base": digest_of(offer), "units_free": 11}, serial=3)
    acc = await ctx.accepted(r1, status=(200,), what="refresh")
    check_equal(
        (acc["type"], acc["op"], acc["serial"]), ("offer", "refresh", 2), "type, op, serial"
    )
    check_equal(acc["digest"], digest_of(r1), "Accepted.digest of a refresh (the refresh's)")
    await ctx.accepted(r2, status=(200,), what="refresh")
    records = (await ctx.resolve(w.name(rel))).value()["records"]
    check_equal(
        [digest_of(r) for r in records],
        [digest_of(offer), digest_of(r2)],
        "resolve: the offer followed by its latest refresh",
    )
    items = (await ctx.get(f"/v1/namespaces/{name_segment(w.name(rel))}")).value()["items"]
    check_equal(
        [(i["serial"], i["digest"]) for i in items],
        [(3, digest_of(offer))],
        "list item: the stored serial and the offer's digest",
    )


@s5.case(
    7,
    "a refresh of another offer version is SCHEMA_VIOLATION stale_refresh",
    "REQ-REG-023",
    "REQ-REC-061",
    writes=True,
)
async def refresh_stale(ctx: RegistryContext) -> None:
    """... whose digest equals the refresh's base (otherwise SCHEMA_VIOLATION, field body.base,
    rule stale_refresh)."""
    w = await ctx.world()
    rel = ctx.unique()
    v1 = ctx.sign_as(w, "offer", rel, data.GUIZHOU, serial=1)
    await ctx.accepted(v1)
    await ctx.accepted(ctx.sign_as(w, "offer", rel, data.offer(title="v2"), serial=2))
    stale = ctx.sign_as(w, "refresh", rel, {"base": digest_of(v1), "units_free": 1}, serial=3)
    ctx.expect_error(await ctx.submit(stale), 1003, field="body.base", rule="stale_refresh")


@s5.case(
    8,
    "a refresh above units_total is SCHEMA_VIOLATION free_le_total",
    "REQ-REG-023",
    "REQ-REC-062",
    writes=True,
)
async def refresh_over_total(ctx: RegistryContext) -> None:
    """... whose availability.units_total is at least the refresh's units_free (otherwise
    SCHEMA_VIOLATION, field body.units_free, rule free_le_total)."""
    w = await ctx.world()
    rel = ctx.unique()
    offer = ctx.sign_as(w, "offer", rel, data.GUIZHOU)
    await ctx.accepted(offer)
    big = ctx.sign_as(w, "refresh", rel, {"base": digest_of(offer), "units_free": 8001}, serial=2)
    ctx.expect_error(await ctx.submit(big), 1003, field="body.units_free", rule="free_le_total")


@s5.case(
    9,
    "a refresh or tombstone of no record is NOT_FOUND",
    "REQ-REG-023",
    "REQ-REG-024",
    "REQ-REC-061",
    writes=True,
)
async def refresh_nothing(ctx: RegistryContext) -> None:
    """A registry MUST accept a refresh at name N only if (N, offer) holds an offer that is not
    deleted (otherwise NOT_FOUND, 3001, field header.sub)."""
    w = await ctx.world()
    rel = ctx.unique()
    phantom = ctx.sign_as(w, "offer", rel, data.GUIZHOU)
    refresh = ctx.sign_as(
        w, "refresh", rel, {"base": digest_of(phantom), "units_free": 1}, serial=2
    )
    ctx.expect_error(await ctx.submit(refresh), 3001, field="header.sub")
    tomb = ctx.sign_as(w, "tombstone", rel, {"target": "offer"}, serial=2)
    ctx.expect_error(await ctx.submit(tomb), 3001, field="header.sub")


@s5.case(
    10,
    "refresh serials: not above is SERIAL_ROLLBACK, the same one again is idempotent",
    "REQ-REG-023",
    "REQ-REC-060",
    writes=True,
)
async def refresh_serials(ctx: RegistryContext) -> None:
    """... whose stored serial, that of the offer or of its latest refresh, is below the refresh's
    serial (otherwise SERIAL_ROLLBACK, unless the refresh is the very one held, which is an
    idempotent success)."""
    w = await ctx.world()
    rel = ctx.unique()
    offer = ctx.sign_as(w, "offer", rel, data.GUIZHOU, serial=4)
    await ctx.accepted(offer)
    base = digest_of(offer)
    ctx.expect_error(
        await ctx.submit(ctx.sign_as(w, "refresh", rel, {"base": base, "units_free": 1}, serial=4)),
        2006,
    )
    r = ctx.sign_as(w, "refresh", rel, {"base": base, "units_free": 2}, serial=6)
    await ctx.accepted(r, status=(200,), what="refresh")
    again = await ctx.submit(r)
    check(
        again.status == 200 and "rseq" not in again.value(), f"same refresh again: {again.brief()}"
    )
    older = ctx.sign_as(w, "refresh", rel, {"base": base, "units_free": 3}, serial=5)
    ctx.expect_error(await ctx.submit(older), 2006)


@s5.case(
    11,
    "a tombstone deletes: 200 op delete, then absent from every answer",
    "REQ-REG-024",
    "REQ-REG-022",
    "REQ-REC-050",
    writes=True,
)
async def tombstone_deletes(ctx: RegistryContext) -> None:
    """After the deletion it MUST NOT serve the deleted record, nor the refresh of a deleted offer,
    in resolve, list, search or snapshot answers."""
    w = await ctx.world()
    rel = ctx.unique("del")
    name = w.name(rel)
    offer = ctx.sign_as(w, "offer", rel, data.GUIZHOU, serial=1)
    await ctx.accepted(offer)
    await ctx.accepted(
        ctx.sign_as(w, "refresh", rel, {"base": digest_of(offer), "units_free": 3}, serial=2),
        status=(200,),
        what="refresh",
    )
    tomb = ctx.sign_as(w, "tombstone", rel, {"target": "offer"}, serial=3)
    acc = await ctx.accepted(tomb, status=(200,), what="tombstone")
    check_equal((acc["type"], acc["op"], acc["serial"]), ("offer", "delete", 3), "type, op, serial")
    check_equal(acc["digest"], digest_of(tomb), "Accepted.digest of a tombstone")
    ctx.expect_error(await ctx.resolve(name), 3001)
    items = (await ctx.get(f"/v1/namespaces/{name_segment(name)}")).value()["items"]
    check(items == [], f"list still shows the deleted offer: {items}")
    found = (await ctx.search({"within": name})).value()["results"]
    check(found == [], f"search still finds the deleted offer: {found}")
    snap = (await ctx.get("/v1/snapshot", accept=JSON)).value()
    names = [r["envelope"]["header"]["sub"] for r in snap["records"]]
    check(name not in names, "the snapshot still holds the deleted offer")


@s5.case(
    12,
    "tombstone serials: not above is SERIAL_ROLLBACK, the same one again is idempotent",
    "REQ-REG-024",
    writes=True,
)
async def tombstone_serials(ctx: RegistryContext) -> None:
    """... and the tombstone's serial is above the stored serial (otherwise SERIAL_ROLLBACK) ...
    re-submitting the very tombstone held is an idempotent success."""
    w = await ctx.world()
    rel = ctx.unique()
    await ctx.accepted(ctx.sign_as(w, "offer", rel, data.GUIZHOU, serial=5))
    ctx.expect_error(
        await ctx.submit(ctx.sign_as(w, "tombstone", rel, {"target": "offer"}, serial=5)), 2006
    )
    tomb = ctx.sign_as(w, "tombstone", rel, {"target": "offer"}, serial=6)
    await ctx.accepted(tomb, status=(200,), what="tombstone")
    again = await ctx.submit(tomb)
    check(again.status == 200, f"the same tombstone again: {again.brief()}")
    check("rseq" not in again.value(), "an idempotent tombstone got an rseq")


@s5.case(
    13,
    "a version above the tombstone re-creates the record",
    "REQ-REG-022",
    "REQ-REC-051",
    writes=True,
)
async def recreate(ctx: RegistryContext) -> None:
    """put: always; a serial above a tombstone's re-creates the deleted record."""
    w = await ctx.world()
    rel = ctx.unique()
    await ctx.accepted(ctx.sign_as(w, "offer", rel, data.GUIZHOU, serial=1))
    await ctx.accepted(
        ctx.sign_as(w, "tombstone", rel, {"target": "offer"}, serial=2),
        status=(200,),
        what="tombstone",
    )
    back = ctx.sign_as(w, "offer", rel, data.offer(title="back"), serial=3)
    acc = await ctx.accepted(back)
    check_equal(acc["op"], "put", "op")
    got = (await ctx.resolve(w.name(rel))).value()["records"]
    check_equal([digest_of(r) for r in got], [digest_of(back)], "the re-created record")


@s5.case(
    14,
    "a new offer version drops the refresh of the old one",
    "REQ-REG-022",
    "REQ-REC-062",
    writes=True,
)
async def new_version_drops_refresh(ctx: RegistryContext) -> None:
    """put: ... no refresh. (A refresh changes nothing else; any other change needs a new offer
    version, which makes earlier refreshes stale.)"""
    w = await ctx.world()
    rel = ctx.unique()
    v1 = ctx.sign_as(w, "offer", rel, data.GUIZHOU, serial=1)
    await ctx.accepted(v1)
    await ctx.accepted(
        ctx.sign_as(w, "refresh", rel, {"base": digest_of(v1), "units_free": 1}, serial=2),
        status=(200,),
        what="refresh",
    )
    v2 = ctx.sign_as(w, "offer", rel, data.offer(title="v2"), serial=3)
    await ctx.accepted(v2)
    got = (await ctx.resolve(w.name(rel))).value()["records"]
    check_equal([digest_of(r) for r in got], [digest_of(v2)], "records after a new offer version")


# --- 12.6 resolve --------------------------------------------------------------------------


@s6.case(
    1,
    "resolve answers the name's records with a proof that verifies from the anchor",
    "REQ-REG-030",
    "REQ-QRY-010",
    "REQ-QRY-011",
    "REQ-QRY-018",
    writes=True,
)
async def resolve_apex(ctx: RegistryContext) -> None:
    """a ResolveResponse whose records are the live records of the name ... in the order of their
    type tokens ... and whose proof is that of [REQ-QRY-018]."""
    w = await ctx.world()
    reply = await ctx.resolve(w.apex)
    check(reply.status == 200, reply.brief())
    answer = reply.value()
    check(set(answer) <= {"name", "records", "proof", "referral"}, f"members {sorted(answer)}")
    check_equal(answer.get("name"), w.apex, "ResolveResponse.name")
    check("referral" not in answer, "an answer with records carries a referral")
    got = [digest_of(r) for r in answer.get("records", [])]
    check_equal(
        got,
        [digest_of(w.envelopes["delegation"]), digest_of(w.envelopes["zone"])],
        "records (delegation then zone, as submitted)",
    )
    proof = answer.get("proof", [])
    typs = [p["header"]["typ"] for p in proof]
    check(
        all(t in ("cid.record.delegation", "cid.record.keyrotation") for t in typs),
        f"proof holds {typs}",
    )
    subs = [Identifier.parse(p["header"]["sub"]) for p in proof]
    check(subs == sorted(subs, key=lambda n: n.depth), "proof is not ordered from the root down")
    check(Identifier.parse(w.apex) in subs, "proof lacks the delegation of the apex")
    _, problems = verify_resolve_answer(answer, ctx.trust(), await ctx.now())
    check(not problems, "the answer does not verify from the trust anchor", *problems)


@s6.case(
    2,
    "types restricts the records; none of them is an empty answer; others are refused",
    "REQ-REG-030",
    "REQ-QRY-014",
    writes=True,
)
async def resolve_types(ctx: RegistryContext) -> None:
    """a token other than zone, offer, delegation and keyrotation MUST be refused with
    SCHEMA_VIOLATION (1003), field types, rule enum ... when it has live records but none of the
    types asked for, an empty records."""
    w = await ctx.world()
    zone = (await ctx.resolve(w.apex, query={"types": "zone"})).value()
    check_equal([r["header"]["typ"] for r in zone["records"]], ["cid.record.zone"], "types=zone")
    both = (await ctx.resolve(w.apex, query={"types": "zone,delegation"})).value()
    check_equal(len(both["records"]), 2, "records for types=zone,delegation")
    none = await ctx.resolve(w.apex, query={"types": "offer"})
    check(none.status == 200, f"types=offer at a name without offer: {none.brief()}")
    check_equal(none.value().get("records", []), [], "records for a type the name lacks")
    for bad in ("bogus", "refresh", "tombstone"):
        ctx.expect_error(
            await ctx.resolve(w.apex, query={"types": bad}), 1003, field="types", rule="enum"
        )


@s6.case(
    3,
    "an unknown name is NOT_FOUND with field name and detail.name",
    "REQ-REG-030",
    "REQ-QRY-014",
    writes=True,
)
async def resolve_not_found(ctx: RegistryContext) -> None:
    """When the name has no live record it MUST answer NOT_FOUND (3001), field name, detail.name
    the name."""
    w = await ctx.world()
    reply = await ctx.resolve("Nothing." + w.apex.upper())
    ctx.expect_error(reply, 3001, field="name")
    check_equal((reply.error().get("detail") or {}).get("name"), w.name("nothing"), "detail.name")


@s6.case(
    4,
    "any text form of the name resolves to the canonical name",
    "REQ-REG-031",
    "REQ-ID-018",
    "REQ-ID-004",
    "REQ-ID-005",
    writes=True,
)
async def resolve_forms(ctx: RegistryContext) -> None:
    """{name} MUST be one path segment holding an identifier in any text form that §2 parses
    (U-labels percent-encoded in UTF-8, or A-labels; with or without the cid: prefix) ... and MUST
    use its canonical form."""
    w = await ctx.world()
    name = w.name("池1.u")
    env = ctx.sign_as(w, "offer", "池1.u", data.GUIZHOU)
    await ctx.accepted(env)
    ascii_apex = Identifier.parse(w.apex).to_ascii()
    for form in (
        name,
        f"cid:{name}",
        f"CID:{name.upper()}",
        name.replace(".", "。"),
        f"xn--1-cd9b.u.{ascii_apex}",
        f"XN--1-CD9B.U.{ascii_apex.upper()}",
    ):
        reply = await ctx.resolve(form)
        check(reply.status == 200, f"resolve {form!r}: {reply.brief()}")
        answer = reply.value()
        check_equal(answer.get("name"), name, f"name of the answer to {form!r}")
        check_equal(
            [digest_of(r) for r in answer["records"]], [digest_of(env)], f"records of {form!r}"
        )


@s6.case(5, "the root is the segment . or %2E", "REQ-REG-031")
async def resolve_root(ctx: RegistryContext) -> None:
    """The root is the segment `.` ... a registry MUST accept both spellings."""
    a = await ctx.get("/v1/names/.", accept=JSON)
    b = await ctx.get("/v1/names/%2E", accept=JSON)
    check(a.status in (200, 404), f"/v1/names/. : {a.brief()}")
    check_equal(b.status, a.status, "status of /v1/names/%2E versus /v1/names/.")
    if a.status == 200:
        check_equal(a.value().get("name"), ".", "the name of the root's answer")
        check_equal(b.value(), a.value(), "answer for %2E")
    else:
        check_equal((a.error().get("detail") or {}).get("name"), ".", "detail.name for the root")


@s6.case(6, "a name that does not parse is IDENTIFIER_INVALID", "REQ-REG-031", "REQ-ID-019")
async def resolve_invalid(ctx: RegistryContext) -> None:
    """A registry MUST parse it as §2 requires, MUST answer IDENTIFIER_INVALID (1001) when it does
    not parse."""
    for text, reason in (
        ("a..b", "EMPTY_LABEL"),
        ("-a.b", "INVALID_LABEL"),
        ("cid:", "EMPTY"),
        ("x" * 64, "LABEL_TOO_LONG"),
        ("a b", "INVALID_LABEL"),
    ):
        reply = await ctx.get(f"/v1/names/{name_segment(text)}")
        ctx.expect_error(reply, 1001, reason=reason)
        check(reply.status == 400, f"{reply.brief()}: IDENTIFIER_INVALID is HTTP 400")
        reply = await ctx.get(f"/v1/namespaces/{name_segment(text)}")
        ctx.expect_error(reply, 1001, reason=reason)


@s6.case(
    7,
    "a name delegated elsewhere is answered with a referral",
    "REQ-REG-032",
    "REQ-QRY-012",
    "REQ-QRY-018",
    writes=True,
)
async def referral(ctx: RegistryContext) -> None:
    """the registry MUST answer with a referral whose namespace is N, whose registries are those of
    N's delegation in its order, and whose delegation is N's delegation record, with the proof of
    [REQ-QRY-018] for the parent of N and no records, even when it holds records of the name."""
    w = await ctx.world()
    ns = w.name("ref")
    for name in (w.name("host.ref"), ns):
        reply = await ctx.resolve(name)
        check(reply.status == 200, f"resolve {name}: {reply.brief()}")
        answer = reply.value()
        check_equal(answer.get("name"), name, "name")
        check_equal(answer.get("records", []), [], f"records of the referral for {name}")
        ref = answer.get("referral")
        check(isinstance(ref, dict), f"resolve {name}: no referral in {sorted(answer)}")
        check_equal(ref.get("namespace"), ns, "referral.namespace")
        check_equal(ref.get("registries"), [REFERRAL_URL], "referral.registries")
        check_equal(
            digest_of(ref.get("delegation", {})),
            digest_of(w.envelopes["referral"]),
            "referral.delegation (the delegation submitted)",
        )
        subs = [p["header"]["sub"] for p in answer.get("proof", [])]
        check(w.apex in subs and ns not in subs, f"proof names {subs}: expected the parent's chain")
        check_equal(reply.headers.get("Cache-Control"), "max-age=60", "Cache-Control of a referral")
        check("ETag" not in reply.headers, "a referral carries an ETag")
        trust = ctx.trust()
        _, problems = verify_resolve_answer(
            {"proof": answer.get("proof", [])}, trust, await ctx.now()
        )
        check(not problems, "the referral's proof does not verify", *problems)
        try:
            trust.add(Envelope.from_value(ref["delegation"]), now=await ctx.now())
        except CidError as e:
            fail(f"the referral's delegation does not verify from its proof: {e}")


def _max_age(reply: Reply) -> int | None:
    for part in reply.headers.get("Cache-Control", "").split(","):
        key, _, val = part.strip().partition("=")
        if key.lower() == "max-age" and val.isdigit():
            return int(val)
    return None


@s6.case(
    8,
    "Cache-Control max-age is the least TTL, bounded by expiry",
    "REQ-REG-033",
    "REQ-REC-006",
    writes=True,
)
async def cache_control(ctx: RegistryContext) -> None:
    """MUST carry Cache-Control: max-age=N, where N is the least of the ttl of every envelope in
    records, a refresh included (300 for an envelope without ttl), and of the number of seconds
    from the current time to the effective expiry of every returned record."""
    w = await ctx.world()
    apex = await ctx.resolve(w.apex)
    check_equal(_max_age(apex), 3600, "max-age of the apex (delegation and zone, ttl 3600)")
    rel = ctx.unique()
    offer = ctx.sign_as(w, "offer", rel, data.GUIZHOU, ttl=300)
    await ctx.accepted(offer)
    check_equal(_max_age(await ctx.resolve(w.name(rel))), 300, "max-age of an offer with ttl 300")
    await ctx.accepted(
        ctx.sign_as(
            w, "refresh", rel, {"base": digest_of(offer), "units_free": 1}, serial=2, ttl=45
        ),
        status=(200,),
        what="refresh",
    )
    check_equal(_max_age(await ctx.resolve(w.name(rel))), 45, "max-age with a refresh of ttl 45")
    rel2 = ctx.unique()
    await ctx.accepted(ctx.sign_as(w, "offer", rel2, data.GUIZHOU, ttl=None))
    check_equal(
        _max_age(await ctx.resolve(w.name(rel2))), 300, "max-age for an envelope without ttl"
    )
    rel3 = ctx.unique()
    now = await ctx.now()
    await ctx.accepted(ctx.sign_as(w, "offer", rel3, data.GUIZHOU, ttl=3600, exp=now + 100))
    age = _max_age(await ctx.resolve(w.name(rel3)))
    check(age is not None and 90 <= age <= 100, f"max-age {age} for a record expiring in 100 s")
    rel4 = ctx.unique()
    await ctx.accepted(ctx.sign_as(w, "offer", rel4, data.GUIZHOU, ttl=0))
    check_equal(_max_age(await ctx.resolve(w.name(rel4))), 0, "max-age for ttl 0")


@s6.case(
    9, "ETag and If-None-Match: 304 with the same headers and no body", "REQ-REG-033", writes=True
)
async def etag(ctx: RegistryContext) -> None:
    """It MUST carry a strong ETag computed from ... the response's encoding, so that it changes
    whenever the answer does and differs between the JSON and the MessagePack representation ...
    a request whose If-None-Match header lists that entity tag MUST be answered 304 (Not Modified)
    with the same Cache-Control and ETag and no body."""
    w = await ctx.world()
    rel = ctx.unique()
    await ctx.accepted(ctx.sign_as(w, "offer", rel, data.GUIZHOU, serial=1))
    first = await ctx.resolve(w.name(rel))
    tag = first.headers.get("ETag")
    check(tag, "a resolve answer without ETag")
    again = await ctx.resolve(w.name(rel))
    check_equal(again.headers.get("ETag"), tag, "ETag of the same answer asked again")
    packed = await ctx.get(f"/v1/names/{name_segment(w.name(rel))}", accept=MSGPACK)
    ptag = packed.headers.get("ETag")
    check(ptag not in (None, tag), f"the MessagePack representation's ETag {ptag!r} is not its own")
    cached = await ctx.resolve(w.name(rel), headers={"If-None-Match": str(tag)})
    check(cached.status == 304, f"If-None-Match with the current ETag: {cached.brief()}")
    check(cached.body == b"", "a 304 answer has a body")
    check_equal(cached.headers.get("ETag"), tag, "ETag of the 304")
    check_equal(
        cached.headers.get("Cache-Control"),
        first.headers.get("Cache-Control"),
        "Cache-Control of the 304",
    )
    await ctx.accepted(ctx.sign_as(w, "offer", rel, data.offer(title="v2"), serial=2))
    changed = await ctx.resolve(w.name(rel), headers={"If-None-Match": str(tag)})
    check(changed.status == 200, f"If-None-Match with a stale ETag: {changed.brief()}")
    check(changed.headers.get("ETag") != tag, "the ETag did not change with the record")


@s6.case(
    10,
    "expired records are not served; a refresh extends its offer",
    "REQ-REG-034",
    "REQ-REC-007",
    "REQ-REC-062",
    writes=True,
    tags=["late"],
)
async def resolve_expired(ctx: RegistryContext) -> None:
    """A registry MUST NOT return a record in the records of a resolve answer ... at or after its
    effective expiry ... (NOT_FOUND for resolve when no other record of the name is live)."""
    w = await ctx.world()
    await ctx.wait_for_expiry(w)
    ctx.expect_error(await ctx.resolve(w.name("soon")), 3001)
    kept = await ctx.resolve(w.name("kept"))
    check(kept.status == 200, f"an offer whose refresh is valid was not served: {kept.brief()}")
    got = [digest_of(r) for r in kept.value()["records"]]
    check_equal(
        got,
        [digest_of(w.envelopes["kept"]), digest_of(w.envelopes["kept:refresh"])],
        "the expired offer served with its live refresh",
    )


# --- 12.7 list --------------------------------------------------------------------------


def _canonical_key(name: str) -> tuple[bytes, ...]:
    return tuple(label.encode() for label in reversed(Identifier.parse(name).to_ascii().split(".")))


async def _list_all(ctx: RegistryContext, ns: str, **query: str) -> tuple[list[Any], list[Any]]:
    """Follow next_cursor to the end; returns (items, pages)."""
    items: list[Any] = []
    pages: list[Any] = []
    params = dict(query)
    for _ in range(200):
        reply = await ctx.get(f"/v1/namespaces/{name_segment(ns)}", query=params, accept=JSON)
        check(reply.status == 200, reply.brief())
        page = reply.value()
        pages.append(page)
        items += page.get("items", [])
        if "next_cursor" not in page:
            return items, pages
        params["cursor"] = page["next_cursor"]
    fail("more than 200 pages")


@s7.case(
    1,
    "list answers the live records within the namespace in canonical order",
    "REQ-REG-040",
    "REQ-QRY-015",
    "REQ-QRY-016",
    "REQ-ID-022",
    writes=True,
)
async def list_catalogue(ctx: RegistryContext) -> None:
    """A registry MUST answer with a ListResponse of the live records whose names are within the
    namespace, label-wise, in the canonical order of names and then of type tokens, each item
    carrying the name, type, stored serial and digest."""
    w = await ctx.world()
    items, _ = await _list_all(ctx, w.catalogue)
    expected = sorted(data.CATALOGUE, key=lambda label: _canonical_key(w.name(f"{label}.cat")))
    check_equal(
        [i["name"] for i in items],
        [w.name(f"{x}.cat") for x in expected],
        "names in canonical order",
    )
    for item in items:
        check(set(item) == {"name", "type", "serial", "digest"}, f"item members {sorted(item)}")
        label = item["name"].split(".", 1)[0]
        env = w.envelopes[f"cat:{label}"]
        check_equal(item["digest"], digest_of(env), f"digest of {item['name']}")
        check_equal(item["serial"], 2 if label == "nm" else 1, f"stored serial of {item['name']}")
        check_equal(item["type"], "offer", "type")
    apex_items, _ = await _list_all(ctx, w.apex, types="zone,delegation")
    keys = [(_canonical_key(i["name"]), i["type"]) for i in apex_items]
    check(keys == sorted(keys) and len(set(keys)) == len(keys), "list of the apex is not in order")


@s7.case(
    2,
    "pages continue the order, each at most limit items, the last without next_cursor",
    "REQ-REG-040",
    "REQ-QRY-017",
    "REQ-QRY-016",
    writes=True,
)
async def list_pages(ctx: RegistryContext) -> None:
    """Successive pages MUST continue that order: every item of a page follows every item of the
    page before it ... with a next_cursor exactly when more items follow."""
    w = await ctx.world()
    whole, _ = await _list_all(ctx, w.catalogue)
    paged, pages = await _list_all(ctx, w.catalogue, limit="3")
    check_equal([i["name"] for i in paged], [i["name"] for i in whole], "items over pages of 3")
    check(all(len(p["items"]) <= 3 for p in pages), "a page holds more than limit items")
    check(all(len(p["items"]) == 3 for p in pages[:-1]), "a page before the last is not full")
    check(len(pages) == -(-len(whole) // 3), f"{len(pages)} pages for {len(whole)} items")


@s7.case(
    3, "types, limit and cursor parameters are checked", "REQ-REG-040", "REQ-QRY-015", writes=True
)
async def list_params(ctx: RegistryContext) -> None:
    """limit (a decimal integer 1 ... 1,000, default 100; otherwise SCHEMA_VIOLATION, field limit)
    ... a cursor the registry cannot read MUST be refused with SCHEMA_VIOLATION, field cursor,
    rule cursor."""
    w = await ctx.world()
    only_zone, _ = await _list_all(ctx, w.apex, types="zone")
    check(only_zone and all(i["type"] == "zone" for i in only_zone), f"types=zone: {only_zone}")
    check(w.apex in [i["name"] for i in only_zone], "types=zone does not list the apex's zone")
    path = f"/v1/namespaces/{name_segment(w.apex)}"
    for limit in ("0", "1001", "x", "-1"):
        ctx.expect_error(await ctx.get(path, query={"limit": limit}), 1003, field="limit")
    for cursor in ("!!!", "not a cursor", "%%"):
        ctx.expect_error(
            await ctx.get(path, query={"cursor": cursor}), 1003, field="cursor", rule="cursor"
        )
    ctx.expect_error(
        await ctx.get(path, query={"types": "bogus"}), 1003, field="types", rule="enum"
    )


@s7.case(
    4,
    "names are within a namespace label-wise, not by string",
    "REQ-REG-040",
    "REQ-ID-023",
    "REQ-SEC-003",
    writes=True,
)
async def list_label_wise(ctx: RegistryContext) -> None:
    """the live records whose names are within the namespace, label-wise ([REQ-ID-023])."""
    w = await ctx.world()
    for ns in (w.name("ca"), w.name("at"), "t." + w.catalogue):
        items, _ = await _list_all(ctx, ns)
        check(items == [], f"list {ns} shows {[i['name'] for i in items]}")
    items, _ = await _list_all(ctx, w.apex)
    names = {i["name"] for i in items}
    check(w.name("gz.cat") in names and w.name("o.d") in names, "list of the apex misses names")


@s7.case(
    5, "expired records are not listed", "REQ-REG-034", "REQ-REG-040", writes=True, tags=["late"]
)
async def list_expired(ctx: RegistryContext) -> None:
    """A registry MUST NOT return a record ... in the items of a list page ... at or after its
    effective expiry."""
    w = await ctx.world()
    await ctx.wait_for_expiry(w)
    items, _ = await _list_all(ctx, w.name("soon"))
    check(items == [], f"an expired record is listed: {items}")
    kept, _ = await _list_all(ctx, w.name("kept"))
    check_equal(len(kept), 1, "items of an offer kept alive by its refresh")


# --- 12.8 search ----------------------------------------------------------------------------


@s8.case(1, "a search answer is a SearchResponse over live offers", "REQ-REG-050", writes=True)
async def search_shape(ctx: RegistryContext) -> None:
    """A registry MUST answer it with a SearchResponse (§7.5) computed as §7.4–§7.6 require over
    the live offers it holds."""
    w = await ctx.world()
    results = []
    for currency in ("CNY", "USD"):
        reply = await ctx.search({"within": w.catalogue, "limit": 100, "currency": currency})
        check(reply.status == 200, reply.brief())
        value = reply.value()
        check(set(value) <= {"results", "next_cursor"}, f"members {sorted(value)}")
        results += value["results"]
    names = {r["name"] for r in results}
    check_equal(names, {w.name(f"{x}.cat") for x in data.CATALOGUE}, "offers within the catalogue")
    for r in results:
        check(set(r) <= {"name", "serial", "cost", "rtt_us", "score"}, f"match members {sorted(r)}")
        check(
            "rtt_us" not in r and "score" not in r,
            f"{r['name']}: rtt_us/score without near/weights",
        )


@s8.case(
    2,
    "expired offers are not found; a refresh keeps its offer",
    "REQ-REG-034",
    "REQ-REG-050",
    "REQ-QRY-021",
    writes=True,
    tags=["late"],
)
async def search_expired(ctx: RegistryContext) -> None:
    """A registry MUST NOT return a record ... in the results of a search at or after its effective
    expiry."""
    w = await ctx.world()
    await ctx.wait_for_expiry(w)
    gone = (await ctx.search({"within": w.name("soon")})).value()["results"]
    check(gone == [], f"search finds an expired offer: {gone}")
    kept = (await ctx.search({"within": w.name("kept"), "units_free_min": 42})).value()["results"]
    check_equal([r["name"] for r in kept], [w.name("kept")], "the refreshed offer (42 free)")


@s8.case(
    3,
    "a query over the budget is QUERY_TOO_EXPENSIVE, not evaluated",
    "REQ-REG-050",
    writes=True,
    tags=["last"],
)
async def search_budget(ctx: RegistryContext) -> None:
    """MUST refuse a query whose estimate exceeds its budget ... with QUERY_TOO_EXPENSIVE (6005,
    HTTP 422), detail.candidates and detail.budget giving the estimate and the budget."""
    budget = ctx.options.search_budget
    if budget is None or budget > 2000:
        skip("needs --search-budget N (at most 2000) set to the registry's configured budget")
    w = await ctx.world()
    rel = ctx.unique("budget")
    envs = [ctx.sign_as(w, "offer", f"p{i}.{rel}", data.GUIZHOU) for i in range(budget + 1)]
    for start in range(0, len(envs), 500):
        reply = await ctx.post("/v1/records/batch", {"records": envs[start : start + 500]})
        check(reply.status == 200, f"batch: {reply.brief()}")
        check(all("ok" in r for r in reply.value()["results"]), "the batch was not accepted")
    reply = await ctx.search({"within": w.name(rel)})
    ctx.expect_error(reply, 6005)
    check(reply.status == 422, f"{reply.brief()}: QUERY_TOO_EXPENSIVE is HTTP 422")
    detail = reply.error().get("detail") or {}
    check_equal(detail.get("budget"), budget, "detail.budget")
    cand = detail.get("candidates")
    check(isinstance(cand, int) and cand > budget, f"detail.candidates {cand!r}")


async def _latency_model(ctx: RegistryContext) -> tuple[dict[str, Any] | None, Reply]:
    """The registry's published latency model (verified), or None when it publishes none."""
    reply = await ctx.get("/v1/latency-model", accept=JSON)
    if reply.status == 404:
        ctx.expect_error(reply, 3001)
        check_equal((reply.error().get("detail") or {}).get("rule"), "latency_model", "rule")
        return None, reply
    check(reply.status == 200, f"GET /v1/latency-model: {reply.brief()}")
    return reply.value(), reply


@s8.case(4, "the latency model is published, signed by a service key", "REQ-REG-065")
async def latency_model_published(ctx: RegistryContext) -> None:
    """A registry that uses a model MUST answer with a latency-model envelope: typ
    cid.latency.model, body a LatencyModel, sub `.`, serial the model's version, iat and nbf the
    time of signing, exp at most 3,600 seconds later, no ttl, exactly one signature by a service
    key ... Cache-Control max-age ... ETag ... 304. A registry that uses no model MUST answer
    NOT_FOUND (3001), detail.rule latency_model."""
    value, reply = await _latency_model(ctx)
    if value is None:
        return  # NOT_FOUND with the rule: the registry ranks without a model
    keys = await _service_keys(ctx)
    now = await ctx.now()
    h, body = value["header"], value["body"]
    check_equal(h.get("typ"), "cid.latency.model", "typ")
    check_equal(h.get("sub"), ".", "sub")
    try:
        model = validate(LatencyModel, body, where="body")
    except CidError as e:
        fail(f"the body is not a LatencyModel: {e}")
    check_equal(h.get("serial"), model.version, "serial (the model's version)")
    check(h.get("iat") == h.get("nbf"), f"iat {h.get('iat')} != nbf {h.get('nbf')}")
    exp, iat = h.get("exp"), h.get("iat")
    check(isinstance(exp, int) and isinstance(iat, int) and 0 < exp - iat <= 3600,
          f"validity window {iat} .. {exp} is not at most 3,600 s")  # fmt: skip
    check("ttl" not in h, "the envelope has a ttl")
    check(len(value.get("sigs", [])) == 1, f"{len(value.get('sigs', []))} signatures, not one")
    try:
        Envelope.from_value(value).verify(keys, typ="cid.latency.model", now=now)
    except CidError as e:
        fail(f"does not verify with the root zone's service keys at now={now}: {e}")
    age = _max_age(reply)
    check(age is not None and 0 <= age <= exp - now + 5,
          f"Cache-Control max-age {age} beyond the envelope's exp")  # fmt: skip
    packed = await ctx.get("/v1/latency-model", accept=MSGPACK)
    check_equal(packed.value()["body"], body, "the msgpack answer's model")
    tag = reply.headers.get("ETag")
    check(tag, "a latency-model answer without ETag")
    cached = await ctx.get("/v1/latency-model", accept=JSON, headers={"If-None-Match": str(tag)})
    check(cached.status == 304 and cached.body == b"", f"If-None-Match: {cached.brief()}")


@s8.case(
    5,
    "searches estimate RTTs with the published model, and only with it",
    "REQ-REG-066",
    "REQ-QRY-030",
    "REQ-QRY-067",
    writes=True,
)
async def latency_model_used(ctx: RegistryContext) -> None:
    """A registry MUST estimate the RTTs of every search with the model it publishes at that time,
    and with none when it publishes none."""
    value, _ = await _latency_model(ctx)
    model = None if value is None else validate(LatencyModel, value["body"], where="body")
    w = await ctx.world()
    # an offer in CN-GZ that states no RTT of its own: only a model can place it
    body = json.loads(json.dumps(data.GUIZHOU))
    body["network"] = {}
    rel = ctx.unique("rtt")
    await ctx.accepted(ctx.sign_as(w, "offer", rel, body))
    pairs = [] if model is None else [r for r in sorted(model.regions()) if r != "CN-GZ"]
    known: list[tuple[str, int]] = []
    for r in pairs:
        us = None if model is None else model.region_rtt_us("CN-GZ", r)
        if us is not None:
            known.append((r, us))
    if not known:
        # no model, or a model that cannot place CN-GZ: the RTT is unknown, so no max_rtt matches
        reply = await ctx.search(
            {"within": w.name(rel), "near": {"region": "CN-TJ", "max_rtt_us": 10_000_000}}
        )
        check_equal(reply.value()["results"], [], "an offer of unknown RTT under max_rtt_us")
        return
    region, rtt = known[0]
    hit = await ctx.search(
        {"within": w.name(rel), "near": {"region": region, "max_rtt_us": rtt}, "order": ["latency"]}
    )
    results = hit.value()["results"]
    check_equal([r["name"] for r in results], [w.name(rel)], f"offers within {rtt} us of {region}")
    check_equal(results[0].get("rtt_us"), rtt, f"the model's RTT from CN-GZ to {region}")
    if rtt > 0:
        miss = await ctx.search(
            {"within": w.name(rel), "near": {"region": region, "max_rtt_us": rtt - 1}}
        )
        check_equal(miss.value()["results"], [], f"offers within {rtt - 1} us of {region}")


# --- 12.9 change feed ------------------------------------------------------------------------


async def _service_keys(ctx: RegistryContext) -> dict[str, Any]:
    _, keys = await ctx.root_zone()
    check(keys, "the root zone record lists no service key")
    return keys


def _head_issues(head: Any, typ: str, keys: dict[str, Any], now: int) -> list[str]:
    """[REQ-FEED-002]: what is wrong with a signed head."""
    issues: list[str] = []
    try:
        env = Envelope.from_value(head)
    except CidError as e:
        return [f"the head is not an envelope: {e}"]
    h = head["header"]
    body = head["body"]
    if h.get("typ") != typ:
        issues.append(f"typ {h.get('typ')!r}, not {typ}")
    if h.get("sub") != ".":
        issues.append(f"sub {h.get('sub')!r}, not '.'")
    rseq = body.get("rseq")
    if not isinstance(rseq, int) or h.get("serial") != max(rseq, 1):
        issues.append(f"serial {h.get('serial')!r} is not max(rseq, 1) for rseq {rseq!r}")
    at = body.get("at")
    if h.get("iat") != at or h.get("nbf") != at:
        issues.append(f"iat/nbf {h.get('iat')}/{h.get('nbf')} are not at={at}")
    if not isinstance(at, int) or h.get("exp") != at + 3600:
        issues.append(f"exp {h.get('exp')} is not at + 3600")
    if "ttl" in h:
        issues.append("the head has a ttl")
    if len(head.get("sigs", [])) != 1:
        issues.append(f"{len(head.get('sigs', []))} signatures, not exactly one")
    try:
        env.verify(keys, typ=typ, now=now)
    except CidError as e:
        issues.append(f"does not verify with the root zone's service keys at now={now}: {e}")
    return issues


@s9.case(
    1,
    "feed heads are signed by a service key of the root zone, window of one hour",
    "REQ-FEED-002",
    "REQ-GEN-010",
)
async def feed_head(ctx: RegistryContext) -> None:
    """A registry MUST sign every head it serves: ... typ cid.feed.head ... sub `.`, serial the
    greater of rseq and 1, iat and nbf equal to at, exp equal to at + 3,600 and no ttl, and which
    carries exactly one signature, by a service key of the registry."""
    keys = await _service_keys(ctx)
    now = await ctx.now()
    for query in ({"limit": "1"}, {"since": str(await _head_rseq(ctx))}):
        page = (await ctx.get("/v1/feed", query=query, accept=JSON)).value()
        issues = _head_issues(page.get("head"), "cid.feed.head", keys, now)
        check(not issues, f"head of /v1/feed?{query}: " + "; ".join(issues))


async def _chain_before(ctx: RegistryContext, rseq: int) -> str:
    """chain_rseq as the registry states it (the head of a page ending at rseq)."""
    if rseq == 0:
        return b64url_encode(bytes(32))
    query = {"since": str(rseq - 1), "limit": "1"}
    page = (await ctx.get("/v1/feed", query=query, accept=JSON)).value()
    return str(page["head"]["body"]["chain"])


async def _verify_chain(ctx: RegistryContext, start: int, count: int) -> list[Any]:
    """Recompute the chain over ``count`` changes after ``start``; returns the changes."""
    chain = await _chain_before(ctx, start)
    position = start
    changes: list[Any] = []
    while len(changes) < count:
        reply = await ctx.get(
            "/v1/feed", query={"since": str(position), "limit": "50"}, accept=MSGPACK
        )
        check(reply.status == 200, reply.brief())
        page = reply.value()
        if not page["changes"]:
            break
        for change in page["changes"]:
            check_equal(change["rseq"], position + 1, "rseq of the next change (no gap)")
            chain = chain_step(chain, change["rseq"], codec.encode_msgpack(change["envelope"]))
            position = change["rseq"]
            changes.append(change)
        head = page["head"]["body"]
        check_equal(
            (head["rseq"], head["chain"]),
            (position, chain),
            f"head (rseq, chain) of the page ending at rseq {position}",
        )
    return changes


@s9.case(
    2,
    "the hash chain recomputes over the changes, rseq without gaps",
    "REQ-FEED-001",
    "REQ-FEED-004",
    "REQ-GEN-010",
    "REQ-ENC-014",
)
async def feed_chain(ctx: RegistryContext) -> None:
    """chain_n = SHA-256("cid-feed-v1" || chain_(n-1) || u64be(n) || SHA-256(envelope_n)), where
    envelope_n is the canonical MessagePack of the envelope that change n carries."""
    head = await _head_rseq(ctx)
    if head == 0:
        skip("the registry's feed is empty")
    start = max(0, head - 300)
    changes = await _verify_chain(ctx, start, head - start)
    check(changes, "no change read from the feed")


@s9.case(
    3,
    "the run's writes appear in the feed as submitted",
    "REQ-FEED-005",
    "REQ-FEED-001",
    "REQ-REG-007",
    writes=True,
)
async def feed_carries_writes(ctx: RegistryContext) -> None:
    """Each element of changes MUST be a map with exactly the members of Table 12-8 ... envelope:
    the record (put), the refresh (refresh) or the tombstone (delete)."""
    w = await ctx.world()
    rel = ctx.unique()
    offer = ctx.sign_as(w, "offer", rel, data.GUIZHOU)
    refresh = ctx.sign_as(w, "refresh", rel, {"base": digest_of(offer), "units_free": 5}, serial=2)
    tomb = ctx.sign_as(w, "tombstone", rel, {"target": "offer"}, serial=3)
    a = await ctx.accepted(offer)
    await ctx.accepted(refresh, status=(200,), what="refresh")
    await ctx.accepted(tomb, status=(200,), what="tombstone")
    changes = await _verify_chain(ctx, a["rseq"] - 1, 3)
    ours = [c for c in changes if c["name"] == w.name(rel)]
    check_equal(len(ours), 3, "changes of the run's offer")
    for change, (env, op) in zip(
        ours, ((offer, "put"), (refresh, "refresh"), (tomb, "delete")), strict=True
    ):
        check_equal(set(change), {"rseq", "op", "name", "type", "envelope"}, "ChangeEntry members")
        check_equal((change["op"], change["type"]), (op, "offer"), "op and type")
        check_equal(change["envelope"], env, f"the {op} envelope as submitted")


@s9.case(
    4,
    "feed parameters out of range are SCHEMA_VIOLATION; since beyond the head too",
    "REQ-FEED-004",
)
async def feed_params(ctx: RegistryContext) -> None:
    """A registry MUST refuse a parameter that is not a decimal integer in its range, and a since
    above the rseq of its head, with SCHEMA_VIOLATION (1003), field the parameter (rule
    since_beyond_head and detail.head the head's rseq for the latter)."""
    head = await _head_rseq(ctx)
    for key, val in (
        ("since", "-1"),
        ("since", "x"),
        ("limit", "0"),
        ("limit", "1.5"),
        ("wait", "-1"),
        ("wait", "100000"),
        ("since", "9007199254740992"),
    ):
        ctx.expect_error(await ctx.get("/v1/feed", query={key: val}), 1003, field=key)
    beyond = await ctx.get("/v1/feed", query={"since": str(head + 1000)})
    ctx.expect_error(beyond, 1003, field="since", rule="since_beyond_head")
    got = (beyond.error().get("detail") or {}).get("head")
    check(isinstance(got, int) and got >= head, f"detail.head {got!r} (head is {head})")


@s9.case(5, "a page at the head is empty with the head's rseq and chain", "REQ-FEED-004")
async def feed_empty_page(ctx: RegistryContext) -> None:
    """head is a head whose rseq and chain are those after the last change of the page, or since
    and chain_since when the page is empty."""
    head = await _head_rseq(ctx)
    page = (await ctx.get("/v1/feed", query={"since": str(head)}, accept=JSON)).value()
    check_equal(page.get("changes"), [], "changes of a page at the head")
    check_equal(page["head"]["body"]["rseq"], head, "rseq of the empty page's head")
    check_equal(
        page["head"]["body"]["chain"],
        await _chain_before(ctx, head),
        "chain of the empty page's head",
    )
    if head >= 3:
        two = (await ctx.get("/v1/feed", query={"since": "0", "limit": "2"}, accept=JSON)).value()
        check_equal([c["rseq"] for c in two["changes"]], [1, 2], "rseq of since=0&limit=2")


@s9.case(6, "a long poll is answered as soon as a change is committed", "REQ-FEED-004", writes=True)
async def long_poll(ctx: RegistryContext) -> None:
    """When since equals the rseq of its head and wait is above 0, it MUST hold the request until
    a change is committed by any process sharing the store, or wait seconds have passed."""
    w = await ctx.world()
    head = await _head_rseq(ctx)
    started = time.monotonic()
    poll = asyncio.create_task(
        ctx.get("/v1/feed", query={"since": str(head), "wait": "10"}, accept=JSON)
    )
    await asyncio.sleep(0.5)
    check(not poll.done(), "the long poll returned before any change was committed")
    acc = await ctx.accepted(ctx.sign_as(w, "offer", ctx.unique(), data.GUIZHOU))
    committed = time.monotonic()
    reply = await asyncio.wait_for(poll, timeout=15)
    answered = time.monotonic()
    check(reply.status == 200, reply.brief())
    rseqs = [c["rseq"] for c in reply.value()["changes"]]
    check(acc["rseq"] in rseqs, f"the long poll answered {rseqs}, without rseq {acc['rseq']}")
    check(
        answered - committed <= 1.5,
        f"the long poll answered {answered - committed:.2f} s "
        f"after the commit ({answered - started:.1f} s in all)",
    )


@s9.case(
    7,
    "the peer processes see a change at once and wake their long polls",
    "REQ-REG-012",
    writes=True,
)
async def peers(ctx: RegistryContext) -> None:
    """A change committed through any process MUST appear in the feed served by every process as
    soon as it is committed, MUST answer the long-polls waiting on any process within 1 second of
    its commit."""
    if not ctx.options.peers:
        skip("needs --peer URL (another process of the same registry)")
    w = await ctx.world()
    from ..wire import Http

    for peer in ctx.options.peers:
        other = Http(peer, ctx.http.session)
        head = (await other.get("/v1/feed", query={"since": "0", "limit": "1"})).value()
        since = await _head_rseq(ctx)
        poll = asyncio.create_task(
            other.get("/v1/feed", query={"since": str(since), "wait": "10"}, accept=JSON)
        )
        await asyncio.sleep(0.3)
        acc = await ctx.accepted(ctx.sign_as(w, "offer", ctx.unique(), data.GUIZHOU))
        committed = time.monotonic()
        reply = await asyncio.wait_for(poll, timeout=15)
        check(time.monotonic() - committed <= 1.0, f"{peer}: long poll answered late")
        check(
            acc["rseq"] in [c["rseq"] for c in reply.value()["changes"]],
            f"{peer}: the long poll did not carry the change",
        )
        del head


# --- 12.10 snapshot -------------------------------------------------------------------------


def _snapshot_digest(records: list[Any]) -> str:
    lines = []
    for item in records:
        env = item["envelope"]
        name = Identifier.parse(env["header"]["sub"])
        typ = env["header"]["typ"].rsplit(".", 1)[1]
        lines.append(
            (_canonical_key(name.to_text()), typ, f"{name.to_ascii()} {typ} {digest_of(env)}\n")
        )
    lines.sort(key=lambda x: (x[0], x[1]))
    h = hashlib.sha256(b"cid-snapshot-v1\n" + "".join(x[2] for x in lines).encode("ascii"))
    return b64url_encode(h.digest())


@s10.case(
    1,
    "the snapshot's signed head states its digest and count",
    "REQ-FEED-010",
    "REQ-FEED-002",
    "REQ-GEN-010",
)
async def snapshot(ctx: RegistryContext) -> None:
    """GET /v1/snapshot MUST be answered with {"head": <snapshot head>, "records": [...]} ... in
    the canonical order of names and then of type tokens ... digest computed by the formula
    below."""
    keys = await _service_keys(ctx)
    reply = await ctx.get("/v1/snapshot", accept=MSGPACK)
    check(reply.status == 200, reply.brief())
    snap = reply.value()
    check_equal(set(snap), {"head", "records"}, "snapshot members")
    issues = _head_issues(snap["head"], "cid.feed.snapshot", keys, await ctx.now())
    check(not issues, "snapshot head: " + "; ".join(issues))
    body = snap["head"]["body"]
    records = snap["records"]
    check_equal(body.get("records"), len(records), "head records (the count)")
    check_equal(body.get("digest"), _snapshot_digest(records), "head digest (recomputed)")
    keys_order = [
        (_canonical_key(r["envelope"]["header"]["sub"]), r["envelope"]["header"]["typ"])
        for r in records
    ]
    check(keys_order == sorted(keys_order), "records are not in canonical order")
    for item in records:
        check(set(item) <= {"envelope", "refresh"}, f"snapshot item members {sorted(item)}")
    check_equal(body.get("chain"), await _chain_before(ctx, body["rseq"]), "head chain at its rseq")


@s10.case(
    2,
    "the snapshot holds what is held: refreshes beside offers, expired ones too",
    "REQ-FEED-010",
    "REQ-REC-007",
    writes=True,
    tags=["late"],
)
async def snapshot_contents(ctx: RegistryContext) -> None:
    """records holds one map per record held at R (not deleted, whatever its expiry) ... with the
    member refresh holding the latest refresh when the record is a refreshed offer."""
    w = await ctx.world()
    await ctx.wait_for_expiry(w)
    snap = (await ctx.get("/v1/snapshot", accept=JSON)).value()
    by_name = {
        r["envelope"]["header"]["sub"]: r
        for r in snap["records"]
        if r["envelope"]["header"]["typ"] == "cid.record.offer"
    }
    nm = by_name.get(w.name("nm.cat"))
    check(nm is not None, "the snapshot lacks a live offer")
    assert nm is not None
    check_equal(
        nm.get("refresh"), w.envelopes["cat:nm:refresh"], "refresh member of a refreshed offer"
    )
    check("refresh" not in by_name[w.name("gz.cat")], "an offer without refresh has one")
    check(w.name("soon") in by_name, "the snapshot drops an expired (but held) offer")


# --- 12.11 operations ----------------------------------------------------------------------


@s11.case(1, "healthz is {status: ok} in JSON whatever Accept", "REQ-REG-060")
async def healthz(ctx: RegistryContext) -> None:
    """GET /healthz MUST answer 200 with the JSON object {"status": "ok"} ... Both answer
    application/json whatever the Accept."""
    for accept in (None, MSGPACK, "text/html"):
        reply = await ctx.get("/healthz", accept=accept)
        check(reply.status == 200, reply.brief())
        check_equal(reply.media_type, "application/json", "Content-Type of /healthz")
        check_equal(reply.json(), {"status": "ok"}, "/healthz body")


@s11.case(2, "readyz is {status: ready, rseq, applied} in JSON", "REQ-REG-060")
async def readyz(ctx: RegistryContext) -> None:
    """GET /readyz MUST answer 200 with the JSON object {"status": "ready", "rseq": <the store's
    head rseq>, "applied": <the rseq this process has applied>}."""
    reply = await ctx.get("/readyz", accept=MSGPACK)
    check(reply.status == 200, reply.brief())
    check_equal(reply.media_type, "application/json", "Content-Type of /readyz")
    value = reply.json()
    check_equal(set(value), {"status", "rseq", "applied"}, "/readyz members")
    check_equal(value["status"], "ready", "status")
    check(isinstance(value["rseq"], int) and isinstance(value["applied"], int), f"{value}")
    feed = await ctx.get("/v1/feed", query={"since": str(value["rseq"])}, accept=JSON)
    check(feed.status == 200, f"readyz rseq {value['rseq']} is beyond the feed: {feed.brief()}")


@s11.case(3, "openapi.json is the spec's OpenAPI document", "REQ-REG-061")
async def openapi(ctx: RegistryContext) -> None:
    """GET /openapi.json MUST answer 200 with the registry's OpenAPI 3.1 document as
    application/json, and that document MUST be equal, as a JSON value, to
    spec/openapi/registry.json."""
    reply = await ctx.get("/openapi.json")
    check(reply.status == 200, reply.brief())
    check_equal(reply.media_type, "application/json", "Content-Type of /openapi.json")
    expected = json.loads((find_spec_dir() / "openapi" / "registry.json").read_text("utf-8"))
    check(reply.json() == expected, "the served document differs from spec/openapi/registry.json")


@s11.case(4, "metrics in the Prometheus text format with the names of Table 12-9", "REQ-REG-062")
async def metrics(ctx: RegistryContext) -> None:
    """A registry SHOULD serve GET /metrics in the Prometheus text exposition format ... a registry
    that exposes a metric of Table 12-9 SHOULD expose it under that name, with those labels."""
    reply = await ctx.get("/metrics")
    check(reply.status == 200, reply.brief())
    check(reply.media_type == "text/plain", f"Content-Type {reply.media_type!r}")
    text = reply.body.decode("utf-8")
    for metric in (
        "cid_registry_requests_total",
        "cid_registry_request_seconds",
        "cid_registry_feed_serial",
    ):
        check(
            f"# TYPE {metric.removesuffix('_total')}" in text or metric in text,
            f"metric {metric} is missing",
        )
    check(
        'route="' in text and 'method="' in text and 'status="' in text,
        "cid_registry_requests_total lacks the labels route, method, status",
    )


@s11.case(5, "X-Request-Id is echoed, or fresh and unpredictable", "REQ-REG-064")
async def request_id(ctx: RegistryContext) -> None:
    """Every response MUST carry an X-Request-Id header whose value is that of the request's
    X-Request-Id header when it has one, and otherwise a fresh unpredictable identifier."""
    mine = secrets.token_hex(16)
    for path in ("/healthz", "/v1/feed", "/v1/unknown"):
        echoed = await ctx.get(path, headers={"X-Request-Id": mine})
        check_equal(echoed.headers.get("X-Request-Id"), mine, f"X-Request-Id echoed by {path}")
    ids = [(await ctx.get(p)).headers.get("X-Request-Id") for p in ("/healthz",) * 3 + ("/v1/x",)]
    check(all(ids), f"a response without X-Request-Id: {ids}")
    check(len(set(ids)) == len(ids), f"request ids repeat: {ids}")
    check(all(len(str(i)) >= 16 for i in ids), f"request ids too short to be unpredictable: {ids}")
