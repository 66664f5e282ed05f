"""The ``provider`` target: a provider's negotiate and invoke endpoints (§8, §9 over the binding of
§15).

The target, its options and its context are here so that provider cases slot in
as one module per section (``s08_negotiate``, ``s09_invoke``, ``s15_provider``),
like the registry's. This version has no provider cases yet: §15 and the reference
provider were still changing when the registry target was built; the requirements
of §8, §9 and §15 are listed as pending in ``conformance/MATRIX.md``.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp

from ..target import Target, UsageError
from ..wire import Http

__all__ = ["TARGET", "ProviderContext"]

_MODULES: tuple[str, ...] = ()


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", nargs="?", help="the provider's negotiate endpoint base URL")
    parser.add_argument(
        "--registry", metavar="URL", help="a registry serving the provider's records"
    )
    parser.add_argument("--root-keys", metavar="FILE", help="the trust anchor (root public keys)")
    parser.add_argument("--offer", metavar="NAME", help="an offer of the provider to negotiate for")


@dataclass
class ProviderContext:
    http: Http
    registry: Http | None


@asynccontextmanager
async def _open(args: argparse.Namespace) -> AsyncIterator[ProviderContext]:
    if not args.url:
        raise UsageError("the provider target needs the provider's base URL")
    async with aiohttp.ClientSession() as session:
        registry = Http(args.registry, session) if args.registry else None
        yield ProviderContext(Http(args.url.rstrip("/"), session), registry)


TARGET = Target(
    name="provider",
    help="a provider's negotiate and invoke endpoints (§8, §9, §15): no cases in this version",
    description=__doc__ or "",
    modules=_MODULES,
    add_arguments=_add_arguments,
    open=_open,
    endpoint=lambda args: str(args.url or ""),
)
