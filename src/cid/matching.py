"""Capability matching: a local, incrementally updated index that answers :class:`Query`.

A scheduler asks "8 × A100 80 GB within 3 ms of Tianjin, renewable share at
least 0.5, cheapest first" many times a second. :class:`Matcher` holds a local
catalogue of offers (fed by a registry's change feed, or by a test) and answers
such a query with the same offers, in the same order and with the same cost
breakdowns as the plain reference scan :func:`naive_search` ([REQ-QRY-021],
[REQ-QRY-050]..[REQ-QRY-056], [REQ-QRY-060]..[REQ-QRY-065]), but without
looking at most of the catalogue.

Theory of operation
-------------------
**Interned tables.** Offers repeat themselves: a provider sells the same unit
shape in many pools, a site has one location and one set of measured RTTs,
pools share software images and compliance tags. So each offer is split into
references to interned rows of five tables, each row holding its derived
columns once: *units* (class, architecture, per-unit vCPU/memory/storage/
accelerators/nodes, accelerator vendor/model/family/count/memory, TFLOPS per
precision as exact scaled integers), *places* (region, country, city,
declared latency circle, measured RTT per region), *software lists* (name
bitset, version ids), *tag sets* (bitset) and *price signatures* (the price
list with its unit: float rate of one unit per second ``r0``, billing
granularity, minimum term, attachable-resource rates; the exact rationals and
the cost breakdowns are computed on first use and memoised). A query decides
every unit-, place-, software- and tag-level constraint once per table row,
vectorised over the (small) tables, into boolean masks.

**Slots.** Every offer lives in a *slot* (a small integer, reused after
removal) whose hot fields (expiry, free units, name key, renewable share ×
10¹⁸, signature, unit, place, software list, tag set, currency, carbon) form
one 64-byte record, so evaluating a candidate costs one cache line
(``np.take`` of records, then mask lookups and vectorised arithmetic).

**Inverted indexes.** Postings (a growable slot array per value plus each
slot's position in it; O(1) insertion and swap-removal) on unit, place,
currency and the first two name ancestors. A query's candidate set is the
smallest union of postings of the accepted units, places, currency or
namespace: its size is the cost estimate that ``budget`` limits
(:class:`~cid.errors.QueryTooExpensiveError`), refused before any work.

**Ladders: top-k without pricing everything.** For each common first rank
key the matcher keeps a *ladder*: per stream (a unit, and for cost also the
minimum-term class) a set of buckets over a per-offer key, with the sorted list
of non-empty buckets; moving an offer between buckets is O(1).

* cost: log₂-spaced buckets (4 per octave) of ``r0``. Every offer of stream
  (unit u, class j) costs at least ``max(d, floor_j) × n_u × r0``
  ([REQ-CAP-022], [REQ-QRY-060]), where n_u is the number of units the demand
  needs of unit u, a constant per unit. The walk merges the streams of the
  accepted units by that bound (a heap), evaluates buckets in chunks, prunes
  rows whose own bound ``max(d, minimum term) × n_u × r0`` exceeds the k-th
  cost found, and stops once the k-th cost is strictly below the next bound:
  exactly the k cheapest, ties included;
* renewable share (1/1024 buckets, unknown last) and free units (8 buckets
  per octave), descending: bucket order is value order, so the walk stops
  once k candidates are found;
* latency: places in order of RTT to ``near.region``; the offers of one RTT
  are evaluated lazily in order of the next key;
* the name order (no ``order``): a lazy evaluation of the candidate set in
  order of its order-maintained name keys.

Weighted queries need the minimum and maximum of each key over every
candidate ([REQ-QRY-053]) and evaluate the whole candidate set. In every path
the final k are chosen exactly: float estimates only decide which candidates
could be in the top k (with a safety band wider than every rounding
involved); the ranking among them uses exact rationals and the canonical name
order ([REQ-QRY-054]), kept as an order-maintained integer per slot.

**Incremental updates.** :meth:`Matcher.upsert`, :meth:`Matcher.remove` and
:meth:`Matcher.update_availability` touch one slot, move it in the postings
and ladders whose key changed and adjust reference counts of interned rows
(freed at zero); nothing is rebuilt (arrays grow by doubling, amortised).

**Paging.** A cursor is the exact rank key of the last result of a page
(score, the order keys, name, serial) plus a digest of the query, in
base64url ([REQ-QRY-007]); the next page holds the candidates ranked strictly
after it, so pages are deterministic and concatenate to the unpaged order.

Constraint semantics (spec 7.4.1, [REQ-QRY-021]..[REQ-QRY-044])
------------------------------------------------------------------
``within``: the name is within the namespace. ``class``, ``currency``: equal.
``arch``: the unit has a CPU of one of the architectures. ``accelerator``: the
unit has accelerators, with the given vendor, one of the models, the family,
``count >= count_min`` and ``memory_gib >= memory_gib_min`` per device.
``tflops_min``: the unit's throughput at each precision, every device
(``count × tflops``) plus, for fp64, the HPC allocation ([REQ-QRY-026]), is at
least the bound. ``vcpu_min``/``memory_mib_min``/``storage_gib_min``: per unit
(storage = local disk + storage service). ``demand``: the offer can serve it
(:func:`~cid.query.price_demand` does not refuse it) and has at least as many
free units as the demand needs, and at least ``units_free_min``. Regions,
countries and cities: the offer's location. ``near.region``/``max_rtt_us``:
the RTT of :func:`cid.latency.offer_rtt_us` is known and within the bound.
``near.latency_circle``: the offer declares that circle or lies in a region of
the model's circle of that name. ``unit_price_max``: the exact
:func:`~cid.query.unit_rate` per ``unit_price_per`` (default hour).
``total_cost_max``: the exact total. ``renewable_share_min``,
``carbon_g_per_kwh_max``: the offer states the figure and meets it.
``software``: some listed stack has the name and a version in the range.
``compliance``: every tag is listed. Expired offers (``expires <= now``)
never match.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import json
import math
import zlib
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from dataclasses import field as dc_field
from decimal import Decimal
from fractions import Fraction
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from .errors import DemandRejectedError, QueryTooExpensiveError, SchemaError
from .identifier import Identifier
from .latency import LatencyModel, offer_rtt_us
from .query import (
    MAX_UNITS,
    SCORE_DECIMALS,
    Candidate,
    CostBreakdown,
    CostItem,
    Match,
    Query,
    RankKey,
    SearchResponse,
    VersionRange,
    per_unit_amount,
    price_demand,
    rank,
    round_cost,
    unit_rate,
)
from .record import PERIOD_SECONDS, OfferBody, Period, Price, PricedResource, Unit

__all__ = [
    "Listing",
    "Matcher",
    "MatcherStats",
    "naive_search",
    "naive_search_page",
    "unit_tflops",
]

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]
U64 = npt.NDArray[np.uint64]

# The resources a demand can ask for, in a fixed order: (priced resource, demand member).
_RESOURCES: Final = (
    (PricedResource.VCPU, "vcpu"),
    (PricedResource.MEMORY_GIB, "memory_mib"),
    (PricedResource.STORAGE_GIB, "storage_gib"),
    (PricedResource.ACCELERATOR, "accelerators"),
    (PricedResource.NODE, "nodes"),
)
_NRES: Final = len(_RESOURCES)
_MIB_PER_GIB: Final = 1024
_PRECISIONS: Final = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4")
_TFLOPS_SCALE: Final = 10**6
_SHARE_SCALE: Final = 10**18
_NS_DEPTH: Final = 3
_NONE: Final = -1

# float safety margins: every float below is within a few ulps of an exact value
_REL: Final = 1e-9

# cost ladders: 16 log2-buckets per octave over 2^-64 .. 2^64, per minimum-term class
_OCTAVE_STEPS: Final = 4
_LOG_LO: Final = -64
_COST_NB: Final = _OCTAVE_STEPS * 128 + 2
_MINTERM_LIMITS: Final = (3_600, 86_400, 2_628_000, 31_536_000)
_MINTERM_FLOOR: Final = (0, 3_601, 86_401, 2_628_001, 31_536_001)
_RENEW_NB: Final = 1026  # 0..1024 by share, 1025 = unknown
_AVAIL_NB: Final = 2 + 64 * 8

# the candidate set above which a walk along a ladder beats gathering
_WALK_MIN: Final = 4096
_CHUNK: Final = 512
_BIG: Final = 2**62  # an unknown figure: after every known one ([REQ-QRY-054])
_NAME_SPACING: Final = 1 << 32
_VOCABULARIES: Final = (
    "class",
    "arch",
    "region",
    "country",
    "city",
    "currency",
    "vendor",
    "model",
    "family",
    "circle",
    "ns",
    "tag",
    "software",
)
_INDEX: Final = {str(r): i for i, (r, _) in enumerate(_RESOURCES)}
_MEMBER: Final = {str(r): m for r, m in _RESOURCES}
_GIB_OF: Final = (1.0, 1.0 / _MIB_PER_GIB, 1.0, 1.0, 1.0)
_Exact = tuple[
    Fraction, tuple[Fraction, ...], tuple[tuple[str, Fraction, Fraction | None, str], ...]
]


def _or_none(value: int | None) -> int:
    return _NONE if value is None else value


# --- public data ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listing:
    """One offer of a catalogue: name, record serial, body and expiry (POSIX seconds)."""

    name: Identifier
    serial: int
    offer: OfferBody
    expires: int


@dataclass(frozen=True, slots=True)
class MatcherStats:
    """What a :class:`Matcher` holds: offers, signatures, slots and index bytes."""

    offers: int
    signatures: int
    capacity: int
    index_bytes: int


# --- helpers shared by the matcher and the reference scan ------------------------------------


def _demand_vector(query: Query) -> tuple[int, ...]:
    d = query.effective_demand
    return tuple(int(getattr(d, member)) for _, member in _RESOURCES)


def _unit_have(unit: Unit) -> tuple[int, ...]:
    """Per-unit amount of each demandable resource (memory in MiB)."""
    return (
        unit.vcpu,
        unit.memory_mib,
        unit.storage_gib + (unit.storage.capacity_gib if unit.storage is not None else 0),
        unit.accelerators.count if unit.accelerators is not None else 0,
        unit.hpc.nodes if unit.hpc is not None else 0,
    )


def unit_tflops(unit: Unit, precision: str) -> Decimal | None:
    """The unit's throughput at ``precision`` ([REQ-QRY-026]): None when it states none.

    ``count × tflops[p]`` of its accelerators (a per-device figure,
    [REQ-CAP-004]) plus, for ``fp64``, its HPC allocation's ``fp64_tflops``.
    """
    total: Decimal | None = None
    acc = unit.accelerators
    figure = None if acc is None else acc.tflops.get(precision)  # type: ignore[call-overload]
    if acc is not None and figure is not None:
        total = acc.count * figure
    if precision == "fp64" and unit.hpc is not None:
        total = (total or Decimal(0)) + unit.hpc.fp64_tflops
    return total


def _software_ok(offer: OfferBody, name: str, vrange: VersionRange | None) -> bool:
    return any(
        s.name == name and (vrange is None or vrange.contains(s.version)) for s in offer.software
    )


def _quantity_decimal(value: Fraction) -> Decimal:
    """A quantity (whole, or MiB / 1024) as an exact Decimal, as price_demand writes it."""
    for digits in range(11):
        scaled = value * 10**digits
        if scaled.denominator == 1:
            whole, frac = divmod(scaled.numerator, 10**digits)
            text = f"{whole}.{frac:0{digits}d}".rstrip("0").rstrip(".") if digits else str(whole)
            return Decimal(text)
    raise AssertionError("quantities are whole or in 1/1024 steps")  # pragma: no cover


def _score_text(score: Fraction) -> Decimal:
    """The written score: truncated to SCORE_DECIMALS digits ([REQ-QRY-053])."""
    scaled = math.floor(score * 10**SCORE_DECIMALS)
    whole, frac = divmod(scaled, 10**SCORE_DECIMALS)
    text = f"{whole}.{frac:0{SCORE_DECIMALS}d}".rstrip("0").rstrip(".")
    return Decimal(text)


# --- cursors ---------------------------------------------------------------------------------
#
# A rank key is (score?, per order key: None | value, name, serial), all exact:
# score and cost as Fractions, latency/availability as ints, renewable as a
# Fraction of the share. The comparable form puts "unknown" after every value
# ([REQ-QRY-054]) and orients every key so that smaller ranks first.

RankKeyValue = tuple[Fraction | None, tuple[Fraction | None, ...], Identifier, int]


def _comparable(key: RankKeyValue) -> tuple[Any, ...]:
    score, values, name, serial = key
    head: tuple[Any, ...] = () if score is None else (-score,)
    parts = tuple((1, Fraction(0)) if v is None else (0, v) for v in values)
    return (*head, *parts, name, serial)


def _oriented(key: str, value: Fraction | None) -> Fraction | None:
    """Orient a raw figure so that smaller is better (renewable and availability descend)."""
    if value is None:
        return None
    return -value if key in (RankKey.RENEWABLE, RankKey.AVAILABILITY) else value


def _query_digest(query: Query) -> str:
    value = query.to_value()
    value.pop("cursor", None)
    value.pop("limit", None)
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()[:9]).decode()


def _frac_text(v: Fraction | None) -> str | None:
    return None if v is None else f"{v.numerator}/{v.denominator}"


def _encode_cursor(query: Query, key: RankKeyValue) -> str:
    score, values, name, serial = key
    doc: list[Any] = [_query_digest(query), _frac_text(score), [_frac_text(v) for v in values]]
    doc += [name.to_ascii(), serial]
    raw = json.dumps(doc, separators=(",", ":")).encode()
    packed = zlib.compress(raw, 9)
    blob = b"z" + packed if len(packed) < len(raw) else b"j" + raw
    return base64.urlsafe_b64encode(blob).decode().rstrip("=")


def _cursor_error(message: str) -> SchemaError:
    return SchemaError(message, field="cursor", detail={"rule": "cursor"})


def _decode_cursor(query: Query) -> RankKeyValue | None:
    """The rank key a query's cursor stands for; SchemaError if it is not one of ours."""
    if query.cursor is None:
        return None
    try:
        blob = base64.urlsafe_b64decode(query.cursor + "=" * (-len(query.cursor) % 4))
        raw = zlib.decompress(blob[1:]) if blob[:1] == b"z" else blob[1:]
        if blob[:1] not in (b"z", b"j"):
            raise ValueError("unknown cursor format")
        digest, score, values, name, serial = json.loads(raw)
        if digest != _query_digest(query):
            raise _cursor_error("the cursor belongs to another query")

        def frac(text: str | None) -> Fraction | None:
            if text is None:
                return None
            n, d = text.split("/")
            return Fraction(int(n), int(d))

        if len(values) != len(query.order) or not isinstance(serial, int):
            raise ValueError("cursor shape")
        return (frac(score), tuple(frac(v) for v in values), Identifier.parse(name), serial)
    except SchemaError:
        raise
    except Exception as e:
        raise _cursor_error("not a cursor this matcher issued") from e


