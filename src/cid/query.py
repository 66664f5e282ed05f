"""The query verb at message level (spec section 7): resolve, list and search.

Three request/response pairs, all plain (unsigned) messages whose payloads are
signed records ([REQ-QRY-001]); transport bindings (HTTP paths, media types)
are defined with the registry and are not part of this module:

* :class:`ResolveRequest` / :class:`ResolveResponse`: the records of one name,
  or a :class:`Referral` to the registry serving the delegated namespace
  that holds it (DNS's NS + DS referral);
* :class:`ListRequest` / :class:`ListResponse`: the record summaries below a
  namespace, in canonical order, paged with an opaque cursor;
* :class:`Query` / :class:`SearchResponse`: capability search. Hard
  constraints select offers; ``order`` (or ``weights``) ranks them; ``limit``
  keeps the top *k*.

Theory of operation: costing
----------------------------
Every search result carries a :class:`CostBreakdown` computed by
:func:`price_demand` from the offer's :class:`~cid.record.Price` and
:class:`~cid.record.Unit`, the query's ``demand`` (default: one unit) and its
``duration_s`` (default :data:`DEFAULT_DURATION_S`). The same function prices a
negotiation quote and the same breakdown model is carried in quotes, agreements
and receipts, so a requester can recompute and check every figure it is shown.
The price rules are those of spec 4.10 ([REQ-CAP-021]..[REQ-CAP-024]); this
module adds how many units a demand needs (spec 7.6):

1. ``units`` n = the largest of 1, ``demand.units`` and, for each demanded
   resource the unit has, ``ceil(demanded / per-unit amount)`` ([REQ-QRY-060]);
2. a demanded resource the unit has none of is *attached*: its quantity is
   what the demand states, and the price must have an item for it, else the
   offer cannot serve the demand ([REQ-QRY-061], [REQ-CAP-021]);
3. ``billed_s`` = ``max(duration_s, minimum_term_s)`` rounded up to a multiple
   of ``billing_granularity_s`` ([REQ-CAP-022]);
4. each item costs ``amount × quantity × billed_s / period_seconds(per)``,
   the total is the sum; both are exact rationals, compared and ranked
   exactly, and written rounded towards +infinity to :data:`COST_DECIMALS`
   (18) fractional digits ([REQ-CAP-023], [REQ-QRY-063]);
5. currencies are never mixed or converted ([REQ-CAP-024], [REQ-QRY-064]).

Ranking (spec 7.5) is also pure and lives here (:func:`rank`), so a registry,
a resolver cache and a test all order results the same way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Annotated, Any, Final, NoReturn

from pydantic import AfterValidator, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from .envelope import Envelope
from .errors import CidError, DemandRejectedError, SchemaError
from .identifier import Identifier
from .model import CanonicalDecimal, Token, UInt, WireModel, decimal_to_text, validate
from .record import (
    PERIOD_SECONDS,
    Architecture,
    ComputeClass,
    Country,
    Currency,
    HttpsUrl,
    NonNegDecimal,
    Period,
    Precision,
    PricedResource,
    RecordType,
    Share,
    ShortText,
    Subdivision,
    Unit,
    record_type_of,
)
from .record import Price as _Price
from .signing import b64url_decode

__all__ = [
    "COST_DECIMALS",
    "DEFAULT_DURATION_S",
    "MAX_DURATION_S",
    "MAX_UNITS",
    "SCORE_DECIMALS",
    "AcceleratorConstraint",
    "Candidate",
    "CostBreakdown",
    "CostItem",
    "Digest",
    "EnvelopeValue",
    "ListItem",
    "ListRequest",
    "ListResponse",
    "Match",
    "Near",
    "Query",
    "RankKey",
    "Referral",
    "ResolveRequest",
    "ResolveResponse",
    "ResourceDemand",
    "SearchResponse",
    "SoftwareConstraint",
    "VersionRange",
    "billed_seconds",
    "exact_item_cost",
    "item_cost",
    "per_unit_amount",
    "price_demand",
    "rank",
    "round_cost",
    "rule_violation",
    "unit_rate",
    "units_needed",
]

COST_DECIMALS: Final = 18
"""Fractional digits a written cost is rounded to, towards +infinity ([REQ-CAP-023])."""

SCORE_DECIMALS: Final = 6
"""Fractional digits a written weighted score is truncated to ([REQ-QRY-053])."""

DEFAULT_DURATION_S: Final = 3_600
"""Duration a search prices when the query states none ([REQ-QRY-040])."""

MAX_DURATION_S: Final = 10 * 31_536_000
"""Longest duration any demand may state: ten years of 365 days."""

MAX_UNITS: Final = 1_000_000
"""Most units one demand or breakdown may count."""

_GIB_MIB: Final = 1024


# --- shared helpers and scalar types --------------------------------------------------


def rule_violation(model: str, field: tuple[str | int, ...], rule: str, message: str) -> NoReturn:
    """Raise a cross-field rule failure *at* ``field`` from inside a model validator.

    :func:`cid.model.validate` turns it into a :class:`~cid.errors.SchemaError`
    whose ``field`` is the full dotted path and whose ``detail['rule']`` is ``rule``.
    (A ``ValueError`` from an ``after`` model validator would name the model, not the field.)
    """
    raise ValidationError.from_exception_data(
        model,
        [
            InitErrorDetails(
                type=PydanticCustomError(
                    rule, "{message} [{rule}]", {"message": message, "rule": rule}
                ),
                loc=field,
                input=None,
            )
        ],
    )


def _check_digest(value: str) -> str:
    try:
        b64url_decode(value, length=32)
    except CidError as e:
        raise ValueError("not the base64url of a SHA-256 digest [digest]") from e
    return value


Digest = Annotated[
    str, Field(min_length=43, max_length=43, strict=True), AfterValidator(_check_digest)
]
"""SHA-256 in unpadded base64url (43 characters): envelope digests ([REQ-QRY-006])."""

Cursor = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,512}$", strict=True)]
"""An opaque paging cursor ([REQ-QRY-007])."""

Serial = Annotated[int, Field(ge=1, le=2**53 - 1, strict=True)]
Units = Annotated[int, Field(ge=1, le=MAX_UNITS, strict=True)]
Duration = Annotated[int, Field(ge=1, le=MAX_DURATION_S, strict=True)]
PositiveDecimal = Annotated[CanonicalDecimal, Field(gt=Decimal(0))]
Limit = Annotated[int, Field(ge=1, le=1000, strict=True)]


def _check_envelope(value: dict[str, Any]) -> dict[str, Any]:
    try:
        Envelope.from_value(value)
    except CidError as e:
        where = f" at {e.field}" if e.field else ""
        raise ValueError(f"not a well-formed envelope{where}: {e.message} [envelope]") from e
    return value


EnvelopeValue = Annotated[dict[str, Any], AfterValidator(_check_envelope)]
"""A signed envelope as a data-model value, structurally checked but not verified."""


def _unique(model: str, name: str, items: Sequence[Any] | None) -> None:
    # REQ-QRY-003: no repeated element in a list of constraints or tokens.
    if items is not None and len(set(items)) != len(items):
        rule_violation(model, (name,), "unique", f"{name} holds a value twice")


# --- resolve -------------------------------------------------------------------------------


class ResolveRequest(WireModel):
    """Ask for the records of one name ([REQ-QRY-010])."""

    name: Identifier
    types: Annotated[list[RecordType], Field(min_length=1, max_length=8)] | None = None

    @model_validator(mode="after")
    def _rules(self) -> ResolveRequest:
        _unique("ResolveRequest", "types", self.types)
        return self


class Referral(WireModel):
    """Where the delegated namespace holding the name is served ([REQ-QRY-012])."""

    namespace: Identifier
    registries: Annotated[list[HttpsUrl], Field(min_length=1, max_length=8)]
    delegation: EnvelopeValue

    @model_validator(mode="after")
    def _rules(self) -> Referral:
        header = self.delegation["header"]
        # REQ-QRY-012: the referral carries the delegation record of the namespace.
        if header.get("typ") != "cid.record.delegation":
            rule_violation(
                "Referral", ("delegation",), "referral_typ", "delegation is not a delegation record"
            )
        if Identifier.parse(header["sub"]) != self.namespace:
            rule_violation(
                "Referral", ("delegation",), "referral_name", "delegation is not for the namespace"
            )
        return self


class ResolveResponse(WireModel):
    """The records of a name, or a referral ([REQ-QRY-011], [REQ-QRY-012])."""

    name: Identifier
    records: Annotated[list[EnvelopeValue], Field(max_length=64)] = Field(default_factory=list)
    referral: Referral | None = None
    proof: Annotated[list[EnvelopeValue], Field(max_length=64)] = Field(default_factory=list)
    """Delegation and key-rotation records from the top down ([REQ-QRY-018])."""

    @model_validator(mode="after")
    def _rules(self) -> ResolveResponse:
        seen: set[str] = set()
        for i, rec in enumerate(self.records):
            header = rec["header"]
            rtype = record_type_of(header["typ"])
            # REQ-QRY-011: only records, and only records of the name asked for.
            if rtype is None:
                rule_violation(
                    "ResolveResponse", ("records", i), "record_typ", "not a record envelope"
                )
            if Identifier.parse(header["sub"]) != self.name:
                rule_violation(
                    "ResolveResponse", ("records", i), "record_name", "record of another name"
                )
            if rtype in seen:
                rule_violation(
                    "ResolveResponse", ("records", i), "unique", "two records of one type"
                )
            seen.add(rtype)
        for i, rec in enumerate(self.proof):
            # REQ-QRY-018: the proof holds only authority records of ancestors of the name.
            ptype = record_type_of(rec["header"]["typ"])
            if ptype not in ("delegation", "keyrotation"):
                rule_violation(
                    "ResolveResponse", ("proof", i), "proof_typ", "proof holds authority records"
                )
            if not self.name.is_within(Identifier.parse(rec["header"]["sub"])):
                rule_violation(
                    "ResolveResponse",
                    ("proof", i),
                    "proof_scope",
                    "proof record is not an ancestor",
                )
        if self.referral is not None:
            # REQ-QRY-012: a referral answers nothing itself and points below the name's ancestors.
            if self.records:
                rule_violation(
                    "ResolveResponse",
                    ("records",),
                    "referral_with_records",
                    "a referral carries no records",
                )
            if not self.name.is_within(self.referral.namespace):
                rule_violation(
                    "ResolveResponse",
                    ("referral", "namespace"),
                    "referral_scope",
                    "the name is not within the referred namespace",
                )
        return self

    def envelopes(self) -> tuple[Envelope, ...]:
        """The records as (unverified) :class:`~cid.envelope.Envelope` objects."""
        return tuple(Envelope.from_value(r) for r in self.records)


# --- list ----------------------------------------------------------------------------------


class ListRequest(WireModel):
    """Page through the records at and below a namespace ([REQ-QRY-015])."""

    namespace: Identifier
    types: Annotated[list[RecordType], Field(min_length=1, max_length=8)] | None = None
    cursor: Cursor | None = None
    limit: Limit = 100

    @model_validator(mode="after")
    def _rules(self) -> ListRequest:
        _unique("ListRequest", "types", self.types)
        return self


class ListItem(WireModel):
    """One record version, by name, type, serial and digest ([REQ-QRY-016])."""

    name: Identifier
    type: RecordType
    serial: Serial
    digest: Digest


class ListResponse(WireModel):
    """A page of record summaries in canonical order ([REQ-QRY-016], [REQ-QRY-017])."""

    items: Annotated[list[ListItem], Field(max_length=1000)] = Field(default_factory=list)
    next_cursor: Cursor | None = None

    @model_validator(mode="after")
    def _rules(self) -> ListResponse:
        # REQ-QRY-016: strictly ascending by (name in canonical order, type).
        for i in range(1, len(self.items)):
            a, b = self.items[i - 1], self.items[i]
            if not (a.name < b.name or (a.name == b.name and a.type < b.type)):
                rule_violation(
                    "ListResponse", ("items", i), "order", "items out of canonical order"
                )
        return self


# --- search: the query -------------------------------------------------------------------


class RankKey(StrEnum):
    """Ranking keys ([REQ-QRY-050]): cost and latency ascending, the others descending."""

    COST = "cost"
    LATENCY = "latency"
    RENEWABLE = "renewable"
    AVAILABILITY = "availability"


_VERSION_CLAUSE: Final = re.compile(r"(>=|<=|==|!=|>|<)([0-9]+(?:\.[0-9]+){0,3})")


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = [int(p) for p in text.split(".")]
    while len(parts) < 4:
        parts.append(0)
    return tuple(parts)


@dataclass(frozen=True, slots=True)
class VersionRange:
    """A parsed version range such as ``>=12.0,<13`` ([REQ-QRY-034]).

    Versions compare numerically, component by component, missing components
    being zero (``12 == 12.0.0``).
    """

    clauses: tuple[tuple[str, tuple[int, ...]], ...]

    @classmethod
    def parse(cls, text: str) -> VersionRange:
        """Parse ``op version ("," op version)*``; raise :class:`SchemaError` otherwise."""
        clauses: list[tuple[str, tuple[int, ...]]] = []
        if not isinstance(text, str) or not 1 <= len(text) <= 64:
            raise SchemaError("version range of 1..64 characters", detail={"rule": "version_range"})
        parts = text.split(",")
        if len(parts) > 8:
            raise SchemaError("at most 8 clauses", detail={"rule": "version_range"})
        for part in parts:
            m = _VERSION_CLAUSE.fullmatch(part)
            if m is None:
                raise SchemaError(f"{part!r} is not 'op version'", detail={"rule": "version_range"})
            clauses.append((m.group(1), _version_tuple(m.group(2))))
        return cls(tuple(clauses))

    def contains(self, version: str) -> bool:
        """Whether ``version`` (dotted decimal, as in a record) satisfies every clause."""
        v = _version_tuple(version)
        for op, bound in self.clauses:
            ok = {
                ">=": v >= bound,
                "<=": v <= bound,
                ">": v > bound,
                "<": v < bound,
                "==": v == bound,
                "!=": v != bound,
            }[op]
            if not ok:
                return False
        return True


def _check_version_range(value: str) -> str:
    try:
        VersionRange.parse(value)
    except SchemaError as e:
        raise ValueError(f"{e.message} [version_range]") from e
    return value


VersionRangeText = Annotated[str, Field(strict=True), AfterValidator(_check_version_range)]


class SoftwareConstraint(WireModel):
    """A software stack the offer must list, optionally in a version range ([REQ-QRY-034])."""

    name: Token
    version: VersionRangeText | None = None

    def range(self) -> VersionRange | None:
        return None if self.version is None else VersionRange.parse(self.version)


class AcceleratorConstraint(WireModel):
    """What each unit's accelerators must be ([REQ-QRY-025]). Present but empty = "has any"."""

    vendor: Token | None = None
    model: Annotated[list[Token], Field(min_length=1, max_length=16)] | None = None
    family: Token | None = None
    count_min: Annotated[int, Field(ge=1, le=4096, strict=True)] | None = None
    memory_gib_min: UInt | None = None

    @model_validator(mode="after")
    def _rules(self) -> AcceleratorConstraint:
        _unique("AcceleratorConstraint", "model", self.model)
        return self


