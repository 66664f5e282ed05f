"""§5 Canonical encoding: what the registry's decoder refuses, accepts and answers.

The decoder rules are checked on ``POST /v1/search`` (read-only: a query is
decoded before it is validated) and, for records, on ``POST /v1/records``.
"""

from __future__ import annotations

import json
import random
from typing import Any

from cid import codec

from ..case import Section, check, check_equal, skip
from ..signed import digest_of, key_value
from ..spec import find_spec_dir
from ..wire import JSON, MSGPACK, Reply
from . import data
from .checks import canonical_issue, query_field
from .context import RegistryContext

s = Section("registry", "5", "Canonical encoding")

_Q = {"limit": 1, "within": "nothing.cid-conformance.invalid"}


async def _raw(ctx: RegistryContext, body: bytes, ctype: str = JSON) -> Reply:
    return await ctx.request("POST", "/v1/search", body=body, content_type=ctype, accept=JSON)


async def _refused(
    ctx: RegistryContext, bodies: list[bytes], code: int, rule: str | None, ctype: str = JSON
) -> None:
    for body in bodies:
        reply = await _raw(ctx, body, ctype)
        check(reply.status >= 400, f"{body[:60]!r} was accepted: {reply.brief()}")
        ctx.expect_error(reply, code, rule=rule)


def _mp_map(key: bytes, value_bytes: bytes) -> bytes:
    """A msgpack map {"within": <name>, key: <raw value>}."""
    within = codec.encode_msgpack("within")[0:] + codec.encode_msgpack(_Q["within"])
    return b"\x82" + codec.encode_msgpack(key.decode()) + value_bytes + within


@s.case(
    1,
    "floating-point numbers are NON_CANONICAL no_float, in JSON and MessagePack",
    "REQ-ENC-002",
    "REQ-ENC-001",
)
async def no_float(ctx: RegistryContext) -> None:
    """A decoder MUST refuse JSON number text with a fraction or an exponent (1.0, 1e2, 1E-3), the
    non-standard literals NaN, Infinity and -Infinity, and MessagePack float 32/float 64 values,
    with
    NON_CANONICAL (1004), rule no_float."""
    w = _Q["within"]
    json_bodies = [
        f'{{"limit":{x},"within":"{w}"}}'.encode()
        for x in ("1.0", "1e2", "1E-3", "10e0", "NaN", "Infinity", "-Infinity")
    ]
    await _refused(ctx, json_bodies, 1004, "no_float")
    mp = [
        _mp_map(b"limit", b"\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00"),
        _mp_map(b"limit", b"\xca\x3f\x80\x00\x00"),
    ]
    await _refused(ctx, mp, 1004, "no_float", MSGPACK)


@s.case(
    2,
    "integers beyond ±(2^53−1) are NON_CANONICAL safe_integer; -0 is the integer 0",
    "REQ-ENC-008",
    "REQ-ENC-001",
)
async def safe_integer(ctx: RegistryContext) -> None:
    """A decoder MUST refuse an integer outside the range of [REQ-ENC-001] with NON_CANONICAL
    (1004), rule safe_integer ... the text -0 denotes the integer 0."""
    w = _Q["within"]
    bodies = [
        f'{{"limit":1,"vcpu_min":{x},"within":"{w}"}}'.encode()
        for x in ("9007199254740992", "-9007199254740992", "1" + "0" * 30)
    ]
    await _refused(ctx, bodies, 1004, "safe_integer")
    await _refused(
        ctx,
        [_mp_map(b"vcpu_min", b"\xcf\x00\x20\x00\x00\x00\x00\x00\x00")],
        1004,
        "safe_integer",
        MSGPACK,
    )
    ok = await _raw(ctx, f'{{"limit":1,"vcpu_min":9007199254740991,"within":"{w}"}}'.encode())
    check(ok.status == 200, f"2^53-1 is a safe integer: {ok.brief()}")
    zero = await _raw(ctx, f'{{"limit":1,"vcpu_min":-0,"within":"{w}"}}'.encode())
    check(zero.status == 200, f"-0 is the integer 0: {zero.brief()}")


