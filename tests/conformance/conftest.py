"""Fixtures for the conformance suite's own tests: real registries on loopback, the suite in
process.

The registry under test is the reference ``cid_registry`` app on a real TCP port
with a wall clock (the suite reads the registry's time from its signed heads and
observes real expiry), optionally wrapped to break one rule (``test_broken_registries``).
The suite is run through its CLI entry point inside the test's event loop.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from cid.client import RegistryClient
from cid_conformance.cli import run
from cid_conformance.runner import CaseResult
from cid_registry.app import create_app
from cid_registry.settings import Settings
from cid_registry.store.sqlite import SqliteStore

from ..registry.harness import Clock, Operator

ROOT = Path(__file__).resolve().parents[2]


class WallClock(Clock):
    """The registry's clock is the real one: the suite watches records expire in real time."""

    def __call__(self) -> int:
        return int(time.time())


Middleware = Callable[
    [web.Request, Callable[[web.Request], Awaitable[web.StreamResponse]]],
    Awaitable[web.StreamResponse],
]

SETTINGS: dict[str, Any] = {
    # the suite's ordinary traffic stays inside the burst; its rate-limit case drains it
    "rate_per_s": 50.0,
    "rate_burst": 3000,
    "read_timeout_s": 1.0,
    "search_budget": 400,
}
"""Registry settings the suite's options below match."""

SUITE_OPTIONS = [
    "--read-timeout",
    "1",
    "--search-budget",
    "400",
    "--expiry-s",
    "8",  # long enough for a world built while other variants run on a loaded 2-core machine
    "--no-colour",
    "-q",
]


@dataclass
class Registry:
    url: str
    operator: Operator
    root_key: Path
    app: web.Application
    peers: list[str] = field(default_factory=list)

    def args(self, *extra: str) -> list[str]:
        peers = [a for p in self.peers for a in ("--peer", p)]
        return [
            "registry",
            self.url,
            "--root-key",
            str(self.root_key),
            "--allow-writes",
            *SUITE_OPTIONS,
            *peers,
            *extra,
        ]


