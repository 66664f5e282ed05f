"""§2 Identifiers: ``spec/vectors/identifiers.json`` (§2.10) and further parser checks."""

from __future__ import annotations

from typing import Any

from ..case import Section, check, check_equal
from ..spec import Level
from . import VectorsContext

s = Section("vectors", "2", "Identifiers")


async def _parse(ctx: VectorsContext, value: Any) -> tuple[str, Any]:
    out = await ctx.call("identifier.parse", input=value)
    if out.ok is not None:
        return "ok", (out.ok.get("canonical"), out.ok.get("ascii"), out.ok.get("labels"))
    if out.code == 1001:
        return "error", out.detail.get("reason")
    return "other", out.brief()


@s.case(
    1,
    "valid vectors: canonical text, ASCII form and labels; parsing is idempotent",
    "REQ-ID-001",
    "REQ-ID-002",
    "REQ-ID-004",
    "REQ-ID-005",
    "REQ-ID-007",
    "REQ-ID-008",
    "REQ-ID-010",
    "REQ-ID-011",
    "REQ-ID-013",
    "REQ-ID-014",
    "REQ-ID-015",
    "REQ-ID-016",
    "REQ-ID-017",
    "REQ-ID-018",
)
async def valid(ctx: VectorsContext) -> None:
    """for every valid case, parsing input gives an identifier whose canonical text form is
    canonical, whose ASCII form is ascii and whose labels are labels."""
    bad = []
    for case in ctx.identifiers["valid"]:
        want = ("ok", (case["canonical"], case["ascii"], case["labels"]))
        for text in (case["input"], case["canonical"], case["ascii"], "cid:" + case["canonical"]):
            got = await _parse(ctx, text)
            if got != want:
                bad.append(f"{text!r} ({case['note']}): {got}")
    check(not bad, f"{len(bad)} valid vectors parse differently", *bad[:8])


@s.case(
    2,
    "invalid vectors are rejected with their reason token",
    "REQ-ID-002",
    "REQ-ID-003",
    "REQ-ID-005",
    "REQ-ID-006",
    "REQ-ID-007",
    "REQ-ID-008",
    "REQ-ID-009",
    "REQ-ID-011",
    "REQ-ID-012",
    "REQ-ID-013",
    "REQ-ID-014",
    "REQ-ID-015",
    "REQ-ID-019",
)
async def invalid(ctx: VectorsContext) -> None:
    """for every invalid case, parsing input (which may be a non-string JSON value) is rejected with
    reason."""
    bad = []
    for case in ctx.identifiers["invalid"]:
        got = await _parse(ctx, case["input"])
        if got != ("error", case["reason"]):
            bad.append(
                f"{str(case['input'])[:40]!r} ({case['note']}): {got}, expected {case['reason']}"
            )
    check(not bad, f"{len(bad)} invalid vectors are answered differently", *bad[:8])


@s.case(
    3,
    "only text is an identifier: NOT_TEXT for numbers, null, arrays, maps, booleans",
    "REQ-ID-006",
)
async def not_text(ctx: VectorsContext) -> None:
    """A parser MUST reject any other value (a number, null, an array, a map, bytes) with reason
    NOT_TEXT."""
    for value in (None, 0, 42, -1, True, False, [], ["a"], {}, {"name": "a"}):
        check_equal(await _parse(ctx, value), ("error", "NOT_TEXT"), f"parse of {value!r}")


@s.case(4, "the ordering vector is in canonical order", "REQ-ID-022")
async def ordering(ctx: VectorsContext) -> None:
    """sorting the ordering list (after parsing) leaves it unchanged."""
    names = ctx.identifiers["ordering"]
    for shuffled in (list(reversed(names)), names[1::2] + names[0::2], names):
        got = (await ctx.ok("identifier.sort", names=shuffled))["names"]
        check_equal(got, names, "canonical order")


@s.case(5, "the within vectors: label-wise containment", "REQ-ID-023", "REQ-SEC-003")
async def within(ctx: VectorsContext) -> None:
    """for every within case, whether name is within namespace equals within."""
    bad = []
    for case in ctx.identifiers["within"]:
        got = await ctx.ok("identifier.within", name=case["name"], namespace=case["namespace"])
        if got.get("within") is not case["within"]:
            bad.append(f"{case['name']} within {case['namespace']}: {got.get('within')}")
    check(not bad, f"{len(bad)} within vectors differ", *bad)


@s.case(
    6,
    "equality is identity of canonical labels: no transitional mapping, no folding",
    "REQ-ID-021",
    "REQ-ID-011",
)
async def equality(ctx: VectorsContext) -> None:
    """Two identifiers MUST be considered equal if and only if their canonical label sequences are
    identical ... Implementations MUST NOT consider identifiers equal on any other ground."""
    same = [
        ("Straße.example", "xn--strae-oqa.example"),
        ("CID:A.B", "a.b"),
        ("池1。天津", "池1.天津"),
    ]
    for a, b in same:
        check_equal((await _parse(ctx, a))[1], (await _parse(ctx, b))[1], f"{a!r} and {b!r}")
    differ = [("straße.example", "strasse.example"), ("a.b", "b.a"), ("ctyun", "ctyunx")]
    for a, b in differ:
        check((await _parse(ctx, a))[1] != (await _parse(ctx, b))[1], f"{a!r} equals {b!r}")


@s.case(
    7,
    "the URI prefix is stripped once; no authority, query or percent-encoding",
    "REQ-ID-005",
    "REQ-ID-011",
)
async def uri_prefix(ctx: VectorsContext) -> None:
    """A parser MUST accept, and strip, one optional URI scheme prefix cid:, matched
    case-insensitively ... A parser MUST NOT accept a second prefix, a // authority,
    percent-encoding, a query or a fragment."""
    check_equal((await _parse(ctx, "Cid:.")), ("ok", (".", ".", [])), "the URI form of the root")
    for text in ("cid:cid:a", "cid://a.b", "a%2Eb", "a.b?x", "a.b#f", " a.b", "a.b "):
        status, _ = await _parse(ctx, text)
        check(status == "error", f"{text!r} was accepted")


@s.case(8, "a rejected label is reported with its label_index", "REQ-ID-019", clause=Level.SHOULD)
async def label_index(ctx: VectorsContext) -> None:
    """For EMPTY_LABEL, INVALID_LABEL and LABEL_TOO_LONG it SHOULD also report
    detail.label_index."""
    for text, index in (("a.-b.c", 1), ("x" * 64 + ".a", 0), ("ok.ok.-no", 2)):
        out = await ctx.call("identifier.parse", input=text)
        check_equal(out.detail.get("label_index"), index, f"label_index for {text[:16]!r}")


@s.case(9, "several faults: the first in the order of §2.6 is reported", "REQ-ID-020")
async def first_failure(ctx: VectorsContext) -> None:
    """When input breaks more than one rule, an implementation SHOULD report the first failure in
    this order."""
    for value, reason in (
        (["x"] * 2000, "NOT_TEXT"),
        ("a." * 600, "INPUT_TOO_LONG"),
        ("-x." * 40 + "a", "TOO_MANY_LABELS"),
        ("..-x", "EMPTY_LABEL"),
        ("-a." + "b" * 70, "INVALID_LABEL"),
    ):
        check_equal(
            await _parse(ctx, value), ("error", reason), f"first failure of {str(value)[:16]!r}"
        )
