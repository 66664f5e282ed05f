"""Record types and the capability vocabulary (spec sections 3 and 4).

A record is a signed envelope (:mod:`cid.envelope`) whose header names the
record's identifier (``sub``), type (``typ``), serial and validity window, and
whose body is one of the models below. Like DNS resource records, a name may
hold one record of each type; ``(name, type)`` is a record's identity and
serials increase per identity ([REQ-REC-001]).

=============  ===========================  ==================================================
type           ``typ`` (domain tag)         signed by (spec 6.4)
=============  ===========================  ==================================================
delegation     ``cid.record.delegation``    a signing key of the namespace governing the parent
keyrotation    ``cid.record.keyrotation``   an anchor key of the namespace (named by its delegation)
zone           ``cid.record.zone``          a signing key of the governing namespace
offer          ``cid.record.offer``         a signing key of the governing namespace
refresh        ``cid.record.refresh``       as the offer it refreshes
tombstone      ``cid.record.tombstone``     as the record it deletes
=============  ===========================  ==================================================

Quantities carry their unit in the field name (``memory_mib``, ``rtt_us``,
``minimum_term_s``); fractional ones are canonical decimal strings.
"""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Final, Literal

from pydantic import AnyUrl, Field, UrlConstraints, field_validator, model_validator

from .model import CanonicalDecimal, Extensions, Token, UInt, WireModel
from .signing import PublicKey

__all__ = [
    "PERIOD_SECONDS",
    "RECORD_BODIES",
    "RECORD_TYPES",
    "Accelerator",
    "Architecture",
    "Availability",
    "ComputeClass",
    "Contact",
    "Cpu",
    "DelegationBody",
    "Endpoints",
    "Energy",
    "Hpc",
    "KeyRotationBody",
    "Location",
    "Network",
    "OfferBody",
    "Period",
    "Precision",
    "Price",
    "PriceItem",
    "PricedResource",
    "RecordBody",
    "RecordType",
    "RefreshBody",
    "Software",
    "Storage",
    "TombstoneBody",
    "Unit",
    "ZoneBody",
    "record_typ",
    "record_type_of",
]


class ComputeClass(StrEnum):
    """The compute classes the market trades ([REQ-CAP-001])."""

    GENERAL = "general"
    INTELLIGENT = "intelligent"
    SUPER = "super"
    STORAGE = "storage"


class Architecture(StrEnum):
    """CPU instruction-set architectures ([REQ-CAP-002])."""

    X86_64 = "x86_64"
    AARCH64 = "aarch64"
    LOONGARCH64 = "loongarch64"
    SW_64 = "sw_64"
    RISCV64 = "riscv64"
    PPC64LE = "ppc64le"
    S390X = "s390x"


class Precision(StrEnum):
    """Numeric precisions for peak-throughput figures ([REQ-CAP-004])."""

    FP64 = "fp64"
    FP32 = "fp32"
    TF32 = "tf32"
    BF16 = "bf16"
    FP16 = "fp16"
    FP8 = "fp8"
    INT8 = "int8"
    INT4 = "int4"


class Period(StrEnum):
    """Billing periods. A month is 730 hours and a year 8760 hours exactly ([REQ-CAP-020])."""

    SECOND = "second"
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"
    YEAR = "year"


PERIOD_SECONDS: Final[dict[str, int]] = {
    "second": 1,
    "minute": 60,
    "hour": 3_600,
    "day": 86_400,
    "month": 2_628_000,
    "year": 31_536_000,
}


class PricedResource(StrEnum):
    """What a price item is charged per ([REQ-CAP-021])."""

    UNIT = "unit"
    VCPU = "vcpu"
    MEMORY_GIB = "memory_gib"
    STORAGE_GIB = "storage_gib"
    ACCELERATOR = "accelerator"
    NODE = "node"


Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$", strict=True)]
Subdivision = Annotated[str, Field(pattern=r"^[A-Z]{2}-[A-Z0-9]{1,3}$", strict=True)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", strict=True)]
ShortText = Annotated[str, Field(min_length=1, max_length=256, strict=True)]
VersionText = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+){0,3}$", max_length=32, strict=True)]
Share = Annotated[CanonicalDecimal, Field(ge=Decimal(0), le=Decimal(1))]
NonNegDecimal = Annotated[CanonicalDecimal, Field(ge=Decimal(0))]
# http is allowed besides https for loopback and test deployments
HttpsUrl = Annotated[AnyUrl, UrlConstraints(allowed_schemes=["https", "http"], max_length=512)]


# --- capabilities -----------------------------------------------------------------


class Cpu(WireModel):
    """The CPU of one unit ([REQ-CAP-002])."""

    arch: Architecture
    vendor: Token | None = None
    model: Token | None = None
    base_mhz: UInt | None = None


