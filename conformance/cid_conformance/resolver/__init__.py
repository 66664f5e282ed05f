"""The ``resolver`` target: an implementation's resolver and local catalogue (§14), through an
adapter.

The suite runs scripted registries on loopback (:mod:`.scripted`) and drives the
implementation's resolver and catalogue against them through the adapter
protocol (``resolver.*`` and ``catalogue.*`` operations), on a virtual clock.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from ..adapter import Adapter, Outcome, require
from ..case import fail
from ..target import Target
from ..vectors import add_adapter_arguments, open_adapter
from .scripted import Pki, ScriptedRegistry

__all__ = ["TARGET", "ResolverContext"]

_MODULES = tuple(f"cid_conformance.resolver.{m}" for m in ("s10_errors", "s14_resolver"))


@dataclass
class ResolverContext:
    adapter: Adapter
    registries: list[ScriptedRegistry] = field(default_factory=list)
    handles: list[tuple[str, str]] = field(default_factory=list)

    async def registry(self) -> ScriptedRegistry:
        reg = ScriptedRegistry()
        await reg.start()
        self.registries.append(reg)
        return reg

    async def call(self, op: str, **args: Any) -> Outcome:
        await require(self.adapter, op)
        return await self.adapter.call(op, args)

    async def resolver(self, pki: Pki, *urls: str, **options: Any) -> str:
        out = await self.call(
            "resolver.open", registries=list(urls), root_keys=pki.root_keys, **options
        )
        if out.ok is None:
            fail(f"resolver.open: {out.brief()}")
        assert out.ok is not None
        handle = str(out.ok["handle"])
        self.handles.append(("resolver", handle))
        return handle

    async def resolve(self, handle: str, name: str, now: int) -> Outcome:
        return await self.call("resolver.resolve", handle=handle, name=name, now=now)

    async def catalogue(self, pki: Pki, url: str) -> str:
        out = await self.call("catalogue.open", registry=url, root_keys=pki.root_keys)
        if out.ok is None:
            fail(f"catalogue.open: {out.brief()}")
        assert out.ok is not None
        handle = str(out.ok["handle"])
        self.handles.append(("catalogue", handle))
        return handle

    async def close(self) -> None:
        for kind, handle in self.handles:
            if f"{kind}.close" in self.adapter.ops:
                await self.adapter.call(f"{kind}.close", {"handle": handle})
        for reg in self.registries:
            await reg.stop()
        self.handles.clear()
        self.registries.clear()


@asynccontextmanager
async def _open(args: argparse.Namespace) -> AsyncIterator[ResolverContext]:
    async with open_adapter(args) as adapter:
        ctx = ResolverContext(adapter)
        try:
            yield ctx
        finally:
            await ctx.close()


TARGET = Target(
    name="resolver",
    help="an implementation's resolver and catalogue through an adapter, against scripted "
    "registries (§14)",
    description=__doc__ or "",
    modules=_MODULES,
    add_arguments=add_adapter_arguments,
    open=_open,
    endpoint=lambda args: f"adapter {args.adapter_cmd or args.adapter or '?'}",
)
