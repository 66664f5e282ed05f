"""The registry application: ``create_app(settings)`` (spec section 12, HTTP binding).

Thin handlers over three parts built at start-up:

* the :class:`~cid_registry.store.Store` (SQLite or PostgreSQL),
* the :class:`~cid_registry.authority.Follower`, which keeps this process's
  trust state and search index in step with the store's change feed
  (also for changes written by other processes on a shared PostgreSQL),
* the :class:`~cid_registry.authority.Authority`, which verifies writes.

Domain errors become RFC 9457 problems in one middleware; nothing else
produces an error response, and an unexpected exception is logged and
answered as ``500 INTERNAL`` without internals ([REQ-REG-005]).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import hashlib
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from cid import codec
from cid.codec import Limits, Scan
from cid.envelope import Envelope, seal
from cid.errors import (
    CidError,
    DecodeError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    SchemaError,
)
from cid.feed import (
    CHAIN_ZERO,
    FEED_HEAD_TYP,
    SNAPSHOT_TYP,
    FeedHead,
    SnapshotHead,
    snapshot_digest,
)
from cid.http import decode_body, exception_problem, negotiate, render
from cid.identifier import Identifier
from cid.latency import MODEL_LIFETIME_S, seal_model
from cid.model import validate
from cid.query import Query
from cid.signing import b64url_decode, b64url_encode

from .authority import Accepted, Authority, Follower
from .index import SearchIndex
from .ratelimit import RateLimiter
from .settings import Settings
from .store import Change, Store, StoredRecord, open_store, rname_of

__all__ = ["AUTHORITY", "FOLLOWER", "INDEX", "SETTINGS", "STORE", "create_app"]

log = logging.getLogger("cid_registry")
access_log = logging.getLogger("cid_registry.access")

SETTINGS: Final = web.AppKey("settings", Settings)
STORE: Final = web.AppKey("store", Store)
FOLLOWER: Final = web.AppKey("follower", Follower)
AUTHORITY: Final = web.AppKey("authority", Authority)
INDEX: Final = web.AppKey("index", SearchIndex)
LIMITER: Final = web.AppKey("limiter", RateLimiter)
HEADS: Final = web.AppKey("heads", dict)
SHUTDOWN: Final = web.AppKey("shutdown", asyncio.Event)
RESOLVED: Final = web.AppKey("resolved", dict)
MODEL: Final = web.AppKey("latency_model", dict)
"""The signed latency-model envelope being served ([REQ-REG-065])."""

REQUEST_ID: Final = web.RequestKey("cid.request_id", str)
_UNLIMITED: Final = ("/healthz", "/readyz", "/metrics")


_LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
)  # fmt: skip


class RequestStats:
    """Request counts and latencies, kept as plain numbers and exposed at scrape time.

    A Prometheus collector ([REQ-REG-062]): every request costs a dictionary
    update and a bisection here, not the locking and label lookups of the
    client library's metric objects; ``/metrics`` renders the same families
    ``cid_registry_requests_total`` and ``cid_registry_request_seconds``.
    """

    def __init__(self, buckets: tuple[float, ...] = _LATENCY_BUCKETS) -> None:
        self.bounds = tuple(float(b) for b in buckets)
        self.counts: dict[tuple[str, str, int], int] = {}
        # per route: one count per bucket (the last is +Inf), and the sum of durations
        self.buckets: dict[str, list[int]] = {}
        self.sums: dict[str, float] = {}

    def observe(self, route: str, method: str, status: int, elapsed: float) -> None:
        key = (route, method, status)
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1
        buckets = self.buckets.get(route)
        if buckets is None:
            buckets = self.buckets[route] = [0] * (len(self.bounds) + 1)
            self.sums[route] = 0.0
        buckets[bisect.bisect_left(self.bounds, elapsed)] += 1
        self.sums[route] += elapsed

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "cid_registry_requests", "HTTP requests", labels=["route", "method", "status"]
        )
        for (route, method, status), n in sorted(self.counts.items()):
            requests.add_metric([route, method, str(status)], n)
        yield requests
        latency = HistogramMetricFamily(
            "cid_registry_request_seconds", "HTTP request latency", labels=["route"]
        )
        for route, counts in sorted(self.buckets.items()):
            cumulative, running = [], 0
            for bound, n in zip((*self.bounds, math.inf), counts, strict=True):
                running += n
                cumulative.append(("+Inf" if bound == math.inf else repr(bound), running))
            latency.add_metric([route], cumulative, self.sums[route])
        yield latency


class Metrics:
    """Prometheus metrics of one app (its own registry, so apps in one process do not clash)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http = RequestStats()
        self.registry.register(self.http)
        self.records = Gauge(
            "cid_registry_records", "Live records by type", ["type"], registry=self.registry
        )
        self.offers = Gauge(
            "cid_registry_offers", "Indexed offers by compute class", ["class"],
            registry=self.registry,
        )  # fmt: skip
        self.feed_serial = Gauge(
            "cid_registry_feed_serial", "Registry serial applied by this process",
            registry=self.registry,
        )  # fmt: skip
        self.writes = Counter(
            "cid_registry_writes", "Accepted writes", ["op"], registry=self.registry
        )


