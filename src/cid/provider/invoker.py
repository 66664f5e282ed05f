"""The provider side of invoke (spec sections 9 and 15): tasks, statuses, results, receipts.

Theory of operation
-------------------
:class:`TaskBook` is the synchronous, I/O-free memory: the nonces seen per
requester key (until each envelope's ``exp``, [REQ-INV-005]), the tasks by id,
each task's signed statuses, result and receipt, and each agreement's budget.
A task's state only changes through :meth:`TaskBook.apply`, which runs
:func:`cid.invocation.task_transition` (spec Table 9-9) and signs a new status
envelope with the next serial ([REQ-INV-009]); an illegal event raises
``TASK_STATE_CONFLICT`` and changes nothing ([REQ-INV-040]).

Admission (:meth:`TaskBook.admit`) runs :func:`cid.invocation.check_task` in the
order of [REQ-INV-007], then the budget check of [REQ-PRV-031], and only then
records the nonce and the task. Everything between the first check and the
record is synchronous, so two concurrent submissions of one envelope cannot
both pass: the second sees the first one's nonce (``REPLAY_DETECTED``).

:class:`Invoker` is the asynchronous part. After admission it calls
``executor.start`` exactly once for the new task id ([REQ-PRV-032]) and starts
one watcher per task that follows ``executor.events`` (for ``running``) and
awaits ``executor.wait`` for the outcome. The outcome's terminal state is
applied unless the provider already ended the task (a cancel, its deadline,
the end of its agreement); then the result and, for a task that started, the
receipt are signed, once ([REQ-PRV-040]). Status listeners (the SSE stream)
wait on a per-task :class:`asyncio.Event` that is replaced at every change.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from ..envelope import Envelope, seal
from ..errors import (
    AgreementNotFoundError,
    CidError,
    NotFoundError,
    ReplayError,
    SchemaError,
    TaskLimitsExceededError,
    TaskNotFoundError,
    TaskStateConflictError,
    VerificationError,
)
from ..identifier import Identifier
from ..invocation import (
    MAX_TASK_WINDOW_S,
    TASK_TERMINAL_STATES,
    TYP_CANCEL,
    TYP_RECEIPT,
    TYP_RESULT,
    TYP_STATUS,
    Cancel,
    Output,
    Receipt,
    TaskDefinition,
    TaskEvent,
    TaskResult,
    TaskState,
    TaskStatus,
    Usage,
    check_task,
    receipt_cost,
    task_id_of,
    task_transition,
)
from ..model import validate
from ..negotiation import Agreement, TaskLimits
from ..signing import PublicKey, SigningKey
from .backend import Executor, TaskOutcome, TaskProgress

__all__ = ["Invoker", "TaskBook", "TaskRecord", "check_cancel", "max_task_cost"]

log = logging.getLogger("cid.provider")

_REASON: Final = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_EVENT_FOR_STATE: Final[dict[TaskState, TaskEvent]] = {
    TaskState.RUNNING: TaskEvent.START,
    TaskState.SUCCEEDED: TaskEvent.SUCCEED,
    TaskState.FAILED: TaskEvent.FAIL,
    TaskState.CANCELLED: TaskEvent.CANCEL,
    TaskState.EXPIRED: TaskEvent.EXPIRE,
}
HEARTBEAT_S: Final = 15.0
"""Seconds between SSE keep-alive comments ([REQ-PRV-034])."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def max_task_cost(agreement: Agreement, wall_s: int) -> Decimal:
    """The most a task of ``wall_s`` can cost under ``agreement`` (its receipt at the limit)."""
    usage = Usage(cpu_s=0, memory_mib_s=0, wall_s=wall_s)
    return receipt_cost(agreement, usage).total


