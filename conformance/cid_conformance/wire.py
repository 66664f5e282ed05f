"""The suite's side of HTTP: requests as the spec's bindings define them, answers kept raw.

Everything a case learns about the target goes through :class:`Http`: the
status, headers and body bytes exactly as received, so that cases can check
media types, canonical bytes and problem bodies themselves. Bodies are decoded
with the library's pure codec (:mod:`cid.codec`) under the response limits of
[REQ-REG-007]; nothing here trusts or verifies content, that is the cases' job.

:func:`raw_exchange` speaks HTTP/1.1 over a bare socket, for the few cases that
must misbehave on purpose (a body that never arrives, a huge ``Content-Length``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from cid import codec
from cid.codec import Encoding
from cid.errors import CidError

__all__ = [
    "JSON",
    "MSGPACK",
    "PROBLEM",
    "Http",
    "RawReply",
    "Reply",
    "name_segment",
    "raw_exchange",
]

JSON: Final = "application/cid+json"
MSGPACK: Final = "application/cid+msgpack"
PROBLEM: Final = "application/problem+json"
RESPONSE_LIMITS: Final = codec.DEFAULT_LIMITS.scaled(
    max_bytes=512 * 1024 * 1024, max_array=2_000_000
)
"""A receiver accepts registry documents up to these limits ([REQ-REG-007])."""


_ENCODINGS: Final[dict[str, Encoding]] = {
    JSON: "json",
    MSGPACK: "msgpack",
    "application/json": "json",
    "application/msgpack": "msgpack",
    "application/x-msgpack": "msgpack",
}


def name_segment(name: str) -> str:
    """An identifier as one path segment ([REQ-REG-031]): UTF-8 percent-encoded, ``.`` kept."""
    return urllib.parse.quote(name, safe="")


@dataclass
class Reply:
    """One HTTP answer, as received."""

    method: str
    path: str
    status: int
    headers: CIMultiDictProxy[str] | CIMultiDict[str]
    body: bytes
    attempts: int = 1

    @property
    def media_type(self) -> str:
        """The ``Content-Type`` without parameters, lower-cased ('' when absent)."""
        return self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()

    @property
    def encoding(self) -> Encoding | None:
        """The encoding of the body, read leniently (aliases too): the label rule itself is a
        separate check ([REQ-REG-003])."""
        return _ENCODINGS.get(self.media_type)

    def value(self) -> Any:
        """The decoded cid value of a negotiated answer.

        An answer that is not one (an error, another media type, bytes that do not decode)
        fails the case: the target answered something the case cannot read.
        """
        from .case import fail

        enc = self.encoding
        if enc is None:
            fail(f"expected a cid answer: {self.brief()}")
        assert enc is not None
        try:
            return codec.decode(self.body, enc, RESPONSE_LIMITS)
        except CidError as e:
            fail(f"{self.brief()}: the {enc} body does not decode: {e}")

    def json(self) -> Any:
        """The body as plain JSON (problem bodies, operations endpoints)."""
        return json.loads(self.body.decode("utf-8"))

    def problem(self) -> dict[str, Any] | None:
        """The RFC 9457 problem object, or None when the body is not one."""
        try:
            value = self.json()
        except (ValueError, UnicodeDecodeError):
            return None
        return value if isinstance(value, dict) else None

    def error(self) -> dict[str, Any]:
        """The wire error object (the problem's ``cid`` member), or ``{}``."""
        problem = self.problem() or {}
        err = problem.get("cid")
        return err if isinstance(err, dict) else {}

    @property
    def code(self) -> int | None:
        code = self.error().get("code")
        return code if isinstance(code, int) and not isinstance(code, bool) else None

    @property
    def rule(self) -> Any:
        detail = self.error().get("detail")
        return detail.get("rule") if isinstance(detail, dict) else None

    @property
    def field(self) -> Any:
        return self.error().get("field")

    def brief(self) -> str:
        """``POST /v1/records -> 422 SCHEMA_VIOLATION(1003) field=... rule=...`` for messages."""
        text = f"{self.method} {self.path} -> {self.status}"
        err = self.error()
        if err:
            text += f" {err.get('name')}({err.get('code')})"
            if err.get("field") is not None:
                text += f" field={err.get('field')}"
            detail = err.get("detail")
            if isinstance(detail, dict) and "rule" in detail:
                text += f" rule={detail['rule']}"
            if isinstance(detail, dict) and "reason" in detail:
                text += f" reason={detail['reason']}"
        elif self.status >= 400:
            snippet = self.body[:160].decode("utf-8", "replace")
            text += f" {self.media_type or '(no content type)'} {snippet!r}"
        return text


@dataclass
class Http:
    """Requests to one base URL, with a retry after ``429`` so that ordinary cases ignore limits."""

    base: str
    session: aiohttp.ClientSession
    timeout_s: float = 30.0
    max_rate_retries: int = 8
    rate_limited: int = 0
    """How many 429 answers ordinary requests met (and waited out)."""
    requests: int = 0
    default_headers: dict[str, str] = field(default_factory=dict)

    def url(self, path: str, query: Mapping[str, str] | None = None) -> URL:
        text = self.base.rstrip("/") + path
        if query:
            text += "?" + urllib.parse.urlencode(query, safe=",")
        # encoded=True: no normalisation, so "/v1/names/." keeps its "." ([REQ-REG-031])
        return URL(text, encoded=True)

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        content_type: str | None = None,
        accept: str | None = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        retry_rate_limited: bool = True,
    ) -> Reply:
        """One request; ``429`` answers are waited out (``Retry-After``) unless told not to."""
        hdrs: dict[str, str] = dict(self.default_headers)
        if content_type is not None:
            hdrs["Content-Type"] = content_type
        if accept is not None:
            hdrs["Accept"] = accept
        hdrs.update(headers or {})
        attempts = 0
        while True:
            attempts += 1
            self.requests += 1
            async with self.session.request(
                method,
                self.url(path, query),
                data=body,
                headers=hdrs,
                skip_auto_headers=("Content-Type", "Accept") if body is None else ("Accept",),
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                allow_redirects=False,
            ) as resp:
                data = await resp.read()
                reply = Reply(method, path, resp.status, resp.headers, data, attempts)
            if reply.status != 429 or not retry_rate_limited or attempts > self.max_rate_retries:
                return reply
            self.rate_limited += 1
            try:
                wait = max(1.0, float(reply.headers.get("Retry-After", "1")))
            except ValueError:
                wait = 1.0
            await asyncio.sleep(min(wait, 10.0))

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.request("GET", path, **kw)

    async def post_value(
        self,
        path: str,
        value: Any,
        *,
        encoding: Literal["json", "msgpack"] = "json",
        accept: str | None = JSON,
        **kw: Any,
    ) -> Reply:
        """POST a cid value in its canonical encoding."""
        body = codec.encode(value, encoding)
        return await self.request(
            "POST",
            path,
            body=body,
            content_type=JSON if encoding == "json" else MSGPACK,
            accept=accept,
            **kw,
        )


