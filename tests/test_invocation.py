"""Invocation messages, task checks, receipts and the task state machine (spec section 9)."""

from __future__ import annotations

import copy
import hashlib
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cid.codec import decode, encode
from cid.envelope import Envelope, seal
from cid.errors import (
    AgreementExpiredError,
    AgreementNotFoundError,
    ExpiredError,
    InvocationError,
    KeyUnknownError,
    ReceiptInvalidError,
    ReplayError,
    SchemaError,
    SignatureInvalidError,
    TaskLimitsExceededError,
    TaskStateConflictError,
    VerificationError,
)
from cid.invocation import (
    MAX_TASK_WINDOW_S,
    MESSAGE_BODIES,
    TASK_TERMINAL_STATES,
    TASK_TRANSITIONS,
    TYP_CANCEL,
    TYP_RECEIPT,
    TYP_RESULT,
    TYP_STATUS,
    TYP_TASK,
    Cancel,
    Input,
    Receipt,
    TaskDefinition,
    TaskEvent,
    TaskResult,
    TaskState,
    TaskStatus,
    Usage,
    check_receipt,
    check_result,
    check_task,
    parse_message,
    receipt_cost,
    task_id_of,
    task_transition,
    verify_receipt,
)
from cid.model import WireModel, validate
from cid.negotiation import TaskLimits
from cid.signing import SigningKey
from tests.test_negotiation import NOW, Flow, make_flow

SHA = hashlib.sha256(b"data").hexdigest()
SHA2 = hashlib.sha256(b"more").hexdigest()


def roundtrip(model: WireModel) -> None:
    for encoding in ("json", "msgpack"):
        data = encode(model.to_value(), encoding)
        again = validate(type(model), decode(data, encoding))
        assert again == model
        assert encode(again.to_value(), encoding) == data


def reject(model: type[WireModel], value: Any, field: str, rule: str | None = None) -> None:
    with pytest.raises(SchemaError) as info:
        validate(model, value)
    assert info.value.field == field, info.value
    if rule is not None:
        assert info.value.detail["rule"] == rule, info.value


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in changes.items():
        if v is ...:
            out.pop(k, None)
        else:
            out[k] = v
    return out


@pytest.fixture
def flow() -> Flow:
    return make_flow()


def task_value(flow: Flow, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "agreement_id": flow.agreement.agreement_id,
        "command": ["python3", "train.py", "--epochs", "3"],
        "image": {"ref": "registry.example/ml/train:1.2", "sha256": SHA},
        "inputs": [
            {"path": "data/train.csv", "url": "https://data.example/train.csv", "sha256": SHA},
            {"path": "config.yaml", "sha256": SHA2},
        ],
        "env": {"OMP_NUM_THREADS": "1", "_X": ""},
        "limits": {"cpu_s": 600, "memory_mib": 1024, "wall_s": 900, "output_bytes": 10**6},
        "deadline": flow.agreement.start + 3600,
    }
    return with_(base, **changes)


RUN_AT = 0  # offset from the agreement start at which tasks are submitted


def submit(flow: Flow, body: dict[str, Any] | None = None, **kw: Any) -> Envelope:
    start = flow.agreement.start
    args: dict[str, Any] = {
        "typ": TYP_TASK,
        "sub": "gz.ctyun",
        "serial": 1,
        "key": flow.requester,
        "nbf": start,
        "exp": start + 600,
        "aud": "ctyun",
        "nonce": "task-nonce-00000001",
    }
    args.update(kw)
    return seal(task_value(flow) if body is None else body, **args)


def check(
    flow: Flow,
    env: Envelope,
    *,
    now: int | None = None,
    seen: frozenset[str] = frozenset(),
    key: SigningKey | None = None,
) -> TaskDefinition:
    return check_task(
        env,
        flow.agreement,
        requester_key=(key or flow.requester).public_key,
        now=flow.agreement.start + 10 if now is None else now,
        seen_nonces=seen,
    )


# --- messages --------------------------------------------------------------------------------