class ResourceDemand(WireModel):
    """A requested quantity of resources ([REQ-QRY-027]); zero means "not demanded"."""

    vcpu: UInt = 0
    memory_mib: UInt = 0
    storage_gib: UInt = 0
    accelerators: UInt = 0
    nodes: UInt = 0
    units: Annotated[int, Field(ge=0, le=MAX_UNITS, strict=True)] = 0

    @model_validator(mode="after")
    def _rules(self) -> ResourceDemand:
        if not any(getattr(self, r) for r in _DEMANDED.values()) and not self.units:
            # REQ-QRY-027: a demand demands something.
            rule_violation("ResourceDemand", (), "empty_demand", "demand requests nothing")
        return self


class Near(WireModel):
    """Proximity: RTT to a region, or membership of a named latency circle ([REQ-QRY-030])."""

    region: Subdivision | None = None
    max_rtt_us: Annotated[int, Field(ge=1, le=10_000_000, strict=True)] | None = None
    latency_circle: Token | None = None

    @model_validator(mode="after")
    def _rules(self) -> Near:
        if (self.region is None) == (self.latency_circle is None):
            rule_violation(
                "Near", ("region",), "near_one_of", "give exactly one of region, latency_circle"
            )
        if self.max_rtt_us is not None and self.region is None:
            rule_violation("Near", ("max_rtt_us",), "requires_region", "max_rtt_us needs region")
        return self


