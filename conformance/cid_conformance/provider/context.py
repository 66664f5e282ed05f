"""What every provider case gets: the HTTP clients, the requester key, the provider as its verified
records describe it, and the requester's side of negotiate and invoke.

Theory of operation
-------------------
The suite is a requester that trusts nothing the provider says on its word:

* **who the provider is** comes from the registry, verified from the trust anchor
  (``--root-keys``): the offer record (``--offer``) and the zone record of the
  namespace that governs it, whose ``service_keys`` are the only keys allowed to sign
  quotes, agreements, statuses, results and receipts ([REQ-NEG-006], [REQ-INV-002]),
  and whose ``negotiate``/``invoke`` endpoints must be the provider's URL
  ([REQ-PRV-001]);
* **the provider's clock** is read from the ``nbf`` of the first answer it signs
  (a quote is signed "now"), so that the suite's messages are valid at the
  provider's time even when the two clocks disagree;
* **messages** are built as values and signed with the library's pure primitives
  (:mod:`cid_conformance.signed`), so that a case can break exactly one thing and
  still sign it.

Every agreement a case makes is withdrawn at the end of the case (:meth:`ProviderContext.deal`),
which releases its units and stops its tasks, so that cases do not compete for the
pool. Cases that need the pool to themselves use start windows days ahead, each case its
own (:meth:`ProviderContext.window`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp

from cid.envelope import Envelope
from cid.errors import CidError
from cid.identifier import Identifier
from cid.signing import PublicKey, SigningKey

from ..case import CaseFailed, CaseSkipped, Section, check, fail, skip
from ..registry.checks import verify_resolve_answer
from ..signed import digest_of, header, key_value, sign
from ..spec import Level
from ..wire import JSON, Http, Reply, name_segment

__all__ = [
    "TERMINAL",
    "Neg",
    "Provider",
    "ProviderContext",
    "ProviderOptions",
    "ProviderSection",
    "Task",
]

CaseFn = Callable[[Any], Awaitable[None]]
DAY: Final = 86_400
MESSAGE_WINDOW_S: Final = 300
TASK_WINDOW_S: Final = 600
TERMINAL: Final = frozenset({"succeeded", "failed", "cancelled", "expired"})
NEG_TERMINAL: Final = frozenset({"rejected", "withdrawn", "expired", "settled"})
_RANDOM_ID_MIN: Final = 22
"""128 random bits are at least 22 base64url characters."""


@dataclass(frozen=True)
class ProviderOptions:
    url: str
    registry: str
    root_keys: list[PublicKey]
    requester_key: SigningKey
    offer: str | None = None
    python: str = "python3"
    output_dir: str = "out"
    image: dict[str, Any] | None = None
    max_wait_s: float = 10.0
    allow_writes: bool = False


@dataclass(frozen=True)
class Provider:
    """The provider as its verified records describe it."""

    namespace: str
    service_keys: dict[str, PublicKey]
    negotiate: str | None
    invoke: str | None
    offer: str
    offer_env: dict[str, Any]
    offer_body: dict[str, Any]
    offer_serial: int
    offer_digest: str
    units_total: int
    currency: str


@dataclass
class Neg:
    """One negotiation as the suite ran it: the envelopes sent and received."""

    demand: dict[str, Any]
    digest: str
    reply: Reply
    answer: dict[str, Any] | None = None
    """The provider's answer envelope (quote, counter or rejection) as received."""
    accept: dict[str, Any] | None = None
    agreement: dict[str, Any] | None = None
    """The agreement envelope as the provider signed it."""
    cosigned: dict[str, Any] | None = None
    last_serial: int = 1
    withdrawn: bool = False

    @property
    def typ(self) -> str:
        return str((self.answer or {}).get("header", {}).get("typ", ""))

    @property
    def quote(self) -> dict[str, Any]:
        assert self.answer is not None
        return dict(self.answer["body"])

    @property
    def terms(self) -> dict[str, Any]:
        """The agreement's body."""
        assert self.agreement is not None
        return dict(self.agreement["body"])

    @property
    def agreement_id(self) -> str:
        return str(self.terms["agreement_id"])


