"""Writer process for ``test_store_crash.py``: commits puts until it is killed.

Usage: ``python store_crash_writer.py DB_PATH TAG``. Opens a
:class:`~cid_registry.store.sqlite.SqliteStore` on ``DB_PATH``, prints
``READY``, then commits forever. Each name ``n<i>.<TAG>.crash`` is put twice
(serial 1, then 2), so that both inserts and replacements are in flight when
the kill lands. After each :meth:`commit` returns it prints
``ACK <name> <serial> <rseq>`` and flushes: an acknowledged write, which must
survive ``kill -9``.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys

from cid.identifier import Identifier
from cid.signing import b64url_encode
from cid_registry.store import Write, rname_of
from cid_registry.store.sqlite import SqliteStore


def _write(name: str, serial: int) -> Write:
    ident = Identifier.parse(name)
    envelope = f"{name} {serial} ".encode() * 20  # opaque to the store
    return Write(
        name=ident.to_text(),
        rname=rname_of(ident),
        rtype="offer",
        op="put",
        serial=serial,
        digest=b64url_encode(hashlib.sha256(envelope).digest()),
        envelope=envelope,
        expires=2_000_000_000,
        at=1_767_225_600,
    )


async def main(path: str, tag: str) -> None:
    store = SqliteStore(path)
    await store.open()
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    step = 0
    while True:
        name, serial = f"n{step // 2}.{tag}.crash", step % 2 + 1
        change = await store.commit(_write(name, serial))
        if change is None:  # pragma: no cover - every write is new
            raise SystemExit(f"commit of {name} {serial} wrote nothing")
        sys.stdout.write(f"ACK {name} {serial} {change.rseq}\n")
        sys.stdout.flush()
        step += 1


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
