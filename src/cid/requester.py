"""The requester client: negotiate with a provider and run work under the agreement.

    async with Resolver([registry], root_keys) as resolver, Requester(key, resolver) as req:
        agreement = await req.negotiate(
            "gz-general.guizhou", quantity=1, duration_s=7_884_000,
            start_after=now, start_before=now + 60, max_price=MaxPrice(currency="CNY", total="40"),
        )
        task_id = await req.invoke(agreement, req.task(agreement, ["python3", "-c", "print(42)"]))
        async for status in req.events(task_id):
            print(status.state)
        outcome = await req.result(task_id)          # verified result + verified receipt
        data = await req.output(task_id, "result.json")   # sha256-checked

Theory of operation
-------------------
An I/O edge (STYLE 1) over the pure checks of :mod:`cid.negotiation` and
:mod:`cid.invocation`: this module moves envelopes over HTTP (spec section 15)
and refuses anything that does not verify. Nothing a provider sends is taken on
its word:

1. **Who to talk to** ([REQ-NEG-001], [REQ-NEG-006]): the offer is resolved and
   verified from the trust anchor by the :class:`~cid.resolver.Resolver`; the
   provider namespace is the delegated namespace governing the offer's name,
   and its zone record (verified the same way) gives the ``negotiate`` and
   ``invoke`` endpoints and the ``service_keys``, the only keys allowed to sign
   quotes, agreements, statuses, results and receipts.
2. **Negotiation**: the demand names the offer version seen (serial); the
   answer must verify with a service key and answer this demand
   (:func:`~cid.negotiation.check_quote`), rest on the very offer version
   verified (digest, [REQ-NEG-010]) and carry the price spec 7.6 gives for the
   demand ([REQ-NEG-015]: recomputed here); a rejection becomes its typed error
   ([REQ-NEG-017]). The agreement must restate the quote exactly
   (:func:`~cid.negotiation.check_agreement`, [REQ-NEG-019]), name this
   provider and this requester key, and outlive its period ([REQ-NEG-020]);
   only then is it co-signed ([REQ-NEG-022]) and the co-signed envelope
   verified once more as a third party would (:func:`verify_agreement`).
3. **Invocation**: a task envelope is signed with a fresh nonce and ``aud`` =
   the provider namespace ([REQ-INV-003], [REQ-INV-005]); its id is its digest,
   computed here and compared with the provider's ([REQ-INV-004]). Statuses
   and results must verify with a service key and name this task; receipts go
   through :func:`~cid.invocation.verify_receipt` (signature, agreement,
   limits, cost at the agreement's rates); output bytes must hash to the digest
   the signed result states.

Every refusal is a :class:`~cid.errors.CidError` subclass; problem responses
from the provider become the error it raised (as :class:`~cid.client.RegistryClient`
does for a registry).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import quote

import aiohttp

from . import codec
from .client import _problem
from .codec import Encoding, Limits
from .envelope import Envelope, seal
from .errors import (
    CidError,
    DecodeError,
    NegotiationError,
    NotFoundError,
    SchemaError,
    UnavailableError,
    VerificationError,
)
from .identifier import Identifier
from .invocation import (
    MAX_TASK_WINDOW_S,
    TASK_TERMINAL_STATES,
    TYP_CANCEL,
    TYP_RESULT,
    TYP_STATUS,
    TYP_TASK,
    Cancel,
    Receipt,
    TaskDefinition,
    TaskLimits,
    TaskResult,
    TaskStatus,
    task_id_of,
    verify_receipt,
)
from .model import validate
from .negotiation import (
    TYP_ACCEPT,
    TYP_AGREEMENT,
    TYP_COUNTER,
    TYP_DEMAND,
    TYP_QUOTE,
    TYP_REJECTION,
    TYP_WITHDRAW,
    Accept,
    Agreement,
    Counter,
    Demand,
    MaxPrice,
    Quote,
    Rejection,
    Withdraw,
    check_agreement,
    check_quote,
    verify_agreement,
)
from .query import ResourceDemand, price_demand
from .record import OfferBody, ZoneBody
from .resolver import Resolver
from .signing import PublicKey, SigningKey

__all__ = [
    "MESSAGE_WINDOW_S",
    "Outcome",
    "Proposal",
    "ProviderEndpoints",
    "Requester",
    "Trace",
    "new_id",
]

MESSAGE_WINDOW_S: Final = 300
"""Validity window of the requester's negotiation messages (demand, accept, withdraw)."""

