"""``cid-registry``: run a registry.

    cid-registry serve --root-keys root.pub.json --service-key service.key
    cid-registry serve --store postgresql://postgres@127.0.0.1/test --port 8471 ...
    cid-registry check --store var/registry.sqlite3

Every flag has a ``CID_REGISTRY_*`` environment variable (shown in ``--help``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import signal
import sys
from typing import Any

from aiohttp import web

from cid.errors import CidError

from .app import create_app
from .settings import Settings, load_key, load_latency_model, load_public_keys
from .store import open_store

__all__ = ["main"]

DESCRIPTION = """\
Run a cid registry: the authoritative server providers register signed records
with, and resolvers query (resolve, list, search, change feed, snapshot).

A registry needs its operator's trust anchor (the root public keys, which sign
delegations of top-level namespaces) and its own service key (which signs feed
heads and snapshots; list it in the root zone record). Create keys with
`cid keygen`. The store is an SQLite file by default (WAL, fsync on every
acknowledged write); give a postgresql:// URL to share one catalogue between
several registry processes.
"""


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and structured extras."""

    _STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in self._STANDARD:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get("CID_REGISTRY_" + name, default)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cid-registry",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve", help="run the registry HTTP server", description="Run the registry HTTP server."
    )
    serve.add_argument(
        "--store",
        default=_env("STORE", "var/registry.sqlite3"),
        help="SQLite file path or postgresql:// URL [CID_REGISTRY_STORE] (default: %(default)s)",
    )
    serve.add_argument(
        "--host",
        default=_env("HOST", "127.0.0.1"),
        help="listen address [CID_REGISTRY_HOST] (default: %(default)s)",
    )
    serve.add_argument(
        "--port",
        type=int,
        default=int(_env("PORT", "8470") or 8470),
        help="listen port; 0 picks a free one [CID_REGISTRY_PORT] (default: %(default)s)",
    )
    serve.add_argument(
        "--root-keys",
        default=_env("ROOT_KEYS"),
        required=_env("ROOT_KEYS") is None,
        help="trust anchor: JSON file with the root public key(s) [CID_REGISTRY_ROOT_KEYS]",
    )
    serve.add_argument(
        "--service-key",
        default=_env("SERVICE_KEY"),
        required=_env("SERVICE_KEY") is None,
        help="key file that signs feed heads [CID_REGISTRY_SERVICE_KEY]",
    )
    serve.add_argument(
        "--rate",
        type=float,
        default=float(_env("RATE_PER_S", "500") or 500),
        help="requests per second per client [CID_REGISTRY_RATE_PER_S]",
    )
    serve.add_argument(
        "--burst",
        type=int,
        default=int(_env("RATE_BURST", "1000") or 1000),
        help="burst size per client [CID_REGISTRY_RATE_BURST]",
    )
    serve.add_argument(
        "--max-body",
        type=int,
        default=int(_env("MAX_BODY_BYTES", "262144") or 0),
        help="largest single-record body in bytes [CID_REGISTRY_MAX_BODY_BYTES]",
    )
    serve.add_argument(
        "--search-budget",
        type=int,
        default=int(_env("SEARCH_BUDGET", "250000") or 0),
        help="most offers one search may examine [CID_REGISTRY_SEARCH_BUDGET]",
    )
    serve.add_argument(
        "--self-url",
        default=_env("SELF_URL"),
        help="this registry's base URL as delegations list it; namespaces delegated to it "
        "are served here rather than referred [CID_REGISTRY_SELF_URL]",
    )
    serve.add_argument(
        "--latency-model",
        default=_env("LATENCY_MODEL", "default"),
        metavar="FILE|default|none",
        help="the latency model searches estimate RTTs with, published signed at "
        "/v1/latency-model: a JSON LatencyModel file, 'default' (the library's model of "
        "China's backbone) or 'none' [CID_REGISTRY_LATENCY_MODEL] (default: %(default)s)",
    )
    serve.add_argument(
        "--ready-file",
        default=None,
        help="write 'host port' here once listening (for scripts and tests)",
    )
    serve.add_argument("--log-level", default=_env("LOG_LEVEL", "info"))
    check = sub.add_parser("check", help="check a store's integrity and print its head")
    check.add_argument("--store", default=_env("STORE", "var/registry.sqlite3"))
    return parser


GC_THRESHOLDS = (200_000, 20, 10)
"""Young collections after 200,000 net allocations instead of 700 (see :func:`tune_gc`)."""


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the request path of a long-running server.

    Everything alive once the catalogue is loaded (the trust state, the search
    index, the modules) is moved to the permanent generation, where collections
    never walk it again, and young collections run every 200,000 net allocations
    rather than every 700: a batch of 500 envelopes allocates tens of thousands
    of short-lived containers, and with the defaults each batch paid for
    repeated walks of the whole heap. Memory is still freed by reference
    counting at once; only reference cycles wait a little longer.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def _serve(args: argparse.Namespace) -> int:
    settings = Settings(
        root_keys=load_public_keys(args.root_keys),
        service_key=load_key(args.service_key),
        store=args.store,
        host=args.host,
        port=args.port,
        rate_per_s=args.rate,
        rate_burst=args.burst,
        max_body_bytes=args.max_body,
        search_budget=args.search_budget,
        self_url=args.self_url,
        latency_model=load_latency_model(args.latency_model),
    )
    if not settings.store.startswith(("postgresql://", "postgres://")):
        directory = os.path.dirname(settings.store.removeprefix("sqlite://"))
        if directory:
            os.makedirs(directory, exist_ok=True)
    app = create_app(settings)
    runner = web.AppRunner(app, shutdown_timeout=settings.shutdown_timeout_s, access_log=None)
    await runner.setup()  # opens the store and loads the catalogue
    tune_gc()
    site = web.TCPSite(runner, settings.host, settings.port, backlog=1024)
    await site.start()
    server = site._server
    port = settings.port
    if server is not None and server.sockets:  # type: ignore[attr-defined]
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    logging.getLogger("cid_registry").info(
        "listening",
        extra={"host": settings.host, "port": port, "store": settings.store.split("@")[-1]},
    )
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{settings.host} {port}\n")
        os.replace(tmp, args.ready_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logging.getLogger("cid_registry").info("shutting down: finishing in-flight requests")
    await runner.cleanup()
    return 0


async def _check(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    await store.open()
    try:
        problems = await store.integrity_check()
        rseq, chain = await store.head()
        counts = await store.count()
    finally:
        await store.close()
    print(
        json.dumps(
            {"rseq": rseq, "chain": chain, "records": counts, "problems": problems}, indent=2
        )
    )
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    logging.basicConfig(level=getattr(args, "log_level", "info").upper(), handlers=[handler])
    try:
        if args.command == "serve":
            return asyncio.run(_serve(args))
        return asyncio.run(_check(args))
    except CidError as e:
        print(f"cid-registry: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
