"""Query messages, costing and ranking (spec section 7)."""

from __future__ import annotations

import copy
import hashlib
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cid import examples as ex
from cid.codec import decode, encode
from cid.envelope import sign_record
from cid.errors import DemandRejectedError, SchemaError
from cid.identifier import Identifier
from cid.model import WireModel, validate
from cid.query import (
    COST_DECIMALS,
    DEFAULT_DURATION_S,
    SCORE_DECIMALS,
    AcceleratorConstraint,
    Candidate,
    CostBreakdown,
    CostItem,
    ListItem,
    ListRequest,
    ListResponse,
    Match,
    Near,
    Query,
    Referral,
    ResolveRequest,
    ResolveResponse,
    ResourceDemand,
    SearchResponse,
    SoftwareConstraint,
    VersionRange,
    billed_seconds,
    exact_item_cost,
    item_cost,
    per_unit_amount,
    price_demand,
    rank,
    round_cost,
    unit_rate,
    units_needed,
)
from cid.record import Accelerator, Cpu, Hpc, Price, PriceItem, Storage, Unit
from cid.signing import b64url_encode

MONTH_S = 2_628_000
THREE_MONTHS_S = 3 * MONTH_S
WORKED_DEMAND = ResourceDemand(vcpu=1, memory_mib=2048, storage_gib=100)


def digest(seed: str) -> str:
    return b64url_encode(hashlib.sha256(seed.encode()).digest())


def roundtrip(model: WireModel) -> None:
    """Encode in both canonical encodings, decode, validate: the same model and bytes."""
    for encoding in ("json", "msgpack"):
        data = encode(model.to_value(), encoding)
        again = validate(type(model), decode(data, encoding))
        assert again == model
        assert encode(again.to_value(), encoding) == data


def reject(model: type[WireModel], value: Any, field: str, rule: str | None = None) -> None:
    with pytest.raises(SchemaError) as info:
        validate(model, value)
    assert info.value.field == field, info.value
    if rule is not None:
        assert info.value.detail["rule"] == rule, info.value


def general_unit(**kw: Any) -> Unit:
    base: dict[str, Any] = {"vcpu": 1, "cpu": Cpu(arch="x86_64"), "memory_mib": 2048}
    base.update(kw)
    return Unit(**base)


def price(*items: tuple[str, str, str], granularity: int = 1, minimum: int = 0) -> Price:
    return Price(
        currency="CNY",
        items=[PriceItem(resource=r, amount=Decimal(a), per=p) for r, a, p in items],
        billing_granularity_s=granularity,
        minimum_term_s=minimum,
    )


# --- the worked example and price rules ------------------------------------------------------


def guizhou_price() -> Price:
    """The Guizhou price of spec 4.10.1 (hourly granularity, one-month minimum term)."""
    return price(
        ("vcpu", "5", "month"),
        ("memory_gib", "1", "month"),
        ("storage_gib", "0.03", "month"),
        granularity=3600,
        minimum=MONTH_S,
    )


def test_worked_example_guizhou_30_cny() -> None:
    """REQ-QRY-060..064, REQ-CAP-021..023: 1 vCPU + 2 GiB + 100 GiB for 3 months is 30 CNY."""
    gz = ex.guizhou_offer()
    hourly = guizhou_price()
    cost = price_demand(hourly, gz.unit, WORKED_DEMAND, THREE_MONTHS_S, currency="CNY")
    assert cost.total == Decimal(30)
    assert cost.units == 1
    assert [(i.resource, i.quantity, i.cost) for i in cost.items] == [
        ("vcpu", Decimal(1), Decimal(15)),
        ("memory_gib", Decimal(2), Decimal(6)),
        ("storage_gib", Decimal(100), Decimal(9)),
    ]
    assert all(i.billed_s == THREE_MONTHS_S for i in cost.items)
    assert cost.to_value()["total"] == "30"
    roundtrip(cost)


def test_worked_example_other_regions() -> None:
    """REQ-QRY-061, REQ-CAP-023: the figures of spec 4.10.1 for Inner Mongolia and Tianjin."""
    nm = ex.inner_mongolia_offer()
    daily = price(
        ("unit", "7", "month"),
        ("storage_gib", "0.04", "month"),
        granularity=86_400,
        minimum=MONTH_S,
    )
    cost = price_demand(daily, nm.unit, WORKED_DEMAND, THREE_MONTHS_S)
    assert cost.total == Decimal("33.271232876712328768")
    assert cost.exact_total() == Fraction(12144, 365)
    assert {i.billed_s for i in cost.items} == {92 * 86_400}
    hourly = daily.model_copy(update={"billing_granularity_s": 3600})
    assert price_demand(hourly, nm.unit, WORKED_DEMAND, THREE_MONTHS_S).total == Decimal(33)
    tj = ex.tianjin_offer()
    assert price_demand(tj.price, tj.unit, WORKED_DEMAND, THREE_MONTHS_S).total == Decimal("65.7")


def test_worked_example_cheapest_first_picks_guizhou() -> None:
    """REQ-QRY-050, REQ-QRY-054: the cheapest of the three pools is Guizhou."""
    query = validate(
        Query,
        {
            "class": "general",
            "demand": {"vcpu": 1, "memory_mib": 2048, "storage_gib": 100},
            "duration_s": THREE_MONTHS_S,
            "currency": "CNY",
            "order": ["cost"],
            "limit": 1,
        },
    )
    cands = []
    for name, offer, p in (
        ("tj.ctyun", ex.tianjin_offer(), ex.tianjin_offer().price),
        ("gz.ctyun", ex.guizhou_offer(), guizhou_price()),
        ("nm.ctyun", ex.inner_mongolia_offer(), ex.inner_mongolia_offer().price),
    ):
        cost = price_demand(p, offer.unit, query.effective_demand, query.effective_duration_s)
        cands.append(Candidate(Identifier(name), 1, cost, offer.availability.units_free))
    ranked = rank(query, cands)[: query.limit]
    assert [(m.name.to_text(), m.cost.total) for m in ranked] == [("gz.ctyun", Decimal(30))]


