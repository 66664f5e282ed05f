"""Tests for :mod:`cid.identifier` (spec section 2, ADR-0001).

Layout: the language-neutral vectors of ``spec/vectors/identifiers.json`` first
(table-driven), then property tests (including an independent reference parser
built directly on ``idna``), then each part of the API, then pydantic.
Test names carry the requirement IDs they check.
"""

from __future__ import annotations

import copy
import importlib.util
import itertools
import json
import os
import pickle
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import idna
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from cid import identifier as ident_mod
from cid.errors import CidError, IdentifierError
from cid.identifier import (
    MAX_INPUT_CHARS,
    MAX_LABEL_OCTETS,
    MAX_LABELS,
    MAX_NAME_OCTETS,
    Identifier,
    Reason,
)

REPO = Path(__file__).resolve().parents[1]
VECTORS_PATH = REPO / "spec" / "vectors" / "identifiers.json"
GENERATOR_PATH = REPO / "spec" / "vectors" / "gen_identifiers.py"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))

PARSE_REASONS = {
    "EMPTY",
    "EMPTY_LABEL",
    "LABEL_TOO_LONG",
    "NAME_TOO_LONG",
    "TOO_MANY_LABELS",
    "INVALID_LABEL",
    "INPUT_TOO_LONG",
    "NOT_TEXT",
}


def P(text: str) -> Identifier:
    return Identifier.parse(text)


def failure(value: Any) -> dict[str, Any]:
    """The ``detail`` of the IdentifierError that parsing ``value`` raises."""
    with pytest.raises(IdentifierError) as info:
        Identifier.parse(value)
    return info.value.detail


def reason_of(value: Any) -> str:
    return str(failure(value)["reason"])


def case_id(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- vectors (spec 2.10) ----------------------------------------------------


@pytest.mark.parametrize("case", VECTORS["valid"], ids=lambda c: case_id(c["input"]))
def test_vector_valid_REQ_ID_016(case: dict[str, Any]) -> None:
    ident = Identifier.parse(case["input"])
    assert ident.to_text() == case["canonical"]
    assert ident.to_ascii() == case["ascii"]
    assert list(ident.labels) == case["labels"]
    assert ident.depth == len(case["labels"])
    # parsing is idempotent over every output form (spec 2.5)
    assert Identifier.parse(case["canonical"]) == ident
    assert Identifier.parse(case["ascii"]) == ident
    assert Identifier.parse(ident.to_uri()) == ident


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=lambda c: case_id(c["input"]))
def test_vector_invalid_REQ_ID_019(case: dict[str, Any]) -> None:
    assert reason_of(case["input"]) == case["reason"]


def test_vector_ordering_REQ_ID_022() -> None:
    names = [Identifier.parse(t) for t in VECTORS["ordering"]]
    assert [n.to_text() for n in names] == VECTORS["ordering"]
    assert sorted(names) == names
    shuffled = names[:]
    for seed in range(5):
        random.Random(seed).shuffle(shuffled)
        assert sorted(shuffled) == names


@pytest.mark.parametrize(
    "case", VECTORS["within"], ids=lambda c: case_id(f"{c['name']} in {c['namespace']}")
)
def test_vector_within_REQ_ID_023(case: dict[str, Any]) -> None:
    name, namespace = Identifier.parse(case["name"]), Identifier.parse(case["namespace"])
    assert name.is_within(namespace) is case["within"]


def test_vectors_shape_and_coverage() -> None:
    assert VECTORS["version"] == 1
    assert len(VECTORS["valid"]) >= 25
    assert len(VECTORS["invalid"]) >= 25
    assert {c["reason"] for c in VECTORS["invalid"]} == PARSE_REASONS
    for case in VECTORS["valid"]:
        assert set(case) == {"input", "canonical", "ascii", "labels", "note"}
    for case in VECTORS["invalid"]:
        assert set(case) == {"input", "reason", "note"}
    pairs = {(c["name"], c["namespace"]) for c in VECTORS["within"]}
    assert ("ctyunx", "ctyun") in pairs
    # the hand-checked Chinese cases are present
    assert any(c["canonical"] == "池1.天津.天翼云" for c in VECTORS["valid"])


