"""The vectors and resolver targets, through the reference library's adapter (in process and as a
subprocess speaking the JSON-lines protocol), and against deliberately broken library variants."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from typing import Any

import pytest

import cid.catalogue
import cid.codec
import cid.resolution
from cid.identifier import Identifier
from cid.signing import b64url_decode, b64url_encode
from cid_conformance.adapters import python as python_adapter

from .conftest import ROOT, describe, errors, failing, run_suite

pytestmark = pytest.mark.asyncio

PY = ["--adapter", "python", "--strict", "-q", "--no-colour"]


@pytest.mark.parametrize("target", ["vectors", "resolver"])
async def test_reference_library_passes(target: str) -> None:
    code, results = await run_suite([target, *PY])
    assert not errors(results), errors(results)
    assert failing(results) == set(), describe(results, failing(results))
    assert all(r.status.label == "pass" for r in results)
    assert code == 0 and len(results) >= 15


async def test_subprocess_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same vectors through the JSON-lines protocol, the way another language plugs in."""
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(ROOT / "conformance"), os.environ.get("PYTHONPATH", "")])
    )
    command = f"{sys.executable} -m cid_conformance.adapters.python"
    code, results = await run_suite(["vectors", "--adapter-cmd", command, "--strict", "-q"])
    assert not errors(results), errors(results)
    assert failing(results) == set(), describe(results, failing(results))
    assert code == 0


async def test_an_adapter_that_dies_is_a_suite_error() -> None:
    code, results = await run_suite(
        ["vectors", "--adapter-cmd", f"{sys.executable} -c pass", "-q", "--only", "vectors/2/1"]
    )
    assert code == 3
    assert results == []


# --- broken implementations ------------------------------------------------------------------


def trailing_dot(mp: pytest.MonkeyPatch) -> None:
    original = Identifier.parse.__func__  # type: ignore[attr-defined]

    def parse(cls: type[Identifier], text: Any) -> Identifier:
        if isinstance(text, str) and len(text) > 1 and text.endswith(".") and text[-2] not in ".:":
            text = text[:-1]
        return original(cls, text)  # type: ignore[no-any-return]

    mp.setattr(Identifier, "parse", classmethod(parse))


def duplicate_keys(mp: pytest.MonkeyPatch) -> None:
    import json

    original = cid.codec.decode

    def decode(data: bytes, encoding: Any, *args: Any, **kw: Any) -> Any:
        try:
            return original(data, encoding, *args, **kw)
        except cid.codec.DecodeError as e:
            if e.detail.get("rule") == "unique_keys" and encoding == "json":
                return json.loads(data)
            raise

    mp.setattr(python_adapter.codec, "decode", decode)


def kid_without_context(mp: pytest.MonkeyPatch) -> None:
    async def key_id(a: Any, args: Any) -> dict[str, Any]:
        return {"kid": b64url_encode(hashlib.sha256(b64url_decode(args["pub"])).digest()[:16])}

    mp.setitem(python_adapter._HANDLERS, "signing.key_id", key_id)


def deep_referrals(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(cid.resolution, "MAX_REFERRALS", 20)


def cache_ignores_ttl(mp: pytest.MonkeyPatch) -> None:
    def get(self: cid.resolution.Cache, name: Identifier, now: int) -> Any:
        answer = self._pos.get(name)
        return answer if answer is not None and now < answer.expires else None

    mp.setattr(cid.resolution.Cache, "get", get)


def unverified_heads(mp: pytest.MonkeyPatch) -> None:
    from cid.envelope import Envelope

    def verify_head(self: Any, value: dict[str, Any], typ: str) -> Envelope:
        return Envelope.from_value(value)

    mp.setattr(cid.catalogue.Catalogue, "_verify_head", verify_head)


BROKEN: dict[str, tuple[str, Callable[[pytest.MonkeyPatch], None], set[str]]] = {
    "a parser that strips a trailing dot": ("vectors", trailing_dot, {"vectors/2/2"}),
    "a decoder that keeps the last duplicate key": (
        "vectors",
        duplicate_keys,
        {"vectors/5/2", "vectors/5/8"},
    ),
    "key ids without the cid-kid-v1 context": ("vectors", kid_without_context, {"vectors/6/3"}),
    "a resolver that follows 20 referrals": ("resolver", deep_referrals, {"resolver/14/4"}),
    "a cache that ignores TTLs": (
        "resolver",
        cache_ignores_ttl,
        {"resolver/14/8", "resolver/14/10"},
    ),
    "a catalogue that does not verify heads": ("resolver", unverified_heads, {"resolver/14/11"}),
}


@pytest.mark.parametrize("name", list(BROKEN))
async def test_broken_library_is_caught(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    target, breaks, expected = BROKEN[name]
    breaks(monkeypatch)
    code, results = await run_suite([target, *PY])
    assert not errors(results), errors(results)
    assert failing(results) == expected, describe(results, failing(results) ^ expected)
    assert code == 1
