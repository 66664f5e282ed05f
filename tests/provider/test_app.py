"""Invocation and the HTTP binding of the provider app, on loopback (spec sections 9 and 15)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cid.envelope import Envelope, seal
from cid.errors import (
    AgreementExpiredError,
    AgreementNotFoundError,
    InternalError,
    InvocationError,
    MethodNotAllowedError,
    NotAcceptableError,
    NotFoundError,
    PayloadTooLargeError,
    ReplayError,
    SchemaError,
    TaskLimitsExceededError,
    TaskNotFoundError,
    TaskStateConflictError,
    UnavailableError,
    UnsupportedMediaTypeError,
    VerificationError,
)
from cid.invocation import (
    TYP_RESULT,
    TYP_STATUS,
    TaskResult,
    TaskStatus,
    Usage,
    receipt_cost,
    task_id_of,
    verify_receipt,
)
from cid.model import validate
from cid.negotiation import TaskLimits
from cid.provider import ListPricePolicy, create_provider_app
from cid.provider.app import MAX_BODY_BYTES
from cid.provider.invoker import max_task_cost

from .conftest import DAY, FakeExecutor, Flow, Provider

pytestmark = pytest.mark.asyncio


def status_of(value: dict[str, Any], provider: Provider) -> TaskStatus:
    env = Envelope.from_value(value)
    env.verify(provider.provider_keys, typ=TYP_STATUS, now=provider.clock())
    return validate(TaskStatus, env.body_value)


async def test_task_lifecycle_and_receipt(provider: Provider) -> None:
    """REQ-PRV-030, REQ-PRV-033, REQ-PRV-035, REQ-PRV-036, REQ-PRV-040: submit to receipt."""
    flow = await provider.agree()
    r = provider.requester
    env = r.task(flow.agreement)
    status, value, headers = await provider.raw("POST", "/v1/invoke/tasks", env)
    assert status == 202
    task_id = value["task_id"]
    assert value == {"task_id": task_id, "state": "queued"}
    assert task_id == task_id_of(env)  # REQ-INV-004
    assert headers["Location"] == f"/v1/invoke/tasks/{task_id}"
    executor = provider.executor
    assert isinstance(executor, FakeExecutor)
    assert executor.starts[task_id] == 1
    assert executor.tasks[task_id][1] == flow.agreement.limits

    s = status_of(await provider.call("GET", f"/v1/invoke/tasks/{task_id}"), provider)
    assert s.state == "queued" and s.agreement_id == flow.agreement.agreement_id
    with pytest.raises(TaskStateConflictError):
        await provider.call("GET", f"/v1/invoke/tasks/{task_id}/result")
    with pytest.raises(TaskStateConflictError):
        await provider.call("GET", f"/v1/invoke/tasks/{task_id}/stdout")

    executor.run(task_id)
    await provider.settle_tasks()
    s = status_of(await provider.call("GET", f"/v1/invoke/tasks/{task_id}"), provider)
    assert s.state == "running" and s.started == provider.clock()
    provider.clock.advance(5)
    executor.finish(task_id, stdout=b"42\n", outputs={"out/answer.txt": b"42"})
    await provider.settle_tasks()
    status_env = await provider.call("GET", f"/v1/invoke/tasks/{task_id}")
    s = status_of(status_env, provider)
    assert s.state == "succeeded" and s.exit_code == 0 and s.finished == provider.clock()
    assert status_env["header"]["serial"] == 3  # REQ-INV-009: queued 1, running 2, succeeded 3

    got = await provider.call("GET", f"/v1/invoke/tasks/{task_id}/result")
    result_env = Envelope.from_value(got["result"])
    result_env.verify(provider.provider_keys, typ=TYP_RESULT, now=provider.clock())
    result = validate(TaskResult, result_env.body_value)
    assert result.task_id == task_id
    assert [o.path for o in result.outputs] == ["out/answer.txt"]
    assert result.stdout_sha256 == hashlib.sha256(b"42\n").hexdigest()
    receipt_env = Envelope.from_value(got["receipt"])
    receipt = verify_receipt(
        receipt_env,
        flow.agreement,
        service_keys=provider.provider_keys,
        now=provider.clock() + DAY,  # verifiable offline, later
    )
    assert receipt.usage == Usage(cpu_s=1, memory_mib_s=10, wall_s=2, output_bytes=2)
    assert receipt.cost == receipt_cost(flow.agreement, receipt.usage)
    receipts = await provider.call(
        "GET", f"/v1/invoke/agreements/{flow.agreement.agreement_id}/receipts"
    )
    assert [Envelope.from_value(x).digest() for x in receipts["receipts"]] == [receipt_env.digest()]

    status, data, headers = await provider.raw(
        "GET", f"/v1/invoke/tasks/{task_id}/outputs/out/answer.txt"
    )
    assert status == 200 and data == b"42"
    assert headers["Content-Type"] == "application/octet-stream"
    digest = base64.b64encode(hashlib.sha256(b"42").digest()).decode()
    assert headers["Repr-Digest"] == f"sha-256=:{digest}:"
    assert hashlib.sha256(data).hexdigest() == result.outputs[0].sha256
    _, out, _ = await provider.raw("GET", f"/v1/invoke/tasks/{task_id}/stdout")
    _, err, _ = await provider.raw("GET", f"/v1/invoke/tasks/{task_id}/stderr")
    assert (out, err) == (b"42\n", b"")
    with pytest.raises(NotFoundError):
        await provider.call("GET", f"/v1/invoke/tasks/{task_id}/outputs/missing.txt")
    # a finished task is never started again, and cannot be cancelled (REQ-INV-022)
    with pytest.raises(TaskStateConflictError):
        await provider.call(
            "POST", f"/v1/invoke/tasks/{task_id}/cancel", r.cancel(task_id, flow.agreement)
        )
    assert executor.starts[task_id] == 1


async def test_event_stream(provider: Provider) -> None:
    """REQ-PRV-034: SSE of status envelopes until the terminal one; Last-Event-ID resumes."""
    flow = await provider.agree()
    task_id = await provider.submit(provider.requester.task(flow.agreement))
    executor = provider.executor
    assert isinstance(executor, FakeExecutor)
    url = provider.client.make_url(f"/v1/invoke/tasks/{task_id}/events")

    async def read_all(headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "text/event-stream"
            block: dict[str, Any] = {}
            async for raw in resp.content:
                line = raw.decode().rstrip("\n")
                if not line:
                    if block:
                        events.append(block)
                    block = {}
                elif not line.startswith(":"):
                    name, _, val = line.partition(": ")
                    block[name] = val
        return events

    reader = asyncio.create_task(read_all())
    await asyncio.sleep(0.05)
    executor.run(task_id)
    await provider.settle_tasks()
    await asyncio.sleep(0.05)
    executor.finish(task_id)
    events = await asyncio.wait_for(reader, timeout=10)
    assert [e["event"] for e in events] == ["status"] * 3
    assert [int(e["id"]) for e in events] == [1, 2, 3]
    states = [status_of(json.loads(e["data"]), provider).state for e in events]
    assert states == ["queued", "running", "succeeded"]
    resumed = await read_all({"Last-Event-ID": "2"})
    assert [int(e["id"]) for e in resumed] == [3]
    with pytest.raises(TaskNotFoundError):
        await provider.call("GET", "/v1/invoke/tasks/" + "B" * 43 + "/events")
    with pytest.raises(SchemaError):
        await provider.call(
            "GET", f"/v1/invoke/tasks/{task_id}/events", headers={"Last-Event-ID": "x"}
        )


async def test_cancel_and_deadline(provider: Provider) -> None:
    """REQ-PRV-037, REQ-PRV-039, REQ-INV-022, REQ-INV-043: cancel a task; a deadline expires one."""
    flow = await provider.agree()
    r = provider.requester
    executor = provider.executor
    assert isinstance(executor, FakeExecutor)
    task_id = await provider.submit(r.task(flow.agreement))
    executor.run(task_id)
    await provider.settle_tasks()
    cancel = r.cancel(task_id, flow.agreement)
    s = status_of(
        await provider.call("POST", f"/v1/invoke/tasks/{task_id}/cancel", cancel), provider
    )
    assert s.state == "cancelled" and s.reason == "requested"
    assert executor.cancels[task_id] == 1
    await provider.settle_tasks()
    got = await provider.call("GET", f"/v1/invoke/tasks/{task_id}/result")
    assert got["receipt"] is not None  # it ran: a receipt (REQ-INV-030)
    with pytest.raises(ReplayError):  # the same cancel again (REQ-INV-005)
        await provider.call("POST", f"/v1/invoke/tasks/{task_id}/cancel", cancel)
    with pytest.raises(TaskStateConflictError):
        await provider.call(
            "POST", f"/v1/invoke/tasks/{task_id}/cancel", r.cancel(task_id, flow.agreement)
        )
    # cancelled while queued: no receipt
    queued = await provider.submit(r.task(flow.agreement))
    await provider.call(
        "POST", f"/v1/invoke/tasks/{queued}/cancel", r.cancel(queued, flow.agreement)
    )
    await provider.settle_tasks()
    got = await provider.call("GET", f"/v1/invoke/tasks/{queued}/result")
    assert got["receipt"] is None and got["result"] is not None
    # a cancel naming another task, or for an unknown task
    other = await provider.submit(r.task(flow.agreement))
    with pytest.raises(SchemaError) as info:
        await provider.call(
            "POST", f"/v1/invoke/tasks/{other}/cancel", r.cancel(queued, flow.agreement)
        )
    assert info.value.field == "body.task_id"
    with pytest.raises(TaskNotFoundError):
        await provider.call(
            "POST", "/v1/invoke/tasks/" + "C" * 43 + "/cancel", r.cancel("C" * 43, flow.agreement)
        )
    # the deadline passes: expired, stopped (REQ-INV-043)
    late = await provider.submit(r.task(flow.agreement, deadline=provider.clock() + 30))
    provider.clock.advance(31)
    s = status_of(await provider.call("GET", f"/v1/invoke/tasks/{late}"), provider)
    assert s.state == "expired" and s.reason == "deadline"
    assert executor.cancels[late] == 1


async def test_task_refusals(provider: Provider) -> None:
    """REQ-INV-001, REQ-INV-005, REQ-INV-006, REQ-INV-012, REQ-PRV-030: typed refusals."""
    r = provider.requester
    flow = await provider.agree()
    a = flow.agreement
    env = r.task(a)
    await provider.submit(env)
    with pytest.raises(ReplayError):
        await provider.submit(env)
    big = a.limits.model_copy(update={"cpu_s": a.limits.cpu_s + 1})
    with pytest.raises(TaskLimitsExceededError) as info:
        await provider.submit(r.task(a, limits=big))
    assert info.value.field == "body.limits.cpu_s"
    with pytest.raises(TaskLimitsExceededError) as info:
        await provider.submit(r.task(a, deadline=a.end + 1))
    assert info.value.field == "body.deadline"
    with pytest.raises(SchemaError) as info2:
        await provider.submit(r.task(a, window_s=3601))
    assert info2.value.detail["rule"] == "task_window"
    with pytest.raises(SchemaError) as info2:
        await provider.submit(r.task(a, inputs=[{"path": "../etc/passwd", "sha256": "0" * 64}]))
    assert info2.value.field == "body.inputs.0.path"
    unknown = a.model_copy(update={"agreement_id": "agr-not-issued-here0"})
    with pytest.raises(AgreementNotFoundError):
        await provider.submit(r.task(unknown))
    # accepted but not countersigned
    quote_env = await provider.demand(r.demand())
    agreement_env = await provider.accept(r.accept(quote_env))
    pending = a.model_copy(update={"agreement_id": agreement_env.body_value["agreement_id"]})
    with pytest.raises(AgreementNotFoundError) as info3:
        await provider.submit(r.task(pending))
    assert info3.value.detail["rule"] == "not_agreed"
    # an agreement that starts later: INVOCATION_FAILED before_start (REQ-INV-006)
    later = await provider.agree(start_after=provider.clock() + 2 * 3600)
    with pytest.raises(InvocationError) as info4:
        await provider.submit(r.task(later.agreement, deadline=later.agreement.end))
    assert info4.value.detail["rule"] == "before_start"
    # withdrawn: AGREEMENT_EXPIRED; its running tasks are stopped
    w = r.withdraw(serial=5, agreement_id=a.agreement_id)
    await provider.call("POST", "/v1/negotiate/withdraw", w)
    with pytest.raises(AgreementExpiredError) as info5:
        await provider.submit(r.task(a))
    assert info5.value.detail["rule"] == "agreement_state"
    s = status_of(await provider.call("GET", f"/v1/invoke/tasks/{task_id_of(env)}"), provider)
    assert s.state == "cancelled" and s.reason == "provider"
    with pytest.raises(AgreementNotFoundError):
        await provider.call("GET", "/v1/invoke/agreements/agr-unknown-0000000/receipts")
    assert (
        await provider.call("GET", f"/v1/invoke/agreements/{later.agreement.agreement_id}/receipts")
    ) == {"receipts": []}
    with pytest.raises(TaskNotFoundError):
        await provider.call("GET", "/v1/invoke/tasks/" + "D" * 43)


async def test_agreement_period_end() -> None:
    """REQ-INV-006: at or after the agreement's end a task is AGREEMENT_EXPIRED."""
    p = await Provider().start()
    try:
        flow = await p.agree(duration_s=3600)
        p.clock.now = flow.agreement.end
        with pytest.raises(AgreementExpiredError):
            await p.submit(p.requester.task(flow.agreement, deadline=flow.agreement.end))
    finally:
        await p.close()


