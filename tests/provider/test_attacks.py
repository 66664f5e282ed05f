"""Attacks on negotiate and invoke: each is refused with its typed error, and nothing changes.

As python-tuf's attack tests do, every case also checks that the provider's
trusted state (negotiation states, capacity, tasks, executor starts) is
exactly what it was before the attempt.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from cid import examples as ex
from cid.envelope import Envelope, seal
from cid.errors import (
    AgreementNotFoundError,
    CidError,
    ExpiredError,
    KeyUnknownError,
    NegotiationError,
    ReceiptInvalidError,
    ReplayError,
    SignatureInvalidError,
    TaskLimitsExceededError,
    VerificationError,
)
from cid.invocation import TYP_RECEIPT, verify_receipt
from cid.negotiation import TYP_AGREEMENT, TYP_QUOTE, verify_agreement
from cid.signing import SigningKey

from .conftest import FakeExecutor, Flow, Provider, Requester

pytestmark = pytest.mark.asyncio

STRANGER = SigningKey.from_seed(b"\x0b" * 32)


def snapshot(p: Provider) -> dict[str, Any]:
    """The provider's trusted state, to compare before and after an attack."""
    executor = p.executor
    assert isinstance(executor, FakeExecutor)
    return {
        "negotiations": {d: n.state for d, n in p.negotiator.book.negotiations.items()},
        "reservations": p.ledger.reservations(),
        "tasks": {t: r.state for t, r in p.invoker.book.tasks.items()},
        "starts": dict(executor.starts),
        "receipts": {a: len(r) for a, r in p.invoker.book.receipts.items()},
    }


async def refused(
    p: Provider, error: type[CidError], method: str, path: str, body: Any
) -> CidError:
    before = snapshot(p)
    with pytest.raises(error) as info:
        await p.call(method, path, body)
    assert snapshot(p) == before, "a refused message changed the provider's state"
    return info.value


def tamper(env: Envelope, **changes: Any) -> Envelope:
    value = copy.deepcopy(env.to_value())
    value["body"].update(changes)
    return Envelope.from_value(value)


@pytest_asyncio.fixture
async def two() -> AsyncIterator[tuple[Provider, Provider]]:
    """Two providers (ctyun and ctyunx) with different service keys, one requester key."""
    a = Provider()
    b = Provider(
        clock=a.clock,
        namespace="ctyunx",
        service_key=ex.second_provider_key(),
        offer="gz.ctyunx",
    )
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


# --- forged signatures ---------------------------------------------------------------------------


async def test_forged_quote(provider: Provider) -> None:
    """REQ-NEG-010, REQ-NEG-018, REQ-SIG-030: a quote altered after signing is refused."""
    r = provider.requester
    quote_env = await provider.demand(r.demand(quantity=2))
    cheaper = tamper(quote_env, expires=quote_env.body_value["expires"] + 3600)
    # the requester's verification fails ...
    with pytest.raises(SignatureInvalidError):
        cheaper.verify(provider.provider_keys, typ=TYP_QUOTE, now=provider.clock())
    # ... and the provider refuses an accept of it: the digest is not the quote it issued
    err = await refused(
        provider, NegotiationError, "POST", "/v1/negotiate/accept", r.accept(cheaper)
    )
    assert err.detail["rule"] == "quote_ref"
    # a quote "signed" by another key is not the provider's
    forged = seal(
        quote_env.body_value,
        typ=TYP_QUOTE,
        sub=quote_env.header.sub,
        serial=2,
        key=STRANGER,
        nbf=provider.clock(),
        exp=provider.clock() + 60,
    )
    with pytest.raises(KeyUnknownError):
        forged.verify(provider.provider_keys, typ=TYP_QUOTE, now=provider.clock())
    await refused(provider, NegotiationError, "POST", "/v1/negotiate/accept", r.accept(forged))


