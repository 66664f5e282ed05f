"""§9 Invoke: tasks under an agreement, their statuses, results, cancellation and receipts, over the
binding of §15.6 and §15.7."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import secrets
from decimal import Decimal
from typing import Any

from cid.signing import SigningKey

from ..case import check, check_equal, fail
from ..signed import digest_of
from .checks import STATUS_REASONS, receipt_issues, result_issues, status_issues
from .context import TERMINAL, Neg, Provider, ProviderContext, ProviderSection, Task, sha256_hex

s = ProviderSection("provider", "9", "Invoke")

SLOW = "import time; time.sleep(60)"


async def _statuses(
    ctx: ProviderContext, p: Provider, task: Task, neg: Neg
) -> list[dict[str, Any]]:
    """Every status of a finished task, from its event stream, each verified and checked."""
    reply = await ctx.get(f"/v1/invoke/tasks/{task.task_id}/events", accept="text/event-stream")
    check(reply.status == 200, f"GET events: {reply.brief()}")
    check(
        reply.media_type == "text/event-stream",
        f"the event stream is {reply.media_type!r}, not text/event-stream",
    )
    events = _sse(reply.body)
    out = []
    for i, (name, event_id, data) in enumerate(events, 1):
        check_equal(name, "status", f"event {i}'s name")
        try:
            value = json.loads(data)
        except ValueError:
            fail(f"event {i}'s data is not JSON: {data[:120]!r}")
        env = ctx.verify(value, "cid.inv.status", p, what=f"status event {i}")
        check_equal(event_id, str(env.header.serial), f"event {i}'s id (the status serial)")
        issues = status_issues(value, task.task_id, neg)
        check(not issues, f"status {i}: " + "; ".join(issues))
        out.append(value)
    return out


def _sse(body: bytes) -> list[tuple[str, str, str]]:
    """(event, id, data) of each event of a text/event-stream body (comments skipped)."""
    events = []
    for block in body.decode("utf-8").replace("\r\n", "\n").split("\n\n"):
        name, event_id, data = "message", "", []
        lines = [ln for ln in block.split("\n") if ln and not ln.startswith(":")]
        if not lines:
            continue
        for line in lines:
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "event":
                name = value
            elif key == "id":
                event_id = value
            elif key == "data":
                data.append(value)
        events.append((name, event_id, "\n".join(data)))
    return events


def _sequence_issues(states: list[str]) -> list[str]:
    """The states of a task follow Table 9-9 and end terminal."""
    allowed = {
        ("queued", "running"),
        ("queued", "failed"),
        ("queued", "cancelled"),
        ("queued", "expired"),
        ("running", "succeeded"),
        ("running", "failed"),
        ("running", "cancelled"),
        ("running", "expired"),
    }
    issues = []
    if not states or states[0] != "queued":
        issues.append(f"the first status is {states[:1]}, not queued")
    for a, b in itertools.pairwise(states):
        if (a, b) not in allowed:
            issues.append(f"{a} -> {b} is not a transition of Table 9-9")
    if states and states[-1] not in TERMINAL:
        issues.append(f"the stream ended in {states[-1]}, not a terminal state")
    return issues


async def _outcome(
    ctx: ProviderContext,
    p: Provider,
    neg: Neg,
    task: Task,
    *,
    started: bool | None = None,
    receipt: str = "none",
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The verified result and the receipt of a finished task (Table 15-4).

    ``receipt``: ``"none"`` takes the receipt as it comes, ``"signed"`` verifies its signature
    ([REQ-INV-030]), ``"full"`` also checks it against the agreement ([REQ-INV-031]..).
    ``started``: whether the task ran, so that a receipt must be there (or must be null).
    """
    value = await ctx.finished(p, task.task_id)
    result = value.get("result")
    ctx.verify(result, "cid.inv.result", p, what="the result")
    assert isinstance(result, dict)
    issues = result_issues(result, task.task_id, task.envelope["body"]["limits"])
    check(not issues, "; ".join(issues))
    got = value.get("receipt")
    if started is False:
        check(got is None, "a task that never ran has a receipt")
        return result, None
    if got is None:
        if started:
            fail("a task that started running has no receipt (Table 15-4: receipt is null)")
        return result, None
    check(isinstance(got, dict), f"the receipt is not an envelope: {str(got)[:100]}")
    assert isinstance(got, dict)
    if receipt in ("signed", "full"):
        ctx.verify(got, "cid.inv.receipt", p, what="the receipt")
    if receipt == "full":
        issues = receipt_issues(got, neg, task.task_id, now=ctx.now())
        check(not issues, "the receipt: " + "; ".join(issues))
    return result, got


# --- a task's life ----------------------------------------------------------------------------


