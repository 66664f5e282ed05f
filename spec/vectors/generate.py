"""Generate the language-neutral test vectors in this folder (``make vectors``).

Everything here is deterministic: the keys are the RFC 8032 test keys, Ed25519
signatures are deterministic, and "now" is fixed. The test suite rebuilds the
vectors in memory and fails when the checked-in files drift.

Files:
* ``codec.json``: data-model values with their canonical JSON and msgpack bytes,
  and byte strings every decoder must refuse (with the error name);
* ``signatures.json``: the trust anchor, a delegation chain, signed records in
  both encodings with their signing input, and tampered or out-of-window
  records with the error a verifier must raise.

``identifiers.json`` is produced by ``gen_identifiers.py``.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

from cid import examples as ex
from cid.codec import encode_json, encode_msgpack
from cid.envelope import seal, sign_record
from cid.record import KeyRotationBody, TombstoneBody
from cid.signing import SigningKey, b64url_encode

HERE = Path(__file__).resolve().parent
NOW = ex.EPOCH + 60


def _hex(data: bytes) -> str:
    return data.hex()


def codec_vectors() -> dict[str, Any]:
    values: list[tuple[str, Any]] = [
        ("empty map", {}),
        ("key order by UTF-16 code units", {"b": 1, "a": 2, "aa": 3, "A": 4, "\u00e9": 5}),
        ("astral key sorts before private-use key", {"\ue000": 1, "\U0001f600": 2}),
        ("nested", {"z": [1, {"y": None, "x": True}], "a": {"c": False, "b": []}}),
        ("integers at the safe limits", {"max": 2**53 - 1, "min": -(2**53 - 1), "zero": 0}),
        ("integer encodings", [0, 127, 128, 255, 256, 65535, 65536, -1, -32, -33, -129]),
        ("string escapes", {"s": 'quote " backslash \\ tab \t newline \n nul \u0000 del \u007f'}),
        ("unicode text unescaped", {"city": "天津", "emoji": "\U0001f600", "ls": "\u2028"}),
        ("decimal strings", {"amount": "0.012", "share": "0.62", "big": "12345678901234567890"}),
    ]
    valid = []
    for note, value in values:
        j = encode_json(value)
        valid.append(
            {
                "note": note,
                "value": value,
                "json": j.decode("utf-8"),
                "json_hex": _hex(j),
                "msgpack_hex": _hex(encode_msgpack(value)),
            }
        )
    invalid = [
        {"encoding": "json", "hex": _hex(b'{"a":1.5}'), "error": "NON_CANONICAL", "note": "float"},
        {
            "encoding": "json",
            "hex": _hex(b'{"a":1e2}'),
            "error": "NON_CANONICAL",
            "note": "exponent",
        },
        {
            "encoding": "json",
            "hex": _hex(b'{"a":9007199254740992}'),
            "error": "NON_CANONICAL",
            "note": "integer above 2^53-1",
        },
        {
            "encoding": "json",
            "hex": _hex(b'{"a":1,"a":2}'),
            "error": "MALFORMED",
            "note": "duplicate key",
        },
        {
            "encoding": "json",
            "hex": _hex(b'{"a":"\\udc00"}'),
            "error": "MALFORMED",
            "note": "lone surrogate",
        },
        {
            "encoding": "json",
            "hex": _hex(b"\xc3\x28"),
            "error": "MALFORMED",
            "note": "invalid UTF-8",
        },
        {
            "encoding": "json",
            "hex": _hex(b"[" * 17 + b"]" * 17),
            "error": "LIMIT_EXCEEDED",
            "note": "nesting 17 > 16",
        },
        {"encoding": "json", "hex": _hex(b'{"a":'), "error": "MALFORMED", "note": "truncated"},
        {
            "encoding": "msgpack",
            "hex": _hex(b"\x81\xa1a\xcb?\xf8\x00\x00\x00\x00\x00\x00"),
            "error": "NON_CANONICAL",
            "note": "float64",
        },
        {
            "encoding": "msgpack",
            "hex": _hex(b"\x82\xa1a\x01\xa1a\x02"),
            "error": "MALFORMED",
            "note": "duplicate key",
        },
        {
            "encoding": "msgpack",
            "hex": _hex(b"\x81\x01\x02"),
            "error": "MALFORMED",
            "note": "integer map key",
        },
        {
            "encoding": "msgpack",
            "hex": _hex(b"\x81\xa1a\xc4\x01x"),
            "error": "MALFORMED",
            "note": "bin type is not in the data model",
        },
        {
            "encoding": "msgpack",
            "hex": _hex(b"\xd4\x01\x00"),
            "error": "MALFORMED",
            "note": "ext type is not in the data model",
        },
        {
            "encoding": "msgpack",
            "hex": _hex(b"\x91" * 17 + b"\xc0"),
            "error": "LIMIT_EXCEEDED",
            "note": "nesting 17 > 16",
        },
        {
            "encoding": "msgpack",
            "hex": _hex(b"\xdd\xff\xff\xff\xff"),
            "error": "LIMIT_EXCEEDED",
            "note": "array header of 2^32-1 items",
        },
        {
            "encoding": "msgpack",
            "hex": _hex(b"\x92\x01"),
            "error": "MALFORMED",
            "note": "truncated",
        },
        {
            "encoding": "msgpack",
            "hex": _hex(b"\xc1"),
            "error": "MALFORMED",
            "note": "reserved byte",
        },
    ]
    non_canonical = [
        {"encoding": "json", "hex": _hex(b'{"b":1,"a":2}'), "note": "keys out of order"},
        {"encoding": "json", "hex": _hex(b'{"a": 1}'), "note": "insignificant white space"},
        {"encoding": "json", "hex": _hex(b'{"a":"\\u0041"}'), "note": "unnecessary escape"},
        {
            "encoding": "msgpack",
            "hex": _hex(b"\x81\xa1a\xcd\x00\x01"),
            "note": "integer not in shortest form",
        },
    ]
    return {
        "version": 1,
        "limits": {
            "max_bytes": 262144,
            "max_depth": 16,
            "max_string": 8192,
            "max_array": 4096,
            "max_map": 512,
        },
        "valid": valid,
        "invalid": invalid,
        "non_canonical": non_canonical,
    }


def _key_entry(name: str, seed_hex: str) -> dict[str, Any]:
    key = SigningKey.from_seed(bytes.fromhex(seed_hex))
    return {"name": name, "seed_hex": seed_hex, "pub": key.public_key.pub, "kid": key.kid}


def _record_entry(note: str, env: Any) -> dict[str, Any]:
    kid = env.sigs[0].kid
    return {
        "note": note,
        "envelope": env.to_value(),
        "json": env.encode("json").decode("utf-8"),
        "msgpack_hex": _hex(env.encode("msgpack")),
        "message": env.message().decode("utf-8"),
        "signing_input_hex": _hex(env.signing_input(kid)),
        "digest": env.digest(),
    }


def signature_vectors() -> dict[str, Any]:
    root, provider, other = ex.root_key(), ex.provider_key(), ex.second_provider_key()
    window = {"nbf": ex.EPOCH, "exp": ex.EPOCH + 86_400}
    # authority records outlive the records they authorise (REQ-SIG-049)
    long_window = {"nbf": ex.EPOCH, "exp": ex.EPOCH + 30 * 86_400}
    deleg_ctyun = sign_record(
        ex.delegation(provider), name="ctyun", serial=1, key=root, **long_window
    )
    deleg_other = sign_record(
        ex.delegation(other), name="ctyunx", serial=1, key=root, **long_window
    )
    zone = sign_record(
        ex.zone(provider, "天翼云 Example"),
        name="ctyun",
        serial=1,
        key=provider,
        ttl=3600,
        **window,
    )
    tianjin = sign_record(
        ex.tianjin_offer(), name="tj-general.天津.ctyun", serial=7, key=provider, ttl=300, **window
    )
    guizhou = sign_record(
        ex.guizhou_offer(), name="gz-general.ctyun", serial=3, key=provider, ttl=300, **window
    )
    a100 = sign_record(
        ex.a100_offer(), name="a100.tj.ctyun", serial=1, key=provider, ttl=60, **window
    )
    rotation_key = SigningKey.from_seed(bytes(range(32)))
    rotation = sign_record(
        KeyRotationBody(keys=[rotation_key.public_key]),
        name="ctyunx",
        serial=1,
        key=other,
        **long_window,
    )
    rotated_offer = sign_record(
        ex.inner_mongolia_offer(),
        name="nm-general.ctyunx",
        serial=1,
        key=rotation_key,
        ttl=300,
        **window,
    )
    tomb = sign_record(
        TombstoneBody(target="offer"), name="old-pool.ctyun", serial=9, key=provider, **window
    )

    valid = [
        _record_entry("zone record with a Unicode display name", zone.envelope),
        _record_entry("Tianjin general offer under a Unicode label", tianjin.envelope),
        _record_entry("Guizhou general offer", guizhou.envelope),
        _record_entry("intelligent offer: 8 x A100 80GB", a100.envelope),
        _record_entry("offer signed by a rotated signing key", rotated_offer.envelope),
        _record_entry("tombstone", tomb.envelope),
    ]

    def tampered(note: str, base: Any, mutate: Any, error: str, **extra: Any) -> dict[str, Any]:
        value = copy.deepcopy(base.envelope.to_value())
        mutate(value)
        return {"note": note, "envelope": value, "error": error, **extra}

    def set_in(path: list[str], v: Any) -> Any:
        def f(value: Any) -> None:
            target = value
            for p in path[:-1]:
                target = target[p]
            target[path[-1]] = v

        return f

    hijack = sign_record(ex.guizhou_offer(), name="pool.ctyun", serial=1, key=other, **window)
    prefix = sign_record(ex.guizhou_offer(), name="pool.ctyunx", serial=1, key=provider, **window)
    future = sign_record(
        ex.guizhou_offer(),
        name="later.ctyun",
        serial=1,
        key=provider,
        nbf=NOW + 3600,
        exp=NOW + 7200,
    )
    quote_typ = seal(
        ex.guizhou_offer(),
        typ="cid.neg.quote",
        sub="gz-general.ctyun",
        serial=3,
        key=provider,
        **window,
    )
    invalid = [
        tampered(
            "one price digit changed",
            guizhou,
            set_in(["body", "price", "items", 0, "amount"], "4"),
            "SIGNATURE_INVALID",
        ),
        tampered(
            "units_free raised",
            guizhou,
            set_in(["body", "availability", "units_free"], 5001),
            "SIGNATURE_INVALID",
        ),
        tampered(
            "serial raised without re-signing",
            guizhou,
            set_in(["header", "serial"], 4),
            "SIGNATURE_INVALID",
        ),
        tampered(
            "typ swapped to zone",
            guizhou,
            set_in(["header", "typ"], "cid.record.zone"),
            "SIGNATURE_INVALID",
        ),
        tampered(
            "signature bytes flipped",
            guizhou,
            set_in(["sigs", 0, "sig"], b64url_encode(bytes(64))),
            "SIGNATURE_INVALID",
        ),
        tampered(
            "sub not canonical (upper case)",
            guizhou,
            set_in(["header", "sub"], "GZ-General.ctyun"),
            "SCHEMA_VIOLATION",
        ),
        tampered(
            "decimal rewritten in a non-canonical form",
            guizhou,
            set_in(["body", "energy", "renewable_share"], "0.620"),
            "SIGNATURE_INVALID",
        ),
        {
            "note": "signed by another provider's key (namespace hijack)",
            "envelope": hijack.envelope.to_value(),
            "error": "KEY_NOT_AUTHORISED",
        },
        {
            "note": "label-prefix hijack: ctyun's key for a name under ctyunx",
            "envelope": prefix.envelope.to_value(),
            "error": "KEY_NOT_AUTHORISED",
        },
        {
            "note": "expired at now",
            "envelope": guizhou.envelope.to_value(),
            "error": "EXPIRED",
            "now": ex.EPOCH + 86_400,
        },
        {
            "note": "not yet valid (beyond the 300 s skew)",
            "envelope": future.envelope.to_value(),
            "error": "NOT_YET_VALID",
        },
        {
            "note": "serial rollback: last accepted serial was 3",
            "envelope": guizhou.envelope.to_value(),
            "error": "SERIAL_ROLLBACK",
            "last_serial": 3,
        },
        {"note": "not a record typ", "envelope": quote_typ.to_value(), "error": "SCHEMA_VIOLATION"},
    ]
    return {
        "version": 1,
        "now": NOW,
        "skew_s": 300,
        "keys": [
            _key_entry("root (RFC 8032 TEST 1)", ex.RFC8032_SEEDS["test1"]),
            _key_entry("ctyun anchor (RFC 8032 TEST 2)", ex.RFC8032_SEEDS["test2"]),
            _key_entry("ctyunx anchor (RFC 8032 TEST 3)", ex.RFC8032_SEEDS["test3"]),
            _key_entry("ctyunx signing key (seed 00..1f)", bytes(range(32)).hex()),
        ],
        "trust": {
            "root_keys": [root.public_key.to_value()],
            "chain": [
                _record_entry("delegation of ctyun by the root", deleg_ctyun.envelope),
                _record_entry("delegation of ctyunx by the root", deleg_other.envelope),
                _record_entry("ctyunx rotates to a signing key", rotation.envelope),
            ],
        },
        "valid": valid,
        "invalid": invalid,
    }


def build() -> dict[str, dict[str, Any]]:
    return {"codec.json": codec_vectors(), "signatures.json": signature_vectors()}


def render(value: dict[str, Any]) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def main() -> int:
    for name, value in build().items():
        (HERE / name).write_text(render(value), encoding="utf-8")
        print(f"wrote {HERE / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
