"""The registry change feed: hash chain, signed heads and snapshot digests (spec section 12).

Theory of operation
-------------------
Every change a registry accepts gets the next registry serial ``rseq`` (1, 2,
3, ... with no gaps) and extends a hash chain ([REQ-FEED-001])::

    chain_0 = 32 zero bytes
    chain_n = SHA-256("cid-feed-v1" || chain_{n-1} || u64be(rseq_n) || SHA-256(envelope_n))

where ``envelope_n`` is the canonical msgpack of the envelope the change
carries (a record, a refresh or a tombstone). The registry signs *heads*
``{rseq, chain, at}`` with one of its service keys (typ ``cid.feed.head``,
[REQ-FEED-002]). A follower that replays the changes recomputes the chain; a
mirror that drops, reorders, alters or invents a change cannot make the chain
match a signed head, and a head with a lower ``rseq`` than one already seen is
a rollback ([REQ-FEED-003]).

A snapshot states the live catalogue at one ``rseq``. Its digest is the
SHA-256 over the sorted ``(name, type, digest)`` lines of every live record
([REQ-FEED-010]), signed with the head in a ``cid.feed.snapshot`` envelope,
so a snapshot with a record left out or added does not verify.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Annotated, Any, Final, Literal

from pydantic import Field

from .identifier import Identifier
from .model import UInt, WireModel
from .signing import b64url_decode, b64url_encode

__all__ = [
    "CHAIN_ZERO",
    "FEED_HEAD_TYP",
    "SNAPSHOT_TYP",
    "ChangeEntry",
    "FeedHead",
    "SnapshotHead",
    "chain_step",
    "chain_step_raw",
    "envelope_hash",
    "snapshot_digest",
]

FEED_HEAD_TYP: Final = "cid.feed.head"
SNAPSHOT_TYP: Final = "cid.feed.snapshot"
CHAIN_ZERO: Final = b64url_encode(bytes(32))
_CONTEXT: Final = b"cid-feed-v1"

Digest = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{43}$", strict=True)]


def envelope_hash(envelope_msgpack: bytes) -> bytes:
    return hashlib.sha256(envelope_msgpack).digest()


def chain_step(previous: str, rseq: int, envelope_msgpack: bytes) -> str:
    """The chain value after change ``rseq`` ([REQ-FEED-001])."""
    return b64url_encode(chain_step_raw(b64url_decode(previous, length=32), rseq, envelope_msgpack))


def chain_step_raw(previous: bytes, rseq: int, envelope_msgpack: bytes) -> bytes:
    """:func:`chain_step` on the 32 raw bytes of the chain values (for runs of changes)."""
    h = hashlib.sha256(_CONTEXT)
    h.update(previous)
    h.update(rseq.to_bytes(8, "big"))
    h.update(hashlib.sha256(envelope_msgpack).digest())
    return h.digest()


def snapshot_digest(entries: Iterable[tuple[Identifier | str, str, str]]) -> str:
    """SHA-256 over sorted ``name SP type SP digest LF`` lines of live records ([REQ-FEED-010]).

    Names are sorted in canonical identifier order, then by type.
    """
    rows = sorted((Identifier.parse(n) if isinstance(n, str) else n, t, d) for n, t, d in entries)
    h = hashlib.sha256(b"cid-snapshot-v1\n")
    for name, rtype, digest in rows:
        h.update(f"{name.to_ascii()} {rtype} {digest}\n".encode("ascii"))
    return b64url_encode(h.digest())


class FeedHead(WireModel):
    """Body of a ``cid.feed.head`` envelope ([REQ-FEED-002])."""

    rseq: UInt
    chain: Digest
    at: UInt


class SnapshotHead(WireModel):
    """Body of a ``cid.feed.snapshot`` envelope ([REQ-FEED-010])."""

    rseq: UInt
    chain: Digest
    records: UInt
    digest: Digest
    at: UInt


class ChangeEntry(WireModel):
    """One change as the feed carries it ([REQ-FEED-004])."""

    rseq: Annotated[int, Field(ge=1, strict=True)]
    op: Literal["put", "refresh", "delete"]
    name: Identifier
    type: Literal["zone", "offer", "delegation", "keyrotation"]
    envelope: dict[str, Any]