@s.case(
    1,
    "a task is admitted with 202, its id the envelope digest, and runs to a signed success",
    "REQ-INV-001",
    "REQ-INV-004",
    "REQ-INV-008",
    "REQ-INV-009",
    "REQ-INV-020",
    "REQ-INV-021",
    "REQ-PRV-030",
    "REQ-PRV-033",
    writes=True,
)
async def task_succeeds(ctx: ProviderContext) -> None:
    """The identity of a task is its task id: the digest of its task envelope ... A provider MUST
    name the task by it in every later message. ... answers 202 {"task_id": …, "state": …} with a
    Location header naming the task's route. GET /v1/invoke/tasks/{task_id} MUST answer with the
    task's latest status envelope ... with sub the agreement's offer and serial the number of
    states the task has been in."""
    async with ctx.deal() as (p, neg):
        task = await ctx.run(p, neg)
        answer = task.reply.value()
        check_equal(answer.get("task_id"), task.task_id, "task_id (the envelope's digest)")
        check(answer.get("state") in ("queued", "running", *TERMINAL), f"state {answer}")
        location = task.reply.headers.get("Location", "")
        check(
            location.endswith(f"/v1/invoke/tasks/{task.task_id}"),
            f"Location {location!r} does not name the task's route",
        )
        env = await ctx.wait_state(p, task.task_id, {"succeeded"})
        issues = status_issues(env.to_value(), task.task_id, neg)
        check(not issues, "; ".join(issues))
        check_equal(env.body_value.get("exit_code"), 0, "exit_code of a succeeded task")
        statuses = await _statuses(ctx, p, task, neg)
        check_equal(env.header.serial, len(statuses), "the latest status's serial")
        check_equal(env.to_value(), statuses[-1], "the latest status and the stream's last")


@s.case(
    2,
    "the result and receipt of a finished task are signed and match the task and agreement",
    "REQ-INV-023",
    "REQ-INV-030",
    "REQ-INV-031",
    "REQ-INV-032",
    "REQ-INV-033",
    "REQ-PRV-035",
    "REQ-PRV-040",
    writes=True,
)
async def result_and_receipt(ctx: ProviderContext) -> None:
    """For every task that started running, a provider MUST issue a receipt once the task reaches
    a terminal state: a cid.inv.receipt envelope signed by exactly one service key ... A receipt's
    cost MUST be the agreement's price applied to the task's wall time ... envelope serial 1, nbf
    issued, exp the agreement's expires."""
    async with ctx.deal() as (p, neg):
        source = ctx.write_output("a.txt", "cid") + "; " + ctx.write_output("b.txt", "0123456789")
        task = await ctx.run(p, neg, source + "; print('done')")
        result, receipt = await _outcome(ctx, p, neg, task, started=True, receipt="full")
        outputs = {o["path"]: o for o in result["body"].get("outputs", [])}
        a, b = ctx.output_path("a.txt"), ctx.output_path("b.txt")
        check_equal(sorted(outputs), [a, b], "the outputs the result lists")
        check_equal(outputs[a]["sha256"], sha256_hex(b"cid"), "a.txt's sha256")
        check_equal(outputs[b]["size_bytes"], 10, "b.txt's size")
        assert receipt is not None
        check_equal(receipt["body"]["usage"].get("output_bytes", 0), 13,
                    "usage.output_bytes (the sum of the outputs' sizes)")  # fmt: skip


@s.case(
    3,
    "outputs, stdout and stderr are served with a Repr-Digest that is the result's digest",
    "REQ-PRV-036",
    "REQ-INV-023",
    writes=True,
)
async def outputs(ctx: ProviderContext) -> None:
    """GET …/outputs/{path}, …/stdout and …/stderr MUST answer with the octets of the output ...
    as application/octet-stream, with a Repr-Digest header (RFC 9530) giving their SHA-256, which is
    the digest the result states ... a path the result does not list NOT_FOUND (3001)."""
    async with ctx.deal() as (p, neg):
        source = ctx.write_output("r.txt", "result") + "; import sys; print('out'); "
        task = await ctx.run(p, neg, source + "print('err', file=sys.stderr)")
        result, _ = await _outcome(ctx, p, neg, task)
        body = result["body"]
        base = f"/v1/invoke/tasks/{task.task_id}"
        for path, want, data in (
            (
                f"/outputs/{ctx.output_path('r.txt')}",
                body["outputs"][0]["sha256"] if body["outputs"] else "",
                b"result",
            ),
            ("/stdout", body["stdout_sha256"], b"out\n"),
            ("/stderr", body["stderr_sha256"], b"err\n"),
        ):
            reply = await ctx.get(base + path, accept="application/octet-stream")
            check(reply.status == 200, f"GET {path}: {reply.brief()}")
            check_equal(reply.media_type, "application/octet-stream", f"{path}'s Content-Type")
            check_equal(reply.body, data, f"the octets of {path}")
            check_equal(sha256_hex(reply.body), want, f"{path}: the result's digest")
            b64 = base64.b64encode(hashlib.sha256(reply.body).digest()).decode()
            header = reply.headers.get("Repr-Digest", "")
            check(f"sha-256=:{b64}:" in header, f"{path}: Repr-Digest {header!r}")
        reply = await ctx.get(base + "/outputs/missing.txt")
        ctx.expect_error(reply, 3001, what="an output the result does not list")