TASK_WINDOW_S: Final = 600
"""Validity window of task and cancel envelopes (at most 3,600 s, [REQ-INV-005])."""

_RESPONSE_LIMITS: Final = codec.DEFAULT_LIMITS.scaled(max_bytes=64 * 1024 * 1024)

Trace = Callable[[str, Envelope], None]
"""Called with ``(what, envelope)`` for each message sent or verified (for stories and logs)."""


def new_id() -> str:
    """A fresh 32-character base64url identifier (idempotency keys, nonces)."""
    return secrets.token_urlsafe(24)


def _system_clock() -> int:
    return int(time.time())


@dataclass(frozen=True)
class ProviderEndpoints:
    """A provider namespace as its verified zone record describes it."""

    namespace: Identifier
    display_name: str
    service_keys: Mapping[str, PublicKey]
    negotiate_url: str | None
    invoke_url: str | None


@dataclass(frozen=True)
class Proposal:
    """A verified answer to a demand: a quote (or counter) the requester may accept."""

    offer: Identifier
    provider: ProviderEndpoints
    demand: Demand
    demand_envelope: Envelope
    envelope: Envelope
    """The quote or counter envelope, verified with the provider's service keys."""
    quote: Quote
    """Its body: a :class:`~cid.negotiation.Quote` or a :class:`~cid.negotiation.Counter`."""

    @property
    def is_counter(self) -> bool:
        return isinstance(self.quote, Counter)


@dataclass(frozen=True)
class Outcome:
    """A finished task: its verified result and receipt."""

    task_id: str
    result: TaskResult
    receipt: Receipt | None
    """``None`` only for a task that never started ([REQ-INV-030])."""
    result_envelope: Envelope
    receipt_envelope: Envelope | None


@dataclass
class _Task:
    agreement: Agreement
    provider: ProviderEndpoints
    last_serial: int = 0
    result: TaskResult | None = None