def test_task_definition_roundtrip(flow: Flow) -> None:
    """REQ-INV-010..014: a task definition round-trips in both encodings."""
    task = validate(TaskDefinition, task_value(flow))
    roundtrip(task)
    only_image = validate(TaskDefinition, task_value(flow, command=..., inputs=..., env=...))
    roundtrip(only_image)
    assert only_image.inputs == [] and only_image.env == {}
    roundtrip(validate(TaskDefinition, task_value(flow, image=...)))


TASK_REJECTIONS: list[tuple[dict[str, Any], str, str | None]] = [
    ({"command": ..., "image": ...}, "command", "command_or_image"),
    ({"command": []}, "command", None),
    ({"command": ["a\x00b"]}, "command.0", None),
    ({"inputs": [{"path": "x"}]}, "inputs.0.url", "input_source"),
    ({"inputs": [{"path": "/etc/passwd", "sha256": SHA}]}, "inputs.0.path", "path"),
    ({"inputs": [{"path": "../up", "sha256": SHA}]}, "inputs.0.path", "path"),
    ({"inputs": [{"path": "a//b", "sha256": SHA}]}, "inputs.0.path", "path"),
    ({"inputs": [{"path": "a/./b", "sha256": SHA}]}, "inputs.0.path", "path"),
    ({"inputs": [{"path": "a\\b", "sha256": SHA}]}, "inputs.0.path", "path"),
    ({"inputs": [{"path": "", "sha256": SHA}]}, "inputs.0.path", "path"),
    ({"inputs": [{"path": "a", "sha256": SHA.upper()}]}, "inputs.0.sha256", None),
    ({"inputs": [{"path": "a", "url": "file:///etc/passwd"}]}, "inputs.0.url", None),
    (
        {"inputs": [{"path": "a", "sha256": SHA}, {"path": "a", "sha256": SHA2}]},
        "inputs",
        "unique_path",
    ),
    ({"env": {"1BAD": "x"}}, "env.1BAD.[key]", None),
    ({"env": {"OK": 1}}, "env.OK", None),
    ({"limits": {"cpu_s": 1, "memory_mib": 1, "wall_s": 1}}, "limits.output_bytes", "missing"),
    (
        {"limits": {"cpu_s": 1, "memory_mib": 0, "wall_s": 1, "output_bytes": 0}},
        "limits.memory_mib",
        None,
    ),
    ({"deadline": "soon"}, "deadline", None),
    ({"agreement_id": "x"}, "agreement_id", None),
    ({"image": {"ref": "has space"}}, "image.ref", None),
    ({"image": {"ref": "r", "sha256": "abc"}}, "image.sha256", None),
    ({"workdir": "x"}, "workdir", "extra_forbidden"),
]


@pytest.mark.parametrize(("changes", "field", "rule"), TASK_REJECTIONS)
def test_task_rejections(flow: Flow, changes: dict[str, Any], field: str, rule: str | None) -> None:
    """REQ-INV-010..014: each invalid task is a SchemaError naming the field."""
    reject(TaskDefinition, task_value(flow, **changes), field, rule)


def test_input_needs_a_source() -> None:
    """REQ-INV-013: an input is fetched by URL, or found by content digest."""
    assert validate(Input, {"path": "a/b.txt", "sha256": SHA}).url is None


STATUS: dict[str, Any] = {"task_id": "A" * 43}


