"""A local, verified replica of a registry's catalogue, for searching without a round trip.

Theory of operation
-------------------
A :class:`Catalogue` starts from the registry's snapshot and then follows its
change feed ([REQ-FEED-003], [REQ-FEED-011]); nothing it holds is taken on the
registry's word:

* the root zone record (``.``, signed by the trust anchor) names the registry's
  service keys, which must sign every feed head and snapshot head;
* a snapshot is accepted only if its head verifies and the digest over its
  records equals the signed digest (nothing left out, nothing added);
* a feed page is applied only after the hash chain recomputed over its changes
  equals the chain in its signed head, and that head's ``rseq`` is not below
  one already seen (no drop, reorder, alteration or rollback);
* every record is verified against the namespace tree (delegations and
  rotations from the trust anchor down) before it enters the index.

Offers go into a :class:`cid.matching.Matcher`, so :meth:`Catalogue.search`
answers exactly as the registry would, locally. With ``registry_model=True``
the catalogue ranks by the latency model the registry publishes
([REQ-REG-065]), verified with the same service keys as the heads and never
rolled back ([REQ-RES-015]); it fetches the model again once per half of the
envelope's validity window. A registry restart is just an
unreachable period: :meth:`follow` retries with back-off and resumes from the
last applied ``rseq``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from .client import RegistryClient
from .codec import encode_msgpack
from .envelope import Envelope, SignedRecord
from .errors import (
    CidError,
    HeadMismatchError,
    NotFoundError,
    SerialRollbackError,
    UnavailableError,
)
from .feed import (
    CHAIN_ZERO,
    FEED_HEAD_TYP,
    SNAPSHOT_TYP,
    FeedHead,
    SnapshotHead,
    chain_step,
    snapshot_digest,
)
from .identifier import Identifier
from .latency import LatencyModel, ModelAcceptor
from .matching import Matcher
from .model import validate
from .query import Query, SearchResponse
from .record import OfferBody, RefreshBody, TombstoneBody, ZoneBody
from .signing import PublicKey
from .trust import TrustState

__all__ = ["Catalogue"]

log = logging.getLogger("cid.catalogue")
_ROOT = Identifier.root()
_AUTHORITY = ("delegation", "keyrotation")
_NO_MODEL_RETRY_S = 300
"""How long a registry's answer that it publishes no latency model is taken as current."""


def _system_clock() -> int:
    return int(time.time())


