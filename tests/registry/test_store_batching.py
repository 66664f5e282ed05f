"""Batched and grouped commits answer exactly as one-by-one commits ([REQ-REG-011], [REQ-REG-013]).

The SQLite store commits concurrent callers' writes together (group commit)
and a batch's writes with a few multi-row statements; the PostgreSQL store
commits a batch in one transaction. Every test runs on both stores.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from cid.errors import UnavailableError
from cid_registry.store import Change, Conflict, Store
from cid_registry.store.sqlite import SqliteStore
from tests.registry.conftest import Backend
from tests.registry.test_store import put, raw_put, recompute, refresh, tombstone

pytestmark = pytest.mark.asyncio


def _summary(results: list[Change | Conflict | None]) -> list[object]:
    out: list[object] = []
    for r in results:
        if isinstance(r, Change):
            out.append(("change", r.rseq, r.name, r.op, r.serial))
        elif isinstance(r, Conflict):
            out.append(("conflict", r.reason, r.stored_serial))
        else:
            out.append(None)
    return out


def _mixed_writes() -> list:  # type: ignore[type-arg]
    a1, a2 = put("a.ctyun", 1), put("a.ctyun", 2, units=5)
    return [
        a1,
        put("b.ctyun", 1),
        a1,  # idempotent re-submission of what the batch just wrote
        a2,  # a later version of the same identity in the same batch
        put("a.ctyun", 1, units=9),  # rollback against the version written just before
        refresh(a2, 3),  # refresh of the version written in this batch
        refresh(a1, 4),  # stale: a1 is no longer the current version
        tombstone("b.ctyun", 2),
        put("b.ctyun", 2),  # rollback: the tombstone keeps serial 2
        tombstone("c.ctyun", 1),  # missing
        put("z.ctyun", 1, rtype="zone"),
        put("a.ctyun", 1, rtype="zone"),  # another type at the same name
    ]


async def test_batch_equals_one_by_one(backend: Backend, tmp_path: Path) -> None:
    writes = _mixed_writes()
    batched = await backend.open()
    one_by_one = SqliteStore(tmp_path / "one-by-one.db")
    await one_by_one.open()
    try:
        expected: list[Change | Conflict | None] = []
        for w in writes:
            try:
                expected.append(await one_by_one.commit(w))
            except Conflict as e:
                expected.append(e)
        got = await batched.commit_many(writes)
        assert _summary(got) == _summary(expected)
        changes = await batched.changes(0, 100)
        assert [c.chain for c in changes] == [c.chain for c in await one_by_one.changes(0, 100)]
        recompute(changes)
        assert await batched.head() == await one_by_one.head()
        assert (await batched.snapshot())[2] == (await one_by_one.snapshot())[2]
        assert await batched.integrity_check() == []
    finally:
        await one_by_one.close()


async def test_large_batch_of_new_names(store: Store) -> None:
    """More identities than one lookup statement takes."""
    writes = [raw_put(f"n{i}.ctyun", 1, f"payload {i}".encode()) for i in range(1100)]
    results = await store.commit_many(writes)
    assert [r.rseq for r in results if isinstance(r, Change)] == list(range(1, 1101))
    again = await store.commit_many(writes[::-1])
    assert again == [None] * 1100
    lower = [raw_put(f"n{i}.ctyun", 1, b"other") for i in range(0, 1100, 100)]
    assert all(
        isinstance(r, Conflict) and r.reason == "rollback" for r in await store.commit_many(lower)
    )
    recompute(await store.changes(0, 2000))
    assert (await store.count())["offer"] == 1100


async def test_concurrent_commits_each_answered_on_their_own(store: Store) -> None:
    """Many callers at once (grouped into shared transactions): each gets its own outcome."""
    first = [put(f"p{i}.ctyun", 2) for i in range(40)]
    await store.commit_many(first)
    # half of the callers roll back, half write a new version, some repeat what is held
    calls = []
    for i in range(40):
        if i % 3 == 0:
            calls.append(store.commit(put(f"p{i}.ctyun", 1)))
        elif i % 3 == 1:
            calls.append(store.commit(put(f"p{i}.ctyun", 3)))
        else:
            calls.append(store.commit(first[i]))
    results = await asyncio.gather(*calls, return_exceptions=True)
    for i, r in enumerate(results):
        if i % 3 == 0:
            assert isinstance(r, Conflict) and r.reason == "rollback" and r.stored_serial == 2
        elif i % 3 == 1:
            assert isinstance(r, Change) and r.serial == 3
        else:
            assert r is None
    rseqs = sorted(r.rseq for r in results if isinstance(r, Change))
    assert rseqs == list(range(41, 41 + len(rseqs)))
    recompute(await store.changes(0, 1000))
    assert await store.integrity_check() == []


async def test_sqlite_group_failure_fails_every_caller(tmp_path: Path) -> None:
    """A driver failure fails each caller of that transaction; none of its writes stays."""
    store = SqliteStore(tmp_path / "r.db", busy_timeout=0.2)
    await store.open()
    blocker = sqlite3.connect(tmp_path / "r.db", isolation_level=None, timeout=0)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        results = await asyncio.gather(
            *[store.commit(put(f"x{i}.ctyun")) for i in range(5)], return_exceptions=True
        )
        assert all(isinstance(r, UnavailableError) for r in results)
        blocker.execute("ROLLBACK")
        assert await store.head() == (0, (await store.head())[1])
        # the store works again afterwards
        assert isinstance(await store.commit(put("x0.ctyun")), Change)
    finally:
        blocker.close()
        await store.close()


async def test_sqlite_commit_after_close_is_unavailable(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "r.db")
    await store.open()
    await store.close()
    with pytest.raises(UnavailableError):
        await store.commit(put("x.ctyun"))


async def test_follower_applies_own_commits_and_reads_others(backend: Backend) -> None:
    """A process applies its own commits without reading them back, unless another
    process committed in between: then it reads the feed, in order, and both converge."""
    from cid import examples as ex
    from cid.envelope import sign_record
    from cid.identifier import Identifier
    from cid_registry.authority import Authority, Follower
    from cid_registry.index import SearchIndex

    root, provider = ex.root_key(), ex.provider_key()
    now = ex.EPOCH + 60

    async def process() -> tuple[Authority, SearchIndex, list[int]]:
        store = await backend.open()
        follower = Follower(store, [root.public_key], lambda: now)
        index = SearchIndex()
        seen: list[int] = []
        follower.on_change(index.apply_change)
        follower.on_change(lambda change, record: seen.append(change.rseq))
        await follower.catch_up()
        return Authority(store, follower, clock=lambda: now), index, seen

    (a, index_a, seen_a), (b, index_b, seen_b) = await process(), await process()

    def offer(name: str) -> object:
        return sign_record(
            ex.guizhou_offer(), name=name, serial=1, key=provider, nbf=now - 1, exp=now + 600
        ).envelope

    delegation = sign_record(
        ex.delegation(provider), name="ctyun", serial=1, key=root, nbf=now - 1, exp=now + 600
    )
    await a.submit(delegation.envelope)
    await a.submit_many([offer("a1.ctyun"), offer("a2.ctyun")])  # type: ignore[list-item]
    await b.submit_many([offer("b1.ctyun")])  # type: ignore[list-item]
    await a.submit(offer("a3.ctyun"))  # type: ignore[arg-type]
    await b.follower.catch_up()
    assert seen_a == [1, 2, 3, 4, 5] and seen_b == [1, 2, 3, 4, 5]
    names = {Identifier.parse(n) for n in ("a1.ctyun", "a2.ctyun", "b1.ctyun", "a3.ctyun")}
    for index in (index_a, index_b):
        assert set(index._classes) == names


async def test_sqlite_head_reads_are_shared_only_before_they_start(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "r.db")
    await store.open()
    try:
        # queued behind a commit: the callers share one read, which runs after both arrived
        commit = asyncio.ensure_future(store.commit(put("a.ctyun")))
        await asyncio.sleep(0)  # the commit is handed to the worker thread first
        first = asyncio.ensure_future(store.head())
        await asyncio.sleep(0)
        shared = store._head_read
        second = asyncio.ensure_future(store.head())
        await asyncio.sleep(0)
        assert store._head_read is shared
        change = await commit
        assert await first == await second == (1, change.chain)
        # once a read has run, a later caller reads again and sees later commits
        change2 = await store.commit(put("b.ctyun"))
        assert await store.head() == (2, change2.chain)
        assert store._head_read is None
    finally:
        await store.close()
