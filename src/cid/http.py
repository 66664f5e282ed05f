"""HTTP binding helpers shared by the registry and provider apps (spec sections 12 and 15).

* Request bodies are ``application/cid+json`` (or ``application/json``) or
  ``application/cid+msgpack`` (or ``application/msgpack``, ``application/x-msgpack``)
  ([REQ-REG-002]); anything else is ``415 UNSUPPORTED_MEDIA_TYPE``.
* Responses follow ``Accept`` ([REQ-REG-003]): msgpack when it is preferred,
  JSON otherwise; ``406 NOT_ACCEPTABLE`` when neither is acceptable.
* Errors are ``application/problem+json`` ([REQ-REG-004]) whose ``cid`` member
  is the wire error object of spec section 10, so :func:`cid.errors.from_wire`
  rebuilds the exception on the client side.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Final

from aiohttp import web

from . import codec
from .codec import Encoding, Limits, Scan
from .errors import CidError, NotAcceptableError, UnsupportedMediaTypeError

__all__ = [
    "PROBLEM_TYPE",
    "decode_body",
    "negotiate",
    "problem_response",
    "render",
]

PROBLEM_TYPE: Final = "application/problem+json"
_JSON_TYPES: Final = ("application/cid+json", "application/json")
_MSGPACK_TYPES: Final = ("application/cid+msgpack", "application/msgpack", "application/x-msgpack")


def body_encoding(content_type: str) -> Encoding:
    """The encoding of a request body by its media type ([REQ-REG-002])."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media in _JSON_TYPES:
        return "json"
    if media in _MSGPACK_TYPES:
        return "msgpack"
    raise UnsupportedMediaTypeError(
        f"media type {media or '(none)'!r} is not application/cid+json or application/cid+msgpack",
        detail={"accepted": [*_JSON_TYPES, *_MSGPACK_TYPES]},
    )


async def decode_body(request: web.Request, limits: Limits) -> tuple[Any, Scan, Encoding]:
    """Read and decode a request body: ``(value, scan verdict, encoding)``."""
    encoding = body_encoding(request.headers.get("Content-Type", ""))
    data = await request.read()
    value, scan = codec.decode_scanned(data, encoding, limits)
    return value, scan, encoding


def _accept_entries(header: str) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for part in header.split(","):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        if not media:
            continue
        q = 1.0
        for f in fields[1:]:
            if f.startswith("q="):
                try:
                    q = float(f[2:])
                except ValueError:
                    q = 0.0
        out.append((media, q))
    return out


def negotiate(request: web.Request) -> Encoding:
    """The response encoding for ``request`` ([REQ-REG-003])."""
    return _encoding_for(request.headers.get("Accept", ""))


@functools.lru_cache(maxsize=256)
def _encoding_for(header: str) -> Encoding:
    """The encoding an ``Accept`` header prefers (clients send few distinct ones: cached)."""
    if not header.strip():
        return "json"
    best: tuple[float, int, Encoding] | None = None
    for media, q in _accept_entries(header):
        if q <= 0:
            continue
        if media in _MSGPACK_TYPES:
            cand: tuple[float, int, Encoding] = (q, 2, "msgpack")
        elif media in _JSON_TYPES:
            cand = (q, 2, "json")
        elif media in ("application/*", "*/*"):
            cand = (q, 1, "json")
        else:
            continue
        if best is None or cand[:2] > best[:2]:
            best = cand
    if best is None:
        raise NotAcceptableError(
            "neither application/cid+json nor application/cid+msgpack is acceptable",
            detail={"offered": [_JSON_TYPES[0], _MSGPACK_TYPES[0]]},
        )
    return best[2]


def render(
    value: Any,
    encoding: Encoding,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A response carrying ``value`` in canonical JSON or msgpack."""
    body = codec.encode(value, encoding)
    resp = web.Response(
        body=body, status=status, content_type=codec.media_type(encoding), headers=headers
    )
    resp.headers.setdefault("Vary", "Accept")
    return resp


def problem_response(
    err: CidError, *, instance: str, request_id: str | None = None
) -> web.Response:
    """RFC 9457 problem details carrying the cid wire error ([REQ-REG-004])."""
    problem: dict[str, Any] = {
        "type": f"urn:cid:error:{err.name}",
        "title": err.name,
        "status": err.status,
        "detail": err.message,
        "instance": instance,
        "cid": err.to_wire(),
    }
    if request_id:
        problem["request_id"] = request_id
    headers = {}
    retry_after = err.detail.get("retry_after_s")
    if isinstance(retry_after, int):
        headers["Retry-After"] = str(retry_after)
    return web.Response(
        text=json.dumps(problem, ensure_ascii=False, separators=(",", ":"), sort_keys=True),
        status=err.status,
        content_type=PROBLEM_TYPE,
        headers=headers,
    )
