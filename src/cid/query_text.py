"""The textual query language (spec section 13): a query a person types, a scheduler stores.

::

    class=intelligent accel.model=a100-80g accel.count>=8 near=CN-TJ rtt<=3ms
        renewable>=0.5 order=cost,latency limit=10 currency=CNY
    vcpu=1 mem=2GiB storage=100GiB for 3months order=cost currency=CNY

:func:`parse` compiles the text into the same :class:`~cid.query.Query` a
scheduler would send as JSON; :func:`to_text` renders any query back, so that
``parse(to_text(q)) == q`` ([REQ-QTX-030]). A text that does not parse raises
:class:`~cid.errors.QuerySyntaxError` whose ``detail`` names the character
``offset`` and the ``token`` at fault and what was ``expected`` there
([REQ-QTX-040]); a text that parses into a query breaking a rule of spec 7
(say ``rtt<=3ms`` without ``near``) is reported the same way, at the clause
that set the offending member ([REQ-QTX-041]).

Theory of operation: a lexer turns the text into words, quoted strings,
operators and commas, each with its offset (h11-style: the grammar lives in
one place, as data); the parser reads one clause at a time, looks the key up
in :data:`KEYS` and hands the values to the key's converter, which fills a
plain dict; the dict is validated as a :class:`~cid.query.Query` at the end.
:func:`to_text` walks the same table in reverse. The module is pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, InvalidOperation
from typing import Any, Final

from .errors import CidError, QuerySyntaxError, SchemaError
from .identifier import Identifier
from .model import validate
from .query import Query, RankKey, VersionRange
from .record import PERIOD_SECONDS, Architecture, ComputeClass, Period, Precision

__all__ = ["KEYS", "parse", "to_text"]

# --- lexer ------------------------------------------------------------------------------------

_OPS: Final = (">=", "<=", "!=", "==", "=", ">", "<")
_WORD_BREAK: Final = frozenset(' \t\r\n=<>!,"')
_KEYWORDS: Final = frozenset({"in", "not", "for"})


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "word", "string", "op", "comma", "end"
    text: str  # a quoted string's content, unescaped
    offset: int
    space_before: bool
    raw: str = ""  # the token as written, when it differs from text (a quoted string)

    @property
    def written(self) -> str:
        return self.raw or self.text


def _error(message: str, token: _Token | None, expected: Any, **extra: Any) -> QuerySyntaxError:
    detail: dict[str, Any] = {
        "offset": token.offset if token else 0,
        "token": token.written if token else "",
        "expected": expected,
    }
    detail.update(extra)
    return QuerySyntaxError(message, detail=detail)


def _lex(text: str) -> list[_Token]:
    """Words, quoted strings, operators and commas with their offsets ([REQ-QTX-002])."""
    out: list[_Token] = []
    i, n = 0, len(text)
    space = True
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
            space = True
            continue
        if ch == ",":
            out.append(_Token("comma", ",", i, space))
            i += 1
        elif ch == '"':
            j = i + 1
            buf: list[str] = []
            while j < n and text[j] != '"':
                if not text[j].isprintable():
                    raise _error(
                        "a control character in a quoted string",
                        _Token("char", text[j], j, False),
                        "printable text",
                    )
                if text[j] == "\\" and j + 1 < n and text[j + 1] in '"\\':
                    j += 1
                elif text[j] == "\\":
                    raise _error(
                        'only \\" and \\\\ are escapes in a quoted string',
                        _Token("string", text[j : j + 2], j, False),
                        ['\\"', "\\\\"],
                    )
                buf.append(text[j])
                j += 1
            if j >= n:
                raise _error(
                    "unterminated quoted string", _Token("string", text[i:], i, space), '"'
                )
            out.append(_Token("string", "".join(buf), i, space, text[i : j + 1]))
            i = j + 1
        elif ch in "=<>!":
            op = next((o for o in _OPS if text.startswith(o, i)), None)
            if op is None:
                raise _error("not an operator", _Token("op", ch, i, space), list(_OPS[:4]))
            out.append(_Token("op", op, i, space))
            i += len(op)
        elif ch.isprintable():
            j = i
            while j < n and text[j] not in _WORD_BREAK and text[j].isprintable():
                j += 1
            out.append(_Token("word", text[i:j], i, space))
            i = j
        else:
            raise _error(
                "a character that cannot appear in a query", _Token("char", ch, i, space), "text"
            )
        space = False
    out.append(_Token("end", "", n, space))
    return out


# --- values -----------------------------------------------------------------------------------

_NUMBER: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)(.*)", re.S)
_SIZE_UNITS: Final = {"mib": 1, "gib": 1024, "tib": 1024**2, "pib": 1024**3}
_TIME_UNITS: Final = {"us": 1, "µs": 1, "μs": 1, "ms": 1_000, "s": 1_000_000}
_DURATION_UNITS: Final = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3_600),
    **dict.fromkeys(("d", "day", "days"), 86_400),
    **dict.fromkeys(("w", "week", "weeks"), 7 * 86_400),
    **dict.fromkeys(("mo", "month", "months"), PERIOD_SECONDS["month"]),
    **dict.fromkeys(("y", "yr", "year", "years"), PERIOD_SECONDS["year"]),
}
_PERIODS: Final = {
    **dict.fromkeys(("s", "sec", "second"), "second"),
    **dict.fromkeys(("min", "minute"), "minute"),
    **dict.fromkeys(("h", "hr", "hour"), "hour"),
    **dict.fromkeys(("d", "day"), "day"),
    **dict.fromkeys(("mo", "month"), "month"),
    **dict.fromkeys(("y", "yr", "year"), "year"),
}


# REQ-QTX-024: decimals are carried exactly: arithmetic on them never rounds
_EXACT: Final = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


def _canonical(value: Decimal) -> str:
    """The canonical text of §5.3 of an exact decimal, without rounding it ([REQ-QTX-024])."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _unit(text: str) -> str:
    """Units compare case-insensitively, in ASCII only (``GIB``, ``Ms``; not Greek capitals)."""
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


