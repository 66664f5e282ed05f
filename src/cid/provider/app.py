"""The provider application: ``create_provider_app(...)`` (spec section 15, HTTP binding).

Thin handlers over two parts built by the factory:

* the :class:`~cid.provider.negotiator.Negotiator` (``/v1/negotiate/*``):
  verification, the negotiation state machine, idempotency and capacity;
* the :class:`~cid.provider.invoker.Invoker` (``/v1/invoke/*``): task
  admission, replay refusal, the task state machine, results and receipts.

Domain errors become RFC 9457 problems (with the cid wire error in ``cid``,
[REQ-PRV-003]) in one middleware, which also stamps a request id and, before
every request, applies the deadlines that have passed by the provider's clock
([REQ-NEG-043], [REQ-INV-043]); a background loop does the same once a second.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from .. import codec
from ..envelope import Envelope
from ..errors import (
    DecodeError,
    PayloadTooLargeError,
    SchemaError,
)
from ..http import decode_body, exception_problem, negotiate, render
from ..identifier import Identifier
from ..signing import SigningKey
from .backend import CapacityLedger, Executor, OfferVersion, QuotePolicy
from .invoker import Invoker
from .negotiator import Negotiator

__all__ = [
    "EXECUTOR",
    "INVOKER",
    "LEDGER",
    "MAX_BODY_BYTES",
    "NEGOTIATOR",
    "create_provider_app",
    "system_clock",
]

log = logging.getLogger("cid.provider")

NEGOTIATOR: Final = web.AppKey("cid.provider.negotiator", Negotiator)
INVOKER: Final = web.AppKey("cid.provider.invoker", Invoker)
LEDGER: Final = web.AppKey("cid.provider.ledger", CapacityLedger)
EXECUTOR: Final = web.AppKey("cid.provider.executor", Executor)
REQUEST_ID: Final = web.RequestKey("cid.provider.request_id", str)

MAX_BODY_BYTES: Final = 256 * 1024
"""Largest request body ([REQ-PRV-002]): one envelope."""

READ_TIMEOUT_S: Final = 30.0
SWEEP_INTERVAL_S: Final = 1.0
_DIGEST: Final = r"{%s:[A-Za-z0-9_-]{43}}"


def system_clock() -> int:
    """Integer seconds since the epoch."""
    return int(time.time())


# --- middleware ---------------------------------------------------------------------------------


async def _sweep(app: web.Application) -> None:
    try:
        await app[NEGOTIATOR].sweep()
        await app[INVOKER].sweep()
    except Exception:
        log.exception("deadline sweep failed")


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Request id, deadlines, and the one place errors become problems ([REQ-PRV-003])."""
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    await _sweep(request.app)
    try:
        response = await handler(request)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # REQ-PRV-003: every error is a problem, here only
        response = exception_problem(request, exc, request_id, service="provider", logger=log)
    if not response.prepared:
        response.headers["X-Request-Id"] = request_id
    return response


# --- helpers -----------------------------------------------------------------------------------


async def _read_envelope(request: web.Request) -> Envelope:
    """The request body as an (unverified) envelope ([REQ-PRV-002])."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise PayloadTooLargeError(
            f"body of {request.content_length} bytes, limit {MAX_BODY_BYTES}",
            detail={"rule": "max_body_bytes", "limit": MAX_BODY_BYTES},
        )
    limits = codec.DEFAULT_LIMITS.scaled(max_bytes=MAX_BODY_BYTES)
    try:
        value, scan, _ = await asyncio.wait_for(
            decode_body(request, limits), timeout=READ_TIMEOUT_S
        )
    except TimeoutError:
        raise DecodeError(
            "request body not received in time", detail={"rule": "read_timeout"}
        ) from None
    return Envelope.from_value(value, scan=scan)


def _task_id(request: web.Request) -> str:
    return request.match_info["task_id"]


# --- negotiate ----------------------------------------------------------------------------------


async def post_demand(request: web.Request) -> web.Response:
    """Demand → quote, counter or rejection ([REQ-PRV-010])."""
    encoding = negotiate(request)
    answer = await request.app[NEGOTIATOR].demand(await _read_envelope(request))
    return render(answer.to_value(), encoding)


async def post_accept(request: web.Request) -> web.Response:
    """Accept → the provider-signed agreement, capacity reserved ([REQ-PRV-014])."""
    encoding = negotiate(request)
    envelope = await _read_envelope(request)
    # shield: a client that disconnects must not cancel a reservation half-way
    agreement = await asyncio.shield(request.app[NEGOTIATOR].accept(envelope))
    return render(agreement.to_value(), encoding)


async def post_agreement(request: web.Request) -> web.Response:
    """The countersigned agreement → ``agreed`` ([REQ-PRV-016])."""
    encoding = negotiate(request)
    answer = await request.app[NEGOTIATOR].countersign(await _read_envelope(request))
    return render(answer, encoding)


async def post_withdraw(request: web.Request) -> web.Response:
    """Withdraw → ``withdrawn``, capacity released, fee reported ([REQ-PRV-018])."""
    encoding = negotiate(request)
    envelope = await _read_envelope(request)
    answer = await asyncio.shield(request.app[NEGOTIATOR].withdraw(envelope))
    return render(answer, encoding)


async def get_negotiation(request: web.Request) -> web.Response:
    """One negotiation's state and messages ([REQ-PRV-019])."""
    encoding = negotiate(request)
    view = await request.app[NEGOTIATOR].status(request.match_info["demand"])
    return render(view, encoding)


