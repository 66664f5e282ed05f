"""The resolver and the local catalogue against real registries on loopback (issue 4).

Registries run as real aiohttp servers on loopback with a controllable clock;
a tampering proxy sits between the resolver and a registry where a test needs
a lying mirror. No sleeps: time is moved by hand.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from cid import codec
from cid import examples as ex
from cid.catalogue import Catalogue
from cid.envelope import sign_record
from cid.errors import (
    ChainBrokenError,
    ExpiredError,
    HeadMismatchError,
    KeyUnknownError,
    NotFoundError,
    ReferralLoopError,
    SerialRollbackError,
    SignatureInvalidError,
    UnavailableError,
)
from cid.query import Query
from cid.record import DelegationBody, RefreshBody
from cid.resolver import Resolver
from cid.signing import SigningKey

from .conftest import Backend
from .harness import Clock, Operator, RegistryClient, free_port, serve_in_process

pytestmark = pytest.mark.asyncio

Mutate = Callable[[str, Any], Any]


class Proxy:
    """A mirror between resolver and registry that can alter, replay or drop answers."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.mutate: Mutate | None = None
        self.down = False
        self.recorded: dict[str, tuple[int, str, bytes]] = {}
        self.replay = False
        self.requests = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.down:
            return web.Response(status=503, text="down")
        key = str(request.rel_url)
        if self.replay and key in self.recorded:
            status, ctype, body = self.recorded[key]
        else:
            async with aiohttp.ClientSession() as s, s.request(
                request.method, self.upstream + key, data=await request.read(),
                headers={k: v for k, v in request.headers.items()
                         if k.lower() in ("accept", "content-type")},
            ) as r:  # fmt: skip
                body, ctype, status = await r.read(), r.content_type, r.status
            if not self.replay:
                self.recorded[key] = (status, ctype, body)
        if status == 200 and self.mutate is not None and ctype.startswith("application/cid+"):
            enc: codec.Encoding = "msgpack" if ctype.endswith("msgpack") else "json"
            limits = codec.DEFAULT_LIMITS.scaled(max_bytes=10**8, max_array=10**6)
            body = codec.encode(self.mutate(key, codec.decode(body, enc, limits)), enc)
        return web.Response(status=status, body=body, content_type=ctype)


@asynccontextmanager
async def proxy_for(upstream: str) -> AsyncIterator[tuple[str, Proxy]]:
    proxy = Proxy(upstream)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", proxy
    finally:
        await runner.cleanup()


class Env:
    def __init__(self) -> None:
        self.clock = Clock()
        self.operator = Operator()
        self.provider = ex.provider_key()

    def offer(
        self,
        name: str,
        *,
        serial: int = 1,
        ttl_s: int = 3600,
        ttl: int = 300,
        key: SigningKey | None = None,
        body: Any = None,
    ):  # type: ignore[no-untyped-def]
        now = self.clock.now
        return sign_record(
            body or ex.guizhou_offer(),
            name=name,
            serial=serial,
            key=key or self.provider,
            nbf=now - 10,
            exp=now + ttl_s,
            ttl=ttl,
        )

    async def bootstrap(self, client: RegistryClient, *, days: int = 30) -> None:
        now = self.clock.now
        await client.submit(self.operator.root_zone(now=now))
        await client.submit(self.operator.delegate("ctyun", self.provider, now=now, days=days))


@asynccontextmanager
async def registry(backend: Backend, env: Env, **overrides: Any) -> AsyncIterator[str]:
    async with serve_in_process(backend.new(), clock=env.clock, operator=env.operator,
                                **overrides) as url:  # fmt: skip
        yield url


