"""§6 Signatures: ``spec/vectors/signatures.json`` and further verifier checks built on fresh
keys."""

from __future__ import annotations

import json
from typing import Any

from cid import codec
from cid.signing import SigningKey, b64url_decode, b64url_encode

from ..case import Section, check, check_equal
from ..signed import header, key_value, sign, signed
from . import VectorsContext

s = Section("vectors", "6", "Signatures and namespace authority")

_L = 2**252 + 27742317777372353535851937790883648493
NOW = 1_767_225_600 + 3600
DAY = 86_400


def _trust(ctx: VectorsContext) -> dict[str, Any]:
    sig = ctx.signatures
    return {
        "root_keys": sig["trust"]["root_keys"],
        "chain": [e["envelope"] for e in sig["trust"]["chain"]],
    }


@s.case(
    1,
    "valid vectors verify from JSON, MessagePack and value; message, input and digest match",
    "REQ-SIG-001",
    "REQ-SIG-002",
    "REQ-SIG-010",
    "REQ-SIG-030",
    "REQ-SIG-037",
    "REQ-SIG-043",
    "REQ-SIG-041",
    "REQ-SIG-042",
    "REQ-ENC-021",
)
async def valid(ctx: VectorsContext) -> None:
    """A signature never covers the bytes as transported, so the same envelope verifies whether it
    travelled as JSON or MessagePack ... The digest of an envelope is the base64url of SHA-256 over
    its signed message."""
    sig = ctx.signatures
    for case in sig["valid"]:
        for form in (
            {"envelope": case["envelope"]},
            {"hex": case["json"].encode().hex(), "encoding": "json"},
            {"hex": case["msgpack_hex"], "encoding": "msgpack"},
        ):
            got = await ctx.ok("record.verify", **_trust(ctx), now=sig["now"], **form)
            check_equal(got.get("digest"), case["digest"], f"digest of {case['note']}")
            check_equal(
                bytes.fromhex(got.get("message_hex", "")).decode(),
                case["message"],
                f"signed message of {case['note']}",
            )
            check_equal(
                got.get("signing_input_hex"),
                case["signing_input_hex"],
                f"signing input of {case['note']}",
            )


@s.case(
    2,
    "invalid vectors are refused with the named error",
    "REQ-SIG-003",
    "REQ-SIG-022",
    "REQ-SIG-030",
    "REQ-SIG-031",
    "REQ-SIG-032",
    "REQ-SIG-034",
    "REQ-SIG-045",
    "REQ-SIG-048",
    "REQ-ID-025",
    "REQ-SEC-003",
    "REQ-QRY-001",
    "REQ-SEC-001",
)
async def invalid(ctx: VectorsContext) -> None:
    """(signatures.json: each invalid envelope must be refused with the named error.)"""
    sig = ctx.signatures
    bad = []
    for case in sig["invalid"]:
        out = await ctx.call(
            "record.verify",
            **_trust(ctx),
            envelope=case["envelope"],
            now=case.get("now", sig["now"]),
            last_serial=case.get("last_serial"),
        )
        if out.name != case["error"]:
            bad.append(f"{case['note']}: {out.brief()}, expected {case['error']}")
    check(not bad, f"{len(bad)} invalid vectors are answered differently", *bad)


@s.case(3, "key ids: the vector keys and the example of §6.1", "REQ-SIG-010", "REQ-SIG-005")
async def key_ids(ctx: VectorsContext) -> None:
    """kid = base64url(SHA-256("cid-kid-v1" || 00 || alg || 00 || pub)[0..16]) ... the RFC 8032
    TEST 2
    key has ... the key id kmcK-OlLBlfrKSMyArH5Sw."""
    for key in ctx.signatures["keys"]:
        got = await ctx.ok("signing.key_id", alg="ed25519", pub=key["pub"])
        check_equal(got.get("kid"), key["kid"], f"key id of {key['name']}")
    got = await ctx.ok(
        "signing.key_id", alg="ed25519", pub="PUAXw-hDiVqStwqnTRt-vJyYLM8uxJaMwM1V8Sr0Zgw"
    )
    check_equal(got.get("kid"), "kmcK-OlLBlfrKSMyArH5Sw", "the key id of §6.1")
    for bad in (
        "PUAXw-hDiVqStwqnTRt-vJyYLM8uxJaMwM1V8Sr0Zgw=",
        "PUAXw",
        "PUAXw-hDiVqStwqnTRt-vJyYLM8uxJaMwM1V8Sr0Zgx",
    ):
        out = await ctx.call("signing.key_id", alg="ed25519", pub=bad)
        check(out.ok is None, f"a malformed public key {bad!r} was accepted")
    out = await ctx.call(
        "signing.key_id", alg="ed448", pub="PUAXw-hDiVqStwqnTRt-vJyYLM8uxJaMwM1V8Sr0Zgw"
    )
    check_equal(out.code, 2007, "an unknown algorithm (ALGORITHM_UNSUPPORTED)")