def check_cancel(
    envelope: Envelope,
    *,
    task_id: str,
    requester_key: PublicKey,
    provider: Identifier,
    offer: Identifier,
    now: int,
    seen_nonces: Mapping[str, int],
) -> Cancel:
    """A cancel's checks, as a task's ([REQ-INV-002], [REQ-INV-003], [REQ-INV-005], [REQ-INV-022]).

    Raises:
        SchemaError, KeyUnknownError, SignatureInvalidError, ExpiredError,
        NotYetValidError, VerificationError (audience), ReplayError.
    """
    envelope.verify({requester_key.kid: requester_key}, typ=TYP_CANCEL, now=now)
    header = envelope.header
    if header.sub != offer:
        raise SchemaError(
            "header.sub is not the agreement's offer",
            field="header.sub",
            detail={"rule": "subject"},
        )
    if header.aud != provider:
        raise VerificationError(
            "cancel is addressed to another provider",
            field="header.aud",
            detail={"rule": "audience"},
        )
    if header.nonce is None:
        raise ReplayError(
            "a cancel envelope needs header.nonce",
            field="header.nonce",
            detail={"rule": "nonce_required"},
        )
    if header.serial != 1:
        raise SchemaError(
            "a cancel envelope has serial 1", field="header.serial", detail={"rule": "serial"}
        )
    if header.exp - header.nbf > MAX_TASK_WINDOW_S:
        raise SchemaError(
            f"a cancel envelope is valid for at most {MAX_TASK_WINDOW_S} s",
            field="header.exp",
            detail={"rule": "task_window"},
        )
    if header.nonce in seen_nonces:
        raise ReplayError("nonce seen before", field="header.nonce", detail={"rule": "replay"})
    cancel = validate(Cancel, envelope.body_value, where="body")
    if cancel.task_id != task_id:
        raise SchemaError(
            "the cancel names another task", field="body.task_id", detail={"rule": "task_id"}
        )
    return cancel


@dataclass
class TaskRecord:
    """The provider's record of one task ([REQ-INV-004])."""

    task_id: str
    agreement: Agreement
    requester_key: PublicKey
    definition: TaskDefinition
    envelope: Envelope
    submitted: int
    max_cost: Decimal
    state: TaskState = TaskState.QUEUED
    started: int | None = None
    finished: int | None = None
    exit_code: int | None = None
    reason: str | None = None
    statuses: list[Envelope] = field(default_factory=list)
    outcome: TaskOutcome | None = None
    outputs: dict[str, bytes] = field(default_factory=dict)
    result_env: Envelope | None = None
    receipt_env: Envelope | None = None
    history: list[tuple[TaskState, TaskEvent, TaskState]] = field(default_factory=list)

    @property
    def agreement_id(self) -> str:
        return self.agreement.agreement_id

    @property
    def terminal(self) -> bool:
        return self.state in TASK_TERMINAL_STATES

    @property
    def finalised(self) -> bool:
        """Terminal, with the executor's outcome recorded (result available)."""
        return self.outcome is not None