@s.case(
    4,
    "the event stream sends every status once, resumes after Last-Event-ID and ends terminal",
    "REQ-PRV-034",
    "REQ-INV-041",
    "REQ-INV-009",
    writes=True,
)
async def event_stream(ctx: ProviderContext) -> None:
    """GET /v1/invoke/tasks/{task_id}/events MUST answer with a Server-Sent Events stream that sends
    every status envelope of the task whose serial is greater than the request's Last-Event-ID (all
    of them without one), then each new status as it is made, and ends after the terminal status."""
    async with ctx.deal() as (p, neg):
        task = await ctx.run(p, neg, "import time; time.sleep(0.3)")
        statuses = await _statuses(ctx, p, task, neg)
        states = [v["body"]["state"] for v in statuses]
        issues = _sequence_issues(states)
        check(not issues, "; ".join(issues))
        serials = [v["header"]["serial"] for v in statuses]
        check_equal(serials, list(range(1, len(serials) + 1)), "the statuses' serials")
        reply = await ctx.get(
            f"/v1/invoke/tasks/{task.task_id}/events",
            accept="text/event-stream",
            headers={"Last-Event-ID": "1"},
        )
        rest = _sse(reply.body)
        check_equal([e[1] for e in rest], [str(n) for n in serials[1:]], "events after id 1")


@s.case(
    5,
    "a failing command ends failed with its exit code and reason exit",
    "REQ-PRV-041",
    "REQ-INV-021",
    "REQ-INV-030",
    writes=True,
)
async def task_fails(ctx: ProviderContext) -> None:
    """... a failed task without a reason gets exit (with a non-zero exit code) or provider, and an
    exit code is given only as Table 9-8 allows."""
    async with ctx.deal() as (p, neg):
        task = await ctx.run(p, neg, "import sys; sys.exit(3)")
        env = await ctx.wait_state(p, task.task_id, {"failed"})
        check_equal(env.body_value.get("exit_code"), 3, "exit_code")
        check_equal(env.body_value.get("reason"), "exit", "reason")
        await _outcome(ctx, p, neg, task, started=True, receipt="signed")


@s.case(
    6,
    "a command is an argument vector, never read by a shell",
    "REQ-INV-011",
    writes=True,
)
async def argv(ctx: ProviderContext) -> None:
    """A provider MUST run command as an argument vector, without interpretation by a shell."""
    async with ctx.deal() as (p, neg):
        args = ["$HOME;", "*", "a b", "`id`"]
        cmd = [*ctx.program("import sys; print(repr(sys.argv[1:]))"), *args]
        task = await ctx.run(p, neg, command=cmd)
        await _outcome(ctx, p, neg, task)
        reply = await ctx.get(f"/v1/invoke/tasks/{task.task_id}/stdout")
        check_equal(reply.body.decode("utf-8", "replace").strip(), repr(args), "the arguments")


@s.case(
    7,
    "a task gets its env, and another task does not",
    "REQ-INV-014",
    writes=True,
)
async def environment(ctx: ProviderContext) -> None:
    """A provider MUST set exactly these variables, plus any it documents for its platform, and
    MUST NOT pass the requester's variables to any other task."""
    async with ctx.deal() as (p, neg):
        value = secrets.token_hex(8)
        show = "import os; print(os.environ.get('CIDCONF_SECRET', '-'))"
        first = await ctx.run(p, neg, show, env={"CIDCONF_SECRET": value})
        await _outcome(ctx, p, neg, first)
        second = await ctx.run(p, neg, show)
        await _outcome(ctx, p, neg, second)
        for task, want in ((first, value), (second, "-")):
            reply = await ctx.get(f"/v1/invoke/tasks/{task.task_id}/stdout")
            check_equal(reply.body.decode().strip(), want, "the variable the task saw")


# --- admission ----------------------------------------------------------------------------------


@s.case(
    8,
    "a task envelope submitted again is REPLAY_DETECTED; one without a nonce too",
    "REQ-INV-005",
    "REQ-SEC-007",
    "REQ-PRV-032",
    writes=True,
)
async def replay(ctx: ProviderContext) -> None:
    """A provider MUST remember every nonce of a task or cancel it accepted, per requester key, at
    least until that envelope's exp, and MUST refuse an envelope whose nonce it remembers, or that
    has none, with REPLAY_DETECTED (5001). A provider MUST start each task at most once."""
    async with ctx.deal() as (p, neg):
        task = await ctx.run(p, neg, "print('once')")
        again = await ctx.submit(task.envelope)
        ctx.expect_error(again.reply, 5001, what="the same envelope again")
        nonce = task.envelope["header"]["nonce"]
        same_nonce = ctx.task_env(p, neg, "print(2)", hdr={"nonce": nonce})
        ctx.expect_error((await ctx.submit(same_nonce)).reply, 5001, what="a remembered nonce")
        none = ctx.task_env(p, neg, hdr={"nonce": None})
        ctx.expect_error((await ctx.submit(none)).reply, 5001, what="no nonce")
        await ctx.wait_state(p, task.task_id, TERMINAL)
        ctx.expect_error((await ctx.submit(task.envelope)).reply, 5001, what="after it ended")
        statuses = await _statuses(ctx, p, task, neg)
        runs = [v for v in statuses if v["body"]["state"] == "running"]
        check(len(runs) <= 1, f"the task was started {len(runs)} times")