METRICS: Final = web.AppKey("metrics", Metrics)


# --- the middleware ---------------------------------------------------------------------


class _RequestIds:
    """Fresh unpredictable request ids ([REQ-REG-064]): 32 hex digits from the OS CSPRNG,
    drawn 256 at a time."""

    def __init__(self) -> None:
        self._pool = ""
        self._at = 0

    def next(self) -> str:
        at = self._at
        if at >= len(self._pool):
            self._pool, at = os.urandom(16 * 256).hex(), 0
        self._at = at + 32
        return self._pool[at : at + 32]


def _route_name(request: web.Request) -> str:
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _front_middleware(app: web.Application) -> Middleware:
    """The one middleware: request id, rate limit, metrics, access log, errors as problems.

    One function rather than a chain: each request passes one wrapper.
    Domain errors (and the rate limit's) become problems here, and nowhere else.
    """
    ids = _RequestIds()
    perf_counter = time.perf_counter

    @web.middleware
    async def front(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = request.headers.get("X-Request-Id") or ids.next()
        request[REQUEST_ID] = request_id
        started = perf_counter()
        try:
            # REQ-REG-006: a per-client token bucket; health and metrics are exempt
            if request.path not in _UNLIMITED:
                wait = app[LIMITER].take(request.remote or "unknown")
                if wait > 0:
                    raise RateLimitedError(
                        "too many requests from this client",
                        detail={"retry_after_s": max(1, int(wait + 0.999))},
                    )
            response = await handler(request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # REQ-REG-004/005: every error is a problem, here only
            response = exception_problem(request, exc, request_id, service="registry", logger=log)
        response.headers["X-Request-Id"] = request_id
        elapsed = perf_counter() - started
        app[METRICS].http.observe(_route_name(request), request.method, response.status, elapsed)
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": request.method,
                    "path": request.path,
                    "status": response.status,
                    "duration_ms": round(elapsed * 1000, 3),
                    "remote": request.remote,
                },
            )
        return response

    return front


# --- helpers --------------------------------------------------------------------------------


def _now(request: web.Request) -> int:
    return request.app[SETTINGS].clock()


def _name_param(request: web.Request) -> Identifier:
    # "/v1/names/." is normalised to "/v1/names/" by URL libraries: both mean the root
    raw = request.match_info.get("name", "")
    return Identifier.root() if raw in (".", "") else Identifier.parse(raw)


_TYPES: Final = ("zone", "offer", "delegation", "keyrotation")


def _types_param(request: web.Request) -> set[str] | None:
    raw = request.query.get("types")
    if raw is None:
        return None
    tokens = raw.split(",")
    types = set(tokens)
    if len(types) != len(tokens):
        raise SchemaError("types repeats a type", field="types", detail={"rule": "unique"})
    if not types <= set(_TYPES):
        raise SchemaError(
            f"types must be among {', '.join(_TYPES)}", field="types", detail={"rule": "enum"}
        )
    return types


