"""The ``registry`` target: a registry's HTTP binding (§12) and everything it verifies (§2–§11).

A registry is a verifier (it MUST verify a record under §6 before accepting it,
[REQ-SEC-002]) and a responder for the query exchanges of §7, so most
requirements of §2–§7 and §10–§12 are checked here over the wire: the suite
submits records (valid, and broken in one precise way) and queries, and checks
each answer against the spec.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from cid.errors import CidError
from cid.signing import PublicKey, SigningKey

from ..target import Target, UsageError
from ..wire import Http
from .context import RegistryContext, RegistryOptions

__all__ = ["TARGET", "RegistryContext", "RegistryOptions"]

_MODULES = tuple(
    f"cid_conformance.registry.{m}"
    for m in (
        "s01_overview",
        "s02_identifiers",
        "s03_records",
        "s04_capabilities",
        "s05_encoding",
        "s06_signatures",
        "s07_query",
        "s10_errors",
        "s12_registry",
    )
)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "url", nargs="?", help="the registry's base URL (e.g. http://127.0.0.1:8470)"
    )
    parser.add_argument(
        "--root-keys",
        metavar="FILE",
        help="the trust anchor: the operator's root public keys (a JSON list of {alg, pub}, "
        "a `cid pubkey` file or a key file); default: the public half of --root-key",
    )
    parser.add_argument(
        "--root-key",
        metavar="FILE",
        help="the operator's root signing key (a `cid keygen` file): the suite delegates a "
        "fresh test namespace cidconf-<random> for its writes",
    )
    parser.add_argument(
        "--namespace",
        metavar="NAME",
        help="a pre-delegated test namespace; the suite delegates run-<random>.NAME in it",
    )
    parser.add_argument(
        "--namespace-key",
        metavar="FILE",
        help="a current signing key of --namespace (its anchor key when it has no key rotation)",
    )
    parser.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="URL",
        help="another process of the same registry (sharing its store), for [REQ-REG-012]",
    )
    parser.add_argument(
        "--read-timeout",
        type=float,
        default=15.0,
        metavar="S",
        help="the registry's request read timeout [REQ-REG-009] (default 15, the reference's)",
    )
    parser.add_argument(
        "--search-budget",
        type=int,
        metavar="N",
        help="the registry's configured search budget, to check QUERY_TOO_EXPENSIVE [REQ-REG-050] "
        "(only when N is small: the case publishes N+1 offers)",
    )
    parser.add_argument(
        "--expiry-s",
        type=int,
        default=4,
        metavar="S",
        help="lifetime of the short-lived records whose expiry the late cases observe (default 4)",
    )
    parser.add_argument(
        "--rate-probe-max",
        type=int,
        default=20_000,
        metavar="N",
        help="most requests the rate-limit case sends looking for 429 [REQ-REG-006]",
    )


def _read_json(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read {what} {path}: {e}") from e


def load_signing_key(path: str) -> SigningKey:
    try:
        return SigningKey.from_file_value(_read_json(path, "key file"))
    except CidError as e:
        raise UsageError(f"{path} is not a key file: {e}") from e


def load_public_keys(path: str) -> list[PublicKey]:
    value = _read_json(path, "trust anchor")
    items = value if isinstance(value, list) else [value]
    keys = []
    for item in items:
        if isinstance(item, dict) and "seed" in item:
            keys.append(SigningKey.from_file_value(item).public_key)
        elif isinstance(item, dict):
            keys.append(PublicKey.model_validate({"alg": item.get("alg"), "pub": item.get("pub")}))
        else:
            raise UsageError(f"{path}: a public key is an object {{alg, pub}}")
    if not keys:
        raise UsageError(f"{path}: the trust anchor has no key")
    return keys


def options_from_args(args: argparse.Namespace) -> RegistryOptions:
    if not args.url:
        raise UsageError("the registry target needs the registry's base URL")
    root_key = load_signing_key(args.root_key) if args.root_key else None
    if args.root_keys:
        root_keys = load_public_keys(args.root_keys)
    elif root_key is not None:
        root_keys = [root_key.public_key]
    else:
        raise UsageError("give the trust anchor: --root-keys FILE (or --root-key FILE)")
    if bool(args.namespace) != bool(args.namespace_key):
        raise UsageError("--namespace and --namespace-key go together")
    return RegistryOptions(
        url=args.url.rstrip("/"),
        root_keys=root_keys,
        root_key=root_key,
        namespace=args.namespace,
        namespace_key=load_signing_key(args.namespace_key) if args.namespace_key else None,
        peers=tuple(p.rstrip("/") for p in args.peer),
        read_timeout_s=args.read_timeout,
        rate_probe_max=args.rate_probe_max,
        search_budget=args.search_budget,
        expiry_s=max(2, args.expiry_s),
        allow_writes=args.allow_writes,
    )


@asynccontextmanager
async def open_context(args: argparse.Namespace) -> AsyncIterator[RegistryContext]:
    options = options_from_args(args)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=64, force_close=False)
    ) as session:
        yield RegistryContext(options, Http(options.url, session))


TARGET = Target(
    name="registry",
    help="a registry's HTTP endpoint (spec §12 and what it verifies, §2-§11)",
    description=__doc__ or "",
    modules=_MODULES,
    add_arguments=_add_arguments,
    open=open_context,
    endpoint=lambda args: str(args.url or ""),
)
