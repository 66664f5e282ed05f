"""The latency model: latency circles and an RTT matrix over ISO 3166-2 regions.

A requester asks for compute "within 3 ms of Tianjin" ([REQ-QRY-030]). Offers
carry their own measured round-trip times to a few regions
(``network.rtt_us``, [REQ-CAP-009]); for every other region the matcher needs a
model of the network. The model is data, published (signed) by a registry
operator like any other document, so that every resolver ranks by latency the
same way:

* **latency circles** name a set of regions and the nominal round-trip bound
  within it: a metro circle (Beijing–Tianjin, ≈ 1 ms), a regional circle
  (Beijing–Tianjin–Hebei, ≈ 3 ms), the national hub circle (eastern demand to
  the western hubs, < 10 ms);
* an **RTT matrix** of measured medians between pairs of regions, symmetric.

:meth:`LatencyModel.rtt_us` answers "what RTT does this offer have to the
requester's region" in order of evidence: the offer's own measurement, then
the matrix, then the tightest circle that holds both regions, else unknown
(``None``), which ranks after every known figure ([REQ-QRY-054]).

:func:`default_model` loads the reference model for China shipped as
``cid/data/latency-cn.json``. The module is pure: no I/O besides reading that
packaged file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from typing import Annotated, Final

from pydantic import Field, PrivateAttr, model_validator

from .model import Token, WireModel, validate
from .query import rule_violation
from .record import OfferBody, ShortText, Subdivision

__all__ = [
    "DEFAULT_MODEL_RESOURCE",
    "LatencyCircle",
    "LatencyModel",
    "RttEntry",
    "default_model",
    "offer_rtt_us",
]

DEFAULT_MODEL_RESOURCE: Final = "data/latency-cn.json"
"""Where the default model lives inside the ``cid`` package."""

RttMicros = Annotated[int, Field(ge=0, le=10_000_000, strict=True)]
"""A round-trip time in microseconds (at most 10 s)."""


class LatencyCircle(WireModel):
    """A named set of regions and the nominal RTT bound between any two of them."""

    name: Token
    rtt_us: Annotated[int, Field(ge=1, le=10_000_000, strict=True)]
    regions: Annotated[list[Subdivision], Field(min_length=1, max_length=256)]
    description: ShortText | None = None

    @model_validator(mode="after")
    def _rules(self) -> LatencyCircle:
        if len(set(self.regions)) != len(self.regions):
            rule_violation("LatencyCircle", ("regions",), "unique", "a region is listed twice")
        return self


class RttEntry(WireModel):
    """The measured median RTT between regions ``a`` and ``b`` (either direction)."""

    a: Subdivision
    b: Subdivision
    rtt_us: RttMicros


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


class LatencyModel(WireModel):
    """Latency circles plus a symmetric RTT matrix, as published by a registry operator.

    Lookups are precomputed when the model is built, so :meth:`region_rtt_us`
    is a dictionary lookup.
    """

    id: Token
    version: Annotated[int, Field(ge=1, le=2**53 - 1, strict=True)] = 1
    circles: Annotated[list[LatencyCircle], Field(max_length=256)] = Field(default_factory=list)
    rtt: Annotated[list[RttEntry], Field(max_length=65_536)] = Field(default_factory=list)

    _matrix: dict[tuple[str, str], int] = PrivateAttr(default_factory=dict)
    _circles: dict[str, LatencyCircle] = PrivateAttr(default_factory=dict)
    _circle_sets: dict[str, frozenset[str]] = PrivateAttr(default_factory=dict)
    _by_bound: tuple[LatencyCircle, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _rules(self) -> LatencyModel:
        names = [c.name for c in self.circles]
        if len(set(names)) != len(names):
            rule_violation("LatencyModel", ("circles",), "unique", "two circles of one name")
        seen: set[tuple[str, str]] = set()
        for i, e in enumerate(self.rtt):
            key = _pair(e.a, e.b)
            if key in seen:
                rule_violation("LatencyModel", ("rtt", i), "unique", "a region pair twice")
            seen.add(key)
        return self

    def model_post_init(self, __context: object) -> None:
        self._matrix = {_pair(e.a, e.b): e.rtt_us for e in self.rtt}
        self._circles = {c.name: c for c in self.circles}
        self._circle_sets = {c.name: frozenset(c.regions) for c in self.circles}
        self._by_bound = tuple(sorted(self.circles, key=lambda c: (c.rtt_us, c.name)))

    # --- lookups ------------------------------------------------------------------

    def circle(self, name: str) -> LatencyCircle | None:
        """The circle called ``name``, if the model has one."""
        return self._circles.get(name)

    def in_circle(self, name: str, region: str) -> bool:
        """Whether ``region`` is a member of the circle called ``name``."""
        members = self._circle_sets.get(name)
        return members is not None and region in members

    def region_rtt_us(self, a: str, b: str) -> int | None:
        """The modelled RTT between regions ``a`` and ``b``.

        The matrix entry for the pair (in either order) if there is one, else the
        bound of the tightest circle holding both regions, else ``None``.
        """
        direct = self._matrix.get(_pair(a, b))
        if direct is not None:
            return direct
        for c in self._by_bound:
            members = self._circle_sets[c.name]
            if a in members and b in members:
                return c.rtt_us
        return None

    def rtt_us(self, offer: OfferBody, requester_region: str) -> int | None:
        """The RTT from ``offer`` to ``requester_region``, by best evidence.

        The offer's own measurement (``network.rtt_us``) first, then
        :meth:`region_rtt_us` from the offer's region; ``None`` when unknown.
        """
        measured = offer.network.rtt_us.get(requester_region)
        if measured is not None:
            return measured
        return self.region_rtt_us(offer.location.region, requester_region)

    def regions(self) -> frozenset[str]:
        """Every region the model mentions."""
        out: set[str] = set()
        for c in self.circles:
            out.update(c.regions)
        for e in self.rtt:
            out.add(e.a)
            out.add(e.b)
        return frozenset(out)

    @classmethod
    def build(
        cls,
        id: str,
        circles: Iterable[tuple[str, int, Iterable[str]]] = (),
        rtt: Iterable[tuple[str, str, int]] = (),
        *,
        version: int = 1,
    ) -> LatencyModel:
        """Build a model from plain tuples: ``(name, rtt_us, regions)`` and ``(a, b, rtt_us)``."""
        return validate(
            cls,
            {
                "id": id,
                "version": version,
                "circles": [
                    {"name": n, "rtt_us": bound, "regions": list(regions)}
                    for n, bound, regions in circles
                ],
                "rtt": [{"a": a, "b": b, "rtt_us": us} for a, b, us in rtt],
            },
        )


def offer_rtt_us(offer: OfferBody, requester_region: str, model: LatencyModel | None) -> int | None:
    """The RTT the matcher uses: :meth:`LatencyModel.rtt_us`, or only the offer's own figure."""
    if model is None:
        return offer.network.rtt_us.get(requester_region)
    return model.rtt_us(offer, requester_region)


@lru_cache(maxsize=1)
def default_model() -> LatencyModel:
    """The reference latency model for China (``cid/data/latency-cn.json``), loaded once."""
    text = resources.files("cid").joinpath(DEFAULT_MODEL_RESOURCE).read_text(encoding="utf-8")
    return validate(LatencyModel, json.loads(text), where="latency-cn.json")
