"""Namespace authority ([REQ-SIG-040]..[REQ-SIG-044], [REQ-SIG-045], [REQ-ID-023])."""

from __future__ import annotations

import pytest

from cid import examples as ex
from cid.envelope import sign_record
from cid.errors import (
    ChainBrokenError,
    KeyNotAuthorisedError,
    KeyRevokedError,
    KeyUnknownError,
    SchemaError,
    SerialRollbackError,
    SignatureInvalidError,
)
from cid.identifier import Identifier
from cid.record import KeyRotationBody, TombstoneBody
from cid.signing import SigningKey
from cid.trust import TrustState
from tests.support import NOW, World


def test_offer_under_own_namespace(world: World) -> None:
    """REQ-SIG-043: a namespace's key signs records at and below its apex."""
    for name in ("ctyun", "gz-pool.ctyun", "a.b.c.ctyun"):
        rec = world.trust.verify(world.offer(name).envelope, now=NOW)
        assert rec.name == Identifier.parse(name)


def test_label_prefix_hijack_refused(world: World) -> None:
    """REQ-ID-023: `ctyunx` is not within `ctyun`: neither key signs for the other."""
    with pytest.raises(KeyNotAuthorisedError):
        world.trust.verify(world.offer("pool.ctyunx").envelope, now=NOW)
    with pytest.raises(KeyNotAuthorisedError):
        world.trust.verify(world.offer("pool.ctyun", key=world.other).envelope, now=NOW)


def test_unknown_key_and_root_only_delegates(world: World) -> None:
    stranger = SigningKey.generate()
    with pytest.raises(KeyUnknownError):
        world.trust.verify(world.offer("pool.ctyun", key=stranger).envelope, now=NOW)
    # a provider cannot delegate a sibling top-level namespace
    d = sign_record(
        ex.delegation(stranger),
        name="evil",
        serial=1,
        key=world.provider,
        nbf=ex.EPOCH,
        exp=ex.EPOCH + 600,
    )
    with pytest.raises(KeyNotAuthorisedError):
        world.trust.add(d.envelope, now=NOW)
    with pytest.raises(SchemaError):
        world.trust.authorised_keys(Identifier.root(), "delegation")


def test_sub_delegation_and_zone_cut(world: World) -> None:
    """REQ-SIG-041: a namespace delegates children; the deepest cut governs."""
    child = SigningKey.generate()
    d = sign_record(
        ex.delegation(child),
        name="tj.ctyun",
        serial=1,
        key=world.provider,
        nbf=ex.EPOCH,
        exp=ex.EPOCH + 600,
    )
    world.trust.add(d.envelope, now=NOW)
    assert world.trust.namespace_for(Identifier.parse("pool.tj.ctyun")).name.to_text() == "tj.ctyun"
    world.trust.verify(world.offer("pool.tj.ctyun", key=child).envelope, now=NOW)
    with pytest.raises(KeyNotAuthorisedError):
        world.trust.verify(world.offer("pool.tj.ctyun").envelope, now=NOW)
    # the same delegation again is idempotent (REQ-SIG-038); another one with its serial is not
    assert world.trust.add(d.envelope, now=NOW).serial == 1
    other = sign_record(
        ex.delegation(SigningKey.generate()),
        name="tj.ctyun",
        serial=1,
        key=world.provider,
        nbf=ex.EPOCH,
        exp=ex.EPOCH + 600,
    )
    with pytest.raises(SerialRollbackError):
        world.trust.add(other.envelope, now=NOW)
    names = [n.name.to_text() for n in world.trust.namespaces()]
    assert names == sorted(names, key=Identifier.parse) and "tj.ctyun" in names


def _rotate(
    world: World,
    new: list[SigningKey],
    serial: int,
    key: SigningKey | None = None,
    revoked: list[str] | None = None,
) -> None:
    body = KeyRotationBody(keys=[k.public_key for k in new], revoked=revoked or [])
    rec = sign_record(
        body,
        name="ctyun",
        serial=serial,
        key=key or world.provider,
        nbf=ex.EPOCH,
        exp=ex.EPOCH + 600,
    )
    world.trust.add(rec.envelope, now=NOW)


