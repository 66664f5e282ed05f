"""Provider benchmark (issue 5): the negotiate → invoke → result round trip on loopback.

A registry (``cid-registry serve``, SQLite) and a reference provider
(``cid-provider serve``: real ledger, policy and process executor) run as
subprocesses; the requester (:class:`cid.requester.Requester`, verifying
everything it receives) runs in this process. Reports:

* the full round trip - demand → quote → accept → agreement co-signed and
  confirmed → signed task submitted → live status (SSE) to ``succeeded`` →
  signed result and receipt fetched and verified - for a trivial task
  (``true``, a real process), sequentially: p50 / p99 / mean over ``--runs``;
  and its two halves (negotiation; invocation to verified receipt);
* agreements per second: complete negotiations only (four signed messages
  each, verified on both sides), ``--concurrency`` requesters at once.

    .venv/bin/python benchmarks/bench_provider.py [--runs 200] [--agreements 400] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from cid.client import RegistryClient
from cid.envelope import sign_record
from cid.negotiation import MaxPrice
from cid.record import DelegationBody, ZoneBody
from cid.requester import Requester
from cid.resolver import Resolver
from cid.signing import SigningKey

OFFER = "bench.acme"

CONFIG = """
[provider]
namespace = "acme"
display_name = "Benchmark provider"
registry = "{registry}"
namespace_key = "{namespace_key}"
service_key = "{service_key}"

[server]
host = "127.0.0.1"
port = 0
workdir = "{workdir}"

[publish]
refresh_interval_s = 30

[policy]
quote_valid_s = 120
wall_s = 30
output_bytes = 65536
cancellation = {{ notice_s = 0, fee_share = "0.1" }}