def _number(tok: _Token, what: str) -> tuple[Decimal, str]:
    m = _NUMBER.fullmatch(tok.text) if tok.kind in ("word", "string") else None
    if m is None:
        raise _error(f"expected {what}", tok, what)
    try:
        return Decimal(m.group(1)), m.group(2)
    except InvalidOperation as e:  # pragma: no cover - the pattern admits only numbers
        raise _error(f"expected {what}", tok, what) from e


def _integer(tok: _Token) -> int:
    value, rest = _number(tok, "a whole number")
    if rest or value != value.to_integral_value():
        raise _error("expected a whole number", tok, "a whole number")
    return int(value)


def _decimal(tok: _Token) -> Decimal:
    value, rest = _number(tok, "a decimal number")
    if rest:
        raise _error("expected a decimal number without a unit", tok, "a decimal number")
    return value


def _scaled(
    tok: _Token, units: dict[str, int], base: str, what: str, shown: list[str], unit: str = ""
) -> int:
    """A number with a unit from ``units``, as a whole number of the ``base`` unit."""
    value, suffix = _number(tok, what)
    suffix = suffix or unit
    factor = units.get(_unit(suffix)) if suffix else None
    if factor is None:
        hint = f"{what} needs a unit" if not suffix else f"{suffix!r} is not a unit of {what}"
        raise _error(hint, tok, shown)
    scaled = _EXACT.multiply(value, Decimal(factor))
    if scaled != scaled.to_integral_value():
        raise _error(f"not a whole number of {base}", tok, f"a whole number of {base}")
    return int(scaled)


def _size_mib(tok: _Token) -> int:
    # REQ-QTX-020: sizes in binary units only; "GB" is refused rather than guessed
    return _scaled(tok, _SIZE_UNITS, "MiB", "a size", ["MiB", "GiB", "TiB", "PiB"])


def _size_gib(tok: _Token) -> int:
    mib = _size_mib(tok)
    if mib % 1024:
        raise _error("not a whole number of GiB", tok, "a whole number of GiB")
    return mib // 1024


def _rtt_us(tok: _Token) -> int:
    return _scaled(tok, _TIME_UNITS, "µs", "a round-trip time", ["us", "ms", "s"])


def _duration_s(tok: _Token, unit: str = "") -> int:
    shown = ["s", "min", "h", "d", "w", "mo", "y"]
    return _scaled(tok, _DURATION_UNITS, "seconds", "a duration", shown, unit)


def _enum(tok: _Token, allowed: list[str], what: str) -> str:
    if tok.kind not in ("word", "string") or tok.text not in allowed:
        raise _error(f"expected {what}", tok, allowed)
    return tok.text


# --- the key table ----------------------------------------------------------------------------

Put = Callable[[dict[str, Any], str, list[_Token]], None]


@dataclass(frozen=True, slots=True)
class _Key:
    """One key of the language: which operators it takes and what it sets."""

    ops: tuple[str, ...]
    put: Put
    fields: tuple[str, ...]  # the Query members it sets (for error mapping)
    many: bool = False  # takes a comma list


