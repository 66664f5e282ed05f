"""The registry's OpenAPI 3.1 document, built from the wire models (spec section 12).

Served at ``/openapi.json`` and checked in at ``spec/openapi/registry.json``;
a test fails when the two drift. ``python -m cid_registry.openapi PATH`` rewrites
the checked-in copy.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel

from cid import __version__ as cid_version
from cid.latency import LatencyModel
from cid.query import ListResponse, Query, ResolveResponse, SearchResponse
from cid.schema import envelope_schema

__all__ = ["build_openapi", "main"]

_MEDIA: Final = ("application/cid+json", "application/cid+msgpack")
_REF = "#/components/schemas/{model}"


def _model(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, ref_template=_REF)
    for name, sub in schema.pop("$defs", {}).items():
        components.setdefault(name, sub)
    components[model.__name__] = schema
    return {"$ref": _REF.format(model=model.__name__)}


def _content(schema: dict[str, Any]) -> dict[str, Any]:
    return {media: {"schema": schema} for media in _MEDIA}


def _problem_responses(*codes: int) -> dict[str, Any]:
    ref = {"$ref": "#/components/responses/Problem"}
    return {str(code): ref for code in codes}


def build_openapi() -> dict[str, Any]:
    """The whole document; deterministic (sorted keys when rendered)."""
    components: dict[str, Any] = {}
    env = envelope_schema(None, None, "envelope")
    env_defs = env.pop("$defs")
    for name, sub in env_defs.items():
        components.setdefault(
            name, json.loads(json.dumps(sub).replace("#/$defs/", _REF.format(model="")))
        )
    env.pop("$schema", None)
    env.pop("$id", None)
    components["Envelope"] = json.loads(json.dumps(env).replace("#/$defs/", _REF.format(model="")))
    envelope_ref = {"$ref": _REF.format(model="Envelope")}
    components["LatencyModelEnvelope"] = {
        "allOf": [envelope_ref],
        "properties": {"body": _model(LatencyModel, components)},
    }
    query = _model(Query, components)
    search = _model(SearchResponse, components)
    resolve = _model(ResolveResponse, components)
    listing = _model(ListResponse, components)
    components["Accepted"] = {
        "type": "object",
        "required": ["name", "type", "op", "serial", "digest"],
        "properties": {
            "name": {"type": "string"},
            "type": {"enum": ["zone", "offer", "delegation", "keyrotation"]},
            "op": {"enum": ["put", "refresh", "delete"]},
            "serial": {"type": "integer", "minimum": 1},
            "digest": {"type": "string"},
            "rseq": {"type": "integer", "minimum": 1, "description": "absent when idempotent"},
        },
    }
    components["WireError"] = {
        "type": "object",
        "required": ["code", "name", "message", "retryable"],
        "properties": {
            "code": {"type": "integer"},
            "name": {"type": "string"},
            "message": {"type": "string"},
            "retryable": {"type": "boolean"},
            "field": {"type": "string"},
            "detail": {"type": "object"},
        },
    }
    components["Problem"] = {
        "type": "object",
        "description": "RFC 9457 problem details; `cid` is the wire error object (spec 10)",
        "required": ["type", "title", "status", "detail", "cid"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "request_id": {"type": "string"},
            "cid": {"$ref": _REF.format(model="WireError")},
        },
    }
    components["Change"] = {
        "type": "object",
        "required": ["rseq", "op", "name", "type", "envelope"],
        "properties": {
            "rseq": {"type": "integer", "minimum": 1},
            "op": {"enum": ["put", "refresh", "delete"]},
            "name": {"type": "string"},
            "type": {"enum": ["zone", "offer", "delegation", "keyrotation"]},
            "envelope": envelope_ref,
        },
    }
    components["FeedPage"] = {
        "type": "object",
        "required": ["changes", "head"],
        "properties": {
            "changes": {"type": "array", "items": {"$ref": _REF.format(model="Change")}},
            "head": envelope_ref,
        },
    }
    components["Snapshot"] = {
        "type": "object",
        "required": ["head", "records"],
        "properties": {
            "head": envelope_ref,
            "records": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["envelope"],
                    "properties": {"envelope": envelope_ref, "refresh": envelope_ref},
                },
            },
        },
    }
    name_param = {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "a compute identifier in text form; `.` is the root",
    }
    paths: dict[str, Any] = {
        "/v1/records": {
            "post": {
                "operationId": "submitRecord",
                "summary": "Register, update, refresh or delete one record (a signed envelope)",
                "requestBody": {"required": True, "content": _content(envelope_ref)},
                "responses": {
                    "201": {
                        "description": "accepted (new version)",
                        "content": _content({"$ref": _REF.format(model="Accepted")}),
                    },
                    "200": {
                        "description": "accepted (refresh, delete, or idempotent re-submission)",
                        "content": _content({"$ref": _REF.format(model="Accepted")}),
                    },
                    **_problem_responses(400, 403, 404, 409, 413, 415, 422, 429),
                },
            }
        },
        "/v1/records/batch": {
            "post": {
                "operationId": "submitBatch",
                "summary": "Submit many envelopes; each is accepted or refused on its own",
                "requestBody": {
                    "required": True,
                    "content": _content(
                        {
                            "type": "object",
                            "required": ["records"],
                            "properties": {"records": {"type": "array", "items": envelope_ref}},
                        }
                    ),
                },
                "responses": {
                    "200": {
                        "description": "one result per envelope, in order",
                        "content": _content(
                            {
                                "type": "object",
                                "properties": {
                                    "results": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "ok": {"$ref": _REF.format(model="Accepted")},
                                                "error": {"$ref": _REF.format(model="WireError")},
                                            },
                                        },
                                    }
                                },
                            }
                        ),
                    },
                    **_problem_responses(400, 413, 415, 429),
                },
            }
        },
        "/v1/names/{name}": {
            "get": {
                "operationId": "resolve",
                "summary": "Resolve one identifier: its records with their proof, or a referral",
                "parameters": [name_param],
                "responses": {
                    "200": {"description": "records or referral", "content": _content(resolve)},
                    "304": {"description": "not modified (If-None-Match)"},
                    **_problem_responses(400, 404, 406, 429),
                },
            }
        },
        "/v1/namespaces/{name}": {
            "get": {
                "operationId": "listNamespace",
                "summary": "List the records at and below a namespace, in canonical order",
                "parameters": [
                    name_param,
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                ],
                "responses": {
                    "200": {"description": "a page", "content": _content(listing)},
                    **_problem_responses(400, 406, 429),
                },
            }
        },
        "/v1/search": {
            "post": {
                "operationId": "search",
                "summary": "Capability search over live offers, ranked, top-k",
                "requestBody": {"required": True, "content": _content(query)},
                "responses": {
                    "200": {"description": "ranked results", "content": _content(search)},
                    **_problem_responses(400, 406, 415, 422, 429),
                },
            }
        },
        "/v1/feed": {
            "get": {
                "operationId": "feed",
                "summary": "Changes after `since`, signed head; long-polls up to `wait` s",
                "parameters": [
                    {"name": "since", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                    {
                        "name": "wait",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "maximum": 30},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "a feed page",
                        "content": _content({"$ref": _REF.format(model="FeedPage")}),
                    },
                    **_problem_responses(400, 406, 429),
                },
            }
        },
        "/v1/snapshot": {
            "get": {
                "operationId": "snapshot",
                "summary": "The live catalogue at one registry serial, with a signed digest",
                "responses": {
                    "200": {
                        "description": "snapshot",
                        "content": _content({"$ref": _REF.format(model="Snapshot")}),
                    },
                    **_problem_responses(406, 429),
                },
            }
        },
        "/v1/latency-model": {
            "get": {
                "operationId": "latencyModel",
                "summary": "The latency model searches rank with, signed by a service key",
                "responses": {
                    "200": {
                        "description": "a cid.latency.model envelope (spec 12.8.1)",
                        "content": _content({"$ref": _REF.format(model="LatencyModelEnvelope")}),
                    },
                    "304": {"description": "not modified (If-None-Match)"},
                    **_problem_responses(404, 406, 429),
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "health",
                "summary": "Liveness",
                "responses": {"200": {"description": "alive"}},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "ready",
                "summary": "Readiness: the store answers",
                "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}},
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics",
                "responses": {"200": {"description": "text exposition format"}},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cid registry",
            "version": cid_version,
            "description": "HTTP binding of the query verb and registry operations (spec 12).",
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "responses": {
                "Problem": {
                    "description": "RFC 9457 problem details",
                    "content": {
                        "application/problem+json": {
                            "schema": {"$ref": _REF.format(model="Problem")}
                        }
                    },
                }
            },
        },
    }


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0] if args else "spec/openapi/registry.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(build_openapi()), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
