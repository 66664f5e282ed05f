"""Capability matching (issue 4): the indexed matcher equals the reference scan.

The central property ([REQ-QRY-021], [REQ-QRY-050]..[REQ-QRY-056],
[REQ-QRY-060]..[REQ-QRY-065]): on random catalogues and random queries,
:meth:`Matcher.search` returns the same offers, in the same order, with the
same cost breakdowns as :func:`naive_search`, also after random incremental
updates, and pages concatenate to the unpaged answer.
"""

from __future__ import annotations

import math
import os
import tracemalloc
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cid import examples as ex
from cid.errors import CidError, DemandRejectedError, QueryTooExpensiveError, SchemaError
from cid.identifier import Identifier
from cid.latency import LatencyModel, default_model
from cid.matching import Listing, Matcher, naive_search, naive_search_page
from cid.model import validate
from cid.query import Query, ResourceDemand, price_demand
from cid.record import Hpc, OfferBody

NOW = ex.EPOCH
MONTH_S = 2_628_000
THREE_MONTHS_S = 3 * MONTH_S
MODEL = default_model()

# --- strategies ------------------------------------------------------------------------------

REGIONS = ["CN-BJ", "CN-TJ", "CN-HE", "CN-GZ", "CN-NM", "CN-SH", "US-CA"]
CITIES = ["天津", "贵安", "Ulanqab"]
AMOUNTS = ["0", "0.012", "0.004", "1", "5", "7", "0.03", "9.5", "0.0001", "2.5", "12.3456"]
SHARES = ["0", "0.25", "0.5", "0.62", "0.81", "1", "0.333333333333333333"]
TFLOPS = ["9.7", "312", "19.5", "0.1234567", "990"]
MODELS = [
    ("nvidia", "a100-80g", "ampere"),
    ("nvidia", "h20", "hopper"),
    ("huawei", "ascend-910b", None),
]
SOFTWARE = [("ubuntu", "22.04"), ("cuda", "12.4"), ("cuda", "11.8"), ("pytorch", "2.4")]
PERIODS = ["second", "hour", "day", "month", "year"]
NAMES = [
    "p1.gy.ctyun",
    "p2.gy.ctyun",
    "p3.tj.ctyun",
    "p1.bj.cmcc",
    "p2.bj.cmcc",
    "x.p9.deep.ctyun",
    "y.p9.deep.ctyun",
    "solo",
    "池1.天津.天翼云",
    "a.b",
    "c.b",
    "p4.gy.ctyun",
]