def _one(values: list[_Token]) -> _Token:
    if len(values) != 1:
        raise _error(
            "this key takes one value", values[1] if len(values) > 1 else None, "one value"
        )
    return values[0]


def _set(d: dict[str, Any], path: tuple[str, ...], value: Any, tok: _Token) -> None:
    for part in path[:-1]:
        d = d.setdefault(part, {})
    if path[-1] in d:
        raise _error(f"{'.'.join(path)} is given twice", tok, "each key once")
    d[path[-1]] = value


def _put_class(d: dict[str, Any], op: str, v: list[_Token]) -> None:
    _set(d, ("class",), _enum(_one(v), [c.value for c in ComputeClass], "a compute class"), v[0])


def _put_within(d: dict[str, Any], op: str, v: list[_Token]) -> None:
    tok = _one(v)
    try:
        name = Identifier.parse(tok.text)
    except CidError as e:
        raise _error(f"not an identifier: {e.message}", tok, "an identifier") from e
    _set(d, ("within",), name.to_text(), tok)


def _list(values: list[_Token], check: Callable[[_Token], str]) -> list[str]:
    return [check(t) for t in values]


def _put_arch(d: dict[str, Any], op: str, v: list[_Token]) -> None:
    allowed = [a.value for a in Architecture]
    _set(d, ("arch",), _list(v, lambda t: _enum(t, allowed, "an architecture")), v[0])


def _token_text(t: _Token) -> str:
    if t.kind not in ("word", "string") or not re.fullmatch(r"[a-z0-9][a-z0-9._+-]{0,63}", t.text):
        raise _error("expected a lower-case token", t, "a token such as a100-80g")
    return t.text


def _put_accel(d: dict[str, Any], op: str, v: list[_Token]) -> None:
    _enum(_one(v), ["any"], "any")
    d.setdefault("accelerator", {})


def _accel(member: str, convert: Callable[[_Token], Any], many: bool = False) -> Put:
    def put(d: dict[str, Any], op: str, v: list[_Token]) -> None:
        value = [convert(t) for t in v] if many else convert(_one(v))
        _set(d, ("accelerator", member), value, v[0])

    return put


def _put_accel_count(d: dict[str, Any], op: str, v: list[_Token]) -> None:
    tok = _one(v)
    if op == ">=":
        _set(d, ("accelerator", "count_min"), _integer(tok), tok)
    else:
        _set(d, ("demand", "accelerators"), _integer(tok), tok)


def _quantity(member: str, minimum: str, convert: Callable[[_Token], int]) -> Put:
    """``key=x`` demands x; ``key>=x`` asks each unit to have at least x ([REQ-QTX-011])."""

    def put(d: dict[str, Any], op: str, v: list[_Token]) -> None:
        tok = _one(v)
        if op == ">=":
            _set(d, (minimum,), convert(tok), tok)
        else:
            _set(d, ("demand", member), convert(tok), tok)

    return put


def _demand(member: str) -> Put:
    def put(d: dict[str, Any], op: str, v: list[_Token]) -> None:
        tok = _one(v)
        _set(d, ("demand", member), _integer(tok), tok)

    return put


def _region_text(t: _Token) -> str:
    if not re.fullmatch(r"[A-Z]{2}-[A-Z0-9]{1,3}", t.text):
        raise _error("expected an ISO 3166-2 region code", t, "a region such as CN-TJ")
    return t.text


def _put_region(d: dict[str, Any], op: str, v: list[_Token]) -> None:
    member = "region_not_in" if op in ("!=", "not in") else "region_in"
    _set(d, (member,), _list(v, _region_text), v[0])


def _put_country(d: dict[str, Any], op: str, v: list[_Token]) -> None:
    def country(t: _Token) -> str:
        if not re.fullmatch(r"[A-Z]{2}", t.text):
            raise _error("expected an ISO 3166-1 country code", t, "a country such as CN")
        return t.text

    _set(d, ("country_in",), _list(v, country), v[0])


def _put_city(d: dict[str, Any], op: str, v: list[_Token]) -> None:
    _set(d, ("city_in",), [t.text for t in v], v[0])


def _put_near(d: dict[str, Any], op: str, v: list[_Token]) -> None:
    tok = _one(v)
    near = d.get("near", {})
    if "region" in near or "latency_circle" in near:
        # REQ-QTX-012: near= sets near.region or near.latency_circle, whichever it names
        raise _error("near is given twice", tok, "each key once")
    if re.fullmatch(r"[A-Z]{2}-[A-Z0-9]{1,3}", tok.text):
        _set(d, ("near", "region"), tok.text, tok)
    else:
        _set(d, ("near", "latency_circle"), _token_text(tok), tok)


