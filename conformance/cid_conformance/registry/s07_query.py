"""§7 Query: search constraints, ranking and costing, over the catalogue of :mod:`.data`.

Every search is restricted to the run's catalogue (``within: cat.<apex>``) so that
other records of the registry cannot change the expected answers. Expected sets
and orders are worked out by hand from the catalogue; expected costs are the
spec's own worked examples (§4.10.1), and every cost breakdown the registry
answers is recomputed from its parts ([REQ-QRY-063]).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from ..case import Section, check, check_equal, fail
from ..wire import Reply
from . import data
from .checks import exact_cost, query_field, written
from .context import RegistryContext, World

s = Section("registry", "7", "Query")

W_DEMAND = {"memory_mib": 2048, "storage_gib": 100, "vcpu": 1}


def _cat(w: World, *labels: str) -> list[str]:
    return [w.name(f"{x}.cat") for x in labels]


def breakdown_issues(cost: Any) -> list[str]:
    """[REQ-QRY-063]/[REQ-QRY-065]: recompute a CostBreakdown from its members."""
    issues: list[str] = []
    if not isinstance(cost, dict) or set(cost) != {"currency", "units", "items", "total"}:
        return [f"not a CostBreakdown: {cost!r}"]
    exact = Fraction(0)
    resources = []
    for i, item in enumerate(cost["items"]):
        keys = {"resource", "quantity", "amount", "per", "billed_s", "cost"}
        if set(item) != keys:
            issues.append(f"items.{i} members {sorted(item)}")
            continue
        resources.append(item["resource"])
        value = exact_cost(item["amount"], item["quantity"], item["billed_s"], item["per"])
        if Fraction(item["quantity"]) == 0:
            issues.append(f"items.{i} has quantity 0 (it must be left out)")
        if item["cost"] != written(value):
            issues.append(f"items.{i} cost {item['cost']}, recomputed {written(value)}")
        exact += value
    if len(set(resources)) != len(resources):
        issues.append("two items for one resource")
    if cost["total"] != written(exact):
        issues.append(f"total {cost['total']}, the exact sum rounded up is {written(exact)}")
    return issues


async def _search(ctx: RegistryContext, query: dict[str, Any]) -> list[dict[str, Any]]:
    """Results of one search (every breakdown recomputed, names unique)."""
    reply = await ctx.search(query)
    if reply.status != 200:
        fail(f"search {query}: {reply.brief()}")
    value = reply.value()
    results: list[dict[str, Any]] = value.get("results", [])
    names = [r.get("name") for r in results]
    check(len(set(names)) == len(names), f"a name appears twice in one search: {names}")
    for r in results:
        problems = breakdown_issues(r.get("cost"))
        check(not problems, f"cost of {r.get('name')} for {query}", *problems)
    return results


async def _names(ctx: RegistryContext, w: World, **query: Any) -> list[str]:
    q = {"within": w.catalogue, "limit": 100, "currency": "CNY", **query}
    return [r["name"] for r in await _search(ctx, q)]


async def _expect_set(ctx: RegistryContext, w: World, expected: list[str], **query: Any) -> None:
    got = await _names(ctx, w, **query)
    check_equal(sorted(got), sorted(_cat(w, *expected)), f"offers matching {query}")


async def _refused(
    ctx: RegistryContext,
    query: dict[str, Any],
    field: str | None,
    rule: str | None,
    code: int = 1003,
) -> Reply:
    reply = await ctx.search({"limit": 1, "within": "x.cid-conformance.invalid", **query})
    ctx.expect_error(reply, code, rule=rule)
    if field is not None:
        check(query_field(reply) == field, f"expected field {field!r}: {reply.brief()}")
    return reply


# --- 7.1 conventions and messages --------------------------------------------------------------


@s.case(
    1, "a query is a closed model of typed members", "REQ-QRY-020", "REQ-QRY-002", "REQ-REC-002"
)
async def query_closed(ctx: RegistryContext) -> None:
    """A Query MUST have only the members of Table 7-6, with the types and ranges given there ... a
    receiver MUST refuse any other with SCHEMA_VIOLATION (1003)."""
    await _refused(ctx, {"colour": "blue"}, "colour", "extra_forbidden")
    await _refused(
        ctx, {"near": {"region": "CN-TJ", "radius": 1}}, "near.radius", "extra_forbidden"
    )
    for bad, field in (
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "10"}, "limit"),
        ({"class": "quantum"}, "class"),
        ({"vcpu_min": -1}, "vcpu_min"),
        ({"duration_s": 0}, "duration_s"),
        ({"order": ["speed"]}, "order.0"),
        ({"demand": {"units": 1_000_001}}, "demand.units"),
    ):
        await _refused(ctx, bad, field, None)


@s.case(2, "field is the path within the message, without any prefix", "REQ-QRY-002")
async def field_within_message(ctx: RegistryContext) -> None:
    """a receiver MUST refuse ... with SCHEMA_VIOLATION (1003), field the dotted path of the
    offending member within the message (e.g. near.max_rtt_us, records.0)."""
    reply = await ctx.search({"limit": 1, "near": {"max_rtt_us": 0, "region": "CN-TJ"}})
    ctx.expect_error(reply, 1003, field="near.max_rtt_us")
    reply = await ctx.search({"limit": 1, "colour": 1})
    ctx.expect_error(reply, 1003, field="colour")


@s.case(3, "constraint arrays are never empty and never repeat an element", "REQ-QRY-003")
async def arrays(ctx: RegistryContext) -> None:
    """a receiver MUST refuse either with SCHEMA_VIOLATION (1003), an empty array with the rule of
    its length bound and a repeated element with rule unique."""
    for member in ("region_in", "arch", "compliance", "country_in", "city_in"):
        await _refused(ctx, {member: []}, member, None)
    for member, value in (("region_in", "CN-TJ"), ("arch", "x86_64"), ("compliance", "iso27001")):
        await _refused(ctx, {member: [value, value]}, member, "unique")
    ok = await ctx.search({"limit": 1, "order": [], "within": "x.invalid"})
    check(ok.status == 200, f"an empty order (its default) refused: {ok.brief()}")


@s.case(4, "queries change nothing another requester can observe", "REQ-QRY-004", writes=True)
async def no_side_effects(ctx: RegistryContext) -> None:
    """A query exchange MUST NOT change any state of the responder that another requester can
    observe, other than caches and rate-limit counters."""
    w = await ctx.world()
    before = (await ctx.get("/v1/feed", query={"since": "0", "limit": "1"})).value()
    snap1 = (await ctx.get(f"/v1/namespaces/{w.catalogue}")).value()
    first = await _names(ctx, w, order=["availability"], demand={"units": 5}, units_free_min=1)
    for _ in range(3):
        await ctx.resolve(w.name("gz.cat"))
        await _names(ctx, w, demand={"units": 4000})
    again = await _names(ctx, w, order=["availability"], demand={"units": 5}, units_free_min=1)
    check_equal(again, first, "the same search asked again")
    check_equal((await ctx.get(f"/v1/namespaces/{w.catalogue}")).value(), snap1, "the list")
    after = (await ctx.get("/v1/feed", query={"since": "0", "limit": "1"})).value()
    check_equal(after["changes"], before["changes"], "the feed's first change")


# --- 7.4.1 matching ------------------------------------------------------------------------------


@s.case(5, "within is label-wise", "REQ-QRY-022", "REQ-ID-023", "REQ-SEC-003", writes=True)
async def within(ctx: RegistryContext) -> None:
    """With within, a candidate's name MUST be within that namespace (§2.8, label-wise)."""
    w = await ctx.world()
    got = await _names(ctx, w)
    check_equal(len(got), 7, "CNY offers within the catalogue")
    for ns in (w.name("at"), w.name("ca"), "t." + w.catalogue):
        found = await _search(ctx, {"within": ns, "currency": "CNY", "limit": 100})
        check(found == [], f"within {ns}: {[r['name'] for r in found]}")
    one = await _search(ctx, {"within": w.name("gz.cat"), "currency": "CNY"})
    check_equal([r["name"] for r in one], _cat(w, "gz"), "within an offer's own name")


