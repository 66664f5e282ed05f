"""The sans-IO core imports no aiohttp or asyncio (STYLE 1, issue 2).

Two checks: importing every core module (in a fresh interpreter) loads no
asyncio, aiohttp or asyncpg, even transitively; and no core module's source
imports an I/O module directly. (``socket`` is loaded transitively by
pydantic's URL support, so the first check cannot forbid it; the second does
for our own code.)
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import cid

CORE = [
    "identifier", "errors", "codec", "model", "signing", "envelope", "record", "trust",
    "examples", "query", "negotiation", "invocation", "feed", "schema",
    "matching", "latency", "query_text", "resolution",
]  # fmt: skip
NEVER_LOADED = ("aiohttp", "asyncio", "asyncpg")
NEVER_IMPORTED = (*NEVER_LOADED, "socket", "ssl", "selectors", "http", "urllib.request", "sqlite3")


def test_core_loads_no_async_io() -> None:
    code = (
        "import sys\n"
        f"for m in {CORE!r}: __import__('cid.' + m)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {NEVER_LOADED!r})\n"
        "print(','.join(bad))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "", f"sans-IO core pulled in: {out.stdout.strip()}"


def test_core_sources_import_no_io() -> None:
    root = Path(cid.__file__).parent
    for name in CORE:
        tree = ast.parse((root / f"{name}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            else:
                continue
            for mod in mods:
                assert not any(mod == b or mod.startswith(b + ".") for b in NEVER_IMPORTED), (
                    f"cid.{name} imports {mod}"
                )
