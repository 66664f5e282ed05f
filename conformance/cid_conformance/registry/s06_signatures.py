"""§6 Signatures and namespace authority, checked through the registry as a verifier.

A registry MUST verify every record under §6 before accepting it ([REQ-SEC-002]),
so each rule of §6 is checked by submitting a record broken in exactly one way,
signed correctly wherever the rule is not about the signature, and checking the
error the registry answers.
"""

from __future__ import annotations

import hashlib
from typing import Any

from cid.identifier import Identifier
from cid.signing import SigningKey, b64url_decode, b64url_encode, pae

from ..case import Section, check, check_equal
from ..signed import header, key_value, message_of, sign
from ..spec import Level
from . import data
from .context import DAY, RegistryContext, World

s = Section("registry", "6", "Signatures and namespace authority")

_L = 2**252 + 27742317777372353535851937790883648493
"""The order of the Ed25519 base point (RFC 8032)."""


def _resign(env: dict[str, Any], key: SigningKey) -> dict[str, Any]:
    return sign(env["header"], env["body"], [key])


async def _delegated(
    ctx: RegistryContext, w: World, key: SigningKey | None = None, **kw: Any
) -> tuple[str, SigningKey]:
    """A fresh namespace delegated by the apex to ``key`` (a new key by default)."""
    rel = ctx.unique("ns")
    key = key or SigningKey.generate()
    await ctx.accepted(ctx.sign_as(w, "delegation", rel, {"keys": [key_value(key)]}, **kw))
    return rel, key


@s.case(
    1,
    "a signature that does not verify is SIGNATURE_INVALID and nothing is stored",
    "REQ-SIG-001",
    "REQ-SIG-034",
    "REQ-SEC-002",
    writes=True,
)
async def bad_signature(ctx: RegistryContext) -> None:
    """Every signature in sigs MUST be by an authorised key and MUST verify."""
    w = await ctx.world()
    for mutate in ("sig", "body", "header"):
        rel = ctx.unique()
        env = ctx.sign_as(w, "offer", rel, data.GUIZHOU)
        if mutate == "sig":
            raw = bytearray(b64url_decode(env["sigs"][0]["sig"]))
            raw[5] ^= 1
            env["sigs"][0]["sig"] = b64url_encode(bytes(raw))
        elif mutate == "body":
            env["body"]["availability"] = {"units_free": 8000, "units_total": 8000}
        else:
            env["header"]["serial"] = 2
        await ctx.refused(env, 2001)
        ctx.expect_error(await ctx.resolve(w.name(rel)), 3001)


@s.case(2, "a signature with S not below L is refused", "REQ-SIG-004", writes=True)
async def non_canonical_s(ctx: RegistryContext) -> None:
    """A verifier MUST verify as RFC 8032 §5.1.7 specifies, including the refusal of a signature
    whose scalar S is not below the group order L."""
    w = await ctx.world()
    env = ctx.sign_as(w, "offer", ctx.unique(), data.GUIZHOU)
    raw = b64url_decode(env["sigs"][0]["sig"])
    s_value = int.from_bytes(raw[32:], "little") + _L
    check(s_value < 2**256, "cannot build the malleated signature")
    env["sigs"][0]["sig"] = b64url_encode(raw[:32] + s_value.to_bytes(32, "little"))
    await ctx.refused(env, 2001)


@s.case(
    3,
    "a key object must be exactly {alg, pub} with 32 canonical bytes",
    "REQ-SIG-005",
    "REQ-SIG-006",
    "REQ-ENC-005",
    writes=True,
)
async def key_shape(ctx: RegistryContext) -> None:
    """A public key MUST be carried as the map {"alg": "ed25519", "pub": ...} with exactly these
    two members. A receiver MUST refuse a key whose pub is not canonical base64url of exactly 32
    bytes. (A private key or seed MUST NOT appear in any cid object.)"""
    w = await ctx.world()
    k = SigningKey.generate()
    good = key_value(k)
    for bad, rule in (
        ({**good, "seed": b64url_encode(k.seed())}, "extra_forbidden"),
        ({**good, "kid": k.kid}, "extra_forbidden"),
        ({"alg": "ed25519", "pub": good["pub"] + "="}, None),
        ({"alg": "ed25519", "pub": good["pub"][:-1]}, None),
        ({"alg": "ed25519", "pub": b64url_encode(bytes(31))}, None),
        ({"alg": "ed25519"}, None),
    ):
        env = ctx.sign_as(w, "delegation", ctx.unique(), {"keys": [bad]})
        await ctx.refused(env, 1003, under="body.keys.0", rule=rule)