async def test_budget_bounds_receipts() -> None:
    """REQ-PRV-031, REQ-INV-034: tasks whose worst case the price cannot pay are refused."""
    # one day at a one-hour billing granularity, per-task wall limit of 10 hours: two fit
    policy = ListPricePolicy(wall_s=36_000)
    p = await Provider(policy=policy).start()
    try:
        flow: Flow = await p.agree(duration_s=DAY)
        a = flow.agreement
        # the Guizhou price has a one-month minimum term: billed 730 h, so about 73 tasks of
        # 10 h fit (each worst case is rounded up, so the last may not)
        ids: list[str] = []
        with pytest.raises(TaskLimitsExceededError) as info:
            for _ in range(100):
                ids.append(await p.submit(p.requester.task(a)))
        assert info.value.detail["rule"] == "budget"
        assert len(ids) in (72, 73)
        worst = max_task_cost(a, 36_000)
        assert worst * len(ids) <= a.price.total < worst * (len(ids) + 1)
        # a smaller task still fits once one finishes and its receipt is below its worst case
        executor = p.executor
        assert isinstance(executor, FakeExecutor)
        executor.finish(ids[0], usage=Usage(cpu_s=1, memory_mib_s=1, wall_s=60))
        await p.settle_tasks()
        small = a.limits.model_copy(update={"wall_s": 3600})
        await p.submit(p.requester.task(a, limits=small))
        got = await p.call("GET", f"/v1/invoke/agreements/{a.agreement_id}/receipts")
        assert len(got["receipts"]) == 1
    finally:
        await p.close()


