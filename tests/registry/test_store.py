"""The registry stores' behaviour, alike for SQLite and PostgreSQL ([REQ-REG-010], [REQ-REG-011]).

Every test taking ``store`` or ``backend`` runs once per store; the PostgreSQL
run uses a fresh schema (see ``conftest.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from cid import examples as ex
from cid.envelope import Envelope, seal, sign_record
from cid.errors import InternalError, UnavailableError
from cid.feed import CHAIN_ZERO, chain_step
from cid.identifier import Identifier
from cid.record import RefreshBody, TombstoneBody
from cid.signing import b64url_encode
from cid_registry.store import Change, Conflict, Store, StoredRecord, Write, open_store, rname_of
from cid_registry.store import postgres as postgres_store
from cid_registry.store import sqlite as sqlite_store
from cid_registry.store.postgres import PostgresStore
from cid_registry.store.sqlite import SqliteStore
from tests.registry.conftest import Backend

pytestmark = pytest.mark.asyncio

NOW = ex.EPOCH + 60
EXP = ex.EPOCH + 3600

# --- realistic writes: signed envelopes from cid.examples ----------------------------------

_KEY = ex.provider_key()


def _write(env: Envelope, *, op: str, rtype: str, digest: str | None = None) -> Write:
    name = env.header.sub
    return Write(
        name=name.to_text(),
        rname=rname_of(name),
        rtype=rtype,
        op=op,  # type: ignore[arg-type]
        serial=env.header.serial,
        digest=env.digest() if digest is None else digest,
        envelope=env.encode("msgpack"),
        expires=env.header.exp,
        at=NOW,
    )


def put(
    name: str, serial: int = 1, *, rtype: str = "offer", exp: int = EXP, units: int = 100
) -> Write:
    """A signed record of ``rtype`` at ``name`` (``units`` varies an offer's content)."""
    body: Any
    if rtype == "offer":
        body = ex.guizhou_offer(units_free=units)
    elif rtype == "zone":
        body = ex.zone(_KEY, display_name=f"Zone {units}")
    elif rtype == "delegation":
        body = ex.delegation(ex.second_provider_key())
    else:
        raise ValueError(rtype)
    rec = sign_record(body, name=name, serial=serial, key=_KEY, nbf=ex.EPOCH, exp=exp, ttl=300)
    return _write(rec.envelope, op="put", rtype=rtype)


def refresh(base: Write, serial: int, *, exp: int = EXP + 3600, units: int = 7) -> Write:
    """A refresh of the offer version ``base`` ([REQ-REC-060])."""
    env = seal(
        RefreshBody(base=base.digest, units_free=units),
        typ="cid.record.refresh",
        sub=base.name,
        serial=serial,
        key=_KEY,
        nbf=ex.EPOCH,
        exp=exp,
    )
    return _write(env, op="refresh", rtype=base.rtype, digest=base.digest)


def tombstone(name: str, serial: int, *, rtype: str = "offer") -> Write:
    """Deletion of ``(name, rtype)`` ([REQ-REC-050])."""
    rec = sign_record(
        TombstoneBody(target=rtype),  # type: ignore[arg-type]
        name=name,
        serial=serial,
        key=_KEY,
        nbf=ex.EPOCH,
        exp=EXP,
    )
    return _write(rec.envelope, op="delete", rtype=rtype)


def raw_put(name: str, serial: int, payload: bytes, *, rtype: str = "offer") -> Write:
    """A put with arbitrary envelope bytes: the store does not parse them."""
    ident = Identifier.parse(name)
    return Write(
        name=ident.to_text(),
        rname=rname_of(ident),
        rtype=rtype,
        op="put",
        serial=serial,
        digest=b64url_encode(hashlib.sha256(payload).digest()),
        envelope=payload,
        expires=EXP,
        at=NOW,
    )


async def committed(store: Store, *writes: Write) -> list[Change]:
    """Commit ``writes`` in order; every one must produce a change."""
    out = []
    for w in writes:
        change = await store.commit(w)
        assert change is not None, w
        out.append(change)
    return out


async def conflict(store: Store, write: Write) -> Conflict:
    with pytest.raises(Conflict) as info:
        await store.commit(write)
    return info.value


def recompute(changes: list[Change]) -> str:
    """The chain after ``changes``, computed independently of the store ([REQ-FEED-001])."""
    chain = CHAIN_ZERO
    for expected_rseq, change in enumerate(changes, start=1):
        assert change.rseq == expected_rseq
        chain = chain_step(chain, change.rseq, change.envelope)
        assert change.chain == chain, change.rseq
    return chain


# --- empty store, put / get ----------------------------------------------------------------


async def test_empty_store(store: Store) -> None:
    assert await store.head() == (0, CHAIN_ZERO)
    assert await store.changes(0, 100) == []
    assert await store.count() == {}
    assert await store.get("ctyun", "zone") is None
    assert await store.at_name("ctyun") == []
    assert await store.snapshot() == (0, CHAIN_ZERO, [])
    assert [r async for r in store.live_records()] == []
    assert await store.integrity_check() == []


async def test_put_get_at_name(store: Store) -> None:
    offer = put("gz-pool.ctyun", 3)
    zone = put("gz-pool.ctyun", 1, rtype="zone")
    change = await store.commit(offer)
    assert change == Change(
        rseq=1,
        name="gz-pool.ctyun",
        rtype="offer",
        op="put",
        serial=3,
        envelope=offer.envelope,
        chain=chain_step(CHAIN_ZERO, 1, offer.envelope),
        at=NOW,
    )
    await committed(store, zone)
    got = await store.get("gz-pool.ctyun", "offer")
    assert got == StoredRecord(
        name="gz-pool.ctyun",
        rtype="offer",
        serial=3,
        digest=offer.digest,
        envelope=offer.envelope,
        expires=EXP,
        refresh=None,
        deleted=False,
        rseq=1,
    )
    assert [(r.rtype, r.rseq) for r in await store.at_name("gz-pool.ctyun")] == [
        ("offer", 1),
        ("zone", 2),
    ]
    assert await store.at_name("ctyun") == []
    assert await store.get("gz-pool.ctyun", "delegation") is None


async def test_idempotent_reput_writes_nothing(store: Store) -> None:
    """REQ-REG-011: re-submitting exactly the stored version is a success that writes nothing."""
    offer = put("gz-pool.ctyun", 2)
    await committed(store, offer)
    head = await store.head()
    assert await store.commit(offer) is None
    assert await store.head() == head
    assert len(await store.changes(0, 10)) == 1


async def test_higher_serial_replaces(store: Store) -> None:
    await committed(store, put("gz-pool.ctyun", 1, units=1))
    newer = put("gz-pool.ctyun", 5, units=2, exp=EXP + 60)
    await committed(store, newer)
    got = await store.get("gz-pool.ctyun", "offer")
    assert got is not None
    assert (got.serial, got.digest, got.envelope, got.expires, got.rseq) == (
        5,
        newer.digest,
        newer.envelope,
        EXP + 60,
        2,
    )


async def test_rollback_lower_serial(store: Store) -> None:
    """REQ-SIG-032: a serial below the stored one is refused, with the stored serial."""
    await committed(store, put("gz-pool.ctyun", 5))
    err = await conflict(store, put("gz-pool.ctyun", 4))
    assert (err.reason, err.stored_serial) == ("rollback", 5)
    assert (await store.head())[0] == 1


async def test_rollback_equal_serial_other_content(store: Store) -> None:
    await committed(store, put("gz-pool.ctyun", 5, units=1))
    err = await conflict(store, put("gz-pool.ctyun", 5, units=2))
    assert (err.reason, err.stored_serial) == ("rollback", 5)
    got = await store.get("gz-pool.ctyun", "offer")
    assert got is not None and got.digest == put("gz-pool.ctyun", 5, units=1).digest


# --- refresh -------------------------------------------------------------------------------


async def test_refresh(store: Store) -> None:
    """REQ-REC-060: a refresh moves serial and expiry; the offer version stays."""
    offer = put("gz-pool.ctyun", 1)
    fresh = refresh(offer, 2, exp=EXP + 7200)
    await committed(store, offer)
    (change,) = await committed(store, fresh)
    assert (change.op, change.serial, change.envelope) == ("refresh", 2, fresh.envelope)
    got = await store.get("gz-pool.ctyun", "offer")
    assert got == StoredRecord(
        name="gz-pool.ctyun",
        rtype="offer",
        serial=2,
        digest=offer.digest,
        envelope=offer.envelope,
        expires=EXP + 7200,
        refresh=fresh.envelope,
        deleted=False,
        rseq=2,
    )
    assert await store.commit(fresh) is None  # identical re-submission
    await committed(store, refresh(offer, 3, units=1))
    # a new offer version drops the refresh
    await committed(store, put("gz-pool.ctyun", 4))
    got = await store.get("gz-pool.ctyun", "offer")
    assert got is not None and (got.serial, got.refresh, got.expires) == (4, None, EXP)
    assert await store.integrity_check() == []


async def test_refresh_of_stale_version(store: Store) -> None:
    old = put("gz-pool.ctyun", 1, units=1)
    await committed(store, old)
    err = await conflict(store, refresh(put("gz-pool.ctyun", 1, units=9), 2))
    assert (err.reason, err.stored_serial) == ("stale_refresh", 1)
    await committed(store, put("gz-pool.ctyun", 2, units=2))
    err = await conflict(store, refresh(old, 3))  # replayed onto the next version
    assert err.reason == "stale_refresh"


async def test_refresh_of_missing_record(store: Store) -> None:
    offer = put("gz-pool.ctyun", 1)
    assert (await conflict(store, refresh(offer, 2))).reason == "missing"
    zone = put("ctyun", 1, rtype="zone")
    await committed(store, zone)
    assert (await conflict(store, refresh(zone, 2))).reason == "missing"  # not an offer
    await committed(store, offer, tombstone("gz-pool.ctyun", 2))
    err = await conflict(store, refresh(offer, 3))
    assert (err.reason, err.stored_serial) == ("missing", 2)


async def test_refresh_rollback(store: Store) -> None:
    offer = put("gz-pool.ctyun", 5)
    await committed(store, offer)
    err = await conflict(store, refresh(offer, 5))  # the offer's own serial
    assert (err.reason, err.stored_serial) == ("rollback", 5)
    assert (await conflict(store, refresh(offer, 4))).reason == "rollback"
    await committed(store, refresh(offer, 6, units=1))
    err = await conflict(store, refresh(offer, 6, units=2))  # same serial, other content
    assert (err.reason, err.stored_serial) == ("rollback", 6)


# --- delete --------------------------------------------------------------------------------


async def test_delete_keeps_a_tombstone(store: Store) -> None:
    """REQ-REC-050, REQ-SIG-032: a deleted record stays as a tombstone; older serials stay out."""
    v1, v2 = put("gz-pool.ctyun", 1), put("gz-pool.ctyun", 2, units=2)
    tomb = tombstone("gz-pool.ctyun", 3)
    await committed(store, v1, v2)
    (change,) = await committed(store, tomb)
    assert (change.op, change.serial, change.envelope) == ("delete", 3, tomb.envelope)
    got = await store.get("gz-pool.ctyun", "offer")
    assert got is not None
    assert (got.deleted, got.serial, got.envelope, got.digest, got.refresh) == (
        True,
        3,
        tomb.envelope,
        tomb.digest,
        None,
    )
    assert await store.at_name("gz-pool.ctyun") == []
    assert await store.count() == {}
    assert await store.commit(tomb) is None  # identical re-submission of the tombstone
    for stale in (v1, v2, put("gz-pool.ctyun", 3)):
        err = await conflict(store, stale)
        assert (err.reason, err.stored_serial) == ("rollback", 3)
    err = await conflict(store, tombstone("gz-pool.ctyun", 4))  # already deleted
    assert (err.reason, err.stored_serial) == ("missing", 3)
    assert (await store.head())[0] == 3
    # a newer version brings it back
    await committed(store, put("gz-pool.ctyun", 5))
    got = await store.get("gz-pool.ctyun", "offer")
    assert got is not None and (got.deleted, got.serial) == (False, 5)
    assert await store.integrity_check() == []


async def test_delete_refusals(store: Store) -> None:
    err = await conflict(store, tombstone("gz-pool.ctyun", 1))
    assert (err.reason, err.stored_serial) == ("missing", None)
    await committed(store, put("gz-pool.ctyun", 4))
    for serial in (3, 4):
        err = await conflict(store, tombstone("gz-pool.ctyun", serial))
        assert (err.reason, err.stored_serial) == ("rollback", 4)
    assert (await conflict(store, tombstone("gz-pool.ctyun", 5, rtype="zone"))).reason == (
        "missing"
    )


# --- listing -------------------------------------------------------------------------------

TREE = [
    ("ctyun", "zone"),
    ("ctyun", "delegation"),
    ("gz.ctyun", "offer"),
    ("a100.tj.ctyun", "offer"),
    ("tj.ctyun", "offer"),
    ("tj.ctyun", "zone"),
    ("b.ctyun", "offer"),
    ("a-b.ctyun", "offer"),
    ("a.ctyun", "offer"),
    ("天津.ctyun", "offer"),
    ("ctyunx", "zone"),
    ("pool.ctyunx", "offer"),
    ("aliyun", "zone"),
    ("pool.aliyun", "offer"),
]


def cursor_of(record: StoredRecord) -> str:
    return rname_of(Identifier.parse(record.name)) + "\x00" + record.rtype


def expected(prefix: str) -> list[tuple[str, str]]:
    """TREE filtered and ordered independently of the store: canonical identifier order."""
    rows = [
        (Identifier.parse(n), t)
        for n, t in TREE
        if rname_of(Identifier.parse(n)).startswith(prefix)
    ]
    return [(n.to_text(), t) for n, t in sorted(rows)]


async def test_list_namespace_is_label_wise_and_ordered(store: Store) -> None:
    """REQ-ID-023/022: the subtree of `ctyun` is a label-wise prefix, in canonical order."""
    await committed(store, *(put(n, rtype=t) for n, t in TREE))
    listed = await store.list_namespace("ctyun ", after=None, limit=100, now=NOW)
    assert [(r.name, r.rtype) for r in listed] == expected("ctyun ")
    assert [r.name for r in listed] == [
        "ctyun",
        "ctyun",
        "a.ctyun",
        "a-b.ctyun",  # "a" is a prefix of "a-b": the shorter label first
        "b.ctyun",
        "gz.ctyun",
        "tj.ctyun",
        "tj.ctyun",
        "a100.tj.ctyun",
        "天津.ctyun",  # by A-label: xn--rssy87b
    ]
    assert not any("ctyunx" in r.name for r in listed)
    sub = await store.list_namespace("ctyun tj ", after=None, limit=100, now=NOW)
    assert [(r.name, r.rtype) for r in sub] == expected("ctyun tj ")
    everything = await store.list_namespace("", after=None, limit=100, now=NOW)
    assert [(r.name, r.rtype) for r in everything] == expected("")
    assert len(everything) == len(TREE)
    assert await store.list_namespace("nothing ", after=None, limit=100, now=NOW) == []
    assert await store.list_namespace("", after=None, limit=0, now=NOW) == []


async def test_list_namespace_pages_with_the_cursor(store: Store) -> None:
    await committed(store, *(put(n, rtype=t) for n, t in TREE))
    for prefix in ("", "ctyun "):
        pages: list[list[StoredRecord]] = []
        after = None
        while True:
            page = await store.list_namespace(prefix, after=after, limit=2, now=NOW)
            if not page:
                break
            pages.append(page)
            after = cursor_of(page[-1])
        assert all(len(p) == 2 for p in pages[:-1])
        assert [(r.name, r.rtype) for p in pages for r in p] == expected(prefix)
    # a cursor of an rname alone resumes at that rname
    resumed = await store.list_namespace("ctyun ", after="ctyun tj ", limit=100, now=NOW)
    assert [(r.name, r.rtype) for r in resumed] == [
        (n, t) for n, t in expected("ctyun ") if rname_of(Identifier.parse(n)) >= "ctyun tj "
    ]
    assert resumed[0].name == "tj.ctyun"


async def test_list_namespace_hides_expired_and_deleted(store: Store) -> None:
    await committed(
        store,
        put("a.ctyun", exp=NOW),  # expires exactly now: gone
        put("b.ctyun", exp=NOW + 1),
        put("c.ctyun"),
        put("d.ctyun", 1, exp=NOW - 30),
    )
    await committed(store, tombstone("c.ctyun", 2))
    listed = await store.list_namespace("ctyun ", after=None, limit=10, now=NOW)
    assert [r.name for r in listed] == ["b.ctyun"]
    # a refresh extends an offer's life
    await committed(store, refresh(put("d.ctyun", 1, exp=NOW - 30), 2, exp=NOW + 10))
    listed = await store.list_namespace("ctyun ", after=None, limit=10, now=NOW)
    assert [r.name for r in listed] == ["b.ctyun", "d.ctyun"]
    assert {r.name for r in await store.list_namespace("", after=None, limit=10, now=0)} == {
        "a.ctyun",
        "b.ctyun",
        "d.ctyun",
    }


# --- feed ----------------------------------------------------------------------------------


async def test_changes_head_and_chain(store: Store) -> None:
    """REQ-FEED-001: rseq 1, 2, 3 ... and a chain that recomputes from the envelopes."""
    offer = put("gz-pool.ctyun", 1)
    writes = [
        put("ctyun", 1, rtype="zone"),
        offer,
        refresh(offer, 2),
        put("tj.ctyun", 1),
        tombstone("tj.ctyun", 2),
        put("ctyun", 2, rtype="zone", units=2),
    ]
    returned = await committed(store, *writes)
    changes = await store.changes(0, 100)
    assert changes == returned
    assert [(c.op, c.name, c.rtype, c.serial, c.envelope) for c in changes] == [
        (w.op, w.name, w.rtype, w.serial, w.envelope) for w in writes
    ]
    assert await store.head() == (6, recompute(changes))
    assert await store.changes(2, 2) == changes[2:4]
    assert await store.changes(6, 10) == []
    assert await store.changes(0, 0) == []
    assert [r.rseq for r in await store.at_name("gz-pool.ctyun")] == [3]


async def test_snapshot_and_count(store: Store) -> None:
    await committed(store, *(put(n, rtype=t) for n, t in TREE))
    await committed(store, tombstone("pool.aliyun", 2))
    rseq, chain, records = await store.snapshot()
    assert (rseq, chain) == await store.head()
    assert [(r.name, r.rtype) for r in records] == [
        (n, t) for n, t in expected("") if n != "pool.aliyun"
    ]
    assert await store.count() == {"zone": 4, "delegation": 1, "offer": 8}


async def test_snapshot_is_consistent_under_concurrent_writes(backend: Backend) -> None:
    """A snapshot's records are exactly those of its rseq, while another instance writes."""
    reader, writer = await backend.open(), await backend.open()
    names = [f"p{i}.ctyun" for i in range(30)]

    async def write() -> None:
        for name in names:
            await committed(writer, put(name))

    async def read() -> list[tuple[int, str, list[StoredRecord]]]:
        shots = []
        while len(shots) < 200:
            shots.append(await reader.snapshot())
            if shots[-1][0] == len(names):
                break
        return shots

    _, shots = await asyncio.gather(write(), read())
    chains = {c.rseq: c.chain for c in await reader.changes(0, 100)}
    for rseq, chain, records in shots:
        assert chain == chains.get(rseq, CHAIN_ZERO)
        assert sorted(r.name for r in records) == sorted(names[:rseq])


async def test_live_records_streams_in_batches(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "BATCH_SIZE", 3)
    monkeypatch.setattr(postgres_store, "BATCH_SIZE", 3)
    store = await backend.open()
    await committed(store, *(put(n, rtype=t) for n, t in TREE))
    await committed(store, tombstone("gz.ctyun", 2))
    live = [(r.name, r.rtype) async for r in store.live_records()]
    assert live == [(n, t) for n, t in expected("") if n != "gz.ctyun"]
    offers = [r.name async for r in store.live_records("offer")]
    assert offers == [n for n, t in expected("") if t == "offer" and n != "gz.ctyun"]
    assert [r async for r in store.live_records("keyrotation")] == []


# --- integrity -----------------------------------------------------------------------------


async def test_integrity_check_healthy(store: Store) -> None:
    offer = put("gz-pool.ctyun", 1)
    await committed(store, offer, refresh(offer, 2), put("tj.ctyun"), tombstone("tj.ctyun", 2))
    assert await store.integrity_check() == []


@pytest.mark.parametrize(
    ("tamper", "finding"),
    [
        ("UPDATE changes SET chain = {p1} WHERE rseq = 2", "chain broken at rseq 2"),
        ("UPDATE changes SET envelope = {p1} WHERE rseq = 3", "chain broken at rseq 3"),
        ("DELETE FROM changes WHERE rseq = 4", "feed gap: rseq 5 follows 3"),
        ("UPDATE records SET serial = 9 WHERE name = 'b.ctyun'", "does not match change 2"),
        ("UPDATE records SET deleted = {true} WHERE name = 'c.ctyun'", "does not match change 3"),
    ],
)
async def test_integrity_check_detects_tampering(
    backend: Backend, tamper: str, finding: str
) -> None:
    store = await backend.open()
    await committed(store, *(put(f"{c}.ctyun") for c in "abcde"))
    assert await store.integrity_check() == []
    args: list[object] = []
    if "{p1}" in tamper:
        args.append(CHAIN_ZERO if "chain" in tamper else b"forged")
    true = "1" if backend.kind == "sqlite" else "true"
    sql = tamper.format(p1=backend.param(1), true=true)
    if backend.kind == "postgresql" and tamper.startswith("DELETE"):
        # PostgreSQL enforces the foreign key even for an intruder; drop the referrer first
        await backend.raw("DELETE FROM records WHERE rseq = 4")
    await backend.raw(sql, *args)
    problems = await store.integrity_check()
    assert any(finding in p for p in problems), problems


async def test_integrity_check_sqlite_record_beyond_head(tmp_path: Path) -> None:
    """SQLite's own checks run too: a record pointing past the feed is found twice."""
    path = tmp_path / "r.db"
    store = SqliteStore(path)
    await store.open()
    try:
        await committed(store, put("a.ctyun"))
        conn = sqlite3.connect(path, isolation_level=None)  # foreign keys off, like a bad tool
        conn.execute("UPDATE records SET rseq = 7")
        conn.close()
        problems = await store.integrity_check()
        assert any("beyond the head 1" in p for p in problems), problems
        assert any("foreign_key_check" in p for p in problems), problems
    finally:
        await store.close()


async def test_integrity_check_postgres_head_row(postgres_backend: Backend) -> None:
    """PostgreSQL keeps the head in a row of its own: it must be the last change."""
    backend = postgres_backend
    store = await backend.open()
    await committed(store, put("a.ctyun"), put("b.ctyun"))
    await backend.raw("UPDATE head SET rseq = 1")
    problems = await store.integrity_check()
    assert any("head row (rseq 1) is not the last change (rseq 2)" in p for p in problems)
    await backend.raw("DELETE FROM head")
    assert "the head row is missing" in await store.integrity_check()
    for read in (store.head, store.snapshot):
        with pytest.raises(InternalError):
            await read()
    with pytest.raises(InternalError):
        await store.commit(put("c.ctyun"))


async def test_sqlite_in_memory_store() -> None:
    store = SqliteStore(":memory:")
    await store.open()
    try:
        await committed(store, put("a.ctyun"))
        assert await store.integrity_check() == []
    finally:
        await store.close()


# --- several instances: waiting and writing ------------------------------------------------


async def test_wait_for_change_sees_another_instance(backend: Backend) -> None:
    """A commit in another process wakes the waiter (SQLite: poll; PostgreSQL: NOTIFY)."""
    # PostgreSQL polls only every 30 s here: a prompt wake-up must come from NOTIFY.
    waiter = await backend.open(poll_interval=0.2 if backend.kind == "sqlite" else 30.0)
    writer = await backend.open()
    await committed(writer, put("a.ctyun"))
    loop = asyncio.get_running_loop()

    async def later() -> None:
        await asyncio.sleep(0.1)
        await committed(writer, put("b.ctyun"))

    start = loop.time()
    task = asyncio.create_task(later())
    assert await waiter.wait_for_change(1, timeout=10) == 2
    await task
    assert loop.time() - start < 3
    # already past: returns at once
    assert await waiter.wait_for_change(0, timeout=10) == 2


async def test_wait_for_change_times_out(backend: Backend) -> None:
    store = await backend.open(poll_interval=0.05)
    await committed(store, put("a.ctyun"))
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await store.wait_for_change(1, timeout=0.3) == 1
    assert 0.29 <= loop.time() - start < 2
    assert await store.wait_for_change(1, timeout=0) == 1


async def test_wait_for_change_own_commit_wakes_at_once(backend: Backend) -> None:
    store = await backend.open(poll_interval=30.0)
    waiters = [asyncio.create_task(store.wait_for_change(0, timeout=10)) for _ in range(5)]
    await asyncio.sleep(0.05)
    await committed(store, put("a.ctyun"))
    done, _ = await asyncio.wait(waiters, timeout=2)
    assert len(done) == 5
    assert {t.result() for t in done} == {1}


async def test_close_releases_waiters(backend: Backend) -> None:
    store = await backend.open(poll_interval=30.0)
    waiter = asyncio.create_task(store.wait_for_change(0, timeout=30))
    await asyncio.sleep(0.05)
    await store.close()
    assert await asyncio.wait_for(waiter, 2) == 0


async def test_postgres_listener_comes_back(postgres_backend: Backend) -> None:
    """The head poll re-opens a lost LISTEN connection."""
    store: Any = await postgres_backend.open(poll_interval=0.05)
    pid = store._listener.get_server_pid()
    await postgres_backend.raw("SELECT pg_terminate_backend($1)", pid)
    waiter = asyncio.create_task(store.wait_for_change(0, timeout=5))
    for _ in range(100):
        await asyncio.sleep(0.02)
        if not store._listener.is_closed() and store._listener.get_server_pid() != pid:
            break
    else:
        pytest.fail("the LISTEN connection was not re-opened")
    writer = await postgres_backend.open()
    await committed(writer, put("a.ctyun"))
    assert await asyncio.wait_for(waiter, 5) == 1


async def test_concurrent_commits_from_two_instances(backend: Backend) -> None:
    """Two registries over one database: rseq 1..100 without gaps, one linear chain."""
    one, two = await backend.open(), await backend.open()
    n = 50

    async def concurrently(store: Store, tag: str) -> list[int]:
        results = await asyncio.gather(
            *(store.commit(raw_put(f"{tag}{i}.ctyun", 1, f"{tag}{i}".encode())) for i in range(n))
        )
        return [c.rseq for c in results if c is not None]

    got = await asyncio.gather(concurrently(one, "x"), concurrently(two, "y"))
    assert sorted(got[0] + got[1]) == list(range(1, 2 * n + 1))
    changes = await one.changes(0, 1000)
    assert (changes[-1].rseq, recompute(changes)) == await two.head()
    assert await one.count() == {"offer": 2 * n}
    assert await two.integrity_check() == []


async def test_concurrent_open_of_a_fresh_database(backend: Backend) -> None:
    stores = [backend.new() for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    await committed(stores[0], put("a.ctyun"))
    assert [(await s.head())[0] for s in stores] == [1, 1, 1]


async def test_reopen_keeps_everything(backend: Backend) -> None:
    store = await backend.open()
    await committed(store, put("a.ctyun"), put("b.ctyun"))
    head = await store.head()
    await store.close()
    await store.close()  # closing twice is harmless
    again = await backend.open()
    assert await again.head() == head
    assert len([r async for r in again.live_records()]) == 2
    await store.open()  # a closed store can be opened again
    assert await store.head() == head


# --- failures of the database are not conflicts --------------------------------------------


async def test_closed_store_is_unavailable(store: Store) -> None:
    await store.close()
    with pytest.raises(UnavailableError):
        await store.commit(put("a.ctyun"))
    with pytest.raises(UnavailableError):
        await store.head()


async def test_sqlite_unopenable_file(tmp_path: Path) -> None:
    with pytest.raises(UnavailableError):
        await SqliteStore(tmp_path / "missing-dir" / "r.db").open()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 200)
    with pytest.raises(InternalError):
        await SqliteStore(garbage).open()


async def test_postgres_unreachable() -> None:
    store = PostgresStore("postgresql://postgres@127.0.0.1:1/none", "cid")
    with pytest.raises(UnavailableError):
        await store.open()
    with pytest.raises(UnavailableError):
        await store.get("a", "zone")


async def test_postgres_schema_must_be_an_identifier() -> None:
    with pytest.raises(ValueError):
        PostgresStore("postgresql://x/y", 'cid"; DROP TABLE x; --')


async def test_newer_schema_version_is_refused(backend: Backend) -> None:
    store = await backend.open()
    await store.close()
    await backend.raw("UPDATE schema_version SET version = 99")
    with pytest.raises(InternalError):
        await backend.open()


async def test_open_store_dispatches_on_the_url(tmp_path: Path) -> None:
    sqlite_file = tmp_path / "r.db"
    for url in (f"sqlite://{sqlite_file}", str(sqlite_file)):
        store = open_store(url)
        assert isinstance(store, SqliteStore) and store.path == str(sqlite_file)
    store = open_store("postgresql://postgres@127.0.0.1:5432/test")
    assert isinstance(store, PostgresStore) and store.schema == "cid"
    store = open_store("postgresql://postgres@127.0.0.1:5432/test?schema=reg2")
    assert isinstance(store, PostgresStore) and store.schema == "reg2"
    assert store.dsn == "postgresql://postgres@127.0.0.1:5432/test"


# --- the pure parts ------------------------------------------------------------------------


async def test_apply_write_refuses_an_unknown_op() -> None:
    bogus = dataclasses.replace(put("a.ctyun"), op="rename")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        sqlite_store.apply_write(None, bogus, 1)


@pytest.mark.parametrize(
    ("prefix", "bound"),
    [
        ("", None),
        ("ctyun ", "ctyun!"),
        ("a\U0010ffff", "b"),
        ("\U0010ffff", None),
        ("a\ud7ff", "a\ue000"),
    ],
)
async def test_prefix_upper_bound(prefix: str, bound: str | None) -> None:
    assert sqlite_store.prefix_upper_bound(prefix) == bound
