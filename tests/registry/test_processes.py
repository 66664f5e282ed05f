"""Registry processes for real: SIGKILL crash loop (SQLite) and two processes over one PostgreSQL.

Bounded: the crash loop does at least 20 kills in well under a minute; set
``CID_CRASH_KILLS`` for a longer soak (``make soak``).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from pathlib import Path

import asyncpg
import pytest

from cid import examples as ex
from cid.envelope import sign_record
from cid.errors import CidError, UnavailableError
from cid.query import Query
from cid_registry.store.sqlite import SqliteStore

from .conftest import postgres_dsn
from .harness import Operator, RegistryClient, start_process, wait_until

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

KILLS = int(os.environ.get("CID_CRASH_KILLS", "20"))


def _offer(name: str, serial: int = 1):  # type: ignore[no-untyped-def]
    now = int(time.time())
    return sign_record(
        ex.guizhou_offer(),
        name=name,
        serial=serial,
        key=ex.provider_key(),
        nbf=now - 60,
        exp=now + 3600,
        ttl=60,
    )


async def test_sigkill_during_concurrent_registrations(tmp_path: Path) -> None:
    """Issue 3: every acknowledged write survives SIGKILL; the store passes its integrity check."""
    seed = int(os.environ.get("CID_CRASH_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    operator = Operator()
    db = tmp_path / "registry.sqlite3"
    acked: dict[str, int] = {}
    counter = 0
    proc = start_process(tmp_path, operator, str(db))
    async with RegistryClient(proc.url) as client:
        now = int(time.time())
        await client.submit(operator.delegate("ctyun", ex.provider_key(), now=now))
    kills = 0
    while kills < KILLS:
        stop = asyncio.Event()

        async def writer(client: RegistryClient, wid: int, stop: asyncio.Event = stop) -> None:
            nonlocal counter
            while not stop.is_set():
                counter += 1
                name = f"w{wid}-{counter}.ctyun"
                try:
                    result = await client.submit(_offer(name))
                except (UnavailableError, CidError):
                    return  # the server died under us: this write is unacknowledged
                acked[name] = result["serial"]

        async with RegistryClient(proc.url, timeout_s=5) as client:
            tasks = [asyncio.create_task(writer(client, i)) for i in range(4)]
            await asyncio.sleep(rng.uniform(0.05, 0.4))
            proc.kill()  # SIGKILL, mid-stream
            kills += 1
            stop.set()
            await asyncio.gather(*tasks)
        store = SqliteStore(str(db))
        await store.open()
        try:
            assert await store.integrity_check() == [], f"seed {seed}, kill {kills}"
            for name, serial in acked.items():
                row = await store.get(name, "offer")
                assert row is not None and row.serial == serial, f"lost {name} (seed {seed})"
        finally:
            await store.close()
        proc = start_process(tmp_path, operator, str(db))
    proc.stop()
    assert len(acked) > KILLS, "the writers should have made progress between kills"


async def test_two_processes_over_one_postgresql(tmp_path: Path) -> None:
    """Issue 3 / REQ-REG-012: a write through one process is on the other's reads and feed."""
    dsn = await postgres_dsn()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    url = f"{dsn}?schema={schema}"
    operator = Operator()
    a = start_process(tmp_path, operator, url, name="a")
    b = start_process(tmp_path, operator, url, name="b")
    try:
        async with RegistryClient(a.url) as ca, RegistryClient(b.url) as cb:
            now = int(time.time())
            await ca.submit(operator.delegate("ctyun", ex.provider_key(), now=now))
            head_b = (await cb.feed(0))["changes"][-1]["rseq"]
            # B learns the delegation through the feed, so it accepts B-side writes too
            await cb.submit(_offer("via-b.ctyun"))
            t0 = time.monotonic()
            accepted = await ca.submit(_offer("via-a.ctyun"))
            page = await cb.feed(head_b + 1, wait_s=5)
            assert [c["name"] for c in page["changes"]] == ["via-a.ctyun"]
            assert page["changes"][0]["rseq"] == accepted["rseq"]
            assert time.monotonic() - t0 < 1.0, "a change must reach the other process within 1 s"
            answer = await cb.resolve("via-a.ctyun")
            assert answer["records"][0]["header"]["sub"] == "via-a.ctyun"
            query = Query.model_validate({"class": "general", "limit": 10})

            async def searchable() -> bool:
                names = {m["name"] for m in (await cb.search(query))["results"]}
                return {"via-a.ctyun", "via-b.ctyun"} <= names

            await wait_until(searchable, timeout=2.0)
            # both processes extend one gap-free chain
            fa, fb = await ca.feed(0), await cb.feed(0)
            assert [c["rseq"] for c in fa["changes"]] == [1, 2, 3]
            assert fa["changes"] == fb["changes"]
            head_a, head_b2 = fa["head"]["body"], fb["head"]["body"]
            assert (head_a["rseq"], head_a["chain"]) == (head_b2["rseq"], head_b2["chain"])
    finally:
        a.stop()
        b.stop()
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()
