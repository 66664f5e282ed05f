"""Namespace authority: which keys may sign which names (spec section 6.4).

Theory of operation
-------------------
The registry operator's root keys are the trust anchor ([REQ-SIG-040]), as the
root KSK is for DNS. Authority flows down by delegation records, like NS + DS:

* a ``delegation`` record at name *N* is signed by the authority of *N*'s
  parent namespace and names *N*'s **anchor keys** ([REQ-SIG-041]);
* a ``keyrotation`` record at *N* is signed by one of *N*'s anchor keys and
  names *N*'s current **signing keys** ([REQ-SIG-042]). Without one, the anchor
  keys sign directly. This is DNSSEC's KSK/ZSK split: an anchor key can stay
  offline and a signing key can be replaced at any time with one record signed
  by the old authority, and a verifier starting from scratch needs only the
  delegation and the latest rotation, never a history;
* every other record at or below *N* (down to the next zone cut) is signed by
  one of *N*'s current signing keys ([REQ-SIG-043]);
* keys listed in a rotation's ``revoked`` are refused at once, also for records
  they signed earlier ([REQ-SIG-044]); keys merely left out of a newer rotation
  are *retired*: records they signed stay valid until they expire.

Which namespace governs a name is the zone cut: the deepest delegated
namespace that contains it, compared label-wise (``ctyunx`` is not within
``ctyun``) ([REQ-ID-020]).

:class:`TrustState` is pure: it is fed verified delegation and rotation records
and answers ``authorised_keys(name)``. It never does I/O and never reads a clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .envelope import DEFAULT_SKEW_S, Envelope, SignedRecord, parse_record_body
from .errors import (
    ChainBrokenError,
    KeyNotAuthorisedError,
    KeyRevokedError,
    KeyUnknownError,
    SchemaError,
    SerialRollbackError,
)
from .identifier import Identifier
from .record import DelegationBody, KeyRotationBody
from .signing import PublicKey

__all__ = ["Namespace", "TrustState"]

_ROOT = Identifier.root()


@dataclass
class Namespace:
    """What is known of one delegated namespace."""

    name: Identifier
    anchor_keys: dict[str, PublicKey]
    delegation_serial: int
    registries: tuple[str, ...] = ()
    rotation_serial: int = 0
    signing_keys: dict[str, PublicKey] | None = None
    revoked: set[str] = field(default_factory=set)

    def current_keys(self) -> dict[str, PublicKey]:
        keys = self.signing_keys if self.signing_keys is not None else self.anchor_keys
        return {kid: k for kid, k in keys.items() if kid not in self.revoked}


def _keymap(keys: Iterable[PublicKey]) -> dict[str, PublicKey]:
    return {k.kid: k for k in keys}


class TrustState:
    """The namespace tree as far as it is known, rooted at the trust anchor."""

    def __init__(self, root_keys: Iterable[PublicKey]) -> None:
        anchors = _keymap(root_keys)
        if not anchors:
            raise SchemaError("a trust anchor needs at least one root key", detail={"rule": "root"})
        self._ns: dict[Identifier, Namespace] = {
            _ROOT: Namespace(_ROOT, anchors, delegation_serial=0)
        }

    # -- queries --------------------------------------------------------------------

    def namespace_for(self, name: Identifier) -> Namespace:
        """The namespace whose authority governs ``name`` (the zone cut) ([REQ-ID-020])."""
        for ancestor in name.ancestors():
            ns = self._ns.get(ancestor)
            if ns is not None:
                return ns
        raise AssertionError("the root namespace is always present")

    def namespaces(self) -> list[Namespace]:
        return sorted(self._ns.values(), key=lambda n: n.name)

    def get(self, name: Identifier) -> Namespace | None:
        return self._ns.get(name)

    def authorised_keys(self, name: Identifier, record_type: str = "offer") -> dict[str, PublicKey]:
        """Keys that may sign a record of ``record_type`` at ``name``.

        A delegation at *N* is signed by the parent of *N*'s authority, a key
        rotation at *N* by *N*'s anchor keys, anything else by the current
        signing keys of the namespace governing *N*.
        """
        if record_type == "delegation" or (
            record_type == "tombstone:delegation" and not name.is_root
        ):
            if name.is_root:
                raise SchemaError("the root cannot be delegated", detail={"rule": "root"})
            return self.namespace_for(name.parent()).current_keys()
        if record_type in ("keyrotation", "tombstone:keyrotation"):
            ns = self._ns.get(name)
            if ns is None:
                raise ChainBrokenError(
                    f"{name} is not a delegated namespace", detail={"name": name.to_text()}
                )
            return {k: v for k, v in ns.anchor_keys.items() if k not in ns.revoked}
        return self.namespace_for(name).current_keys()

    def explain_unknown(self, name: Identifier, kid: str) -> Exception:
        """The right error for a signature by ``kid`` that is not authorised at ``name``."""
        for ns in self._ns.values():
            if kid in ns.revoked:
                return KeyRevokedError(f"key {kid} was revoked", detail={"kid": kid})
        for ns in self._ns.values():
            if kid in ns.anchor_keys or (ns.signing_keys and kid in ns.signing_keys):
                return KeyNotAuthorisedError(
                    f"key {kid} belongs to {ns.name} and may not sign {name}",
                    field="sigs.kid",
                    detail={"kid": kid, "name": name.to_text(), "owner": ns.name.to_text()},
                )
        return KeyUnknownError(f"unknown key {kid}", field="sigs.kid", detail={"kid": kid})

    # -- verification ------------------------------------------------------------------

    def verify(
        self,
        envelope: Envelope,
        *,
        now: int,
        last_serial: int | None = None,
        skew: int = DEFAULT_SKEW_S,
    ) -> SignedRecord[Any]:
        """Verify one record envelope against the namespace tree and parse its body."""
        typ = envelope.header.typ
        record_type = typ.rsplit(".", 1)[-1]
        kind = record_type
        if record_type == "tombstone":
            target = envelope.body_value.get("target")
            kind = f"tombstone:{target}" if isinstance(target, str) else record_type
        elif record_type == "refresh":
            kind = "offer"
        keys = self.authorised_keys(envelope.header.sub, kind)
        for s in envelope.sigs:
            if s.kid not in keys:
                raise self.explain_unknown(envelope.header.sub, s.kid)
        envelope.verify(keys, typ=typ, now=now, skew=skew, last_serial=last_serial)
        if len(envelope.sigs) != 1:
            raise SchemaError(
                "a record carries exactly one signature", field="sigs", detail={"rule": "sigs"}
            )
        body = parse_record_body(envelope)
        return SignedRecord(envelope, body, record_type)

    # -- updates -------------------------------------------------------------------------

    def apply(self, record: SignedRecord[Any]) -> None:
        """Feed a *verified* delegation, rotation or tombstone of either into the tree."""
        name = record.name
        body = record.body
        if isinstance(body, DelegationBody):
            current = self._ns.get(name)
            if current is not None and record.serial <= current.delegation_serial:
                raise SerialRollbackError(
                    f"delegation serial {record.serial} is not above {current.delegation_serial}",
                    field="header.serial",
                )
            self._ns[name] = Namespace(
                name,
                _keymap(body.keys),
                delegation_serial=record.serial,
                registries=tuple(str(u) for u in body.registries),
            )
        elif isinstance(body, KeyRotationBody):
            ns = self._ns.get(name)
            if ns is None:
                raise ChainBrokenError(f"{name} is not a delegated namespace")
            if record.serial <= ns.rotation_serial:
                raise SerialRollbackError(
                    f"rotation serial {record.serial} is not above {ns.rotation_serial}",
                    field="header.serial",
                )
            ns.rotation_serial = record.serial
            ns.signing_keys = _keymap(body.keys)
            ns.revoked |= set(body.revoked)
        elif record.record_type == "tombstone":
            target = getattr(body, "target", None)
            if target == "delegation":
                # removing a delegation removes everything below it
                for n in [n for n in self._ns if n.is_within(name) and not n.is_root]:
                    del self._ns[n]
            elif target == "keyrotation" and name in self._ns:
                ns = self._ns[name]
                ns.signing_keys = None

    def add(self, envelope: Envelope, *, now: int) -> SignedRecord[Any]:
        """Verify and apply a delegation or rotation record in one step."""
        ns = self._ns.get(envelope.header.sub)
        last: int | None = None
        if ns is not None:
            last = (
                ns.delegation_serial
                if envelope.header.typ.endswith("delegation")
                else ns.rotation_serial
            )
        record = self.verify(envelope, now=now, last_serial=last)
        self.apply(record)
        return record

    def snapshot(self) -> Mapping[Identifier, Namespace]:
        return dict(self._ns)