def test_vectors_file_is_up_to_date() -> None:
    """The checked-in JSON is exactly what the generator produces from the library."""
    spec = importlib.util.spec_from_file_location("gen_identifiers", GENERATOR_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.render() == VECTORS_PATH.read_text(encoding="utf-8")


# --- reference parser and properties ------------------------------------------


def _ref_reason(exc: idna.IDNAError) -> str:
    code = getattr(exc, "code", None)
    if code in ("label_too_long", "domain_too_long"):
        return "LABEL_TOO_LONG"
    if code in ("empty_label", "empty_domain"):
        return "EMPTY_LABEL"
    return "INVALID_LABEL"


def reference_parse(value: object) -> tuple[str, ...]:
    """Spec 2.2-2.4 step by step, straight onto ``idna``, with no fast path or cache.

    Returns ``("ok", canonical, ascii)`` or ``("error", reason)``.
    """
    if not isinstance(value, str):
        return ("error", "NOT_TEXT")
    if len(value) > 1024:
        return ("error", "INPUT_TOO_LONG")
    if value[:4].lower() == "cid:":
        value = value[4:]
    if not value:
        return ("error", "EMPTY")
    for sep in "\u3002\uff0e\uff61":
        value = value.replace(sep, ".")
    if value == ".":
        return ("ok", ".", ".")
    parts = value.split(".")
    if "" in parts:
        return ("error", "EMPTY_LABEL")
    if len(parts) > 32:
        return ("error", "TOO_MANY_LABELS")
    u_labels, a_labels = [], []
    for part in parts:
        try:
            a_label = idna.encode(part, uts46=True, transitional=False).decode("ascii")
        except idna.IDNAError as e:
            return ("error", _ref_reason(e))
        u_labels.append(idna.decode(a_label))
        a_labels.append(a_label)
    ascii_form = ".".join(a_labels)
    if len(ascii_form) > 253:
        return ("error", "NAME_TOO_LONG")
    return ("ok", ".".join(u_labels), ascii_form)


def library_parse(value: object) -> tuple[str, ...]:
    try:
        ident = Identifier.parse(value)  # type: ignore[arg-type]
    except IdentifierError as e:
        return ("error", e.detail["reason"])
    return ("ok", ident.to_text(), ident.to_ascii())


# Characters that exercise every branch: separators, case, hyphens, A-label
# prefixes, mapped, ignored, deviation, joiner, bidi, combining, disallowed.
TRICKY = list(
    "aAbZz09-.。．｡xn_ :/%\n\t\u00ad\u200d\u200cßς天津翼云池中国ＡＢ\u05d0\u0627\u0660\u0301·lİK😀Ⅸ"
)
tricky_text = st.text(alphabet=st.sampled_from(TRICKY), max_size=40)
any_text = st.one_of(
    tricky_text,
    st.text(max_size=60),
    st.builds(
        lambda prefix, rest: prefix + rest,
        st.sampled_from(["cid:", "CID:", "xn--", "XN--", "a.xn--", ""]),
        tricky_text,
    ),
    st.text(alphabet="aA.-", min_size=200, max_size=1100),
)

ldh_label = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,14}[a-z0-9])?", fullmatch=True).filter(
    lambda s: s[2:4] != "--"
)
unicode_alphabet = st.one_of(
    st.sampled_from(list("天津翼云池中国北京上海贵州算力集群abcxyz0123456789-ßςéüабвгαβγ")),
    st.characters(categories=("Ll", "Lo", "Nd", "Mn")),
)


def _valid_label(text: str) -> bool:
    try:
        Identifier.from_labels([text])
    except IdentifierError:
        return False
    return True


unicode_label = st.text(alphabet=unicode_alphabet, min_size=1, max_size=8).filter(_valid_label)
any_label = st.one_of(ldh_label, unicode_label)


def _build(labels: list[str]) -> Identifier | None:
    try:
        return Identifier.from_labels(labels)
    except IdentifierError:
        return None


identifiers = (
    st.lists(any_label, max_size=6).map(_build).filter(lambda x: x is not None).map(lambda x: x)
)
# a small alphabet, so that generated names often share ancestors
family = st.lists(st.sampled_from(["a", "b", "ab", "天", "津", "xn--fiqs8s"]), max_size=4).map(
    Identifier.from_labels
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.filter_too_much])
@given(identifiers)
def test_round_trip_text_ascii_uri_labels_REQ_ID_016(x: Identifier) -> None:
    assert Identifier.parse(x.to_text()) == x
    assert Identifier.parse(x.to_ascii()) == x
    assert Identifier.parse(x.to_uri()) == x
    assert Identifier.from_labels(x.labels) == x
    assert Identifier.parse(x.to_text()).to_text() == x.to_text()


