"""Build signed envelopes exactly as the suite wants them, valid or deliberately not.

The suite signs with the library's pure primitives (:func:`cid.signing.pae`,
:func:`cid.codec.encode_json`) over header and body *values*, so that it can
sign objects the reference models would never produce (an extra header member,
a non-canonical ``sub``, a float-free but out-of-range body) and still present
a valid signature: the target must then refuse them for the right reason, at
the right step of [REQ-SIG-030].
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from cid import codec
from cid.signing import SigningKey, b64url_encode, pae

__all__ = [
    "digest_of",
    "header",
    "key_value",
    "merge",
    "message_of",
    "sign",
    "signed",
]


def key_value(key: SigningKey) -> dict[str, str]:
    """A public key as a cid value ([REQ-SIG-005])."""
    return {"alg": "ed25519", "pub": key.public_key.pub}


def header(
    typ: str,
    sub: str,
    *,
    serial: int,
    nbf: int,
    exp: int,
    iat: int | None = None,
    ttl: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A header value; ``extra`` members are added as given (also invalid ones)."""
    value: dict[str, Any] = {
        "alg": "ed25519",
        "typ": typ,
        "sub": sub,
        "serial": serial,
        "iat": nbf if iat is None else iat,
        "nbf": nbf,
        "exp": exp,
    }
    if ttl is not None:
        value["ttl"] = ttl
    value.update(extra)
    return value


def message_of(header_value: Mapping[str, Any], body_value: Mapping[str, Any]) -> bytes:
    """The signed message ([REQ-SIG-002]): canonical JSON of ``{"body", "header"}``."""
    return codec.encode_json({"body": dict(body_value), "header": dict(header_value)})


def digest_of(envelope: Mapping[str, Any]) -> str:
    """The envelope digest ([REQ-SIG-037]): base64url SHA-256 of the signed message."""
    return b64url_encode(hashlib.sha256(message_of(envelope["header"], envelope["body"])).digest())


def sign(
    header_value: Mapping[str, Any], body_value: Mapping[str, Any], keys: Iterable[SigningKey]
) -> dict[str, Any]:
    """An envelope value signed by each of ``keys`` over exactly these values."""
    msg = message_of(header_value, body_value)
    typ = str(header_value.get("typ", ""))
    sigs = [{"kid": k.kid, "sig": b64url_encode(k.sign(pae(typ, k.kid, msg)))} for k in keys]
    return {"header": dict(header_value), "body": dict(body_value), "sigs": sigs}


def signed(
    rtype: str,
    name: str,
    body: Mapping[str, Any],
    key: SigningKey,
    *,
    serial: int,
    nbf: int,
    exp: int,
    ttl: int | None = 300,
    **extra: Any,
) -> dict[str, Any]:
    """A record envelope of type ``rtype`` (``offer``, ``zone``, …) signed by ``key``."""
    hdr = header(f"cid.record.{rtype}", name, serial=serial, nbf=nbf, exp=exp, ttl=ttl, **extra)
    return sign(hdr, body, [key])


def merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with ``changes`` applied: nested maps merge, ``...`` deletes."""
    out = copy.deepcopy(dict(base))
    for key, value in changes.items():
        if value is ...:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