@s.case(
    4,
    "an algorithm other than ed25519 is ALGORITHM_UNSUPPORTED",
    "REQ-SIG-005",
    "REQ-SEC-012",
    "REQ-SIG-023",
    writes=True,
)
async def unsupported_alg(ctx: RegistryContext) -> None:
    """A receiver MUST refuse a key or header naming an algorithm it does not implement, with
    ALGORITHM_UNSUPPORTED (2007)."""
    w = await ctx.world()
    env = ctx.sign_as(w, "offer", ctx.unique(), data.GUIZHOU)
    env["header"]["alg"] = "ed448"
    reply = await ctx.refused(_resign(env, w.anchor), 2007)
    check(reply.status == 400, f"{reply.brief()}: ALGORITHM_UNSUPPORTED is HTTP 400")
    bad_key = {"alg": "rsa-pss", "pub": key_value(SigningKey.generate())["pub"]}
    await ctx.refused(ctx.sign_as(w, "delegation", ctx.unique(), {"keys": [bad_key]}), 2007)


@s.case(
    5,
    "the kid only selects a key: a signature by another key under a known kid fails",
    "REQ-SIG-011",
    "REQ-SIG-010",
    writes=True,
)
async def kid_selects_only(ctx: RegistryContext) -> None:
    """A verifier MUST derive key ids itself from the public keys it holds and MUST use the kid of
    a signature only to select one of those keys; a key id never stands in for a key."""
    w = await ctx.world()
    env = ctx.sign_as(w, "offer", ctx.unique(), data.GUIZHOU)
    intruder = SigningKey.generate()
    msg = message_of(env["header"], env["body"])
    kid = w.anchor.kid
    env["sigs"] = [
        {"kid": kid, "sig": b64url_encode(intruder.sign(pae("cid.record.offer", kid, msg)))}
    ]
    await ctx.refused(env, 2001)
    # a kid computed without the cid-kid-v1 context names no key
    wrong_kid = b64url_encode(hashlib.sha256(b64url_decode(w.anchor.public_key.pub)).digest()[:16])
    env2 = ctx.sign_as(w, "offer", ctx.unique(), data.GUIZHOU)
    env2["sigs"] = [
        {
            "kid": wrong_kid,
            "sig": b64url_encode(
                w.anchor.sign(
                    pae("cid.record.offer", wrong_kid, message_of(env2["header"], env2["body"]))
                )
            ),
        }
    ]
    await ctx.refused(env2, 2002)


@s.case(6, "the envelope is exactly {header, body, sigs}", "REQ-SIG-020", writes=True)
async def envelope_shape(ctx: RegistryContext) -> None:
    """A signed envelope MUST be a map with exactly the three members header, body and sigs ... A
    receiver MUST refuse any other shape with SCHEMA_VIOLATION (1003)."""
    w = await ctx.world()
    env = ctx.sign_as(w, "offer", ctx.unique(), data.GUIZHOU)
    for bad in (
        {**env, "extra": {}},
        {k: v for k, v in env.items() if k != "sigs"},
        {**env, "body": [env["body"]]},
        {**env, "header": "x"},
        [env],
    ):
        ctx.expect_error(await ctx.post("/v1/records", bad), 1003)


@s.case(
    7,
    "sigs holds 1 to 4 well-formed signature objects with distinct kids",
    "REQ-SIG-025",
    "REQ-ENC-005",
    writes=True,
)
async def sigs_shape(ctx: RegistryContext) -> None:
    """sigs MUST hold 1 to 4 signature objects, no two with the same kid. A signature object MUST
    be the map {"kid": ..., "sig": ...} with exactly these members."""
    w = await ctx.world()
    env = ctx.sign_as(w, "offer", ctx.unique(), data.GUIZHOU)
    sig = env["sigs"][0]
    for sigs in (
        [],
        [sig] * 5,
        [{**sig, "alg": "ed25519"}],
        [{"kid": sig["kid"]}],
        [{"kid": sig["kid"][:-1], "sig": sig["sig"]}],
    ):
        await ctx.refused({**env, "sigs": sigs}, 1003)
    await ctx.refused(
        {**env, "sigs": [{"kid": sig["kid"], "sig": sig["sig"] + "AA"}]}, (1003, 2001)
    )
    await ctx.refused(
        {**env, "sigs": [{"kid": sig["kid"], "sig": sig["sig"][:-2] + "=="}]}, (1003, 2001)
    )


@s.case(
    8,
    "a record with more than one signature is SCHEMA_VIOLATION rule sigs",
    "REQ-SIG-035",
    "REQ-REC-008",
    writes=True,
)
async def record_one_sig(ctx: RegistryContext) -> None:
    """A record MUST carry exactly one signature; a verifier MUST refuse a record with more, with
    SCHEMA_VIOLATION (1003), rule sigs."""
    w = await ctx.world()
    env = ctx.sign_as(w, "offer", ctx.unique(), data.GUIZHOU)
    two = sign(env["header"], env["body"], [w.anchor, SigningKey.generate()])
    await ctx.refused(two, 1003, rule="sigs")