class TaskBook:
    """Tasks, nonces, budgets and receipts of one provider; synchronous and I/O-free."""

    def __init__(self, *, namespace: Identifier, service_key: SigningKey) -> None:
        self.namespace = namespace
        self.service_key = service_key
        self.tasks: dict[str, TaskRecord] = {}
        self.receipts: dict[str, list[Envelope]] = {}
        self._nonces: dict[str, dict[str, int]] = {}
        self._nonce_heap: list[tuple[int, str, str]] = []
        self._committed: dict[str, Decimal] = {}
        self._deadlines: list[tuple[int, str]] = []
        self._by_agreement: dict[str, list[str]] = {}
        self._finished: list[tuple[int, str]] = []

    # -- nonces (REQ-INV-005) -----------------------------------------------------------------

    def seen(self, kid: str) -> dict[str, int]:
        return self._nonces.get(kid, {})

    def record_nonce(self, kid: str, nonce: str, until: int) -> None:
        self._nonces.setdefault(kid, {})[nonce] = until
        heapq.heappush(self._nonce_heap, (until, kid, nonce))

    def forget_nonces(self, now: int) -> None:
        """Drop nonces whose envelope has expired: a replay of it is refused as expired."""
        while self._nonce_heap and self._nonce_heap[0][0] <= now:
            until, kid, nonce = heapq.heappop(self._nonce_heap)
            seen = self._nonces.get(kid)
            if seen is not None and seen.get(nonce) == until:
                del seen[nonce]
                if not seen:
                    del self._nonces[kid]

    # -- admission ----------------------------------------------------------------------------

    def committed(self, agreement_id: str) -> Decimal:
        """Receipts issued plus the worst case of unfinished tasks ([REQ-PRV-031])."""
        return self._committed.get(agreement_id, Decimal(0))

    def admit(
        self, envelope: Envelope, agreement: Agreement, requester_key: PublicKey, *, now: int
    ) -> TaskRecord:
        """Check a task envelope and record it as ``queued`` ([REQ-INV-007], [REQ-PRV-030]).

        Raises:
            CidError: the first check that fails, as :func:`check_task` lists them;
                TASK_LIMITS_EXCEEDED rule ``budget`` when the agreement's price
                cannot pay for the task at its wall-clock limit ([REQ-PRV-031]).
        """
        seen = self.seen(requester_key.kid)
        task = check_task(
            envelope, agreement, requester_key=requester_key, now=now, seen_nonces=seen
        )
        task_id = task_id_of(envelope)
        if task_id in self.tasks:  # pragma: no cover - the nonce check refuses it first
            raise ReplayError(
                "task submitted before", field="header.nonce", detail={"rule": "replay"}
            )
        # REQ-PRV-031 / REQ-INV-034: receipts never add up to more than the price total
        cost = max_task_cost(agreement, task.limits.wall_s)
        committed = self.committed(agreement.agreement_id)
        if committed + cost > agreement.price.total:
            raise TaskLimitsExceededError(
                "the agreement's remaining budget cannot pay for this task at its wall_s limit",
                field="body.limits.wall_s",
                detail={
                    "rule": "budget",
                    "max_cost": str(cost),
                    "remaining": str(agreement.price.total - committed),
                },
            )
        nonce = envelope.header.nonce
        if nonce is None:  # pragma: no cover - check_task requires it
            raise ReplayError("no nonce", field="header.nonce", detail={"rule": "nonce_required"})
        self.record_nonce(requester_key.kid, nonce, envelope.header.exp)
        self._committed[agreement.agreement_id] = committed + cost
        rec = TaskRecord(
            task_id=task_id,
            agreement=agreement,
            requester_key=requester_key,
            definition=task,
            envelope=envelope,
            submitted=now,
            max_cost=cost,
        )
        self.tasks[task_id] = rec
        self._by_agreement.setdefault(agreement.agreement_id, []).append(task_id)
        self.receipts.setdefault(agreement.agreement_id, [])
        heapq.heappush(self._deadlines, (task.deadline, task_id))
        self._sign_status(rec, now=now)
        return rec

    def get(self, task_id: str) -> TaskRecord:
        rec = self.tasks.get(task_id)
        if rec is None:
            # REQ-INV-020
            raise TaskNotFoundError("no such task", field="task_id", detail={"task_id": task_id})
        return rec

    # -- state ---------------------------------------------------------------------------------

    def apply(
        self,
        rec: TaskRecord,
        event: TaskEvent,
        *,
        now: int,
        exit_code: int | None = None,
        reason: str | None = None,
    ) -> TaskState:
        """Apply ``event`` by Table 9-9 and sign the new status ([REQ-INV-040], [REQ-INV-021])."""
        before = rec.state
        after = task_transition(before, event)
        rec.state = after
        rec.history.append((before, event, after))
        if after is TaskState.RUNNING:
            rec.started = now
        if after in TASK_TERMINAL_STATES:
            rec.finished = max(now, rec.started or now)
            rec.exit_code, rec.reason = _status_shape(after, exit_code, reason)
        elif reason is not None and _REASON.match(reason):
            rec.reason = reason
        self._sign_status(rec, now=now)
        return after

    def _sign_status(self, rec: TaskRecord, *, now: int) -> Envelope:
        status = TaskStatus(
            task_id=rec.task_id,
            agreement_id=rec.agreement_id,
            state=rec.state,
            started=rec.started,
            finished=rec.finished,
            exit_code=rec.exit_code,
            reason=rec.reason,
        )
        env = seal(
            status,
            typ=TYP_STATUS,
            sub=rec.agreement.offer,
            serial=len(rec.statuses) + 1,  # REQ-INV-009: increasing serials
            key=self.service_key,
            nbf=now,
            exp=max(rec.agreement.expires, now + 3600),
        )
        rec.statuses.append(env)
        return env

    def due(self, now: int) -> list[TaskRecord]:
        """Unfinished tasks whose deadline has come ([REQ-INV-043])."""
        out: list[TaskRecord] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, task_id = heapq.heappop(self._deadlines)
            rec = self.tasks.get(task_id)
            if rec is not None and not rec.terminal:
                out.append(rec)
        return out

    def active(self, agreement_id: str) -> list[TaskRecord]:
        """The unfinished tasks of an agreement."""
        recs = (self.tasks.get(t) for t in self._by_agreement.get(agreement_id, []))
        return [r for r in recs if r is not None and not r.terminal]

    def forget_finished(self, now: int, *, retain_s: int) -> int:
        """Forget tasks finalised ``retain_s`` ago (their outputs); receipts are kept."""
        gone = 0
        while self._finished and self._finished[0][0] + retain_s <= now:
            _, task_id = heapq.heappop(self._finished)
            rec = self.tasks.pop(task_id, None)
            if rec is not None:
                ids = self._by_agreement.get(rec.agreement_id, [])
                if task_id in ids:
                    ids.remove(task_id)
                gone += 1
        return gone

    # -- the end ------------------------------------------------------------------------------

    def finalise(self, rec: TaskRecord, outcome: TaskOutcome, *, now: int) -> None:
        """Apply the outcome, sign the result and (if it ran) the receipt; once ([REQ-PRV-040])."""
        if rec.finalised:
            return
        limits = rec.definition.limits
        outputs = {p: b for p, b in outcome.outputs.items() if _valid_path(p)}
        total = sum(len(b) for b in outputs.values())
        state, exit_code, reason = outcome.state, outcome.exit_code, outcome.reason
        if total > limits.output_bytes:
            # REQ-INV-023, REQ-INV-025: outputs over the limit are not delivered
            outputs, total = {}, 0
            if state is TaskState.SUCCEEDED:
                state, reason = TaskState.FAILED, "limit_output"
        if not rec.terminal:
            self._advance(rec, state, now=now, exit_code=exit_code, reason=reason)
        rec.outcome = outcome
        rec.outputs = outputs
        offer, expires = rec.agreement.offer, rec.agreement.expires
        result = TaskResult(
            task_id=rec.task_id,
            outputs=[
                Output(path=p, sha256=_sha256(b), size_bytes=len(b))
                for p, b in sorted(outputs.items())
            ],
            stdout_sha256=_sha256(outcome.stdout),
            stderr_sha256=_sha256(outcome.stderr),
        )
        rec.result_env = seal(
            result,
            typ=TYP_RESULT,
            sub=offer,
            serial=1,
            key=self.service_key,
            nbf=now,
            exp=max(expires, now + 3600),
        )
        committed = self.committed(rec.agreement_id) - rec.max_cost
        ran = rec.started is not None or outcome.started > 0
        if ran:
            # REQ-INV-030..032: metered usage, capped at the task's limits, at the agreement's rates
            usage = _capped_usage(outcome, limits, output_bytes=total)
            agreement = rec.agreement
            issued = min(max(now, agreement.start), agreement.expires)
            receipt = Receipt(
                task_id=rec.task_id,
                agreement_id=rec.agreement_id,
                usage=usage,
                cost=receipt_cost(agreement, usage),
                issued=issued,
            )
            rec.receipt_env = seal(
                receipt,
                typ=TYP_RECEIPT,
                sub=offer,
                serial=1,
                key=self.service_key,
                nbf=issued,
                exp=max(agreement.expires, issued + 1),
            )
            self.receipts.setdefault(rec.agreement_id, []).append(rec.receipt_env)
            committed += receipt.cost.total
        self._committed[rec.agreement_id] = committed
        heapq.heappush(self._finished, (now, rec.task_id))

    def _advance(
        self,
        rec: TaskRecord,
        target: TaskState,
        *,
        now: int,
        exit_code: int | None = None,
        reason: str | None = None,
    ) -> None:
        """Move a task to ``target`` by legal events only (a missed ``start`` is supplied)."""
        if target is rec.state:
            return
        if target is TaskState.QUEUED:
            return
        if rec.state is TaskState.QUEUED and target is TaskState.SUCCEEDED:
            self.apply(rec, TaskEvent.START, now=now)
        event = _EVENT_FOR_STATE[target]
        self.apply(rec, event, now=now, exit_code=exit_code, reason=reason)


