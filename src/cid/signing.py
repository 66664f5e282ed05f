"""Ed25519 keys, key identifiers and the signing input of spec section 6.

Only canonical bytes are signed ([REQ-SIG-001]): the signing input of one
signature is the pre-authentication encoding (PAE, as in DSSE)::

    PAE = "cid-sig-v1" SP LEN(typ) SP typ SP LEN(kid) SP kid SP LEN(msg) SP msg
    msg = canonical JSON of {"body": body, "header": header}

where ``LEN`` is the ASCII decimal byte length. The ``typ`` (the
domain-separation tag) and the key id are bound into the signed bytes, so a
signature made for one message type or key can never verify as another
([REQ-SIG-003]).

This module is pure: no I/O, no clock. Policy (which key may sign which name,
validity windows, serials) lives in :mod:`cid.envelope` and :mod:`cid.trust`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
from typing import Annotated, Any, Final, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from pydantic import AfterValidator, ConfigDict

from .errors import AlgorithmUnsupportedError, DecodeError, SignatureInvalidError
from .model import WireModel

__all__ = [
    "ALGORITHMS",
    "PublicKey",
    "SigningKey",
    "b64url_decode",
    "b64url_encode",
    "key_id",
    "pae",
    "verify_raw",
]

ALGORITHMS: Final = ("ed25519",)
_SIG_CONTEXT: Final = b"cid-sig-v1"
_KID_CONTEXT: Final = b"cid-kid-v1\x00"


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (RFC 4648 section 5), the only binary-to-text form in cid."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, *, length: int | None = None, field: str | None = None) -> bytes:
    """Strict inverse of :func:`b64url_encode` ([REQ-ENC-005]): no padding, no other alphabet.

    Raises:
        DecodeError: ``text`` is not canonical unpadded base64url, or has the wrong length.
    """
    if not isinstance(text, str) or not text.isascii() or "=" in text:
        raise DecodeError("not unpadded base64url", field=field, detail={"rule": "base64url"})
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as e:
        raise DecodeError("not base64url", field=field, detail={"rule": "base64url"}) from e
    if b64url_encode(raw) != text:
        # non-zero trailing bits or characters outside the url-safe alphabet
        raise DecodeError("non-canonical base64url", field=field, detail={"rule": "base64url"})
    if length is not None and len(raw) != length:
        raise DecodeError(
            f"expected {length} bytes, got {len(raw)}", field=field, detail={"rule": "length"}
        )
    return raw


def key_id(alg: str, public: bytes) -> str:
    """Key id: base64url(SHA-256("cid-kid-v1" 0 alg 0 pub)[:16]) ([REQ-SIG-010])."""
    digest = hashlib.sha256(_KID_CONTEXT + alg.encode("ascii") + b"\x00" + public).digest()
    return b64url_encode(digest[:16])


def pae(typ: str, kid: str, message: bytes) -> bytes:
    """The pre-authentication encoding that is signed ([REQ-SIG-002])."""
    t = typ.encode("utf-8")
    k = kid.encode("utf-8")
    return b"".join(
        (
            _SIG_CONTEXT,
            b" %d " % len(t),
            t,
            b" %d " % len(k),
            k,
            b" %d " % len(message),
            message,
        )
    )


@functools.lru_cache(maxsize=8192)
def _public_key_object(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)


@functools.lru_cache(maxsize=8192)
def _key_from_text(pub: str) -> Ed25519PublicKey:
    return _public_key_object(b64url_decode(pub, length=32))


def verify_raw(public: bytes, signature: bytes, data: bytes) -> None:
    """Check an Ed25519 signature over ``data``.

    Raises:
        SignatureInvalidError: the signature does not verify.
    """
    try:
        _public_key_object(public).verify(signature, data)
    except InvalidSignature as e:
        raise SignatureInvalidError("signature does not verify") from e
    except ValueError as e:  # malformed key or signature length
        raise SignatureInvalidError(f"malformed key or signature: {e}") from e


def _check_pub(value: str) -> str:
    try:
        b64url_decode(value, length=32, field="pub")
    except DecodeError as e:
        raise ValueError(f"{e.message} [{e.detail.get('rule', 'base64url')}]") from e
    return value


class PublicKey(WireModel):
    """A public key as it appears in records: ``{"alg": "ed25519", "pub": <base64url>}``."""

    model_config = ConfigDict(strict=True)

    alg: Literal["ed25519"]
    pub: Annotated[str, AfterValidator(_check_pub)]

    @property
    def raw(self) -> bytes:
        return b64url_decode(self.pub, length=32)

    @property
    def kid(self) -> str:
        """The key id derived from this key ([REQ-SIG-010])."""
        return key_id(self.alg, self.raw)

    def verify(self, signature: bytes, data: bytes) -> None:
        """Verify ``signature`` over ``data`` or raise :class:`SignatureInvalidError`."""
        try:
            _key_from_text(self.pub).verify(signature, data)
        except InvalidSignature as e:
            raise SignatureInvalidError("signature does not verify") from e

    @classmethod
    def from_raw(cls, raw: bytes, alg: str = "ed25519") -> PublicKey:
        if alg not in ALGORITHMS:
            raise AlgorithmUnsupportedError(f"algorithm {alg!r} is not supported")
        return cls(alg="ed25519", pub=b64url_encode(raw))


class SigningKey:
    """An Ed25519 private key. Never serialised into any cid message."""

    __slots__ = ("_private", "_public_raw", "alg", "kid", "public_key")

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self._public_raw = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.alg = "ed25519"
        self.kid = key_id(self.alg, self._public_raw)
        self.public_key = PublicKey.from_raw(self._public_raw)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """The key for a 32-byte RFC 8032 seed (used by the test vectors)."""
        if len(seed) != 32:
            raise DecodeError("an Ed25519 seed is 32 bytes", detail={"rule": "length"})
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def seed(self) -> bytes:
        """The 32-byte seed, for key files."""
        return self._private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    def to_file_value(self) -> dict[str, Any]:
        """A key file's content: the seed in base64url plus the public half for reference."""
        return {
            "alg": self.alg,
            "kid": self.kid,
            "seed": b64url_encode(self.seed()),
            "pub": self.public_key.pub,
        }

    @classmethod
    def from_file_value(cls, value: object) -> SigningKey:
        if not isinstance(value, dict) or value.get("alg") != "ed25519":
            raise DecodeError("not an ed25519 key file", detail={"rule": "key_file"})
        key = cls.from_seed(b64url_decode(value.get("seed", ""), length=32, field="seed"))
        if "pub" in value and value["pub"] != key.public_key.pub:
            raise DecodeError("key file public half does not match its seed", field="pub")
        return key

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r})"
