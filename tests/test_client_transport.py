"""The registry client's transport: streamed answers, their limits, and errors typed by status.

A stand-in server on loopback (aiohttp's ``TestServer``) answers what a registry,
a proxy or a hostile server might, so that each edge of
:meth:`cid.client.RegistryClient.request` is driven over a real connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from cid import codec
from cid.client import RegistryClient
from cid.errors import (
    DecodeError,
    InternalError,
    LimitExceededError,
    NotFoundError,
    RateLimitedError,
    UnavailableError,
)

pytestmark = pytest.mark.asyncio

SNAPSHOT = {"head": {"rseq": 7}, "records": [{"n": i, "pad": "x" * 200} for i in range(3000)]}
"""Not a signed snapshot: the transport decodes, the resolver verifies ([REQ-FEED-010])."""

Handler = Callable[[web.Request], Any]


@pytest_asyncio.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Any]]:
    servers: list[TestServer] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_get("/v1/snapshot", handler)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")).rstrip("/")

    yield start
    for server in servers:
        await server.close()


def _snapshot_handler(seen: list[str], *, chunked: bool = False) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers["Accept"])
        encoding: codec.Encoding = "msgpack" if "msgpack" in request.headers["Accept"] else "json"
        body = codec.encode(SNAPSHOT, encoding)
        if not chunked:
            return web.Response(body=body, content_type=codec.media_type(encoding))
        response = web.StreamResponse(headers={"Content-Type": codec.media_type(encoding)})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(0, len(body), 4096):
            await response.write(body[i : i + 4096])
        await response.write_eof()
        return response

    return handler


async def test_snapshot_streams_with_progress(serve: Any) -> None:
    seen: list[str] = []
    url = await serve(_snapshot_handler(seen))
    calls: list[tuple[int, int | None]] = []
    async with RegistryClient(url, encoding="json") as client:
        value = await client.snapshot(
            encoding="msgpack", progress=lambda n, t: calls.append((n, t))
        )
    assert value == SNAPSHOT
    assert seen == ["application/cid+msgpack"]  # the override, not the client's encoding
    size = len(codec.encode(SNAPSHOT, "msgpack"))
    assert calls[0] == (0, size)
    assert sum(n for n, _ in calls) == size and all(t == size for _, t in calls)


async def test_snapshot_without_progress_reads_whole(serve: Any) -> None:
    seen: list[str] = []
    url = await serve(_snapshot_handler(seen))
    async with RegistryClient(url, encoding="json") as client:
        assert await client.snapshot() == SNAPSHOT
    assert seen == ["application/cid+json"]


@pytest.mark.parametrize("chunked", [False, True])
async def test_streamed_answer_over_the_limit_is_refused(serve: Any, chunked: bool) -> None:
    """REQ-ENC-011: a client bounds what it buffers, whether or not a length is announced."""
    seen: list[str] = []
    url = await serve(_snapshot_handler(seen, chunked=chunked))
    limits = codec.DEFAULT_LIMITS.scaled(max_bytes=64 * 1024, max_array=10_000)
    received: list[int] = []
    async with RegistryClient(url, limits=limits) as client:
        with pytest.raises(LimitExceededError) as caught:
            await client.snapshot(progress=lambda n, t: received.append(n))
    assert caught.value.detail["rule"] == "max_bytes"
    # refused on the announced length before reading, or as soon as the limit is passed
    assert sum(received) <= 64 * 1024


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, RateLimitedError),
        (502, UnavailableError),
        (503, UnavailableError),
        (500, InternalError),
        (404, DecodeError),
    ],
)
async def test_error_without_a_problem_body_is_typed_by_status(
    serve: Any, status: int, error: type[Exception]
) -> None:
    async def proxy(request: web.Request) -> web.Response:
        return web.Response(status=status, text="<html>proxy</html>", content_type="text/html")

    url = await serve(proxy)
    async with RegistryClient(url) as client:
        for call in (client.snapshot(), client.snapshot(progress=lambda n, t: None)):
            with pytest.raises(error) as caught:
                await call
            assert caught.value.detail["status"] == status


async def test_problem_body_gives_the_servers_error(serve: Any) -> None:
    async def missing(request: web.Request) -> web.Response:
        problem = {"type": "about:blank", "status": 404, "cid": NotFoundError("gone").to_wire()}
        return web.json_response(problem, status=404, content_type="application/problem+json")

    url = await serve(missing)
    async with RegistryClient(url) as client:
        with pytest.raises(NotFoundError):
            await client.snapshot(progress=lambda n, t: None)


async def test_unreachable_registry_is_unavailable() -> None:
    async with RegistryClient("http://127.0.0.1:9") as client:
        with pytest.raises(UnavailableError):
            await client.snapshot(progress=lambda n, t: None)


async def test_a_huge_error_page_is_not_buffered(serve: Any) -> None:
    """Only the head of an error answer is read: a problem document is small ([REQ-ENC-011])."""

    async def proxy(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=503, headers={"Content-Type": "text/html"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for _ in range(256):  # 16 MiB, far beyond what the client may read
                await response.write(b"x" * 65536)
        except ConnectionError:
            pass  # the client stopped reading and closed: what it should do
        return response

    url = await serve(proxy)
    async with RegistryClient(url) as client:
        with pytest.raises(UnavailableError) as caught:
            await client.snapshot()
    assert caught.value.detail["status"] == 503