class Accelerator(WireModel):
    """Accelerators of one unit: all of one vendor and model ([REQ-CAP-003], [REQ-CAP-004])."""

    vendor: Token
    model: Token
    family: Token | None = None
    count: Annotated[int, Field(ge=1, le=4096, strict=True)]
    memory_gib: Annotated[int, Field(ge=0, le=1_000_000, strict=True)]
    tflops: Annotated[dict[Precision, NonNegDecimal], Field(max_length=8)] = Field(
        default_factory=dict
    )
    interconnect: Token | None = None


class Hpc(WireModel):
    """Supercomputing capability of one unit (a partition or allocation) ([REQ-CAP-005])."""

    nodes: Annotated[int, Field(ge=1, strict=True)]
    cores_per_node: UInt | None = None
    fp64_tflops: NonNegDecimal
    interconnect: Token
    scheduler: Token


class Storage(WireModel):
    """Storage service of one unit ([REQ-CAP-006])."""

    kind: Literal["object", "block", "file", "archive"]
    capacity_gib: UInt
    iops: UInt | None = None
    throughput_mbps: UInt | None = None
    redundancy: Token | None = None


class Unit(WireModel):
    """One allocation unit: the smallest quantity the pool sells ([REQ-CAP-010])."""

    vcpu: UInt = 0
    cpu: Cpu | None = None
    memory_mib: UInt = 0
    storage_gib: UInt = 0
    accelerators: Accelerator | None = None
    hpc: Hpc | None = None
    storage: Storage | None = None


class Software(WireModel):
    """A software stack available on the pool ([REQ-CAP-007])."""

    name: Token
    version: VersionText


class Location(WireModel):
    """Where the pool is ([REQ-CAP-008]): ISO 3166-1 country, ISO 3166-2 subdivision."""

    country: Country
    region: Subdivision
    city: ShortText | None = None
    datacenter: Token | None = None

    @model_validator(mode="after")
    def _region_in_country(self) -> Location:
        if not self.region.startswith(self.country + "-"):
            raise ValueError("region must be a subdivision of country [region_country]")
        return self


class Network(WireModel):
    """Network reach ([REQ-CAP-009]): measured RTT in microseconds to named regions."""

    rtt_us: Annotated[dict[Subdivision, UInt], Field(max_length=256)] = Field(default_factory=dict)
    latency_circle: Token | None = None
    bandwidth_mbps: UInt | None = None


class PriceItem(WireModel):
    """``amount`` of ``currency`` per ``resource`` per ``per`` ([REQ-CAP-021])."""

    resource: PricedResource
    amount: NonNegDecimal
    per: Period


class Price(WireModel):
    """How the pool is priced ([REQ-CAP-020]..[REQ-CAP-024])."""

    currency: Currency
    items: Annotated[list[PriceItem], Field(min_length=1, max_length=8)]
    billing_granularity_s: Annotated[int, Field(ge=1, le=31_536_000, strict=True)] = 1
    minimum_term_s: Annotated[int, Field(ge=0, le=10 * 31_536_000, strict=True)] = 0

    @field_validator("items")
    @classmethod
    def _one_item_per_resource(cls, items: list[PriceItem]) -> list[PriceItem]:
        seen = [i.resource for i in items]
        if len(set(seen)) != len(seen):
            raise ValueError("at most one price item per resource [unique_resource]")
        return items


class Energy(WireModel):
    """Energy figures ([REQ-CAP-030])."""

    renewable_share: Share
    pue: Annotated[CanonicalDecimal, Field(ge=Decimal(1), le=Decimal(5))] | None = None
    carbon_g_per_kwh: Annotated[int, Field(ge=0, le=2000, strict=True)] | None = None


class Availability(WireModel):
    """Capacity in units ([REQ-CAP-031]): ``units_free`` never exceeds ``units_total``."""

    units_total: UInt
    units_free: UInt

    @model_validator(mode="after")
    def _free_within_total(self) -> Availability:
        if self.units_free > self.units_total:
            raise ValueError("units_free exceeds units_total [free_le_total]")
        return self


# --- record bodies ------------------------------------------------------------------