async def test_forged_agreement(provider: Provider) -> None:
    """REQ-NEG-022, REQ-PRV-016: an altered or self-made agreement is refused; state unchanged."""
    r = provider.requester
    quote_env = await provider.demand(r.demand(quantity=2))
    agreement_env = await provider.accept(r.accept(quote_env))
    # the requester lowers the price and countersigns: the provider's signature no longer verifies
    body = dict(agreement_env.body_value)
    altered = tamper(agreement_env, limits=dict(body["limits"], cpu_s=body["limits"]["cpu_s"] * 9))
    await refused(
        provider,
        SignatureInvalidError,
        "POST",
        "/v1/negotiate/agreement",
        r.countersign(altered),
    )
    # an agreement the requester made up and had a stranger sign as "provider"
    fake = seal(
        agreement_env.body_value,
        typ=TYP_AGREEMENT,
        sub=agreement_env.header.sub,
        serial=agreement_env.header.serial,
        key=STRANGER,
        nbf=provider.clock(),
        exp=agreement_env.header.exp,
    ).add_signature(r.key)
    await refused(provider, SignatureInvalidError, "POST", "/v1/negotiate/agreement", fake)
    # the provider's signature alone does not bind the requester (REQ-NEG-022)
    await refused(provider, SignatureInvalidError, "POST", "/v1/negotiate/agreement", agreement_env)
    # countersigned by someone other than the demand's requester
    other = agreement_env.add_signature(STRANGER)
    await refused(provider, KeyUnknownError, "POST", "/v1/negotiate/agreement", other)
    # the real countersignature still works afterwards
    answer = await provider.call("POST", "/v1/negotiate/agreement", r.countersign(agreement_env))
    assert answer["state"] == "agreed"


async def test_receipt_altered_after_signing(provider: Provider) -> None:
    """REQ-INV-030, REQ-INV-033: a receipt altered after signing fails offline verification."""
    flow = await provider.agree()
    executor = provider.executor
    assert isinstance(executor, FakeExecutor)
    task_id = await provider.submit(provider.requester.task(flow.agreement))
    executor.run(task_id)
    executor.finish(task_id)
    await provider.settle_tasks()
    got = await provider.call("GET", f"/v1/invoke/tasks/{task_id}/result")
    receipt_env = Envelope.from_value(got["receipt"])
    keys, now = provider.provider_keys, provider.clock()
    verify_receipt(receipt_env, flow.agreement, service_keys=keys, now=now)
    usage = dict(receipt_env.body_value["usage"], wall_s=1)
    with pytest.raises(SignatureInvalidError):
        verify_receipt(tamper(receipt_env, usage=usage), flow.agreement, service_keys=keys, now=now)
    with pytest.raises(SignatureInvalidError):
        verify_receipt(
            tamper(receipt_env, issued=now + 1), flow.agreement, service_keys=keys, now=now
        )
    # re-signed by someone else: not a provider key
    resigned = seal(
        receipt_env.body_value,
        typ=TYP_RECEIPT,
        sub=receipt_env.header.sub,
        serial=1,
        key=STRANGER,
        nbf=now,
        exp=now + 60,
    )
    with pytest.raises(KeyUnknownError):
        verify_receipt(resigned, flow.agreement, service_keys=keys, now=now)
    # a receipt shown against another agreement
    other = await provider.agree()
    with pytest.raises(ReceiptInvalidError):
        verify_receipt(receipt_env, other.agreement, service_keys=keys, now=now)


# --- an agreement reused on another provider ----------------------------------------------------


async def test_agreement_reused_on_another_provider(two: tuple[Provider, Provider]) -> None:
    """REQ-INV-001, REQ-INV-003, REQ-NEG-004: A's agreement and tasks mean nothing to B."""
    a, b = two
    r = a.requester
    flow_a: Flow = await a.agree()
    flow_b: Flow = await b.agree()
    assert flow_b.agreement.provider.to_text() == "ctyunx"
    # the countersigned agreement of A, shown to B
    await refused(b, AgreementNotFoundError, "POST", "/v1/negotiate/agreement", flow_a.cosigned)
    # a task under A's agreement, submitted to B (signed for A, or re-addressed to B)
    task_for_a = r.task(flow_a.agreement)
    await refused(b, AgreementNotFoundError, "POST", "/v1/invoke/tasks", task_for_a)
    readdressed = r.task(flow_a.agreement, aud="ctyunx")
    await refused(b, AgreementNotFoundError, "POST", "/v1/invoke/tasks", readdressed)
    # a task naming B's agreement but signed for A: the audience does not match
    wrong_aud = r.task(flow_b.agreement, aud="ctyun")
    err = await refused(b, VerificationError, "POST", "/v1/invoke/tasks", wrong_aud)
    assert err.detail["rule"] == "audience"
    # a demand and an accept addressed to A, sent to B
    err = await refused(b, VerificationError, "POST", "/v1/negotiate/demand", r.demand())
    assert err.detail["rule"] == "audience"
    # B cannot pass its agreement off as A's: no key of A signed it
    with pytest.raises(SignatureInvalidError):
        verify_agreement(
            flow_b.cosigned,
            provider_keys=a.provider_keys,
            requester_key=r.key.public_key,
            now=a.clock(),
        )
    # the legitimate task on A still runs
    assert await a.submit(task_for_a)