@s.case(
    9,
    "a task for another provider, or none, is VERIFICATION_FAILED, rule audience",
    "REQ-INV-003",
    "REQ-SEC-007",
    writes=True,
)
async def task_audience(ctx: ProviderContext) -> None:
    """A task or cancel MUST carry aud equal to the agreement's provider; a provider MUST refuse one
    with another or no aud with VERIFICATION_FAILED (2000), field header.aud, rule audience."""
    async with ctx.deal() as (p, neg):
        for aud in (f"elsewhere-{secrets.token_hex(3)}", None):
            env = ctx.task_env(p, neg, hdr={"aud": aud})
            reply = (await ctx.submit(env)).reply
            ctx.expect_error(reply, 2000, field="header.aud", rule="audience", what=f"aud {aud}")


@s.case(
    10,
    "a task not signed by the agreement's requester key, or of another typ, is refused",
    "REQ-INV-002",
    writes=True,
)
async def task_signature(ctx: ProviderContext) -> None:
    """Each invocation message MUST be an envelope whose typ is the one Table 9-1 gives for it,
    signed by ... a task or cancel by exactly the requester key named in the agreement. A receiver
    MUST refuse an envelope of another typ with SCHEMA_VIOLATION (1003), rule typ, and a signature
    by another key as §6.5 requires."""
    async with ctx.deal() as (p, neg):
        env = ctx.task_env(p, neg, hdr={"key": SigningKey.generate()})
        ctx.expect_error((await ctx.submit(env)).reply, 2002, what="signed by another key")
        env = ctx.task_env(p, neg)
        sig = env["sigs"][0]["sig"]
        env["sigs"][0]["sig"] = ("B" if sig[0] == "A" else "A") + sig[1:]
        ctx.expect_error((await ctx.submit(env)).reply, 2001, what="a bad signature")
        env = ctx.task_env(p, neg, hdr={"typ": "cid.inv.cancel"})
        ctx.expect_error((await ctx.submit(env)).reply, 1003, rule="typ", what="typ cancel")


@s.case(
    11,
    "a task valid for more than an hour, or with serial 2, or about another offer, is refused",
    "REQ-INV-005",
    "REQ-INV-009",
    "REQ-INV-008",
    writes=True,
)
async def task_header(ctx: ProviderContext) -> None:
    """... its validity window (exp − nbf) MUST NOT exceed 3,600 seconds (otherwise
    SCHEMA_VIOLATION, field header.exp, rule task_window). A task and a cancel MUST have serial 1.
    The header's sub of every invocation message MUST be the agreement's offer."""
    async with ctx.deal() as (p, neg):
        env = ctx.task_env(p, neg, hdr={"window_s": 3601})
        reply = (await ctx.submit(env)).reply
        ctx.expect_error(reply, 1003, field="header.exp", rule="task_window", what="window 3601")
        env = ctx.task_env(p, neg, hdr={"serial": 2})
        ctx.expect_error((await ctx.submit(env)).reply, 1003, what="serial 2")
        env = ctx.task_env(p, neg, hdr={"sub": f"other.{p.namespace}"})
        ctx.expect_error((await ctx.submit(env)).reply, 1003, what="sub another offer")


@s.case(
    12,
    "a task under an agreement not issued, not countersigned or withdrawn is refused",
    "REQ-INV-001",
    "REQ-PRV-030",
    "REQ-NEG-022",
    writes=True,
)
async def task_agreement(ctx: ProviderContext) -> None:
    """... refuse the task with AGREEMENT_NOT_FOUND (4005) when it did not issue that agreement
    (rule agreement) or the agreement has not been countersigned (rule not_agreed), and with
    AGREEMENT_EXPIRED (4008), rule agreement_state, when the agreement was withdrawn."""
    p = await ctx.provider()
    neg = await ctx.accepted(p, await ctx.quote(p))
    try:
        env = ctx.task_env(p, neg)
        reply = (await ctx.submit(env)).reply
        ctx.expect_error(reply, 4005, rule="not_agreed", what="not countersigned")
        env = ctx.task_env(p, neg, agreement_id=secrets.token_urlsafe(18))
        reply = (await ctx.submit(env)).reply
        ctx.expect_error(reply, 4005, rule="agreement", what="an agreement not issued")
    finally:
        await ctx.withdraw_quietly(neg)
    env = ctx.task_env(p, neg)
    reply = (await ctx.submit(env)).reply
    ctx.expect_error(reply, 4008, rule="agreement_state", what="a withdrawn agreement")


@s.case(
    13,
    "a task before the agreement's start is refused, rule before_start",
    "REQ-INV-006",
    writes=True,
)
async def before_start(ctx: ProviderContext) -> None:
    """A provider MUST accept a task only within the agreement's period: ... before start with
    INVOCATION_FAILED (5000), rule before_start."""
    start, end = ctx.window()
    async with ctx.deal(start_after=start, start_before=end) as (p, neg):
        env = ctx.task_env(p, neg, deadline=int(neg.terms["start"]) + 60)
        ctx.expect_error((await ctx.submit(env)).reply, 5000, rule="before_start")


