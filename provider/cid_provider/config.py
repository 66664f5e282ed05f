"""The reference provider's configuration: one TOML file (read with :mod:`tomllib`).

A configuration describes one provider namespace and the pools it sells::

    [provider]
    namespace = "guizhou"                      # the delegated namespace (must already exist,
    display_name = "Guizhou Green Compute"     #  or give `delegation` to submit it)
    registry = "http://127.0.0.1:8470"
    root_keys = "root.pub.json"                # trust anchor: checks the delegation on start
    namespace_key = "guizhou.key"              # signs the zone record, offers and refreshes
    service_key = "guizhou-service.key"        # signs quotes, agreements, statuses, receipts
    # delegation = "guizhou.delegation.json"   # optional: a delegation to submit first

    [server]
    host = "127.0.0.1"
    port = 8481                                # 0: any free port (see --ready-file)
    # public_url = "https://compute.example"   # default: http://host:port
    workdir = "var/guizhou"                    # task working directories
    # max_concurrent_tasks = 4                 # default: one per CPU; the rest stay queued
    # allowed_commands = ["python3", "sh"]     # default: any

    [publish]
    zone_ttl_s = 86400
    refresh_interval_s = 30                    # availability heartbeat (and on every change)

    [policy]                                   # ListPricePolicy's attributes, by name
    quote_valid_s = 120
    wall_s = 600                               # per-task limits the agreements fix
    output_bytes = 1048576
    cancellation = { notice_s = 3600, fee_share = "0.1" }

    [[offers]]
    name = "gz-general.guizhou"                # within the namespace
    ttl_s = 600                                # offer validity; refreshed before it lapses
    class = "general"                          # the rest is the offer body of spec section 4
    title = "Guizhou green general compute"
    unit = { vcpu = 1, memory_mib = 2048, cpu = { arch = "x86_64" } }
    location = { country = "CN", region = "CN-GZ", city = "贵安" }
    availability = { units_total = 8000 }      # units_free is the ledger's, published live
    price = { currency = "CNY", items = [ { resource = "vcpu", amount = "5", per = "month" } ] }

Relative paths are relative to the configuration file. Decimal figures may be
written as strings (exact) or TOML numbers. Every error names the offending
member (``field``) and is a :class:`~cid.errors.SchemaError` or
:class:`~cid.errors.DecodeError`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from cid.errors import CidError, DecodeError, SchemaError
from cid.identifier import Identifier
from cid.model import validate
from cid.negotiation import Cancellation, Sla
from cid.provider.policy import ListPricePolicy
from cid.record import Contact, OfferBody

__all__ = [
    "OfferConfig",
    "ProviderConfig",
    "load_config",
    "parse_config",
]

_OFFER_META: Final = ("name", "ttl_s")


@dataclass(frozen=True)
class OfferConfig:
    """One pool: its identifier, its body as published (``units_free`` = ``units_total``)."""

    name: Identifier
    body: OfferBody
    ttl_s: int = 600

    @property
    def units_total(self) -> int:
        return self.body.availability.units_total


@dataclass(frozen=True)
class ProviderConfig:
    """Everything ``cid-provider serve`` needs."""

    namespace: Identifier
    display_name: str
    registry: str
    namespace_key: Path
    service_key: Path
    offers: tuple[OfferConfig, ...]
    root_keys: Path | None = None
    delegation: Path | None = None
    contact: Contact | None = None
    host: str = "127.0.0.1"
    port: int = 8480
    public_url: str | None = None
    workdir: Path = Path("var/provider")
    max_concurrent_tasks: int | None = None
    """Tasks running at once (the others stay queued); default: one per CPU."""
    allowed_commands: tuple[str, ...] | None = None
    """When given, the only ``argv[0]`` values tasks may run."""
    zone_ttl_s: int = 86_400
    refresh_interval_s: float = 30.0
    policy: ListPricePolicy = field(default_factory=ListPricePolicy)
    source: Path | None = None

    def with_overrides(self, **overrides: Any) -> ProviderConfig:
        """A copy with the non-``None`` overrides applied (command-line flags)."""
        values = {k: v for k, v in overrides.items() if v is not None}
        for key in ("namespace_key", "service_key", "root_keys", "delegation", "workdir"):
            if key in values:
                values[key] = Path(values[key])
        return replace(self, **values)

    def offer(self, name: Identifier) -> OfferConfig | None:
        return next((o for o in self.offers if o.name == name), None)


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SchemaError(f"{where} must be a table", field=where, detail={"rule": "type"})
    return value


def _allowed(table: Mapping[str, Any], where: str, names: tuple[str, ...]) -> None:
    extra = sorted(set(table) - set(names))
    if extra:
        raise SchemaError(
            f"unknown member {extra[0]!r} in [{where}]",
            field=f"{where}.{extra[0]}",
            detail={"rule": "extra_forbidden"},
        )


def _str(table: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value:
        raise SchemaError(
            f"{where}.{key} must be a non-empty string",
            field=f"{where}.{key}",
            detail={"rule": "type"},
        )
    return value


def _int(table: Mapping[str, Any], key: str, where: str, default: int, lo: int = 0) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise SchemaError(
            f"{where}.{key} must be an integer >= {lo}",
            field=f"{where}.{key}",
            detail={"rule": "type"},
        )
    return value


def _decimals(value: Any) -> Any:
    """TOML numbers where the models want canonical decimal strings: floats become Decimals."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _decimals(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decimals(v) for v in value]
    return value