@s.case(
    4,
    "the byte-level example of §6.3: signing input, signature and digest",
    "REQ-SIG-002",
    "REQ-SIG-037",
    "REQ-SIG-004",
)
async def spec_example(ctx: VectorsContext) -> None:
    """signed by the key kmcK-OlLBlfrKSMyArH5Sw (RFC 8032 TEST 2), the 238-byte signing input ...
    The Ed25519 signature ... is diWaCkds... and the envelope's digest is yI3FFMkk..."""
    test2 = SigningKey.from_seed(
        bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
    )
    hdr = header(
        "cid.record.tombstone",
        "pool1.guizhou.ctyun",
        serial=8,
        nbf=1767225600,
        exp=1767312000,
        iat=1767225600,
    )
    env = sign(hdr, {"target": "offer"}, [test2])
    check_equal(
        env["sigs"][0]["sig"],
        "diWaCkdsHmexjP-seCnbVVxBGeZwaDvYk5dNR_O-GoBw4LL3tBPdY2HCO1G_gr6nH_MZU8XZkDdGmZhmchgmBg",
        "the suite's own signing (a suite error if this fails)",
    )
    got = await ctx.ok(
        "message.verify",
        envelope=env,
        keys=[key_value(test2)],
        typ=["cid.record.tombstone"],
        now=1767225700,
    )
    check_equal(got.get("digest"), "yI3FFMkkaiktDcuY2BAD56b1EsiZ-hoIWyfZR0IGCMY", "digest of §6.3")


@s.case(5, "a signature whose S is not below L is refused", "REQ-SIG-004")
async def malleable(ctx: VectorsContext) -> None:
    """A verifier MUST verify as RFC 8032 §5.1.7 specifies, including the refusal of a signature
    whose scalar S is not below the group order L."""
    key = SigningKey.generate()
    env = sign(
        header("cid.neg.quote", "a.b", serial=1, nbf=NOW - 60, exp=NOW + 60), {"x": 1}, [key]
    )
    raw = b64url_decode(env["sigs"][0]["sig"])
    value = int.from_bytes(raw[32:], "little") + _L
    env["sigs"][0]["sig"] = b64url_encode(raw[:32] + value.to_bytes(32, "little"))
    out = await ctx.call(
        "message.verify", envelope=env, keys=[key_value(key)], typ=["cid.neg.quote"], now=NOW
    )
    check_equal(out.code, 2001, f"a non-canonical S: {out.brief()}")


def _message(*keys: SigningKey, typ: str = "cid.neg.agreement") -> dict[str, Any]:
    hdr = header(typ, "pool.ctyun", serial=4, nbf=NOW - 60, exp=NOW + DAY)
    return sign(hdr, {"agreement_id": "a" * 16}, keys)