@s.case(
    14,
    "a task at or after the agreement's end is AGREEMENT_EXPIRED",
    "REQ-INV-006",
    writes=True,
    tags=("late",),
)
async def after_end(ctx: ProviderContext) -> None:
    """... at a time at or after end it MUST refuse it with AGREEMENT_EXPIRED (4008)."""
    async with ctx.deal(duration_s=1) as (p, neg):
        end = int(neg.terms["end"])
        await ctx.sleep_until(end)
        env = ctx.task_env(p, neg, deadline=end)
        ctx.expect_error((await ctx.submit(env)).reply, 4008)


@s.case(
    15,
    "limits above the agreement's, or a deadline outside (now, end], are TASK_LIMITS_EXCEEDED",
    "REQ-INV-012",
    "REQ-NEG-030",
    writes=True,
)
async def limits(ctx: ProviderContext) -> None:
    """Every limit of the task MUST be at most the agreement's limit of the same name, and deadline
    MUST be later than the time of submission and not later than the agreement's end; a provider
    MUST refuse a task that breaks this with TASK_LIMITS_EXCEEDED (5003), field the offending member
    (body.limits.<name> or body.deadline)."""
    async with ctx.deal() as (p, neg):
        agreed = neg.terms["limits"]
        for name in ("cpu_s", "memory_mib", "wall_s", "output_bytes"):
            over = {**agreed, name: agreed[name] + 1}
            reply = (await ctx.submit(ctx.task_env(p, neg, limits=over))).reply
            ctx.expect_error(reply, 5003, field=f"body.limits.{name}", what=f"{name} over")
        for deadline in (int(neg.terms["end"]) + 1, ctx.now() - 10):
            reply = (await ctx.submit(ctx.task_env(p, neg, deadline=deadline))).reply
            ctx.expect_error(reply, 5003, field="body.deadline", what=f"deadline {deadline}")


@s.case(
    16,
    "a task body that breaks Tables 9-2 to 9-4 is SCHEMA_VIOLATION with its field",
    "REQ-INV-010",
    "REQ-INV-011",
    "REQ-INV-013",
    "REQ-INV-014",
    writes=True,
)
async def task_model(ctx: ProviderContext) -> None:
    """A provider MUST refuse a body that breaks Tables 9-2 to 9-4 with SCHEMA_VIOLATION (1003),
    field the path from the envelope (body.inputs.0.path, …). A task MUST have a command, an image
    or both (rule command_or_image). An input MUST have a url, a sha256 or both (rule
    input_source) ... rule path ... rule unique_path. Each name of env MUST match
    [A-Za-z_][A-Za-z0-9_]{0,127}."""
    async with ctx.deal() as (p, neg):
        digest = "0" * 64
        for changes, rule, where in (
            ({"command": ..., "image": ...}, "command_or_image", "body.command"),
            ({"inputs": [{"path": "a.txt"}]}, "input_source", "body.inputs.0"),
            ({"inputs": [{"path": "../x", "sha256": digest}]}, "path", "body.inputs.0"),
            (
                {"inputs": [{"path": "a", "sha256": digest}, {"path": "a", "sha256": digest}]},
                "unique_path",
                "body.inputs",
            ),
            ({"env": {"1BAD": "x"}}, None, "body.env"),
            ({"limits": ...}, None, "body.limits"),
            ({"surplus": True}, None, "body.surplus"),
        ):
            reply = (await ctx.submit(ctx.task_env(p, neg, **changes))).reply
            ctx.expect_error(reply, 1003, rule=rule, what=str(changes)[:60])
            if where is not None:
                got = reply.field
                check(
                    isinstance(got, str) and got.startswith(where),
                    f"{str(changes)[:60]}: expected field {where}…: {reply.brief()}",
                )


@s.case(
    17,
    "a provider checks a task in the order of §9.1 and refuses it at the first check that fails",
    "REQ-INV-007",
    writes=True,
)
async def check_order(ctx: ProviderContext) -> None:
    """A provider MUST check a submitted task in this order and refuse it at the first check that
    fails: (1) the envelope verifies ... (2) aud; (3) nonce and window; (4) the body parses and
    names the agreement; (5) the agreement's period; (6) limits and deadline."""
    async with ctx.deal() as (p, neg):
        over = {**neg.terms["limits"], "wall_s": neg.terms["limits"]["wall_s"] + 1}
        stranger = SigningKey.generate()
        cases: list[tuple[dict[str, Any], dict[str, Any], int, str]] = [
            ({"key": stranger, "aud": "elsewhere"}, {"limits": over}, 2002, "signature before aud"),
            ({"aud": "elsewhere", "window_s": 3601}, {}, 2000, "aud before window"),
            ({"nonce": None}, {"limits": ...}, 5001, "nonce before body"),
            ({"window_s": 3601}, {"limits": ...}, 1003, "window before body"),
            ({}, {"surplus": 1, "limits": over}, 1003, "body before limits"),
            ({}, {"limits": over, "deadline": int(neg.terms["end"]) + 5}, 5003, "limits"),
        ]
        for hdr, body, code, what in cases:
            reply = (await ctx.submit(ctx.task_env(p, neg, hdr=hdr, **body))).reply
            ctx.expect_error(reply, code, what=what)
        reply = (await ctx.submit(ctx.task_env(p, neg, hdr={"window_s": 3601}))).reply
        check_equal(reply.field, "header.exp", "the window is checked before the body")


