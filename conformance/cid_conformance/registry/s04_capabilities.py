"""§4 Capability vocabulary and units, checked through the registry's model validation.

Each case submits an offer correctly signed but broken in one member; the registry
must refuse it with SCHEMA_VIOLATION naming that member (the receiver rules of §4
and [REQ-REC-004]). The positive cases check that what §4 allows is accepted and
served back unchanged. Costs (§4.10, [REQ-CAP-021]–[REQ-CAP-024]) are checked
through search in §7.
"""

from __future__ import annotations

from ..case import Section
from . import data
from .data import offer
from .tables import accepts, refuses

s = Section("registry", "4", "Capability vocabulary and units")

G = data.GUIZHOU
_ACC = {"count": 8, "memory_gib": 80, "model": "a100-80g", "vendor": "nvidia"}
_HPC = {"fp64_tflops": "20.5", "interconnect": "infiniband-hdr", "nodes": 4, "scheduler": "slurm"}


def _unit(**changes: object) -> dict[str, object]:
    return offer(unit={**G["unit"], **changes})


def _intelligent(**acc: object) -> dict[str, object]:
    return offer(**{"class": "intelligent", "unit": {"accelerators": {**_ACC, **acc}}})


# [REQ-CAP-011] tokens
refuses(
    s,
    1,
    "a token with upper case is refused",
    ("REQ-CAP-011",),
    offer(compliance=["ISO27001"]),
    under="body.compliance",
)
refuses(
    s,
    2,
    "a token with a space is refused",
    ("REQ-CAP-011",),
    offer(location={**G["location"], "datacenter": "gy 2"}),
    under="body.location.datacenter",
)
refuses(
    s,
    3,
    "a token longer than 64 characters is refused",
    ("REQ-CAP-011",),
    offer(compliance=["a" * 65]),
    under="body.compliance",
)
accepts(
    s,
    4,
    "tokens may hold digits and . _ + - after the first character",
    ("REQ-CAP-011",),
    [offer(compliance=["ec-8+3", "iso_27001.v2", "0day"])],
)
# [REQ-CAP-001] class
refuses(
    s,
    5,
    "a class outside Table 4-1 is refused",
    ("REQ-CAP-001",),
    offer(**{"class": "quantum"}),
    field="body.class",
)
# [REQ-CAP-010] unit
refuses(
    s,
    6,
    "a unit member Table 4-2 does not define is refused",
    ("REQ-CAP-010", "REQ-REC-002"),
    _unit(gpus=1),
    field="body.unit.gpus",
    rule="extra_forbidden",
)
refuses(
    s,
    7,
    "a negative unit figure is refused",
    ("REQ-CAP-010", "REQ-GEN-002"),
    _unit(memory_mib=-1),
    field="body.unit.memory_mib",
)
# [REQ-CAP-002] cpu
refuses(
    s,
    8,
    "an unregistered architecture is refused",
    ("REQ-CAP-002",),
    _unit(cpu={"arch": "i386"}),
    field="body.unit.cpu.arch",
)
refuses(
    s,
    9,
    "a cpu member outside the table is refused",
    ("REQ-CAP-002",),
    _unit(cpu={"arch": "x86_64", "cores": 4}),
    field="body.unit.cpu.cores",
    rule="extra_forbidden",
)
accepts(
    s,
    10,
    "every registered architecture is accepted",
    ("REQ-CAP-002",),
    [
        _unit(cpu={"arch": a})
        for a in ("aarch64", "loongarch64", "sw_64", "riscv64", "ppc64le", "s390x")
    ],
)
# [REQ-CAP-003] accelerators
refuses(
    s,
    11,
    "an accelerator count of 0 is refused",
    ("REQ-CAP-003",),
    _intelligent(count=0),
    field="body.unit.accelerators.count",
)
refuses(
    s,
    12,
    "an accelerator count above 4,096 is refused",
    ("REQ-CAP-003",),
    _intelligent(count=4097),
    field="body.unit.accelerators.count",
)
refuses(
    s,
    13,
    "accelerators without memory_gib are refused",
    ("REQ-CAP-003",),
    offer(
        **{
            "class": "intelligent",
            "unit": {"accelerators": {"count": 1, "model": "x", "vendor": "y"}},
        }
    ),
    field="body.unit.accelerators.memory_gib",
)
refuses(
    s,
    14,
    "an accelerator member outside the table is refused",
    ("REQ-CAP-003",),
    _intelligent(tdp_w=400),
    field="body.unit.accelerators.tdp_w",
    rule="extra_forbidden",
)
# [REQ-CAP-004] tflops
refuses(
    s,
    15,
    "a tflops key that is not a precision token is refused",
    ("REQ-CAP-004",),
    _intelligent(tflops={"fp128": "1"}),
    under="body.unit.accelerators.tflops",
)
refuses(
    s,
    16,
    "a tflops figure written as a number is refused",
    ("REQ-CAP-004", "REQ-ENC-006"),
    _intelligent(tflops={"fp16": 312}),
    field="body.unit.accelerators.tflops.fp16",
    rule="decimal_type",
)
accepts(
    s,
    17,
    "every precision token of Table 4-3 is accepted",
    ("REQ-CAP-004",),
    [
        _intelligent(
            tflops={
                p: "1.5" for p in ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4")
            }
        )
    ],
)
# [REQ-CAP-005] hpc
refuses(
    s,
    18,
    "an hpc map without scheduler is refused",
    ("REQ-CAP-005",),
    offer(
        **{"class": "super", "unit": {"hpc": {k: v for k, v in _HPC.items() if k != "scheduler"}}}
    ),
    field="body.unit.hpc.scheduler",
)
refuses(
    s,
    19,
    "an hpc map with 0 nodes is refused",
    ("REQ-CAP-005",),
    offer(**{"class": "super", "unit": {"hpc": {**_HPC, "nodes": 0}}}),
    field="body.unit.hpc.nodes",
)
# [REQ-CAP-006] storage
refuses(
    s,
    20,
    "a storage kind outside object/block/file/archive is refused",
    ("REQ-CAP-006",),
    offer(**{"class": "storage", "unit": {"storage": {"capacity_gib": 1, "kind": "tape"}}}),
    field="body.unit.storage.kind",
)
accepts(
    s,
    21,
    "every storage kind is accepted",
    ("REQ-CAP-006",),
    [
        offer(**{"class": "storage", "unit": {"storage": {"capacity_gib": 1, "kind": k}}})
        for k in ("object", "block", "file", "archive")
    ],
)
# [REQ-CAP-007] software
refuses(
    s,
    22,
    "a software version with five components is refused",
    ("REQ-CAP-007",),
    offer(software=[{"name": "cuda", "version": "1.2.3.4.5"}]),
    field="body.software.0.version",
)
refuses(
    s,
    23,
    "a software element with another member is refused",
    ("REQ-CAP-007",),
    offer(software=[{"name": "cuda", "vendor": "nvidia", "version": "12"}]),
    field="body.software.0.vendor",
    rule="extra_forbidden",
)
refuses(
    s,
    24,
    "more than 64 software stacks are refused",
    ("REQ-CAP-007",),
    offer(software=[{"name": f"s{i}", "version": "1"} for i in range(65)]),
    under="body.software",
)
# [REQ-CAP-008] location
refuses(
    s,
    25,
    "a region outside the country is SCHEMA_VIOLATION region_country",
    ("REQ-CAP-008",),
    offer(location={**G["location"], "region": "US-CA"}),
    under="body",
    rule="region_country",
)
refuses(
    s,
    26,
    "a lower-case country code is refused",
    ("REQ-CAP-008",),
    offer(location={**G["location"], "country": "cn"}),
    field="body.location.country",
)
refuses(
    s,
    27,
    "a region that is not an ISO 3166-2 code is refused",
    ("REQ-CAP-008",),
    offer(location={**G["location"], "region": "CN-GUIZHOU"}),
    field="body.location.region",
)
# [REQ-CAP-009] network
refuses(
    s,
    28,
    "an rtt_us key that is not a subdivision code is refused",
    ("REQ-CAP-009",),
    offer(network={"rtt_us": {"XX": 5}}),
    under="body.network.rtt_us",
)
refuses(
    s,
    29,
    "a network member outside the table is refused",
    ("REQ-CAP-009",),
    offer(network={"jitter_us": 5}),
    field="body.network.jitter_us",
    rule="extra_forbidden",
)
# [REQ-CAP-020] price
refuses(
    s,
    30,
    "a period outside Table 4-6 is refused",
    ("REQ-CAP-020",),
    offer(price={**G["price"], "items": [{"amount": "5", "per": "week", "resource": "vcpu"}]}),
    field="body.price.items.0.per",
)
refuses(
    s,
    31,
    "a currency that is not three capitals is refused",
    ("REQ-CAP-020",),
    offer(price={**G["price"], "currency": "cny"}),
    field="body.price.currency",
)
refuses(
    s,
    32,
    "a billing granularity of 0 is refused",
    ("REQ-CAP-020",),
    offer(price={**G["price"], "billing_granularity_s": 0}),
    field="body.price.billing_granularity_s",
)
accepts(
    s,
    33,
    "every period of Table 4-6 is accepted",
    ("REQ-CAP-020",),
    [
        offer(price={"currency": "CNY", "items": [{"amount": "1", "per": p, "resource": "unit"}]})
        for p in ("second", "minute", "hour", "day", "month", "year")
    ],
)
# [REQ-CAP-021] price items
refuses(
    s,
    34,
    "two items for one resource are SCHEMA_VIOLATION unique_resource",
    ("REQ-CAP-021",),
    offer(
        price={
            **G["price"],
            "items": [
                {"amount": "5", "per": "month", "resource": "vcpu"},
                {"amount": "6", "per": "hour", "resource": "vcpu"},
            ],
        }
    ),
    under="body.price",
    rule="unique_resource",
)
refuses(
    s,
    35,
    "a resource outside Table 4-7 is refused",
    ("REQ-CAP-021",),
    offer(price={**G["price"], "items": [{"amount": "5", "per": "month", "resource": "gpu"}]}),
    field="body.price.items.0.resource",
)
refuses(
    s,
    36,
    "a negative amount is refused",
    ("REQ-CAP-021",),
    offer(price={**G["price"], "items": [{"amount": "-5", "per": "month", "resource": "vcpu"}]}),
    field="body.price.items.0.amount",
)
refuses(
    s,
    37,
    "a price item member outside the three is refused",
    ("REQ-CAP-021",),
    offer(
        price={
            **G["price"],
            "items": [{"amount": "5", "per": "month", "resource": "vcpu", "tax": "0"}],
        }
    ),
    field="body.price.items.0.tax",
    rule="extra_forbidden",
)
# [REQ-CAP-030] energy
refuses(
    s,
    38,
    "a renewable share above 1 is refused",
    ("REQ-CAP-030",),
    offer(energy={"renewable_share": "1.5"}),
    field="body.energy.renewable_share",
)
refuses(
    s,
    39,
    "a PUE below 1 is refused",
    ("REQ-CAP-030",),
    offer(energy={"pue": "0.5", "renewable_share": "0.5"}),
    field="body.energy.pue",
)
refuses(
    s,
    40,
    "a carbon intensity above 2,000 is refused",
    ("REQ-CAP-030",),
    offer(energy={"carbon_g_per_kwh": 2001, "renewable_share": "0.5"}),
    field="body.energy.carbon_g_per_kwh",
)
# [REQ-CAP-031] availability
refuses(
    s,
    41,
    "units_free above units_total is SCHEMA_VIOLATION free_le_total",
    ("REQ-CAP-031",),
    offer(availability={"units_free": 9, "units_total": 8}),
    under="body.availability",
    rule="free_le_total",
)
refuses(
    s,
    42,
    "availability with another member is refused",
    ("REQ-CAP-031",),
    offer(availability={"units_free": 1, "units_reserved": 1, "units_total": 8}),
    field="body.availability.units_reserved",
    rule="extra_forbidden",
)
# [REQ-CAP-032] compliance
refuses(
    s,
    43,
    "more than 32 compliance tags are refused",
    ("REQ-CAP-032",),
    offer(compliance=[f"t{i}" for i in range(33)]),
    under="body.compliance",
)
# [REQ-CAP-033] extensions
refuses(
    s,
    44,
    "an ext key without a dot is refused",
    ("REQ-CAP-033",),
    offer(ext={"sla": 1}),
    under="body.ext",
)
refuses(
    s,
    45,
    "more than 32 ext members are refused",
    ("REQ-CAP-033",),
    offer(ext={f"conf.k{i}": i for i in range(33)}),
    under="body.ext",
)
refuses(
    s,
    46,
    "an ext key longer than 64 characters is refused",
    ("REQ-CAP-033",),
    offer(ext={"conf." + "k" * 60: 1}),
    under="body.ext",
)
accepts(
    s,
    47,
    "extension members are accepted and served as signed",
    ("REQ-CAP-033",),
    [
        offer(
            ext={
                "conf.sla": {"uptime": "0.999", "tiers": [1, 2, None, True]},
                "vendor-x.note": "héllo",
            }
        )
    ],
)
