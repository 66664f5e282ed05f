"""The ``vectors`` target: an implementation's own parser, codec and verifier, through an adapter.

Runs the language-neutral vectors of ``spec/vectors/`` (identifiers, codec,
signatures, the textual query language) and further byte-level checks of §2, §5
and §6 against an implementation through the adapter protocol of
:mod:`cid_conformance.adapter`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ..adapter import Adapter, Outcome, SubprocessAdapter, require
from ..case import fail
from ..spec import find_spec_dir
from ..target import Target, UsageError

__all__ = ["TARGET", "VectorsContext", "add_adapter_arguments", "open_adapter"]

_MODULES = tuple(
    f"cid_conformance.vectors.{m}"
    for m in ("s02_identifiers", "s05_encoding", "s06_signatures", "s13_query_text")
)


def add_adapter_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--adapter",
        choices=["python"],
        help="a built-in adapter: python = the reference library cid, in process",
    )
    group.add_argument(
        "--adapter-cmd",
        metavar="COMMAND",
        help="a command that speaks the adapter protocol (JSON lines on stdin/stdout)",
    )


@asynccontextmanager
async def open_adapter(args: argparse.Namespace) -> AsyncIterator[Adapter]:
    adapter: Adapter
    if args.adapter_cmd:
        sub = SubprocessAdapter(args.adapter_cmd)
        await sub.start()
        adapter = sub
    elif args.adapter == "python":
        from ..adapters.python import PythonAdapter

        adapter = PythonAdapter()
    else:
        raise UsageError("give an adapter: --adapter python or --adapter-cmd COMMAND")
    try:
        yield adapter
    finally:
        await adapter.close()


@dataclass
class VectorsContext:
    adapter: Adapter

    async def call(self, op: str, **args: Any) -> Outcome:
        await require(self.adapter, op)
        return await self.adapter.call(op, args)

    async def ok(self, op: str, **args: Any) -> dict[str, Any]:
        out = await self.call(op, **args)
        if out.ok is None:
            fail(f"{op} {json.dumps(args, ensure_ascii=False)[:160]}: {out.brief()}")
        assert out.ok is not None
        return out.ok

    @cached_property
    def identifiers(self) -> dict[str, Any]:
        return _load("identifiers.json")

    @cached_property
    def codec(self) -> dict[str, Any]:
        return _load("codec.json")

    @cached_property
    def signatures(self) -> dict[str, Any]:
        return _load("signatures.json")


def _load(name: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads((find_spec_dir() / "vectors" / name).read_text("utf-8"))
    return value


@asynccontextmanager
async def _open(args: argparse.Namespace) -> AsyncIterator[VectorsContext]:
    async with open_adapter(args) as adapter:
        yield VectorsContext(adapter)


def _endpoint(args: argparse.Namespace) -> str:
    return f"adapter {args.adapter_cmd or args.adapter or '?'}"


TARGET = Target(
    name="vectors",
    help="an implementation's parsers, codec and verifier through an adapter "
    "(spec §2, §5, §6, §13)",
    description=__doc__ or "",
    modules=_MODULES,
    add_arguments=add_adapter_arguments,
    open=_open,
    endpoint=_endpoint,
)
