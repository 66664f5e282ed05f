"""The suite's cases of spec 13 catch broken query-language implementations.

Each variant breaks the reference library's parser or renderer (``cid.query_text``, which the
reference adapter calls) in one way a real implementation might: the cases of section 13 run
through the adapter, and exactly the expected cases fail, each citing a requirement the variant
breaks, while the rest pass and none errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

import cid.query_text as qt
from cid.errors import QuerySyntaxError, SchemaError
from cid.query import Query

from .conftest import describe, errors, failing, run_suite

pytestmark = pytest.mark.asyncio

SUITE = ["vectors", "--adapter", "python", "--strict", "-q", "--no-colour", "--only", "vectors/13"]
_PARSE = qt.parse


@dataclass
class Variant:
    breaks: tuple[str, ...]
    """Every failing case cites one of these requirements."""
    fails: set[str]
    """Exactly the cases that fail."""
    patch: Callable[[pytest.MonkeyPatch], None]


def nbsp_is_white_space(mp: pytest.MonkeyPatch) -> None:
    """Outside quoted strings, NO-BREAK SPACE and IDEOGRAPHIC SPACE separate tokens."""

    def parse(text: Any) -> Query:
        if isinstance(text, str):
            out, quoted, escaped = [], False, False
            for ch in text:
                if not quoted and ch in "\u00a0\u3000":
                    out.append(" ")
                    continue
                if quoted and escaped:
                    escaped = False
                elif quoted and ch == "\\":
                    escaped = True
                elif ch == '"':
                    quoted = not quoted
                out.append(ch)
            text = "".join(out)
        return _PARSE(text)

    mp.setattr(qt, "parse", parse)


def utf16_offsets(mp: pytest.MonkeyPatch) -> None:
    """Error offsets counted in UTF-16 code units, as a JavaScript port might."""

    def parse(text: Any) -> Query:
        try:
            return _PARSE(text)
        except QuerySyntaxError as e:
            offset = e.detail["offset"]
            e.detail["offset"] = len(text[:offset].encode("utf-16-le")) // 2
            raise

    mp.setattr(qt, "parse", parse)


def rule_errors_are_schema_violations(mp: pytest.MonkeyPatch) -> None:
    """A query that breaks a rule of spec 7 is refused with the query model's SCHEMA_VIOLATION."""

    def parse(text: Any) -> Query:
        try:
            return _PARSE(text)
        except QuerySyntaxError as e:
            if "rule" not in e.detail:
                raise
            detail = {"rule": e.detail["rule"]}
            raise SchemaError(e.message, field=e.detail["field"], detail=detail) from e

    mp.setattr(qt, "parse", parse)


def float_decimals(mp: pytest.MonkeyPatch) -> None:
    """Numbers read through binary floating point."""
    original = qt._number

    def number(tok: Any, what: str) -> tuple[Decimal, str]:
        value, rest = original(tok, what)
        return Decimal(repr(float(value))), rest

    mp.setattr(qt, "_number", number)


def keywords_unquoted(mp: pytest.MonkeyPatch) -> None:
    """in, not and for are taken as values unquoted (and written so)."""
    mp.setattr(qt, "_KEYWORDS", frozenset())


def durations_in_seconds(mp: pytest.MonkeyPatch) -> None:
    """A renderer that writes every duration in seconds: parses back, but is not canonical."""
    mp.setattr(qt, "_duration", lambda seconds: f"{seconds}s")


VARIANTS: dict[str, Variant] = {
    "NO-BREAK SPACE taken as white space": Variant(
        ("REQ-QTX-002",), {"vectors/13/2"}, nbsp_is_white_space
    ),
    "error offsets in UTF-16 code units": Variant(
        ("REQ-QTX-040",), {"vectors/13/14", "vectors/13/18"}, utf16_offsets
    ),
    "rule errors as SCHEMA_VIOLATION (1003)": Variant(
        ("REQ-QTX-041", "REQ-QTX-042"),
        {"vectors/13/15", "vectors/13/18"},
        rule_errors_are_schema_violations,
    ),
    "decimals through binary floating point": Variant(
        ("REQ-QTX-024", "REQ-QTX-020", "REQ-QTX-030"),
        {"vectors/13/9", "vectors/13/13", "vectors/13/16"},
        float_decimals,
    ),
    "in, not, for accepted unquoted": Variant(
        ("REQ-QTX-003", "REQ-QTX-031"), {"vectors/13/3", "vectors/13/17"}, keywords_unquoted
    ),
    "durations rendered in seconds": Variant(
        ("REQ-QTX-031",), {"vectors/13/17"}, durations_in_seconds
    ),
}


@pytest.mark.parametrize("name", list(VARIANTS))
async def test_broken_query_text_is_caught(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    variant = VARIANTS[name]
    variant.patch(monkeypatch)
    code, results = await run_suite(SUITE)
    assert not errors(results), errors(results)
    assert failing(results) == variant.fails, describe(results, failing(results) ^ variant.fails)
    for r in results:
        if r.case.id in variant.fails:
            assert set(r.case.reqs) & set(variant.breaks), (r.case.id, r.case.reqs)
    assert len(results) == 18 and code == 1


async def test_reference_passes_section_13() -> None:
    """The same run against the unbroken reference: every case of section 13 passes."""
    code, results = await run_suite(SUITE)
    assert not errors(results), errors(results)
    assert [r.status.label for r in results] == ["pass"] * 18
    assert code == 0
