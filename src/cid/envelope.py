"""The signed envelope (spec section 6): header + body + signatures.

Wire form ([REQ-SIG-020])::

    {"header": {"alg": "ed25519", "typ": "cid.record.offer", "sub": "pool.tianjin.ctyun",
                "serial": 7, "iat": 1763770000, "nbf": 1763770000, "exp": 1763856400,
                "ttl": 300},
     "body":   {...},
     "sigs":   [{"kid": "...", "sig": "<base64url of 64 bytes>"}]}

Each signature covers ``pae(typ, kid, canonical_json({"body": body, "header": header}))``
(:func:`cid.signing.pae`). Verification works on the header and body *as
received* (the decoded data-model values), never on a re-serialisation of the
parsed models, and it runs before the body is parsed ([REQ-SIG-021]): only
authenticated bytes reach the model layer.

Verification order ([REQ-SIG-030]):

1. structure: the envelope, header and signature list are well formed, the
   ``typ`` is the one the context expects, ``sub`` is canonical;
2. keys: every signature's key id is known and authorised (the caller passes
   the authorised keys, see :mod:`cid.trust`);
3. signatures verify over the signing input;
4. validity window: ``nbf - skew <= now < exp`` ([REQ-SIG-031]);
5. serial: higher than the last one seen for this identity, when known ([REQ-SIG-032]);
6. only then is the body parsed into its model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Any, Final, Generic, Literal, TypeVar

from pydantic import Field

from .codec import (
    DEFAULT_LIMITS,
    Encoding,
    Limits,
    Scan,
    Value,
    canonical_json_scanned,
    canonical_msgpack_scanned,
    decode_scanned,
    encode,
    encode_json,
)
from .errors import (
    AlgorithmUnsupportedError,
    DecodeError,
    ExpiredError,
    KeyUnknownError,
    NotYetValidError,
    SchemaError,
    SerialRollbackError,
    SignatureInvalidError,
)
from .identifier import Identifier
from .model import UInt, WireModel, validate
from .record import RECORD_BODIES
from .signing import ALGORITHMS, PublicKey, SigningKey, b64url_decode, b64url_encode, pae

__all__ = [
    "DEFAULT_SKEW_S",
    "MAX_VALIDITY_S",
    "Envelope",
    "Header",
    "Signature",
    "SignedRecord",
    "check_window",
    "open_record",
    "parse_header",
    "parse_record_body",
    "seal",
    "sign_record",
]

DEFAULT_SKEW_S: Final = 300
"""Clock skew tolerated on ``nbf`` and ``iat`` ([REQ-SIG-031])."""

MAX_VALIDITY_S: Final = 400 * 86_400
"""Longest validity window a header may state ([REQ-SIG-033])."""

Typ = Annotated[str, Field(pattern=r"^cid(\.[a-z]+){1,4}$", max_length=64, strict=True)]
KeyId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{22}$", strict=True)]
Nonce = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{16,64}$", strict=True)]


class Header(WireModel):
    """The protected header: bound into every signature ([REQ-SIG-020])."""

    alg: Literal["ed25519"]
    typ: Typ
    sub: Identifier
    serial: Annotated[int, Field(ge=1, le=2**53 - 1, strict=True)]
    iat: UInt
    nbf: UInt
    exp: UInt
    ttl: Annotated[int, Field(ge=0, le=604_800, strict=True)] | None = None
    aud: Identifier | None = None
    nonce: Nonce | None = None

    def check_window_shape(self) -> None:
        # REQ-SIG-033: a window is non-empty and bounded.
        if self.exp <= self.nbf:
            raise SchemaError(
                "exp must be after nbf", field="header.exp", detail={"rule": "window"}
            )
        if self.exp - self.nbf > MAX_VALIDITY_S:
            raise SchemaError(
                "validity window longer than 400 days",
                field="header.exp",
                detail={"rule": "max_validity"},
            )


class Signature(WireModel):
    kid: KeyId
    sig: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{86}$", strict=True)]

    @property
    def raw(self) -> bytes:
        return b64url_decode(self.sig, length=64, field="sigs.sig")


@dataclass(frozen=True)
class Envelope:
    """A signed envelope, holding the header and body exactly as received."""

    header: Header
    header_value: dict[str, Any]
    body_value: dict[str, Any]
    sigs: tuple[Signature, ...]
    scan: Scan | None = field(default=None, compare=False, repr=False)
    """Set when decoded: the decoder's verdict, so :meth:`message` and :meth:`encode` skip work."""

    # -- construction -------------------------------------------------------------

    @classmethod
    def from_value(cls, value: Value, *, scan: Scan | None = None) -> Envelope:
        """Parse the envelope structure (not the body) from a data-model value."""
        if not isinstance(value, dict):
            raise SchemaError("envelope must be a map", detail={"rule": "type"})
        extra = set(value) - {"header", "body", "sigs"}
        if extra:
            raise SchemaError(
                f"unknown envelope member {sorted(extra)[0]!r}",
                field=sorted(extra)[0],
                detail={"rule": "extra_forbidden"},
            )
        header_value = value.get("header")
        body_value = value.get("body")
        sigs_value = value.get("sigs")
        if not isinstance(header_value, dict):
            raise SchemaError("header must be a map", field="header", detail={"rule": "type"})
        if not isinstance(body_value, dict):
            raise SchemaError("body must be a map", field="body", detail={"rule": "type"})
        if not isinstance(sigs_value, list) or not 1 <= len(sigs_value) <= 4:
            raise SchemaError(
                "sigs must be a list of 1 to 4 signatures", field="sigs", detail={"rule": "sigs"}
            )
        header = parse_header(header_value)
        sigs = tuple(validate(Signature, s, where="sigs") for s in sigs_value)
        if len({s.kid for s in sigs}) != len(sigs):
            raise SchemaError(
                "two signatures by one key", field="sigs", detail={"rule": "unique_kid"}
            )
        return cls(header, header_value, body_value, sigs, scan)

    @classmethod
    def decode(cls, data: bytes, encoding: Encoding, limits: Limits = DEFAULT_LIMITS) -> Envelope:
        """Decode bytes into an envelope (unverified)."""
        value, scan = decode_scanned(data, encoding, limits)
        return cls.from_value(value, scan=scan)

    def to_value(self) -> dict[str, Any]:
        # members in canonical order, so that scanned envelopes encode without sorting
        return {
            "body": self.body_value,
            "header": self.header_value,
            "sigs": [{"kid": s.kid, "sig": s.sig} for s in self.sigs],
        }

    def encode(self, encoding: Encoding) -> bytes:
        """Canonical bytes of the whole envelope."""
        if self.scan is not None and encoding == "msgpack":
            return canonical_msgpack_scanned(self.to_value(), self.scan)
        return encode(self.to_value(), encoding)

    # -- signing input --------------------------------------------------------------

    @property
    def typ(self) -> str:
        return self.header.typ

    @cached_property
    def _message(self) -> bytes:
        value = {"body": self.body_value, "header": self.header_value}
        if self.scan is not None:
            return canonical_json_scanned(value, self.scan)
        return encode_json(value)

    def message(self) -> bytes:
        """Canonical JSON of ``{"body", "header"}``: the signed message ([REQ-SIG-002])."""
        return self._message

    def signing_input(self, kid: str, message: bytes | None = None) -> bytes:
        return pae(self.header.typ, kid, self.message() if message is None else message)

    def digest(self) -> str:
        """SHA-256 (base64url) of the canonical message: the record version's content address."""
        return b64url_encode(hashlib.sha256(self.message()).digest())

    def add_signature(self, key: SigningKey) -> Envelope:
        """A copy with one more signature (for co-signed objects such as agreements)."""
        if any(s.kid == key.kid for s in self.sigs):
            return self
        sig = Signature(kid=key.kid, sig=b64url_encode(key.sign(self.signing_input(key.kid))))
        return Envelope(
            self.header, self.header_value, self.body_value, (*self.sigs, sig), self.scan
        )

    # -- verification -----------------------------------------------------------------

    def verify(
        self,
        keys: Mapping[str, PublicKey],
        *,
        typ: str | Iterable[str],
        now: int,
        skew: int = DEFAULT_SKEW_S,
        last_serial: int | None = None,
        last_digest: str | None = None,
        require: Iterable[str] | None = None,
    ) -> None:
        """Run the verification steps 1-5 of the module docstring.

        Args:
            keys: the keys authorised to sign this envelope, by key id. Every
                signature must be by one of them ([REQ-SIG-034]).
            typ: the ``typ`` (or set of them) the context expects ([REQ-SIG-003]).
            now: current time, integer seconds since the epoch (the caller's clock).
            skew: tolerated clock skew in seconds.
            last_serial: the highest serial accepted before for this identity.
            last_digest: the digest of the version held at ``last_serial``: the
                very same envelope again is not a rollback ([REQ-SIG-038]).
            require: key ids that must all have signed (e.g. both parties of an agreement).

        Raises:
            SchemaError, KeyUnknownError, SignatureInvalidError, ExpiredError,
            NotYetValidError, SerialRollbackError.
        """
        expected = {typ} if isinstance(typ, str) else set(typ)
        if self.header.typ not in expected:
            raise SchemaError(
                f"typ {self.header.typ!r} where {sorted(expected)} expected",
                field="header.typ",
                detail={"rule": "typ"},
            )
        message = self.message()
        for s in self.sigs:
            key = keys.get(s.kid)
            if key is None:
                raise KeyUnknownError(
                    f"signature by key {s.kid} that is not authorised here",
                    field="sigs.kid",
                    detail={"kid": s.kid},
                )
            try:
                key.verify(s.raw, self.signing_input(s.kid, message))
            except DecodeError as e:
                raise SignatureInvalidError("malformed signature", field="sigs.sig") from e
        if require is not None:
            missing = set(require) - {s.kid for s in self.sigs}
            if missing:
                raise SignatureInvalidError(
                    "a required party has not signed",
                    field="sigs",
                    detail={"missing": sorted(missing)},
                )
        check_window(self.header, now=now, skew=skew)
        if last_serial is not None and self.header.serial <= last_serial:
            if self.header.serial == last_serial and last_digest == self.digest():
                return  # REQ-SIG-038: re-submission of the version held
            raise SerialRollbackError(
                f"serial {self.header.serial} is not above {last_serial}",
                field="header.serial",
                detail={"serial": self.header.serial, "last": last_serial},
            )