async def test_referral_chain_across_two_registries(backend: Backend, tmp_path: Any) -> None:
    """REQ-QRY-012/013: the resolver follows a verified referral to a second registry."""
    from cid_registry.store.sqlite import SqliteStore

    env = Env()
    port_b = free_port()
    url_b = f"http://127.0.0.1:{port_b}"
    child = SigningKey.generate()
    now = env.clock.now
    deleg_tj = sign_record(
        DelegationBody(keys=[child.public_key], registries=[url_b]), name="tj.ctyun", serial=1,
        key=env.provider, nbf=now - 10, exp=now + 86_400,
    )  # fmt: skip
    store_b = SqliteStore(str(tmp_path / "b.db"))
    async with registry(backend, env) as url_a, serve_in_process(
        store_b, clock=env.clock, operator=env.operator, port=port_b, self_url=url_b
    ), RegistryClient(url_a) as a, RegistryClient(url_b) as b:  # fmt: skip
        for client in (a, b):
            await env.bootstrap(client)
            await client.submit(deleg_tj)
        await b.submit(env.offer("pool.tj.ctyun", key=child))
        async with Resolver([url_a], [env.operator.root.public_key], clock=env.clock) as resolver:
            answer = await resolver.resolve("pool.tj.ctyun")
            assert answer.registry == url_b and resolver.queries == 2
            assert answer.offer is not None and answer.units_free == 5000
            # the referral's namespace is now known: the delegation's registries are used
            assert (await resolver.resolve("pool.tj.ctyun")) is answer  # cached
        # a referral back to a namespace already visited is a loop
        async with proxy_for(url_a) as (purl, proxy):

            def loop(path: str, value: Any) -> Any:
                if "referral" in value:
                    value["referral"]["registries"] = [purl]
                return value

            proxy.mutate = loop
            async with Resolver([purl], [env.operator.root.public_key], clock=env.clock) as r:
                with pytest.raises(ReferralLoopError):
                    await r.resolve("pool.tj.ctyun")


async def test_attacks_refused(backend: Backend) -> None:
    """A tampered answer, a rolled-back serial, an expired record, a broken chain: each refused."""
    env = Env()
    root = [env.operator.root.public_key]
    async with registry(backend, env) as url, RegistryClient(url) as client, \
            proxy_for(url) as (purl, proxy):  # fmt: skip
        await env.bootstrap(client, days=1)
        await client.submit(env.offer("gz.ctyun", serial=1, ttl_s=2 * 86_400))

        def tamper(path: str, value: Any) -> Any:
            for rec in value.get("records", []):
                rec["body"]["availability"]["units_free"] = 1
            return value

        # tampered answer
        proxy.mutate = tamper
        async with Resolver([purl], root, clock=env.clock) as r:
            with pytest.raises(SignatureInvalidError):
                await r.resolve("gz.ctyun")
        proxy.mutate = None
        # rolled-back serial: the mirror replays the serial-1 answer after serial 2 was seen
        async with Resolver([purl], root, clock=env.clock) as r:
            await r.resolve("gz.ctyun")  # recorded by the proxy
            await client.submit(env.offer("gz.ctyun", serial=2, ttl_s=2 * 86_400))
            r.cache._pos.clear()
            direct = Resolver([url], root, clock=env.clock)
            direct.state = r.state  # same resolver memory, honest registry
            assert (await direct.resolve("gz.ctyun")).records[0].serial == 2
            r.cache._pos.clear()
            proxy.replay = True
            with pytest.raises(SerialRollbackError):
                await r.resolve("gz.ctyun")
            await direct.close()
        # expired record: the mirror replays an answer whose record has since expired
        proxy.replay, proxy.recorded = False, {}
        await client.submit(env.offer("short.ctyun", ttl_s=600))
        async with Resolver([purl], root, clock=env.clock) as r:
            await r.resolve("short.ctyun")
        proxy.replay = True
        env.clock.advance(700)
        async with Resolver([purl], root, clock=env.clock) as r:
            with pytest.raises(ExpiredError):
                await r.resolve("short.ctyun")
        # broken delegation chain (1): the proof is stripped, so the signer is unknown
        proxy.replay = False

        def strip(path: str, value: Any) -> Any:
            value["proof"] = []
            return value

        proxy.mutate = strip
        async with Resolver([purl], root, clock=env.clock) as r:
            with pytest.raises(KeyUnknownError):
                await r.resolve("gz.ctyun")
        # broken delegation chain (2): a forged delegation link
        mallory = SigningKey.generate()

        def forge(path: str, value: Any) -> Any:
            forged = sign_record(
                ex.delegation(mallory),
                name="ctyun",
                serial=9,
                key=mallory,
                nbf=env.clock.now - 10,
                exp=env.clock.now + 600,
            )
            value["proof"] = [forged.envelope.to_value()]
            return value

        proxy.mutate = forge
        async with Resolver([purl], root, clock=env.clock) as r:
            with pytest.raises(KeyUnknownError):
                await r.resolve("gz.ctyun")
        # broken delegation chain (3): the delegation the resolver holds has expired, and a
        # mirror still serves the (unexpired) record without its proof
        proxy.mutate, proxy.recorded = None, {}
        async with Resolver([purl], root, clock=env.clock) as r:
            await r.resolve("gz.ctyun")
            env.clock.advance(86_400)  # past the 1-day delegation, within the 2-day offer
            r.cache._pos.clear()
            proxy.replay, proxy.mutate = True, strip
            with pytest.raises(ChainBrokenError):
                await r.resolve("gz.ctyun")


