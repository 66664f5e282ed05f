"""Registry configuration: one frozen object, from flags or ``CID_REGISTRY_*`` variables."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cid.errors import DecodeError
from cid.latency import LatencyModel, default_model
from cid.model import validate
from cid.signing import PublicKey, SigningKey

__all__ = ["Settings", "load_key", "load_latency_model", "load_public_keys", "system_clock"]


def system_clock() -> int:
    return int(time.time())


def load_key(path: str | Path) -> SigningKey:
    """A signing key from a key file written by ``cid keygen``."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DecodeError(f"cannot read key file {path}: {e}") from e
    return SigningKey.from_file_value(value)


def load_public_keys(path: str | Path) -> list[PublicKey]:
    """Trust-anchor public keys: a key file, or a JSON list of ``{"alg", "pub"}`` objects."""
    try:
        value: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DecodeError(f"cannot read trust anchor {path}: {e}") from e
    items = value if isinstance(value, list) else [value]
    return [PublicKey(alg=item["alg"], pub=item["pub"]) for item in items]


def load_latency_model(spec: str) -> LatencyModel | None:
    """The latency model to rank and publish with ([REQ-REG-065], [REQ-REG-066]).

    ``default``: the library's reference model; ``none``: no model (RTTs only
    from the offers' own figures); otherwise a JSON file holding a ``LatencyModel``.
    """
    if spec == "default":
        return default_model()
    if spec == "none":
        return None
    try:
        value = json.loads(Path(spec).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DecodeError(f"cannot read latency model {spec}: {e}") from e
    return validate(LatencyModel, value, where=spec)


@dataclass(frozen=True)
class Settings:
    """Everything a registry process needs; see ``cid-registry serve --help``."""

    root_keys: list[PublicKey]
    """The trust anchor: the registry operator's root public keys."""
    service_key: SigningKey
    """Signs feed heads and snapshots; listed in the root zone record's service_keys."""
    store: str = "var/registry.sqlite3"
    host: str = "127.0.0.1"
    port: int = 8470
    max_body_bytes: int = 256 * 1024
    max_batch_bytes: int = 8 * 1024 * 1024
    max_batch_records: int = 1000
    rate_per_s: float = 500.0
    rate_burst: int = 1000
    search_budget: int = 250_000
    feed_page_max: int = 1000
    long_poll_max_s: float = 30.0
    read_timeout_s: float = 15.0
    shutdown_timeout_s: float = 10.0
    self_url: str | None = None
    """This registry's own base URL as delegations list it: a namespace whose delegation
    lists it is served here, not referred elsewhere ([REQ-REG-032])."""
    latency_model: LatencyModel | None = field(default_factory=default_model)
    """Estimates RTTs in searches and is published at /v1/latency-model; None: no model."""
    clock: Callable[[], int] = field(default=system_clock)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build from ``CID_REGISTRY_*`` environment variables, then ``overrides``."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        if "CID_REGISTRY_ROOT_KEYS" in env:
            values["root_keys"] = load_public_keys(env["CID_REGISTRY_ROOT_KEYS"])
        if "CID_REGISTRY_SERVICE_KEY" in env:
            values["service_key"] = load_key(env["CID_REGISTRY_SERVICE_KEY"])
        if "CID_REGISTRY_LATENCY_MODEL" in env:
            values["latency_model"] = load_latency_model(env["CID_REGISTRY_LATENCY_MODEL"])
        simple: dict[str, Callable[[str], Any]] = {
            "store": str,
            "host": str,
            "port": int,
            "max_body_bytes": int,
            "rate_per_s": float,
            "rate_burst": int,
            "search_budget": int,
            "long_poll_max_s": float,
        }
        for key, conv in simple.items():
            var = "CID_REGISTRY_" + key.upper()
            if var in env:
                values[key] = conv(env[var])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
