"""The requester client refuses whatever does not verify (issue 5: requester-side attacks).

An in-process registry and the provider SDK app run on loopback with one
controllable clock; the provider's zone record points the requester at a
tampering proxy in front of the app. The proxy can alter an answer without
re-signing it (a man in the middle), or alter and re-sign it with the
provider's own service key (a lying provider) or another key. Each lie must be
refused with its typed error, and nothing the requester holds may change.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from cid import codec
from cid import examples as ex
from cid.envelope import Envelope, parse_header, sign_record
from cid.errors import (
    CapacityExhaustedError,
    KeyUnknownError,
    NegotiationError,
    NotFoundError,
    PriceAboveLimitError,
    ReceiptInvalidError,
    SchemaError,
    SignatureInvalidError,
    VerificationError,
)
from cid.identifier import Identifier
from cid.invocation import TaskState
from cid.negotiation import MaxPrice
from cid.provider import ListPricePolicy, MemoryLedger, OfferVersion, create_provider_app
from cid.query import ResourceDemand, price_demand
from cid.record import Endpoints, ZoneBody
from cid.requester import Requester
from cid.resolver import Resolver
from cid.signing import SigningKey, b64url_encode
from cid_registry.store.sqlite import SqliteStore

from ..registry.harness import Clock, Operator, serve_in_process
from .conftest import FakeExecutor

pytestmark = pytest.mark.asyncio

DAY = 86_400
NAMESPACE = "ctyun"
OFFER = "gz.ctyun"
Mutate = Callable[[str, Any], Any]
OTHER_DIGEST = b64url_encode(hashlib.sha256(b"another").digest())


def resign(value: dict[str, Any], key: SigningKey, **body: Any) -> dict[str, Any]:
    """The envelope ``value`` with ``body`` members changed and signed again by ``key``."""
    header_value = copy.deepcopy(value["header"])
    body_value = {**copy.deepcopy(value["body"]), **body}
    env = Envelope(parse_header(header_value), header_value, body_value, ()).add_signature(key)
    return env.to_value()


class Proxy:
    """Between requester and provider: forwards, and lets a test rewrite the answers."""

    def __init__(self) -> None:
        self.upstream = ""
        self.mutate: Mutate | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        key = str(request.rel_url)
        async with aiohttp.ClientSession() as s, s.request(
            request.method, self.upstream + key, data=await request.read(),
            headers={k: v for k, v in request.headers.items()
                     if k.lower() in ("accept", "content-type")},
        ) as r:  # fmt: skip
            body, ctype, status = await r.read(), r.content_type, r.status
        if status < 300 and self.mutate is not None:
            if ctype == "application/cid+json":
                body = codec.encode_json(self.mutate(key, codec.decode_json(body)))
            elif ctype == "application/octet-stream":
                body = self.mutate(key, body)
        return web.Response(status=status, body=body, content_type=ctype)


@dataclass
class World:
    clock: Clock
    resolver: Resolver
    proxy: Proxy
    service: SigningKey
    executor: FakeExecutor
    offer: OfferVersion

    def requester(self, key: SigningKey | None = None) -> Requester:
        return Requester(key or SigningKey.generate(), self.resolver, clock=self.clock)


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@pytest_asyncio.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = Clock(now=ex.EPOCH + 60)
    operator = Operator()
    anchor, service = ex.provider_key(), SigningKey.generate()
    store = SqliteStore(str(tmp_path / "r.sqlite3"))
    proxy = Proxy()
    proxy_app = web.Application()
    proxy_app.router.add_route("*", "/{tail:.*}", proxy.handle)
    proxy_runner, proxy_url = await _serve(proxy_app)
    now = clock()
    body = ex.guizhou_offer().model_copy(
        update={"availability": ex.guizhou_offer().availability.model_copy(
            update={"units_total": 2, "units_free": 2})}
    )  # fmt: skip
    offer_rec = sign_record(
        body, name=OFFER, serial=1, key=anchor, nbf=now - 60, exp=now + 3600, ttl=300
    )
    offer = OfferVersion(Identifier(OFFER), 1, offer_rec.envelope.digest(), body, now + 3600)
    executor = FakeExecutor(clock)  # type: ignore[arg-type]
    app = create_provider_app(
        namespace=Identifier(NAMESPACE),
        service_key=service,
        offers={offer.name: offer}.get,
        policy=ListPricePolicy(),
        ledger=MemoryLedger(),
        executor=executor,
        clock=clock,
    )
    app_runner, app_url = await _serve(app)
    proxy.upstream = app_url
    zone = sign_record(
        ZoneBody(
            display_name="CTyun test",
            service_keys=[service.public_key],
            endpoints=Endpoints(
                negotiate=f"{proxy_url}/v1/negotiate", invoke=f"{proxy_url}/v1/invoke"
            ),
        ),
        name=NAMESPACE,
        serial=1,
        key=anchor,
        nbf=now - 60,
        exp=now + DAY,
    )
    try:
        async with serve_in_process(store, clock=clock, operator=operator) as registry:
            async with aiohttp.ClientSession() as s:
                for rec in (
                    operator.root_zone(now=now),
                    operator.delegate(NAMESPACE, anchor, now=now),
                    zone,
                    offer_rec,
                ):
                    async with s.post(
                        registry + "/v1/records",
                        data=codec.encode_json(rec.envelope.to_value()),
                        headers={"Content-Type": "application/cid+json"},
                    ) as r:
                        assert r.status < 300, await r.text()
            async with Resolver([registry], [operator.root.public_key], clock=clock) as resolver:
                yield World(clock, resolver, proxy, service, executor, offer)
    finally:
        await app_runner.cleanup()
        await proxy_runner.cleanup()
        await store.close()


def _demand(clock: Clock, **over: Any) -> dict[str, Any]:
    now = clock()
    value: dict[str, Any] = {
        "quantity": 1,
        "duration_s": 30 * DAY,
        "start_after": now,
        "start_before": now + 600,
        "max_price": MaxPrice(currency="CNY", total=Decimal("100")),
    }
    value.update(over)
    return value


def _on(path_end: str, change: Callable[[Any], Any]) -> Mutate:
    def mutate(path: str, value: Any) -> Any:
        return change(value) if path.split("?", maxsplit=1)[0].endswith(path_end) else value

    return mutate


# --- the honest path -----------------------------------------------------------------------------


async def test_negotiate_invoke_result_through_an_honest_proxy(world: World) -> None:
    traced: list[str] = []
    async with world.requester() as req:
        req.trace = lambda what, env: traced.append(what)
        agreement_env = await req.negotiate(OFFER, **_demand(world.clock))
        agreement, provider = await req.open_agreement(agreement_env)
        assert traced == ["demand", "quote", "accept", "agreement", "countersigned"]
        assert len(agreement_env.sigs) == 2
        task_id = await req.invoke(agreement_env, req.task(agreement, ["echo", "hi"]))
        assert (await req.status(task_id)).state == TaskState.QUEUED
        world.executor.run(task_id)
        world.executor.finish(task_id, outputs={"out/x.txt": b"42\n"})
        last = await req.wait(task_id)
        assert last.state == TaskState.SUCCEEDED
        outcome = await req.result(task_id)
        assert outcome.receipt is not None
        assert await req.output(task_id, "out/x.txt") == b"42\n"
        assert await req.output(task_id, ":stdout") == b"hello\n"
        with pytest.raises(NotFoundError):
            await req.output(task_id, "out/missing.txt")
        assert [r.task_id for r in await req.receipts(agreement_env)] == [task_id]
        assert provider.namespace == Identifier(NAMESPACE)


async def test_cancel_and_resume_the_event_stream(world: World) -> None:
    async with world.requester() as req:
        env = await req.negotiate(OFFER, **_demand(world.clock))
        agreement, _ = await req.open_agreement(env)
        task_id = await req.invoke(env, req.task(agreement, ["sleep", "60"]))
        world.executor.run(task_id)
        assert (await req.status(task_id)).state == TaskState.RUNNING
        status = await req.cancel(task_id, reason="changed my mind")
        assert status is not None and status.state == TaskState.CANCELLED
        # the stream resumes after the statuses already held: nothing older comes again
        assert [s.state async for s in req.events(task_id)] == []
        assert (await req.wait(task_id)).state == TaskState.CANCELLED


async def test_a_rejection_becomes_its_typed_error(world: World) -> None:
    async with world.requester() as a, world.requester() as b, world.requester() as c:
        await a.negotiate(OFFER, **_demand(world.clock, quantity=2))
        with pytest.raises(CapacityExhaustedError):
            await b.negotiate(OFFER, **_demand(world.clock))
        with pytest.raises(NotFoundError):
            await c.negotiate("nothing.ctyun", **_demand(world.clock))


async def test_a_counter_is_declined_unless_accepted(world: World) -> None:
    async with world.requester() as req:
        with pytest.raises(NegotiationError) as e:
            await req.negotiate(OFFER, **_demand(world.clock, quantity=3))
        assert e.value.detail["rule"] == "counter"
        env = await req.negotiate(
            OFFER, **_demand(world.clock, quantity=3), accept_counter=lambda c: True
        )
        assert env.body_value["quantity"] == 2


# --- lies about the quote ------------------------------------------------------------------------


async def test_quote_altered_in_transit_is_refused(world: World) -> None:
    def cheaper(v: dict[str, Any]) -> dict[str, Any]:
        v["body"]["expires"] += 1
        return v

    world.proxy.mutate = _on("/demand", cheaper)
    async with world.requester() as req:
        with pytest.raises(SignatureInvalidError):
            await req.negotiate(OFFER, **_demand(world.clock))


async def test_quote_signed_by_another_key_is_refused(world: World) -> None:
    mallory = SigningKey.generate()
    world.proxy.mutate = _on("/demand", lambda v: resign(v, mallory))
    async with world.requester() as req:
        with pytest.raises(KeyUnknownError):
            await req.negotiate(OFFER, **_demand(world.clock))


async def test_quote_priced_off_the_offer_is_refused(world: World) -> None:
    """Signed by the provider, but not the price its own offer gives for the demand."""
    body = world.offer.body
    double = price_demand(body.price, body.unit, ResourceDemand(units=1), 60 * DAY).to_value()
    world.proxy.mutate = _on("/demand", lambda v: resign(v, world.service, price=double))
    async with world.requester() as req:
        with pytest.raises(NegotiationError) as e:
            await req.negotiate(OFFER, **_demand(world.clock))
    assert e.value.detail["rule"] == "price"


async def test_quote_above_the_limit_is_refused(world: World) -> None:
    async with world.requester() as req:
        with pytest.raises((PriceAboveLimitError, NegotiationError)):
            await req.negotiate(
                OFFER,
                **_demand(world.clock, max_price=MaxPrice(currency="CNY", total=Decimal("1"))),
            )


@pytest.mark.parametrize(
    ("member", "value", "rule"),
    [
        ("demand", OTHER_DIGEST, "demand_digest"),
        ("offer_digest", OTHER_DIGEST, "offer_version"),
        ("quantity", 2, "quantity"),
    ],
)
async def test_quote_that_does_not_answer_the_demand_is_refused(
    world: World, member: str, value: Any, rule: str
) -> None:
    def lie(v: dict[str, Any]) -> dict[str, Any]:
        extra: dict[str, Any] = {member: value}
        if member == "quantity":
            extra["price"] = {**v["body"]["price"], "units": 2}
        return resign(v, world.service, **extra)

    world.proxy.mutate = _on("/demand", lie)
    async with world.requester() as req:
        with pytest.raises((NegotiationError, SchemaError)) as e:
            await req.negotiate(OFFER, **_demand(world.clock))
    assert e.value.detail.get("rule") in (rule, "units")


# --- lies about the agreement --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"limits": {"cpu_s": 1, "memory_mib": 1, "wall_s": 1, "output_bytes": 0}}, "limits"),
        ({"requester": {"kid": "A" * 22}}, "requester.kid"),
        ({"provider": "ctyunx"}, "body.offer"),
    ],
)
async def test_agreement_unlike_the_quote_is_not_cosigned(
    world: World, change: dict[str, Any], error: str
) -> None:
    world.proxy.mutate = _on("/accept", lambda v: resign(v, world.service, **change))
    async with world.requester() as req:
        with pytest.raises((NegotiationError, SchemaError)) as e:
            await req.negotiate(OFFER, **_demand(world.clock))
    assert e.value.field == error


async def test_agreement_altered_in_transit_is_refused(world: World) -> None:
    def edit(v: dict[str, Any]) -> dict[str, Any]:
        v["body"]["terms"]["cancellation"]["fee_share"] = "1"
        return v

    world.proxy.mutate = _on("/accept", edit)
    async with world.requester() as req:
        with pytest.raises(SignatureInvalidError):
            await req.negotiate(OFFER, **_demand(world.clock))


async def test_agreement_from_a_file_must_carry_both_signatures(world: World) -> None:
    async with world.requester() as req, world.requester() as other:
        env = await req.negotiate(OFFER, **_demand(world.clock))
        single = Envelope(env.header, env.header_value, env.body_value, env.sigs[:1])
        with pytest.raises(SignatureInvalidError):
            await req.open_agreement(single)
        with pytest.raises(VerificationError):  # another requester's agreement
            await other.open_agreement(env)


# --- lies about tasks, results, receipts, outputs ------------------------------------------------


async def _agreed_task(world: World, req: Requester) -> tuple[Envelope, str]:
    env = await req.negotiate(OFFER, **_demand(world.clock))
    agreement, _ = await req.open_agreement(env)
    task_id = await req.invoke(env, req.task(agreement, ["echo", "hi"]))
    world.executor.run(task_id)
    world.executor.finish(task_id, outputs={"out/x.txt": b"42\n"})
    await req.wait(task_id)
    return env, task_id


async def test_task_id_other_than_the_envelope_digest_is_refused(world: World) -> None:
    world.proxy.mutate = _on("/tasks", lambda v: {**v, "task_id": OTHER_DIGEST})
    async with world.requester() as req:
        env = await req.negotiate(OFFER, **_demand(world.clock))
        agreement, _ = await req.open_agreement(env)
        with pytest.raises(VerificationError) as e:
            await req.invoke(env, req.task(agreement, ["true"]))
    assert e.value.detail["rule"] == "task_id"


async def test_status_of_another_task_is_refused(world: World) -> None:
    async with world.requester() as req:
        _, task_id = await _agreed_task(world, req)
        world.proxy.mutate = lambda path, v: (
            resign(v, world.service, task_id=OTHER_DIGEST) if path.endswith(task_id) else v
        )
        with pytest.raises(VerificationError) as e:
            await req.status(task_id)
    assert e.value.detail["rule"] == "task_id"


async def test_altered_receipt_is_refused(world: World) -> None:
    def overcharge(v: dict[str, Any]) -> dict[str, Any]:
        v["receipt"]["body"]["usage"]["wall_s"] += 100
        return v

    async with world.requester() as req:
        _, task_id = await _agreed_task(world, req)
        world.proxy.mutate = _on("/result", overcharge)
        with pytest.raises(SignatureInvalidError):
            await req.result(task_id)
        # the provider itself signing a receipt whose cost is not the agreement's rates
        world.proxy.mutate = _on(
            "/result",
            lambda v: {
                **v,
                "receipt": resign(
                    v["receipt"],
                    world.service,
                    cost={**v["receipt"]["body"]["cost"], "units": 2},
                ),
            },
        )
        with pytest.raises(ReceiptInvalidError):
            await req.result(task_id)


async def test_altered_output_bytes_are_refused(world: World) -> None:
    async with world.requester() as req:
        _, task_id = await _agreed_task(world, req)
        await req.result(task_id)
        world.proxy.mutate = lambda path, v: b"43\n" if isinstance(v, bytes) else v
        with pytest.raises(VerificationError) as e:
            await req.output(task_id, "out/x.txt")
        assert e.value.detail["rule"] == "output_digest"
        with pytest.raises(VerificationError):
            await req.output(task_id, ":stdout")