class Query(WireModel):
    """A capability search: hard constraints, then ranking, then top-k ([REQ-QRY-020]..).

    Every constraint is optional and all given constraints must hold
    ([REQ-QRY-021]). The field list and its semantics are spec 7.4.
    """

    within: Identifier | None = None
    compute_class: ComputeClass | None = Field(default=None, alias="class")
    arch: Annotated[list[Architecture], Field(min_length=1, max_length=8)] | None = None
    accelerator: AcceleratorConstraint | None = None
    tflops_min: (
        Annotated[dict[Precision, PositiveDecimal], Field(min_length=1, max_length=8)] | None
    ) = None
    vcpu_min: UInt | None = None
    memory_mib_min: UInt | None = None
    storage_gib_min: UInt | None = None
    demand: ResourceDemand | None = None
    duration_s: Duration | None = None
    region_in: Annotated[list[Subdivision], Field(min_length=1, max_length=64)] | None = None
    region_not_in: Annotated[list[Subdivision], Field(min_length=1, max_length=64)] | None = None
    country_in: Annotated[list[Country], Field(min_length=1, max_length=64)] | None = None
    city_in: Annotated[list[ShortText], Field(min_length=1, max_length=64)] | None = None
    near: Near | None = None
    currency: Currency | None = None
    unit_price_max: NonNegDecimal | None = None
    unit_price_per: Period | None = None
    total_cost_max: NonNegDecimal | None = None
    renewable_share_min: Share | None = None
    carbon_g_per_kwh_max: Annotated[int, Field(ge=0, le=2000, strict=True)] | None = None
    software: Annotated[list[SoftwareConstraint], Field(min_length=1, max_length=16)] | None = None
    compliance: Annotated[list[Token], Field(min_length=1, max_length=16)] | None = None
    units_free_min: UInt | None = None
    order: Annotated[list[RankKey], Field(max_length=4)] = Field(default_factory=list)
    weights: Annotated[dict[RankKey, PositiveDecimal], Field(min_length=1, max_length=4)] | None = (
        None
    )
    limit: Limit = 10
    cursor: Cursor | None = None

    @model_validator(mode="after")
    def _rules(self) -> Query:
        m = "Query"
        for name in (
            "arch",
            "region_in",
            "region_not_in",
            "country_in",
            "city_in",
            "compliance",
            "order",
        ):
            _unique(m, name, getattr(self, name))
        if self.software is not None:
            _unique(m, "software", [s.name for s in self.software])
        # REQ-QRY-024: including and excluding a region at once is a mistake.
        if self.region_in and self.region_not_in and set(self.region_in) & set(self.region_not_in):
            rule_violation(m, ("region_not_in",), "region_overlap", "region both in and not in")
        # REQ-QRY-041: a price bound is in a currency; costs are never converted.
        if (
            self.unit_price_max is not None or self.total_cost_max is not None
        ) and self.currency is None:
            rule_violation(m, ("currency",), "currency_required", "a price bound needs currency")
        if self.unit_price_per is not None and self.unit_price_max is None:
            rule_violation(
                m, ("unit_price_per",), "requires_unit_price_max", "unit_price_per without a bound"
            )
        # REQ-QRY-042: a total is only meaningful for a stated duration.
        if self.total_cost_max is not None and self.duration_s is None:
            rule_violation(
                m, ("duration_s",), "duration_required", "total_cost_max needs duration_s"
            )
        keys = set(self.order) | set(self.weights or {})
        # REQ-QRY-051: ranking by cost compares totals of one currency.
        if RankKey.COST in keys and self.currency is None:
            rule_violation(m, ("currency",), "currency_required", "ranking by cost needs currency")
        # REQ-QRY-052: latency is measured to a region.
        if RankKey.LATENCY in keys and (self.near is None or self.near.region is None):
            rule_violation(
                m, ("near",), "near_region_required", "ranking by latency needs near.region"
            )
        # REQ-QRY-053: weights score the keys of order.
        if self.weights is not None:
            for key in self.weights:
                if key not in self.order:
                    rule_violation(
                        m,
                        ("weights", key),
                        "weight_not_in_order",
                        "weighted key missing from order",
                    )
        return self

    @property
    def effective_duration_s(self) -> int:
        """``duration_s``, or :data:`DEFAULT_DURATION_S` ([REQ-QRY-040])."""
        return DEFAULT_DURATION_S if self.duration_s is None else self.duration_s

    @property
    def effective_demand(self) -> ResourceDemand:
        """``demand``, or one unit ([REQ-QRY-040])."""
        return ResourceDemand(units=1) if self.demand is None else self.demand