[[offers]]
name = "{offer}"
ttl_s = 3600
class = "general"
title = "Benchmark pool"
unit = {{ vcpu = 1, memory_mib = 1024, cpu = {{ arch = "x86_64" }} }}
location = {{ country = "CN", region = "CN-GZ" }}
availability = {{ units_total = 1000000 }}
price = {{ currency = "CNY", items = [{{ resource = "unit", amount = "7", per = "month" }}] }}
"""


def _start(cmd: list[str], ready: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{cmd[2]} did not start: {log.read_text()[-2000:]}")
        time.sleep(0.02)
    host, port = ready.read_text().split()
    return proc, f"http://{host}:{port}"


def _key_file(path: Path, key: SigningKey) -> Path:
    path.write_text(json.dumps(key.to_file_value()))
    return path


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def _row(label: str, values_s: list[float]) -> str:
    ms = [v * 1000 for v in values_s]
    return (
        f"| {label:<52} | {len(ms):>5} | {statistics.median(ms):>8.1f} | "
        f"{_percentile(ms, 99):>8.1f} | {statistics.fmean(ms):>8.1f} |"
    )


async def _demand_kwargs() -> dict[str, Any]:
    now = int(time.time())
    return {
        "quantity": 1,
        "duration_s": 86_400,
        "start_after": now,
        "start_before": now + 600,
        "max_price": MaxPrice(currency="CNY", total=Decimal("10")),
    }


async def _bench(registry: str, root: SigningKey, args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with Resolver([registry], [root.public_key]) as resolver:
        req = Requester(SigningKey.generate(), resolver)
        async with req:
            # warm-up: caches, connections, the executor's first process
            for _ in range(3):
                env = await req.negotiate(OFFER, **await _demand_kwargs())
                agreement, _ = await req.open_agreement(env)
                task_id = await req.invoke(env, req.task(agreement, ["true"]))
                await req.wait(task_id)
                await req.result(task_id)
            total, negotiate, invoke = [], [], []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                env = await req.negotiate(OFFER, **await _demand_kwargs())
                t1 = time.perf_counter()
                agreement, _ = await req.open_agreement(env)
                task_id = await req.invoke(env, req.task(agreement, ["true"]))
                async for _status in req.events(task_id):
                    pass
                outcome = await req.result(task_id)
                assert outcome.receipt is not None
                t2 = time.perf_counter()
                total.append(t2 - t0)
                negotiate.append(t1 - t0)
                invoke.append(t2 - t1)
            results["round_trip"] = total
            results["negotiate"] = negotiate
            results["invoke"] = invoke

        # agreements/s: complete negotiations, many requesters at once
        requesters = [Requester(SigningKey.generate(), resolver) for _ in range(args.concurrency)]
        try:
            for r in requesters:  # warm each requester's connection pool
                await r.negotiate(OFFER, **await _demand_kwargs())
            per = args.agreements // args.concurrency

            async def worker(r: Requester) -> None:
                for _ in range(per):
                    await r.negotiate(OFFER, **await _demand_kwargs())

            t0 = time.perf_counter()
            await asyncio.gather(*(worker(r) for r in requesters))
            elapsed = time.perf_counter() - t0
            results["agreements"] = per * args.concurrency
            results["agreements_per_s"] = per * args.concurrency / elapsed
        finally:
            for r in requesters:
                await r.close()
    return results


async def _bootstrap(registry: str, root: SigningKey, anchor: SigningKey) -> None:
    now = int(time.time())
    window = {"nbf": now - 60, "exp": now + 86_400}
    registry_service = SigningKey.generate()
    zone = ZoneBody(display_name="bench", service_keys=[registry_service.public_key])
    async with RegistryClient(registry) as client:
        await client.submit(sign_record(zone, name=".", serial=1, key=root, **window))
        await client.submit(
            sign_record(
                DelegationBody(keys=[anchor.public_key]), name="acme", serial=1, key=root, **window
            )
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=200, help="sequential round trips")
    parser.add_argument("--agreements", type=int, default=400, help="negotiations for agreements/s")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent requesters")
    parser.add_argument("--quick", action="store_true", help="30 runs, 80 agreements")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.agreements, args.concurrency = 30, 80, 8

    tmp = Path(tempfile.mkdtemp(prefix="cid-bench-provider-"))
    root, anchor, service = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    (tmp / "root.pub.json").write_text(json.dumps([root.public_key.to_value()]))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        proc, registry = _start(
            [sys.executable, "-m", "cid_registry.cli", "serve",
             "--store", str(tmp / "registry.sqlite3"), "--port", "0",
             "--root-keys", str(tmp / "root.pub.json"),
             "--service-key", str(_key_file(tmp / "registry.key", SigningKey.generate())),
             "--rate", "100000", "--burst", "100000",
             "--ready-file", str(tmp / "registry.ready")],
            tmp / "registry.ready",
            tmp / "registry.log",
        )  # fmt: skip
        procs.append(proc)
        asyncio.run(_bootstrap(registry, root, anchor))
        config = tmp / "provider.toml"
        config.write_text(
            CONFIG.format(
                registry=registry,
                namespace_key=_key_file(tmp / "ns.key", anchor),
                service_key=_key_file(tmp / "svc.key", service),
                workdir=tmp / "tasks",
                offer=OFFER,
            )
        )
        proc, _ = _start(
            [sys.executable, "-m", "cid_provider.cli", "serve", "--config", str(config),
             "--log-level", "warning", "--ready-file", str(tmp / "provider.ready")],
            tmp / "provider.ready",
            tmp / "provider.log",
        )  # fmt: skip
        procs.append(proc)
        results = asyncio.run(_bench(registry, root, args))
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()

    print(f"# cid provider benchmark - {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"# {platform.machine()} {platform.processor() or ''} python {platform.python_version()}"
        f" {platform.system()} {platform.release()}, {os.cpu_count()} CPUs; loopback; registry"
        " and provider are subprocesses, the verifying requester runs in the benchmark process"
    )
    print()
    print(f"| {'round trip (trivial task: `true`)':<52} | {'runs':>5} | {'p50 ms':>8} | "
          f"{'p99 ms':>8} | {'mean ms':>8} |")  # fmt: skip
    print(f"|{'-' * 54}|{'-' * 7}|{'-' * 10}|{'-' * 10}|{'-' * 10}|")
    print(_row("negotiate → accept → countersign → invoke → result", results["round_trip"]))
    print(_row("  negotiation (demand … agreement confirmed)", results["negotiate"]))
    print(_row("  invocation (task … verified receipt)", results["invoke"]))
    print()
    print(
        f"agreements/s (complete negotiations, {args.concurrency} concurrent requesters, "
        f"{results['agreements']} agreements): {results['agreements_per_s']:.0f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
