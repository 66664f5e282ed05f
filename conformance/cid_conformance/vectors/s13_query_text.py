"""§13 The textual query language: ``spec/vectors/query_text.json`` through the implementation's
parser and renderer (adapter ops ``query_text.parse`` and ``query_text.render``).

One case per rule of §13.1–§13.4 runs the vectors that exercise it: a valid text must compile
into the vector's query object (compared member by member after the query model of §7 has
filled in its defaults), an invalid one must be refused. How it is refused (QUERY_SYNTAX, the
offset and token of the offending token, the field and rule of a rule of §7) is checked once,
by the cases of §13.6, so that a defect fails the case of the rule it breaks.
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any

from cid.errors import CidError
from cid.model import validate
from cid.query import Query

from ..adapter import Outcome
from ..case import Section, check, skip
from . import VectorsContext, _load

s = Section("vectors", "13", "The textual query language")

PARSE = "query_text.parse"
RENDER = "query_text.render"


@cache
def _vectors() -> dict[str, Any]:
    return _load("query_text.json")


def _query(value: Any) -> dict[str, Any] | None:
    """The query object with every default written (§7), or None when it is not a query."""
    try:
        normal: dict[str, Any] = validate(Query, value, where="").to_value()
    except (CidError, ValueError, TypeError):
        return None
    return normal


def _show(text: str) -> str:
    return json.dumps(text if len(text) <= 70 else text[:60] + "…", ensure_ascii=True)


def _label(case: dict[str, Any]) -> str:
    return f"{_show(case['text'])} ({case['note']}; {', '.join(case['reqs'])})"


async def _parse(ctx: VectorsContext, text: str) -> Outcome:
    return await ctx.call(PARSE, text=text)


async def _compiles(ctx: VectorsContext, case: dict[str, Any]) -> str | None:
    """None when the valid text compiles into the vector's query; else what went wrong."""
    out = await _parse(ctx, case["text"])
    if out.ok is None:
        return f"{_label(case)}: {out.brief()}"
    got = _query(out.ok.get("query"))
    if got != case["query"]:
        return f"{_label(case)}: compiled into {json.dumps(out.ok.get('query'))[:300]}"
    return None


async def _refused(ctx: VectorsContext, case: dict[str, Any]) -> str | None:
    """None when the invalid text is refused (how is the concern of §13.6's cases)."""
    out = await _parse(ctx, case["text"])
    if out.ok is not None:
        return f"{_label(case)}: accepted as {json.dumps(out.ok.get('query'))[:200]}"
    return None


# --- §13.1–§13.4: one case per rule, over the vectors that exercise it --------------------------

_RULES: list[tuple[int, str, str, str]] = [
    (
        1,
        "REQ-QTX-001",
        "texts of at most 4,096 code points matching the grammar compile clause by clause",
        "A textual query MUST be a string of at most 4,096 Unicode code points matching the "
        "grammar of §13.2. A parser MUST compile it into the query object that Table 13-1 gives, "
        "clause by clause ... a text that does not match the grammar ... MUST be refused",
    ),
    (
        2,
        "REQ-QTX-002",
        "tokens: white space, operators (the longest that matches), commas, words; other "
        "characters refused",
        "runs of white space (space, tab, CR, LF) separate tokens ... the operators ... (the "
        "longest that matches) ... every other maximal run of printable characters ... is a word. "
        "A parser MUST refuse any other character.",
    ),
    (
        3,
        "REQ-QTX-003",
        "quoted strings: two escapes only, printable content; in, not, for quoted as values",
        'inside it, \\" stands for " and \\\\ for \\, and a backslash MUST NOT be followed by '
        "anything else ... A value that is not a word ... MUST be written as a quoted string",
    ),
    (
        4,
        "REQ-QTX-010",
        "the keys and operators of Table 13-1; in and not in; lists in the order written",
        "A clause's key MUST be one of Table 13-1 ... and its operator MUST be one the table lists "
        "for it; a parser MUST refuse any other key or operator.",
    ),
    (
        5,
        "REQ-QTX-011",
        "quantity keys: key=x demands x, key>=x asks each unit for x",
        "For the quantity keys vcpu, mem, storage and accel.count, the operator MUST decide the "
        "member: key=x demands x ... while key>=x asks that each unit have at least x",
    ),
    (
        6,
        "REQ-QTX-012",
        "each member set by one clause; software clauses add up in order",
        "Each member of the query object MUST be set by at most one clause: a parser MUST refuse "
        "a text that sets one twice ... every sw= and sw.<name> clause adds constraints to "
        "software, in the order written.",
    ),
    (
        7,
        "REQ-QTX-013",
        "rtt needs near=<region>; near tells a region code from a latency circle",
        "rtt<=t sets near.max_rtt_us and MUST be refused unless the text also has near=<region>",
    ),
    (
        8,
        "REQ-QTX-014",
        "sw.<name> version comparisons make a §7 version range; = is ==",
        "sets a software constraint whose name is <name> and whose version is the comparisons "
        "written without white space ... = is a synonym of ==. A parser MUST refuse a range that "
        "§7 refuses.",
    ),
    (
        9,
        "REQ-QTX-020",
        "sizes: binary units only, whole MiB or GiB as the member needs",
        "A parser MUST refuse a size without a unit or with a decimal unit such as GB ... and MUST "
        "refuse a size that is not a whole number of the unit of the member it sets",
    ),
    (
        10,
        "REQ-QTX-021",
        "durations: month 730 h, year 8,760 h, whole seconds",
        "a month is 730 hours (2,628,000 s) and a year 8,760 hours (31,536,000 s) ... It MUST be "
        "a whole number of seconds",
    ),
    (
        11,
        "REQ-QTX-022",
        "times: us, µs, ms, s; whole microseconds",
        "A time (for rtt) is a number immediately followed by us (also µs), ms or s, and MUST be "
        "a whole number of microseconds",
    ),
    (
        12,
        "REQ-QTX-023",
        "prices: a decimal with an optional period, no currency",
        "A price MUST be a decimal number, optionally followed by / and a period ... that sets "
        "unit_price_per",
    ),
    (
        13,
        "REQ-QTX-024",
        "decimals and shares: no exponents, carried exactly, canonical form",
        "exponents MUST NOT be used. A parser MUST carry decimals exactly (never through binary "
        "floating point) and MUST write them into the query object in the canonical form of §5.3.",
    ),
]


