"""Test support for the provider SDK: a controllable clock, a deterministic executor,
a requester that signs messages, and the provider app on a real loopback port.

The provider app runs in-process (so the clock is the test's) behind aiohttp's
``TestServer``, which listens on 127.0.0.1: every request crosses a real TCP
connection and the real middleware.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict

from cid import codec
from cid import examples as ex
from cid.envelope import Envelope, seal, sign_record
from cid.errors import CidError, from_wire
from cid.identifier import Identifier
from cid.invocation import TYP_CANCEL, TYP_TASK, TaskDefinition, TaskState, Usage
from cid.model import validate
from cid.negotiation import (
    TYP_ACCEPT,
    TYP_DEMAND,
    TYP_WITHDRAW,
    Accept,
    Agreement,
    Demand,
    Quote,
    TaskLimits,
    Withdraw,
)
from cid.provider import (
    ListPricePolicy,
    MemoryLedger,
    OfferVersion,
    TaskOutcome,
    TaskProgress,
    create_provider_app,
)
from cid.provider.app import INVOKER, NEGOTIATOR
from cid.provider.invoker import Invoker
from cid.provider.negotiator import Negotiator
from cid.record import Availability
from cid.signing import SigningKey

NOW = ex.EPOCH + 60
NAMESPACE = "ctyun"
OFFER = "gz.ctyun"
DAY = 86_400


@dataclass
class Clock:
    """A clock tests move by hand (no sleeps)."""

    now: int = NOW

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: int) -> None:
        self.now += seconds


def offer_version(
    *,
    units_total: int = 3,
    serial: int = 1,
    key: SigningKey | None = None,
    name: str = OFFER,
    now: int = NOW,
) -> OfferVersion:
    body = ex.guizhou_offer().model_copy(
        update={"availability": Availability(units_total=units_total, units_free=units_total)}
    )
    signed = sign_record(
        body,
        name=name,
        serial=serial,
        key=key or ex.provider_key(),
        nbf=now - 60,
        exp=now + 30 * DAY,
    )
    return OfferVersion(
        name=Identifier(name),
        serial=serial,
        digest=signed.envelope.digest(),
        body=body,
        expires=signed.header.exp,
    )


# --- a deterministic executor -------------------------------------------------------------------


class FakeExecutor:
    """An :class:`~cid.provider.backend.Executor` the test drives by hand.

    A started task stays queued until :meth:`run` (reports ``running``) and
    :meth:`finish`; :meth:`cancel` ends it at once. ``starts`` counts calls of
    :meth:`start` per task id (the SDK must call it exactly once).
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.starts: Counter[str] = Counter()
        self.cancels: Counter[str] = Counter()
        self.released: set[str] = set()
        self.tasks: dict[str, tuple[TaskDefinition, TaskLimits]] = {}
        self.started_at: dict[str, int] = {}
        self._queues: dict[str, asyncio.Queue[TaskProgress | None]] = {}
        self._done: dict[str, asyncio.Future[TaskOutcome]] = {}
        self.closed = False

    async def start(self, task_id: str, task: TaskDefinition, limits: TaskLimits) -> None:
        self.starts[task_id] += 1
        if task_id in self._done:
            raise AssertionError(f"task {task_id} started twice")
        self.tasks[task_id] = (task, limits)
        self._queues[task_id] = asyncio.Queue()
        self._done[task_id] = asyncio.get_running_loop().create_future()

    def events(self, task_id: str) -> AsyncIterator[TaskProgress]:
        return self._iter(task_id)

    async def _iter(self, task_id: str) -> AsyncIterator[TaskProgress]:
        queue = self._queues[task_id]
        while True:
            item = await queue.get()
            if item is None:
                return
            yield item

    async def wait(self, task_id: str) -> TaskOutcome:
        return await self._done[task_id]

    def pending(self, task_id: str) -> bool:
        fut = self._done.get(task_id)
        return fut is not None and not fut.done()

    def run(self, task_id: str) -> None:
        if self.pending(task_id) and task_id not in self.started_at:
            self.started_at[task_id] = self.clock()
            self._queues[task_id].put_nowait(TaskProgress(TaskState.RUNNING, at=self.clock()))

    def finish(
        self,
        task_id: str,
        *,
        exit_code: int = 0,
        stdout: bytes = b"hello\n",
        stderr: bytes = b"",
        outputs: Mapping[str, bytes] | None = None,
        usage: Usage | None = None,
        state: TaskState | None = None,
        reason: str | None = None,
    ) -> None:
        if not self.pending(task_id):
            return
        started = self.started_at.setdefault(task_id, self.clock())
        if state is None:
            state = TaskState.SUCCEEDED if exit_code == 0 else TaskState.FAILED
        outcome = TaskOutcome(
            state=state,
            exit_code=exit_code,
            reason=reason if reason is not None else (None if exit_code == 0 else "exit"),
            stdout=stdout,
            stderr=stderr,
            outputs=dict(outputs or {"out.txt": b"42\n"}),
            usage=usage or Usage(cpu_s=1, memory_mib_s=10, wall_s=2, output_bytes=3),
            started=started,
            finished=self.clock(),
        )
        self._done[task_id].set_result(outcome)
        self._queues[task_id].put_nowait(None)

    async def release(self, task_id: str) -> None:
        self.released.add(task_id)

    async def cancel(self, task_id: str) -> bool:
        if not self.pending(task_id):
            return False
        self.cancels[task_id] += 1
        started = self.started_at.get(task_id, 0)
        self._done[task_id].set_result(
            TaskOutcome(
                state=TaskState.CANCELLED,
                exit_code=None,
                reason="requested",
                stdout=b"",
                stderr=b"",
                usage=Usage(cpu_s=0, memory_mib_s=0, wall_s=1) if started else None,
                started=started,
                finished=self.clock(),
            )
        )
        self._queues[task_id].put_nowait(None)
        return True

    async def close(self) -> None:
        self.closed = True
        for task_id in list(self._done):
            await self.cancel(task_id)