# --- search: the response ------------------------------------------------------------------


class CostItem(WireModel):
    """One line of a cost breakdown ([REQ-QRY-063])."""

    resource: PricedResource
    quantity: NonNegDecimal
    amount: NonNegDecimal
    per: Period
    billed_s: UInt
    cost: NonNegDecimal

    @model_validator(mode="after")
    def _rules(self) -> CostItem:
        expected = round_cost(self.exact_cost())
        if self.cost != expected:
            rule_violation(
                "CostItem",
                ("cost",),
                "item_cost",
                f"cost must be amount x quantity x billed_s / period, written {expected}",
            )
        return self

    def exact_cost(self) -> Fraction:
        """The exact cost this line states ([REQ-CAP-023])."""
        return exact_item_cost(self.amount, self.quantity, self.billed_s, self.per)


class CostBreakdown(WireModel):
    """What a demand costs under one price, item by item ([REQ-QRY-063], [REQ-QRY-064])."""

    currency: Currency
    units: Units
    items: Annotated[list[CostItem], Field(max_length=8)]
    total: NonNegDecimal

    @model_validator(mode="after")
    def _rules(self) -> CostBreakdown:
        _unique("CostBreakdown", "items", [i.resource for i in self.items])
        expected = round_cost(self.exact_total())
        if self.total != expected:
            rule_violation(
                "CostBreakdown",
                ("total",),
                "total",
                f"total must be the exact sum of the items, written {expected}",
            )
        return self

    def exact_total(self) -> Fraction:
        """The exact total, for comparing and ranking ([REQ-CAP-023])."""
        return sum((i.exact_cost() for i in self.items), Fraction(0))

    @classmethod
    def build(cls, currency: str, units: int, items: Sequence[CostItem]) -> CostBreakdown:
        """A breakdown of ``items`` with its total computed as the rules require."""
        exact = sum((i.exact_cost() for i in items), Fraction(0))
        return cls(currency=currency, units=units, items=list(items), total=round_cost(exact))


