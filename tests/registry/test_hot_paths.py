"""The registry's fast paths answer exactly as the slow ones (issue 3 performance work).

* resolve answers are reused, keyed by the request as received, only while the
  store, the trust state and the clock leave them right;
* the one front middleware: request ids, metrics exposition, problems;
* the batch and single-record write paths refuse what they must, item by item.
"""

from __future__ import annotations

import re

import aiohttp
import pytest

from cid import codec
from cid import examples as ex
from cid.envelope import Envelope, sign_record
from cid_registry.app import RequestStats

from .conftest import Backend
from .harness import Clock, Operator, RegistryClient, serve_in_process
from .test_server import World, _setup


@pytest.mark.asyncio
async def test_resolve_cache_follows_store_trust_and_clock(backend: Backend) -> None:
    clock, operator = Clock(), Operator()
    w = World(clock, operator)
    async with (
        serve_in_process(backend.new(), clock=clock, operator=operator) as url,
        RegistryClient(url) as client,
        aiohttp.ClientSession() as s,
    ):
        await _setup(client, w)
        await client.submit(w.offer("pool.ctyun", ttl_s=600))
        first = await client.resolve("pool.ctyun")
        # another spelling of the same name: its own cache entry, the same answer
        assert await client.resolve("POOL.CTYUN") == first
        async with s.get(url + "/v1/names/Pool.Ctyun") as r:
            assert r.status == 200 and await r.read() == codec.encode_json(first)
        assert await client.resolve("pool.ctyun") == first  # served from the cache
        # a new version moves the store: the cached answer is not reused
        await client.submit(w.offer("pool.ctyun", serial=2, ttl_s=600))
        second = await client.resolve("POOL.CTYUN")
        assert [r["header"]["serial"] for r in second["records"]] == [2]
        # the clock passing the record's expiry ends the answer
        clock.advance(601)
        async with s.get(url + "/v1/names/pool.ctyun") as r:
            assert r.status == 404
        # max-age follows the clock while an answer is reused
        clock.advance(-601 + 500)
        async with s.get(url + "/v1/names/pool.ctyun") as r:
            assert r.headers["Cache-Control"] == "max-age=100"
        clock.advance(10)
        async with s.get(url + "/v1/names/pool.ctyun") as r:
            assert r.headers["Cache-Control"] == "max-age=90"
            etag = r.headers["ETag"]
        async with s.get(url + "/v1/names/pool.ctyun", headers={"If-None-Match": etag}) as r:
            assert r.status == 304 and r.headers["ETag"] == etag
            assert "Content-Type" not in r.headers or r.headers["Content-Length"] == "0"


@pytest.mark.asyncio
async def test_resolve_cache_drops_revoked_authority(backend: Backend) -> None:
    """REQ-SIG-049/050: deleting the delegation ends a cached answer at once."""
    clock, operator = Clock(), Operator()
    w = World(clock, operator)
    async with (
        serve_in_process(backend.new(), clock=clock, operator=operator) as url,
        RegistryClient(url) as client,
        aiohttp.ClientSession() as s,
    ):
        await _setup(client, w)
        await client.submit(w.offer("pool.ctyun"))
        await client.resolve("pool.ctyun")
        from cid.record import TombstoneBody

        tomb = sign_record(
            TombstoneBody(target="delegation"),
            name="ctyun",
            serial=2,
            key=operator.root,
            nbf=clock.now - 1,
            exp=clock.now + 3600,
        )
        await client.submit(tomb)
        async with s.get(url + "/v1/names/pool.ctyun") as r:
            assert r.status == 404


@pytest.mark.asyncio
async def test_request_ids_and_metrics(backend: Backend) -> None:
    clock, operator = Clock(), Operator()
    async with (
        serve_in_process(backend.new(), clock=clock, operator=operator) as url,
        aiohttp.ClientSession() as s,
    ):
        ids = set()
        for _ in range(300):  # more than one pool of ids
            async with s.get(url + "/v1/names/nothing.here") as r:
                assert r.status == 404
                rid = r.headers["X-Request-Id"]
                assert re.fullmatch(r"[0-9a-f]{32}", rid)
                assert (await r.json())["request_id"] == rid
                ids.add(rid)
        assert len(ids) == 300
        async with s.get(url + "/healthz", headers={"X-Request-Id": "abc-123"}) as r:
            assert r.headers["X-Request-Id"] == "abc-123"
        async with s.get(url + "/no/such/route") as r:
            assert r.status == 404 and (await r.json())["cid"]["detail"]["rule"] == "route"
        async with s.get(url + "/metrics") as r:
            text = await r.text()
        assert (
            'cid_registry_requests_total{method="GET",route="/v1/names/{name}",status="404"} 300.0'
            in text
        )
        assert 'cid_registry_request_seconds_count{route="/v1/names/{name}"} 300.0' in text
        assert 'cid_registry_request_seconds_bucket{le="+Inf",route="/v1/names/{name}"} 300.0' in (
            text
        )
        assert 'route="unmatched",status="404"' in text