def _put_rtt(d: dict[str, Any], op: str, v: list[_Token]) -> None:
    tok = _one(v)
    _set(d, ("near", "max_rtt_us"), _rtt_us(tok), tok)


def _put_currency(d: dict[str, Any], op: str, v: list[_Token]) -> None:
    tok = _one(v)
    if not re.fullmatch(r"[A-Z]{3}", tok.text):
        raise _error("expected an ISO 4217 currency code", tok, "a currency such as CNY")
    _set(d, ("currency",), tok.text, tok)


def _put_price(d: dict[str, Any], op: str, v: list[_Token]) -> None:
    tok = _one(v)
    amount, rest = _number(tok, "a price such as 0.05/hour")
    if rest:
        period = _PERIODS.get(_unit(rest[1:])) if rest.startswith("/") else None
        if period is None:
            raise _error("expected a price per period", tok, sorted({f"/{p}" for p in _PERIODS}))
        _set(d, ("unit_price_per",), period, tok)
    _set(d, ("unit_price_max",), _canonical(amount), tok)


def _put_total(d: dict[str, Any], op: str, v: list[_Token]) -> None:
    tok = _one(v)
    _set(d, ("total_cost_max",), _canonical(_decimal(tok)), tok)


def _put_renewable(d: dict[str, Any], op: str, v: list[_Token]) -> None:
    tok = _one(v)
    value, rest = _number(tok, "a share such as 0.5 or 50%")
    if rest == "%":
        value = value.scaleb(-2, _EXACT)
    elif rest:
        raise _error("expected a share such as 0.5 or 50%", tok, ["0.5", "50%"])
    _set(d, ("renewable_share_min",), _canonical(value), tok)


def _put_carbon(d: dict[str, Any], op: str, v: list[_Token]) -> None:
    tok = _one(v)
    value, rest = _number(tok, "grams per kWh")
    if _unit(rest) not in ("", "g/kwh") or value != value.to_integral_value():
        raise _error("expected whole grams per kWh", tok, ["400", "400g/kWh"])
    _set(d, ("carbon_g_per_kwh_max",), int(value), tok)


def _put_sw(d: dict[str, Any], op: str, v: list[_Token]) -> None:
    for t in v:
        d.setdefault("software", []).append({"name": _token_text(t)})


def _put_compliance(d: dict[str, Any], op: str, v: list[_Token]) -> None:
    _set(d, ("compliance",), _list(v, _token_text), v[0])


def _put_free(d: dict[str, Any], op: str, v: list[_Token]) -> None:
    tok = _one(v)
    _set(d, ("units_free_min",), _integer(tok), tok)


def _put_order(d: dict[str, Any], op: str, v: list[_Token]) -> None:
    allowed = [k.value for k in RankKey]
    _set(d, ("order",), _list(v, lambda t: _enum(t, allowed, "a ranking key")), v[0])


def _put_weights(d: dict[str, Any], op: str, v: list[_Token]) -> None:
    allowed = [k.value for k in RankKey]
    weights: dict[str, str] = {}
    for t in v:
        key, sep, weight = t.text.partition(":")
        if t.kind not in ("word", "string") or not sep or key not in allowed:
            raise _error("expected key:weight", t, [f"{k}:1" for k in allowed])
        if key in weights:
            raise _error(f"weight for {key} given twice", t, "each key once")
        m = _NUMBER.fullmatch(weight)
        if m is None or m.group(2):
            raise _error("expected a decimal weight", t, "a decimal number")
        weights[key] = _canonical(Decimal(m.group(1)))
    _set(d, ("weights",), weights, v[0])


def _put_limit(d: dict[str, Any], op: str, v: list[_Token]) -> None:
    tok = _one(v)
    _set(d, ("limit",), _integer(tok), tok)


def _put_cursor(d: dict[str, Any], op: str, v: list[_Token]) -> None:
    tok = _one(v)
    _set(d, ("cursor",), tok.text, tok)


def _put_tflops(precision: str) -> Put:
    def put(d: dict[str, Any], op: str, v: list[_Token]) -> None:
        tok = _one(v)
        _set(d, ("tflops_min", precision), _canonical(_decimal(tok)), tok)

    return put


