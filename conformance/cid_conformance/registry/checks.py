"""Checks shared by the registry cases: problem bodies, canonical bytes, verified answers."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any, Final

from cid import codec
from cid.envelope import Envelope
from cid.errors import CidError
from cid.trust import TrustState

from ..spec import error_table
from ..wire import PROBLEM, Reply

__all__ = [
    "PERIODS",
    "canonical_issue",
    "cost_text",
    "exact_cost",
    "internals_in",
    "names_of",
    "problem_issues",
    "query_field",
    "verify_resolve_answer",
    "written",
]

_WIRE_MEMBERS: Final = {"code", "name", "message", "retryable", "field", "detail"}
_PROBLEM_MEMBERS: Final = {"type", "title", "status", "detail", "instance", "cid", "request_id"}


def problem_issues(reply: Reply) -> list[str]:
    """What is wrong with an error answer under [REQ-REG-004], [REQ-ERR-002] and [REQ-ERR-007]."""
    issues: list[str] = []
    if reply.media_type != PROBLEM:
        issues.append(f"Content-Type is {reply.media_type or '(none)'!r}, not {PROBLEM}")
    problem = reply.problem()
    if problem is None:
        return [*issues, "the body is not a JSON object"]
    missing = _PROBLEM_MEMBERS - set(problem)
    if missing:
        issues.append(f"problem members missing: {sorted(missing)}")
    err = problem.get("cid")
    if not isinstance(err, dict):
        return [*issues, "no `cid` map (the wire error object)"]
    code = err.get("code")
    if not isinstance(code, int) or isinstance(code, bool):
        return [*issues, f"cid.code is not an integer: {code!r}"]
    extra = set(err) - _WIRE_MEMBERS
    if extra:
        issues.append(f"wire error object has members Table 10-3 does not define: {sorted(extra)}")
    for member in ("name", "message", "retryable"):
        if member not in err:
            issues.append(f"wire error object lacks {member!r}")
    row = error_table().get(code)
    if row is None:
        issues.append(f"code {code} is not in Table 10-1")
    else:
        if err.get("name") != row.name:
            issues.append(f"code {code} has name {err.get('name')!r}, Table 10-1 says {row.name}")
        if err.get("retryable") is not row.retryable:
            issues.append(f"{row.name}: retryable {err.get('retryable')!r}, not {row.retryable}")
        if reply.status != row.status:
            issues.append(f"{row.name} answered with HTTP {reply.status}, not {row.status}")
        if problem.get("type") != f"urn:cid:error:{row.name}":
            issues.append(f"problem type {problem.get('type')!r}, not urn:cid:error:{row.name}")
        if problem.get("title") != row.name:
            issues.append(f"problem title {problem.get('title')!r}, not {row.name}")
    if problem.get("status") != reply.status:
        issues.append(f"problem status {problem.get('status')!r} is not the HTTP {reply.status}")
    if "message" in err and problem.get("detail") != err.get("message"):
        issues.append("problem detail is not the wire error's message")
    if "field" in err and not isinstance(err["field"], str):
        issues.append("cid.field is not a string")
    if "detail" in err and not isinstance(err["detail"], dict):
        issues.append("cid.detail is not a map")
    path = reply.path.split("?", 1)[0]
    if problem.get("instance") not in (path, urllib.parse.unquote(path)):
        issues.append(f"problem instance {problem.get('instance')!r} is not the path {path!r}")
    if problem.get("request_id") != reply.headers.get("X-Request-Id"):
        issues.append("problem request_id differs from the X-Request-Id header")
    detail = err.get("detail")
    retry = detail.get("retry_after_s") if isinstance(detail, dict) else None
    header = reply.headers.get("Retry-After")
    if isinstance(retry, int) and not isinstance(retry, bool) and header != str(retry):
        issues.append(f"detail.retry_after_s {retry} but Retry-After is {header!r}")
    return issues


def canonical_issue(reply: Reply) -> str | None:
    """None when a negotiated answer's body is the canonical encoding of its value
    ([REQ-REG-007])."""
    enc = reply.encoding
    if enc is None:
        return f"{reply.brief()}: Content-Type {reply.media_type!r} is not a cid media type"
    try:
        value = codec.decode(
            reply.body,
            enc,
            codec.DEFAULT_LIMITS.scaled(max_bytes=512 * 1024 * 1024, max_array=2_000_000),
        )
    except CidError as e:
        return f"{reply.brief()}: the body does not decode as {enc}: {e}"
    if codec.encode(value, enc) != reply.body:
        return f"{reply.brief()}: the {enc} body is not in canonical form"
    return None


def verify_resolve_answer(
    answer: Mapping[str, Any], trust: TrustState, now: int
) -> tuple[list[Any], list[str]]:
    """Verify a resolve answer as a resolver does: the proof top-down, then each record.

    Returns the verified records and the problems found (empty when all verify).
    """
    problems: list[str] = []
    for i, env in enumerate(answer.get("proof", []) or []):
        try:
            trust.add(Envelope.from_value(env), now=now)
        except CidError as e:
            problems.append(f"proof.{i} does not verify: {e}")
    verified = []
    for i, env in enumerate(answer.get("records", []) or []):
        try:
            verified.append(trust.verify(Envelope.from_value(env), now=now))
        except CidError as e:
            problems.append(f"records.{i} does not verify from the trust anchor: {e}")
    return verified, problems


PERIODS: Final = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86_400,
    "month": 2_628_000,
    "year": 31_536_000,
}
"""Table 4-6."""


def written(value: Fraction) -> str:
    """A cost as [REQ-CAP-023] writes it: rounded towards +inf to 18 digits, canonical."""
    scaled = -((-value.numerator * 10**18) // value.denominator)
    sign = "-" if scaled < 0 else ""
    whole, frac = divmod(abs(scaled), 10**18)
    text = f"{whole}.{frac:018d}".rstrip("0").rstrip(".")
    return sign + text if text != "0" else "0"


def cost_text(amount: str, quantity: str, billed_s: int, per: str) -> str:
    """One item's cost ([REQ-CAP-023]) from its written parts."""
    return written(Fraction(amount) * Fraction(quantity) * billed_s / PERIODS[per])


def exact_cost(amount: str, quantity: str, billed_s: int, per: str) -> Fraction:
    return Fraction(amount) * Fraction(quantity) * billed_s / PERIODS[per]


def names_of(results: Iterable[Mapping[str, Any]]) -> list[str]:
    return [str(r.get("name")) for r in results]


_INTERNALS: Final = re.compile(
    r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+|\.py\", line|"
    r"\b[A-Za-z_]+\.py\b|\bsqlite3?\b|\basyncpg\b|\bpsycopg|postgres(?:ql)?://|"
    r"\bSELECT\b.+\bFROM\b|\bINSERT INTO\b|\bUPDATE\b.+\bSET\b|"
    r"\b(?:[A-Z][a-z0-9]+)+(?:Error|Exception)\b|<class '|object at 0x[0-9a-f]+",
)


def internals_in(text: str) -> str | None:
    """The first trace of implementation internals in ``text`` ([REQ-REG-005]), if any."""
    m = _INTERNALS.search(text)
    return m.group(0) if m else None


def query_field(reply: Reply) -> Any:
    """The ``field`` of an error about a query message, tolerating a leading ``query.``.

    [REQ-QRY-002] wants the path *within the message* (``near.max_rtt_us``); one case
    (registry/7/2) checks exactly that, the others only that the right member is named.
    """
    got = reply.field
    return got.removeprefix("query.") if isinstance(got, str) else got