@st.composite
def offers(draw: st.DrawFn) -> OfferBody:
    klass = draw(st.sampled_from(["general", "general", "intelligent", "super", "storage"]))
    unit: dict[str, Any] = {}
    if klass == "general" or draw(st.booleans()):
        unit["vcpu"] = draw(st.sampled_from([1, 2, 4]))
        unit["cpu"] = {"arch": draw(st.sampled_from(["x86_64", "aarch64"]))}
        unit["memory_mib"] = draw(st.sampled_from([1024, 2048, 3000, 4096]))
    if draw(st.booleans()):
        unit["storage_gib"] = draw(st.sampled_from([0, 20]))
    if klass == "intelligent":
        vendor, model, family = draw(st.sampled_from(MODELS))
        acc: dict[str, Any] = {
            "vendor": vendor,
            "model": model,
            "count": draw(st.sampled_from([1, 2, 8])),
            "memory_gib": draw(st.sampled_from([40, 80])),
            "tflops": draw(
                st.dictionaries(
                    st.sampled_from(["fp64", "bf16", "fp16"]), st.sampled_from(TFLOPS), max_size=3
                )
            ),
        }
        if family:
            acc["family"] = family
        unit["accelerators"] = acc
    if klass == "super":
        unit["hpc"] = {
            "nodes": draw(st.sampled_from([1, 4])),
            "fp64_tflops": "50",
            "interconnect": "infiniband-hdr",
            "scheduler": "slurm",
        }
    if klass == "storage":
        unit["storage"] = {"kind": "object", "capacity_gib": draw(st.sampled_from([100, 1000]))}
    resources = draw(
        st.lists(
            st.sampled_from(["unit", "vcpu", "memory_gib", "storage_gib", "accelerator", "node"]),
            min_size=1,
            max_size=4,
            unique=True,
        )
    )
    region = draw(st.sampled_from(REGIONS))
    total = draw(st.integers(0, 12))
    body: dict[str, Any] = {
        "class": klass,
        "title": "pool",
        "unit": unit,
        "location": {"country": region[:2], "region": region},
        "price": {
            "currency": draw(st.sampled_from(["CNY", "CNY", "CNY", "USD"])),
            "items": [
                {
                    "resource": r,
                    "amount": draw(st.sampled_from(AMOUNTS)),
                    "per": draw(st.sampled_from(PERIODS)),
                }
                for r in resources
            ],
            "billing_granularity_s": draw(st.sampled_from([1, 3600, 86_400])),
            "minimum_term_s": draw(st.sampled_from([0, 3600, MONTH_S, 2 * 31_536_000])),
        },
        "availability": {"units_total": total, "units_free": draw(st.integers(0, total))},
        "network": {
            "rtt_us": draw(
                st.dictionaries(
                    st.sampled_from(REGIONS[:-1]),
                    st.sampled_from([300, 1000, 3000, 9000]),
                    max_size=3,
                )
            ),
        },
        "software": [
            {"name": n, "version": v}
            for n, v in draw(st.lists(st.sampled_from(SOFTWARE), max_size=3, unique=True))
        ],
        "compliance": draw(
            st.lists(st.sampled_from(["mlps-3", "iso27001"]), max_size=2, unique=True)
        ),
    }
    if draw(st.booleans()):
        body["location"]["city"] = draw(st.sampled_from(CITIES))
    if draw(st.booleans()):
        body["network"]["latency_circle"] = draw(st.sampled_from(["jingjinji", "west-hub", "lab"]))
    if draw(st.integers(0, 4)):
        energy: dict[str, Any] = {"renewable_share": draw(st.sampled_from(SHARES))}
        if draw(st.booleans()):
            energy["carbon_g_per_kwh"] = draw(st.sampled_from([180, 310, 520]))
        body["energy"] = energy
    return validate(OfferBody, body)


