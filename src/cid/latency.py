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
``cid/data/latency-cn.json``. A registry publishes the model it ranks with as
a ``cid.latency.model`` envelope signed by one of its service keys
([REQ-REG-065]): :func:`seal_model` builds it and :class:`ModelAcceptor` is what
a replica uses to verify it and to refuse a rolled-back or re-used version
([REQ-RES-015]). The module is pure: no I/O besides reading that packaged file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib import resources
from typing import Annotated, Final

from pydantic import Field, PrivateAttr, model_validator

from .envelope import Envelope, seal
from .errors import HeadMismatchError, SchemaError, SerialRollbackError
from .identifier import Identifier
from .model import Token, WireModel, validate
from .query import rule_violation
from .record import OfferBody, ShortText, Subdivision
from .signing import PublicKey, SigningKey

__all__ = [
    "DEFAULT_MODEL_RESOURCE",
    "LATENCY_MODEL_TYP",
    "MODEL_LIFETIME_S",
    "LatencyCircle",
    "LatencyModel",
    "ModelAcceptor",
    "RttEntry",
    "default_model",
    "offer_rtt_us",
    "seal_model",
]

DEFAULT_MODEL_RESOURCE: Final = "data/latency-cn.json"
"""Where the default model lives inside the ``cid`` package."""

LATENCY_MODEL_TYP: Final = "cid.latency.model"
"""The ``typ`` of a published latency model ([REQ-REG-065])."""

MODEL_LIFETIME_S: Final = 3600
"""The longest validity window of a published latency model envelope ([REQ-REG-065])."""

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


def seal_model(
    model: LatencyModel, key: SigningKey, now: int, *, lifetime_s: int = MODEL_LIFETIME_S
) -> Envelope:
    """The latency-model envelope a registry serves ([REQ-REG-065]).

    ``sub`` is the root, ``serial`` the model's version, valid from ``now`` for
    ``lifetime_s`` seconds (at most :data:`MODEL_LIFETIME_S`), signed by ``key``,
    one of the registry's service keys.
    """
    if not 1 <= lifetime_s <= MODEL_LIFETIME_S:
        raise ValueError(f"lifetime_s must be 1 .. {MODEL_LIFETIME_S}")
    return seal(
        model,
        typ=LATENCY_MODEL_TYP,
        sub=Identifier.root(),
        serial=model.version,
        key=key,
        nbf=now,
        exp=now + lifetime_s,
    )


class ModelAcceptor:
    """Verifies published latency models and remembers the one accepted ([REQ-RES-015]).

    :meth:`accept` checks the envelope like a feed head (typ, root subject, one
    signature by a service key, validity window), validates the body as a
    :class:`LatencyModel`, and refuses a lower ``version`` than the model held
    (SERIAL_ROLLBACK) or the same ``version`` with another body (HEAD_MISMATCH).
    A refused model leaves the held one in place.
    """

    def __init__(self) -> None:
        self.model: LatencyModel | None = None
        self._body: dict[str, object] | None = None

    def accept(
        self, value: Mapping[str, object], service_keys: Mapping[str, PublicKey], *, now: int
    ) -> LatencyModel:
        """Verify a latency-model envelope (its data-model value) and adopt its model."""
        env = Envelope.from_value(dict(value))
        if env.header.sub != Identifier.root():
            raise SchemaError(
                "a latency model is published at the root",
                field="header.sub",
                detail={"rule": "latency_model_sub"},
            )
        if len(env.sigs) != 1:
            raise SchemaError(
                "a latency model carries exactly one signature",
                field="sigs",
                detail={"rule": "latency_model_signatures"},
            )
        env.verify(service_keys, typ=LATENCY_MODEL_TYP, now=now)
        model = validate(LatencyModel, env.body_value, where="body")
        if model.version != env.header.serial:
            raise SchemaError(
                "the envelope serial is not the model's version",
                field="header.serial",
                detail={"rule": "latency_model_serial"},
            )
        held = self.model
        if held is not None:
            if model.version < held.version:
                raise SerialRollbackError(
                    f"latency model version {model.version} is below the held {held.version}",
                    detail={"version": model.version, "held": held.version},
                )
            if model.version == held.version and env.body_value != self._body:
                raise HeadMismatchError(
                    f"two different latency models carry version {model.version}",
                    detail={"version": model.version},
                )
            if model.version == held.version:
                return held  # the same model again, re-signed: keep the held object
        self.model, self._body = model, env.body_value
        return model