@s.case(
    9,
    "header members: required, typed, no others, named in field",
    "REQ-SIG-023",
    "REQ-GEN-001",
    writes=True,
)
async def header_members(ctx: RegistryContext) -> None:
    """A header MUST contain the required members of Table 6-1 ... and MUST NOT contain any other
    member ... A receiver MUST refuse a header that breaks this with SCHEMA_VIOLATION (1003) naming
    the member in field (header.<member>)."""
    w = await ctx.world()
    base = ctx.sign_as(w, "offer", ctx.unique(), data.GUIZHOU)["header"]
    cases: list[tuple[dict[str, Any], str]] = [
        ({k: v for k, v in base.items() if k != "exp"}, "header.exp"),
        ({k: v for k, v in base.items() if k != "serial"}, "header.serial"),
        ({**base, "extra": 1}, "header.extra"),
        ({**base, "serial": 0}, "header.serial"),
        ({**base, "serial": "1"}, "header.serial"),
        ({**base, "iat": str(base["iat"])}, "header.iat"),
        ({**base, "nbf": -5}, "header.nbf"),
        ({**base, "ttl": 604_801}, "header.ttl"),
        ({**base, "ttl": -1}, "header.ttl"),
        ({**base, "nonce": "short"}, "header.nonce"),
        ({**base, "typ": "cid.Record.offer"}, "header.typ"),
    ]
    for hdr, member in cases:
        await ctx.refused(sign(hdr, data.GUIZHOU, [w.anchor]), 1003, field=member)


@s.case(
    10,
    "sub must parse, and be written in canonical form",
    "REQ-SIG-022",
    "REQ-SIG-023",
    "REQ-ID-017",
    writes=True,
)
async def sub_canonical(ctx: RegistryContext) -> None:
    """A receiver MUST refuse a header whose sub or aud parses but differs from its canonical text,
    with SCHEMA_VIOLATION (1003), rule canonical_identifier ... For a sub or aud that does not
    parse as an identifier, detail.rule is the reason token of §2."""
    w = await ctx.world()
    now = await ctx.now()
    name = w.name(ctx.unique())
    uname = w.name("池2")
    for sub in (
        name.upper(),
        f"cid:{name}",
        name.replace(".", "。"),
        Identifier.parse(uname).to_ascii(),
    ):
        hdr = header("cid.record.offer", sub, serial=1, nbf=now - 60, exp=now + DAY)
        await ctx.refused(
            sign(hdr, data.GUIZHOU, [w.anchor]),
            1003,
            field="header.sub",
            rule="canonical_identifier",
        )
    for sub, reason in ((f"a..{name}", "EMPTY_LABEL"), (f"-x.{name}", "INVALID_LABEL")):
        hdr = header("cid.record.offer", sub, serial=1, nbf=now - 60, exp=now + DAY)
        await ctx.refused(
            sign(hdr, data.GUIZHOU, [w.anchor]), 1003, field="header.sub", rule=reason
        )


@s.case(11, "the validity window is non-empty and at most 400 days", "REQ-SIG-033", writes=True)
async def window_shape(ctx: RegistryContext) -> None:
    """exp MUST be greater than nbf (otherwise SCHEMA_VIOLATION, rule window), and exp − nbf MUST
    NOT exceed 34,560,000 seconds (otherwise SCHEMA_VIOLATION, rule max_validity)."""
    w = await ctx.world()
    now = await ctx.now()
    await ctx.refused(
        ctx.sign_as(w, "offer", ctx.unique(), data.GUIZHOU, nbf=now - 60, exp=now - 60),
        1003,
        rule="window",
    )
    await ctx.refused(
        ctx.sign_as(
            w, "offer", ctx.unique(), data.GUIZHOU, nbf=now - 60, exp=now - 60 + 34_560_001
        ),
        1003,
        rule="max_validity",
    )
    # exactly 400 days is within bounds
    await ctx.accepted(
        ctx.sign_as(w, "offer", ctx.unique(), data.GUIZHOU, nbf=now - 60, exp=now - 60 + 34_560_000)
    )