def test_key_rotation(world: World) -> None:
    """REQ-SIG-042: the anchor key introduces a new signing key."""
    old_record = world.offer("pool.ctyun").envelope
    new = SigningKey.generate()
    _rotate(world, [new], serial=1)
    world.trust.verify(world.offer("pool.ctyun", key=new).envelope, now=NOW)
    # the anchor key no longer signs offers once a signing key is set
    with pytest.raises(KeyNotAuthorisedError):
        world.trust.verify(old_record, now=NOW)
    # rotations must be signed by an anchor key, not by the signing key
    with pytest.raises(KeyNotAuthorisedError):
        _rotate(world, [SigningKey.generate()], serial=2, key=new)
    _rotate(world, [new], serial=1)  # the very same rotation again: a no-op (REQ-SIG-038)
    with pytest.raises(SerialRollbackError):
        _rotate(world, [SigningKey.generate()], serial=1)


def test_revocation(world: World) -> None:
    """REQ-SIG-044: a revoked key is refused at once, with its own error."""
    new = SigningKey.generate()
    _rotate(world, [new], serial=1)
    newer = SigningKey.generate()
    _rotate(world, [newer], serial=2, revoked=[new.kid])
    with pytest.raises(KeyRevokedError):
        world.trust.verify(world.offer("pool.ctyun", key=new).envelope, now=NOW)


def test_rotation_needs_namespace(world: World) -> None:
    with pytest.raises(ChainBrokenError):
        world.trust.authorised_keys(Identifier.parse("nowhere"), "keyrotation")


def test_tombstones(world: World) -> None:
    """REQ-REC-050: deleting a delegation removes the namespace and everything below it."""
    child = SigningKey.generate()
    d = sign_record(
        ex.delegation(child),
        name="tj.ctyun",
        serial=1,
        key=world.provider,
        nbf=ex.EPOCH,
        exp=ex.EPOCH + 600,
    )
    world.trust.add(d.envelope, now=NOW)
    new = SigningKey.generate()
    _rotate(world, [new], serial=1)
    t = sign_record(
        TombstoneBody(target="keyrotation"),
        name="ctyun",
        serial=2,
        key=world.provider,
        nbf=ex.EPOCH,
        exp=ex.EPOCH + 600,
    )
    world.trust.apply(world.trust.verify(t.envelope, now=NOW))
    world.trust.verify(world.offer("pool.ctyun").envelope, now=NOW)  # anchor signs again
    t = sign_record(
        TombstoneBody(target="delegation"),
        name="ctyun",
        serial=2,
        key=world.root,
        nbf=ex.EPOCH,
        exp=ex.EPOCH + 600,
    )
    world.trust.apply(world.trust.verify(t.envelope, now=NOW))
    assert world.trust.get(Identifier.parse("ctyun")) is None
    assert world.trust.get(Identifier.parse("tj.ctyun")) is None
    with pytest.raises(KeyUnknownError):  # the provider's key is no longer known anywhere
        world.trust.verify(world.offer("pool.ctyun").envelope, now=NOW)


def test_tampered_delegation_refused(world: World) -> None:
    d = sign_record(
        ex.delegation(world.other),
        name="newco",
        serial=1,
        key=world.root,
        nbf=ex.EPOCH,
        exp=ex.EPOCH + 600,
    )
    value = d.envelope.to_value()
    value["body"]["keys"][0]["pub"] = SigningKey.generate().public_key.pub
    from cid.envelope import Envelope

    with pytest.raises(SignatureInvalidError):
        world.trust.add(Envelope.from_value(value), now=NOW)


def test_trust_needs_root() -> None:
    with pytest.raises(SchemaError):
        TrustState([])
    assert Identifier.root() in TrustState([ex.root_key().public_key]).snapshot()


def _delegate(
    world: World,
    anchors: list[SigningKey],
    serial: int,
    exp: int = ex.EPOCH + 86400,
    registries: list[str] | None = None,
):  # type: ignore[no-untyped-def]
    from cid.record import DelegationBody

    body = DelegationBody(keys=[k.public_key for k in anchors], registries=registries or [])
    return sign_record(body, name="ctyun", serial=serial, key=world.root, nbf=ex.EPOCH, exp=exp)


