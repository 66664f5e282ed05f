"""The adapter interface: how the suite drives an implementation's own parser, verifier and
resolver.

The vectors of ``spec/vectors/`` and the resolver cases check a *library*, not an
endpoint, so the suite needs to call into the implementation. It does so through
a small language-neutral protocol, **JSON lines over a subprocess's stdin and
stdout** (one request per line, one answer per line, in order):

    → {"id": 7, "op": "identifier.parse", "args": {"input": "CID:Foo.Bar"}}
    ← {"id": 7, "ok": {"canonical": "foo.bar", "ascii": "foo.bar", "labels": ["foo", "bar"]}}
    ← {"id": 7, "error": {"code": 1001, "name": "IDENTIFIER_INVALID", "message": "…",
                          "retryable": false, "detail": {"reason": "EMPTY_LABEL"}}}
    ← {"id": 7, "unsupported": "why"}

``error`` is the implementation's error as a wire error object (§10.2); an
operation the implementation does not offer answers ``unsupported`` and the
cases that need it are skipped. The first request is always ``hello``, answered
with ``{"ok": {"implementation": "...", "ops": [...]}}``. The operations and
their arguments are listed in :data:`OPERATIONS` and in ``conformance/README.md``.
Binary data travels as lower-case hex (``*_hex``); cid values as JSON.

Two adapters ship with the suite: :class:`SubprocessAdapter` runs any command that
speaks the protocol (``--adapter-cmd``), and ``--adapter python`` runs the
reference library's adapter (:mod:`cid_conformance.adapters.python`) in process.
The reference adapter also runs as a subprocess
(``python -m cid_conformance.adapters.python``), which is how the protocol
itself is tested.
"""

from __future__ import annotations

import asyncio
import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from .case import CaseSkipped

__all__ = [
    "OPERATIONS",
    "PROTOCOL_VERSION",
    "Adapter",
    "AdapterBroken",
    "Outcome",
    "SubprocessAdapter",
]

PROTOCOL_VERSION: Final = 1

OPERATIONS: Final[dict[str, str]] = {
    "hello": "{} -> {implementation, ops}",
    "identifier.parse": "{input: any JSON value} -> {canonical, ascii, labels}",
    "identifier.sort": "{names: [text]} -> {names: [canonical text in canonical order]}",
    "identifier.within": "{name, namespace} -> {within: bool}",
    "codec.encode": "{value, encoding: json|msgpack} -> {hex}",
    "codec.decode": "{hex, encoding, canonical: bool} -> {value}",
    "signing.key_id": "{alg, pub} -> {kid}",
    "record.verify": "{root_keys: [key], chain: [envelope], chain_now?, envelope | {hex, "
    "encoding}, now, last_serial?} -> {digest, message_hex, signing_input_hex, typ}",
    "message.verify": "{envelope, keys: [key], typ: [typ], now, required?: [kid]} -> {digest}",
    "query_text.parse": "{text} -> {query: the query object of §7} | error QUERY_SYNTAX (1005), "
    "detail {offset (code points), token (as written), expected, field?, rule?} (§13.6)",
    "query_text.render": "{query: a query object of §7} -> {text} (§13.5)",
    "resolver.open": "{registries: [url], root_keys, budget?, serve_stale?, stale_max_s?} -> "
    "{handle}",
    "resolver.resolve": "{handle, name, now} -> {name, records: [envelope], stale}",
    "resolver.close": "{handle} -> {}",
    "catalogue.open": "{registry: url, root_keys} -> {handle}",
    "catalogue.sync": "{handle, now} -> {rseq}",
    "catalogue.search": "{handle, query, now} -> SearchResponse",
    "catalogue.latency_model": "{handle, now} -> {model}: fetch, verify and adopt the "
    "registry's latency model (null when it publishes none)",
    "catalogue.close": "{handle} -> {}",
}


class AdapterBroken(Exception):  # noqa: N818 - the adapter process itself failed
    """The adapter did not answer per the protocol (the suite errors, the target does not fail)."""


@dataclass(frozen=True)
class Outcome:
    """One answer: ``ok`` (a map) or ``error`` (a wire error object)."""

    ok: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    @property
    def code(self) -> int | None:
        code = (self.error or {}).get("code")
        return code if isinstance(code, int) and not isinstance(code, bool) else None

    @property
    def name(self) -> str | None:
        return (self.error or {}).get("name")

    @property
    def detail(self) -> dict[str, Any]:
        detail = (self.error or {}).get("detail")
        return detail if isinstance(detail, dict) else {}

    def brief(self) -> str:
        if self.error is not None:
            message = self.error.get("message", "")
            return f"error {self.name}({self.code}) {self.detail or ''} {message}"
        return f"ok {json.dumps(self.ok, ensure_ascii=False)[:200]}"


class Adapter(Protocol):
    """What the cases call."""

    ops: frozenset[str]
    implementation: str

    async def call(self, op: str, args: Mapping[str, Any]) -> Outcome: ...

    async def close(self) -> None: ...


async def require(adapter: Adapter, op: str) -> None:
    """Skip the case when the implementation does not offer ``op``."""
    if op not in adapter.ops:
        raise CaseSkipped(f"the adapter does not implement {op}")


def parse_answer(line: bytes, expected_id: int) -> Outcome:
    try:
        value = json.loads(line)
    except ValueError as e:
        raise AdapterBroken(f"adapter answered a line that is not JSON: {line[:200]!r}") from e
    if not isinstance(value, dict) or value.get("id") != expected_id:
        raise AdapterBroken(f"adapter answered out of order: {line[:200]!r}")
    if "unsupported" in value:
        raise CaseSkipped(f"the adapter does not support this: {value['unsupported']}")
    if isinstance(value.get("ok"), dict):
        return Outcome(ok=value["ok"])
    if isinstance(value.get("error"), dict):
        return Outcome(error=value["error"])
    raise AdapterBroken(f"adapter answer has neither ok nor error: {line[:200]!r}")


class SubprocessAdapter:
    """An implementation's adapter run as a subprocess speaking JSON lines."""

    def __init__(self, command: str, *, timeout_s: float = 30.0) -> None:
        self.command = command
        self.timeout_s = timeout_s
        self.ops: frozenset[str] = frozenset()
        self.implementation = ""
        self._proc: asyncio.subprocess.Process | None = None
        self._next = 0
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            *shlex.split(self.command),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024,
        )
        hello = await self.call("hello", {"protocol": PROTOCOL_VERSION})
        if hello.ok is None:
            raise AdapterBroken(f"hello failed: {hello.brief()}")
        self.implementation = str(hello.ok.get("implementation", "?"))
        self.ops = frozenset(str(o) for o in hello.ok.get("ops", []))

    async def call(self, op: str, args: Mapping[str, Any]) -> Outcome:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            raise AdapterBroken("adapter not started")
        async with self._lock:
            self._next += 1
            request = {"id": self._next, "op": op, "args": dict(args)}
            proc.stdin.write(json.dumps(request, ensure_ascii=True).encode() + b"\n")
            await proc.stdin.drain()
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), timeout=self.timeout_s)
            except TimeoutError as e:
                raise AdapterBroken(f"adapter did not answer {op} in {self.timeout_s:g} s") from e
            if not line:
                raise AdapterBroken(f"adapter exited (status {proc.returncode}) during {op}")
            return parse_answer(line, self._next)

    async def close(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), timeout=5)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        self._proc = None
