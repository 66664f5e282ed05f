"""The reference executor: tasks as real local processes with enforced limits (spec 9).

Theory of operation
-------------------
:class:`LocalProcessExecutor` runs each task as a real process tree, supervised
from two sides.

**The wrapper (in the task's session).** A task is started as ``python -I -S
-c _WRAPPER`` in a fresh working directory and a new session
(``start_new_session=True``: the wrapper leads the session and the process
group). The wrapper makes itself a *child subreaper*
(``prctl(PR_SET_CHILD_SUBREAPER)``), so every orphaned descendant is
re-parented to it, and asks for ``SIGTERM`` if the provider dies
(``PR_SET_PDEATHSIG``). It forks; the child sets the kernel limits and execs
the command as an argument vector, no shell ([REQ-INV-011]), with exactly the
task's environment and ``/dev/null`` as stdin. Command and environment reach
the wrapper as JSON on its stdin, never through its own environment (which
Python edits, PEP 538). The wrapper reaps with :func:`os.wait4` until the
command has exited, kills every remaining descendant (a grandchild that tries
to outlive the task dies with it), reaps them all, and writes one JSON report
on a private pipe: the command's wait status and
``getrusage(RUSAGE_CHILDREN)``, the kernel's exact CPU time of the whole tree
and the largest resident set of any of its processes. A wrapper rather than
``preexec_fn`` keeps Python from running between ``fork`` and ``exec`` in a
threaded provider, and gives per-task accounting that asyncio's child watcher
(``waitpid``, no rusage) cannot. ``SIGTERM`` to the wrapper means "stop the
task": it kills the tree and still reports.

**The kernel limits (per process, in the child before exec).**
``RLIMIT_CPU`` = ``cpu_s`` (soft, ``SIGXCPU``) and ``cpu_s + 1`` (hard,
``SIGKILL``); ``RLIMIT_AS`` = ``memory_mib`` MiB (an allocation that would
take the address space over the limit fails); ``RLIMIT_FSIZE`` =
``output_bytes + 1`` (no file the task writes can grow further: ``SIGXFSZ``
or ``EFBIG``, and a file cut there is over the limit when outputs are counted);
``RLIMIT_NOFILE`` 1024; ``RLIMIT_NPROC`` the user's current process count +
256 (a fork-bomb guard; per user, ignored for root); ``RLIMIT_CORE`` 0.

**The sampler (in the provider).** Kernel limits are per process, so a task
that forks could use ``n`` times its limits. Every :data:`SAMPLE_INTERVAL_S`
one scan of ``/proc`` (in a thread) finds each running task's process tree
(descendants of its wrapper; the subreaper makes the tree complete) and sums
its CPU time (live processes' own and reaped children's time, plus what the
wrapper has reaped) and resident memory (RSS; shared pages are counted once
per process, which errs on the side of the limit), records the largest
address space seen, and sums the size of ``out/`` plus captured
stdout/stderr. A total over ``cpu_s``, ``memory_mib`` or ``output_bytes``
stops the task. The wall clock is a timer: at ``min(start + wall_s,
deadline)`` the task is stopped.

**Stopping** is ``SIGTERM`` to the wrapper (which kills the whole tree and
reports), then after :data:`STOP_GRACE_S` ``SIGKILL`` to every process of the
task's session and process group - the fallback when the task killed its
wrapper.

**States and reasons** follow spec 9 exactly (:func:`stop_outcome`,
:func:`classify_end`):

* exit status 0, output within the limit → ``succeeded``;
* exit status ≠ 0 (killed by signal *n*: 128 + *n*) → ``failed``, ``exit``;
* CPU time reached (``SIGXCPU``, the hard rlimit's ``SIGKILL``, or the
  sampled total) → ``failed``, ``limit_cpu``;
* memory limit reached (below) → ``failed``, ``limit_memory``;
* ``wall_s`` reached → ``failed``, ``limit_wall``;
* output over ``output_bytes`` → ``failed``, ``limit_output``;
* ``deadline`` reached, queued or running → ``expired``, ``deadline`` ([REQ-INV-043]);
* :meth:`~LocalProcessExecutor.cancel` → ``cancelled``, ``requested``;
* :meth:`~LocalProcessExecutor.close` → ``cancelled``, ``provider``;
* an input not available or not placeable → ``failed``, ``input_fetch``;
* an input whose content does not match its ``sha256`` → ``failed``, ``input_digest``;
* an ``image`` (this executor runs none, and never runs a command outside its
  image), a command not in ``allowed_commands``, or the executor losing track
  of the task → ``failed``, ``provider``.

These are the tokens of [REQ-INV-024] and [REQ-INV-025]; failures before the
task starts (inputs, image, command) are ``queued → failed`` and carry no
usage.

**Memory detection.** The kernel does not record that it refused an
allocation, so ``limit_memory`` is reported when the task was stopped because
its sampled resident total went over ``memory_mib``, or when it ended
unsuccessfully (non-zero exit or fatal signal) *and* either its largest
sampled address space came within 10 % of the ``RLIMIT_AS`` cap or the last
4 KiB of its stderr carry an out-of-memory message (Python ``MemoryError``,
C++ ``std::bad_alloc``, ``Cannot allocate memory``, Rust ``memory allocation
of … failed``, Java ``OutOfMemoryError``, "out of memory"). A program that
swallows a refused allocation and exits without a word is reported ``exit``.

**Metering** ([REQ-INV-031], rounded up, then capped at the task's limits so
that a receipt never exceeds what the agreement allows, [REQ-INV-033]):
``cpu_s`` from the wrapper's ``RUSAGE_CHILDREN`` (the last sample when the
wrapper could not report); ``wall_s`` from spawn to exit on the monotonic
clock; ``memory_mib_s`` = peak memory × wall seconds, the peak being the
larger of the kernel's peak RSS of one process and the sampled peak total;
``output_bytes`` the sizes of the result files.

**Working directory and outputs.** Each task gets a fresh ``task-*``
directory under ``root``: ``HOME`` and the current directory, with ``out/``
(result files) and ``tmp/`` (``TMPDIR``). Inputs are placed at their paths
before the task starts. Result files are the regular files under ``out/``
(symbolic links and other special files are ignored, never followed), keyed
by their path relative to the working directory (``out/result.txt``); stdout,
stderr and result files together may not exceed ``output_bytes``
([REQ-INV-025]; a task over it has its outputs dropped and its streams
truncated). The directory stays until :meth:`~LocalProcessExecutor.release`
or :meth:`~LocalProcessExecutor.close`; the outcome (bytes in memory) stays
until ``release``.

**Environment** ([REQ-INV-014]): exactly ``PATH``
(``/usr/local/bin:/usr/bin:/bin``), ``HOME`` and ``PWD`` (the working
directory), ``TMPDIR`` and ``LANG`` (``C.UTF-8``), then the task's ``env``
(which may override them). Nothing of the provider's environment is passed.
A command whose ``argv[0]`` is ``python`` or ``python3`` runs the executor's
interpreter.

**Isolation is process-level**: tasks run with the provider's user id, so a
hostile task could signal its wrapper or other processes of that user. Run
the provider as a dedicated unprivileged user (as root, ``RLIMIT_NPROC`` is
ignored and a task could raise its own hard limits), inside a container or VM
for untrusted code. Disk use outside result files is bounded per file only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import os
import re
import shutil
import signal
import stat
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ..errors import TaskNotFoundError, TaskStateConflictError, UnavailableError
from ..invocation import (
    TASK_TERMINAL_STATES,
    Output,
    TaskDefinition,
    TaskEvent,
    TaskResult,
    TaskState,
    Usage,
    task_transition,
)
from ..negotiation import TaskLimits
from .backend import TaskOutcome, TaskProgress

__all__ = [
    "DEFAULT_PATH",
    "MIB",
    "OUTPUT_DIR",
    "REASON_CPU",
    "REASON_DEADLINE",
    "REASON_EXIT",
    "REASON_IMAGE",
    "REASON_INPUT_DIGEST",
    "REASON_INPUT_FETCH",
    "REASON_MEMORY",
    "REASON_OUTPUT",
    "REASON_PROVIDER",
    "REASON_REQUESTED",
    "REASON_WALL",
    "SAMPLE_INTERVAL_S",
    "STOP_GRACE_S",
    "EndFacts",
    "Fetch",
    "LocalProcessExecutor",
    "classify_end",
    "effective_limits",
    "kernel_limits",
    "meter",
    "out_of_memory_message",
    "resolve_argv",
    "run_window",
    "stop_outcome",
    "task_environment",
    "task_result",
]

# --- reason tokens (REQ-INV-024) -------------------------------------------------------------

REASON_EXIT: Final = "exit"
REASON_CPU: Final = "limit_cpu"
REASON_MEMORY: Final = "limit_memory"
REASON_WALL: Final = "limit_wall"
REASON_OUTPUT: Final = "limit_output"
REASON_INPUT_FETCH: Final = "input_fetch"
REASON_INPUT_DIGEST: Final = "input_digest"
REASON_DEADLINE: Final = "deadline"
REASON_REQUESTED: Final = "requested"
REASON_PROVIDER: Final = "provider"
REASON_IMAGE: Final = REASON_PROVIDER
"""This executor runs no images; spec 9 has no token for that, so: ``provider``."""

MIB: Final = 1 << 20
OUTPUT_DIR: Final = "out"
"""Result files are the regular files under this directory of the working directory."""
DEFAULT_PATH: Final = "/usr/local/bin:/usr/bin:/bin"
SAMPLE_INTERVAL_S: Final = 0.05
"""How often running tasks' process trees are sampled."""
STOP_GRACE_S: Final = 2.0
"""How long the wrapper has to kill the tree and report before the session is killed."""
STDERR_TAIL_BYTES: Final = 4096
MAX_OUTPUT_FILES: Final = 1024
"""At most this many result files (Table 9-7); more is ``limit_output``."""
NOFILE: Final = 1024
NPROC_HEADROOM: Final = 256
AS_NEAR_CAP: Final = 0.9
_PYTHON_NAMES: Final = frozenset({"python", "python3"})
_READ_CHUNK: Final = 1 << 16
_log = logging.getLogger(__name__)