def _int_param(request: web.Request, key: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SchemaError(f"{key} must be an integer", field=key, detail={"rule": "int"}) from None
    if not lo <= value <= hi:
        raise SchemaError(f"{key} must be in [{lo}, {hi}]", field=key, detail={"rule": "range"})
    return value


async def _read_limited(request: web.Request, limits: Limits) -> tuple[Any, Scan]:
    settings = request.app[SETTINGS]
    if request.content_length is not None and request.content_length > limits.max_bytes:
        raise PayloadTooLargeError(
            f"body of {request.content_length} bytes, limit {limits.max_bytes}",
            detail={"rule": "max_body_bytes", "limit": limits.max_bytes},
        )
    try:
        value, scan, _ = await asyncio.wait_for(
            decode_body(request, limits), timeout=settings.read_timeout_s
        )
    except TimeoutError:
        raise DecodeError(
            "request body not received in time", detail={"rule": "read_timeout"}
        ) from None
    return value, scan


def _accepted_value(a: Accepted) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": a.name,
        "type": a.rtype,
        "op": a.op,
        "serial": a.serial,
        "digest": a.digest,
    }
    if a.rseq is not None:
        out["rseq"] = a.rseq
    return out


# --- write handlers ---------------------------------------------------------------------------


async def post_record(request: web.Request) -> web.Response:
    """Register, update, refresh or delete one record ([REQ-REG-020])."""
    encoding = negotiate(request)
    settings = request.app[SETTINGS]
    value, scan = await _read_limited(
        request, codec.DEFAULT_LIMITS.scaled(max_bytes=settings.max_body_bytes)
    )
    envelope = Envelope.from_value(value, scan=scan)
    # shield: a client that disconnects mid-write must not cancel a commit half-way
    accepted = await asyncio.shield(request.app[AUTHORITY].submit(envelope))
    request.app[METRICS].writes.labels(accepted.op if accepted.rseq else "idempotent").inc()
    status = 201 if accepted.rseq is not None and accepted.op == "put" else 200
    return render(_accepted_value(accepted), encoding, status=status)


async def post_batch(request: web.Request) -> web.Response:
    """Many envelopes; each is accepted or refused on its own ([REQ-REG-021])."""
    encoding = negotiate(request)
    settings = request.app[SETTINGS]
    limits = codec.DEFAULT_LIMITS.scaled(
        max_bytes=settings.max_batch_bytes, max_array=settings.max_batch_records
    )
    value, scan = await _read_limited(request, limits)
    if (
        not isinstance(value, dict)
        or set(value) != {"records"}
        or not isinstance(value["records"], list)
    ):
        raise SchemaError(
            'a batch is {"records": [envelope, ...]}', field="records", detail={"rule": "batch"}
        )
    authority = request.app[AUTHORITY]
    # parse every envelope first; a malformed one is that item's error, not the batch's
    parsed: list[Envelope | CidError] = []
    for item in value["records"]:
        try:
            parsed.append(Envelope.from_value(item, scan=scan))
        except CidError as err:
            parsed.append(err)
    envelopes = [p for p in parsed if isinstance(p, Envelope)]
    outcomes = iter(await asyncio.shield(authority.submit_many(envelopes)))
    results: list[dict[str, Any]] = []
    ops: dict[str, int] = {}
    for i, item in enumerate(parsed):
        outcome = item if isinstance(item, CidError) else next(outcomes)
        if isinstance(outcome, CidError):
            wire = outcome.to_wire()
            wire.setdefault("detail", {})["index"] = i
            results.append({"error": wire})
        else:
            op = outcome.op if outcome.rseq else "idempotent"
            ops[op] = ops.get(op, 0) + 1
            results.append({"ok": _accepted_value(outcome)})
    writes = request.app[METRICS].writes
    for op, n in ops.items():
        writes.labels(op).inc(n)
    return render({"results": results}, encoding)


# --- read handlers ----------------------------------------------------------------------------


async def _proof(request: web.Request, name: Identifier) -> list[dict[str, Any]]:
    """Delegation and rotation records from the top down to the namespace governing ``name``."""
    store = request.app[STORE]
    trust = request.app[FOLLOWER].trust
    chain: list[dict[str, Any]] = []
    ns = trust.namespace_for(name)
    for ancestor in reversed(ns.name.ancestors()):
        if ancestor.is_root:
            continue
        for rtype in ("delegation", "keyrotation"):
            stored = await store.get(ancestor.to_text(), rtype)
            if stored is not None and not stored.deleted:
                chain.append(codec.decode_msgpack(stored.envelope))
    return chain


