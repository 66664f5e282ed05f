"""JSON Schema (2020-12) for every wire model, generated from the models themselves.

``python -m cid.schema spec/schemas`` writes one file per model; the test suite
regenerates them in memory and fails when the checked-in files drift
([REQ-ENC-030]). The schemas describe the JSON encoding; the msgpack encoding
is the same data model ([REQ-ENC-004]).
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel

from .envelope import Header, Signature
from .latency import LATENCY_MODEL_TYP, LatencyModel
from .record import RECORD_BODIES

__all__ = ["SCHEMA_DIALECT", "all_schemas", "envelope_schema", "main", "model_schema"]

SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
_BASE_ID: Final = "https://cid.invalid/spec/0.1/schemas/"

# Message models of spec sections 7-9, by module; each module lists its wire models in WIRE_MODELS.
_MESSAGE_MODULES: Final = ("cid.query", "cid.negotiation", "cid.invocation")


def model_schema(model: type[BaseModel], name: str) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": SCHEMA_DIALECT, "$id": _BASE_ID + name + ".schema.json", **schema}


def envelope_schema(typ: str | None, body: type[BaseModel] | None, name: str) -> dict[str, Any]:
    """The schema of a signed envelope, optionally with a fixed ``typ`` and body model."""
    header = Header.model_json_schema(by_alias=True, mode="validation")
    defs: dict[str, Any] = dict(header.pop("$defs", {}))
    if typ is not None:
        header["properties"]["typ"] = {"const": typ}
    defs["Header"] = header
    sig = Signature.model_json_schema(by_alias=True, mode="validation")
    defs["Signature"] = sig
    body_schema: dict[str, Any] = {"type": "object"}
    if body is not None:
        b = body.model_json_schema(by_alias=True, mode="validation", ref_template="#/$defs/{model}")
        defs.update(b.pop("$defs", {}))
        defs[body.__name__] = b
        body_schema = {"$ref": f"#/$defs/{body.__name__}"}
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": _BASE_ID + name + ".schema.json",
        "title": name,
        "type": "object",
        "required": ["header", "body", "sigs"],
        "additionalProperties": False,
        "properties": {
            "header": {"$ref": "#/$defs/Header"},
            "body": body_schema,
            "sigs": {
                "type": "array",
                "minItems": 1,
                "maxItems": 4,
                "items": {"$ref": "#/$defs/Signature"},
            },
        },
        "$defs": defs,
    }


def all_schemas() -> dict[str, dict[str, Any]]:
    """Every schema by file stem, in a stable order."""
    out: dict[str, dict[str, Any]] = {"envelope": envelope_schema(None, None, "envelope")}
    for typ, body in RECORD_BODIES.items():
        stem = "record-" + typ.rsplit(".", 1)[1]
        out[stem] = envelope_schema(typ, body, stem)
    # the published latency model ([REQ-REG-065]) is an envelope too
    out["latency-model"] = envelope_schema(LATENCY_MODEL_TYP, LatencyModel, "latency-model")
    for module_name in _MESSAGE_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # pragma: no cover - all three ship with cid
            continue
        for model in getattr(module, "WIRE_MODELS", ()):
            stem = module_name.rsplit(".", 1)[1] + "-" + _kebab(model.__name__)
            out[stem] = model_schema(model, stem)
    return dict(sorted(out.items()))


def _kebab(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isupper():
            out.append("-")
        out.append(ch.lower())
    return "".join(out)


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0] if args else "spec/schemas")
    target.mkdir(parents=True, exist_ok=True)
    schemas = all_schemas()
    for old in target.glob("*.schema.json"):
        if old.name.removesuffix(".schema.json") not in schemas:
            old.unlink()
    for stem, schema in schemas.items():
        (target / f"{stem}.schema.json").write_text(render(schema), encoding="utf-8")
    print(f"wrote {len(schemas)} schemas to {target}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