@st.composite
def queries(draw: st.DrawFn) -> Query:
    q: dict[str, Any] = {}

    def maybe(key: str, strategy: st.SearchStrategy[Any], p: int = 4) -> None:
        if draw(st.integers(0, p - 1)) == 0:
            q[key] = draw(strategy)

    maybe("class", st.sampled_from(["general", "intelligent", "super", "storage"]), 2)
    maybe("currency", st.sampled_from(["CNY", "USD", "EUR"]), 1 if draw(st.booleans()) else 3)
    maybe(
        "within",
        st.sampled_from(["ctyun", "gy.ctyun", "p9.deep.ctyun", "x.p9.deep.ctyun", "b", "nobody"]),
        6,
    )
    maybe(
        "arch",
        st.lists(
            st.sampled_from(["x86_64", "aarch64", "riscv64"]), min_size=1, max_size=2, unique=True
        ),
        6,
    )
    maybe(
        "accelerator",
        st.fixed_dictionaries(
            {},
            optional={
                "vendor": st.sampled_from(["nvidia", "huawei", "amd"]),
                "model": st.lists(
                    st.sampled_from(["a100-80g", "h20", "ascend-910b", "mi300x"]),
                    min_size=1,
                    max_size=2,
                    unique=True,
                ),
                "family": st.sampled_from(["ampere", "hopper"]),
                "count_min": st.sampled_from([1, 2, 8]),
                "memory_gib_min": st.sampled_from([40, 80]),
            },
        ),
        6,
    )
    maybe(
        "tflops_min",
        st.dictionaries(
            st.sampled_from(["fp64", "bf16"]),
            st.sampled_from(["9.7", "300", "0.1234567", "1"]),
            min_size=1,
            max_size=2,
        ),
        8,
    )
    maybe("vcpu_min", st.sampled_from([1, 2, 4]), 8)
    maybe("memory_mib_min", st.sampled_from([2048, 4096]), 8)
    maybe("storage_gib_min", st.sampled_from([20, 100]), 8)
    maybe(
        "demand",
        st.fixed_dictionaries(
            {},
            optional={
                "vcpu": st.sampled_from([1, 3, 8]),
                "memory_mib": st.sampled_from([1024, 2048, 5000]),
                "storage_gib": st.sampled_from([100, 1500]),
                "accelerators": st.sampled_from([1, 8]),
                "nodes": st.sampled_from([2]),
                "units": st.sampled_from([1, 2, 5]),
            },
        ).filter(bool),
        3,
    )
    maybe("duration_s", st.sampled_from([1, 3600, 86_400, THREE_MONTHS_S, 400 * 86_400]), 2)
    maybe("region_in", st.lists(st.sampled_from(REGIONS), min_size=1, max_size=3, unique=True), 6)
    maybe(
        "region_not_in", st.lists(st.sampled_from(REGIONS), min_size=1, max_size=2, unique=True), 8
    )
    maybe("country_in", st.sampled_from([["CN"], ["US"], ["CN", "US"]]), 10)
    maybe(
        "city_in",
        st.lists(st.sampled_from([*CITIES, "Paris"]), min_size=1, max_size=2, unique=True),
        10,
    )
    maybe(
        "near",
        st.one_of(
            st.fixed_dictionaries(
                {"region": st.sampled_from(REGIONS)},
                optional={"max_rtt_us": st.sampled_from([300, 1000, 3000, 10_000])},
            ),
            st.fixed_dictionaries(
                {"latency_circle": st.sampled_from(["jingjinji", "west-hub", "lab", "none"])}
            ),
        ),
        3,
    )
    if "currency" in q:
        maybe("unit_price_max", st.sampled_from(["0.02", "7", "0.5", "100", "0"]), 5)
        if "unit_price_max" in q:
            maybe("unit_price_per", st.sampled_from(["hour", "month"]), 2)
        if "duration_s" in q:
            maybe("total_cost_max", st.sampled_from(["1", "30", "33", "1000"]), 4)
    maybe("renewable_share_min", st.sampled_from(["0.5", "0.62", "0.333333333333333333"]), 6)
    maybe("carbon_g_per_kwh_max", st.sampled_from([200, 400]), 8)
    maybe(
        "software",
        st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["ubuntu", "cuda", "pytorch", "rocm"])},
                optional={"version": st.sampled_from([">=12", "<12", ">=12.0,<13", "==22.04"])},
            ),
            min_size=1,
            max_size=2,
            unique_by=lambda s: s["name"],
        ),
        6,
    )
    maybe(
        "compliance",
        st.lists(
            st.sampled_from(["mlps-3", "iso27001", "gdpr"]), min_size=1, max_size=2, unique=True
        ),
        6,
    )
    maybe("units_free_min", st.sampled_from([0, 1, 3]), 6)
    keys = ["cost", "latency", "renewable", "availability"]
    if "currency" not in q:
        keys.remove("cost")
    if "near" not in q or "region" not in q["near"]:
        keys.remove("latency")
    order = draw(st.lists(st.sampled_from(keys), max_size=3, unique=True))
    q["order"] = order
    if order and draw(st.integers(0, 3)) == 0:
        chosen = draw(st.lists(st.sampled_from(order), min_size=1, unique=True))
        q["weights"] = {k: draw(st.sampled_from(["1", "2", "0.5"])) for k in chosen}
    q["limit"] = draw(st.integers(1, 6))
    try:
        return validate(Query, q)
    except SchemaError:
        assume(False)
        raise


@st.composite
def catalogues(draw: st.DrawFn) -> list[Listing]:
    names = draw(st.lists(st.sampled_from(NAMES), max_size=len(NAMES), unique=True))
    return [
        Listing(
            Identifier(n),
            draw(st.integers(1, 5)),
            draw(offers()),
            NOW + draw(st.sampled_from([-10, 0, 1, 3600])),
        )
        for n in names
    ]


def outcome(fn: Any) -> Any:
    try:
        return ("ok", fn())
    except CidError as e:
        return ("error", type(e), e.detail.get("rule"))


def build(listings: list[Listing], **kw: Any) -> Matcher:
    m = Matcher(**kw)
    for item in listings:
        m.upsert(item.name, item.serial, item.offer, expires=item.expires)
    return m


def check_equal(m: Matcher, query: Query, latency: LatencyModel | None) -> None:
    got = outcome(lambda: m.search(query, now=NOW, latency=latency))
    want = outcome(lambda: naive_search(m.listings(), query, now=NOW, latency=latency))
    assert got == want
    if got[0] == "ok":
        # the breakdowns are the very ones price_demand writes ([REQ-QRY-063])
        for mt in got[1]:
            assert (
                mt.cost.to_value() == next(w for w in want[1] if w.name == mt.name).cost.to_value()
            )


PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# --- the property ----------------------------------------------------------------------------


@PROPERTY
@given(
    listings=catalogues(),
    qs=st.lists(queries(), min_size=1, max_size=4),
    walk_min=st.sampled_from([0, 4096]),
    with_model=st.booleans(),
)
def test_matcher_equals_naive_scan(
    listings: list[Listing], qs: list[Query], walk_min: int, with_model: bool
) -> None:
    """REQ-QRY-021, REQ-QRY-050..056, REQ-QRY-060..065: same offers, order and costs as the scan."""
    m = build(listings, walk_min=walk_min, capacity=4)
    latency = MODEL if with_model else None
    for q in qs:
        check_equal(m, q, latency)


@st.composite
def big_catalogues(draw: st.DrawFn) -> list[Listing]:
    """Up to 80 offers, from a few price lists (many ties), to exercise the selection bands."""
    n = draw(st.integers(20, 80))
    base = [draw(offers()) for _ in range(draw(st.integers(2, 6)))]
    out = []
    for i in range(n):
        offer = base[i % len(base)]
        if draw(st.booleans()):
            offer = offer.model_copy(update={"price": draw(offers()).price})
        if draw(st.booleans()):
            offer = offer.model_copy(update={"energy": draw(offers()).energy})
        name = Identifier(
            f"p{draw(st.integers(0, 9))}{i}.{draw(st.sampled_from(['gy', 'tj', 'x-y']))}.b"
        )
        out.append(Listing(name, 1, offer, NOW + 60))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(listings=big_catalogues(), qs=st.lists(queries(), min_size=1, max_size=3))
def test_matcher_equals_naive_on_larger_catalogues(
    listings: list[Listing], qs: list[Query]
) -> None:
    """REQ-QRY-053, REQ-QRY-054: more candidates than the page, ties on every key, walks forced."""
    m = build(listings, walk_min=0)
    for q in qs:
        check_equal(m, q, MODEL)


OPS = st.lists(
    st.tuples(
        st.sampled_from(["upsert", "refresh", "remove", "reprice"]),
        st.sampled_from(NAMES),
        offers(),
        st.integers(0, 12),
        st.sampled_from([-5, 60, 3600]),
    ),
    max_size=12,
)


@PROPERTY
@given(
    listings=catalogues(),
    ops=OPS,
    qs=st.lists(queries(), min_size=1, max_size=3),
    walk_min=st.sampled_from([0, 4096]),
)
def test_matcher_equals_naive_after_updates(
    listings: list[Listing], ops: list[Any], qs: list[Query], walk_min: int
) -> None:
    """Incremental upserts, refreshes, re-pricings and removals keep the matcher exact."""
    m = build(listings, walk_min=walk_min, capacity=2)
    for op, name_text, offer, free, ttl in ops:
        name = Identifier(name_text)
        if op == "upsert":
            m.upsert(name, 7, offer, expires=NOW + ttl)
        elif name not in m:
            assert m.remove(name) is False
        elif op == "refresh":
            total = m.listing(name).offer.availability.units_total
            m.update_availability(name, min(free, total), NOW + ttl, serial=9)
        elif op == "reprice":
            old = m.listing(name)
            m.upsert(
                name,
                old.serial + 1,
                old.offer.model_copy(update={"price": offer.price}),
                expires=old.expires,
            )
        else:
            assert m.remove(name) is True
    for q in qs:
        check_equal(m, q, MODEL)


@PROPERTY
@given(
    listings=catalogues(), q=queries(), page=st.integers(1, 3), walk_min=st.sampled_from([0, 4096])
)
def test_pages_concatenate_to_the_unpaged_answer(
    listings: list[Listing], q: Query, page: int, walk_min: int
) -> None:
    """REQ-QRY-007, REQ-QRY-056: following next_cursor yields the unpaged order, page by page."""
    m = build(listings, walk_min=walk_min)
    big = q.model_copy(update={"limit": 1000})
    whole = outcome(lambda: naive_search(m.listings(), big, now=NOW, latency=MODEL))
    assume(whole[0] == "ok")
    pages: list[Any] = []
    current = q.model_copy(update={"limit": page})
    for _ in range(30):
        resp = m.search_page(current, now=NOW, latency=MODEL)
        reference = naive_search_page(m.listings(), current, now=NOW, latency=MODEL)
        assert resp.results == reference.results
        assert (resp.next_cursor is None) == (reference.next_cursor is None)
        pages.extend(resp.results)
        if resp.next_cursor is None:
            break
        current = current.model_copy(update={"cursor": resp.next_cursor})
    assert pages == whole[1]