@s.case(6, "class and arch select by exact token", "REQ-QRY-023", "REQ-QRY-021", writes=True)
async def class_arch(ctx: RegistryContext) -> None:
    """With class, the offer's class MUST equal it; with arch, u.cpu.arch MUST be one of the listed
    tokens ... An offer that lacks a member a constraint refers to does not satisfy it."""
    w = await ctx.world()
    await _expect_set(ctx, w, ["gz", "gz2", "tj", "nm"], **{"class": "general"})
    await _expect_set(ctx, w, ["a100"], **{"class": "intelligent"})
    await _expect_set(ctx, w, ["hpc"], **{"class": "super"})
    await _expect_set(ctx, w, ["obj"], **{"class": "storage"})
    await _expect_set(ctx, w, ["tj"], arch=["aarch64"])
    await _expect_set(ctx, w, ["gz", "gz2", "nm", "a100"], arch=["x86_64"])
    await _expect_set(ctx, w, ["gz", "gz2", "nm", "a100", "tj"], arch=["x86_64", "aarch64"])


@s.case(7, "regions in both region_in and region_not_in are refused", "REQ-QRY-024")
async def region_overlap(ctx: RegistryContext) -> None:
    """A query carrying both region_in and region_not_in MUST NOT list a subdivision in both; a
    receiver MUST refuse it with SCHEMA_VIOLATION (1003), field region_not_in, rule
    region_overlap."""
    await _refused(
        ctx,
        {"region_in": ["CN-TJ", "CN-BJ"], "region_not_in": ["CN-BJ"]},
        "region_not_in",
        "region_overlap",
    )


