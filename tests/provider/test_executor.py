"""The reference executor runs real processes with real limits (issue 5; spec 9, [REQ-INV-025]).

Every task here is a real process tree under a real kernel: limits are
enforced by ``setrlimit`` and the executor's sampler, and "the process is
gone" is checked with ``os.kill(pid, 0)``. The pure helpers (windows, reason
mapping, metering) are tested table-driven at the end.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from cid.errors import TaskNotFoundError, TaskStateConflictError, UnavailableError
from cid.invocation import TaskDefinition, TaskState, TaskStatus, check_result
from cid.negotiation import TaskLimits
from cid.provider.backend import Executor, TaskOutcome, TaskProgress
from cid.provider.executor import (
    MIB,
    EndFacts,
    LocalProcessExecutor,
    classify_end,
    effective_limits,
    kernel_limits,
    meter,
    out_of_memory_message,
    resolve_argv,
    run_window,
    stop_outcome,
    task_environment,
    task_result,
)

LIMITS = TaskLimits(cpu_s=10, memory_mib=256, wall_s=20, output_bytes=1_000_000)


def tid(name: str) -> str:
    """A task id shaped like the digest of a task envelope ([REQ-INV-004])."""
    digest = hashlib.sha256(name.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def task(
    command: list[str] | None,
    *,
    deadline: int | None = None,
    env: dict[str, str] | None = None,
    **limits: int,
) -> TaskDefinition:
    value: dict[str, Any] = {
        "agreement_id": "agree-00000000000001",
        "limits": LIMITS.model_copy(update=limits).to_value(),
        "deadline": deadline if deadline is not None else int(time.time()) + 600,
        "env": env or {},
    }
    if command is not None:
        value["command"] = command
    return TaskDefinition.model_validate(value)


def py(code: str, **kw: Any) -> TaskDefinition:
    return task(["python", "-c", code], **kw)


def status_of(task_id: str, outcome: TaskOutcome) -> TaskStatus:
    """The outcome as a status: it must have the shape Table 9-8 requires ([REQ-INV-021])."""
    return TaskStatus(
        task_id=task_id,
        state=outcome.state,
        started=outcome.started or None,
        finished=outcome.finished,
        exit_code=outcome.exit_code,
        reason=outcome.reason,
    )


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        await asyncio.sleep(0.01)


async def run(ex: LocalProcessExecutor, name: str, definition: TaskDefinition) -> TaskOutcome:
    await ex.start(tid(name), definition, definition.limits)
    outcome = await ex.wait(tid(name))
    status_of(tid(name), outcome)
    return outcome


async def reaches(ex: LocalProcessExecutor, name: str, state: TaskState) -> None:
    async for progress in ex.events(tid(name)):
        if progress.state == state:
            return
    raise AssertionError(f"{name} never reached {state}")


async def history(ex: LocalProcessExecutor, name: str) -> list[TaskProgress]:
    return [p async for p in ex.events(tid(name))]


@pytest_asyncio.fixture
async def ex(tmp_path: Path) -> AsyncIterator[LocalProcessExecutor]:
    executor = LocalProcessExecutor(tmp_path / "tasks")
    yield executor
    await executor.close()


# --- running and results -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_is_an_executor(ex: LocalProcessExecutor) -> None:
    assert isinstance(ex, Executor)


@pytest.mark.asyncio
async def test_success_captures_stdout_files_hashes_and_usage(ex: LocalProcessExecutor) -> None:
    code = (
        "import os\n"
        "print('hello')\n"
        "os.makedirs('out/sub')\n"
        "open('out/result.txt', 'w').write('42\\n')\n"
        "open('out/sub/data.bin', 'wb').write(bytes(range(256)))\n"
        "open('scratch.txt', 'w').write('not an output')\n"
        "os.symlink('/etc/passwd', 'out/link')\n"
    )
    outcome = await run(ex, "ok", py(code))
    assert (outcome.state, outcome.exit_code, outcome.reason) == ("succeeded", 0, None)
    assert outcome.stdout == b"hello\n" and outcome.stderr == b""
    # Result files: regular files under out/, keyed by their path in the working directory.
    assert outcome.outputs == {"out/result.txt": b"42\n", "out/sub/data.bin": bytes(range(256))}
    result = task_result(tid("ok"), outcome)
    assert result.stdout_sha256 == hashlib.sha256(b"hello\n").hexdigest()
    assert {o.path: (o.sha256, o.size_bytes) for o in result.outputs} == {
        "out/result.txt": (hashlib.sha256(b"42\n").hexdigest(), 3),
        "out/sub/data.bin": (hashlib.sha256(bytes(range(256))).hexdigest(), 256),
    }
    check_result(result, py(code))  # REQ-INV-023: within output_bytes
    # REQ-INV-031: metered, rounded up to whole units.
    u = outcome.usage
    assert u is not None
    assert (u.cpu_s, u.wall_s, u.output_bytes) == (1, 1, 259)
    assert 1 <= u.memory_mib_s <= 64
    assert outcome.finished >= outcome.started > 0
    states = [p.state for p in await history(ex, "ok")]
    assert states == ["queued", "running", "succeeded"]


@pytest.mark.asyncio
async def test_nonzero_exit_fails_with_its_code(ex: LocalProcessExecutor) -> None:
    outcome = await run(ex, "exit", py("import sys; sys.stderr.write('bad'); sys.exit(3)"))
    assert (outcome.state, outcome.exit_code, outcome.reason) == ("failed", 3, "exit")
    assert outcome.stderr == b"bad"
    assert outcome.usage is not None


@pytest.mark.asyncio
async def test_command_not_found_fails_like_a_shell(ex: LocalProcessExecutor) -> None:
    outcome = await run(ex, "missing", task(["cid-no-such-command"]))
    assert (outcome.state, outcome.exit_code, outcome.reason) == ("failed", 127, "exit")
    assert b"cid-no-such-command" in outcome.stderr


# --- limits (REQ-INV-025) ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_cpu_burner_is_stopped_limit_cpu(ex: LocalProcessExecutor) -> None:
    t0 = time.monotonic()
    outcome = await run(ex, "cpu", py("while True: pass", cpu_s=1))
    assert (outcome.state, outcome.reason) == ("failed", "limit_cpu")
    assert time.monotonic() - t0 < 5  # stopped: the burner would run forever
    assert outcome.usage is not None and outcome.usage.cpu_s == 1


@pytest.mark.asyncio
async def test_cpu_limit_counts_the_whole_tree(ex: LocalProcessExecutor) -> None:
    # Two burners of 0.7 s each stay under a per-process RLIMIT_CPU of 1 s; the sampler
    # sums the tree.
    code = (
        "import subprocess, sys\n"
        "burn = 'import time\\nt=time.process_time()\\nwhile time.process_time()-t<0.7: pass'\n"
        "ps = [subprocess.Popen([sys.executable, '-c', burn]) for _ in range(2)]\n"
        "[p.wait() for p in ps]\n"
        "subprocess.run([sys.executable, '-c', burn])\n"
    )
    outcome = await run(ex, "cpu-tree", py(code, cpu_s=1))
    assert (outcome.state, outcome.reason) == ("failed", "limit_cpu")


@pytest.mark.asyncio
async def test_memory_hog_fails_limit_memory(ex: LocalProcessExecutor) -> None:
    outcome = await run(ex, "mem", py("b = bytearray(500 << 20)", memory_mib=64))
    assert (outcome.state, outcome.reason) == ("failed", "limit_memory")
    assert b"MemoryError" in outcome.stderr
    u = outcome.usage
    assert u is not None and u.memory_mib_s <= 64 * u.wall_s  # REQ-INV-033


@pytest.mark.asyncio
async def test_memory_limit_counts_the_whole_tree(ex: LocalProcessExecutor) -> None:
    # Three children of 30 MiB each fit under a per-process cap of 64 MiB; together they do not.
    child = "b = bytearray(30 << 20); import time; time.sleep(30)"
    code = (
        "import subprocess, sys, time\n"
        f"ps = [subprocess.Popen([sys.executable, '-c', {child!r}]) for _ in range(3)]\n"
        "time.sleep(30)\n"
    )
    t0 = time.monotonic()
    outcome = await run(ex, "mem-tree", py(code, memory_mib=64))
    assert (outcome.state, outcome.reason) == ("failed", "limit_memory")
    assert time.monotonic() - t0 < 5  # stopped by the sampler, not after 30 s


@pytest.mark.asyncio
async def test_sleeper_past_wall_s_is_killed_limit_wall(ex: LocalProcessExecutor) -> None:
    t0 = time.monotonic()
    outcome = await run(ex, "wall", task(["sleep", "30"], wall_s=1))
    elapsed = time.monotonic() - t0
    assert (outcome.state, outcome.exit_code, outcome.reason) == ("failed", None, "limit_wall")
    assert 0.9 < elapsed < 5
    assert outcome.usage is not None and outcome.usage.wall_s == 1


@pytest.mark.asyncio
async def test_task_past_its_deadline_expires(tmp_path: Path) -> None:
    # A clock half a second before a whole-second deadline: the task has 0.5 s left.
    deadline = int(time.time()) + 100
    shift = deadline - 0.5 - time.time()
    ex = LocalProcessExecutor(tmp_path, clock=lambda: time.time() + shift)
    try:
        t0 = time.monotonic()
        outcome = await run(ex, "late", task(["sleep", "30"], deadline=deadline))
        assert (outcome.state, outcome.reason) == ("expired", "deadline")  # REQ-INV-043
        assert 0.4 < time.monotonic() - t0 < 5
        assert outcome.usage is not None
        states = [p.state for p in await history(ex, "late")]
        assert states == ["queued", "running", "expired"]
    finally:
        await ex.close()


@pytest.mark.asyncio
async def test_queued_task_past_its_deadline_expires_without_running(tmp_path: Path) -> None:
    ex = LocalProcessExecutor(tmp_path, clock=lambda: time.time() + 1000)
    try:
        outcome = await run(ex, "stale", task(["true"]))
        assert (outcome.state, outcome.reason, outcome.usage) == ("expired", "deadline", None)
        assert [p.state for p in await history(ex, "stale")] == ["queued", "expired"]
    finally:
        await ex.close()


@pytest.mark.parametrize(
    "code",
    [
        "print('x' * 5000)",
        "import sys; sys.stderr.write('x' * 5000)",
        "open('out/big', 'wb').write(b'x' * 5000)",
        "open('out/a', 'wb').write(b'x' * 600); open('out/b', 'wb').write(b'x' * 600)",
        "print('x' * 600); open('out/a', 'wb').write(b'x' * 600)",
    ],
    ids=["stdout", "stderr", "one-file", "two-files", "stdout-and-file"],
)
@pytest.mark.asyncio
async def test_output_over_output_bytes_fails_limit_output(
    ex: LocalProcessExecutor, code: str
) -> None:
    outcome = await run(ex, code, py(code, output_bytes=1000))
    assert (outcome.state, outcome.reason) == ("failed", "limit_output")
    assert outcome.outputs == {}
    assert len(outcome.stdout) + len(outcome.stderr) <= 1000


@pytest.mark.asyncio
async def test_endless_output_is_stopped(ex: LocalProcessExecutor) -> None:
    t0 = time.monotonic()
    outcome = await run(ex, "yes", task(["yes"], output_bytes=10_000))
    assert (outcome.state, outcome.reason) == ("failed", "limit_output")
    assert len(outcome.stdout) == 10_000
    assert time.monotonic() - t0 < 5


# --- cancel, process groups, environment -----------------------------------------------------


@pytest.mark.asyncio
async def test_cancel_running_task_kills_its_group(ex: LocalProcessExecutor) -> None:
    code = (
        "import json, os, subprocess, time\n"
        "kid = subprocess.Popen(['sleep', '30'])\n"
        "json.dump([os.getpid(), os.getpgid(0), kid.pid], open('pids.tmp', 'w'))\n"
        "os.rename('pids.tmp', 'pids')\n"
        "time.sleep(30)\n"
    )
    await ex.start(tid("cancel"), py(code), LIMITS)
    pids_file = ex.workdir(tid("cancel")) / "pids"
    await until(pids_file.exists)
    pid, pgid, kid = json.loads(pids_file.read_text())
    assert pgid != os.getpgid(0)  # its own process group (a new session)
    assert await ex.cancel(tid("cancel")) is True
    outcome = await ex.wait(tid("cancel"))
    status_of(tid("cancel"), outcome)
    assert (outcome.state, outcome.reason, outcome.exit_code) == ("cancelled", "requested", None)
    assert gone(pid) and gone(kid) and group_gone(pgid)
    assert await ex.cancel(tid("cancel")) is False  # already ended


@pytest.mark.asyncio
async def test_cancel_queued_task(tmp_path: Path) -> None:
    ex = LocalProcessExecutor(tmp_path, max_concurrent=1)
    try:
        await ex.start(tid("busy"), task(["sleep", "30"]), LIMITS)
        await ex.start(tid("waiting"), task(["true"]), LIMITS)
        await reaches(ex, "busy", TaskState.RUNNING)
        assert await ex.cancel(tid("waiting")) is True
        outcome = await ex.wait(tid("waiting"))
        assert (outcome.state, outcome.reason, outcome.usage) == ("cancelled", "requested", None)
        assert [p.state for p in await history(ex, "waiting")] == ["queued", "cancelled"]
        await ex.cancel(tid("busy"))
    finally:
        await ex.close()


@pytest.mark.asyncio
async def test_grandchildren_that_try_to_outlive_the_task_are_killed(
    ex: LocalProcessExecutor,
) -> None:
    # One grandchild stays in the group; one escapes it with a new session; one is a
    # double-forked daemon. All die when the command exits.
    code = (
        "import os, subprocess\n"
        "a = subprocess.Popen(['sleep', '30'])\n"
        "b = subprocess.Popen(['sleep', '30'], start_new_session=True)\n"
        "r, w = os.pipe()\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        os.write(w, str(os.getpid()).encode()); os.execvp('sleep', ['sleep', '30'])\n"
        "    os._exit(0)\n"
        "os.close(w)\n"
        "print(a.pid, b.pid, int(os.read(r, 20)))\n"
    )
    outcome = await run(ex, "orphans", py(code))
    assert outcome.state == "succeeded"
    pids = [int(p) for p in outcome.stdout.split()]
    assert len(pids) == 3
    assert all(gone(p) for p in pids)


@pytest.mark.asyncio
async def test_environment_is_minimal_and_does_not_leak(
    ex: LocalProcessExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CID_PROVIDER_SECRET", "hunter2")
    outcome = await run(ex, "env", task(["env"], env={"GREETING": "hi", "LANG": "en_GB.UTF-8"}))
    env = dict(line.split("=", 1) for line in outcome.stdout.decode().splitlines())
    workdir = str(ex.workdir(tid("env")))
    assert set(env) == {"PATH", "HOME", "PWD", "TMPDIR", "LANG", "GREETING"}  # REQ-INV-014
    assert (env["HOME"], env["TMPDIR"]) == (workdir, workdir + "/tmp")
    assert (env["GREETING"], env["LANG"]) == ("hi", "en_GB.UTF-8")
    assert b"hunter2" not in outcome.stdout


@pytest.mark.asyncio
async def test_start_twice_runs_once(ex: LocalProcessExecutor, tmp_path: Path) -> None:
    marker = tmp_path / "runs"
    definition = py(f"open({str(marker)!r}, 'a').write('x')")
    await asyncio.gather(*(ex.start(tid("once"), definition, LIMITS) for _ in range(3)))
    first = await ex.wait(tid("once"))
    await ex.start(tid("once"), definition, LIMITS)  # REQ-INV-004: the same task
    assert await ex.wait(tid("once")) is first
    assert marker.read_text() == "x"
    await ex.release(tid("once"))
    await ex.start(tid("once"), definition, LIMITS)  # still known: still not run again
    assert marker.read_text() == "x"


@pytest.mark.asyncio
async def test_listeners_see_the_same_ordered_events(ex: LocalProcessExecutor) -> None:
    await ex.start(tid("listen"), py("import time; time.sleep(0.2)"), LIMITS)
    listeners = [asyncio.create_task(history(ex, "listen")) for _ in range(3)]
    late = await history(ex, "listen")
    seen = [[p.state for p in h] for h in await asyncio.gather(*listeners)]
    assert seen == [["queued", "running", "succeeded"]] * 3
    assert [p.state for p in late] == ["queued", "running", "succeeded"]
    assert late[-1].exit_code == 0


@pytest.mark.asyncio
async def test_close_stops_tasks_and_removes_workdirs(tmp_path: Path) -> None:
    ex = LocalProcessExecutor(tmp_path / "tasks")
    await ex.start(tid("done"), py("open('out/r', 'w').write('r')"), LIMITS)
    await ex.wait(tid("done"))
    await ex.start(tid("long"), task(["sleep", "30"]), LIMITS)
    await until(lambda: ex.workdir(tid("long")).exists())
    assert len(list((tmp_path / "tasks").iterdir())) == 2
    await ex.close()
    outcome = await ex.wait(tid("long"))
    assert (outcome.state, outcome.reason) == ("cancelled", "provider")
    assert list((tmp_path / "tasks").iterdir()) == []
    with pytest.raises(UnavailableError):
        await ex.start(tid("after"), task(["true"]), LIMITS)


@pytest.mark.asyncio
async def test_release_removes_a_finished_task(ex: LocalProcessExecutor) -> None:
    await ex.start(tid("rel"), task(["sleep", "30"]), LIMITS)
    with pytest.raises(TaskStateConflictError):
        await ex.release(tid("rel"))
    await ex.cancel(tid("rel"))
    await ex.wait(tid("rel"))
    workdir = ex.workdir(tid("rel"))
    await ex.release(tid("rel"))
    assert not workdir.exists()
    with pytest.raises(TaskNotFoundError):
        await ex.wait(tid("rel"))


@pytest.mark.asyncio
async def test_unknown_task_is_task_not_found(ex: LocalProcessExecutor) -> None:
    with pytest.raises(TaskNotFoundError):
        await ex.wait(tid("nope"))
    with pytest.raises(TaskNotFoundError):
        await ex.cancel(tid("nope"))
    with pytest.raises(TaskNotFoundError):
        ex.events(tid("nope"))


# --- what this executor refuses before starting ----------------------------------------------


@pytest.mark.asyncio
async def test_image_is_not_supported(ex: LocalProcessExecutor) -> None:
    definition = TaskDefinition.model_validate(
        {**task(["true"]).to_value(), "image": {"ref": "docker.io/library/alpine:3"}}
    )
    outcome = await run(ex, "image", definition)
    assert (outcome.state, outcome.reason, outcome.usage) == ("failed", "provider", None)
    assert [p.state for p in await history(ex, "image")] == ["queued", "failed"]


@pytest.mark.asyncio
async def test_allowed_commands(tmp_path: Path) -> None:
    ex = LocalProcessExecutor(tmp_path, allowed_commands=["python"])
    try:
        assert (await run(ex, "allowed", py("pass"))).state == "succeeded"
        refused = await run(ex, "refused", task(["sh", "-c", "true"]))
        assert (refused.state, refused.reason) == ("failed", "provider")
    finally:
        await ex.close()


@pytest.mark.asyncio
async def test_inputs_by_content_hash_and_url(tmp_path: Path) -> None:
    data = b"input data\n"
    digest = hashlib.sha256(data).hexdigest()
    fetched: list[str] = []

    async def fetch(url: str) -> bytes:
        fetched.append(url)
        return b"from the web"

    ex = LocalProcessExecutor(tmp_path, content={digest: data}, fetch=fetch)

    def with_inputs(inputs: list[dict[str, str]]) -> TaskDefinition:
        code = "import sys; print(open(sys.argv[1]).read(), end='')"
        value = {**task(["python", "-c", code, "in/x.txt"]).to_value(), "inputs": inputs}
        return TaskDefinition.model_validate(value)

    try:
        ok = await run(ex, "in-hash", with_inputs([{"path": "in/x.txt", "sha256": digest}]))
        assert (ok.state, ok.stdout) == ("succeeded", data)
        url = await run(ex, "in-url", with_inputs([{"path": "in/x.txt", "url": "https://e.x/a"}]))
        assert (url.state, url.stdout, fetched) == ("succeeded", b"from the web", ["https://e.x/a"])
        # REQ-INV-013: verified before the task starts.
        bad = await run(
            ex,
            "in-bad",
            with_inputs([{"path": "in/x.txt", "url": "https://e.x/a", "sha256": "0" * 64}]),
        )
        assert (bad.state, bad.reason, bad.usage) == ("failed", "input_digest", None)
        missing = await run(ex, "in-missing", with_inputs([{"path": "x", "sha256": "1" * 64}]))
        assert (missing.state, missing.reason) == ("failed", "input_fetch")
    finally:
        await ex.close()


@pytest.mark.asyncio
async def test_url_input_without_a_fetcher_fails_input_fetch(ex: LocalProcessExecutor) -> None:
    value = {**task(["true"]).to_value(), "inputs": [{"path": "a", "url": "https://e.x/a"}]}
    outcome = await run(ex, "no-fetch", TaskDefinition.model_validate(value))
    assert (outcome.state, outcome.reason) == ("failed", "input_fetch")


@pytest.mark.asyncio
async def test_concurrency_is_bounded(tmp_path: Path) -> None:
    ex = LocalProcessExecutor(tmp_path, max_concurrent=1)
    try:
        for name in ("one", "two"):
            await ex.start(tid(name), py("import time; time.sleep(0.2)"), LIMITS)
        await reaches(ex, "one", TaskState.RUNNING)
        assert ex._runs[tid("two")].state == "queued"
        one, two = await ex.wait(tid("one")), await ex.wait(tid("two"))
        assert two.started >= one.finished - 1
    finally:
        await ex.close()


# --- the pure part ---------------------------------------------------------------------------

LIM = TaskLimits(cpu_s=2, memory_mib=100, wall_s=10, output_bytes=1000)


@pytest.mark.parametrize(
    ("deadline", "now", "expected"),
    [
        (1000, 900.0, (10.0, "limit_wall")),
        (1000, 990.0, (10.0, "deadline")),  # a tie goes to the deadline (REQ-INV-043)
        (1000, 995.5, (4.5, "deadline")),
        (1000, 1001.0, (0.0, "deadline")),
    ],
)
def test_run_window(deadline: int, now: float, expected: tuple[float, str]) -> None:
    assert run_window(LIM, deadline, now) == expected


def test_stop_outcomes_follow_spec_9() -> None:
    assert stop_outcome("requested") == ("cancelled", "requested")
    assert stop_outcome("provider") == ("cancelled", "provider")
    assert stop_outcome("deadline") == ("expired", "deadline")
    for limit in ("limit_cpu", "limit_memory", "limit_wall", "limit_output"):
        assert stop_outcome(limit) == ("failed", limit)


def exited(code: int) -> int:
    return code << 8


def killed(sig: int) -> int:
    return sig


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ({"wait_status": exited(0)}, ("succeeded", 0, None)),
        ({"wait_status": exited(2)}, ("failed", 2, "exit")),
        ({"wait_status": killed(signal.SIGSEGV)}, ("failed", 139, "exit")),
        ({"wait_status": killed(signal.SIGXCPU)}, ("failed", 152, "limit_cpu")),
        ({"wait_status": killed(signal.SIGKILL), "cpu_s": 2.0}, ("failed", 137, "limit_cpu")),
        ({"wait_status": killed(signal.SIGKILL), "cpu_s": 0.5}, ("failed", 137, "exit")),
        ({"wait_status": exited(1), "cpu_s": 2.01}, ("failed", 1, "limit_cpu")),
        ({"wait_status": killed(signal.SIGXFSZ)}, ("failed", 153, "limit_output")),
        (
            {"wait_status": exited(1), "stderr_tail": b"...\nMemoryError\n"},
            ("failed", 1, "limit_memory"),
        ),
        ({"wait_status": exited(0), "stderr_tail": b"MemoryError"}, ("succeeded", 0, None)),
        (
            {"wait_status": killed(signal.SIGABRT), "address_space_peak": 95 * MIB},
            ("failed", 134, "limit_memory"),
        ),
        ({"wait_status": exited(0), "output_total": 1001}, ("failed", None, "limit_output")),
        ({"wait_status": exited(0), "too_many_outputs": True}, ("failed", None, "limit_output")),
        ({"wait_status": None}, ("failed", None, "provider")),
    ],
)
def test_classify_end(facts: dict[str, Any], expected: tuple[str, int | None, str | None]) -> None:
    merged: dict[str, Any] = {"cpu_s": 0.1, "limits": LIM, **facts}
    assert classify_end(EndFacts(**merged)) == expected


@pytest.mark.parametrize(
    "tail",
    [
        b"MemoryError",
        b"terminate called after throwing an instance of 'std::bad_alloc'",
        b"memory allocation of 1048576 bytes failed",
        b"fatal error: runtime: out of memory",
        b"java.lang.OutOfMemoryError: Java heap space",
        b"malloc: Cannot allocate memory",
    ],
)
def test_out_of_memory_messages(tail: bytes) -> None:
    assert out_of_memory_message(tail)
    assert not out_of_memory_message(b"Segmentation fault")


def test_meter_rounds_up_and_caps_at_the_limits() -> None:
    u = meter(cpu_s=0.01, peak_memory_bytes=10 * MIB, wall_s=0.2, output_bytes=5, limits=LIM)
    assert (u.cpu_s, u.memory_mib_s, u.wall_s, u.output_bytes) == (1, 2, 1, 5)
    u = meter(cpu_s=5.5, peak_memory_bytes=500 * MIB, wall_s=10.4, output_bytes=9999, limits=LIM)
    assert (u.cpu_s, u.wall_s, u.output_bytes) == (2, 10, 1000)
    assert u.memory_mib_s == 100 * 10  # REQ-INV-033: never above memory_mib × wall_s
    u = meter(cpu_s=1.0, peak_memory_bytes=MIB, wall_s=3.0, output_bytes=0, limits=LIM)
    assert (u.cpu_s, u.memory_mib_s, u.wall_s) == (1, 3, 3)


def test_kernel_limits() -> None:
    assert kernel_limits(LIM) == {
        "RLIMIT_CPU": (2, 3),
        "RLIMIT_AS": (100 * MIB, 100 * MIB),
        "RLIMIT_FSIZE": (1001, 1001),
        "RLIMIT_NOFILE": (1024, 1024),
        "RLIMIT_CORE": (0, 0),
    }


def test_effective_limits_take_the_smaller() -> None:
    other = TaskLimits(cpu_s=1, memory_mib=200, wall_s=5, output_bytes=2000)
    assert effective_limits(LIM, other) == TaskLimits(
        cpu_s=1, memory_mib=100, wall_s=5, output_bytes=1000
    )


def test_environment_and_argv() -> None:
    env = task_environment({"PATH": "/opt/bin", "X": "1"}, Path("/w"))
    assert env == {"PATH": "/opt/bin", "HOME": "/w", "PWD": "/w", "TMPDIR": "/w/tmp"} | {
        "LANG": "C.UTF-8",
        "X": "1",
    }
    assert resolve_argv(["python3", "-V"], "/usr/bin/python3.11") == ["/usr/bin/python3.11", "-V"]
    assert resolve_argv(["sh", "python"], "/p") == ["sh", "python"]
    assert math.isclose(run_window(LIM, 2000, 1999.75)[0], 0.25)
