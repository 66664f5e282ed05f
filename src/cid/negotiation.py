"""The negotiate verb at message level (spec section 8): demand, quote, agreement.

Theory of operation
-------------------
A negotiation is a short exchange of signed envelopes between a requester and
the provider that published an offer ([REQ-NEG-001]). Every message is the
body of an envelope (:func:`cid.envelope.seal`) whose ``typ`` names the
message ([REQ-NEG-002]) and whose ``sub`` is the offer's identifier:

==================  =================  ==================================
message             ``typ``            signed by
==================  =================  ==================================
:class:`Demand`     cid.neg.demand     requester
:class:`Quote`      cid.neg.quote      provider service key
:class:`Counter`    cid.neg.counter    provider service key
:class:`Rejection`  cid.neg.rejection  either party
:class:`Accept`     cid.neg.accept     requester
:class:`Agreement`  cid.neg.agreement  provider service key AND requester
:class:`Withdraw`   cid.neg.withdraw   either party
==================  =================  ==================================

Messages refer to each other by envelope digest (:meth:`Envelope.digest`,
SHA-256 of the canonical signed message), never by mutable fields: a quote
names the demand it answers, an accept names the quote it accepts, and an
agreement pins the exact offer record version (name, serial, digest) it was
made against ([REQ-NEG-010]). Nothing in a later message can therefore point
at something other than what the other party signed.

The state of one negotiation is driven by a pure transition table
(:data:`TRANSITIONS`, spec 8.4). Each received message is one event; so is
the passing of a deadline (:func:`deadline`, :func:`expire_if_due`). Anything
not in the table is an :class:`~cid.errors.IllegalTransitionError`
([REQ-NEG-040]). The cross-message checks (:func:`check_quote`,
:func:`check_accept`, :func:`check_agreement`, :func:`verify_agreement`) are
pure too: a provider app and a requester client run the same code.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Annotated, Final

from pydantic import Field, model_validator

from .envelope import Envelope
from .errors import (
    CapacityExhaustedError,
    DemandRejectedError,
    IllegalTransitionError,
    NegotiationError,
    PriceAboveLimitError,
    QuoteExpiredError,
    SchemaError,
    SignatureInvalidError,
    VerificationError,
    VoucherInvalidError,
)
from .identifier import Identifier
from .model import UInt, WireModel, validate
from .query import (
    MAX_UNITS,
    CostBreakdown,
    Digest,
    EnvelopeValue,
    ResourceDemand,
    round_cost,
    rule_violation,
)
from .record import Currency, NonNegDecimal, Share, ShortText
from .signing import PublicKey

__all__ = [
    "ACCEPT_GRACE_S",
    "MAX_AGREEMENT_S",
    "MESSAGE_BODIES",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "TYP_ACCEPT",
    "TYP_AGREEMENT",
    "TYP_COUNTER",
    "TYP_DEMAND",
    "TYP_QUOTE",
    "TYP_REJECTION",
    "TYP_WITHDRAW",
    "Accept",
    "Agreement",
    "Cancellation",
    "Counter",
    "CounterReason",
    "Demand",
    "MaxPrice",
    "NegEvent",
    "NegState",
    "Quote",
    "Rejection",
    "RejectionReason",
    "Requester",
    "Sla",
    "TaskLimits",
    "Terms",
    "Withdraw",
    "cancellation_fee",
    "check_accept",
    "check_agreement",
    "check_audience",
    "check_quote",
    "deadline",
    "event_for_typ",
    "expire_if_due",
    "parse_message",
    "transition",
    "verify_agreement",
    "verify_demand",
]

TYP_DEMAND: Final = "cid.neg.demand"
TYP_QUOTE: Final = "cid.neg.quote"
TYP_COUNTER: Final = "cid.neg.counter"
TYP_REJECTION: Final = "cid.neg.rejection"
TYP_ACCEPT: Final = "cid.neg.accept"
TYP_AGREEMENT: Final = "cid.neg.agreement"
TYP_WITHDRAW: Final = "cid.neg.withdraw"

ACCEPT_GRACE_S: Final = 60
"""How long after a quote's ``expires`` an accepted negotiation may wait for the agreement."""

