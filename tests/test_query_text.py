"""The textual query language (spec section 13): parse, render, round trip, errors."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cid.errors import QuerySyntaxError
from cid.model import validate
from cid.query import Query
from cid.query_text import KEYS, parse, to_text
from tests.test_matching import queries

SCHEDULER = (
    "class=intelligent accel.model=a100-80g accel.count>=8 near=CN-TJ rtt<=3ms "
    "renewable>=0.5 order=cost,latency limit=10 currency=CNY"
)
WORKED = "vcpu=1 mem=2GiB storage=100GiB for 3months order=cost currency=CNY"


def q(value: dict[str, Any]) -> Query:
    return validate(Query, value)


def test_the_two_examples() -> None:
    """REQ-QTX-001, REQ-QTX-011: the examples compile into the §7 queries they mean."""
    assert parse(SCHEDULER) == q(
        {
            "class": "intelligent",
            "accelerator": {"model": ["a100-80g"], "count_min": 8},
            "near": {"region": "CN-TJ", "max_rtt_us": 3000},
            "renewable_share_min": "0.5",
            "order": ["cost", "latency"],
            "limit": 10,
            "currency": "CNY",
        }
    )
    assert parse(WORKED) == q(
        {
            "demand": {"vcpu": 1, "memory_mib": 2048, "storage_gib": 100},
            "duration_s": 3 * 2_628_000,
            "order": ["cost"],
            "currency": "CNY",
        }
    )


def test_canonical_text() -> None:
    """REQ-QTX-031: the canonical rendering of the examples (spec 13.5)."""
    assert to_text(parse(SCHEDULER)) == (
        "class=intelligent accel.model=a100-80g accel.count>=8 near=CN-TJ rtt<=3ms "
        "currency=CNY renewable>=0.5 order=cost,latency"
    )
    assert (
        to_text(parse(WORKED)) == "vcpu=1 mem=2GiB storage=100GiB for 3mo currency=CNY order=cost"
    )
    assert to_text(Query()) == ""
    assert parse("") == parse("   ") == Query()


CLAUSES: list[tuple[str, dict[str, Any]]] = [
    ("within=ctyun", {"within": "ctyun"}),
    ("within=池1.天津.天翼云", {"within": "池1.天津.天翼云"}),
    ("class=super", {"class": "super"}),
    ("arch=x86_64,aarch64", {"arch": ["x86_64", "aarch64"]}),
    ("arch in riscv64", {"arch": ["riscv64"]}),
    ("accel=any", {"accelerator": {}}),
    ("accel.vendor=huawei", {"accelerator": {"vendor": "huawei"}}),
    ("accel.model in h20, a100-80g", {"accelerator": {"model": ["h20", "a100-80g"]}}),
    ("accel.family=hopper", {"accelerator": {"family": "hopper"}}),
    ("accel.count>=4", {"accelerator": {"count_min": 4}}),
    ("accel.count=8", {"demand": {"accelerators": 8}}),
    ("accel.mem>=80GiB", {"accelerator": {"memory_gib_min": 80}}),
    ("tflops.bf16>=312 tflops.fp64>=9.7", {"tflops_min": {"bf16": "312", "fp64": "9.7"}}),
    ("vcpu>=4", {"vcpu_min": 4}),
    ("mem>=1.5GiB", {"memory_mib_min": 1536}),
    ("mem=512MiB", {"demand": {"memory_mib": 512}}),
    ("storage>=1TiB", {"storage_gib_min": 1024}),
    ("storage=10TiB", {"demand": {"storage_gib": 10240}}),
    ("nodes=16", {"demand": {"nodes": 16}}),
    ("units=3", {"demand": {"units": 3}}),
    ("for 90s", {"duration_s": 90}),
    ("for 2 hours", {"duration_s": 7200}),
    ("for 1w", {"duration_s": 604_800}),
    ("for 1y", {"duration_s": 31_536_000}),
    ("for 0.5h", {"duration_s": 1800}),
    ("region in CN-TJ,CN-BJ", {"region_in": ["CN-TJ", "CN-BJ"]}),
    ("region=CN-GZ", {"region_in": ["CN-GZ"]}),
    ("region not in CN-HE", {"region_not_in": ["CN-HE"]}),
    ("region!=CN-HE,CN-SH", {"region_not_in": ["CN-HE", "CN-SH"]}),
    ("country in CN,SG", {"country_in": ["CN", "SG"]}),
    ('city in "Tianjin New Area",天津', {"city_in": ["Tianjin New Area", "天津"]}),
    ('city="say \\"hi\\" \\\\o/"', {"city_in": ['say "hi" \\o/']}),
    ("near=CN-TJ", {"near": {"region": "CN-TJ"}}),
    ("near=jingjinji", {"near": {"latency_circle": "jingjinji"}}),
    ("near=CN-TJ rtt<=3500us", {"near": {"region": "CN-TJ", "max_rtt_us": 3500}}),
    ("near=CN-TJ rtt<=1s", {"near": {"region": "CN-TJ", "max_rtt_us": 1_000_000}}),
    ("currency=CNY price<=0.05", {"currency": "CNY", "unit_price_max": "0.05"}),
    (
        "currency=CNY price<=7/mo",
        {"currency": "CNY", "unit_price_max": "7", "unit_price_per": "month"},
    ),
    ("currency=CNY total<=100.50 for 3mo", {"currency": "CNY", "total_cost_max": "100.5", "duration_s": 7_884_000}),
    ("renewable>=62%", {"renewable_share_min": "0.62"}),
    ("renewable>=0.50", {"renewable_share_min": "0.5"}),
    ("carbon<=400g/kWh", {"carbon_g_per_kwh_max": 400}),
    ("sw=ubuntu,pytorch", {"software": [{"name": "ubuntu"}, {"name": "pytorch"}]}),
    ("sw.cuda>=12.0,<13", {"software": [{"name": "cuda", "version": ">=12.0,<13"}]}),
    ("sw.ubuntu=22.04 sw=rocm", {"software": [{"name": "ubuntu", "version": "==22.04"}, {"name": "rocm"}]}),
    ("compliance=mlps-3,iso27001", {"compliance": ["mlps-3", "iso27001"]}),
    ("free>=2", {"units_free_min": 2}),
    (
        "currency=CNY order=cost,renewable weights=cost:2,renewable:0.5",
        {"currency": "CNY", "order": ["cost", "renewable"], "weights": {"cost": "2", "renewable": "0.5"}},
    ),
    ("limit=1000", {"limit": 1000}),
    ("cursor=abc_DEF-1", {"cursor": "abc_DEF-1"}),
    ("  vcpu = 2   mem = 4GiB ", {"demand": {"vcpu": 2, "memory_mib": 4096}}),
]  # fmt: skip


@pytest.mark.parametrize(("text", "value"), CLAUSES)
def test_clauses(text: str, value: dict[str, Any]) -> None:
    """REQ-QTX-010..024: each key, operator and unit sets the member Table 13-1 says."""
    query = parse(text)
    assert query == q(value)
    assert parse(to_text(query)) == query  # REQ-QTX-030


def test_every_key_is_exercised() -> None:
    """Table 13-1 and the parser agree: every key appears in the clause table above."""
    words = [re.match(r"[a-z0-9_.]*", w).group(0) for t, _ in CLAUSES for w in t.split()]  # type: ignore[union-attr]
    used = {w for w in words if w in KEYS}
    missing = {k for k in KEYS if k not in used and not k.startswith("tflops.")}
    assert missing == set()


QUICK = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much]
)


@QUICK
@given(query=queries())
def test_round_trip(query: Query) -> None:
    """REQ-QTX-030: parse(to_text(q)) == q for random queries of every member."""
    text = to_text(query)
    assert parse(text) == query
    assert to_text(parse(text)) == text


ERRORS: list[tuple[str, int, str, Any]] = [
    # unknown key, bad operator, missing or extra values
    ("foo=1", 0, "foo", None),
    ("vcpu>>1", 4, ">", [">=", "="]),
    ("class>=general", 5, ">=", ["="]),
    ("vcpu", 4, "", None),
    ("vcpu=", 5, "", "a value"),
    ("vcpu=1,2", 7, "2", "one value"),
    ("region not CN-HE", 11, "CN-HE", "in"),
    ("=1", 0, "=", None),
    ("class=general class=super", 20, "super", "each key once"),
    # values
    ("class=quantum", 6, "quantum", ["general", "intelligent", "super", "storage"]),
    ("vcpu=one", 5, "one", "a whole number"),
    ("vcpu=1.5", 5, "1.5", "a whole number"),
    ("mem=2GB", 4, "2GB", ["MiB", "GiB", "TiB", "PiB"]),
    ("mem=2", 4, "2", ["MiB", "GiB", "TiB", "PiB"]),
    ("mem=0.3MiB", 4, "0.3MiB", "a whole number of MiB"),
    ("storage=100MiB", 8, "100MiB", "a whole number of GiB"),
    ("for 3 parsecs", 4, "3", ["s", "min", "h", "d", "w", "mo", "y"]),
    ("for", 3, "", "a duration such as 3months"),
    ("near=CN-TJ rtt<=3.5us", 16, "3.5us", "a whole number of µs"),
    ("near=Tianjin", 5, "Tianjin", "a token such as a100-80g"),
    ("region in tianjin", 10, "tianjin", "a region such as CN-TJ"),
    ("country=CHN", 8, "CHN", "a country such as CN"),
    ("currency=cny", 9, "cny", "a currency such as CNY"),
    ("currency=CNY price<=5/fortnight", 20, "5/fortnight", None),
    ("renewable>=half", 11, "half", None),
    ("carbon<=400kg", 8, "400kg", ["400", "400g/kWh"]),
    ("order=speed", 6, "speed", ["cost", "latency", "renewable", "availability"]),
    ("weights=cost", 8, "cost", None),
    ("currency=CNY order=cost weights=cost:1,cost:2", 39, "cost:2", "each key once"),
    ("sw.cuda~=12", 3, "cuda~", "a token such as a100-80g"),
    ("sw.cuda>=twelve", 9, "twelve", "a version such as 12.1"),
    ("sw.cuda>=1,>=2,>=3,>=4,>=5,>=6,>=7,>=8,>=9", 0, "sw.cuda", "a version range"),
    ("compliance=MLPS", 11, "MLPS", "a token such as a100-80g"),
    ("accel=some", 6, "some", ["any"]),
    # lexical
    ('city="Tianjin', 5, '"Tianjin', '"'),
    ('city="a\\b"', 7, "\\b", ['\\"', "\\\\"]),
    ('city="a\tb"', 7, "\t", "printable text"),
    ("vcpu=1\x00", 6, "\x00", "text"),
    ("vcpu!1", 4, "!", [">=", "<=", "!=", "=="]),
    # rules of section 7, at the clause that broke them
    ("rtt<=3ms", 0, "rtt", "near=<region>"),
    ("near=jingjinji rtt<=3ms", 15, "rtt", "near=<region>"),
    ("order=cost", 0, "order", "currency=<ISO 4217 code>"),
    ("price<=1", 0, "price", "currency=<ISO 4217 code>"),
    ("currency=CNY total<=1", 13, "total", "for <duration>"),
    ("order=latency", 0, "order", "near=<region>"),
    ("currency=CNY order=cost weights=latency:1", 24, "weights", "near=<region>"),
    ("currency=CNY order=cost weights=renewable:1", 24, "weights", "each weighted key in order"),
    ("region=CN-TJ region!=CN-TJ", 21, "CN-TJ", "a region either in or not in"),
    ("limit=0", 6, "0", "a valid query"),
    ("tflops.fp64>=0", 13, "0", "a valid query"),
    ("renewable>=150%", 11, "150%", "a valid query"),
    ("within=a..b", 7, "a..b", "an identifier"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "offset", "token", "expected"), ERRORS)
def test_errors_point_at_the_token(text: str, offset: int, token: str, expected: Any) -> None:
    """REQ-QTX-040, REQ-QTX-041: QUERY_SYNTAX with offset, token and what was expected."""
    with pytest.raises(QuerySyntaxError) as info:
        parse(text)
    err = info.value
    assert err.code == 1005 and err.name == "QUERY_SYNTAX"
    assert err.detail["offset"] == offset, err.detail
    assert err.detail["token"] == token, err.detail
    assert text[offset : offset + len(token)] == token or token.startswith('"') or "\\" in token
    if expected is not None:
        assert err.detail["expected"] == expected, err.detail
    assert err.to_wire()["detail"]["offset"] == offset


def test_rule_errors_name_the_member() -> None:
    """REQ-QTX-041: rule errors carry the member's dotted path and the rule."""
    with pytest.raises(QuerySyntaxError) as info:
        parse("order=cost")
    assert info.value.detail["field"] == "currency"
    assert info.value.detail["rule"] == "currency_required"


def test_limits() -> None:
    """REQ-QTX-001: at most 4096 characters; text only."""
    with pytest.raises(QuerySyntaxError) as info:
        parse("vcpu=1 " * 600)
    assert info.value.detail["offset"] == 4096
    with pytest.raises(QuerySyntaxError):
        parse(b"vcpu=1")  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None)
@given(
    text=st.one_of(
        st.text(max_size=60),
        st.lists(
            st.sampled_from(
                [*KEYS, "for", "in", "not", "=", ">=", "<=", "!=", ",", " ", '"', "3ms",
                 "2GiB", "CN-TJ", "cost", "1", "0.5", "x", "sw.cuda", "12.4", "%", "/h"]
            ),
            max_size=12,
        ).map("".join),
    )
)  # fmt: skip
def test_parse_or_query_syntax_nothing_else(text: str) -> None:
    """REQ-QTX-042: any text parses into a valid query or raises QUERY_SYNTAX."""
    try:
        query = parse(text)
    except QuerySyntaxError as e:
        assert 0 <= e.detail["offset"] <= len(text)
        assert isinstance(e.detail["token"], str)
        return
    assert validate(Query, query.to_value()) == query
    assert parse(to_text(query)) == query