# --- the worked example and the scheduler example ---------------------------------------------


def hourly(offer: OfferBody) -> OfferBody:
    """The spec's worked example bills by the hour (spec 4.10.1)."""
    return offer.model_copy(
        update={"price": offer.price.model_copy(update={"billing_granularity_s": 3600})}
    )


@pytest.fixture
def three_pools() -> Matcher:
    m = Matcher()
    m.upsert(Identifier("tj-pool.ctyun"), 1, hourly(ex.tianjin_offer()), expires=NOW + 3600)
    m.upsert(Identifier("gz-pool.ctyun"), 1, hourly(ex.guizhou_offer()), expires=NOW + 3600)
    m.upsert(Identifier("nm-pool.ctyun"), 1, hourly(ex.inner_mongolia_offer()), expires=NOW + 3600)
    m.upsert(Identifier("a100.tj.ctyun"), 1, ex.a100_offer(), expires=NOW + 3600)
    return m


def test_worked_example_cheapest_first(three_pools: Matcher) -> None:
    """REQ-QRY-060..064 (spec 4.10.1): 1 vCPU + 2 GiB + 100 GiB for 3 months: Guizhou 30 CNY first."""
    q = validate(
        Query,
        {
            "class": "general",
            "demand": {"vcpu": 1, "memory_mib": 2048, "storage_gib": 100},
            "duration_s": THREE_MONTHS_S,
            "currency": "CNY",
            "order": ["cost"],
        },
    )
    results = three_pools.search(q, now=NOW)
    assert [(r.name.to_text(), r.cost.total) for r in results] == [
        ("gz-pool.ctyun", Decimal(30)),
        ("nm-pool.ctyun", Decimal(33)),
        ("tj-pool.ctyun", Decimal("65.7")),
    ]
    gz = results[0].cost
    assert gz.currency == "CNY" and gz.units == 1
    assert [(i.resource, i.quantity, i.cost) for i in gz.items] == [
        ("vcpu", Decimal(1), Decimal(15)),
        ("memory_gib", Decimal(2), Decimal(6)),
        ("storage_gib", Decimal(100), Decimal(9)),
    ]
    assert all(i.billed_s == THREE_MONTHS_S for i in gz.items)
    assert results == naive_search(three_pools.listings(), q, now=NOW)


def test_worked_example_with_daily_billing() -> None:
    """REQ-CAP-022: with the pools' own daily granularity, 91.25 days bill as 92 (spec 4.10.1)."""

    def daily(offer: OfferBody) -> OfferBody:
        return offer.model_copy(
            update={"price": offer.price.model_copy(update={"billing_granularity_s": 86_400})}
        )

    m = Matcher()
    m.upsert(Identifier("gz.ctyun"), 1, daily(ex.guizhou_offer()), expires=NOW + 60)
    m.upsert(Identifier("nm.ctyun"), 1, daily(ex.inner_mongolia_offer()), expires=NOW + 60)
    m.upsert(Identifier("tj.ctyun"), 1, ex.tianjin_offer(), expires=NOW + 60)
    q = validate(
        Query,
        {
            "demand": {"vcpu": 1, "memory_mib": 2048, "storage_gib": 100},
            "duration_s": THREE_MONTHS_S,
            "currency": "CNY",
            "order": ["cost"],
        },
    )
    results = m.search(q, now=NOW)
    assert [r.name.to_text() for r in results] == ["gz.ctyun", "nm.ctyun", "tj.ctyun"]
    assert results[1].cost.total == Decimal("33.271232876712328768")
    assert results == naive_search(m.listings(), q, now=NOW)


def a100(region: str, share: str, amount: str, rtt: dict[str, int], count: int = 8) -> OfferBody:
    base = ex.a100_offer()
    acc = base.unit.accelerators
    assert acc is not None
    return base.model_copy(
        update={
            "unit": base.unit.model_copy(
                update={"accelerators": acc.model_copy(update={"count": count})}
            ),
            "location": base.location.model_copy(update={"region": region}),
            "energy": base.energy.model_copy(update={"renewable_share": Decimal(share)}),  # type: ignore[union-attr]
            "price": base.price.model_copy(
                update={
                    "items": [base.price.items[0].model_copy(update={"amount": Decimal(amount)})]
                }
            ),
            "network": base.network.model_copy(update={"rtt_us": rtt}),
        }
    )