@s.case(
    8,
    "accelerator constraints: vendor, model, family, count and memory per device",
    "REQ-QRY-025",
    writes=True,
)
async def accelerator(ctx: RegistryContext) -> None:
    """With accelerator, the unit MUST have accelerators and satisfy every member of Table 7-7
    present; count_min compares devices per unit and memory_gib_min memory per device."""
    w = await ctx.world()
    await _expect_set(ctx, w, ["a100"], accelerator={})
    await _expect_set(
        ctx,
        w,
        ["a100"],
        accelerator={
            "count_min": 8,
            "family": "ampere",
            "memory_gib_min": 80,
            "model": ["a100-80g", "h20"],
            "vendor": "nvidia",
        },
    )
    for miss in (
        {"count_min": 9},
        {"memory_gib_min": 81},
        {"family": "hopper"},
        {"model": ["h100-sxm-80g"]},
        {"vendor": "huawei"},
    ):
        await _expect_set(ctx, w, [], accelerator=miss)


@s.case(
    9,
    "tflops_min compares the unit's throughput: count × per-device, or hpc fp64",
    "REQ-QRY-026",
    "REQ-QRY-044",
    writes=True,
)
async def tflops(ctx: RegistryContext) -> None:
    """the unit's throughput at p is the sum of u.accelerators.count × u.accelerators.tflops[p] ...
    and, for p = fp64, u.hpc.fp64_tflops; a unit with neither figure does not satisfy it."""
    w = await ctx.world()
    await _expect_set(ctx, w, ["a100", "hpc"], tflops_min={"fp64": "20"})
    await _expect_set(ctx, w, ["a100"], tflops_min={"fp64": "77.6"})
    await _expect_set(ctx, w, [], tflops_min={"fp64": "77.600000000000000001"})
    await _expect_set(ctx, w, ["a100"], tflops_min={"bf16": "2496", "fp16": "2496"})
    await _expect_set(ctx, w, [], tflops_min={"fp32": "1"})


@s.case(
    10,
    "demand: the offer can serve it with enough free units (after its refresh)",
    "REQ-QRY-027",
    "REQ-QRY-021",
    "REQ-REC-062",
    writes=True,
)
async def demand(ctx: RegistryContext) -> None:
    """With demand, the offer MUST be able to serve the demand ... and availability.units_free MUST
    be at least the number of units n that §7.6 computes. A ResourceDemand with no positive member
    MUST be refused with SCHEMA_VIOLATION (1003), rule empty_demand."""
    w = await ctx.world()
    # Inner Mongolia's offer says 3000 free, its refresh 7 ([REQ-REC-062])
    await _expect_set(ctx, w, ["gz", "gz2", "tj", "obj"], demand={"units": 13})
    await _expect_set(ctx, w, ["gz", "gz2", "tj", "nm", "obj", "hpc", "a100"], demand={"units": 7})
    await _expect_set(ctx, w, ["a100"], demand={"accelerators": 96})
    await _expect_set(ctx, w, [], demand={"accelerators": 97})
    for empty in ({}, {"vcpu": 0, "units": 0}):
        await _refused(ctx, {"demand": empty}, None, "empty_demand")


@s.case(
    11,
    "vcpu_min, memory_mib_min and storage_gib_min compare per-unit amounts",
    "REQ-QRY-028",
    writes=True,
)
async def per_unit_minimums(ctx: RegistryContext) -> None:
    """With vcpu_min, memory_mib_min or storage_gib_min, the per-unit amount of that resource ...
    MUST be at least the value."""
    w = await ctx.world()
    await _expect_set(ctx, w, ["a100"], vcpu_min=2)
    await _expect_set(ctx, w, ["gz", "gz2", "tj", "nm", "a100"], vcpu_min=1)
    await _expect_set(ctx, w, ["a100"], memory_mib_min=2049)
    await _expect_set(ctx, w, ["obj"], storage_gib_min=1000)
    await _expect_set(ctx, w, [], storage_gib_min=1001)


@s.case(
    12,
    "near: stated RTTs, max_rtt_us bound, latency circles; its own shape rules",
    "REQ-QRY-030",
    writes=True,
)
async def near(ctx: RegistryContext) -> None:
    """With near.region, the offer's RTT to that subdivision is network.rtt_us[region] when the
    offer states it ... With near.max_rtt_us, the RTT MUST be known and at most the value ... A near
    with both or neither of region and latency_circle (rule near_one_of), or with max_rtt_us but no
    region (rule requires_region), MUST be refused."""
    w = await ctx.world()
    await _expect_set(ctx, w, ["tj", "a100"], near={"region": "CN-TJ", "max_rtt_us": 3000})
    await _expect_set(ctx, w, ["a100"], near={"region": "CN-TJ", "max_rtt_us": 800})
    await _expect_set(ctx, w, ["gz", "gz2"], near={"region": "CN-GZ", "max_rtt_us": 500})
    await _expect_set(ctx, w, ["obj"], near={"latency_circle": "conf-circle"})
    usd = await _search(
        ctx, {"within": w.catalogue, "currency": "USD", "near": {"region": "CN-TJ"}}
    )
    check(usd and "rtt_us" not in usd[0], f"an unknown RTT is reported: {usd}")
    await _refused(ctx, {"near": {}}, None, "near_one_of")
    await _refused(ctx, {"near": {"latency_circle": "x", "region": "CN-TJ"}}, None, "near_one_of")
    await _refused(ctx, {"near": {"latency_circle": "x", "max_rtt_us": 5}}, None, "requires_region")


