"""The registry client: the HTTP binding of spec section 12 from the caller's side.

An I/O edge: it speaks HTTP with aiohttp and turns answers into data-model
values and models, and problem responses into the same :class:`~cid.errors.CidError`
subclasses the server raised ([REQ-REG-004]). It verifies nothing itself:
verification is the resolver's job (:mod:`cid.resolver`), which uses this client
as its transport.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Final, Self, TypeAlias

import aiohttp

from . import codec
from .codec import Encoding, Limits
from .envelope import Envelope, SignedRecord
from .errors import (
    CidError,
    DecodeError,
    InternalError,
    LimitExceededError,
    RateLimitedError,
    UnavailableError,
    from_wire,
)
from .identifier import Identifier
from .query import Query

__all__ = ["ProgressCallback", "RegistryClient"]

ProgressCallback: TypeAlias = Callable[[int, int | None], None]
"""``progress(n, total)``: ``n`` more bytes of an answer arrived, of ``total`` (None: unknown)."""

_CHUNK: Final = 256 * 1024
_PROBLEM_MAX: Final = 64 * 1024
"""What is read of an error answer: a problem document is small; a proxy's page may not be."""

_RESPONSE_LIMITS = codec.DEFAULT_LIMITS.scaled(max_bytes=512 * 1024 * 1024, max_array=2_000_000)


