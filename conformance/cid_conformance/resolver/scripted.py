"""Registries under the suite's control, and the signed world they serve.

The ``resolver`` target checks an implementation's resolver and catalogue (§14)
by pointing them at registries the suite runs itself on loopback, whose every
answer a case scripts: a correct answer, a tampered proof, a referral to another
scripted registry, a loop, an outage, a feed with a gap. The implementation's
clock is the case's virtual clock (the adapter passes ``now`` with every call),
so TTLs and expiries are checked without waiting.
"""

from __future__ import annotations

import hashlib
import json
import socket
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from cid import codec
from cid.feed import chain_step
from cid.identifier import Identifier
from cid.signing import SigningKey, b64url_encode

from ..signed import digest_of, header, key_value, sign, signed

__all__ = ["DAY", "NOW", "Pki", "ScriptedRegistry", "closed_port_url", "problem"]

NOW: Final = 1_800_000_000
"""The cases' virtual "now" (2027-01-15)."""
DAY: Final = 86_400

Reply = tuple[int, Any]
"""(HTTP status, JSON body): a cid value for 200, a problem object otherwise."""
Script = Callable[[], Reply] | Reply


def problem(code: int, name: str, status: int, message: str = "", **detail: Any) -> Reply:
    err: dict[str, Any] = {
        "code": code,
        "name": name,
        "message": message or name,
        "retryable": status >= 500 or code in (6001, 6004),
    }
    if detail:
        err["detail"] = detail
    return status, {
        "type": f"urn:cid:error:{name}",
        "title": name,
        "status": status,
        "detail": err["message"],
        "instance": "/",
        "cid": err,
    }


NOT_FOUND = problem(3001, "NOT_FOUND", 404, "no records")
UNAVAILABLE = problem(6004, "UNAVAILABLE", 503, "down for maintenance")


