"""The invoke verb at message level (spec section 9): tasks, status, results, receipts.

Theory of operation
-------------------
Invocation runs work under an :class:`~cid.negotiation.Agreement`. The
requester submits a :class:`TaskDefinition` in an envelope of ``typ``
``cid.inv.task`` signed by the agreement's requester key, with a fresh
``header.nonce`` and ``header.aud`` = the provider namespace ([REQ-INV-001]..).
The provider checks it with :func:`check_task` (pure: signature, audience,
replay, agreement, limits, deadline, in that order) and names the task by the
envelope's digest (:func:`task_id_of`), so the same submission is always the
same task and a replayed one is refused ([REQ-INV-004], [REQ-INV-005]).

Replay protection needs bounded memory: a task envelope's validity window is at
most :data:`MAX_TASK_WINDOW_S`, and a provider remembers each accepted nonce
until the envelope's ``exp``; after that the envelope itself is expired.

Tasks move through the states of :data:`TASK_TRANSITIONS` (spec 9.4);
anything else is a :class:`~cid.errors.TaskStateConflictError`. A finished
task has a :class:`TaskResult` (content digests of its outputs) and a
:class:`Receipt`: usage metered by the provider and its cost at the agreement's
rates (:func:`receipt_cost`), signed with a provider service key
([REQ-INV-030]..). The requester can recompute and check it (:func:`check_receipt`).
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from enum import StrEnum
from typing import Annotated, Final

from pydantic import AfterValidator, Field, model_validator

from .envelope import Envelope
from .errors import (
    AgreementExpiredError,
    AgreementNotFoundError,
    InvocationError,
    ReceiptInvalidError,
    ReplayError,
    SchemaError,
    TaskLimitsExceededError,
    TaskStateConflictError,
    VerificationError,
)
from .model import UInt, WireModel, validate
from .negotiation import Agreement, TaskLimits
from .query import CostBreakdown, CostItem, Digest, item_cost, rule_violation
from .record import HttpsUrl, PricedResource, ShortText
from .signing import PublicKey

__all__ = [
    "MAX_TASK_WINDOW_S",
    "MESSAGE_BODIES",
    "TASK_TERMINAL_STATES",
    "TASK_TRANSITIONS",
    "TYP_CANCEL",
    "TYP_RECEIPT",
    "TYP_RESULT",
    "TYP_STATUS",
    "TYP_TASK",
    "Cancel",
    "Image",
    "Input",
    "Output",
    "Receipt",
    "TaskDefinition",
    "TaskEvent",
    "TaskLimits",
    "TaskResult",
    "TaskState",
    "TaskStatus",
    "Usage",
    "check_receipt",
    "check_result",
    "check_task",
    "parse_message",
    "receipt_cost",
    "task_id_of",
    "task_transition",
    "verify_receipt",
]

TYP_TASK: Final = "cid.inv.task"
TYP_CANCEL: Final = "cid.inv.cancel"
TYP_STATUS: Final = "cid.inv.status"
TYP_RESULT: Final = "cid.inv.result"
TYP_RECEIPT: Final = "cid.inv.receipt"

MAX_TASK_WINDOW_S: Final = 3_600
"""Longest ``exp - nbf`` of a task or cancel envelope: bounds nonce memory ([REQ-INV-005])."""

_ENV_NAME: Final = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"


def _check_path(value: str) -> str:
    # REQ-INV-013: relative POSIX paths inside the task's working directory.
    if (
        not value
        or value.startswith("/")
        or "\x00" in value
        or "\\" in value
        or any(seg in ("", ".", "..") for seg in value.split("/"))
    ):
        raise ValueError("not a relative path without '.', '..' or empty segments [path]")
    return value


Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", strict=True)]
"""SHA-256 of file content in lower-case hex (as ``sha256sum`` prints it)."""

RelPath = Annotated[str, Field(max_length=1024, strict=True), AfterValidator(_check_path)]
Arg = Annotated[str, Field(max_length=4096, pattern=r"^[^\x00]*$", strict=True)]
EnvName = Annotated[str, Field(pattern=_ENV_NAME, strict=True)]
EnvValue = Annotated[str, Field(max_length=4096, pattern=r"^[^\x00]*$", strict=True)]
OpaqueId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{16,64}$", strict=True)]
ExitCode = Annotated[int, Field(ge=0, le=255, strict=True)]
ReasonToken = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", strict=True)]


def _unique(model: str, name: str, values: list[str]) -> None:
    if len(set(values)) != len(values):
        rule_violation(model, (name,), "unique_path", f"{name} holds a path twice")


# --- messages ------------------------------------------------------------------------------


class Image(WireModel):
    """A packaged environment to run in, pinned by digest when given ([REQ-INV-011])."""

    ref: Annotated[str, Field(min_length=1, max_length=512, pattern=r"^[^\s\x00]+$", strict=True)]
    sha256: Sha256Hex | None = None


class Input(WireModel):
    """A file placed at ``path`` before the task starts ([REQ-INV-013])."""

    path: RelPath
    url: HttpsUrl | None = None
    sha256: Sha256Hex | None = None

    @model_validator(mode="after")
    def _rules(self) -> Input:
        if self.url is None and self.sha256 is None:
            rule_violation("Input", ("url",), "input_source", "an input needs url or sha256")
        return self


class TaskDefinition(WireModel):
    """What to run under an agreement ([REQ-INV-010]..[REQ-INV-014])."""

    agreement_id: OpaqueId
    command: Annotated[list[Arg], Field(min_length=1, max_length=256)] | None = None
    image: Image | None = None
    inputs: Annotated[list[Input], Field(max_length=256)] = Field(default_factory=list)
    env: Annotated[dict[EnvName, EnvValue], Field(max_length=128)] = Field(default_factory=dict)
    limits: TaskLimits
    deadline: UInt

    @model_validator(mode="after")
    def _rules(self) -> TaskDefinition:
        # REQ-INV-011: something to run.
        if self.command is None and self.image is None:
            rule_violation(
                "TaskDefinition", ("command",), "command_or_image", "give command or image"
            )
        _unique("TaskDefinition", "inputs", [i.path for i in self.inputs])
        return self


class Cancel(WireModel):
    """Ask the provider to stop a task ([REQ-INV-022])."""

    task_id: Digest
    reason: ShortText | None = None


class TaskState(StrEnum):
    """Task states (spec 9.4)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class TaskEvent(StrEnum):
    START = "start"
    SUCCEED = "succeed"
    FAIL = "fail"
    CANCEL = "cancel"
    EXPIRE = "expire"


