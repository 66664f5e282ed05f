"""Reference example data: fixed keys and the three regional pools of the spec.

Used by ``make demo``, the test vectors in ``spec/vectors/`` and the tests, so
that all three agree byte for byte. The keys are the RFC 8032 section 7.1 test
keys: never use them for anything real.

The pools reproduce the worked example of spec section 4 (informative): for
"1 vCPU + 2 GiB memory + 100 GiB storage for 3 months", Guizhou totals
30 CNY, Inner Mongolia 33 CNY and Tianjin 65.70 CNY.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from .record import (
    Accelerator,
    Availability,
    ComputeClass,
    Contact,
    Cpu,
    DelegationBody,
    Endpoints,
    Energy,
    Location,
    Network,
    OfferBody,
    Price,
    PriceItem,
    Software,
    Unit,
    ZoneBody,
)
from .signing import SigningKey

__all__ = [
    "EPOCH",
    "RFC8032_SEEDS",
    "a100_offer",
    "delegation",
    "guizhou_offer",
    "inner_mongolia_offer",
    "provider_key",
    "root_key",
    "second_provider_key",
    "tianjin_offer",
    "zone",
]

EPOCH: Final = 1_767_225_600
"""2026-01-01T00:00:00Z: the fixed "now" of the vectors."""

RFC8032_SEEDS: Final[dict[str, str]] = {
    "test1": "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    "test2": "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    "test3": "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
}


def root_key() -> SigningKey:
    """The registry operator's root key of the examples (RFC 8032 TEST 1)."""
    return SigningKey.from_seed(bytes.fromhex(RFC8032_SEEDS["test1"]))


def provider_key() -> SigningKey:
    """The example provider's namespace key (RFC 8032 TEST 2)."""
    return SigningKey.from_seed(bytes.fromhex(RFC8032_SEEDS["test2"]))


def second_provider_key() -> SigningKey:
    """Another provider's key (RFC 8032 TEST 3): for hijack and wrong-key cases."""
    return SigningKey.from_seed(bytes.fromhex(RFC8032_SEEDS["test3"]))


def delegation(key: SigningKey) -> DelegationBody:
    return DelegationBody(keys=[key.public_key])


def zone(service_key: SigningKey, display_name: str = "Example Compute") -> ZoneBody:
    return ZoneBody(
        display_name=display_name,
        service_keys=[service_key.public_key],
        endpoints=Endpoints(
            negotiate="https://compute.example/cid/negotiate",
            invoke="https://compute.example/cid/invoke",
        ),
        contact=Contact(org=display_name, email="noc@compute.example"),
    )


def _general_unit() -> Unit:
    return Unit(vcpu=1, cpu=Cpu(arch="x86_64", vendor="intel"), memory_mib=2048)


def tianjin_offer(units_free: int = 800) -> OfferBody:
    """A Tianjin general pool priced per hour (metro latency to Beijing)."""
    return OfferBody.model_validate(
        {
            "class": ComputeClass.GENERAL,
            "title": "Tianjin general compute, per-hour",
            "unit": _general_unit(),
            "location": Location(country="CN", region="CN-TJ", city="天津", datacenter="tj-1"),
            "price": Price(
                currency="CNY",
                items=[
                    PriceItem(resource="vcpu", amount=Decimal("0.012"), per="hour"),
                    PriceItem(resource="memory_gib", amount=Decimal("0.004"), per="hour"),
                    PriceItem(resource="storage_gib", amount=Decimal("0.0001"), per="hour"),
                ],
                billing_granularity_s=3_600,
            ),
            "availability": Availability(units_total=1000, units_free=units_free),
            "energy": Energy(
                renewable_share=Decimal("0.25"), pue=Decimal("1.35"), carbon_g_per_kwh=520
            ),
            "network": Network(
                rtt_us={"CN-TJ": 300, "CN-BJ": 1000, "CN-HE": 3000}, latency_circle="jingjinji"
            ),
            "software": [Software(name="ubuntu", version="22.04")],
            "compliance": ["mlps-3"],
        }
    )