Fetch = Callable[[str], Awaitable[bytes]]
"""Fetches an input by URL (the provider decides which URLs it may fetch)."""


# --- pure part: limits, windows, reasons, metering -------------------------------------------


def effective_limits(task: TaskLimits, given: TaskLimits) -> TaskLimits:
    """The limits enforced: each the smaller of the task's and the ones given to ``start``."""
    return TaskLimits(
        cpu_s=min(task.cpu_s, given.cpu_s),
        memory_mib=min(task.memory_mib, given.memory_mib),
        wall_s=min(task.wall_s, given.wall_s),
        output_bytes=min(task.output_bytes, given.output_bytes),
    )


def kernel_limits(limits: TaskLimits) -> dict[str, tuple[int, int]]:
    """The per-process resource limits (``resource.RLIMIT_*`` name → (soft, hard)).

    ``RLIMIT_NPROC`` is not here: it counts the user's processes, so the
    wrapper sets it relative to the count it finds.
    """
    memory = limits.memory_mib * MIB
    return {
        # REQ-INV-025: cpu_s; SIGXCPU at the soft limit, SIGKILL a second later.
        "RLIMIT_CPU": (limits.cpu_s, limits.cpu_s + 1),
        # REQ-INV-025: memory_mib; allocations over it fail.
        "RLIMIT_AS": (memory, memory),
        # REQ-INV-025: output_bytes. One byte more than the limit: a write that is cut
        # short (programs that ignore SIGXFSZ, like Python, get EFBIG) still leaves
        # a file over the limit for the final size check to see.
        "RLIMIT_FSIZE": (limits.output_bytes + 1, limits.output_bytes + 1),
        "RLIMIT_NOFILE": (NOFILE, NOFILE),
        "RLIMIT_CORE": (0, 0),
    }


