"""The resolver's decision logic, sans I/O (spec sections 6.4, 7.2 and 14).

Theory of operation
-------------------
Like dnspython's ``_Resolution``, one :class:`Resolution` object holds the
state of resolving one name and is driven by a transport loop::

    res = Resolution(name, cache, now=clock())
    while (request := res.next_request()) is not None:     # which registry to ask
        try:
            answer = await transport.resolve(request.registry, name)
        except UnavailableError as e:
            res.failed(request, e)                          # try the next registry
            continue
        res.answer(request, answer)                         # verify; maybe a referral
    return res.result()                                     # verified records, or raise

:meth:`Resolution.answer` verifies everything before trusting anything
([REQ-QRY-018], [REQ-SIG-030]): the proof from the trust anchor down (each
delegation and key rotation into the resolver's :class:`~cid.trust.TrustState`,
which refuses rollbacks of authority records), then each record against the
namespace governing the name, then each record's serial against the highest
serial this resolver ever accepted for the identity ([REQ-RES-004]). A referral
is followed only after its delegation verifies ([REQ-QRY-013]); a namespace
referred to twice is a loop, more than :data:`MAX_REFERRALS` referrals is too
deep, and more than ``budget`` queries for one resolution is refused.

The :class:`Cache` is pure too: positive entries live until the smallest of
the records' TTLs and never past any record's expiry ([REQ-RES-002]); NOT_FOUND
answers are cached for a bounded time in a bounded LRU ([REQ-RES-003]); an
entry whose TTL passed may be served stale, when the caller allows it, only
while the registries are unreachable, for at most ``stale_max_s`` and never past
a record's expiry ([REQ-RES-005]).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from .envelope import Envelope, SignedRecord
from .errors import (
    CidError,
    NotFoundError,
    QueryBudgetExceededError,
    ReferralDepthExceededError,
    ReferralLoopError,
    SchemaError,
    SerialRollbackError,
    UnavailableError,
)
from .identifier import Identifier
from .model import validate
from .query import ResolveResponse
from .record import OfferBody, RefreshBody
from .signing import PublicKey
from .trust import TrustState

__all__ = [
    "MAX_REFERRALS",
    "Answer",
    "Cache",
    "Request",
    "Resolution",
    "ResolverState",
]

MAX_REFERRALS: Final = 8
DEFAULT_BUDGET: Final = 16
DEFAULT_NEGATIVE_TTL_S: Final = 60


@dataclass(frozen=True, slots=True)
class Request:
    """Ask ``registry`` for the records of the resolution's name."""

    registry: str
    depth: int


@dataclass(frozen=True)
class Answer:
    """A verified answer: the records of one name, newest refresh applied."""

    name: Identifier
    records: tuple[SignedRecord[Any], ...]
    registry: str
    fresh_until: int
    """When the cache must ask again (smallest TTL; never past an expiry)."""
    expires: int
    """The earliest record expiry: nothing is served at or after it."""
    stale: bool = False

    def of_type(self, record_type: str) -> SignedRecord[Any] | None:
        return next((r for r in self.records if r.record_type == record_type), None)

    @property
    def offer(self) -> OfferBody | None:
        rec = self.of_type("offer")
        return rec.body if rec is not None and isinstance(rec.body, OfferBody) else None

    @property
    def units_free(self) -> int | None:
        """Free units: the refresh's figure when there is one, else the offer's."""
        refresh = self.of_type("refresh")
        if refresh is not None and isinstance(refresh.body, RefreshBody):
            return refresh.body.units_free
        offer = self.offer
        return None if offer is None else offer.availability.units_free


@dataclass
class _Negative:
    until: int