def guizhou_offer(units_free: int = 5000) -> OfferBody:
    """A Guizhou general pool priced per month: the cheapest for the worked example (30 CNY)."""
    return OfferBody.model_validate(
        {
            "class": ComputeClass.GENERAL,
            "title": "Guizhou green general compute, per-month",
            "unit": _general_unit(),
            "location": Location(country="CN", region="CN-GZ", city="贵安", datacenter="gy-2"),
            "price": Price(
                currency="CNY",
                items=[
                    PriceItem(resource="vcpu", amount=Decimal("5"), per="month"),
                    PriceItem(resource="memory_gib", amount=Decimal("1"), per="month"),
                    PriceItem(resource="storage_gib", amount=Decimal("0.03"), per="month"),
                ],
                billing_granularity_s=3_600,
                minimum_term_s=2_628_000,
            ),
            "availability": Availability(units_total=8000, units_free=units_free),
            "energy": Energy(
                renewable_share=Decimal("0.62"), pue=Decimal("1.2"), carbon_g_per_kwh=310
            ),
            "network": Network(
                rtt_us={"CN-GZ": 500, "CN-BJ": 9000, "CN-TJ": 9500}, latency_circle="west-hub"
            ),
            "software": [
                Software(name="ubuntu", version="22.04"),
                Software(name="openeuler", version="22.03"),
            ],
            "compliance": ["mlps-3"],
        }
    )


def inner_mongolia_offer(units_free: int = 3000) -> OfferBody:
    """An Inner Mongolia pool priced per unit-month plus storage (33 CNY for the example)."""
    return OfferBody.model_validate(
        {
            "class": ComputeClass.GENERAL,
            "title": "Ulanqab wind-powered slices",
            "unit": _general_unit(),
            "location": Location(country="CN", region="CN-NM", city="乌兰察布", datacenter="ulq-1"),
            "price": Price(
                currency="CNY",
                items=[
                    PriceItem(resource="unit", amount=Decimal("7"), per="month"),
                    PriceItem(resource="storage_gib", amount=Decimal("0.04"), per="month"),
                ],
                billing_granularity_s=3_600,
                minimum_term_s=2_628_000,
            ),
            "availability": Availability(units_total=4000, units_free=units_free),
            "energy": Energy(
                renewable_share=Decimal("0.81"), pue=Decimal("1.15"), carbon_g_per_kwh=180
            ),
            "network": Network(
                rtt_us={"CN-NM": 400, "CN-BJ": 7000, "CN-TJ": 7500}, latency_circle="west-hub"
            ),
            "software": [Software(name="ubuntu", version="22.04")],
        }
    )


def a100_offer(units_free: int = 12) -> OfferBody:
    """An intelligent-compute pool: servers of 8 x NVIDIA A100 80 GB in Tianjin."""
    return OfferBody.model_validate(
        {
            "class": ComputeClass.INTELLIGENT,
            "title": "8x A100 80GB servers",
            "unit": Unit(
                vcpu=128,
                cpu=Cpu(arch="x86_64", vendor="amd"),
                memory_mib=1_048_576,
                storage_gib=7680,
                accelerators=Accelerator(
                    vendor="nvidia",
                    model="a100-80g",
                    family="ampere",
                    count=8,
                    memory_gib=80,
                    tflops={
                        "fp64": Decimal("9.7"),
                        "tf32": Decimal("156"),
                        "bf16": Decimal("312"),
                        "fp16": Decimal("312"),
                    },
                    interconnect="nvlink",
                ),
            ),
            "location": Location(country="CN", region="CN-TJ", city="天津", datacenter="tj-ai-1"),
            "price": Price(
                currency="CNY",
                items=[PriceItem(resource="accelerator", amount=Decimal("9.5"), per="hour")],
                billing_granularity_s=3_600,
                minimum_term_s=3_600,
            ),
            "availability": Availability(units_total=32, units_free=units_free),
            "energy": Energy(
                renewable_share=Decimal("0.3"), pue=Decimal("1.3"), carbon_g_per_kwh=500
            ),
            "network": Network(rtt_us={"CN-TJ": 300, "CN-BJ": 1000}, latency_circle="jingjinji"),
            "software": [
                Software(name="cuda", version="12.4"),
                Software(name="pytorch", version="2.4"),
            ],
        }
    )