def _rule_case(req: str, quote: str) -> Callable[[VectorsContext], Awaitable[None]]:
    async def run(ctx: VectorsContext) -> None:
        data = _vectors()
        valid = [c for c in data["valid"] if req in c["reqs"]]
        invalid = [c for c in data["invalid"] if req in c["reqs"]]
        if not valid and not invalid:  # pragma: no cover - the vectors cover every rule
            skip(f"no vector exercises {req}")
        bad = [m for c in valid if (m := await _compiles(ctx, c)) is not None]
        bad += [m for c in invalid if (m := await _refused(ctx, c)) is not None]
        check(not bad, f"{len(bad)} of {len(valid) + len(invalid)} vectors of {req}", *bad[:8])

    run.__doc__ = quote
    return run


for _n, _req, _title, _quote in _RULES:
    s.case(_n, _title, _req)(_rule_case(_req, _quote))


# --- §13.6: how a text is refused -----------------------------------------------------------------


def _expected_ok(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value)
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v for v in value)


def _related(got: Any, want: str) -> bool:
    """The vector's field, or an element of it, or the member enclosing it."""
    return isinstance(got, str) and (
        got == want or got.startswith(want + ".") or want.startswith(got + ".")
    )


@s.case(
    14,
    "refusals are QUERY_SYNTAX at the offending token: offset in code points, token as written",
    "REQ-QTX-040",
)
async def syntax_errors(ctx: VectorsContext) -> None:
    """A parser MUST refuse a text that breaks §13.1–§13.4 with QUERY_SYNTAX (1005, §10), whose
    detail MUST have offset, the zero-based position in code points of the first character of the
    offending token (the length of the text when the text ended too early), token, the offending
    token as written (empty at the end of the text), and expected."""
    bad = []
    cases = [c for c in _vectors()["invalid"] if "field" not in c]
    for case in cases:
        out = await _parse(ctx, case["text"])
        if out.ok is not None:
            continue  # accepting it fails the case of the rule it breaks
        d = out.detail
        got = (out.code, out.name, d.get("offset"), d.get("token"))
        want = (1005, "QUERY_SYNTAX", case["offset"], case["token"])
        if got != want or not _expected_ok(d.get("expected")):
            bad.append(f"{_label(case)}: {out.brief()}; expected {want} and expected")
    check(not bad, f"{len(bad)} of {len(cases)} refusals differ", *bad[:8])


@s.case(
    15,
    "a query breaking a rule of §7 is QUERY_SYNTAX at its clause, with field and rule",
    "REQ-QTX-041",
)
async def rule_errors(ctx: VectorsContext) -> None:
    """A parser MUST refuse a text whose query object breaks a rule of §7 with QUERY_SYNTAX (1005)
    as well, pointing at the clause that set the offending member ... as Table 13-2 says; detail
    MUST then also have field, the member's dotted path, and rule, the rule of §7 or §10.3 that was
    broken."""
    bad = []
    cases = [c for c in _vectors()["invalid"] if "field" in c]
    for case in cases:
        out = await _parse(ctx, case["text"])
        if out.ok is not None:
            continue  # accepting it fails the case of the rule it breaks
        d = out.detail
        ok = (
            (out.code, out.name, d.get("offset"), d.get("token"))
            == (1005, "QUERY_SYNTAX", case["offset"], case["token"])
            and _expected_ok(d.get("expected"))
            and _related(d.get("field"), case["field"])
            and (d.get("rule") == case["rule"] if case["rule"] else isinstance(d.get("rule"), str))
        )
        if not ok:
            want = {k: case[k] for k in ("offset", "token", "field", "rule")}
            bad.append(f"{_label(case)}: {out.brief()}; expected 1005 {want}")
    check(not bad, f"{len(bad)} of {len(cases)} rule errors differ", *bad[:8])