OpaqueId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{16,64}$", strict=True)]
"""Quote, agreement and idempotency identifiers: 16..64 base64url characters."""

KeyId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{22}$", strict=True)]
Serial = Annotated[int, Field(ge=1, le=2**53 - 1, strict=True)]
Units = Annotated[int, Field(ge=1, le=MAX_UNITS, strict=True)]
MAX_AGREEMENT_S: Final = 31_536_000
"""Longest negotiated duration: 365 days, so that an agreement's envelope (at most
400 days, [REQ-SIG-033]) can stay valid from before its start to after its end ([REQ-NEG-026])."""

Duration = Annotated[int, Field(ge=1, le=MAX_AGREEMENT_S, strict=True)]
PositiveUInt = Annotated[int, Field(ge=1, le=2**53 - 1, strict=True)]


# --- shared parts --------------------------------------------------------------------------


class TaskLimits(WireModel):
    """Per-task resource limits fixed by an agreement ([REQ-NEG-030], [REQ-INV-012])."""

    cpu_s: PositiveUInt
    memory_mib: PositiveUInt
    wall_s: PositiveUInt
    output_bytes: UInt

    def within(self, other: TaskLimits) -> str | None:
        """The first limit of ``self`` above ``other``'s, or ``None`` when all are within."""
        for name in ("cpu_s", "memory_mib", "wall_s", "output_bytes"):
            if getattr(self, name) > getattr(other, name):
                return name
        return None


class MaxPrice(WireModel):
    """The most the requester will pay in total ([REQ-NEG-011])."""

    currency: Currency
    total: NonNegDecimal


class Cancellation(WireModel):
    """Cancellation terms ([REQ-NEG-031]).

    A requester that withdraws from an agreement at least ``notice_s`` before
    its start pays nothing; later it pays ``fee_share`` of the total.
    """

    notice_s: UInt = 0
    fee_share: Share


class Sla(WireModel):
    """Service level: availability target and the credit when it is missed ([REQ-NEG-032])."""

    availability: Share
    credit_share: Share


class Terms(WireModel):
    cancellation: Cancellation
    sla: Sla | None = None


class Requester(WireModel):
    """Who the requester is: its key id, and its identifier if it has one ([REQ-NEG-033])."""

    kid: KeyId
    name: Identifier | None = None


# --- messages ------------------------------------------------------------------------------


class Demand(WireModel):
    """A request for a quote on one offer version ([REQ-NEG-011]..[REQ-NEG-013])."""

    offer: Identifier
    offer_serial: Serial
    quantity: Units
    duration_s: Duration
    start_after: UInt
    start_before: UInt
    max_price: MaxPrice
    resources: ResourceDemand | None = None
    voucher: EnvelopeValue | None = None
    idempotency_key: OpaqueId
    requester_key: PublicKey
    """The requester key: the demand envelope is signed by exactly this key ([REQ-NEG-027])."""

    @model_validator(mode="after")
    def _rules(self) -> Demand:
        # REQ-NEG-012: a start window is not empty.
        if self.start_before < self.start_after:
            rule_violation(
                "Demand", ("start_before",), "start_window", "start_before < start_after"
            )
        # REQ-NEG-024: stated resources may not contradict the unit count.
        if self.resources is not None and self.resources.units not in (0, self.quantity):
            rule_violation(
                "Demand", ("resources", "units"), "units", "resources.units differs from quantity"
            )
        # REQ-NEG-013: a voucher is a signed voucher envelope (format: settlement section).
        if self.voucher is not None and self.voucher["header"]["typ"] != "cid.voucher":
            rule_violation("Demand", ("voucher",), "voucher_typ", "voucher typ is not cid.voucher")
        return self

    def resource_demand(self) -> ResourceDemand:
        """What to price (spec 8.3): ``quantity`` units plus the resources the demand states."""
        if self.resources is None:
            return ResourceDemand(units=self.quantity)
        return self.resources.model_copy(update={"units": self.quantity})


