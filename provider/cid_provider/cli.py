"""``cid-provider``: run the reference provider.

    cid-provider serve --config examples/providers/guizhou.toml
    cid-provider serve --config gz.toml --registry http://127.0.0.1:8470 --port 0 --ready-file r
    cid-provider check --config gz.toml          # validate and print what would be published

Flags override the configuration file (see :mod:`cid_provider.config`); every
flag also has a ``CID_PROVIDER_*`` environment variable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from typing import Any

from cid.errors import CidError

from .config import ProviderConfig, load_config
from .logs import setup_logging

__all__ = ["build_parser", "main"]

DESCRIPTION = """\
Run a cid reference provider: it registers its namespace's zone record and offers
with a registry, keeps their availability fresh with signed refreshes, negotiates
with a list-price policy and runs tasks as real local processes with enforced
limits (CPU time, memory, wall clock, output size).

The namespace must be delegated to the provider's namespace key first (the
registry operator runs `cid delegate NAME --key root.key --to ns.pub.json`), or
the configuration names a delegation file to submit.
"""

_OVERRIDES = (
    ("registry", "URL", "registry base URL"),
    ("root_keys", "FILE", "trust anchor (root public keys) to check the delegation"),
    ("namespace_key", "FILE", "key file that signs the zone record, offers and refreshes"),
    ("service_key", "FILE", "key file that signs quotes, agreements, statuses and receipts"),
    ("delegation", "FILE", "a signed delegation of the namespace to submit first"),
    ("host", "ADDR", "listen address"),
    ("public_url", "URL", "base URL published in the zone record (default http://host:port)"),
    ("workdir", "DIR", "root of the task working directories"),
)


def _env(name: str) -> str | None:
    return os.environ.get("CID_PROVIDER_" + name.upper())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cid-provider",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_ in (
        ("serve", "run the provider"),
        ("check", "validate the configuration and print what would be published"),
    ):
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument(
            "--config",
            default=_env("config"),
            required=_env("config") is None,
            metavar="FILE",
            help="the provider's TOML configuration [CID_PROVIDER_CONFIG]",
        )
        for key, metavar, text in _OVERRIDES:
            flag = "--" + key.replace("_", "-")
            p.add_argument(
                flag,
                dest=key,
                default=_env(key),
                metavar=metavar,
                help=f"{text} [CID_PROVIDER_{key.upper()}]",
            )
        port = _env("port")
        p.add_argument(
            "--port",
            type=int,
            default=int(port) if port else None,
            help="listen port; 0 picks a free one [CID_PROVIDER_PORT]",
        )
        p.set_defaults(command=name)
    serve = sub.choices["serve"]
    serve.add_argument(
        "--ready-file",
        default=None,
        help="write 'host port' here once listening and registered (for scripts and tests)",
    )
    serve.add_argument("--log-level", default=_env("log_level") or "info")
    return parser


def configure(args: argparse.Namespace) -> ProviderConfig:
    config = load_config(args.config)
    overrides: dict[str, Any] = {key: getattr(args, key) for key, _, _ in _OVERRIDES}
    overrides["port"] = args.port
    return config.with_overrides(**overrides)


def _write_ready(path: str, host: str, port: int) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"{host} {port}\n")
    os.replace(tmp, path)


async def _serve(config: ProviderConfig, ready_file: str | None) -> int:
    from .service import ReferenceProvider

    provider = ReferenceProvider(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, provider.request_stop)

    def ready(host: str, port: int) -> None:
        if ready_file:
            _write_ready(ready_file, host, port)

    await provider.run(ready=ready)
    return 0


def _check(config: ProviderConfig) -> int:
    value = {
        "namespace": config.namespace.to_text(),
        "registry": config.registry,
        "listen": f"{config.host}:{config.port}",
        "workdir": str(config.workdir),
        "offers": [
            {
                "name": o.name.to_text(),
                "class": o.body.compute_class,
                "region": o.body.location.region,
                "units_total": o.units_total,
                "price": o.body.price.to_value(),
            }
            for o in config.offers
        ],
    }
    print(json.dumps(value, ensure_ascii=False, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = configure(args)
        if args.command == "check":
            return _check(config)
        setup_logging(args.log_level)
        return asyncio.run(_serve(config, args.ready_file))
    except CidError as e:
        field = f" [{e.field}]" if e.field else ""
        print(f"cid-provider: error {e.name} ({e.code}): {e.message}{field}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