def test_request_stats_buckets() -> None:
    stats = RequestStats((0.001, 0.01))
    for elapsed in (0.0005, 0.001, 0.002, 0.5):
        stats.observe("/r", "GET", 200, elapsed)
    stats.observe("/r", "GET", 404, 0.0001)
    families = {f.name: f for f in stats.collect()}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    bucket = "cid_registry_request_seconds_bucket"
    assert samples[(bucket, (("le", "0.001"), ("route", "/r")))] == 3  # le is inclusive
    assert samples[(bucket, (("le", "0.01"), ("route", "/r")))] == 4
    assert samples[(bucket, (("le", "+Inf"), ("route", "/r")))] == 5
    assert samples[("cid_registry_request_seconds_count", (("route", "/r"),))] == 5
    assert samples[("cid_registry_request_seconds_sum", (("route", "/r"),))] == pytest.approx(
        0.5036
    )
    key = ("cid_registry_requests_total", (("method", "GET"), ("route", "/r"), ("status", "200")))
    assert samples[key] == 4


@pytest.mark.asyncio
async def test_envelope_from_value_unchanged(backend: Backend) -> None:
    """A resolve answer's records are the envelopes as registered, byte for byte."""
    clock, operator = Clock(), Operator()
    w = World(clock, operator)
    async with (
        serve_in_process(backend.new(), clock=clock, operator=operator) as url,
        RegistryClient(url) as client,
    ):
        await _setup(client, w)
        env = w.offer("gz.ctyun", ex.guizhou_offer())
        await client.submit(env)
        answer = await client.resolve("gz.ctyun")
        (record,) = answer["records"]
        assert Envelope.from_value(record).encode("msgpack") == env.encode("msgpack")


def test_tune_gc_freezes_the_loaded_heap() -> None:
    import gc

    from cid_registry.cli import GC_THRESHOLDS, tune_gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


@pytest.mark.asyncio
async def test_batch_counts_writes_by_op(backend: Backend) -> None:
    clock, operator = Clock(), Operator()
    w = World(clock, operator)
    async with (
        serve_in_process(backend.new(), clock=clock, operator=operator) as url,
        RegistryClient(url) as client,
        aiohttp.ClientSession() as s,
    ):
        await _setup(client, w)
        a, b = w.offer("a.ctyun"), w.offer("b.ctyun")
        results = await client.submit_batch([a, b, a, w.offer("a.ctyun", serial=2)])
        assert [r["op"] for r in results if isinstance(r, dict)] == ["put", "put", "put", "put"]
        assert [r.get("rseq") for r in results if isinstance(r, dict)][2] is None
        async with s.get(url + "/metrics") as r:
            text = await r.text()
        assert 'cid_registry_writes_total{op="put"} 5.0' in text  # two delegations, three offers
        assert 'cid_registry_writes_total{op="idempotent"} 1.0' in text


def test_trust_key_cache_follows_every_change() -> None:
    """The trust state's cached keys and authority paths are dropped whenever the tree changes."""
    from cid.errors import ChainBrokenError
    from cid.identifier import Identifier
    from cid.record import KeyRotationBody, TombstoneBody
    from cid.signing import SigningKey
    from cid.trust import TrustState

    root, anchor, signer = ex.root_key(), ex.provider_key(), SigningKey.generate()
    now = ex.EPOCH + 60
    trust = TrustState([root.public_key])
    name = Identifier.parse("pool.ctyun")

    def add(body: object, at: str, key: SigningKey, serial: int, exp: int = now + 600) -> None:
        rec = sign_record(body, name=at, serial=serial, key=key, nbf=now - 1, exp=exp)  # type: ignore[arg-type]
        trust.add(rec.envelope, now=now)

    add(ex.delegation(anchor), "ctyun", root, 1)
    assert set(trust.authorised_keys(name, now=now)) == {anchor.kid}
    assert set(trust.authorised_keys(Identifier.parse("ctyun"), "keyrotation", now=now)) == {
        anchor.kid
    }
    # a rotation: the signing key takes over at once
    add(KeyRotationBody(keys=[signer.public_key]), "ctyun", anchor, 1)
    assert set(trust.authorised_keys(name, now=now)) == {signer.kid}
    # revoking it: no key left to sign offers
    add(KeyRotationBody(keys=[anchor.public_key], revoked=[signer.kid]), "ctyun", anchor, 2)
    assert set(trust.authorised_keys(name, now=now)) == {anchor.kid}
    # the delegation's window is checked at every call, cached or not
    with pytest.raises(ChainBrokenError):
        trust.authorised_keys(name, now=now + 601)
    # deleting the delegation: the root governs again
    add(TombstoneBody(target="delegation"), "ctyun", root, 2)
    assert set(trust.authorised_keys(name, now=now)) == {root.kid}
    keys = trust.authorised_keys(name, now=now)
    keys.clear()  # callers get their own copy
    assert set(trust.authorised_keys(name, now=now)) == {root.kid}
    assert trust.may_sign(name, root.kid, now=now)
    assert not trust.may_sign(name, anchor.kid, now=now)
    with pytest.raises(ChainBrokenError):
        trust.may_sign(Identifier.parse("ctyun"), root.kid, "keyrotation", now=now)