async def get_name(request: web.Request) -> web.Response:
    """Resolve one identifier: its records, a referral, or NOT_FOUND ([REQ-REG-030]..)."""
    encoding = negotiate(request)
    now = _now(request)
    follower = request.app[FOLLOWER]
    # An answer depends only on the store and the trust state (changes move
    # follower.applied), and on the clock (expiries): it is reused, keyed by the
    # request as received, while neither has moved past it.
    cache = request.app[RESOLVED]
    key = (request.match_info.get("name", ""), request.query_string, encoding)
    hit = cache.get(key)
    if hit is not None and hit.applied == follower.applied and now < hit.until:
        return _cached_answer(request, hit, now)
    applied = follower.applied
    name = _name_param(request)
    ns = follower.trust.namespace_for(name)
    store = request.app[STORE]
    settings = request.app[SETTINGS]
    here = (settings.self_url or "").rstrip("/")
    if ns.registries and not ns.name.is_root and here not in {r.rstrip("/") for r in ns.registries}:
        # REQ-REG-032: a namespace served by another registry gets a referral, like DNS NS.
        delegation = await store.get(ns.name.to_text(), "delegation")
        if delegation is not None and not delegation.deleted:
            referral = {
                "name": name.to_text(),
                "referral": {
                    "namespace": ns.name.to_text(),
                    "registries": list(ns.registries),
                    "delegation": codec.decode_msgpack(delegation.envelope),
                },
                "proof": await _proof(request, ns.name.parent()),
            }
            return render(referral, encoding, headers={"Cache-Control": "max-age=60"})
    # REQ-REG-034 / REQ-SIG-044: expired records, and records whose signer no longer has
    # authority here (revoked, or its delegation gone), are not served
    live = [
        r
        for r in await store.at_name(name.to_text())
        if r.expires > now and _still_authorised(follower, r, now)
    ]
    if not live:
        raise NotFoundError(f"no records at {name}", field="name", detail={"name": name.to_text()})
    wanted = _types_param(request)
    # REQ-QRY-014: records of the name but none of the types asked for: an empty answer
    rows = live if wanted is None else [r for r in live if r.rtype in wanted]
    records = [codec.decode_msgpack(r.envelope) for r in rows]
    # REQ-QRY-011: an offer comes with the latest refresh of its version
    records += [codec.decode_msgpack(r.refresh) for r in rows if r.refresh is not None]
    body: dict[str, Any] = {
        "name": name.to_text(),
        "records": records,
        "proof": await _proof(request, name),
    }
    # the ETag covers the records, their proof and the representation
    tag = hashlib.sha256(encoding.encode())
    for r in rows:
        tag.update(f"{r.rtype}:{r.serial}:{r.digest};".encode())
    proof_envs = [Envelope.from_value(p) for p in body["proof"]]
    for env in proof_envs:
        tag.update(env.digest().encode())
    answer = _Answer(
        applied=applied,
        # valid until a record expires or an authority record of the proof does
        until=min([r.expires for r in live] + [e.header.exp for e in proof_envs]),
        ttl=min((int(rec["header"].get("ttl", 300)) for rec in records), default=0),
        expires=min((r.expires for r in rows), default=now),
        etag=f'"{tag.hexdigest()[:32]}"',
        body=codec.encode(body, encoding),
        content_type=codec.media_type(encoding),
    )
    if len(cache) >= 10_000:
        cache.clear()
    cache[key] = answer
    return _cached_answer(request, answer, now)


@dataclass(slots=True)
class _Answer:
    """A rendered resolve answer and how long it stays right."""

    applied: int
    until: int
    ttl: int
    expires: int
    etag: str
    body: bytes
    content_type: str
    _headers_at: int = -1
    _headers: dict[str, str] = field(default_factory=dict)

    def headers(self, now: int) -> dict[str, str]:
        """The response headers at ``now`` (rebuilt once a second at most)."""
        if now != self._headers_at:
            # REQ-REG-033: cache for the smallest TTL, never past the earliest expiry
            max_age = max(0, min(self.ttl, self.expires - now))
            self._headers = {
                "Content-Type": self.content_type,
                "Cache-Control": f"max-age={max_age}",
                "ETag": self.etag,
                "Vary": "Accept",
            }
            self._headers_at = now
        return self._headers


