"""Record bodies and the capability vocabulary ([REQ-REC-*], [REQ-CAP-*], [REQ-ENC-007])."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cid import codec
from cid import examples as ex
from cid.errors import SchemaError
from cid.model import decimal_to_text, validate
from cid.record import (
    PERIOD_SECONDS,
    RECORD_BODIES,
    DelegationBody,
    OfferBody,
    ZoneBody,
    record_typ,
    record_type_of,
)

OFFERS = [ex.tianjin_offer(), ex.guizhou_offer(), ex.inner_mongolia_offer(), ex.a100_offer()]


@pytest.mark.parametrize("offer", OFFERS, ids=lambda o: o.title)
@pytest.mark.parametrize("encoding", ["json", "msgpack"])
def test_offer_round_trip(offer: OfferBody, encoding: str) -> None:
    """Codec round trip: model -> value -> bytes -> value -> model is the identity."""
    data = codec.encode(offer.to_value(), encoding)
    back = validate(OfferBody, codec.decode(data, encoding))
    assert back == offer
    assert codec.encode(back.to_value(), encoding) == data


def _offer_value() -> dict[str, Any]:
    return copy.deepcopy(ex.guizhou_offer().to_value())


def _set(path: str, value: Any) -> Any:
    def f(v: dict[str, Any]) -> None:
        parts = path.split(".")
        for p in parts[:-1]:
            v = v[int(p)] if p.isdigit() else v[p]  # type: ignore[index]
        v[parts[-1]] = value

    return f


def _drop(path: str) -> Any:
    def f(v: dict[str, Any]) -> None:
        parts = path.split(".")
        for p in parts[:-1]:
            v = v[p]
        del v[parts[-1]]

    return f


@pytest.mark.parametrize(
    ("mutate", "field", "rule"),
    [
        (_set("class", "quantum"), "class", "enum"),
        (_set("price.items.0.amount", 5), "price.items.0.amount", "decimal_type"),
        (_set("price.items.0.amount", "5.0"), "price.items.0.amount", "decimal_text"),
        (_set("price.items.0.amount", "1e3"), "price.items.0.amount", "decimal_text"),
        (_set("price.items.0.amount", "-1"), "price.items.0.amount", "greater_than_equal"),
        (_set("price.items.0.per", "fortnight"), "price.items.0.per", "enum"),
        (_set("price.currency", "cny"), "price.currency", "string_pattern_mismatch"),
        (_set("price.items", []), "price.items", "too_short"),
        (_set("price.items.1.resource", "vcpu"), "price.items", "unique_resource"),
        (_set("availability.units_free", 9000), "availability", "free_le_total"),
        (_set("availability.units_free", -1), "availability.units_free", "greater_than_equal"),
        (_set("energy.renewable_share", "1.5"), "energy.renewable_share", "less_than_equal"),
        (_set("location.region", "US-CA"), "location", "region_country"),
        (_set("location.country", "China"), "location.country", "string_pattern_mismatch"),
        (_set("unit.cpu.arch", "mips"), "unit.cpu.arch", "enum"),
        (_set("unit.vcpu", 0), "", "class_shape"),
        (_set("unit.vcpu", True), "unit.vcpu", "int_type"),
        (_set("software.0.version", "latest"), "software.0.version", "string_pattern_mismatch"),
        (_set("compliance", ["MLPS 3"]), "compliance.0", "string_pattern_mismatch"),
        (_set("ext", {"nodot": 1}), "ext.nodot.[key]", "string_pattern_mismatch"),
        (_set("surprise", 1), "surprise", "extra_forbidden"),
        (_drop("price"), "price", "missing"),
        (
            _set("network.rtt_us", {"beijing": 1000}),
            "network.rtt_us.beijing.[key]",
            "string_pattern_mismatch",
        ),
    ],
)
def test_offer_rejections(mutate: Any, field: str, rule: str) -> None:
    """Strict validation: every rejection is a SchemaError naming the field and the rule."""
    value = _offer_value()
    mutate(value)
    with pytest.raises(SchemaError) as info:
        validate(OfferBody, value, where="body")
    assert info.value.detail["rule"] == rule
    assert info.value.field == ("body." + field if field else "body")


def test_class_shapes() -> None:
    """REQ-REC-021: each class describes what it sells."""
    for cls, missing in (("intelligent", "accelerators"), ("super", "hpc"), ("storage", "storage")):
        value = _offer_value()
        value["class"] = cls
        with pytest.raises(SchemaError) as info:
            validate(OfferBody, value)
        assert missing in info.value.message
    hpc = _offer_value() | {"class": "super"}
    hpc["unit"]["hpc"] = {
        "nodes": 64,
        "fp64_tflops": "1200",
        "interconnect": "infiniband-hdr",
        "scheduler": "slurm",
    }
    assert validate(OfferBody, hpc).unit.hpc is not None
    store = _offer_value() | {"class": "storage"}
    store["unit"]["storage"] = {"kind": "object", "capacity_gib": 1024}
    assert validate(OfferBody, store).unit.storage is not None


def test_zone_and_delegation() -> None:
    z = ex.zone(ex.provider_key())
    assert validate(ZoneBody, z.to_value()) == z
    with pytest.raises(SchemaError):
        validate(ZoneBody, z.to_value() | {"service_keys": []})
    with pytest.raises(SchemaError):
        validate(ZoneBody, z.to_value() | {"endpoints": {"negotiate": "ftp://x"}})
    d = ex.delegation(ex.provider_key())
    assert validate(DelegationBody, d.to_value()) == d


def test_record_types() -> None:
    for typ in RECORD_BODIES:
        name = record_type_of(typ)
        assert name is not None and record_typ(name) == typ
    assert record_type_of("cid.neg.quote") is None
    with pytest.raises(ValueError):
        record_typ("mx")


def test_periods() -> None:
    """REQ-CAP-020: a month is 730 hours, a year is 12 months."""
    assert PERIOD_SECONDS["month"] == 730 * 3600
    assert PERIOD_SECONDS["year"] == 12 * PERIOD_SECONDS["month"]


@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=6, min_value=-(10**20), max_value=10**20
    )
)
def test_decimal_text_round_trip(d: Decimal) -> None:
    """REQ-ENC-007: decimals round-trip through their unique canonical text."""
    text = decimal_to_text(d)
    assert Decimal(text) == d
    assert "E" not in text and (not text.endswith("0") or "." not in text) and text != "-0"
    item = {"resource": "vcpu", "amount": text if d >= 0 else "0", "per": "hour"}
    from cid.record import PriceItem

    assert PriceItem.model_validate(item).to_value()["amount"] == item["amount"]


def test_decimal_from_python() -> None:
    from cid.record import PriceItem

    p = PriceItem(resource="vcpu", amount=Decimal("1.500"), per="hour")
    assert p.to_value()["amount"] == "1.5"
    assert decimal_to_text(Decimal("-0.00")) == "0"
    with pytest.raises(ValueError):
        decimal_to_text(Decimal("NaN"))
    with pytest.raises(ValueError):
        PriceItem(resource="vcpu", amount=Decimal("Infinity"), per="hour")