def test_redelegation_keeps_rotation_and_revocations(world: World) -> None:
    """REQ-SIG-050 (1): a re-delegation keeps serials, revocations, and a rotation whose signer stays."""
    new = SigningKey.generate()
    bad = SigningKey.generate()
    _rotate(world, [new, bad], serial=1, revoked=[])
    _rotate(world, [new], serial=2, revoked=[bad.kid])
    world.trust.add(
        _delegate(world, [world.provider], 2, registries=["https://r2.example"]).envelope, now=NOW
    )
    world.trust.verify(world.offer("pool.ctyun", key=new).envelope, now=NOW)  # rotation kept
    with pytest.raises(KeyRevokedError):
        world.trust.verify(world.offer("pool.ctyun", key=bad).envelope, now=NOW)
    with pytest.raises(SerialRollbackError):  # rotation serials are not reset
        _rotate(world, [SigningKey.generate()], serial=2)
    # a re-delegation to new anchor keys ends the rotation signed by the old anchor
    fresh = SigningKey.generate()
    world.trust.add(_delegate(world, [fresh], 3).envelope, now=NOW)
    with pytest.raises(KeyUnknownError):
        world.trust.verify(world.offer("pool.ctyun", key=new).envelope, now=NOW)
    world.trust.verify(world.offer("pool.ctyun", key=fresh).envelope, now=NOW)


def test_revocation_is_permanent(world: World) -> None:
    """REQ-SIG-047: a revoked key stays refused even if a later delegation lists it again."""
    new = SigningKey.generate()
    _rotate(world, [new], serial=1, revoked=[world.provider.kid])
    world.trust.add(_delegate(world, [world.provider], 2).envelope, now=NOW)
    with pytest.raises(KeyRevokedError):
        world.trust.verify(world.offer("pool.ctyun").envelope, now=NOW)


def test_expired_delegation_breaks_the_chain(world: World) -> None:
    """REQ-SIG-049: authority lasts only as long as the delegation conveying it."""
    world.trust.add(_delegate(world, [world.provider], 2, exp=NOW + 100).envelope, now=NOW)
    offer = world.offer("pool.ctyun", exp=NOW + 10_000).envelope
    world.trust.verify(offer, now=NOW + 50)
    with pytest.raises(ChainBrokenError):
        world.trust.verify(offer, now=NOW + 100)
    # replaying verified history skips the chain windows
    world.trust.verify(offer, now=NOW + 100, check_chain=False)


def test_deleted_delegation_cannot_be_replayed(world: World) -> None:
    """REQ-REC-051: serials outlive a tombstone."""
    t = sign_record(
        TombstoneBody(target="delegation"),
        name="ctyun",
        serial=5,
        key=world.root,
        nbf=ex.EPOCH,
        exp=ex.EPOCH + 600,
    )
    world.trust.add(t.envelope, now=NOW)
    with pytest.raises(SerialRollbackError):
        world.trust.add(world.delegation.envelope, now=NOW)
    world.trust.add(_delegate(world, [world.provider], 6).envelope, now=NOW)
    assert world.trust.serial_of(Identifier.parse("ctyun"), "delegation") == 6


def test_root_delegation_tombstone_refused(world: World) -> None:
    """REQ-SIG-041: the root cannot be delegated, nor its delegation deleted."""
    t = sign_record(
        TombstoneBody(target="delegation"),
        name=".",
        serial=1,
        key=world.root,
        nbf=ex.EPOCH,
        exp=ex.EPOCH + 600,
    )
    with pytest.raises(SchemaError):
        world.trust.add(t.envelope, now=NOW)


def test_root_key_rotation(world: World) -> None:
    """REQ-SIG-042: the root may rotate its signing keys with its anchor (trust-anchor) key."""
    op = SigningKey.generate()
    body = KeyRotationBody(keys=[op.public_key])
    rec = sign_record(body, name=".", serial=1, key=world.root, nbf=ex.EPOCH, exp=ex.EPOCH + 600)
    world.trust.add(rec.envelope, now=NOW)
    d = sign_record(
        ex.delegation(SigningKey.generate()),
        name="newco",
        serial=1,
        key=op,
        nbf=ex.EPOCH,
        exp=ex.EPOCH + 600,
    )
    world.trust.add(d.envelope, now=NOW)
    assert world.trust.get(Identifier.parse("newco")) is not None