def _valid_path(path: str) -> bool:
    try:
        validate(Output, {"path": path, "sha256": "0" * 64, "size_bytes": 0})
    except CidError:
        log.warning("executor output path %r is not a valid relative path; dropped", path[:80])
        return False
    return True


def _status_shape(
    state: TaskState, exit_code: int | None, reason: str | None
) -> tuple[int | None, str | None]:
    """Exit code and reason as Table 9-8 allows them for a terminal ``state``."""
    if reason is not None and not _REASON.match(reason):
        reason = "provider"
    if exit_code is not None and not 0 <= exit_code <= 255:
        exit_code = None
    if state is TaskState.SUCCEEDED:
        return 0, reason
    if state is TaskState.FAILED:
        if exit_code == 0:
            exit_code = None
        if reason is None:
            reason = "exit" if exit_code is not None else "provider"
        return exit_code, reason
    return None, reason


def _capped_usage(outcome: TaskOutcome, limits: TaskLimits, *, output_bytes: int) -> Usage:
    measured = outcome.usage
    if measured is None:
        wall = max(0, outcome.finished - outcome.started) if outcome.started else 0
        measured = Usage(cpu_s=0, memory_mib_s=0, wall_s=wall)
    wall = min(measured.wall_s, limits.wall_s)
    return Usage(
        cpu_s=min(measured.cpu_s, limits.cpu_s),
        memory_mib_s=min(measured.memory_mib_s, limits.memory_mib * wall),
        wall_s=wall,
        output_bytes=min(output_bytes, limits.output_bytes),
        resource_s=dict(measured.resource_s),
    )


