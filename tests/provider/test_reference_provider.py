"""The reference provider (``cid-provider serve``) as a real subprocess against a real registry.

One registry subprocess (SQLite) and one provider subprocess per module, configured
from a generated TOML file: the provider registers its zone record and offers,
refreshes availability, negotiates and runs tasks as real local processes. The
requester is :class:`cid.requester.Requester`; everything it receives is verified.
Shutdown is tested on a second provider of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cid import cli
from cid.client import RegistryClient
from cid.errors import CapacityExhaustedError, CidError, SchemaError
from cid.identifier import Identifier
from cid.invocation import TaskState
from cid.negotiation import MaxPrice
from cid.query import ResourceDemand
from cid.requester import Requester
from cid.resolver import Resolver
from cid.signing import SigningKey
from cid_provider.config import load_config

from ..registry.harness import Operator, RegistryProcess, start_process

DAY = 86_400
NAMESPACE = "acme"
POOL = "pool.acme"  # 4 units: end-to-end runs
SOLO = "solo.acme"  # 1 unit: the race for the last unit


def provider_toml(
    *,
    namespace: str,
    registry: str,
    root_keys: Path,
    namespace_key: Path,
    service_key: Path,
    workdir: Path,
    offers: dict[str, int],
    refresh_interval_s: float = 0.3,
    delegation: Path | None = None,
) -> str:
    """A provider configuration: one general pool per ``offers`` item (name -> units_total)."""
    text = f"""
[provider]
namespace = "{namespace}"
display_name = "Acme test compute"
registry = "{registry}"
root_keys = "{root_keys}"
namespace_key = "{namespace_key}"
service_key = "{service_key}"
{f'delegation = "{delegation}"' if delegation else ""}

[server]
host = "127.0.0.1"
port = 0
workdir = "{workdir}"

[publish]
refresh_interval_s = {refresh_interval_s}

[policy]
quote_valid_s = 60
wall_s = 30
output_bytes = 65536
cancellation = {{ notice_s = 0, fee_share = "0.5" }}
"""
    for name, total in offers.items():
        text += f"""
[[offers]]
name = "{name}"
ttl_s = 60
class = "general"
title = "Test pool {name}"
unit = {{ vcpu = 1, memory_mib = 2048, cpu = {{ arch = "x86_64" }} }}
location = {{ country = "CN", region = "CN-GZ", city = "贵安" }}
availability = {{ units_total = {total} }}
energy = {{ renewable_share = 0.62 }}
network = {{ latency_circle = "west-hub", rtt_us = {{ CN-GZ = 500, CN-TJ = 9500 }} }}