@s.case(
    6,
    "multi-signature messages: every signature verifies, by a known key, each party signs",
    "REQ-SIG-034",
    "REQ-SIG-036",
    "REQ-SIG-025",
    "REQ-SIG-011",
)
async def messages(ctx: VectorsContext) -> None:
    """Every signature in sigs MUST be by an authorised key and MUST verify ... the verifier MUST
    check that a verified signature by a key of each required party is present, and MUST refuse the
    object otherwise with SIGNATURE_INVALID (2001), detail.missing listing the missing key ids."""
    provider, requester, stranger = (
        SigningKey.generate(),
        SigningKey.generate(),
        SigningKey.generate(),
    )
    keys = [key_value(provider), key_value(requester)]
    both = [provider.kid, requester.kid]
    ok = await ctx.call(
        "message.verify",
        envelope=_message(provider, requester),
        keys=keys,
        typ=["cid.neg.agreement"],
        now=NOW,
        required=both,
    )
    check(ok.ok is not None, f"an agreement signed by both parties: {ok.brief()}")
    one = await ctx.call(
        "message.verify",
        envelope=_message(provider),
        keys=keys,
        typ=["cid.neg.agreement"],
        now=NOW,
        required=both,
    )
    check_equal(one.code, 2001, f"one party missing: {one.brief()}")
    check_equal(one.detail.get("missing"), [requester.kid], "detail.missing")
    env = _message(provider, requester)
    env["sigs"][1]["sig"] = env["sigs"][0]["sig"]
    broken = await ctx.call(
        "message.verify", envelope=env, keys=keys, typ=["cid.neg.agreement"], now=NOW
    )
    check_equal(broken.code, 2001, f"one of two signatures broken: {broken.brief()}")
    unknown = await ctx.call(
        "message.verify",
        envelope=_message(provider, stranger),
        keys=keys,
        typ=["cid.neg.agreement"],
        now=NOW,
    )
    check_equal(unknown.code, 2002, f"a signature by a key not authorised: {unknown.brief()}")
    env = _message(stranger)
    env["sigs"][0]["kid"] = provider.kid
    spoof = await ctx.call(
        "message.verify", envelope=env, keys=keys, typ=["cid.neg.agreement"], now=NOW
    )
    check_equal(spoof.code, 2001, f"a known kid on another key's signature: {spoof.brief()}")
    five = _message(*(SigningKey.generate() for _ in range(5)))
    out = await ctx.call(
        "message.verify", envelope=five, keys=keys, typ=["cid.neg.agreement"], now=NOW
    )
    check_equal(out.code, 1003, f"five signatures: {out.brief()}")
    env = _message(provider)
    env["sigs"] = env["sigs"] * 2
    out = await ctx.call(
        "message.verify", envelope=env, keys=keys, typ=["cid.neg.agreement"], now=NOW
    )
    check_equal(
        (out.code, out.detail.get("rule")), (1003, "unique_kid"), "two signatures by one key"
    )


@s.case(
    7,
    "the typ is checked against the context before any signature",
    "REQ-SIG-003",
    "REQ-GEN-011",
    "REQ-SIG-026",
)
async def typ_context(ctx: VectorsContext) -> None:
    """A verifier MUST know which typ values are acceptable in its context ... and MUST refuse an
    envelope with any other typ with SCHEMA_VIOLATION (1003), rule typ, before checking
    signatures."""
    key = SigningKey.generate()
    env = _message(key, typ="cid.neg.quote")
    env["sigs"][0]["sig"] = b64url_encode(bytes(64))
    out = await ctx.call(
        "message.verify", envelope=env, keys=[key_value(key)], typ=["cid.neg.agreement"], now=NOW
    )
    check_equal(
        (out.code, out.detail.get("rule")), (1003, "typ"), "a quote where an agreement is expected"
    )


@s.case(
    8,
    "validity windows: EXPIRED at exp, NOT_YET_VALID beyond the skew, never a larger skew",
    "REQ-SIG-031",
    "REQ-SEC-015",
    "REQ-SIG-033",
)
async def windows(ctx: VectorsContext) -> None:
    """A verifier with current time now MUST refuse an envelope with EXPIRED (2004) if now ≥ exp,
    and
    otherwise with NOT_YET_VALID (2005) if now + skew < nbf or now + skew < iat ... The skew is 300
    seconds; a verifier MAY use a smaller skew and MUST NOT use a larger one. No skew applies to
    exp."""
    key = SigningKey.generate()

    async def verify(nbf: int, exp: int, now: int, iat: int | None = None) -> int | None:
        env = sign(
            header("cid.neg.quote", "a.b", serial=1, nbf=nbf, exp=exp, iat=iat), {"x": 1}, [key]
        )
        out = await ctx.call(
            "message.verify", envelope=env, keys=[key_value(key)], typ=["cid.neg.quote"], now=now
        )
        return out.code

    check_equal(await verify(1000, 2000, 2000), 2004, "now = exp")
    check_equal(await verify(1000, 2000, 1999), None, "now = exp - 1")
    check_equal(await verify(1000, 2000, 699), 2005, "now = nbf - 301")
    check_equal(await verify(1000, 2000, 1500, iat=1801), 2005, "iat = now + 301")
    check(await verify(1000, 2000, 700) in (None, 2005), "now = nbf - 300 (within the skew)")
    check_equal(await verify(1000, 1000, 1000), 1003, "an empty window (rule window)")
    check_equal(await verify(1000, 1000 + 34_560_001, 1000), 1003, "a window over 400 days")


