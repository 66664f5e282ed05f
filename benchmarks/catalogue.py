"""A seeded synthetic catalogue of offers and the query shapes of the matching benchmark.

The catalogue imitates the market of ``/work/shared/CONTEXT.md``: about twenty
providers (clouds, telecom operators, AI and supercomputing centres, regional
platforms), each with data centres in a handful of the 21 modelled provinces
(weighted towards the eastern demand centres and the western hubs); per data
centre, pools of general compute (instance shapes from 1 vCPU/1 GiB to
64 vCPU/256 GiB over five CPU architectures), intelligent compute (nine
accelerator models, 1–8 devices per unit, with their TFLOPS and software
stacks), supercomputing partitions and storage services. Prices follow four
pricing styles (per resource-hour, per resource-month with a monthly minimum
term, per unit-hour, per second) scaled by a regional factor (the west is
cheaper and greener), with list prices shared by many pools and discounts on
others, so that both ties and diversity occur. Renewable share, carbon,
measured RTTs to the eastern hubs, availability, compliance tags and software
follow the region and the provider.

Everything is drawn from one ``random.Random(seed)``: the same ``(n, seed)``
gives the same catalogue. Objects are built with ``model_construct`` and
shared sub-models (units, locations, networks, software lists), as a registry
replica would share them, so a million offers build in about a minute; the
first offers are re-validated to keep the generator honest.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from cid.identifier import Identifier
from cid.latency import default_model
from cid.model import validate
from cid.query import Query
from cid.record import (
    Accelerator,
    Availability,
    Cpu,
    Energy,
    Hpc,
    Location,
    Network,
    OfferBody,
    Price,
    PriceItem,
    Software,
    Storage,
    Unit,
)

__all__ = ["REGIONS", "SyntheticOffer", "generate", "query_shapes", "query_texts"]

# region: (weight, price factor, renewable share range, currency)
REGIONS: Final[dict[str, tuple[float, float, tuple[float, float], str]]] = {
    "CN-BJ": (10, 1.15, (0.12, 0.35), "CNY"),
    "CN-TJ": (6, 1.05, (0.12, 0.35), "CNY"),
    "CN-HE": (6, 0.95, (0.2, 0.45), "CNY"),
    "CN-SH": (10, 1.2, (0.1, 0.3), "CNY"),
    "CN-JS": (7, 1.05, (0.1, 0.35), "CNY"),
    "CN-ZJ": (7, 1.05, (0.15, 0.4), "CNY"),
    "CN-AH": (3, 0.95, (0.15, 0.4), "CNY"),
    "CN-GD": (10, 1.15, (0.15, 0.4), "CNY"),
    "CN-SC": (5, 0.85, (0.5, 0.85), "CNY"),
    "CN-CQ": (3, 0.9, (0.4, 0.7), "CNY"),
    "CN-NM": (7, 0.7, (0.55, 0.95), "CNY"),
    "CN-GZ": (6, 0.72, (0.5, 0.85), "CNY"),
    "CN-GS": (3, 0.7, (0.55, 0.9), "CNY"),
    "CN-NX": (3, 0.72, (0.5, 0.9), "CNY"),
    "CN-YN": (2, 0.78, (0.6, 0.95), "CNY"),
    "CN-HB": (2, 1.0, (0.3, 0.6), "CNY"),
    "CN-HN": (2, 1.0, (0.25, 0.5), "CNY"),
    "CN-SD": (2, 1.0, (0.1, 0.3), "CNY"),
    "CN-FJ": (2, 1.0, (0.2, 0.5), "CNY"),
    "CN-HK": (2, 1.4, (0.05, 0.2), "HKD"),
    "SG-01": (1, 1.5, (0.05, 0.15), "USD"),
}
CIRCLE_OF: Final = {
    "CN-BJ": "jingjinji",
    "CN-TJ": "jingjinji",
    "CN-HE": "jingjinji",
    "CN-SH": "yangtze-delta",
    "CN-JS": "yangtze-delta",
    "CN-ZJ": "yangtze-delta",
    "CN-AH": "yangtze-delta",
    "CN-GD": "greater-bay",
    "CN-HK": "greater-bay",
    "CN-SC": "chengyu",
    "CN-CQ": "chengyu",
    "CN-NM": "west-hub",
    "CN-GZ": "west-hub",
    "CN-GS": "west-hub",
    "CN-NX": "west-hub",
    "CN-YN": "west-hub",
}
CITIES: Final = {
    "CN-BJ": ["北京"],
    "CN-TJ": ["天津", "滨海新区"],
    "CN-HE": ["张家口", "廊坊"],
    "CN-SH": ["上海"],
    "CN-GZ": ["贵安", "贵阳"],
    "CN-NM": ["乌兰察布", "和林格尔"],
    "CN-GD": ["广州", "深圳", "韶关"],
    "CN-NX": ["中卫"],
    "CN-GS": ["庆阳"],
}
PROVIDERS: Final = [
    # (label, weight, classes it sells (general, intelligent, super, storage))
    ("ctyun", 12, (0.7, 0.15, 0.02, 0.13)),
    ("cmcc", 12, (0.72, 0.15, 0.0, 0.13)),
    ("unicom", 9, (0.75, 0.12, 0.0, 0.13)),
    ("aliyun", 10, (0.68, 0.22, 0.0, 0.1)),
    ("tencent", 8, (0.7, 0.2, 0.0, 0.1)),
    ("huawei", 8, (0.6, 0.32, 0.0, 0.08)),
    ("baidu", 4, (0.5, 0.45, 0.0, 0.05)),
    ("volc", 4, (0.55, 0.4, 0.0, 0.05)),
    ("sugon", 4, (0.4, 0.2, 0.35, 0.05)),
    ("inspur", 4, (0.6, 0.25, 0.1, 0.05)),
    ("tjsc", 2, (0.2, 0.3, 0.5, 0.0)),
    ("nscc-gz", 2, (0.2, 0.3, 0.5, 0.0)),
    ("gzbigdata", 3, (0.8, 0.1, 0.0, 0.1)),
    ("nmcompute", 3, (0.7, 0.2, 0.0, 0.1)),
    ("jd", 3, (0.75, 0.15, 0.0, 0.1)),
    ("kingsoft", 2, (0.75, 0.15, 0.0, 0.1)),
    ("ucloud", 2, (0.8, 0.1, 0.0, 0.1)),
    ("zstack", 1, (0.9, 0.05, 0.0, 0.05)),
    ("cambricon-cloud", 1, (0.1, 0.9, 0.0, 0.0)),
    ("hk-edge", 1, (0.8, 0.15, 0.0, 0.05)),
]
SHAPES: Final = [
    # (vcpu, memory MiB, weight)
    (1, 1024, 6),
    (1, 2048, 10),
    (2, 4096, 14),
    (2, 8192, 8),
    (4, 8192, 12),
    (4, 16384, 10),
    (8, 16384, 8),
    (8, 32768, 8),
    (16, 65536, 6),
    (32, 131072, 4),
    (64, 262144, 2),
]
ARCHES: Final = [
    ("x86_64", "intel", 50),
    ("x86_64", "amd", 20),
    ("x86_64", "hygon", 8),
    ("aarch64", "huawei", 14),
    ("aarch64", "phytium", 2),
    ("loongarch64", "loongson", 4),
    ("sw_64", "sunway", 1),
    ("riscv64", "sophgo", 1),
]
# vendor, model, family, memory GiB, tflops, CNY per device-hour, weight, stack
ACCELERATORS: Final = [
    (
        "nvidia",
        "a100-80g",
        "ampere",
        80,
        {"fp64": "9.7", "tf32": "156", "bf16": "312", "fp16": "312"},
        11.0,
        15,
        "cuda",
    ),
    (
        "nvidia",
        "a100-40g",
        "ampere",
        40,
        {"fp64": "9.7", "tf32": "156", "bf16": "312", "fp16": "312"},
        8.0,
        8,
        "cuda",
    ),
    (
        "nvidia",
        "h100-sxm-80g",
        "hopper",
        80,
        {"fp64": "34", "tf32": "495", "bf16": "990", "fp16": "990", "fp8": "1979"},
        24.0,
        7,
        "cuda",
    ),
    (
        "nvidia",
        "h20",
        "hopper",
        96,
        {"fp64": "1", "tf32": "74", "bf16": "148", "fp16": "148", "fp8": "296"},
        9.0,
        15,
        "cuda",
    ),
    ("nvidia", "l40s", "ada", 48, {"fp32": "91.6", "bf16": "362", "fp16": "362"}, 6.0, 8, "cuda"),
    ("nvidia", "rtx-4090", "ada", 24, {"fp32": "82.6", "fp16": "165"}, 2.2, 10, "cuda"),
    ("huawei", "ascend-910b", "ascend", 64, {"fp16": "320", "int8": "640"}, 7.5, 25, "cann"),
    (
        "cambricon",
        "mlu370-x8",
        "mlu300",
        48,
        {"fp32": "24", "bf16": "96", "fp16": "96"},
        4.0,
        8,
        "neuware",
    ),
    (
        "amd",
        "mi300x",
        "cdna3",
        192,
        {"fp64": "81.7", "bf16": "1307.4", "fp16": "1307.4"},
        18.0,
        4,
        "rocm",
    ),
]
STACKS: Final = {
    "cuda": [("cuda", ["11.8", "12.1", "12.4", "12.6"]), ("pytorch", ["2.1", "2.3", "2.4", "2.5"])],
    "cann": [("cann", ["7.0", "8.0"]), ("mindspore", ["2.3", "2.4"]), ("pytorch", ["2.1"])],
    "neuware": [("neuware", ["3.6", "3.8"]), ("pytorch", ["1.13", "2.1"])],
    "rocm": [("rocm", ["6.0", "6.2"]), ("pytorch", ["2.3", "2.4"])],
}
OS_IMAGES: Final = [
    ("ubuntu", "22.04"),
    ("ubuntu", "24.04"),
    ("ubuntu", "20.04"),
    ("openeuler", "22.03"),
    ("openeuler", "24.03"),
    ("kylin", "10"),
    ("centos", "7.9"),
]
TAGS: Final = [
    ("mlps-3", 0.55),
    ("mlps-2", 0.2),
    ("iso27001", 0.35),
    ("iso14001", 0.1),
    ("soc2", 0.03),
]
HUBS: Final = ["CN-BJ", "CN-TJ", "CN-SH", "CN-GD"]
MONTH_S: Final = 2_628_000


@dataclass(frozen=True, slots=True)
class SyntheticOffer:
    """One generated listing: name, serial, body and expiry."""

    name: Identifier
    serial: int
    offer: OfferBody
    expires: int


def _pick(rng: random.Random, weighted: list[tuple[Any, float]]) -> Any:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


def _money(x: float, digits: int = 4) -> Decimal:
    return Decimal(f"{max(x, 0):.{digits}f}").normalize() + Decimal(0)


class _Builder:
    def __init__(self, seed: int, now: int) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.model = default_model()
        self.cache: dict[Any, Any] = {}
        self.datacentres: list[tuple[str, str, str, Any]] = []
        rng = self.rng
        regions = list(REGIONS)
        region_w = [REGIONS[r][0] for r in regions]
        for label, weight, mix in PROVIDERS:
            n_dc = max(1, round(weight / 2)) + rng.randint(0, 2)
            chosen = set()
            for _ in range(n_dc):
                region = rng.choices(regions, weights=region_w)[0]
                if label == "hk-edge":
                    region = rng.choice(["CN-HK", "SG-01"])
                chosen.add(region)
            for i, region in enumerate(sorted(chosen)):
                dc = f"{region[3:].lower()}{i + 1}"
                self.datacentres.append((label, dc, region, mix))
        self.dc_weights = [next(p[1] for p in PROVIDERS if p[0] == d[0]) for d in self.datacentres]

    def shared(self, key: Any, make: Any) -> Any:
        v = self.cache.get(key)
        if v is None:
            v = self.cache[key] = make()
        return v

    def location(self, dc: str, region: str) -> Location:
        def make() -> Location:
            cities = CITIES.get(region)
            city = cities[hash(dc) % len(cities)] if cities else None
            return Location.model_construct(
                country=region[:2], region=region, city=city, datacenter=dc
            )

        return self.shared(("loc", dc, region), make)  # type: ignore[no-any-return]

    def network(self, provider: str, dc: str, region: str) -> Network:
        def make() -> Network:
            rng = random.Random(f"{provider}/{dc}")
            rtt = {region: rng.randint(200, 600)}
            for hub in rng.sample(HUBS, rng.randint(1, 3)):
                if hub == region:
                    continue
                base = self.model.region_rtt_us(region, hub) or 20_000
                rtt[hub] = int(base * rng.uniform(0.85, 1.25))
            return Network.model_construct(
                rtt_us=rtt, latency_circle=CIRCLE_OF.get(region), bandwidth_mbps=None
            )

        return self.shared(("net", provider, dc), make)  # type: ignore[no-any-return]

    def os_software(self) -> list[Software]:
        rng = self.rng
        k = rng.choice([1, 1, 2, 3])
        picks = tuple(sorted(rng.sample(range(len(OS_IMAGES)), k)))
        return self.shared(  # type: ignore[no-any-return]
            ("os", picks),
            lambda: [
                Software.model_construct(name=OS_IMAGES[i][0], version=OS_IMAGES[i][1])
                for i in picks
            ],
        )

    def compliance(self, provider: str, dc: str) -> list[str]:
        def make() -> list[str]:
            rng = random.Random(f"tags/{provider}/{dc}")
            return [t for t, p in TAGS if rng.random() < p]

        return self.shared(("tags", provider, dc), make)  # type: ignore[no-any-return]

    def energy(self, region: str) -> Energy | None:
        rng = self.rng
        if rng.random() < 0.08:
            return None
        lo, hi = REGIONS[region][2]
        share = _money(rng.uniform(lo, hi), 2)
        carbon = int(650 * (1 - float(share)) + 40)
        return Energy.model_construct(
            renewable_share=share, pue=_money(rng.uniform(1.1, 1.5), 2), carbon_g_per_kwh=carbon
        )

    def availability(self) -> Availability:
        rng = self.rng
        total = int(rng.lognormvariate(5, 1.2)) + 1
        free = 0 if rng.random() < 0.08 else int(total * rng.betavariate(2, 2))
        return Availability.model_construct(units_total=total, units_free=free)

    def price(
        self, currency: str, items: list[tuple[str, float, str]], gran: int, minterm: int
    ) -> Price:
        return Price.model_construct(
            currency=currency,
            items=[
                PriceItem.model_construct(resource=r, amount=_money(a), per=p) for r, a, p in items
            ],
            billing_granularity_s=gran,
            minimum_term_s=minterm,
        )

    def jitter(self) -> float:
        """List price (shared by many pools) 40% of the time, else a discount or premium."""
        rng = self.rng
        return 1.0 if rng.random() < 0.4 else rng.uniform(0.75, 1.15)

    def offer(self, i: int) -> SyntheticOffer:
        rng = self.rng
        d = rng.choices(range(len(self.datacentres)), weights=self.dc_weights)[0]
        provider, dc, region, mix = self.datacentres[d]
        klass = rng.choices(["general", "intelligent", "super", "storage"], weights=mix)[0]
        factor = REGIONS[region][1] * (7.5 if REGIONS[region][3] == "HKD" else 1.0)
        factor *= 0.14 if REGIONS[region][3] == "USD" else 1.0
        currency = REGIONS[region][3]
        software: list[Software]
        if klass == "general":
            unit, price, software, title = self.general(factor, currency)
        elif klass == "intelligent":
            unit, price, software, title = self.intelligent(factor, currency)
        elif klass == "super":
            unit, price, software, title = self.hpc(factor, currency)
        else:
            unit, price, software, title = self.storage(factor, currency)
        body = OfferBody.model_construct(
            compute_class=klass,
            title=title,
            unit=unit,
            location=self.location(dc, region),
            price=price,
            availability=self.availability(),
            energy=self.energy(region),
            network=self.network(provider, dc, region),
            software=software,
            compliance=self.compliance(provider, dc),
            ext={},
        )
        name = Identifier(f"p{i:07d}.{dc}.{provider}")
        expires = self.now - 10 if rng.random() < 0.01 else self.now + rng.randint(600, 86_400)
        return SyntheticOffer(name, rng.randint(1, 50), body, expires)

    def general(self, factor: float, currency: str) -> tuple[Unit, Price, list[Software], str]:
        rng = self.rng
        vcpu, mem = _pick(rng, [((v, m), w) for v, m, w in SHAPES])
        arch, vendor = _pick(rng, [((a, v), w) for a, v, w in ARCHES])
        disk = rng.choice([0, 0, 40, 100])
        unit = self.shared(
            ("gu", vcpu, mem, arch, vendor, disk),
            lambda: Unit.model_construct(
                vcpu=vcpu,
                cpu=Cpu.model_construct(arch=arch, vendor=vendor, model=None, base_mhz=None),
                memory_mib=mem,
                storage_gib=disk,
                accelerators=None,
                hpc=None,
                storage=None,
            ),
        )
        j = self.jitter() * factor * (1.1 if arch != "x86_64" else 1.0)
        style = rng.random()
        if style < 0.45:
            items = [("vcpu", 0.08 * j, "hour"), ("memory_gib", 0.02 * j, "hour")]
            if rng.random() < 0.7:
                items.append(("storage_gib", 0.0005 * j, "hour"))
            price = self.price(currency, items, 3600, rng.choice([0, 3600]))
        elif style < 0.7:
            items = [("vcpu", 38 * j, "month"), ("memory_gib", 9 * j, "month")]
            if rng.random() < 0.8:
                items.append(("storage_gib", 0.035 * j, "month"))
            price = self.price(currency, items, 86_400, MONTH_S)
        elif style < 0.9:
            per_hour = (0.075 * vcpu + 0.018 * mem / 1024) * j
            items = [("unit", per_hour, "hour")]
            if rng.random() < 0.6:
                items.append(("storage_gib", 0.04 * j, "month"))
            price = self.price(currency, items, rng.choice([1, 3600]), 0)
        else:
            items = [
                ("vcpu", 0.09 * j, "hour"),
                ("memory_gib", 0.022 * j, "hour"),
                ("storage_gib", 0.0006 * j, "hour"),
            ]
            price = self.price(currency, items, 1, 60)
        return unit, price, self.os_software(), f"{vcpu}c{mem // 1024}g {arch}"

    def intelligent(self, factor: float, currency: str) -> tuple[Unit, Price, list[Software], str]:
        rng = self.rng
        spec = _pick(rng, [(a, a[6]) for a in ACCELERATORS])
        vendor, model, family, mem, tflops, rate, _, stack = spec
        count = _pick(rng, [(1, 20), (2, 15), (4, 20), (8, 45)])

        def make_unit() -> Unit:
            acc = Accelerator.model_construct(
                vendor=vendor,
                model=model,
                family=family,
                count=count,
                memory_gib=mem,
                tflops={p: Decimal(v) for p, v in tflops.items()},
                interconnect=None,
            )
            return Unit.model_construct(
                vcpu=16 * count,
                cpu=Cpu.model_construct(
                    arch="aarch64" if vendor == "huawei" else "x86_64",
                    vendor=None,
                    model=None,
                    base_mhz=None,
                ),
                memory_mib=131072 * count,
                storage_gib=1000 * count,
                accelerators=acc,
                hpc=None,
                storage=None,
            )

        unit = self.shared(("iu", model, count), make_unit)
        j = self.jitter() * factor * rate
        style = rng.random()
        if style < 0.7:
            price = self.price(
                currency, [("accelerator", j, "hour")], 3600, rng.choice([0, 3600, 86_400])
            )
        elif style < 0.9:
            price = self.price(currency, [("unit", j * count * 0.97, "hour")], 3600, 3600)
        else:
            price = self.price(currency, [("accelerator", j * 730 * 0.7, "month")], 86_400, MONTH_S)
        versions = tuple(rng.randrange(len(v)) for _, v in STACKS[stack])
        software = self.shared(
            ("sw", stack, versions),
            lambda: (
                [
                    Software.model_construct(name=n, version=v[k])
                    for (n, v), k in zip(STACKS[stack], versions, strict=True)
                ]
                + [Software.model_construct(name="ubuntu", version="22.04")]
            ),
        )
        return unit, price, software, f"{count}x {model}"

    def hpc(self, factor: float, currency: str) -> tuple[Unit, Price, list[Software], str]:
        rng = self.rng
        nodes = rng.choice([1, 2, 4, 8, 16, 32, 64])
        per_node = rng.choice([3, 4, 5])
        unit = self.shared(
            ("hu", nodes, per_node),
            lambda: Unit.model_construct(
                vcpu=0,
                cpu=Cpu.model_construct(arch="x86_64", vendor=None, model=None, base_mhz=None),
                memory_mib=0,
                storage_gib=0,
                accelerators=None,
                hpc=Hpc.model_construct(
                    nodes=nodes,
                    cores_per_node=64,
                    fp64_tflops=Decimal(nodes * per_node),
                    interconnect=rng.choice(["infiniband-hdr", "infiniband-ndr", "th-express"]),
                    scheduler=rng.choice(["slurm", "pbs"]),
                ),
                storage=None,
            ),
        )
        price = self.price(currency, [("node", 10 * self.jitter() * factor, "hour")], 3600, 3600)
        software = self.shared(
            ("hpc-sw",),
            lambda: [
                Software.model_construct(name="openmpi", version="4.1"),
                Software.model_construct(name="wrf", version="4.5"),
            ],
        )
        return unit, price, software, f"{nodes}-node partition"

    def storage(self, factor: float, currency: str) -> tuple[Unit, Price, list[Software], str]:
        rng = self.rng
        kind = rng.choice(["object", "object", "block", "file", "archive"])
        unit = self.shared(
            ("su", kind),
            lambda: Unit.model_construct(
                vcpu=0,
                cpu=None,
                memory_mib=0,
                storage_gib=0,
                accelerators=None,
                hpc=None,
                storage=Storage.model_construct(
                    kind=kind,
                    capacity_gib=1024,
                    iops=None,
                    throughput_mbps=None,
                    redundancy="replica-3",
                ),
            ),
        )
        base = 0.006 if kind == "archive" else 0.1
        price = self.price(
            currency, [("storage_gib", base * self.jitter() * factor, "month")], 86_400, 0
        )
        return unit, price, [], f"{kind} storage"


def generate(
    n: int, *, seed: int = 2026, now: int = 1_767_225_600, check: int = 200
) -> list[SyntheticOffer]:
    """``n`` offers drawn from ``seed``; the first ``check`` are re-validated as wire models."""
    b = _Builder(seed, now)
    out = [b.offer(i) for i in range(n)]
    for item in out[:check]:
        again = validate(OfferBody, item.offer.to_value())
        assert again == item.offer, item.name
    return out


# --- the query shapes ----------------------------------------------------------------------

SHAPE_QUERIES: Final[dict[str, dict[str, Any]]] = {
    # selective
    "gpu_a100_tj": {
        "class": "intelligent",
        "accelerator": {"model": ["a100-80g"], "count_min": 8},
        "demand": {"accelerators": 8},
        "near": {"region": "CN-TJ", "max_rtt_us": 3000},
        "renewable_share_min": "0.3",
        "currency": "CNY",
        "order": ["cost", "latency"],
    },
    "gpu_h100_week": {
        "accelerator": {"model": ["h100-sxm-80g"]},
        "demand": {"accelerators": 8},
        "duration_s": 7 * 86_400,
        "currency": "CNY",
        "order": ["cost"],
    },
    "ascend_cann8": {
        "accelerator": {"vendor": "huawei"},
        "software": [{"name": "cann", "version": ">=8"}],
        "currency": "CNY",
        "order": ["cost", "availability"],
    },
    "hpc_16_nodes": {
        "class": "super",
        "demand": {"nodes": 16},
        "duration_s": 2 * 86_400,
        "currency": "CNY",
        "order": ["cost"],
    },
    "weighted_hopper": {
        "class": "intelligent",
        "accelerator": {"family": "hopper"},
        "currency": "CNY",
        "order": ["cost", "renewable"],
        "weights": {"cost": "2", "renewable": "1"},
    },
    "tj_by_name": {"class": "general", "region_in": ["CN-TJ"], "currency": "CNY"},
    # medium
    "gpu_most_available": {
        "class": "intelligent",
        "accelerator": {"memory_gib_min": 80},
        "units_free_min": 4,
        "currency": "CNY",
        "order": ["availability"],
    },
    "west_8c32g_month": {
        "class": "general",
        "region_in": ["CN-GZ", "CN-NM", "CN-GS", "CN-NX"],
        "demand": {"vcpu": 8, "memory_mib": 32768},
        "duration_s": 30 * 86_400,
        "currency": "CNY",
        "order": ["cost"],
    },
    "near_bj_latency": {
        "class": "general",
        "near": {"region": "CN-BJ", "max_rtt_us": 3000},
        "currency": "CNY",
        "order": ["latency", "cost"],
    },
    "green_general": {
        "class": "general",
        "renewable_share_min": "0.8",
        "currency": "CNY",
        "order": ["renewable", "cost"],
    },
    "compliant_x86": {
        "class": "general",
        "arch": ["x86_64"],
        "compliance": ["mlps-3", "iso27001"],
        "country_in": ["CN"],
        "currency": "CNY",
        "order": ["cost"],
    },
    "storage_cheapest": {
        "class": "storage",
        "demand": {"storage_gib": 10240},
        "duration_s": MONTH_S,
        "currency": "CNY",
        "order": ["cost"],
    },
    # broad
    "general_worked_example": {
        "class": "general",
        "demand": {"vcpu": 1, "memory_mib": 2048, "storage_gib": 100},
        "duration_s": 3 * MONTH_S,
        "currency": "CNY",
        "order": ["cost"],
    },
    "general_4c16g_hour": {
        "class": "general",
        "vcpu_min": 4,
        "memory_mib_min": 16384,
        "currency": "CNY",
        "order": ["cost"],
    },
    "unit_price_cap": {
        "class": "general",
        "unit_price_max": "0.1",
        "unit_price_per": "hour",
        "currency": "CNY",
        "order": ["cost", "renewable"],
    },
    "budget_green_16c": {
        "class": "general",
        "demand": {"vcpu": 16, "memory_mib": 65536},
        "duration_s": 30 * 86_400,
        "total_cost_max": "2000",
        "currency": "CNY",
        "order": ["renewable"],
    },
    "anything_cheapest": {"currency": "CNY", "order": ["cost"]},
}


def query_shapes() -> dict[str, Query]:
    """The benchmark's query shapes, selective to broad, as queries."""
    return {label: validate(Query, value) for label, value in SHAPE_QUERIES.items()}


def query_texts() -> dict[str, str]:
    """The same shapes in the textual query language (spec section 13)."""
    from cid.query_text import to_text

    return {label: to_text(q) for label, q in query_shapes().items()}