# --- the reference scan ----------------------------------------------------------------------


def _naive_constraints(
    listing: Listing, query: Query, *, now: int, latency: LatencyModel | None
) -> bool:
    """Every hard constraint but the demand/capacity/cost ones, plainly ([REQ-QRY-021])."""
    o = listing.offer
    u = o.unit
    if listing.expires <= now:
        return False
    if query.within is not None and not listing.name.is_within(query.within):
        return False
    if query.compute_class is not None and o.compute_class != query.compute_class:
        return False
    if query.arch is not None and (u.cpu is None or u.cpu.arch not in query.arch):
        return False
    acc = u.accelerators
    if query.accelerator is not None:
        c = query.accelerator
        if acc is None:
            return False
        if c.vendor is not None and acc.vendor != c.vendor:
            return False
        if c.model is not None and acc.model not in c.model:
            return False
        if c.family is not None and acc.family != c.family:
            return False
        if c.count_min is not None and acc.count < c.count_min:
            return False
        if c.memory_gib_min is not None and acc.memory_gib < c.memory_gib_min:
            return False
    if query.tflops_min is not None:
        for precision, bound in query.tflops_min.items():
            # REQ-QRY-026: the unit's throughput, every device and the HPC allocation
            figure = unit_tflops(u, str(precision))
            if figure is None or figure < bound:
                return False
    have = _unit_have(u)
    if query.vcpu_min is not None and u.vcpu < query.vcpu_min:
        return False
    if query.memory_mib_min is not None and u.memory_mib < query.memory_mib_min:
        return False
    if query.storage_gib_min is not None and have[2] < query.storage_gib_min:
        return False
    loc = o.location
    if query.region_in is not None and loc.region not in query.region_in:
        return False
    if query.region_not_in is not None and loc.region in query.region_not_in:
        return False
    if query.country_in is not None and loc.country not in query.country_in:
        return False
    if query.city_in is not None and loc.city not in query.city_in:
        return False
    if query.near is not None:
        near = query.near
        if near.region is not None and near.max_rtt_us is not None:
            rtt = offer_rtt_us(o, near.region, latency)
            if rtt is None or rtt > near.max_rtt_us:
                return False
        if near.latency_circle is not None:
            declared = o.network.latency_circle == near.latency_circle
            modelled = latency is not None and latency.in_circle(near.latency_circle, loc.region)
            if not (declared or modelled):
                return False
    if query.currency is not None and o.price.currency != query.currency:
        return False
    if query.unit_price_max is not None:
        per = query.unit_price_per or Period.HOUR
        if unit_rate(o.price, u, per) > query.unit_price_max:
            return False
    energy = o.energy
    if query.renewable_share_min is not None and (
        energy is None or energy.renewable_share < query.renewable_share_min
    ):
        return False
    if query.carbon_g_per_kwh_max is not None and (
        energy is None
        or energy.carbon_g_per_kwh is None
        or energy.carbon_g_per_kwh > query.carbon_g_per_kwh_max
    ):
        return False
    if query.software is not None:
        for sc in query.software:
            if not _software_ok(o, sc.name, sc.range()):
                return False
    return query.compliance is None or all(t in o.compliance for t in query.compliance)


def _naive_candidates(
    listings: Iterable[Listing], query: Query, *, now: int, latency: LatencyModel | None
) -> list[Candidate]:
    demand = query.effective_demand
    duration = query.effective_duration_s
    near_region = query.near.region if query.near is not None else None
    out: list[Candidate] = []
    for listing in listings:
        if not _naive_constraints(listing, query, now=now, latency=latency):
            continue
        o = listing.offer
        try:
            cost = price_demand(o.price, o.unit, demand, duration, currency=query.currency)
        except DemandRejectedError:
            continue  # the offer cannot serve the demand ([REQ-QRY-060], [REQ-QRY-061])
        free = o.availability.units_free
        if free < max(cost.units, query.units_free_min or 0):
            continue
        if query.total_cost_max is not None and cost.exact_total() > Fraction(query.total_cost_max):
            continue
        out.append(
            Candidate(
                name=listing.name,
                serial=listing.serial,
                cost=cost,
                units_free=free,
                rtt_us=None if near_region is None else offer_rtt_us(o, near_region, latency),
                renewable_share=None if o.energy is None else o.energy.renewable_share,
            )
        )
    return out


def _candidate_values(query: Query, c: Candidate) -> tuple[Fraction | None, ...]:
    out: list[Fraction | None] = []
    for key in query.order:
        if key == RankKey.COST:
            v: Fraction | None = c.cost.exact_total()
        elif key == RankKey.LATENCY:
            v = None if c.rtt_us is None else Fraction(c.rtt_us)
        elif key == RankKey.RENEWABLE:
            v = None if c.renewable_share is None else Fraction(c.renewable_share)
        else:
            v = Fraction(c.units_free)
        out.append(_oriented(key, v))
    return tuple(out)


def _exact_scores(query: Query, rows: list[tuple[Fraction | None, ...]]) -> list[Fraction]:
    """Weighted scores ([REQ-QRY-053]): weighted mean of min-max normalised goodness."""
    assert query.weights is not None
    order = [str(k) for k in query.order]
    weights = {str(k): Fraction(v) for k, v in query.weights.items()}
    total_w = sum(weights.values(), Fraction(0))
    acc = [Fraction(0)] * len(rows)
    for key, w in weights.items():
        i = order.index(key)
        known = [r[i] for r in rows if r[i] is not None]
        if not known:
            continue
        lo, hi = min(known), max(known)  # type: ignore[type-var]
        for j, r in enumerate(rows):
            v = r[i]
            if v is None:
                continue
            acc[j] += w if hi == lo else w * (hi - v) / (hi - lo)  # type: ignore[operator]
    return [a / total_w for a in acc]


def _naive_ranked(
    listings: Iterable[Listing], query: Query, *, now: int, latency: LatencyModel | None
) -> list[tuple[RankKeyValue, Match]]:
    cands = _naive_candidates(listings, query, now=now, latency=latency)
    ranked = rank(query, cands)  # the normative ranking ([REQ-QRY-050]..[REQ-QRY-054])
    by_name = {c.name: c for c in cands}
    rows = [_candidate_values(query, by_name[m.name]) for m in ranked]
    scores: list[Fraction | None] = [None] * len(rows)
    if query.weights is not None:
        scores = list(_exact_scores(query, rows))
    return [((scores[i], rows[i], m.name, m.serial), m) for i, m in enumerate(ranked)]


def naive_search_page(
    listings: Iterable[Listing],
    query: Query,
    *,
    now: int,
    latency: LatencyModel | None = None,
) -> SearchResponse:
    """The reference answer to ``query``: filter, price and rank every listing plainly.

    Each listing is checked constraint by constraint in Python, priced with
    :func:`~cid.query.price_demand` and ranked with :func:`~cid.query.rank`;
    then the page after ``query.cursor`` of ``query.limit`` results is cut.

    Raises:
        DemandRejectedError: the matching offers are priced in several currencies
            and the query names none ([REQ-QRY-064]).
        SchemaError: a cursor that is not one of this query's (field ``cursor``).
    """
    after = _decode_cursor(query)
    entries = _naive_ranked(listings, query, now=now, latency=latency)
    if after is not None:
        bound = _comparable(after)
        entries = [e for e in entries if _comparable(e[0]) > bound]
    page = entries[: query.limit]
    next_cursor = None
    if len(page) == query.limit and len(entries) > query.limit:
        next_cursor = _encode_cursor(query, page[-1][0])
    return SearchResponse(results=[m for _, m in page], next_cursor=next_cursor)


def naive_search(
    listings: Iterable[Listing],
    query: Query,
    *,
    now: int,
    latency: LatencyModel | None = None,
) -> list[Match]:
    """The results of :func:`naive_search_page`: the reference :meth:`Matcher.search`."""
    return list(naive_search_page(listings, query, now=now, latency=latency).results)


# --- storage building blocks -----------------------------------------------------------------


class _Interner:
    """Strings to small dense integer codes (never forgotten; vocabularies are small)."""

    __slots__ = ("codes", "values")

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.values: list[str] = []

    def code(self, value: str) -> int:
        c = self.codes.get(value)
        if c is None:
            c = len(self.values)
            self.codes[value] = c
            self.values.append(value)
        return c

    def get(self, value: str) -> int:
        return self.codes.get(value, _NONE)


class _Store:
    """Named NumPy columns (1-D or 2-D) sharing one row capacity that grows by doubling.

    The *hot* columns, read together by every query, live in one structured
    array, one record per row, so that gathering a row's fields costs one cache
    line instead of one per field; ``cols`` holds views of its fields beside
    the other (cold) columns.
    """

    __slots__ = ("cap", "cols", "fills", "hot", "hot_fills")

    def __init__(self, capacity: int, hot: tuple[tuple[str, Any, Any], ...] = ()) -> None:
        self.cap = capacity
        self.cols: dict[str, npt.NDArray[Any]] = {}
        self.fills: dict[str, Any] = {}
        self.hot_fills = {name: fill for name, _, fill in hot}
        self.hot: npt.NDArray[Any] | None = None
        if hot:
            dtype = np.dtype([(name, dt) for name, dt, _ in hot], align=True)
            self.hot = self._new_hot(dtype, capacity)
            self._views()

    def _new_hot(self, dtype: np.dtype[Any], rows: int) -> npt.NDArray[Any]:
        arr = np.zeros(rows, dtype=dtype)
        for name, fill in self.hot_fills.items():
            arr[name] = fill
        return arr

    def _views(self) -> None:
        assert self.hot is not None
        for name in self.hot_fills:
            self.cols[name] = self.hot[name]

    def add(self, name: str, dtype: Any, fill: Any, width: int | None = None) -> npt.NDArray[Any]:
        shape = (self.cap,) if width is None else (self.cap, width)
        col = np.full(shape, fill, dtype=dtype)
        self.cols[name] = col
        self.fills[name] = fill
        return col

    def widen(self, name: str, width: int) -> None:
        old = self.cols[name]
        if old.shape[1] < width:
            new = np.full((self.cap, width), self.fills[name], dtype=old.dtype)
            new[:, : old.shape[1]] = old
            self.cols[name] = new

    def ensure(self, rows: int) -> None:
        if rows <= self.cap:
            return
        cap = self.cap
        while cap < rows:
            cap *= 2
        for name, fill in self.fills.items():
            old = self.cols[name]
            new = np.full((cap, *old.shape[1:]), fill, dtype=old.dtype)
            new[: self.cap] = old
            self.cols[name] = new
        if self.hot is not None:
            hot = self._new_hot(self.hot.dtype, cap)
            hot[: self.cap] = self.hot
            self.hot = hot
            self._views()
        self.cap = cap

    def __getitem__(self, name: str) -> npt.NDArray[Any]:
        return self.cols[name]

    def nbytes(self) -> int:
        cold = sum(int(self.cols[name].nbytes) for name in self.fills)
        return cold + (int(self.hot.nbytes) if self.hot is not None else 0)


class _Table:
    """Interned values with reference counts: equal keys share one row id."""

    __slots__ = ("free", "ids", "keys", "refs", "store")

    def __init__(self, capacity: int = 64, hot: tuple[tuple[str, Any, Any], ...] = ()) -> None:
        self.ids: dict[Any, int] = {}
        self.keys: list[Any] = []
        self.refs: list[int] = []
        self.free: list[int] = []
        self.store = _Store(capacity, hot)

    def acquire(self, key: Any, fill: Callable[[int], None]) -> int:
        i = self.ids.get(key)
        if i is None:
            if self.free:
                i = self.free.pop()
                self.keys[i] = key
            else:
                i = len(self.keys)
                self.keys.append(key)
                self.refs.append(0)
                self.store.ensure(i + 1)
            self.ids[key] = i
            fill(i)
        self.refs[i] += 1
        return i

    def release(self, i: int) -> bool:
        """Drop one reference; whether the row was freed."""
        self.refs[i] -= 1
        if self.refs[i]:
            return False
        del self.ids[self.keys[i]]
        self.keys[i] = None
        self.free.append(i)
        return True

    def __len__(self) -> int:
        return len(self.ids)


class _Postings:
    """Per-value slot lists of one single-valued attribute, with O(1) add and remove."""

    __slots__ = ("lists", "pos", "sizes")

    def __init__(self) -> None:
        self.lists: dict[int, I32] = {}
        self.sizes: dict[int, int] = {}
        self.pos: I32 = np.full(16, _NONE, dtype=np.int32)

    def ensure(self, capacity: int) -> None:
        if len(self.pos) < capacity:
            pos = np.full(capacity, _NONE, dtype=np.int32)
            pos[: len(self.pos)] = self.pos
            self.pos = pos

    def add(self, key: int, slot: int) -> None:
        if key < 0:
            return
        arr = self.lists.get(key)
        n = self.sizes.get(key, 0)
        if arr is None or n == len(arr):
            bigger = np.empty(max(4, 2 * n), dtype=np.int32)
            if arr is not None:
                bigger[:n] = arr[:n]
            self.lists[key] = arr = bigger
        arr[n] = slot
        self.pos[slot] = n
        self.sizes[key] = n + 1

    def remove(self, key: int, slot: int) -> None:
        if key < 0:
            return
        arr = self.lists[key]
        n = self.sizes[key] - 1
        i = int(self.pos[slot])
        last = int(arr[n])
        arr[i] = last
        self.pos[last] = i
        self.pos[slot] = _NONE
        if n:
            self.sizes[key] = n
        else:
            del self.sizes[key]
            del self.lists[key]

    def size(self, key: int) -> int:
        return self.sizes.get(key, 0)

    def slots(self, key: int) -> I32:
        arr = self.lists.get(key)
        return arr[: self.sizes[key]] if arr is not None else np.empty(0, dtype=np.int32)

    def union(self, keys: Iterable[int]) -> I64:
        parts = [self.slots(k) for k in keys if k in self.sizes]
        return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, dtype=np.int64)

    def nbytes(self) -> int:
        return int(self.pos.nbytes + sum(a.nbytes for a in self.lists.values()))


