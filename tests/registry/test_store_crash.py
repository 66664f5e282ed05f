"""An acknowledged write survives ``kill -9`` of the SQLite store's process ([REQ-REG-010]).

A writer subprocess (``store_crash_writer.py``) commits puts in a loop and
acknowledges each on stdout once :meth:`commit` has returned. The test kills
it with SIGKILL at random moments (sometimes while it is still starting up,
opening the file or creating the schema), restarts it, and after every kill
re-opens the store and checks that every acknowledged write is there, with
its serial and its rseq, and that the store is intact.

What this cannot show: survival of a power loss (the OS page cache outlives a
killed process). That rests on ``synchronous=FULL``, asserted separately.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cid_registry.store.sqlite import SqliteStore

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

WRITER = Path(__file__).with_name("store_crash_writer.py")
KILLS = 24
BUDGET_S = 40.0
ACK = re.compile(r"^ACK (\S+) (\d+) (\d+)$")


@dataclass
class Acks:
    """Acknowledged writes: name -> (highest acked serial, its rseq)."""

    latest: dict[str, tuple[int, int]] = field(default_factory=dict)
    by_rseq: dict[int, tuple[str, int]] = field(default_factory=dict)

    def add(self, name: str, serial: int, rseq: int) -> None:
        assert rseq not in self.by_rseq, f"rseq {rseq} acknowledged twice"
        self.by_rseq[rseq] = (name, serial)
        if serial >= self.latest.get(name, (0, 0))[0]:
            self.latest[name] = (serial, rseq)


async def run_writer(path: Path, tag: str, acks: Acks, rng: random.Random, log: Path) -> int:
    """Start the writer, kill it at a random moment, return how many writes it acknowledged."""
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(WRITER),
            str(path),
            tag,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    assert proc.stdout is not None
    ready = asyncio.Event()
    acked = 0

    async def read() -> None:
        nonlocal acked
        async for raw in proc.stdout:  # type: ignore[union-attr]
            line = raw.decode()
            if not line.endswith("\n"):
                continue  # cut off by the kill: never acknowledged
            if line == "READY\n":
                ready.set()
            elif m := ACK.match(line.rstrip("\n")):
                acks.add(m[1], int(m[2]), int(m[3]))
                acked += 1

    reader = asyncio.create_task(read())
    if rng.random() < 0.2:
        # anywhere in start-up: interpreter, imports, opening, schema creation
        await asyncio.sleep(rng.uniform(0.0, 0.5))
    else:
        await asyncio.wait_for(ready.wait(), 15)
        await asyncio.sleep(rng.uniform(0.0, 0.12))
    if proc.returncode is not None:
        pytest.fail(f"writer exited by itself ({proc.returncode}): {log.read_text()}")
    proc.send_signal(signal.SIGKILL)
    assert await proc.wait() == -signal.SIGKILL
    await reader  # everything written before the kill is still in the pipe
    return acked


async def check(path: Path, acks: Acks) -> None:
    """Every acknowledged write is stored, and the store is intact."""
    if not path.exists():
        assert not acks.by_rseq
        return
    store = SqliteStore(path)
    await store.open()
    try:
        assert await store.integrity_check() == []
        head, _ = await store.head()
        assert head >= max(acks.by_rseq, default=0)
        changes = {c.rseq: c for c in await store.changes(0, head)}
        for rseq, (name, serial) in acks.by_rseq.items():
            change = changes[rseq]
            assert (change.name, change.serial, change.op) == (name, serial, "put")
        for name, (serial, rseq) in acks.latest.items():
            record = await store.get(name, "offer")
            assert record is not None, name
            assert not record.deleted
            # a later write of the same name may have committed without its ack
            assert (record.serial, record.rseq) >= (serial, rseq), name
    finally:
        await store.close()


async def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    seed = int(os.environ.get("CID_CRASH_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    path = tmp_path / "crash.db"
    acks = Acks()
    started = time.monotonic()
    rounds_with_acks = 0
    for kill in range(KILLS):
        assert time.monotonic() - started < BUDGET_S, f"too slow (seed {seed})"
        acked = await run_writer(path, f"g{kill}", acks, rng, tmp_path / f"writer{kill}.log")
        rounds_with_acks += acked > 0
        await check(path, acks)
    assert rounds_with_acks >= KILLS // 2, f"too few kills landed mid-write (seed {seed})"
    assert len(acks.by_rseq) > KILLS


async def test_durability_pragmas(tmp_path: Path) -> None:
    """WAL with synchronous=FULL: the WAL is fsynced at every commit (power loss)."""
    path = tmp_path / "r.db"
    store = SqliteStore(path)
    await store.open()
    try:
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        conn.close()
        # synchronous is per connection: read it on the store's own connection
        sync = await store._run(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
        fks = await store._run(lambda c: c.execute("PRAGMA foreign_keys").fetchone()[0])
        assert (sync, fks) == (2, 1)  # FULL, on
    finally:
        await store.close()