def parse_header(header_value: dict[str, Any]) -> Header:
    """Validate a header value as received ([REQ-SIG-020], [REQ-SIG-022], [REQ-SIG-033])."""
    alg = header_value.get("alg")
    if isinstance(alg, str) and alg not in ALGORITHMS:
        raise AlgorithmUnsupportedError(
            f"algorithm {alg[:32]!r} is not supported", field="header.alg", detail={"alg": alg[:32]}
        )
    header = validate(Header, header_value, where="header")
    # REQ-SIG-022: identifiers in the header are in canonical form, so that
    # the signed bytes and the parsed header say the same thing.
    for member, ident in (("sub", header.sub), ("aud", header.aud)):
        if ident is not None and header_value[member] != ident.to_text():
            raise SchemaError(
                f"header.{member} is not in canonical form",
                field=f"header.{member}",
                detail={"rule": "canonical_identifier"},
            )
    header.check_window_shape()
    return header


def check_window(header: Header, *, now: int, skew: int = DEFAULT_SKEW_S) -> None:
    """REQ-SIG-031: ``nbf - skew <= now < exp`` and ``iat <= now + skew``."""
    if now >= header.exp:
        raise ExpiredError(
            f"expired at {header.exp}", field="header.exp", detail={"exp": header.exp, "now": now}
        )
    if now + skew < header.nbf or now + skew < header.iat:
        raise NotYetValidError(
            f"not valid before {header.nbf}",
            field="header.nbf",
            detail={"nbf": header.nbf, "now": now},
        )


