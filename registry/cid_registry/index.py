"""The registry's search index: the library's matcher, fed from the change feed.

The registry answers searches with the same :class:`cid.matching.Matcher` a
resolver embeds, so a scheduler's local replica and the registry rank
identically ([REQ-REG-050]). The follower calls :meth:`SearchIndex.apply_change`
for every change in ``rseq`` order, so every process sharing a store converges
on the same index.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from cid.envelope import Envelope, SignedRecord, parse_record_body
from cid.errors import CidError
from cid.identifier import Identifier
from cid.latency import LatencyModel
from cid.matching import Matcher
from cid.query import Query
from cid.record import OfferBody, RefreshBody

from .store import Change

__all__ = ["SearchIndex"]

log = logging.getLogger("cid_registry.index")


Authorised = Callable[[Identifier, str, int], bool]
"""Whether key ``kid`` may still sign offers at ``name`` at time ``now`` (the trust state)."""


class SearchIndex:
    """The matcher, plus what the registry must not answer from it.

    An offer whose authority has lapsed since it was accepted - its signing key
    revoked, its namespace's delegation deleted or expired - is no longer an
    answer ([REQ-SIG-044], [REQ-SIG-049], [REQ-SIG-050]). Such offers are
    dropped from the index the first time a search would return them, and the
    search runs again, so results stay exact top-k.
    """

    def __init__(
        self, latency: LatencyModel | None = None, *, authorised: Authorised | None = None
    ) -> None:
        self.matcher = Matcher()
        self.latency = latency
        self.authorised = authorised
        self._classes: dict[Identifier, str] = {}
        self._signers: dict[Identifier, str] = {}

    def apply_change(self, change: Change, record: SignedRecord[Any] | None = None) -> None:
        if change.rtype != "offer":
            return
        if record is not None:
            name, env, body = record.name, record.envelope, record.body
        else:
            name = Identifier.parse(change.name)
            try:
                env = Envelope.decode(change.envelope, "msgpack")
                body = parse_record_body(env)
            except CidError as e:  # pragma: no cover - changes were verified when accepted
                log.error("feed change %s not indexed: %s", change.rseq, e)
                return
        if change.op == "delete":
            self.matcher.remove(name)
            self._classes.pop(name, None)
            self._signers.pop(name, None)
        elif change.op == "refresh" and isinstance(body, RefreshBody):
            if name in self._classes:
                self.matcher.update_availability(name, body.units_free, env.header.exp)
        elif isinstance(body, OfferBody):
            self.matcher.upsert(name, env.header.serial, body, expires=env.header.exp)
            self._classes[name] = str(body.compute_class)
            self._signers[name] = env.sigs[0].kid

    def search(self, query: Query, *, now: int, budget: int | None) -> dict[str, Any]:
        while True:
            page = self.matcher.search_page(query, now=now, latency=self.latency, budget=budget)
            lapsed = [m.name for m in page.results if not self._still_authorised(m.name, now)]
            if not lapsed:
                return page.to_value()
            for name in lapsed:
                self.matcher.remove(name)
                self._classes.pop(name, None)
                self._signers.pop(name, None)

    def _still_authorised(self, name: Identifier, now: int) -> bool:
        if self.authorised is None:
            return True
        kid = self._signers.get(name)
        return kid is not None and self.authorised(name, kid, now)

    def counts_by_class(self) -> dict[str, int]:
        return dict(Counter(self._classes.values()))

    def __len__(self) -> int:
        return len(self._classes)
