"""The sans-IO core imports no aiohttp, asyncio or socket (STYLE 1)."""

from __future__ import annotations

import subprocess
import sys

CORE = [
    "cid.identifier",
    "cid.errors",
    "cid.codec",
    "cid.model",
    "cid.signing",
    "cid.envelope",
    "cid.record",
    "cid.trust",
    "cid.examples",
    "cid.query",
    "cid.negotiation",
    "cid.invocation",
]
FORBIDDEN = ("aiohttp", "asyncio", "socket", "ssl", "selectors")


def test_core_imports_no_io() -> None:
    code = (
        "import sys\n"
        f"for m in {CORE!r}: __import__(m)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"sans-IO core pulled in: {out.stdout.strip()}"