TASK_TRANSITIONS: Final[Mapping[tuple[TaskState, TaskEvent], TaskState]] = {
    # REQ-INV-041: the transition table; every other pair is a conflict.
    (TaskState.QUEUED, TaskEvent.START): TaskState.RUNNING,
    (TaskState.QUEUED, TaskEvent.FAIL): TaskState.FAILED,
    (TaskState.QUEUED, TaskEvent.CANCEL): TaskState.CANCELLED,
    (TaskState.QUEUED, TaskEvent.EXPIRE): TaskState.EXPIRED,
    (TaskState.RUNNING, TaskEvent.SUCCEED): TaskState.SUCCEEDED,
    (TaskState.RUNNING, TaskEvent.FAIL): TaskState.FAILED,
    (TaskState.RUNNING, TaskEvent.CANCEL): TaskState.CANCELLED,
    (TaskState.RUNNING, TaskEvent.EXPIRE): TaskState.EXPIRED,
}

TASK_TERMINAL_STATES: Final = frozenset(
    {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED, TaskState.EXPIRED}
)


def task_transition(state: TaskState | str, event: TaskEvent | str) -> TaskState:
    """The task state after ``event`` ([REQ-INV-040], [REQ-INV-041]).

    Raises:
        TaskStateConflictError: the pair is not in :data:`TASK_TRANSITIONS`
            (including unknown states or events); ``detail`` has ``state`` and ``event``.
    """
    try:
        key = (TaskState(state), TaskEvent(event))
    except ValueError as e:
        raise TaskStateConflictError(
            f"unknown task state or event {state!r}/{event!r}",
            detail={"state": str(state), "event": str(event)},
        ) from e
    nxt = TASK_TRANSITIONS.get(key)
    if nxt is None:
        raise TaskStateConflictError(
            f"{key[1].value!r} is not allowed for a {key[0].value!r} task",
            detail={"state": key[0].value, "event": key[1].value},
        )
    return nxt


