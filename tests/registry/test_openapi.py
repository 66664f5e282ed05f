"""The OpenAPI document served at /openapi.json is the one checked into spec/ (REQ-REG-061)."""

from __future__ import annotations

import json
from pathlib import Path

from cid_registry.openapi import build_openapi, render

SPEC = Path(__file__).resolve().parents[2] / "spec" / "openapi" / "registry.json"


def test_openapi_checked_in_matches_code() -> None:
    """Regenerate with `python -m cid_registry.openapi spec/openapi/registry.json`."""
    assert SPEC.read_text(encoding="utf-8") == render(build_openapi())


def test_openapi_is_3_1_and_complete() -> None:
    doc = json.loads(SPEC.read_text(encoding="utf-8"))
    assert doc["openapi"] == "3.1.0"
    for path in (
        "/v1/records",
        "/v1/records/batch",
        "/v1/names/{name}",
        "/v1/namespaces/{name}",
        "/v1/search",
        "/v1/feed",
        "/v1/snapshot",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in doc["paths"], path
    refs = set()

    def walk(v: object) -> None:
        if isinstance(v, dict):
            if "$ref" in v:
                refs.add(v["$ref"])
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(doc)
    schemas = doc["components"]["schemas"]
    for ref in refs:
        kind, name = ref.split("/")[-2:]
        assert name in doc["components"][kind], ref
    assert "Query" in schemas and "Problem" in schemas