def test_scheduler_example_8xa100_near_tianjin() -> None:
    """REQ-QRY-025, REQ-QRY-030, REQ-QRY-050: 8 x A100 80 GB within 3 ms of Tianjin, green, cheapest."""
    m = Matcher()
    pools = {
        "tj-brown.ai": a100("CN-TJ", "0.3", "9", {"CN-TJ": 300}),  # not green enough
        "tj-green.ai": a100("CN-TJ", "0.6", "9.5", {"CN-TJ": 300}),
        "bj-green.ai": a100("CN-BJ", "0.7", "9.2", {}),  # 1 ms from Tianjin by the model
        "he-green.ai": a100("CN-HE", "0.9", "8.8", {"CN-TJ": 3500}),  # measured too far
        "nm-green.ai": a100("CN-NM", "0.95", "6", {"CN-TJ": 7500}),  # far west, cheap
        "tj-small.ai": a100("CN-TJ", "0.8", "1", {"CN-TJ": 300}, count=4),  # 4 per unit
    }
    for name, offer in pools.items():
        m.upsert(Identifier(name), 1, offer, expires=NOW + 600)
    q = validate(
        Query,
        {
            "class": "intelligent",
            "accelerator": {"model": ["a100-80g"], "count_min": 8, "memory_gib_min": 80},
            "demand": {"accelerators": 8},
            "near": {"region": "CN-TJ", "max_rtt_us": 3000},
            "renewable_share_min": "0.5",
            "currency": "CNY",
            "order": ["cost", "latency"],
        },
    )
    results = m.search(q, now=NOW, latency=MODEL)
    assert [(r.name.to_text(), r.cost.total, r.rtt_us) for r in results] == [
        ("bj-green.ai", Decimal("73.6"), 1000),
        ("tj-green.ai", Decimal(76), 300),
    ]
    assert results == naive_search(m.listings(), q, now=NOW, latency=MODEL)
    # without a model only measured RTTs count: Beijing's pool is unknown, hence out
    assert [r.name.to_text() for r in m.search(q, now=NOW)] == ["tj-green.ai"]


# --- budget, expiry, currencies, cursors -----------------------------------------------------


def test_budget_refuses_before_working(three_pools: Matcher) -> None:
    """QUERY_TOO_EXPENSIVE: a candidate set over the budget is refused."""
    q = validate(Query, {"class": "general", "currency": "CNY", "order": ["cost"]})
    assert len(three_pools.search(q, now=NOW, budget=3)) == 3
    with pytest.raises(QueryTooExpensiveError) as info:
        three_pools.search(q, now=NOW, budget=2)
    assert info.value.detail == {"candidates": 3, "budget": 2}
    assert info.value.code == 6005
    # narrowing counts: one intelligent offer fits a budget of one
    gpu = validate(Query, {"class": "intelligent"})
    assert len(three_pools.search(gpu, now=NOW, budget=1)) == 1
    # a query nothing can match costs nothing
    assert three_pools.search(validate(Query, {"region_in": ["XX-ZZ"]}), now=NOW, budget=0) == []


def test_expired_offers_never_match(three_pools: Matcher) -> None:
    """REQ-SIG-033 / REQ-REC-006: an offer is not served at or past its expiry."""
    q = validate(Query, {"class": "general"})
    assert len(three_pools.search(q, now=NOW + 3599)) == 3
    assert three_pools.search(q, now=NOW + 3600) == []
    three_pools.update_availability(Identifier("gz-pool.ctyun"), 10, NOW + 7200)
    assert [r.name.to_text() for r in three_pools.search(q, now=NOW + 3600)] == ["gz-pool.ctyun"]
    assert three_pools.prune(NOW + 3600) == 3
    assert len(three_pools) == 1


def test_latency_walk_over_an_empty_catalogue() -> None:
    """REQ-QRY-054: ranking by RTT with no offer at all is an empty answer, not a crash.

    Found by the paging property: the latency walk indexed the first RTT level of
    an empty list of places.
    """
    q = validate(
        Query, {"near": {"region": "CN-BJ"}, "order": ["latency"], "arch": ["x86_64"], "limit": 1}
    )
    for walk_min in (0, 4096):
        m = Matcher(walk_min=walk_min)
        assert m.search(q, now=NOW, latency=MODEL) == []
        assert m.search_page(q, now=NOW, latency=MODEL).results == []