@s.case(
    12,
    "expired and not-yet-valid records are refused; the skew is at most 300 s",
    "REQ-SIG-031",
    "REQ-SEC-015",
    writes=True,
)
async def windows(ctx: RegistryContext) -> None:
    """A verifier with current time now MUST refuse an envelope with EXPIRED (2004) if now ≥ exp,
    and otherwise with NOT_YET_VALID (2005) if now + skew < nbf or now + skew < iat ... a verifier
    MAY use a smaller skew and MUST NOT use a larger one."""
    w = await ctx.world()
    now = await ctx.now()
    await ctx.refused(
        ctx.sign_as(w, "offer", ctx.unique(), data.GUIZHOU, nbf=now - 3600, exp=now - 5), 2004
    )
    await ctx.refused(
        ctx.sign_as(w, "offer", ctx.unique(), data.GUIZHOU, nbf=now + 400, exp=now + DAY), 2005
    )
    await ctx.refused(
        ctx.sign_as(
            w, "offer", ctx.unique(), data.GUIZHOU, nbf=now - 60, iat=now + 400, exp=now + DAY
        ),
        2005,
    )
    await ctx.accepted(
        ctx.sign_as(w, "offer", ctx.unique(), data.GUIZHOU, nbf=now - 60, exp=now + 30)
    )


@s.case(
    13,
    "the signed message is the canonical JSON of the decoded values, bound to typ",
    "REQ-SIG-002",
    "REQ-SIG-003",
    writes=True,
)
async def signing_input(ctx: RegistryContext) -> None:
    """The signed message of an envelope MUST be the canonical JSON of the map {"body", "header"},
    and the signing input ... MUST be the pre-authentication encoding PAE(typ, kid, msg)."""
    w = await ctx.world()
    env = ctx.sign_as(w, "offer", ctx.unique(), data.GUIZHOU)
    kid = w.anchor.kid
    msg = message_of(env["header"], env["body"])
    spaced = msg.replace(b",", b", ")
    variants = [
        pae("cid.record.offer", kid, spaced),  # not the canonical message
        msg,  # no PAE
        b"cid-sig-v1 " + msg,
        pae("cid.record.zone", kid, msg),  # another typ
        pae("cid.record.offer", kid, msg).replace(b"cid-sig-v1", b"cid-sig-v2"),
    ]
    for data_to_sign in variants:
        bad = {**env, "sigs": [{"kid": kid, "sig": b64url_encode(w.anchor.sign(data_to_sign))}]}
        await ctx.refused(bad, 2001)
    swapped = {**env, "header": {**env["header"], "typ": "cid.record.zone"}}
    await ctx.refused(swapped, (2001, 1003))


@s.case(
    14,
    "a typ that is not a record is refused before its signature is checked",
    "REQ-SIG-003",
    "REQ-SIG-026",
    "REQ-GEN-011",
    "REQ-REC-001",
    writes=True,
)
async def typ_context(ctx: RegistryContext) -> None:
    """A verifier ... MUST refuse an envelope with any other typ with SCHEMA_VIOLATION (1003), rule
    typ, before checking signatures."""
    w = await ctx.world()
    for typ in (
        "cid.record.bogus",
        "cid.neg.quote",
        "cid.feed.head",
        "cid.inv.receipt",
        "cid.voucher",
    ):
        env = ctx.sign_as(w, "offer", ctx.unique(), data.GUIZHOU)
        env["header"]["typ"] = typ
        bad_sig = {**env, "sigs": [{"kid": w.anchor.kid, "sig": b64url_encode(bytes(64))}]}
        await ctx.refused(bad_sig, 1003, rule="typ")
        await ctx.refused(_resign(env, w.anchor), 1003, rule="typ")


@s.case(
    15,
    "signatures are checked before the body is parsed",
    "REQ-SIG-021",
    "REQ-SIG-030",
    writes=True,
)
async def signature_before_body(ctx: RegistryContext) -> None:
    """... MUST verify the signatures before it parses the body into its model, so that only
    authenticated values reach the model layer."""
    w = await ctx.world()
    env = ctx.sign_as(w, "offer", ctx.unique(), data.offer(**{"class": "quantum"}))
    env["sigs"][0]["sig"] = b64url_encode(bytes(64))
    await ctx.refused(env, 2001)


@s.case(
    16,
    "signatures cover the values as decoded, not a re-serialisation",
    "REQ-SIG-021",
    "REQ-SIG-001",
    "REQ-REG-007",
    writes=True,
)
async def values_as_decoded(ctx: RegistryContext) -> None:
    """A verifier MUST compute the signing input from the header and body values exactly as
    decoded, never from a re-serialisation of parsed models (which may normalise URLs, decimals or
    defaults)."""
    w = await ctx.world()
    rel = ctx.unique()
    body = {
        "display_name": "as decoded",
        "service_keys": [key_value(w.service)],
        "endpoints": {"negotiate": "https://Provider.EXAMPLE:443/cid/./negotiate"},
    }
    child, key = await _delegated(ctx, w)
    del rel
    zone = ctx.sign_as(w, "zone", child, body, key=key)
    await ctx.accepted(zone)
    got = (await ctx.resolve(w.name(child), query={"types": "zone"})).value()["records"]
    check_equal(got, [zone], "the zone as submitted (no default added, URL untouched)")