@pytest.mark.parametrize(
    "value",
    [
        {"state": "queued"},
        {"state": "running", "started": 10},
        {"state": "succeeded", "started": 10, "finished": 20, "exit_code": 0},
        {"state": "failed", "started": 10, "finished": 20, "exit_code": 1, "reason": "exit"},
        {"state": "failed", "finished": 20, "reason": "input_fetch"},
        {"state": "cancelled", "finished": 20},
        {"state": "cancelled", "started": 10, "finished": 20, "reason": "requested"},
        {"state": "expired", "finished": 20, "reason": "deadline"},
    ],
)
def test_status_shapes(value: dict[str, Any]) -> None:
    """REQ-INV-021: each state carries the fields it implies."""
    status = validate(TaskStatus, {**STATUS, **value, "agreement_id": "agree-00000000000001"})
    roundtrip(status)


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"state": "queued", "started": 1}, "started"),
        ({"state": "running"}, "started"),
        ({"state": "running", "started": 1, "finished": 2}, "finished"),
        ({"state": "succeeded", "started": 1}, "finished"),
        ({"state": "succeeded", "started": 1, "finished": 2}, "exit_code"),
        ({"state": "succeeded", "started": 1, "finished": 2, "exit_code": 3}, "exit_code"),
        ({"state": "failed", "started": 1, "finished": 2, "exit_code": 1}, "reason"),
        ({"state": "failed", "finished": 2, "exit_code": 0, "reason": "x"}, "reason"),
        ({"state": "cancelled", "finished": 2, "exit_code": 0}, "exit_code"),
        ({"state": "expired", "started": 5, "finished": 2}, "finished"),
        ({"state": "running", "started": 1, "exit_code": 0}, "exit_code"),
        ({"state": "paused"}, "state"),
        ({"state": "failed", "finished": 2, "reason": "Bad Reason"}, "reason"),
        ({"state": "succeeded", "started": 1, "finished": 2, "exit_code": 256}, "exit_code"),
    ],
)
def test_status_rejections(value: dict[str, Any], field: str) -> None:
    """REQ-INV-021: inconsistent statuses are SchemaErrors naming the field."""
    reject(TaskStatus, {**STATUS, **value}, field)


def test_result_and_cancel(flow: Flow) -> None:
    """REQ-INV-022, REQ-INV-023: results and cancels round-trip; paths are unique."""
    result = validate(
        TaskResult,
        {
            "task_id": "A" * 43,
            "outputs": [
                {"path": "out/model.pt", "sha256": SHA, "size_bytes": 700},
                {"path": "out/log.txt", "sha256": SHA2, "size_bytes": 300},
            ],
            "stdout_sha256": SHA,
            "stderr_sha256": SHA2,
        },
    )
    roundtrip(result)
    assert result.output_bytes == 1000
    task = validate(TaskDefinition, task_value(flow))
    check_result(result, task)
    small = validate(
        TaskDefinition,
        task_value(flow, limits={"cpu_s": 1, "memory_mib": 1, "wall_s": 1, "output_bytes": 999}),
    )
    with pytest.raises(TaskLimitsExceededError):
        check_result(result, small)
    out = result.to_value()["outputs"][0]
    reject(TaskResult, with_(result.to_value(), outputs=[out, out]), "outputs", "unique_path")
    reject(
        TaskResult,
        with_(result.to_value(), outputs=[with_(out, size_bytes=-1)]),
        "outputs.0.size_bytes",
    )
    roundtrip(Cancel(task_id="A" * 43, reason="no longer needed"))
    reject(Cancel, {"task_id": "short"}, "task_id")


def test_parse_message(flow: Flow) -> None:
    """REQ-INV-002: the typ selects the body model."""
    assert set(MESSAGE_BODIES) == {TYP_TASK, TYP_CANCEL, TYP_STATUS, TYP_RESULT, TYP_RECEIPT}
    env = submit(flow)
    assert parse_message(env) == validate(TaskDefinition, task_value(flow))
    status = seal(
        {**STATUS, "state": "queued"},
        typ=TYP_STATUS,
        sub="gz.ctyun",
        serial=1,
        key=flow.provider,
        nbf=NOW,
        exp=NOW + 60,
    )
    assert isinstance(parse_message(status), TaskStatus)
    with pytest.raises(SchemaError) as info:
        parse_message(flow.quote_env)
    assert info.value.field == "header.typ"


# --- task submission checks ------------------------------------------------------------------


def test_check_task_accepts_and_names_task(flow: Flow) -> None:
    """REQ-INV-001..007: a well-formed submission passes its checks; its id is its digest."""
    env = submit(flow)
    task = check(flow, env)
    assert task.agreement_id == flow.agreement.agreement_id
    assert task_id_of(env) == env.digest()
    assert task_id_of(Envelope.decode(env.encode("msgpack"), "msgpack")) == task_id_of(env)
    assert task_id_of(submit(flow, nonce="task-nonce-00000002")) != task_id_of(env)