[offers.price]
currency = "CNY"
billing_granularity_s = 3600
items = [
    {{ resource = "vcpu", amount = "5", per = "month" }},
    {{ resource = "memory_gib", amount = "1", per = "month" }},
    {{ resource = "storage_gib", amount = "0.03", per = "month" }},
]
"""
    return text


@dataclass
class ProviderProcess:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)


def start_provider(tmp: Path, config: Path, name: str) -> ProviderProcess:
    ready, log = tmp / f"{name}.ready", tmp / f"{name}.log"
    cmd = [
        sys.executable, "-m", "cid_provider.cli", "serve",
        "--config", str(config), "--ready-file", str(ready),
    ]  # fmt: skip
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"provider did not start: {log.read_text()[-3000:]}")
        time.sleep(0.02)
    host, port = ready.read_text().split()
    return ProviderProcess(proc, f"http://{host}:{port}", log)


@dataclass
class Deployment:
    tmp: Path
    operator: Operator
    registry: RegistryProcess
    root_pub: Path
    namespace_key: SigningKey
    service_key: SigningKey
    provider: ProviderProcess

    def resolver(self) -> Resolver:
        return Resolver([self.registry.url], [self.operator.root.public_key])

    def requester(self, resolver: Resolver, key: SigningKey | None = None) -> Requester:
        return Requester(key or SigningKey.generate(), resolver)


def _key_file(path: Path, key: SigningKey) -> Path:
    path.write_text(json.dumps(key.to_file_value()))
    return path


async def _bootstrap(registry: str, operator: Operator, delegations: dict[str, SigningKey]) -> None:
    now = int(time.time())
    async with RegistryClient(registry) as client:
        await client.submit(operator.root_zone(now=now))
        for name, key in delegations.items():
            await client.submit(operator.delegate(name, key, now=now))


def _deploy(tmp: Path, namespace: str, offers: dict[str, int]) -> Deployment:
    operator = Operator()
    registry = start_process(tmp, operator, str(tmp / "registry.sqlite3"))
    root_pub = tmp / "root.pub.json"
    root_pub.write_text(json.dumps([operator.root.public_key.to_value()]))
    anchor, service = SigningKey.generate(), SigningKey.generate()
    asyncio.run(_bootstrap(registry.url, operator, {namespace: anchor}))
    config = tmp / f"{namespace}.toml"
    config.write_text(
        provider_toml(
            namespace=namespace,
            registry=registry.url,
            root_keys=root_pub,
            namespace_key=_key_file(tmp / f"{namespace}.key", anchor),
            service_key=_key_file(tmp / f"{namespace}-service.key", service),
            workdir=tmp / "tasks",
            offers=offers,
        ),
        encoding="utf-8",
    )
    try:
        provider = start_provider(tmp, config, namespace)
    except BaseException:
        registry.stop()
        raise
    return Deployment(tmp, operator, registry, root_pub, anchor, service, provider)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("refprov")
    d = _deploy(tmp, NAMESPACE, {POOL: 4, SOLO: 1})
    try:
        yield d
    finally:
        code = d.provider.stop()
        d.registry.stop()
        assert code == 0, d.provider.log.read_text()[-3000:]


async def _records(registry: str, name: str) -> dict[str, dict[str, Any]]:
    async with RegistryClient(registry) as client:
        answer = await client.resolve(name)
    return {r["header"]["typ"].rsplit(".", 1)[1]: r for r in answer["records"]}


async def _units_free(registry: str, name: str) -> int:
    recs = await _records(registry, name)
    if "refresh" in recs:
        return int(recs["refresh"]["body"]["units_free"])
    return int(recs["offer"]["body"]["availability"]["units_free"])


async def _eventually(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def _three_months() -> dict[str, Any]:
    now = int(time.time())
    return {
        "quantity": 1,
        "duration_s": 30 * DAY,
        "start_after": now,
        "start_before": now + 120,
        "max_price": MaxPrice(currency="CNY", total=Decimal("40")),
    }


# --- registration and availability ------------------------------------------------------------


@pytest.mark.asyncio
async def test_registers_zone_and_offers(deployment: Deployment) -> None:
    d = deployment
    async with d.resolver() as resolver, d.requester(resolver) as req:
        provider = await req.provider_of(POOL)
        assert provider.namespace == Identifier(NAMESPACE)
        assert provider.negotiate_url == f"{d.provider.url}/v1/negotiate"
        assert provider.invoke_url == f"{d.provider.url}/v1/invoke"
        assert set(provider.service_keys) == {d.service_key.kid}
        for name, total in ((POOL, 4), (SOLO, 1)):
            answer = await resolver.resolve(name)  # verified from the trust anchor
            assert answer.offer is not None
            assert answer.offer.availability.units_total == total
            assert answer.of_type("offer").signer == d.namespace_key.kid  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_refreshes_availability(deployment: Deployment) -> None:
    """Heartbeat refreshes: signed, continuing the offer's serial, pushing its expiry out."""
    d = deployment
    first = await _records(d.registry.url, POOL)

    async def refreshed_again() -> bool:
        recs = await _records(d.registry.url, POOL)
        old = first.get("refresh", first["offer"])
        return "refresh" in recs and recs["refresh"]["header"]["serial"] > old["header"]["serial"]

    await _eventually(refreshed_again)
    recs = await _records(d.registry.url, POOL)
    refresh, offer = recs["refresh"], recs["offer"]
    assert refresh["header"]["serial"] > offer["header"]["serial"]
    assert refresh["header"]["exp"] >= offer["header"]["exp"]
    async with d.resolver() as resolver:
        answer = await resolver.resolve(POOL)  # the refresh verifies against the offer version
        assert answer.of_type("refresh") is not None