KEYS: Final[dict[str, _Key]] = {
    "within": _Key(("=",), _put_within, ("within",)),
    "class": _Key(("=",), _put_class, ("class",)),
    "arch": _Key(("=", "in"), _put_arch, ("arch",), many=True),
    "accel": _Key(("=",), _put_accel, ("accelerator",)),
    "accel.vendor": _Key(("=",), _accel("vendor", _token_text), ("accelerator.vendor",)),
    "accel.model": _Key(
        ("=", "in"), _accel("model", _token_text, many=True), ("accelerator.model",), many=True
    ),
    "accel.family": _Key(("=",), _accel("family", _token_text), ("accelerator.family",)),
    "accel.count": _Key(
        (">=", "="), _put_accel_count, ("accelerator.count_min", "demand.accelerators")
    ),
    "accel.mem": _Key(
        (">=",), _accel("memory_gib_min", _size_gib), ("accelerator.memory_gib_min",)
    ),
    **{
        f"tflops.{p.value}": _Key((">=",), _put_tflops(p.value), (f"tflops_min.{p.value}",))
        for p in Precision
    },
    "vcpu": _Key((">=", "="), _quantity("vcpu", "vcpu_min", _integer), ("vcpu_min", "demand.vcpu")),
    "mem": _Key(
        (">=", "="),
        _quantity("memory_mib", "memory_mib_min", _size_mib),
        ("memory_mib_min", "demand.memory_mib"),
    ),
    "storage": _Key(
        (">=", "="),
        _quantity("storage_gib", "storage_gib_min", _size_gib),
        ("storage_gib_min", "demand.storage_gib"),
    ),
    "nodes": _Key(("=",), _demand("nodes"), ("demand.nodes",)),
    "units": _Key(("=",), _demand("units"), ("demand.units",)),
    "region": _Key(
        ("=", "in", "!=", "not in"), _put_region, ("region_in", "region_not_in"), many=True
    ),
    "country": _Key(("=", "in"), _put_country, ("country_in",), many=True),
    "city": _Key(("=", "in"), _put_city, ("city_in",), many=True),
    "near": _Key(("=",), _put_near, ("near.region", "near.latency_circle")),
    "rtt": _Key(("<=",), _put_rtt, ("near.max_rtt_us",)),
    "currency": _Key(("=",), _put_currency, ("currency",)),
    "price": _Key(("<=",), _put_price, ("unit_price_max", "unit_price_per")),
    "total": _Key(("<=",), _put_total, ("total_cost_max",)),
    "renewable": _Key((">=",), _put_renewable, ("renewable_share_min",)),
    "carbon": _Key(("<=",), _put_carbon, ("carbon_g_per_kwh_max",)),
    "sw": _Key(("=", "in"), _put_sw, ("software",), many=True),
    "compliance": _Key(("=", "in"), _put_compliance, ("compliance",), many=True),
    "free": _Key((">=",), _put_free, ("units_free_min",)),
    "order": _Key(("=",), _put_order, ("order",), many=True),
    "weights": _Key(("=",), _put_weights, ("weights",), many=True),
    "limit": _Key(("=",), _put_limit, ("limit",)),
    "cursor": _Key(("=",), _put_cursor, ("cursor",)),
}
"""Every key of the language (spec 13, Table 13-1), with its operators and members."""

_VERSION_OPS: Final = (">=", "<=", "==", "!=", ">", "<", "=")