def _cached_answer(request: web.Request, answer: _Answer, now: int) -> web.Response:
    headers = answer.headers(now)
    condition = request.headers.get("If-None-Match")
    if condition is not None and answer.etag in _etags(condition):
        headers = {k: v for k, v in headers.items() if k != "Content-Type"}
        return web.Response(status=304, headers=headers)
    return web.Response(body=answer.body, headers=headers)


def _etags(header: str) -> set[str]:
    """The entity tags of an If-None-Match header (weak ones compared weakly, RFC 9110 13.1.2)."""
    if header.strip() == "*":
        return {"*"}
    return {t.strip().removeprefix("W/") for t in header.split(",") if t.strip()}


def _still_authorised(follower: Follower, row: StoredRecord, now: int) -> bool:
    env = Envelope.decode(row.envelope, "msgpack")
    try:
        name, trust = Identifier.parse(row.name), follower.trust
        return all(trust.may_sign(name, s.kid, row.rtype, now=now) for s in env.sigs)
    except CidError:
        return False


async def get_namespace(request: web.Request) -> web.Response:
    """List the records at and below a namespace, paged ([REQ-REG-040])."""
    encoding = negotiate(request)
    name = _name_param(request)
    limit = _int_param(request, "limit", 100, 1, 1000)
    cursor = request.query.get("cursor")
    after = None
    if cursor:
        try:
            after = b64url_decode(cursor, field="cursor").decode("utf-8")
        except (DecodeError, UnicodeDecodeError) as e:
            raise SchemaError("bad cursor", field="cursor", detail={"rule": "cursor"}) from e
    wanted = _types_param(request)
    store = request.app[STORE]
    prefix, now = rname_of(name), _now(request)
    rows: list[StoredRecord] = []
    # REQ-QRY-015: restricted to the types asked for; keep reading until the page is full
    while len(rows) <= limit:
        batch = await store.list_namespace(prefix, after=after, limit=limit + 1, now=now)
        rows += [
            r
            for r in batch
            if (wanted is None or r.rtype in wanted)
            # REQ-SIG-044/049/050: records whose authority lapsed are not listed
            and _still_authorised(request.app[FOLLOWER], r, now)
        ]
        if len(batch) <= limit:
            break
        tail = batch[-1]
        after = f"{rname_of(Identifier.parse(tail.name))}\x00{tail.rtype}"
    items = [
        {"name": r.name, "type": r.rtype, "serial": r.serial, "digest": r.digest}
        for r in rows[:limit]
    ]
    body: dict[str, Any] = {"items": items}
    if len(rows) > limit:
        last = rows[limit - 1]
        body["next_cursor"] = b64url_encode(
            f"{rname_of(Identifier.parse(last.name))}\x00{last.rtype}".encode()
        )
    return render(body, encoding)


async def post_search(request: web.Request) -> web.Response:
    """Capability search over the live offers ([REQ-REG-050])."""
    encoding = negotiate(request)
    value, _ = await _read_limited(request, codec.DEFAULT_LIMITS.scaled(max_bytes=64 * 1024))
    query = validate(Query, value)  # REQ-QRY-002: fields are named by their path in the query
    settings = request.app[SETTINGS]
    result = request.app[INDEX].search(query, now=_now(request), budget=settings.search_budget)
    return render(result, encoding)


# --- feed -----------------------------------------------------------------------------------