def test_daily_granularity_rounds_up_partial_days() -> None:
    """REQ-CAP-022, REQ-CAP-023: 3 months (91.25 days) billed per day is billed as 92 days."""
    daily = guizhou_price().model_copy(update={"billing_granularity_s": 86_400})
    cost = price_demand(daily, general_unit(), WORKED_DEMAND, THREE_MONTHS_S)
    assert {i.billed_s for i in cost.items} == {92 * 86_400}
    assert cost.exact_total() == Fraction(30 * 92 * 86_400, THREE_MONTHS_S)
    # written rounded towards +infinity at 18 digits; items are rounded on their own
    assert cost.total == Decimal("30.246575342465753425")
    assert sum((i.cost for i in cost.items), Decimal(0)) == Decimal("30.246575342465753426")


@pytest.mark.parametrize(
    ("duration", "granularity", "minimum", "billed"),
    [
        (1, 1, 0, 1),
        (1, 3600, 0, 3600),
        (3600, 3600, 0, 3600),
        (3601, 3600, 0, 7200),
        (10, 1, 3600, 3600),
        (10, 7200, 3600, 7200),
        (MONTH_S + 1, 86_400, MONTH_S, 31 * 86_400),
    ],
)
def test_billed_seconds(duration: int, granularity: int, minimum: int, billed: int) -> None:
    """REQ-CAP-022: billed = max(duration, minimum term) rounded up to the granularity."""
    p = price(("unit", "1", "hour"), granularity=granularity, minimum=minimum)
    assert billed_seconds(p, duration) == billed


def test_billed_seconds_rejects_zero_duration() -> None:
    """REQ-CAP-022: a duration is at least one second."""
    with pytest.raises(SchemaError):
        billed_seconds(price(("unit", "1", "hour")), 0)


def test_minimum_term_applies() -> None:
    """REQ-CAP-022: a one-hour demand on a monthly-minimum pool pays for the month."""
    p = price(("unit", "7", "month"), granularity=86_400, minimum=MONTH_S)
    cost = price_demand(p, general_unit(), ResourceDemand(units=1), 3600)
    assert cost.items[0].billed_s == 31 * 86_400
    assert cost.total == round_cost(Fraction(7 * 31 * 86_400, MONTH_S))


@pytest.mark.parametrize(
    ("demand", "units"),
    [
        (ResourceDemand(vcpu=1), 1),
        (ResourceDemand(vcpu=3), 2),
        (ResourceDemand(vcpu=4), 2),
        (ResourceDemand(memory_mib=4097), 3),
        (ResourceDemand(vcpu=1, memory_mib=8192), 4),
        (ResourceDemand(units=5, vcpu=1), 5),
        (ResourceDemand(storage_gib=50), 2),
        (ResourceDemand(accelerators=9), 3),
    ],
)
def test_units_needed_rounds_up(demand: ResourceDemand, units: int) -> None:
    """REQ-QRY-060: units = max over resources of ceil(demanded / per unit)."""
    unit = general_unit(
        vcpu=2,
        memory_mib=2048,
        storage_gib=40,
        accelerators=Accelerator(vendor="x", model="y", count=4, memory_gib=16),
    )
    assert units_needed(unit, demand) == units


def test_attached_storage_is_bought_by_the_gib() -> None:
    """REQ-QRY-061, REQ-CAP-021: a unit without storage bills the storage the demand states."""
    p = price(("unit", "7", "month"), ("storage_gib", "0.04", "month"))
    cost = price_demand(p, general_unit(), WORKED_DEMAND, THREE_MONTHS_S)
    assert cost.units == 1
    assert [(i.resource, i.quantity) for i in cost.items] == [
        ("unit", Decimal(1)),
        ("storage_gib", Decimal(100)),
    ]
    assert cost.total == Decimal(33)


def test_storage_in_the_unit_adds_units() -> None:
    """REQ-QRY-060, REQ-CAP-021: storage the unit includes is bought in whole units."""
    unit = general_unit(storage_gib=40)
    p = price(("unit", "7", "month"), ("storage_gib", "0.05", "month"))
    cost = price_demand(p, unit, WORKED_DEMAND, THREE_MONTHS_S)
    assert cost.units == 3
    assert [(i.resource, i.quantity, i.cost) for i in cost.items] == [
        ("unit", Decimal(3), Decimal(63)),
        ("storage_gib", Decimal(120), Decimal(18)),
    ]


def test_storage_without_storage_item_adds_units() -> None:
    """REQ-QRY-060, REQ-QRY-061: without a storage item, storage sizes the unit count."""
    unit = general_unit(storage_gib=40)
    cost = price_demand(price(("unit", "10", "month")), unit, WORKED_DEMAND, MONTH_S)
    assert cost.units == 3
    assert cost.total == Decimal(30)


def test_storage_service_counts_as_unit_storage() -> None:
    """REQ-CAP-021: a unit's storage is storage_gib plus its storage service's capacity."""
    unit = Unit(storage_gib=24, storage=Storage(kind="object", capacity_gib=1000))
    p = price(("storage_gib", "0.02", "month"))
    cost = price_demand(p, unit, ResourceDemand(storage_gib=1500), MONTH_S)
    assert cost.units == 2
    assert [(i.resource, i.quantity, i.cost) for i in cost.items] == [
        ("storage_gib", Decimal(2048), Decimal("40.96")),
    ]