# --- parser -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Clause:
    """One clause as read: for pointing an error of a rule of spec 7 at it ([REQ-QTX-041])."""

    key: _Token
    value: _Token  # the clause's first value (for sw.<name>, the key; for "for", the number)
    members: frozenset[str]  # the dotted members the clause set
    names: frozenset[str]  # the ranking keys an order or weights clause names


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _lex(text)
        self.pos = 0
        self.value: dict[str, Any] = {}
        self.clauses: list[_Clause] = []
        self.any_accel = False

    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def take(self) -> _Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def parse(self) -> Query:
        while self.peek().kind != "end":
            self.clause()
        return self.finish()

    def added(
        self, key: _Token, value: _Token, before: set[str], names: frozenset[str] = frozenset()
    ) -> None:
        members = _flatten(self.value) - before
        if key.text == "sw" or key.text.startswith("sw."):
            members.add("software")
        self.clauses.append(_Clause(key, value, frozenset(members), names))

    def clause(self) -> None:
        start = self.take()
        if start.kind != "word":
            raise _error("expected a key", start, sorted(KEYS))
        if self.clauses and not start.space_before:
            # REQ-QTX-001: the grammar separates clauses by white space
            raise _error("expected white space before a clause", start, "white space")
        before = _flatten(self.value)
        if start.text == "for":
            tok = self.take()
            if tok.kind != "word":
                raise _error("expected a duration", tok, "a duration such as 3months")
            unit = ""
            nxt = self.peek()
            # REQ-QTX-021: "for 3 months" as well as "for 3months"
            bare = _NUMBER.fullmatch(tok.text)
            if (
                bare is not None
                and not bare.group(2)
                and nxt.kind == "word"
                and _unit(nxt.text) in _DURATION_UNITS
            ):
                unit = self.take().text
            _set(self.value, ("duration_s",), _duration_s(tok, unit), tok)
            self.added(start, tok, before)
            return
        if start.text.startswith("sw.") and len(start.text) > 3:
            self.software(start)
            self.added(start, start, before)
            return
        spec = KEYS.get(start.text)
        if spec is None:
            raise _error(f"unknown key {start.text!r}", start, sorted([*KEYS, "for", "sw.<name>"]))
        op = self.operator(spec, start)
        values = [self.value_token()]
        while self.peek().kind == "comma":
            self.take()
            values.append(self.value_token())
        if len(values) > 1 and not spec.many:
            raise _error(f"{start.text} takes one value", values[1], "one value")
        if start.text == "accel":
            if self.any_accel:
                # REQ-QTX-012: accel=any sets accelerator; other accel.* clauses may refine it
                raise _error("accel=any is given twice", values[0], "each key once")
            self.any_accel = True
        spec.put(self.value, op, values)
        names = frozenset(t.text.partition(":")[0] for t in values)
        self.added(start, values[0], before, names)

    def operator(self, spec: _Key, key: _Token) -> str:
        tok = self.take()
        if tok.kind == "word" and tok.text == "not":
            nxt = self.take()
            if nxt.kind != "word" or nxt.text != "in":
                raise _error("expected 'in' after 'not'", nxt, "in")
            op = "not in"
        elif tok.kind == "word" and tok.text == "in":
            op = "in"
        elif tok.kind == "op":
            op = tok.text
        else:
            raise _error(f"expected an operator after {key.text}", tok, list(spec.ops))
        if op not in spec.ops:
            raise _error(f"{key.text} does not take {op}", tok, list(spec.ops))
        if op.endswith("in") and self.peek().kind != "end" and not self.peek().space_before:
            # REQ-QTX-001: in-clause = key 1*WSP ["not" 1*WSP] "in" 1*WSP values
            raise _error("expected white space after in", self.peek(), "white space")
        return op

    def value_token(self) -> _Token:
        tok = self.take()
        if tok.kind not in ("word", "string"):
            raise _error("expected a value", tok, "a value")
        if tok.kind == "word" and tok.text in _KEYWORDS:
            # REQ-QTX-003: the words in, not and for are values only when quoted
            raise _error(f"{tok.text} is a value only when quoted", tok, f'"{tok.text}"')
        return tok

    def software(self, key: _Token) -> None:
        """``sw.NAME OP VERSION ("," OP VERSION)*``: a version range ([REQ-QTX-014])."""
        name = _token_text(_Token("word", key.text[3:], key.offset + 3, False))
        clauses: list[str] = []
        while True:
            op_tok = self.take()
            if op_tok.kind != "op" or op_tok.text not in _VERSION_OPS:
                raise _error("expected a version comparison", op_tok, list(_VERSION_OPS[:6]))
            ver = self.take()
            if ver.kind != "word" or not re.fullmatch(r"[0-9]+(\.[0-9]+){0,3}", ver.text):
                raise _error("expected a version such as 12.1", ver, "a version such as 12.1")
            clauses.append(("==" if op_tok.text == "=" else op_tok.text) + ver.text)
            if self.peek().kind != "comma":
                break
            self.take()
        text = ",".join(clauses)
        software = self.value.setdefault("software", [])
        try:
            VersionRange.parse(text)
        except SchemaError as e:
            # REQ-QTX-014, REQ-QTX-041: a range that spec 7 refuses, at the sw.<name> clause
            raise _error(
                f"not a version range: {e.message}",
                key,
                "a version range",
                field=f"software.{len(software)}.version",
                rule="version_range",
            ) from e
        software.append({"name": name, "version": text})

    def finish(self) -> Query:
        near = self.value.get("near")
        if (
            isinstance(near, dict)
            and "max_rtt_us" in near
            and not near.keys()
            & {
                "region",
                "latency_circle",
            }
        ):
            # REQ-QTX-013: an RTT bound is measured to the region named by near
            rtt = next(c for c in self.clauses if c.key.text == "rtt")
            raise _error(
                "rtt needs near=<region>",
                rtt.key,
                "near=<region>",
                field="near.max_rtt_us",
                rule="requires_region",
            )
        try:
            return validate(Query, self.value)
        except SchemaError as e:
            raise self.rule_error(e) from e

    def rule_error(self, e: SchemaError) -> QuerySyntaxError:
        """A rule of spec 7 broken by the query: point at the clause that set the member."""
        field = e.field or ""
        rule = e.detail.get("rule")
        return _error(
            f"the query breaks a rule: {e.message}",
            self._token_for(field, str(rule)),
            _RULE_HINTS.get(str(rule), "a valid query"),
            field=field,
            rule=rule,
        )

    def _token_for(self, field: str, rule: str) -> _Token:
        """Table 13-2: where the error of a rule of spec 7 points ([REQ-QTX-041])."""
        needs = _NEEDS.get(rule)
        if needs is not None:
            for c in self.clauses:  # the first clause that needs the missing member: its key
                wanted = needs.get(c.key.text)
                if wanted is not None and (not wanted or wanted & c.names):
                    return c.key
        for c in self.clauses:  # the first clause that set the member: its first value
            if any(m == field or _inside(m, field) or _inside(field, m) for m in c.members):
                return c.value
        return self.tokens[-1]  # pragma: no cover - every member comes from a clause