class TaskStatus(WireModel):
    """Where a task is ([REQ-INV-020], [REQ-INV-021])."""

    task_id: Digest
    agreement_id: OpaqueId | None = None
    state: TaskState
    started: UInt | None = None
    finished: UInt | None = None
    exit_code: ExitCode | None = None
    reason: ReasonToken | None = None

    @model_validator(mode="after")
    def _rules(self) -> TaskStatus:
        m = "TaskStatus"
        s = TaskState(self.state)
        terminal = s in TASK_TERMINAL_STATES
        # REQ-INV-021: the timestamps and exit code a state implies, and no others.
        if s is TaskState.QUEUED and self.started is not None:
            rule_violation(m, ("started",), "status_shape", "a queued task has not started")
        if s in (TaskState.RUNNING, TaskState.SUCCEEDED) and self.started is None:
            rule_violation(m, ("started",), "status_shape", f"a {s.value} task has started")
        if terminal and self.finished is None:
            rule_violation(m, ("finished",), "status_shape", f"a {s.value} task has finished")
        if not terminal and self.finished is not None:
            rule_violation(m, ("finished",), "status_shape", f"a {s.value} task has not finished")
        if self.exit_code is not None and s not in (TaskState.SUCCEEDED, TaskState.FAILED):
            rule_violation(m, ("exit_code",), "status_shape", f"a {s.value} task has no exit code")
        if s is TaskState.SUCCEEDED and self.exit_code != 0:
            rule_violation(m, ("exit_code",), "status_shape", "a succeeded task exited with 0")
        if s is TaskState.FAILED and (self.exit_code == 0 or self.reason is None):
            rule_violation(
                m, ("reason",), "status_shape", "a failed task has a reason and no exit code 0"
            )
        if self.started is not None and self.finished is not None and self.finished < self.started:
            rule_violation(m, ("finished",), "status_shape", "finished before started")
        return self


class Output(WireModel):
    """One output file ([REQ-INV-023])."""

    path: RelPath
    sha256: Sha256Hex
    size_bytes: UInt


class TaskResult(WireModel):
    """The content digests of what a task produced ([REQ-INV-023])."""

    task_id: Digest
    outputs: Annotated[list[Output], Field(max_length=1024)] = Field(default_factory=list)
    stdout_sha256: Sha256Hex
    stderr_sha256: Sha256Hex

    @model_validator(mode="after")
    def _rules(self) -> TaskResult:
        _unique("TaskResult", "outputs", [o.path for o in self.outputs])
        return self

    @property
    def output_bytes(self) -> int:
        return sum(o.size_bytes for o in self.outputs)


class Usage(WireModel):
    """What a task consumed, as metered by the provider ([REQ-INV-031])."""

    cpu_s: UInt
    memory_mib_s: UInt
    wall_s: UInt
    output_bytes: UInt = 0
    resource_s: Annotated[dict[PricedResource, UInt], Field(max_length=6)] = Field(
        default_factory=dict
    )


class Receipt(WireModel):
    """Signed metering of one task under one agreement ([REQ-INV-030]..[REQ-INV-033])."""

    task_id: Digest
    agreement_id: OpaqueId
    usage: Usage
    cost: CostBreakdown
    issued: UInt


MESSAGE_BODIES: Final[dict[str, type[WireModel]]] = {
    TYP_TASK: TaskDefinition,
    TYP_CANCEL: Cancel,
    TYP_STATUS: TaskStatus,
    TYP_RESULT: TaskResult,
    TYP_RECEIPT: Receipt,
}