@s.case(
    13,
    "region_in, region_not_in, country_in and city_in",
    "REQ-QRY-031",
    "REQ-GEN-003",
    writes=True,
)
async def locations(ctx: RegistryContext) -> None:
    """With region_in, country_in or city_in, the offer's location.region, location.country or
    location.city respectively MUST be one of the listed values (cities compared as strings); with
    region_not_in, location.region MUST NOT be one of them."""
    w = await ctx.world()
    await _expect_set(ctx, w, ["tj", "a100"], region_in=["CN-TJ"])
    await _expect_set(ctx, w, ["nm", "hpc", "obj"], region_not_in=["CN-TJ", "CN-GZ"])
    await _expect_set(ctx, w, ["gz", "gz2", "tj", "nm", "a100", "hpc", "obj"], country_in=["CN"])
    await _expect_set(ctx, w, [], country_in=["US"])
    await _expect_set(ctx, w, ["tj", "a100"], city_in=["天津"])
    await _expect_set(ctx, w, ["gz", "gz2", "obj"], city_in=["贵安", "上海"])
    await _expect_set(ctx, w, [], city_in=["天津 "])


@s.case(
    14,
    "cities are compared code point by code point, without normalisation",
    "REQ-GEN-003",
    "REQ-QRY-031",
    writes=True,
)
async def city_code_points(ctx: RegistryContext) -> None:
    """Strings MUST be compared by their sequence of Unicode code points, without any
    normalisation."""
    w = await ctx.world()
    rel = ctx.unique("city")
    nfc = "Montr\u00e9al"
    await ctx.accepted(
        ctx.sign_as(
            w,
            "offer",
            f"a.{rel}",
            data.offer(location={"city": nfc, "country": "CA", "region": "CA-QC"}),
        )
    )
    base = {"within": w.name(rel), "currency": "CNY"}
    hit = await _search(ctx, {**base, "city_in": [nfc]})
    check_equal(len(hit), 1, "matches for the city as published (NFC)")
    miss = await _search(ctx, {**base, "city_in": ["Montre\u0301al"]})
    check(miss == [], "a decomposed (NFD) spelling matched: strings were normalised")
    miss = await _search(ctx, {**base, "city_in": ["montréal"]})
    check(miss == [], "a lower-case spelling matched: strings were folded")


@s.case(
    15, "renewable_share_min and carbon_g_per_kwh_max", "REQ-QRY-033", "REQ-QRY-021", writes=True
)
async def energy(ctx: RegistryContext) -> None:
    """With renewable_share_min, energy.renewable_share MUST be at least the value; with
    carbon_g_per_kwh_max, energy.carbon_g_per_kwh MUST be present and at most the value."""
    w = await ctx.world()
    await _expect_set(ctx, w, ["gz", "gz2", "nm"], renewable_share_min="0.62")
    await _expect_set(ctx, w, ["nm"], renewable_share_min="0.62000000001")
    await _expect_set(ctx, w, ["gz", "gz2", "nm", "a100", "hpc"], renewable_share_min="0")
    await _expect_set(ctx, w, ["gz", "gz2", "nm"], carbon_g_per_kwh_max=310)
    await _expect_set(ctx, w, ["nm"], carbon_g_per_kwh_max=309)


@s.case(16, "software names and version ranges, compared numerically", "REQ-QRY-034", writes=True)
async def software(ctx: RegistryContext) -> None:
    """for every element the offer's software MUST contain an element with that name and, when
    version is given, a version inside the range ... Versions compare numerically component by
    component, a missing component counting as 0, so 12 = 12.0 and 12.4 < 12.10."""
    w = await ctx.world()
    await _expect_set(ctx, w, ["gz", "gz2", "tj", "nm"], software=[{"name": "ubuntu"}])
    await _expect_set(
        ctx, w, ["gz", "gz2", "nm"], software=[{"name": "ubuntu", "version": ">=22,<23"}]
    )
    await _expect_set(ctx, w, ["tj"], software=[{"name": "ubuntu", "version": "<22.04"}])
    await _expect_set(ctx, w, ["a100"], software=[{"name": "cuda", "version": ">=12.1"}])
    await _expect_set(ctx, w, [], software=[{"name": "cuda", "version": ">=12.10"}])
    await _expect_set(
        ctx,
        w,
        ["a100"],
        software=[{"name": "pytorch", "version": "==2.3.0"}, {"name": "cuda", "version": "!=12"}],
    )
    await _expect_set(ctx, w, ["gz", "gz2"], software=[{"name": "ubuntu"}, {"name": "openeuler"}])
    for bad in (">= 12", "~12", "12", ">=12,", ">=1.2.3.4.5", ",".join([">=1"] * 9)):
        await _refused(ctx, {"software": [{"name": "cuda", "version": bad}]}, None, "version_range")