@s.case(
    17,
    "a parent's keys do not sign inside a delegated child; a child's keys not outside",
    "REQ-SIG-045",
    "REQ-SIG-048",
    "REQ-ID-025",
    "REQ-SEC-003",
    writes=True,
)
async def zone_cut(ctx: RegistryContext) -> None:
    """once a namespace is delegated, the keys of the namespaces above it MUST NOT be accepted for
    records within it, except for the delegation record itself."""
    w = await ctx.world()
    inside = ctx.sign_as(w, "offer", f"x{ctx.unique()}.d", data.GUIZHOU)  # signed by the apex key
    await ctx.refused(inside, 2003)
    outside = ctx.sign_as(w, "offer", ctx.unique(), data.GUIZHOU, key=w.child_key)
    await ctx.refused(outside, 2003)
    await ctx.accepted(ctx.sign_as(w, "offer", f"y{ctx.unique()}.d", data.GUIZHOU, key=w.child_key))


@s.case(
    18,
    "a namespace's keys never sign a name that merely shares a string prefix",
    "REQ-SIG-045",
    "REQ-ID-023",
    "REQ-SEC-003",
    writes=True,
)
async def prefix_hijack(ctx: RegistryContext) -> None:
    """The namespace that governs a name X MUST be determined by the zone cut ... compared
    label-wise as [REQ-ID-023] requires (ctyunx is not within ctyun)."""
    w = await ctx.world()
    rel, key = await _delegated(ctx, w)
    sibling, other = await _delegated(ctx, w)
    del other
    await ctx.refused(ctx.sign_as(w, "offer", f"pool.{rel}x", data.GUIZHOU, key=key), (2003, 2002))
    await ctx.refused(ctx.sign_as(w, "offer", f"pool.{sibling}", data.GUIZHOU, key=key), 2003)
    await ctx.accepted(ctx.sign_as(w, "offer", f"pool.{rel}", data.GUIZHOU, key=key))


@s.case(
    19,
    "a service key does not sign records (KEY_UNKNOWN); an unknown key neither",
    "REQ-REC-013",
    "REQ-SIG-048",
    writes=True,
)
async def service_key(ctx: RegistryContext) -> None:
    """Service keys confer no authority over records: a verifier MUST NOT accept a record signature
    because the key is a service key."""
    w = await ctx.world()
    await ctx.refused(ctx.sign_as(w, "offer", ctx.unique(), data.GUIZHOU, key=w.service), 2002)
    await ctx.refused(
        ctx.sign_as(w, "offer", ctx.unique(), data.GUIZHOU, key=SigningKey.generate()), 2002
    )


@s.case(
    20,
    "delegations are signed by the parent's governing keys; the root is not delegated",
    "REQ-SIG-041",
    "REQ-ID-026",
    writes=True,
)
async def delegation_signer(ctx: RegistryContext) -> None:
    """A delegation record at name N MUST be signed by a current signing key of the namespace that
    governs the parent of N ... a delegation at `.` MUST be refused."""
    w = await ctx.world()
    # inside the already delegated child, the apex may not delegate further
    await ctx.refused(
        ctx.sign_as(
            w, "delegation", f"z{ctx.unique()}.d", {"keys": [key_value(SigningKey.generate())]}
        ),
        2003,
    )
    # the child may delegate within itself
    await ctx.accepted(
        ctx.sign_as(
            w,
            "delegation",
            f"z{ctx.unique()}.d",
            {"keys": [key_value(SigningKey.generate())]},
            key=w.child_key,
        )
    )
    # the child may not delegate a sibling
    await ctx.refused(
        ctx.sign_as(
            w,
            "delegation",
            ctx.unique(),
            {"keys": [key_value(SigningKey.generate())]},
            key=w.child_key,
        ),
        2003,
    )
    root_key = ctx.options.root_key
    now = await ctx.now()
    for signer in [k for k in (root_key, w.anchor) if k is not None]:
        env = sign(
            header("cid.record.delegation", ".", serial=2**40, nbf=now - 60, exp=now + DAY),
            {"keys": [key_value(SigningKey.generate())]},
            [signer],
        )
        reply = await ctx.submit(env)
        check(reply.status in (400, 403, 409, 422), f"a delegation of the root: {reply.brief()}")