def test_check_task_replay(flow: Flow) -> None:
    """REQ-INV-005: a nonce is accepted once; a nonce is required."""
    env = submit(flow)
    with pytest.raises(ReplayError) as info:
        check(flow, env, seen=frozenset({"task-nonce-00000001"}))
    assert info.value.detail["rule"] == "replay"
    with pytest.raises(ReplayError) as info:
        check(flow, submit(flow, nonce=None))
    assert info.value.detail["rule"] == "nonce_required"


def test_check_task_subject_is_the_offer(flow: Flow) -> None:
    """REQ-INV-008: a task envelope's sub is the agreement's offer."""
    with pytest.raises(SchemaError) as info:
        check(flow, submit(flow, sub="nm.ctyun"))
    assert info.value.detail["rule"] == "subject"


def test_check_task_serial_is_one(flow: Flow) -> None:
    """REQ-INV-009: a task envelope has serial 1."""
    with pytest.raises(SchemaError) as info:
        check(flow, submit(flow, serial=2))
    assert info.value.field == "header.serial"


def test_check_task_window_bounded(flow: Flow) -> None:
    """REQ-INV-005: a task envelope is valid for at most MAX_TASK_WINDOW_S."""
    start = flow.agreement.start
    check(flow, submit(flow, exp=start + MAX_TASK_WINDOW_S))
    with pytest.raises(SchemaError) as info:
        check(flow, submit(flow, exp=start + MAX_TASK_WINDOW_S + 1))
    assert info.value.detail["rule"] == "task_window"


def test_check_task_audience_and_signer(flow: Flow) -> None:
    """REQ-INV-002, REQ-INV-003: signed by the agreement's requester, addressed to the provider."""
    with pytest.raises(VerificationError) as info:
        check(flow, submit(flow, aud="other"))
    assert info.value.field == "header.aud"
    with pytest.raises(VerificationError) as info:
        check(flow, submit(flow, aud=None))
    assert info.value.field == "header.aud"
    with pytest.raises(VerificationError) as info:
        check(flow, submit(flow, key=flow.provider), key=flow.provider)
    assert info.value.detail["rule"] == "requester"
    with pytest.raises(KeyUnknownError):
        check(flow, submit(flow, key=flow.provider))
    with pytest.raises(SchemaError):
        check(flow, submit(flow, typ=TYP_CANCEL))
    with pytest.raises(ExpiredError):
        check(flow, submit(flow), now=flow.agreement.start + 600)
    tampered = Envelope.from_value(
        with_(submit(flow).to_value(), body=task_value(flow, command=["rm", "-rf", "/"]))
    )
    with pytest.raises(SignatureInvalidError):
        check(flow, tampered)


def test_check_task_against_agreement(flow: Flow) -> None:
    """REQ-INV-006, REQ-INV-010, REQ-INV-012: the agreement, its period, limits and deadline."""
    a = flow.agreement
    with pytest.raises(AgreementNotFoundError):
        check(flow, submit(flow, task_value(flow, agreement_id="agree-99999999999999")))
    late = a.end - 100
    with pytest.raises(AgreementExpiredError):
        check(flow, submit(flow, nbf=a.end - 100, exp=a.end + 100), now=a.end)
    check(flow, submit(flow, task_value(flow, deadline=a.end), nbf=late, exp=late + 600), now=late)
    with pytest.raises(InvocationError) as info:
        check(flow, submit(flow, nbf=a.start - 100, exp=a.start + 100), now=a.start - 1)
    assert info.value.detail["rule"] == "before_start"
    for name, value in (
        ("cpu_s", 3601),
        ("memory_mib", 2049),
        ("wall_s", 3601),
        ("output_bytes", 10**9 + 1),
    ):
        limits = {"cpu_s": 1, "memory_mib": 1, "wall_s": 1, "output_bytes": 0, name: value}
        with pytest.raises(TaskLimitsExceededError) as lim:
            check(flow, submit(flow, task_value(flow, limits=limits)))
        assert lim.value.field == f"body.limits.{name}"
    with pytest.raises(TaskLimitsExceededError) as dl:
        check(flow, submit(flow, task_value(flow, deadline=a.end + 1)))
    assert dl.value.field == "body.deadline"
    with pytest.raises(TaskLimitsExceededError):
        check(flow, submit(flow, task_value(flow, deadline=a.start + 10)))
    with pytest.raises(SchemaError) as body:
        check(flow, submit(flow, task_value(flow, command=..., image=...)))
    assert body.value.field == "body.command"