class RegistryClient:
    """Async client for one registry base URL (e.g. ``http://127.0.0.1:8470``)."""

    def __init__(
        self,
        base_url: str,
        *,
        encoding: Encoding = "msgpack",
        session: aiohttp.ClientSession | None = None,
        timeout_s: float = 30.0,
        limits: Limits = _RESPONSE_LIMITS,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.encoding: Encoding = encoding
        self._own_session = session is None
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.limits = limits

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    # -- transport ------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str | int] | None = None,
        timeout_s: float | None = None,
        accept: Encoding | None = None,
        progress: ProgressCallback | None = None,
    ) -> Any:
        """One request; returns the decoded data-model value or raises the typed error.

        The answer is read in chunks and refused with ``LIMIT_EXCEEDED`` once it
        passes ``self.limits.max_bytes`` (or announces more), so a hostile server
        cannot make the client buffer without bound ([REQ-ENC-011]). With
        ``progress``, ``progress(n, total)`` is called as chunks arrive (``total``:
        the Content-Length, when sent). ``accept`` overrides the client's encoding
        for this answer.
        """
        headers = {"Accept": codec.media_type(accept or self.encoding)}
        data = None
        if body is not None:
            data = codec.encode(body, self.encoding)
            headers["Content-Type"] = codec.media_type(self.encoding)
        timeout = aiohttp.ClientTimeout(total=timeout_s) if timeout_s is not None else None
        try:
            async with self.session.request(
                method, self.base_url + path, data=data, headers=headers, params=params,
                timeout=timeout,
            ) as resp:  # fmt: skip
                ctype = resp.content_type
                if resp.status >= 400:
                    raise _problem(resp.status, ctype, await _head_of(resp, _PROBLEM_MAX))
                if resp.status == 304:
                    return None
                total = resp.content_length
                limit = self.limits.max_bytes
                if total is not None and total > limit:
                    raise _too_large(f"answer of {total} bytes", limit)
                if progress is not None:
                    progress(0, total)
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise _too_large("answer longer than the limit", limit)
                    chunks.append(chunk)
                    if progress is not None:
                        progress(len(chunk), total)
                raw = b"".join(chunks)
        except aiohttp.ClientError as e:
            raise UnavailableError(f"registry {self.base_url} unreachable: {e}") from e
        except TimeoutError as e:
            raise UnavailableError(f"registry {self.base_url} timed out") from e
        encoding: Encoding = "msgpack" if "msgpack" in ctype else "json"
        return codec.decode(raw, encoding, self.limits)

    # -- writes ------------------------------------------------------------------------------------

    async def submit(self, envelope: Envelope | SignedRecord[Any]) -> dict[str, Any]:
        """Register, update, refresh or delete one record; returns the acceptance summary."""
        env = envelope.envelope if isinstance(envelope, SignedRecord) else envelope
        result: dict[str, Any] = await self.request("POST", "/v1/records", body=env.to_value())
        return result

    async def submit_batch(
        self, envelopes: Iterable[Envelope | SignedRecord[Any]]
    ) -> list[dict[str, Any] | CidError]:
        """Submit many; each result is the acceptance summary or the typed error for that item."""
        values = [(e.envelope if isinstance(e, SignedRecord) else e).to_value() for e in envelopes]
        result = await self.request("POST", "/v1/records/batch", body={"records": values})
        out: list[dict[str, Any] | CidError] = []
        for item in result["results"]:
            out.append(item["ok"] if "ok" in item else from_wire(item["error"]))
        return out

    # -- reads ----------------------------------------------------------------------------------

    async def resolve(self, name: Identifier | str) -> dict[str, Any]:
        """The raw resolve answer (records, refreshes, proof, or a referral)."""
        ident = name if isinstance(name, Identifier) else Identifier.parse(name)
        # URL libraries drop a "." path segment: the root is the empty segment
        text = "" if ident.is_root else ident.to_text()
        result: dict[str, Any] = await self.request("GET", f"/v1/names/{text}")
        return result

    async def list_namespace(
        self, namespace: Identifier | str, *, cursor: str | None = None, limit: int = 100
    ) -> dict[str, Any]:
        ident = namespace if isinstance(namespace, Identifier) else Identifier.parse(namespace)
        text = "" if ident.is_root else ident.to_text()
        params: dict[str, str | int] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        result: dict[str, Any] = await self.request("GET", f"/v1/namespaces/{text}", params=params)
        return result

    async def search(self, query: Query) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("POST", "/v1/search", body=query.to_value())
        return result

    async def feed(self, since: int, *, limit: int = 1000, wait_s: int = 0) -> dict[str, Any]:
        params = {"since": since, "limit": limit, "wait": wait_s}
        result: dict[str, Any] = await self.request(
            "GET", "/v1/feed", params=params, timeout_s=wait_s + 30.0
        )
        return result

    async def snapshot(
        self,
        *,
        timeout_s: float = 600.0,
        encoding: Encoding | None = None,
        progress: ProgressCallback | None = None,
    ) -> dict[str, Any]:
        """The registry's snapshot ([REQ-FEED-010]), not yet verified.

        ``progress(n, total)`` is called as the answer arrives (a snapshot may be
        hundreds of megabytes); ``encoding`` overrides the client's for this answer.
        """
        result: dict[str, Any] = await self.request(
            "GET", "/v1/snapshot", timeout_s=timeout_s, accept=encoding, progress=progress
        )
        return result

    async def latency_model(self) -> dict[str, Any]:
        """The registry's latency-model envelope ([REQ-REG-065]), not yet verified.

        Raises NotFoundError when the registry publishes no model.
        """
        result: dict[str, Any] = await self.request("GET", "/v1/latency-model")
        return result


def _too_large(what: str, limit: int) -> LimitExceededError:
    return LimitExceededError(
        f"{what}, limit {limit} bytes", detail={"rule": "max_bytes", "limit": limit}
    )


async def _head_of(resp: aiohttp.ClientResponse, most: int) -> bytes:
    """Up to ``most`` bytes of an answer (the rest is left unread)."""
    head = b""
    while len(head) < most:
        chunk = await resp.content.read(most - len(head))
        if not chunk:
            break
        head += chunk
    return head


def _problem(status: int, content_type: str, raw: bytes) -> CidError:
    if content_type in ("application/problem+json", "application/json"):
        try:
            problem = json.loads(raw)
        except ValueError:
            problem = None
        if isinstance(problem, dict) and isinstance(problem.get("cid"), dict):
            return from_wire(problem["cid"])
    # not a cid registry answering (a proxy, a load balancer, a crash): judge by the status
    detail = {"status": status}
    if status == 429:
        return RateLimitedError(f"HTTP {status} from the registry", detail=detail)
    if status in (502, 503, 504):
        return UnavailableError(f"HTTP {status} from the registry", detail=detail)
    if status >= 500:
        return InternalError(f"HTTP {status} from the registry", detail=detail)
    return DecodeError(f"HTTP {status} without a cid problem body", detail=detail)