@s.case(
    21,
    "key rotations: only at delegated names, signed by an anchor key; they replace signers",
    "REQ-SIG-042",
    "REQ-SIG-043",
    writes=True,
)
async def key_rotation(ctx: RegistryContext) -> None:
    """A key rotation record at name N MUST be signed by an anchor key of N that has not been
    revoked, and N MUST be a delegated namespace or the root; a key rotation at any other name MUST
    be refused with CHAIN_BROKEN (2009). Once verified, the keys it lists are the signing keys."""
    w = await ctx.world()
    await ctx.refused(
        ctx.sign_as(
            w, "keyrotation", f"nd{ctx.unique()}", {"keys": [key_value(SigningKey.generate())]}
        ),
        2009,
    )
    rel, anchor = await _delegated(ctx, w)
    k2 = SigningKey.generate()
    await ctx.accepted(ctx.sign_as(w, "offer", f"a.{rel}", data.GUIZHOU, key=anchor))
    await ctx.accepted(ctx.sign_as(w, "keyrotation", rel, {"keys": [key_value(k2)]}, key=anchor))
    await ctx.refused(ctx.sign_as(w, "offer", f"b.{rel}", data.GUIZHOU, key=anchor), 2003)
    await ctx.accepted(ctx.sign_as(w, "offer", f"b.{rel}", data.GUIZHOU, key=k2))
    # a signing key is not an anchor key: it cannot sign rotations
    await ctx.refused(
        ctx.sign_as(w, "keyrotation", rel, {"keys": [key_value(k2)]}, key=k2, serial=2),
        (2003, 2002),
    )


@s.case(
    22,
    "a revoked key is refused at once, and its records are discarded",
    "REQ-SIG-044",
    "REQ-SIG-048",
    writes=True,
)
async def revocation(ctx: RegistryContext) -> None:
    """A key whose key id the rotation lists in revoked is revoked: from the moment the verifier
    applies the rotation, it MUST refuse every signature by that key in that namespace, and MUST
    discard any record it accepted earlier that carries such a signature."""
    w = await ctx.world()
    rel, anchor = await _delegated(ctx, w)
    k2, k3 = SigningKey.generate(), SigningKey.generate()
    await ctx.accepted(ctx.sign_as(w, "keyrotation", rel, {"keys": [key_value(k2)]}, key=anchor))
    await ctx.accepted(ctx.sign_as(w, "offer", f"a.{rel}", data.GUIZHOU, key=k2))
    await ctx.accepted(
        ctx.sign_as(
            w,
            "keyrotation",
            rel,
            {"keys": [key_value(k3)], "revoked": [k2.kid]},
            key=anchor,
            serial=2,
        )
    )
    await ctx.refused(ctx.sign_as(w, "offer", f"b.{rel}", data.GUIZHOU, key=k2), 2008)
    ctx.expect_error(await ctx.resolve(w.name(f"a.{rel}")), 3001)
    await ctx.accepted(ctx.sign_as(w, "offer", f"c.{rel}", data.GUIZHOU, key=k3))


@s.case(
    23,
    "revocation is permanent: re-listing the key does not restore it",
    "REQ-SIG-047",
    writes=True,
)
async def revocation_permanent(ctx: RegistryContext) -> None:
    """a key id once revoked in namespace N stays refused in N even if a later delegation or key
    rotation of N lists the key again, and even after a tombstone deletes N's key rotation."""
    w = await ctx.world()
    rel, anchor = await _delegated(ctx, w)
    k2, k3 = SigningKey.generate(), SigningKey.generate()
    await ctx.accepted(
        ctx.sign_as(
            w, "keyrotation", rel, {"keys": [key_value(k3)], "revoked": [k2.kid]}, key=anchor
        )
    )
    await ctx.accepted(
        ctx.sign_as(
            w, "keyrotation", rel, {"keys": [key_value(k2), key_value(k3)]}, key=anchor, serial=2
        )
    )
    await ctx.refused(ctx.sign_as(w, "offer", f"a.{rel}", data.GUIZHOU, key=k2), 2008)
    await ctx.accepted(
        ctx.sign_as(w, "tombstone", rel, {"target": "keyrotation"}, key=anchor, serial=3),
        status=(200,),
        what="tombstone",
    )
    # the anchor keys sign again ([REQ-SIG-050] 4); the revoked key stays refused
    await ctx.accepted(ctx.sign_as(w, "offer", f"b.{rel}", data.GUIZHOU, key=anchor))
    await ctx.accepted(
        ctx.sign_as(w, "delegation", rel, {"keys": [key_value(anchor), key_value(k2)]}, serial=2)
    )
    await ctx.refused(ctx.sign_as(w, "offer", f"c.{rel}", data.GUIZHOU, key=k2), 2008)


@s.case(
    24,
    "authority lasts as long as the delegation: after it expires, CHAIN_BROKEN",
    "REQ-SIG-049",
    "REQ-SEC-002",
    writes=True,
    tags=["late"],
)
async def authority_expires(ctx: RegistryContext) -> None:
    """When verifying an envelope at time now, every delegation and key rotation on the path from
    the trust anchor to the governing namespace MUST itself be within its validity window at now;
    otherwise the verifier MUST refuse the envelope with CHAIN_BROKEN (2009)."""
    w = await ctx.world()
    await ctx.wait_for_expiry(w)
    await ctx.refused(ctx.sign_as(w, "offer", "b.lapse", data.GUIZHOU, key=w.lapse_key), 2009)
    reply = await ctx.resolve(w.name("a.lapse"))
    check(reply.status == 404, f"a record whose authority lapsed is still served: {reply.brief()}")