async def test_usage_capped_and_outputs_limited(provider: Provider) -> None:
    """REQ-PRV-040, REQ-INV-023, REQ-INV-033: usage never exceeds limits; oversize outputs fail."""
    flow = await provider.agree()
    a = flow.agreement
    executor = provider.executor
    assert isinstance(executor, FakeExecutor)
    limits = TaskLimits(cpu_s=10, memory_mib=100, wall_s=10, output_bytes=4)
    t1 = await provider.submit(provider.requester.task(a, limits=limits))
    executor.run(t1)
    executor.finish(t1, usage=Usage(cpu_s=99, memory_mib_s=99_999, wall_s=12, output_bytes=0))
    t2 = await provider.submit(provider.requester.task(a, limits=limits))
    executor.finish(t2, outputs={"big.bin": b"12345"})
    await provider.settle_tasks()
    got = await provider.call("GET", f"/v1/invoke/tasks/{t1}/result")
    receipt = verify_receipt(
        Envelope.from_value(got["receipt"]),
        a,
        service_keys=provider.provider_keys,
        now=provider.clock(),
    )
    assert receipt.usage.cpu_s == 10 and receipt.usage.wall_s == 10
    assert receipt.usage.memory_mib_s == 1000
    s = status_of(await provider.call("GET", f"/v1/invoke/tasks/{t2}"), provider)
    assert s.state == "failed" and s.reason == "limit_output" and s.exit_code is None
    got = await provider.call("GET", f"/v1/invoke/tasks/{t2}/result")
    assert got["result"]["body"]["outputs"] == []


