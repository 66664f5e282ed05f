"""Canonical codecs ([REQ-ENC-001]..[REQ-ENC-014])."""

from __future__ import annotations

import json

import msgpack
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from cid import codec
from cid.errors import CidError, DecodeError, LimitExceededError, NonCanonicalError

safe_ints = st.integers(min_value=-codec.MAX_SAFE_INTEGER, max_value=codec.MAX_SAFE_INTEGER)
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
values = st.recursive(
    st.none() | st.booleans() | safe_ints | text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(text, children, max_size=5),
    max_leaves=25,
)


@given(values)
def test_json_round_trip(value: object) -> None:
    """REQ-ENC-003: decode(encode(v)) == v, and the encoding is RFC 8785 (cross-checked)."""
    data = codec.encode_json(value)
    assert codec.decode_json(data, codec.Limits(max_depth=64)) == value
    assert data == rfc8785.dumps(value)
    assert codec.decode(data, "json", codec.Limits(max_depth=64), require_canonical=True) == value


@given(values)
def test_msgpack_round_trip(value: object) -> None:
    """REQ-ENC-004: decode(encode(v)) == v and the bytes are canonical."""
    data = codec.encode_msgpack(value)
    assert codec.decode_msgpack(data, codec.Limits(max_depth=64)) == value
    assert codec.encode_msgpack(codec.decode_msgpack(data, codec.Limits(max_depth=64))) == data


@given(st.dictionaries(text, safe_ints, max_size=8))
def test_key_order_is_utf16(value: dict[str, int]) -> None:
    """REQ-ENC-003: members are sorted by UTF-16 code units (matches the RFC 8785 reference)."""
    assert codec.encode_json(value) == rfc8785.dumps(value)
    keys = list(msgpack.unpackb(codec.encode_msgpack(value)))
    assert keys == sorted(value, key=lambda k: k.encode("utf-16-be"))


def test_astral_vs_private_use_order() -> None:
    """U+1F600 sorts before U+E000 in UTF-16 order although its code point is larger."""
    value = {"\ue000": 1, "\U0001f600": 2}
    assert codec.encode_json(value) == '{"\U0001f600":2,"\ue000":1}'.encode()
    assert codec.canonical_json_scanned(value, codec.Scan(False, False)) == codec.encode_json(value)
    assert codec.canonical_msgpack_scanned(value, codec.Scan(False, False)) == codec.encode_msgpack(
        value
    )


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_any_bytes_json(data: bytes) -> None:
    """REQ-ENC-010: any bytes -> value or a typed DecodeError, nothing else."""
    try:
        codec.decode_json(data)
    except CidError as e:
        assert isinstance(e, DecodeError)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_any_bytes_msgpack(data: bytes) -> None:
    """REQ-ENC-010: any bytes -> value or a typed DecodeError, nothing else."""
    try:
        codec.decode_msgpack(data)
    except CidError as e:
        assert isinstance(e, DecodeError)


@pytest.mark.parametrize(
    ("data", "error", "rule"),
    [
        (b'{"a":1.5}', NonCanonicalError, "no_float"),
        (b'{"a":1e3}', NonCanonicalError, "no_float"),
        (b'{"a":NaN}', NonCanonicalError, "no_float"),
        (b'{"a":9007199254740992}', NonCanonicalError, "safe_integer"),
        (b'{"a":123456789012345678901234567890}', NonCanonicalError, "safe_integer"),
        (b'{"a":1,"a":2}', DecodeError, "unique_keys"),
        (b'{"a":"\\ud800"}', DecodeError, "utf8"),
        (b"\xff\xfe", DecodeError, "utf8"),
        (b'{"a":', DecodeError, "syntax"),
        (b"[" * 17 + b"]" * 17, LimitExceededError, "max_depth"),
        (b"[" * 100000, LimitExceededError, "max_depth"),
        (b'"' + b"x" * 9000 + b'"', LimitExceededError, "max_string"),
        (b"[" + b"1," * 5000 + b"1]", LimitExceededError, "max_array"),
    ],
)
def test_json_rejections(data: bytes, error: type[CidError], rule: str) -> None:
    """REQ-ENC-002, REQ-ENC-011, REQ-ENC-012, REQ-ENC-013."""
    with pytest.raises(error) as info:
        codec.decode_json(data)
    assert info.value.detail["rule"] == rule


def test_json_depth_ignores_brackets_in_strings() -> None:
    data = json.dumps({"a": "[[[[[[[[[[[[[[[[[[[[[[[[["}).encode()
    assert codec.decode_json(data) == {"a": "[" * 25}


def test_json_map_limit() -> None:
    big = {f"k{i}": i for i in range(600)}
    with pytest.raises(LimitExceededError):
        codec.decode_json(json.dumps(big).encode())
    with pytest.raises(LimitExceededError):
        codec.decode_msgpack(msgpack.packb(big))