def parse_message(envelope: Envelope) -> WireModel:
    """Parse an envelope's body as the invocation message its ``typ`` names ([REQ-INV-002]).

    Raises:
        SchemaError: the typ is not an invocation message, or the body breaks its model.
    """
    model = MESSAGE_BODIES.get(envelope.header.typ)
    if model is None:
        raise SchemaError(
            f"typ {envelope.header.typ!r} is not an invocation message",
            field="header.typ",
            detail={"rule": "typ"},
        )
    return validate(model, envelope.body_value, where="body")


# --- checks ----------------------------------------------------------------------------------


def task_id_of(envelope: Envelope) -> str:
    """The task id: the digest of the task envelope ([REQ-INV-004])."""
    return envelope.digest()


def check_task(
    envelope: Envelope,
    agreement: Agreement,
    *,
    requester_key: PublicKey,
    now: int,
    seen_nonces: Container[str],
) -> TaskDefinition:
    """Everything a provider checks before queueing a task, in the order of [REQ-INV-007].

    1. the envelope verifies: typ ``cid.inv.task``, signed by the agreement's
       requester key only, inside its validity window ([REQ-INV-002]);
    2. ``header.aud`` is the agreement's provider ([REQ-INV-003]);
    3. ``header.nonce`` is present and not in ``seen_nonces``, and the window is
       at most :data:`MAX_TASK_WINDOW_S` ([REQ-INV-005]);
    4. the body parses and names this agreement ([REQ-INV-010]);
    5. ``now`` is within ``[agreement.start, agreement.end)`` ([REQ-INV-006]);
    6. the limits are within the agreement's and the deadline within its end ([REQ-INV-012]).

    Returns:
        The task definition. The caller records ``header.nonce`` (until
        ``header.exp``) and queues the task under :func:`task_id_of`.

    Raises:
        SchemaError, KeyUnknownError, SignatureInvalidError, ExpiredError,
        NotYetValidError, VerificationError (audience), ReplayError,
        AgreementNotFoundError, AgreementExpiredError, InvocationError,
        TaskLimitsExceededError.
    """
    if requester_key.kid != agreement.requester.kid:
        raise VerificationError(
            "the key is not the agreement's requester key",
            field="sigs.kid",
            detail={"rule": "requester"},
        )
    envelope.verify({requester_key.kid: requester_key}, typ=TYP_TASK, now=now)
    header = envelope.header
    if header.sub != agreement.offer:
        # REQ-INV-008: invocation envelopes are about the agreement's offer.
        raise SchemaError(
            "header.sub is not the agreement's offer",
            field="header.sub",
            detail={"rule": "subject"},
        )
    if header.aud != agreement.provider:
        raise VerificationError(
            "task is addressed to another provider",
            field="header.aud",
            detail={"rule": "audience"},
        )
    if header.nonce is None:
        raise ReplayError(
            "a task envelope needs header.nonce",
            field="header.nonce",
            detail={"rule": "nonce_required"},
        )
    if header.serial != 1:
        # REQ-INV-009: a task is identified by its digest; its serial is always 1.
        raise SchemaError(
            "a task envelope has serial 1", field="header.serial", detail={"rule": "serial"}
        )
    if header.exp - header.nbf > MAX_TASK_WINDOW_S:
        raise SchemaError(
            f"a task envelope is valid for at most {MAX_TASK_WINDOW_S} s",
            field="header.exp",
            detail={"rule": "task_window"},
        )
    if header.nonce in seen_nonces:
        raise ReplayError("nonce seen before", field="header.nonce", detail={"rule": "replay"})
    task = validate(TaskDefinition, envelope.body_value, where="body")
    if task.agreement_id != agreement.agreement_id:
        raise AgreementNotFoundError(
            "task names another agreement", field="body.agreement_id", detail={"rule": "agreement"}
        )
    if now >= agreement.end:
        raise AgreementExpiredError(
            f"agreement ended at {agreement.end}",
            field="body.agreement_id",
            detail={"end": agreement.end, "now": now},
        )
    if now < agreement.start:
        raise InvocationError(
            f"agreement starts at {agreement.start}",
            field="body.agreement_id",
            detail={"rule": "before_start", "start": agreement.start, "now": now},
        )
    over = task.limits.within(agreement.limits)
    if over is not None:
        raise TaskLimitsExceededError(
            f"limits.{over} is above the agreement's",
            field=f"body.limits.{over}",
            detail={"rule": "limits"},
        )
    if not now < task.deadline <= agreement.end:
        raise TaskLimitsExceededError(
            "deadline must be after now and not after the agreement's end",
            field="body.deadline",
            detail={"rule": "deadline"},
        )
    return task