@s.case(3, "duplicate map keys are MALFORMED unique_keys, compared after unescaping", "REQ-ENC-012")
async def unique_keys(ctx: RegistryContext) -> None:
    """A decoder MUST refuse a map with two equal keys, with MALFORMED (1000), rule unique_keys. In
    JSON, keys are compared after unescaping ("a" and "\\u0061" are equal)."""
    await _refused(
        ctx, [b'{"limit":1,"limit":2}', b'{"limit":1,"\\u006cimit":1}'], 1000, "unique_keys"
    )
    mp = b"\x82\xa5limit\x01\xa5limit\x02"
    await _refused(ctx, [mp], 1000, "unique_keys", MSGPACK)


@s.case(4, "invalid UTF-8, a byte order mark and lone surrogates are MALFORMED", "REQ-ENC-013")
async def utf8(ctx: RegistryContext) -> None:
    """A decoder MUST refuse, with MALFORMED (1000): input that is not well-formed UTF-8; a JSON
    string whose escapes denote a lone surrogate; and a MessagePack str whose bytes are not
    well-formed UTF-8. JSON input MUST be UTF-8 without a byte order mark."""
    await _refused(
        ctx,
        [
            b'{"limit":1,"within":"\xff\xfe"}',
            b'\xef\xbb\xbf{"limit":1}',
            b'{"limit":1,"within":"\\ud800"}',
            b'{"limit":1,"within":"\\udc00x"}',
            b'{"limit":1,"within":"\xed\xa0\x80"}',
        ],
        1000,
        None,
    )
    await _refused(ctx, [b"\x81\xa6within\xa2\xff\xfe"], 1000, None, MSGPACK)
    pair = await _raw(ctx, b'{"city_in":["\\ud83d\\ude00"],"limit":1,"within":"x.invalid"}')
    check(pair.status == 200, f"an escaped surrogate pair is one character: {pair.brief()}")


@s.case(5, "JSON syntax errors, trailing data and comments are MALFORMED syntax", "REQ-ENC-015")
async def json_syntax(ctx: RegistryContext) -> None:
    """JSON input MUST be one JSON text with nothing but white space after it; a decoder MUST refuse
    trailing data, comments and any other syntax error with MALFORMED (1000), rule syntax.
    Insignificant white space is accepted on input."""
    await _refused(
        ctx,
        [
            b'{"limit":1} x',
            b'{"limit":1}{}',
            b'{"limit":1} // c',
            b'/* c */{"limit":1}',
            b'{"limit":1,}',
            b"{'limit':1}",
            b'{"limit":1',
            b"",
            b'{"limit":01}',
        ],
        1000,
        "syntax",
    )
    spaced = b' \n\t{ "limit" : 1 ,\r\n "within" : "x.invalid" }\n '
    reply = await _raw(ctx, spaced)
    check(reply.status == 200, f"insignificant white space refused: {reply.brief()}")


@s.case(
    6,
    "MessagePack: trailing bytes, truncation, non-string keys, bin and ext are MALFORMED",
    "REQ-ENC-016",
    "REQ-ENC-001",
)
async def msgpack_syntax(ctx: RegistryContext) -> None:
    """MessagePack input MUST be exactly one MessagePack object. A decoder MUST refuse trailing
    bytes and truncated or malformed input with MALFORMED (1000), rule syntax; a map key that is not
    a string with MALFORMED; and any value of the bin or ext families ... with MALFORMED (1000),
    rule type."""
    good = codec.encode_msgpack(_Q)
    await _refused(ctx, [good + b"\x00", good[:-3], b"\xc1"], 1000, "syntax", MSGPACK)
    await _refused(ctx, [b"\x82\x01\x01\xa5limit\x01"], 1000, None, MSGPACK)
    await _refused(
        ctx,
        [_mp_map(b"within2", b"\xc4\x01x"), _mp_map(b"within2", b"\xd4\x01\x00")],
        1000,
        "type",
        MSGPACK,
    )