@settings(max_examples=1000)
@given(st.one_of(any_text, st.none(), st.integers(), st.binary(max_size=8), st.lists(st.text())))
@example("a\n")
@example("cid:")
@example("xn--ls8h")
def test_parse_returns_identifier_or_identifier_error_only_REQ_ID_019(value: object) -> None:
    try:
        result = Identifier.parse(value)  # type: ignore[arg-type]
    except IdentifierError as e:
        assert e.detail["reason"] in PARSE_REASONS
    else:
        assert isinstance(result, Identifier)


@settings(max_examples=1000)
@given(any_text)
@example("A100.Tianjin.CTYUN")
@example("ab--cd")
@example("a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 62)
@example("a." * 31 + "a")
@example("a." * 32 + "a")
def test_parse_agrees_with_reference_parser_REQ_ID_010(value: str) -> None:
    """The fast paths and the cache change nothing: same result as plain IDNA processing."""
    assert library_parse(value) == reference_parse(value)


@settings(max_examples=500)
@given(st.text(alphabet="abcXYZ019-_.\n", min_size=1, max_size=70))
def test_ascii_fast_path_matches_idna_REQ_ID_010(label: str) -> None:
    slow = ident_mod._idna_label.__wrapped__(label)
    if slow[0]:
        assert ident_mod._normalise_label(label, 0) == (slow[1], slow[2])
    else:
        with pytest.raises(IdentifierError) as info:
            ident_mod._normalise_label(label, 0)
        assert info.value.detail["reason"] == slow[1]


def _octet_key(x: Identifier) -> list[bytes]:
    labels = [] if x.is_root else x.to_ascii().split(".")
    return [label.encode("ascii") for label in reversed(labels)]


@given(family, family, family)
def test_ordering_is_a_total_order_consistent_with_equality_REQ_ID_022(
    a: Identifier, b: Identifier, c: Identifier
) -> None:
    assert [a < b, a == b, a > b].count(True) == 1
    assert (a <= b) == (a < b or a == b)
    assert (a >= b) == (a > b or a == b)
    assert (a != b) is not (a == b)
    if a == b:
        assert hash(a) == hash(b)
    if a <= b and b <= c:
        assert a <= c
    # definition: reversed A-label sequences compared as octet strings
    assert (a < b) == (_octet_key(a) < _octet_key(b))


@given(family, family)
def test_is_within_agrees_with_label_suffix_REQ_ID_023(x: Identifier, ns: Identifier) -> None:
    by_text = ns.is_root or x == ns or x.to_text().endswith("." + ns.to_text())
    assert x.is_within(ns) is by_text
    assert x.is_strictly_within(ns) is (by_text and x != ns)
    if x.is_within(ns):
        assert ns <= x  # an ancestor sorts before its descendants
        assert Identifier.from_labels(x.relativize(ns) + ns.labels) == x


@given(family, family)
def test_common_ancestor_is_deepest_shared(x: Identifier, y: Identifier) -> None:
    common = x.common_ancestor(y)
    assert x.is_within(common) and y.is_within(common)
    assert common == y.common_ancestor(x)
    deeper = [a for a in x.ancestors() if y.is_within(a) and a.depth > common.depth]
    assert deeper == []


@given(family, st.lists(family, max_size=6))
def test_closest_enclosing_set_and_scan_agree_REQ_ID_025(
    x: Identifier, candidates: list[Identifier]
) -> None:
    scanned = x.closest_enclosing(candidates)
    assert scanned == x.closest_enclosing(frozenset(candidates))
    enclosing = [c for c in candidates if x.is_within(c)]
    if enclosing:
        assert scanned == max(enclosing, key=lambda c: c.depth)
    else:
        assert scanned is None


# --- parsing details --------------------------------------------------------------


def test_root_forms_REQ_ID_002() -> None:
    for text in (".", "。", "．", "｡", "cid:.", "CID:。"):
        assert Identifier.parse(text) is Identifier.root()
    root = Identifier.root()
    assert root.is_root and root.depth == 0 and root.labels == ()
    assert root.to_text() == root.to_ascii() == str(root) == "."
    assert root.to_uri() == "cid:."
    assert Identifier.from_labels([]) is root


def test_not_text_REQ_ID_006() -> None:
    for value in (None, 1, 1.5, b"ctyun", bytearray(b"a"), ["a"], {"a": 1}, Identifier.root()):
        assert reason_of(value) == Reason.NOT_TEXT


def test_str_subclass_is_text() -> None:
    class Name(str):
        pass

    assert Identifier.parse(Name("A.b")).to_text() == "a.b"


def test_input_limit_counts_code_points_and_prefix_REQ_ID_012() -> None:
    # exactly 1024 code points is processed; soft hyphens are then ignored
    assert Identifier.parse("a" + "\u00ad" * 1023).to_text() == "a"
    assert Identifier.parse("cid:a" + "\u00ad" * 1019).to_text() == "a"
    detail = failure("a" + "\u00ad" * 1024)
    assert detail == {"reason": "INPUT_TOO_LONG", "limit": MAX_INPUT_CHARS}
    assert reason_of("cid:" + "a" * 1021) == "INPUT_TOO_LONG"
    # refused before splitting: would otherwise be EMPTY_LABEL
    assert reason_of("." * 1025) == "INPUT_TOO_LONG"


def test_empty_REQ_ID_003() -> None:
    assert failure("") == {"reason": "EMPTY"}
    assert failure("cid:") == {"reason": "EMPTY"}
    assert failure("cId:") == {"reason": "EMPTY"}


@pytest.mark.parametrize(
    ("text", "index"),
    [(".a", 0), ("a.", 1), ("a..b", 1), ("a.b.c.", 3), ("..", 0), ("a.\u00ad.b", 1), ("a。。b", 1)],
)
def test_empty_label_index_REQ_ID_002_REQ_ID_009(text: str, index: int) -> None:
    detail = failure(text)
    assert detail["reason"] == "EMPTY_LABEL"
    assert detail["label_index"] == index


@pytest.mark.parametrize(
    ("text", "reason", "index"),
    [
        ("ok.a@b", "INVALID_LABEL", 1),
        ("a.b.-c", "INVALID_LABEL", 2),
        ("a.b.c" + "d" * 63, "LABEL_TOO_LONG", 2),
        ("天" * 58 + ".ctyun", "LABEL_TOO_LONG", 0),
        ("a.xn--abc-", "INVALID_LABEL", 1),
        ("A.B.C.\u00ad", "EMPTY_LABEL", 3),
    ],
)
def test_label_errors_carry_index_REQ_ID_019(text: str, reason: str, index: int) -> None:
    detail = failure(text)
    assert detail["reason"] == reason
    assert detail["label_index"] == index


def test_error_order_REQ_ID_020() -> None:
    # an empty label wins over the label count, the label count over label validity,
    # a bad label over the name length
    assert reason_of("a_b.." + "a." * 40 + "a") == "EMPTY_LABEL"
    assert reason_of("a_b." + "a." * 40 + "a") == "TOO_MANY_LABELS"
    assert reason_of(("a" * 63 + ".") * 4 + "a_b") == "INVALID_LABEL"
    assert reason_of(("a" * 63 + ".") * 4 + "b") == "NAME_TOO_LONG"


def test_limits_REQ_ID_013_REQ_ID_014_REQ_ID_015() -> None:
    assert MAX_LABELS == 32 and MAX_LABEL_OCTETS == 63 and MAX_NAME_OCTETS == 253
    assert Identifier.parse(".".join(["a"] * 32)).depth == 32
    assert failure(".".join(["a"] * 33)) == {"reason": "TOO_MANY_LABELS", "labels": 33, "limit": 32}
    assert Identifier.parse("a" * 63).depth == 1
    assert failure("a" * 64)["reason"] == "LABEL_TOO_LONG"
    longest = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(Identifier.parse(longest).to_ascii()) == 253
    assert failure(longest + "d") == {"reason": "NAME_TOO_LONG", "octets": 254, "limit": 253}
    # Unicode: measured on the A-labels, not the text
    chinese = ".".join(["天" * 57] * 4)
    assert len(chinese) == 231
    assert failure(chinese)["reason"] == "NAME_TOO_LONG"


def test_a_label_input_REQ_ID_008() -> None:
    assert Identifier.parse("xn--fiqs8s.cn").labels == ("中国", "cn")
    assert Identifier.parse("Xn--FiQs8S.cn") == Identifier.parse("中国.CN")
    assert reason_of("xn---bbk") == "INVALID_LABEL"  # fake A-label


def test_mapping_is_non_transitional_REQ_ID_011() -> None:
    assert Identifier.parse("straße") != Identifier.parse("strasse")
    assert Identifier.parse("STRASSE").to_text() == "strasse"
    assert Identifier.parse("ς").to_ascii() == "xn--3xa"
    assert reason_of(" a") == "INVALID_LABEL"  # no trimming
    assert reason_of("a%2Eb") == "INVALID_LABEL"  # no percent-decoding


def test_uri_prefix_REQ_ID_005() -> None:
    x = Identifier.parse("a100.tianjin.ctyun")
    assert x.to_uri() == "cid:a100.tianjin.ctyun"
    for text in ("cid:a100.tianjin.ctyun", "CID:A100.TIANJIN.CTYUN", "Cid:a100。tianjin。ctyun"):
        assert Identifier.parse(text) == x
    assert Identifier.parse("cid").labels == ("cid",)
    assert Identifier.parse("cid:cid").labels == ("cid",)
    assert Identifier.parse("池1.天津.天翼云").to_uri() == "cid:池1.天津.天翼云"
    assert reason_of("cid:cid:a") == "INVALID_LABEL"


def test_separators_are_normalised_REQ_ID_004() -> None:
    expected = Identifier.parse("池1.天津.天翼云")
    for sep in ("。", "．", "｡"):
        assert Identifier.parse(sep.join(["池1", "天津", "天翼云"])) == expected
        assert sep not in expected.to_text()


def test_error_is_identifier_error_with_wire_form_REQ_ID_019() -> None:
    with pytest.raises(CidError) as info:
        Identifier.parse("a_b")
    err = info.value
    assert isinstance(err, IdentifierError)
    assert err.code == 1001 and err.name == "IDENTIFIER_INVALID"
    wire = err.to_wire()
    assert wire["detail"] == {"reason": "INVALID_LABEL", "label_index": 0}
    json.dumps(wire)  # JSON-compatible


def test_idna_error_mapping_without_code() -> None:
    """Older idna releases have no ``code`` attribute: fall back to the message."""
    assert ident_mod._idna_reason(idna.IDNAError("Label too long")) == "LABEL_TOO_LONG"
    assert ident_mod._idna_reason(idna.IDNAError("Domain too long")) == "LABEL_TOO_LONG"
    assert ident_mod._idna_reason(idna.IDNAError("Empty domain")) == "EMPTY_LABEL"
    assert ident_mod._idna_reason(idna.IDNAError("Invalid A-label")) == "INVALID_LABEL"
    assert ident_mod._idna_reason(ValueError("anything")) == "INVALID_LABEL"
    assert ident_mod._idna_reason(idna.IDNAError("x", code="input_too_long")) == "LABEL_TOO_LONG"


def test_idna_label_refuses_separator_after_mapping() -> None:
    # parse never hands idna a separator, but the normaliser must not trust that
    assert ident_mod._idna_label("a.b") == (False, "INVALID_LABEL", "label contains a separator")
    assert ident_mod._idna_label("a\u3002b")[1] == "INVALID_LABEL"


def test_foreign_exceptions_are_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> bytes:
        raise IndexError("bug in idna")

    ident_mod._idna_label.cache_clear()
    monkeypatch.setattr(idna, "encode", broken)
    try:
        detail = failure("天津.ctyun")
    finally:
        monkeypatch.undo()
        ident_mod._idna_label.cache_clear()
    assert detail["reason"] == "INVALID_LABEL" and detail["label_index"] == 0
    assert Identifier.parse("天津.ctyun").to_ascii() == "xn--rssy87b.ctyun"


def test_cache_is_bounded() -> None:
    info = ident_mod._idna_label.cache_info()
    assert info.maxsize is not None and info.maxsize <= 4096


def test_module_is_sans_io() -> None:
    code = (
        "import sys, cid.identifier; "
        "print(sorted(m for m in ('asyncio', 'aiohttp', 'socket', 'pydantic') if m in sys.modules))"
    )
    # a coverage run measures subprocesses by loading itself into them: keep it out
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE")}
    env["PYTHONPATH"] = str(REPO / "src")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "[]"


# --- construction -----------------------------------------------------------------


def test_constructor_is_parse() -> None:
    assert Identifier("A.b") == Identifier.parse("a.B")
    with pytest.raises(IdentifierError):
        Identifier("")


def test_from_labels() -> None:
    x = Identifier.from_labels(["A100", "天津", "XN--9KQ01X6O5A"])
    assert x.labels == ("a100", "天津", "天翼云")
    assert x.to_ascii() == "a100.xn--rssy87b.xn--9kq01x6o5a"
    assert Identifier.from_labels(iter(["a", "b"])) == Identifier.parse("a.b")
    assert Identifier.from_labels(("a",) * 32).depth == 32


@pytest.mark.parametrize(
    ("labels", "detail"),
    [
        ("a.b", {"reason": "NOT_TEXT"}),
        (5, {"reason": "NOT_TEXT"}),
        (["a", 1], {"reason": "NOT_TEXT", "label_index": 1}),
        (["a", ""], {"reason": "EMPTY_LABEL", "label_index": 1}),
        (["a.b"], {"reason": "INVALID_LABEL", "label_index": 0}),
        (["a", "b。c"], {"reason": "INVALID_LABEL", "label_index": 1}),
        (["a" * 1025], {"reason": "INPUT_TOO_LONG", "label_index": 0}),
        (["a_b"], {"reason": "INVALID_LABEL", "label_index": 0}),
        (["\u00ad"], {"reason": "EMPTY_LABEL", "label_index": 0}),
        (["a"] * 33, {"reason": "TOO_MANY_LABELS", "labels": 33, "limit": 32}),
        (itertools.repeat("a"), {"reason": "TOO_MANY_LABELS", "labels": 33, "limit": 32}),
        (["a" * 63] * 4, {"reason": "NAME_TOO_LONG", "octets": 255, "limit": 253}),
    ],
    ids=case_id,
)
def test_from_labels_rejects(labels: Any, detail: dict[str, Any]) -> None:
    with pytest.raises(IdentifierError) as info:
        Identifier.from_labels(labels)
    got = info.value.detail
    assert {k: got[k] for k in detail} == detail


# --- values -------------------------------------------------------------------------


def test_text_forms_and_repr() -> None:
    x = Identifier.parse("CID:池1。天津。天翼云")
    assert x.to_text() == str(x) == "池1.天津.天翼云"
    assert x.to_ascii() == "xn--1-cd9b.xn--rssy87b.xn--9kq01x6o5a"
    assert x.to_uri() == "cid:池1.天津.天翼云"
    assert repr(x) == "Identifier('池1.天津.天翼云')"
    assert eval(repr(x), {"Identifier": Identifier}) == x
    assert f"{x}" == "池1.天津.天翼云"


def test_equality_and_hash_REQ_ID_021() -> None:
    a, b = Identifier.parse("A100.Tianjin.ctyun"), Identifier.parse("cid:a100。tianjin。CTYUN")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert Identifier.parse("xn--rssy87b") == Identifier.parse("天津")
    assert a != Identifier.parse("a100.tianjin.ctyunx")
    assert a != "a100.tianjin.ctyun"
    assert (a == "a100.tianjin.ctyun") is False
    assert (a != 5) is True
    assert {a: 1}[b] == 1


def test_ordering_operators_REQ_ID_022() -> None:
    root, ctyun, child, ctyunx = (P(t) for t in (".", "ctyun", "a.ctyun", "ctyunx"))
    assert root < ctyun < child < ctyunx
    assert root <= root and ctyun <= child
    assert ctyunx > child >= child and ctyunx >= root
    assert not (child < child) and not (child > child)
    # label by label from the root, not by text: "z.a" sorts before "a.b"
    assert P("z.a") < P("a.b")
    assert P("ctyun-x") < P("ctyunx")
    assert P("天翼云") < P("中国") < P("z")  # by Punycode octets
    for op in ("__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"):
        assert getattr(ctyun, op)("ctyun") is NotImplemented
    with pytest.raises(TypeError):
        _ = ctyun < "ctyun"


def test_immutable() -> None:
    x = P("a.b")
    with pytest.raises(AttributeError):
        x._labels = ("c",)
    with pytest.raises(AttributeError):
        x.foo = 1
    with pytest.raises(AttributeError):
        del x._labels
    with pytest.raises(AttributeError):
        x.labels = ()  # type: ignore[misc]
    assert not hasattr(x, "__dict__")
    assert x.labels == ("a", "b")


def test_pickle_and_copy() -> None:
    x = P("池1.天津.ctyun")
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        y = pickle.loads(pickle.dumps(x, protocol=proto))
        assert y == x and y.to_ascii() == x.to_ascii()
    assert pickle.loads(pickle.dumps(Identifier.root())) is Identifier.root()
    assert copy.copy(x) is x and copy.deepcopy(x) is x
    assert copy.deepcopy({"k": [x]})["k"][0] is x


def test_ascii_names_share_label_tuples() -> None:
    x = P("a100.tianjin.ctyun")
    assert x._labels is x._alabels
    y = P("池1.tianjin.ctyun")
    assert y._labels != y._alabels


# --- hierarchy ---------------------------------------------------------------------


def test_parent_and_depth() -> None:
    x = P("a100.tianjin.ctyun")
    assert x.depth == 3 and not x.is_root
    assert x.parent() == P("tianjin.ctyun")
    assert x.parent().parent().parent() is not None
    assert x.parent().parent().parent().is_root
    assert P("池1.天津.天翼云").parent().to_ascii() == "xn--rssy87b.xn--9kq01x6o5a"
    with pytest.raises(IdentifierError) as info:
        Identifier.root().parent()
    assert info.value.detail == {"reason": "NO_PARENT"}


def test_child() -> None:
    ctyun = P("ctyun")
    assert ctyun.child("Tianjin") == P("tianjin.ctyun")
    tianjin = ctyun.child("Tianjin")
    assert tianjin._labels is tianjin._alabels
    assert ctyun.child("天津").to_ascii() == "xn--rssy87b.ctyun"
    assert P("天翼云").child("a100").to_text() == "a100.天翼云"
    assert P("天翼云").child("a100").to_ascii() == "a100.xn--9kq01x6o5a"
    assert Identifier.root().child("ctyun") == ctyun
    assert ctyun.child("xn--rssy87b") == P("天津.ctyun")


@pytest.mark.parametrize(
    ("parent", "label", "reason"),
    [
        ("ctyun", "", "EMPTY_LABEL"),
        ("ctyun", "a.b", "INVALID_LABEL"),
        ("ctyun", "a。b", "INVALID_LABEL"),
        ("ctyun", "a_b", "INVALID_LABEL"),
        ("ctyun", "a" * 64, "LABEL_TOO_LONG"),
        ("ctyun", "a" * 1025, "INPUT_TOO_LONG"),
        ("ctyun", 5, "NOT_TEXT"),
        (".".join(["a"] * 32), "b", "TOO_MANY_LABELS"),
        (".".join(["a" * 63] * 3) + "." + "b" * 60, "c", "NAME_TOO_LONG"),
    ],
    ids=case_id,
)
def test_child_rejects(parent: str, label: Any, reason: str) -> None:
    with pytest.raises(IdentifierError) as info:
        P(parent).child(label)
    assert info.value.detail["reason"] == reason


def test_is_within_label_wise_REQ_ID_023() -> None:
    ctyun = P("ctyun")
    assert P("a.ctyun").is_within(ctyun)
    assert ctyun.is_within(ctyun)
    assert not P("ctyunx").is_within(ctyun)
    assert not P("a.ctyunx").is_within(ctyun)
    assert not P("xctyun").is_within(ctyun)
    assert not ctyun.is_within(P("a.ctyun"))
    assert ctyun.is_within(Identifier.root())
    assert Identifier.root().is_within(Identifier.root())
    assert not Identifier.root().is_within(ctyun)
    assert P("a.ctyun").is_strictly_within(ctyun)
    assert not ctyun.is_strictly_within(ctyun)
    assert not P("ctyunx").is_strictly_within(ctyun)
    assert ctyun.is_strictly_within(Identifier.root())
    assert not Identifier.root().is_strictly_within(Identifier.root())


def test_ancestors() -> None:
    x = P("a100.tianjin.ctyun")
    chain = x.ancestors()
    assert isinstance(chain, tuple)
    assert [a.to_text() for a in chain] == ["a100.tianjin.ctyun", "tianjin.ctyun", "ctyun", "."]
    assert chain[0] is x
    assert Identifier.root().ancestors() == (Identifier.root(),)
    assert sorted(chain) == list(reversed(chain))


def test_relativize() -> None:
    x = P("a100.tianjin.ctyun")
    assert x.relativize(P("ctyun")) == ("a100", "tianjin")
    assert x.relativize(x) == ()
    assert x.relativize(Identifier.root()) == x.labels
    assert P("池1.天津.天翼云").relativize(P("xn--9kq01x6o5a")) == ("池1", "天津")
    with pytest.raises(IdentifierError) as info:
        P("ctyunx").relativize(P("ctyun"))
    assert info.value.detail == {"reason": "NOT_WITHIN"}


def test_closest_enclosing_zone_cut_REQ_ID_025() -> None:
    cuts = [P("ctyun"), P("tianjin.ctyun"), Identifier.root(), P("b.tianjin.ctyun")]
    assert P("a100.tianjin.ctyun").closest_enclosing(cuts) == P("tianjin.ctyun")
    assert P("beijing.ctyun").closest_enclosing(cuts) == P("ctyun")
    assert P("ctyunx").closest_enclosing(cuts) == Identifier.root()
    assert P("tianjin.ctyun").closest_enclosing(cuts) == P("tianjin.ctyun")  # equal counts
    assert P("ctyunx").closest_enclosing(cuts[:2]) is None
    assert P("ctyunx").closest_enclosing([]) is None
    # sets take the O(depth) path; dict keys are a set too
    as_set = set(cuts)
    assert P("x.b.tianjin.ctyun").closest_enclosing(as_set) == P("b.tianjin.ctyun")
    assert P("ctyunx").closest_enclosing(frozenset(cuts[:2])) is None
    zones = {P("ctyun"): "ct", P("tianjin.ctyun"): "tj"}
    assert zones[P("a.tianjin.ctyun").closest_enclosing(zones.keys())] == "tj"  # type: ignore[index]
    assert P("a.ctyun").closest_enclosing(c for c in cuts) == P("ctyun")


def test_common_ancestor() -> None:
    a, b = P("a100.tianjin.ctyun"), P("b.tianjin.ctyun")
    assert a.common_ancestor(b) == P("tianjin.ctyun")
    assert a.common_ancestor(P("ctyunx")).is_root
    assert a.common_ancestor(a) == a
    assert a.common_ancestor(P("ctyun")) == P("ctyun")
    assert P("ctyun").common_ancestor(a) == P("ctyun")
    assert a.common_ancestor(Identifier.root()).is_root
    assert P("x.天津.天翼云").common_ancestor(P("y.天津.天翼云")).to_ascii() == (
        "xn--rssy87b.xn--9kq01x6o5a"
    )


# --- pydantic ------------------------------------------------------------------------


class Zone(BaseModel):
    name: Identifier
    parent: Identifier | None = None
    members: list[Identifier] = []


def test_pydantic_validates_from_text_and_instances() -> None:
    zone = Zone(name="CID:池1。天津。天翼云", parent=P("天津.天翼云"), members=["A.b"])
    assert zone.name == P("池1.天津.天翼云")
    assert isinstance(zone.name, Identifier)
    assert zone.parent == P("天津.天翼云")
    assert zone.members == [P("a.b")]
    from_json = Zone.model_validate_json('{"name": "A100.Tianjin.ctyun", "members": ["."]}')
    assert from_json.name == P("a100.tianjin.ctyun")
    assert from_json.members == [Identifier.root()]
    assert Zone.model_validate({"name": "x"}, strict=True).name == P("x")


def test_pydantic_serialises_canonical_text() -> None:
    zone = Zone(name="CID:池1。天津。天翼云", members=["B.a", "."])
    assert zone.model_dump() == {
        "name": "池1.天津.天翼云",
        "parent": None,
        "members": ["b.a", "."],
    }
    assert zone.model_dump(mode="json")["name"] == "池1.天津.天翼云"
    assert json.loads(zone.model_dump_json()) == {
        "name": "池1.天津.天翼云",
        "parent": None,
        "members": ["b.a", "."],
    }
    assert Zone.model_validate_json(zone.model_dump_json()) == zone
    assert ident_mod._pydantic_serialize("raw") == "raw"


@pytest.mark.parametrize(
    ("value", "reason"),
    [("a_b", "INVALID_LABEL"), ("ctyun.", "EMPTY_LABEL"), (5, "NOT_TEXT"), (None, "NOT_TEXT")],
)
def test_pydantic_errors_carry_reason(value: Any, reason: str) -> None:
    with pytest.raises(ValidationError) as info:
        Zone(name=value)
    err = info.value
    assert isinstance(err, ValueError)
    assert f"[{reason}]" in str(err)
    first = err.errors()[0]
    assert first["type"] == "value_error"
    assert first["loc"] == ("name",)
    assert first["msg"].startswith(f"Value error, [{reason}]")
    cause = first["ctx"]["error"].__cause__
    assert isinstance(cause, IdentifierError) and cause.detail["reason"] == reason


def test_pydantic_json_mode_rejects_non_strings() -> None:
    with pytest.raises(ValidationError) as info:
        Zone.model_validate_json('{"name": 42}')
    assert "[NOT_TEXT]" in str(info.value)


def test_pydantic_json_schema() -> None:
    props = Zone.model_json_schema()["properties"]
    assert props["name"]["type"] == "string"
    assert props["name"]["maxLength"] == MAX_INPUT_CHARS
    assert "identifier" in props["name"]["description"]
    out = Zone.model_json_schema(mode="serialization")["properties"]["name"]
    assert out["type"] == "string" and out["maxLength"] == MAX_NAME_OCTETS
    assert "canonical" in out["description"]


def test_pydantic_error_becomes_schema_error_in_wire_models() -> None:
    """The project's model layer maps our reason token to ``SchemaError.detail['rule']``."""
    model = pytest.importorskip("cid.model")

    class Named(model.WireModel):  # type: ignore[misc,name-defined]
        name: Identifier

    from cid.errors import SchemaError

    with pytest.raises(SchemaError) as info:
        model.validate(Named, {"name": "a..b"}, where="body")
    assert info.value.detail["rule"] == "EMPTY_LABEL"
    assert info.value.field == "body.name"
    assert model.validate(Named, {"name": "A.B"}).to_value() == {"name": "a.b"}
