"""Namespace authority: which keys may sign which names (spec section 6.4).

Theory of operation
-------------------
The registry operator's root keys are the trust anchor ([REQ-SIG-040]), as the
root KSK is for DNS. Authority flows down by delegation records, like NS + DS:

* a ``delegation`` record at name *N* is signed by a current signing key of
  the namespace governing *N*'s parent and names *N*'s **anchor keys**
  ([REQ-SIG-041]);
* a ``keyrotation`` record at *N* is signed by one of *N*'s anchor keys and
  names *N*'s current **signing keys** ([REQ-SIG-042]). Without one, the anchor
  keys sign directly. This is DNSSEC's KSK/ZSK split: an anchor key can stay
  offline, a signing key can be replaced at any time with one record signed by
  the old authority, and a verifier starting from scratch needs only the
  delegation and the latest rotation, never a history (ADR-0003);
* every other record at or below *N* (down to the next zone cut) is signed by
  one of *N*'s current signing keys ([REQ-SIG-043]);
* keys listed in a rotation's ``revoked`` are refused at once and for good in
  that namespace, also for records they signed earlier ([REQ-SIG-044],
  [REQ-SIG-047]); keys merely left out of a newer rotation are *retired*.

Which namespace governs a name is the zone cut: the deepest delegated
namespace that contains it, compared label-wise (``ctyunx`` is not within
``ctyun``) ([REQ-SIG-045], [REQ-ID-023], [REQ-ID-025]). Authority lasts only as
long as the delegations and rotations conveying it are within their validity
windows ([REQ-SIG-049]).

Serials of delegation and rotation identities, and revoked key ids, outlive the
records (a tombstone or a re-delegation never resets them), so a deleted or
replaced authority record can never be replayed ([REQ-SIG-050], [REQ-REC-051]).

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
    CidError,
    KeyNotAuthorisedError,
    KeyRevokedError,
    KeyUnknownError,
    SchemaError,
    SerialRollbackError,
)
from .identifier import Identifier
from .record import RECORD_BODIES, DelegationBody, KeyRotationBody
from .signing import PublicKey

__all__ = ["Namespace", "TrustState"]

_ROOT = Identifier.root()


@dataclass
class Namespace:
    """What is known of one delegated namespace (or the root)."""

    name: Identifier
    anchor_keys: dict[str, PublicKey]
    registries: tuple[str, ...] = ()
    signing_keys: dict[str, PublicKey] | None = None
    rotation_signer: str | None = None
    delegation_window: tuple[int, int] | None = None
    """``(nbf, exp)`` of the delegation; ``None`` for the root (the trust anchor never expires)."""
    rotation_window: tuple[int, int] | None = None
    revoked: set[str] = field(default_factory=set)

    def current_keys(self) -> dict[str, PublicKey]:
        keys = self.signing_keys if self.signing_keys is not None else self.anchor_keys
        return {kid: k for kid, k in keys.items() if kid not in self.revoked}

    def usable_anchor_keys(self) -> dict[str, PublicKey]:
        return {kid: k for kid, k in self.anchor_keys.items() if kid not in self.revoked}

    def check_windows(self, now: int, skew: int) -> None:
        """REQ-SIG-049: the records conveying this namespace's authority are valid at ``now``."""
        for what, window in (
            ("delegation", self.delegation_window),
            ("key rotation", self.rotation_window),
        ):
            if window is None:
                continue
            nbf, exp = window
            if not nbf - skew <= now < exp:
                raise ChainBrokenError(
                    f"the {what} of {self.name} is not valid at {now}",
                    detail={"name": self.name.to_text(), "nbf": nbf, "exp": exp, "now": now},
                )


_Derived = tuple[dict[str, PublicKey], tuple[Namespace, ...]]
"""A namespace's keys and the namespaces whose windows convey its authority."""


def _keymap(keys: Iterable[PublicKey]) -> dict[str, PublicKey]:
    return {k.kid: k for k in keys}