class _Ladder:
    """A bucketed order per stream: each slot sits in one bucket ``(stream, b)``.

    A stream is a unit (times a sub-key, the minimum-term class for cost
    ladders), so a query walks only the streams of the units it accepts.
    Buckets hold unsorted slot arrays; moving a slot is a swap-remove plus an
    append, O(1); each stream keeps the sorted list of its non-empty buckets.
    """

    __slots__ = ("buckets", "key", "nb", "streams")

    def __init__(self, nb: int) -> None:
        self.nb = nb
        self.key: I64 = np.full(16, _NONE, dtype=np.int64)  # slot -> its bucket key
        self.buckets = _Postings()  # bucket key ``stream × nb + b`` -> its slots
        self.streams: dict[int, list[int]] = {}  # stream -> its non-empty b, ascending

    def ensure(self, capacity: int) -> None:
        if len(self.key) < capacity:
            key = np.full(capacity, _NONE, dtype=np.int64)
            key[: len(self.key)] = self.key
            self.key = key
        self.buckets.ensure(capacity)

    def place(self, slot: int, stream: int, b: int) -> None:
        """Put ``slot`` in bucket ``b`` of ``stream`` (moving it if it is elsewhere)."""
        k = stream * self.nb + b
        if int(self.key[slot]) == k:
            return
        self.take(slot)
        if k not in self.buckets.sizes:
            insort(self.streams.setdefault(stream, []), b)
        self.buckets.add(k, slot)
        self.key[slot] = k

    def take(self, slot: int) -> None:
        k = int(self.key[slot])
        if k < 0:
            return
        self.buckets.remove(k, slot)
        self.key[slot] = _NONE
        if k in self.buckets.sizes:
            return
        stream, b = divmod(k, self.nb)
        lst = self.streams[stream]
        del lst[bisect_left(lst, b)]
        if not lst:
            del self.streams[stream]

    def slots(self, stream: int, b: int) -> I32:
        return self.buckets.slots(stream * self.nb + b)

    def size(self, stream: int, b: int) -> int:
        return self.buckets.sizes[stream * self.nb + b]

    def nbytes(self) -> int:
        return int(
            self.key.nbytes
            + self.buckets.pos.nbytes
            + sum(a.nbytes + 120 for a in self.buckets.lists.values())
            + sum(8 * len(v) + 64 for v in self.streams.values())
        )


def _cost_bucket(kappa: float) -> int:
    if not kappa < math.inf:
        return _COST_NB - 1
    if kappa < 2.0**_LOG_LO:
        return 0
    b = 1 + int((math.log2(kappa) - _LOG_LO) * _OCTAVE_STEPS)
    return min(b, _COST_NB - 2)


_COST_EDGES: Final = np.array(
    [0.0]
    + [2.0 ** ((b - 1) / _OCTAVE_STEPS + _LOG_LO) for b in range(1, _COST_NB - 1)]
    + [math.inf]
)
_MINTERM_CLASSES: Final = len(_MINTERM_LIMITS) + 1
_COST_EDGE_LIST: Final[list[float]] = _COST_EDGES.tolist()


def _minterm_class(minterm: int) -> int:
    for j, limit in enumerate(_MINTERM_LIMITS):
        if minterm <= limit:
            return j
    return len(_MINTERM_LIMITS)


def _renew_bucket(share: int) -> int:
    return _RENEW_NB - 1 if share < 0 else share * 1024 // _SHARE_SCALE


def _avail_bucket(free: int) -> int:
    if free <= 0:
        return 0
    bl = free.bit_length()
    frac = (free << 3) >> (bl - 1)  # 8..15
    return min(1 + (bl - 1) * 8 + (frac - 8), _AVAIL_NB - 1)


def _name_sort_key(name: Identifier) -> tuple[str, ...]:
    """The canonical order of names ([REQ-ID-022]): reversed A-labels, compared as tuples."""
    text = name.to_ascii()
    return tuple(reversed(text.split("."))) if name.depth else ()


class _NameOrder:
    """Slots in canonical name order, in blocks, with an order-maintained int64 per slot.

    Blocks are small sorted arrays of slots (compared through their names); each
    slot's ``name_key`` increases with its name, so ranking breaks ties by
    comparing integers, vectorised. Keys are spread by local relabelling.
    """

    _BLOCK: Final = 512

    def __init__(self, names: list[Identifier | None]) -> None:
        self.names = names
        self.blocks: list[list[int]] = []
        self.maxes: list[tuple[str, ...]] = []  # the sort key of each block's last name
        self.last_block = 0

    def sort_key(self, slot: int) -> tuple[str, ...]:
        name = self.names[slot]
        assert name is not None
        return _name_sort_key(name)

    def insert(self, slot: int) -> tuple[int | None, int | None]:
        """Insert ``slot``; the slots of its neighbours (before, after)."""
        key = self.sort_key(slot)
        if not self.blocks:
            self.blocks.append([slot])
            self.maxes.append(key)
            self.last_block = 0
            return None, None
        bi = min(bisect_left(self.maxes, key), len(self.blocks) - 1)
        block = self.blocks[bi]
        i = bisect_left(block, key, key=self.sort_key)
        block.insert(i, slot)
        if i == len(block) - 1:
            self.maxes[bi] = key
        before = block[i - 1] if i > 0 else (self.blocks[bi - 1][-1] if bi > 0 else None)
        if i + 1 < len(block):
            after: int | None = block[i + 1]
        else:
            after = self.blocks[bi + 1][0] if bi + 1 < len(self.blocks) else None
        self.last_block = bi
        if len(block) > 2 * self._BLOCK:
            head, tail = block[: self._BLOCK], block[self._BLOCK :]
            self.blocks[bi : bi + 1] = [head, tail]
            self.maxes[bi : bi + 1] = [self.sort_key(head[-1]), self.maxes[bi]]
            self.last_block = bi if i < self._BLOCK else bi + 1
        return before, after

    def remove(self, slot: int) -> None:
        key = self.sort_key(slot)
        bi = bisect_left(self.maxes, key)
        block = self.blocks[bi]
        i = bisect_left(block, key, key=self.sort_key)
        del block[i]
        if not block:
            del self.blocks[bi]
            del self.maxes[bi]
        elif i == len(block):
            self.maxes[bi] = self.sort_key(block[-1])

    def iter_from(self, key: tuple[str, ...] | None) -> Iterator[int]:
        """Slots in name order, from the first name >= ``key`` (all when None)."""
        bi, i = 0, 0
        if key is not None:
            bi = bisect_left(self.maxes, key)
            if bi < len(self.blocks):
                i = bisect_left(self.blocks[bi], key, key=self.sort_key)
        while bi < len(self.blocks):
            yield from self.blocks[bi][i:]
            bi, i = bi + 1, 0

    def floor(self, key: tuple[str, ...]) -> int | None:
        """The slot with the greatest name < ``key``."""
        bi = bisect_left(self.maxes, key)
        if bi < len(self.blocks):
            i = bisect_left(self.blocks[bi], key, key=self.sort_key)
            if i > 0:
                return self.blocks[bi][i - 1]
        if bi > 0:
            return self.blocks[bi - 1][-1]
        return None

    def nbytes(self) -> int:
        return sum(8 * len(b) + 56 for b in self.blocks)


# --- the matcher -----------------------------------------------------------------------------


class _Batch:
    """Candidates that met every constraint, with the figures ranking needs.

    ``cost`` is a float estimate of the exact total (within ``_REL``); RTT,
    renewable share and name key are gathered only when ranking asks for them.
    """

    __slots__ = ("_extra", "_src", "cost", "free", "sig", "slots", "units")

    def __init__(
        self,
        slots: I64,
        sig: I64,
        units: I64,
        cost: F64,
        free: I64,
        src: tuple[dict[str, npt.NDArray[Any]], I64 | None],
    ) -> None:
        self.slots, self.sig, self.units, self.cost, self.free = slots, sig, units, cost, free
        self._src = src
        self._extra: dict[str, I64] = {}

    def preset(self, rec: npt.NDArray[Any]) -> None:
        """Take the name keys and renewable shares from already gathered records."""
        self._extra["name_key"] = rec["name_key"]
        self._extra["renew"] = rec["renew"]
        if self._src[1] is not None:
            self._extra["rtt"] = self._src[1][rec["place"]]

    def _gather(self, name: str) -> I64:
        got = self._extra.get(name)
        if got is None:
            cols, place_rtt = self._src
            if name == "rtt":
                if place_rtt is None:
                    got = np.full(len(self.slots), _NONE, dtype=np.int64)
                else:
                    got = place_rtt[cols["place"][self.slots]]
            else:
                got = cols[name][self.slots]
            self._extra[name] = got
        return got

    @property
    def rtt(self) -> I64:
        """RTT to ``near.region`` per row (-1: unknown or not asked)."""
        return self._gather("rtt")

    @property
    def renew(self) -> I64:
        """Renewable share × 10**18 per row (-1: not stated)."""
        return self._gather("renew")

    @property
    def name_key(self) -> I64:
        """The order-maintained name key per row."""
        return self._gather("name_key")

    @classmethod
    def empty(cls, src: tuple[dict[str, npt.NDArray[Any]], I64 | None]) -> _Batch:
        z = np.empty(0, dtype=np.int64)
        return cls(z, z, z, np.empty(0, dtype=np.float64), z, src)

    def take(self, mask: Bool | I64) -> _Batch:
        out = _Batch(
            self.slots[mask],
            self.sig[mask],
            self.units[mask],
            self.cost[mask],
            self.free[mask],
            self._src,
        )
        out._extra = {k: v[mask] for k, v in self._extra.items()}
        return out

    @staticmethod
    def concat(parts: list[_Batch], src: tuple[dict[str, npt.NDArray[Any]], I64 | None]) -> _Batch:
        if not parts:
            return _Batch.empty(src)
        if len(parts) == 1:
            return parts[0]
        joined = [
            np.concatenate([getattr(p, f) for p in parts])
            for f in ("slots", "sig", "units", "cost", "free")
        ]
        return _Batch(joined[0], joined[1], joined[2], joined[3], joined[4], src)

    def __len__(self) -> int:
        return len(self.slots)


Predicate = Callable[[I64], Bool]
RowPredicate = Callable[[I64, npt.NDArray[Any]], Bool]  # (slots, their hot records) -> keep
_Entry = tuple[RankKeyValue, int, int, Fraction | None]  # rank key, slot, units, exact score


@dataclass(slots=True)
class _Plan:
    """A query compiled against the matcher's tables."""

    query: Query
    now: int
    empty: bool
    order: tuple[str, ...]
    want: tuple[int, ...]
    units_min: int
    duration: int
    free_min: int
    unit_ok: Bool  # per unit id
    place_ok: Bool  # per place id
    preds: list[RowPredicate]  # per slot, vectorised over gathered records
    checks: list[tuple[Predicate, Callable[[int], bool]]]  # rows to check in Python, the check
    driver: tuple[int, Callable[[], I64]]
    place_rtt: I64 | None  # per place id: RTT to near.region, -1 unknown
    n_of_unit: I64  # per unit id: units the demand needs ([REQ-QRY-060])
    attach_of_unit: npt.NDArray[np.uint8]  # per unit id: demanded resources it lacks (bits)
    driver_is_currency: bool  # the driver's rows all have the query's currency
    cursor: RankKeyValue | None
    currency: int
    memo_keys: dict[int, tuple[int, tuple[int, ...]]] = dc_field(default_factory=dict)
    """Per signature: billed seconds and the attached quantities, computed once per query."""


# one 64-byte record per slot: everything a query reads of a row
_SLOT_COLUMNS: Final = (
    ("expires", np.int64, 0),
    ("free", np.int64, 0),
    ("name_key", np.int64, 0),
    ("renew", np.int64, _NONE),
    ("sig", np.int32, _NONE),
    ("unit", np.int32, _NONE),
    ("place", np.int32, _NONE),
    ("sw", np.int32, _NONE),
    ("tags", np.int32, _NONE),
    ("currency", np.int16, _NONE),
    ("carbon", np.int16, _NONE),
    ("alive", np.bool_, False),
)