# --- invoke -------------------------------------------------------------------------------------


async def post_task(request: web.Request) -> web.Response:
    """Submit a task under an agreement → 202 ([REQ-PRV-030])."""
    encoding = negotiate(request)
    envelope = await _read_envelope(request)
    rec = await asyncio.shield(request.app[INVOKER].submit(envelope))
    return render(
        {"task_id": rec.task_id, "state": rec.state.value},
        encoding,
        status=202,
        headers={"Location": f"{request.path.rstrip('/')}/{rec.task_id}"},
    )


async def get_task(request: web.Request) -> web.Response:
    """The task's latest signed status ([REQ-PRV-033])."""
    encoding = negotiate(request)
    return render(request.app[INVOKER].status(_task_id(request)).to_value(), encoding)


async def get_events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: one ``status`` event per status envelope ([REQ-PRV-034])."""
    invoker = request.app[INVOKER]
    task_id = _task_id(request)
    invoker.book.get(task_id)  # TASK_NOT_FOUND as a problem, before the stream starts
    raw = request.headers.get("Last-Event-ID", "0").strip() or "0"
    try:
        after = int(raw)
    except ValueError:
        raise SchemaError(
            "Last-Event-ID is a status serial", field="Last-Event-ID", detail={"rule": "int"}
        ) from None
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            "X-Request-Id": request[REQUEST_ID],
        }
    )
    await resp.prepare(request)
    with contextlib.suppress(ConnectionResetError):
        async for env in invoker.statuses(task_id, after=after):
            if env is None:
                await resp.write(b": keepalive\n\n")
                continue
            data = codec.encode_json(env.to_value())
            await resp.write(b"event: status\nid: %d\ndata: %s\n\n" % (env.header.serial, data))
        await resp.write_eof()
    return resp


async def get_result(request: web.Request) -> web.Response:
    """The signed result and receipt of a finished task ([REQ-PRV-035])."""
    encoding = negotiate(request)
    rec = request.app[INVOKER].result(_task_id(request))
    body: dict[str, Any] = {
        "result": rec.result_env.to_value() if rec.result_env is not None else None,
        "receipt": rec.receipt_env.to_value() if rec.receipt_env is not None else None,
    }
    return render(body, encoding)


def _raw(data: bytes) -> web.Response:
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")
    return web.Response(
        body=data,
        content_type="application/octet-stream",
        headers={"Repr-Digest": f"sha-256=:{digest}:"},
    )


async def get_output(request: web.Request) -> web.Response:
    """One output file's bytes ([REQ-PRV-036])."""
    return _raw(request.app[INVOKER].output(_task_id(request), request.match_info["path"]))


async def get_stdout(request: web.Request) -> web.Response:
    return _raw(request.app[INVOKER].output(_task_id(request), ":stdout"))


async def get_stderr(request: web.Request) -> web.Response:
    return _raw(request.app[INVOKER].output(_task_id(request), ":stderr"))