# --- negotiate and invoke ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_negotiate_and_run_a_task_end_to_end(deployment: Deployment) -> None:
    d = deployment
    before = await _units_free(d.registry.url, POOL)
    async with d.resolver() as resolver, d.requester(resolver) as req:
        agreement_env = await req.negotiate(
            POOL, **_three_months(), resources=ResourceDemand(vcpu=1, storage_gib=100, units=1)
        )
        agreement, provider = await req.open_agreement(agreement_env)
        assert agreement.provider == Identifier(NAMESPACE)
        assert agreement.requester.kid == req.key.kid

        # the reservation is published at once as a signed refresh
        async def one_fewer() -> bool:
            return await _units_free(d.registry.url, POOL) == before - 1

        await _eventually(one_fewer, timeout=5)

        code = (
            "import os; os.makedirs('out', exist_ok=True); "
            "open('out/answer.txt', 'w').write(str(sum(range(10**6)))); print('done')"
        )
        task = req.task(agreement, ["python3", "-c", code])
        task_id = await req.invoke(agreement_env, task)
        states = [s.state async for s in req.events(task_id)]
        assert states[-1] == TaskState.SUCCEEDED
        assert states[0] in (TaskState.QUEUED, TaskState.RUNNING)
        outcome = await req.result(task_id)
        assert outcome.receipt is not None
        assert outcome.receipt.agreement_id == agreement.agreement_id
        assert await req.output(task_id, "out/answer.txt") == str(sum(range(10**6))).encode()
        assert await req.output(task_id, ":stdout") == b"done\n"
        receipts = await req.receipts(agreement_env)
        assert [r.task_id for r in receipts] == [task_id]

    # the receipt verifies offline with the CLI, from files and the service key alone
    (d.tmp / "agreement.json").write_text(json.dumps(agreement_env.to_value()))
    assert outcome.receipt_envelope is not None
    (d.tmp / "receipt.json").write_text(json.dumps(outcome.receipt_envelope.to_value()))
    svc = d.tmp / "svc.pub.json"
    svc.write_text(json.dumps(provider.service_keys[d.service_key.kid].to_value()))
    argv = [
        "receipt", "verify", str(d.tmp / "receipt.json"),
        "--agreement", str(d.tmp / "agreement.json"), "--service-key", str(svc),
    ]  # fmt: skip
    assert await asyncio.to_thread(cli.main, argv) == 0
    requester_pub = d.tmp / "requester.pub.json"
    requester_pub.write_text(json.dumps(req.key.public_key.to_value()))
    assert await asyncio.to_thread(cli.main, [*argv, "--requester-key", str(requester_pub)]) == 0
    # an altered receipt, or another provider's key: refused (exit status 1)
    altered = outcome.receipt_envelope.to_value()
    altered["body"]["usage"]["cpu_s"] += 1
    (d.tmp / "receipt.json").write_text(json.dumps(altered))
    assert await asyncio.to_thread(cli.main, argv) == 1
    other = d.tmp / "other.pub.json"
    other.write_text(json.dumps(SigningKey.generate().public_key.to_value()))
    assert await asyncio.to_thread(cli.main, [*argv[:-1], str(other)]) == 1