def test_mixed_currencies_are_never_ranked_together(three_pools: Matcher) -> None:
    """REQ-QRY-064: without a currency, matches in two currencies are refused like rank() does."""
    usd = hourly(ex.guizhou_offer()).model_copy(
        update={"price": ex.guizhou_offer().price.model_copy(update={"currency": "USD"})}
    )
    three_pools.upsert(Identifier("us.pool"), 1, usd, expires=NOW + 60)
    q = validate(Query, {"class": "general", "order": ["availability"]})
    with pytest.raises(DemandRejectedError) as info:
        three_pools.search(q, now=NOW)
    assert info.value.detail["rule"] == "currency_mismatch"
    with pytest.raises(DemandRejectedError):
        naive_search(three_pools.listings(), q, now=NOW)
    cny = q.model_copy(update={"currency": "CNY"})
    assert [r.name.to_text() for r in three_pools.search(cny, now=NOW)] == [
        "gz-pool.ctyun",
        "nm-pool.ctyun",
        "tj-pool.ctyun",
    ]


def test_cursor_from_another_query_is_refused(three_pools: Matcher) -> None:
    """REQ-QRY-007: a cursor is opaque and bound to its query."""
    q = validate(Query, {"class": "general", "currency": "CNY", "order": ["cost"], "limit": 1})
    page = three_pools.search_page(q, now=NOW)
    assert page.next_cursor is not None
    other = q.model_copy(update={"order": ["availability"], "cursor": page.next_cursor})
    for bad in (other, q.model_copy(update={"cursor": "AAAA"})):
        with pytest.raises(SchemaError) as info:
            three_pools.search(bad, now=NOW)
        assert info.value.field == "cursor"


def test_weighted_scores_are_written_truncated(three_pools: Matcher) -> None:
    """REQ-QRY-053: weighted score = mean normalised goodness, truncated to 6 digits."""
    q = validate(
        Query,
        {
            "class": "general",
            "currency": "CNY",
            "demand": {"vcpu": 1, "memory_mib": 2048, "storage_gib": 100},
            "duration_s": THREE_MONTHS_S,
            "order": ["cost", "renewable"],
            "weights": {"cost": "2", "renewable": "1"},
        },
    )
    results = three_pools.search(q, now=NOW)
    assert results == naive_search(three_pools.listings(), q, now=NOW)
    # cost goodness: (65.7 - c) / (65.7 - 30); renewable: (s - 0.25) / (0.81 - 0.25)
    assert [r.name.to_text() for r in results] == [
        "nm-pool.ctyun",
        "gz-pool.ctyun",
        "tj-pool.ctyun",
    ]
    nm = (2 * Fraction("32.7") / Fraction("35.7") + 1) / 3
    gz = (2 + Fraction("0.37") / Fraction("0.56")) / 3
    assert results[0].score == Decimal(math.floor(nm * 10**6)) / 10**6 == Decimal("0.943977")
    assert results[1].score == Decimal(math.floor(gz * 10**6)) / 10**6
    assert results[-1].score == Decimal(0)


def test_update_availability_validates(three_pools: Matcher) -> None:
    """REQ-CAP-031: free units never exceed the total; unknown names are a KeyError."""
    with pytest.raises(SchemaError):
        three_pools.update_availability(Identifier("gz-pool.ctyun"), 9000, NOW + 60)
    with pytest.raises(KeyError):
        three_pools.update_availability(Identifier("nobody"), 1, NOW + 60)
    three_pools.update_availability(Identifier("gz-pool.ctyun"), 0, NOW + 60)
    assert three_pools.listing(Identifier("gz-pool.ctyun")).offer.availability.units_free == 0
    q = validate(Query, {"class": "general"})
    assert "gz-pool.ctyun" not in [r.name.to_text() for r in three_pools.search(q, now=NOW)]


# --- scale: walks, updates and memory -------------------------------------------------------


def synthetic(n: int, seed: int = 7) -> list[Listing]:
    from benchmarks.catalogue import generate

    return [Listing(o.name, o.serial, o.offer, o.expires) for o in generate(n, seed=seed, now=NOW)]