class Cache:
    """Verified answers by name, with bounded negative caching ([REQ-RES-002], [REQ-RES-003])."""

    def __init__(
        self,
        *,
        max_entries: int = 100_000,
        max_negative: int = 10_000,
        negative_ttl_s: int = DEFAULT_NEGATIVE_TTL_S,
    ) -> None:
        self._pos: OrderedDict[Identifier, Answer] = OrderedDict()
        self._neg: OrderedDict[Identifier, _Negative] = OrderedDict()
        self.max_entries = max_entries
        self.max_negative = max_negative
        self.negative_ttl_s = negative_ttl_s

    def get(self, name: Identifier, now: int) -> Answer | None:
        """A fresh answer, or ``None``."""
        answer = self._pos.get(name)
        if answer is None:
            return None
        if now >= answer.fresh_until:
            return None
        self._pos.move_to_end(name)
        return answer

    def get_stale(self, name: Identifier, now: int, stale_max_s: int) -> Answer | None:
        """An answer past its TTL but within ``stale_max_s`` of it and before any expiry."""
        answer = self._pos.get(name)
        if answer is None or now >= answer.expires or now >= answer.fresh_until + stale_max_s:
            return None
        return Answer(answer.name, answer.records, answer.registry, answer.fresh_until,
                      answer.expires, stale=True)  # fmt: skip

    def is_negative(self, name: Identifier, now: int) -> bool:
        entry = self._neg.get(name)
        if entry is None:
            return False
        if now >= entry.until:
            del self._neg[name]
            return False
        return True

    def put(self, answer: Answer) -> None:
        self._neg.pop(answer.name, None)
        self._pos[answer.name] = answer
        self._pos.move_to_end(answer.name)
        while len(self._pos) > self.max_entries:
            self._pos.popitem(last=False)

    def put_negative(self, name: Identifier, now: int) -> None:
        self._pos.pop(name, None)
        self._neg[name] = _Negative(now + self.negative_ttl_s)
        self._neg.move_to_end(name)
        while len(self._neg) > self.max_negative:
            self._neg.popitem(last=False)

    def __len__(self) -> int:
        return len(self._pos)

    @property
    def negative_count(self) -> int:
        return len(self._neg)


@dataclass
class ResolverState:
    """What outlives one resolution: trust, the highest serials seen, the cache."""

    trust: TrustState
    cache: Cache = field(default_factory=Cache)
    serials: dict[tuple[Identifier, str], int] = field(default_factory=dict)

    @classmethod
    def from_root_keys(cls, root_keys: Sequence[PublicKey], **cache: Any) -> ResolverState:
        return cls(TrustState(root_keys), Cache(**cache))


