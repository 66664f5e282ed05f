"""The specification's requirement IDs are well formed, unique, and every cited ID exists.

The convention is spec/README.md "Requirement IDs"; the conformance suite reads
the same definitions.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "spec"
AREAS = "GEN|ID|REC|CAP|ENC|SIG|QRY|NEG|INV|ERR|SEC|REG|FEED|QTX|RES|PRV"
DEFINITION = re.compile(rf"^(?:[-*] |\d+\. )?\[(REQ-(?:{AREAS})-\d{{3}})\] (.*)$")
CITATION = re.compile(r"REQ-[A-Z]+-\d{3}")
KEYWORDS = re.compile(r"\b(MUST|SHALL|REQUIRED|SHOULD|RECOMMENDED|MAY|OPTIONAL)\b")


def _paragraphs(text: str) -> list[str]:
    """Paragraphs and list items (a list item starts a new block)."""
    blocks: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        starts_item = bool(re.match(r"^(?:[-*] |\d+\. )", line))
        if not line.strip() or starts_item:
            if current:
                blocks.append(" ".join(current))
            current = [line.strip()] if line.strip() else []
        else:
            current.append(line.strip())
    if current:
        blocks.append(" ".join(current))
    return blocks


def definitions() -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    for path in sorted(SPEC.glob("*.md")):
        if path.name == "README.md":
            continue
        in_code = False
        kept: list[str] = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("```"):
                in_code = not in_code
                continue
            if not in_code:
                kept.append(line)
        for block in _paragraphs("\n".join(kept)):
            m = DEFINITION.match(block)
            if m:
                found.setdefault(m.group(1), []).append((path.name, m.group(2)))
    return found


def test_each_id_defined_once_with_a_keyword() -> None:
    defs = definitions()
    assert len(defs) > 300
    dupes = {k: [f for f, _ in v] for k, v in defs.items() if len(v) > 1}
    assert not dupes, dupes
    for req, [(_, text)] in defs.items():
        assert text.startswith("(retired)") or KEYWORDS.search(text), f"{req} has no keyword"


def test_every_cited_id_is_defined() -> None:
    """Code, tests and spec cross-references cite only IDs the spec defines."""
    defined = set(definitions())
    cited: Counter[str] = Counter()
    for folder in ("src", "registry", "tests", "spec"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".md") and path.is_file():
                for req in CITATION.findall(path.read_text(encoding="utf-8")):
                    if req.split("-")[1] in AREAS.split("|"):
                        cited[req] += 1
    missing = sorted(set(cited) - defined)
    assert not missing, f"cited but not defined in spec/: {missing}"