def test_zero_quantity_items_are_omitted() -> None:
    """REQ-QRY-065: no attached storage, no storage line."""
    p = price(("vcpu", "5", "month"), ("storage_gib", "0.03", "month"))
    cost = price_demand(p, general_unit(), ResourceDemand(vcpu=1), MONTH_S)
    assert [i.resource for i in cost.items] == ["vcpu"]
    assert cost.total == Decimal(5)


def test_memory_quantity_is_exact_gib() -> None:
    """REQ-QRY-063: MiB become GiB exactly (1 MiB = 0.0009765625 GiB)."""
    p = price(("memory_gib", "1024", "hour"))
    unit = Unit(vcpu=1, cpu=Cpu(arch="x86_64"), memory_mib=1)
    cost = price_demand(p, unit, ResourceDemand(units=3), 3600)
    assert cost.items[0].quantity == Decimal("0.0029296875")
    assert cost.total == Decimal(3)
    roundtrip(cost)


def test_accelerator_and_node_items() -> None:
    """REQ-QRY-060: accelerator and node items count per unit."""
    a100 = ex.a100_offer()
    cost = price_demand(a100.price, a100.unit, ResourceDemand(accelerators=8), 1800)
    assert cost.units == 1
    assert cost.items[0].quantity == Decimal(8)
    assert cost.total == Decimal(76)  # minimum term one hour
    hpc = Unit(hpc=Hpc(nodes=4, fp64_tflops=Decimal(10), interconnect="ib", scheduler="slurm"))
    p = price(("node", "2", "hour"), ("unit", "1", "hour"))
    cost = price_demand(p, hpc, ResourceDemand(units=2), 3600)
    assert [(i.resource, i.quantity) for i in cost.items] == [
        ("node", Decimal(8)),
        ("unit", Decimal(2)),
    ]
    attached = ResourceDemand(units=2, nodes=3)
    cost = price_demand(price(("node", "2", "hour")), general_unit(), attached, 3600)
    assert cost.units == 2
    assert [(i.resource, i.quantity) for i in cost.items] == [("node", Decimal(3))]
    cost = price_demand(price(("node", "2", "hour")), general_unit(), ResourceDemand(units=2), 3600)
    assert cost.items == [] and cost.total == 0


def test_currency_mismatch_raises() -> None:
    """REQ-QRY-064: a price in another currency is refused, never converted."""
    gz = ex.guizhou_offer()
    with pytest.raises(DemandRejectedError) as info:
        price_demand(gz.price, gz.unit, WORKED_DEMAND, MONTH_S, currency="USD")
    assert info.value.field == "currency"
    assert info.value.detail["rule"] == "currency_mismatch"


@pytest.mark.parametrize(
    ("unit", "demand", "field"),
    [
        (Unit(storage_gib=10), ResourceDemand(vcpu=1), "demand.vcpu"),
        (Unit(vcpu=1), ResourceDemand(memory_mib=1), "demand.memory_mib"),
        (Unit(vcpu=1), ResourceDemand(accelerators=1), "demand.accelerators"),
        (Unit(vcpu=1), ResourceDemand(storage_gib=1), "demand.storage_gib"),
        (Unit(vcpu=1), ResourceDemand(nodes=1), "demand.nodes"),
        (Unit(vcpu=1), ResourceDemand(vcpu=1_000_001), "demand.units"),
    ],
)
def test_unsatisfiable_demand(unit: Unit, demand: ResourceDemand, field: str) -> None:
    """REQ-QRY-061: a resource the unit lacks and the price does not charge cannot be had."""
    with pytest.raises(DemandRejectedError) as info:
        price_demand(price(("unit", "1", "hour")), unit, demand, 3600)
    assert info.value.field == field
    assert info.value.detail["rule"] == "unsatisfiable"


def test_rounding_is_towards_infinity_at_18_digits() -> None:
    """REQ-CAP-023, REQ-QRY-063: exact arithmetic; written values rounded up at 18 digits."""
    assert COST_DECIMALS == 18
    assert round_cost(Fraction(1, 3)) == Decimal("0.333333333333333334")
    assert round_cost(Fraction(2, 3)) == Decimal("0.666666666666666667")
    assert round_cost(Fraction(1, 10**19)) == Decimal("0.000000000000000001")
    assert round_cost(Fraction(0)) == Decimal(0)
    assert round_cost(Fraction(-1, 2)) == Decimal("-0.5")
    assert round_cost(Fraction(123, 1)) == Decimal(123)
    # 1 CNY per month for one second: 1 / 2628000
    assert item_cost(Decimal(1), Decimal(1), 1, "month") == Decimal("0.000000380517503806")
    assert exact_item_cost(Decimal(1), Decimal(1), 1, "month") == Fraction(1, 2_628_000)
    # every written value is a canonical decimal string
    assert validate(
        CostItem,
        CostItem(
            resource="unit",
            quantity=Decimal(1),
            amount=Decimal(1),
            per="month",
            billed_s=1,
            cost=Decimal("0.000000380517503806"),
        ).to_value(),
    )


def test_unit_rate() -> None:
    """REQ-QRY-043: the exact list price of one unit per period, attached resources excluded."""
    gz = ex.guizhou_offer()
    assert unit_rate(gz.price, gz.unit, "month") == 7
    assert unit_rate(gz.price, gz.unit, "year") == 84
    assert unit_rate(gz.price, gz.unit, "day") == Fraction(7 * 86_400, MONTH_S)
    tj = ex.tianjin_offer()
    assert unit_rate(tj.price, tj.unit) == Fraction("0.02")