@s.case(
    17, "compliance and units_free_min (after refreshes)", "REQ-QRY-035", "REQ-QRY-021", writes=True
)
async def compliance(ctx: RegistryContext) -> None:
    """With compliance, every listed token MUST be in the offer's compliance; with units_free_min,
    availability.units_free MUST be at least the value."""
    w = await ctx.world()
    await _expect_set(ctx, w, ["gz", "gz2", "nm"], compliance=["mlps-3"])
    await _expect_set(ctx, w, ["nm"], compliance=["mlps-3", "iso14001"])
    await _expect_set(ctx, w, ["gz", "gz2", "tj"], units_free_min=800)
    await _expect_set(ctx, w, ["gz", "gz2", "tj", "a100", "hpc", "obj"], units_free_min=8)


# --- 7.4.2 price constraints -------------------------------------------------------------------


@s.case(
    18,
    "effective demand and duration: one unit for one hour when absent",
    "REQ-QRY-040",
    "REQ-QRY-062",
    "REQ-QRY-065",
    "REQ-CAP-022",
    writes=True,
)
async def effective_defaults(ctx: RegistryContext) -> None:
    """the effective demand of a query is its demand, or one unit ({"units":1}) when absent, and
    the effective duration is its duration_s, or 3,600 seconds when absent."""
    w = await ctx.world()
    got = await _search(
        ctx, {"within": w.catalogue, "currency": "CNY", "class": "general", "order": ["cost"]}
    )
    check_equal([r["name"] for r in got], _cat(w, "tj", "gz", "gz2", "nm"), "order by cost")
    by = {r["name"]: r["cost"] for r in got}
    tj, gz, nm = by[w.name("tj.cat")], by[w.name("gz.cat")], by[w.name("nm.cat")]
    check_equal(tj["total"], "0.02", "Tianjin: one unit for one hour")
    check_equal(
        [(i["resource"], i["billed_s"]) for i in tj["items"]],
        [("vcpu", 3600), ("memory_gib", 3600)],
        "Tianjin items (storage: quantity 0, left out)",
    )
    check_equal(gz["total"], "7", "Guizhou: one unit for its minimum term of a month")
    check_equal([i["billed_s"] for i in gz["items"]], [2_628_000, 2_628_000], "Guizhou billed_s")
    check_equal(
        nm["total"], "7.134246575342465754", "Inner Mongolia: a month rounded up to 31 days"
    )
    check_equal(nm["items"][0]["billed_s"], 2_678_400, "Inner Mongolia billed_s")


@s.case(
    19,
    "the worked example of §4.10.1: 30, 33.271232876712328768 and 65.7 CNY",
    "REQ-CAP-021",
    "REQ-CAP-022",
    "REQ-CAP-023",
    "REQ-QRY-050",
    "REQ-QRY-055",
    "REQ-QRY-060",
    "REQ-QRY-061",
    "REQ-QRY-062",
    "REQ-QRY-063",
    "REQ-QRY-065",
    writes=True,
)
async def worked_example(ctx: RegistryContext) -> None:
    """The cost of a price item MUST be amount × q(resource) × b / P(per) ... computed exactly ...
    Where a cost or total is written as a decimal string, it MUST be the exact value rounded towards
    positive infinity to 18 fractional digits."""
    w = await ctx.world()
    got = await _search(
        ctx,
        {
            "within": w.catalogue,
            "currency": "CNY",
            "class": "general",
            "demand": W_DEMAND,
            "duration_s": data.WORKED_DEMAND_S,
            "order": ["cost"],
            "limit": 10,
        },
    )
    check_equal([r["name"] for r in got], _cat(w, "gz", "gz2", "nm", "tj"), "cheapest first")
    by = {r["name"]: r for r in got}
    gz = by[w.name("gz.cat")]["cost"]
    check_equal(
        gz,
        {
            "currency": "CNY",
            "items": [
                {
                    "amount": "5",
                    "billed_s": 7884000,
                    "cost": "15",
                    "per": "month",
                    "quantity": "1",
                    "resource": "vcpu",
                },
                {
                    "amount": "1",
                    "billed_s": 7884000,
                    "cost": "6",
                    "per": "month",
                    "quantity": "2",
                    "resource": "memory_gib",
                },
                {
                    "amount": "0.03",
                    "billed_s": 7884000,
                    "cost": "9",
                    "per": "month",
                    "quantity": "100",
                    "resource": "storage_gib",
                },
            ],
            "total": "30",
            "units": 1,
        },
        "the Guizhou breakdown (§7.6)",
    )
    check_equal(by[w.name("gz.cat")]["serial"], 1, "serial of the matched version")
    tj = by[w.name("tj.cat")]["cost"]
    check_equal([i["cost"] for i in tj["items"]], ["26.28", "17.52", "21.9"], "Tianjin items")
    check_equal(tj["total"], "65.7", "Tianjin total")
    nm = by[w.name("nm.cat")]["cost"]
    check_equal(
        [(i["resource"], i["quantity"], i["billed_s"], i["cost"]) for i in nm["items"]],
        [
            ("unit", "1", 7948800, "21.172602739726027398"),
            ("storage_gib", "100", 7948800, "12.09863013698630137"),
        ],
        "Inner Mongolia items",
    )
    check_equal(nm["total"], "33.271232876712328768", "Inner Mongolia total (12144/365 rounded up)")