class Requester:
    """A requester: one signing key, a verifying resolver, and HTTP to providers.

    Args:
        key: the requester key; it signs demands, accepts, agreements and tasks.
        resolver: resolves offers and provider zones, verified from the trust anchor.
        clock: seconds since the epoch (tests pass a controllable one).
        name: the requester's own identifier, stated in agreements (informative).
        encoding: the body encoding sent and preferred (``json`` or ``msgpack``).
        timeout_s: per-request timeout.
        trace: called for each message sent or verified.
    """

    def __init__(
        self,
        key: SigningKey,
        resolver: Resolver,
        *,
        clock: Callable[[], int] = _system_clock,
        name: Identifier | None = None,
        encoding: Encoding = "json",
        timeout_s: float = 30.0,
        session: aiohttp.ClientSession | None = None,
        limits: Limits = _RESPONSE_LIMITS,
        trace: Trace | None = None,
    ) -> None:
        self.key = key
        self.resolver = resolver
        self.clock = clock
        self.name = name
        self.encoding: Encoding = encoding
        self.limits = limits
        self.trace = trace
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session = session
        self._own_session = session is None
        self._tasks: dict[str, _Task] = {}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    @property
    def public_key(self) -> PublicKey:
        return self.key.public_key

    def _note(self, what: str, envelope: Envelope) -> None:
        if self.trace is not None:
            self.trace(what, envelope)

    # -- transport --------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> Any:
        """One request; the decoded data-model value, or the provider's typed error."""
        headers = {"Accept": codec.media_type(self.encoding)}
        data = None
        if body is not None:
            data = codec.encode(body, self.encoding)
            headers["Content-Type"] = codec.media_type(self.encoding)
        try:
            async with self.session.request(
                method, url, data=data, headers=headers, timeout=timeout or self._timeout
            ) as resp:
                raw = await resp.read()
                ctype = resp.content_type
                status = resp.status
        except aiohttp.ClientError as e:
            raise UnavailableError(f"provider {url} unreachable: {e}") from e
        except TimeoutError as e:
            raise UnavailableError(f"provider {url} timed out") from e
        if status >= 400:
            raise _problem(status, ctype, raw)
        encoding: Encoding = "msgpack" if "msgpack" in ctype else "json"
        return codec.decode(raw, encoding, self.limits)

    async def _post_envelope(self, url: str, envelope: Envelope) -> Any:
        return await self._request("POST", url, body=envelope.to_value())

    @staticmethod
    def _envelope(value: Any, what: str) -> Envelope:
        if not isinstance(value, dict):
            raise SchemaError(f"the provider's {what} is not an envelope", detail={"rule": "type"})
        return Envelope.from_value(value)

    # -- discovery ----------------------------------------------------------------------------

    async def provider_of(self, offer: Identifier | str) -> ProviderEndpoints:
        """The provider namespace governing ``offer``, from its verified zone ([REQ-NEG-001])."""
        name = offer if isinstance(offer, Identifier) else Identifier.parse(offer)
        await self.resolver.resolve(name)  # learns the namespace tree down to the offer
        namespace = self.resolver.state.trust.namespace_for(name).name
        if namespace.is_root:
            raise VerificationError(
                f"{name} is not within a delegated provider namespace",
                field="offer",
                detail={"rule": "provider_namespace"},
            )
        return await self.provider(namespace)

    async def provider(self, namespace: Identifier | str) -> ProviderEndpoints:
        """The endpoints and service keys of ``namespace`` from its verified zone record."""
        ns = namespace if isinstance(namespace, Identifier) else Identifier.parse(namespace)
        answer = await self.resolver.resolve(ns)
        zone = answer.of_type("zone")
        if zone is None or not isinstance(zone.body, ZoneBody):
            raise NotFoundError(f"{ns} has no zone record", field="zone")
        body = zone.body

        def url(value: object | None) -> str | None:
            return None if value is None else str(value).rstrip("/")

        return ProviderEndpoints(
            namespace=ns,
            display_name=body.display_name,
            service_keys={k.kid: k for k in body.service_keys},
            negotiate_url=url(body.endpoints.negotiate),
            invoke_url=url(body.endpoints.invoke),
        )

    # -- negotiate ------------------------------------------------------------------------------

    async def negotiate(
        self,
        offer_name: Identifier | str,
        *,
        quantity: int,
        duration_s: int,
        start_after: int,
        start_before: int,
        max_price: MaxPrice,
        resources: ResourceDemand | None = None,
        accept_counter: Callable[[Counter], bool] | None = None,
    ) -> Envelope:
        """Demand → quote → accept → agreement, verified at each step.

        :meth:`request_quote` then :meth:`accept`; a counter-offer is accepted only
        if ``accept_counter`` says so, else declined (the demand is withdrawn) and
        reported as :class:`~cid.errors.NegotiationError` (rule ``counter``).

        Returns:
            The agreement envelope signed by both parties.

        Raises:
            The typed error of the first check that fails, or of the provider's
            rejection (e.g. :class:`~cid.errors.CapacityExhaustedError`).
        """
        proposal = await self.request_quote(
            offer_name,
            quantity=quantity,
            duration_s=duration_s,
            start_after=start_after,
            start_before=start_before,
            max_price=max_price,
            resources=resources,
        )
        counter = proposal.quote
        if isinstance(counter, Counter) and (accept_counter is None or not accept_counter(counter)):
            await self.withdraw(proposal, reason="counter declined")
            raise NegotiationError(
                f"the provider countered ({counter.reason}); declined",
                field="reason",
                detail={"rule": "counter", "reason": str(counter.reason)},
            )
        return await self.accept(proposal)

    async def request_quote(
        self,
        offer_name: Identifier | str,
        *,
        quantity: int,
        duration_s: int,
        start_after: int,
        start_before: int,
        max_price: MaxPrice,
        resources: ResourceDemand | None = None,
    ) -> Proposal:
        """Send a signed demand; return the verified quote or counter ([REQ-NEG-011]..).

        Raises:
            The provider's rejection as its typed error ([REQ-NEG-017]), or the
            error of the first check the answer fails.
        """
        name = offer_name if isinstance(offer_name, Identifier) else Identifier.parse(offer_name)
        answer = await self.resolver.resolve(name)
        offer_rec = answer.of_type("offer")
        if offer_rec is None or not isinstance(offer_rec.body, OfferBody):
            raise NotFoundError(f"{name} has no offer record", field="offer")
        provider = await self.provider_of(name)
        if provider.negotiate_url is None:
            # REQ-NEG-001 / REQ-REC-011: no negotiate endpoint, no negotiation.
            raise NegotiationError(
                f"{provider.namespace} has no negotiate endpoint",
                field="endpoints.negotiate",
                detail={"rule": "endpoint"},
            )
        offer_body: OfferBody = offer_rec.body
        demand = Demand(
            offer=name,
            offer_serial=offer_rec.serial,
            quantity=quantity,
            duration_s=duration_s,
            start_after=start_after,
            start_before=start_before,
            max_price=max_price,
            resources=resources,
            idempotency_key=new_id(),
            requester_key=self.public_key,
        )
        now = self.clock()
        demand_env = seal(
            demand,
            typ=TYP_DEMAND,
            sub=name,
            serial=1,
            key=self.key,
            nbf=now,
            exp=now + MESSAGE_WINDOW_S,
            aud=provider.namespace,
            nonce=new_id(),
        )
        self._note("demand", demand_env)
        reply = self._envelope(
            await self._post_envelope(f"{provider.negotiate_url}/demand", demand_env), "answer"
        )
        quote = self._check_answer(reply, demand, demand_env, provider, now=self.clock())
        # REQ-NEG-010: the quote rests on the offer version verified above.
        if (
            quote.offer_serial != offer_rec.serial
            or quote.offer_digest != offer_rec.envelope.digest()
        ):
            raise NegotiationError(
                "the quote rests on an offer version not verified here",
                field="offer_digest",
                detail={"rule": "offer_version"},
            )
        if not isinstance(quote, Counter):
            # REQ-NEG-015: the price is the offer's price for this demand (spec 7.6).
            expected = price_demand(
                offer_body.price,
                offer_body.unit,
                demand.resource_demand(),
                demand.duration_s,
                currency=max_price.currency,
            )
            if quote.price != expected:
                raise NegotiationError(
                    f"quoted total {quote.price.total} is not the offer's price "
                    f"{expected.total} for this demand",
                    field="price",
                    detail={"rule": "price"},
                )
        return Proposal(name, provider, demand, demand_env, reply, quote)

    async def accept(self, proposal: Proposal) -> Envelope:
        """Accept a verified quote or counter; verify, co-sign and confirm the agreement.

        Returns:
            The agreement envelope signed by both parties ([REQ-NEG-022]).

        Raises:
            QuoteExpiredError, CapacityExhaustedError (the units were taken
            meanwhile), or the error of the first check the agreement fails.
        """
        provider, quote, reply = proposal.provider, proposal.quote, proposal.envelope
        assert provider.negotiate_url is not None  # checked by request_quote
        now = self.clock()
        accept_env = seal(
            Accept(quote_id=quote.quote_id, quote=reply.digest(), idempotency_key=new_id()),
            typ=TYP_ACCEPT,
            sub=proposal.offer,
            serial=reply.header.serial + 1,
            key=self.key,
            nbf=now,
            exp=now + MESSAGE_WINDOW_S,
            aud=provider.namespace,
            nonce=new_id(),
        )
        self._note("accept", accept_env)
        agreement_env = self._envelope(
            await self._post_envelope(f"{provider.negotiate_url}/accept", accept_env), "agreement"
        )
        agreement = self._check_agreement(agreement_env, quote, provider, proposal.offer)
        self._note("agreement", agreement_env)
        signed = agreement_env.add_signature(self.key)
        # verify the co-signed envelope exactly as a third party will ([REQ-NEG-022])
        verify_agreement(
            signed,
            provider_keys=provider.service_keys,
            requester_key=self.public_key,
            now=self.clock(),
        )
        done = await self._post_envelope(f"{provider.negotiate_url}/agreement", signed)
        if not isinstance(done, dict) or done.get("agreement_id") != agreement.agreement_id:
            raise NegotiationError(
                "the provider did not confirm this agreement",
                field="agreement_id",
                detail={"rule": "confirm"},
            )
        if done.get("state") != "agreed":
            raise NegotiationError(
                f"the agreement is {done.get('state')!r}, not agreed",
                field="state",
                detail={"rule": "confirm"},
            )
        self._note("countersigned", signed)
        return signed

    def _check_answer(
        self,
        reply: Envelope,
        demand: Demand,
        demand_env: Envelope,
        provider: ProviderEndpoints,
        *,
        now: int,
    ) -> Quote:
        """Verify the provider's answer to a demand: a quote, a counter, or a rejection."""
        reply.verify(provider.service_keys, typ={TYP_QUOTE, TYP_COUNTER, TYP_REJECTION}, now=now)
        self._check_subject(reply, demand.offer)
        if reply.header.serial <= demand_env.header.serial:
            # REQ-NEG-005: each message of a negotiation has a higher serial.
            raise VerificationError(
                "the answer's serial is not above the demand's",
                field="header.serial",
                detail={"rule": "serial"},
            )
        digest = demand_env.digest()
        if reply.typ == TYP_REJECTION:
            rejection = validate(Rejection, reply.body_value, where="body")
            if rejection.demand != digest:
                raise NegotiationError(
                    "rejection of another demand", field="demand", detail={"rule": "demand_digest"}
                )
            self._note("rejection", reply)
            raise rejection.to_error()
        model: type[Quote] = Counter if reply.typ == TYP_COUNTER else Quote
        quote = validate(model, reply.body_value, where="body")
        check_quote(demand, digest, quote)
        if now >= quote.expires or quote.expires > reply.header.exp:
            raise NegotiationError(
                "the quote has expired or outlives its envelope",
                field="expires",
                detail={"rule": "expires"},
            )
        self._note("counter" if isinstance(quote, Counter) else "quote", reply)
        return quote

    def _check_agreement(
        self, env: Envelope, quote: Quote, provider: ProviderEndpoints, offer: Identifier
    ) -> Agreement:
        """The provider-signed agreement, before the requester co-signs it."""
        if len(env.sigs) != 1:
            raise VerificationError(
                "the provider's agreement carries one signature",
                field="sigs",
                detail={"rule": "sigs"},
            )
        env.verify(provider.service_keys, typ=TYP_AGREEMENT, now=self.clock())
        self._check_subject(env, offer)
        agreement = validate(Agreement, env.body_value, where="body")
        check_agreement(quote, agreement)  # REQ-NEG-019
        if agreement.provider != provider.namespace:
            raise NegotiationError(
                "the agreement names another provider",
                field="provider",
                detail={"rule": "agreement_terms"},
            )
        if agreement.requester.kid != self.key.kid:
            raise NegotiationError(
                "the agreement names another requester",
                field="requester.kid",
                detail={"rule": "agreement_terms"},
            )
        if env.header.exp < agreement.end:
            # REQ-NEG-020: the envelope stays valid for the whole period.
            raise NegotiationError(
                "the agreement's envelope expires before its end",
                field="header.exp",
                detail={"rule": "expires"},
            )
        return agreement

    @staticmethod
    def _check_subject(env: Envelope, offer: Identifier) -> None:
        if env.header.sub != offer:
            # REQ-NEG-003 / REQ-INV-008
            raise SchemaError(
                "header.sub is not the offer", field="header.sub", detail={"rule": "subject"}
            )

    async def withdraw(self, proposal: Proposal, *, reason: str | None = None) -> Any:
        """Withdraw the demand of ``proposal`` before accepting it ([REQ-NEG-023]).

        Best effort: the provider's answer, or ``None`` when it gave none.
        """
        provider = proposal.provider
        now = self.clock()
        env = seal(
            Withdraw(demand=proposal.demand_envelope.digest(), reason=reason),
            typ=TYP_WITHDRAW,
            sub=proposal.offer,
            serial=proposal.envelope.header.serial + 1,
            key=self.key,
            nbf=now,
            exp=now + MESSAGE_WINDOW_S,
            aud=provider.namespace,
            nonce=new_id(),
        )
        self._note("withdraw", env)
        if provider.negotiate_url is None:
            return None
        try:
            return await self._post_envelope(f"{provider.negotiate_url}/withdraw", env)
        except CidError:
            return None  # an unanswered withdrawal changes nothing the requester relies on

    # -- agreements -----------------------------------------------------------------------------

    async def open_agreement(self, envelope: Envelope) -> tuple[Agreement, ProviderEndpoints]:
        """Verify a co-signed agreement (e.g. read from a file) against the provider's keys."""
        sub = envelope.header.sub
        provider = await self.provider_of(sub)
        agreement = verify_agreement(
            envelope,
            provider_keys=provider.service_keys,
            requester_key=self.public_key,
            now=self.clock(),
        )
        if agreement.provider != provider.namespace:
            raise VerificationError(
                "the agreement's provider does not govern its offer",
                field="body.provider",
                detail={"rule": "provider_scope"},
            )
        return agreement, provider

    def task(
        self,
        agreement: Agreement,
        command: Sequence[str],
        *,
        limits: TaskLimits | None = None,
        deadline_s: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> TaskDefinition:
        """A task definition under ``agreement``: its limits, and a deadline within its end."""
        lim = limits or agreement.limits
        now = self.clock()
        deadline = now + (deadline_s if deadline_s is not None else lim.wall_s + 60)
        return TaskDefinition(
            agreement_id=agreement.agreement_id,
            command=list(command),
            env=dict(env or {}),
            limits=lim,
            deadline=min(deadline, agreement.end),
        )

    # -- invoke --------------------------------------------------------------------------------

    def sign_task(self, agreement: Agreement, task: TaskDefinition) -> Envelope:
        """The task envelope: requester-signed, fresh nonce, ``aud`` = provider ([REQ-INV-003])."""
        now = self.clock()
        return seal(
            task,
            typ=TYP_TASK,
            sub=agreement.offer,
            serial=1,
            key=self.key,
            nbf=now,
            exp=now + min(TASK_WINDOW_S, MAX_TASK_WINDOW_S),
            aud=agreement.provider,
            nonce=new_id(),
        )

    async def invoke(self, agreement: Envelope, task: TaskDefinition) -> str:
        """Submit ``task`` under the co-signed ``agreement``; returns the task id."""
        body, provider = await self.open_agreement(agreement)
        if task.agreement_id != body.agreement_id:
            raise VerificationError(
                "the task names another agreement",
                field="agreement_id",
                detail={"rule": "agreement"},
            )
        env = self.sign_task(body, task)
        return await self.submit(env, body, provider)

    async def submit(
        self, task_env: Envelope, agreement: Agreement, provider: ProviderEndpoints
    ) -> str:
        """Send a signed task envelope; check the provider names it by its digest."""
        if provider.invoke_url is None:
            raise NegotiationError(
                f"{provider.namespace} has no invoke endpoint",
                field="endpoints.invoke",
                detail={"rule": "endpoint"},
            )
        self._note("task", task_env)
        answer = await self._post_envelope(f"{provider.invoke_url}/tasks", task_env)
        task_id = task_id_of(task_env)
        if not isinstance(answer, dict) or answer.get("task_id") != task_id:
            # REQ-INV-004: the task id is the envelope's digest.
            raise VerificationError(
                "the provider names the task by something other than its digest",
                field="task_id",
                detail={"rule": "task_id"},
            )
        self._tasks[task_id] = _Task(agreement, provider)
        return task_id

    def _task(self, task_id: str) -> _Task:
        held = self._tasks.get(task_id)
        if held is None:
            raise NotFoundError(f"task {task_id} was not submitted by this requester", field="task")
        return held

    def _status(
        self, value: Any, task_id: str, held: _Task, *, newer_only: bool = True
    ) -> TaskStatus | None:
        """A verified status of ``task_id``; ``None`` if ``newer_only`` and it is not newer."""
        env = self._envelope(value, "status")
        env.verify(held.provider.service_keys, typ=TYP_STATUS, now=self.clock())
        self._check_subject(env, held.agreement.offer)
        status = validate(TaskStatus, env.body_value, where="body")
        if status.task_id != task_id:
            raise VerificationError(
                "status of another task", field="body.task_id", detail={"rule": "task_id"}
            )
        # REQ-INV-009: statuses have increasing serials; an older one is stale
        if env.header.serial <= held.last_serial and newer_only:
            return None
        held.last_serial = max(held.last_serial, env.header.serial)
        self._note("status", env)
        return status

    async def status(self, task_id: str) -> TaskStatus:
        """The task's current (verified) status."""
        held = self._task(task_id)
        value = await self._request("GET", f"{held.provider.invoke_url}/tasks/{task_id}")
        status = self._status(value, task_id, held, newer_only=False)
        assert status is not None
        return status

    async def events(self, task_id: str) -> AsyncIterator[TaskStatus]:
        """The task's verified statuses as the provider streams them (SSE), until terminal."""
        held = self._task(task_id)
        url = f"{held.provider.invoke_url}/tasks/{task_id}/events"
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None)
        headers = {"Accept": "text/event-stream"}
        if held.last_serial:
            headers["Last-Event-ID"] = str(held.last_serial)  # resume after what is held
        try:
            async with self.session.get(url, headers=headers, timeout=timeout) as resp:
                if resp.status >= 400:
                    raise _problem(resp.status, resp.content_type, await resp.read())
                data: list[str] = []
                async for raw_line in resp.content:
                    line = raw_line.decode("utf-8").rstrip("\r\n")
                    if line.startswith("data:"):
                        data.append(line[5:].lstrip(" "))
                        continue
                    if line or not data:
                        continue  # comments, event/id fields, keep-alives
                    try:
                        value = json.loads("\n".join(data))
                    except ValueError as e:
                        raise DecodeError("an event is not JSON", detail={"rule": "sse"}) from e
                    data = []
                    status = self._status(value, task_id, held)
                    if status is None:
                        continue
                    yield status
                    if status.state in TASK_TERMINAL_STATES:
                        return
        except aiohttp.ClientError as e:
            raise UnavailableError(f"event stream {url} failed: {e}") from e

    async def wait(self, task_id: str, *, poll_s: float = 0.2) -> TaskStatus:
        """Wait for a terminal state: follow the event stream, fall back to polling."""
        last: TaskStatus | None = None
        try:
            async for status in self.events(task_id):
                last = status
        except UnavailableError:
            pass
        while last is None or last.state not in TASK_TERMINAL_STATES:
            last = await self.status(task_id)
            if last.state not in TASK_TERMINAL_STATES:
                await asyncio.sleep(poll_s)
        return last

    async def result(self, task_id: str, *, agreement: Envelope | None = None) -> Outcome:
        """The finished task's verified result and receipt ([REQ-INV-023], [REQ-INV-030])."""
        if agreement is not None and task_id not in self._tasks:
            body, provider = await self.open_agreement(agreement)
            self._tasks[task_id] = _Task(body, provider)
        held = self._task(task_id)
        value = await self._request("GET", f"{held.provider.invoke_url}/tasks/{task_id}/result")
        if not isinstance(value, dict) or not isinstance(value.get("result"), dict):
            raise SchemaError(
                "a result answer holds a result and a receipt", detail={"rule": "result"}
            )
        now = self.clock()
        result_env = self._envelope(value["result"], "result")
        result_env.verify(held.provider.service_keys, typ=TYP_RESULT, now=now)
        self._check_subject(result_env, held.agreement.offer)
        result = validate(TaskResult, result_env.body_value, where="result.body")
        if result.task_id != task_id:
            raise VerificationError(
                "result of another task", field="result.body.task_id", detail={"rule": "task_id"}
            )
        if result.output_bytes > held.agreement.limits.output_bytes:
            raise VerificationError(
                "outputs above the agreement's output limit",
                field="result.body.outputs",
                detail={"rule": "output_bytes"},
            )
        receipt_env: Envelope | None = None
        receipt: Receipt | None = None
        if value["receipt"] is not None:
            receipt_env = self._envelope(value["receipt"], "receipt")
            self._check_subject(receipt_env, held.agreement.offer)
            receipt = verify_receipt(
                receipt_env, held.agreement, service_keys=held.provider.service_keys, now=now
            )
            if receipt.task_id != task_id:
                raise VerificationError(
                    "receipt for another task",
                    field="receipt.body.task_id",
                    detail={"rule": "task_id"},
                )
        held.result = result
        self._note("result", result_env)
        if receipt_env is not None:
            self._note("receipt", receipt_env)
        return Outcome(task_id, result, receipt, result_env, receipt_env)

    async def output(self, task_id: str, path: str) -> bytes:
        """An output file's bytes, checked against the digest in the signed result.

        ``path`` is a path the result lists (``out/result.json``), or ``:stdout``
        / ``:stderr`` for the captured streams.
        """
        held = self._task(task_id)
        if held.result is None:
            await self.result(task_id)
        result = held.result
        assert result is not None
        size: int | None = None
        base = f"{held.provider.invoke_url}/tasks/{task_id}"
        if path == ":stdout":
            digest, url = result.stdout_sha256, f"{base}/stdout"
        elif path == ":stderr":
            digest, url = result.stderr_sha256, f"{base}/stderr"
        else:
            entry = next((o for o in result.outputs if o.path == path), None)
            if entry is None:
                raise NotFoundError(f"the result lists no output {path!r}", field="path")
            digest, size = entry.sha256, entry.size_bytes
            url = f"{base}/outputs/{quote(path)}"
        try:
            async with self.session.get(url, headers={"Accept": "*/*"}) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise _problem(resp.status, resp.content_type, raw)
        except aiohttp.ClientError as e:
            raise UnavailableError(f"provider {url} unreachable: {e}") from e
        if (size is not None and len(raw) != size) or hashlib.sha256(raw).hexdigest() != digest:
            raise VerificationError(
                f"output {path} does not match the signed result's digest",
                field="sha256",
                detail={"rule": "output_digest", "path": path},
            )
        return raw

    async def cancel(self, task_id: str, *, reason: str | None = None) -> TaskStatus | None:
        """Ask the provider to stop the task ([REQ-INV-022]); its verified status, if sent."""
        held = self._task(task_id)
        now = self.clock()
        env = seal(
            Cancel(task_id=task_id, reason=reason),
            typ=TYP_CANCEL,
            sub=held.agreement.offer,
            serial=1,
            key=self.key,
            nbf=now,
            exp=now + TASK_WINDOW_S,
            aud=held.agreement.provider,
            nonce=new_id(),
        )
        self._note("cancel", env)
        value = await self._post_envelope(f"{held.provider.invoke_url}/tasks/{task_id}/cancel", env)
        if isinstance(value, dict) and "header" in value:
            return self._status(value, task_id, held, newer_only=False)
        return None

    async def receipts(self, agreement: Envelope) -> list[Receipt]:
        """Every receipt the provider issued under ``agreement``, each verified."""
        body, provider = await self.open_agreement(agreement)
        value = await self._request(
            "GET", f"{provider.invoke_url}/agreements/{body.agreement_id}/receipts"
        )
        items = value.get("receipts", []) if isinstance(value, dict) else value
        if not isinstance(items, list):
            raise SchemaError("a receipt list is a list", detail={"rule": "receipts"})
        now = self.clock()
        return [
            verify_receipt(
                self._envelope(v, "receipt"), body, service_keys=provider.service_keys, now=now
            )
            for v in items
        ]