class Quote(WireModel):
    """A binding offer to serve a demand on stated terms until ``expires`` ([REQ-NEG-014])."""

    quote_id: OpaqueId
    demand: Digest
    offer: Identifier
    offer_serial: Serial
    offer_digest: Digest
    quantity: Units
    duration_s: Duration
    start: UInt
    price: CostBreakdown
    limits: TaskLimits
    terms: Terms
    expires: UInt

    @model_validator(mode="after")
    def _rules(self) -> Quote:
        # REQ-NEG-015: the price is for exactly the quoted number of units.
        if self.price.units != self.quantity:
            rule_violation(
                type(self).__name__, ("price", "units"), "units", "price.units != quantity"
            )
        return self


class CounterReason(StrEnum):
    """Why a counter differs from the demand ([REQ-NEG-016])."""

    PRICE = "price"
    QUANTITY = "quantity"
    DURATION = "duration"
    START = "start"
    TERMS = "terms"


class Counter(Quote):
    """A quote on changed terms, with the reason ([REQ-NEG-016])."""

    reason: CounterReason
    message: ShortText | None = None


class RejectionReason(StrEnum):
    """Rejection reasons: the names of the error registry (spec 10) they map to ([REQ-NEG-017])."""

    CAPACITY_EXHAUSTED = "CAPACITY_EXHAUSTED"
    PRICE_ABOVE_LIMIT = "PRICE_ABOVE_LIMIT"
    QUOTE_EXPIRED = "QUOTE_EXPIRED"
    VOUCHER_INVALID = "VOUCHER_INVALID"
    DEMAND_REJECTED = "DEMAND_REJECTED"
    DECLINED = "DECLINED"


_REJECTION_ERRORS: Final[dict[str, type[NegotiationError]]] = {
    "CAPACITY_EXHAUSTED": CapacityExhaustedError,
    "PRICE_ABOVE_LIMIT": PriceAboveLimitError,
    "QUOTE_EXPIRED": QuoteExpiredError,
    "VOUCHER_INVALID": VoucherInvalidError,
    "DEMAND_REJECTED": DemandRejectedError,
    "DECLINED": NegotiationError,
}


class Rejection(WireModel):
    """A refusal of a demand, quote or counter ([REQ-NEG-017])."""

    demand: Digest
    quote_id: OpaqueId | None = None
    reason: RejectionReason
    message: ShortText | None = None
    retry_after_s: UInt | None = None

    def to_error(self) -> NegotiationError:
        """The error this rejection means for the party that receives it."""
        cls = _REJECTION_ERRORS[self.reason]
        detail: dict[str, object] = {"demand": self.demand}
        if self.retry_after_s is not None:
            detail["retry_after_s"] = self.retry_after_s
        return cls(self.message or f"rejected: {self.reason}", detail=detail)


class Accept(WireModel):
    """Acceptance of one quote or counter envelope ([REQ-NEG-018])."""

    quote_id: OpaqueId
    quote: Digest
    idempotency_key: OpaqueId


class Agreement(WireModel):
    """The contract both parties sign ([REQ-NEG-019]..[REQ-NEG-022])."""

    agreement_id: OpaqueId
    quote_id: OpaqueId
    provider: Identifier
    requester: Requester
    offer: Identifier
    offer_serial: Serial
    offer_digest: Digest
    quantity: Units
    duration_s: Duration
    start: UInt
    end: UInt
    price: CostBreakdown
    limits: TaskLimits
    terms: Terms
    expires: UInt

    @model_validator(mode="after")
    def _rules(self) -> Agreement:
        m = "Agreement"
        # REQ-NEG-020: the period is [start, end) and lasts duration_s.
        if self.end != self.start + self.duration_s:
            rule_violation(m, ("end",), "end", "end must be start + duration_s")
        if self.expires < self.end:
            rule_violation(m, ("expires",), "expires", "an agreement cannot expire before its end")
        if self.price.units != self.quantity:
            rule_violation(m, ("price", "units"), "units", "price.units != quantity")
        # REQ-NEG-021: the provider is the namespace the offer is published in.
        if not self.offer.is_within(self.provider):
            rule_violation(m, ("offer",), "provider_scope", "offer is not within provider")
        return self