amounts = st.decimals(min_value=0, max_value=1000, places=4, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    vcpu=st.integers(0, 64),
    memory=st.integers(0, 262_144),
    storage=st.integers(0, 10_000),
    units=st.integers(0, 8),
    duration=st.integers(1, 2 * 31_536_000),
    a=amounts,
    b=amounts,
    c=amounts,
    granularity=st.sampled_from([1, 60, 3600, 86_400]),
    minimum=st.sampled_from([0, 3600, MONTH_S]),
    per=st.sampled_from(["second", "minute", "hour", "day", "month", "year"]),
)
def test_price_demand_properties(
    vcpu: int,
    memory: int,
    storage: int,
    units: int,
    duration: int,
    a: Decimal,
    b: Decimal,
    c: Decimal,
    granularity: int,
    minimum: int,
    per: str,
) -> None:
    """REQ-QRY-060..065, REQ-CAP-022, REQ-CAP-023: breakdowns validate, round up, round-trip."""
    if not (vcpu or memory or storage or units):
        units = 1
    demand = ResourceDemand(vcpu=vcpu, memory_mib=memory, storage_gib=storage, units=units)
    p = Price(
        currency="CNY",
        items=[
            PriceItem(resource="vcpu", amount=a, per=per),
            PriceItem(resource="memory_gib", amount=b, per=per),
            PriceItem(resource="storage_gib", amount=c, per="month"),
        ],
        billing_granularity_s=granularity,
        minimum_term_s=minimum,
    )
    unit = general_unit(vcpu=2, memory_mib=4096, storage_gib=20)
    cost = price_demand(p, unit, demand, duration)
    exact = cost.exact_total()
    assert exact <= Fraction(cost.total) < exact + Fraction(1, 10**18)
    assert sum((Fraction(i.cost) for i in cost.items), Fraction(0)) >= Fraction(cost.total)
    assert cost.units >= max(units, 1)
    billed = billed_seconds(p, duration)
    assert billed >= duration and billed % granularity == 0 and billed >= minimum
    again = validate(CostBreakdown, decode(encode(cost.to_value(), "json"), "json"))
    assert again == cost
    longer = price_demand(p, unit, demand, duration + granularity)
    assert longer.exact_total() >= exact


def test_large_costs_keep_18_digits() -> None:
    """REQ-CAP-023, REQ-ENC-007: a total above 28 significant digits is written exactly."""
    p = price(("unit", "1000000000000", "year"))
    cost = price_demand(p, general_unit(), ResourceDemand(units=1), MONTH_S)
    assert cost.exact_total() == Fraction(10**12, 12)
    assert cost.to_value()["total"] == "83333333333.333333333333333334"
    roundtrip(cost)


# --- message validation --------------------------------------------------------------------


def test_cost_breakdown_checks_its_arithmetic() -> None:
    """REQ-QRY-063, REQ-CAP-023: a tampered item cost or total is refused."""
    gz = ex.guizhou_offer()
    good = price_demand(gz.price, gz.unit, WORKED_DEMAND, MONTH_S).to_value()
    bad = copy.deepcopy(good)
    bad["items"][0]["cost"] = "1"
    reject(CostBreakdown, bad, "items.0.cost", "item_cost")
    bad = copy.deepcopy(good)
    bad["total"] = "1"
    reject(CostBreakdown, bad, "total", "total")
    bad = copy.deepcopy(good)
    bad["items"][1] = bad["items"][0]
    items = [validate(CostItem, i) for i in bad["items"]]
    bad["total"] = str(round_cost(sum((i.exact_cost() for i in items), Fraction(0))))
    reject(CostBreakdown, bad, "items", "unique")
    bad = copy.deepcopy(good)
    bad["items"][0]["cost"] = 5
    reject(CostBreakdown, bad, "items.0.cost", "decimal_type")
    validate(CostItem, good["items"][0])


SCHEDULER_QUERY: dict[str, Any] = {
    "class": "intelligent",
    "accelerator": {"model": ["a100-80g"], "count_min": 8, "memory_gib_min": 80},
    "demand": {"accelerators": 8},
    "near": {"region": "CN-TJ", "max_rtt_us": 3000},
    "renewable_share_min": "0.5",
    "currency": "CNY",
    "order": ["cost"],
    "limit": 10,
}

GENERAL_QUERY: dict[str, Any] = {
    "class": "general",
    "demand": {"vcpu": 1, "memory_mib": 2048, "storage_gib": 100},
    "duration_s": THREE_MONTHS_S,
    "currency": "CNY",
    "order": ["cost"],
}

FULL_QUERY: dict[str, Any] = {
    "within": "ctyun",
    "class": "general",
    "arch": ["x86_64", "aarch64"],
    "accelerator": {"vendor": "nvidia", "family": "ampere"},
    "tflops_min": {"bf16": "300"},
    "vcpu_min": 1,
    "memory_mib_min": 2048,
    "storage_gib_min": 10,
    "demand": {"vcpu": 2, "units": 1},
    "duration_s": 3600,
    "region_in": ["CN-TJ", "CN-BJ"],
    "region_not_in": ["CN-HE"],
    "country_in": ["CN"],
    "city_in": ["天津"],
    "near": {"region": "CN-TJ", "max_rtt_us": 1000},
    "currency": "CNY",
    "unit_price_max": "1.5",
    "unit_price_per": "hour",
    "total_cost_max": "100",
    "renewable_share_min": "0.5",
    "carbon_g_per_kwh_max": 400,
    "software": [{"name": "cuda", "version": ">=12.0,<13"}, {"name": "ubuntu"}],
    "compliance": ["mlps-3"],
    "units_free_min": 2,
    "order": ["cost", "latency", "renewable", "availability"],
    "weights": {"cost": "2", "latency": "1"},
    "limit": 1000,
    "cursor": "abc_DEF-1",
}


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in changes.items():
        if v is ...:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def test_query_examples_validate() -> None:
    """REQ-QRY-020: the two scheduler examples of spec 7.4 are valid queries."""
    q = validate(Query, SCHEDULER_QUERY)
    assert q.effective_duration_s == DEFAULT_DURATION_S
    assert q.accelerator is not None and q.accelerator.count_min == 8
    g = validate(Query, GENERAL_QUERY)
    assert g.effective_demand == ResourceDemand(vcpu=1, memory_mib=2048, storage_gib=100)
    assert validate(Query, {}).effective_demand == ResourceDemand(units=1)
    full = validate(Query, FULL_QUERY)
    assert full.to_value()["class"] == "general"
    for q in (validate(Query, SCHEDULER_QUERY), g, full, validate(Query, {})):
        roundtrip(q)