# --- §13.5: writing a query as text --------------------------------------------------------------


async def _render(ctx: VectorsContext, query: dict[str, Any]) -> Outcome:
    return await ctx.call(RENDER, query=query)


@s.case(16, "every query renders to a text that parses back to it", "REQ-QTX-030")
async def round_trip(ctx: VectorsContext) -> None:
    """A renderer MUST write every query object that Table 13-1 can express (every query object
    of §7) so that parsing the text yields an object equal to the original, member by member,
    lists in the same order."""
    data = _vectors()
    cases = [*data["valid"], *data["render"]]
    bad = []
    for case in cases:
        out = await _render(ctx, case["query"])
        text = (out.ok or {}).get("text")
        if not isinstance(text, str):
            bad.append(
                f"{case['note']}: rendering {json.dumps(case['query'])[:120]}: {out.brief()}"
            )
            continue
        back = await _parse(ctx, text)
        if back.ok is None or _query(back.ok.get("query")) != case["query"]:
            bad.append(f"{case['note']}: {_show(text)} parses back as {back.brief()}")
    for case in cases:  # the canonical text (another renderer's output) parses too
        back = await _parse(ctx, case["canonical"])
        if back.ok is None or _query(back.ok.get("query")) != case["query"]:
            bad.append(f"{case['note']}: canonical {_show(case['canonical'])}: {back.brief()}")
    check(not bad, f"{len(bad)} of {2 * len(cases)} round trips differ", *bad[:8])


@s.case(17, "the canonical text", "REQ-QTX-031")
async def canonical_text(ctx: VectorsContext) -> None:
    """A renderer SHOULD write the canonical text: clauses in the order of Table 13-1 ... sizes,
    durations and times in the largest unit that divides them exactly ... decimals in the
    canonical form of §5.3, and a quoted string only where [REQ-QTX-003] requires one."""
    data = _vectors()
    bad = []
    for case in [*data["valid"], *data["render"]]:
        out = await _render(ctx, case["query"])
        text = (out.ok or {}).get("text")
        if text != case["canonical"]:
            bad.append(f"{case['note']}: {_show(str(text))}, canonical {_show(case['canonical'])}")
    check(not bad, f"{len(bad)} texts are not canonical", *bad[:8])


# --- §13.6: no other failure ------------------------------------------------------------------

_ALPHABET = [
    " ", "\t", "=", ">=", "<=", "!=", "==", ">", "<", "!", ",", '"', "\\", "in", "not", "for",
    "0", "9", ".", "%", "/", ":", "GiB", "ms", "mo", "x", "Z", "-", "😀", "天", "\u00a0", "\x00",
]  # fmt: skip


def _mutants(seeds: list[str], rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        text = list(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            where = rng.randint(0, len(text))
            action = rng.random()
            if action < 0.4 or not text:
                text[where:where] = [rng.choice(_ALPHABET)]
            elif action < 0.7:
                del text[min(where, len(text) - 1)]
            else:
                text[min(where, len(text) - 1)] = rng.choice(_ALPHABET)
        out.append("".join(text))
    return out


@s.case(
    18,
    "any text parses into a valid query or is a well-formed QUERY_SYNTAX, never anything else",
    "REQ-QTX-042",
    "REQ-QTX-040",
)
async def robustness(ctx: VectorsContext) -> None:
    """Whatever the input, a parser MUST either return a query object that passes every rule of §7
    or raise QUERY_SYNTAX; it MUST NOT fail in any other way. (And the error's detail MUST have
    offset, ... token, the offending token as written ..., and expected.)"""
    data = _vectors()
    seeds = [c["text"] for c in [*data["valid"], *data["invalid"]] if len(c["text"]) < 200]
    texts = _mutants(seeds, random.Random(13_06), 400)
    bad = []
    for text in texts:
        out = await _parse(ctx, text)
        if out.ok is not None:
            if _query(out.ok.get("query")) is None:
                bad.append(f"{_show(text)}: an object that breaks §7: {out.brief()}")
            continue
        d = out.detail
        offset, token = d.get("offset"), d.get("token")
        if not (
            out.code == 1005
            and isinstance(offset, int)
            and isinstance(token, str)
            and 0 <= offset <= len(text)
            and text[offset:].startswith(token)
            and _expected_ok(d.get("expected"))
        ):
            bad.append(f"{_show(text)}: {out.brief()}")
    check(not bad, f"{len(bad)} of {len(texts)} texts fail otherwise", *bad[:8])