class Withdraw(WireModel):
    """Withdrawal of a demand, a quote or (under its terms) an agreement ([REQ-NEG-023])."""

    demand: Digest | None = None
    quote_id: OpaqueId | None = None
    agreement_id: OpaqueId | None = None
    reason: ShortText | None = None

    @model_validator(mode="after")
    def _rules(self) -> Withdraw:
        refs = [r for r in (self.demand, self.quote_id, self.agreement_id) if r is not None]
        if len(refs) != 1:
            rule_violation(
                "Withdraw",
                ("demand",),
                "one_ref",
                "name exactly one of demand, quote_id, agreement_id",
            )
        return self


NegotiationBody = Demand | Quote | Counter | Rejection | Accept | Agreement | Withdraw

MESSAGE_BODIES: Final[dict[str, type[WireModel]]] = {
    TYP_DEMAND: Demand,
    TYP_QUOTE: Quote,
    TYP_COUNTER: Counter,
    TYP_REJECTION: Rejection,
    TYP_ACCEPT: Accept,
    TYP_AGREEMENT: Agreement,
    TYP_WITHDRAW: Withdraw,
}


def parse_message(envelope: Envelope) -> WireModel:
    """Parse an envelope's body as the negotiation message its ``typ`` names ([REQ-NEG-002]).

    Verify the envelope first: only authenticated bytes should reach the model layer.

    Raises:
        SchemaError: the typ is not a negotiation message, or the body breaks its model.
    """
    model = MESSAGE_BODIES.get(envelope.header.typ)
    if model is None:
        raise SchemaError(
            f"typ {envelope.header.typ!r} is not a negotiation message",
            field="header.typ",
            detail={"rule": "typ"},
        )
    body = validate(model, envelope.body_value, where="body")
    # REQ-NEG-003: the envelope is about the offer the body names.
    offer = getattr(body, "offer", None)
    if offer is not None and offer != envelope.header.sub:
        raise SchemaError(
            "header.sub is not the offer", field="header.sub", detail={"rule": "subject"}
        )
    return body


# --- state machine -------------------------------------------------------------------------


class NegState(StrEnum):
    """States of one negotiation (spec 8.4)."""

    DEMANDED = "demanded"
    QUOTED = "quoted"
    COUNTERED = "countered"
    ACCEPTED = "accepted"
    AGREED = "agreed"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    SETTLED = "settled"


class NegEvent(StrEnum):
    """Events: a received message, or a deadline passing (``expire``)."""

    QUOTE = "quote"
    COUNTER = "counter"
    REJECT = "reject"
    ACCEPT = "accept"
    AGREE = "agree"
    WITHDRAW = "withdraw"
    EXPIRE = "expire"
    SETTLE = "settle"


_S = NegState
_E = NegEvent

TRANSITIONS: Final[Mapping[tuple[NegState, NegEvent], NegState]] = {
    # REQ-NEG-041: the transition table; every other pair is illegal.
    (_S.DEMANDED, _E.QUOTE): _S.QUOTED,
    (_S.DEMANDED, _E.COUNTER): _S.COUNTERED,
    (_S.DEMANDED, _E.REJECT): _S.REJECTED,
    (_S.DEMANDED, _E.WITHDRAW): _S.WITHDRAWN,
    (_S.DEMANDED, _E.EXPIRE): _S.EXPIRED,
    (_S.QUOTED, _E.ACCEPT): _S.ACCEPTED,
    (_S.QUOTED, _E.REJECT): _S.REJECTED,
    (_S.QUOTED, _E.WITHDRAW): _S.WITHDRAWN,
    (_S.QUOTED, _E.EXPIRE): _S.EXPIRED,
    (_S.COUNTERED, _E.ACCEPT): _S.ACCEPTED,
    (_S.COUNTERED, _E.REJECT): _S.REJECTED,
    (_S.COUNTERED, _E.WITHDRAW): _S.WITHDRAWN,
    (_S.COUNTERED, _E.EXPIRE): _S.EXPIRED,
    (_S.ACCEPTED, _E.AGREE): _S.AGREED,
    (_S.ACCEPTED, _E.REJECT): _S.REJECTED,
    (_S.ACCEPTED, _E.EXPIRE): _S.EXPIRED,
    (_S.AGREED, _E.SETTLE): _S.SETTLED,
    (_S.AGREED, _E.WITHDRAW): _S.WITHDRAWN,
}

