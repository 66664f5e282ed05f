"""§5 Canonical encoding: ``spec/vectors/codec.json`` and further decoder and encoder checks."""

from __future__ import annotations

import json
import random
from typing import Any

from ..case import Section, check, check_equal
from . import VectorsContext

s = Section("vectors", "5", "Canonical encoding")


async def _decode(ctx: VectorsContext, data: bytes, encoding: str, canonical: bool = False) -> Any:
    return await ctx.call("codec.decode", hex=data.hex(), encoding=encoding, canonical=canonical)


@s.case(
    1,
    "valid vectors: exact canonical JSON and MessagePack bytes, decoded back",
    "REQ-ENC-001",
    "REQ-ENC-003",
    "REQ-ENC-004",
    "REQ-ENC-021",
)
async def valid(ctx: VectorsContext) -> None:
    """The canonical JSON of a cid value MUST be the output of the JSON Canonicalization Scheme ...
    The canonical MessagePack encoding of a cid value MUST follow the rules below."""
    for case in ctx.codec["valid"]:
        for enc, key in (("json", "json_hex"), ("msgpack", "msgpack_hex")):
            got = (await ctx.ok("codec.encode", value=case["value"], encoding=enc))["hex"]
            check_equal(got, case[key], f"{enc} of {case['note']}")
            back = await _decode(ctx, bytes.fromhex(case[key]), enc, True)
            check(
                back.ok is not None and back.ok.get("value") == case["value"],
                f"decoding the canonical {enc} of {case['note']}: {back.brief()}",
            )


@s.case(
    2,
    "invalid vectors are refused with the named error",
    "REQ-ENC-002",
    "REQ-ENC-008",
    "REQ-ENC-010",
    "REQ-ENC-011",
    "REQ-ENC-012",
    "REQ-ENC-013",
    "REQ-ENC-015",
    "REQ-ENC-016",
)
async def invalid(ctx: VectorsContext) -> None:
    """(codec.json: each invalid input must be refused with the named error.)"""
    bad = []
    for case in ctx.codec["invalid"]:
        out = await _decode(ctx, bytes.fromhex(case["hex"]), case["encoding"])
        if out.name != case["error"]:
            bad.append(
                f"{case['encoding']} {case['note']}: {out.brief()}, expected {case['error']}"
            )
    check(not bad, f"{len(bad)} invalid vectors are answered differently", *bad)


@s.case(
    3,
    "non-canonical input is accepted, and refused only where canonical bytes are required",
    "REQ-ENC-014",
)
async def non_canonical(ctx: VectorsContext) -> None:
    """A receiver MUST NOT refuse an input only because it is not canonical, except in a context
    that this specification marks as requiring canonical bytes ... there, the receiver MUST ...
    refuse it with NON_CANONICAL (1004)."""
    for case in ctx.codec["non_canonical"]:
        data = bytes.fromhex(case["hex"])
        loose = await _decode(ctx, data, case["encoding"])
        check(loose.ok is not None, f"{case['note']}: refused outright: {loose.brief()}")
        strict = await _decode(ctx, data, case["encoding"], True)
        check_equal(strict.code, 1004, f"{case['note']} where canonical bytes are required")


@s.case(4, "the examples of §5.5 and §5.6 encode byte for byte", "REQ-ENC-003", "REQ-ENC-004")
async def spec_examples(ctx: VectorsContext) -> None:
    """rule 6 ... the key "\\u{1F600}" (UTF-16 D83D DE00) sorts before "\\u{FB01}" (FB01) ... is 83
    a1 61 96 01 ff cc 80 d0 df cf 00 00 00 01 00 00 00 00 a1 78 a1 62 c0 a1 63 c3."""
    value = {'a\u0000\u001f"\\/': 4, "€": 1, "😀": 2, "ﬁ": 3}
    text = '{"a\\u0000\\u001f\\"\\\\/":4,"€":1,"😀":2,"ﬁ":3}'
    got = (await ctx.ok("codec.encode", value=value, encoding="json"))["hex"]
    check_equal(bytes.fromhex(got).decode("utf-8"), text, "canonical JSON of the §5.5 example")
    mp = {"a": [1, -1, 128, -33, 4294967296, "x"], "b": None, "c": True}
    want = "83a16196" + "01ffcc80d0dfcf0000000100000000a178" + "a162c0a163c3"
    got = (await ctx.ok("codec.encode", value=mp, encoding="msgpack"))["hex"]
    check_equal(got, want, "canonical MessagePack of the §5.6 example")
    control = {"t": "\b\t\n\f\r\u000b\u007f\u2028/"}
    got = (await ctx.ok("codec.encode", value=control, encoding="json"))["hex"]
    check_equal(
        bytes.fromhex(got).decode("utf-8"),
        '{"t":"\\b\\t\\n\\f\\r\\u000b\u007f\u2028/"}',
        "escapes of §5.5 rule 4",
    )