def _chain(
    root: SigningKey, anchor: SigningKey, *rotations: dict[str, Any], exp: int = NOW + 30 * DAY
) -> list[dict[str, Any]]:
    chain = [
        signed(
            "delegation",
            "ctyun",
            {"keys": [key_value(anchor)]},
            root,
            serial=1,
            nbf=NOW - DAY,
            exp=exp,
        )
    ]
    for i, body in enumerate(rotations, 1):
        chain.append(
            signed("keyrotation", "ctyun", body, anchor, serial=i, nbf=NOW - DAY, exp=NOW + DAY)
        )
    return chain


async def _verify(
    ctx: VectorsContext, root: SigningKey, chain: list[Any], env: dict[str, Any], **kw: Any
) -> Any:
    return await ctx.call(
        "record.verify",
        root_keys=[key_value(root)],
        chain=chain,
        envelope=env,
        now=kw.pop("now", NOW),
        **kw,
    )


_OFFER = {"target": "offer"}


@s.case(
    9,
    "revocation is immediate and permanent; retired keys sign nothing new",
    "REQ-SIG-044",
    "REQ-SIG-047",
    "REQ-SIG-048",
    "REQ-SIG-050",
)
async def revocation(ctx: VectorsContext) -> None:
    """from the moment the verifier applies the rotation, it MUST refuse every signature by that key
    in that namespace ... a key id once revoked in namespace N stays refused in N even if a later
    delegation or key rotation of N lists the key again."""
    root, anchor, k2, k3 = (SigningKey.generate() for _ in range(4))
    tomb = signed("tombstone", "pool.ctyun", _OFFER, k2, serial=2, nbf=NOW - 60, exp=NOW + DAY)
    ok = await _verify(ctx, root, _chain(root, anchor, {"keys": [key_value(k2)]}), tomb)
    check(ok.ok is not None, f"a record by the rotation's signing key: {ok.brief()}")
    by_anchor = signed(
        "tombstone", "pool.ctyun", _OFFER, anchor, serial=2, nbf=NOW - 60, exp=NOW + DAY
    )
    out = await _verify(ctx, root, _chain(root, anchor, {"keys": [key_value(k2)]}), by_anchor)
    check_equal(out.code, 2003, "the anchor key after a rotation (KEY_NOT_AUTHORISED)")
    revoked = _chain(
        root, anchor, {"keys": [key_value(k2)]}, {"keys": [key_value(k3)], "revoked": [k2.kid]}
    )
    check_equal((await _verify(ctx, root, revoked, tomb)).code, 2008, "a revoked key (KEY_REVOKED)")
    again = [
        *revoked,
        signed(
            "keyrotation",
            "ctyun",
            {"keys": [key_value(k2)]},
            anchor,
            serial=3,
            nbf=NOW - DAY,
            exp=NOW + DAY,
        ),
    ]
    check_equal((await _verify(ctx, root, again, tomb)).code, 2008, "a revoked key listed again")
    retired = _chain(root, anchor, {"keys": [key_value(k2)]}, {"keys": [key_value(k3)]})
    out = await _verify(ctx, root, retired, tomb)
    check(out.code in (2002, 2003), f"a retired key signs nothing new: {out.brief()}")


@s.case(
    10, "authority lasts as long as the chain: an expired delegation is CHAIN_BROKEN", "REQ-SIG-049"
)
async def chain_window(ctx: VectorsContext) -> None:
    """every delegation and key rotation on the path from the trust anchor to the governing
    namespace MUST itself be within its validity window at now; otherwise the verifier MUST refuse
    the envelope with CHAIN_BROKEN (2009)."""
    root, anchor = SigningKey.generate(), SigningKey.generate()
    chain = _chain(root, anchor, exp=NOW + 100)
    rec = signed("tombstone", "pool.ctyun", _OFFER, anchor, serial=2, nbf=NOW + 50, exp=NOW + DAY)
    out = await _verify(ctx, root, chain, rec, now=NOW + 200, chain_now=NOW)
    check_equal(out.code, 2009, f"after the delegation's exp: {out.brief()}")