TERMINAL_STATES: Final = frozenset(
    {NegState.REJECTED, NegState.WITHDRAWN, NegState.EXPIRED, NegState.SETTLED}
)
"""States no event leaves ([REQ-NEG-042])."""

_EVENT_FOR_TYP: Final[dict[str, NegEvent]] = {
    TYP_QUOTE: NegEvent.QUOTE,
    TYP_COUNTER: NegEvent.COUNTER,
    TYP_REJECTION: NegEvent.REJECT,
    TYP_ACCEPT: NegEvent.ACCEPT,
    TYP_AGREEMENT: NegEvent.AGREE,
    TYP_WITHDRAW: NegEvent.WITHDRAW,
}


def event_for_typ(typ: str) -> NegEvent:
    """The event a received message of ``typ`` is; a demand starts a negotiation instead.

    Raises:
        IllegalTransitionError: ``typ`` is not an event of a running negotiation.
    """
    event = _EVENT_FOR_TYP.get(typ)
    if event is None:
        raise IllegalTransitionError(
            f"{typ!r} is not an event of a negotiation", detail={"typ": typ}
        )
    return event


def _state(state: NegState | str) -> NegState:
    try:
        return NegState(state)
    except ValueError as e:
        raise IllegalTransitionError(
            f"unknown negotiation state {state!r}", detail={"state": str(state)}
        ) from e


def transition(state: NegState | str, event: NegEvent | str) -> NegState:
    """The state after ``event`` in ``state`` ([REQ-NEG-040], [REQ-NEG-041]).

    Raises:
        IllegalTransitionError: the pair is not in :data:`TRANSITIONS` (including
            unknown states or events); ``detail`` has ``state`` and ``event``.
    """
    try:
        key = (NegState(state), NegEvent(event))
    except ValueError as e:
        raise IllegalTransitionError(
            f"unknown state or event {state!r}/{event!r}",
            detail={"state": str(state), "event": str(event)},
        ) from e
    nxt = TRANSITIONS.get(key)
    if nxt is None:
        raise IllegalTransitionError(
            f"{key[1].value!r} is not allowed in state {key[0].value!r}",
            detail={"state": key[0].value, "event": key[1].value},
        )
    return nxt


def deadline(
    state: NegState | str,
    *,
    demand_exp: int,
    quote_expires: int | None = None,
) -> int | None:
    """When ``state`` expires on its own ([REQ-NEG-043]); ``None`` if it never does.

    Args:
        state: the current state.
        demand_exp: the demand envelope's ``header.exp``.
        quote_expires: the ``expires`` of the quote or counter in play.
    """
    s = _state(state)
    if s is NegState.DEMANDED:
        return demand_exp
    if s in (NegState.QUOTED, NegState.COUNTERED):
        if quote_expires is None:
            raise SchemaError("a quoted state needs quote_expires", detail={"rule": "deadline"})
        return quote_expires
    if s is NegState.ACCEPTED:
        if quote_expires is None:
            raise SchemaError("an accepted state needs quote_expires", detail={"rule": "deadline"})
        return quote_expires + ACCEPT_GRACE_S
    return None


def expire_if_due(state: NegState | str, *, now: int, due: int | None) -> NegState:
    """``expired`` once ``due`` has passed if the state can expire, else ``state`` (REQ-NEG-043)."""
    s = _state(state)
    if due is not None and now >= due and (s, NegEvent.EXPIRE) in TRANSITIONS:
        return NegState.EXPIRED
    return s