@s.case(
    7,
    "decoding limits: depth, string, array and map are LIMIT_EXCEEDED naming the limit",
    "REQ-ENC-011",
    "REQ-SEC-009",
)
async def limits(ctx: RegistryContext) -> None:
    """A decoder MUST enforce decoding limits and refuse input beyond them with LIMIT_EXCEEDED
    (1002), detail.rule naming the limit (Table 5-1)."""
    cases = [
        (b'{"limit":1,"x":' + b"[" * 16 + b"]" * 16 + b"}", "max_depth"),
        (json.dumps({"limit": 1, "within": "a" * 8193}).encode(), "max_string"),
        (
            json.dumps({"limit": 1, "within": "\\u00e9" * 8193}).encode().replace(b"\\\\", b"\\"),
            "max_string",
        ),
        (json.dumps({"limit": 1, "region_in": ["CN-BJ"] * 4097}).encode(), "max_array"),
        (json.dumps({"limit": 1, "x": {f"k{i}": 1 for i in range(513)}}).encode(), "max_map"),
    ]
    for body, rule in cases:
        reply = await _raw(ctx, body)
        ctx.expect_error(reply, 1002, rule=rule)
    mp_huge = await _raw(ctx, b"\x81\xa6within\xdb\xff\xff\xff\xff", MSGPACK)
    ctx.expect_error(mp_huge, (1002, 1000))
    mp_array = await _raw(ctx, b"\xdd\xff\xff\xff\xff", MSGPACK)
    ctx.expect_error(mp_array, (1002, 1000))
    # exactly at the limits: a decode error here means the limit is too small
    at = [
        b'{"limit":1,"x":' + b"[" * 15 + b"]" * 15 + b"}",
        json.dumps({"limit": 1, "city_in": ["\u00e9" * 8192]}, ensure_ascii=True).encode(),
        json.dumps({"limit": 1, "region_in": ["CN-BJ"] * 4096}).encode(),
    ]
    for body in at:
        reply = await _raw(ctx, body)
        check(reply.code != 1002, f"input at the default limits refused: {reply.brief()}")


@s.case(8, "a record at the default limits is accepted", "REQ-ENC-011", writes=True)
async def big_record(ctx: RegistryContext) -> None:
    """A receiver MUST accept any record or message within the default limits."""
    w = await ctx.world()
    ext = {f"conf.k{i}": "é" * 8192 for i in range(14)}
    body = data.offer(ext=ext)
    env = ctx.sign_as(w, "offer", ctx.unique(), body)
    size = len(codec.encode_json(env))
    check(200_000 < size < 262_144, f"the test record is {size} octets")
    await ctx.accepted(env, what=f"record of {size} octets")


@s.case(9, "random bytes only ever get a decode-range error", "REQ-ENC-010")
async def fuzz(ctx: RegistryContext) -> None:
    """A decoder MUST turn any input byte string either into a cid value or into an error whose
    code is in the decode range 1000–1999 ... No input may crash it, hang it, or make it report an
    error of any other kind."""
    rng = random.Random(20260101)
    good = codec.encode_json(
        {"limit": 1, "order": ["cost"], "currency": "CNY", "within": "x.invalid"}
    )
    bodies = [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64))) for _ in range(40)]
    bodies += [good[: rng.randint(0, len(good) - 1)] for _ in range(10)]
    bodies += [
        bytes(b ^ (1 << rng.randint(0, 7)) if rng.random() < 0.05 else b for b in good)
        for _ in range(10)
    ]
    for body in bodies:
        for ctype in (JSON, MSGPACK):
            reply = await _raw(ctx, body, ctype)
            if reply.status == 200:
                continue
            code = reply.code
            check(
                code is not None and 1000 <= code <= 1999,
                f"{ctype} {body[:40]!r}: {reply.brief()} (not a decode-range error)",
            )


