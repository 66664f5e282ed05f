"""The suite catches broken registries: each variant of the reference breaks one rule.

Every variant wraps the real ``cid_registry`` app (an aiohttp middleware that
rewrites what the client sees, or a patch of one part of the app). For each, the
whole registry suite runs; the test checks that exactly the expected cases fail,
that each of them cites the requirement the variant breaks, that no case errors
(the suite itself must not break on a broken target), and so that the rest passes.

The two slowest cases (the read-timeout wait and the rate-limit probe) run only in
the variants that break those rules.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from cid import codec
from cid.envelope import Envelope, SignedRecord, parse_record_body, seal
from cid.errors import DecodeError, KeyNotAuthorisedError, SignatureInvalidError
from cid.signing import SigningKey
from cid_registry import app as registry_app
from cid_registry.app import FOLLOWER, INDEX, SETTINGS, STORE

from .conftest import Middleware, judge_broken, registry, run_suite

pytestmark = pytest.mark.asyncio

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SLOW = ["registry/12.3/12", "registry/12.3/13"]
BIG = codec.DEFAULT_LIMITS.scaled(max_bytes=512 * 1024 * 1024, max_array=2_000_000)


@dataclass
class Variant:
    breaks: str
    """The requirement the variant breaks: every failing case must cite it (or one of ``also``)."""
    fails: set[str]
    """Exactly the cases that fail."""
    middlewares: list[Middleware] = field(default_factory=list)
    patch: Callable[[web.Application, pytest.MonkeyPatch], None] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    also: tuple[str, ...] = ()
    """Further requirements the same defect breaks (e.g. the HTTP status rule with the error
    rule)."""
    slow: bool = False


# --- building blocks ----------------------------------------------------------------------------


def rewrite(
    path: str, fn: Callable[[Any, web.Request], Any], *, method: str | None = None
) -> Middleware:
    """Rewrite the cid value of successful answers on paths starting with ``path``."""

    @web.middleware
    async def mw(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if not request.path.startswith(path) or (method and request.method != method):
            return response
        if (
            not isinstance(response, web.Response)
            or response.status != 200
            or response.body is None
        ):
            return response
        enc = {"application/cid+json": "json", "application/cid+msgpack": "msgpack"}.get(
            response.content_type
        )
        if enc is None:
            return response
        value = fn(codec.decode(bytes(response.body), enc, BIG), request)  # type: ignore[arg-type]
        if isinstance(value, web.StreamResponse):
            return value
        response.body = codec.encode(value, enc)  # type: ignore[arg-type]
        return response

    return mw


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


def lenient_trust(app: web.Application, mp: pytest.MonkeyPatch, swallow: type[Exception]) -> None:
    """The registry's verifier lets ``swallow`` pass (the suite's own verifier is untouched)."""
    trust = app[FOLLOWER].trust
    original = trust.verify

    def verify(envelope: Envelope, **kw: Any) -> SignedRecord[Any]:
        try:
            return original(envelope, **kw)
        except swallow:
            return SignedRecord(
                envelope, parse_record_body(envelope), envelope.typ.rsplit(".", 1)[1]
            )

    mp.setattr(trust, "verify", verify)


# --- the variants -----------------------------------------------------------------------------


@web.middleware
async def accept_rollbacks(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if request.path == "/v1/records" and response.status == 409:
        return web.Response(
            body=codec.encode_json(
                {
                    "digest": "A" * 43,
                    "name": "x",
                    "op": "put",
                    "rseq": 1,
                    "serial": 1,
                    "type": "offer",
                }
            ),
            status=201,
            content_type="application/cid+json",
        )
    return response


@web.middleware
async def rollback_status_400(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if response.status == 409:
        response.set_status(400)
    return response


@web.middleware
async def msgpack_label(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if response.content_type == "application/cid+msgpack":
        response.content_type = "application/msgpack"
    return response


def ignore_expiry(app: web.Application, mp: pytest.MonkeyPatch) -> None:
    store = app[STORE]
    original = store.at_name

    async def at_name(name: str) -> Any:
        return [dataclasses.replace(r, expires=r.expires + 10**6) for r in await original(name)]

    mp.setattr(store, "at_name", at_name)


def drop_last_of_page(value: Any, request: web.Request) -> Any:
    if "next_cursor" in value and len(value["items"]) > 1:
        value["items"] = value["items"][:-1]
    return value


def no_referral(value: Any, request: web.Request) -> Any:
    if "referral" in value:
        return problem(request, 3001, "NOT_FOUND", 404)
    return value


def feed_gap(value: Any, request: web.Request) -> Any:
    if len(value.get("changes", [])) >= 3:
        del value["changes"][1]
    return value


def bad_head_signature(value: Any, request: web.Request) -> Any:
    sig = value["head"]["sigs"][0]["sig"]
    value["head"]["sigs"][0]["sig"] = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    return value


def wrong_snapshot_digest(value: Any, request: web.Request) -> Any:
    head = value["head"]
    body = {**head["body"], "digest": "B" * 43}
    key = request.app[SETTINGS].service_key
    resealed = seal(
        body,
        typ=head["header"]["typ"],
        sub=".",
        serial=head["header"]["serial"],
        key=key,
        nbf=head["header"]["nbf"],
        exp=head["header"]["exp"],
    )
    value["head"] = resealed.to_value()
    return value


@web.middleware
async def ignore_if_none_match(request: web.Request, handler: Handler) -> web.StreamResponse:
    if "If-None-Match" in request.headers:
        headers = request.headers.copy()
        del headers["If-None-Match"]
        request = request.clone(headers=headers)
    return await handler(request)


@web.middleware
async def bare_405(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if response.status == 405:
        return web.Response(
            text=json.dumps({"status": 405, "title": "Method Not Allowed"}),
            status=405,
            content_type="application/problem+json",
            headers={"X-Request-Id": "x"},
        )
    return response


def accept_duplicate_keys(app: web.Application, mp: pytest.MonkeyPatch) -> None:
    original = registry_app.decode_body

    async def decode_body(request: web.Request, limits: Any) -> Any:
        try:
            return await original(request, limits)
        except DecodeError as e:
            if e.detail.get("rule") != "unique_keys" or request.app is not app:
                raise
            value = json.loads(await request.read())
            return (*codec.decode_scanned(codec.encode_json(value), "json", limits), "json")

    mp.setattr(registry_app, "decode_body", decode_body)


def foreign_model_key(value: Any, request: web.Request) -> Any:
    """The published latency model, re-signed by a key that is not a service key."""
    h = value["header"]
    return seal(
        value["body"], typ=h["typ"], sub=".", serial=h["serial"], key=SigningKey.generate(),
        nbf=h["nbf"], exp=h["exp"],
    ).to_value()  # fmt: skip


def rank_without_model(app: web.Application, mp: pytest.MonkeyPatch) -> None:
    """The registry publishes its latency model but estimates no RTT with it."""
    mp.setattr(app[INDEX], "latency", None)


def string_prefix_lists(app: web.Application, mp: pytest.MonkeyPatch) -> None:
    store = app[STORE]
    original = store.list_namespace

    async def list_namespace(prefix: str, **kw: Any) -> Any:
        return await original(prefix.rstrip(" "), **kw)

    mp.setattr(store, "list_namespace", list_namespace)


@web.middleware
async def pretty_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if (
        isinstance(response, web.Response)
        and response.content_type == "application/cid+json"
        and response.body
    ):
        response.body = json.dumps(
            json.loads(bytes(response.body)), indent=1, ensure_ascii=False
        ).encode()  # type: ignore[arg-type]
    return response


def search_ignores_refreshes(app: web.Application, mp: pytest.MonkeyPatch) -> None:
    index = app[INDEX]
    original = index.apply_change

    def apply_change(change: Any, record: Any = None) -> None:
        if change.op != "refresh":
            original(change, record)

    mp.setattr(app[FOLLOWER], "_listeners", [apply_change])


@web.middleware
async def fresh_request_ids(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if response.status < 400:
        response.headers["X-Request-Id"] = uuid.uuid4().hex
    return response


VARIANTS: dict[str, Variant] = {
    "accepts a bad signature": Variant(
        "REQ-SIG-034",
        {
            "registry/12.4/1",
            "registry/12.4/2",
            "registry/12.5/4",
            "registry/5/11",
            "registry/6/1",
            "registry/6/13",
            "registry/6/15",
            "registry/6/2",
            "registry/6/27",
            "registry/6/5",
        },
        patch=lambda app, mp: lenient_trust(app, mp, SignatureInvalidError),
        also=(
            "REQ-SIG-001",
            "REQ-SIG-002",
            "REQ-SIG-004",
            "REQ-SIG-011",
            "REQ-SIG-021",
            "REQ-SIG-030",
            "REQ-ENC-005",
            "REQ-REG-011",
            "REQ-REG-021",
            "REQ-SEC-002",
        ),
    ),
    "accepts a rolled-back serial": Variant(
        "REQ-SIG-032",
        {
            "registry/12.4/3",
            "registry/12.4/4",
            "registry/12.5/10",
            "registry/12.5/12",
            "registry/6/25",
            "registry/6/28",
        },
        [accept_rollbacks],
        also=("REQ-REG-011", "REQ-REC-051", "REQ-REG-023", "REQ-REG-024", "REQ-RES-004"),
    ),
    "answers SERIAL_ROLLBACK with HTTP 400": Variant(
        "REQ-ERR-007",
        {"registry/12.3/8", "registry/6/28"},
        [rollback_status_400],
        also=("REQ-REG-004", "REQ-SIG-032"),
    ),
    "labels MessagePack application/msgpack": Variant(
        "REQ-ENC-020",
        {"registry/12.3/3"},
        [msgpack_label],
        also=("REQ-REG-003", "REQ-ENC-021", "REQ-REG-007"),
    ),
    "serves expired records": Variant(
        "REQ-REG-034",
        {"registry/12.6/10", "registry/12.6/8"},
        patch=ignore_expiry,
        also=("REQ-REG-033", "REQ-REC-006"),
    ),
    "pages skip an item": Variant(
        "REQ-QRY-017",
        {"registry/12.7/2"},
        [rewrite("/v1/namespaces/", drop_last_of_page)],
        also=("REQ-REG-040", "REQ-ID-022"),
    ),
    "answers NOT_FOUND instead of a referral": Variant(
        "REQ-REG-032",
        {"registry/12.6/7"},
        [rewrite("/v1/names/", no_referral)],
        also=("REQ-QRY-012", "REQ-ENC-030"),
    ),
    "feed pages with a gap": Variant(
        "REQ-FEED-001",
        {"registry/12.9/2", "registry/12.9/3"},
        [rewrite("/v1/feed", feed_gap)],
        also=("REQ-FEED-004", "REQ-FEED-005", "REQ-REG-010"),
    ),
    "feed heads with a bad signature": Variant(
        "REQ-FEED-002", {"registry/12.9/1"}, [rewrite("/v1/feed", bad_head_signature)]
    ),
    "snapshot head with a wrong digest": Variant(
        "REQ-FEED-010", {"registry/12.10/1"}, [rewrite("/v1/snapshot", wrong_snapshot_digest)]
    ),
    "ignores If-None-Match": Variant(
        "REQ-REG-033",
        {"registry/12.6/9", "registry/12.8/4"},
        [ignore_if_none_match],
        also=("REQ-REG-065",),
    ),
    "latency model signed by a key the root zone does not name": Variant(
        "REQ-REG-065", {"registry/12.8/4"}, [rewrite("/v1/latency-model", foreign_model_key)]
    ),
    "searches ignore the published latency model": Variant(
        "REQ-REG-066", {"registry/12.8/5"}, patch=rank_without_model, also=("REQ-QRY-030",)
    ),
    "no rate limit": Variant(
        "REQ-REG-006",
        {"registry/12.3/13"},
        settings={"rate_per_s": 1e9, "rate_burst": 10**9},
        args=["--rate-probe-max", "3000"],
        slow=True,
    ),
    "405 without the cid member": Variant(
        "REQ-REG-004",
        {"registry/12.2/3", "registry/12.3/7", "registry/12.3/8"},
        [bare_405],
        also=("REQ-REG-001", "REQ-ERR-002"),
    ),
    "accepts a key of another namespace": Variant(
        "REQ-SIG-045",
        {"registry/6/17", "registry/6/18", "registry/6/20", "registry/6/21"},
        patch=lambda app, mp: lenient_trust(app, mp, KeyNotAuthorisedError),
        also=(
            "REQ-SIG-041",
            "REQ-SIG-043",
            "REQ-SIG-044",
            "REQ-SIG-048",
            "REQ-ID-026",
            "REQ-SIG-050",
            "REQ-REC-005",
        ),
    ),
    "accepts duplicate map keys": Variant(
        "REQ-ENC-012",
        {"registry/10/1", "registry/5/3"},
        patch=accept_duplicate_keys,
        also=("REQ-ERR-008",),
    ),
    "lists by string prefix": Variant(
        "REQ-ID-023", {"registry/12.7/4"}, patch=string_prefix_lists, also=("REQ-REG-040",)
    ),
    "answers non-canonical JSON": Variant("REQ-REG-007", {"registry/5/14"}, [pretty_json]),
    "search ignores refreshes": Variant(
        "REQ-QRY-021",
        {"registry/12.8/2", "registry/7/10", "registry/7/17", "registry/7/26"},
        patch=search_ignores_refreshes,
        also=("REQ-REC-062", "REQ-REG-023", "REQ-REG-034"),
    ),
    "fresh X-Request-Id instead of the client's": Variant(
        "REQ-REG-064", {"registry/12.11/5"}, [fresh_request_ids]
    ),
}

from .test_reference_registry import KNOWN_DEVIATIONS  # noqa: E402


async def _check(name: str, variant: Variant, tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    """Run the suite against one broken variant; the problems found with what it reported."""
    patch = variant.patch
    async with registry(
        tmp,
        middlewares=variant.middlewares,
        patch=None if patch is None else (lambda app: patch(app, mp)),
        **variant.settings,
    ) as reg:
        exclude = [] if variant.slow else [a for s in SLOW for a in ("--exclude", s)]
        code, results = await run_suite(reg.args("--strict", *exclude, *variant.args))
    problems = judge_broken(
        code,
        results,
        breaks=variant.breaks,
        also=variant.also,
        fails=variant.fails,
        ignore=KNOWN_DEVIATIONS,
    )
    return [f"{name}: {p}" for p in problems]


@pytest.mark.slow
async def test_every_broken_variant_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each variant fails exactly its expected cases, all citing the rule it breaks.

    The variants run concurrently (their waits for expiry overlap); each has its own
    registry, store and client.
    """
    assert len(VARIANTS) >= 15
    gate = asyncio.Semaphore(10)

    async def one(i: int, name: str) -> list[str]:
        async with gate:
            folder = tmp_path / f"v{i}"
            folder.mkdir()
            return await _check(name, VARIANTS[name], folder, monkeypatch)

    outcomes = await asyncio.gather(*(one(i, n) for i, n in enumerate(VARIANTS)))
    problems = [p for found in outcomes for p in found]
    assert not problems, "\n".join(problems)