# --- cross-message checks ------------------------------------------------------------------


def check_audience(envelope: Envelope, provider: Identifier) -> None:
    """A requester message (demand, accept, withdraw) names the provider as aud ([REQ-NEG-004]).

    Raises:
        VerificationError: ``header.aud`` is absent or names another namespace
            (``field`` ``header.aud``, rule ``audience``).
    """
    if envelope.header.aud != provider:
        raise VerificationError(
            "message is addressed to another provider",
            field="header.aud",
            detail={"rule": "audience"},
        )


def verify_demand(envelope: Envelope, *, provider: Identifier, now: int) -> Demand:
    """Verify a demand envelope with the key it names, and parse it ([REQ-NEG-027]).

    A demand introduces its requester: the only authorised key is the body's
    ``requester_key``, read (and only that member) before the signature is checked;
    the rest of the body is parsed once the signature verifies ([REQ-SIG-021]).

    Raises:
        SchemaError: another ``typ``, a missing or malformed ``body.requester_key``,
            ``serial`` other than 1 ([REQ-NEG-005]), or a body that breaks Table 8-2.
        KeyUnknownError: a signature by any key other than ``requester_key``.
        SignatureInvalidError, ExpiredError, NotYetValidError: as :meth:`Envelope.verify`.
        VerificationError: ``header.aud`` is not ``provider`` ([REQ-NEG-004]).
    """
    if envelope.header.typ != TYP_DEMAND:
        raise SchemaError(
            f"typ {envelope.header.typ!r} where {TYP_DEMAND!r} expected",
            field="header.typ",
            detail={"rule": "typ"},
        )
    raw_key = envelope.body_value.get("requester_key")
    if raw_key is None:
        raise SchemaError(
            "a demand names its requester_key",
            field="body.requester_key",
            detail={"rule": "missing"},
        )
    key = validate(PublicKey, raw_key, where="body.requester_key")
    # REQ-NEG-027: signed by exactly the key the demand names, and no other.
    envelope.verify({key.kid: key}, typ=TYP_DEMAND, now=now)
    check_audience(envelope, provider)
    if envelope.header.serial != 1:
        # REQ-NEG-005: a demand opens its negotiation with serial 1.
        raise SchemaError("a demand has serial 1", field="header.serial", detail={"rule": "serial"})
    demand = parse_message(envelope)
    if not isinstance(demand, Demand):
        raise AssertionError("the typ selects the Demand model")
    return demand


def check_quote(demand: Demand, demand_digest: str, quote: Quote) -> None:
    """Check that ``quote`` (or a counter) answers ``demand`` ([REQ-NEG-014]..[REQ-NEG-016]).

    A plain quote must satisfy the demand exactly; a counter may differ, but
    only in what its reason says, and must still name the demand and offer.

    Raises:
        NegotiationError: the quote answers another demand or offer, or differs
            from the demand where it may not (``detail['rule']`` says how).
        PriceAboveLimitError: a plain quote above ``max_price`` or in another currency.
    """

    def fail(rule: str, message: str, field: str) -> NegotiationError:
        return NegotiationError(message, field=field, detail={"rule": rule})

    if quote.demand != demand_digest:
        raise fail("demand_digest", "quote answers another demand", "demand")
    if quote.offer != demand.offer:
        raise fail("offer", "quote is for another offer", "offer")
    if isinstance(quote, Counter):
        return
    if quote.offer_serial != demand.offer_serial:
        raise fail("offer_serial", "quote is for another offer version", "offer_serial")
    if quote.quantity != demand.quantity:
        raise fail("quantity", "quote is for another quantity", "quantity")
    if quote.duration_s != demand.duration_s:
        raise fail("duration", "quote is for another duration", "duration_s")
    if not demand.start_after <= quote.start <= demand.start_before:
        raise fail("start_window", "quote starts outside the demand's window", "start")
    if quote.price.currency != demand.max_price.currency:
        raise PriceAboveLimitError(
            "quote is in another currency", field="price.currency", detail={"rule": "currency"}
        )
    if quote.price.total > demand.max_price.total:
        raise PriceAboveLimitError(
            f"quote total {quote.price.total} is above {demand.max_price.total}",
            field="price.total",
            detail={"rule": "max_price"},
        )