# --- receipts --------------------------------------------------------------------------------


def make_receipt(flow: Flow, **usage: Any) -> Receipt:
    u = Usage(
        **{
            "cpu_s": 500,
            "memory_mib_s": 900 * 1024,
            "wall_s": 900,
            "output_bytes": 1000,
            "resource_s": {"vcpu": 1800},
            **usage,
        }
    )
    return Receipt(
        task_id="A" * 43,
        agreement_id=flow.agreement.agreement_id,
        usage=u,
        cost=receipt_cost(flow.agreement, u),
        issued=flow.agreement.start + 1000,
    )


def test_receipt_cost_uses_agreement_rates(flow: Flow) -> None:
    """REQ-INV-032: each agreement item charged for the task's wall time."""
    r = make_receipt(flow)
    items = {i.resource: i for i in r.cost.items}
    assert set(items) == {i.resource for i in flow.agreement.price.items}
    assert all(i.billed_s == 900 for i in r.cost.items)
    # 2 vCPU x 5 CNY/month x 900 s / 2628000 s
    assert items["vcpu"].cost == Decimal("0.003424657534246576")
    assert items["vcpu"].exact_cost() == Fraction(2 * 5 * 900, 2_628_000)
    assert r.cost.units == flow.agreement.quantity
    assert r.cost.currency == "CNY"
    roundtrip(r)
    check_receipt(r, flow.agreement)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"agreement_id": "agree-99999999999999"}, "agreement_id"),
        ({"issued": 1}, "issued"),
        ({"usage": {"cpu_s": 3601, "memory_mib_s": 0, "wall_s": 1}}, "usage"),
        ({"usage": {"cpu_s": 1, "memory_mib_s": 0, "wall_s": 3601}}, "usage"),
        (
            {"usage": {"cpu_s": 1, "memory_mib_s": 0, "wall_s": 1, "output_bytes": 10**9 + 1}},
            "usage",
        ),
        ({"usage": {"cpu_s": 1, "memory_mib_s": 2049, "wall_s": 1}}, "usage.memory_mib_s"),
        ({"cost_total": "1"}, "cost"),
    ],
)
def test_check_receipt_rejections(flow: Flow, change: dict[str, Any], field: str) -> None:
    """REQ-INV-032, REQ-INV-033: a receipt that does not follow the agreement is refused."""
    good = make_receipt(flow)
    value = good.to_value()
    if "cost_total" in change:
        # a consistent but different breakdown: charge a longer wall time
        value["cost"] = receipt_cost(
            flow.agreement, good.usage.model_copy(update={"wall_s": 901})
        ).to_value()
    else:
        value.update(change)
    bad = validate(Receipt, value)
    with pytest.raises(ReceiptInvalidError) as info:
        check_receipt(bad, flow.agreement)
    assert info.value.field == field


def test_verify_receipt(flow: Flow) -> None:
    """REQ-INV-030: a receipt is signed by one provider service key."""
    r = make_receipt(flow)
    service = {flow.provider.kid: flow.provider.public_key}
    env = seal(
        r,
        typ=TYP_RECEIPT,
        sub="gz.ctyun",
        serial=1,
        key=flow.provider,
        nbf=r.issued,
        exp=r.issued + 86_400,
        aud="ctyun",
    )
    assert verify_receipt(env, flow.agreement, service_keys=service, now=r.issued) == r
    with pytest.raises(KeyUnknownError):
        verify_receipt(env, flow.agreement, service_keys={}, now=r.issued)
    with pytest.raises(SchemaError):
        verify_receipt(
            env.add_signature(flow.requester), flow.agreement, service_keys=service, now=r.issued
        )
    forged = seal(
        r.model_copy(update={"issued": 1}),
        typ=TYP_RECEIPT,
        sub="gz.ctyun",
        serial=1,
        key=flow.provider,
        nbf=r.issued,
        exp=r.issued + 60,
    )
    with pytest.raises(ReceiptInvalidError):
        verify_receipt(forged, flow.agreement, service_keys=service, now=r.issued)


