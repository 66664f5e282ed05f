"""The resolver against real registry *processes* on loopback (issue 4).

Two ``cid-registry serve`` subprocesses on the wall clock: a referral chain
from one to the other, followed and verified; then a lying mirror in front of
the first (a tampering proxy) whose tampered, rolled-back and proof-stripped
answers are each refused with their typed error. The clock-dependent cases
(TTL caching, expiry, expired delegation) run in ``test_resolver.py`` with a
controllable clock instead of sleeps.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from cid import examples as ex
from cid.envelope import sign_record
from cid.errors import KeyUnknownError, SerialRollbackError, SignatureInvalidError
from cid.record import DelegationBody
from cid.resolver import Resolver
from cid.signing import SigningKey

from .harness import Operator, RegistryClient, free_port, start_process
from .test_resolver import proxy_for

pytestmark = pytest.mark.asyncio


def _signed(body: Any, name: str, key: SigningKey, serial: int = 1):  # type: ignore[no-untyped-def]
    now = int(time.time())
    return sign_record(body, name=name, serial=serial, key=key, nbf=now - 60, exp=now + 86_400)


async def test_referral_chain_and_attacks_across_registry_processes(tmp_path: Path) -> None:
    """REQ-QRY-012/013, REQ-RES-004/006: real processes, a referral, and a lying mirror refused."""
    operator, provider, child = Operator(), ex.provider_key(), SigningKey.generate()
    port_b = free_port()
    url_b = f"http://127.0.0.1:{port_b}"
    a = start_process(tmp_path, operator, str(tmp_path / "a.db"), name="a")
    b = start_process(
        tmp_path, operator, str(tmp_path / "b.db"), name="b",
        extra=["--port", str(port_b), "--self-url", url_b],
    )  # fmt: skip
    root = [operator.root.public_key]
    try:
        deleg_tj = _signed(
            DelegationBody(keys=[child.public_key], registries=[url_b]), "tj.ctyun", provider
        )
        async with RegistryClient(a.url) as ca, RegistryClient(b.url) as cb:
            for client in (ca, cb):
                now = int(time.time())
                await client.submit(operator.root_zone(now=now))
                await client.submit(operator.delegate("ctyun", provider, now=now))
                await client.submit(deleg_tj)
            await cb.submit(_signed(ex.tianjin_offer(), "pool.tj.ctyun", child))
            await ca.submit(_signed(ex.guizhou_offer(), "gz.ctyun", provider))

            # the referral: asked at A, answered by B, verified from the anchor down
            async with Resolver([a.url], root) as resolver:
                answer = await resolver.resolve("pool.tj.ctyun")
                assert answer.registry == url_b and resolver.queries == 2
                assert answer.offer is not None and answer.records[0].serial == 1

            async with proxy_for(a.url) as (purl, proxy):
                # a tampered answer
                def tamper(path: str, value: Any) -> Any:
                    for rec in value.get("records", []):
                        rec["body"]["availability"]["units_free"] = 1
                    return value

                proxy.mutate = tamper
                async with Resolver([purl], root) as r:
                    with pytest.raises(SignatureInvalidError):
                        await r.resolve("gz.ctyun")
                # a stripped proof: the record's signer cannot be placed in the tree
                proxy.mutate = lambda path, value: {**value, "proof": []}
                async with Resolver([purl], root) as r:
                    with pytest.raises(KeyUnknownError):
                        await r.resolve("gz.ctyun")
                # a rolled-back serial: the mirror replays serial 1 after serial 2 was seen
                proxy.mutate, proxy.recorded = None, {}
                async with Resolver([purl], root) as r:
                    assert (await r.resolve("gz.ctyun")).records[0].serial == 1  # recorded
                    await ca.submit(_signed(ex.guizhou_offer(), "gz.ctyun", provider, serial=2))
                    r.cache._pos.clear()  # forget the answer, keep the serial memory
                    async with Resolver([a.url], root) as direct:
                        direct.state = r.state  # the same resolver memory, the honest registry
                        assert (await direct.resolve("gz.ctyun")).records[0].serial == 2
                    r.cache._pos.clear()
                    proxy.replay = True
                    with pytest.raises(SerialRollbackError):
                        await r.resolve("gz.ctyun")
    finally:
        a.stop()
        b.stop()
