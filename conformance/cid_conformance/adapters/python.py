"""The reference library's adapter (the implementation side of :mod:`cid_conformance.adapter`).

This module is *not* part of the suite's checking logic: it is how the reference
library ``cid`` plugs into the suite, exactly as another implementation would with
its own adapter. It runs in process (``--adapter python``) or as a subprocess
speaking JSON lines (``python -m cid_conformance.adapters.python``), the way an
adapter for an implementation in another language would.

An exception that is not a :class:`cid.errors.CidError` is the implementation
crashing on its input: it is answered as an INTERNAL (6003) error, which the
cases count against the implementation ([REQ-ENC-010]).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import cid
from cid import codec, query_text
from cid.envelope import Envelope
from cid.errors import CidError
from cid.identifier import Identifier
from cid.model import validate
from cid.signing import PublicKey, b64url_decode, key_id
from cid.trust import TrustState

from ..adapter import PROTOCOL_VERSION, Outcome

__all__ = ["PythonAdapter", "main"]

Handler = Callable[["PythonAdapter", Mapping[str, Any]], Awaitable[dict[str, Any]]]
_HANDLERS: dict[str, Handler] = {}


def _op(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        _HANDLERS[name] = fn
        return fn

    return register


def _keys(values: Any) -> list[PublicKey]:
    return [validate(PublicKey, v, where="keys") for v in values]


class PythonAdapter:
    """The reference library behind the adapter interface."""

    def __init__(self) -> None:
        self.implementation = f"cid {cid.__version__} (reference, Python)"
        self.ops = frozenset(_HANDLERS)
        self._handles: dict[str, Any] = {}
        self._clocks: dict[str, int] = {}
        self._n = 0

    async def call(self, op: str, args: Mapping[str, Any]) -> Outcome:
        handler = _HANDLERS.get(op)
        if handler is None:
            from ..case import CaseSkipped

            raise CaseSkipped(f"the reference adapter does not implement {op}")
        try:
            return Outcome(ok=await handler(self, args))
        except CidError as e:
            return Outcome(error=e.to_wire())
        except Exception as e:  # the implementation crashed on this input
            return Outcome(
                error={
                    "code": 6003,
                    "name": "INTERNAL",
                    "message": f"{type(e).__name__}: {e}",
                    "retryable": True,
                }
            )

    async def close(self) -> None:
        for handle in list(self._handles.values()):
            closer = getattr(handle, "close", None)
            if closer is not None:
                await closer()
        self._handles.clear()

    def _handle(self, kind: str, obj: Any) -> str:
        self._n += 1
        name = f"{kind}{self._n}"
        self._handles[name] = obj
        self._clocks[name] = 0
        return name

    def _clock(self, name: str) -> Callable[[], int]:
        return lambda: self._clocks[name]


@_op("hello")
async def _hello(a: PythonAdapter, args: Mapping[str, Any]) -> dict[str, Any]:
    return {"implementation": a.implementation, "ops": sorted(a.ops), "protocol": PROTOCOL_VERSION}


@_op("identifier.parse")
async def _parse(a: PythonAdapter, args: Mapping[str, Any]) -> dict[str, Any]:
    ident = Identifier.parse(args.get("input"))  # type: ignore[arg-type]
    return {"canonical": ident.to_text(), "ascii": ident.to_ascii(), "labels": list(ident.labels)}


@_op("identifier.sort")
async def _sort(a: PythonAdapter, args: Mapping[str, Any]) -> dict[str, Any]:
    names = sorted(Identifier.parse(n) for n in args["names"])
    return {"names": [n.to_text() for n in names]}


@_op("identifier.within")
async def _within(a: PythonAdapter, args: Mapping[str, Any]) -> dict[str, Any]:
    name, ns = Identifier.parse(args["name"]), Identifier.parse(args["namespace"])
    return {"within": name.is_within(ns)}


@_op("codec.encode")
async def _encode(a: PythonAdapter, args: Mapping[str, Any]) -> dict[str, Any]:
    return {"hex": codec.encode(args["value"], args["encoding"]).hex()}


@_op("codec.decode")
async def _decode(a: PythonAdapter, args: Mapping[str, Any]) -> dict[str, Any]:
    value = codec.decode(
        bytes.fromhex(args["hex"]), args["encoding"], require_canonical=bool(args.get("canonical"))
    )
    return {"value": value}


@_op("signing.key_id")
async def _kid(a: PythonAdapter, args: Mapping[str, Any]) -> dict[str, Any]:
    key = validate(PublicKey, {"alg": args["alg"], "pub": args["pub"]}, where="key")
    return {"kid": key_id(key.alg, b64url_decode(key.pub, length=32))}


def _envelope(args: Mapping[str, Any]) -> Envelope:
    if "hex" in args:
        return Envelope.decode(bytes.fromhex(args["hex"]), args["encoding"])
    return Envelope.from_value(args["envelope"])


@_op("record.verify")
async def _verify_record(a: PythonAdapter, args: Mapping[str, Any]) -> dict[str, Any]:
    trust = TrustState(_keys(args["root_keys"]))
    now = int(args["now"])
    for value in args.get("chain", []):
        trust.add(Envelope.from_value(value), now=int(args.get("chain_now", now)))
    env = _envelope(args)
    trust.verify(env, now=now, last_serial=args.get("last_serial"))
    return {
        "digest": env.digest(),
        "message_hex": env.message().hex(),
        "signing_input_hex": env.signing_input(env.sigs[0].kid).hex(),
        "typ": env.typ,
    }


@_op("message.verify")
async def _verify_message(a: PythonAdapter, args: Mapping[str, Any]) -> dict[str, Any]:
    env = _envelope(args)
    keys = {k.kid: k for k in _keys(args["keys"])}
    env.verify(keys, typ=list(args["typ"]), now=int(args["now"]), require=args.get("required"))
    return {"digest": env.digest()}


@_op("query_text.parse")
async def _query_text_parse(a: PythonAdapter, args: Mapping[str, Any]) -> dict[str, Any]:
    return {"query": query_text.parse(args.get("text")).to_value()}  # type: ignore[arg-type]


@_op("query_text.render")
async def _query_text_render(a: PythonAdapter, args: Mapping[str, Any]) -> dict[str, Any]:
    from cid.query import Query

    return {"text": query_text.to_text(validate(Query, args["query"], where=""))}


@_op("resolver.open")
async def _resolver_open(a: PythonAdapter, args: Mapping[str, Any]) -> dict[str, Any]:
    from cid.resolver import Resolver

    name = a._handle("resolver", None)
    a._handles[name] = Resolver(
        list(args["registries"]),
        _keys(args["root_keys"]),
        clock=a._clock(name),
        budget=int(args.get("budget", 16)),
        serve_stale=bool(args.get("serve_stale", False)),
        stale_max_s=int(args.get("stale_max_s", 300)),
        timeout_s=float(args.get("timeout_s", 5.0)),
    )
    return {"handle": name}


@_op("resolver.resolve")
async def _resolve(a: PythonAdapter, args: Mapping[str, Any]) -> dict[str, Any]:
    handle = str(args["handle"])
    a._clocks[handle] = int(args["now"])
    answer = await a._handles[handle].resolve(args["name"])
    return {
        "name": answer.name.to_text(),
        "records": [r.envelope.to_value() for r in answer.records],
        "stale": answer.stale,
    }


@_op("resolver.close")
async def _resolver_close(a: PythonAdapter, args: Mapping[str, Any]) -> dict[str, Any]:
    handle = a._handles.pop(str(args["handle"]), None)
    if handle is not None:
        await handle.close()
    return {}


@_op("catalogue.open")
async def _catalogue_open(a: PythonAdapter, args: Mapping[str, Any]) -> dict[str, Any]:
    from cid.catalogue import Catalogue

    name = a._handle("catalogue", None)
    a._handles[name] = Catalogue(
        str(args["registry"]), _keys(args["root_keys"]), clock=a._clock(name)
    )
    return {"handle": name}


@_op("catalogue.sync")
async def _catalogue_sync(a: PythonAdapter, args: Mapping[str, Any]) -> dict[str, Any]:
    handle = str(args["handle"])
    a._clocks[handle] = int(args["now"])
    return {"rseq": await a._handles[handle].sync()}


@_op("catalogue.search")
async def _catalogue_search(a: PythonAdapter, args: Mapping[str, Any]) -> dict[str, Any]:
    from cid.query import Query

    handle = str(args["handle"])
    a._clocks[handle] = int(args["now"])
    query = validate(Query, args["query"], where="")
    result: dict[str, Any] = a._handles[handle].search(query).to_value()
    return result


@_op("catalogue.latency_model")
async def _catalogue_latency_model(a: PythonAdapter, args: Mapping[str, Any]) -> dict[str, Any]:
    handle = str(args["handle"])
    a._clocks[handle] = int(args["now"])
    model = await a._handles[handle].update_latency_model()
    return {"model": None if model is None else model.to_value()}


@_op("catalogue.close")
async def _catalogue_close(a: PythonAdapter, args: Mapping[str, Any]) -> dict[str, Any]:
    handle = a._handles.pop(str(args["handle"]), None)
    if handle is not None:
        await handle.close()
    return {}


async def _serve() -> None:
    adapter = PythonAdapter()
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.buffer.readline)
            if not line:
                return
            request = json.loads(line)
            rid = request.get("id")
            op = str(request.get("op"))
            if op not in _HANDLERS:
                answer: dict[str, Any] = {"id": rid, "unsupported": f"no operation {op}"}
            else:
                out = await adapter.call(op, request.get("args") or {})
                answer = (
                    {"id": rid, "ok": out.ok}
                    if out.ok is not None
                    else {"id": rid, "error": out.error}
                )
            sys.stdout.write(json.dumps(answer, ensure_ascii=True) + "\n")
            sys.stdout.flush()
    finally:
        await adapter.close()


def main() -> None:
    """Speak the adapter protocol on stdin/stdout until stdin closes."""
    asyncio.run(_serve())


if __name__ == "__main__":  # pragma: no cover
    main()