def run_window(limits: TaskLimits, deadline: int, now: float) -> tuple[float, str]:
    """Seconds the task may run from ``now`` and the reason it is stopped then.

    The deadline wins a tie: at the deadline the task expires ([REQ-INV-043]);
    at ``wall_s`` it fails with ``limit_wall`` ([REQ-INV-025]).
    """
    to_deadline = deadline - now
    if to_deadline <= limits.wall_s:
        return max(0.0, to_deadline), REASON_DEADLINE
    return float(limits.wall_s), REASON_WALL


_STOPS: Final[Mapping[str, TaskState]] = {
    REASON_REQUESTED: TaskState.CANCELLED,
    REASON_PROVIDER: TaskState.CANCELLED,
    REASON_DEADLINE: TaskState.EXPIRED,
    REASON_CPU: TaskState.FAILED,
    REASON_MEMORY: TaskState.FAILED,
    REASON_WALL: TaskState.FAILED,
    REASON_OUTPUT: TaskState.FAILED,
}


def stop_outcome(cause: str) -> tuple[TaskState, str]:
    """The state and reason of a task the executor stopped for ``cause``.

    ``requested``/``provider`` → cancelled ([REQ-INV-022]); ``deadline`` →
    expired ([REQ-INV-043]); a limit → failed ([REQ-INV-025]).
    """
    return _STOPS[cause], cause


_OOM_MESSAGE: Final = re.compile(
    rb"MemoryError|std::bad_alloc|Cannot allocate memory|out of memory|"
    rb"memory allocation of \d+ bytes failed|OutOfMemoryError|failed to allocate",
    re.IGNORECASE,
)


def out_of_memory_message(stderr_tail: bytes) -> bool:
    """Whether the end of a task's stderr reports a refused allocation."""
    return _OOM_MESSAGE.search(stderr_tail) is not None


@dataclass(frozen=True, slots=True)
class EndFacts:
    """What is known about a task that ended without being stopped by the executor."""

    wait_status: int | None
    """The command's wait status from the wrapper; ``None`` when the wrapper did not report."""
    cpu_s: float
    limits: TaskLimits
    address_space_peak: int = 0
    """Largest address space of one process seen by the sampler, bytes."""
    stderr_tail: bytes = b""
    output_total: int = 0
    """stdout + stderr + result files, bytes."""
    too_many_outputs: bool = False


def classify_end(facts: EndFacts) -> tuple[TaskState, int | None, str | None]:
    """State, exit code and reason of a task that ended by itself ([REQ-INV-024], [REQ-INV-025]).

    The exit code is the command's exit status, or 128 + the signal that
    killed it (the shell's convention); ``None`` when unknown.
    """
    if facts.wait_status is None:
        return TaskState.FAILED, None, REASON_PROVIDER
    status, lim = facts.wait_status, facts.limits
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        code = 128 + sig
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and facts.cpu_s >= lim.cpu_s):
            return TaskState.FAILED, code, REASON_CPU
        if sig == signal.SIGXFSZ:
            return TaskState.FAILED, code, REASON_OUTPUT
    else:
        code = os.WEXITSTATUS(status)
    if code != 0:
        if facts.cpu_s >= lim.cpu_s:
            return TaskState.FAILED, code, REASON_CPU
        near_cap = facts.address_space_peak >= AS_NEAR_CAP * lim.memory_mib * MIB
        if near_cap or out_of_memory_message(facts.stderr_tail):
            return TaskState.FAILED, code, REASON_MEMORY
    if facts.output_total > lim.output_bytes or facts.too_many_outputs:
        return TaskState.FAILED, (code or None), REASON_OUTPUT
    if code != 0:
        return TaskState.FAILED, code, REASON_EXIT
    return TaskState.SUCCEEDED, 0, None


def _ceil(x: float) -> int:
    return max(0, math.ceil(x - 1e-9))


def meter(
    *,
    cpu_s: float,
    peak_memory_bytes: int,
    wall_s: float,
    output_bytes: int,
    limits: TaskLimits,
) -> Usage:
    """Usage of a task ([REQ-INV-031]): rounded up, capped at the task's limits ([REQ-INV-033])."""
    wall = min(max(1, _ceil(wall_s)), limits.wall_s)
    peak_mib = min(peak_memory_bytes / MIB, float(limits.memory_mib))
    return Usage(
        cpu_s=min(_ceil(cpu_s), limits.cpu_s),
        memory_mib_s=min(_ceil(peak_mib * wall_s), limits.memory_mib * wall),
        wall_s=wall,
        output_bytes=min(output_bytes, limits.output_bytes),
    )