# --- cancellation -------------------------------------------------------------------------------


@s.case(
    18,
    "a cancel stops a running task; a second is TASK_STATE_CONFLICT; the state stays cancelled",
    "REQ-INV-022",
    "REQ-PRV-037",
    "REQ-INV-040",
    "REQ-INV-042",
    "REQ-INV-030",
    writes=True,
)
async def cancel(ctx: ProviderContext) -> None:
    """The provider MUST then stop it and apply the event cancel, answer a cancel of a task in a
    terminal state with TASK_STATE_CONFLICT (5004) ... applies cancel with reason requested, stops
    the task, and answers 200 with the new status envelope."""
    async with ctx.deal() as (p, neg):
        task = await ctx.run(p, neg, SLOW)
        await ctx.wait_state(p, task.task_id, {"running"})
        reply = await ctx.cancel(task.task_id, ctx.cancel_env(p, task.task_id, reason="test"))
        value = ctx.expect_ok(reply, what="the cancel")
        env = ctx.verify(value, "cid.inv.status", p, what="the cancel's status")
        check_equal(env.body_value.get("state"), "cancelled", "state after the cancel")
        check_equal(env.body_value.get("reason"), "requested", "reason after the cancel")
        issues = status_issues(value, task.task_id, neg)
        check(not issues, "; ".join(issues))
        again = await ctx.cancel(task.task_id, ctx.cancel_env(p, task.task_id))
        ctx.expect_error(again, 5004, what="a second cancel")
        await _outcome(ctx, p, neg, task, started=True, receipt="signed")
        latest = await ctx.status(p, task.task_id)
        check_equal(latest.body_value.get("state"), "cancelled", "the state after the outcome")
        check_equal(latest.to_value(), value, "the latest status (a terminal task never changes)")


@s.case(
    19,
    "a cancel is checked as a task is: key, aud, nonce, and the task of its path",
    "REQ-PRV-037",
    "REQ-INV-002",
    "REQ-INV-003",
    "REQ-INV-005",
    "REQ-INV-022",
    writes=True,
)
async def cancel_refused(ctx: ProviderContext) -> None:
    """The provider MUST check it as a task is checked (the agreement's requester key alone, aud,
    nonce, window, serial 1), refuse one whose task_id is not the path's with SCHEMA_VIOLATION
    (1003), field body.task_id, rule task_id ... and one of a task it does not hold with
    TASK_NOT_FOUND (5002)."""
    async with ctx.deal() as (p, neg):
        task = await ctx.run(p, neg, SLOW)
        tid = task.task_id
        other = digest_of(ctx.demand(p))
        checks: list[tuple[dict[str, Any], dict[str, Any], int, str]] = [
            ({"key": SigningKey.generate()}, {}, 2002, "another key"),
            ({"aud": f"elsewhere-{secrets.token_hex(3)}"}, {}, 2000, "another aud"),
            ({"nonce": None}, {}, 5001, "no nonce"),
            ({"window_s": 3601}, {}, 1003, "window over an hour"),
            ({"serial": 2}, {}, 1003, "serial 2"),
            ({}, {"task_id": other}, 1003, "another task_id"),
        ]
        for hdr, body, code, what in checks:
            env = ctx.cancel_env(p, tid, hdr=hdr)
            if body:
                env = ctx.cancel_env(p, tid, hdr=hdr, **body)
            ctx.expect_error(await ctx.cancel(tid, env), code, what=what)
        reply = await ctx.cancel(tid, ctx.cancel_env(p, tid, task_id=other))
        ctx.expect_error(reply, 1003, field="body.task_id", rule="task_id")
        reply = await ctx.cancel(other, ctx.cancel_env(p, other))
        ctx.expect_error(reply, 5002, what="a task not held")
        good = ctx.cancel_env(p, tid)
        check((await ctx.cancel(tid, good)).status == 200, "the valid cancel was refused")
        ctx.expect_error(await ctx.cancel(tid, good), 5001, what="the same cancel again")


@s.case(
    20,
    "a task not held is TASK_NOT_FOUND on every task route",
    "REQ-INV-020",
    "REQ-PRV-033",
    "REQ-PRV-035",
)
async def task_not_found(ctx: ProviderContext) -> None:
    """A provider MUST answer a status request ... for a task it does not hold with TASK_NOT_FOUND
    (5002)."""
    tid = digest_of({"header": {"n": secrets.token_hex(8)}, "body": {}})
    for route in ("", "/result", "/events", "/stdout", "/stderr", "/outputs/a.txt"):
        reply = await ctx.get(f"/v1/invoke/tasks/{tid}{route}")
        ctx.expect_error(reply, 5002, what=f"GET …{route or '/'}")