def check_accept(quote: Quote, quote_digest: str, accept: Accept, *, now: int) -> None:
    """Check ``accept`` against the quote it names, at ``now`` ([REQ-NEG-018]).

    Raises:
        NegotiationError: the accept names another quote (id or digest).
        QuoteExpiredError: ``now >= quote.expires``.
    """
    if accept.quote_id != quote.quote_id or accept.quote != quote_digest:
        raise NegotiationError(
            "accept names another quote", field="quote", detail={"rule": "quote_ref"}
        )
    if now >= quote.expires:
        raise QuoteExpiredError(
            f"quote expired at {quote.expires}",
            field="expires",
            detail={"expires": quote.expires, "now": now},
        )


_PINNED: Final = (
    "quote_id",
    "offer",
    "offer_serial",
    "offer_digest",
    "quantity",
    "duration_s",
    "start",
    "price",
    "limits",
    "terms",
)


def check_agreement(quote: Quote, agreement: Agreement) -> None:
    """Check that ``agreement`` states exactly what ``quote`` offered ([REQ-NEG-019]).

    Raises:
        NegotiationError: a field differs (``field`` names it, rule ``agreement_terms``).
    """
    for name in _PINNED:
        if getattr(quote, name) != getattr(agreement, name):
            raise NegotiationError(
                f"agreement {name} differs from the quote",
                field=name,
                detail={"rule": "agreement_terms"},
            )


def verify_agreement(
    envelope: Envelope,
    *,
    provider_keys: Mapping[str, PublicKey],
    requester_key: PublicKey,
    now: int,
) -> Agreement:
    """Verify a co-signed agreement envelope and parse it ([REQ-NEG-022]).

    Exactly two signatures: one by a provider service key, one by the
    requester key the body names.

    Raises:
        SchemaError, SignatureInvalidError, KeyUnknownError, ExpiredError,
        NotYetValidError: as :meth:`Envelope.verify`, or a body/signer mismatch.
    """
    if len(envelope.sigs) != 2:
        raise SignatureInvalidError(
            "an agreement carries exactly two signatures", field="sigs", detail={"rule": "sigs"}
        )
    provider_kids = [s.kid for s in envelope.sigs if s.kid in provider_keys]
    if requester_key.kid in provider_keys or len(provider_kids) != 1:
        raise SignatureInvalidError(
            "an agreement is signed by one provider key and the requester",
            field="sigs",
            detail={"rule": "parties"},
        )
    keys = {**provider_keys, requester_key.kid: requester_key}
    envelope.verify(keys, typ=TYP_AGREEMENT, now=now, require=[requester_key.kid, provider_kids[0]])
    agreement = validate(Agreement, envelope.body_value, where="body")
    if agreement.requester.kid != requester_key.kid:
        raise SignatureInvalidError(
            "the requester named in the agreement has not signed it",
            field="body.requester.kid",
            detail={"rule": "parties"},
        )
    if envelope.header.sub != agreement.offer:
        raise SchemaError(
            "header.sub is not the offer", field="header.sub", detail={"rule": "subject"}
        )
    return agreement


def cancellation_fee(agreement: Agreement, *, now: int) -> Decimal:
    """What a requester owes for withdrawing from ``agreement`` at ``now`` ([REQ-NEG-031])."""
    c = agreement.terms.cancellation
    if now <= agreement.start - c.notice_s:
        return Decimal(0)
    return round_cost(agreement.price.exact_total() * Fraction(c.fee_share))


WIRE_MODELS: Final[tuple[type[WireModel], ...]] = (
    Demand,
    Quote,
    Counter,
    Rejection,
    Accept,
    Agreement,
    Withdraw,
)
"""The message bodies of section 8 (their JSON Schemas are in spec/schemas)."""