QUERY_REJECTIONS: list[tuple[dict[str, Any], str, str | None]] = [
    (with_(GENERAL_QUERY, currency=...), "currency", "currency_required"),
    (with_(GENERAL_QUERY, limit=0), "limit", None),
    (with_(GENERAL_QUERY, limit=1001), "limit", None),
    (with_(GENERAL_QUERY, limit="10"), "limit", None),
    (with_(GENERAL_QUERY, duration_s=0), "duration_s", None),
    (with_(GENERAL_QUERY, order=["cost", "cost"]), "order", "unique"),
    (with_(GENERAL_QUERY, order=["speed"]), "order.0", None),
    (with_(GENERAL_QUERY, bogus=1), "bogus", "extra_forbidden"),
    (with_(GENERAL_QUERY, **{"class": "quantum"}), "class", None),
    (with_(GENERAL_QUERY, arch=[]), "arch", None),
    (with_(GENERAL_QUERY, arch=["x86_64", "x86_64"]), "arch", "unique"),
    (with_(GENERAL_QUERY, demand={}), "demand", "empty_demand"),
    (with_(GENERAL_QUERY, demand={"vcpu": -1}), "demand.vcpu", None),
    (with_(GENERAL_QUERY, unit_price_max="1.0"), "unit_price_max", "decimal_text"),
    (with_(GENERAL_QUERY, unit_price_max=1), "unit_price_max", "decimal_type"),
    (with_(GENERAL_QUERY, unit_price_max="-1"), "unit_price_max", None),
    (with_(GENERAL_QUERY, currency=..., unit_price_max="1"), "currency", "currency_required"),
    (with_(GENERAL_QUERY, currency="cny"), "currency", None),
    (with_(GENERAL_QUERY, unit_price_per="hour"), "unit_price_per", "requires_unit_price_max"),
    (with_(GENERAL_QUERY, total_cost_max="1", duration_s=...), "duration_s", "duration_required"),
    (with_(GENERAL_QUERY, renewable_share_min="1.5"), "renewable_share_min", None),
    (with_(GENERAL_QUERY, carbon_g_per_kwh_max=2001), "carbon_g_per_kwh_max", None),
    (
        with_(GENERAL_QUERY, region_in=["CN-TJ"], region_not_in=["CN-TJ"]),
        "region_not_in",
        "region_overlap",
    ),
    (with_(GENERAL_QUERY, region_in=["Tianjin"]), "region_in.0", None),
    (with_(GENERAL_QUERY, country_in=["CHN"]), "country_in.0", None),
    (with_(GENERAL_QUERY, city_in=[""]), "city_in.0", None),
    (with_(GENERAL_QUERY, compliance=["A"]), "compliance.0", None),
    (
        with_(GENERAL_QUERY, software=[{"name": "cuda", "version": "12"}]),
        "software.0.version",
        "version_range",
    ),
    (with_(GENERAL_QUERY, software=[{"name": "cuda"}, {"name": "cuda"}]), "software", "unique"),
    (with_(GENERAL_QUERY, tflops_min={"fp7": "1"}), "tflops_min.fp7.[key]", None),
    (with_(GENERAL_QUERY, tflops_min={"fp64": "0"}), "tflops_min.fp64", None),
    (with_(GENERAL_QUERY, order=["latency"]), "near", "near_region_required"),
    (
        with_(GENERAL_QUERY, order=["latency"], near={"latency_circle": "jingjinji"}),
        "near",
        "near_region_required",
    ),
    (with_(GENERAL_QUERY, weights={"renewable": "1"}), "weights.renewable", "weight_not_in_order"),
    (with_(GENERAL_QUERY, weights={"cost": "0"}), "weights.cost", None),
    (
        with_(GENERAL_QUERY, currency=..., order=["renewable"], weights={"cost": "1"}),
        "currency",
        "currency_required",
    ),
    (with_(GENERAL_QUERY, near={}), "near.region", "near_one_of"),
    (
        with_(GENERAL_QUERY, near={"region": "CN-TJ", "latency_circle": "x"}),
        "near.region",
        "near_one_of",
    ),
    (
        with_(GENERAL_QUERY, near={"latency_circle": "x", "max_rtt_us": 5}),
        "near.max_rtt_us",
        "requires_region",
    ),
    (with_(GENERAL_QUERY, near={"region": "CN-TJ", "max_rtt_us": 0}), "near.max_rtt_us", None),
    (with_(GENERAL_QUERY, accelerator={"model": ["a", "a"]}), "accelerator.model", "unique"),
    (with_(GENERAL_QUERY, accelerator={"count_min": 0}), "accelerator.count_min", None),
    (with_(GENERAL_QUERY, cursor="not a cursor"), "cursor", None),
    (with_(GENERAL_QUERY, within="bad..name"), "within", "EMPTY_LABEL"),
]