@s.case(
    11,
    "the trust anchor: no empty anchor; only anchor keys sign root rotations",
    "REQ-SIG-040",
    "REQ-SIG-041",
    "REQ-SIG-042",
    "REQ-ID-024",
)
async def trust_anchor(ctx: VectorsContext) -> None:
    """A verifier MUST NOT accept a trust anchor with no key, and MUST NOT learn or change
    trust-anchor keys from any cid record ... The root cannot be delegated."""
    root, anchor, other = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    rec = signed("tombstone", "pool.ctyun", _OFFER, anchor, serial=2, nbf=NOW - 60, exp=NOW + DAY)
    out = await ctx.call("record.verify", root_keys=[], chain=[], envelope=rec, now=NOW)
    check(out.ok is None, "a trust anchor with no key was accepted")
    # a root key rotation names signing keys, not anchor keys: the new key cannot rotate the root
    rot = signed(
        "keyrotation",
        ".",
        {"keys": [key_value(other)]},
        root,
        serial=1,
        nbf=NOW - 60,
        exp=NOW + DAY,
    )
    takeover = signed(
        "keyrotation",
        ".",
        {"keys": [key_value(other)]},
        other,
        serial=2,
        nbf=NOW - 60,
        exp=NOW + DAY,
    )
    out = await _verify(ctx, root, [rot], takeover)
    check(
        out.code in (2002, 2003), f"a rotated root signing key signs a root rotation: {out.brief()}"
    )
    deleg_root = signed(
        "delegation", ".", {"keys": [key_value(other)]}, root, serial=1, nbf=NOW - 60, exp=NOW + DAY
    )
    out = await _verify(ctx, root, [], deleg_root)
    check(out.ok is None, "a delegation of the root was accepted")
    zone = signed(
        "zone",
        ".",
        {"display_name": "x", "service_keys": [key_value(other)]},
        anchor,
        serial=1,
        nbf=NOW - 60,
        exp=NOW + DAY,
    )
    out = await _verify(ctx, root, _chain(root, anchor), zone)
    check(out.ok is None, "a root zone not signed under the trust anchor was accepted")


@s.case(
    12,
    "serials: a version below, or the same serial with other content, is SERIAL_ROLLBACK",
    "REQ-SIG-032",
    "REQ-SIG-038",
)
async def serials(ctx: VectorsContext) -> None:
    """A verifier that has accepted a version of an identity with serial S MUST refuse, with
    SERIAL_ROLLBACK (2006), a version of that identity with a serial below S, or with serial S
    unless
    it is the very envelope already accepted."""
    root, anchor = SigningKey.generate(), SigningKey.generate()
    rec = signed("tombstone", "pool.ctyun", _OFFER, anchor, serial=5, nbf=NOW - 60, exp=NOW + DAY)
    check_equal(
        (await _verify(ctx, root, _chain(root, anchor), rec, last_serial=6)).code, 2006, "below"
    )
    check_equal(
        (await _verify(ctx, root, _chain(root, anchor), rec, last_serial=4)).code, None, "above"
    )
    # the same delegation twice in a chain is the very envelope again: idempotent
    chain = _chain(root, anchor)
    out = await _verify(ctx, root, [*chain, chain[0]], rec)
    check(out.ok is not None, f"re-adding the very delegation held: {out.brief()}")
    changed = signed(
        "delegation",
        "ctyun",
        {"keys": [key_value(anchor)], "registries": ["https://x.example"]},
        root,
        serial=1,
        nbf=NOW - DAY,
        exp=NOW + 30 * DAY,
    )
    out = await _verify(ctx, root, [*chain, changed], rec)
    check_equal(out.code, 2006, "another delegation with the same serial")


@s.case(
    13,
    "a record's signing input covers the values as decoded, whatever the encoding",
    "REQ-SIG-021",
    "REQ-SIG-001",
    "REQ-ENC-014",
)
async def as_decoded(ctx: VectorsContext) -> None:
    """A verifier MUST compute the signing input from the header and body values exactly as decoded,
    never from a re-serialisation of parsed models (which may normalise URLs, decimals or
    defaults)."""
    root, anchor = SigningKey.generate(), SigningKey.generate()
    body = {
        "display_name": "x",
        "service_keys": [key_value(anchor)],
        "endpoints": {"invoke": "https://EXAMPLE.com:443/a/../b"},
    }
    zone = signed("zone", "ctyun", body, anchor, serial=1, nbf=NOW - 60, exp=NOW + DAY)
    spaced = json.dumps(
        {"sigs": zone["sigs"], "header": zone["header"], "body": zone["body"]}, indent=1
    )
    for form in (
        {"envelope": zone},
        {"hex": spaced.encode().hex(), "encoding": "json"},
        {"hex": codec.encode_msgpack(zone).hex(), "encoding": "msgpack"},
    ):
        out = await ctx.call(
            "record.verify",
            root_keys=[key_value(root)],
            chain=_chain(root, anchor),
            now=NOW,
            **form,
        )
        check(out.ok is not None, f"{list(form)}: {out.brief()}")
