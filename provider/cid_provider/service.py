"""The reference provider process: publish, keep availability fresh, serve negotiate and invoke.

Theory of operation
-------------------
:class:`ReferenceProvider` wires the provider SDK (:func:`cid.provider.create_provider_app`)
to real backends - :class:`~cid.provider.ledger.MemoryLedger`,
:class:`~cid.provider.policy.ListPricePolicy` and
:class:`~cid.provider.executor.LocalProcessExecutor` - and to a registry:

1. **listen** first, so that the zone record can name the real endpoints
   (a port of 0 picks a free one);
2. **register**: submit the namespace's delegation if the configuration names
   one (it is signed by the parent, normally the registry operator); check it
   from the trust anchor when ``root_keys`` is given (the namespace key must be
   one the delegation authorises); then sign and submit the zone record
   (display name, ``service_keys``, ``negotiate`` = base URL + ``/v1/negotiate``,
   ``invoke`` = base URL + ``/v1/invoke``) and every offer, with ``units_free``
   taken from the ledger;
3. **keep availability fresh** with signed refresh records ([REQ-REC-060]):
   ``units_free`` = the ledger's free units *now*, sent at once when a
   reservation is made or released, every ``refresh_interval_s`` as a heartbeat,
   and always before an offer's effective expiry lapses. A refresh continues
   the offer's serial sequence; serials are milliseconds since the epoch (or
   the last serial + 1), so they grow across restarts without local state;
4. **shut down gracefully**: announce ``units_free`` 0 (best effort), stop the
   HTTP server, then close the executor, which kills running tasks.

Capacity is never oversold: the ledger admits a reservation only if the peak
of the existing ones over the period leaves room ([REQ-PRV-022]), and the
published ``units_free`` is derived from the same ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from cid.cli import load_public_keys, load_signing_key
from cid.client import RegistryClient
from cid.envelope import Envelope, sign_record
from cid.errors import (
    CidError,
    KeyNotAuthorisedError,
    NotFoundError,
    SchemaError,
    SerialRollbackError,
    UnavailableError,
)
from cid.identifier import Identifier
from cid.provider import create_provider_app
from cid.provider.backend import CapacityLedger, OfferVersion, Reservation
from cid.provider.executor import LocalProcessExecutor
from cid.provider.ledger import MemoryLedger
from cid.record import Availability, Endpoints, RefreshBody, ZoneBody
from cid.resolver import Resolver
from cid.signing import SigningKey

from .config import OfferConfig, ProviderConfig

__all__ = ["NotifyingLedger", "Publisher", "ReferenceProvider"]

log = logging.getLogger("cid_provider")

NBF_SLACK_S: Final = 60
"""Records are valid from a minute before now (clock skew towards the registry)."""
STARTUP_RETRY_S: Final = 30.0
"""How long to wait for an unreachable registry on start."""
DRAIN_TIMEOUT_S: Final = 2.0


def _system_clock() -> int:
    return int(time.time())


class NotifyingLedger:
    """A :class:`~cid.provider.backend.CapacityLedger` that reports every change.

    It delegates to another ledger (the :class:`MemoryLedger`) and calls
    ``on_change`` after each reservation or release, so that availability is
    republished at once.
    """

    def __init__(self, inner: CapacityLedger, on_change: Callable[[], None]) -> None:
        self.inner = inner
        self.on_change = on_change

    async def reserve(self, reservation: Reservation, *, capacity: int) -> None:
        await self.inner.reserve(reservation, capacity=capacity)
        self.on_change()

    async def release(self, agreement_id: str) -> None:
        await self.inner.release(agreement_id)
        self.on_change()

    async def free(self, offer: Identifier, *, at: int, capacity: int) -> int:
        return await self.inner.free(offer, at=at, capacity=capacity)


@dataclass
class _Published:
    """What the registry holds of one offer: its version and the last refresh sent."""

    config: OfferConfig
    version: OfferVersion
    serial: int
    units_free: int
    refreshed_at: int


class Publisher:
    """Signs and submits the provider's records; tracks offer versions and serials."""

    def __init__(
        self,
        config: ProviderConfig,
        namespace_key: SigningKey,
        service_key: SigningKey,
        registry: RegistryClient,
        ledger: CapacityLedger,
        *,
        clock: Callable[[], int] = _system_clock,
    ) -> None:
        self.config = config
        self.key = namespace_key
        self.service_key = service_key
        self.registry = registry
        self.ledger = ledger
        self.clock = clock
        self.offers: dict[Identifier, _Published] = {}
        self.base_url = ""
        self._lock = asyncio.Lock()
        self.refreshes = 0
        """Refresh records accepted by the registry (observability, tests)."""

    def version(self, name: Identifier) -> OfferVersion | None:
        """The offer version currently published at ``name`` (the SDK prices against it)."""
        held = self.offers.get(name)
        return None if held is None else held.version

    def _serial(self, previous: int = 0) -> int:
        return max(previous + 1, self.clock() * 1000, int(time.time() * 1000))

    async def _submit(self, envelope: Envelope) -> dict[str, Any]:
        return await self.registry.submit(envelope)

    async def free_units(self, offer: OfferConfig) -> int:
        return await self.ledger.free(offer.name, at=self.clock(), capacity=offer.units_total)

    # -- startup ----------------------------------------------------------------------------

    async def submit_delegation(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise SchemaError(f"cannot read delegation {path}: {e}", field="delegation") from e
        env = Envelope.from_value(data)
        accepted = await self._submit(env)
        log.info("delegation submitted", extra={"record": str(env.header.sub), **accepted})

    async def check_delegation(self, root_keys_file: Path) -> None:
        """The namespace is delegated, from the trust anchor, to this provider's key."""
        roots = load_public_keys(str(root_keys_file))
        async with Resolver([self.config.registry], roots, clock=self.clock) as resolver:
            try:
                await resolver.resolve(self.config.namespace)
            except NotFoundError as e:
                raise NotFoundError(
                    f"{self.config.namespace} is not delegated at {self.config.registry}",
                    field="provider.namespace",
                ) from e
            ns = resolver.state.trust.get(self.config.namespace)
        if ns is None or self.key.kid not in ns.current_keys():
            raise KeyNotAuthorisedError(
                f"the namespace key {self.key.kid} is not authorised for {self.config.namespace}",
                field="provider.namespace_key",
            )

    async def publish_zone(self) -> dict[str, Any]:
        now = self.clock()
        body = ZoneBody(
            display_name=self.config.display_name,
            service_keys=[self.service_key.public_key],
            endpoints=Endpoints(
                negotiate=f"{self.base_url}/v1/negotiate", invoke=f"{self.base_url}/v1/invoke"
            ),
            contact=self.config.contact,
        )
        rec = sign_record(
            body,
            name=self.config.namespace,
            serial=self._serial(),
            key=self.key,
            nbf=now - NBF_SLACK_S,
            exp=now + self.config.zone_ttl_s,
            ttl=min(3600, self.config.zone_ttl_s),
        )
        accepted = await self._submit(rec.envelope)
        log.info(
            "zone published",
            extra={
                "record": str(self.config.namespace),
                "serial": rec.serial,
                "url": self.base_url,
            },
        )
        return accepted

    async def publish_offer(self, offer: OfferConfig) -> _Published:
        """Sign and submit a new version of ``offer`` with the ledger's free units.

        A serial already taken at the registry (another signer of the namespace,
        or an earlier run) is skipped: the version is signed again above it.
        """
        now = self.clock()
        free = await self.free_units(offer)
        body = offer.body.model_copy(
            update={"availability": Availability(units_total=offer.units_total, units_free=free)}
        )
        held = self.offers.get(offer.name)
        serial = self._serial(held.serial if held else 0)
        exp = now + offer.ttl_s
        for attempt in range(2):
            rec = sign_record(
                body,
                name=offer.name,
                serial=serial,
                key=self.key,
                nbf=now - NBF_SLACK_S,
                exp=exp,
                ttl=min(offer.ttl_s, 300),
            )
            try:
                await self._submit(rec.envelope)
                break
            except SerialRollbackError as e:
                stored = e.detail.get("stored")
                if attempt or not isinstance(stored, int):
                    raise
                serial = self._serial(stored)
        version = OfferVersion(offer.name, serial, rec.envelope.digest(), body, exp)
        published = _Published(offer, version, serial, free, now)
        self.offers[offer.name] = published
        log.info(
            "offer published",
            extra={"record": str(offer.name), "serial": serial, "units_free": free, "exp": exp},
        )
        return published

    async def publish_all(self) -> None:
        await self.publish_zone()
        for offer in self.config.offers:
            await self.publish_offer(offer)

    # -- availability -----------------------------------------------------------------------

    async def refresh(self, name: Identifier, *, units_free: int | None = None) -> bool:
        """Send a refresh for ``name`` (``units_free`` = the ledger's, unless given)."""
        async with self._lock:
            held = self.offers[name]
            now = self.clock()
            free = await self.free_units(held.config) if units_free is None else units_free
            serial = self._serial(held.serial)
            exp = now + held.config.ttl_s
            rec = sign_record(
                RefreshBody(base=held.version.digest, units_free=free),
                name=name,
                serial=serial,
                key=self.key,
                nbf=now - NBF_SLACK_S,
                exp=exp,
                ttl=min(held.config.ttl_s, 300),
            )
            try:
                await self._submit(rec.envelope)
            except SerialRollbackError as e:
                stored = e.detail.get("stored")
                if isinstance(stored, int):
                    held.serial = stored  # someone published past us: continue above it
                raise
            except (NotFoundError, SchemaError) as e:
                if isinstance(e, SchemaError) and e.detail.get("rule") != "stale_refresh":
                    raise
                # the version we refresh is gone (deleted or replaced): publish a new one
                log.warning("offer version lost; republishing", extra={"record": str(name)})
                await self._republish(held)
                return True
            held.serial = serial
            held.units_free = free
            held.refreshed_at = now
            held.version = replace(held.version, expires=exp)
            self.refreshes += 1
            log.info(
                "availability refreshed",
                extra={"record": str(name), "serial": serial, "units_free": free, "exp": exp},
            )
            return True

    async def _republish(self, held: _Published) -> None:
        self.offers[held.config.name] = held
        await self.publish_offer(held.config)

    async def due(self, *, force: bool = False) -> list[Identifier]:
        """Offers whose published availability is stale, due for a heartbeat, or expiring."""
        now = self.clock()
        out = []
        for name, held in self.offers.items():
            free = await self.free_units(held.config)
            heartbeat = now - held.refreshed_at >= self.config.refresh_interval_s
            expiring = held.version.expires - now <= max(held.config.ttl_s // 3, 10)
            if force or free != held.units_free or heartbeat or expiring:
                out.append(name)
        return out


class ReferenceProvider:
    """``cid-provider serve``: one provider namespace, its offers, a real executor."""

    def __init__(self, config: ProviderConfig, *, clock: Callable[[], int] = _system_clock):
        self.config = config
        self.clock = clock
        self.namespace_key = load_signing_key(str(config.namespace_key))
        self.service_key = load_signing_key(str(config.service_key))
        self.changed = asyncio.Event()
        self.memory = MemoryLedger()
        self.ledger = NotifyingLedger(self.memory, self.changed.set)
        self.registry = RegistryClient(config.registry, encoding="json", timeout_s=10.0)
        self.publisher = Publisher(
            config,
            self.namespace_key,
            self.service_key,
            self.registry,
            self.ledger,
            clock=clock,
        )
        config.workdir.mkdir(parents=True, exist_ok=True)
        self.executor = LocalProcessExecutor(
            config.workdir,
            max_concurrent=config.max_concurrent_tasks or os.cpu_count() or 1,
            allowed_commands=config.allowed_commands,
        )
        self.app = create_provider_app(
            namespace=config.namespace,
            service_key=self.service_key,
            offers=self.publisher.version,
            policy=config.policy,
            ledger=self.ledger,
            executor=self.executor,
            clock=clock,
        )
        self._runner: web.AppRunner | None = None
        self._stop = asyncio.Event()
        self._refresher: asyncio.Task[None] | None = None
        self.base_url = ""
        self.port = 0

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> str:
        """Listen, register, start refreshing; returns the base URL."""
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=3.0)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self.config.host, self.config.port, backlog=1024)
        await site.start()
        server = site._server
        port = self.config.port
        if server is not None and server.sockets:  # type: ignore[attr-defined]
            port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.port = port
        host = self.config.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        self.base_url = self.config.public_url or f"http://{host}:{port}"
        self.publisher.base_url = self.base_url
        log.info(
            "listening",
            extra={"host": self.config.host, "port": port, "namespace": str(self.config.namespace)},
        )
        await self._register()
        self._refresher = asyncio.create_task(self._refresh_loop(), name="cid-provider-refresh")
        return self.base_url

    async def _register(self) -> None:
        deadline = time.monotonic() + STARTUP_RETRY_S
        delay = 0.1
        while True:
            try:
                if self.config.delegation is not None:
                    await self.publisher.submit_delegation(self.config.delegation)
                if self.config.root_keys is not None:
                    await self.publisher.check_delegation(self.config.root_keys)
                await self.publisher.publish_all()
                return
            except UnavailableError as e:
                if time.monotonic() > deadline:
                    raise
                log.warning("registry unavailable; retrying", extra={"error": e.message})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _refresh_loop(self) -> None:
        interval = self.config.refresh_interval_s
        tick = min(interval, 5.0)
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout=tick)
            if self._stop.is_set():
                return
            await asyncio.sleep(0.02)  # coalesce a burst of reservations into one refresh
            self.changed.clear()
            try:
                for name in await self.publisher.due():
                    await self.publisher.refresh(name)
                if isinstance(self.memory, MemoryLedger):
                    self.memory.prune(before=self.clock())
            except CidError as e:
                log.warning(
                    "refresh failed; retrying", extra={"error": e.name, "detail": e.message}
                )
                await asyncio.sleep(min(1.0, tick))
                self.changed.set()
            except Exception:
                log.exception("refresh loop error")
                await asyncio.sleep(min(1.0, tick))

    async def stop(self) -> None:
        """Drain: announce no free units, stop serving, kill running tasks."""
        self._stop.set()
        self.changed.set()
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        with contextlib.suppress(CidError, TimeoutError):
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                for name in list(self.publisher.offers):
                    await self.publisher.refresh(name, units_free=0)
                    log.info("drained: no units free", extra={"record": str(name)})
        log.info("shutting down: stopping the server and every task")
        if self._runner is not None:
            await self._runner.cleanup()  # the app's cleanup closes the executor: tasks killed
            self._runner = None
        else:
            await self.executor.close()
        await self.registry.close()

    async def run(self, *, ready: Callable[[str, int], None] | None = None) -> None:
        """Start, call ``ready(host, port)``, and serve until :meth:`request_stop`."""
        try:
            await self.start()
            if ready is not None:
                ready(self.config.host, self.port)
            await self._stop.wait()
        finally:
            await self.stop()

    def request_stop(self) -> None:
        self._stop.set()