# --- invocation -------------------------------------------------------------------------------


async def test_replayed_task_submission(provider: Provider) -> None:
    """REQ-INV-005, REQ-PRV-032: a replayed submission is refused and never runs twice."""
    flow = await provider.agree()
    r = provider.requester
    env = r.task(flow.agreement, task_nonce="nonce-replayed-0000001", deadline=flow.agreement.end)
    task_id = await provider.submit(env)
    executor = provider.executor
    assert isinstance(executor, FakeExecutor)
    err = await refused(provider, ReplayError, "POST", "/v1/invoke/tasks", env)
    assert err.detail["rule"] == "replay"
    # a new envelope (new body) reusing the nonce is a replay too
    again = r.task(flow.agreement, task_nonce="nonce-replayed-0000001", env={"X": "1"})
    await refused(provider, ReplayError, "POST", "/v1/invoke/tasks", again)
    # in msgpack: the same envelope, the same refusal
    before = snapshot(provider)
    status, value, _ = await provider.raw("POST", "/v1/invoke/tasks", env, encoding="msgpack")
    assert status == 409 and value["cid"]["name"] == "REPLAY_DETECTED"
    assert snapshot(provider) == before
    # once the envelope has expired, it is refused as expired (the nonce may be forgotten)
    provider.clock.advance(601)
    await refused(provider, ExpiredError, "POST", "/v1/invoke/tasks", env)
    assert executor.starts[task_id] == 1


@pytest.mark.parametrize("limit", ["cpu_s", "memory_mib", "wall_s", "output_bytes"])
async def test_task_over_agreement_limits(provider: Provider, limit: str) -> None:
    """REQ-INV-012, REQ-NEG-030: a task asking for more than its agreement allows is refused."""
    flow = await provider.agree()
    lim = flow.agreement.limits
    over = lim.model_copy(update={limit: getattr(lim, limit) + 1})
    env = provider.requester.task(flow.agreement, limits=over)
    err = await refused(provider, TaskLimitsExceededError, "POST", "/v1/invoke/tasks", env)
    assert err.field == f"body.limits.{limit}"


async def test_task_by_another_key(provider: Provider) -> None:
    """REQ-INV-002, REQ-INV-007: only the agreement's requester key may submit or cancel."""
    flow = await provider.agree()
    thief = Requester(provider.clock, key=STRANGER)
    await refused(
        provider, VerificationError, "POST", "/v1/invoke/tasks", thief.task(flow.agreement)
    )
    signed_by_thief = provider.requester.task(flow.agreement, key=STRANGER)
    await refused(provider, KeyUnknownError, "POST", "/v1/invoke/tasks", signed_by_thief)
    task_id = await provider.submit(provider.requester.task(flow.agreement))
    cancel = provider.requester.cancel(task_id, flow.agreement, key=STRANGER)
    await refused(provider, KeyUnknownError, "POST", f"/v1/invoke/tasks/{task_id}/cancel", cancel)


async def test_withdraw_by_another_key(provider: Provider) -> None:
    """REQ-NEG-006: nobody but the requester can withdraw its agreement."""
    flow = await provider.agree()
    w = provider.requester.withdraw(
        serial=5, key=STRANGER, agreement_id=flow.agreement.agreement_id
    )
    await refused(provider, KeyUnknownError, "POST", "/v1/negotiate/withdraw", w)