# --- the requester ------------------------------------------------------------------------------


def nonce() -> str:
    return secrets.token_urlsafe(16)


def idem() -> str:
    return "idem-" + secrets.token_urlsafe(12)


@dataclass
class Requester:
    """Signs the requester's messages (demand, accept, countersignature, withdraw, task, cancel)."""

    clock: Clock
    key: SigningKey = field(default_factory=lambda: SigningKey.from_seed(bytes(range(32))))
    provider: str = NAMESPACE
    offer: str = OFFER

    def demand(
        self,
        *,
        quantity: int = 1,
        duration_s: int = DAY,
        max_total: str = "1000",
        offer_serial: int = 1,
        start_after: int | None = None,
        start_before: int | None = None,
        idempotency_key: str | None = None,
        resources: dict[str, int] | None = None,
        aud: str | None = None,
        key: SigningKey | None = None,
        **extra: Any,
    ) -> Envelope:
        now = self.clock()
        value: dict[str, Any] = {
            "offer": self.offer,
            "offer_serial": offer_serial,
            "quantity": quantity,
            "duration_s": duration_s,
            "start_after": now if start_after is None else start_after,
            "start_before": (now if start_after is None else start_after) + 3600
            if start_before is None
            else start_before,
            "max_price": {"currency": "CNY", "total": max_total},
            "idempotency_key": idempotency_key or idem(),
            "requester_key": self.key.public_key.to_value(),
            **extra,
        }
        if resources is not None:
            value["resources"] = resources
        validate(Demand, value)
        return seal(
            value,
            typ=TYP_DEMAND,
            sub=self.offer,
            serial=1,
            key=key or self.key,
            nbf=now,
            exp=now + 600,
            aud=aud or self.provider,
            nonce=nonce(),
        )

    def accept(
        self,
        quote_env: Envelope,
        *,
        idempotency_key: str | None = None,
        serial: int | None = None,
        key: SigningKey | None = None,
        aud: str | None = None,
    ) -> Envelope:
        now = self.clock()
        quote = validate(Quote, {k: v for k, v in quote_env.body_value.items() if k in _QUOTE})
        body = Accept(
            quote_id=quote.quote_id,
            quote=quote_env.digest(),
            idempotency_key=idempotency_key or idem(),
        )
        return seal(
            body,
            typ=TYP_ACCEPT,
            sub=quote_env.header.sub,
            serial=serial if serial is not None else quote_env.header.serial + 1,
            key=key or self.key,
            nbf=now,
            exp=now + 600,
            aud=aud or self.provider,
            nonce=nonce(),
        )

    def countersign(self, agreement_env: Envelope) -> Envelope:
        return agreement_env.add_signature(self.key)

    def withdraw(self, *, serial: int, key: SigningKey | None = None, **ref: str) -> Envelope:
        now = self.clock()
        return seal(
            Withdraw.model_validate(ref),
            typ=TYP_WITHDRAW,
            sub=self.offer,
            serial=serial,
            key=key or self.key,
            nbf=now,
            exp=now + 600,
            aud=self.provider,
            nonce=nonce(),
        )

    def task(
        self,
        agreement: Agreement,
        *,
        command: list[str] | None = None,
        limits: TaskLimits | None = None,
        deadline: int | None = None,
        window_s: int = 600,
        key: SigningKey | None = None,
        aud: str | None = None,
        task_nonce: str | None = None,
        **extra: Any,
    ) -> Envelope:
        now = self.clock()
        lim = limits or agreement.limits
        value: dict[str, Any] = {
            "agreement_id": agreement.agreement_id,
            "command": command or ["python3", "-c", "print(6 * 7)"],
            "limits": lim.to_value(),
            "deadline": deadline if deadline is not None else min(now + 600, agreement.end),
            **extra,
        }
        return seal(
            value,
            typ=TYP_TASK,
            sub=agreement.offer,
            serial=1,
            key=key or self.key,
            nbf=now,
            exp=now + window_s,
            aud=aud or agreement.provider,
            nonce=task_nonce or nonce(),
        )

    def cancel(
        self, task_id: str, agreement: Agreement, *, key: SigningKey | None = None
    ) -> Envelope:
        now = self.clock()
        return seal(
            {"task_id": task_id, "reason": "no longer needed"},
            typ=TYP_CANCEL,
            sub=agreement.offer,
            serial=1,
            key=key or self.key,
            nbf=now,
            exp=now + 600,
            aud=agreement.provider,
            nonce=nonce(),
        )