@s.case(
    10,
    "decimals are strings in canonical form: decimal_type and decimal_text",
    "REQ-ENC-006",
    "REQ-ENC-007",
)
async def decimals(ctx: RegistryContext) -> None:
    """A receiver MUST refuse a number where a decimal string is expected, with SCHEMA_VIOLATION
    (1003), rule decimal_type ... any other text where a decimal is expected, with
    SCHEMA_VIOLATION (1003), rule decimal_text."""
    base = {"currency": "CNY", "limit": 1, "within": _Q["within"]}
    reply = await ctx.search({**base, "unit_price_max": 5})
    ctx.expect_error(reply, 1003, rule="decimal_type")
    check(query_field(reply) == "unit_price_max", f"field: {reply.brief()}")
    for text in (
        "5.0",
        ".5",
        "05",
        "+1",
        "1e3",
        "1.50",
        "-0",
        "-0.0",
        "1.",
        "0x1",
        " 1",
        "1" * 29,
        "0." + "1" * 19,
        "1,5",
    ):
        reply = await ctx.search({**base, "unit_price_max": text})
        ctx.expect_error(reply, 1003, rule="decimal_text")
        check(query_field(reply) == "unit_price_max", f"field: {reply.brief()}")
    for text in ("0", "5", "0.03", "1.2", "65.7", "1" * 28, "0." + "0" * 17 + "1"):
        reply = await ctx.search({**base, "unit_price_max": text})
        check(reply.status == 200, f"canonical decimal {text!r} refused: {reply.brief()}")