def check_result(result: TaskResult, task: TaskDefinition) -> None:
    """A result may not exceed the task's output limit ([REQ-INV-023]).

    Raises:
        TaskLimitsExceededError: the outputs together are larger than ``limits.output_bytes``.
    """
    if result.output_bytes > task.limits.output_bytes:
        raise TaskLimitsExceededError(
            f"outputs total {result.output_bytes} bytes, limit {task.limits.output_bytes}",
            field="outputs",
            detail={"rule": "output_bytes"},
        )


def receipt_cost(agreement: Agreement, usage: Usage) -> CostBreakdown:
    """The cost of one task at the agreement's rates ([REQ-INV-032]).

    Each item of the agreement's price is charged for the task's wall time:
    same resource, quantity, amount and period, ``billed_s = usage.wall_s``.
    """
    items = [
        CostItem(
            resource=i.resource,
            quantity=i.quantity,
            amount=i.amount,
            per=i.per,
            billed_s=usage.wall_s,
            cost=item_cost(i.amount, i.quantity, usage.wall_s, i.per),
        )
        for i in agreement.price.items
    ]
    return CostBreakdown.build(agreement.price.currency, agreement.price.units, items)


def check_receipt(receipt: Receipt, agreement: Agreement) -> None:
    """What a requester checks in a (verified) receipt ([REQ-INV-032], [REQ-INV-033]).

    Raises:
        ReceiptInvalidError: another agreement, usage above the agreement's task
            limits, issued outside the agreement, or a cost that is not
            :func:`receipt_cost` (``field`` names what is wrong).
    """

    def bad(field: str, rule: str, message: str) -> ReceiptInvalidError:
        return ReceiptInvalidError(message, field=field, detail={"rule": rule})

    if receipt.agreement_id != agreement.agreement_id:
        raise bad("agreement_id", "agreement", "receipt for another agreement")
    u, lim = receipt.usage, agreement.limits
    if u.cpu_s > lim.cpu_s or u.wall_s > lim.wall_s or u.output_bytes > lim.output_bytes:
        raise bad("usage", "limits", "usage above the task limits")
    if u.memory_mib_s > lim.memory_mib * u.wall_s:
        raise bad("usage.memory_mib_s", "limits", "memory use above the limit")
    if not agreement.start <= receipt.issued <= agreement.expires:
        raise bad("issued", "issued", "receipt issued outside the agreement")
    if receipt.cost != receipt_cost(agreement, u):
        raise bad("cost", "receipt_cost", "cost is not the agreement's rates for this usage")


def verify_receipt(
    envelope: Envelope,
    agreement: Agreement,
    *,
    service_keys: Mapping[str, PublicKey],
    now: int,
) -> Receipt:
    """Verify a receipt envelope, parse it and run :func:`check_receipt` ([REQ-INV-030]).

    ``service_keys`` are the provider zone's service keys; exactly one of them signs.

    Raises:
        SchemaError, KeyUnknownError, SignatureInvalidError, ExpiredError,
        NotYetValidError, ReceiptInvalidError.
    """
    if len(envelope.sigs) != 1:
        raise SchemaError(
            "a receipt carries exactly one signature", field="sigs", detail={"rule": "sigs"}
        )
    envelope.verify(service_keys, typ=TYP_RECEIPT, now=now)
    receipt = validate(Receipt, envelope.body_value, where="body")
    check_receipt(receipt, agreement)
    return receipt


WIRE_MODELS: Final[tuple[type[WireModel], ...]] = (
    TaskDefinition,
    Cancel,
    TaskStatus,
    TaskResult,
    Receipt,
)
"""The message bodies of section 9 (their JSON Schemas are in spec/schemas)."""