async def test_cache_honours_ttl_and_negative_answers(backend: Backend) -> None:
    """REQ-RES-002/003/005: TTL cache, bounded negative cache, serve-stale within bounds."""
    env = Env()
    root = [env.operator.root.public_key]
    async with registry(backend, env) as url, RegistryClient(url) as client, \
            proxy_for(url) as (purl, proxy):  # fmt: skip
        await env.bootstrap(client)
        await client.submit(env.offer("gz.ctyun", ttl=300, ttl_s=3600))
        async with Resolver([purl], root, clock=env.clock, serve_stale=True,
                            stale_max_s=120) as r:  # fmt: skip
            a1 = await r.resolve("gz.ctyun")
            env.clock.advance(299)
            assert await r.resolve("gz.ctyun") is a1 and proxy.requests == 1
            env.clock.advance(1)
            await r.resolve("gz.ctyun")
            assert proxy.requests == 2
            # negative caching
            with pytest.raises(NotFoundError):
                await r.resolve("nothing.ctyun")
            with pytest.raises(NotFoundError):
                await r.resolve("nothing.ctyun")
            assert proxy.requests == 3
            env.clock.advance(61)
            with pytest.raises(NotFoundError):
                await r.resolve("nothing.ctyun")
            assert proxy.requests == 4
            # serve-stale while the registry is down, bounded
            proxy.down = True
            env.clock.advance(300 - 61 + 60)
            stale = await r.resolve("gz.ctyun")
            assert stale.stale and stale.records == a1.records
            env.clock.advance(200)
            with pytest.raises(UnavailableError):
                await r.resolve("gz.ctyun")
        async with Resolver([purl], root, clock=env.clock) as r:  # stale not allowed
            with pytest.raises(UnavailableError):
                await r.resolve("gz.ctyun")


async def test_refresh_extends_offer(backend: Backend) -> None:
    """REQ-REC-062: a refresh keeps its offer version current past the offer's own exp."""
    env = Env()
    async with registry(backend, env) as url, RegistryClient(url) as client:
        await env.bootstrap(client)
        offer = env.offer("gz.ctyun", ttl_s=600)
        await client.submit(offer)
        refresh = sign_record(RefreshBody(base=offer.envelope.digest(), units_free=42),
                              name="gz.ctyun", serial=2, key=env.provider,
                              nbf=env.clock.now - 10, exp=env.clock.now + 3600)  # fmt: skip
        await client.submit(refresh)
        env.clock.advance(1200)
        async with Resolver([url], [env.operator.root.public_key], clock=env.clock) as r:
            answer = await r.resolve("gz.ctyun")
            assert answer.units_free == 42 and answer.expires == env.clock.now - 1200 + 3600


