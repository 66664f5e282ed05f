"""The latency model published by a registry, over real loopback HTTP (issue 4).

[REQ-REG-065] the registry serves the model it ranks with, signed by its
service key; [REQ-REG-066] its searches use exactly that model; [REQ-RES-015]
a catalogue verifies it with the service keys of the root zone record, ranks
with it, and refuses a tampered, foreign or rolled-back model.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from cid import codec
from cid import examples as ex
from cid.catalogue import Catalogue
from cid.errors import DecodeError, NotFoundError, SerialRollbackError, SignatureInvalidError
from cid.latency import LATENCY_MODEL_TYP, MODEL_LIFETIME_S, LatencyModel, default_model
from cid.query import Query
from cid.signing import PublicKey
from cid_registry.settings import load_latency_model

from .conftest import Backend
from .harness import RegistryClient
from .test_resolver import Env, proxy_for, registry

# A model in which Guizhou sits 2 ms from Hebei (the default model puts it much farther):
# a registry ranking with it finds the Guizhou pool "within 3 ms of Hebei". (The
# example offers state their own RTT to Tianjin, which a model never overrides.)
CLOSE_GZ = LatencyModel.build(
    "test-close-gz", circles=[("metro", 1000, ["CN-BJ", "CN-TJ"])], rtt=[("CN-HE", "CN-GZ", 2000)]
)
NEAR_HE = Query.model_validate({
    "class": "general", "near": {"region": "CN-HE", "max_rtt_us": 3000},
    "currency": "CNY", "order": ["latency", "cost"],
})  # fmt: skip


@asynccontextmanager
async def replica_behind_proxy(backend: Backend, env: Env) -> AsyncIterator[tuple[Catalogue, Any]]:
    """A registry publishing CLOSE_GZ and a synced catalogue that reaches it through a proxy."""
    async with registry(backend, env, latency_model=CLOSE_GZ) as url, \
            RegistryClient(url) as client, proxy_for(url) as (purl, proxy):  # fmt: skip
        await env.bootstrap(client)
        catalogue = Catalogue(purl, [env.operator.root.public_key], clock=env.clock,
                              registry_model=True)  # fmt: skip
        await catalogue.sync()
        try:
            yield catalogue, proxy
        finally:
            await catalogue.close()


def _service(env: Env) -> dict[str, PublicKey]:
    return {env.operator.service.public_key.kid: env.operator.service.public_key}


async def _get(url: str, path: str, **headers: str) -> tuple[int, CIMultiDict[str], bytes]:
    async with aiohttp.ClientSession() as s, s.get(url + path, headers=headers) as r:
        return r.status, CIMultiDict(r.headers), await r.read()


@pytest.mark.asyncio
async def test_registry_serves_its_model_signed(backend: Backend) -> None:
    """REQ-REG-065: the envelope, both encodings, caching headers and 304."""
    env = Env()
    async with registry(backend, env, latency_model=CLOSE_GZ) as url:
        status, headers, body = await _get(url, "/v1/latency-model")
        assert status == 200 and headers["Content-Type"] == "application/cid+json"
        value = codec.decode(body, "json")
        h = value["header"]
        assert (h["typ"], h["sub"], h["serial"]) == (LATENCY_MODEL_TYP, ".", CLOSE_GZ.version)
        assert h["iat"] == h["nbf"] == env.clock.now and h["exp"] - h["iat"] <= MODEL_LIFETIME_S
        assert "ttl" not in h
        assert [s["kid"] for s in value["sigs"]] == [env.operator.service.public_key.kid]
        assert LatencyModel.model_validate(value["body"]) == CLOSE_GZ
        assert headers["Cache-Control"] == f"max-age={h['exp'] - env.clock.now}"
        status, mheaders, mbody = await _get(
            url, "/v1/latency-model", Accept="application/cid+msgpack"
        )
        assert status == 200 and mheaders["Content-Type"] == "application/cid+msgpack"
        assert codec.decode(mbody, "msgpack") == value  # the same envelope, re-encoded
        status, nheaders, nbody = await _get(
            url, "/v1/latency-model", **{"If-None-Match": headers["ETag"]}
        )
        assert status == 304 and nbody == b"" and nheaders["ETag"] == headers["ETag"]
        # half an hour on, the registry signs again: never near expiry, same model
        env.clock.advance(MODEL_LIFETIME_S // 2)
        _, later_headers, later = await _get(url, "/v1/latency-model")
        resigned = codec.decode(later, "json")
        assert resigned["header"]["iat"] == env.clock.now and resigned["body"] == value["body"]
        assert later_headers["ETag"] == headers["ETag"]


@pytest.mark.asyncio
async def test_registry_without_a_model_says_not_found(backend: Backend) -> None:
    """REQ-REG-065: no model, NOT_FOUND with rule latency_model; the catalogue ranks without."""
    env = Env()
    async with registry(backend, env, latency_model=None) as url, RegistryClient(url) as client:
        status, headers, body = await _get(url, "/v1/latency-model")
        assert status == 404 and headers["Content-Type"].startswith("application/problem+json")
        problem = json.loads(body)
        assert problem["cid"]["code"] == NotFoundError.code
        assert problem["cid"]["detail"]["rule"] == "latency_model"
        await env.bootstrap(client)
        catalogue = Catalogue(url, [env.operator.root.public_key], clock=env.clock,
                              latency=default_model(), registry_model=True)  # fmt: skip
        await catalogue.sync()
        assert catalogue.latency is None
        await catalogue.close()


@pytest.mark.asyncio
async def test_search_and_catalogue_rank_with_the_published_model(backend: Backend) -> None:
    """REQ-REG-066 / REQ-RES-015: the registry and its replica rank by the same model."""
    env = Env()
    async with registry(backend, env, latency_model=CLOSE_GZ) as url, \
            RegistryClient(url) as client:  # fmt: skip
        await env.bootstrap(client)
        await client.submit(env.offer("gz.ctyun", body=ex.guizhou_offer()))
        await client.submit(env.offer("nm.ctyun", body=ex.inner_mongolia_offer()))
        await client.submit(env.offer("tj.ctyun", body=ex.tianjin_offer()))
        remote = await client.search(NEAR_HE)
        assert [r["name"] for r in remote["results"]] == ["gz.ctyun", "tj.ctyun"]
        plain = Catalogue(url, [env.operator.root.public_key], clock=env.clock)
        await plain.sync()
        # without the registry's model, Guizhou is not within 3 ms of Hebei
        assert [m.name.to_text() for m in plain.search(NEAR_HE).results] == ["tj.ctyun"]
        replica = Catalogue(url, [env.operator.root.public_key], clock=env.clock,
                            registry_model=True)  # fmt: skip
        await replica.sync()
        assert replica.latency == CLOSE_GZ
        assert replica.search(NEAR_HE).to_value() == remote
        await plain.close()
        await replica.close()


@pytest.mark.asyncio
async def test_catalogue_refuses_a_forged_or_rolled_back_model(backend: Backend) -> None:
    """REQ-RES-015: a tampered body or an older version never replaces the held model."""
    env = Env()
    async with replica_behind_proxy(backend, env) as (catalogue, proxy):
        held = catalogue.latency
        assert held == CLOSE_GZ

        def tamper(path: str, value: Any) -> Any:
            if path.startswith("/v1/latency-model"):
                value = copy.deepcopy(value)
                value["body"]["rtt"][0]["rtt_us"] = 1
            return value

        proxy.mutate = tamper
        with pytest.raises(SignatureInvalidError):
            await catalogue.update_latency_model()
        assert catalogue.latency is held

        # a version-2 model is accepted; replaying version 1 afterwards is a rollback
        old = catalogue.models
        v2 = CLOSE_GZ.model_copy(update={"version": 2})
        from cid.latency import seal_model

        proxy.mutate = lambda path, value: (
            seal_model(v2, env.operator.service, env.clock.now).to_value()
            if path.startswith("/v1/latency-model") else value
        )  # fmt: skip
        assert (await catalogue.update_latency_model()) == v2
        proxy.mutate = None
        with pytest.raises(SerialRollbackError):
            await catalogue.update_latency_model()
        assert catalogue.models is old and catalogue.latency == v2


@pytest.mark.asyncio
async def test_catalogue_fetches_the_model_again_each_half_window(backend: Backend) -> None:
    """REQ-RES-015: SHOULD fetch again once per validity window; sync does it when due."""
    env = Env()
    async with replica_behind_proxy(backend, env) as (catalogue, proxy):
        fetched = [k for k in proxy.recorded if k.startswith("/v1/latency-model")]
        assert len(fetched) == 1
        proxy.recorded.clear()
        await catalogue.sync()
        assert not [k for k in proxy.recorded if k.startswith("/v1/latency-model")]
        env.clock.advance(MODEL_LIFETIME_S // 2)
        await catalogue.sync()
        assert [k for k in proxy.recorded if k.startswith("/v1/latency-model")]


@pytest.mark.asyncio
async def test_standalone_update_learns_service_keys_from_the_root_zone(backend: Backend) -> None:
    """REQ-RES-010: before any snapshot, the keys come from the verified root zone record."""
    env = Env()
    async with registry(backend, env, latency_model=CLOSE_GZ) as url, \
            RegistryClient(url) as client:  # fmt: skip
        await env.bootstrap(client)
        catalogue = Catalogue(url, [env.operator.root.public_key], clock=env.clock)
        assert (await catalogue.update_latency_model()) == CLOSE_GZ
        assert catalogue.service_keys == _service(env)
        await catalogue.close()


def test_load_latency_model_settings(tmp_path: Path) -> None:
    """`--latency-model FILE|default|none`; a bad file is a typed error, not a traceback."""
    assert load_latency_model("default") == default_model()
    assert load_latency_model("none") is None
    path = tmp_path / "model.json"
    path.write_text(json.dumps(CLOSE_GZ.to_value()), encoding="utf-8")
    assert load_latency_model(str(path)) == CLOSE_GZ
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(DecodeError):
        load_latency_model(str(path))
    with pytest.raises(DecodeError):
        load_latency_model(str(tmp_path / "missing.json"))