@s.case(
    25,
    "deleting a delegation removes the namespace and what is delegated within it",
    "REQ-SIG-050",
    "REQ-REC-051",
    writes=True,
)
async def delegation_deleted(ctx: RegistryContext) -> None:
    """a tombstone of N's delegation removes N and every delegated namespace within N; the serials
    seen for the removed identities are kept."""
    w = await ctx.world()
    rel, key = await _delegated(ctx, w)
    inner = SigningKey.generate()
    await ctx.accepted(
        ctx.sign_as(w, "delegation", f"in.{rel}", {"keys": [key_value(inner)]}, key=key)
    )
    await ctx.accepted(ctx.sign_as(w, "offer", f"a.{rel}", data.GUIZHOU, key=key))
    await ctx.accepted(
        ctx.sign_as(w, "tombstone", rel, {"target": "delegation"}, serial=2),
        status=(200,),
        what="tombstone",
    )
    await ctx.refused(ctx.sign_as(w, "offer", f"b.{rel}", data.GUIZHOU, key=key), (2002, 2003))
    await ctx.refused(ctx.sign_as(w, "offer", f"b.in.{rel}", data.GUIZHOU, key=inner), (2002, 2003))
    ctx.expect_error(await ctx.resolve(w.name(f"a.{rel}")), 3001)
    # the parent governs the name again, and the old delegation cannot come back
    await ctx.refused(ctx.sign_as(w, "delegation", rel, {"keys": [key_value(key)]}, serial=1), 2006)


@s.case(
    26,
    "a re-delegation keeps a rotation only if its signer is still an anchor key",
    "REQ-SIG-050",
    writes=True,
)
async def redelegation(ctx: RegistryContext) -> None:
    """a delegation of N sets N's anchor keys and registries; a key rotation of N stays in force
    only if its signer is among the new anchor keys (otherwise the anchor keys are the signing keys
    until a new rotation is verified)."""
    w = await ctx.world()
    rel, anchor = await _delegated(ctx, w)
    k2, new_anchor = SigningKey.generate(), SigningKey.generate()
    await ctx.accepted(ctx.sign_as(w, "keyrotation", rel, {"keys": [key_value(k2)]}, key=anchor))
    await ctx.accepted(
        ctx.sign_as(
            w, "delegation", rel, {"keys": [key_value(anchor), key_value(new_anchor)]}, serial=2
        )
    )
    await ctx.accepted(ctx.sign_as(w, "offer", f"a.{rel}", data.GUIZHOU, key=k2))
    await ctx.accepted(
        ctx.sign_as(w, "delegation", rel, {"keys": [key_value(new_anchor)]}, serial=3)
    )
    await ctx.refused(ctx.sign_as(w, "offer", f"b.{rel}", data.GUIZHOU, key=k2), (2002, 2003))
    await ctx.accepted(ctx.sign_as(w, "offer", f"c.{rel}", data.GUIZHOU, key=new_anchor))


@s.case(
    27,
    "verification steps in order: structure, keys, signature, window, serial, body",
    "REQ-SIG-030",
    "REQ-SEC-010",
    writes=True,
    clause=Level.SHOULD,
)
async def step_order(ctx: RegistryContext) -> None:
    """When several checks fail, the error reported SHOULD be that of the earliest step."""
    w = await ctx.world()
    now = await ctx.now()
    rel = ctx.unique()
    await ctx.accepted(ctx.sign_as(w, "offer", rel, data.GUIZHOU, serial=5))
    stranger = SigningKey.generate()
    # keys (2) before window (4)
    await ctx.refused(
        ctx.sign_as(
            w, "offer", ctx.unique(), data.GUIZHOU, key=stranger, nbf=now - 3600, exp=now - 10
        ),
        2002,
    )
    # signature (3) before window (4)
    expired = ctx.sign_as(w, "offer", ctx.unique(), data.GUIZHOU, nbf=now - 3600, exp=now - 10)
    expired["sigs"][0]["sig"] = b64url_encode(bytes(64))
    await ctx.refused(expired, 2001)
    # window (4) before serial (5)
    await ctx.refused(
        ctx.sign_as(w, "offer", rel, data.GUIZHOU, serial=4, nbf=now - 3600, exp=now - 10), 2004
    )
    # (a registry checks the body before the serial: [REQ-REG-011] puts the serial rule in the
    # commit step, after the verification of §6.5 with its body step)
    # structure (1) before signature (3)
    bad = ctx.sign_as(w, "offer", ctx.unique(), data.GUIZHOU)
    bad["header"]["extra"] = 1
    bad["sigs"][0]["sig"] = b64url_encode(bytes(64))
    await ctx.refused(bad, 1003)


