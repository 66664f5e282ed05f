"""A hypothesis state machine of negotiation and task lifecycles against the live provider app.

Random interleavings of demand / quote-accept / counter-accept / retried accept /
countersign / withdraw / settle / expire (the clock moves) / submit task /
replay task / cancel task / finish task, each sent over loopback HTTP to a
provider whose pool holds three units. Every response is checked against the
state the provider held just before it, and after every step the invariants
hold:

* every negotiation's history is a path of Table 8-11 from ``demanded``, and
  every task's a path of Table 9-9 from ``queued`` (never an illegal state);
* the ledger never holds more than the capacity at any instant, and holds
  exactly the agreements that are ``accepted`` or ``agreed`` (nothing leaks,
  nothing is released twice);
* the executor started every task exactly once;
* no agreement is settled twice, or settled after a withdrawal;
* a task has at most one receipt, only if it ran, and an agreement's receipts
  never add up to more than its price.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from cid.envelope import Envelope
from cid.errors import (
    AgreementExpiredError,
    AgreementNotFoundError,
    CapacityExhaustedError,
    CidError,
    ExpiredError,
    IllegalTransitionError,
    InvocationError,
    QuoteExpiredError,
    ReplayError,
    TaskLimitsExceededError,
    TaskStateConflictError,
)
from cid.invocation import TASK_TERMINAL_STATES, TASK_TRANSITIONS, TaskState
from cid.model import validate
from cid.negotiation import (
    TERMINAL_STATES,
    TRANSITIONS,
    TYP_COUNTER,
    TYP_QUOTE,
    TYP_REJECTION,
    Agreement,
    NegEvent,
    NegState,
)

from .conftest import FakeExecutor, Provider

T = TypeVar("T")
CAPACITY = 3
HELD = (NegState.ACCEPTED, NegState.AGREED)


@dataclass
class Neg:
    """What the requester holds about one negotiation."""

    digest: str
    answer: Envelope
    accept_env: Envelope | None = None
    first_outcome: str | None = None
    agreement_env: Envelope | None = None
    agreement: Agreement | None = None


class ProviderMachine(RuleBasedStateMachine):
    """Negotiation and task lifecycles, driven over HTTP against a live provider app."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.p: Provider = self.run(self._start())
        self.negs: list[Neg] = []
        self.tasks: list[tuple[str, Envelope]] = []

    async def _start(self) -> Provider:
        return await Provider(units_total=CAPACITY).start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.p.close())
        self.loop.close()

    # -- helpers -----------------------------------------------------------------------------

    def now(self) -> int:
        return self.p.clock()

    def sweep(self) -> None:
        self.run(self.p.negotiator.sweep())
        self.run(self.p.invoker.sweep())

    def state(self, neg: Neg) -> NegState:
        self.sweep()
        return self.p.negotiator.book.negotiations[neg.digest].state

    def attempt(self, coro: Coroutine[Any, Any, T]) -> T | CidError:
        try:
            return self.run(coro)
        except CidError as err:
            return err

    @property
    def executor(self) -> FakeExecutor:
        executor = self.p.executor
        assert isinstance(executor, FakeExecutor)
        return executor

    # -- negotiation rules ----------------------------------------------------------------------

    @initialize()
    def first_demand(self) -> None:
        self.demand(quantity=1, cheap=False)

    @rule(quantity=st.integers(1, CAPACITY + 1), cheap=st.booleans())
    def demand(self, quantity: int, cheap: bool) -> None:
        """demand → quote, counter (quantity or price) or rejection."""
        env = self.p.requester.demand(quantity=quantity, max_total="0.01" if cheap else "1000")
        answer = self.run(self.p.demand(env))
        assert answer.typ in (TYP_QUOTE, TYP_COUNTER, TYP_REJECTION)
        answer.verify(self.p.provider_keys, typ=answer.typ, now=self.now())
        state = self.state(Neg(env.digest(), answer))
        expected = {
            TYP_QUOTE: NegState.QUOTED,
            TYP_COUNTER: NegState.COUNTERED,
            TYP_REJECTION: NegState.REJECTED,
        }[answer.typ]
        assert state is expected
        if answer.typ == TYP_QUOTE:
            assert not cheap and quantity <= CAPACITY
        self.negs.append(Neg(env.digest(), answer))

    @precondition(lambda self: bool(self.negs))
    @rule(data=st.data())
    def accept(self, data: st.DataObject) -> None:
        """quote-accept and counter-accept (or an accept in any other state: refused)."""
        neg = data.draw(st.sampled_from(self.negs))
        if neg.answer.typ == TYP_REJECTION:
            return
        before = self.state(neg)
        expires = neg.answer.body_value["expires"]
        env = self.p.requester.accept(neg.answer)
        got = self.attempt(self.p.accept(env))
        event(f"accept in {before.value}: {type(got).__name__}")
        after = self.state(neg)
        if self.now() >= expires:
            assert isinstance(got, QuoteExpiredError), got
        elif before in (NegState.QUOTED, NegState.COUNTERED):
            if isinstance(got, CapacityExhaustedError):
                assert after is NegState.REJECTED
            else:
                assert isinstance(got, Envelope), got
                assert after is NegState.ACCEPTED
                neg.agreement_env = got
                neg.agreement = validate(Agreement, got.body_value)
            neg.accept_env = env
            neg.first_outcome = got.digest() if isinstance(got, Envelope) else got.name
        else:
            assert isinstance(got, IllegalTransitionError), got
            assert after is before

    @rule(quantity=st.integers(1, 2), with_task=st.booleans())
    def agree(self, quantity: int, with_task: bool) -> None:
        """The common path in one step: demand, accept, countersign (and submit a task)."""
        self.demand(quantity=quantity, cheap=False)
        neg = self.negs[-1]
        if neg.answer.typ == TYP_REJECTION:
            return
        got = self.attempt(self.p.accept(self.p.requester.accept(neg.answer)))
        if isinstance(got, Envelope):
            neg.agreement_env, neg.agreement = got, validate(Agreement, got.body_value)
            cosigned = self.p.requester.countersign(got)
            answer = self.run(self.p.call("POST", "/v1/negotiate/agreement", cosigned))
            assert answer["state"] == "agreed"
            if with_task:
                env = self.p.requester.task(neg.agreement, deadline=self.now() + 300)
                task_id = self.run(self.p.submit(env))
                assert self.executor.starts[task_id] == 1
                self.tasks.append((task_id, env))
        else:
            assert isinstance(got, CapacityExhaustedError), got
        event(f"agree: {type(got).__name__}")

    @precondition(lambda self: any(n.accept_env is not None for n in self.negs))
    @rule(data=st.data())
    def retry_accept(self, data: st.DataObject) -> None:
        """The same accept again: the same agreement (or the same error), nothing new."""
        neg = data.draw(st.sampled_from([n for n in self.negs if n.accept_env is not None]))
        assert neg.accept_env is not None
        reservations = self.p.ledger.reservations()
        got = self.attempt(self.p.accept(neg.accept_env))
        if self.now() >= neg.accept_env.header.exp:
            assert isinstance(got, ExpiredError), got
        else:
            outcome = got.digest() if isinstance(got, Envelope) else got.name
            assert outcome == neg.first_outcome
        # a retry never reserves anything (expiry may have released some)
        assert set(self.p.ledger.reservations()) <= set(reservations)

    @precondition(lambda self: any(n.agreement_env is not None for n in self.negs))
    @rule(data=st.data())
    def countersign(self, data: st.DataObject) -> None:
        neg = data.draw(st.sampled_from([n for n in self.negs if n.agreement_env is not None]))
        assert neg.agreement_env is not None
        before = self.state(neg)
        cosigned = self.p.requester.countersign(neg.agreement_env)
        got = self.attempt(self.p.call("POST", "/v1/negotiate/agreement", cosigned))
        if before in (NegState.ACCEPTED, NegState.AGREED):
            assert isinstance(got, dict) and got["state"] == "agreed", got
            assert self.state(neg) is NegState.AGREED
        else:
            assert isinstance(got, IllegalTransitionError), got

    @precondition(lambda self: bool(self.negs))
    @rule(data=st.data(), by=st.sampled_from(["demand", "quote_id", "agreement_id"]))
    def withdraw(self, data: st.DataObject, by: str) -> None:
        neg = data.draw(st.sampled_from(self.negs))
        if by == "agreement_id" and neg.agreement is None:
            by = "demand"
        ref: Any = {
            "demand": neg.digest,
            "quote_id": neg.answer.body_value.get("quote_id"),
            "agreement_id": neg.agreement.agreement_id if neg.agreement else None,
        }[by]
        if ref is None:
            return
        before = self.state(neg)
        w = self.p.requester.withdraw(serial=50, **{by: ref})
        got = self.attempt(self.p.call("POST", "/v1/negotiate/withdraw", w))
        event(f"withdraw in {before.value}: {type(got).__name__}")
        legal = (before, NegEvent.WITHDRAW) in TRANSITIONS
        if legal:
            assert isinstance(got, dict) and got["state"] == "withdrawn", got
            assert ("cancellation_fee" in got) == (before is NegState.AGREED)
        else:
            assert isinstance(got, IllegalTransitionError), got
        assert self.state(neg) is (NegState.WITHDRAWN if legal else before)

    @precondition(lambda self: any(n.agreement is not None for n in self.negs))
    @rule(data=st.data())
    def settle(self, data: st.DataObject) -> None:
        neg = data.draw(st.sampled_from([n for n in self.negs if n.agreement is not None]))
        assert neg.agreement is not None
        before = self.state(neg)
        got = self.attempt(self.p.negotiator.settle(neg.agreement.agreement_id))
        event(f"settle in {before.value}: {type(got).__name__}")
        if before is NegState.AGREED:
            assert got == neg.agreement.price.total
        else:
            assert isinstance(got, IllegalTransitionError), got

    @rule(seconds=st.sampled_from([1, 30, 61, 120, 301, 700]))
    def expire(self, seconds: int) -> None:
        """Time passes: quotes, accepted negotiations, envelopes and task deadlines expire."""
        self.p.clock.advance(seconds)
        self.sweep()

    # -- task rules ---------------------------------------------------------------------------

    @precondition(lambda self: any(n.agreement is not None for n in self.negs))
    @rule(data=st.data())
    def submit_task(self, data: st.DataObject) -> None:
        held = [n for n in self.negs if n.agreement is not None]
        agreed = [n for n in held if self.state(n) is NegState.AGREED]
        # mostly under a live agreement; sometimes under any (to be refused)
        pool = held
        if agreed and data.draw(st.integers(0, 3)) > 0:
            pool = agreed
        neg = data.draw(st.sampled_from(pool))
        a = neg.agreement
        assert a is not None
        before = self.state(neg)
        env = self.p.requester.task(a, deadline=min(self.now() + 300, a.end))
        got = self.attempt(self.p.submit(env))
        event(f"submit in {before.value}: {type(got).__name__}")
        if isinstance(got, str):
            assert before is NegState.AGREED
            assert self.executor.starts[got] == 1
            self.tasks.append((got, env))
        elif before is NegState.AGREED:
            # the period ended (or has not begun), or the budget is spent
            assert isinstance(got, AgreementExpiredError | TaskLimitsExceededError), got
        elif before is NegState.ACCEPTED:
            assert isinstance(got, AgreementNotFoundError), got
        else:
            assert isinstance(got, AgreementExpiredError | AgreementNotFoundError), got

    @precondition(lambda self: bool(self.tasks))
    @rule(data=st.data())
    def replay_task(self, data: st.DataObject) -> None:
        """A replayed submission is refused; the task never runs twice."""
        task_id, env = data.draw(st.sampled_from(self.tasks))
        got = self.attempt(self.p.submit(env))
        assert isinstance(got, ReplayError | ExpiredError | AgreementExpiredError), got
        assert self.executor.starts[task_id] == 1

    @precondition(lambda self: bool(self.tasks))
    @rule(data=st.data())
    def cancel_task(self, data: st.DataObject) -> None:
        task_id, _ = data.draw(st.sampled_from(self.tasks))
        self.sweep()
        rec = self.p.invoker.book.tasks[task_id]
        terminal = rec.terminal
        cancel = self.p.requester.cancel(task_id, rec.agreement)
        got = self.attempt(self.p.call("POST", f"/v1/invoke/tasks/{task_id}/cancel", cancel))
        event(f"cancel {rec.state.value if terminal else 'live'}: {type(got).__name__}")
        if terminal:
            assert isinstance(got, TaskStateConflictError), got
        else:
            assert isinstance(got, dict) and got["body"]["state"] == "cancelled", got
        self.run(self.p.settle_tasks())

    @precondition(lambda self: bool(self.tasks))
    @rule(data=st.data(), ok=st.booleans(), run_only=st.booleans())
    def finish_task(self, data: st.DataObject, ok: bool, run_only: bool) -> None:
        task_id, _ = data.draw(st.sampled_from(self.tasks))
        self.executor.run(task_id)
        if not run_only:
            self.executor.finish(task_id, exit_code=0 if ok else 1)
        self.run(self.p.settle_tasks())
        rec = self.p.invoker.book.tasks[task_id]
        event(f"finish: {rec.state.value}, receipt: {rec.receipt_env is not None}")

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def negotiations_follow_the_table(self) -> None:
        for neg in self.p.negotiator.book.negotiations.values():
            state = NegState.DEMANDED
            for before, ev, after, _ in neg.history:
                assert before is state and state not in TERMINAL_STATES
                assert TRANSITIONS[(before, ev)] is after
                state = after
            assert state is neg.state
            assert neg.settlements <= 1
            if neg.settlements:
                assert neg.state is NegState.SETTLED
                assert NegEvent.WITHDRAW not in [e for _, e, _, _ in neg.history]

    @invariant()
    def capacity_is_never_oversold_nor_leaked(self) -> None:
        ledger = self.p.ledger
        assert ledger.peak(self.p.offer.name) <= CAPACITY
        held = {
            n.agreement_id
            for n in self.p.negotiator.book.negotiations.values()
            if n.state in HELD and n.reserved
        }
        assert set(ledger.reservations()) == held
        for n in self.p.negotiator.book.negotiations.values():
            assert n.reserved == (n.state in HELD and n.agreement is not None)

    @invariant()
    def tasks_run_once_and_are_metered_once(self) -> None:
        book = self.p.invoker.book
        assert set(self.executor.starts) == set(book.tasks)
        assert all(n == 1 for n in self.executor.starts.values())
        totals: dict[str, Decimal] = {}
        for task_id, rec in book.tasks.items():
            state = TaskState.QUEUED
            for before, ev, after in rec.history:
                assert before is state and state not in TASK_TERMINAL_STATES
                assert TASK_TRANSITIONS[(before, ev)] is after
                state = after
            assert state is rec.state
            assert [s.header.serial for s in rec.statuses] == list(range(1, len(rec.statuses) + 1))
            if rec.receipt_env is not None:
                assert rec.started is not None or (rec.outcome is not None and rec.outcome.started)
                assert rec.receipt_env.body_value["task_id"] == task_id
                totals[rec.agreement_id] = totals.get(rec.agreement_id, Decimal(0)) + Decimal(
                    rec.receipt_env.body_value["cost"]["total"]
                )
        for agreement_id, receipts in book.receipts.items():
            assert len({r.body_value["task_id"] for r in receipts}) == len(receipts)
            if receipts:
                price = book.tasks[receipts[0].body_value["task_id"]].agreement.price
                assert totals.get(agreement_id, Decimal(0)) <= price.total


ProviderMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.slow
class TestProviderLifecycles(ProviderMachine.TestCase):  # type: ignore[misc,valid-type]
    """REQ-NEG-040, REQ-NEG-041, REQ-NEG-042, REQ-INV-040, REQ-PRV-022, REQ-PRV-023, REQ-PRV-032:
    never an illegal state, never oversold, never run twice, never settled twice."""


_ = InvocationError  # the before_start refusal never happens here: agreements start at once
