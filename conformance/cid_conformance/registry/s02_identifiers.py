"""§2 Identifiers, checked through the registry's name parser (the ``{name}`` path segment).

A registry MUST parse ``{name}`` as §2 requires, answer IDENTIFIER_INVALID
when it does not parse, and use the canonical form ([REQ-REG-031]). So the
language-neutral vectors of ``spec/vectors/identifiers.json`` run against the
registry too: a valid input resolves under its canonical name (the answer's
``name``, or ``detail.name`` of NOT_FOUND), an invalid one is refused with the
vector's reason. (Non-text inputs cannot travel in a path; the ``vectors``
target runs them through an adapter.)
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..case import Section, check, check_equal
from ..spec import Level, find_spec_dir
from ..wire import name_segment
from . import data
from .context import RegistryContext

s = Section("registry", "2", "Identifiers")

_REQ = re.compile(r"REQ-ID-\d{3}")


def _vectors() -> dict[str, Any]:
    value: dict[str, Any] = json.loads(
        (find_spec_dir() / "vectors" / "identifiers.json").read_text(encoding="utf-8")
    )
    return value


async def _parse(ctx: RegistryContext, text: str) -> tuple[str, Any]:
    """("ok", canonical) or ("error", reason) as the registry parses ``text``."""
    reply = await ctx.get(f"/v1/names/{name_segment(text)}")
    err = reply.error()
    raw_detail = err.get("detail")
    detail: dict[str, Any] = raw_detail if isinstance(raw_detail, dict) else {}
    if reply.status == 200:
        return "ok", reply.value().get("name")
    if err.get("code") == 3001:
        return "ok", detail.get("name")
    if err.get("code") == 1001:
        return "error", detail.get("reason")
    return "other", reply.brief()


@s.case(
    1,
    "the valid identifier vectors parse to their canonical form",
    "REQ-ID-001",
    "REQ-ID-002",
    "REQ-ID-004",
    "REQ-ID-005",
    "REQ-ID-007",
    "REQ-ID-008",
    "REQ-ID-010",
    "REQ-ID-011",
    "REQ-ID-016",
    "REQ-REG-031",
)
async def valid_vectors(ctx: RegistryContext) -> None:
    """for every valid case, parsing input gives an identifier whose canonical text form is
    canonical (spec/vectors/identifiers.json)."""
    bad = []
    for case in _vectors()["valid"]:
        for text in (case["input"], case["ascii"], case["canonical"]):
            got = await _parse(ctx, text)
            if got != ("ok", case["canonical"]):
                bad.append(f"{text!r} ({case['note']}): {got}, expected {case['canonical']!r}")
    check(not bad, f"{len(bad)} valid vectors parse differently", *bad[:8])


@s.case(
    2,
    "the invalid identifier vectors are refused with their reason",
    "REQ-ID-002",
    "REQ-ID-003",
    "REQ-ID-005",
    "REQ-ID-007",
    "REQ-ID-008",
    "REQ-ID-009",
    "REQ-ID-011",
    "REQ-ID-012",
    "REQ-ID-013",
    "REQ-ID-014",
    "REQ-ID-015",
    "REQ-ID-019",
    "REQ-REG-031",
)
async def invalid_vectors(ctx: RegistryContext) -> None:
    """for every invalid case, parsing input is rejected with reason. (Non-text inputs cannot be a
    path segment, and neither can the empty input: /v1/names/ is another path.)"""
    bad = []
    for case in _vectors()["invalid"]:
        if not isinstance(case["input"], str) or not case["input"]:
            continue
        got = await _parse(ctx, case["input"])
        if got != ("error", case["reason"]):
            bad.append(f"{case['input'][:40]!r} ({case['note']}): {got}, expected {case['reason']}")
    check(not bad, f"{len(bad)} invalid vectors are answered differently", *bad[:8])


@s.case(3, "a rejected label is reported with its label_index", "REQ-ID-019", clause=Level.SHOULD)
async def label_index(ctx: RegistryContext) -> None:
    """For EMPTY_LABEL, INVALID_LABEL and LABEL_TOO_LONG it SHOULD also report detail.label_index,
    the 0-based position of the offending label counted from the most specific label."""
    for text, index in (("a.-b.c", 1), ("x" * 64 + ".a", 0), ("a.b.c..d", 3), ("ok.ok.-no", 2)):
        reply = await ctx.get(f"/v1/names/{name_segment(text)}")
        detail = reply.error().get("detail") or {}
        check_equal(detail.get("label_index"), index, f"detail.label_index for {text[:20]!r}")


@s.case(4, "the first failure is reported in the order of §2.6", "REQ-ID-020")
async def failure_order(ctx: RegistryContext) -> None:
    """When input breaks more than one rule, an implementation SHOULD report the first failure in
    this order: NOT_TEXT, INPUT_TOO_LONG, EMPTY, EMPTY_LABEL ..., TOO_MANY_LABELS, then each label
    in
    order ..., then NAME_TOO_LONG."""
    for text, reason in (
        ("a." * 600, "INPUT_TOO_LONG"),
        ("-x." * 40 + "a", "TOO_MANY_LABELS"),
        ("..-x", "EMPTY_LABEL"),
        ("-a." + "b" * 70, "INVALID_LABEL"),
        (".".join(["b" * 63] * 4) + ".-x", "INVALID_LABEL"),
    ):
        check_equal(await _parse(ctx, text), ("error", reason), f"first failure of {text[:16]!r}…")


@s.case(
    5,
    "identifiers are equal only when their canonical labels are identical",
    "REQ-ID-021",
    "REQ-ID-011",
    "REQ-GEN-003",
    writes=True,
)
async def equality(ctx: RegistryContext) -> None:
    """Two identifiers MUST be considered equal if and only if their canonical label sequences are
    identical ... (non-transitional: straße and strasse are two different identifiers)."""
    w = await ctx.world()
    rel = ctx.unique("eq")
    env = ctx.sign_as(w, "offer", f"straße.{rel}", data.GUIZHOU)
    await ctx.accepted(env)
    check((await ctx.resolve(w.name(f"STRASSE.{rel}"))).status == 404, "strasse resolves as straße")
    check((await ctx.resolve(w.name(f"Straße.{rel}"))).status == 200, "Straße does not resolve")
    check((await ctx.resolve(w.name(f"xn--strae-oqa.{rel}"))).status == 200, "the A-label fails")
    for other in (f"stra\u00dfe\u200b.{rel}", f"ſtraße.{rel}"):
        reply = await ctx.resolve(w.name(other))
        check(
            reply.status != 200 or reply.value().get("name") == w.name(f"straße.{rel}"),
            f"{other!r} resolved to another name",
        )


@s.case(
    6,
    "list order is the canonical order: by A-labels from the top label",
    "REQ-ID-022",
    "REQ-QRY-016",
    writes=True,
)
async def canonical_order(ctx: RegistryContext) -> None:
    """compare the two label sequences starting from the top label; compare corresponding labels as
    octet strings of their A-labels; the first difference decides; if one sequence runs out first,
    the shorter one (the ancestor) sorts first."""
    w = await ctx.world()
    rel = ctx.unique("ord")
    labels = ["z", "池1", "a", "b.a", "a0", "天津", "ab", "a-b", "0"]
    for label in labels:
        await ctx.accepted(ctx.sign_as(w, "offer", f"{label}.{rel}", data.GUIZHOU))
    await ctx.accepted(
        ctx.sign_as(
            w,
            "zone",
            rel,
            {
                "display_name": "o",
                "service_keys": [{"alg": "ed25519", "pub": w.service.public_key.pub}],
            },
        )
    )
    reply = await ctx.get(f"/v1/namespaces/{name_segment(w.name(rel))}")
    got = [
        i["name"].removesuffix("." + w.name(rel)) if i["name"] != w.name(rel) else ""
        for i in reply.value()["items"]
    ]
    # A-labels: 0, a, a-b, a0, ab, b.a (under a), xn--1-cd9b (池1), xn--rssy87b (天津), z
    expected = ["", "0", "a", "b.a", "a-b", "a0", "ab", "池1", "天津", "z"]
    check_equal(got, expected, "names in canonical order")