class Match(WireModel):
    """One search result ([REQ-QRY-055])."""

    name: Identifier
    serial: Serial
    cost: CostBreakdown
    rtt_us: UInt | None = None
    score: Annotated[CanonicalDecimal, Field(ge=Decimal(0), le=Decimal(1))] | None = None


class SearchResponse(WireModel):
    """The ranked results of a :class:`Query` ([REQ-QRY-055], [REQ-QRY-056])."""

    results: Annotated[list[Match], Field(max_length=1000)] = Field(default_factory=list)
    next_cursor: Cursor | None = None

    @model_validator(mode="after")
    def _rules(self) -> SearchResponse:
        _unique("SearchResponse", "results", [r.name for r in self.results])
        return self


# --- costing -------------------------------------------------------------------------------

# demand member for each priced resource other than ``unit`` (Table 4-7)
_DEMANDED: Final[dict[str, str]] = {
    PricedResource.VCPU: "vcpu",
    PricedResource.MEMORY_GIB: "memory_mib",
    PricedResource.STORAGE_GIB: "storage_gib",
    PricedResource.ACCELERATOR: "accelerators",
    PricedResource.NODE: "nodes",
}


def _scaled_decimal(scaled: int, digits: int) -> Decimal:
    """``scaled / 10**digits`` as an exact Decimal without trailing zeros (no context rounding)."""
    sign = "-" if scaled < 0 else ""
    whole, frac = divmod(abs(scaled), 10**digits)
    text = f"{whole}.{frac:0{digits}d}".rstrip("0").rstrip(".")
    return Decimal(sign + text) if text != "0" else Decimal(0)