_QUOTE = set(Quote.model_fields)


# --- the provider on loopback ---------------------------------------------------------------------


class ProblemError(Exception):
    """Raised by :meth:`Provider.call` for a non-cid error response (should never happen)."""


@dataclass
class Flow:
    """One negotiation carried through to a countersigned agreement."""

    demand_env: Envelope
    quote_env: Envelope
    accept_env: Envelope
    agreement_env: Envelope
    cosigned: Envelope
    agreement: Agreement


class Provider:
    """The provider app on a loopback port, its backends, and a requester to talk to it."""

    def __init__(
        self,
        *,
        clock: Any = None,
        units_total: int = 3,
        namespace: str = NAMESPACE,
        service_key: SigningKey | None = None,
        offer: str = OFFER,
        policy: ListPricePolicy | None = None,
        executor: Any = None,
        idempotency_ttl_s: int = DAY,
    ) -> None:
        self.clock = clock or Clock()
        self.namespace = Identifier(namespace)
        self.service_key = service_key or ex.provider_key()
        self.offer = offer_version(
            units_total=units_total, key=self.service_key, name=offer, now=self.clock()
        )
        self.offers: dict[Identifier, OfferVersion] = {self.offer.name: self.offer}
        self.ledger = MemoryLedger()
        self.executor = executor if executor is not None else FakeExecutor(self.clock)
        self.policy = policy or ListPricePolicy()
        self.app = create_provider_app(
            namespace=self.namespace,
            service_key=self.service_key,
            offers=self.offers.get,
            policy=self.policy,
            ledger=self.ledger,
            executor=self.executor,
            clock=self.clock,
            idempotency_ttl_s=idempotency_ttl_s,
        )
        self.client = TestClient(TestServer(self.app, host="127.0.0.1"))
        self.requester = Requester(self.clock, provider=namespace, offer=offer)

    @property
    def negotiator(self) -> Negotiator:
        return self.app[NEGOTIATOR]

    @property
    def invoker(self) -> Invoker:
        return self.app[INVOKER]

    @property
    def provider_keys(self) -> dict[str, Any]:
        return {self.service_key.kid: self.service_key.public_key}

    async def start(self) -> Provider:
        await self.client.start_server()
        return self

    async def close(self) -> None:
        await self.client.close()

    async def raw(
        self,
        method: str,
        path: str,
        body: Envelope | dict[str, Any] | None = None,
        *,
        encoding: str = "json",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, CIMultiDict[str]]:
        """One request; returns (status, decoded body, headers)."""
        hdrs = {"Accept": codec.media_type(encoding)}  # type: ignore[arg-type]
        data = None
        if body is not None:
            sent = body.to_value() if isinstance(body, Envelope) else body
            data = codec.encode(sent, encoding)  # type: ignore[arg-type]
            hdrs["Content-Type"] = codec.media_type(encoding)  # type: ignore[arg-type]
        hdrs.update(headers or {})
        async with self.client.request(method, path, data=data, headers=hdrs) as resp:
            raw = await resp.read()
            ctype = resp.content_type
            value: Any = raw
            if ctype in ("application/problem+json", "application/cid+json", "application/json"):
                value = codec.decode_json(raw)
            elif ctype == "application/cid+msgpack":
                value = codec.decode_msgpack(raw)
            return resp.status, value, CIMultiDict(resp.headers)

    async def call(
        self, method: str, path: str, body: Envelope | dict[str, Any] | None = None, **kw: Any
    ) -> Any:
        """One request; the decoded answer, or the typed error the problem carries."""
        status, value, headers = await self.raw(method, path, body, **kw)
        if status >= 400:
            if headers.get("Content-Type", "").startswith("application/problem+json"):
                err = from_wire(value["cid"])
                assert err.status == status == value["status"]
                raise err
            raise ProblemError(f"HTTP {status} without a problem: {value!r}")
        return value

    # -- flows -------------------------------------------------------------------------------------

    async def demand(self, env: Envelope) -> Envelope:
        return Envelope.from_value(await self.call("POST", "/v1/negotiate/demand", env))

    async def accept(self, env: Envelope) -> Envelope:
        return Envelope.from_value(await self.call("POST", "/v1/negotiate/accept", env))

    async def agree(self, *, quantity: int = 1, **demand_kw: Any) -> Flow:
        r = self.requester
        demand_env = r.demand(quantity=quantity, **demand_kw)
        quote_env = await self.demand(demand_env)
        assert quote_env.typ in ("cid.neg.quote", "cid.neg.counter"), quote_env.body_value
        accept_env = r.accept(quote_env)
        agreement_env = await self.accept(accept_env)
        cosigned = r.countersign(agreement_env)
        answer = await self.call("POST", "/v1/negotiate/agreement", cosigned)
        assert answer["state"] == "agreed"
        agreement = validate(Agreement, agreement_env.body_value)
        return Flow(demand_env, quote_env, accept_env, agreement_env, cosigned, agreement)

    async def submit(self, env: Envelope) -> str:
        answer = await self.call("POST", "/v1/invoke/tasks", env)
        task_id: str = answer["task_id"]
        return task_id

    async def settle_tasks(self) -> None:
        """Let the watchers process what the executor reported (a fake executor only)."""
        executor = self.executor
        for _ in range(1000):
            await asyncio.sleep(0)
            if all(
                rec.finalised or executor.pending(task_id)
                for task_id, rec in self.invoker.book.tasks.items()
            ):
                return
        raise AssertionError("the task watchers did not catch up")


@pytest_asyncio.fixture
async def provider() -> AsyncIterator[Provider]:
    p = Provider()
    await p.start()
    try:
        yield p
    finally:
        await p.close()


def error_of(exc: BaseException) -> CidError:
    assert isinstance(exc, CidError), exc
    return exc