@dataclass
class Task:
    envelope: dict[str, Any]
    task_id: str
    reply: Reply


@dataclass
class _Seen:
    """Every answer of the run, for the cases that look at all of them ([REQ-PRV-003])."""

    replies: list[Reply] = field(default_factory=list)
    nonces: list[tuple[str, str]] = field(default_factory=list)


class ProviderContext:
    """The state shared by the provider cases of one run."""

    def __init__(self, options: ProviderOptions, http: Http, registry: Http) -> None:
        self.options = options
        self.http = http
        self.registry = registry
        self.key = options.requester_key
        self.seen = _Seen()
        self._provider: Provider | None = None
        self._provider_error: str | None = None
        self._lock = asyncio.Lock()
        self._offset = 0
        self._clock_read = False
        self._windows = 0
        self._open: list[Neg] = []

    async def close(self) -> None:
        """Withdraw what a failed case left open (best effort)."""
        await self.release_all()

    async def release_all(self) -> None:
        """Withdraw every agreement still open, e.g. one a broken provider should have refused."""
        for neg in list(self._open):
            with contextlib.suppress(CaseFailed, CidError, aiohttp.ClientError, TimeoutError):
                await self.withdraw_quietly(neg)

    # -- requests ------------------------------------------------------------------------------

    def _record(self, reply: Reply) -> Reply:
        if len(self.seen.replies) < 5000:
            self.seen.replies.append(reply)
        return reply

    async def get(self, path: str, **kw: Any) -> Reply:
        kw.setdefault("accept", JSON)
        return await self.request("GET", path, **kw)

    async def request(self, method: str, path: str, **kw: Any) -> Reply:
        try:
            return self._record(await self.http.request(method, path, **kw))
        except (aiohttp.ClientError, TimeoutError) as e:
            fail(f"{method} {self.http.base}{path}: no answer from the provider ({e!r})")

    async def post(self, path: str, value: Any, **kw: Any) -> Reply:
        try:
            return self._record(await self.http.post_value(path, value, **kw))
        except (aiohttp.ClientError, TimeoutError) as e:
            fail(f"POST {self.http.base}{path}: no answer from the provider ({e!r})")

    # -- expectations ---------------------------------------------------------------------------

    @staticmethod
    def expect_error(
        reply: Reply,
        code: int | tuple[int, ...],
        *,
        field: str | tuple[str, ...] | None = None,
        rule: str | tuple[str, ...] | None = None,
        what: str = "",
    ) -> None:
        """The answer is the cid error ``code`` (with ``field``/``detail.rule`` when given)."""
        codes = code if isinstance(code, tuple) else (code,)
        prefix = f"{what}: " if what else ""
        check(
            reply.status >= 400 and reply.code in codes,
            f"{prefix}expected error {'/'.join(map(str, codes))}: {reply.brief()}",
        )
        if field is not None:
            fields = field if isinstance(field, tuple) else (field,)
            check(reply.field in fields, f"{prefix}expected field {field!r}: {reply.brief()}")
        if rule is not None:
            rules = rule if isinstance(rule, tuple) else (rule,)
            check(reply.rule in rules, f"{prefix}expected detail.rule {rule!r}: {reply.brief()}")

    @staticmethod
    def expect_ok(reply: Reply, status: int = 200, what: str = "") -> Any:
        if reply.status != status:
            fail(f"{what or 'the request'} was not answered {status}: {reply.brief()}")
        return reply.value()

    # -- clock ----------------------------------------------------------------------------------

    def now(self) -> int:
        """The provider's time as well as the suite knows it."""
        return int(time.time()) + self._offset

    def observe_clock(self, envelope: Mapping[str, Any]) -> None:
        """Read the provider's clock from the ``nbf`` of the first envelope it signed now."""
        if self._clock_read:
            return
        nbf = envelope.get("header", {}).get("nbf")
        if isinstance(nbf, int) and not isinstance(nbf, bool):
            self._clock_read = True
            offset = nbf - int(time.time())
            if abs(offset) > 1:
                self._offset = offset

    def can_wait(self, at: int) -> None:
        """Skip the case when waiting until ``at`` (provider time) is longer than --max-wait."""
        wait = at - self.now()
        if wait > self.options.max_wait_s + 1:
            skip(f"needs a wait of {wait:.0f} s; run with --max-wait {int(wait) + 5}")

    async def sleep_until(self, at: int) -> None:
        """Wait until the provider's clock reads ``at`` (skip when that is too far)."""
        self.can_wait(at)
        wait = at - self.now() + 0.05
        if wait > 0:
            await asyncio.sleep(wait)
        while self.now() < at:
            await asyncio.sleep(0.05)

    # -- the provider ---------------------------------------------------------------------------

    async def provider(self) -> Provider:
        """The offer and zone, resolved and verified once (needs ``--offer``)."""
        if self.options.offer is None:
            raise CaseSkipped("needs --offer NAME (an offer of the provider)")
        async with self._lock:
            if self._provider is not None:
                return self._provider
            if self._provider_error is not None:
                fail(f"precondition: {self._provider_error}")
            try:
                self._provider = await self._discover(self.options.offer)
            except CaseFailed as e:
                self._provider_error = e.message
                fail(f"precondition: {e.message}")
            return self._provider

    async def _resolve(self, name: str, types: str) -> tuple[list[Any], dict[str, Any]]:
        try:
            reply = await self.registry.get(
                f"/v1/names/{name_segment(name)}", query={"types": types}, accept=JSON
            )
        except (aiohttp.ClientError, TimeoutError) as e:
            fail(f"the registry {self.registry.base} does not answer ({e!r})")
        if reply.status != 200:
            fail(f"the registry does not resolve {name} ({types}): {reply.brief()}")
        answer = reply.value()
        check(isinstance(answer, dict), f"resolve {name}: not a map")
        return answer.get("records") or [], answer

    async def _discover(self, offer: str) -> Provider:
        from cid.trust import TrustState

        now = int(time.time())
        trust = TrustState(self.options.root_keys)
        records, answer = await self._resolve(offer, "offer")
        verified, problems = verify_resolve_answer(answer, trust, now)
        if problems:
            fail(f"the offer {offer} does not verify from the trust anchor: {problems[0]}")
        offers = [
            (env, rec)
            for env, rec in zip([r for r in records if isinstance(r, dict)], verified, strict=False)
            if rec.header.typ == "cid.record.offer"
        ]
        if not offers:
            fail(f"the registry holds no offer record at {offer}")
        offer_env, rec = offers[0]
        ns = trust.namespace_for(Identifier.parse(offer))
        namespace = ns.name.to_text()
        if namespace == ".":
            fail(f"{offer} is not inside a delegated provider namespace")
        _, zone_answer = await self._resolve(namespace, "zone")
        zverified, zproblems = verify_resolve_answer(zone_answer, trust, now)
        if zproblems:
            fail(f"the zone of {namespace} does not verify: {zproblems[0]}")
        zone = next((z for z in zverified if z.header.typ == "cid.record.zone"), None)
        if zone is None:
            fail(f"the provider namespace {namespace} has no zone record")
        body = zone.body
        keys = {k.kid: k for k in body.service_keys}
        if not keys:
            fail(f"the zone of {namespace} names no service key")
        endpoints = body.endpoints
        negotiate = str(endpoints.negotiate) if endpoints and endpoints.negotiate else None
        invoke = str(endpoints.invoke) if endpoints and endpoints.invoke else None
        offer_body = dict(offer_env["body"])
        price = offer_body.get("price") or {}
        units_total = int((offer_body.get("availability") or {}).get("units_total") or 0)
        return Provider(
            namespace=namespace,
            service_keys=keys,
            negotiate=negotiate,
            invoke=invoke,
            offer=rec.name.to_text(),
            offer_env=offer_env,
            offer_body=offer_body,
            offer_serial=rec.serial,
            offer_digest=digest_of(offer_env),
            units_total=units_total,
            currency=str(price.get("currency", "")),
        )

    def verify(
        self, value: Any, typ: str | Sequence[str], p: Provider, *, what: str, one_sig: bool = True
    ) -> Envelope:
        """A provider-signed envelope, verified with the zone's service keys ([REQ-NEG-006])."""
        check(
            isinstance(value, dict) and "header" in value,
            f"{what}: not an envelope: {str(value)[:200]}",
        )
        try:
            env = Envelope.from_value(value)
        except CidError as e:
            fail(f"{what}: not a well-formed envelope: {e}")
        try:
            env.verify(p.service_keys, typ=typ, now=self.now(), skew=300)
        except CidError as e:
            fail(f"{what} does not verify with the zone's service keys: {e.name}: {e.message}")
        if one_sig:
            check(len(env.sigs) == 1, f"{what} carries {len(env.sigs)} signatures, not one")
        nonce = env.header.nonce
        if nonce is not None:
            self.seen.nonces.append((what, nonce))
        return env

    # -- messages -------------------------------------------------------------------------------

    def nonce(self) -> str:
        return secrets.token_urlsafe(24)

    def window(self) -> tuple[int, int]:
        """A start window days ahead, a different one for each caller: the pool to itself."""
        self._windows += 1
        start = self.now() + DAY * (2 + self._windows) + 3600
        return start, start + 600

    def sign(
        self,
        typ: str,
        sub: str,
        body: Mapping[str, Any],
        *,
        serial: int,
        aud: str | None,
        key: SigningKey | None = None,
        keys: Sequence[SigningKey] | None = None,
        window_s: int = MESSAGE_WINDOW_S,
        nonce: str | bool | None = True,
        **hdr: Any,
    ) -> dict[str, Any]:
        """A requester message signed by the requester key (or ``key``/``keys``)."""
        now = self.now()
        extra: dict[str, Any] = {}
        if aud is not None:
            extra["aud"] = aud
        if nonce is True:
            extra["nonce"] = self.nonce()
        elif isinstance(nonce, str):
            extra["nonce"] = nonce
        nbf = hdr.pop("nbf", now - 5)
        exp = hdr.pop("exp", nbf + window_s)
        extra.update(hdr)
        h = header(typ, sub, serial=serial, nbf=nbf, exp=exp, **extra)
        signers = list(keys) if keys is not None else [key or self.key]
        return sign(h, body, signers)

    def demand_body(self, p: Provider, **changes: Any) -> dict[str, Any]:
        now = self.now()
        body: dict[str, Any] = {
            "offer": p.offer,
            "offer_serial": p.offer_serial,
            "quantity": 1,
            "duration_s": 3600,
            "start_after": now,
            "start_before": now + 600,
            "max_price": {"currency": p.currency, "total": "1000000000"},
            "idempotency_key": secrets.token_urlsafe(18),
            "requester_key": key_value(self.key),
        }
        return _edited(body, changes)

    def demand(self, p: Provider, **changes: Any) -> dict[str, Any]:
        return self.sign("cid.neg.demand", p.offer, self.demand_body(p, **changes), serial=1,
                         aud=p.namespace)  # fmt: skip

    async def send_demand(self, envelope: dict[str, Any], **kw: Any) -> Neg:
        reply = await self.post("/v1/negotiate/demand", envelope, **kw)
        neg = Neg(envelope, digest_of(envelope), reply)
        if reply.status == 200 and reply.encoding is not None:
            value = reply.value()
            if isinstance(value, dict) and isinstance(value.get("header"), dict):
                neg.answer = value
                self.observe_clock(value)
                serial = value["header"].get("serial")
                if isinstance(serial, int):
                    neg.last_serial = serial
        return neg

    async def quote(self, p: Provider, **changes: Any) -> Neg:
        """A demand answered with a quote (the case fails otherwise)."""
        neg = await self.send_demand(self.demand(p, **changes))
        if neg.answer is None:
            fail(f"precondition: a valid demand was not answered: {neg.reply.brief()}")
        if neg.typ != "cid.neg.quote":
            reason = neg.quote.get("reason") if neg.answer else None
            fail(f"precondition: a valid demand was answered with {neg.typ} ({reason})")
        self.verify(neg.answer, "cid.neg.quote", p, what="the quote")
        return neg

    def accept_env(
        self, p: Provider, neg: Neg, *, serial: int | None = None, **changes: Any
    ) -> dict[str, Any]:
        assert neg.answer is not None
        body: dict[str, Any] = {
            "quote_id": neg.quote["quote_id"],
            "quote": digest_of(neg.answer),
            "idempotency_key": secrets.token_urlsafe(18),
        }
        hdr_changes = {k: changes.pop(k) for k in ("key", "aud", "nonce") if k in changes}
        body.update(changes)
        return self.sign(
            "cid.neg.accept",
            p.offer,
            body,
            serial=serial if serial is not None else neg.last_serial + 1,
            aud=hdr_changes.pop("aud", p.namespace),
            **hdr_changes,
        )

    async def send_accept(self, neg: Neg, envelope: dict[str, Any]) -> Reply:
        reply = await self.post("/v1/negotiate/accept", envelope)
        if reply.status == 200:
            value = reply.value()
            if isinstance(value, dict) and isinstance(value.get("header"), dict):
                neg.accept = envelope
                neg.agreement = value
                self._open.append(neg)
                serial = value["header"].get("serial")
                if isinstance(serial, int):
                    neg.last_serial = serial
        return reply

    async def accepted(self, p: Provider, neg: Neg) -> Neg:
        """Accept the quote; the provider-signed agreement (the case fails otherwise)."""
        reply = await self.send_accept(neg, self.accept_env(p, neg))
        if neg.agreement is None:
            fail(f"precondition: the accept of a fresh quote was refused: {reply.brief()}")
        self.verify(neg.agreement, "cid.neg.agreement", p, what="the agreement")
        return neg

    def cosign(self, neg: Neg, key: SigningKey | None = None) -> dict[str, Any]:
        """The agreement with the requester's signature added to the same envelope."""
        assert neg.agreement is not None
        env = neg.agreement
        extra = sign(env["header"], env["body"], [key or self.key])["sigs"]
        return {**env, "sigs": [*env["sigs"], *extra]}

    async def countersign(self, neg: Neg, envelope: dict[str, Any] | None = None) -> Reply:
        env = envelope if envelope is not None else self.cosign(neg)
        reply = await self.post("/v1/negotiate/agreement", env)
        if reply.status == 200 and envelope is None:
            neg.cosigned = env
        return reply

    async def agree(self, p: Provider, **changes: Any) -> Neg:
        """A full negotiation to ``agreed`` (the case fails when the provider refuses)."""
        neg = await self.accepted(p, await self.quote(p, **changes))
        reply = await self.countersign(neg)
        if reply.status != 200:
            fail(f"precondition: the countersigned agreement was refused: {reply.brief()}")
        return neg

    def withdraw_env(
        self, p: Provider, neg: Neg, *, serial: int | None = None, **body: Any
    ) -> dict[str, Any]:
        if not body:
            body = (
                {"agreement_id": neg.agreement_id}
                if neg.agreement is not None
                else {"demand": neg.digest}
            )
        return self.sign(
            "cid.neg.withdraw",
            p.offer,
            body,
            serial=serial if serial is not None else neg.last_serial + 1,
            aud=p.namespace,
        )

    async def withdraw(
        self, p: Provider, neg: Neg, envelope: dict[str, Any] | None = None
    ) -> Reply:
        env = envelope if envelope is not None else self.withdraw_env(p, neg)
        reply = await self.post("/v1/negotiate/withdraw", env)
        if reply.status == 200:
            neg.withdrawn = True
            neg.last_serial = max(neg.last_serial, int(env["header"]["serial"]))
            if neg in self._open:
                self._open.remove(neg)
        return reply

    async def withdraw_quietly(self, neg: Neg) -> None:
        """End a negotiation the case made, whatever its state: countersign, then withdraw."""
        p = self._provider
        if p is None or neg.withdrawn:
            return
        if neg.agreement is not None and neg.cosigned is None:
            await self.countersign(neg)
        await self.withdraw(p, neg)
        if neg in self._open:
            self._open.remove(neg)

    @asynccontextmanager
    async def deal(self, **changes: Any) -> AsyncIterator[tuple[Provider, Neg]]:
        """An agreed agreement for the body of a case; withdrawn at the end."""
        p = await self.provider()
        neg = await self.agree(p, **changes)
        try:
            yield p, neg
        finally:
            await self.withdraw_quietly(neg)

    async def negotiation(self, digest: str) -> Reply:
        return await self.get(f"/v1/negotiate/{digest}")

    # -- tasks ----------------------------------------------------------------------------------

    def program(self, source: str) -> list[str]:
        return [self.options.python, "-c", source]

    def write_output(self, name: str, text: str, *, repeat: int = 1) -> str:
        """Python source that writes ``text`` (``repeat`` times) to the output file ``name``."""
        d = self.options.output_dir
        return (
            f"import os; os.makedirs({d!r}, exist_ok=True); "
            f"open(os.path.join({d!r}, {name!r}), 'w').write({text!r} * {repeat})"
        )

    def output_path(self, name: str) -> str:
        """The path a result lists for the output file ``name`` (relative to the working dir)."""
        return f"{self.options.output_dir}/{name}"

    def task_body(self, neg: Neg, source: str = "print('ok')", **changes: Any) -> dict[str, Any]:
        terms = neg.terms
        limits = dict(terms["limits"])
        body: dict[str, Any] = {
            "agreement_id": neg.agreement_id,
            "command": self.program(source),
            "limits": limits,
            "deadline": min(int(terms["end"]), self.now() + 300),
        }
        if self.options.image is not None:
            body["image"] = dict(self.options.image)
        return _edited(body, changes)

    def task_env(
        self,
        p: Provider,
        neg: Neg,
        source: str = "print('ok')",
        *,
        hdr: Mapping[str, Any] | None = None,
        **changes: Any,
    ) -> dict[str, Any]:
        h = dict(hdr or {})
        return self.sign(
            h.pop("typ", "cid.inv.task"),
            h.pop("sub", p.offer),
            self.task_body(neg, source, **changes),
            serial=h.pop("serial", 1),
            aud=h.pop("aud", p.namespace),
            window_s=h.pop("window_s", TASK_WINDOW_S),
            **h,
        )

    async def submit(self, envelope: dict[str, Any]) -> Task:
        reply = await self.post("/v1/invoke/tasks", envelope)
        return Task(envelope, digest_of(envelope), reply)

    async def run(self, p: Provider, neg: Neg, source: str = "print('ok')", **changes: Any) -> Task:
        """Submit a task that must be admitted (202)."""
        task = await self.submit(self.task_env(p, neg, source, **changes))
        if task.reply.status != 202:
            fail(f"precondition: a valid task was not admitted: {task.reply.brief()}")
        return task

    async def status(self, p: Provider, task_id: str, *, what: str = "the status") -> Envelope:
        reply = await self.get(f"/v1/invoke/tasks/{task_id}")
        value = self.expect_ok(reply, what=f"GET status of {task_id[:10]}…")
        return self.verify(value, "cid.inv.status", p, what=what)

    async def wait_state(
        self, p: Provider, task_id: str, states: frozenset[str] | set[str], *, timeout: float = 30
    ) -> Envelope:
        """Poll the task's status until its state is one of ``states``."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            env = await self.status(p, task_id)
            state = env.body_value.get("state")
            if state in states:
                return env
            if state in TERMINAL:
                fail(
                    f"the task ended {state} ({env.body_value.get('reason')}), not {sorted(states)}"
                )
            if time.monotonic() > deadline:
                fail(f"the task is still {state} after {timeout:.0f} s")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    async def finished(self, p: Provider, task_id: str, timeout: float = 30) -> dict[str, Any]:
        """Wait for the task's outcome: its terminal status, then Table 15-4 (result, receipt)."""
        await self.wait_state(p, task_id, TERMINAL, timeout=timeout)
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            reply = await self.get(f"/v1/invoke/tasks/{task_id}/result")
            if reply.status == 200:
                value = reply.value()
                check(isinstance(value, dict), f"the result answer is not a map: {value!r}")
                return dict(value)
            if reply.code != 5004:
                fail(f"GET result: expected 200 or TASK_STATE_CONFLICT: {reply.brief()}")
            if time.monotonic() > deadline:
                fail(f"no result after {timeout:.0f} s: {reply.brief()}")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def cancel_env(
        self, p: Provider, tid: str, *, hdr: Mapping[str, Any] | None = None, **body: Any
    ) -> dict[str, Any]:
        h = dict(hdr or {})
        value = {"task_id": tid, **body}
        return self.sign(
            h.pop("typ", "cid.inv.cancel"),
            h.pop("sub", p.offer),
            value,
            serial=h.pop("serial", 1),
            aud=h.pop("aud", p.namespace),
            window_s=h.pop("window_s", TASK_WINDOW_S),
            **h,
        )

    async def cancel(self, task_id: str, envelope: dict[str, Any]) -> Reply:
        return await self.post(f"/v1/invoke/tasks/{task_id}/cancel", envelope)