@dataclass
class ScriptedRegistry:
    """A registry on loopback whose answers the case decides, and which counts what it is asked."""

    names: dict[str, Script] = field(default_factory=dict)
    feed_pages: dict[int, Script] = field(default_factory=dict)
    """Scripted pages by ``since``; other positions are served from :attr:`feed`."""
    feed: Feed | None = None
    snapshot: Script | None = None
    latency_model: Script | None = None
    """The answer to ``GET /v1/latency-model``; NOT_FOUND (rule ``latency_model``) when None."""
    down: bool = False
    hits: Counter[str] = field(default_factory=Counter)
    feed_since: list[int] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/v1/names/{name}", self._name)
        app.router.add_get("/v1/feed", self._feed)
        app.router.add_get("/v1/snapshot", self._snapshot)
        app.router.add_get("/v1/latency-model", self._latency_model)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @staticmethod
    def _respond(reply: Reply) -> web.Response:
        status, body = reply
        if status == 200:
            return web.Response(body=codec.encode_json(body), content_type="application/cid+json")
        return web.Response(
            text=json.dumps(body), status=status, content_type="application/problem+json"
        )

    def _run(self, script: Script | None, default: Reply) -> web.Response:
        if self.down:
            return self._respond(UNAVAILABLE)
        if script is None:
            return self._respond(default)
        return self._respond(script() if callable(script) else script)

    async def _name(self, request: web.Request) -> web.Response:
        raw = request.match_info["name"]
        name = "." if raw in (".", "") else Identifier.parse(raw).to_text()
        self.hits[name] += 1
        return self._run(self.names.get(name), NOT_FOUND)

    async def _feed(self, request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        self.hits["feed"] += 1
        self.feed_since.append(since)
        script = self.feed_pages.get(since)
        if script is None and self.feed is not None and since <= len(self.feed.changes):
            script = (200, self.feed.page(since))
        return self._run(script, problem(1003, "SCHEMA_VIOLATION", 422, rule="since_beyond_head"))

    async def _snapshot(self, request: web.Request) -> web.Response:
        self.hits["snapshot"] += 1
        return self._run(self.snapshot, problem(6004, "UNAVAILABLE", 503))

    async def _latency_model(self, request: web.Request) -> web.Response:
        self.hits["latency-model"] += 1
        default = problem(3001, "NOT_FOUND", 404, "no latency model", rule="latency_model")
        return self._run(self.latency_model, default)


def closed_port_url() -> str:
    """The URL of a loopback port nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@dataclass
class Pki:
    """A small signed world: the trust anchor, a provider namespace and helpers to sign in it."""

    root: SigningKey = field(default_factory=SigningKey.generate)
    service: SigningKey = field(default_factory=SigningKey.generate)
    keys: dict[str, SigningKey] = field(default_factory=dict)
    """Anchor key of each delegated namespace the world has signed."""

    @property
    def root_keys(self) -> list[dict[str, str]]:
        return [key_value(self.root)]

    def key(self, ns: str) -> SigningKey:
        if ns not in self.keys:
            self.keys[ns] = SigningKey.generate()
        return self.keys[ns]

    def delegation(
        self,
        ns: str,
        *,
        registries: Sequence[str] = (),
        serial: int = 1,
        exp: int = NOW + 30 * DAY,
        signer: SigningKey | None = None,
    ) -> dict[str, Any]:
        parent = Identifier.parse(ns).parent()
        by = signer or (self.root if parent.is_root else self.key(parent.to_text()))
        return signed(
            "delegation",
            ns,
            {"keys": [key_value(self.key(ns))], "registries": list(registries)},
            by,
            serial=serial,
            nbf=NOW - DAY,
            exp=exp,
            ttl=3600,
        )

    def offer(
        self,
        name: str,
        body: dict[str, Any],
        *,
        ns: str,
        serial: int = 1,
        ttl: int | None = 300,
        exp: int = NOW + DAY,
        nbf: int = NOW - 600,
        key: SigningKey | None = None,
    ) -> dict[str, Any]:
        return signed(
            "offer", name, body, key or self.key(ns), serial=serial, nbf=nbf, exp=exp, ttl=ttl
        )

    def refresh(
        self,
        offer: dict[str, Any],
        units_free: int,
        *,
        ns: str,
        serial: int,
        exp: int = NOW + DAY,
        ttl: int | None = 60,
    ) -> dict[str, Any]:
        return signed(
            "refresh",
            offer["header"]["sub"],
            {"base": digest_of(offer), "units_free": units_free},
            self.key(ns),
            serial=serial,
            nbf=NOW - 600,
            exp=exp,
            ttl=ttl,
        )

    def root_zone(self, *, signer: SigningKey | None = None) -> dict[str, Any]:
        return signed(
            "zone",
            ".",
            {"display_name": "scripted registry", "service_keys": [key_value(self.service)]},
            signer or self.root,
            serial=1,
            nbf=NOW - DAY,
            exp=NOW + 30 * DAY,
            ttl=3600,
        )

    def head(
        self, typ: str, body: dict[str, Any], *, at: int = NOW, key: SigningKey | None = None
    ) -> dict[str, Any]:
        hdr = header(typ, ".", serial=max(int(body["rseq"]), 1), nbf=at, exp=at + 3600, iat=at)
        return sign(hdr, {**body, "at": at}, [key or self.service])

    def latency_model(
        self,
        body: dict[str, Any],
        *,
        at: int = NOW,
        key: SigningKey | None = None,
        serial: int | None = None,
    ) -> dict[str, Any]:
        """A ``cid.latency.model`` envelope ([REQ-REG-065]), by the service key unless ``key``."""
        version = int(body.get("version", 1)) if serial is None else serial
        hdr = header("cid.latency.model", ".", serial=version, nbf=at, exp=at + 3600, iat=at)
        return sign(hdr, body, [key or self.service])


def answer(name: str, records: Sequence[dict[str, Any]], proof: Sequence[dict[str, Any]]) -> Reply:
    return 200, {"name": name, "records": list(records), "proof": list(proof)}


def referral(
    name: str,
    ns: str,
    registries: Sequence[str],
    delegation: dict[str, Any],
    proof: Sequence[dict[str, Any]],
) -> Reply:
    return 200, {
        "name": name,
        "records": [],
        "proof": list(proof),
        "referral": {"namespace": ns, "registries": list(registries), "delegation": delegation},
    }


@dataclass
class Feed:
    """A change feed with its chain, to serve pages and snapshots from."""

    pki: Pki
    changes: list[dict[str, Any]] = field(default_factory=list)
    chains: list[str] = field(default_factory=lambda: [b64url_encode(bytes(32))])

    def add(self, op: str, envelope: dict[str, Any], rtype: str | None = None) -> int:
        rseq = len(self.changes) + 1
        typ = envelope["header"]["typ"].rsplit(".", 1)[1]
        if rtype is None:
            rtype = {"refresh": "offer", "tombstone": envelope["body"].get("target")}.get(typ, typ)
        self.changes.append(
            {
                "envelope": envelope,
                "name": envelope["header"]["sub"],
                "op": op,
                "rseq": rseq,
                "type": rtype,
            }
        )
        self.chains.append(chain_step(self.chains[-1], rseq, codec.encode_msgpack(envelope)))
        return rseq

    def page(self, since: int, limit: int = 1000) -> dict[str, Any]:
        changes = self.changes[since : since + limit]
        last = since + len(changes)
        head = self.pki.head("cid.feed.head", {"chain": self.chains[last], "rseq": last})
        return {"changes": changes, "head": head}

    def snapshot_at(self, rseq: int) -> dict[str, Any]:
        held: dict[tuple[str, str], dict[str, Any]] = {}
        for change in self.changes[:rseq]:
            key = (change["name"], change["type"])
            if change["op"] == "put":
                held[key] = {"envelope": change["envelope"]}
            elif change["op"] == "refresh" and key in held:
                held[key]["refresh"] = change["envelope"]
            elif change["op"] == "delete":
                held.pop(key, None)
        ordered = sorted(held.items(), key=lambda kv: (_canonical(kv[0][0]), kv[0][1]))
        lines = "".join(
            f"{Identifier.parse(n).to_ascii()} {t} {digest_of(item['envelope'])}\n"
            for (n, t), item in ordered
        )
        digest = b64url_encode(hashlib.sha256(b"cid-snapshot-v1\n" + lines.encode()).digest())
        body = {"chain": self.chains[rseq], "digest": digest, "records": len(ordered), "rseq": rseq}
        return {
            "head": self.pki.head("cid.feed.snapshot", body),
            "records": [item for _, item in ordered],
        }


def _canonical(name: str) -> tuple[bytes, ...]:
    return tuple(label.encode() for label in reversed(Identifier.parse(name).to_ascii().split(".")))