class Resolution:
    """The resolution of one name: which registry next, and what its answers mean."""

    def __init__(
        self,
        name: Identifier,
        state: ResolverState,
        registries: Sequence[str],
        *,
        now: int,
        budget: int = DEFAULT_BUDGET,
    ) -> None:
        if not registries:
            raise SchemaError(
                "a resolution needs at least one registry", detail={"rule": "registries"}
            )
        self.name = name
        self.state = state
        self.now = now
        self.budget = budget
        self.queries = 0
        self._candidates: list[str] = list(registries)
        self._depth = 0
        self._referred: set[Identifier] = set()
        self._result: Answer | None = None
        self._error: CidError | None = None
        self._last_failure: CidError | None = None

    # -- driving -------------------------------------------------------------------------------

    def next_request(self) -> Request | None:
        """The next registry to ask, or ``None`` when the resolution is over."""
        if self._result is not None or self._error is not None:
            return None
        if not self._candidates:
            self._error = self._last_failure or UnavailableError(
                f"no registry answered for {self.name}"
            )
            return None
        if self.queries >= self.budget:
            self._error = QueryBudgetExceededError(
                f"more than {self.budget} queries to resolve {self.name}",
                detail={"budget": self.budget},
            )
            return None
        self.queries += 1
        return Request(self._candidates[0], self._depth)

    def failed(self, request: Request, error: CidError) -> None:
        """The registry could not be reached (or failed): try the next one."""
        self._last_failure = error
        if self._candidates and self._candidates[0] == request.registry:
            self._candidates.pop(0)

    def not_found(self, request: Request, error: NotFoundError) -> None:
        """The governing registry says the name has no records ([REQ-QRY-014])."""
        self.state.cache.put_negative(self.name, self.now)
        self._error = error

    def answer(self, request: Request, value: Any) -> None:
        """Digest one resolve answer (a data-model value), verifying before trusting."""
        try:
            resp = validate(ResolveResponse, value, where="answer")
            if resp.name != self.name:
                raise SchemaError("answer for another name", field="answer.name",
                                  detail={"rule": "answer_name"})  # fmt: skip
            self._apply_proof(resp.proof)
            if resp.referral is not None:
                self._follow(resp)
                return
            self._result = self._verify_records(resp, request.registry)
            self.state.cache.put(self._result)
        except CidError as e:
            self._error = e

    def result(self) -> Answer:
        """The verified answer; raises the typed error the resolution ended with."""
        if self._result is not None:
            return self._result
        if self._error is not None:
            raise self._error
        raise UnavailableError(f"resolution of {self.name} did not finish")

    # -- verification --------------------------------------------------------------------------

    def _apply_proof(self, proof: Sequence[dict[str, Any]]) -> None:
        # REQ-QRY-018: authority records from the top down; each is verified
        # before it is applied, and a rolled-back one is refused by the trust state.
        for value in proof:
            self.state.trust.add(Envelope.from_value(value), now=self.now)

    def _follow(self, resp: ResolveResponse) -> None:
        referral = resp.referral
        assert referral is not None
        # REQ-QRY-013: verify the delegation before contacting the registries it names
        self.state.trust.add(Envelope.from_value(referral.delegation), now=self.now)
        if referral.namespace in self._referred:
            raise ReferralLoopError(
                f"referred to {referral.namespace} twice",
                detail={"namespace": referral.namespace.to_text()},
            )
        self._referred.add(referral.namespace)
        self._depth += 1
        if self._depth > MAX_REFERRALS:
            raise ReferralDepthExceededError(
                f"more than {MAX_REFERRALS} referrals", detail={"limit": MAX_REFERRALS}
            )
        self._candidates = [str(u).rstrip("/") for u in referral.registries]

    def _verify_records(self, resp: ResolveResponse, registry: str) -> Answer:
        trust = self.state.trust
        envelopes = list(resp.envelopes())
        for env in envelopes:
            identity = (env.header.sub, _identity_type(env))
            seen = self.state.serials.get(identity)
            # REQ-RES-004: never accept a serial below one already accepted for the identity
            if seen is not None and env.header.serial < seen:
                raise SerialRollbackError(
                    f"{identity[1]} of {identity[0]}: serial {env.header.serial} is below {seen}",
                    field="header.serial",
                    detail={"serial": env.header.serial, "seen": seen},
                )
        # refreshes first: a valid one keeps its offer version current past the offer's
        # own exp, and the offer is then checked for nbf/iat only (REQ-REC-062)
        refreshes = [
            trust.verify(e, now=self.now) for e in envelopes if e.header.typ.endswith(".refresh")
        ]
        records: list[SignedRecord[Any]] = []
        for env in envelopes:
            if env.header.typ.endswith(".refresh"):
                continue
            if env.header.typ.endswith(".offer") and any(
                r.body.base == env.digest() for r in refreshes
            ):
                trust.check_path(trust.namespace_for(env.header.sub), now=self.now)
                at = min(self.now, env.header.exp - 1)
                records.append(trust.verify(env, now=at, check_chain=False))
            else:
                records.append(trust.verify(env, now=self.now))
        offer = next((r for r in records if r.record_type == "offer"), None)
        for r in refreshes:
            # a refresh only counts for the offer version it names (REQ-REC-061)
            if offer is None or r.body.base != offer.envelope.digest():
                raise SchemaError("refresh for another offer version", field="body.base",
                                  detail={"rule": "stale_refresh"})  # fmt: skip
        records += refreshes
        if not records:
            raise NotFoundError(f"no records at {self.name}", field="name")
        for r in records:
            identity = (r.name, "offer" if r.record_type == "refresh" else r.record_type)
            self.state.serials[identity] = max(self.state.serials.get(identity, 0), r.serial)
        # REQ-RES-002: fresh for the smallest TTL, never past the earliest expiry
        expires = min(_effective_exp(r, records) for r in records if r.record_type != "refresh")
        ttl = min((r.header.ttl if r.header.ttl is not None else 300) for r in records)
        return Answer(self.name, tuple(records), registry, min(self.now + ttl, expires), expires)


def _identity_type(env: Envelope) -> str:
    rtype = env.header.typ.rsplit(".", 1)[-1]
    return "offer" if rtype == "refresh" else rtype


def _effective_exp(record: SignedRecord[Any], records: Sequence[SignedRecord[Any]]) -> int:
    if record.record_type == "offer":
        refresh = next((r for r in records if r.record_type == "refresh"), None)
        if refresh is not None:
            return max(record.header.exp, refresh.header.exp)
    return record.header.exp