def task_environment(env: Mapping[str, str], workdir: Path) -> dict[str, str]:
    """The task's environment: the platform variables, then the task's ``env`` ([REQ-INV-014])."""
    base = {
        "PATH": DEFAULT_PATH,
        "HOME": str(workdir),
        "PWD": str(workdir),
        "TMPDIR": str(workdir / "tmp"),
        "LANG": "C.UTF-8",
    }
    base.update(env)
    return base


def resolve_argv(command: Sequence[str], python: str) -> list[str]:
    """The argument vector to exec: ``python``/``python3`` name the executor's interpreter."""
    argv = list(command)
    if argv[0] in _PYTHON_NAMES:
        argv[0] = python
    return argv


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def task_result(task_id: str, outcome: TaskOutcome) -> TaskResult:
    """The content digests of an outcome ([REQ-INV-023])."""
    return TaskResult(
        task_id=task_id,
        outputs=[
            Output(path=path, sha256=_sha256(data), size_bytes=len(data))
            for path, data in sorted(outcome.outputs.items())
        ],
        stdout_sha256=_sha256(outcome.stdout),
        stderr_sha256=_sha256(outcome.stderr),
    )


_TERMINAL_EVENT: Final[Mapping[TaskState, TaskEvent]] = {
    TaskState.SUCCEEDED: TaskEvent.SUCCEED,
    TaskState.FAILED: TaskEvent.FAIL,
    TaskState.CANCELLED: TaskEvent.CANCEL,
    TaskState.EXPIRED: TaskEvent.EXPIRE,
}


# --- the wrapper (runs in the task's session) ------------------------------------------------

_WRAPPER: Final = r"""
import json, os, resource, signal, sys, time
cfg = json.loads(sys.stdin.buffer.read())
argv, env = cfg["argv"], cfg["env"]
null = os.open(os.devnull, os.O_RDONLY)
os.dup2(null, 0)
os.close(null)
report_fd = cfg["report_fd"]
os.set_inheritable(report_fd, False)
me = os.getpid()
state = {"stopping": False}

def descendants():
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/" + name + "/stat", "rb") as f:
                data = f.read()
            ppid = int(data[data.rindex(b")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    found, todo = [], [me]
    while todo:
        for c in children.get(todo.pop(), ()):
            found.append(c)
            todo.append(c)
    return found

def kill_all():
    for pid in descendants():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass

def on_stop(signum, frame):
    state["stopping"] = True
    kill_all()

signal.signal(signal.SIGTERM, on_stop)
try:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)                   # PR_SET_CHILD_SUBREAPER
    libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
except Exception:
    pass
if os.getppid() != cfg["parent"]:
    state["stopping"] = True

def user_processes():
    uid, n = os.getuid(), 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                n += os.stat("/proc/" + name).st_uid == uid
            except OSError:
                pass
    return n

nproc = user_processes() + cfg["nproc_headroom"]
child = -1 if state["stopping"] else os.fork()
if child == 0:
    try:
        for sig in (signal.SIGTERM, signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        limits = dict(cfg["rlimits"], RLIMIT_NPROC=[nproc, nproc])
        for name, (soft, hard) in limits.items():
            which = getattr(resource, name)
            cur_soft, cur_hard = resource.getrlimit(which)
            if cur_hard != resource.RLIM_INFINITY:
                hard = min(hard, cur_hard)
                soft = min(soft, hard)
            resource.setrlimit(which, (soft, hard))
        os.execvpe(argv[0], argv, env)
    except BaseException as e:
        try:
            os.write(2, ("cid: cannot run %r: %s\n" % (argv[0], e)).encode())
        finally:
            os._exit(127 if isinstance(e, FileNotFoundError) else 126)
status = None
if child > 0:
    if state["stopping"]:
        kill_all()
    while status is None:
        try:
            pid, st, _ = os.wait4(-1, 0)
        except ChildProcessError:
            break
        if pid == child:
            status = st
while True:
    kill_all()
    try:
        while os.wait4(-1, os.WNOHANG)[0] != 0:
            pass
    except ChildProcessError:
        break
    time.sleep(0.005)
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
os.write(report_fd, json.dumps({
    "status": status,
    "cpu_s": ru.ru_utime + ru.ru_stime,
    "maxrss_kib": ru.ru_maxrss,
    "stopped": state["stopping"],
}).encode())
"""


@dataclass(frozen=True, slots=True)
class _Report:
    status: int | None
    cpu_s: float
    maxrss_bytes: int


def _parse_report(data: bytes) -> _Report | None:
    try:
        value = json.loads(data)
        status = value["status"]
        return _Report(
            status=None if status is None else int(status),
            cpu_s=float(value["cpu_s"]),
            maxrss_bytes=int(value["maxrss_kib"]) * 1024,
        )
    except (ValueError, KeyError, TypeError):
        return None


# --- /proc sampling (runs in a thread) -------------------------------------------------------

_TICK_S: Final = 1.0 / os.sysconf("SC_CLK_TCK")
_PAGE: Final = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class _Proc:
    ppid: int
    pgrp: int
    session: int
    own_s: float
    children_s: float
    rss_bytes: int
    vsize_bytes: int