def seal(
    body: WireModel | dict[str, Any],
    *,
    typ: str,
    sub: Identifier | str,
    serial: int,
    key: SigningKey,
    nbf: int,
    exp: int,
    iat: int | None = None,
    ttl: int | None = None,
    aud: Identifier | str | None = None,
    nonce: str | None = None,
) -> Envelope:
    """Build and sign an envelope. ``body`` may be a model or a data-model map."""
    header_value: dict[str, Any] = {
        "alg": "ed25519",
        "typ": typ,
        "sub": Identifier.parse(sub).to_text() if isinstance(sub, str) else sub.to_text(),
        "serial": serial,
        "iat": nbf if iat is None else iat,
        "nbf": nbf,
        "exp": exp,
    }
    if ttl is not None:
        header_value["ttl"] = ttl
    if aud is not None:
        header_value["aud"] = (
            Identifier.parse(aud).to_text() if isinstance(aud, str) else aud.to_text()
        )
    if nonce is not None:
        header_value["nonce"] = nonce
    body_value = body.to_value() if isinstance(body, WireModel) else body
    if not isinstance(body_value, dict):
        raise SchemaError("body must be a map", field="body", detail={"rule": "type"})
    return Envelope(parse_header(header_value), header_value, body_value, ()).add_signature(key)