async def post_cancel(request: web.Request) -> web.Response:
    """Cancel a task for its requester → its status ([REQ-PRV-037])."""
    encoding = negotiate(request)
    envelope = await _read_envelope(request)
    invoker = request.app[INVOKER]
    rec = await asyncio.shield(invoker.cancel(_task_id(request), envelope))
    return render(rec.statuses[-1].to_value(), encoding)


async def get_receipts(request: web.Request) -> web.Response:
    """The receipts of one agreement ([REQ-PRV-038])."""
    encoding = negotiate(request)
    receipts = request.app[INVOKER].receipts(request.match_info["agreement_id"])
    return render({"receipts": [r.to_value() for r in receipts]}, encoding)


# --- lifecycle ----------------------------------------------------------------------------------


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    async def sweeper() -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            await _sweep(app)

    task = asyncio.create_task(sweeper(), name="cid-provider-sweeper")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await app[INVOKER].close()
        await app[EXECUTOR].close()


def create_provider_app(
    *,
    namespace: Identifier,
    service_key: SigningKey,
    offers: Callable[[Identifier], OfferVersion | None],
    policy: QuotePolicy,
    ledger: CapacityLedger,
    executor: Executor,
    clock: Callable[[], int] = system_clock,
    idempotency_ttl_s: int = 86_400,
) -> web.Application:
    """The provider's negotiate and invoke endpoints as an aiohttp application (spec 15).

    Mount it at the root, or under a prefix with ``parent.add_subapp(prefix, app)``;
    the zone record's ``negotiate`` and ``invoke`` endpoints are then
    ``<base>/v1/negotiate`` and ``<base>/v1/invoke`` ([REQ-PRV-001]).

    Args:
        namespace: the provider namespace (``aud`` of requester messages).
        service_key: a service key of the namespace's zone record; signs every
            provider message (quotes, agreements, statuses, results, receipts).
        offers: the current version of an offer by name, or ``None`` when the
            provider does not publish it (any more).
        policy: what to answer a verified demand.
        ledger: atomic capacity reservations.
        executor: runs tasks with their limits; closed when the app is cleaned up.
        clock: integer seconds since the epoch (tests pass a controllable clock).
        idempotency_ttl_s: how long idempotency keys, closed negotiations and
            finished tasks are remembered; [REQ-NEG-025] requires at least 86400.
    """
    if idempotency_ttl_s < 1:
        raise ValueError("idempotency_ttl_s must be positive")
    negotiator = Negotiator(
        namespace=namespace,
        service_key=service_key,
        offers=offers,
        policy=policy,
        ledger=ledger,
        clock=clock,
        idempotency_ttl_s=idempotency_ttl_s,
    )
    invoker = Invoker(
        namespace=namespace,
        service_key=service_key,
        executor=executor,
        agreements=negotiator.held_agreement,
        clock=clock,
        known_agreement=negotiator.knows,
        retain_s=idempotency_ttl_s,
    )
    negotiator.on_agreement_end = invoker.agreement_ended
    app = web.Application(middlewares=[error_middleware], client_max_size=MAX_BODY_BYTES)
    app[NEGOTIATOR] = negotiator
    app[INVOKER] = invoker
    app[LEDGER] = ledger
    app[EXECUTOR] = executor

    async def on_shutdown(app: web.Application) -> None:
        invoker.stop_listening()

    app.on_shutdown.append(on_shutdown)
    app.cleanup_ctx.append(_lifecycle)
    r = app.router
    r.add_post("/v1/negotiate/demand", post_demand)
    r.add_post("/v1/negotiate/accept", post_accept)
    r.add_post("/v1/negotiate/agreement", post_agreement)
    r.add_post("/v1/negotiate/withdraw", post_withdraw)
    r.add_get("/v1/negotiate/" + _DIGEST % "demand", get_negotiation)
    r.add_post("/v1/invoke/tasks", post_task)
    task = "/v1/invoke/tasks/" + _DIGEST % "task_id"
    r.add_get(task, get_task)
    r.add_get(task + "/events", get_events)
    r.add_get(task + "/result", get_result)
    r.add_get(task + "/stdout", get_stdout)
    r.add_get(task + "/stderr", get_stderr)
    r.add_get(task + "/outputs/{path:.+}", get_output)
    r.add_post(task + "/cancel", post_cancel)
    r.add_get("/v1/invoke/agreements/{agreement_id}/receipts", get_receipts)
    return app
