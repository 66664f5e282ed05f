"""The latency model: circles, RTT matrix, default data for China ([REQ-QRY-030])."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

from cid import examples as ex
from cid.errors import SchemaError
from cid.latency import LatencyModel, default_model, offer_rtt_us
from cid.model import validate


def test_default_model_for_china() -> None:
    """The packaged model has the circles of the reports: metro 1 ms, region 3 ms, hubs < 10 ms."""
    m = default_model()
    assert m is default_model()  # loaded once
    assert m.id == "cn-backbone"
    metro = m.circle("jingjinji-metro")
    region = m.circle("jingjinji")
    hubs = m.circle("national-hubs")
    assert metro is not None and metro.rtt_us == 1000 and set(metro.regions) == {"CN-BJ", "CN-TJ"}
    assert region is not None and region.rtt_us == 3000 and "CN-HE" in region.regions
    assert hubs is not None and hubs.rtt_us <= 10_000
    assert {"CN-GZ", "CN-NM", "CN-SC", "CN-YN"} <= set(hubs.regions)
    assert m.in_circle("jingjinji", "CN-HE") and not m.in_circle("jingjinji-metro", "CN-HE")
    assert not m.in_circle("nowhere", "CN-BJ")
    assert {"CN-BJ", "CN-GZ"} <= m.regions()
    # the file is plain JSON and validates as the wire model
    text = resources.files("cid").joinpath("data/latency-cn.json").read_text(encoding="utf-8")
    assert validate(LatencyModel, json.loads(text)) == m


def test_region_rtt_matrix_then_circles() -> None:
    """The matrix first, either direction; then the tightest circle holding both; else unknown."""
    m = default_model()
    assert m.region_rtt_us("CN-TJ", "CN-BJ") == m.region_rtt_us("CN-BJ", "CN-TJ") == 1000
    assert m.region_rtt_us("CN-BJ", "CN-BJ") == 500
    # no matrix entry between Yunnan and Ningxia: both are western hubs (10 ms)
    assert m.region_rtt_us("CN-YN", "CN-NX") == 10_000
    # Hebei and Anhui share only the national circle
    assert m.region_rtt_us("CN-HE", "CN-AH") == 10_000
    assert m.region_rtt_us("CN-XJ", "CN-BJ") is None


def test_offer_rtt_prefers_its_own_measurement() -> None:
    """An offer's measured network.rtt_us wins over the model ([REQ-CAP-009])."""
    m = default_model()
    tj = ex.tianjin_offer()  # measured: CN-TJ 300, CN-BJ 1000, CN-HE 3000
    assert m.rtt_us(tj, "CN-HE") == 3000  # measured, although the matrix says 2000
    assert m.rtt_us(tj, "CN-SH") == 6500  # from the matrix (TJ-SH)
    assert m.rtt_us(tj, "CN-XJ") is None
    assert offer_rtt_us(tj, "CN-HE", m) == 3000
    assert offer_rtt_us(tj, "CN-SH", None) is None  # without a model, only measurements
    assert offer_rtt_us(tj, "CN-TJ", None) == 300


def test_build_and_round_trip() -> None:
    m = LatencyModel.build(
        "lab",
        circles=[("campus", 200, ["CN-BJ"]), ("city", 800, ["CN-BJ", "CN-TJ"])],
        rtt=[("CN-BJ", "CN-SH", 5000)],
        version=3,
    )
    assert m.region_rtt_us("CN-BJ", "CN-TJ") == 800
    assert m.region_rtt_us("CN-BJ", "CN-BJ") == 200
    assert m.region_rtt_us("CN-SH", "CN-BJ") == 5000
    assert validate(LatencyModel, m.to_value()) == m
    assert m.to_value()["version"] == 3


@pytest.mark.parametrize(
    ("value", "field", "rule"),
    [
        ({"id": "x", "circles": [{"name": "a", "rtt_us": 1, "regions": ["CN-BJ", "CN-BJ"]}]},
         "circles.0.regions", "unique"),
        ({"id": "x", "circles": [{"name": "a", "rtt_us": 1, "regions": ["CN-BJ"]}] * 2},
         "circles", "unique"),
        ({"id": "x", "rtt": [{"a": "CN-BJ", "b": "CN-TJ", "rtt_us": 1},
                             {"a": "CN-TJ", "b": "CN-BJ", "rtt_us": 2}]}, "rtt.1", "unique"),
        ({"id": "x", "rtt": [{"a": "Beijing", "b": "CN-TJ", "rtt_us": 1}]}, "rtt.0.a", None),
        ({"id": "x", "circles": [{"name": "a", "rtt_us": 0, "regions": ["CN-BJ"]}]},
         "circles.0.rtt_us", None),
        ({"id": "X"}, "id", None),
        ({"id": "x", "extra": 1}, "extra", "extra_forbidden"),
    ],
)  # fmt: skip
def test_model_rules(value: dict[str, Any], field: str, rule: str | None) -> None:
    """The model is a closed wire model: duplicates and bad codes are SCHEMA_VIOLATION."""
    with pytest.raises(SchemaError) as info:
        validate(LatencyModel, value)
    assert info.value.field == field
    if rule is not None:
        assert info.value.detail["rule"] == rule
