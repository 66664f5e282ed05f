#!/usr/bin/env python3
"""Generate ``identifiers.json``, the test vectors of spec section 2 (2.10).

The cases below are written by hand; the script runs every one through
``cid.identifier`` and fails loudly if the library disagrees with a hand-written
expectation (a reason token, a canonical or ASCII form of a Chinese case, the
sort order, a "within" answer). Only then does it write the file, so the
vectors and the implementation cannot drift apart. The Chinese A-labels were
checked against two implementations independent of ``idna``: Python's
``punycode`` codec and its IDNA 2003 ``idna`` codec (see ``_independent_ascii``).

Usage::

    PYTHONPATH=src .venv/bin/python spec/vectors/gen_identifiers.py          # write
    PYTHONPATH=src .venv/bin/python spec/vectors/gen_identifiers.py --check  # verify
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "identifiers.json"

try:
    from cid.errors import IdentifierError
    from cid.identifier import Identifier
except ImportError:  # run from a checkout without an installed package
    sys.path.insert(0, str(HERE.parents[1] / "src"))
    from cid.errors import IdentifierError
    from cid.identifier import Identifier

# fmt: off
MAX_NAME = "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 61       # 253 octets
TIAN_57 = "天" * 57                                                           # A-label: 63 octets
LABELS_32 = ".".join("abcdefghijklmnopqrstuvwxyzabcdef")                      # 32 labels

# (input, note, hand-written (canonical, ascii) or None)
VALID: list[tuple[str, str, tuple[str, str] | None]] = [
    ("a100.tianjin.ctyun", "plain LDH labels, most specific first (REQ-ID-001)", None),
    ("ctyun", "a single label", None),
    ("cid", "'cid' without a colon is an ordinary label, not a prefix", None),
    (".", "the root (REQ-ID-002)", None),
    ("A100.Tianjin.CTYUN", "upper case folds to lower case (REQ-ID-007, REQ-ID-010)", None),
    ("123.456", "all-digit labels are valid", None),
    ("a--b.x-y-z", "hyphens inside a label, not in positions 3-4", None),
    ("池1.天津.天翼云", "Chinese U-labels (REQ-ID-007)",
     ("池1.天津.天翼云", "xn--1-cd9b.xn--rssy87b.xn--9kq01x6o5a")),
    ("池1。天津。天翼云", "U+3002 IDEOGRAPHIC FULL STOP separators (REQ-ID-004)",
     ("池1.天津.天翼云", "xn--1-cd9b.xn--rssy87b.xn--9kq01x6o5a")),
    ("池1．天津．天翼云", "U+FF0E FULLWIDTH FULL STOP separators (REQ-ID-004)",
     ("池1.天津.天翼云", "xn--1-cd9b.xn--rssy87b.xn--9kq01x6o5a")),
    ("池1｡天津｡天翼云", "U+FF61 HALFWIDTH IDEOGRAPHIC FULL STOP separators (REQ-ID-004)",
     ("池1.天津.天翼云", "xn--1-cd9b.xn--rssy87b.xn--9kq01x6o5a")),
    ("池1.天津。天翼云", "mixed separators",
     ("池1.天津.天翼云", "xn--1-cd9b.xn--rssy87b.xn--9kq01x6o5a")),
    ("gpu池.tianjin.ctyun", "a mixed ASCII and Chinese label",
     ("gpu池.tianjin.ctyun", "xn--gpu-hg4g.tianjin.ctyun")),
    ("GPU池.Tianjin.天翼云", "mixed scripts and case in one name",
     ("gpu池.tianjin.天翼云", "xn--gpu-hg4g.tianjin.xn--9kq01x6o5a")),
    ("cid:a100.tianjin.ctyun", "URI form (REQ-ID-005)", None),
    ("CID:A100.tianjin.ctyun", "the scheme is case-insensitive (REQ-ID-005)", None),
    ("Cid:cid.ctyun", "prefix, then a label that happens to be 'cid'", None),
    ("cid:池1.天津.天翼云", "URI (IRI) form with Chinese labels",
     ("池1.天津.天翼云", "xn--1-cd9b.xn--rssy87b.xn--9kq01x6o5a")),
    ("cid:.", "URI form of the root", None),
    ("。", "a lone ideographic full stop is the root (REQ-ID-004)", None),
    ("xn--1-cd9b.xn--rssy87b.xn--9kq01x6o5a", "A-label input decodes to U-labels (REQ-ID-008)",
     ("池1.天津.天翼云", "xn--1-cd9b.xn--rssy87b.xn--9kq01x6o5a")),
    ("XN--RSSY87B.ctyun", "A-labels are case-insensitive (REQ-ID-008)",
     ("天津.ctyun", "xn--rssy87b.ctyun")),
    ("xn--1-cd9b.天津.ctyun", "A-labels and U-labels mixed in one name",
     ("池1.天津.ctyun", "xn--1-cd9b.xn--rssy87b.ctyun")),
    ("中国", "a Chinese single label", ("中国", "xn--fiqs8s")),
    ("ＡＢＣ.ctyun", "fullwidth letters map to ASCII (UTS #46 mapping)", None),
    ("Ⅸ.ctyun", "U+2168 ROMAN NUMERAL NINE maps to 'ix' (UTS #46 mapping)", None),
    ("a\u00adb.ctyun", "U+00AD SOFT HYPHEN is ignored (UTS #46 mapping)", None),
    ("straße.de", "non-transitional: sharp s is kept, not mapped to 'ss' (REQ-ID-011)", None),
    ("Straße.DE", "non-transitional, with case folding", None),
    ("نامه\u200cای.ir", "non-transitional: ZWNJ kept where CONTEXTJ allows it (REQ-ID-007)", None),
    ("مثال.ctyun", "a right-to-left label that satisfies the Bidi rule", None),
    ("a" * 63 + ".ctyun", "longest label: 63 octets (REQ-ID-014)", None),
    (TIAN_57 + ".ctyun", "longest Chinese label: 57 code points, A-label 63 octets (REQ-ID-014)",
     (TIAN_57 + ".ctyun", "xn--rss" + "a" * 56 + ".ctyun")),
    (MAX_NAME, "longest name: 253 octets (REQ-ID-015)", None),
    (LABELS_32, "most labels: 32 (REQ-ID-013)", None),
]

# (input, reason, note); input may be any JSON value
INVALID: list[tuple[Any, str, str]] = [
    ("", "EMPTY", "empty input (REQ-ID-003)"),
    ("cid:", "EMPTY", "only the URI prefix (REQ-ID-003)"),
    ("CID:", "EMPTY", "only the URI prefix, upper case (REQ-ID-003)"),
    ("ctyun.", "EMPTY_LABEL", "trailing dot: one canonical form (REQ-ID-002)"),
    (".ctyun", "EMPTY_LABEL", "leading dot (REQ-ID-002)"),
    ("a..ctyun", "EMPTY_LABEL", "two adjacent separators (REQ-ID-002)"),
    ("..", "EMPTY_LABEL", "two dots are not the root (REQ-ID-002)"),
    ("天津。", "EMPTY_LABEL", "trailing ideographic full stop (REQ-ID-002, REQ-ID-004)"),
    ("cid:.ctyun", "EMPTY_LABEL", "leading dot after the prefix"),
    ("a.\u00ad.ctyun", "EMPTY_LABEL", "a label of only SOFT HYPHEN maps to nothing (REQ-ID-009)"),
    ("." * 40, "EMPTY_LABEL", "empty labels are reported before the label count (REQ-ID-020)"),
    ("a." * 32 + "a", "TOO_MANY_LABELS", "33 labels (REQ-ID-013)"),
    ("a" * 64 + ".ctyun", "LABEL_TOO_LONG", "64-octet label (REQ-ID-014)"),
    ("天" * 58, "LABEL_TOO_LONG", "58 code points, A-label 64 octets (REQ-ID-014)"),
    (MAX_NAME + "d", "NAME_TOO_LONG", "254 octets (REQ-ID-015)"),
    (".".join([TIAN_57] * 4), "NAME_TOO_LONG",
     "231 code points of text, but 255 octets in ASCII form (REQ-ID-015)"),
    ("a" * 1025, "INPUT_TOO_LONG", "1025 code points (REQ-ID-012)"),
    ("cid:" + "a" * 1021, "INPUT_TOO_LONG", "the prefix counts towards the 1024 (REQ-ID-012)"),
    (None, "NOT_TEXT", "JSON null (REQ-ID-006)"),
    (42, "NOT_TEXT", "a number (REQ-ID-006)"),
    (True, "NOT_TEXT", "a boolean (REQ-ID-006)"),
    (["a100", "tianjin", "ctyun"], "NOT_TEXT", "an array of labels (REQ-ID-006)"),
    ({"name": "ctyun"}, "NOT_TEXT", "a map (REQ-ID-006)"),
    ("a_b.ctyun", "INVALID_LABEL", "underscore is not allowed (REQ-ID-007)"),
    ("a b.ctyun", "INVALID_LABEL", "space is not allowed, and not trimmed (REQ-ID-011)"),
    (" ctyun", "INVALID_LABEL", "leading white space is not trimmed (REQ-ID-011)"),
    ("ctyun\n", "INVALID_LABEL", "a trailing newline is not trimmed (REQ-ID-011)"),
    ("a\tb", "INVALID_LABEL", "control characters are not allowed"),
    ("-a.ctyun", "INVALID_LABEL", "leading hyphen (RFC 5891 4.2.3.1)"),
    ("a-.ctyun", "INVALID_LABEL", "trailing hyphen (RFC 5891 4.2.3.1)"),
    ("ab--cd.ctyun", "INVALID_LABEL", "hyphens in positions 3 and 4, not xn-- (RFC 5891 4.2.3.1)"),
    ("xn--", "INVALID_LABEL", "ACE prefix with nothing after it (REQ-ID-008)"),
    ("xn--abc-", "INVALID_LABEL", "A-label ending in a hyphen (REQ-ID-008)"),
    ("xn---bbk", "INVALID_LABEL", "not the canonical Punycode of its U-label (REQ-ID-008)"),
    ("xn--a", "INVALID_LABEL", "A-label that decodes to a disallowed code point (REQ-ID-008)"),
    ("xn--ls8h", "INVALID_LABEL", "A-label of an emoji, which IDNA 2008 disallows (REQ-ID-008)"),
    ("😀.ctyun", "INVALID_LABEL", "emoji are not allowed (REQ-ID-007)"),
    ("a\u200db", "INVALID_LABEL", "ZERO WIDTH JOINER out of context (CONTEXTJ, REQ-ID-007)"),
    ("\u00b7", "INVALID_LABEL", "MIDDLE DOT out of context (CONTEXTO, REQ-ID-007)"),
    ("\u0301a", "INVALID_LABEL", "a label starting with a combining mark (RFC 5891 4.2.3.2)"),
    ("\u05d0a", "INVALID_LABEL", "Hebrew then Latin in one label breaks the Bidi rule (RFC 5893)"),
    ("1\u05d0", "INVALID_LABEL", "an RTL label must not start with a digit (RFC 5893 rule 1)"),
    ("cid:cid:ctyun", "INVALID_LABEL", "only one prefix is stripped (REQ-ID-005)"),
    ("cid://ctyun", "INVALID_LABEL", "no '//' authority in the URI form (REQ-ID-005)"),
    ("a%2Eb", "INVALID_LABEL", "percent-encoding is not decoded (REQ-ID-011)"),
    ("cid：ctyun", "INVALID_LABEL", "a FULLWIDTH COLON is not the scheme separator"),
    ("a/b.ctyun", "INVALID_LABEL", "slash is not allowed"),
    ("ok.a@b", "INVALID_LABEL", "the first bad label is reported, here at position 1"),
]

# Hand-sorted into canonical order (REQ-ID-022): root first, then by A-label
# octets from the top label down; ancestors before descendants. Unicode labels
# sort by their Punycode: "xn--9kq01x6o5a" (天翼云) < "xn--fiqs8s" (中国) < "z".
ORDERING: list[str] = [
    ".",
    "0",
    "a",
    "a.a",
    "b.a",
    "b",
    "cn",
    "中国.cn",
    "ctyun",
    "a100.ctyun",
    "beijing.ctyun",
    "tianjin.ctyun",
    "a100.tianjin.ctyun",
    "池1.tianjin.ctyun",
    "ctyun-x",
    "ctyunx",
    "天翼云",
    "天津.天翼云",
    "池1.天津.天翼云",
    "中国",
    "z",
]

# (name, namespace, within)  -- REQ-ID-023
WITHIN: list[tuple[str, str, bool]] = [
    ("a100.tianjin.ctyun", "ctyun", True),
    ("a100.tianjin.ctyun", "tianjin.ctyun", True),
    ("a100.tianjin.ctyun", "a100.tianjin.ctyun", True),
    ("a100.tianjin.ctyun", ".", True),
    (".", ".", True),
    (".", "ctyun", False),
    ("ctyunx", "ctyun", False),
    ("a.ctyunx", "ctyun", False),
    ("xctyun", "ctyun", False),
    ("a.xctyun", "ctyun", False),
    ("ctyun", "ctyunx", False),
    ("ctyun", "a.ctyun", False),
    ("tianjin.ctyun", "tianjin", False),
    ("a.b.c", "b", False),
    ("A100.Tianjin.CTYUN", "ctyun", True),
    ("cid:a.ctyun", "CID:CTYUN", True),
    ("池1.天津.天翼云", "天翼云", True),
    ("池1.天津.天翼云", "xn--9kq01x6o5a", True),
    ("池1。天津。天翼云", "天津．天翼云", True),
    ("天翼云x", "天翼云", False),
    ("池1.天津x.天翼云", "天津.天翼云", False),
]
# fmt: on


def _independent_ascii(text: str) -> str:
    """The ASCII form by Python's own codecs, which share no code with ``idna``."""
    out = []
    for label in text.split("."):
        if label.isascii():
            out.append(label)
            continue
        by_punycode = "xn--" + label.encode("punycode").decode("ascii")
        by_idna2003 = label.encode("idna").decode("ascii")
        assert by_punycode == by_idna2003, (label, by_punycode, by_idna2003)
        out.append(by_punycode)
    return ".".join(out)