class OfferBody(WireModel):
    """A pool of identical units of compute for sale ([REQ-REC-020])."""

    compute_class: ComputeClass = Field(alias="class")
    title: ShortText
    unit: Unit
    location: Location
    price: Price
    availability: Availability
    energy: Energy | None = None
    network: Network = Field(default_factory=Network)
    software: Annotated[list[Software], Field(max_length=64)] = Field(default_factory=list)
    compliance: Annotated[list[Token], Field(max_length=32)] = Field(default_factory=list)
    ext: Extensions = Field(default_factory=dict)

    @model_validator(mode="after")
    def _class_rules(self) -> OfferBody:
        # REQ-REC-021: each class must describe what it sells.
        u = self.unit
        if self.compute_class == ComputeClass.GENERAL and (u.vcpu < 1 or u.cpu is None):
            raise ValueError("a general offer needs unit.vcpu >= 1 and unit.cpu [class_shape]")
        if self.compute_class == ComputeClass.INTELLIGENT and u.accelerators is None:
            raise ValueError("an intelligent offer needs unit.accelerators [class_shape]")
        if self.compute_class == ComputeClass.SUPER and u.hpc is None:
            raise ValueError("a super offer needs unit.hpc [class_shape]")
        if self.compute_class == ComputeClass.STORAGE and u.storage is None:
            raise ValueError("a storage offer needs unit.storage [class_shape]")
        return self


class Endpoints(WireModel):
    """Where a provider speaks the negotiate and invoke verbs ([REQ-REC-011])."""

    negotiate: HttpsUrl | None = None
    invoke: HttpsUrl | None = None


class Contact(WireModel):
    org: ShortText
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=254)] | None = None
    url: HttpsUrl | None = None


class ZoneBody(WireModel):
    """A provider's namespace apex ([REQ-REC-010]).

    ``service_keys`` sign quotes, agreements and receipts at the provider's
    endpoints (and, in the root zone, the registry's feed heads); they are
    distinct from the namespace's anchor and signing keys, which sign records,
    so those can stay offline.
    """

    display_name: ShortText
    service_keys: Annotated[list[PublicKey], Field(min_length=1, max_length=8)]
    endpoints: Endpoints = Field(default_factory=Endpoints)
    contact: Contact | None = None
    ext: Extensions = Field(default_factory=dict)


class DelegationBody(WireModel):
    """A child namespace, its authority keys and where it is served (NS + DS) ([REQ-REC-030])."""

    keys: Annotated[list[PublicKey], Field(min_length=1, max_length=8)]
    registries: Annotated[list[HttpsUrl], Field(max_length=8)] = Field(default_factory=list)
    ext: Extensions = Field(default_factory=dict)


class KeyRotationBody(WireModel):
    """The namespace's new authority key set, signed by a current key ([REQ-REC-040])."""

    keys: Annotated[list[PublicKey], Field(min_length=1, max_length=8)]
    revoked: Annotated[
        list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{22}$", strict=True)]],
        Field(max_length=16),
    ] = Field(default_factory=list)


class RecordType(StrEnum):
    ZONE = "zone"
    OFFER = "offer"
    DELEGATION = "delegation"
    KEYROTATION = "keyrotation"
    TOMBSTONE = "tombstone"
    REFRESH = "refresh"


class RefreshBody(WireModel):
    """A heartbeat for one offer version: new free capacity, new expiry ([REQ-REC-060]).

    Signed like the offer it refreshes; its header ``serial`` continues the
    offer's serial sequence and its ``exp`` is the offer's new expiry. ``base``
    is the digest of the offer version it applies to, so a refresh can never
    be replayed onto another version of the offer.
    """

    base: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{43}$", strict=True)]
    units_free: UInt


class TombstoneBody(WireModel):
    """Deletion of the record ``(sub, target)`` ([REQ-REC-050])."""

    target: Literal["zone", "offer", "delegation", "keyrotation"]


RecordBody = OfferBody | ZoneBody | DelegationBody | KeyRotationBody | TombstoneBody | RefreshBody

RECORD_TYPES: Final = tuple(t.value for t in RecordType)
RECORD_BODIES: Final[dict[str, type[WireModel]]] = {
    "cid.record.zone": ZoneBody,
    "cid.record.offer": OfferBody,
    "cid.record.delegation": DelegationBody,
    "cid.record.keyrotation": KeyRotationBody,
    "cid.record.tombstone": TombstoneBody,
    "cid.record.refresh": RefreshBody,
}

_TYP = re.compile(r"^cid\.record\.([a-z]+)$")


def record_typ(record_type: str | RecordType) -> str:
    """The domain-separation tag of a record type (``offer`` → ``cid.record.offer``)."""
    value = record_type.value if isinstance(record_type, RecordType) else record_type
    if value not in RECORD_TYPES:
        raise ValueError(f"unknown record type {value!r}")
    return f"cid.record.{value}"


def record_type_of(typ: str) -> str | None:
    """Inverse of :func:`record_typ`, or ``None`` for a typ that is not a record."""
    m = _TYP.match(typ)
    if m and m.group(1) in RECORD_TYPES:
        return m.group(1)
    return None