def _edited(body: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` with ``changes`` applied; a change to ``...`` removes that member."""
    for k, v in changes.items():
        if v is ...:
            body.pop(k, None)
        else:
            body[k] = v
    return body


class ProviderSection(Section):
    """A section of provider cases: after each case, whatever agreement it left open is withdrawn
    (one a broken provider granted by mistake), so that no case inherits reserved units."""

    def case(
        self,
        n: int,
        title: str,
        *reqs: str,
        writes: bool = False,
        clause: Level | None = None,
        tags: Iterable[str] = (),
    ) -> Callable[[CaseFn], CaseFn]:
        register = super().case(n, title, *reqs, writes=writes, clause=clause, tags=tags)

        def wrapped(fn: CaseFn) -> CaseFn:
            @functools.wraps(fn)
            async def run(ctx: Any) -> None:
                try:
                    await fn(ctx)
                finally:
                    await ctx.release_all()

            register(run)
            return fn

        return wrapped


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def random_id_issue(value: Any, what: str) -> str | None:
    """None when ``value`` can hold 128 random bits (22+ base64url characters)."""
    if not isinstance(value, str) or len(value) < _RANDOM_ID_MIN:
        return f"{what} {value!r} is too short to hold 128 random bits"
    return None


async def offer_expiry(ctx: ProviderContext, p: Provider) -> int:
    """The offer version's effective expiry now: its ``exp``, or its latest refresh's."""
    from cid.trust import TrustState

    _, answer = await ctx._resolve(p.offer, "offer")
    verified, _ = verify_resolve_answer(answer, TrustState(ctx.options.root_keys), ctx.now())
    exps = [int(p.offer_env["header"]["exp"])]
    exps += [
        r.header.exp for r in verified if r.header.typ in ("cid.record.offer", "cid.record.refresh")
    ]
    return max(exps)