class Matcher:
    """A local catalogue of offers, indexed for :class:`~cid.query.Query` search.

    Pure and synchronous: feed it from a registry's change feed
    (:meth:`upsert`, :meth:`update_availability`, :meth:`remove`) and ask it
    :meth:`search`. Answers equal :func:`naive_search` on :meth:`listings`.
    """

    def __init__(self, capacity: int = 1024, *, walk_min: int = _WALK_MIN) -> None:
        """An empty matcher.

        Args:
            capacity: initial number of slots (grows by doubling).
            walk_min: the candidate-set size from which ordered queries walk a
                ladder instead of gathering (a tuning knob; answers never depend on it).
        """
        self._walk_min = walk_min
        self._free_slots: list[int] = []
        self._slot_of: dict[Identifier, int] = {}
        self._names: list[Identifier | None] = []
        self._offers: list[OfferBody | None] = []
        self._name_order = _NameOrder(self._names)
        self._voc = {f: _Interner() for f in _VOCABULARIES}
        self._slots = _Store(max(16, capacity), _SLOT_COLUMNS)
        self._slots.add("serial", np.int64, 0)
        self._slots.add("ns", np.int32, _NONE, _NS_DEPTH)
        # interned tables
        self._units = _Table()
        us = self._units.store
        us.add("class", np.int16, _NONE)
        us.add("arch", np.int16, _NONE)
        us.add("have", np.int64, 0, _NRES)
        us.add("vendor", np.int32, _NONE)
        us.add("model", np.int32, _NONE)
        us.add("family", np.int32, _NONE)
        us.add("acc_count", np.int64, 0)
        us.add("acc_mem", np.int64, 0)
        us.add("tflops", np.int64, _NONE, len(_PRECISIONS))
        self._unit_objs: list[Unit | None] = []
        self._places = _Table()
        ps = self._places.store
        for name in ("region", "country", "city", "circle"):
            ps.add(name, np.int32, _NONE)
        self._place_rtt: dict[int, str] = {}  # region code -> column name of measured RTTs
        self._sws = _Table()
        self._sws.store.add("bits", np.uint64, 0, 1)
        self._sw_lists: list[tuple[tuple[str, str], ...] | None] = []
        self._swver: dict[int, str] = {}  # software name code -> version id column name
        self._swver_voc: dict[int, _Interner] = {}
        self._tagsets = _Table()
        self._tagsets.store.add("bits", np.uint64, 0, 1)
        self._sigs = _Table(
            hot=(
                ("r0", np.float64, 0.0),
                ("gran", np.int64, 1),
                ("minterm", np.int64, 0),
                ("unit", np.int32, _NONE),
                ("pbits", np.uint8, 0),  # priced attachable resources, one bit each
            )
        )
        ss = self._sigs.store
        ss.add("attach", np.float64, 0.0, _NRES)
        self._sig_price: list[Price | None] = []
        self._sig_exact: dict[int, _Exact] = {}
        self._sig_memo: dict[int, dict[tuple[int, int, tuple[int, ...]], list[Any]]] = {}
        # inverted indexes
        self._postings = {f: _Postings() for f in ("unit", "place", "currency", "ns0", "ns1")}
        # ladders: cost (per unit, vCPU, MiB, accelerator), renewable, availability
        self._cost_ladder = _Ladder(_COST_NB)
        self._renew_ladder = _Ladder(_RENEW_NB)
        self._avail_ladder = _Ladder(_AVAIL_NB)
        self._ensure(self._slots.cap)
        self._currencies: dict[int, int] = {}

    # --- catalogue maintenance ------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, name: object) -> bool:
        return name in self._slot_of

    def _ensure(self, cap: int) -> None:
        for p in self._postings.values():
            p.ensure(cap)
        for ladder in (self._cost_ladder, self._renew_ladder, self._avail_ladder):
            ladder.ensure(cap)

    def _unit_id(self, klass: str, unit: Unit) -> int:
        acc = unit.accelerators
        acc_key = (
            None
            if acc is None
            else (
                acc.vendor,
                acc.model,
                acc.family,
                acc.count,
                acc.memory_gib,
                tuple(sorted((str(p), v) for p, v in acc.tflops.items())),
            )
        )
        hpc_fp64 = unit.hpc.fp64_tflops if unit.hpc is not None else None
        key = (klass, unit.cpu.arch if unit.cpu else None, _unit_have(unit), acc_key, hpc_fp64)

        def fill(i: int) -> None:
            st = self._units.store
            voc = self._voc
            st["class"][i] = voc["class"].code(klass)
            st["arch"][i] = voc["arch"].code(str(unit.cpu.arch)) if unit.cpu else _NONE
            st["have"][i] = _unit_have(unit)
            st["vendor"][i] = voc["vendor"].code(acc.vendor) if acc else _NONE
            st["model"][i] = voc["model"].code(acc.model) if acc else _NONE
            st["family"][i] = voc["family"].code(acc.family) if acc and acc.family else _NONE
            st["acc_count"][i] = acc.count if acc else 0
            st["acc_mem"][i] = acc.memory_gib if acc else 0
            row = st["tflops"][i]
            row[:] = _NONE
            for j, precision in enumerate(_PRECISIONS):
                v = unit_tflops(unit, precision)
                if v is not None:
                    scaled = v * _TFLOPS_SCALE
                    # -2: not a whole number of 1e-6 TFLOPS; decided exactly in Python
                    exact = scaled == scaled.to_integral_value() and scaled < 2**62
                    row[j] = int(scaled) if exact else -2
            while len(self._unit_objs) <= i:
                self._unit_objs.append(None)
            self._unit_objs[i] = unit

        return self._units.acquire(key, fill)

    def _place_id(self, offer: OfferBody) -> int:
        loc, net = offer.location, offer.network
        key = (
            loc.country,
            loc.region,
            loc.city,
            net.latency_circle,
            tuple(sorted(net.rtt_us.items())),
        )

        def fill(i: int) -> None:
            st = self._places.store
            voc = self._voc
            st["region"][i] = voc["region"].code(loc.region)
            st["country"][i] = voc["country"].code(loc.country)
            st["city"][i] = voc["city"].code(loc.city) if loc.city else _NONE
            st["circle"][i] = (
                voc["circle"].code(net.latency_circle) if net.latency_circle else _NONE
            )
            for col in self._place_rtt.values():
                st[col][i] = _NONE
            for region, rtt in net.rtt_us.items():
                code = voc["region"].code(region)
                if code not in self._place_rtt:
                    self._place_rtt[code] = f"rtt{code}"
                    st.add(f"rtt{code}", np.int64, _NONE)
                st[self._place_rtt[code]][i] = rtt

        return self._places.acquire(key, fill)

    def _sw_id(self, offer: OfferBody) -> int:
        key = tuple((s.name, s.version) for s in offer.software)

        def fill(i: int) -> None:
            st = self._sws.store
            codes = [self._voc["software"].code(n) for n, _ in key]
            if codes:
                st.widen("bits", max(codes) // 64 + 1)
            bits = st["bits"]
            bits[i] = 0
            for c in codes:
                bits[i, c // 64] |= np.uint64(1 << (c % 64))
            for col in self._swver.values():
                st[col][i] = _NONE
            for (_, version), c in zip(key, codes, strict=True):
                if c not in self._swver:
                    self._swver[c] = f"ver{c}"
                    st.add(f"ver{c}", np.int32, _NONE)
                    self._swver_voc[c] = _Interner()
                versions = st[self._swver[c]]
                vid = self._swver_voc[c].code(version)
                # -2: the stack is listed twice; decided exactly in Python
                versions[i] = -2 if versions[i] != _NONE else vid
            while len(self._sw_lists) <= i:
                self._sw_lists.append(None)
            self._sw_lists[i] = key

        return self._sws.acquire(key, fill)

    def _tags_id(self, offer: OfferBody) -> int:
        key = tuple(offer.compliance)

        def fill(i: int) -> None:
            st = self._tagsets.store
            codes = [self._voc["tag"].code(t) for t in key]
            if codes:
                st.widen("bits", max(codes) // 64 + 1)
            bits = st["bits"]
            bits[i] = 0
            for c in codes:
                bits[i, c // 64] |= np.uint64(1 << (c % 64))

        return self._tagsets.acquire(key, fill)

    def _sig_id(self, price: Price, unit_id: int) -> int:
        items = tuple((str(i.resource), i.amount, str(i.per)) for i in price.items)
        key = (unit_id, price.currency, price.billing_granularity_s, price.minimum_term_s, items)

        def fill(i: int) -> None:
            st = self._sigs.store
            have = tuple(int(h) for h in self._units.store["have"][unit_id])
            r0 = 0.0
            attach = [0.0] * _NRES
            priced = [h > 0 for h in have]  # a resource the unit has is always served
            for resource, amount, per in items:
                rate = float(amount) / PERIOD_SECONDS[per]
                if resource == PricedResource.UNIT:
                    r0 += rate
                    continue
                j = _INDEX[resource]
                if have[j] > 0:
                    r0 += rate * have[j] * _GIB_OF[j]
                else:
                    priced[j] = True
                    attach[j] = rate / _MIB_PER_GIB if j == 1 else rate
            st["unit"][i] = unit_id
            st["r0"][i] = r0
            st["attach"][i] = attach
            st["pbits"][i] = sum(1 << j for j in range(_NRES) if priced[j] and have[j] == 0)
            st["gran"][i] = price.billing_granularity_s
            st["minterm"][i] = price.minimum_term_s
            while len(self._sig_price) <= i:
                self._sig_price.append(None)
            self._sig_price[i] = price

        sid = self._sigs.acquire(key, fill)
        self._units.refs[unit_id] += 1  # the signature holds its unit
        return sid

    def _release_sig(self, sid: int) -> None:
        unit_id = int(self._sigs.store["unit"][sid])
        if self._sigs.release(sid):
            self._sig_price[sid] = None
            self._sig_exact.pop(sid, None)
            self._sig_memo.pop(sid, None)
        self._release(self._units, unit_id)

    def _release(self, table: _Table, i: int) -> None:
        if i >= 0 and table.release(i) and table is self._units:
            self._unit_objs[i] = None

    def upsert(self, name: Identifier, serial: int, offer: OfferBody, *, expires: int) -> None:
        """Add an offer, or replace the offer held under ``name``.

        Only what changed is re-indexed: a new price moves the offer in the cost
        ladders, new availability in the availability ladder, and so on.
        """
        slot = self._slot_of.get(name)
        old = self._offers[slot] if slot is not None else None
        if slot is None:
            slot = self._new_slot(name)
        self._offers[slot] = offer
        c = self._slots
        c["serial"][slot] = serial
        c["expires"][slot] = expires
        unit_changed = old is None or (
            (old.unit is not offer.unit or old.compute_class != offer.compute_class)
            and (old.unit != offer.unit or old.compute_class != offer.compute_class)
        )
        if unit_changed:
            uid = self._unit_id(str(offer.compute_class), offer.unit)
            self._move("unit", slot, uid)
            if old is not None:  # the unit is the stream of every ladder
                self._renew_ladder.place(slot, uid, _renew_bucket(int(c["renew"][slot])))
                self._avail_ladder.place(slot, uid, _avail_bucket(int(c["free"][slot])))
        if unit_changed or (
            old is not None and old.price is not offer.price and old.price != offer.price
        ):
            uid = int(c["unit"][slot])
            sid = self._sig_id(offer.price, uid)
            if old is not None:
                self._release_sig(int(c["sig"][slot]))
            c["sig"][slot] = sid
            self._place_cost(slot, sid)
            cur = self._voc["currency"].code(offer.price.currency)
            old_cur = int(c["currency"][slot])
            if cur != old_cur:
                self._post("currency", slot, old_cur, cur)
                c["currency"][slot] = cur
                if old_cur >= 0:
                    self._currencies[old_cur] -= 1
                self._currencies[cur] = self._currencies.get(cur, 0) + 1
        self._set_free(slot, offer.availability.units_free)
        if old is None or (old.energy is not offer.energy and old.energy != offer.energy):
            e = offer.energy
            share = _NONE if e is None else int(e.renewable_share * _SHARE_SCALE)
            c["renew"][slot] = share
            c["carbon"][slot] = (
                _NONE if e is None or e.carbon_g_per_kwh is None else e.carbon_g_per_kwh
            )
            self._renew_ladder.place(slot, int(c["unit"][slot]), _renew_bucket(share))
        if old is None or (
            (old.location is not offer.location or old.network is not offer.network)
            and (old.location != offer.location or old.network != offer.network)
        ):
            self._move("place", slot, self._place_id(offer))
        if old is None or old.software != offer.software:
            self._swap(self._sws, "sw", slot, self._sw_id(offer))
        if old is None or old.compliance != offer.compliance:
            self._swap(self._tagsets, "tags", slot, self._tags_id(offer))

    def _move(self, field: str, slot: int, new: int) -> None:
        """Point ``slot`` at row ``new`` of an interned table, keeping postings current."""
        col = self._slots[field]
        old = int(col[slot])
        if old == new:
            self._release(self._units if field == "unit" else self._places, new)
            return
        self._post(field, slot, old, new)
        col[slot] = new
        self._release(self._units if field == "unit" else self._places, old)

    def _swap(self, table: _Table, field: str, slot: int, new: int) -> None:
        col = self._slots[field]
        old = int(col[slot])
        col[slot] = new
        self._release(table, old)

    def _post(self, field: str, slot: int, old: int, new: int) -> None:
        p = self._postings[field]
        p.remove(old, slot)
        p.add(new, slot)

    def _new_slot(self, name: Identifier) -> int:
        if self._free_slots:
            slot = self._free_slots.pop()
        else:
            slot = len(self._names)
            self._names.append(None)
            self._offers.append(None)
            if slot >= self._slots.cap:
                self._slots.ensure(slot + 1)
                self._ensure(self._slots.cap)
        self._slot_of[name] = slot
        self._names[slot] = name
        self._slots["alive"][slot] = True
        self._insert_name(slot)
        labels = name.to_ascii().split(".") if name.depth else []
        ns = self._slots["ns"]
        for depth in range(_NS_DEPTH):
            code = (
                self._voc["ns"].code(".".join(labels[-depth - 1 :]))
                if depth < len(labels)
                else _NONE
            )
            ns[slot, depth] = code
            if depth < 2:
                self._postings[f"ns{depth}"].add(code, slot)
        return slot

    def _insert_name(self, slot: int) -> None:
        before, after = self._name_order.insert(slot)
        keys = self._slots["name_key"]
        lo = int(keys[before]) if before is not None else None
        hi = int(keys[after]) if after is not None else None
        if lo is None and hi is None:
            key = 0
        elif hi is None:
            assert lo is not None
            key = lo + _NAME_SPACING
        elif lo is None:
            key = hi - _NAME_SPACING
        else:
            key = (lo + hi) // 2
        if (lo is not None and key <= lo) or (hi is not None and key >= hi) or abs(key) > 2**61:
            self._relabel_names(self._name_order.last_block)
        else:
            keys[slot] = key

    def _relabel_names(self, around: int) -> None:
        """Spread the keys of the blocks around ``around`` evenly (a gap was exhausted).

        The window doubles until its key range leaves a gap of at least 2**20
        per name, so relabelling stays local and amortised cheap.
        """
        order = self._name_order
        keys = self._slots["name_key"]
        limit = 2**61
        width = 0
        while True:
            b0 = max(0, around - width)
            b1 = min(len(order.blocks) - 1, around + width)
            lo = int(keys[order.blocks[b0 - 1][-1]]) if b0 > 0 else -limit
            hi = int(keys[order.blocks[b1 + 1][0]]) if b1 + 1 < len(order.blocks) else limit
            slots = [s for block in order.blocks[b0 : b1 + 1] for s in block]
            gap = (hi - lo) // (len(slots) + 1)
            if gap >= 2**20 or (b0 == 0 and b1 == len(order.blocks) - 1):
                break
            width = 2 * width + 1
        keys[np.array(slots, dtype=np.int64)] = lo + gap * np.arange(
            1, len(slots) + 1, dtype=np.int64
        )

    def _place_cost(self, slot: int, sid: int) -> None:
        st = self._sigs.store
        uid = int(st["unit"][sid])
        stream = uid * _MINTERM_CLASSES + _minterm_class(int(st["minterm"][sid]))
        self._cost_ladder.place(slot, stream, _cost_bucket(float(st["r0"][sid])))

    def _set_free(self, slot: int, free: int) -> None:
        col = self._slots["free"]
        if int(col[slot]) != free or self._avail_ladder.key[slot] < 0:
            col[slot] = free
            self._avail_ladder.place(slot, int(self._slots["unit"][slot]), _avail_bucket(free))

    def update_availability(
        self, name: Identifier, units_free: int, expires: int, *, serial: int | None = None
    ) -> None:
        """Apply a refresh ([REQ-REC-060]): new free units and expiry, nothing else.

        Raises:
            KeyError: no offer is held under ``name``.
            SchemaError: ``units_free`` is negative or above ``units_total``.
        """
        slot = self._slot_of[name]
        offer = self._offers[slot]
        assert offer is not None
        if not 0 <= units_free <= offer.availability.units_total:
            raise SchemaError(
                "units_free must be within 0..units_total",
                field="units_free",
                detail={"rule": "free_le_total"},
            )
        self._slots["expires"][slot] = expires
        if serial is not None:
            self._slots["serial"][slot] = serial
        self._set_free(slot, units_free)

    def remove(self, name: Identifier) -> bool:
        """Forget the offer held under ``name``; whether there was one."""
        slot = self._slot_of.pop(name, None)
        if slot is None:
            return False
        c = self._slots
        for field in ("unit", "place", "currency"):
            self._postings[field].remove(int(c[field][slot]), slot)
        for depth in range(2):
            self._postings[f"ns{depth}"].remove(int(c["ns"][slot, depth]), slot)
        for ladder in (self._cost_ladder, self._renew_ladder, self._avail_ladder):
            ladder.take(slot)
        self._release_sig(int(c["sig"][slot]))
        self._release(self._units, int(c["unit"][slot]))
        self._release(self._places, int(c["place"][slot]))
        self._release(self._sws, int(c["sw"][slot]))
        self._release(self._tagsets, int(c["tags"][slot]))
        self._currencies[int(c["currency"][slot])] -= 1
        self._name_order.remove(slot)
        for col, _, fill in _SLOT_COLUMNS:
            c[col][slot] = fill
        c["serial"][slot] = 0
        self._names[slot] = None
        self._offers[slot] = None
        self._free_slots.append(slot)
        return True

    def prune(self, now: int) -> int:
        """Remove every offer that has expired by ``now``; how many were removed."""
        n = len(self._names)
        c = self._slots
        dead = np.flatnonzero(c["alive"][:n] & (c["expires"][:n] <= now))
        for slot in dead.tolist():
            name = self._names[slot]
            assert name is not None
            self.remove(name)
        return len(dead)

    def listing(self, name: Identifier) -> Listing:
        """What the matcher holds under ``name``, availability refreshes applied."""
        slot = self._slot_of[name]
        offer = self._offers[slot]
        assert offer is not None
        free = int(self._slots["free"][slot])
        if free != offer.availability.units_free:
            offer = offer.model_copy(
                update={"availability": offer.availability.model_copy(update={"units_free": free})}
            )
        return Listing(
            name, int(self._slots["serial"][slot]), offer, int(self._slots["expires"][slot])
        )

    def listings(self) -> list[Listing]:
        """Every offer held, in slot order (the input :func:`naive_search` compares against)."""
        return [self.listing(n) for n in self._names if n is not None]

    def stats(self) -> MatcherStats:
        """Counts and the bytes held by the index structures (excluding the offer objects)."""
        nbytes = self._slots.nbytes()
        for table in (self._units, self._places, self._sws, self._tagsets, self._sigs):
            nbytes += table.store.nbytes()
        nbytes += sum(p.nbytes() for p in self._postings.values())
        nbytes += sum(
            ladder.nbytes()
            for ladder in (self._cost_ladder, self._renew_ladder, self._avail_ladder)
        )
        nbytes += self._name_order.nbytes()
        return MatcherStats(
            offers=len(self._slot_of),
            signatures=len(self._sigs),
            capacity=self._slots.cap,
            index_bytes=nbytes,
        )

    # --- query compilation ------------------------------------------------------------------

    def _plan(self, query: Query, now: int, latency: LatencyModel | None) -> _Plan:
        """Decide every per-unit and per-place constraint once, and pick the candidate source."""
        q = query
        voc = self._voc
        c = self._slots
        empty = False
        preds: list[RowPredicate] = []
        checks: list[tuple[Predicate, Callable[[int], bool]]] = []
        drivers: list[tuple[int, Callable[[], I64]]] = []

        # per unit: class, architecture, accelerators, TFLOPS, per-unit minimums
        us = self._units.store
        nu = len(self._units.keys)
        unit_ok = np.zeros(nu, dtype=np.bool_)
        unit_ok[list(self._units.ids.values())] = True
        ps = self._places.store
        npl = len(self._places.keys)

        def among(col: npt.NDArray[Any], field: str, values: Iterable[str]) -> Bool:
            """Which rows of a table column hold one of ``values`` (a code lookup table)."""
            lut = np.zeros(len(voc[field].values) + 1, dtype=np.bool_)  # code -1 hits the end
            for v in values:
                code = voc[field].get(v)
                if code != _NONE:
                    lut[code] = True
            hit: Bool = lut[col]
            return hit

        if q.compute_class is not None:  # REQ-QRY-023
            unit_ok &= among(us["class"][:nu], "class", [str(q.compute_class)])
        if q.arch is not None:  # REQ-QRY-023
            unit_ok &= among(us["arch"][:nu], "arch", [str(a) for a in q.arch])
        acc = q.accelerator
        if acc is not None:  # REQ-QRY-025
            unit_ok &= us["acc_count"][:nu] >= max(1, acc.count_min or 1)
            if acc.vendor is not None:
                unit_ok &= among(us["vendor"][:nu], "vendor", [acc.vendor])
            if acc.model is not None:
                unit_ok &= among(us["model"][:nu], "model", acc.model)
            if acc.family is not None:
                unit_ok &= among(us["family"][:nu], "family", [acc.family])
            if acc.memory_gib_min is not None:
                unit_ok &= us["acc_mem"][:nu] >= acc.memory_gib_min
        for r, floor in ((0, q.vcpu_min), (1, q.memory_mib_min), (2, q.storage_gib_min)):
            if floor is not None:  # REQ-QRY-028
                unit_ok &= us["have"][:nu, r] >= floor
        for precision, bound in (q.tflops_min or {}).items():
            j = _PRECISIONS.index(str(precision))
            col = us["tflops"][:nu, j]
            need = math.ceil(Fraction(bound) * _TFLOPS_SCALE)
            inexact = np.flatnonzero(unit_ok & (col == -2))
            unit_ok &= col >= need
            for u in inexact.tolist():  # REQ-QRY-026: exact unit throughput
                obj = self._unit_objs[u]
                assert obj is not None
                figure = unit_tflops(obj, str(precision))
                unit_ok[u] = figure is not None and figure >= bound
        # REQ-QRY-060, REQ-QRY-061: units needed per unit shape; what it must attach
        want = _demand_vector(q)
        have = us["have"][:nu]
        n_of_unit = np.full(nu, max(1, q.effective_demand.units), dtype=np.int64)
        attach_of_unit = np.zeros(nu, dtype=np.uint8)
        for r, w in enumerate(want):
            if w:
                has = have[:, r] > 0
                n_of_unit = np.maximum(
                    n_of_unit, np.where(has, -(-w // np.maximum(have[:, r], 1)), 0)
                )
                attach_of_unit |= np.where(has, 0, 1 << r).astype(np.uint8)
        unit_ok &= n_of_unit <= MAX_UNITS
        units_wanted = np.flatnonzero(unit_ok)
        if len(units_wanted) < len(self._units):
            p = self._postings["unit"]
            size = sum(p.size(u) for u in units_wanted.tolist())
            drivers.append((size, lambda: p.union(units_wanted.tolist())))
            if not len(units_wanted):
                empty = True

        # per place: region, country, city, latency circle, RTT bound
        place_ok = np.zeros(npl, dtype=np.bool_)
        place_ok[list(self._places.ids.values())] = True
        if q.region_in is not None:  # REQ-QRY-031
            place_ok &= among(ps["region"][:npl], "region", q.region_in)
        if q.region_not_in is not None:
            place_ok &= ~among(ps["region"][:npl], "region", q.region_not_in)
        if q.country_in is not None:
            place_ok &= among(ps["country"][:npl], "country", q.country_in)
        if q.city_in is not None:
            place_ok &= among(ps["city"][:npl], "city", q.city_in)
        place_rtt: I64 | None = None
        near = q.near
        if near is not None and near.latency_circle is not None:  # REQ-QRY-030
            circle = near.latency_circle
            declared = among(ps["circle"][:npl], "circle", [circle])
            model_circle = latency.circle(circle) if latency is not None else None
            members = model_circle.regions if model_circle else []
            place_ok &= declared | among(ps["region"][:npl], "region", members)
        if near is not None and near.region is not None:  # REQ-QRY-030: one model per query
            place_rtt = self._rtt_to(near.region, latency, npl)
            if near.max_rtt_us is not None:
                place_ok &= (place_rtt >= 0) & (place_rtt <= near.max_rtt_us)
        places_wanted = np.flatnonzero(place_ok)
        if len(places_wanted) < len(self._places):
            p2 = self._postings["place"]
            size = sum(p2.size(x) for x in places_wanted.tolist())
            drivers.append((size, lambda: p2.union(places_wanted.tolist())))
            if not len(places_wanted):
                empty = True

        # per software list and per compliance tag set
        if q.software is not None:  # REQ-QRY-034
            sw_ok = self._software_ok(q)
            if sw_ok is None:
                empty = True
            else:
                preds.append(lambda s, rec: sw_ok[rec["sw"]])
        if q.compliance is not None:  # REQ-QRY-035
            tags_ok = self._bits_ok(self._tagsets, "tag", q.compliance)
            if tags_ok is None:
                empty = True
            else:
                preds.append(lambda s, rec: tags_ok[rec["tags"]])

        # per slot
        currency = _NONE
        currency_driver: tuple[int, Callable[[], I64]] | None = None
        if q.currency is not None:  # REQ-QRY-041
            currency = voc["currency"].get(q.currency)
            if currency == _NONE:
                empty = True
            p3 = self._postings["currency"]
            currency_driver = (p3.size(currency), lambda: p3.slots(currency).astype(np.int64))
            drivers.append(currency_driver)
        if q.within is not None and q.within.depth > 0:  # REQ-QRY-022
            labels = q.within.depth
            top = min(labels, _NS_DEPTH)
            code = voc["ns"].get(".".join(q.within.to_ascii().split(".")[-top:]))
            if code == _NONE:
                empty = True
            ns = c["ns"]
            preds.append(lambda s, rec: ns[s, top - 1] == code)
            if top <= 2:
                p4 = self._postings[f"ns{top - 1}"]
                drivers.append((p4.size(code), lambda: p4.slots(code).astype(np.int64)))
            if labels > _NS_DEPTH:
                within, names = q.within, self._names
                checks.append(
                    (
                        lambda s: np.ones(len(s), dtype=np.bool_),
                        lambda slot: names[slot].is_within(within),  # type: ignore[union-attr]
                    )
                )
        if q.renewable_share_min is not None:  # REQ-QRY-033
            rmin = math.ceil(Fraction(q.renewable_share_min) * _SHARE_SCALE)
            preds.append(lambda s, rec: rec["renew"] >= rmin)
        if q.carbon_g_per_kwh_max is not None:
            cmax = q.carbon_g_per_kwh_max
            preds.append(lambda s, rec: (rec["carbon"] >= 0) & (rec["carbon"] <= cmax))
        demand = q.effective_demand
        if drivers:
            driver = min(drivers, key=lambda d: d[0])
        else:
            n = len(self._names)
            alive = c["alive"]
            driver = (len(self._slot_of), lambda: np.flatnonzero(alive[:n]).astype(np.int64))
        return _Plan(
            query=q,
            now=now,
            empty=empty,
            order=tuple(str(k) for k in q.order),
            want=_demand_vector(q),
            units_min=max(1, demand.units),
            duration=q.effective_duration_s,
            free_min=q.units_free_min or 0,
            unit_ok=unit_ok,
            place_ok=place_ok,
            preds=preds,
            checks=checks,
            driver=driver,
            place_rtt=place_rtt,
            n_of_unit=n_of_unit,
            attach_of_unit=attach_of_unit,
            driver_is_currency=driver is currency_driver,
            cursor=_decode_cursor(q),
            currency=currency,
        )

    def _rtt_to(self, region: str, latency: LatencyModel | None, npl: int) -> I64:
        """Per place: the RTT to ``region`` by best evidence ([REQ-QRY-030]), -1 unknown."""
        ps = self._places.store
        regions = self._voc["region"].values
        by_region = np.array(
            [-1 if latency is None else _or_none(latency.region_rtt_us(r, region)) for r in regions]
            + [_NONE],
            dtype=np.int64,
        )
        modelled: I64 = by_region[ps["region"][:npl]]
        col = self._place_rtt.get(self._voc["region"].get(region))
        if col is None:
            return modelled
        measured = ps[col][:npl]
        return np.where(measured >= 0, measured, modelled)

    def _bits_ok(self, table: _Table, vocab: str, values: list[str]) -> Bool | None:
        codes = [self._voc[vocab].get(v) for v in values]
        if any(code == _NONE for code in codes):
            return None
        bits = table.store["bits"]
        ok = np.ones(len(table.keys), dtype=np.bool_)
        for code in codes:
            ok &= (bits[: len(table.keys), code // 64] & np.uint64(1 << (code % 64))) != 0
        return ok

    def _software_ok(self, q: Query) -> Bool | None:
        """Per software list: every constraint met ([REQ-QRY-034]), versions decided once each."""
        assert q.software is not None
        ok = self._bits_ok(self._sws, "software", [sc.name for sc in q.software])
        if ok is None:
            return None
        st = self._sws.store
        n = len(self._sws.keys)
        for sc in q.software:
            vrange = sc.range()
            if vrange is None:
                continue
            code = self._voc["software"].get(sc.name)
            col = st[self._swver[code]][:n]
            versions = self._swver_voc[code].values
            good = np.array(
                [i for i, v in enumerate(versions) if vrange.contains(v)], dtype=np.int64
            )
            twice = np.flatnonzero(ok & (col == -2))
            ok &= np.isin(col, good)
            for i in twice.tolist():
                listed = self._sw_lists[i]
                assert listed is not None
                ok[i] = any(n == sc.name and vrange.contains(v) for n, v in listed)
        return ok

    # --- evaluation ------------------------------------------------------------------------

    def _src(self, plan: _Plan) -> tuple[dict[str, npt.NDArray[Any]], I64 | None]:
        return self._slots.cols, plan.place_rtt

    def _evaluate(self, plan: _Plan, slots: I64, *, from_driver: bool = False) -> _Batch:
        """Apply every constraint to ``slots``; the survivors with their ranking figures.

        Index and table constraints first (expiry, unit, place, tags), then
        the demand: units needed and attachable resources per unit shape,
        free capacity, and the float cost estimate used to steer ranking.
        """
        hot = self._slots.hot
        assert hot is not None
        rec = np.take(hot, slots)  # one cache line per row (np.take: the fast path)
        keep = rec["expires"] > plan.now
        keep &= plan.unit_ok[rec["unit"]] & plan.place_ok[rec["place"]]
        if plan.currency != _NONE and not (from_driver and plan.driver_is_currency):
            keep &= rec["currency"] == plan.currency
        idx = np.flatnonzero(keep)
        s, rec = slots[idx], np.take(rec, idx)
        for pred in plan.preds:
            if len(s) == 0:
                break
            idx = np.flatnonzero(pred(s, rec))
            s, rec = s[idx], np.take(rec, idx)
        unit = rec["unit"]
        sig = rec["sig"].astype(np.int64)
        sig_hot = self._sigs.store.hot
        assert sig_hot is not None
        sigrec = np.take(sig_hot, sig)
        units = plan.n_of_unit[unit]
        free = rec["free"]
        ok = free >= np.maximum(units, plan.free_min)
        r0 = sigrec["r0"]
        gran = sigrec["gran"]
        billed = -(-np.maximum(plan.duration, sigrec["minterm"]) // gran) * gran
        rate = units * r0
        bits = plan.attach_of_unit[unit]
        some = np.flatnonzero(bits)
        if len(some):
            # REQ-QRY-061: a resource the unit lacks must be priced, and is bought by quantity
            sb = bits[some]
            ok[some] &= (sigrec["pbits"][some] & sb) == sb
            extra = np.zeros(len(some), dtype=np.float64)
            attach = self._sigs.store["attach"]
            for r, w in enumerate(plan.want):
                if w:
                    extra += np.where(sb & (1 << r), attach[sig[some], r] * float(w), 0.0)
            rate[some] += extra
        cost = billed * rate
        q = plan.query
        if q.unit_price_max is not None:
            per = PERIOD_SECONDS[q.unit_price_per or Period.HOUR]
            ok &= r0 * per <= float(q.unit_price_max) * (1 + _REL) + 1e-300
        if q.total_cost_max is not None:
            ok &= cost <= float(q.total_cost_max) * (1 + _REL) + 1e-300
        if not ok.all():
            idx = np.flatnonzero(ok)
            s, sig, units, cost, rec = s[idx], sig[idx], units[idx], cost[idx], np.take(rec, idx)
        if q.unit_price_max is not None or q.total_cost_max is not None or plan.checks:
            exact = self._exact_filters(plan, s, sig, units, cost)
            if exact is not None:
                idx = np.flatnonzero(exact)
                s, sig, units, cost = s[idx], sig[idx], units[idx], cost[idx]
                rec = np.take(rec, idx)
        batch = _Batch(s, sig, units, cost, rec["free"], self._src(plan))
        batch.preset(rec)
        return batch

    def _exact_filters(
        self, plan: _Plan, s: I64, sig: npt.NDArray[Any], units: I64, cost: F64
    ) -> Bool | None:
        """The constraints decided in Python, on the rows the columns could not decide.

        Deep namespaces, and rows whose float unit rate or total is within
        rounding distance of the bound (decided with exact rationals).
        """
        q = plan.query
        keep: Bool | None = None

        def drop(i: int) -> None:
            nonlocal keep
            if keep is None:
                keep = np.ones(len(s), dtype=np.bool_)
            keep[i] = False

        for flag, check in plan.checks:
            for i in np.flatnonzero(flag(s)).tolist():
                if not check(int(s[i])):
                    drop(i)
        st = self._sigs.store
        if q.unit_price_max is not None:
            per = PERIOD_SECONDS[q.unit_price_per or Period.HOUR]
            exact_bound = Fraction(q.unit_price_max)
            near = st["r0"][sig] * per >= float(q.unit_price_max) * (1 - _REL)
            for i in np.flatnonzero(near).tolist():
                # REQ-QRY-043: the exact list price of one unit per period
                if self._exact(int(sig[i]))[0] * per > exact_bound:
                    drop(i)
        if q.total_cost_max is not None:
            exact_bound = Fraction(q.total_cost_max)
            for i in np.flatnonzero(cost >= float(q.total_cost_max) * (1 - _REL)).tolist():
                if self._exact_cost(plan, int(sig[i]), int(units[i])) > exact_bound:
                    drop(i)
        return keep

    def _exact(self, sid: int) -> _Exact:
        """(r0, attach, items) of a signature, exactly; computed on first use.

        ``r0`` is the rate of one unit per second, ``attach`` the rate of each
        attachable resource per demanded unit (memory per MiB) per second, and
        ``items`` per price item (resource, amount per second, per-unit amount
        or None when attached, demand member).
        """
        done = self._sig_exact.get(sid)
        if done is not None:
            return done
        price = self._sig_price[sid]
        unit = self._unit_objs[int(self._sigs.store["unit"][sid])]
        assert price is not None and unit is not None
        r0 = Fraction(0)
        attach = [Fraction(0)] * _NRES
        items: list[tuple[str, Fraction, Fraction | None, str]] = []
        for item in price.items:
            rate = Fraction(item.amount) / PERIOD_SECONDS[item.per]
            amount = per_unit_amount(item.resource, unit)
            resource = str(item.resource)
            if resource == PricedResource.UNIT or amount > 0:
                r0 += rate * amount
                items.append((resource, rate, amount, _MEMBER.get(resource, "")))
            else:
                j = _INDEX[resource]
                attach[j] = rate / _MIB_PER_GIB if j == 1 else rate
                items.append((resource, rate, None, _MEMBER[resource]))
        done = (r0, tuple(attach), tuple(items))
        self._sig_exact[sid] = done
        return done

    def _billed(self, plan: _Plan, sid: int) -> int:
        st = self._sigs.store
        step = int(st["gran"][sid])
        return -(-max(plan.duration, int(st["minterm"][sid])) // step) * step

    def _memo(self, plan: _Plan, sid: int, units: int) -> tuple[int, list[Any]]:
        """The per-signature memo of this demand: billed seconds, [exact total, breakdown]."""
        known = plan.memo_keys.get(sid)
        if known is None:
            billed = self._billed(plan, sid)
            have = self._units.store["have"][int(self._sigs.store["unit"][sid])].tolist()
            attached = tuple(w if h == 0 else 0 for w, h in zip(plan.want, have, strict=True))
            known = plan.memo_keys[sid] = (billed, attached)
        billed, attached = known
        key = (units, billed, attached)
        memo = self._sig_memo.get(sid)
        if memo is None:
            memo = self._sig_memo[sid] = {}
        entry = memo.get(key)
        if entry is None:
            r0, attach, _ = self._exact(sid)
            total = units * r0
            for r in range(_NRES):
                if attached[r]:
                    total += attach[r] * attached[r]
            entry = [total * billed, None]
            if len(memo) >= 32:
                memo.clear()
            memo[key] = entry
        return billed, entry

    def _exact_cost(self, plan: _Plan, sid: int, units: int) -> Fraction:
        """The exact total ([REQ-CAP-023]) of the plan's demand under signature ``sid``."""
        total: Fraction = self._memo(plan, sid, units)[1][0]
        return total

    def _breakdown(self, plan: _Plan, sid: int, units: int) -> CostBreakdown:
        """The itemised cost, exactly as :func:`~cid.query.price_demand` writes it.

        Built once per signature and demand (breakdowns are immutable), item by
        item in price order, zero quantities left out ([REQ-QRY-065]), each cost
        and the total written by :func:`~cid.query.round_cost` ([REQ-QRY-063]).
        """
        billed, entry = self._memo(plan, sid, units)
        if entry[1] is not None:
            done: CostBreakdown = entry[1]
            return done
        price = self._sig_price[sid]
        assert price is not None
        demand = plan.query.effective_demand
        items: list[CostItem] = []
        for (resource, rate, per_unit, member), pi in zip(
            self._exact(sid)[2], price.items, strict=True
        ):
            if per_unit is not None:
                quantity = units * per_unit
            else:
                want = Fraction(getattr(demand, member))
                quantity = want / _MIB_PER_GIB if resource == PricedResource.MEMORY_GIB else want
            if quantity == 0:
                continue  # REQ-QRY-065: zero-quantity items are left out
            q = (
                Decimal(quantity.numerator)
                if quantity.denominator == 1
                else _quantity_decimal(quantity)
            )
            items.append(
                CostItem.model_construct(
                    resource=pi.resource,
                    quantity=q,
                    amount=pi.amount,
                    per=pi.per,
                    billed_s=billed,
                    cost=round_cost(rate * quantity * billed),
                )
            )
        breakdown = CostBreakdown.model_construct(
            currency=price.currency, units=units, items=items, total=round_cost(entry[0])
        )
        entry[1] = breakdown
        return breakdown

    # --- search ----------------------------------------------------------------------------

    def search(
        self,
        query: Query,
        *,
        now: int,
        latency: LatencyModel | None = None,
        budget: int | None = None,
    ) -> list[Match]:
        """The top ``query.limit`` offers for ``query``, after ``query.cursor``.

        Args:
            query: the constraints and ranking ([REQ-QRY-020]..).
            now: the current time (POSIX seconds); expired offers never match.
            latency: the latency model for ``near`` (``None``: the offers' own
                measurements only).
            budget: refuse queries whose candidate set, after index narrowing,
                is larger than this.

        Raises:
            QueryTooExpensiveError: the candidate set exceeds ``budget``.
            DemandRejectedError: matches in several currencies and no ``currency``
                in the query ([REQ-QRY-064]).
            SchemaError: a cursor that is not one of this query's.
        """
        results, _ = self._search(query, now, latency, budget, cursor=False)
        return results

    def search_page(
        self,
        query: Query,
        *,
        now: int,
        latency: LatencyModel | None = None,
        budget: int | None = None,
    ) -> SearchResponse:
        """:meth:`search`, with the cursor of the next page when there is one ([REQ-QRY-007])."""
        results, next_cursor = self._search(query, now, latency, budget, cursor=True)
        return SearchResponse.model_construct(results=results, next_cursor=next_cursor)

    def _search(
        self,
        query: Query,
        now: int,
        latency: LatencyModel | None,
        budget: int | None,
        *,
        cursor: bool,
    ) -> tuple[list[Match], str | None]:
        plan = self._plan(query, now, latency)
        if plan.empty:
            self._check_budget(0, budget)
            return [], None
        size, fetch = plan.driver
        self._check_budget(size, budget)
        k = query.limit
        batch: _Batch | None = None
        first = plan.order[0] if plan.order else None
        single_currency = query.currency is not None or (
            sum(1 for n in self._currencies.values() if n > 0) <= 1
        )
        if query.weights is None and single_currency and size >= self._walk_min:
            # one more than the page, to know whether there is a next page
            if first == RankKey.COST:
                batch = self._walk_cost(plan, k + 1, size)
            elif first == RankKey.RENEWABLE:
                batch = self._walk_desc(plan, k + 1, size, self._renew_ladder, "renew")
            elif first == RankKey.AVAILABILITY:
                batch = self._walk_desc(plan, k + 1, size, self._avail_ladder, "free")
            elif first == RankKey.LATENCY:
                batch = self._walk_latency(plan, k + 1, size)
            elif first is None and size * 4 >= len(self._slot_of):
                batch = self._walk_names(plan, k + 1, size)
            elif first is None:
                after = None
                if plan.cursor is not None:
                    slot = self._slot_of.get(plan.cursor[2])
                    after = None if slot is None else int(self._slots["name_key"][slot])
                if plan.cursor is None or after is not None:
                    batch = self._lazy(plan, fetch(), k + 1, None, after=after, from_driver=True)
        if batch is None:
            batch = self._evaluate(plan, fetch(), from_driver=True)
            self._check_currencies(plan, batch)
        entries = self._select(plan, batch, k + 1)
        page = entries[:k]
        matches = [self._match(plan, e) for e in page]
        next_cursor = None
        if cursor and len(entries) > k:
            next_cursor = _encode_cursor(query, page[-1][0])
        return matches, next_cursor

    @staticmethod
    def _check_budget(size: int, budget: int | None) -> None:
        if budget is not None and size > budget:
            raise QueryTooExpensiveError(
                f"the query would examine {size} candidates, more than the budget of {budget}",
                detail={"candidates": size, "budget": budget},
            )

    def _check_currencies(self, plan: _Plan, batch: _Batch) -> None:
        if plan.query.currency is not None or len(batch) == 0:
            return
        cur = self._slots["currency"][batch.slots]
        if (cur != cur[0]).any():
            # REQ-QRY-064: candidates in several currencies cannot be ranked together
            names = sorted({self._voc["currency"].values[int(x)] for x in np.unique(cur)})
            raise DemandRejectedError(
                "candidates in more than one currency cannot be ranked together",
                field="currency",
                detail={"rule": "currency_mismatch", "currencies": names},
            )

    # --- walks along ladders ----------------------------------------------------------------

    def _walk_cost(self, plan: _Plan, k: int, limit: int) -> _Batch | None:
        """Visit cost buckets by lower bound until the k-th cost is below the next bound.

        Every offer in bucket b of a stream (unit u, minimum-term class j) costs
        at least ``max(d, floor_j) × n_u × edge_b``, where n_u is the number of
        units the demand needs of u (see the theory of operation),
        so once k candidates after the cursor cost less than the next bucket's
        bound, no unvisited offer can enter the top k. The streams of the
        accepted units are merged by bound; buckets are evaluated in chunks.
        """
        ladder = self._cost_ladder
        good = np.flatnonzero(plan.unit_ok)
        units = plan.n_of_unit[good]
        scale = [max(plan.duration, f) * (1 - _REL) for f in _MINTERM_FLOOR]
        edges = _COST_EDGE_LIST
        per_unit = dict(zip(good.tolist(), units.tolist(), strict=True))

        def bound(stream: int, b: int) -> float:
            u, j = divmod(stream, _MINTERM_CLASSES)
            return float(scale[j] * per_unit[u] * edges[b])

        # the first bucket of every non-empty stream of an accepted unit, bounded at once
        streams = np.fromiter(ladder.streams.keys(), dtype=np.int64, count=len(ladder.streams))
        streams = streams[plan.unit_ok[streams // _MINTERM_CLASSES]]
        firsts = np.fromiter(
            (ladder.streams[x][0] for x in streams.tolist()), dtype=np.int64, count=len(streams)
        )
        u_of, j_of = np.divmod(streams, _MINTERM_CLASSES)
        bounds0 = (
            np.asarray(scale, dtype=np.float64)[j_of]
            * plan.n_of_unit[u_of].astype(np.float64)
            * _COST_EDGES[firsts]
        )
        heap: list[tuple[float, int, int]] = list(
            zip(bounds0.tolist(), streams.tolist(), [0] * len(streams), strict=True)
        )
        heapq.heapify(heap)
        n_of_unit = plan.n_of_unit.astype(np.float64)
        st = self._sigs.store
        slot_sig, slot_unit = self._slots["sig"], self._slots["unit"]
        parts: list[_Batch] = []
        best = np.empty(0, dtype=np.float64)  # the k lowest costs found after the cursor
        visited, target = 0, _CHUNK
        while heap:
            cut = best[k - 1] * (1 + _REL) if len(best) >= k else math.inf
            if heap[0][0] == math.inf or heap[0][0] > cut:
                break
            chunk: list[I32] = []
            size = 0
            while heap and size < target and heap[0][0] <= cut and heap[0][0] < math.inf:
                _, stream, i = heapq.heappop(heap)
                lst = ladder.streams[stream]
                chunk.append(ladder.slots(stream, lst[i]))
                size += ladder.size(stream, lst[i])
                if i + 1 < len(lst):
                    heapq.heappush(heap, (bound(stream, lst[i + 1]), stream, i + 1))
            visited += size
            if visited > limit:
                return None  # the walk costs more than gathering would
            rows = np.concatenate(chunk).astype(np.int64)
            target = min(2 * target, 1 << 13)
            if cut < math.inf:
                # the same bound row by row: max(d, minimum term) × n_u × r0 <= cost
                sig = slot_sig[rows]
                lower = np.maximum(plan.duration, st["minterm"][sig]) * n_of_unit[slot_unit[rows]]
                rows = rows[lower * st["r0"][sig] * (1 - _REL) <= cut]
            part = self._evaluate(plan, rows)
            if len(part) == 0:
                continue
            parts.append(part)
            after = self._after_cursor_costs(plan, part)
            if len(after):
                merged = np.concatenate([best, after])
                best = np.partition(merged, k - 1)[:k] if len(merged) > k else merged
                best.sort()
        return _Batch.concat(parts, self._src(plan))

    def _after_cursor_costs(self, plan: _Plan, part: _Batch) -> F64:
        """Costs of the candidates surely ranked after the cursor (all, without one)."""
        if plan.cursor is None:
            return part.cost
        cursor_cost = plan.cursor[1][0]
        assert cursor_cost is not None
        return part.cost[part.cost > float(cursor_cost) * (1 + 4 * _REL)]

    def _walk_desc(
        self, plan: _Plan, k: int, limit: int, ladder: _Ladder, column: str
    ) -> _Batch | None:
        """Visit buckets from the best value down; stop once k candidates are found.

        Bucket order is value order, so once a bucket level is finished every
        unvisited offer ranks strictly after every visited one on this key.
        """
        unknown = _RENEW_NB - 1 if column == "renew" else None

        def rank_of(b: int) -> int:  # smaller is visited first; unknown last
            return _BIG if b == unknown else -b

        cut: int | None = None  # rows with a value below this rank surely after the cursor
        start: int | None = None
        if plan.cursor is not None:
            v = plan.cursor[1][0]
            if v is not None:
                value = -v
                scaled = math.floor(value * _SHARE_SCALE) if column == "renew" else int(value)
                start = _renew_bucket(scaled) if column == "renew" else _avail_bucket(scaled)
                cut = scaled
            else:
                start = unknown
                cut = -1
        heap: list[tuple[int, int, int]] = []
        for u in np.flatnonzero(plan.unit_ok).tolist():
            lst = ladder.streams.get(u)
            if not lst:
                continue
            # descending order of b (unknown, the largest b, goes last)
            i = len(lst) - 1
            if unknown is not None and lst[i] == unknown:
                heap.append((rank_of(unknown), u, -1))
                i -= 1
            if start is not None:
                # buckets above the cursor's hold only candidates ranked before it
                while i >= 0 and rank_of(lst[i]) < rank_of(start):
                    i -= 1
            if i >= 0 and (start is None or start != unknown):
                heap.append((rank_of(lst[i]), u, i))
        heapq.heapify(heap)
        parts: list[_Batch] = []
        nfound = visited = 0
        target = _CHUNK
        while heap:
            if nfound >= k:
                break
            chunk: list[I32] = []
            size = 0
            level = heap[0][0]
            # finish whole levels: equal buckets of other units are not strictly worse
            while heap and (size < target or heap[0][0] == level):
                level, u, i = heapq.heappop(heap)
                lst = ladder.streams[u]
                b = lst[i]
                chunk.append(ladder.slots(u, b))
                size += ladder.size(u, b)
                if i > 0 and lst[i - 1] != unknown:
                    heapq.heappush(heap, (rank_of(lst[i - 1]), u, i - 1))
            visited += size
            if visited > limit:
                return None
            part = self._evaluate(plan, np.concatenate(chunk).astype(np.int64))
            target = min(4 * target, 1 << 16)
            if len(part):
                parts.append(part)
                values = part.renew if column == "renew" else part.free
                nfound += len(part) if cut is None else int(np.count_nonzero(values < cut))
        return _Batch.concat(parts, self._src(plan))

    def _walk_latency(self, plan: _Plan, k: int, limit: int) -> _Batch | None:
        """Visit places by RTT to ``near.region``; stop past the k-th RTT found.

        Every offer of a place has the place's RTT, so after the places with RTT
        at most X, every unvisited offer has a larger RTT (or an unknown one,
        which ranks last, [REQ-QRY-054]). The offers of one RTT level are tied
        on latency and are evaluated lazily in order of the next rank key.
        """
        assert plan.place_rtt is not None
        p = self._postings["place"]
        places = np.flatnonzero(plan.place_ok)
        sizes = np.array([p.size(x) for x in places.tolist()], dtype=np.int64)
        places, sizes = places[sizes > 0], sizes[sizes > 0]
        rtts = plan.place_rtt[places]
        rtts = np.where(rtts >= 0, rtts, _BIG)
        order = np.argsort(rtts, kind="stable")
        places, rtts, sizes = places[order], rtts[order], sizes[order]
        cut = -1  # rows with a larger RTT surely rank after the cursor
        if plan.cursor is not None:
            v = plan.cursor[1][0]
            cut = _BIG if v is None else int(v)
            keep = rtts >= cut
            places, rtts, sizes = places[keep], rtts[keep], sizes[keep]
        second = plan.order[1] if len(plan.order) > 1 else None
        parts: list[_Batch] = []
        nfound = visited = 0
        if not len(places):
            return _Batch.concat([], self._src(plan))  # no candidate place at all
        bounds = np.flatnonzero(np.diff(rtts)) + 1
        for lo, hi in zip([0, *bounds.tolist()], [*bounds.tolist(), len(places)], strict=True):
            level = int(rtts[lo])
            if nfound >= k:
                break  # k candidates with a smaller RTT than every offer left
            rows = p.union(places[lo:hi].tolist())
            visited += len(rows)
            if visited > limit:
                return None
            if level == cut or len(rows) <= 4 * k:
                part = self._evaluate(plan, rows)
            else:
                part = self._lazy(plan, rows, k - nfound, second)
            if len(part):
                parts.append(part)
                if level > cut:
                    nfound += len(part)
        return _Batch.concat(parts, self._src(plan))

    def _lazy(
        self,
        plan: _Plan,
        rows: I64,
        k: int,
        key: str | None,
        *,
        after: int | float | None = None,
        from_driver: bool = False,
    ) -> _Batch:
        """Evaluate ``rows`` in order of a bound on one rank key, only as far as needed.

        ``key`` is a rank key (``None``: the name order). Each row's bound is
        known before any constraint is checked: the exact name key, free units
        or renewable share, or the cost lower bound of the cost walk. Rows are
        evaluated smallest bound first, in growing rounds, until k candidates
        rank strictly before every row left. ``after``: only rows whose exact
        value is greater count towards k (the cursor's value on this key).
        """
        bound, tol = self._bound(plan, rows, key)
        parts: list[_Batch] = []
        found: list[npt.NDArray[Any]] = []
        nfound = 0
        # rows in rounds of growing size, smallest bounds first. A round selects the rows
        # whose bound is at most the take-th smallest of those left (np.partition of the
        # values, several times cheaper than an argpartition); the (take+1)-th smallest is
        # a lower bound on every row left, which is all the stopping rule needs
        take = 4 * k
        rest: I64 = np.arange(len(rows), dtype=np.int64)
        values = bound
        while len(rest):
            least_left = None
            if len(rest) > take:
                v1, v2 = np.partition(values, [take - 1, take])[[take - 1, take]]
                chosen = values <= v1
                idx, rest = rest[chosen], rest[~chosen]
                values = values[~chosen]
                least_left = v2  # no row left has a smaller bound
            else:
                idx, rest = rest, rest[:0]
            part = self._evaluate(plan, rows[idx], from_driver=from_driver)
            take *= 4
            if len(part):
                parts.append(part)
                exact = self._exact_key(part, key)
                if after is not None:
                    exact = exact[exact > after * (1 + 4 * tol) if tol else exact > after]
                found.append(exact)
                nfound += len(exact)
            if least_left is None:
                break
            if nfound >= k:
                kth = np.partition(np.concatenate(found), k - 1)[k - 1]
                if (kth * (1 + tol) if tol else kth) < least_left:
                    break
        return _Batch.concat(parts, self._src(plan))

    def _bound(self, plan: _Plan, rows: I64, key: str | None) -> tuple[npt.NDArray[Any], float]:
        """Per row, a lower bound on its oriented ``key`` value, and its tolerance."""
        if key == RankKey.COST:
            return self._cost_bound(plan, rows), _REL
        # one column gathered, not whole hot records: a bound reads one field
        if key == RankKey.RENEWABLE:
            renew = self._slots["renew"][rows]
            return np.where(renew >= 0, -renew, _BIG), 0.0
        if key == RankKey.AVAILABILITY:
            return -self._slots["free"][rows], 0.0
        return self._slots["name_key"][rows], 0.0

    @staticmethod
    def _exact_key(part: _Batch, key: str | None) -> npt.NDArray[Any]:
        if key == RankKey.COST:
            return part.cost
        if key == RankKey.RENEWABLE:
            return np.where(part.renew >= 0, -part.renew, _BIG)
        if key == RankKey.AVAILABILITY:
            return -part.free
        return part.name_key

    def _cost_bound(self, plan: _Plan, rows: I64) -> F64:
        """Per row, a lower bound on its cost: max(d, minimum term) × n_u × r0 (the cost walk's)."""
        c = self._slots
        st = self._sigs.store
        sig = c["sig"][rows]
        n = plan.n_of_unit[c["unit"][rows]]
        lower = np.maximum(plan.duration, st["minterm"][sig]).astype(np.float64)
        bound: F64 = lower * n * st["r0"][sig] * (1 - _REL)
        return bound

    def _walk_names(self, plan: _Plan, k: int, limit: int) -> _Batch | None:
        """Empty order: names in canonical order are the ranking ([REQ-QRY-054])."""
        start = None if plan.cursor is None else _name_sort_key(plan.cursor[2])
        parts: list[_Batch] = []
        nfound = 0
        visited = 0
        chunk: list[int] = []
        it = self._name_order.iter_from(start)
        while nfound < k:
            chunk = [s for _, s in zip(range(_CHUNK), it, strict=False)]
            if not chunk:
                break
            visited += len(chunk)
            if visited > limit + _CHUNK:
                return None
            part = self._evaluate(plan, np.array(chunk, dtype=np.int64))
            if len(part):
                parts.append(part)
                nfound += len(part)
        return _Batch.concat(parts, self._src(plan))

    # --- exact selection ----------------------------------------------------------------------

    def _approx_cols(
        self, plan: _Plan, batch: _Batch
    ) -> tuple[list[npt.NDArray[Any]], list[float]]:
        """Rank-key columns, smaller first: cost as floats, everything else exact integers."""
        cols: list[npt.NDArray[Any]] = []
        tols: list[float] = []
        for key in plan.order:
            if key == RankKey.COST:
                cols.append(batch.cost)
                tols.append(4 * _REL)
            else:
                cols.append(self._int_key(key, batch))
                tols.append(0.0)
        cols.append(batch.name_key * 2)
        cols.append(self._slots["serial"][batch.slots])
        tols += [0.0, 0.0]
        return cols, tols

    @staticmethod
    def _int_key(key: str, batch: _Batch) -> I64:
        if key == RankKey.LATENCY:
            return np.where(batch.rtt >= 0, batch.rtt, _BIG)
        if key == RankKey.RENEWABLE:
            return np.where(batch.renew >= 0, -batch.renew, _BIG)
        return -batch.free

    def _name_ref(self, name: Identifier) -> int:
        """Where ``name`` sits among the doubled name keys (odd: between two held names)."""
        slot = self._slot_of.get(name)
        keys = self._slots["name_key"]
        if slot is not None:
            return 2 * int(keys[slot])
        prev = self._name_order.floor(_name_sort_key(name))
        return -(2**62) if prev is None else 2 * int(keys[prev]) + 1

    def _ref_approx(self, plan: _Plan, ref: RankKeyValue) -> list[float | int]:
        _, values, name, serial = ref
        out: list[float | int] = []
        for key, v in zip(plan.order, values, strict=True):
            out.append(self._ref_int(key, v) if key != RankKey.COST else float(v or 0))
        return [*out, self._name_ref(name), serial]

    @staticmethod
    def _ref_int(key: str, v: Fraction | None) -> int:
        if v is None:
            return _BIG
        if key == RankKey.RENEWABLE:
            return math.floor(v * _SHARE_SCALE)
        return math.floor(v)

    def _exact_cols(
        self, plan: _Plan, batch: _Batch, rows: I64, ref: RankKeyValue | None
    ) -> tuple[list[npt.NDArray[Any]], list[int] | None]:
        """Exact integer rank-key columns for ``rows`` (cost as ranks of exact totals)."""
        cols: list[npt.NDArray[Any]] = []
        ref_vec: list[int] | None = None if ref is None else []
        sub = batch.take(rows)
        for i, key in enumerate(plan.order):
            if key == RankKey.COST:
                exact: dict[int, Fraction] = {}
                for sid, units in zip(sub.sig.tolist(), sub.units.tolist(), strict=True):
                    if sid not in exact:
                        exact[sid] = self._exact_cost(plan, sid, units)
                values = set(exact.values())
                if ref is not None:
                    assert ref[1][i] is not None
                    values.add(ref[1][i])  # type: ignore[arg-type]
                ranks = {v: r for r, v in enumerate(sorted(values))}
                cols.append(np.array([ranks[exact[s]] for s in sub.sig.tolist()], dtype=np.int64))
                if ref_vec is not None and ref is not None:
                    ref_vec.append(ranks[ref[1][i]])  # type: ignore[index]
            else:
                cols.append(self._int_key(key, sub))
                if ref_vec is not None and ref is not None:
                    ref_vec.append(self._ref_int(key, ref[1][i]))
        cols.append(sub.name_key * 2)
        cols.append(self._slots["serial"][sub.slots])
        if ref_vec is not None and ref is not None:
            ref_vec += [self._name_ref(ref[2]), ref[3]]
        return cols, ref_vec

    @staticmethod
    def _compare(
        cols: list[npt.NDArray[Any]], tols: list[float], ref: list[float | int]
    ) -> tuple[Bool, Bool]:
        """Rows surely before and surely after ``ref`` in lexicographic order (with tolerances)."""
        n = len(cols[0])
        less = np.zeros(n, dtype=np.bool_)
        greater = np.zeros(n, dtype=np.bool_)
        tied = np.ones(n, dtype=np.bool_)
        for col, tol, r in zip(cols, tols, ref, strict=True):
            if tol:
                lo, hi = r - abs(r) * tol, r + abs(r) * tol
                lt, gt = col < lo, col > hi
                eq = col == r
            else:
                lt, gt = col < r, col > r
                eq = col == r
            less |= tied & lt
            greater |= tied & gt
            tied &= eq  # rows within the tolerance but not equal stay undecided
        return less, greater

    def _select(self, plan: _Plan, batch: _Batch, k: int) -> list[_Entry]:
        """The exact top ``k`` of ``batch`` after the cursor."""
        if len(batch) == 0:
            return []
        if plan.query.weights is not None:
            return self._select_weighted(plan, batch, k)
        cols, tols = self._approx_cols(plan, batch)
        if plan.cursor is not None:
            ref = self._ref_approx(plan, plan.cursor)
            _, after = self._compare(cols, tols, ref)
            undecided = np.flatnonzero(~after & ~self._compare(cols, tols, ref)[0])
            if len(undecided):
                ecols, eref = self._exact_cols(plan, batch, undecided, plan.cursor)
                assert eref is not None
                _, later = self._compare(ecols, [0.0] * len(ecols), eref)  # type: ignore[arg-type]
                after[undecided[later]] = True
            batch = batch.take(after)
            cols = [c[after] for c in cols]
        if len(batch) == 0:
            return []
        rows: I64 = np.arange(len(batch), dtype=np.int64)
        if len(batch) > k:
            primary = cols[0]
            kth = np.partition(primary, k - 1)[k - 1]
            bound = kth + abs(kth) * tols[0] if tols[0] else kth
            band = np.flatnonzero(primary <= bound)
            order = np.lexsort([c[band] for c in reversed(cols)])
            pivot = int(band[order[k - 1]])
            _, greater = self._compare([c[band] for c in cols], tols, [c[pivot] for c in cols])
            rows = band[~greater].astype(np.int64)
        ecols, _ = self._exact_cols(plan, batch, rows, None)
        best = rows[np.lexsort(list(reversed(ecols)))[:k]]
        return [self._entry(plan, batch, int(i), None) for i in best.tolist()]

    def _entry(self, plan: _Plan, batch: _Batch, i: int, score: Fraction | None) -> _Entry:
        slot = int(batch.slots[i])
        name = self._names[slot]
        assert name is not None
        values = self._values(plan, batch, i, {})
        key: RankKeyValue = (score, values, name, int(self._slots["serial"][slot]))
        return key, slot, int(batch.units[i]), score

    def _values(
        self, plan: _Plan, batch: _Batch, i: int, cost: dict[int, Fraction]
    ) -> tuple[Fraction | None, ...]:
        out: list[Fraction | None] = []
        for key in plan.order:
            if key == RankKey.COST:
                sid = int(batch.sig[i])
                v: Fraction | None = cost.get(sid)
                if v is None:
                    v = cost[sid] = self._exact_cost(plan, sid, int(batch.units[i]))
            elif key == RankKey.LATENCY:
                r = int(batch.rtt[i])
                v = None if r < 0 else Fraction(r)
            elif key == RankKey.RENEWABLE:
                r = int(batch.renew[i])
                v = None if r < 0 else Fraction(r, _SHARE_SCALE)
            else:
                v = Fraction(int(batch.free[i]))
            out.append(_oriented(key, v))
        return tuple(out)

    def _approx_value(self, batch: _Batch, key: str) -> F64:
        """The raw figure for ``key`` as floats (smaller is better), unknown as NaN."""
        if key == RankKey.COST:
            return batch.cost
        if key == RankKey.LATENCY:
            return np.where(batch.rtt >= 0, batch.rtt.astype(np.float64), np.nan)
        if key == RankKey.RENEWABLE:
            # in share units, like the exact bounds it is combined with
            return np.where(batch.renew >= 0, batch.renew / -float(_SHARE_SCALE), np.nan)
        return -(batch.free.astype(np.float64))

    def _select_weighted(self, plan: _Plan, batch: _Batch, k: int) -> list[_Entry]:
        """Weighted mode ([REQ-QRY-053]): scores over the whole candidate set, then exact."""
        q = plan.query
        assert q.weights is not None
        memo: dict[int, Fraction] = {}
        weights = {str(key): Fraction(v) for key, v in q.weights.items()}
        total_w = sum(weights.values(), Fraction(0))
        approx = np.zeros(len(batch), dtype=np.float64)
        err = 1e-12
        lo_hi: dict[str, tuple[Fraction, Fraction] | None] = {}
        for key, w in weights.items():
            vals = self._approx_value(batch, key)
            known = ~np.isnan(vals)
            if not known.any():
                lo_hi[key] = None
                continue
            kv = vals[known]
            vmin, vmax = float(kv.min()), float(kv.max())
            if key == RankKey.COST:
                near = np.flatnonzero(
                    known
                    & (
                        (vals <= vmin + abs(vmin) * 4 * _REL)
                        | (vals >= vmax - abs(vmax) * 4 * _REL)
                    )
                )
                exact = [self._values_cost(plan, batch, int(i), memo) for i in near.tolist()]
                lo, hi = min(exact), max(exact)
            else:
                idx_lo = int(np.flatnonzero(known & (vals == vmin))[0])
                idx_hi = int(np.flatnonzero(known & (vals == vmax))[0])
                lo = self._raw_exact(batch, idx_lo, key)
                hi = self._raw_exact(batch, idx_hi, key)
            lo_hi[key] = (lo, hi)
            wf = float(w / total_w)
            if hi == lo:
                approx += np.where(known, wf, 0.0)
            else:
                span = float(hi - lo)
                approx += np.where(known, wf * (float(hi) - np.nan_to_num(vals)) / span, 0.0)
                err += wf * (max(abs(vmin), abs(vmax)) * 8 * _REL + 1e-300) / span
        err = err * 4 + 1e-12
        primary = -approx
        if plan.cursor is not None and plan.cursor[0] is not None:
            cut = -float(plan.cursor[0])
            keep = primary >= cut - err
            batch, primary = batch.take(keep), primary[keep]
            surely_after = primary > cut + err
        else:
            surely_after = np.ones(len(batch), dtype=np.bool_)
        if len(batch) == 0:
            return []
        pool = primary[surely_after]
        if len(pool) >= k:
            kth = float(np.partition(pool, k - 1)[k - 1])
            rows = np.flatnonzero(primary <= kth + 2 * err)
        else:
            rows = np.arange(len(batch))
        # exact scores, once per distinct tuple of figures; then integer ranks
        memo_scores: dict[tuple[Fraction | None, ...], Fraction] = {}
        positions = {key: plan.order.index(key) for key in weights}
        row_values: list[tuple[Fraction | None, ...]] = []
        for i in rows.tolist():
            values = self._values(plan, batch, i, memo)
            row_values.append(values)
            if values not in memo_scores:
                acc = Fraction(0)
                for key, w in weights.items():
                    v = values[positions[key]]
                    bounds = lo_hi.get(key)
                    if v is None or bounds is None:
                        continue
                    lo, hi = bounds
                    acc += w if hi == lo else w * (hi - v) / (hi - lo)
                memo_scores[values] = acc / total_w
        scores = [memo_scores[v] for v in row_values]
        distinct = set(scores)
        cursor_score = plan.cursor[0] if plan.cursor is not None else None
        if cursor_score is not None:
            distinct.add(cursor_score)
        ranks = {v: r for r, v in enumerate(sorted(distinct, reverse=True))}
        ecols, eref = self._exact_cols(plan, batch, rows, plan.cursor)
        cols = [np.array([ranks[x] for x in scores], dtype=np.int64), *ecols]
        if plan.cursor is not None:
            assert eref is not None
            ref = [ranks[cursor_score] if cursor_score is not None else -1, *eref]
            _, later = self._compare(cols, [0.0] * len(cols), ref)  # type: ignore[arg-type]
            kept = np.flatnonzero(later)
            rows, cols = rows[kept], [c_[kept] for c_ in cols]
            scores = [scores[j] for j in kept.tolist()]
            row_values = [row_values[j] for j in kept.tolist()]
        best = np.lexsort(list(reversed(cols)))[:k]
        entries: list[_Entry] = []
        for j in best.tolist():
            i = int(rows[j])
            slot = int(batch.slots[i])
            name = self._names[slot]
            assert name is not None
            key_: RankKeyValue = (scores[j], row_values[j], name, int(self._slots["serial"][slot]))
            entries.append((key_, slot, int(batch.units[i]), scores[j]))
        return entries

    def _values_cost(
        self, plan: _Plan, batch: _Batch, i: int, memo: dict[int, Fraction]
    ) -> Fraction:
        sid = int(batch.sig[i])
        v = memo.get(sid)
        if v is None:
            v = memo[sid] = self._exact_cost(plan, sid, int(batch.units[i]))
        return v

    @staticmethod
    def _raw_exact(batch: _Batch, i: int, key: str) -> Fraction:
        """The oriented exact figure of row ``i`` for a non-cost key (known)."""
        if key == RankKey.LATENCY:
            return Fraction(int(batch.rtt[i]))
        if key == RankKey.RENEWABLE:
            return -Fraction(int(batch.renew[i]), _SHARE_SCALE)
        return -Fraction(int(batch.free[i]))

    def _match(self, plan: _Plan, entry: _Entry) -> Match:
        key, slot, units, score = entry
        sid = int(self._slots["sig"][slot])
        rtt = None
        if plan.place_rtt is not None:
            r = int(plan.place_rtt[int(self._slots["place"][slot])])
            rtt = None if r < 0 else r
        return Match.model_construct(
            name=key[2],
            serial=key[3],
            cost=self._breakdown(plan, sid, units),
            rtt_us=rtt,
            score=None if score is None else _score_text(score),
        )