@s.case(
    11,
    "base64url members: no padding, URL alphabet, canonical bits, fixed lengths",
    "REQ-ENC-005",
    writes=True,
)
async def base64url(ctx: RegistryContext) -> None:
    """A receiver MUST refuse: a string containing =, white space or any character outside A–Z a–z
    0–9 - _; a string whose length is 1 modulo 4; a string whose unused trailing bits are not zero;
    and, where the field has a fixed length, a string that does not decode to that many bytes ...
    the
    error is SCHEMA_VIOLATION (1003), rule base64url (length for a wrong length), naming the member;
    in the sig of a signature object it is SIGNATURE_INVALID (2001)."""
    from cid.signing import SigningKey

    w = await ctx.world()
    pub = key_value(SigningKey.generate())["pub"]
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".index(pub[-1])
    bits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last ^ 1]
    for bad, rule in (
        (pub + "=", "base64url"),
        (pub[:20] + " " + pub[21:], "base64url"),
        (pub[:20] + "+" + pub[21:], "base64url"),
        (pub + "AA", "base64url"),
        (pub[:-1] + bits, "base64url"),
        (pub[:41], "base64url"),
        (pub + "A", "length"),
        (pub[:40], "length"),
    ):
        env = ctx.sign_as(w, "delegation", ctx.unique(), {"keys": [{"alg": "ed25519", "pub": bad}]})
        await ctx.refused(env, 1003, field="body.keys.0.pub", rule=rule)
    env = ctx.sign_as(w, "offer", ctx.unique(), data.GUIZHOU)
    sig = env["sigs"][0]["sig"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    flipped = sig[:-1] + alphabet[alphabet.index(sig[-1]) ^ 1]
    kid = env["sigs"][0]["kid"]
    await ctx.refused({**env, "sigs": [{"kid": kid, "sig": flipped}]}, 2001)
    # a sig that is not 86 characters of the alphabet also breaks the shape of [REQ-SIG-025]
    for bad_sig in (sig[:-2] + "==", sig[:85], sig[:40] + "/" + sig[41:]):
        await ctx.refused({**env, "sigs": [{"kid": kid, "sig": bad_sig}]}, (2001, 1003))


@s.case(
    12,
    "non-canonical input is accepted; digests hash the canonical form",
    "REQ-ENC-014",
    "REQ-SIG-037",
    writes=True,
)
async def non_canonical_accepted(ctx: RegistryContext) -> None:
    """A receiver MUST NOT refuse an input only because it is not canonical ... A party that hashes
    an object MUST hash its canonical encoding, never the bytes as received."""
    w = await ctx.world()
    env = ctx.sign_as(w, "offer", ctx.unique(), data.GUIZHOU)
    pretty = json.dumps(
        {"sigs": env["sigs"], "body": env["body"], "header": env["header"]},
        indent=2,
        ensure_ascii=True,
    ).encode()
    reply = await ctx.request("POST", "/v1/records", body=pretty, content_type=JSON, accept=JSON)
    check(reply.status == 201, f"a pretty-printed, escaped, unsorted envelope: {reply.brief()}")
    check_equal(reply.value()["digest"], digest_of(env), "digest of a non-canonical submission")
    served = (await ctx.resolve(env["header"]["sub"])).value()["records"]
    check_equal(served, [env], "the record as served")
    loose = b"\x82\xa5limit\xcd\x00\x01\xa6within" + codec.encode_msgpack(_Q["within"])
    check((await _raw(ctx, loose, MSGPACK)).status == 200, "non-shortest msgpack integer refused")


@s.case(
    13,
    "a record sent in MessagePack is the same record: same digest, same JSON",
    "REQ-ENC-021",
    "REQ-GEN-004",
    "REQ-SIG-001",
    writes=True,
)
async def msgpack_record(ctx: RegistryContext) -> None:
    """A value MUST have the same meaning whichever encoding carries it ... signatures stay valid
    because they never cover transported bytes."""
    w = await ctx.world()
    env = ctx.sign_as(w, "offer", ctx.unique(), data.GUIZHOU)
    reply = await ctx.submit(env, encoding="msgpack", accept=MSGPACK)
    check(reply.status == 201, f"a record in MessagePack: {reply.brief()}")
    check_equal(reply.value()["digest"], digest_of(env), "digest")
    as_json = (await ctx.resolve(env["header"]["sub"])).value()["records"]
    as_mp = await ctx.get("/v1/names/" + env["header"]["sub"], accept=MSGPACK)
    check_equal(as_json, [env], "the record served as JSON")
    check_equal(as_mp.value()["records"], [env], "the record served as MessagePack")


@s.case(
    14,
    "every negotiated answer of the run was in canonical encoding",
    "REQ-REG-007",
    "REQ-ENC-003",
    "REQ-ENC-004",
    tags=["last"],
)
async def answers_canonical(ctx: RegistryContext) -> None:
    """Every negotiated response body MUST be the canonical encoding (§5.5, §5.6) of its value."""
    replies = [
        await ctx.get("/v1/feed", query={"limit": "3"}, accept=JSON),
        await ctx.get("/v1/feed", query={"limit": "3"}, accept=MSGPACK),
        await ctx.get("/v1/snapshot", accept=MSGPACK),
        await ctx.get("/v1/namespaces/.", query={"limit": "20"}, accept=MSGPACK),
        *ctx.negotiated_seen,
    ]
    problems = [p for r in replies if r.status == 200 and (p := canonical_issue(r))]
    check(not problems, f"{len(problems)} answers are not canonical", *problems[:5])


@s.case(15, "answers validate against the JSON Schemas of spec/schemas", "REQ-ENC-030", writes=True)
async def schemas(ctx: RegistryContext) -> None:
    """An object that conforms to this specification MUST validate against its schema."""
    try:
        import jsonschema  # type: ignore[import-untyped]
    except ImportError:
        skip("the jsonschema package is not installed")
    w = await ctx.world()
    folder = find_spec_dir() / "schemas"

    def validate(value: Any, stem: str) -> None:
        schema = json.loads((folder / f"{stem}.schema.json").read_text("utf-8"))
        errors = list(jsonschema.Draft202012Validator(schema).iter_errors(value))
        check(not errors, f"{stem}: {errors[0].message if errors else ''}")

    validate((await ctx.resolve(w.apex)).value(), "query-resolve-response")
    referral = await ctx.resolve(w.name("x.ref"))
    if referral.status == 200:  # (whether it is a referral at all is registry/12.6/7's question)
        validate(referral.value(), "query-resolve-response")
    validate((await ctx.get(f"/v1/namespaces/{w.catalogue}")).value(), "query-list-response")
    query = {
        "within": w.catalogue,
        "currency": "CNY",
        "order": ["cost", "latency"],
        "near": {"region": "CN-TJ"},
        "weights": {"cost": "2", "latency": "1"},
    }
    validate(query, "query-query")
    validate((await ctx.search(query)).value(), "query-search-response")
    for key, stem in (
        ("zone", "record-zone"),
        ("cat:gz", "record-offer"),
        ("cat:nm:refresh", "record-refresh"),
        ("delegation", "record-delegation"),
    ):
        validate(w.envelopes[key], stem)
        validate(w.envelopes[key], "envelope")