@dataclass(frozen=True, slots=True)
class _Sample:
    cpu_s: float
    rss_bytes: int
    vsize_peak: int
    out_bytes: int
    out_files: int


def _scan_proc() -> dict[int, _Proc]:
    procs: dict[int, _Proc] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
            rest = data[data.rindex(b")") + 2 :].split()
            procs[int(name)] = _Proc(
                ppid=int(rest[1]),
                pgrp=int(rest[2]),
                session=int(rest[3]),
                own_s=(int(rest[11]) + int(rest[12])) * _TICK_S,
                children_s=(int(rest[13]) + int(rest[14])) * _TICK_S,
                vsize_bytes=int(rest[20]),
                rss_bytes=int(rest[21]) * _PAGE,
            )
        except (OSError, ValueError, IndexError):
            continue
    return procs


def _tree(procs: Mapping[int, _Proc], root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, p in procs.items():
        children.setdefault(p.ppid, []).append(pid)
    found: list[int] = []
    todo = [root]
    while todo:
        for c in children.get(todo.pop(), ()):
            found.append(c)
            todo.append(c)
    return found


def _dir_usage(path: Path, max_files: int) -> tuple[int, int]:
    """Total size and count of regular files under ``path`` (stops counting past ``max_files``)."""
    total = files = 0
    for dirpath, _dirs, names in os.walk(path, followlinks=False):
        for name in names:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
                files += 1
                if files > max_files:
                    return total, files
    return total, files


def _sample(watched: Sequence[tuple[int, Path]]) -> dict[int, _Sample]:
    procs = _scan_proc()
    out: dict[int, _Sample] = {}
    for wrapper, out_dir in watched:
        me = procs.get(wrapper)
        tree = [procs[p] for p in _tree(procs, wrapper)]
        cpu = (me.children_s if me else 0.0) + sum(p.own_s + p.children_s for p in tree)
        size, files = _dir_usage(out_dir, MAX_OUTPUT_FILES)
        out[wrapper] = _Sample(
            cpu_s=cpu,
            rss_bytes=sum(p.rss_bytes for p in tree),
            vsize_peak=max((p.vsize_bytes for p in tree), default=0),
            out_bytes=size,
            out_files=files,
        )
    return out


def _kill_session(sid: int) -> None:
    """SIGKILL every process of the task's session or process group (the fallback)."""
    with contextlib.suppress(OSError):
        os.killpg(sid, signal.SIGKILL)
    for pid, p in _scan_proc().items():
        if sid in (p.session, p.pgrp) and pid != os.getpid():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _collect_outputs(workdir: Path, budget: int) -> tuple[dict[str, bytes], int, bool]:
    """Result files under ``out/`` (regular files only, never followed links).

    Returns the files (empty when they exceed ``budget``), their total size and
    whether there were too many.
    """
    root = workdir / OUTPUT_DIR
    found: list[tuple[str, Path, int]] = []
    for dirpath, _dirs, names in os.walk(root, followlinks=False):
        for name in names:
            path = Path(dirpath, name)
            try:
                st = os.lstat(path)
                rel = path.relative_to(workdir).as_posix()
                rel.encode("utf-8")
            except (OSError, ValueError, UnicodeEncodeError):
                continue
            if stat.S_ISREG(st.st_mode) and "\\" not in rel and len(rel) <= 1024:
                found.append((rel, path, st.st_size))
    total = sum(size for _, _, size in found)
    too_many = len(found) > MAX_OUTPUT_FILES
    if total > budget or too_many:
        return {}, total, too_many
    files: dict[str, bytes] = {}
    for rel, path, _ in found:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            files[rel] = f.read(budget + 1)
    return files, total, False


def _remove_tree(path: Path) -> None:
    def retry(func: Callable[..., Any], p: str, _exc: BaseException) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o700)
            func(p)

    if not path.exists():
        return
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=retry)
    else:
        shutil.rmtree(path, onerror=lambda f, p, e: retry(f, p, e[1]))


# --- the executor ----------------------------------------------------------------------------


@dataclass(eq=False)
class _Capture:
    """stdout and stderr, kept within the output budget, plus a stderr tail."""

    budget: int
    on_over: Callable[[], None]
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    tail: bytearray = field(default_factory=bytearray)
    total: int = 0

    def add(self, buf: bytearray, chunk: bytes, *, is_stderr: bool) -> None:
        room = self.budget - len(self.stdout) - len(self.stderr)
        buf += chunk[: max(0, room)]
        self.total += len(chunk)
        if is_stderr:
            self.tail += chunk
            del self.tail[:-STDERR_TAIL_BYTES]
        if self.total > self.budget:
            self.on_over()


@dataclass(eq=False)
class _Run:
    task_id: str
    task: TaskDefinition
    limits: TaskLimits
    workdir: Path
    history: list[TaskProgress] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    stop_cause: str | None = None
    outcome: TaskOutcome | None = None
    runner: asyncio.Task[None] | None = None
    pid: int | None = None
    capture: _Capture | None = None
    # sampled
    cpu_s: float = 0.0
    rss_peak: int = 0
    vsize_peak: int = 0

    @property
    def state(self) -> TaskState:
        return self.history[-1].state

    @property
    def terminal(self) -> bool:
        return self.state in TASK_TERMINAL_STATES

    def emit(self, progress: TaskProgress) -> None:
        self.history.append(progress)
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    def request_stop(self, cause: str) -> None:
        if self.stop_cause is None and not self.terminal:
            self.stop_cause = cause
            self.stopped.set()