async def test_failed_task_status_shape(provider: Provider) -> None:
    """REQ-INV-021, REQ-PRV-041: executor reasons are normalised to the status rules."""
    flow = await provider.agree()
    executor = provider.executor
    assert isinstance(executor, FakeExecutor)
    t = await provider.submit(provider.requester.task(flow.agreement))
    executor.run(t)
    executor.finish(t, exit_code=3, reason="Not A Token!")
    await provider.settle_tasks()
    s = status_of(await provider.call("GET", f"/v1/invoke/tasks/{t}"), provider)
    assert s.state == "failed" and s.exit_code == 3 and s.reason == "provider"


class BrokenExecutor(FakeExecutor):
    async def start(self, task_id: str, task: Any, limits: Any) -> None:
        self.starts[task_id] += 1
        raise RuntimeError("no capacity in the cluster")


async def test_executor_failure_fails_the_task() -> None:
    """REQ-PRV-032: a task whose start fails is failed (reason provider), never retried."""
    p = Provider()
    p = Provider(clock=p.clock, executor=BrokenExecutor(p.clock))
    await p.start()
    try:
        flow = await p.agree()
        t = await p.submit(p.requester.task(flow.agreement))
        s = status_of(await p.call("GET", f"/v1/invoke/tasks/{t}"), p)
        assert s.state == "failed" and s.reason == "provider"
        got = await p.call("GET", f"/v1/invoke/tasks/{t}/result")
        assert got["receipt"] is None
    finally:
        await p.close()