@pytest.mark.parametrize(("value", "field", "rule"), QUERY_REJECTIONS)
def test_query_rejections(value: dict[str, Any], field: str, rule: str | None) -> None:
    """REQ-QRY-002, REQ-QRY-003, REQ-QRY-020..053: invalid queries: SchemaError at the field."""
    reject(Query, value, field, rule)


def test_version_range() -> None:
    """REQ-QRY-034: numeric, component-wise version ranges."""
    r = VersionRange.parse(">=12.0,<13")
    assert r.contains("12") and r.contains("12.4") and r.contains("12.9.9.9")
    assert not r.contains("11.8") and not r.contains("13.0")
    assert VersionRange.parse("==2.4").contains("2.4.0")
    assert VersionRange.parse("!=2.4").contains("2.5")
    assert not VersionRange.parse("!=2.4").contains("2.4")
    assert VersionRange.parse(">1,<=2").contains("2") and not VersionRange.parse(">1").contains("1")
    for bad in ("", "12", ">=", ">= 12", ">=1.2.3.4.5", "~=1", ",".join(["<9"] * 9), "x" * 65):
        with pytest.raises(SchemaError):
            VersionRange.parse(bad)
    s = validate(SoftwareConstraint, {"name": "cuda", "version": ">=12"})
    assert s.range() is not None and s.range().contains("12.4")  # type: ignore[union-attr]
    assert validate(SoftwareConstraint, {"name": "cuda"}).range() is None


def test_accelerator_constraint_may_be_empty() -> None:
    """REQ-QRY-025: an empty accelerator constraint means "has accelerators"."""
    assert validate(AcceleratorConstraint, {}) == AcceleratorConstraint()
    assert validate(Near, {"latency_circle": "jingjinji"}).region is None


# --- resolve and list ------------------------------------------------------------------------


@pytest.fixture
def records() -> dict[str, Any]:
    provider = ex.provider_key()
    offer = sign_record(
        ex.guizhou_offer(),
        name="gz.ctyun",
        serial=3,
        key=provider,
        nbf=ex.EPOCH,
        exp=ex.EPOCH + 3600,
    )
    zone = sign_record(
        ex.zone(provider),
        name="gz.ctyun",
        serial=1,
        key=provider,
        nbf=ex.EPOCH,
        exp=ex.EPOCH + 3600,
    )
    other = sign_record(
        ex.guizhou_offer(),
        name="nm.ctyun",
        serial=1,
        key=provider,
        nbf=ex.EPOCH,
        exp=ex.EPOCH + 3600,
    )
    deleg = sign_record(
        ex.delegation(provider),
        name="ctyun",
        serial=1,
        key=ex.root_key(),
        nbf=ex.EPOCH,
        exp=ex.EPOCH + 3600,
    )
    return {
        "offer": offer.envelope.to_value(),
        "zone": zone.envelope.to_value(),
        "other": other.envelope.to_value(),
        "delegation": deleg.envelope.to_value(),
    }


def test_resolve_messages_roundtrip(records: dict[str, Any]) -> None:
    """REQ-QRY-010..012: resolve requests, answers and referrals round-trip."""
    req = validate(ResolveRequest, {"name": "GZ.ctyun", "types": ["offer"]})
    assert req.name == Identifier("gz.ctyun")
    roundtrip(req)
    resp = validate(
        ResolveResponse, {"name": "gz.ctyun", "records": [records["offer"], records["zone"]]}
    )
    assert [e.header.serial for e in resp.envelopes()] == [3, 1]
    roundtrip(resp)
    referral = validate(
        ResolveResponse,
        {
            "name": "gz.ctyun",
            "referral": {
                "namespace": "ctyun",
                "registries": ["https://registry.ctyun.example/cid"],
                "delegation": records["delegation"],
            },
        },
    )
    assert referral.referral is not None and referral.records == []
    roundtrip(referral)
    roundtrip(validate(ResolveResponse, {"name": "gz.ctyun"}))


def test_resolve_rejections(records: dict[str, Any]) -> None:
    """REQ-QRY-011, REQ-QRY-012: records of the name only; referrals carry none."""
    reject(ResolveRequest, {"name": "gz.ctyun", "types": ["offer", "offer"]}, "types", "unique")
    reject(ResolveRequest, {"name": "gz.ctyun", "types": ["a"]}, "types.0")
    reject(ResolveRequest, {"name": ""}, "name", "EMPTY")
    reject(
        ResolveResponse,
        {"name": "gz.ctyun", "records": [records["other"]]},
        "records.0",
        "record_name",
    )
    reject(
        ResolveResponse,
        {"name": "gz.ctyun", "records": [records["offer"], records["offer"]]},
        "records.1",
        "unique",
    )
    roundtrip(validate(ResolveResponse, {"name": "ctyun", "records": [records["delegation"]]}))
    broken = copy.deepcopy(records["offer"])
    del broken["sigs"]
    reject(ResolveResponse, {"name": "gz.ctyun", "records": [broken]}, "records.0", "envelope")
    non_record = copy.deepcopy(records["offer"])
    non_record["header"]["typ"] = "cid.neg.quote"
    reject(
        ResolveResponse, {"name": "gz.ctyun", "records": [non_record]}, "records.0", "record_typ"
    )
    referral = {
        "namespace": "ctyun",
        "registries": ["https://registry.ctyun.example/cid"],
        "delegation": records["delegation"],
    }
    reject(
        ResolveResponse,
        {"name": "gz.ctyun", "records": [records["offer"]], "referral": referral},
        "records",
        "referral_with_records",
    )
    reject(
        ResolveResponse,
        {"name": "gz.other", "referral": referral},
        "referral.namespace",
        "referral_scope",
    )
    reject(Referral, with_(referral, namespace="other"), "delegation", "referral_name")
    reject(Referral, with_(referral, delegation=records["offer"]), "delegation", "referral_typ")
    reject(Referral, with_(referral, registries=[]), "registries")
    reject(Referral, with_(referral, registries=["ftp://x.example"]), "registries.0")


