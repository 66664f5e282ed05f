"""The ``provider`` target: a provider's negotiate and invoke endpoints (§8, §9 over the binding of
§15).

The suite acts as a **requester**. It resolves the provider's offer and zone record
at a registry and verifies them from the trust anchor (so it knows the provider
namespace, its service keys and its endpoints), then negotiates agreements and runs
small tasks under them, sending valid messages and messages broken in one precise
way, and checks every answer: the signed quotes, agreements, statuses, results and
receipts are verified with the zone's service keys and checked against the spec.

Cases that negotiate or run tasks change the provider (they reserve capacity, if
only for a moment: every agreement the suite makes is withdrawn at the end of its
case) and run only with ``--allow-writes``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from cid.errors import CidError
from cid.identifier import Identifier
from cid.signing import SigningKey

from ..registry import load_public_keys, load_signing_key
from ..target import Target, UsageError
from ..wire import Http
from .context import ProviderContext, ProviderOptions

__all__ = ["TARGET", "ProviderContext", "ProviderOptions"]

_MODULES = tuple(
    f"cid_conformance.provider.{m}" for m in ("s08_negotiate", "s09_invoke", "s15_provider")
)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "url",
        nargs="?",
        help="the provider's base URL B (its zone names B/v1/negotiate and B/v1/invoke)",
    )
    parser.add_argument(
        "--registry",
        metavar="URL",
        help="a registry serving the provider's zone record and offer (required)",
    )
    parser.add_argument(
        "--root-keys",
        metavar="FILE",
        help="the trust anchor: root public keys (a JSON list of {alg, pub}, a `cid pubkey` "
        "file or a key file); the offer and zone are verified from it",
    )
    parser.add_argument(
        "--offer",
        metavar="NAME",
        help="an offer the provider publishes, to negotiate for (a general pool of at least "
        "2 units, priced per unit, that the suite may fill for a moment)",
    )
    parser.add_argument(
        "--requester-key",
        metavar="FILE",
        help="the requester key (a `cid keygen` file); default: a fresh key for the run",
    )
    parser.add_argument(
        "--python",
        default="python3",
        metavar="ARGV0",
        help="the interpreter tasks run (the suite's tasks are `ARGV0 -c PROGRAM`; "
        "default python3)",
    )
    parser.add_argument(
        "--output-dir",
        default="out",
        metavar="DIR",
        help="where a task writes the output files the provider collects, relative to its "
        "working directory (default out, the reference's)",
    )
    parser.add_argument(
        "--image",
        metavar="JSON",
        help='an image every task names ({"ref": ..., "sha256": ...}), for providers that '
        "run tasks only in images",
    )
    parser.add_argument(
        "--max-wait",
        type=float,
        default=10.0,
        metavar="S",
        help="longest real-time wait of one case (a quote's expiry, the grace of an accepted "
        "negotiation); a case that would wait longer is skipped (default 10)",
    )


def _image(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as e:
        raise UsageError(f"--image is not JSON: {e}") from e
    if not isinstance(value, dict) or not isinstance(value.get("ref"), str):
        raise UsageError('--image is a JSON object {"ref": ..., "sha256": ...}')
    return value


def options_from_args(args: argparse.Namespace) -> ProviderOptions:
    if not args.url:
        raise UsageError("the provider target needs the provider's base URL")
    if not str(args.url).startswith(("http://", "https://")):
        raise UsageError(f"the provider URL must be http(s)://…, not {args.url!r}")
    if not args.registry:
        raise UsageError(
            "give --registry URL: the suite resolves the provider's zone and offer there"
        )
    if not args.root_keys:
        raise UsageError("give the trust anchor: --root-keys FILE")
    root_keys = load_public_keys(args.root_keys)
    offer = None
    if args.offer:
        try:
            offer = Identifier.parse(args.offer).to_text()
        except CidError as e:
            raise UsageError(f"--offer {args.offer!r} is not an identifier: {e}") from e
    key = load_signing_key(args.requester_key) if args.requester_key else SigningKey.generate()
    if args.max_wait < 0:
        raise UsageError("--max-wait is a number of seconds, at least 0")
    return ProviderOptions(
        url=args.url.rstrip("/"),
        registry=args.registry.rstrip("/"),
        root_keys=root_keys,
        offer=offer,
        requester_key=key,
        python=args.python,
        output_dir=args.output_dir.strip("/") or "out",
        image=_image(args.image),
        max_wait_s=args.max_wait,
        allow_writes=args.allow_writes,
    )


@asynccontextmanager
async def _open(args: argparse.Namespace) -> AsyncIterator[ProviderContext]:
    options = options_from_args(args)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        ctx = ProviderContext(options, Http(options.url, session), Http(options.registry, session))
        try:
            yield ctx
        finally:
            await ctx.close()


TARGET = Target(
    name="provider",
    help="a provider's negotiate and invoke endpoints (spec §8, §9, §15)",
    description=__doc__ or "",
    modules=_MODULES,
    add_arguments=_add_arguments,
    open=_open,
    endpoint=lambda args: str(args.url or ""),
)