@s.case(
    21,
    "before a task ends, its result and outputs are TASK_STATE_CONFLICT",
    "REQ-PRV-035",
    "REQ-PRV-036",
    writes=True,
)
async def result_too_early(ctx: ProviderContext) -> None:
    """GET /v1/invoke/tasks/{task_id}/result MUST answer TASK_STATE_CONFLICT (5004) until the task
    is terminal and its outcome is known ... before the result exists they answer
    TASK_STATE_CONFLICT (5004)."""
    async with ctx.deal() as (p, neg):
        task = await ctx.run(p, neg, SLOW)
        for route in ("/result", "/stdout", "/stderr", "/outputs/a.txt"):
            reply = await ctx.get(f"/v1/invoke/tasks/{task.task_id}{route}")
            ctx.expect_error(reply, 5004, what=f"GET …{route} of an unfinished task")


# --- limits and deadlines ----------------------------------------------------------------------


@s.case(
    22,
    "a task over its wall_s, cpu_s, memory_mib or output_bytes is stopped and fails with limit_*",
    "REQ-INV-025",
    "REQ-NEG-030",
    "REQ-PRV-040",
    "REQ-INV-023",
    writes=True,
)
async def enforced_limits(ctx: ProviderContext) -> None:
    """A provider MUST stop a task that reaches its cpu_s, wall_s or memory_mib limit or produces
    more than output_bytes of output, and apply the event fail with reason limit_cpu, limit_wall,
    limit_memory or limit_output. ... MUST NOT deliver outputs whose sizes add up to more than the
    task's limits.output_bytes: such a task fails with reason limit_output and its result lists no
    outputs."""
    async with ctx.deal() as (p, neg):
        agreed = neg.terms["limits"]
        slow = await ctx.run(p, neg, SLOW, limits={**agreed, "wall_s": 1})
        big = await ctx.run(
            p,
            neg,
            ctx.write_output("big.bin", "x", repeat=4096),
            limits={**agreed, "output_bytes": 100},
        )
        spin = await ctx.run(
            p, neg, "while True: pass", limits={**agreed, "cpu_s": 1, "wall_s": 20}
        )
        hog = await ctx.run(
            p,
            neg,
            "b = bytearray(4096 * 2**20); print(len(b))",
            limits={**agreed, "memory_mib": min(agreed["memory_mib"], 256)},
        )
        ran = (
            (slow, "limit_wall"),
            (big, "limit_output"),
            (spin, "limit_cpu"),
            (hog, "limit_memory"),
        )
        for task, reason in ran:
            env = await ctx.wait_state(p, task.task_id, {"failed"}, timeout=30)
            check_equal(env.body_value.get("reason"), reason, "the reason")
            result, receipt = await _outcome(ctx, p, neg, task)
            if reason == "limit_output":
                check_equal(result["body"].get("outputs", []), [], "outputs over the limit")
            if receipt is not None:
                usage = receipt["body"]["usage"]
                lim = task.envelope["body"]["limits"]
                check(usage["wall_s"] <= lim["wall_s"], f"usage.wall_s {usage['wall_s']}")


@s.case(
    23,
    "a task whose deadline passes is stopped and expired, reason deadline",
    "REQ-INV-043",
    "REQ-PRV-039",
    writes=True,
)
async def deadline(ctx: ProviderContext) -> None:
    """A provider MUST apply expire to a task that has not reached a terminal state when its clock
    reaches the task's deadline, and MUST stop the task ... with reason deadline."""
    async with ctx.deal() as (p, neg):
        task = await ctx.run(p, neg, SLOW, deadline=ctx.now() + 2)
        env = await ctx.wait_state(p, task.task_id, {"expired"}, timeout=15)
        check_equal(env.body_value.get("reason"), "deadline", "the reason")
        check(env.body_value.get("finished", 0) >= task.envelope["body"]["deadline"] - 1,
              "expired before its deadline")  # fmt: skip


@s.case(
    24,
    "withdrawing from an agreement cancels its unfinished tasks, reason provider",
    "REQ-PRV-039",
    "REQ-PRV-018",
    writes=True,
)
async def withdraw_stops_tasks(ctx: ProviderContext) -> None:
    """... MUST apply cancel with reason provider to, and stop, every unfinished task of an
    agreement that is withdrawn or settled. A withdrawal from an agreement MUST ... stop its
    unfinished tasks."""
    async with ctx.deal() as (p, neg):
        task = await ctx.run(p, neg, SLOW)
        await ctx.wait_state(p, task.task_id, {"running"})
        reply = await ctx.withdraw(p, neg)
        ctx.expect_ok(reply, what="the withdrawal")
        env = await ctx.status(p, task.task_id)
        check_equal(env.body_value.get("state"), "cancelled", "the task after the withdrawal")
        check_equal(env.body_value.get("reason"), "provider", "the reason")


# --- receipts and budget ------------------------------------------------------------------------


