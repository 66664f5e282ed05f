"""``make demo`` runs the whole loop and cleans up after itself (issue 5).

The full demo runs as ``python -m cid.demo`` exactly as ``make demo`` does; the
short form runs in-process; a third run is stopped with SIGTERM while it keeps
its registry and providers running, and none of them may survive it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cid import demo

STEPS = ("[registry]", "[operator]", "[provider]", "[catalogue]", "[query]", "[negotiate]")


def _check_story(out: str) -> None:
    for step in STEPS:
        assert step in out, step
    # the cheapest general pool of the worked example, itemised
    assert "1. general.guizhou" in out
    assert re.search(r"cheapest: general\.guizhou at 30\.00 CNY = vcpu .* storage_gib", out)
    # the greenest accelerator pool within 10 ms of Tianjin
    assert "greenest: ascend910b.innermongolia (81% renewable)" in out
    # negotiation, invocation, live status, verified result and receipt
    assert "countersigned: 2 signatures" in out
    assert "[status] running" in out
    assert "[status] succeeded (exit 0)" in out
    assert "primes below 200000 = 17984" in out
    assert "[receipt] verified offline" in out
    assert "a receipt altered after signing" in out
    assert "demo complete" in out


def test_demo_runs_end_to_end_as_make_demo_does() -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "cid.demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _check_story(proc.stdout)
    for refusal in ("REPLAY_DETECTED", "TASK_LIMITS_EXCEEDED", "AGREEMENT_NOT_FOUND"):
        assert refusal in proc.stdout
    assert time.monotonic() - started < 60


def test_demo_quick_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main(["--quick"]) == 0
    out = capsys.readouterr().out
    _check_story(out)
    assert "[attack]" not in out


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline:
            pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_demo_stops_every_subprocess_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cid.demo", "--quick", "--keep"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    work = None
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 90
        for line in proc.stdout:
            m = re.search(r"files in (\S+);", line)
            if m:
                work = m.group(1)
                break
            assert time.monotonic() < deadline
        assert work is not None, "the demo did not reach --keep"
        assert len(_processes_mentioning(work)) == 4  # the registry and three providers
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 130
        assert _processes_mentioning(work) == []
        assert not os.path.exists(work)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
