"""The provider side of negotiate (spec sections 8 and 15): state, idempotency, capacity.

Theory of operation
-------------------
A negotiation is named by the digest of its demand envelope ([REQ-NEG-005]) and
lives in a :class:`Negotiation` record. Its state only ever changes through
:meth:`Negotiation.apply`, which runs the pure transition table of
:func:`cid.negotiation.transition` (spec Table 8-11): an event that is not in
the table raises ``ILLEGAL_TRANSITION`` *before* anything is changed
([REQ-NEG-040]), and every applied transition is appended to the record's
``history`` so that tests can replay it against the table.

:class:`NegotiationBook` is the synchronous, I/O-free memory of the provider:
negotiations and their indexes (by quote id, by agreement id), the
idempotency memory of [REQ-NEG-025] (per requester key and key, with the
canonical body bytes' digest and the answer, kept ``idempotency_ttl_s``), and a
heap of deadlines ([REQ-NEG-043]) that :meth:`NegotiationBook.expire_due` pops.

:class:`Negotiator` is the asynchronous façade the HTTP handlers call. It adds
the three things that need ``await``: the capacity ledger, per-key locks, and
the policy's view of free units. One message is handled as follows:

* **demand** ([REQ-PRV-010]..): verify it with the key it names
  (:func:`~cid.negotiation.verify_demand`), recall its idempotency key, then
  price it from the offer version (:func:`cid.query.price_demand`) after the
  policy has chosen quantity, start, limits and terms. The answer (quote,
  counter or rejection) is signed with the service key and remembered.
  Demands with the same idempotency key are serialised by a lock on that key,
  so a retry racing the original waits for, and gets, the same answer.
* **accept** ([REQ-PRV-014]..): the quote id locates the negotiation, whose
  requester key is the only key the accept may be signed with. Under the
  negotiation's lock the negotiation moves to ``accepted`` *first* and then
  the units are reserved through the ledger ([REQ-PRV-021]); the ledger's
  check-and-insert is atomic, so of two accepts for the last unit exactly one
  wins. The loser's negotiation moves ``accepted -> rejected`` with a signed
  ``CAPACITY_EXHAUSTED`` rejection, and its HTTP answer is that error
  ([REQ-NEG-044]). If the clock passed the accepted deadline while the
  reservation was awaited, the reservation is released again.
* **agreement** ([REQ-PRV-016]): the countersigned envelope must verify with
  both parties' keys ([REQ-NEG-022]) and be exactly the message the provider
  signed; ``accepted -> agreed``.
* **withdraw** ([REQ-PRV-018]) and **settle**: a terminal transition; the
  cancellation fee is computed by :func:`~cid.negotiation.cancellation_fee`.

Capacity is held exactly while a negotiation is ``accepted`` with a
reservation or ``agreed``: every transition into a terminal state releases it
([REQ-PRV-023]), whether caused by a message, by settlement or by the passing of
a deadline (:meth:`Negotiator.sweep`, which the app runs before every request
and once a second). A negotiation is settled at most once because ``settle``
is only legal from ``agreed`` and ``settled`` is terminal.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from ..codec import encode_json
from ..envelope import MAX_VALIDITY_S, Envelope, seal
from ..errors import (
    AgreementExpiredError,
    AgreementNotFoundError,
    CapacityExhaustedError,
    CidError,
    DemandRejectedError,
    IdempotencyConflictError,
    IllegalTransitionError,
    InternalError,
    NegotiationError,
    NotFoundError,
    QuoteExpiredError,
    SchemaError,
    SerialRollbackError,
)
from ..identifier import Identifier
from ..model import decimal_to_text, validate
from ..negotiation import (
    TERMINAL_STATES,
    TYP_ACCEPT,
    TYP_AGREEMENT,
    TYP_COUNTER,
    TYP_QUOTE,
    TYP_REJECTION,
    TYP_WITHDRAW,
    Accept,
    Agreement,
    Counter,
    CounterReason,
    Demand,
    NegEvent,
    NegState,
    Quote,
    Rejection,
    RejectionReason,
    Requester,
    Terms,
    Withdraw,
    cancellation_fee,
    check_accept,
    check_audience,
    check_quote,
    deadline,
    transition,
    verify_agreement,
    verify_demand,
)
from ..query import ResourceDemand, per_unit_amount, price_demand, units_needed
from ..record import PricedResource
from ..signing import PublicKey, SigningKey
from .backend import CapacityLedger, OfferVersion, QuoteDecision, QuotePolicy, Reservation
from .policy import ListPricePolicy

__all__ = [
    "REJECTION_VALID_S",
    "SETTLEMENT_WINDOW_S",
    "Negotiation",
    "NegotiationBook",
    "Negotiator",
    "new_id",
    "priced_demand",
]

log = logging.getLogger("cid.provider")

SETTLEMENT_WINDOW_S: Final = 7 * 86_400
"""How long after its end an agreement can still be relied on (``expires - end``), at most."""

REJECTION_VALID_S: Final = 86_400
"""Validity window of a signed rejection envelope."""

# demand member for each priced resource other than ``unit`` (spec Table 4-7)
_DEMAND_MEMBER: Final[dict[str, str]] = {
    PricedResource.VCPU: "vcpu",
    PricedResource.MEMORY_GIB: "memory_mib",
    PricedResource.STORAGE_GIB: "storage_gib",
    PricedResource.ACCELERATOR: "accelerators",
    PricedResource.NODE: "nodes",
}


def new_id(prefix: str) -> str:
    """A fresh opaque id (``prefix-`` + 128 random bits in base64url): 16..64 characters."""
    return f"{prefix}-{secrets.token_urlsafe(16)}"


def _body_hash(envelope: Envelope) -> str:
    """Digest of the canonical body bytes: what "the same body" means in [REQ-NEG-025]."""
    return hashlib.sha256(encode_json(envelope.body_value)).hexdigest()


def _copy(err: CidError) -> CidError:
    """A fresh exception equal to ``err`` (an answer replayed from idempotency memory)."""
    return type(err)(err.message, field=err.field, detail=err.detail)


def priced_demand(demand: Demand, quantity: int, offer: OfferVersion) -> ResourceDemand:
    """What to price for an answer of ``quantity`` units (spec 7.6, [REQ-NEG-024]).

    The demand's own resources when they need exactly ``quantity`` units; for any
    other quantity (a counter) only the attached resources, those the unit does
    not hold, are kept, so that ``price.units`` is always ``quantity`` ([REQ-NEG-015]).
    """
    resources = demand.resource_demand()
    unit, price = offer.body.unit, offer.body.price
    if quantity == demand.quantity and units_needed(unit, resources, price) == quantity:
        return resources
    attached = {
        member: getattr(resources, member)
        for resource, member in _DEMAND_MEMBER.items()
        if per_unit_amount(resource, unit) == 0
    }
    return ResourceDemand(units=quantity, **attached)


# --- one negotiation ---------------------------------------------------------------------------


@dataclass
class Negotiation:
    """The provider's record of one negotiation ([REQ-NEG-005])."""

    digest: str
    demand: Demand
    demand_env: Envelope
    created: int
    offer: OfferVersion | None = None
    state: NegState = NegState.DEMANDED
    last_serial: int = 1
    quote: Quote | None = None
    quote_env: Envelope | None = None
    rejection_env: Envelope | None = None
    agreement: Agreement | None = None
    agreement_env: Envelope | None = None
    """The agreement as the provider signed it (one signature)."""
    cosigned_env: Envelope | None = None
    """The agreement with both signatures, once received ([REQ-NEG-022])."""
    reserved: bool = False
    """Whether the ledger holds this negotiation's units."""
    amount_due: Decimal | None = None
    """Set on withdrawal from an agreement (the fee) or on settlement (the total)."""
    settlements: int = 0
    closed_at: int | None = None
    withdrawals: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: list[tuple[NegState, NegEvent, NegState, int]] = field(default_factory=list)

    @property
    def requester_key(self) -> PublicKey:
        return self.demand.requester_key

    @property
    def agreement_id(self) -> str | None:
        return self.agreement.agreement_id if self.agreement is not None else None

    def deadline(self) -> int | None:
        """When the current state expires on its own ([REQ-NEG-043])."""
        quote_expires = self.quote.expires if self.quote is not None else None
        if self.state in (NegState.QUOTED, NegState.COUNTERED, NegState.ACCEPTED) and (
            quote_expires is None
        ):
            return None  # cannot happen: those states are reached with a quote
        return deadline(
            self.state, demand_exp=self.demand_env.header.exp, quote_expires=quote_expires
        )

    def check(self, event: NegEvent) -> NegState:
        """The state ``event`` would lead to; raises ILLEGAL_TRANSITION, changes nothing."""
        return transition(self.state, event)

    def apply(self, event: NegEvent, *, now: int) -> NegState:
        """Apply ``event`` by the table ([REQ-NEG-040]); the only way the state changes."""
        before = self.state
        after = transition(before, event)
        self.state = after
        self.history.append((before, event, after, now))
        if after in TERMINAL_STATES:
            self.closed_at = now
        return after

    def view(self, *, now: int) -> dict[str, Any]:
        """The negotiation as ``GET /v1/negotiate/{demand}`` shows it ([REQ-PRV-019])."""
        out: dict[str, Any] = {
            "demand": self.digest,
            "state": self.state.value,
            "offer": self.demand.offer.to_text(),
            "requester": {"kid": self.requester_key.kid},
        }
        due = self.deadline()
        if due is not None:
            out["deadline"] = due
        if self.quote_env is not None:
            out["quote"] = self.quote_env.to_value()
        if self.rejection_env is not None:
            out["rejection"] = self.rejection_env.to_value()
        if self.agreement is not None:
            out["agreement_id"] = self.agreement.agreement_id
        env = self.cosigned_env or self.agreement_env
        if env is not None:
            out["agreement"] = env.to_value()
        if self.amount_due is not None and self.agreement is not None:
            out["amount_due"] = {
                "currency": self.agreement.price.currency,
                "total": decimal_to_text(self.amount_due),
            }
        return out