def _reason(value: Any) -> str | None:
    try:
        Identifier.parse(value)
    except IdentifierError as e:
        return str(e.detail["reason"])
    return None


def build() -> dict[str, Any]:
    """The vectors document; raises AssertionError if the library disagrees with a case."""
    valid = []
    for text, note, expected in VALID:
        ident = Identifier.parse(text)
        canonical, ascii_form = ident.to_text(), ident.to_ascii()
        if expected is not None:
            assert (canonical, ascii_form) == expected, (text, canonical, ascii_form)
            assert _independent_ascii(canonical) == ascii_form, text
        assert Identifier.parse(canonical) == ident == Identifier.parse(ascii_form), text
        valid.append(
            {
                "input": text,
                "canonical": canonical,
                "ascii": ascii_form,
                "labels": list(ident.labels),
                "note": note,
            }
        )
    invalid = []
    for value, reason, note in INVALID:
        got = _reason(value)
        assert got == reason, (value, reason, got)
        invalid.append({"input": value, "reason": reason, "note": note})
    parsed = [Identifier.parse(text) for text in ORDERING]
    assert [i.to_text() for i in parsed] == ORDERING, "ordering names must be canonical"
    assert sorted(parsed) == parsed, [i.to_text() for i in sorted(parsed)]
    within = []
    for name, namespace, expected_within in WITHIN:
        got_within = Identifier.parse(name).is_within(Identifier.parse(namespace))
        assert got_within is expected_within, (name, namespace, got_within)
        within.append({"name": name, "namespace": namespace, "within": expected_within})
    return {
        "version": 1,
        "valid": valid,
        "invalid": invalid,
        "ordering": ORDERING,
        "within": within,
    }


def render() -> str:
    """The file's exact text: UTF-8 JSON, two-space indent, trailing newline."""
    return json.dumps(build(), ensure_ascii=False, indent=2) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is out of date; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
