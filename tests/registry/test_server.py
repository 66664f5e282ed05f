"""The registry over real HTTP on loopback, for both stores (issue 3).

Each test starts the aiohttp app on a real TCP port (in-process, so that the
clock is controllable) and drives it with the library's :class:`RegistryClient`.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from cid import codec
from cid import examples as ex
from cid.envelope import Envelope, sign_record
from cid.errors import (
    ChainBrokenError,
    ExpiredError,
    KeyNotAuthorisedError,
    KeyUnknownError,
    NotFoundError,
    NotYetValidError,
    RateLimitedError,
    SchemaError,
    SerialRollbackError,
    SignatureInvalidError,
)
from cid.identifier import Identifier
from cid.query import Query, ResolveResponse
from cid.record import DelegationBody, RefreshBody, TombstoneBody
from cid.signing import SigningKey
from cid.trust import TrustState

from .conftest import Backend
from .harness import Clock, Operator, RegistryClient, serve_in_process

pytestmark = pytest.mark.asyncio

CHEAPEST = Query.model_validate(
    {
        "class": "general",
        "demand": {"vcpu": 1, "memory_mib": 2048, "storage_gib": 100},
        "duration_s": 3 * 2_628_000,
        "currency": "CNY",
        "order": ["cost"],
        "limit": 10,
    }
)


def verify_answer(answer: dict[str, Any], operator: Operator, now: int) -> list[Any]:
    """What a resolver does: verify the proof from the trust anchor down, then the records."""
    resp = ResolveResponse.model_validate(answer)
    trust = TrustState([operator.root.public_key])
    for env in resp.proof:
        trust.add(Envelope.from_value(env), now=now)
    return [trust.verify(e, now=now) for e in resp.envelopes()]


class World:
    def __init__(self, clock: Clock, operator: Operator) -> None:
        self.clock = clock
        self.operator = operator
        self.provider = ex.provider_key()
        self.other = ex.second_provider_key()

    def offer(
        self,
        name: str,
        body: Any = None,
        *,
        serial: int = 1,
        key: SigningKey | None = None,
        ttl_s: int = 3600,
        nbf: int | None = None,
    ) -> Envelope:
        now = self.clock.now
        return sign_record(
            body or ex.guizhou_offer(),
            name=name,
            serial=serial,
            key=key or self.provider,
            nbf=now - 10 if nbf is None else nbf,
            exp=now + ttl_s,
            ttl=300,
        ).envelope


async def _setup(client: RegistryClient, w: World) -> None:
    now = w.clock.now
    await client.submit(w.operator.delegate("ctyun", w.provider, now=now))
    await client.submit(w.operator.delegate("ctyunx", w.other, now=now))


async def _catalogue_bytes(backend: Backend) -> list[tuple[Any, ...]]:
    """Everything the store holds, for byte-identical comparisons."""
    store = await backend.open()
    try:
        rseq, chain, rows = await store.snapshot()
        changes = await store.changes(0, 100_000)
        return [
            (rseq, chain),
            *[(r.name, r.rtype, r.serial, r.envelope, r.refresh, r.deleted) for r in rows],
            *[(c.rseq, c.chain) for c in changes],
        ]
    finally:
        await store.close()


async def test_full_lifecycle(backend: Backend) -> None:
    """register -> resolve -> search -> update -> refresh -> expire -> delete (REQ-REG-020..050)."""
    clock, operator = Clock(), Operator()
    w = World(clock, operator)
    store = backend.new()
    async with (
        serve_in_process(store, clock=clock, operator=operator) as url,
        RegistryClient(url) as client,
    ):
        await _setup(client, w)
        # register three regional pools
        tj = w.offer("tj-general.天津.ctyun", ex.tianjin_offer())
        gz = w.offer("gz-general.ctyun", ex.guizhou_offer())
        nm = w.offer("nm-general.ctyunx", ex.inner_mongolia_offer(), key=w.other)
        for env in (tj, gz, nm):
            accepted = await client.submit(env)
            assert accepted["op"] == "put" and accepted["rseq"] >= 1
        # idempotent retry
        again = await client.submit(gz)
        assert "rseq" not in again and again["digest"] == gz.digest()
        # resolve, verified end to end from the trust anchor
        answer = await client.resolve("GZ-General.CTYUN")
        records = verify_answer(answer, operator, clock.now)
        assert [r.record_type for r in records] == ["offer"]
        assert records[0].envelope.digest() == gz.digest()
        # search: the worked example, cheapest first
        result = await client.search(CHEAPEST)
        names = [m["name"] for m in result["results"]]
        assert names == ["gz-general.ctyun", "nm-general.ctyunx", "tj-general.天津.ctyun"]
        assert result["results"][0]["cost"]["total"] == "30"
        # update: a new version with a higher serial and a higher price
        pricier = ex.guizhou_offer().model_copy(
            update={
                "price": ex.guizhou_offer().price.model_copy(
                    update={
                        "items": [
                            i.model_copy(update={"amount": i.amount * 3})
                            for i in ex.guizhou_offer().price.items
                        ]
                    }
                )
            }
        )
        gz2 = w.offer("gz-general.ctyun", pricier, serial=2)
        assert (await client.submit(gz2))["serial"] == 2
        result = await client.search(CHEAPEST)
        assert result["results"][0]["name"] == "nm-general.ctyunx"
        # refresh: new free capacity and expiry without re-sending the offer
        refresh = sign_record(
            RefreshBody(base=gz2.digest(), units_free=17),
            name="gz-general.ctyun",
            serial=3,
            key=w.provider,
            nbf=clock.now - 10,
            exp=clock.now + 7200,
        ).envelope
        assert (await client.submit(refresh))["op"] == "refresh"
        answer = await client.resolve("gz-general.ctyun")
        types = sorted(e["header"]["typ"] for e in answer["records"])
        assert types == ["cid.record.offer", "cid.record.refresh"]
        verify_answer(answer, operator, clock.now)
        # a stale refresh (for the old version) is refused
        stale = sign_record(
            RefreshBody(base=gz.digest(), units_free=1),
            name="gz-general.ctyun",
            serial=4,
            key=w.provider,
            nbf=clock.now - 10,
            exp=clock.now + 60,
        ).envelope
        with pytest.raises(SchemaError):
            await client.submit(stale)
        # expire: Tianjin lapses after an hour; the refreshed Guizhou lives on
        clock.advance(3700)
        with pytest.raises(NotFoundError):
            await client.resolve("tj-general.天津.ctyun")
        names = [m["name"] for m in (await client.search(CHEAPEST))["results"]]
        assert "tj-general.天津.ctyun" not in names and "gz-general.ctyun" in names
        # delete with a signed tombstone
        tomb = sign_record(
            TombstoneBody(target="offer"),
            name="gz-general.ctyun",
            serial=5,
            key=w.provider,
            nbf=clock.now - 10,
            exp=clock.now + 60,
        ).envelope
        assert (await client.submit(tomb))["op"] == "delete"
        with pytest.raises(NotFoundError):
            await client.resolve("gz-general.ctyun")
        assert "gz-general.ctyun" not in [
            m["name"] for m in (await client.search(CHEAPEST))["results"]
        ]
        # an older serial cannot come back after the delete
        with pytest.raises(SerialRollbackError):
            await client.submit(w.offer("gz-general.ctyun", serial=4))
        # listing the namespace (label-wise: nothing from ctyunx)
        listing = await client.list_namespace("ctyun")
        assert all(
            Identifier.parse(i["name"]).is_within(Identifier.parse("ctyun"))
            for i in listing["items"]
        )


async def test_attacks_leave_catalogue_unchanged(backend: Backend) -> None:
    """Every refused write is a typed error and the store is byte-identical afterwards."""
    clock, operator = Clock(), Operator()
    w = World(clock, operator)
    store = backend.new()
    async with (
        serve_in_process(store, clock=clock, operator=operator, rate_burst=10_000) as url,
        RegistryClient(url, encoding="json") as client,
    ):
        await _setup(client, w)
        good = w.offer("pool.ctyun", serial=5)
        await client.submit(good)
        before = await _catalogue_bytes(backend)
        now = clock.now
        tampered = good.to_value()
        tampered["body"]["availability"]["units_free"] = 4999
        attacks: list[tuple[str, Any, type[Exception]]] = [
            (
                "wrong key",
                w.offer("pool.ctyun", serial=6, key=SigningKey.generate()),
                KeyUnknownError,
            ),
            (
                "someone else's namespace",
                w.offer("pool.ctyun", serial=6, key=w.other),
                KeyNotAuthorisedError,
            ),
            (
                "label-prefix hijack",
                w.offer("pool.ctyunx", serial=6, key=w.provider),
                KeyNotAuthorisedError,
            ),
            ("replayed older serial", w.offer("pool.ctyun", serial=4), SerialRollbackError),
            (
                "same serial, other content",
                w.offer("pool.ctyun", ex.tianjin_offer(), serial=5),
                SerialRollbackError,
            ),
            (
                "expired",
                sign_record(
                    ex.guizhou_offer(),
                    name="pool.ctyun",
                    serial=7,
                    key=w.provider,
                    nbf=now - 100,
                    exp=now - 1,
                ).envelope,
                ExpiredError,
            ),
            (
                "not yet valid",
                w.offer("pool.ctyun", serial=7, nbf=now + 3600, ttl_s=7200),
                NotYetValidError,
            ),
            ("tampered byte", Envelope.from_value(tampered), SignatureInvalidError),
            (
                "root delegation by a provider",
                sign_record(
                    ex.delegation(w.provider),
                    name="evil",
                    serial=1,
                    key=w.provider,
                    nbf=now - 1,
                    exp=now + 60,
                ).envelope,
                KeyNotAuthorisedError,
            ),
        ]
        for what, env, error in attacks:
            with pytest.raises(error):
                await client.submit(env)
            assert await _catalogue_bytes(backend) == before, what
        # raw bodies: oversized, deeply nested, malformed, wrong media type
        async with aiohttp.ClientSession() as s:

            async def post(data: bytes, ctype: str = "application/cid+json") -> dict[str, Any]:
                async with s.post(
                    url + "/v1/records", data=data, headers={"Content-Type": ctype}
                ) as r:
                    assert r.content_type == "application/problem+json"
                    body = await r.json()
                    assert body["status"] == r.status
                    return body

            big = await post(b'{"a":"' + b"x" * 300_000 + b'"}')
            assert (
                big["cid"]["name"] in ("PAYLOAD_TOO_LARGE", "LIMIT_EXCEEDED")
                and big["status"] == 413
            )
            deep = await post(b"[" * 50_000 + b"]" * 50_000)
            assert deep["cid"]["name"] in ("LIMIT_EXCEEDED", "PAYLOAD_TOO_LARGE")
            assert deep["status"] in (400, 413)
            nested = await post(b"[" * 40 + b"]" * 40)
            assert nested["cid"]["name"] == "LIMIT_EXCEEDED" and nested["status"] == 400
            junk = await post(b"\xff\x00garbage")
            assert junk["cid"]["code"] == 1000 and junk["status"] == 400
            media = await post(b"{}", "text/plain")
            assert media["status"] == 415 and media["cid"]["name"] == "UNSUPPORTED_MEDIA_TYPE"
            notfound = await (await s.get(url + "/v1/nope")).json()
            assert notfound["cid"]["name"] == "NOT_FOUND"
        assert await _catalogue_bytes(backend) == before


async def test_content_negotiation_and_caching(backend: Backend) -> None:
    """REQ-REG-002/003: JSON and msgpack both ways; ETag and max-age from TTLs."""
    clock, operator = Clock(), Operator()
    w = World(clock, operator)
    async with serve_in_process(backend.new(), clock=clock, operator=operator) as url:
        async with RegistryClient(url, encoding="msgpack") as client:
            await _setup(client, w)
            await client.submit(w.offer("pool.ctyun"))
        async with aiohttp.ClientSession() as s:
            async with s.get(
                url + "/v1/names/pool.ctyun", headers={"Accept": "application/cid+msgpack"}
            ) as r:
                assert r.content_type == "application/cid+msgpack"
                value = codec.decode_msgpack(
                    await r.read(), codec.DEFAULT_LIMITS.scaled(max_bytes=10**6)
                )
                etag = r.headers["ETag"]
                assert r.headers["Cache-Control"] == "max-age=300"
            async with s.get(
                url + "/v1/names/pool.ctyun",
                headers={"Accept": "application/json;q=0.5, application/cid+msgpack;q=0.1"},
            ) as r:
                assert r.content_type == "application/cid+json"
                assert await r.read() == codec.encode_json(value)
            msgpack_only = {"Accept": "application/cid+msgpack"}
            async with s.get(
                url + "/v1/names/pool.ctyun", headers={"If-None-Match": etag, **msgpack_only}
            ) as r:
                assert r.status == 304
            # the JSON representation has its own entity tag
            async with s.get(url + "/v1/names/pool.ctyun", headers={"If-None-Match": etag}) as r:
                assert r.status == 200 and r.headers["ETag"] != etag
            async with s.get(
                url + "/v1/names/pool.ctyun",
                headers={"If-None-Match": f'"x", W/{etag}', **msgpack_only},
            ) as r:
                assert r.status == 304
            async with s.get(url + "/v1/names/pool.ctyun", headers={"Accept": "text/html"}) as r:
                assert r.status == 406
                assert (await r.json())["cid"]["name"] == "NOT_ACCEPTABLE"
            async with s.get(url + "/v1/names/pool.ctyun?types=zone") as r:
                assert (await r.json())["records"] == []
            async with s.get(url + "/v1/names/pool.ctyun?types=bogus") as r:
                assert r.status == 422


async def test_referral_for_namespace_served_elsewhere(backend: Backend) -> None:
    """REQ-QRY-012 / REQ-REG-032: a namespace delegated to another registry gets a referral."""
    clock, operator = Clock(), Operator()
    w = World(clock, operator)
    async with (
        serve_in_process(backend.new(), clock=clock, operator=operator) as url,
        RegistryClient(url) as client,
    ):
        child = SigningKey.generate()
        await client.submit(operator.delegate("ctyun", w.provider, now=clock.now))
        d = sign_record(
            DelegationBody.model_validate(
                {
                    "keys": [child.public_key.to_value()],
                    "registries": ["https://tj.registry.example/"],
                }
            ),
            name="tj.ctyun",
            serial=1,
            key=w.provider,
            nbf=clock.now - 1,
            exp=clock.now + 86_400,
        )
        await client.submit(d)
        answer = await client.resolve("pool.tj.ctyun")
        resp = ResolveResponse.model_validate(answer)
        assert resp.referral is not None and resp.referral.namespace.to_text() == "tj.ctyun"
        assert [str(u) for u in resp.referral.registries] == ["https://tj.registry.example/"]
        assert [Envelope.from_value(p).header.sub.to_text() for p in resp.proof] == ["ctyun"]


async def test_rate_limit(backend: Backend) -> None:
    """REQ-REG-006: per-client token bucket, 429 with Retry-After; health is exempt."""
    clock, operator = Clock(), Operator()
    async with (
        serve_in_process(
            backend.new(), clock=clock, operator=operator, rate_per_s=0.001, rate_burst=3
        ) as url,
        RegistryClient(url) as client,
    ):
        for _ in range(3):
            with pytest.raises(NotFoundError):
                await client.resolve("nothing.here")
        with pytest.raises(RateLimitedError):
            await client.resolve("nothing.here")
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/v1/names/x") as r:
                assert r.status == 429 and int(r.headers["Retry-After"]) >= 1
            async with s.get(url + "/healthz") as r:
                assert r.status == 200


async def test_batch_and_delegation_expiry(backend: Backend) -> None:
    """REQ-REG-021: a batch answers item by item; REQ-SIG-049: expired delegation stops writes."""
    clock, operator = Clock(), Operator()
    w = World(clock, operator)
    async with (
        serve_in_process(backend.new(), clock=clock, operator=operator) as url,
        RegistryClient(url) as client,
    ):
        await client.submit(operator.delegate("ctyun", w.provider, now=clock.now, days=1))
        envs = [w.offer(f"p{i}.ctyun") for i in range(20)]
        envs.append(w.offer("p0.ctyunx"))
        results = await client.submit_batch(envs)
        assert all(isinstance(r, dict) for r in results[:20])
        assert isinstance(results[20], KeyNotAuthorisedError)
        assert results[20].detail["index"] == 20
        clock.advance(2 * 86_400)
        with pytest.raises(ChainBrokenError):
            await client.submit(w.offer("late.ctyun"))


async def test_feed_reconstructs_catalogue(backend: Backend) -> None:
    """REQ-FEED-001..010: a follower from 0 rebuilds exactly the snapshot, with verified heads."""
    from cid.feed import CHAIN_ZERO, FeedHead, SnapshotHead, chain_step, snapshot_digest

    clock, operator = Clock(), Operator()
    w = World(clock, operator)
    async with (
        serve_in_process(backend.new(), clock=clock, operator=operator) as url,
        RegistryClient(url) as client,
    ):
        await _setup(client, w)
        service = {operator.service.kid: operator.service.public_key}
        state: dict[tuple[str, str], str] = {}
        chain, since = CHAIN_ZERO, 0
        serial = 1
        for round_ in range(4):
            # writes continue while the follower follows
            for i in range(15):
                await client.submit(w.offer(f"p{i}.ctyun", serial=serial))
            if round_ == 2:
                tomb = sign_record(
                    TombstoneBody(target="offer"),
                    name="p3.ctyun",
                    serial=serial + 1,
                    key=w.provider,
                    nbf=clock.now - 1,
                    exp=clock.now + 60,
                )
                await client.submit(tomb)
            serial += 2
            page = await client.feed(since, limit=7)
            while True:
                for change in page["changes"]:
                    env = Envelope.from_value(change["envelope"])
                    chain = chain_step(chain, change["rseq"], env.encode("msgpack"))
                    key = (change["name"], change["type"])
                    if change["op"] == "delete":
                        state.pop(key, None)
                    elif change["op"] == "put":
                        state[key] = env.digest()
                    since = change["rseq"]
                head = Envelope.from_value(page["head"])
                head.verify(service, typ="cid.feed.head", now=clock.now)
                body = FeedHead.model_validate(head.body_value)
                assert (body.rseq, body.chain) == (since, chain)
                if not page["changes"]:
                    break
                page = await client.feed(since, limit=7)
        snap = await client.snapshot()
        shead = Envelope.from_value(snap["head"])
        shead.verify(service, typ="cid.feed.snapshot", now=clock.now)
        sbody = SnapshotHead.model_validate(shead.body_value)
        snap_state = {
            (
                r["envelope"]["header"]["sub"],
                r["envelope"]["header"]["typ"].rsplit(".", 1)[1],
            ): Envelope.from_value(r["envelope"]).digest()
            for r in snap["records"]
        }
        assert snap_state == state
        assert sbody.rseq == since and sbody.chain == chain and sbody.records == len(state)
        assert sbody.digest == snapshot_digest((n, t, d) for (n, t), d in state.items())
        # a page beyond the head is refused; long-poll returns when a write arrives
        with pytest.raises(SchemaError):
            await client.feed(since + 10)


async def test_operations_endpoints(backend: Backend) -> None:
    """/healthz, /readyz, /metrics and /openapi.json (REQ-REG-060..)."""
    clock, operator = Clock(), Operator()
    w = World(clock, operator)
    async with (
        serve_in_process(backend.new(), clock=clock, operator=operator) as url,
        RegistryClient(url) as client,
        aiohttp.ClientSession() as s,
    ):
        await _setup(client, w)
        await client.submit(w.offer("pool.ctyun"))
        await client.search(CHEAPEST)
        async with s.get(url + "/readyz") as r:
            assert r.status == 200 and (await r.json())["rseq"] == 3
        async with s.get(url + "/metrics") as r:
            text = await r.text()
        assert 'cid_registry_records{type="offer"} 1.0' in text
        assert 'cid_registry_offers{class="general"} 1.0' in text
        assert "cid_registry_feed_serial 3.0" in text
        assert 'cid_registry_requests_total{method="POST",route="/v1/search",status="200"}' in text
        assert "cid_registry_request_seconds_bucket" in text
        async with s.get(url + "/openapi.json") as r:
            doc = await r.json()
        from cid_registry.openapi import build_openapi

        assert doc == build_openapi()
        assert "X-Request-Id" in (await s.get(url + "/healthz")).headers


async def test_search_budget_and_bad_query(backend: Backend) -> None:
    """REQ-REG-050: an over-budget search is refused with QUERY_TOO_EXPENSIVE, not run."""
    from cid.errors import QueryTooExpensiveError

    clock, operator = Clock(), Operator()
    w = World(clock, operator)
    async with (
        serve_in_process(backend.new(), clock=clock, operator=operator, search_budget=3) as url,
        RegistryClient(url) as client,
    ):
        await _setup(client, w)
        await client.submit_batch([w.offer(f"p{i}.ctyun") for i in range(10)])
        with pytest.raises(QueryTooExpensiveError):
            await client.search(CHEAPEST)
        with pytest.raises(SchemaError):
            await client.request("POST", "/v1/search", body={"class": "quantum"})