class Catalogue:
    """A verified local replica of one registry, searchable without the network."""

    def __init__(
        self,
        registry: str | RegistryClient,
        root_keys: Sequence[PublicKey],
        *,
        clock: Callable[[], int] = _system_clock,
        latency: LatencyModel | None = None,
        registry_model: bool = False,
    ) -> None:
        self.client = registry if isinstance(registry, RegistryClient) else RegistryClient(registry)
        self.root_keys = list(root_keys)
        self.clock = clock
        self.latency = latency
        self.registry_model = registry_model
        self.models = ModelAcceptor()
        self._model_due = 0
        """When to fetch the registry's latency model again (``registry_model`` only)."""
        self.trust = TrustState(self.root_keys)
        self.matcher = Matcher()
        self.rseq = 0
        self.chain = CHAIN_ZERO
        self.service_keys: dict[str, PublicKey] = {}
        self.records: dict[tuple[Identifier, str], str] = {}
        """Digest of the current version of every record identity held."""

    async def close(self) -> None:
        await self.client.close()

    # -- queries ---------------------------------------------------------------------------

    def search(self, query: Query) -> SearchResponse:
        """Search the local replica ([REQ-QRY-020]..); no network."""
        return self.matcher.search_page(query, now=self.clock(), latency=self.latency)

    def __len__(self) -> int:
        return len(self.records)

    # -- synchronisation --------------------------------------------------------------------

    async def sync(self, *, wait_s: int = 0) -> int:
        """Bring the replica up to the registry's head (snapshot first when empty)."""
        if self.rseq == 0 and not self.records:
            await self._load_snapshot()
        if self.registry_model and self.clock() >= self._model_due:
            await self.update_latency_model()
        while True:
            page = await self.client.feed(self.rseq, wait_s=wait_s)
            applied = self._apply_page(page)
            if not applied:
                return self.rseq
            wait_s = 0

    async def follow(self, stop: asyncio.Event, *, wait_s: int = 10) -> None:
        """Follow the feed until ``stop`` is set; survive registry restarts."""
        backoff = 0.1
        while not stop.is_set():
            try:
                await self.sync(wait_s=wait_s)
                backoff = 0.1
            except UnavailableError as e:
                log.warning("registry unavailable (%s); retrying in %.1fs", e, backoff)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=backoff)
                backoff = min(backoff * 2, 5.0)

    async def update_latency_model(self) -> LatencyModel | None:
        """Fetch, verify and adopt the registry's latency model ([REQ-RES-015]).

        A registry that publishes none (NOT_FOUND) ranks without a model, and so
        does the catalogue from then on ([REQ-REG-066]). A refused model raises
        its typed error and leaves the held one in place.
        """
        if not self.service_keys:
            await self._load_service_keys()
        try:
            value = await self.client.latency_model()
        except NotFoundError:
            self.latency = None
            self._model_due = self.clock() + _NO_MODEL_RETRY_S
            return None
        now = self.clock()
        model = self.models.accept(value, self.service_keys, now=now)
        self.latency = model
        exp = value["header"]["exp"]
        self._model_due = now + max(1, (exp - now) // 2)
        return model

    async def _load_service_keys(self) -> None:
        """The service keys from the root zone record, resolved with its proof."""
        answer = await self.client.resolve(_ROOT)
        self._learn_service_keys(list(answer.get("records", [])), self.clock())
        if not self.service_keys:
            raise HeadMismatchError("no root zone record names the registry's service keys")

    async def _load_snapshot(self) -> None:
        snap = await self.client.snapshot()
        entries = snap["records"]
        now = self.clock()
        self._learn_service_keys([e["envelope"] for e in entries], now)
        head_env = self._verify_head(snap["head"], SNAPSHOT_TYP)
        head = validate(SnapshotHead, head_env.body_value, where="head.body")
        envs = [(Envelope.from_value(e["envelope"]), e.get("refresh")) for e in entries]
        digest = snapshot_digest((env.header.sub, _rtype(env), env.digest()) for env, _ in envs)
        # REQ-FEED-011: the records are exactly the ones the registry signed for
        if digest != head.digest or len(envs) != head.records:
            raise HeadMismatchError(
                "snapshot records do not match the signed snapshot digest",
                detail={"records": len(envs), "signed_records": head.records},
            )
        # authority records first, parents before children
        envs.sort(key=lambda item: (_rtype(item[0]) not in _AUTHORITY, item[0].header.sub.depth))
        for env, refresh in envs:
            self._put(env, now, replay=True)
            if refresh is not None:
                self._refresh(Envelope.from_value(refresh), now)
        self.rseq, self.chain = head.rseq, head.chain

    def _learn_service_keys(self, values: list[dict[str, Any]], now: int) -> None:
        for value in values:
            env = Envelope.from_value(value)
            if env.header.sub == _ROOT and env.header.typ == "cid.record.zone":
                record = self.trust.verify(env, now=now, check_chain=False)
                assert isinstance(record.body, ZoneBody)
                self.service_keys = {k.kid: k for k in record.body.service_keys}

    def _verify_head(self, value: dict[str, Any], typ: str) -> Envelope:
        if not self.service_keys:
            raise HeadMismatchError("no root zone record names the registry's service keys")
        env = Envelope.from_value(value)
        env.verify(self.service_keys, typ=typ, now=self.clock())
        return env

    def _apply_page(self, page: dict[str, Any]) -> int:
        changes = page["changes"]
        chain = self.chain
        rseq = self.rseq
        envs: list[tuple[dict[str, Any], Envelope]] = []
        for change in changes:
            if change["rseq"] != rseq + 1:
                raise HeadMismatchError(
                    f"feed gap: change {change['rseq']} after {rseq}",
                    detail={"expected": rseq + 1, "got": change["rseq"]},
                )
            env = Envelope.from_value(change["envelope"])
            rseq = change["rseq"]
            chain = chain_step(chain, rseq, encode_msgpack(env.to_value()))
            envs.append((change, env))
        # the root zone may change service keys within this page: learn them first
        if not self.service_keys:
            self._learn_service_keys([e.to_value() for _, e in envs], self.clock())
        head_env = self._verify_head(page["head"], FEED_HEAD_TYP)
        head = validate(FeedHead, head_env.body_value, where="head.body")
        if head.rseq < self.rseq:
            raise SerialRollbackError(
                f"feed head {head.rseq} is below {self.rseq} already applied",
                detail={"head": head.rseq, "applied": self.rseq},
            )
        # REQ-FEED-003: the signed head must be the chain over exactly these changes
        if (head.rseq, head.chain) != (rseq, chain):
            raise HeadMismatchError(
                "feed page does not match its signed head",
                detail={"head_rseq": head.rseq, "computed_rseq": rseq},
            )
        now = self.clock()
        for change, env in envs:
            if change["op"] == "delete":
                self._delete(env, now)
            elif change["op"] == "refresh":
                self._refresh(env, now)
            else:
                self._put(env, now, replay=True)
        self.rseq, self.chain = rseq, chain
        return len(envs)

    # -- applying verified records --------------------------------------------------------------

    def _put(self, env: Envelope, now: int, *, replay: bool) -> None:
        try:
            if _rtype(env) in _AUTHORITY:
                record = self.trust.add(env, now=env.header.nbf, check_chain=False)
            else:
                record = self.trust.verify(env, now=env.header.nbf, check_chain=False)
        except CidError as e:
            # a record that does not verify is never held; the registry misbehaved
            log.error("record %s (%s) refused: %s", env.header.sub, env.header.typ, e)
            raise
        self.records[(record.name, record.record_type)] = env.digest()
        if isinstance(record.body, OfferBody):
            self.matcher.upsert(record.name, record.serial, record.body, expires=env.header.exp)
        elif isinstance(record.body, ZoneBody) and record.name == _ROOT:
            self.service_keys = {k.kid: k for k in record.body.service_keys}

    def _refresh(self, env: Envelope, now: int) -> None:
        record: SignedRecord[Any] = self.trust.verify(env, now=env.header.nbf, check_chain=False)
        body = record.body
        assert isinstance(body, RefreshBody)
        if self.records.get((record.name, "offer")) != body.base:
            raise HeadMismatchError("refresh for an offer version not held", field="body.base")
        self.matcher.update_availability(record.name, body.units_free, env.header.exp)

    def _delete(self, env: Envelope, now: int) -> None:
        record = self.trust.verify(env, now=env.header.nbf, check_chain=False)
        body = record.body
        assert isinstance(body, TombstoneBody)
        if body.target in _AUTHORITY:
            self.trust.apply(record)
        self.records.pop((record.name, body.target), None)
        if body.target == "offer":
            self.matcher.remove(record.name)


def _rtype(env: Envelope) -> str:
    return env.header.typ.rsplit(".", 1)[-1]
