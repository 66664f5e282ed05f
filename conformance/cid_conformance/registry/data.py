"""The records the registry cases publish, as literal cid values.

The search catalogue is designed so that every constraint and ranking key of
§7.4–§7.6 splits it in a known way. Expected figures come from the spec's
own worked examples (§4.10.1, §7.6): for "1 vCPU + 2 GiB + 100 GiB storage for
3 months" Guizhou costs 30 CNY, Inner Mongolia (daily granularity)
12144/365 = 33.271232876712328768 CNY written, and Tianjin 65.7 CNY.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = [
    "CATALOGUE",
    "GUIZHOU",
    "WORKED_DEMAND_S",
    "offer",
]

WORKED_DEMAND_S: Final = 3 * 2_628_000
"""Three months of 730 hours (§4.10.1)."""

GUIZHOU: Final[dict[str, Any]] = {
    "availability": {"units_free": 5000, "units_total": 8000},
    "class": "general",
    "compliance": ["mlps-3"],
    "energy": {"carbon_g_per_kwh": 310, "pue": "1.2", "renewable_share": "0.62"},
    "ext": {},
    "location": {"city": "贵安", "country": "CN", "datacenter": "gy-2", "region": "CN-GZ"},
    "network": {
        "latency_circle": "west-hub",
        "rtt_us": {"CN-BJ": 9000, "CN-GZ": 500, "CN-TJ": 9500},
    },
    "price": {
        "billing_granularity_s": 3600,
        "currency": "CNY",
        "items": [
            {"amount": "5", "per": "month", "resource": "vcpu"},
            {"amount": "1", "per": "month", "resource": "memory_gib"},
            {"amount": "0.03", "per": "month", "resource": "storage_gib"},
        ],
        "minimum_term_s": 2628000,
    },
    "software": [{"name": "ubuntu", "version": "22.04"}, {"name": "openeuler", "version": "22.03"}],
    "title": "Guizhou green general compute, per-month",
    "unit": {
        "cpu": {"arch": "x86_64", "vendor": "intel"},
        "memory_mib": 2048,
        "storage_gib": 0,
        "vcpu": 1,
    },
}
"""The offer body of §3.12 (the worked example's cheapest pool)."""

TIANJIN: Final[dict[str, Any]] = {
    "availability": {"units_free": 800, "units_total": 1000},
    "class": "general",
    "compliance": ["iso27001"],
    "location": {"city": "天津", "country": "CN", "datacenter": "tj-1", "region": "CN-TJ"},
    "network": {
        "latency_circle": "jingjinji",
        "rtt_us": {"CN-BJ": 2000, "CN-GZ": 30000, "CN-TJ": 1000},
    },
    "price": {
        "billing_granularity_s": 3600,
        "currency": "CNY",
        "items": [
            {"amount": "0.012", "per": "hour", "resource": "vcpu"},
            {"amount": "0.004", "per": "hour", "resource": "memory_gib"},
            {"amount": "0.0001", "per": "hour", "resource": "storage_gib"},
        ],
    },
    "software": [{"name": "ubuntu", "version": "20.04"}],
    "title": "Tianjin general compute, per-hour",
    "unit": {
        "cpu": {"arch": "aarch64", "model": "kunpeng-920", "vendor": "huawei"},
        "memory_mib": 2048,
        "vcpu": 1,
    },
}
"""No ``energy``: a constraint on energy never selects it ([REQ-QRY-021])."""

INNER_MONGOLIA: Final[dict[str, Any]] = {
    "availability": {"units_free": 3000, "units_total": 3000},
    "class": "general",
    "compliance": ["iso14001", "mlps-3"],
    "energy": {"carbon_g_per_kwh": 120, "pue": "1.15", "renewable_share": "0.9"},
    "location": {"city": "乌兰察布", "country": "CN", "datacenter": "ulq-1", "region": "CN-NM"},
    "network": {
        "latency_circle": "north-hub",
        "rtt_us": {"CN-BJ": 6000, "CN-GZ": 20000, "CN-TJ": 7000},
    },
    "price": {
        "billing_granularity_s": 86400,
        "currency": "CNY",
        "items": [
            {"amount": "7", "per": "month", "resource": "unit"},
            {"amount": "0.04", "per": "month", "resource": "storage_gib"},
        ],
        "minimum_term_s": 2628000,
    },
    "software": [{"name": "ubuntu", "version": "22.04"}],
    "title": "Ulanqab wind-powered slices, daily billing",
    "unit": {"cpu": {"arch": "x86_64", "vendor": "intel"}, "memory_mib": 2048, "vcpu": 1},
}
"""Daily granularity: 3 months bill as 92 days, 12144/365 CNY (§4.10.1)."""

A100: Final[dict[str, Any]] = {
    "availability": {"units_free": 12, "units_total": 16},
    "class": "intelligent",
    "compliance": ["iso27001"],
    "energy": {"carbon_g_per_kwh": 550, "renewable_share": "0.5"},
    "location": {"city": "天津", "country": "CN", "datacenter": "tj-ai-1", "region": "CN-TJ"},
    "network": {
        "latency_circle": "jingjinji",
        "rtt_us": {"CN-BJ": 1500, "CN-GZ": 25000, "CN-TJ": 800},
    },
    "price": {
        "currency": "CNY",
        "items": [{"amount": "9.5", "per": "hour", "resource": "accelerator"}],
    },
    "software": [{"name": "cuda", "version": "12.4"}, {"name": "pytorch", "version": "2.3"}],
    "title": "8x A100 80GB servers",
    "unit": {
        "accelerators": {
            "count": 8,
            "family": "ampere",
            "interconnect": "nvlink",
            "memory_gib": 80,
            "model": "a100-80g",
            "tflops": {"bf16": "312", "fp16": "312", "fp64": "9.7", "tf32": "156"},
            "vendor": "nvidia",
        },
        "cpu": {"arch": "x86_64", "vendor": "amd"},
        "memory_mib": 1048576,
        "vcpu": 64,
    },
}

HPC: Final[dict[str, Any]] = {
    "availability": {"units_free": 10, "units_total": 10},
    "class": "super",
    "energy": {"carbon_g_per_kwh": 600, "renewable_share": "0.3"},
    "location": {"city": "广州", "country": "CN", "region": "CN-GD"},
    "network": {"rtt_us": {"CN-BJ": 28000, "CN-GZ": 15000, "CN-TJ": 30000}},
    "price": {"currency": "CNY", "items": [{"amount": "2", "per": "hour", "resource": "node"}]},
    "title": "Guangzhou HPC partition",
    "unit": {
        "hpc": {
            "cores_per_node": 64,
            "fp64_tflops": "20.5",
            "interconnect": "infiniband-hdr",
            "nodes": 4,
            "scheduler": "slurm",
        }
    },
}

USD: Final[dict[str, Any]] = {
    "availability": {"units_free": 100, "units_total": 100},
    "class": "general",
    "energy": {"carbon_g_per_kwh": 200, "renewable_share": "0.7"},
    "location": {"country": "US", "region": "US-CA"},
    "price": {
        "currency": "USD",
        "items": [
            {"amount": "0.01", "per": "hour", "resource": "vcpu"},
            {"amount": "0.002", "per": "hour", "resource": "memory_gib"},
        ],
    },
    "title": "Californian general compute in USD",
    "unit": {"cpu": {"arch": "x86_64"}, "memory_mib": 4096, "vcpu": 2},
}
"""Priced in USD and with no RTT anywhere: never ranked with CNY offers ([REQ-CAP-024])."""

OBJECT_STORE: Final[dict[str, Any]] = {
    "availability": {"units_free": 500, "units_total": 500},
    "class": "storage",
    "location": {"city": "上海", "country": "CN", "region": "CN-SH"},
    "network": {"latency_circle": "conf-circle", "rtt_us": {"CN-GZ": 20000, "CN-TJ": 12000}},
    "price": {
        "currency": "CNY",
        "items": [{"amount": "0.0001", "per": "hour", "resource": "storage_gib"}],
    },
    "title": "Shanghai object storage",
    "unit": {
        "storage": {
            "capacity_gib": 1000,
            "iops": 5000,
            "kind": "object",
            "redundancy": "ec-8+3",
            "throughput_mbps": 1000,
        }
    },
}

CATALOGUE: Final[dict[str, dict[str, Any]]] = {
    "gz": GUIZHOU,
    "gz2": GUIZHOU,
    "tj": TIANJIN,
    "nm": INNER_MONGOLIA,
    "a100": A100,
    "hpc": HPC,
    "usd": USD,
    "obj": OBJECT_STORE,
}
"""Offers published at ``<label>.cat.<apex>``; ``nm`` also carries a refresh (7 units free)."""


def offer(**changes: Any) -> dict[str, Any]:
    """A valid offer body (the §3.12 one) with top-level members replaced."""
    from ..signed import merge

    return merge(GUIZHOU, changes)