# --- the async part -----------------------------------------------------------------------------


class Invoker:
    """Invoke for one provider: the logic behind ``/v1/invoke/*``.

    Args:
        namespace: the provider namespace (``aud`` of tasks and cancels).
        service_key: signs statuses, results and receipts.
        executor: runs the tasks.
        agreements: the agreement a task names and its requester key, or a typed
            error (:meth:`cid.provider.negotiator.Negotiator.held_agreement`).
        clock: integer seconds since the epoch.
        known_agreement: whether an agreement id was issued here (in any state).
        retain_s: how long a finished task (status, result, outputs) stays readable.
    """

    def __init__(
        self,
        *,
        namespace: Identifier,
        service_key: SigningKey,
        executor: Executor,
        agreements: Callable[[str], tuple[Agreement, PublicKey]],
        clock: Callable[[], int],
        known_agreement: Callable[[str], bool] = lambda _: False,
        retain_s: int = 86_400,
    ) -> None:
        self.namespace = namespace
        self.executor = executor
        self.agreements = agreements
        self.known_agreement = known_agreement
        self.retain_s = retain_s
        self.clock = clock
        self.book = TaskBook(namespace=namespace, service_key=service_key)
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._signals: dict[str, asyncio.Event] = {}
        self._closing = False

    # -- notifications -------------------------------------------------------------------------

    def _signal(self, task_id: str) -> asyncio.Event:
        ev = self._signals.get(task_id)
        if ev is None:
            ev = self._signals[task_id] = asyncio.Event()
        return ev

    def _changed(self, task_id: str) -> None:
        ev = self._signals.pop(task_id, None)
        if ev is not None:
            ev.set()

    # -- submission ------------------------------------------------------------------------------

    async def submit(self, envelope: Envelope) -> TaskRecord:
        """Admit a task and start it exactly once ([REQ-PRV-030], [REQ-PRV-032])."""
        now = self.clock()
        raw = envelope.body_value.get("agreement_id")
        if not isinstance(raw, str):
            raise SchemaError(
                "body.agreement_id is required",
                field="body.agreement_id",
                detail={"rule": "missing" if raw is None else "string_type"},
            )
        agreement, key = self.agreements(raw)
        rec = self.book.admit(envelope, agreement, key, now=now)
        self._changed(rec.task_id)
        try:
            await self.executor.start(rec.task_id, rec.definition, rec.definition.limits)
        except Exception:
            log.exception("executor failed to start task %s", rec.task_id)
            self.book.finalise(
                rec,
                TaskOutcome(
                    state=TaskState.FAILED,
                    exit_code=None,
                    reason="provider",
                    stdout=b"",
                    stderr=b"",
                ),
                now=self.clock(),
            )
            self._changed(rec.task_id)
            return rec
        self._watchers[rec.task_id] = asyncio.create_task(
            self._watch(rec), name=f"cid-task-{rec.task_id[:12]}"
        )
        return rec

    async def _follow(self, rec: TaskRecord) -> None:
        async for progress in self.executor.events(rec.task_id):
            self._progress(rec, progress)

    def _progress(self, rec: TaskRecord, progress: TaskProgress) -> None:
        # Terminal states come with the outcome (outputs, usage); here only "running".
        if progress.state is TaskState.RUNNING and rec.state is TaskState.QUEUED:
            self.book.apply(rec, TaskEvent.START, now=self.clock())
            self._changed(rec.task_id)

    async def _watch(self, rec: TaskRecord) -> None:
        follower = asyncio.create_task(self._follow(rec))
        try:
            outcome = await self.executor.wait(rec.task_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("executor failed on task %s", rec.task_id)
            outcome = TaskOutcome(
                state=TaskState.FAILED, exit_code=None, reason="provider", stdout=b"", stderr=b""
            )
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await follower
        self.book.finalise(rec, outcome, now=self.clock())
        self._changed(rec.task_id)
        self._watchers.pop(rec.task_id, None)
        # the outputs are held by the book now: the executor may drop the working directory
        try:
            await self.executor.release(rec.task_id)
        except Exception:  # pragma: no cover - cleanup must never fail a finished task
            log.exception("executor could not release task %s", rec.task_id)

    # -- control ---------------------------------------------------------------------------------

    async def cancel(self, task_id: str, envelope: Envelope) -> TaskRecord:
        """Cancel a queued or running task for its requester ([REQ-PRV-037], [REQ-INV-022])."""
        now = self.clock()
        rec = self.book.get(task_id)
        check_cancel(
            envelope,
            task_id=task_id,
            requester_key=rec.requester_key,
            provider=self.namespace,
            offer=rec.agreement.offer,
            now=now,
            seen_nonces=self.book.seen(rec.requester_key.kid),
        )
        if rec.terminal:
            raise TaskStateConflictError(
                f"the task is {rec.state.value}",
                field="task_id",
                detail={"state": rec.state.value, "event": TaskEvent.CANCEL.value},
            )
        nonce = envelope.header.nonce or ""
        self.book.record_nonce(rec.requester_key.kid, nonce, envelope.header.exp)
        await self._stop(rec, TaskEvent.CANCEL, "requested", now=now)
        return rec

    async def _stop(self, rec: TaskRecord, event: TaskEvent, reason: str, *, now: int) -> None:
        self.book.apply(rec, event, now=now, reason=reason)
        self._changed(rec.task_id)
        try:
            await self.executor.cancel(rec.task_id)
        except Exception:
            log.exception("executor failed to cancel task %s", rec.task_id)

    async def agreement_ended(self, agreement_id: str) -> None:
        """Stop the unfinished tasks of an agreement that was withdrawn or settled."""
        now = self.clock()
        for rec in self.book.active(agreement_id):
            await self._stop(rec, TaskEvent.CANCEL, "provider", now=now)

    async def sweep(self) -> None:
        """Expire tasks past their deadline ([REQ-INV-043]) and forget old nonces."""
        now = self.clock()
        for rec in self.book.due(now):
            if not rec.terminal:
                await self._stop(rec, TaskEvent.EXPIRE, "deadline", now=now)
        self.book.forget_nonces(now)
        self.book.forget_finished(now, retain_s=self.retain_s)

    # -- reading ---------------------------------------------------------------------------------

    def status(self, task_id: str) -> Envelope:
        return self.book.get(task_id).statuses[-1]

    def result(self, task_id: str) -> TaskRecord:
        """The finalised task ([REQ-PRV-035]); TASK_STATE_CONFLICT before that."""
        rec = self.book.get(task_id)
        if not rec.finalised:
            raise TaskStateConflictError(
                f"the task is {rec.state.value}; no result yet",
                field="task_id",
                detail={"state": rec.state.value, "rule": "not_finished"},
            )
        return rec

    def output(self, task_id: str, name: str) -> bytes:
        """An output file, or ``stdout``/``stderr`` (``name`` is ``":stdout"``/``":stderr"``)."""
        rec = self.result(task_id)
        outcome = rec.outcome
        if outcome is None:  # pragma: no cover - result() checked it
            raise TaskStateConflictError("no result yet", field="task_id")
        if name == ":stdout":
            return outcome.stdout
        if name == ":stderr":
            return outcome.stderr
        data = rec.outputs.get(name)
        if data is None:
            raise NotFoundError("no such output", field="path", detail={"path": name[:256]})
        return data

    def receipts(self, agreement_id: str) -> list[Envelope]:
        """The receipts issued under an agreement, in issue order ([REQ-PRV-038])."""
        got = self.book.receipts.get(agreement_id)
        if got is None:
            if not self.known_agreement(agreement_id):
                raise AgreementNotFoundError(
                    "no agreement with this agreement_id here",
                    field="agreement_id",
                    detail={"agreement_id": agreement_id},
                )
            return []
        return list(got)

    async def statuses(self, task_id: str, *, after: int = 0) -> AsyncIterator[Envelope | None]:
        """Status envelopes with serial > ``after`` as they are made; ``None`` is a heartbeat.

        Ends after the terminal status, or when the invoker closes ([REQ-PRV-034]).
        """
        rec = self.book.get(task_id)
        sent = max(0, after)
        while True:
            signal = self._signal(task_id)
            while sent < len(rec.statuses):
                sent += 1
                yield rec.statuses[sent - 1]
            if rec.terminal or self._closing:
                return
            try:
                await asyncio.wait_for(signal.wait(), timeout=HEARTBEAT_S)
            except TimeoutError:
                yield None

    # -- lifecycle ---------------------------------------------------------------------------------

    async def idle(self) -> None:
        """Wait until every started task's watcher has finished (tests, shutdown)."""
        while self._watchers:
            await asyncio.gather(*list(self._watchers.values()), return_exceptions=True)

    def stop_listening(self) -> None:
        """End every status stream (graceful shutdown must not wait for them)."""
        self._closing = True
        for ev in list(self._signals.values()):
            ev.set()
        self._signals.clear()

    async def close(self) -> None:
        """Stop listening and watching; the executor is closed by the app."""
        self.stop_listening()
        for task in list(self._watchers.values()):
            task.cancel()
        for task in list(self._watchers.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._watchers.clear()