def test_walks_equal_gathering_on_a_synthetic_catalogue() -> None:
    """Ladder walks (cost, renewable, availability, name) equal the reference on 3,000 offers."""
    listings = synthetic(3000)
    walk = build(listings, walk_min=0)
    gather = build(listings, walk_min=10**9)
    from benchmarks.catalogue import query_shapes

    for label, q in query_shapes().items():
        got = outcome(lambda q=q: walk.search(q, now=NOW, latency=MODEL))
        assert got == outcome(lambda q=q: gather.search(q, now=NOW, latency=MODEL)), label
    # and exactly the scan on a sample of them (the scan prices everything: slow)
    for label in (
        "gpu_a100_tj",
        "general_worked_example",
        "green_general",
        "storage_cheapest",
        "weighted_hopper",
        "near_bj_latency",
        "tj_by_name",
    ):
        q = query_shapes()[label]
        assert walk.search(q, now=NOW, latency=MODEL) == naive_search(
            listings, q, now=NOW, latency=MODEL
        ), label


def test_update_does_not_rebuild_and_memory_is_measured() -> None:
    """Incremental updates touch one slot; the index reports its own size per offer."""
    listings = synthetic(2000, seed=3)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    m = build(listings)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    stats = m.stats()
    assert stats.offers == 2000 and stats.signatures <= 2000
    assert 0 < stats.index_bytes < used
    name = listings[0].name
    cap = stats.capacity
    m.update_availability(name, 0, NOW + 60)
    m.upsert(name, 2, listings[1].offer, expires=NOW + 60)
    assert m.stats().capacity == cap


def test_breakdown_matches_price_demand_exactly() -> None:
    """REQ-QRY-063: the matcher's itemised costs are price_demand's, item by item."""
    listings = synthetic(400, seed=11)
    m = build(listings)
    for demand, duration in (
        (ResourceDemand(units=1), 3600),
        (ResourceDemand(vcpu=3, memory_mib=5000, storage_gib=300), THREE_MONTHS_S),
        (ResourceDemand(accelerators=8), 86_400 + 1),
    ):
        q = Query(demand=demand, duration_s=duration, currency="CNY", order=["cost"], limit=1000)
        for match in m.search(q, now=NOW):
            offer = m.listing(match.name).offer
            assert match.cost == price_demand(offer.price, offer.unit, demand, duration)


def test_tflops_is_the_units_throughput() -> None:
    """REQ-QRY-026: count × per-device figure, plus hpc.fp64_tflops for fp64."""
    gpu = ex.a100_offer()  # 8 × A100: fp64 9.7 per device, 77.6 per unit
    hpc = gpu.model_copy(
        update={
            "compute_class": "super",
            "unit": gpu.unit.model_copy(
                update={
                    "accelerators": None,
                    "hpc": Hpc(
                        nodes=4, fp64_tflops=Decimal("80"), interconnect="ib", scheduler="slurm"
                    ),
                }
            ),
        }
    )
    m = Matcher()
    m.upsert(Identifier("gpu.lab"), 1, gpu, expires=NOW + 60)
    m.upsert(Identifier("hpc.lab"), 1, hpc, expires=NOW + 60)

    def names(tflops: dict[str, str]) -> list[str]:
        q = validate(Query, {"tflops_min": tflops})
        got = [r.name.to_text() for r in m.search(q, now=NOW)]
        assert got == [r.name.to_text() for r in naive_search(m.listings(), q, now=NOW)]
        return got

    assert names({"fp64": "77.6"}) == ["gpu.lab", "hpc.lab"]
    assert names({"fp64": "77.7"}) == ["hpc.lab"]
    assert names({"fp64": "80.1"}) == []
    assert names({"bf16": "2496"}) == ["gpu.lab"]  # 8 × 312
    assert names({"bf16": "2496.1"}) == []
    assert names({"fp8": "1"}) == []  # no figure: no match


def test_matching_modules_are_sans_io() -> None:
    """STYLE 1: matching, latency and the text language load no asyncio or aiohttp."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import cid.matching, cid.latency, cid.query_text\n"
        "print(','.join(sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('asyncio', 'aiohttp', 'asyncpg', 'sqlite3'))))\n"
    )
    # a coverage run measures subprocesses by loading itself (and sqlite3) into them
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == ""
