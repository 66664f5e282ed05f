"""The resolver a scheduler embeds: verified, cached, delegation-aware resolution.

An I/O edge over the sans-IO :mod:`cid.resolution`: this module only moves
bytes (through :class:`~cid.client.RegistryClient`) and reads the clock.
Every decision - what to ask next, whether an answer is trustworthy, how long
to cache it - is :class:`~cid.resolution.Resolution`'s.

    async with Resolver(["http://127.0.0.1:8470"], root_keys) as resolver:
        answer = await resolver.resolve("gz-general.ctyun")
        answer.offer, answer.units_free, answer.records
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Self

import aiohttp

from .client import RegistryClient
from .errors import CidError, NotFoundError, UnavailableError
from .identifier import Identifier
from .resolution import DEFAULT_BUDGET, Answer, Cache, Resolution, ResolverState
from .signing import PublicKey
from .trust import TrustState

__all__ = ["Resolver"]


def _system_clock() -> int:
    return int(time.time())


class Resolver:
    """Resolves identifiers through one or more registries, verifying every answer.

    Args:
        registries: base URLs of the registries to start from, in order of preference.
        root_keys: the trust anchor (the registry operator's root keys).
        clock: seconds since the epoch; tests pass a controllable one.
        budget: most registry queries for one resolution ([REQ-RES-001]).
        serve_stale: when every registry is unreachable, answer from cache past
            the TTL for at most ``stale_max_s`` (never past a record's expiry).
        cache: the answer cache (bounded; negative answers bounded separately).
    """

    def __init__(
        self,
        registries: Sequence[str],
        root_keys: Sequence[PublicKey],
        *,
        clock: Callable[[], int] = _system_clock,
        budget: int = DEFAULT_BUDGET,
        serve_stale: bool = False,
        stale_max_s: int = 300,
        cache: Cache | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.registries = [r.rstrip("/") for r in registries]
        self.state = ResolverState(TrustState(root_keys), cache or Cache())
        self.clock = clock
        self.budget = budget
        self.serve_stale = serve_stale
        self.stale_max_s = stale_max_s
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._clients: dict[str, RegistryClient] = {}
        self.queries = 0
        """Registry queries made so far (observability, and for tests of the cache)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self, url: str) -> RegistryClient:
        client = self._clients.get(url)
        if client is None:
            if self._session is None:
                self._session = aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=self._timeout_s)
                )
            client = RegistryClient(url, session=self._session)
            self._clients[url] = client
        return client

    @property
    def cache(self) -> Cache:
        return self.state.cache

    async def resolve(self, name: Identifier | str) -> Answer:
        """The verified records of ``name``; raises the typed error that stopped it."""
        ident = name if isinstance(name, Identifier) else Identifier.parse(name)
        now = self.clock()
        cached = self.state.cache.get(ident, now)
        if cached is not None:
            return cached
        if self.state.cache.is_negative(ident, now):
            raise NotFoundError(f"no records at {ident} (cached)", field="name")
        res = Resolution(ident, self.state, self.registries, now=now, budget=self.budget)
        while (request := res.next_request()) is not None:
            self.queries += 1
            try:
                value = await self._client(request.registry).resolve(ident)
            except NotFoundError as e:
                res.not_found(request, e)
                continue
            except CidError as e:
                if e.status >= 500 or e.retryable:
                    res.failed(request, e)  # unreachable or failing: try the next registry
                    continue
                raise
            res.answer(request, value)
        try:
            return res.result()
        except UnavailableError:
            if self.serve_stale:
                stale = self.state.cache.get_stale(ident, now, self.stale_max_s)
                if stale is not None:
                    return stale
            raise