async def test_http_errors(provider: Provider) -> None:
    """REQ-PRV-002, REQ-PRV-003, REQ-PRV-004: media types, sizes, routes, problem+json."""
    env = provider.requester.demand()
    status, value, headers = await provider.raw(
        "POST", "/v1/negotiate/demand", env, headers={"Content-Type": "text/plain"}
    )
    assert status == 415 and value["cid"]["name"] == UnsupportedMediaTypeError.name
    assert headers["Content-Type"].startswith("application/problem+json")
    assert value["request_id"] == headers["X-Request-Id"]
    status, value, _ = await provider.raw(
        "POST", "/v1/negotiate/demand", env, headers={"Accept": "text/html"}
    )
    assert status == 406 and value["cid"]["name"] == NotAcceptableError.name
    with pytest.raises(NotFoundError):
        await provider.call("GET", "/v1/nothing-here")
    with pytest.raises(MethodNotAllowedError):
        await provider.call("GET", "/v1/negotiate/demand")
    with pytest.raises(PayloadTooLargeError):
        await provider.call(
            "POST", "/v1/negotiate/demand", {"x": "y" * 8000, "z": ["a" * 8000] * 40}
        )
    assert MAX_BODY_BYTES < 8000 * 41
    with pytest.raises(SchemaError):
        await provider.call("POST", "/v1/negotiate/demand", {"header": {}})
    status, _, headers = await provider.raw(
        "GET", "/v1/negotiate/" + "E" * 43, headers={"X-Request-Id": "req-1234"}
    )
    assert status == 404 and headers["X-Request-Id"] == "req-1234"