def test_list_messages() -> None:
    """REQ-QRY-015..017: list requests and pages in canonical order."""
    req = validate(ListRequest, {"namespace": "ctyun", "limit": 2, "cursor": "Zm9v"})
    roundtrip(req)
    assert validate(ListRequest, {"namespace": "ctyun"}).limit == 100
    reject(ListRequest, {"namespace": "ctyun", "limit": 0}, "limit")
    reject(ListRequest, {"namespace": "ctyun", "types": ["zone", "zone"]}, "types", "unique")
    items = [
        {"name": "ctyun", "type": "zone", "serial": 1, "digest": digest("a")},
        {"name": "gz.ctyun", "type": "offer", "serial": 3, "digest": digest("b")},
        {"name": "gz.ctyun", "type": "zone", "serial": 1, "digest": digest("c")},
        {"name": "a.gz.ctyun", "type": "offer", "serial": 1, "digest": digest("d")},
    ]
    page = validate(ListResponse, {"items": items, "next_cursor": "bmV4dA"})
    roundtrip(page)
    reject(ListResponse, {"items": [items[1], items[0]]}, "items.1", "order")
    reject(ListResponse, {"items": [items[1], items[1]]}, "items.1", "order")
    reject(ListItem, with_(items[0], digest="abc"), "digest")
    reject(ListItem, with_(items[0], digest="A" * 42 + "="), "digest")
    reject(ListItem, with_(items[0], digest="A" * 42 + "B"), "digest", "digest")
    reject(ListItem, with_(items[0], serial=0), "serial")


# --- ranking ---------------------------------------------------------------------------------


def cost_of(total: str, currency: str = "CNY") -> CostBreakdown:
    t = Decimal(total)
    return CostBreakdown(
        currency=currency,
        units=1,
        items=[
            CostItem(
                resource="unit", quantity=Decimal(1), amount=t, per="hour", billed_s=3600, cost=t
            )
        ],
        total=t,
    )


def cand(
    name: str,
    total: str,
    *,
    serial: int = 1,
    free: int = 10,
    rtt: int | None = None,
    green: str | None = None,
    currency: str = "CNY",
) -> Candidate:
    return Candidate(
        Identifier(name),
        serial,
        cost_of(total, currency),
        free,
        rtt,
        None if green is None else Decimal(green),
    )


def query(**kw: Any) -> Query:
    base: dict[str, Any] = {"currency": "CNY", "near": {"region": "CN-TJ"}}
    base.update(kw)
    return validate(Query, base)


def names(matches: list[Match]) -> list[str]:
    return [m.name.to_text() for m in matches]


def test_rank_cost_then_tie_break() -> None:
    """REQ-QRY-050, REQ-QRY-054: cheapest first; ties by canonical name order, then serial."""
    cands = [
        cand("b.x", "2"),
        cand("a.y", "1"),
        cand("z.x", "1"),
        cand("x", "1"),
    ]
    # canonical order compares from the root label: x < a.x.. < z.x < a.y
    assert names(rank(query(order=["cost"]), cands)) == ["x", "z.x", "a.y", "b.x"]
    same = [cand("a.x", "1", serial=2), cand("a.x", "1", serial=1)]
    assert [m.serial for m in rank(query(order=["cost"]), same)] == [1, 2]


def test_rank_no_order_is_canonical() -> None:
    """REQ-QRY-054: without order keys, results come in canonical order."""
    cands = [cand("b.x", "3"), cand("a.x", "9")]
    assert names(rank(validate(Query, {}), cands)) == ["a.x", "b.x"]
    assert all(m.rtt_us is None and m.score is None for m in rank(validate(Query, {}), cands))


def test_rank_latency_renewable_availability() -> None:
    """REQ-QRY-050: latency ascending (unknown last), renewable and availability descending."""
    cands = [
        cand("a.x", "1", rtt=900, green="0.2", free=5),
        cand("b.x", "1", rtt=None, green=None, free=50),
        cand("c.x", "1", rtt=300, green="0.8", free=1),
    ]
    assert names(rank(query(order=["latency"]), cands)) == ["c.x", "a.x", "b.x"]
    assert names(rank(query(order=["renewable"]), cands)) == ["c.x", "a.x", "b.x"]
    assert names(rank(query(order=["availability"]), cands)) == ["b.x", "a.x", "c.x"]
    ranked = rank(query(order=["latency"]), cands)
    assert [m.rtt_us for m in ranked] == [300, 900, None]


def test_rank_lexicographic_second_key() -> None:
    """REQ-QRY-050: later keys only break ties of earlier ones."""
    cands = [cand("a.x", "2", rtt=100), cand("b.x", "1", rtt=900), cand("c.x", "1", rtt=200)]
    assert names(rank(query(order=["cost", "latency"]), cands)) == ["c.x", "b.x", "a.x"]


