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
import logging
from typing import Any, Final

from aiohttp import web

from . import codec
from .codec import Encoding, Limits, Scan
from .errors import (
    CidError,
    DecodeError,
    InternalError,
    MethodNotAllowedError,
    NotAcceptableError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)

__all__ = [
    "PROBLEM_TYPE",
    "decode_body",
    "error_of_http_exception",
    "exception_problem",
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


def error_of_http_exception(exc: web.HTTPException) -> CidError:
    """The cid error for one of aiohttp's own answers (an unknown route, method or size)."""
    if exc.status == 413:
        return PayloadTooLargeError("request body too large", detail={"rule": "max_body_bytes"})
    if exc.status == 405:
        return MethodNotAllowedError(f"method not allowed: {exc.reason}")
    if exc.status == 404:
        return NotFoundError("no such resource", detail={"rule": "route"})
    return DecodeError(f"HTTP {exc.status}: {exc.reason}")


def exception_problem(
    request: web.Request,
    exc: Exception,
    request_id: str,
    *,
    service: str,
    logger: logging.Logger,
) -> web.Response:
    """The problem answer for what a handler raised: the one mapping of registry and provider.

    A :class:`~cid.errors.CidError` is answered with its own code; a server-side
    one (5xx) is logged and answered without its details, which stay in the
    ``service``'s logs under the request id ([REQ-REG-005], [REQ-PRV-003]).
    aiohttp's own answers become NOT_FOUND (rule ``route``), METHOD_NOT_ALLOWED
    or PAYLOAD_TOO_LARGE; anything else is a bug, logged with its traceback and
    answered INTERNAL.
    """
    if isinstance(exc, CidError):
        err = exc
        if err.status >= 500:
            logger.error(
                "%s on %s %s (request %s): %s",
                err.name,
                request.method,
                request.path,
                request_id,
                err.message,
            )
            err = type(err)(
                f"{err.name.lower().replace('_', ' ')}; see the {service} logs",
                detail={k: v for k, v in err.detail.items() if k == "retry_after_s"},
            )
    elif isinstance(exc, web.HTTPException):
        err = error_of_http_exception(exc)
    else:
        logger.error(
            "unhandled error on %s %s (request %s)",
            request.method,
            request.path,
            request_id,
            exc_info=exc,
        )
        err = InternalError("internal error; the request id identifies it in the logs")
    return problem_response(err, instance=request.path, request_id=request_id)