async def test_internal_errors_are_opaque() -> None:
    """REQ-PRV-003: an unexpected failure is 500 INTERNAL with a request id and no internals."""

    class Exploding:
        def decide(self, *args: Any, **kw: Any) -> Any:
            raise RuntimeError("secret database password in a traceback")

    p = await Provider(policy=Exploding()).start()  # type: ignore[arg-type]
    try:
        status, value, _ = await p.raw("POST", "/v1/negotiate/demand", p.requester.demand())
        assert status == 500 and value["cid"]["name"] == InternalError.name
        assert "secret" not in json.dumps(value)
    finally:
        await p.close()


async def test_mounted_as_subapp() -> None:
    """REQ-PRV-001: the app can be mounted under a prefix of a provider's own application."""
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    inner = Provider()
    parent = web.Application()
    parent.add_subapp("/cid", inner.app)
    client = TestClient(TestServer(parent, host="127.0.0.1"))
    await client.start_server()
    try:
        env = inner.requester.demand()
        resp = await client.post(
            "/cid/v1/negotiate/demand",
            data=env.encode("json"),
            headers={"Content-Type": "application/cid+json"},
        )
        assert resp.status == 200
        assert (await resp.json())["header"]["typ"] == "cid.neg.quote"
    finally:
        await client.close()
    assert isinstance(inner.executor, FakeExecutor) and inner.executor.closed


async def test_factory_rejects_bad_ttl() -> None:
    p = Provider()
    with pytest.raises(ValueError):
        create_provider_app(
            namespace=p.namespace,
            service_key=p.service_key,
            offers=p.offers.get,
            policy=p.policy,
            ledger=p.ledger,
            executor=p.executor,
            idempotency_ttl_s=0,
        )


# --- end to end with the real executor ------------------------------------------------------------


async def test_end_to_end_with_local_process_executor(tmp_path: Path) -> None:
    """REQ-PRV-030, REQ-PRV-040, REQ-INV-030: a real `python -c` task; output and receipt check."""
    from cid.provider.executor import LocalProcessExecutor

    def wall_clock() -> int:
        return int(time.time())

    executor = LocalProcessExecutor(tmp_path / "tasks", clock=time.time)
    p = await Provider(clock=wall_clock, executor=executor).start()
    try:
        flow = await p.agree()
        code = (
            "import pathlib; pathlib.Path('out').mkdir(exist_ok=True); "
            "pathlib.Path('out/answer.txt').write_text(str(6 * 7)); print('hello from the task')"
        )
        limits = TaskLimits(cpu_s=20, memory_mib=512, wall_s=30, output_bytes=1_000_000)
        env = p.requester.task(
            flow.agreement,
            command=["python3", "-c", code],
            limits=limits,
            deadline=wall_clock() + 120,
        )
        task_id = await p.submit(env)
        got: dict[str, Any] = {}
        for _ in range(400):
            try:
                got = await p.call("GET", f"/v1/invoke/tasks/{task_id}/result")
                break
            except TaskStateConflictError:
                await asyncio.sleep(0.05)
        status = status_of(await p.call("GET", f"/v1/invoke/tasks/{task_id}"), p)
        assert status.state == "succeeded", status
        assert status.exit_code == 0
        _, stdout, _ = await p.raw("GET", f"/v1/invoke/tasks/{task_id}/stdout")
        assert stdout == b"hello from the task\n"
        result = validate(TaskResult, got["result"]["body"])
        assert result.stdout_sha256 == hashlib.sha256(stdout).hexdigest()
        paths = {o.path: o for o in result.outputs}
        assert set(paths) == {"out/answer.txt"}
        _, answer, _ = await p.raw("GET", f"/v1/invoke/tasks/{task_id}/outputs/out/answer.txt")
        assert answer == b"42"
        assert hashlib.sha256(answer).hexdigest() == paths["out/answer.txt"].sha256
        receipt = verify_receipt(
            Envelope.from_value(got["receipt"]),
            flow.agreement,
            service_keys=p.provider_keys,
            now=wall_clock(),
        )
        assert receipt.task_id == task_id
        assert 0 <= receipt.usage.wall_s <= limits.wall_s
        assert receipt.cost == receipt_cost(flow.agreement, receipt.usage)
    finally:
        await p.close()