@s.case(
    20,
    "units needed: the largest of 1, units and each per-unit quotient",
    "REQ-QRY-060",
    "REQ-CAP-021",
    writes=True,
)
async def units_needed(ctx: RegistryContext) -> None:
    """The number of units n a demand D needs from a unit u MUST be the largest of 1, D.units and,
    for every resource ... ⌈D(r) / per-unit(r)⌉ ... An offer that would need more than 1,000,000
    units cannot serve the demand."""
    w = await ctx.world()
    got = await _search(
        ctx,
        {"within": w.name("gz.cat"), "currency": "CNY", "demand": {"memory_mib": 5000, "vcpu": 3}},
    )
    check(got, "Guizhou cannot serve 3 vCPU and 5000 MiB")
    cost = got[0]["cost"]
    check_equal(cost["units"], 3, "units for 3 vCPU and 5000 MiB (2 GiB per unit)")
    check_equal(
        [(i["resource"], i["quantity"]) for i in cost["items"]],
        [("vcpu", "3"), ("memory_gib", "6")],
        "quantities: n times the per-unit amounts",
    )
    a100 = await _search(
        ctx, {"within": w.name("a100.cat"), "currency": "CNY", "demand": {"accelerators": 9}}
    )
    check_equal(
        (a100[0]["cost"]["units"], a100[0]["cost"]["items"][0]["quantity"]),
        (2, "16"),
        "units and accelerator quantity for 9 devices of 8 per unit",
    )
    huge = await _search(
        ctx, {"within": w.name("gz.cat"), "currency": "CNY", "demand": {"vcpu": 1_000_001}}
    )
    check(huge == [], "an offer needing more than 1,000,000 units was returned")


@s.case(
    21,
    "an attached resource without a price item cannot be served",
    "REQ-QRY-061",
    "REQ-QRY-027",
    writes=True,
)
async def attached(ctx: RegistryContext) -> None:
    """An offer whose price has no item for an attached resource MUST be treated as unable to serve
    the demand."""
    w = await ctx.world()
    await _expect_set(ctx, w, ["a100"], demand={"accelerators": 8})
    await _expect_set(ctx, w, [], demand={"accelerators": 8, "storage_gib": 100})
    got = await _search(
        ctx,
        {"within": w.name("tj.cat"), "currency": "CNY", "demand": {"storage_gib": 100, "units": 1}},
    )
    check_equal(
        [(i["resource"], i["quantity"]) for i in got[0]["cost"]["items"]],
        [("vcpu", "1"), ("memory_gib", "2"), ("storage_gib", "100")],
        "an attached resource is bought by its stated quantity",
    )


@s.case(
    22,
    "currency: only offers in it; amounts never compared across currencies",
    "REQ-QRY-041",
    "REQ-QRY-064",
    "REQ-CAP-024",
    "REQ-QRY-051",
    writes=True,
)
async def currency(ctx: RegistryContext) -> None:
    """With currency, the offer's price.currency MUST equal it ... A responder or requester MUST NOT
    rank, add or compare breakdowns in different currencies."""
    w = await ctx.world()
    usd = await _search(ctx, {"within": w.catalogue, "currency": "USD", "limit": 100})
    check_equal([r["name"] for r in usd], _cat(w, "usd"), "offers in USD")
    check(
        all(r["cost"]["currency"] == "USD" for r in usd), "a USD search returned another currency"
    )
    cny = await _search(
        ctx, {"within": w.catalogue, "currency": "CNY", "order": ["cost"], "limit": 100}
    )
    check(
        all(r["cost"]["currency"] == "CNY" for r in cny), "a CNY search returned another currency"
    )
    reply = await ctx.search({"within": w.catalogue, "order": ["cost"]})
    ctx.expect_error(reply, (1003, 4006))
    check(reply.status == 422, f"ranking by cost across currencies: {reply.brief()}")


@s.case(
    23,
    "unit_price_max and total_cost_max need currency (and duration)",
    "REQ-QRY-041",
    "REQ-QRY-042",
    "REQ-QRY-043",
)
async def price_requirements(ctx: RegistryContext) -> None:
    """A query with unit_price_max or total_cost_max MUST carry currency ... rule
    currency_required. A query with total_cost_max MUST carry duration_s ... rule
    duration_required. A query with unit_price_per but no unit_price_max MUST be refused ... rule
    requires_unit_price_max."""
    await _refused(ctx, {"unit_price_max": "1"}, "currency", "currency_required")
    await _refused(ctx, {"total_cost_max": "1", "duration_s": 60}, "currency", "currency_required")
    await _refused(
        ctx, {"total_cost_max": "1", "currency": "CNY"}, "duration_s", "duration_required"
    )
    await _refused(
        ctx, {"unit_price_per": "day", "currency": "CNY"}, None, "requires_unit_price_max"
    )