class LocalProcessExecutor:
    """Runs tasks as local process trees with enforced limits (see the module docstring).

    Args:
        root: directory under which each task gets a fresh working directory
            (created if missing).
        clock: unix time now; the deadline and every reported timestamp use it.
        max_concurrent: tasks running at once; the others stay ``queued``.
        python: interpreter for the wrapper and for commands named ``python``/``python3``.
        allowed_commands: when given, the only ``argv[0]`` values accepted
            (as the task spells them); others fail with reason ``provider``.
        content: input content by SHA-256 (hex), e.g. outputs of earlier tasks.
        fetch: fetches an input by URL; without it, URL-only inputs fail
            with reason ``input_fetch``.

    Time: ``deadline`` is read against ``clock`` when a task is queued and when
    it starts, and becomes a monotonic timer from then on. ``TaskOutcome.started``
    is 0 for a task that never ran.

    Lifecycle: :meth:`start` queues a task (once per id: a second start with
    the same id is a no-op, also after :meth:`release`); :meth:`events` and
    :meth:`wait` follow it; :meth:`cancel` stops it; :meth:`release` forgets
    a finished task and removes its working directory; :meth:`close` stops
    every task (``cancelled``, reason ``provider``) and removes every working
    directory.
    """

    def __init__(
        self,
        root: Path,
        *,
        clock: Callable[[], float] = time.time,
        max_concurrent: int = os.cpu_count() or 1,
        python: str = sys.executable,
        allowed_commands: Sequence[str] | None = None,
        content: Mapping[str, bytes] | None = None,
        fetch: Fetch | None = None,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self._root = Path(root)
        self._clock = clock
        self._slots = asyncio.Semaphore(max_concurrent)
        self._python = python
        self._allowed = None if allowed_commands is None else frozenset(allowed_commands)
        self._content: Mapping[str, bytes] = content if content is not None else {}
        self._fetch = fetch
        self._runs: dict[str, _Run] = {}
        self._seen: set[str] = set()
        self._watched: dict[int, _Run] = {}
        self._sampler: asyncio.Task[None] | None = None
        self._closed = False

    # --- the Executor protocol ---------------------------------------------------------------

    async def start(self, task_id: str, task: TaskDefinition, limits: TaskLimits) -> None:
        """Queue the task; it runs at most once per ``task_id`` ([REQ-INV-004], [REQ-INV-005]).

        A second start with a known id does nothing. The enforced limits are
        the smaller of ``task.limits`` and ``limits`` (:func:`effective_limits`).

        Raises:
            UnavailableError: the executor is closed.
        """
        if self._closed:
            raise UnavailableError("the executor is closed")
        if task_id in self._seen:
            return
        self._seen.add(task_id)
        self._root.mkdir(parents=True, exist_ok=True, mode=0o700)
        workdir = Path(tempfile.mkdtemp(prefix="task-", dir=self._root))
        run = _Run(task_id, task, effective_limits(task.limits, limits), workdir)
        run.emit(TaskProgress(TaskState.QUEUED, self._now()))
        self._runs[task_id] = run
        run.runner = asyncio.create_task(self._run(run), name=f"cid-task-{task_id[:12]}")

    def events(self, task_id: str) -> AsyncIterator[TaskProgress]:
        """The task's state changes in order, from ``queued`` to its terminal state.

        Every listener sees the whole history first, then live changes; the
        iterator ends after the terminal state.

        Raises:
            TaskNotFoundError: no such task.
        """
        return self._follow(self._get(task_id))

    async def wait(self, task_id: str) -> TaskOutcome:
        """Wait for the task to end and return its outcome.

        Raises:
            TaskNotFoundError: no such task.
        """
        run = self._get(task_id)
        await run.done.wait()
        assert run.outcome is not None
        return run.outcome

    async def cancel(self, task_id: str) -> bool:
        """Stop the task (``cancelled``, reason ``requested``); ``False`` when it had ended.

        Returns as soon as the stop is requested; :meth:`wait` for the outcome.

        Raises:
            TaskNotFoundError: no such task.
        """
        run = self._get(task_id)
        if run.terminal:
            return False
        run.request_stop(REASON_REQUESTED)
        return True

    async def close(self) -> None:
        """Stop every task (``cancelled``, reason ``provider``) and remove working directories."""
        self._closed = True
        runs = list(self._runs.values())
        for run in runs:
            run.request_stop(REASON_PROVIDER)
        await asyncio.gather(*(r.runner for r in runs if r.runner), return_exceptions=True)
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)
        for run in runs:
            await asyncio.to_thread(_remove_tree, run.workdir)

    # --- beyond the protocol -----------------------------------------------------------------

    def workdir(self, task_id: str) -> Path:
        """The task's working directory (until :meth:`release` or :meth:`close`).

        Raises:
            TaskNotFoundError: no such task.
        """
        return self._get(task_id).workdir

    async def release(self, task_id: str) -> None:
        """Forget a finished task and remove its working directory.

        Raises:
            TaskNotFoundError: no such task.
            TaskStateConflictError: the task has not ended.
        """
        run = self._get(task_id)
        if not run.done.is_set():
            raise TaskStateConflictError(
                "the task has not ended", detail={"state": run.state.value, "event": "release"}
            )
        del self._runs[task_id]
        await asyncio.to_thread(_remove_tree, run.workdir)

    # --- internals ---------------------------------------------------------------------------

    def _now(self) -> int:
        return int(self._clock())

    def _get(self, task_id: str) -> _Run:
        run = self._runs.get(task_id)
        if run is None:
            raise TaskNotFoundError(f"no task {task_id!r}", field="task_id")
        return run

    async def _follow(self, run: _Run) -> AsyncIterator[TaskProgress]:
        seen = 0
        while True:
            changed = run.changed
            while seen < len(run.history):
                progress = run.history[seen]
                seen += 1
                yield progress
                if progress.state in TASK_TERMINAL_STATES:
                    return
            await changed.wait()

    def _finish(
        self,
        run: _Run,
        state: TaskState,
        reason: str | None,
        *,
        exit_code: int | None = None,
        stdout: bytes = b"",
        stderr: bytes = b"",
        outputs: Mapping[str, bytes] | None = None,
        usage: Usage | None = None,
        started: int = 0,
    ) -> None:
        # REQ-INV-040: only the transitions of Table 9-9.
        state = task_transition(run.state, _TERMINAL_EVENT[state])
        finished = max(self._now(), started)
        run.outcome = TaskOutcome(
            state=state,
            exit_code=exit_code,
            reason=reason,
            stdout=stdout,
            stderr=stderr,
            outputs=dict(outputs or {}),
            usage=usage,
            started=started,
            finished=finished,
        )
        run.emit(TaskProgress(state, finished, exit_code=exit_code, reason=reason))

    async def _run(self, run: _Run) -> None:
        try:
            await self._queued(run)
        except Exception:
            # Never leave a task non-terminal or its processes running, whatever broke.
            _log.exception("task %s: the executor failed", run.task_id)
            if run.pid is not None:
                _kill_session(run.pid)
            if not run.terminal:
                started = next((p.at for p in run.history if p.state is TaskState.RUNNING), 0)
                self._finish(run, TaskState.FAILED, REASON_PROVIDER, started=started)
        finally:
            self._watched.pop(run.pid or 0, None)
            run.done.set()

    def _refusal(self, task: TaskDefinition) -> str | None:
        # REQ-INV-011: an image cannot be honoured here; never run its command outside it.
        if task.image is not None or task.command is None:
            return REASON_IMAGE
        if self._allowed is not None and task.command[0] not in self._allowed:
            return REASON_PROVIDER
        return None

    async def _queued(self, run: _Run) -> None:
        refusal = self._refusal(run.task)
        if refusal is not None:
            self._finish(run, TaskState.FAILED, refusal)
            return
        remaining = run.task.deadline - self._clock()
        if remaining <= 0:
            self._finish(run, *stop_outcome(REASON_DEADLINE))  # REQ-INV-043
            return
        prepare = asyncio.create_task(self._prepare(run))
        stop = asyncio.create_task(run.stopped.wait())
        done, _ = await asyncio.wait(
            {prepare, stop}, timeout=max(0.0, remaining), return_when=asyncio.FIRST_COMPLETED
        )
        stop.cancel()
        if prepare not in done:
            prepare.cancel()
            await asyncio.gather(prepare, return_exceptions=True)
            if not prepare.cancelled() and prepare.exception() is None and prepare.result() is None:
                self._slots.release()  # it acquired the slot just before it was cancelled
            state, reason = stop_outcome(run.stop_cause or REASON_DEADLINE)
            self._finish(run, state, reason)  # REQ-INV-043: expire a queued task at its deadline
            return
        problem = prepare.result()
        if problem is not None:
            self._finish(run, TaskState.FAILED, problem)
            return
        try:
            if run.stop_cause is None and self._clock() >= run.task.deadline:
                run.request_stop(REASON_DEADLINE)
            if run.stop_cause is not None:
                self._finish(run, *stop_outcome(run.stop_cause))
                return
            await self._execute(run)
        finally:
            self._slots.release()

    async def _prepare(self, run: _Run) -> str | None:
        """Place the inputs, then take a slot; a reason token when an input fails."""
        for sub in (OUTPUT_DIR, "tmp"):
            (run.workdir / sub).mkdir(exist_ok=True)
        for item in run.task.inputs:
            data = self._content.get(item.sha256) if item.sha256 else None
            if data is None and item.url is not None and self._fetch is not None:
                try:
                    data = await self._fetch(str(item.url))
                except Exception:
                    return REASON_INPUT_FETCH
            if data is None:
                return REASON_INPUT_FETCH
            # REQ-INV-013: verify an input's content before the task starts.
            if item.sha256 is not None and _sha256(data) != item.sha256:
                return REASON_INPUT_DIGEST
            try:
                await asyncio.to_thread(_place, run.workdir, item.path, data)
            except OSError:
                return REASON_INPUT_FETCH
        await self._slots.acquire()
        return None

    async def _execute(self, run: _Run) -> None:
        assert run.task.command is not None
        loop = asyncio.get_running_loop()
        lim = run.limits
        argv = resolve_argv(run.task.command, self._python)
        report_r, report_w = os.pipe()
        config = {
            "argv": argv,
            "env": task_environment(run.task.env, run.workdir),
            "report_fd": report_w,
            "parent": os.getpid(),
            "rlimits": kernel_limits(lim),
            "nproc_headroom": NPROC_HEADROOM,
        }
        try:
            proc = await asyncio.create_subprocess_exec(
                self._python,
                "-I",
                "-S",
                "-c",
                _WRAPPER,
                cwd=run.workdir,
                env={},
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                pass_fds=(report_w,),
            )
        except BaseException:
            os.close(report_r)
            raise
        finally:
            os.close(report_w)
        t0 = loop.time()
        run.pid = proc.pid
        assert proc.stdin is not None
        # The task's argv and environment go to the wrapper on its stdin, never through
        # its own environment (Python would add LC_CTYPE to it: PEP 538).
        proc.stdin.write(json.dumps(config).encode())
        with contextlib.suppress(ConnectionError):
            await proc.stdin.drain()
        proc.stdin.close()
        started = self._now()
        run.emit(TaskProgress(task_transition(run.state, TaskEvent.START), started))
        capture = run.capture = _Capture(lim.output_bytes, lambda: run.request_stop(REASON_OUTPUT))
        assert proc.stdout is not None and proc.stderr is not None
        readers = [
            asyncio.create_task(_drain(proc.stdout, capture, capture.stdout, is_stderr=False)),
            asyncio.create_task(_drain(proc.stderr, capture, capture.stderr, is_stderr=True)),
        ]
        window, window_cause = run_window(lim, run.task.deadline, self._clock())
        timer = loop.call_later(window, run.request_stop, window_cause)
        self._watch(run)
        exited = asyncio.create_task(proc.wait())
        stop = asyncio.create_task(run.stopped.wait())
        try:
            await asyncio.wait({exited, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not exited.done():
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                await asyncio.wait({exited}, timeout=STOP_GRACE_S)
                if not exited.done():
                    _kill_session(proc.pid)
            await exited
        finally:
            timer.cancel()
            stop.cancel()
            self._watched.pop(proc.pid, None)
            if not exited.done():  # cancelled from outside: do not leave the tree running
                _kill_session(proc.pid)
            wall = loop.time() - t0
            report = _read_report(report_r)
            os.close(report_r)
        if report is None:
            _kill_session(proc.pid)  # the wrapper died: its orphans may be around
        _, pending = await asyncio.wait(readers, timeout=1.0)
        for reader in pending:
            reader.cancel()
        budget = max(0, lim.output_bytes - capture.total)
        outputs, out_total, too_many = await asyncio.to_thread(
            _collect_outputs, run.workdir, budget
        )
        cpu_s = report.cpu_s if report is not None else run.cpu_s
        reason: str | None
        if run.stop_cause is not None:
            state, reason = stop_outcome(run.stop_cause)
            exit_code = None
        else:
            facts = EndFacts(
                wait_status=report.status if report else None,
                cpu_s=cpu_s,
                limits=lim,
                address_space_peak=run.vsize_peak,
                stderr_tail=bytes(capture.tail),
                output_total=capture.total + out_total,
                too_many_outputs=too_many,
            )
            state, exit_code, reason = classify_end(facts)
        if reason == REASON_OUTPUT:
            outputs = {}
        usage = meter(
            cpu_s=cpu_s,
            peak_memory_bytes=max(run.rss_peak, report.maxrss_bytes if report else 0),
            wall_s=wall,
            output_bytes=sum(len(v) for v in outputs.values()),
            limits=lim,
        )
        self._finish(
            run,
            state,
            reason,
            exit_code=exit_code,
            stdout=bytes(capture.stdout),
            stderr=bytes(capture.stderr),
            outputs=outputs,
            usage=usage,
            started=started,
        )

    # --- sampling ----------------------------------------------------------------------------

    def _watch(self, run: _Run) -> None:
        assert run.pid is not None
        self._watched[run.pid] = run
        if self._sampler is None or self._sampler.done():
            self._sampler = asyncio.create_task(self._sample_loop(), name="cid-task-sampler")

    async def _sample_loop(self) -> None:
        while self._watched:
            watched = [(pid, run.workdir / OUTPUT_DIR) for pid, run in self._watched.items()]
            try:
                samples = await asyncio.to_thread(_sample, watched)
            except Exception:  # keep enforcing: one failed scan must not end sampling
                _log.exception("sampling task processes failed")
                samples = {}
            for pid, sample in samples.items():
                run = self._watched.get(pid)
                if run is not None:
                    self._check(run, sample)
            await asyncio.sleep(SAMPLE_INTERVAL_S)

    @staticmethod
    def _check(run: _Run, sample: _Sample) -> None:
        lim = run.limits
        run.cpu_s = max(run.cpu_s, sample.cpu_s)
        run.rss_peak = max(run.rss_peak, sample.rss_bytes)
        run.vsize_peak = max(run.vsize_peak, sample.vsize_peak)
        streams = run.capture.total if run.capture else 0
        # REQ-INV-025: the totals over the whole process tree.
        if sample.cpu_s > lim.cpu_s:
            run.request_stop(REASON_CPU)
        elif sample.rss_bytes > lim.memory_mib * MIB:
            run.request_stop(REASON_MEMORY)
        elif sample.out_bytes + streams > lim.output_bytes or sample.out_files > MAX_OUTPUT_FILES:
            run.request_stop(REASON_OUTPUT)


def _place(workdir: Path, rel: str, data: bytes) -> None:
    target = workdir / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _read_report(fd: int) -> _Report | None:
    os.set_blocking(fd, False)
    chunks: list[bytes] = []
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, _READ_CHUNK):
            chunks.append(chunk)
    return _parse_report(b"".join(chunks)) if chunks else None


async def _drain(
    stream: asyncio.StreamReader, capture: _Capture, buf: bytearray, *, is_stderr: bool
) -> None:
    while chunk := await stream.read(_READ_CHUNK):
        capture.add(buf, chunk, is_stderr=is_stderr)
