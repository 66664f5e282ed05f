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
from typing import Any

from cid.envelope import Envelope, SignedRecord, parse_record_body
from cid.errors import CidError
from cid.identifier import Identifier
from cid.latency import LatencyModel, default_model
from cid.matching import Matcher
from cid.query import Query
from cid.record import OfferBody, RefreshBody

from .store import Change

__all__ = ["SearchIndex"]

log = logging.getLogger("cid_registry.index")


class SearchIndex:
    def __init__(self, latency: LatencyModel | None = None) -> None:
        self.matcher = Matcher()
        self.latency = latency if latency is not None else default_model()
        self._classes: dict[Identifier, str] = {}

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
        elif change.op == "refresh" and isinstance(body, RefreshBody):
            if name in self._classes:
                self.matcher.update_availability(name, body.units_free, env.header.exp)
        elif isinstance(body, OfferBody):
            self.matcher.upsert(name, env.header.serial, body, expires=env.header.exp)
            self._classes[name] = str(body.compute_class)

    def search(self, query: Query, *, now: int, budget: int | None) -> dict[str, Any]:
        page = self.matcher.search_page(query, now=now, latency=self.latency, budget=budget)
        return page.to_value()

    def counts_by_class(self) -> dict[str, int]:
        return dict(Counter(self._classes.values()))

    def __len__(self) -> int:
        return len(self._classes)