@s.case(
    24,
    "total_cost_max compares the exact total, not its rounded form",
    "REQ-QRY-042",
    "REQ-QRY-044",
    "REQ-CAP-023",
    writes=True,
)
async def total_cost_max(ctx: RegistryContext) -> None:
    """With total_cost_max, the exact total cost (§7.6) of the effective demand MUST be at most the
    value ... Every comparison of a cost or rate with a bound MUST use the exact rational value."""
    w = await ctx.world()
    base = {"class": "general", "demand": W_DEMAND, "duration_s": data.WORKED_DEMAND_S}
    await _expect_set(ctx, w, ["gz", "gz2", "nm"], total_cost_max="33.271232876712328768", **base)
    await _expect_set(ctx, w, ["gz", "gz2"], total_cost_max="33.271232876712328767", **base)
    await _expect_set(ctx, w, ["gz", "gz2"], total_cost_max="30", **base)
    await _expect_set(ctx, w, [], total_cost_max="29.999999999999999999", **base)


@s.case(
    25,
    "unit_price_max compares the unit rate for the period, exactly",
    "REQ-QRY-043",
    "REQ-QRY-044",
    writes=True,
)
async def unit_price_max(ctx: RegistryContext) -> None:
    """the unit rate for the period P = unit_price_per (default hour) is the exact sum over the
    price's items of amount × (the item's per-unit amount) × P / P(per)."""
    w = await ctx.world()
    gen = {"class": "general"}
    # Guizhou and Inner Mongolia: 7 CNY a month = 7/730 = 0.00958904109589041095… an hour
    await _expect_set(ctx, w, ["gz", "gz2", "nm"], unit_price_max="0.009589041095890411", **gen)
    await _expect_set(ctx, w, [], unit_price_max="0.00958904109589041", **gen)
    await _expect_set(ctx, w, ["gz", "gz2", "nm", "tj"], unit_price_max="0.02", **gen)
    await _expect_set(
        ctx, w, ["gz", "gz2", "nm"], unit_price_max="7", unit_price_per="month", **gen
    )
    await _expect_set(ctx, w, ["obj"], unit_price_max="0.1", **{"class": "storage"})
    await _expect_set(
        ctx, w, ["hpc"], unit_price_max="192", unit_price_per="day", **{"class": "super"}
    )


# --- 7.5 ranking ----------------------------------------------------------------------------------


@s.case(
    26,
    "lexicographic ranking by renewable, availability and latency; unknown last",
    "REQ-QRY-050",
    "REQ-QRY-054",
    "REQ-QRY-021",
    writes=True,
)
async def lexicographic(ctx: RegistryContext) -> None:
    """a responder MUST order the matching candidates by the first key of order, candidates equal in
    it by the second key, and so on ... a candidate whose figure is unknown ranks after every
    candidate whose figure is known ... candidates equal in every key MUST be ordered by name."""
    w = await ctx.world()
    check_equal(
        await _names(ctx, w, order=["renewable"]),
        _cat(w, "nm", "gz", "gz2", "a100", "hpc", "obj", "tj"),
        "order by renewable",
    )
    check_equal(
        await _names(ctx, w, order=["availability"]),
        _cat(w, "gz", "gz2", "tj", "obj", "a100", "hpc", "nm"),
        "order by free units",
    )
    check_equal(
        await _names(ctx, w, order=["latency"], near={"region": "CN-TJ"}),
        _cat(w, "a100", "tj", "nm", "gz", "gz2", "obj", "hpc"),
        "order by latency",
    )
    check_equal(
        await _names(ctx, w, order=["renewable", "availability"], renewable_share_min="0.5"),
        _cat(w, "nm", "gz", "gz2", "a100"),
        "order by renewable then free units",
    )
    check_equal(
        await _names(ctx, w),
        _cat(w, "a100", "gz", "gz2", "hpc", "nm", "obj", "tj"),
        "no order: canonical name order",
    )


@s.case(
    27, "ranking by cost needs currency; by latency needs near.region", "REQ-QRY-051", "REQ-QRY-052"
)
async def ranking_requirements(ctx: RegistryContext) -> None:
    """A query that ranks by cost (in order or weights) MUST carry currency ... A query that ranks
    by latency MUST carry near.region ... field near, rule near_region_required."""
    await _refused(ctx, {"order": ["cost"]}, "currency", "currency_required")
    await _refused(ctx, {"order": ["latency"]}, "near", "near_region_required")
    await _refused(
        ctx, {"order": ["latency"], "near": {"latency_circle": "x"}}, "near", "near_region_required"
    )


