"""The vectors of spec section 13 (``spec/vectors/query_text.json``) through ``cid.query_text``,
and the file against its generator (``spec/vectors/gen_query_text.py``)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from cid.errors import QuerySyntaxError
from cid.model import validate
from cid.query import Query
from cid.query_text import parse, to_text

VECTORS = Path(__file__).resolve().parents[1] / "spec" / "vectors"
DATA: dict[str, Any] = json.loads((VECTORS / "query_text.json").read_text(encoding="utf-8"))


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "cid_vectors_gen_query_text", VECTORS / "gen_query_text.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vectors_do_not_drift() -> None:
    """The checked-in file is exactly what the generator writes (``make vectors``)."""
    gen = _generator()
    assert (VECTORS / "query_text.json").read_text(encoding="utf-8") == gen.render()


def test_every_qtx_must_is_exercised() -> None:
    """Every requirement of spec 13 but the renderer's SHOULD is cited by some vector."""
    cited = {r for part in ("valid", "invalid", "render") for c in DATA[part] for r in c["reqs"]}
    wanted = {f"REQ-QTX-{n:03d}" for n in (1, 2, 3, 10, 11, 12, 13, 14, 20, 21, 22, 23, 24)}
    wanted |= {"REQ-QTX-030", "REQ-QTX-031", "REQ-QTX-040", "REQ-QTX-041"}
    assert wanted <= cited


@pytest.mark.parametrize("case", DATA["valid"], ids=lambda c: c["note"])
def test_valid(case: dict[str, Any]) -> None:
    """REQ-QTX-001..024: the text compiles into the query object; its canonical text too."""
    query = parse(case["text"])
    assert query.to_value() == case["query"]
    assert validate(Query, case["query"]) == query
    assert to_text(query) == case["canonical"]  # REQ-QTX-031
    assert parse(case["canonical"]) == query  # REQ-QTX-030


@pytest.mark.parametrize("case", DATA["invalid"], ids=lambda c: c["note"])
def test_invalid(case: dict[str, Any]) -> None:
    """REQ-QTX-040, REQ-QTX-041: QUERY_SYNTAX at the offending token (offsets in code points)."""
    with pytest.raises(QuerySyntaxError) as info:
        parse(case["text"])
    wire = info.value.to_wire()
    assert (wire["code"], wire["name"]) == (case["code"], case["name"])
    detail = wire["detail"]
    assert (detail["offset"], detail["token"]) == (case["offset"], case["token"])
    assert detail["expected"]
    assert case["text"][case["offset"] :].startswith(case["token"]) or case["token"] == ""
    if "field" in case:
        assert detail["field"] == case["field"]
        assert case["rule"] is None or detail["rule"] == case["rule"]
    else:
        assert "field" not in detail


@pytest.mark.parametrize("case", DATA["render"], ids=lambda c: c["note"])
def test_render(case: dict[str, Any]) -> None:
    """REQ-QTX-030, REQ-QTX-031: the canonical text, which parses back to the same object."""
    query = validate(Query, case["query"])
    assert query.to_value() == case["query"]
    assert to_text(query) == case["canonical"]
    assert parse(case["canonical"]) == query