def _path(base: Path, value: Any, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise SchemaError(f"{where} must be a path", field=where, detail={"rule": "type"})
    p = Path(value).expanduser()
    return (p if p.is_absolute() else base / p).resolve()


def _offer(index: int, value: Any, namespace: Identifier) -> OfferConfig:
    where = f"offers[{index}]"
    table = dict(_table(value, where))
    try:
        name = Identifier.parse(_str(table, "name", where))
    except CidError as e:
        raise SchemaError(f"{where}.name: {e.message}", field=f"{where}.name") from e
    if not name.is_strictly_within(namespace):
        raise SchemaError(
            f"offer {name} is not within the namespace {namespace}",
            field=f"{where}.name",
            detail={"rule": "provider_scope"},
        )
    ttl_s = _int(table, "ttl_s", where, 600, lo=30)
    body_value = _decimals({k: v for k, v in table.items() if k not in _OFFER_META})
    avail = _table(body_value.get("availability", {}), f"{where}.availability")
    total = _int(avail, "units_total", f"{where}.availability", 0, lo=1)
    body_value["availability"] = {"units_total": total, "units_free": total}
    body = validate(OfferBody, body_value, where=where)
    return OfferConfig(name=name, body=body, ttl_s=ttl_s)


def _policy(table: Mapping[str, Any]) -> ListPricePolicy:
    """A :class:`ListPricePolicy` from ``[policy]``: its attributes, by name."""
    known = tuple(f.name for f in fields(ListPricePolicy))
    _allowed(table, "policy", known)
    value = _decimals(dict(table))
    kwargs: dict[str, Any] = {}
    for name in known:
        if name not in value:
            continue
        v = value[name]
        if name == "cancellation":
            kwargs[name] = validate(Cancellation, v, where="policy.cancellation")
        elif name == "sla":
            kwargs[name] = validate(Sla, v, where="policy.sla")
        elif name == "counter_quantity":
            if not isinstance(v, bool):
                raise SchemaError(
                    "policy.counter_quantity must be true or false", field="policy.counter_quantity"
                )
            kwargs[name] = v
        else:
            kwargs[name] = _int(value, name, "policy", 0, lo=1)
    return ListPricePolicy(**kwargs)


def parse_config(value: Mapping[str, Any], *, base: Path = Path()) -> ProviderConfig:
    """Build a configuration from a parsed TOML document; paths are relative to ``base``."""
    _allowed(value, "", ("provider", "server", "publish", "policy", "offers"))
    prov = _table(value.get("provider"), "provider")
    _allowed(
        prov,
        "provider",
        (
            "namespace",
            "display_name",
            "registry",
            "root_keys",
            "namespace_key",
            "service_key",
            "delegation",
            "contact",
        ),
    )
    try:
        namespace = Identifier.parse(_str(prov, "namespace", "provider"))
    except CidError as e:
        raise SchemaError(f"provider.namespace: {e.message}", field="provider.namespace") from e
    if namespace.is_root:
        raise SchemaError("the provider namespace cannot be the root", field="provider.namespace")
    server = _table(value.get("server", {}), "server")
    _allowed(
        server,
        "server",
        ("host", "port", "public_url", "workdir", "max_concurrent_tasks", "allowed_commands"),
    )
    allowed = server.get("allowed_commands")
    if allowed is not None and (
        not isinstance(allowed, list) or not all(isinstance(c, str) and c for c in allowed)
    ):
        raise SchemaError(
            "server.allowed_commands must be a list of command names",
            field="server.allowed_commands",
            detail={"rule": "type"},
        )
    publish = _table(value.get("publish", {}), "publish")
    _allowed(publish, "publish", ("zone_ttl_s", "refresh_interval_s"))
    offers_value = value.get("offers", [])
    if not isinstance(offers_value, list) or not offers_value:
        raise SchemaError("at least one [[offers]] table", field="offers", detail={"rule": "type"})
    offers = tuple(_offer(i, o, namespace) for i, o in enumerate(offers_value))
    names = [o.name for o in offers]
    if len(set(names)) != len(names):
        raise SchemaError("two offers with one name", field="offers", detail={"rule": "unique"})
    contact = (
        validate(Contact, prov["contact"], where="provider.contact") if "contact" in prov else None
    )
    refresh = publish.get("refresh_interval_s", 30.0)
    if isinstance(refresh, bool) or not isinstance(refresh, int | float) or refresh <= 0:
        raise SchemaError(
            "publish.refresh_interval_s must be a positive number",
            field="publish.refresh_interval_s",
        )
    port = _int(server, "port", "server", 8480)
    if port > 65535:
        raise SchemaError("server.port must be at most 65535", field="server.port")
    public_url = server.get("public_url")
    if public_url is not None and not (isinstance(public_url, str) and public_url):
        raise SchemaError("server.public_url must be a URL", field="server.public_url")
    return ProviderConfig(
        namespace=namespace,
        display_name=_str(prov, "display_name", "provider", namespace.to_text()),
        registry=_str(prov, "registry", "provider", "http://127.0.0.1:8470"),
        namespace_key=_path(base, prov.get("namespace_key"), "provider.namespace_key"),
        service_key=_path(base, prov.get("service_key"), "provider.service_key"),
        root_keys=_path(base, prov["root_keys"], "provider.root_keys")
        if "root_keys" in prov
        else None,
        delegation=_path(base, prov["delegation"], "provider.delegation")
        if "delegation" in prov
        else None,
        contact=contact,
        offers=offers,
        host=_str(server, "host", "server", "127.0.0.1"),
        port=port,
        public_url=public_url.rstrip("/") if isinstance(public_url, str) else None,
        workdir=_path(base, server.get("workdir", "var/provider"), "server.workdir"),
        max_concurrent_tasks=_int(server, "max_concurrent_tasks", "server", 1, lo=1)
        if "max_concurrent_tasks" in server
        else None,
        allowed_commands=tuple(allowed) if allowed is not None else None,
        zone_ttl_s=_int(publish, "zone_ttl_s", "publish", 86_400, lo=60),
        refresh_interval_s=float(refresh),
        policy=_policy(_table(value.get("policy", {}), "policy")),
    )


def load_config(path: str | Path) -> ProviderConfig:
    """Read and check a configuration file."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            value = tomllib.load(f)
    except OSError as e:
        raise DecodeError(f"cannot read configuration {p}: {e.strerror or e}") from e
    except tomllib.TOMLDecodeError as e:
        raise DecodeError(f"configuration {p} is not TOML: {e}", detail={"rule": "syntax"}) from e
    return replace(parse_config(value, base=p.parent.resolve()), source=p)