B = TypeVar("B", bound=WireModel)


@dataclass(frozen=True)
class SignedRecord(Generic[B]):
    """A verified record: its envelope and its parsed body."""

    envelope: Envelope
    body: B
    record_type: str = field(default="")

    @property
    def name(self) -> Identifier:
        return self.envelope.header.sub

    @property
    def header(self) -> Header:
        return self.envelope.header

    @property
    def serial(self) -> int:
        return self.envelope.header.serial

    @cached_property
    def signer(self) -> str:
        return self.envelope.sigs[0].kid

    def encode(self, encoding: Encoding) -> bytes:
        return self.envelope.encode(encoding)


def parse_record_body(envelope: Envelope) -> WireModel:
    """Parse an envelope's body as the record type its ``typ`` names."""
    model = RECORD_BODIES.get(envelope.header.typ)
    if model is None:
        raise SchemaError(
            f"typ {envelope.header.typ!r} is not a record type",
            field="header.typ",
            detail={"rule": "typ"},
        )
    return validate(model, envelope.body_value, where="body")


def sign_record(
    body: WireModel,
    *,
    name: Identifier | str,
    serial: int,
    key: SigningKey,
    nbf: int,
    exp: int,
    ttl: int | None = None,
    iat: int | None = None,
) -> SignedRecord[Any]:
    """Sign a record body under ``name``; the typ follows from the body's model."""
    typ = next((t for t, m in RECORD_BODIES.items() if m is type(body)), None)
    if typ is None:
        raise SchemaError(f"{type(body).__name__} is not a record body", detail={"rule": "typ"})
    env = seal(body, typ=typ, sub=name, serial=serial, key=key, nbf=nbf, exp=exp, ttl=ttl, iat=iat)
    return SignedRecord(env, body, typ.rsplit(".", 1)[1])


def open_record(
    data: bytes | Value,
    keys: Mapping[str, PublicKey],
    *,
    now: int,
    encoding: Encoding | None = None,
    typ: str | Iterable[str] | None = None,
    last_serial: int | None = None,
    skew: int = DEFAULT_SKEW_S,
    limits: Limits = DEFAULT_LIMITS,
) -> SignedRecord[Any]:
    """Decode, verify and parse one record ([REQ-SIG-030]).

    ``data`` is bytes (with ``encoding``) or an already decoded data-model value.
    """
    if isinstance(data, bytes | bytearray | memoryview):
        if encoding is None:
            raise DecodeError("bytes need an encoding")
        env = Envelope.decode(bytes(data), encoding, limits)
    else:
        env = Envelope.from_value(data)
    if len(env.sigs) != 1:
        # REQ-SIG-035: a record carries exactly one signature.
        raise SchemaError(
            "a record carries exactly one signature", field="sigs", detail={"rule": "sigs"}
        )
    env.verify(
        keys,
        typ=RECORD_BODIES.keys() if typ is None else typ,
        now=now,
        skew=skew,
        last_serial=last_serial,
    )
    body = parse_record_body(env)
    return SignedRecord(env, body, env.header.typ.rsplit(".", 1)[1])