def round_cost(value: Fraction) -> Decimal:
    """The written form of an exact cost: rounded towards +infinity to 18 digits ([REQ-CAP-023])."""
    return _scaled_decimal(math.ceil(value * 10**COST_DECIMALS), COST_DECIMALS)


def exact_item_cost(amount: Decimal, quantity: Decimal, billed_s: int, per: str) -> Fraction:
    """``amount × quantity × billed_s / PERIOD_SECONDS[per]``, exactly ([REQ-CAP-023])."""
    return Fraction(amount) * Fraction(quantity) * billed_s / PERIOD_SECONDS[per]


def item_cost(amount: Decimal, quantity: Decimal, billed_s: int, per: str) -> Decimal:
    """The written cost of one price item ([REQ-CAP-023])."""
    return round_cost(exact_item_cost(amount, quantity, billed_s, per))


def billed_seconds(price: _Price, duration_s: int) -> int:
    """``max(duration, minimum_term_s)`` rounded up to the billing granularity ([REQ-CAP-022])."""
    if duration_s < 1:
        raise SchemaError(
            "duration_s must be at least 1", field="duration_s", detail={"rule": "duration"}
        )
    base = max(duration_s, price.minimum_term_s)
    step = price.billing_granularity_s
    return -(-base // step) * step


def per_unit_amount(resource: str, unit: Unit) -> Fraction:
    """How much of ``resource`` one unit holds (Table 4-7, [REQ-CAP-021])."""
    if resource == PricedResource.UNIT:
        return Fraction(1)
    if resource == PricedResource.VCPU:
        return Fraction(unit.vcpu)
    if resource == PricedResource.MEMORY_GIB:
        return Fraction(unit.memory_mib, _GIB_MIB)
    if resource == PricedResource.STORAGE_GIB:
        return Fraction(unit.storage_gib + (unit.storage.capacity_gib if unit.storage else 0))
    if resource == PricedResource.ACCELERATOR:
        return Fraction(unit.accelerators.count if unit.accelerators is not None else 0)
    return Fraction(unit.hpc.nodes if unit.hpc is not None else 0)  # PricedResource.NODE


def _demanded(resource: str, demand: ResourceDemand) -> Fraction:
    value: int = getattr(demand, _DEMANDED[resource])
    return Fraction(value, _GIB_MIB) if resource == PricedResource.MEMORY_GIB else Fraction(value)


def _unsatisfiable(field: str, message: str) -> DemandRejectedError:
    return DemandRejectedError(message, field=f"demand.{field}", detail={"rule": "unsatisfiable"})


def units_needed(unit: Unit, demand: ResourceDemand, price: _Price | None = None) -> int:
    """How many units serve ``demand`` ([REQ-QRY-060], [REQ-QRY-061]).

    A demanded resource the unit has none of is attached (bought by quantity)
    and adds no units; it needs a price item, so without ``price`` it is refused.

    Raises:
        DemandRejectedError: a demanded resource is neither in the unit nor priced
            (``field`` names it, ``detail['rule']`` is ``unsatisfiable``), or more
            than :data:`MAX_UNITS` units would be needed.
    """
    priced = {str(i.resource) for i in price.items} if price is not None else set()
    needed = max(demand.units, 1)
    for resource, member in _DEMANDED.items():
        want = _demanded(resource, demand)
        if want == 0:
            continue
        have = per_unit_amount(resource, unit)
        if have == 0:
            if resource not in priced:
                raise _unsatisfiable(member, f"the offer neither has nor prices {resource}")
            continue
        needed = max(needed, math.ceil(want / have))
    if needed > MAX_UNITS:
        raise _unsatisfiable("units", f"the demand needs more than {MAX_UNITS} units")
    return needed


def _quantity(resource: str, unit: Unit, units: int, demand: ResourceDemand) -> Fraction:
    """q(resource) for ``units`` units (Table 4-7, [REQ-CAP-021])."""
    have = per_unit_amount(resource, unit)
    if resource == PricedResource.UNIT or have > 0:
        return units * have
    return _demanded(resource, demand)


def _fraction_to_decimal(value: Fraction) -> Decimal:
    """A quantity as an exact Decimal: integers, or MiB / 1024 (at most 10 fractional digits)."""
    for digits in range(11):
        scaled = value * 10**digits
        if scaled.denominator == 1:
            return _scaled_decimal(scaled.numerator, digits)
    raise AssertionError("quantities are whole or in 1/1024 steps")  # pragma: no cover


def price_demand(
    price: _Price,
    unit: Unit,
    demand: ResourceDemand,
    duration_s: int,
    *,
    currency: str | None = None,
) -> CostBreakdown:
    """The cost of ``demand`` for ``duration_s`` under ``price`` (spec 4.10, 7.6).

    Args:
        price: the offer's price.
        unit: the offer's allocation unit.
        demand: what is requested; ``ResourceDemand(units=n)`` buys ``n`` units.
        duration_s: how long, in seconds (>= 1).
        currency: when given, the currency the caller compares in; a price in
            another currency is refused, never converted ([REQ-QRY-064]).

    Returns:
        The breakdown: one item per price item whose quantity is not zero, in the
        order of ``price.items`` ([REQ-QRY-065]), and the total.

    Raises:
        DemandRejectedError: currency mismatch (rule ``currency_mismatch``) or a
            demand the offer cannot serve (rule ``unsatisfiable``).
        SchemaError: ``duration_s`` < 1, or a figure too large to write exactly
            (rule ``cost_range``).
    """
    if currency is not None and currency != price.currency:
        raise DemandRejectedError(
            f"price is in {price.currency}, not {currency}",
            field="currency",
            detail={"rule": "currency_mismatch", "price": price.currency, "wanted": currency},
        )
    billed = billed_seconds(price, duration_s)  # REQ-QRY-062: one billed time for every item
    units = units_needed(unit, demand, price)
    items: list[CostItem] = []
    for pi in price.items:
        quantity = _quantity(pi.resource, unit, units, demand)
        if quantity == 0:
            continue  # REQ-QRY-065: zero-quantity items are left out
        q = _fraction_to_decimal(quantity)
        items.append(
            CostItem.model_construct(
                resource=pi.resource,
                quantity=q,
                amount=pi.amount,
                per=pi.per,
                billed_s=billed,
                cost=item_cost(pi.amount, q, billed, pi.per),
            )
        )
    try:
        return validate(
            CostBreakdown,
            {
                "currency": price.currency,
                "units": units,
                "items": [i.to_value() for i in items],
                "total": decimal_to_text(
                    round_cost(sum((i.exact_cost() for i in items), Fraction(0)))
                ),
            },
            where="cost",
        )
    except SchemaError as e:
        # Only reachable for figures beyond what a decimal string can carry exactly.
        raise SchemaError(
            f"the cost cannot be written exactly: {e.message}",
            field=e.field,
            detail={"rule": "cost_range"},
        ) from e


def unit_rate(price: _Price, unit: Unit, per: str = Period.HOUR) -> Fraction:
    """The exact list price of one unit per ``per`` period, for ``unit_price_max`` ([REQ-QRY-043]).

    Minimum term and granularity do not apply; attached resources are not part of a unit.
    """
    exact = Fraction(0)
    for pi in price.items:
        quantity = per_unit_amount(pi.resource, unit)
        exact += Fraction(pi.amount) * quantity * PERIOD_SECONDS[per] / PERIOD_SECONDS[pi.per]
    return exact


# --- ranking -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    """An offer that met every constraint, with the figures ranking uses ([REQ-QRY-050]).

    ``rtt_us`` is the RTT to ``near.region`` (``None``: unknown or not asked);
    ``renewable_share`` is ``None`` when the offer states no energy figures.
    """

    name: Identifier
    serial: int
    cost: CostBreakdown
    units_free: int
    rtt_us: int | None = None
    renewable_share: Decimal | None = None


def _raw(key: str, c: Candidate) -> Fraction | None:
    """The figure for ``key`` oriented so that smaller is better; ``None`` if unknown."""
    if key == RankKey.COST:
        return c.cost.exact_total()
    if key == RankKey.LATENCY:
        return None if c.rtt_us is None else Fraction(c.rtt_us)
    if key == RankKey.RENEWABLE:
        return None if c.renewable_share is None else -Fraction(c.renewable_share)
    return -Fraction(c.units_free)


def _lexicographic_key(order: Sequence[str], c: Candidate) -> tuple[Any, ...]:
    parts: list[Any] = []
    for key in order:
        v = _raw(key, c)
        # REQ-QRY-054: an unknown figure ranks after every known one.
        parts.append((1, Fraction(0)) if v is None else (0, v))
    return tuple(parts)


def _goodness(values: list[Fraction | None]) -> list[Fraction]:
    known = [v for v in values if v is not None]
    if not known:
        return [Fraction(0)] * len(values)
    lo, hi = min(known), max(known)
    out: list[Fraction] = []
    for v in values:
        if v is None:
            out.append(Fraction(0))
        elif hi == lo:
            out.append(Fraction(1))
        else:
            out.append((hi - v) / (hi - lo))
    return out


def rank(query: Query, candidates: Iterable[Candidate]) -> list[Match]:
    """Order ``candidates`` as spec 7.5 requires and make them :class:`Match` results.

    Lexicographic mode (no ``weights``): by each key of ``order`` in turn.
    Weighted mode: by the exact ``score`` descending, the weighted mean of each
    key's min-max normalised goodness over the candidates (written truncated to
    :data:`SCORE_DECIMALS` digits); then as in lexicographic mode. Costs compare
    by their exact totals. Ties are always broken by identifier canonical order,
    then serial ([REQ-QRY-054]). All candidates are returned; the caller
    applies ``limit`` and paging.

    Raises:
        DemandRejectedError: candidates priced in more than one currency, or in
            another currency than ``query.currency`` ([REQ-QRY-064]).
    """
    cands = list(candidates)
    currencies = {c.cost.currency for c in cands}
    if query.currency is not None:
        currencies.add(query.currency)
    if len(currencies) > 1:
        raise DemandRejectedError(
            "candidates in more than one currency cannot be ranked together",
            field="currency",
            detail={"rule": "currency_mismatch", "currencies": sorted(currencies)},
        )
    order = [str(k) for k in query.order]
    # REQ-QRY-044: costs and scores are compared as exact rationals, never as written.
    exact_scores: list[Fraction | None] = [None] * len(cands)
    if query.weights is not None:
        weights = {str(k): Fraction(v) for k, v in query.weights.items()}
        total_w = sum(weights.values(), Fraction(0))
        acc = [Fraction(0)] * len(cands)
        for key, w in weights.items():
            for i, g in enumerate(_goodness([_raw(key, c) for c in cands])):
                acc[i] += w * g
        exact_scores = [a / total_w for a in acc]
    indexed = list(range(len(cands)))

    def sort_key(i: int) -> tuple[Any, ...]:
        c = cands[i]
        s = exact_scores[i]
        head: tuple[Any, ...] = () if s is None else (-s,)
        # REQ-QRY-054: Identifier's own order is the canonical order.
        return (*head, *_lexicographic_key(order, c), c.name, c.serial)

    indexed.sort(key=sort_key)
    near_asked = query.near is not None and query.near.region is not None
    out: list[Match] = []
    for i in indexed:
        c = cands[i]
        s = exact_scores[i]
        out.append(
            Match(
                name=c.name,
                serial=c.serial,
                cost=c.cost,
                rtt_us=c.rtt_us if near_asked else None,
                # REQ-QRY-053: the written score is truncated; ranking used the exact one.
                score=None
                if s is None
                else _scaled_decimal(math.floor(s * 10**SCORE_DECIMALS), SCORE_DECIMALS),
            )
        )
    return out


WIRE_MODELS: Final[tuple[type[WireModel], ...]] = (
    ResolveRequest,
    ResolveResponse,
    ListRequest,
    ListResponse,
    Query,
    SearchResponse,
)
"""The top-level messages of section 7 (their JSON Schemas are in spec/schemas)."""