@s.case(5, "the encoder refuses values outside the data model", "REQ-ENC-017", "REQ-ENC-001")
async def encoder_refuses(ctx: VectorsContext) -> None:
    """An encoder MUST refuse to encode a value outside the data model (a float, an integer outside
    the safe range, a non-string map key, a string with a lone surrogate) rather than approximate
    it."""
    for value in (1.5, 0.0, {"a": [1, 2.5]}, 2**53, -(2**53), "\ud800", {"k": "x\udc00"}):
        for enc in ("json", "msgpack"):
            out = await ctx.call("codec.encode", value=value, encoding=enc)
            check(
                out.ok is None and out.code is not None and 1000 <= out.code < 2000,
                f"{enc} encoding of {value!r}: {out.brief()}",
            )


@s.case(
    6,
    "the decoder refuses floats, literals, syntax errors, BOMs and data beyond the limits",
    "REQ-ENC-002",
    "REQ-ENC-011",
    "REQ-ENC-013",
    "REQ-ENC-015",
    "REQ-ENC-016",
)
async def decoder_refuses(ctx: VectorsContext) -> None:
    """(§5.8: each of these inputs must be refused with the error and rule named.)"""
    cases: list[tuple[bytes, str, int, str | None]] = [
        (b"[NaN]", "json", 1004, "no_float"),
        (b"[-Infinity]", "json", 1004, "no_float"),
        (b"[1E-3]", "json", 1004, "no_float"),
        (b"{} x", "json", 1000, "syntax"),
        (b"[1] // c", "json", 1000, "syntax"),
        (b"[1,]", "json", 1000, "syntax"),
        (b"\xef\xbb\xbf{}", "json", 1000, None),
        (b'["\xed\xa0\x80"]', "json", 1000, None),
        (json.dumps(["a" * 8193]).encode(), "json", 1002, "max_string"),
        (json.dumps([0] * 4097).encode(), "json", 1002, "max_array"),
        (json.dumps({f"k{i}": 0 for i in range(513)}).encode(), "json", 1002, "max_map"),
        (b'"' + b"a" * 262_143 + b'"', "json", 1002, "max_bytes"),
        (b"\xca\x3f\x80\x00\x00", "msgpack", 1004, "no_float"),
        (b"\x90\x00", "msgpack", 1000, "syntax"),
        (b"\xa2\xff\xfe", "msgpack", 1000, None),
        (b"\xc4\x00", "msgpack", 1000, "type"),
        (b"\x81\xc0\x01", "msgpack", 1000, None),
    ]
    for data, enc, code, rule in cases:
        out = await _decode(ctx, data, enc)
        check(
            out.code == code and (rule is None or out.detail.get("rule") == rule),
            f"{enc} {data[:30]!r}: {out.brief()}, expected {code} {rule or ''}",
        )
    for data, enc in (
        (b'["' + "é".encode() * 8192 + b'"]', "json"),
        (json.dumps([0] * 4096).encode(), "json"),
        (b"[-0]", "json"),
        (b' {"a" : 1}\n', "json"),
    ):
        out = await _decode(ctx, data, enc)
        check(out.ok is not None, f"{enc} {data[:30]!r} (within the rules) refused: {out.brief()}")
    zero = await _decode(ctx, b"[-0]", "json")
    check_equal((zero.ok or {}).get("value"), [0], "-0 denotes the integer 0")


@s.case(7, "no input crashes the decoder: a value or a decode-range error", "REQ-ENC-010")
async def fuzz(ctx: VectorsContext) -> None:
    """A decoder MUST turn any input byte string either into a cid value or into an error whose code
    is in the decode range 1000–1999 ... No input may crash it, hang it, or make it report an error
    of any other kind."""
    rng = random.Random(5_8)
    seeds = [bytes.fromhex(c["json_hex"]) for c in ctx.codec["valid"]]
    seeds += [bytes.fromhex(c["msgpack_hex"]) for c in ctx.codec["valid"]]
    inputs = [bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 48))) for _ in range(150)]
    for seed in seeds:
        for _ in range(8):
            mutable = bytearray(seed)
            for _ in range(rng.randint(1, 3)):
                if mutable:
                    mutable[rng.randrange(len(mutable))] = rng.getrandbits(8)
            inputs.append(bytes(mutable))
    for data in inputs:
        for enc in ("json", "msgpack"):
            out = await _decode(ctx, data, enc)
            check(
                out.ok is not None or (out.code is not None and 1000 <= out.code <= 1999),
                f"{enc} {data[:40].hex()}: {out.brief()}",
            )


@s.case(8, "duplicate keys are compared after unescaping", "REQ-ENC-012")
async def escaped_duplicates(ctx: VectorsContext) -> None:
    """In JSON, keys are compared after unescaping ("a" and "\\u0061" are equal)."""
    out = await _decode(ctx, b'{"a":1,"\\u0061":2}', "json")
    check(out.code == 1000 and out.detail.get("rule") == "unique_keys", out.brief())