# --- the book ----------------------------------------------------------------------------------


@dataclass
class _Remembered:
    body_hash: str
    answer: Envelope | CidError
    until: int


class NegotiationBook:
    """All negotiations of one provider, their indexes, deadlines and idempotency memory.

    Synchronous and I/O-free: every method takes ``now``.
    """

    def __init__(self, *, idempotency_ttl_s: int) -> None:
        self.idempotency_ttl_s = idempotency_ttl_s
        self.negotiations: dict[str, Negotiation] = {}
        self._by_quote: dict[str, str] = {}
        self._by_agreement: dict[str, str] = {}
        self._remembered: dict[tuple[str, str], _Remembered] = {}
        self._forget_heap: list[tuple[int, str, str]] = []
        self._deadlines: list[tuple[int, str]] = []
        self._next_scan = 0

    # -- indexes --------------------------------------------------------------------------

    def add(self, neg: Negotiation) -> None:
        self.negotiations[neg.digest] = neg
        self.watch(neg)

    def index_quote(self, neg: Negotiation) -> None:
        if neg.quote is not None:
            self._by_quote[neg.quote.quote_id] = neg.digest

    def index_agreement(self, neg: Negotiation) -> None:
        if neg.agreement is not None:
            self._by_agreement[neg.agreement.agreement_id] = neg.digest

    def by_quote(self, quote_id: str) -> Negotiation | None:
        digest = self._by_quote.get(quote_id)
        return self.negotiations.get(digest) if digest is not None else None

    def by_agreement(self, agreement_id: str) -> Negotiation | None:
        digest = self._by_agreement.get(agreement_id)
        return self.negotiations.get(digest) if digest is not None else None

    def watch(self, neg: Negotiation) -> None:
        """(Re-)schedule ``neg``'s current deadline; call after every state change."""
        due = neg.deadline()
        if due is not None:
            heapq.heappush(self._deadlines, (due, neg.digest))

    # -- idempotency (REQ-NEG-025) -------------------------------------------------------------

    def recall(self, kid: str, key: str, body_hash: str, *, now: int) -> Envelope | None:
        """The remembered answer to ``(kid, key)``, or ``None`` if there is none.

        Raises:
            IdempotencyConflictError: the key was used with another body.
            CidError: the remembered answer was that error (raised again).
        """
        entry = self._remembered.get((kid, key))
        if entry is None or entry.until <= now:
            return None
        if entry.body_hash != body_hash:
            raise IdempotencyConflictError(
                "idempotency_key reused with another body",
                field="body.idempotency_key",
                detail={"idempotency_key": key},
            )
        if isinstance(entry.answer, CidError):
            raise _copy(entry.answer)
        return entry.answer

    def remember(
        self, kid: str, key: str, body_hash: str, answer: Envelope | CidError, *, now: int
    ) -> None:
        until = now + self.idempotency_ttl_s
        self._remembered[(kid, key)] = _Remembered(body_hash, answer, until)
        heapq.heappush(self._forget_heap, (until, kid, key))

    # -- time -------------------------------------------------------------------------------

    def expire_due(self, now: int) -> list[Negotiation]:
        """Apply ``expire`` to every negotiation whose deadline has come ([REQ-NEG-043]).

        Returns the negotiations that expired (the caller releases their capacity).
        """
        expired: list[Negotiation] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, digest = heapq.heappop(self._deadlines)
            neg = self.negotiations.get(digest)
            if neg is None:
                continue
            due = neg.deadline()
            if due is None or due > now or (neg.state, NegEvent.EXPIRE) not in _EXPIRABLE:
                continue  # a stale entry: the state moved on (its new deadline is queued)
            neg.apply(NegEvent.EXPIRE, now=now)
            expired.append(neg)
        return expired

    def forget_old(self, now: int, *, retain_s: int) -> int:
        """Drop idempotency entries past their TTL and negotiations closed ``retain_s`` ago.

        Closed negotiations are looked for at most every ``retain_s / 16`` seconds
        of the clock, so that calling this before every request stays cheap.
        """
        while self._forget_heap and self._forget_heap[0][0] <= now:
            until, kid, key = heapq.heappop(self._forget_heap)
            entry = self._remembered.get((kid, key))
            if entry is not None and entry.until == until:
                del self._remembered[(kid, key)]
        if now < self._next_scan:
            return 0
        self._next_scan = now + max(1, retain_s // 16)
        old = [
            d
            for d, n in self.negotiations.items()
            if n.closed_at is not None and n.closed_at + retain_s <= now and not n.reserved
        ]
        for d in old:
            neg = self.negotiations.pop(d)
            if neg.quote is not None:
                self._by_quote.pop(neg.quote.quote_id, None)
            if neg.agreement is not None:
                self._by_agreement.pop(neg.agreement.agreement_id, None)
        return len(old)


_EXPIRABLE: Final = frozenset(
    (s, NegEvent.EXPIRE)
    for s in (NegState.DEMANDED, NegState.QUOTED, NegState.COUNTERED, NegState.ACCEPTED)
)


class _KeyedLocks:
    """One :class:`asyncio.Lock` per key, created on demand and dropped when unused."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def _str_member(envelope: Envelope, name: str) -> str:
    value = envelope.body_value.get(name)
    if not isinstance(value, str):
        raise SchemaError(
            f"body.{name} is required and is a string",
            field=f"body.{name}",
            detail={"rule": "missing" if value is None else "string_type"},
        )
    return value


def _require_typ(envelope: Envelope, typ: str) -> None:
    if envelope.header.typ != typ:
        raise SchemaError(
            f"typ {envelope.header.typ!r} where {typ!r} expected",
            field="header.typ",
            detail={"rule": "typ"},
        )


# --- the async façade ----------------------------------------------------------------------------

AgreementEnded = Callable[[str], Awaitable[None]]


class Negotiator:
    """Negotiate for one provider namespace: the logic behind ``/v1/negotiate/*``.

    Args:
        namespace: the provider namespace (``aud`` of requester messages, ``provider``
            of agreements).
        service_key: a service key of the namespace's zone record; signs every answer.
        offers: the current version of an offer by name, or ``None``.
        policy: quote, counter or reject ([REQ-PRV-010]).
        ledger: capacity reservations ([REQ-PRV-021]).
        clock: integer seconds since the epoch.
        idempotency_ttl_s: how long idempotency keys are remembered ([REQ-NEG-025]).
    """

    def __init__(
        self,
        *,
        namespace: Identifier,
        service_key: SigningKey,
        offers: Callable[[Identifier], OfferVersion | None],
        policy: QuotePolicy,
        ledger: CapacityLedger,
        clock: Callable[[], int],
        idempotency_ttl_s: int = 86_400,
    ) -> None:
        self.namespace = namespace
        self.service_key = service_key
        self.offers = offers
        self.policy = policy
        self.ledger = ledger
        self.clock = clock
        self.book = NegotiationBook(idempotency_ttl_s=idempotency_ttl_s)
        self._locks = _KeyedLocks()
        self._fallback = ListPricePolicy()
        self.on_agreement_end: AgreementEnded | None = None
        """Called with an agreement id when an agreed agreement ends (withdrawn, settled)."""

    @property
    def provider_keys(self) -> dict[str, PublicKey]:
        return {self.service_key.kid: self.service_key.public_key}

    # -- demand ------------------------------------------------------------------------------

    async def demand(self, envelope: Envelope) -> Envelope:
        """Answer a demand with a signed quote, counter or rejection ([REQ-PRV-010])."""
        now = self.clock()
        demand = verify_demand(envelope, provider=self.namespace, now=now)
        kid, key, body_hash = demand.requester_key.kid, demand.idempotency_key, _body_hash(envelope)
        async with self._locks.hold(("idem", kid, key)):
            # REQ-NEG-025: the same key and body get the first answer, nothing new is created
            remembered = self.book.recall(kid, key, body_hash, now=now)
            if remembered is not None:
                return remembered
            existing = self.book.negotiations.get(envelope.digest())
            if existing is not None and existing.quote_env is not None:
                return existing.quote_env
            if existing is not None and existing.rejection_env is not None:
                return existing.rejection_env
            neg = Negotiation(envelope.digest(), demand, envelope, created=now)
            answer = await self._answer(neg, now=now)
            self.book.add(neg)
            self.book.index_quote(neg)
            self.book.remember(kid, key, body_hash, answer, now=now)
            return answer

    def _reject(
        self,
        neg: Negotiation,
        reason: RejectionReason,
        message: str | None,
        *,
        now: int,
        retry_after_s: int | None = None,
    ) -> Envelope:
        rejection = Rejection(
            demand=neg.digest,
            quote_id=neg.quote.quote_id if neg.quote is not None else None,
            reason=reason,
            message=message[:256] if message else None,
            retry_after_s=retry_after_s,
        )
        serial = neg.last_serial + 1
        env = seal(
            rejection,
            typ=TYP_REJECTION,
            sub=neg.demand.offer,
            serial=serial,
            key=self.service_key,
            nbf=now,
            exp=now + REJECTION_VALID_S,
        )
        neg.apply(NegEvent.REJECT, now=now)
        neg.last_serial = serial
        neg.rejection_env = env
        return env

    async def _answer(self, neg: Negotiation, *, now: int) -> Envelope:
        demand = neg.demand
        offer = self.offers(demand.offer)
        # REQ-PRV-011: only the current, unexpired version of an offer is priced
        if offer is None:
            return self._reject(neg, RejectionReason.DEMAND_REJECTED, "no such offer here", now=now)
        neg.offer = offer
        if offer.expires <= now:
            return self._reject(
                neg, RejectionReason.DEMAND_REJECTED, "the offer has expired", now=now
            )
        if offer.serial != demand.offer_serial:
            return self._reject(
                neg,
                RejectionReason.DEMAND_REJECTED,
                f"offer version {demand.offer_serial} is not current; the current one is "
                f"{offer.serial}",
                now=now,
            )
        if demand.voucher is not None:
            # REQ-NEG-013: this SDK redeems no vouchers
            return self._reject(
                neg, RejectionReason.VOUCHER_INVALID, "vouchers are not accepted", now=now
            )
        if offer.body.price.currency != demand.max_price.currency:
            # REQ-QRY-064: never converted
            return self._reject(
                neg,
                RejectionReason.PRICE_ABOVE_LIMIT,
                f"the offer is priced in {offer.body.price.currency}",
                now=now,
            )
        resources = demand.resource_demand()
        capacity = offer.body.availability.units_total
        at = max(now, demand.start_after)
        free = await self.ledger.free(offer.name, at=at, capacity=capacity)
        decision = self.policy.decide(demand, offer, free_units=free, resources=resources, now=now)
        if decision.reject is not None:
            return self._reject(
                neg,
                RejectionReason(decision.reject),
                decision.message,
                now=now,
                retry_after_s=decision.retry_after_s,
            )
        return self._quote(neg, offer, decision, free=free, now=now)

    def _quote(
        self,
        neg: Negotiation,
        offer: OfferVersion,
        decision: QuoteDecision,
        *,
        free: int,
        now: int,
    ) -> Envelope:
        demand = neg.demand
        quantity, duration_s, start = decision.quantity, decision.duration_s, decision.start
        reason = CounterReason(decision.counter) if decision.counter is not None else None
        message = decision.message
        if reason is None:
            # a policy that answers "quote" but changed something makes a counter (REQ-NEG-014)
            if quantity != demand.quantity:
                reason = CounterReason.QUANTITY
            elif duration_s != demand.duration_s:
                reason = CounterReason.DURATION
            elif not demand.start_after <= start <= demand.start_before:
                reason = CounterReason.START
        if quantity > free:
            return self._reject(
                neg,
                RejectionReason.CAPACITY_EXHAUSTED,
                f"{quantity} units needed, {free} free",
                now=now,
                retry_after_s=decision.retry_after_s,
            )
        try:
            price = price_demand(
                offer.body.price,
                offer.body.unit,
                priced_demand(demand, quantity, offer),
                duration_s,
            )
        except DemandRejectedError as e:
            return self._reject(neg, RejectionReason.DEMAND_REJECTED, e.message, now=now)
        if reason is None and price.total > demand.max_price.total:
            # REQ-PRV-012: never a quote above max_price; the counter states the price
            reason = CounterReason.PRICE
            message = f"the price is {decimal_to_text(price.total)} {price.currency}"
        end = start + duration_s
        if end + 1 - now > MAX_VALIDITY_S or start < now:
            return self._reject(
                neg,
                RejectionReason.DEMAND_REJECTED,
                "the period cannot be covered by a signed agreement",
                now=now,
            )
        expires = min(now + max(1, decision.valid_s), offer.expires)
        limits = decision.limits or self._fallback.limits_for(offer, quantity, duration_s)
        terms: Terms = decision.terms or self._fallback.terms()
        value: dict[str, Any] = {
            "quote_id": new_id("quote"),
            "demand": neg.digest,
            "offer": offer.name.to_text(),
            "offer_serial": offer.serial,
            "offer_digest": offer.digest,
            "quantity": quantity,
            "duration_s": duration_s,
            "start": start,
            "price": price.to_value(),
            "limits": limits.to_value(),
            "terms": terms.to_value(),
            "expires": expires,
        }
        try:
            quote: Quote
            if reason is None:
                quote = validate(Quote, value, where="quote")
                check_quote(demand, neg.digest, quote)  # REQ-NEG-014: our own quote answers it
            else:
                value["reason"] = reason.value
                if message:
                    value["message"] = message[:256]
                quote = validate(Counter, value, where="counter")
        except CidError as e:
            log.error("policy answer breaks the quote rules: %s", e)
            raise InternalError("the provider's policy produced an invalid quote") from e
        serial = neg.last_serial + 1
        env = seal(
            quote,
            typ=TYP_QUOTE if reason is None else TYP_COUNTER,
            sub=demand.offer,
            serial=serial,
            key=self.service_key,
            nbf=now,
            exp=expires,
        )
        neg.apply(NegEvent.QUOTE if reason is None else NegEvent.COUNTER, now=now)
        neg.quote, neg.quote_env, neg.last_serial = quote, env, serial
        return env

    # -- accept ------------------------------------------------------------------------------

    async def accept(self, envelope: Envelope) -> Envelope:
        """Turn an accept into the provider-signed agreement, reserving capacity ([REQ-PRV-014])."""
        now = self.clock()
        _require_typ(envelope, TYP_ACCEPT)
        quote_id = _str_member(envelope, "quote_id")
        neg = self.book.by_quote(quote_id)
        if neg is None:
            # REQ-NEG-018: an accept of a quote not issued here
            raise NegotiationError(
                "no quote with this quote_id", field="body.quote_id", detail={"rule": "quote_ref"}
            )
        async with self._locks.hold(("neg", neg.digest)):
            key = neg.requester_key
            # REQ-NEG-006: only the demand's requester key may sign the accept
            envelope.verify({key.kid: key}, typ=TYP_ACCEPT, now=now)
            check_audience(envelope, self.namespace)
            accept = validate(Accept, envelope.body_value, where="body")
            body_hash = _body_hash(envelope)
            remembered = self.book.recall(key.kid, accept.idempotency_key, body_hash, now=now)
            if remembered is not None:
                return remembered
            try:
                answer = await self._accept(neg, envelope, accept, now=now)
            except CidError as err:
                self.book.remember(key.kid, accept.idempotency_key, body_hash, err, now=now)
                raise
            self.book.remember(key.kid, accept.idempotency_key, body_hash, answer, now=now)
            return answer

    async def _accept(
        self, neg: Negotiation, envelope: Envelope, accept: Accept, *, now: int
    ) -> Envelope:
        quote, quote_env = neg.quote, neg.quote_env
        if quote is None or quote_env is None:  # pragma: no cover - indexed by its quote
            raise IllegalTransitionError("nothing to accept", detail={"state": neg.state.value})
        if neg.state in (NegState.QUOTED, NegState.COUNTERED) and now >= quote.expires:
            # REQ-NEG-018: QUOTE_EXPIRED at or after expires; the negotiation expires with it
            await self._expire(neg, now=now)
        check_accept(quote, quote_env.digest(), accept, now=now)
        neg.check(NegEvent.ACCEPT)
        if envelope.header.serial <= neg.last_serial:
            raise SerialRollbackError(
                f"serial {envelope.header.serial} is not above {neg.last_serial}",
                field="header.serial",
                detail={"serial": envelope.header.serial, "last": neg.last_serial},
            )
        neg.apply(NegEvent.ACCEPT, now=now)
        neg.last_serial = envelope.header.serial
        self.book.watch(neg)
        offer = self.offers(quote.offer) or neg.offer
        capacity = offer.body.availability.units_total if offer is not None else 0
        agreement = self._agreement(neg, quote, now=now)
        reservation = Reservation(
            agreement_id=agreement.agreement_id,
            offer=quote.offer,
            quantity=quote.quantity,
            start=agreement.start,
            end=agreement.end,
        )
        try:
            # REQ-PRV-021, REQ-PRV-022: the ledger checks and reserves atomically
            await self.ledger.reserve(reservation, capacity=capacity)
        except CapacityExhaustedError as e:
            if neg.state is NegState.ACCEPTED:
                # REQ-NEG-044: an accepted quote that cannot be served is rejected
                self._reject(
                    neg, RejectionReason.CAPACITY_EXHAUSTED, "the units were taken", now=now
                )
            raise CapacityExhaustedError(
                e.message,
                field="body.quote_id",
                detail={**e.detail, "demand": neg.digest, "retry_after_s": 60},
            ) from e
        if neg.state is not NegState.ACCEPTED:
            # the accepted deadline passed while the ledger was awaited
            await self.ledger.release(agreement.agreement_id)
            raise IllegalTransitionError(
                "the negotiation expired while capacity was reserved",
                detail={"state": neg.state.value, "event": NegEvent.AGREE.value},
            )
        neg.reserved = True
        neg.agreement = agreement
        neg.agreement_env = seal(
            agreement,
            typ=TYP_AGREEMENT,
            sub=agreement.offer,
            serial=neg.last_serial + 1,
            key=self.service_key,
            nbf=now,
            exp=agreement.expires,
        )
        neg.last_serial += 1
        self.book.index_agreement(neg)
        return neg.agreement_env

    def _agreement(self, neg: Negotiation, quote: Quote, *, now: int) -> Agreement:
        start = quote.start
        end = start + quote.duration_s
        # REQ-PRV-015: the envelope (nbf = now, exp = expires) fits in 400 days
        window = min(SETTLEMENT_WINDOW_S, MAX_VALIDITY_S - (end - now))
        value = {
            "agreement_id": new_id("agr"),
            "quote_id": quote.quote_id,
            "provider": self.namespace.to_text(),
            "requester": Requester(kid=neg.requester_key.kid).to_value(),
            "offer": quote.offer.to_text(),
            "offer_serial": quote.offer_serial,
            "offer_digest": quote.offer_digest,
            "quantity": quote.quantity,
            "duration_s": quote.duration_s,
            "start": start,
            "end": end,
            "price": quote.price.to_value(),
            "limits": quote.limits.to_value(),
            "terms": quote.terms.to_value(),
            "expires": end + max(0, window),
        }
        return validate(Agreement, value, where="agreement")

    # -- agreement -----------------------------------------------------------------------------

    async def countersign(self, envelope: Envelope) -> dict[str, Any]:
        """Take the agreement back with the requester's signature ([REQ-PRV-016])."""
        now = self.clock()
        _require_typ(envelope, TYP_AGREEMENT)
        agreement_id = _str_member(envelope, "agreement_id")
        neg = self.book.by_agreement(agreement_id)
        if neg is None or neg.agreement_env is None:
            raise AgreementNotFoundError(
                "no agreement with this agreement_id here",
                field="body.agreement_id",
                detail={"agreement_id": agreement_id},
            )
        async with self._locks.hold(("neg", neg.digest)):
            # REQ-NEG-022: one provider service key and the requester key, nothing else
            verify_agreement(
                envelope,
                provider_keys=self.provider_keys,
                requester_key=neg.requester_key,
                now=now,
            )
            if envelope.digest() != neg.agreement_env.digest():
                raise NegotiationError(
                    "the agreement differs from the one issued",
                    field="body",
                    detail={"rule": "agreement_terms"},
                )
            answer = {"state": NegState.AGREED.value, "agreement_id": agreement_id}
            if neg.state is NegState.AGREED:
                return {**answer, "demand": neg.digest}  # a repeat gets the same answer
            await self._expire_if_due(neg, now=now)
            neg.apply(NegEvent.AGREE, now=now)
            neg.cosigned_env = envelope
            neg.last_serial = max(neg.last_serial, envelope.header.serial)
            return {**answer, "demand": neg.digest}

    # -- withdraw -----------------------------------------------------------------------------

    async def withdraw(self, envelope: Envelope) -> dict[str, Any]:
        """Withdraw a demand, quote or agreement for the requester ([REQ-PRV-018])."""
        now = self.clock()
        _require_typ(envelope, TYP_WITHDRAW)
        body = validate(Withdraw, envelope.body_value, where="body")
        neg = self._find(body)
        async with self._locks.hold(("neg", neg.digest)):
            key = neg.requester_key
            envelope.verify({key.kid: key}, typ=TYP_WITHDRAW, now=now)
            check_audience(envelope, self.namespace)
            digest = envelope.digest()
            if digest in neg.withdrawals:
                return neg.withdrawals[digest]
            await self._expire_if_due(neg, now=now)
            neg.check(NegEvent.WITHDRAW)
            if envelope.header.serial <= neg.last_serial:
                raise SerialRollbackError(
                    f"serial {envelope.header.serial} is not above {neg.last_serial}",
                    field="header.serial",
                    detail={"serial": envelope.header.serial, "last": neg.last_serial},
                )
            was_agreed = neg.state is NegState.AGREED
            neg.apply(NegEvent.WITHDRAW, now=now)
            neg.last_serial = envelope.header.serial
            answer: dict[str, Any] = {"state": neg.state.value, "demand": neg.digest}
            if was_agreed and neg.agreement is not None:
                # REQ-NEG-031: the fee replaces the price total
                fee = cancellation_fee(neg.agreement, now=now)
                neg.amount_due = fee
                answer["agreement_id"] = neg.agreement.agreement_id
                answer["cancellation_fee"] = {
                    "currency": neg.agreement.price.currency,
                    "total": decimal_to_text(fee),
                }
            neg.withdrawals[digest] = answer
            await self._closed(neg, agreed=was_agreed)
            return answer

    def _find(self, body: Withdraw) -> Negotiation:
        if body.agreement_id is not None:
            neg = self.book.by_agreement(body.agreement_id)
            if neg is None:
                raise AgreementNotFoundError(
                    "no agreement with this agreement_id here", field="body.agreement_id"
                )
            return neg
        if body.quote_id is not None:
            neg = self.book.by_quote(body.quote_id)
            if neg is None:
                raise NegotiationError(
                    "no quote with this quote_id",
                    field="body.quote_id",
                    detail={"rule": "quote_ref"},
                )
            return neg
        found = self.book.negotiations.get(body.demand or "")
        if found is None:
            raise NotFoundError("no negotiation for this demand", field="body.demand")
        return found

    # -- settlement ---------------------------------------------------------------------------

    async def settle(self, agreement_id: str) -> Decimal:
        """Record that an agreement's amount due was settled (out of band); at most once.

        Returns:
            The amount settled: the price total.

        Raises:
            AgreementNotFoundError: no such agreement.
            IllegalTransitionError: the agreement is not ``agreed`` (already settled,
                withdrawn, never countersigned, expired).
        """
        now = self.clock()
        neg = self.book.by_agreement(agreement_id)
        if neg is None or neg.agreement is None:
            raise AgreementNotFoundError("no such agreement", detail={"agreement_id": agreement_id})
        async with self._locks.hold(("neg", neg.digest)):
            neg.apply(NegEvent.SETTLE, now=now)
            neg.settlements += 1
            neg.amount_due = neg.agreement.price.total
            await self._closed(neg, agreed=True)
            return neg.amount_due

    # -- time and capacity -------------------------------------------------------------------

    async def _closed(self, neg: Negotiation, *, agreed: bool) -> None:
        """A negotiation reached a terminal state: release its units ([REQ-PRV-023])."""
        if neg.reserved and neg.agreement is not None:
            neg.reserved = False
            await self.ledger.release(neg.agreement.agreement_id)
        if agreed and neg.agreement is not None and self.on_agreement_end is not None:
            await self.on_agreement_end(neg.agreement.agreement_id)

    async def _expire(self, neg: Negotiation, *, now: int) -> None:
        neg.apply(NegEvent.EXPIRE, now=now)
        await self._closed(neg, agreed=False)
        raise QuoteExpiredError(
            f"quote expired at {neg.quote.expires if neg.quote else now}",
            field="body.quote_id",
            detail={"demand": neg.digest, "now": now},
        )

    async def _expire_if_due(self, neg: Negotiation, *, now: int) -> None:
        due = neg.deadline()
        if due is not None and now >= due and (neg.state, NegEvent.EXPIRE) in _EXPIRABLE:
            neg.apply(NegEvent.EXPIRE, now=now)
            await self._closed(neg, agreed=False)

    async def sweep(self) -> list[str]:
        """Expire what is due and release its capacity ([REQ-NEG-043], [REQ-PRV-017]).

        Returns the demand digests of the negotiations that expired.
        """
        now = self.clock()
        expired = self.book.expire_due(now)
        for neg in expired:
            await self._closed(neg, agreed=False)
        self.book.forget_old(now, retain_s=self.book.idempotency_ttl_s)
        return [n.digest for n in expired]

    # -- reading -----------------------------------------------------------------------------

    async def status(self, demand_digest: str) -> dict[str, Any]:
        """The negotiation's state and messages ([REQ-PRV-019])."""
        now = self.clock()
        neg = self.book.negotiations.get(demand_digest)
        if neg is None:
            raise NotFoundError("no negotiation for this demand digest", field="demand", detail={})
        await self._expire_if_due(neg, now=now)
        return neg.view(now=now)

    def held_agreement(self, agreement_id: str) -> tuple[Agreement, PublicKey]:
        """The agreement a task may run under, with its requester key ([REQ-PRV-030]).

        Raises:
            AgreementNotFoundError: unknown here, or not countersigned (rule ``not_agreed``).
            AgreementExpiredError: withdrawn, settled or expired (rule ``agreement_state``).
        """
        neg = self.book.by_agreement(agreement_id)
        if neg is None or neg.agreement is None:
            raise AgreementNotFoundError(
                "no agreement with this agreement_id here",
                field="body.agreement_id",
                detail={"rule": "agreement"},
            )
        if neg.state is NegState.AGREED and neg.cosigned_env is not None:
            return neg.agreement, neg.requester_key
        if neg.state is NegState.ACCEPTED:
            raise AgreementNotFoundError(
                "the agreement has not been countersigned",
                field="body.agreement_id",
                detail={"rule": "not_agreed"},
            )
        raise AgreementExpiredError(
            f"the agreement is {neg.state.value}",
            field="body.agreement_id",
            detail={"rule": "agreement_state", "state": neg.state.value},
        )

    def knows(self, agreement_id: str) -> bool:
        """Whether ``agreement_id`` was issued here (in any state still remembered)."""
        return self.book.by_agreement(agreement_id) is not None
