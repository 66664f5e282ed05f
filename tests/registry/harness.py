"""Run a real registry on loopback for tests: in-process (controllable clock) or as a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from cid import examples as ex
from cid.client import RegistryClient
from cid.envelope import SignedRecord, sign_record
from cid.signing import SigningKey
from cid_registry.app import create_app
from cid_registry.settings import Settings
from cid_registry.store import Store


@dataclass
class Clock:
    """A clock tests move by hand (no sleeps)."""

    now: int = ex.EPOCH + 60

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: int) -> None:
        self.now += seconds


@dataclass
class Operator:
    """The registry operator's keys and a helper to sign delegations."""

    root: SigningKey = field(default_factory=ex.root_key)
    service: SigningKey = field(default_factory=SigningKey.generate)

    def delegate(
        self,
        name: str,
        key: SigningKey,
        *,
        serial: int = 1,
        now: int,
        days: int = 30,
        registries: list[str] | None = None,
    ) -> SignedRecord[Any]:
        from cid.record import DelegationBody

        body = DelegationBody(keys=[key.public_key], registries=registries or [])
        return sign_record(
            body, name=name, serial=serial, key=self.root, nbf=now - 60, exp=now + days * 86_400
        )

    def root_zone(self, *, now: int, serial: int = 1) -> SignedRecord[Any]:
        """The root zone record: names the registry's service key (which signs feed heads)."""
        from cid.record import ZoneBody

        body = ZoneBody(display_name="cid test registry", service_keys=[self.service.public_key])
        return sign_record(
            body,
            name=".",
            serial=serial,
            key=self.root,
            nbf=now - 60,
            exp=now + 30 * 86_400,
            ttl=3600,
        )


def free_port() -> int:
    """A free loopback port (for a registry that must know its own URL before it starts)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def serve_in_process(
    store: Store, *, clock: Clock, operator: Operator, port: int = 0, **overrides: Any
) -> AsyncIterator[str]:
    """The registry app on a real loopback TCP port; yields its base URL."""
    settings = Settings(
        root_keys=[operator.root.public_key],
        service_key=operator.service,
        clock=clock,
        **overrides,
    )
    app = create_app(settings, store=store)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def write_keys(tmp: Path, operator: Operator) -> tuple[Path, Path]:
    root_pub = tmp / "root.pub.json"
    root_pub.write_text(json.dumps([operator.root.public_key.to_value()]))
    service = tmp / "service.key"
    service.write_text(json.dumps(operator.service.to_file_value()))
    return root_pub, service


@dataclass
class RegistryProcess:
    """``cid-registry serve`` in a subprocess."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


def start_process(
    tmp: Path, operator: Operator, store: str, *, name: str = "r", extra: list[str] | None = None
) -> RegistryProcess:
    root_pub, service = write_keys(tmp, operator)
    ready = tmp / f"{name}.ready"
    ready.unlink(missing_ok=True)
    log = tmp / f"{name}.log"
    cmd = [
        sys.executable,
        "-m",
        "cid_registry.cli",
        "serve",
        "--store",
        store,
        "--port",
        "0",
        "--root-keys",
        str(root_pub),
        "--service-key",
        str(service),
        "--ready-file",
        str(ready),
        *(extra or []),
    ]
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
    deadline = time.monotonic() + 30
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"registry did not start: {log.read_text()[-2000:]}")
        time.sleep(0.02)
    host, port = ready.read_text().split()
    return RegistryProcess(proc, f"http://{host}:{port}", log)


async def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


__all__ = [
    "Clock",
    "Operator",
    "RegistryClient",
    "RegistryProcess",
    "free_port",
    "serve_in_process",
    "start_process",
    "wait_until",
    "write_keys",
]