@pytest.mark.asyncio
async def test_capacity_never_oversold_when_two_requesters_race_for_the_last_unit(
    deployment: Deployment,
) -> None:
    d = deployment
    async with (
        d.resolver() as resolver,
        d.requester(resolver) as alice,
        d.requester(resolver) as bob,
    ):
        # both are quoted while the unit is free; quotes do not reserve
        pa = await alice.request_quote(SOLO, **_three_months())
        pb = await bob.request_quote(SOLO, **_three_months())
        results = await asyncio.gather(alice.accept(pa), bob.accept(pb), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1, results
        assert isinstance(errors[0], CapacityExhaustedError)

        async def none_free() -> bool:
            return await _units_free(d.registry.url, SOLO) == 0

        await _eventually(none_free, timeout=5)
        # a third requester is refused at once, with the typed error
        with pytest.raises(CapacityExhaustedError):
            await alice.request_quote(SOLO, **_three_months())


def test_cli_negotiate_and_invoke(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    """``cid negotiate`` then ``cid invoke`` (live status, verified result and receipt)."""
    d = deployment
    key = _key_file(d.tmp / "cli-requester.key", SigningKey.generate())
    common = ["--registry", d.registry.url, "--key", str(key), "--root-key", str(d.root_pub)]
    agreement = d.tmp / "cli-agreement.json"
    code = cli.main(
        ["negotiate", POOL, *common, "--quantity", "1", "--duration", "30d",
         "--max-price", "40CNY", "--storage-gib", "10", "--out", str(agreement)]
    )  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "signed by both parties" in out.out
    receipt = d.tmp / "cli-receipt.json"
    code = cli.main(
        ["invoke", str(agreement), *common, "--receipt", str(receipt), "--out-dir",
         str(d.tmp / "cli-out"), "--", "python3", "-c",
         "open('out/r.txt', 'w').write('42'); print(6*7)"]
    )  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err + out.out
    assert "succeeded" in out.out
    assert "42" in out.out
    assert (d.tmp / "cli-out" / "out" / "r.txt").read_text() == "42"
    assert json.loads(receipt.read_text())["header"]["typ"] == "cid.inv.receipt"


# --- configuration and shutdown ------------------------------------------------------------


def test_config_errors_name_the_member(tmp_path: Path) -> None:
    good = provider_toml(
        namespace="acme",
        registry="http://127.0.0.1:1",
        root_keys=tmp_path / "r",
        namespace_key=tmp_path / "k",
        service_key=tmp_path / "s",
        workdir=tmp_path / "w",
        offers={"pool.acme": 2},
    )
    good = good.replace(
        "port = 0\n", 'port = 0\nmax_concurrent_tasks = 2\nallowed_commands = ["sh"]\n'
    )
    path = tmp_path / "p.toml"
    path.write_text(good)
    config = load_config(path)
    assert config.offers[0].units_total == 2
    assert config.policy.wall_s == 30
    assert (config.max_concurrent_tasks, config.allowed_commands) == (2, ("sh",))
    for bad, field in (
        (good.replace('name = "pool.acme"', 'name = "pool.other"'), "offers[0].name"),
        (good.replace("units_total = 2", "units_total = 0"), "offers[0].availability.units_total"),
        (good.replace("wall_s = 30", "wall_secs = 30"), "policy.wall_secs"),
        (good.replace('per = "month"', 'per = "fortnight"', 1), "offers[0].price.items.0.per"),
        (good.replace('["sh"]', '"sh"'), "server.allowed_commands"),
        (good.replace('namespace = "acme"', 'namespace = "a..b"'), "provider.namespace"),
    ):
        path.write_text(bad)
        with pytest.raises(SchemaError) as e:
            load_config(path)
        assert e.value.field == field


def test_graceful_shutdown_drains_and_kills_running_tasks(tmp_path: Path) -> None:
    d = _deploy(tmp_path, "beta", {"pool.beta": 2})
    pid_file = tmp_path / "task.pid"
    try:

        async def start_long_task() -> None:
            async with d.resolver() as resolver, d.requester(resolver) as req:
                env = await req.negotiate("pool.beta", **_three_months())
                agreement, _ = await req.open_agreement(env)
                code = (
                    f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
                    "time.sleep(60)"
                )
                await req.invoke(env, req.task(agreement, ["python3", "-c", code]))
                deadline = time.monotonic() + 10
                while not pid_file.exists() or not pid_file.read_text():
                    assert time.monotonic() < deadline, "the task did not start"
                    await asyncio.sleep(0.05)

        asyncio.run(start_long_task())
        pid = int(pid_file.read_text())
        os.kill(pid, 0)  # running
        assert d.provider.stop() == 0
        deadline = time.monotonic() + 5
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            assert time.monotonic() < deadline, "the task outlived its provider"
            time.sleep(0.05)
        # drained: the registry now announces no free units
        assert asyncio.run(_units_free(d.registry.url, "pool.beta")) == 0
        log = d.provider.log.read_text()
        assert '"msg": "shutting down' in log
    finally:
        if d.provider.proc.poll() is None:
            d.provider.proc.kill()
        d.registry.stop()


def test_refuses_to_start_without_a_delegation(tmp_path: Path) -> None:
    operator = Operator()
    registry = start_process(tmp_path, operator, str(tmp_path / "r.sqlite3"))
    try:
        asyncio.run(_bootstrap(registry.url, operator, {}))
        root_pub = tmp_path / "root.pub.json"
        root_pub.write_text(json.dumps([operator.root.public_key.to_value()]))
        config = tmp_path / "x.toml"
        config.write_text(
            provider_toml(
                namespace="orphan",
                registry=registry.url,
                root_keys=root_pub,
                namespace_key=_key_file(tmp_path / "k", SigningKey.generate()),
                service_key=_key_file(tmp_path / "s", SigningKey.generate()),
                workdir=tmp_path / "w",
                offers={"pool.orphan": 1},
            )
        )
        proc = subprocess.run(
            [sys.executable, "-m", "cid_provider.cli", "serve", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert proc.returncode == 1
        assert "NOT_FOUND" in proc.stderr and "not delegated" in proc.stderr
    finally:
        registry.stop()


@pytest.mark.asyncio
async def test_in_process_provider_recovers_its_offer_versions(tmp_path: Path) -> None:
    """The same service in-process: a serial taken by someone else is skipped, and a
    version replaced behind its back is published again."""
    from cid.envelope import sign_record
    from cid_provider.service import ReferenceProvider
    from cid_registry.store.sqlite import SqliteStore

    from ..registry.harness import serve_in_process

    operator = Operator()
    anchor, service = SigningKey.generate(), SigningKey.generate()
    store = SqliteStore(str(tmp_path / "r.sqlite3"))
    clock = lambda: int(time.time())  # noqa: E731
    async with (
        contextlib.AsyncExitStack() as stack,
        serve_in_process(store, clock=clock, operator=operator) as registry,  # type: ignore[arg-type]
    ):
        stack.push_async_callback(store.close)
        await _bootstrap(registry, operator, {})
        # the delegation comes with the provider, signed by the operator: it submits it
        delegation = tmp_path / "gamma.delegation.json"
        now = int(time.time())
        delegation.write_text(
            json.dumps(operator.delegate("gamma", anchor, now=now).envelope.to_value())
        )
        config_path = tmp_path / "gamma.toml"
        root_pub = tmp_path / "root.pub.json"
        root_pub.write_text(json.dumps([operator.root.public_key.to_value()]))
        config_path.write_text(
            provider_toml(
                namespace="gamma",
                registry=registry,
                root_keys=root_pub,
                namespace_key=_key_file(tmp_path / "k", anchor),
                service_key=_key_file(tmp_path / "s", service),
                workdir=tmp_path / "w",
                offers={"pool.gamma": 3},
                delegation=delegation,
            )
        )
        provider = ReferenceProvider(load_config(config_path))
        await provider.start()
        try:
            name = Identifier("pool.gamma")
            first = provider.publisher.version(name)
            assert first is not None
            # another signer of the namespace publishes a new version of the offer
            body = first.body.model_copy(update={"title": "replaced elsewhere"})
            async with RegistryClient(registry) as client:
                await client.submit(
                    sign_record(
                        body, name=name, serial=first.serial + 10**6, key=anchor,
                        nbf=now - 60, exp=now + 600,
                    )
                )  # fmt: skip
            # the first refresh finds its serial taken and skips past it; the next one
            # finds its version replaced and publishes a new one
            with pytest.raises(CidError):
                await provider.publisher.refresh(name)
            assert await provider.publisher.refresh(name)
            second = provider.publisher.version(name)
            assert second is not None and second.serial > first.serial + 10**6
            assert second.digest != first.digest
            assert await provider.publisher.refresh(name)  # and refreshes that one
            async with Resolver([registry], [operator.root.public_key]) as resolver:
                answer = await resolver.resolve(name)
                assert answer.of_type("offer").serial == second.serial  # type: ignore[union-attr]
                assert answer.units_free == 3
        finally:
            await provider.stop()