def _signed_head(app: web.Application, rseq: int, chain: str) -> dict[str, Any]:
    cache: dict[int, dict[str, Any]] = app[HEADS]
    settings = app[SETTINGS]
    now = settings.clock()
    cached = cache.get(rseq)
    # reuse a head for at most half its validity, so that no served head is near expiry
    if (
        cached is not None
        and cached["body"]["chain"] == chain
        and now - cached["body"]["at"] < 1800
    ):
        return cached
    head = FeedHead(rseq=rseq, chain=chain, at=now)
    env = seal(
        head,
        typ=FEED_HEAD_TYP,
        sub=Identifier.root(),
        serial=max(rseq, 1),
        key=settings.service_key,
        nbf=now,
        exp=now + 3600,
    )
    value = env.to_value()
    if len(cache) > 64:
        cache.clear()
    cache[rseq] = value
    return value


async def _chain_at(store: Store, rseq: int) -> str:
    if rseq == 0:
        return CHAIN_ZERO
    return (await store.changes(rseq - 1, 1))[0].chain


def _change_value(change: Change) -> dict[str, Any]:
    return {
        "rseq": change.rseq,
        "op": change.op,
        "name": change.name,
        "type": change.rtype,
        "envelope": codec.decode_msgpack(change.envelope),
    }