@dataclass
class RawReply:
    status: int
    headers: CIMultiDict[str]
    body: bytes
    elapsed_s: float


async def raw_exchange(
    base: str,
    request_head: str,
    body_parts: list[bytes] | None = None,
    *,
    timeout_s: float = 30.0,
) -> RawReply | None:
    """Send a hand-written HTTP/1.1 request over a new connection and read one answer.

    Returns None when the server closed the connection without answering.
    """
    url = URL(base)
    host, port = url.host or "127.0.0.1", url.port or (443 if url.scheme == "https" else 80)
    loop = asyncio.get_running_loop()
    started = loop.time()
    reader, writer = await asyncio.open_connection(host, port, ssl=url.scheme == "https" or None)
    try:
        writer.write(request_head.encode("latin-1"))
        for part in body_parts or []:
            writer.write(part)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=timeout_s)
        if not status_line:
            return None
        status = int(status_line.split()[1])
        headers: CIMultiDict[str] = CIMultiDict()
        while True:
            line = await asyncio.wait_for(reader.readline(), timeout=timeout_s)
            if line in (b"\r\n", b"\n", b""):
                break
            key, _, val = line.decode("latin-1").partition(":")
            headers.add(key.strip(), val.strip())
        length = int(headers.get("Content-Length", "0") or 0)
        body = await asyncio.wait_for(reader.readexactly(length), timeout=timeout_s)
        return RawReply(status, headers, body, loop.time() - started)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
