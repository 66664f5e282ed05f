"""Every failure of a registry request is a problem with the request id, never a traceback.

[REQ-REG-004] problems carry the wire error; [REQ-REG-005] a server-side failure
is logged and answered without its details (an unexpected exception as
INTERNAL, a 5xx domain error with its code but not its message).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp
import pytest

from cid.errors import InternalError, UnavailableError

from .conftest import Backend
from .harness import Clock, Operator, serve_in_process

pytestmark = pytest.mark.asyncio


async def _get(url: str) -> tuple[int, dict[str, Any], str]:
    async with aiohttp.ClientSession() as s, s.get(url, headers={"X-Request-Id": "req-7"}) as r:
        return r.status, json.loads(await r.read()), r.headers.get("X-Request-Id", "")


async def test_failures_are_problems_without_internals(
    backend: Backend, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = backend.new()
    async with serve_in_process(store, clock=Clock(), operator=Operator()) as url:

        async def broken(*args: Any, **kw: Any) -> Any:
            raise RuntimeError("secret path /var/lib/db is corrupt")

        monkeypatch.setattr(store, "head", broken)
        with caplog.at_level(logging.ERROR, logger="cid_registry"):
            status, problem, rid = await _get(url + "/v1/feed?since=0")
        assert status == 500 and rid == "req-7" and problem["request_id"] == "req-7"
        assert problem["cid"]["code"] == InternalError.code
        assert "secret" not in json.dumps(problem)
        assert any("req-7" in r.getMessage() for r in caplog.records)  # the details are logged

        async def unavailable(*args: Any, **kw: Any) -> Any:
            raise UnavailableError("replica db-3 at 10.0.0.7 is down", detail={"host": "db-3"})

        monkeypatch.setattr(store, "head", unavailable)
        status, problem, rid = await _get(url + "/v1/feed?since=0")
        assert status == 503 and problem["cid"]["code"] == UnavailableError.code
        assert "10.0.0.7" not in json.dumps(problem) and "db-3" not in json.dumps(problem)
        assert "see the registry logs" in problem["cid"]["message"]
        # aiohttp's own answers are problems too
        status, problem, _ = await _get(url + "/v1/nope")
        assert status == 404 and problem["cid"]["detail"]["rule"] == "route"