async def _start(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@asynccontextmanager
async def registry(
    tmp: Path,
    *,
    middlewares: Sequence[Middleware] = (),
    patch: Callable[[web.Application], None] | None = None,
    peer: bool = False,
    **overrides: Any,
) -> AsyncIterator[Registry]:
    """The reference registry (SQLite in ``tmp``), optionally broken by ``middlewares``/``patch``.

    With ``peer``, a second process-like app serves the same store file ([REQ-REG-012]).
    """
    operator = Operator()
    clock = WallClock()
    settings = Settings(
        root_keys=[operator.root.public_key],
        service_key=operator.service,
        clock=clock,
        **{**SETTINGS, **overrides},
    )
    db = str(tmp / "registry.sqlite3")
    app = create_app(settings, store=SqliteStore(db))
    for mw in middlewares:
        app.middlewares.insert(0, mw)  # outermost: sees what the client sees
    runners = []
    runner, url = await _start(app)
    runners.append(runner)
    if patch is not None:
        patch(app)
    peers = []
    if peer:
        peer_runner, peer_url = await _start(create_app(settings, store=SqliteStore(db)))
        runners.append(peer_runner)
        peers.append(peer_url)
    root_key = tmp / "root.key"
    root_key.write_text(json.dumps(operator.root.to_file_value()))
    try:
        async with RegistryClient(url) as client:
            # the operator publishes the root zone, naming the service key that signs heads
            await client.submit(operator.root_zone(now=clock()))
        yield Registry(url, operator, root_key, app, peers)
    finally:
        for r in reversed(runners):
            await r.cleanup()


async def run_suite(argv: Sequence[str]) -> tuple[int, list[CaseResult]]:
    return await run(list(argv))


def failing(results: Sequence[CaseResult]) -> set[str]:
    return {r.case.id for r in results if r.status.label in ("fail", "error")}


def errors(results: Sequence[CaseResult]) -> list[str]:
    return [f"{r.case.id}: {r.message}" for r in results if r.status.label == "error"]


def describe(results: Sequence[CaseResult], ids: set[str]) -> str:
    return "\n".join(
        f"{r.case.id} [{','.join(r.case.reqs)}]: {r.message}" for r in results if r.case.id in ids
    )


def judge_broken(
    code: int,
    results: Sequence[CaseResult],
    *,
    breaks: str,
    also: Iterable[str],
    fails: set[str],
    ignore: Iterable[str] = (),
) -> list[str]:
    """What is wrong with a suite run against a deliberately broken endpoint.

    The run must exit 1 with no suite errors and fail exactly ``fails`` (cases in
    ``ignore`` aside); every failing case must cite ``breaks`` or one of ``also``,
    and at least one must cite ``breaks`` itself.
    """
    problems = [f"suite error: {e}" for e in errors(results)]
    bad = failing(results) - set(ignore)
    by_id = {r.case.id: r for r in results}
    wanted = {breaks, *also}
    for case_id in sorted(bad):
        if not wanted & set(by_id[case_id].case.reqs):
            problems.append(f"{case_id} failed without citing {breaks}: {by_id[case_id].message}")
    if not any(breaks in by_id[c].case.reqs for c in bad):
        problems.append(f"no failing case cites {breaks}")
    if bad != fails:
        problems.append(
            f"failed {sorted(bad)}, expected {sorted(fails)}:\n" + describe(results, bad ^ fails)
        )
    if code != 1:
        problems.append(f"exit status {code}, expected 1")
    return problems


# --- the reference provider (``cid-conformance provider``) ----------------------------------------

PROVIDER_NAMESPACE = "cidconf-acme"
PROVIDER_OFFER = f"pool.{PROVIDER_NAMESPACE}"
PROVIDER_UNITS = 3


def provider_config_toml(
    *, registry_url: str, root_keys: Path, namespace_key: Path, service_key: Path, workdir: Path
) -> str:
    """The reference provider as the provider suite's tests run it.

    Quotes are valid for 3 s (the expiry case waits for one); the price has no billing
    granularity, so that an agreement of 60 s pays for exactly one task at its wall_s
    limit (the budget case); the pool has 3 units.
    """
    return f"""
[provider]
namespace = "{PROVIDER_NAMESPACE}"
display_name = "Conformance test compute"
registry = "{registry_url}"
root_keys = "{root_keys}"
namespace_key = "{namespace_key}"
service_key = "{service_key}"

[server]
host = "127.0.0.1"
port = 0
workdir = "{workdir}"
max_concurrent_tasks = 8

[publish]
refresh_interval_s = 0.5

[policy]
quote_valid_s = 3
wall_s = 60
output_bytes = 65536
cancellation = {{ notice_s = 3600, fee_share = "0.25" }}

[[offers]]
name = "{PROVIDER_OFFER}"
ttl_s = 3600
class = "general"
title = "Conformance pool"
unit = {{ vcpu = 1, memory_mib = 1024, cpu = {{ arch = "x86_64" }} }}
location = {{ country = "CN", region = "CN-GZ", city = "贵安" }}
availability = {{ units_total = {PROVIDER_UNITS} }}

[offers.price]
currency = "CNY"
items = [
    {{ resource = "vcpu", amount = "72", per = "hour" }},
    {{ resource = "memory_gib", amount = "36", per = "hour" }},
]
"""


@dataclass
class ProviderDeployment:
    registry: Registry
    url: str
    root_keys: Path
    service_key: Any
    provider: Any

    def args(self, *extra: str) -> list[str]:
        return [
            "provider",
            self.url,
            "--registry",
            self.registry.url,
            "--root-keys",
            str(self.root_keys),
            "--offer",
            PROVIDER_OFFER,
            "--python",
            sys.executable,
            "--no-colour",
            "-q",
            *extra,
        ]


@asynccontextmanager
async def reference_provider(
    tmp: Path,
    *,
    middlewares: Sequence[Middleware] = (),
    patch: Callable[[Any], None] | None = None,
) -> AsyncIterator[ProviderDeployment]:
    """The reference registry and the reference provider (``cid_provider``) on loopback.

    ``middlewares`` wrap the provider app (outermost first: they see what the client sees);
    ``patch(provider)`` may replace parts of the running provider to break one rule.
    """
    from cid.signing import SigningKey
    from cid_provider.config import load_config
    from cid_provider.service import ReferenceProvider

    async with registry(tmp) as reg:
        anchor, service = SigningKey.generate(), SigningKey.generate()
        async with RegistryClient(reg.url) as client:
            await client.submit(
                reg.operator.delegate(PROVIDER_NAMESPACE, anchor, now=int(time.time()))
            )
        root_pub = tmp / "root.pub.json"
        root_pub.write_text(json.dumps([reg.operator.root.public_key.to_value()]))
        files = {}
        for name, key in (("ns", anchor), ("service", service)):
            files[name] = tmp / f"{name}.key"
            files[name].write_text(json.dumps(key.to_file_value()))
        config = tmp / "provider.toml"
        config.write_text(
            provider_config_toml(
                registry_url=reg.url,
                root_keys=root_pub,
                namespace_key=files["ns"],
                service_key=files["service"],
                workdir=tmp / "tasks",
            ),
            encoding="utf-8",
        )
        provider = ReferenceProvider(load_config(config))
        for mw in middlewares:
            provider.app.middlewares.insert(0, mw)
        url = await provider.start()
        try:
            if patch is not None:
                patch(provider)
            yield ProviderDeployment(reg, url, root_pub, service, provider)
        finally:
            await provider.stop()