async def test_cancel_refusals(provider: Provider) -> None:
    """REQ-PRV-037, REQ-INV-003, REQ-INV-005: a cancel is checked as a task is."""
    flow = await provider.agree()
    a = flow.agreement
    r = provider.requester
    task_id = await provider.submit(r.task(a))
    now = provider.clock()
    path = f"/v1/invoke/tasks/{task_id}/cancel"

    def cancel(**kw: Any) -> Envelope:
        args: dict[str, Any] = {
            "typ": "cid.inv.cancel", "sub": a.offer, "serial": 1, "key": r.key, "nbf": now,
            "exp": now + 600, "aud": a.provider, "nonce": "nonce-cancel-0000001",
        }  # fmt: skip
        args.update(kw)
        return seal({"task_id": task_id}, **args)

    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"sub": "nm.ctyun"}, SchemaError, "subject"),
        ({"aud": "ctyunx"}, VerificationError, "audience"),
        ({"nonce": None}, ReplayError, "nonce_required"),
        ({"serial": 2}, SchemaError, "serial"),
        ({"exp": now + 3601}, SchemaError, "task_window"),
    ]
    for change, error, rule in cases:
        with pytest.raises(error) as info:
            await provider.call("POST", path, cancel(**change))
        assert info.value.detail["rule"] == rule  # type: ignore[attr-defined]
    s = status_of(await provider.call("GET", f"/v1/invoke/tasks/{task_id}"), provider)
    assert s.state == "queued"
    await provider.call("POST", path, cancel())


class FailingLedger:
    """A ledger whose store is down."""

    async def reserve(self, reservation: Any, *, capacity: int) -> None:
        raise UnavailableError("ledger database unreachable at 10.0.0.7:5432")

    async def release(self, agreement_id: str) -> None:
        raise UnavailableError("ledger database unreachable")

    async def free(self, offer: Any, *, at: int, capacity: int) -> int:
        raise UnavailableError("ledger database unreachable at 10.0.0.7:5432", detail={"x": 1})


async def test_backend_outage_is_unavailable_without_details() -> None:
    """REQ-PRV-003: a 5xx error keeps its code but not its internals."""
    p = Provider()
    p.negotiator.ledger = FailingLedger()  # type: ignore[assignment]
    await p.start()
    try:
        status, value, headers = await p.raw("POST", "/v1/negotiate/demand", p.requester.demand())
        assert status == 503 and value["cid"]["name"] == "UNAVAILABLE"
        assert "10.0.0.7" not in json.dumps(value) and "detail" not in value["cid"]
        assert headers["X-Request-Id"] == value["request_id"]
    finally:
        await p.close()


async def test_sse_heartbeat(provider: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    """REQ-PRV-034: keep-alive comments while nothing happens."""
    import cid.provider.invoker as invoker_mod

    monkeypatch.setattr(invoker_mod, "HEARTBEAT_S", 0.05)
    flow = await provider.agree()
    task_id = await provider.submit(provider.requester.task(flow.agreement))
    url = provider.client.make_url(f"/v1/invoke/tasks/{task_id}/events")
    lines: list[str] = []
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        async for raw in resp.content:
            lines.append(raw.decode().rstrip("\n"))
            if lines.count(": keepalive") >= 2:
                break
    assert lines[0] == "event: status" and lines.count(": keepalive") == 2


async def test_finished_tasks_are_forgotten_after_retention() -> None:
    """REQ-PRV-038: finished tasks are kept for the retention period; receipts for good."""
    p = await Provider(idempotency_ttl_s=100).start()
    try:
        flow = await p.agree()
        executor = p.executor
        assert isinstance(executor, FakeExecutor)
        task_id = await p.submit(p.requester.task(flow.agreement))
        executor.finish(task_id)
        await p.settle_tasks()
        await p.call("GET", f"/v1/invoke/tasks/{task_id}/result")
        p.clock.advance(100)
        with pytest.raises(TaskNotFoundError):
            await p.call("GET", f"/v1/invoke/tasks/{task_id}")
        got = await p.call("GET", f"/v1/invoke/agreements/{flow.agreement.agreement_id}/receipts")
        assert len(got["receipts"]) == 1
    finally:
        await p.close()