@s.case(
    25,
    "the receipts of an agreement are listed in issue order; never more than its price",
    "REQ-PRV-038",
    "REQ-INV-034",
    writes=True,
)
async def receipts(ctx: ProviderContext) -> None:
    """GET /v1/invoke/agreements/{agreement_id}/receipts MUST answer {"receipts": […]}, the receipt
    envelopes issued under the agreement in the order they were issued, and AGREEMENT_NOT_FOUND
    (4005) for an agreement the provider did not issue. A provider MUST NOT issue receipts for one
    agreement whose totals add up to more than the agreement's price total."""
    async with ctx.deal() as (p, neg):
        route = f"/v1/invoke/agreements/{neg.agreement_id}/receipts"
        empty = ctx.expect_ok(await ctx.get(route), what="the receipts before any task")
        check_equal(empty, {"receipts": []}, "the receipts of an agreement without tasks")
        got = []
        for i in range(2):
            task = await ctx.run(p, neg, f"print({i})")
            _, receipt = await _outcome(ctx, p, neg, task)
            if receipt is not None:
                got.append(receipt)
        listed = ctx.expect_ok(await ctx.get(route), what="the receipts")
        check_equal(listed, {"receipts": got}, "the receipts, in issue order")
        total = sum(Decimal(r["body"]["cost"]["total"]) for r in got)
        check(total <= Decimal(neg.terms["price"]["total"]), f"receipts total {total}")
    reply = await ctx.get(f"/v1/invoke/agreements/{secrets.token_urlsafe(18)}/receipts")
    ctx.expect_error(reply, 4005, what="an agreement not issued")


@s.case(
    26,
    "a task whose worst case would overspend the agreement's price is refused, rule budget",
    "REQ-PRV-031",
    "REQ-INV-034",
    writes=True,
)
async def budget(ctx: ProviderContext) -> None:
    """A provider MUST refuse with TASK_LIMITS_EXCEEDED (5003), field body.limits.wall_s, rule
    budget, a task whose worst-case cost ... added to the costs of the receipts already issued under
    the agreement and to the worst-case costs of its unfinished tasks would exceed the agreement's
    price total."""
    async with ctx.deal(duration_s=60) as (p, neg):
        terms = neg.terms
        wall = int(terms["limits"]["wall_s"])
        per_s = Decimal(terms["price"]["total"]) / Decimal(terms["price"]["items"][0]["billed_s"])
        task_cost = per_s * wall
        if task_cost <= 0:
            fail("precondition: the agreement is free; no task can overspend it")
        fits = int(Decimal(terms["price"]["total"]) / task_cost)
        if fits > 6:
            fail(
                f"precondition: the agreement pays for {fits} tasks at their wall_s limit "
                f"({wall} s); the case needs at most 6 (an offer without billing granularity)"
            )
        tasks = [await ctx.run(p, neg, SLOW) for _ in range(fits)]
        reply = (await ctx.submit(ctx.task_env(p, neg, SLOW))).reply
        ctx.expect_error(reply, 5003, field="body.limits.wall_s", rule="budget")
        for task in tasks:
            await ctx.cancel(task.task_id, ctx.cancel_env(p, task.task_id))


@s.case(
    27,
    "a task whose input cannot be had never runs: failed, no receipt",
    "REQ-INV-013",
    "REQ-PRV-035",
    writes=True,
)
async def input_unavailable(ctx: ProviderContext) -> None:
    """A provider MUST verify the content of an input with a sha256 before the task starts, and
    the task fails with reason input_digest when it does not match; an input with only a sha256
    names content the provider already holds ... receipt ... null for a task that never started."""
    async with ctx.deal() as (p, neg):
        missing = sha256_hex(secrets.token_bytes(16))
        task = await ctx.run(p, neg, inputs=[{"path": "in.txt", "sha256": missing}])
        env = await ctx.wait_state(p, task.task_id, {"failed"})
        check(
            env.body_value.get("reason") in ("input_fetch", "input_digest"),
            f"reason {env.body_value.get('reason')!r}, not input_fetch or input_digest",
        )
        check("started" not in env.body_value, "a task with an unavailable input started")
        await _outcome(ctx, p, neg, task, started=False)


@s.case(
    28,
    "an image whose content does not match its sha256 is never run",
    "REQ-INV-011",
    writes=True,
)
async def image_digest(ctx: ProviderContext) -> None:
    """... a provider MUST refuse to run an image whose content does not match a given sha256 (the
    task fails with reason image_digest)."""
    async with ctx.deal() as (p, neg):
        image = {"ref": f"cidconf/none-{secrets.token_hex(4)}:1", "sha256": "0" * 64}
        task = await ctx.run(p, neg, command=..., image=image)
        env = await ctx.wait_state(p, task.task_id, {"failed"})
        check(
            env.body_value.get("reason") in ("image_digest", "provider"),
            f"reason {env.body_value.get('reason')!r}",
        )


@s.case(
    29,
    "status reasons are the tokens of §9.3",
    "REQ-INV-024",
    writes=True,
    tags=("last",),
)
async def reason_tokens(ctx: ProviderContext) -> None:
    """The reason of a status SHOULD be one of the tokens exit, limit_cpu, ... requested or
    provider."""
    seen = set()
    for reply in ctx.seen.replies:
        if (
            reply.method != "GET"
            or reply.status != 200
            or reply.encoding is None
            or "/v1/invoke/tasks/" not in reply.path
        ):
            continue
        value = reply.value()
        if isinstance(value, dict) and isinstance(value.get("body"), dict):
            reason = value["body"].get("reason")
            if isinstance(reason, str):
                seen.add(reason)
    if not seen:
        await ctx.provider()
        fail("precondition: no status with a reason was seen (run the whole §9)")
    other = seen - STATUS_REASONS
    check(not other, f"reasons outside §9.3: {sorted(other)}")