def _inside(member: str, outer: str) -> bool:
    return outer == "" or member.startswith(outer + ".")


# the rules of spec 7 that relate members: the clauses that need the member (key -> the ranking
# keys the clause must name, empty for any), whose key the error points at (Table 13-2)
_NEEDS: Final[dict[str, dict[str, frozenset[str]]]] = {
    "currency_required": {
        "price": frozenset(),
        "total": frozenset(),
        "order": frozenset({"cost"}),
        "weights": frozenset({"cost"}),
    },
    "duration_required": {"total": frozenset()},
    "near_region_required": {
        "order": frozenset({"latency"}),
        "weights": frozenset({"latency"}),
    },
    "requires_region": {"rtt": frozenset()},
    "requires_unit_price_max": {"price": frozenset()},
    "weight_not_in_order": {"weights": frozenset()},
}


_RULE_HINTS: Final[dict[str, str]] = {
    "currency_required": "currency=<ISO 4217 code>",
    "near_region_required": "near=<region>",
    "duration_required": "for <duration>",
    "requires_region": "near=<region>",
    "weight_not_in_order": "each weighted key in order",
    "region_overlap": "a region either in or not in",
}


def _flatten(d: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for k, v in d.items():
        path = f"{prefix}{k}"
        out.add(path)
        if isinstance(v, dict):
            out |= _flatten(v, path + ".")
    return out


def parse(text: str) -> Query:
    """Compile a textual query (spec 13) into a :class:`~cid.query.Query`.

    Raises:
        QuerySyntaxError: the text does not parse, or breaks a rule of spec 7;
            ``detail`` has ``offset`` (characters from the start), ``token``
            and ``expected`` ([REQ-QTX-040], [REQ-QTX-041]).
    """
    if not isinstance(text, str):
        raise QuerySyntaxError(
            "a query is text", detail={"offset": 0, "token": "", "expected": "text"}
        )
    if len(text) > 4096:
        raise _error(
            "a query is at most 4096 characters",
            _Token("end", "", 4096, False),
            "<= 4096 characters",
        )
    return _Parser(text).parse()


# --- rendering --------------------------------------------------------------------------------


def _word(value: str) -> str:
    """A value as a word, or quoted when it would not lex back as one ([REQ-QTX-003])."""
    if (
        value
        and value not in _KEYWORDS
        and all(c not in _WORD_BREAK and c.isprintable() for c in value)
    ):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _size(mib: int, zero: str = "MiB") -> str:
    """The largest binary unit that divides the size; zero in the member's own unit."""
    if mib == 0:
        return f"0{zero}"
    for unit, factor in (("PiB", 1024**3), ("TiB", 1024**2), ("GiB", 1024)):
        if mib % factor == 0:
            return f"{mib // factor}{unit}"
    return f"{mib}MiB"


def _duration(seconds: int) -> str:
    for unit, factor in (
        ("y", PERIOD_SECONDS["year"]),
        ("mo", PERIOD_SECONDS["month"]),
        ("w", 7 * 86_400),
        ("d", 86_400),
        ("h", 3_600),
        ("min", 60),
    ):
        if seconds % factor == 0:
            return f"{seconds // factor}{unit}"
    return f"{seconds}s"


def _time(us: int) -> str:
    if us % 1_000_000 == 0:
        return f"{us // 1_000_000}s"
    if us % 1_000 == 0:
        return f"{us // 1_000}ms"
    return f"{us}us"


def to_text(query: Query) -> str:
    """Render ``query`` in the textual language; ``parse(to_text(q)) == q`` ([REQ-QTX-030])."""
    q = query
    out: list[str] = []
    if q.within is not None:
        out.append(f"within={_word(q.within.to_text())}")
    if q.compute_class is not None:
        out.append(f"class={q.compute_class}")
    if q.arch is not None:
        out.append("arch=" + ",".join(str(a) for a in q.arch))
    acc = q.accelerator
    if acc is not None:
        if acc == type(acc)():
            out.append("accel=any")
        if acc.vendor is not None:
            out.append(f"accel.vendor={_word(acc.vendor)}")
        if acc.model is not None:
            out.append("accel.model=" + ",".join(_word(m) for m in acc.model))
        if acc.family is not None:
            out.append(f"accel.family={_word(acc.family)}")
        if acc.count_min is not None:
            out.append(f"accel.count>={acc.count_min}")
        if acc.memory_gib_min is not None:
            out.append(f"accel.mem>={_size(acc.memory_gib_min * 1024, 'GiB')}")
    for precision, bound in sorted((q.tflops_min or {}).items()):
        out.append(f"tflops.{precision}>={_canonical(bound)}")
    if q.vcpu_min is not None:
        out.append(f"vcpu>={q.vcpu_min}")
    if q.memory_mib_min is not None:
        out.append(f"mem>={_size(q.memory_mib_min)}")
    if q.storage_gib_min is not None:
        out.append(f"storage>={_size(q.storage_gib_min * 1024, 'GiB')}")
    d = q.demand
    if d is not None:
        if d.vcpu:
            out.append(f"vcpu={d.vcpu}")
        if d.memory_mib:
            out.append(f"mem={_size(d.memory_mib)}")
        if d.storage_gib:
            out.append(f"storage={_size(d.storage_gib * 1024)}")
        if d.accelerators:
            out.append(f"accel.count={d.accelerators}")
        if d.nodes:
            out.append(f"nodes={d.nodes}")
        if d.units:
            out.append(f"units={d.units}")
    if q.duration_s is not None:
        out.append(f"for {_duration(q.duration_s)}")
    if q.region_in is not None:
        out.append("region in " + ",".join(q.region_in))
    if q.region_not_in is not None:
        out.append("region not in " + ",".join(q.region_not_in))
    if q.country_in is not None:
        out.append("country in " + ",".join(q.country_in))
    if q.city_in is not None:
        out.append("city in " + ",".join(_word(c) for c in q.city_in))
    if q.near is not None:
        out.append(f"near={_word(q.near.region or q.near.latency_circle or '')}")
        if q.near.max_rtt_us is not None:
            out.append(f"rtt<={_time(q.near.max_rtt_us)}")
    if q.currency is not None:
        out.append(f"currency={q.currency}")
    if q.unit_price_max is not None:
        per = "" if q.unit_price_per is None else f"/{q.unit_price_per}"
        out.append(f"price<={_canonical(q.unit_price_max)}{per}")
    if q.total_cost_max is not None:
        out.append(f"total<={_canonical(q.total_cost_max)}")
    if q.renewable_share_min is not None:
        out.append(f"renewable>={_canonical(q.renewable_share_min)}")
    if q.carbon_g_per_kwh_max is not None:
        out.append(f"carbon<={q.carbon_g_per_kwh_max}")
    for sc in q.software or []:
        out.append(f"sw={_word(sc.name)}" if sc.version is None else f"sw.{sc.name}{sc.version}")
    if q.compliance is not None:
        out.append("compliance=" + ",".join(_word(c) for c in q.compliance))
    if q.units_free_min is not None:
        out.append(f"free>={q.units_free_min}")
    if q.order:
        out.append("order=" + ",".join(str(k) for k in q.order))
    if q.weights is not None:
        weights = sorted((str(k), w) for k, w in q.weights.items())
        out.append("weights=" + ",".join(f"{k}:{_canonical(w)}" for k, w in weights))
    if q.limit != Query.model_fields["limit"].default:
        out.append(f"limit={q.limit}")
    if q.cursor is not None:
        out.append(f"cursor={q.cursor}")
    return " ".join(out)


# Keep Period referenced for readers of the table: unit prices are per one of these.
_ = Period