def test_size_limit_checked_first() -> None:
    """REQ-ENC-011: the total size is refused before parsing."""
    limits = codec.Limits(max_bytes=10)
    with pytest.raises(LimitExceededError) as info:
        codec.decode_json(b"[" + b" " * 20 + b"]", limits)
    assert info.value.detail["rule"] == "max_bytes"
    with pytest.raises(DecodeError):
        codec.decode_json("not bytes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (msgpack.packb({"a": 1.5}), NonCanonicalError),
        (msgpack.packb({"a": 2**60}), NonCanonicalError),
        (msgpack.packb({1: 2}, strict_types=False), DecodeError),
        (msgpack.packb({"a": b"bytes"}, use_bin_type=True), DecodeError),
        (msgpack.packb(msgpack.ExtType(1, b"x")), DecodeError),
        (msgpack.packb([[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]), LimitExceededError),
        (b"\x82\xa1a\x01\xa1a\x02", DecodeError),  # duplicate key
        (b"\xc1", DecodeError),  # reserved byte
        (b"\x92\x01", DecodeError),  # truncated
        (b"\x01\x02", DecodeError),  # extra data
        (b"\xa2\xff\xfe", DecodeError),  # invalid UTF-8 string
        (
            b"\xdd\xff\xff\xff\xff",
            LimitExceededError,
        ),  # huge array header: refused before allocation
        (b"\xdf\xff\xff\xff\xff", LimitExceededError),  # huge map header
        (b"\xdb\xff\xff\xff\xff", DecodeError),  # huge string header, truncated body
    ],
)
def test_msgpack_rejections(data: bytes, error: type[CidError]) -> None:
    """REQ-ENC-010/011/012 for msgpack."""
    with pytest.raises(error):
        codec.decode_msgpack(data)


def test_msgpack_deep_nesting_bounded() -> None:
    """A hostile 100k-deep document is refused without recursion or a crash."""
    with pytest.raises(DecodeError):
        codec.decode_msgpack(b"\x91" * 100_000 + b"\xc0")


def test_encode_rejects_outside_model() -> None:
    """REQ-ENC-001/002: encoders refuse values outside the data model."""
    for bad in ({"a": 1.0}, {"a": 2**53}, {1: "x"}, {"a": b"x"}, {"a": {1, 2}}, {"a": "\ud800"}):
        with pytest.raises(DecodeError):
            codec.encode_json(bad)
        with pytest.raises(DecodeError):
            codec.encode_msgpack(bad)
    with pytest.raises(DecodeError):
        codec.encode({}, "xml")  # type: ignore[arg-type]
    with pytest.raises(DecodeError):
        codec.decode(b"{}", "xml")  # type: ignore[arg-type]


def test_require_canonical() -> None:
    """REQ-ENC-014: where canonical bytes are required, others are refused."""
    assert codec.decode(b'{"a":1,"b":2}', "json", require_canonical=True) == {"a": 1, "b": 2}
    with pytest.raises(NonCanonicalError):
        codec.decode(b'{"b":2,"a":1}', "json", require_canonical=True)
    with pytest.raises(NonCanonicalError):
        codec.decode(b'{"a": 1}', "json", require_canonical=True)
    non_minimal = b"\x81\xa1a\xcd\x00\x01"  # 1 encoded as uint16
    assert codec.decode(non_minimal, "msgpack") == {"a": 1}
    with pytest.raises(NonCanonicalError):
        codec.decode(non_minimal, "msgpack", require_canonical=True)


def test_media_types_and_limits() -> None:
    """REQ-ENC-020."""
    assert codec.media_type("json") == "application/cid+json"
    assert codec.media_type("msgpack") == "application/cid+msgpack"
    big = codec.DEFAULT_LIMITS.scaled(max_bytes=10_000_000, max_array=100_000)
    assert big.max_bytes == 10_000_000 and big.max_array == 100_000
    assert big.max_depth == codec.DEFAULT_LIMITS.max_depth
    assert codec.canonicalize({"b": [1, {"d": 1, "c": 2}], "a": None}) == {
        "a": None,
        "b": [1, {"c": 2, "d": 1}],
    }


@given(values)
def test_scanned_encoders_equal_canonical(value: object) -> None:
    """The decoders' scan verdict lets encoders skip work without changing a byte."""
    for encoding in ("json", "msgpack"):
        noncanonical = json.dumps(value).encode() if encoding == "json" else msgpack.packb(value)
        for data in (codec.encode(value, encoding), noncanonical):
            decoded, scan = codec.decode_scanned(data, encoding, codec.Limits(max_depth=64))
            assert codec.canonical_json_scanned(decoded, scan) == codec.encode_json(value)
            assert codec.canonical_msgpack_scanned(decoded, scan) == codec.encode_msgpack(value)