def test_usage_rejections() -> None:
    """REQ-INV-031: usage is whole non-negative numbers; kinds are priced resources."""
    reject(Usage, {"cpu_s": -1, "memory_mib_s": 0, "wall_s": 0}, "cpu_s")
    reject(
        Usage,
        {"cpu_s": 0, "memory_mib_s": 0, "wall_s": 0, "resource_s": {"gpu": 1}},
        "resource_s.gpu.[key]",
    )
    roundtrip(validate(Usage, {"cpu_s": 0, "memory_mib_s": 0, "wall_s": 0}))


# --- task state machine ----------------------------------------------------------------------

TASK_LEGAL = [
    ("queued", "start", "running"),
    ("queued", "fail", "failed"),
    ("queued", "cancel", "cancelled"),
    ("queued", "expire", "expired"),
    ("running", "succeed", "succeeded"),
    ("running", "fail", "failed"),
    ("running", "cancel", "cancelled"),
    ("running", "expire", "expired"),
]


@pytest.mark.parametrize(("state", "event", "after"), TASK_LEGAL)
def test_task_legal_transitions(state: str, event: str, after: str) -> None:
    """REQ-INV-041: the task transition table of spec 9.4."""
    assert task_transition(state, event) is TaskState(after)


def test_task_table_is_the_spec_table() -> None:
    """REQ-INV-041, REQ-INV-042: exactly the table; terminal states have no exit."""
    assert {(s.value, e.value, t.value) for (s, e), t in TASK_TRANSITIONS.items()} == set(
        TASK_LEGAL
    )
    assert {s for s in TaskState if not any(k[0] is s for k in TASK_TRANSITIONS)} == (
        TASK_TERMINAL_STATES
    )


@pytest.mark.parametrize(
    ("state", "event"),
    [(s, e) for s in TaskState for e in TaskEvent if (s, e) not in TASK_TRANSITIONS],
)
def test_task_illegal_transitions(state: TaskState, event: TaskEvent) -> None:
    """REQ-INV-040: every pair outside the table is TASK_STATE_CONFLICT."""
    with pytest.raises(TaskStateConflictError) as info:
        task_transition(state, event)
    assert info.value.detail == {"state": state.value, "event": event.value}


def test_task_unknown_names() -> None:
    """REQ-INV-040: unknown states or events are conflicts, never ValueError."""
    with pytest.raises(TaskStateConflictError):
        task_transition("paused", "start")
    with pytest.raises(TaskStateConflictError):
        task_transition("queued", "pause")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list(TaskEvent)), max_size=12))
def test_task_random_sequences(events: list[TaskEvent]) -> None:
    """REQ-INV-040..042: random sequences never leave the defined states."""
    state = TaskState.QUEUED
    for event in events:
        try:
            nxt = task_transition(state, event)
        except TaskStateConflictError:
            assert (state, event) not in TASK_TRANSITIONS
            continue
        assert state not in TASK_TERMINAL_STATES
        state = nxt
    assert state in TaskState


def test_task_limits_within() -> None:
    """REQ-INV-012: the first limit above the agreement's is named."""
    big = TaskLimits(cpu_s=10, memory_mib=10, wall_s=10, output_bytes=10)
    assert TaskLimits(cpu_s=10, memory_mib=1, wall_s=1, output_bytes=0).within(big) is None
    assert TaskLimits(cpu_s=10, memory_mib=1, wall_s=11, output_bytes=0).within(big) == "wall_s"