def test_rank_weighted() -> None:
    """REQ-QRY-053: weighted score of min-max normalised keys, truncated to 6 digits."""
    assert SCORE_DECIMALS == 6
    cands = [
        cand("a.x", "10", rtt=100),
        cand("b.x", "20", rtt=300),
        cand("c.x", "30", rtt=200),
        cand("d.x", "10", rtt=None),
    ]
    q = query(order=["cost", "latency"], weights={"cost": "3", "latency": "1"})
    ranked = rank(q, cands)
    assert names(ranked) == ["a.x", "d.x", "b.x", "c.x"]
    assert [m.score for m in ranked] == [
        Decimal(1),
        Decimal("0.75"),
        Decimal("0.375"),
        Decimal("0.125"),
    ]
    roundtrip(SearchResponse(results=ranked))
    one = rank(query(order=["cost"], weights={"cost": "1"}), [cand("a.x", "5")])
    assert one[0].score == Decimal(1)
    green = rank(
        query(order=["renewable"], weights={"renewable": "1"}), [cand("a.x", "5"), cand("b.x", "5")]
    )
    assert [m.score for m in green] == [Decimal(0), Decimal(0)]
    third = rank(
        query(order=["cost"], weights={"cost": "3"}),
        [cand("a.x", "1"), cand("b.x", "2"), cand("c.x", "4")],
    )
    assert [m.score for m in third] == [Decimal(1), Decimal("0.666666"), Decimal(0)]


def test_rank_refuses_mixed_currencies() -> None:
    """REQ-QRY-064: results in two currencies are never ranked together."""
    with pytest.raises(DemandRejectedError):
        rank(query(order=["cost"]), [cand("a.x", "1"), cand("b.x", "1", currency="USD")])
    with pytest.raises(DemandRejectedError):
        rank(query(order=["cost"]), [cand("b.x", "1", currency="USD")])


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a.x", "b.x", "c.y", "x", "d.e.x"]),
            st.integers(1, 3),
            st.integers(0, 5),
            st.one_of(st.none(), st.integers(0, 5000)),
        ),
        max_size=12,
        unique_by=lambda t: (t[0], t[1]),
    ),
    st.permutations(["cost", "latency", "renewable", "availability"]),
    st.booleans(),
)
def test_rank_is_deterministic(
    rows: list[tuple[str, int, int, int | None]], order: list[str], weighted: bool
) -> None:
    """REQ-QRY-054: the ranking does not depend on the input order."""
    cands = [cand(n, str(c), serial=s, rtt=r, free=c * 3 % 7) for n, s, c, r in rows]
    q = query(order=order, weights={order[0]: "2", order[1]: "1"} if weighted else None)
    a = rank(q, cands)
    b = rank(q, list(reversed(cands)))
    assert a == b
    assert len(a) == len(cands)


def test_search_response() -> None:
    """REQ-QRY-055, REQ-QRY-056: results round-trip; a name appears once."""
    m = {
        "name": "gz.ctyun",
        "serial": 3,
        "cost": cost_of("30").to_value(),
        "rtt_us": 9500,
        "score": "0.5",
    }
    resp = validate(SearchResponse, {"results": [m], "next_cursor": "YWJj"})
    roundtrip(resp)
    reject(SearchResponse, {"results": [m, m]}, "results", "unique")
    reject(SearchResponse, {"results": [with_(m, score="1.5")]}, "results.0.score")
    reject(SearchResponse, {"results": [with_(m, serial=0)]}, "results.0.serial")
    reject(Match, with_(m, cost=...), "cost", "missing")


def test_rank_compares_exact_totals() -> None:
    """REQ-CAP-023, REQ-QRY-050: ranking uses exact totals, not their written forms."""
    # 1/3 and (1/3 + 1e-18 / 31536000) are written the same but differ exactly
    a = CostBreakdown.build(
        "CNY",
        1,
        [
            CostItem(
                resource="unit",
                quantity=Decimal(1),
                amount=Decimal(1),
                per="hour",
                billed_s=1200,
                cost=item_cost(Decimal(1), Decimal(1), 1200, "hour"),
            )
        ],
    )
    b_items = [
        *a.items,
        CostItem(
            resource="vcpu",
            quantity=Decimal(1),
            amount=Decimal("0.000000000000000001"),
            per="year",
            billed_s=1,
            cost=Decimal("0.000000000000000001"),
        ),
    ]
    b = CostBreakdown.build("CNY", 1, b_items)
    assert a.total == b.total == Decimal("0.333333333333333334")
    assert a.exact_total() < b.exact_total()
    cands = [Candidate(Identifier("a.x"), 1, b, 1), Candidate(Identifier("b.x"), 1, a, 1)]
    assert names(rank(query(order=["cost"]), cands)) == ["b.x", "a.x"]


def test_per_unit_amounts() -> None:
    """REQ-CAP-021: Table 4-7 per-unit amounts."""
    unit = general_unit(vcpu=4, memory_mib=3072, storage_gib=10)
    assert per_unit_amount("unit", unit) == 1
    assert per_unit_amount("vcpu", unit) == 4
    assert per_unit_amount("memory_gib", unit) == Fraction(3)
    assert per_unit_amount("storage_gib", unit) == 10
    assert per_unit_amount("accelerator", unit) == 0
    assert per_unit_amount("node", unit) == 0
    assert units_needed(unit, ResourceDemand(storage_gib=21)) == 3
    with pytest.raises(DemandRejectedError):
        units_needed(unit, ResourceDemand(accelerators=1))
    assert (
        units_needed(unit, ResourceDemand(accelerators=1), price(("accelerator", "1", "hour"))) == 1
    )


def test_cost_beyond_decimal_range_is_a_schema_error() -> None:
    """REQ-QRY-063, REQ-ENC-007: a cost with more than 28 integer digits cannot be written."""
    p = price(("unit", "9" * 27, "second"), minimum=MONTH_S)
    with pytest.raises(SchemaError) as info:
        price_demand(p, general_unit(), ResourceDemand(units=1), 1)
    assert info.value.detail["rule"] == "cost_range"