@s.case(
    28,
    "a changed version needs a higher serial; the same serial is a rollback",
    "REQ-SIG-032",
    "REQ-REC-005",
    writes=True,
)
async def same_serial(ctx: RegistryContext) -> None:
    """A verifier that has accepted a version of an identity with serial S MUST refuse, with
    SERIAL_ROLLBACK (2006), a version of that identity with a serial below S, or with serial S
    unless it is the very envelope already accepted."""
    w = await ctx.world()
    rel = ctx.unique()
    await ctx.accepted(ctx.sign_as(w, "offer", rel, data.GUIZHOU, serial=7))
    reply = await ctx.refused(
        ctx.sign_as(w, "offer", rel, data.offer(title="changed"), serial=7), 2006
    )
    check(reply.status == 409, f"{reply.brief()}: SERIAL_ROLLBACK is HTTP 409")
    await ctx.refused(ctx.sign_as(w, "offer", rel, data.GUIZHOU, serial=6), 2006)
    # re-signing the same content (a new signature is a different envelope for the record rule)
    await ctx.accepted(ctx.sign_as(w, "offer", rel, data.GUIZHOU, serial=8))


@s.case(
    29,
    "search and list never answer offers signed by a key revoked since",
    "REQ-SIG-044",
    "REQ-SEC-002",
    "REQ-QRY-021",
    writes=True,
)
async def revoked_not_searched(ctx: RegistryContext) -> None:
    """[A verifier] MUST discard any record it accepted earlier that carries such a signature. (A
    responder MUST consider as candidates only offer records that it has verified.)"""
    w = await ctx.world()
    rel, anchor = await _delegated(ctx, w)
    k2, k3 = SigningKey.generate(), SigningKey.generate()
    await ctx.accepted(ctx.sign_as(w, "keyrotation", rel, {"keys": [key_value(k2)]}, key=anchor))
    await ctx.accepted(ctx.sign_as(w, "offer", f"a.{rel}", data.GUIZHOU, key=k2))
    found = (await ctx.search({"within": w.name(rel)})).value()["results"]
    check_equal([r["name"] for r in found], [w.name(f"a.{rel}")], "search before the revocation")
    await ctx.accepted(
        ctx.sign_as(
            w,
            "keyrotation",
            rel,
            {"keys": [key_value(k3)], "revoked": [k2.kid]},
            key=anchor,
            serial=2,
        )
    )
    found = (await ctx.search({"within": w.name(rel)})).value()["results"]
    check(
        found == [],
        f"search still finds a record signed by a revoked key: {[r['name'] for r in found]}",
    )
    items = (await ctx.get(f"/v1/namespaces/{w.name(rel)}")).value()["items"]
    check(
        w.name(f"a.{rel}") not in [i["name"] for i in items],
        "list still shows a record signed by a revoked key",
    )


@s.case(
    30,
    "search never answers offers of a namespace whose delegation was deleted",
    "REQ-SIG-050",
    "REQ-SEC-002",
    "REQ-QRY-021",
    writes=True,
)
async def deleted_namespace_not_searched(ctx: RegistryContext) -> None:
    """a tombstone of N's delegation removes N and every delegated namespace within N. (A responder
    MUST consider as candidates only offer records that it has verified.)"""
    w = await ctx.world()
    rel, key = await _delegated(ctx, w)
    await ctx.accepted(ctx.sign_as(w, "offer", f"a.{rel}", data.GUIZHOU, key=key))
    await ctx.accepted(
        ctx.sign_as(w, "tombstone", rel, {"target": "delegation"}, serial=2),
        status=(200,),
        what="tombstone",
    )
    found = (await ctx.search({"within": w.name(rel)})).value()["results"]
    check(
        found == [],
        f"search still finds an offer of a deleted namespace: {[r['name'] for r in found]}",
    )


@s.case(
    31,
    "search never answers offers whose authority has lapsed",
    "REQ-SIG-049",
    "REQ-SEC-002",
    "REQ-QRY-021",
    writes=True,
    tags=["late"],
)
async def lapsed_not_searched(ctx: RegistryContext) -> None:
    """every delegation and key rotation on the path from the trust anchor to the governing
    namespace MUST itself be within its validity window at now. (A responder MUST consider as
    candidates only offer records that it has verified.)"""
    w = await ctx.world()
    check(w.lapse_searchable, "search did not find the offer while its authority was in force")
    await ctx.wait_for_expiry(w)
    found = (await ctx.search({"within": w.name("lapse")})).value()["results"]
    check(
        found == [], f"search finds an offer whose delegation expired: {[r['name'] for r in found]}"
    )