@s.case(
    28,
    "weighted ranking: exact scores over the matching set, truncated to 6 digits",
    "REQ-QRY-053",
    "REQ-QRY-055",
    writes=True,
)
async def weighted(ctx: RegistryContext) -> None:
    """g is 1 when lo = hi, (hi − x) / (hi − lo) for a lower-is-better figure x, (x − lo) / (hi −
    lo) for a higher-is-better one, and 0 when c's figure is unknown; the score of c is Σ w(k) ×
    g(c, k) / Σ w(k) ... The score a result carries is the exact score truncated to 6 fractional
    digits."""
    w = await ctx.world()
    got = await _search(
        ctx,
        {
            "within": w.catalogue,
            "currency": "CNY",
            "class": "general",
            "demand": W_DEMAND,
            "duration_s": data.WORKED_DEMAND_S,
            "order": ["cost", "renewable"],
            "weights": {"cost": "3", "renewable": "1"},
        },
    )
    hi, lo = Fraction("65.7"), Fraction(30)
    nm_cost = Fraction(12144, 365)

    def score(cost: Fraction, renew: Fraction | None) -> str:
        g_cost = (hi - cost) / (hi - lo)
        g_renew = (
            Fraction(0)
            if renew is None
            else (renew - Fraction("0.62")) / (Fraction("0.9") - Fraction("0.62"))
        )
        exact = (3 * g_cost + g_renew) / 4
        truncated = (exact.numerator * 10**6) // exact.denominator
        return f"{truncated // 10**6}.{truncated % 10**6:06d}".rstrip("0").rstrip(".") or "0"

    expected = [
        ("nm", score(nm_cost, Fraction("0.9"))),
        ("gz", score(Fraction(30), Fraction("0.62"))),
        ("gz2", score(Fraction(30), Fraction("0.62"))),
        ("tj", score(hi, None)),
    ]
    check_equal(
        [(r["name"], r.get("score")) for r in got],
        [(w.name(f"{n}.cat"), sc) for n, sc in expected],
        "weighted order and scores",
    )
    await _refused(
        ctx,
        {"order": ["cost"], "currency": "CNY", "weights": {"renewable": "1"}},
        "weights.renewable",
        "weight_not_in_order",
    )
    await _refused(
        ctx, {"order": ["cost"], "currency": "CNY", "weights": {"cost": "0"}}, None, None
    )


@s.case(
    29,
    "limit, rtt_us and score: exactly the members Table 7-12 calls for",
    "REQ-QRY-055",
    "REQ-QRY-030",
    writes=True,
)
async def result_members(ctx: RegistryContext) -> None:
    """each with the members of Table 7-12: cost computed as §7.6 requires, rtt_us present exactly
    when the query has near.region and the RTT is known, and score present exactly in weighted
    mode."""
    w = await ctx.world()
    one = await _search(
        ctx, {"within": w.catalogue, "currency": "CNY", "order": ["availability"], "limit": 1}
    )
    check_equal([r["name"] for r in one], _cat(w, "gz"), "the best one")
    near = await _search(
        ctx, {"within": w.catalogue, "currency": "CNY", "near": {"region": "CN-TJ"}, "limit": 100}
    )
    rtts = {r["name"]: r.get("rtt_us") for r in near}
    check_equal(rtts[w.name("tj.cat")], 1000, "rtt_us of Tianjin to CN-TJ")
    check_equal(rtts[w.name("gz.cat")], 9500, "rtt_us of Guizhou to CN-TJ")
    check(all("score" not in r for r in near), "score outside weighted mode")
    plain = await _search(ctx, {"within": w.catalogue, "currency": "CNY"})
    check(all("rtt_us" not in r for r in plain), "rtt_us without near.region")


@s.case(
    30,
    "pages continue the ranking without repeating or skipping",
    "REQ-QRY-056",
    "REQ-QRY-055",
    "REQ-QRY-007",
    writes=True,
)
async def search_pages(ctx: RegistryContext) -> None:
    """successive pages MUST continue the order of the first without repeating or skipping a
    candidate of the snapshot they are served from."""
    w = await ctx.world()
    query = {"within": w.catalogue, "currency": "CNY", "order": ["renewable"], "limit": 2}
    pages: list[list[str]] = []
    cursor = None
    for _ in range(10):
        reply = await ctx.search({**query, **({"cursor": cursor} if cursor else {})})
        check(reply.status == 200, reply.brief())
        value = reply.value()
        pages.append([r["name"] for r in value["results"]])
        cursor = value.get("next_cursor")
        if cursor is None:
            break
        check(
            isinstance(cursor, str)
            and 1 <= len(cursor) <= 512
            and all(c.isalnum() or c in "-_" for c in cursor),
            f"cursor {cursor!r}",
        )
    flat = [n for p in pages for n in p]
    check_equal(flat, _cat(w, "nm", "gz", "gz2", "a100", "hpc", "obj", "tj"), "results over pages")
    check(all(len(p) == 2 for p in pages[:-1]), f"page sizes {[len(p) for p in pages]}")


__all__ = ["breakdown_issues"]