async def get_feed(request: web.Request) -> web.Response:
    """Changes after ``since``, long-polling up to ``wait`` seconds ([REQ-FEED-004])."""
    encoding = negotiate(request)
    settings = request.app[SETTINGS]
    store = request.app[STORE]
    since = _int_param(request, "since", 0, 0, 2**53 - 1)
    limit = _int_param(request, "limit", settings.feed_page_max, 1, settings.feed_page_max)
    wait_s = _int_param(request, "wait", 0, 0, int(settings.long_poll_max_s))
    head_rseq, _ = await store.head()
    if since > head_rseq:
        raise SchemaError(
            f"since={since} is beyond the registry head {head_rseq}",
            field="since",
            detail={"rule": "since_beyond_head", "head": head_rseq},
        )
    if head_rseq == since and wait_s > 0:
        # a long poll ends early when the server shuts down (graceful shutdown must not wait)
        waiter = asyncio.ensure_future(store.wait_for_change(since, wait_s))
        stopping = asyncio.ensure_future(request.app[SHUTDOWN].wait())
        try:
            await asyncio.wait({waiter, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in (waiter, stopping):
                fut.cancel()
    changes = await store.changes(since, limit)
    # the head of a page is the chain value after its last change ([REQ-FEED-004])
    if changes:
        rseq, chain = changes[-1].rseq, changes[-1].chain
    else:
        rseq, chain = since, await _chain_at(store, since)
    body = {
        "changes": [_change_value(c) for c in changes],
        "head": _signed_head(request.app, rseq, chain),
    }
    return render(body, encoding)


async def get_latency_model(request: web.Request) -> web.Response:
    """The latency model searches rank with, signed by a service key ([REQ-REG-065])."""
    encoding = negotiate(request)
    settings = request.app[SETTINGS]
    model = settings.latency_model
    if model is None:
        raise NotFoundError(
            "this registry publishes no latency model", detail={"rule": "latency_model"}
        )
    now = settings.clock()
    cache = request.app[MODEL]
    env = cache.get("envelope")
    # re-sign after half the validity, so that no served envelope is near expiry
    if env is None or now - env.header.iat >= MODEL_LIFETIME_S // 2 or now < env.header.iat:
        env = seal_model(model, settings.service_key, now)
        cache["envelope"] = env
    tag = hashlib.sha256(f"{encoding}:{model.id}:{model.version}".encode()).hexdigest()[:32]
    headers = {
        "Cache-Control": f"max-age={max(0, env.header.exp - now)}",
        "ETag": f'"{tag}"',
        "Vary": "Accept",
    }
    condition = request.headers.get("If-None-Match")
    if condition is not None and headers["ETag"] in _etags(condition):
        return web.Response(status=304, headers=headers)
    return render(env.to_value(), encoding, headers=headers)


async def get_snapshot(request: web.Request) -> web.StreamResponse:
    """The live catalogue at one registry serial, with a signed digest ([REQ-FEED-010])."""
    encoding = negotiate(request)
    settings = request.app[SETTINGS]
    rseq, chain, rows = await request.app[STORE].snapshot()
    now = settings.clock()
    digest = snapshot_digest((r.name, r.rtype, r.digest) for r in rows)
    head = SnapshotHead(rseq=rseq, chain=chain, records=len(rows), digest=digest, at=now)
    env = seal(
        head,
        typ=SNAPSHOT_TYP,
        sub=Identifier.root(),
        serial=max(rseq, 1),
        key=settings.service_key,
        nbf=now,
        exp=now + 3600,
    )
    records = []
    for r in rows:
        item: dict[str, Any] = {"envelope": codec.decode_msgpack(r.envelope)}
        if r.refresh is not None:
            item["refresh"] = codec.decode_msgpack(r.refresh)
        records.append(item)
    return render({"head": env.to_value(), "records": records}, encoding)


# --- operations -------------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    store = request.app[STORE]
    try:
        rseq, _ = await asyncio.wait_for(store.head(), timeout=2)
    except Exception as e:
        return web.json_response({"status": "unavailable", "reason": type(e).__name__}, status=503)
    return web.json_response(
        {"status": "ready", "rseq": rseq, "applied": request.app[FOLLOWER].applied}
    )


async def metrics(request: web.Request) -> web.Response:
    m = request.app[METRICS]
    counts = await request.app[STORE].count()
    for rtype in ("zone", "offer", "delegation", "keyrotation"):
        m.records.labels(rtype).set(counts.get(rtype, 0))
    for cls, n in request.app[INDEX].counts_by_class().items():
        m.offers.labels(cls).set(n)
    m.feed_serial.set(request.app[FOLLOWER].applied)
    resp = web.Response(body=generate_latest(m.registry))
    resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return resp


async def openapi(request: web.Request) -> web.Response:
    from .openapi import build_openapi

    return web.json_response(build_openapi())


# --- lifecycle --------------------------------------------------------------------------------


async def _state_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    store = app.get(STORE) or open_store(settings.store)
    app[STORE] = store
    await store.open()
    follower = Follower(store, settings.root_keys, settings.clock)

    def authorised(name: Identifier, kid: str, now: int) -> bool:
        try:
            return follower.trust.may_sign(name, kid, "offer", now=now)
        except CidError:
            return False

    index = SearchIndex(settings.latency_model, authorised=authorised)
    follower.on_change(index.apply_change)
    await follower.catch_up()
    app[FOLLOWER] = follower
    app[INDEX] = index
    app[AUTHORITY] = Authority(store, follower, clock=settings.clock)
    stop = asyncio.Event()

    async def follow() -> None:
        # keep up with writes by other processes sharing the store ([REQ-REG-012])
        while not stop.is_set():
            try:
                head = await store.wait_for_change(follower.applied, 1.0)
                if head > follower.applied:
                    await follower.catch_up(head)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("feed follower error; retrying")
                await asyncio.sleep(1)

    task = asyncio.create_task(follow(), name="cid-registry-follower")
    try:
        yield
    finally:
        stop.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await store.close()


def create_app(settings: Settings, *, store: Store | None = None) -> web.Application:
    """The registry as an aiohttp application. ``store`` overrides ``settings.store``."""
    app = web.Application(client_max_size=settings.max_batch_bytes)
    app.middlewares.append(_front_middleware(app))
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[LIMITER] = RateLimiter(settings.rate_per_s, settings.rate_burst)
    app[HEADS] = {}
    app[SHUTDOWN] = asyncio.Event()
    app[MODEL] = {}
    app[RESOLVED] = {}

    async def on_shutdown(app: web.Application) -> None:
        app[SHUTDOWN].set()

    app.on_shutdown.append(on_shutdown)
    if store is not None:
        app[STORE] = store
    app.cleanup_ctx.append(_state_ctx)
    app.router.add_post("/v1/records", post_record)
    app.router.add_post("/v1/records/batch", post_batch)
    app.router.add_get("/v1/names/{name}", get_name)
    app.router.add_get("/v1/names/", get_name)
    app.router.add_get("/v1/namespaces/{name}", get_namespace)
    app.router.add_get("/v1/namespaces/", get_namespace)
    app.router.add_post("/v1/search", post_search)
    app.router.add_get("/v1/feed", get_feed)
    app.router.add_get("/v1/snapshot", get_snapshot)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/v1/latency-model", get_latency_model)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)
    return app