async def test_catalogue_follows_feed_and_survives_restart(backend: Backend, tmp_path: Any) -> None:
    """Issue 4: a verified local replica from snapshot + feed, equal to the registry's answers."""
    from cid_registry.store.sqlite import SqliteStore

    env = Env()
    root = [env.operator.root.public_key]
    db = str(tmp_path / "r.db")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    query = Query.model_validate({
        "class": "general", "demand": {"vcpu": 1, "memory_mib": 2048, "storage_gib": 100},
        "duration_s": 3 * 2_628_000, "currency": "CNY", "order": ["cost"], "limit": 5,
    })  # fmt: skip
    async with serve_in_process(SqliteStore(db), clock=env.clock, operator=env.operator,
                                port=port) as _, RegistryClient(url) as client:  # fmt: skip
        await env.bootstrap(client)
        await client.submit(env.offer("tj.ctyun", body=ex.tianjin_offer()))
        await client.submit(env.offer("nm.ctyun", body=ex.inner_mongolia_offer()))
        catalogue = Catalogue(url, root, clock=env.clock)
        await catalogue.sync()  # cold start from the snapshot
        assert catalogue.rseq == 4
        await client.submit(env.offer("gz.ctyun", body=ex.guizhou_offer()))
        stop = asyncio.Event()
        follower = asyncio.create_task(catalogue.follow(stop, wait_s=1))
        await _until(lambda: catalogue.rseq == 5)
        local = catalogue.search(query)
        remote = await client.search(query)
        assert local.to_value() == remote
        assert [m.name.to_text() for m in local.results] == ["gz.ctyun", "nm.ctyun", "tj.ctyun"]
    # the registry is down: the catalogue keeps answering locally, then resumes
    assert catalogue.search(query).results[0].name.to_text() == "gz.ctyun"
    async with serve_in_process(SqliteStore(db), clock=env.clock, operator=env.operator,
                                port=port), RegistryClient(url) as client:  # fmt: skip
        await client.submit(env.offer("gz.ctyun", serial=2, body=ex.tianjin_offer()))
        await _until(lambda: catalogue.rseq == 6, timeout=15)
        assert (await client.search(query)) == catalogue.search(query).to_value()
        stop.set()
        await follower
        await catalogue.close()


async def test_catalogue_refuses_a_lying_feed(backend: Backend) -> None:
    """REQ-FEED-003: a dropped change or an altered record never enters the replica."""
    env = Env()
    root = [env.operator.root.public_key]
    async with registry(backend, env) as url, RegistryClient(url) as client, \
            proxy_for(url) as (purl, proxy):  # fmt: skip
        await env.bootstrap(client)
        catalogue = Catalogue(purl, root, clock=env.clock)
        await catalogue.sync()
        for i in range(3):
            await client.submit(env.offer(f"p{i}.ctyun"))

        def drop(path: str, value: Any) -> Any:
            if path.startswith("/v1/feed") and len(value.get("changes", [])) > 1:
                value = copy.deepcopy(value)
                del value["changes"][1]
                for c in value["changes"][1:]:
                    c["rseq"] -= 1
            return value

        proxy.mutate = drop
        with pytest.raises(HeadMismatchError):
            await catalogue.sync()
        assert len(catalogue) == 2 and catalogue.rseq == 2  # nothing of the bad page applied

        def alter(path: str, value: Any) -> Any:
            for c in value.get("changes", []):
                c["envelope"]["body"]["availability"]["units_free"] = 1
            return value

        proxy.mutate = alter
        with pytest.raises((HeadMismatchError, SignatureInvalidError)):
            await catalogue.sync()
        proxy.mutate = None
        await catalogue.sync()
        assert catalogue.rseq == 5 and len(catalogue) == 5
        await catalogue.close()


async def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
