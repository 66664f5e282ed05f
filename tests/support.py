"""Test support: the RFC 8032 example keys and a small trusted namespace tree."""

from __future__ import annotations

from dataclasses import dataclass

from cid import examples as ex
from cid.envelope import SignedRecord, sign_record
from cid.signing import SigningKey
from cid.trust import TrustState

NOW = ex.EPOCH + 60


@dataclass
class World:
    root: SigningKey
    provider: SigningKey
    other: SigningKey
    trust: TrustState
    delegation: SignedRecord

    def offer(self, name: str = "gz-pool.ctyun", serial: int = 1, **kw: object) -> SignedRecord:
        body = kw.pop("body", None) or ex.guizhou_offer()
        return sign_record(
            body,
            name=name,
            serial=serial,
            key=kw.pop("key", self.provider),
            nbf=kw.pop("nbf", ex.EPOCH),
            exp=kw.pop("exp", ex.EPOCH + 3600),
            ttl=300,
        )


def make_world() -> World:
    root, provider, other = ex.root_key(), ex.provider_key(), ex.second_provider_key()
    trust = TrustState([root.public_key])
    d = sign_record(
        ex.delegation(provider),
        name="ctyun",
        serial=1,
        key=root,
        nbf=ex.EPOCH,
        exp=ex.EPOCH + 86400,
    )
    trust.add(d.envelope, now=NOW)
    d2 = sign_record(
        ex.delegation(other), name="ctyunx", serial=1, key=root, nbf=ex.EPOCH, exp=ex.EPOCH + 86400
    )
    trust.add(d2.envelope, now=NOW)
    return World(root, provider, other, trust, d)