class TrustState:
    """The namespace tree as far as it is known, rooted at the trust anchor."""

    def __init__(self, root_keys: Iterable[PublicKey]) -> None:
        anchors = _keymap(root_keys)
        if not anchors:
            raise SchemaError("a trust anchor needs at least one root key", detail={"rule": "root"})
        root = Namespace(_ROOT, anchors)
        self._ns: dict[Identifier, Namespace] = {_ROOT: root}
        # (name, "delegation" | "keyrotation") -> (highest serial, digest of the envelope held)
        self._serials: dict[tuple[Identifier, str], tuple[int, str | None]] = {}
        # revoked key ids per namespace, shared with its Namespace: permanent (REQ-SIG-047)
        self._revoked: dict[Identifier, set[str]] = {_ROOT: root.revoked}
        # per (namespace, which keys): the keys and the namespaces on its authority path;
        # derived from the tree alone, so dropped whenever the tree changes (apply)
        self._derived: dict[
            tuple[Identifier, bool], tuple[dict[str, PublicKey], tuple[Namespace, ...]]
        ] = {}

    # -- queries --------------------------------------------------------------------

    def namespace_for(self, name: Identifier) -> Namespace:
        """The namespace whose authority governs ``name`` (the zone cut) ([REQ-SIG-045])."""
        for ancestor in name.ancestors():
            ns = self._ns.get(ancestor)
            if ns is not None:
                return ns
        raise AssertionError("the root namespace is always present")

    def namespaces(self) -> list[Namespace]:
        return sorted(self._ns.values(), key=lambda n: n.name)

    def get(self, name: Identifier) -> Namespace | None:
        return self._ns.get(name)

    def serial_of(self, name: Identifier, record_type: str) -> int | None:
        """The highest serial verified for ``(name, record_type)`` (delegation or keyrotation)."""
        seen = self._serials.get((name, record_type))
        return None if seen is None else seen[0]

    def check_path(self, ns: Namespace, *, now: int, skew: int = DEFAULT_SKEW_S) -> None:
        """REQ-SIG-049: every delegation and rotation from the root down to ``ns`` is in force."""
        for other in self._derive(ns, anchors=False)[1]:
            other.check_windows(now, skew)

    def _derive(self, ns: Namespace, *, anchors: bool) -> _Derived:
        """``ns``'s usable anchor keys (or current keys) and its authority path, cached."""
        key = (ns.name, anchors)
        derived = self._derived.get(key)
        if derived is None:
            keys = ns.usable_anchor_keys() if anchors else ns.current_keys()
            path = tuple(
                other for a in ns.name.ancestors() if (other := self._ns.get(a)) is not None
            )
            derived = self._derived[key] = (keys, path)
        return derived

    def _keys_on_path(
        self, ns: Namespace, *, anchors: bool, now: int | None, skew: int
    ) -> Mapping[str, PublicKey]:
        keys, path = self._derive(ns, anchors=anchors)
        if now is not None:
            for other in path:
                other.check_windows(now, skew)
        return keys

    def authorised_keys(
        self,
        name: Identifier,
        record_type: str = "offer",
        *,
        now: int | None = None,
        skew: int = DEFAULT_SKEW_S,
    ) -> dict[str, PublicKey]:
        """Keys that may sign a record of ``record_type`` at ``name``.

        ``record_type`` is a record type, or ``tombstone:<target>`` for a
        tombstone. With ``now``, the authority path must be in force at ``now``.
        """
        return dict(self._authorised(name, record_type, now=now, skew=skew))

    def may_sign(
        self,
        name: Identifier,
        kid: str,
        record_type: str = "offer",
        *,
        now: int | None = None,
        skew: int = DEFAULT_SKEW_S,
    ) -> bool:
        """Whether key ``kid`` is among :meth:`authorised_keys` (raises as it does)."""
        return kid in self._authorised(name, record_type, now=now, skew=skew)

    def _authorised(
        self, name: Identifier, record_type: str, *, now: int | None, skew: int
    ) -> Mapping[str, PublicKey]:
        """:meth:`authorised_keys` without the copy (the cached map: not to be changed)."""
        kind = record_type.removeprefix("tombstone:")
        if kind == "delegation":
            if name.is_root:
                # REQ-SIG-041: the root cannot be delegated (nor its delegation deleted).
                raise SchemaError(
                    "the root cannot be delegated", field="header.sub", detail={"rule": "root"}
                )
            ns = self.namespace_for(name.parent())
            return self._keys_on_path(ns, anchors=False, now=now, skew=skew)
        if kind == "keyrotation":
            ns_or_none = self._ns.get(name)
            if ns_or_none is None:
                raise ChainBrokenError(
                    f"{name} is not a delegated namespace", detail={"name": name.to_text()}
                )
            return self._keys_on_path(ns_or_none, anchors=True, now=now, skew=skew)
        ns = self.namespace_for(name)
        return self._keys_on_path(ns, anchors=False, now=now, skew=skew)

    def explain_unknown(self, name: Identifier, kid: str) -> CidError:
        """The right error for a signature by ``kid`` not authorised at ``name`` ([REQ-SIG-048])."""
        governing = self.namespace_for(name).name
        if kid in self._revoked.get(governing, set()):
            return KeyRevokedError(f"key {kid} was revoked in {governing}", detail={"kid": kid})
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
        last_digest: str | None = None,
        skew: int = DEFAULT_SKEW_S,
        check_chain: bool = True,
    ) -> SignedRecord[Any]:
        """Verify one record envelope against the namespace tree and parse its body.

        ``check_chain=False`` skips the validity windows of the authority path,
        for replaying records that were verified when they were accepted.
        """
        typ = envelope.header.typ
        if typ not in RECORD_BODIES:
            # REQ-SIG-003 / REQ-SIG-030 step 1: the typ is checked before anything else
            raise SchemaError(
                f"typ {typ!r} is not a record type", field="header.typ", detail={"rule": "typ"}
            )
        record_type = typ.rsplit(".", 1)[-1]
        kind = record_type
        if record_type == "tombstone":
            target = envelope.body_value.get("target")
            kind = f"tombstone:{target}" if isinstance(target, str) else record_type
        elif record_type == "refresh":
            kind = "offer"
        if len(envelope.sigs) != 1:
            # REQ-SIG-035: a record carries exactly one signature.
            raise SchemaError(
                "a record carries exactly one signature", field="sigs", detail={"rule": "sigs"}
            )
        keys = self._authorised(
            envelope.header.sub, kind, now=now if check_chain else None, skew=skew
        )
        for s in envelope.sigs:
            if s.kid not in keys:
                raise self.explain_unknown(envelope.header.sub, s.kid)
        envelope.verify(
            keys, typ=typ, now=now, skew=skew, last_serial=last_serial, last_digest=last_digest
        )
        body = parse_record_body(envelope)
        return SignedRecord(envelope, body, record_type)

    # -- updates -------------------------------------------------------------------------

    def apply(self, record: SignedRecord[Any]) -> None:
        """Apply a *verified* delegation, rotation or tombstone of either ([REQ-SIG-050])."""
        name = record.name
        body = record.body
        header = record.header
        self._derived.clear()
        if isinstance(body, DelegationBody):
            self._bump(name, "delegation", record)
            old = self._ns.get(name)
            revoked = self._revoked.setdefault(name, set())
            ns = Namespace(
                name,
                _keymap(body.keys),
                registries=tuple(str(u) for u in body.registries),
                delegation_window=(header.nbf, header.exp),
                revoked=revoked,
            )
            if old is not None and old.rotation_signer in ns.anchor_keys:
                # the rotation stays in force while its signer remains an anchor key
                ns.signing_keys = old.signing_keys
                ns.rotation_signer = old.rotation_signer
                ns.rotation_window = old.rotation_window
            self._ns[name] = ns
        elif isinstance(body, KeyRotationBody):
            ns_or_none = self._ns.get(name)
            if ns_or_none is None:
                raise ChainBrokenError(f"{name} is not a delegated namespace")
            self._bump(name, "keyrotation", record)
            ns_or_none.signing_keys = _keymap(body.keys)
            ns_or_none.rotation_signer = record.signer
            ns_or_none.rotation_window = (header.nbf, header.exp)
            ns_or_none.revoked |= set(body.revoked)
        elif record.record_type == "tombstone":
            target = getattr(body, "target", None)
            if target == "delegation":
                self._bump(name, "delegation", record)
                # removing a delegation removes everything delegated within it
                for n in [n for n in self._ns if n.is_within(name) and not n.is_root]:
                    del self._ns[n]
            elif target == "keyrotation" and name in self._ns:
                self._bump(name, "keyrotation", record)
                ns = self._ns[name]
                ns.signing_keys = None
                ns.rotation_signer = None
                ns.rotation_window = None

    def _bump(self, name: Identifier, rtype: str, record: SignedRecord[Any]) -> None:
        seen = self._serials.get((name, rtype))
        if seen is not None and record.serial < seen[0]:
            raise SerialRollbackError(
                f"{rtype} serial {record.serial} is not above {seen[0]}", field="header.serial"
            )
        self._serials[(name, rtype)] = (record.serial, record.envelope.digest())

    def add(self, envelope: Envelope, *, now: int, check_chain: bool = True) -> SignedRecord[Any]:
        """Verify and apply a delegation, rotation, or tombstone of either, in one step.

        Re-adding the envelope already held is a no-op ([REQ-SIG-038]).
        """
        typ = envelope.header.typ
        rtype = typ.rsplit(".", 1)[-1]
        if rtype == "tombstone":
            target = envelope.body_value.get("target")
            rtype = target if isinstance(target, str) else rtype
        seen = self._serials.get((envelope.header.sub, rtype))
        record = self.verify(
            envelope,
            now=now,
            last_serial=None if seen is None else seen[0],
            last_digest=None if seen is None else seen[1],
            check_chain=check_chain,
        )
        if seen is not None and record.serial == seen[0]:
            return record  # the very envelope already held: nothing to do
        self.apply(record)
        return record

    def snapshot(self) -> Mapping[Identifier, Namespace]:
        return dict(self._ns)
