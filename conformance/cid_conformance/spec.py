"""The requirements of the specification, read from ``spec/*.md``.

The convention is exact and lives in ``spec/README.md`` ("Requirement IDs"):

1. a requirement is *defined* by a paragraph or list item whose text (after any
   list marker ``- ``, ``* `` or ``1. ``) starts with ``[REQ-AREA-NNN]`` and a space;
2. its level is the strongest capitalised keyword of that paragraph: MUST, MUST
   NOT, REQUIRED, SHALL, SHALL NOT (MUST) > SHOULD, SHOULD NOT, RECOMMENDED, NOT
   RECOMMENDED (SHOULD) > MAY, OPTIONAL (MAY);
3. a requirement whose text right after the ID begins with ``(retired)`` has no level;
4. lists, tables and code blocks after a requirement belong to it but carry no
   keyword, so they do not change its level (code blocks are skipped here).

The conformance cases take their levels from here: a case is as strong as the
strongest requirement it cites (:mod:`cid_conformance.case`).
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

__all__ = [
    "AREAS",
    "ErrorRow",
    "Level",
    "Requirement",
    "SpecError",
    "areas",
    "error_table",
    "find_spec_dir",
    "load_requirements",
    "use_spec_dir",
]

AREAS: Final = (
    "GEN",
    "ID",
    "REC",
    "CAP",
    "ENC",
    "SIG",
    "QRY",
    "NEG",
    "INV",
    "ERR",
    "SEC",
    "REG",
    "FEED",
    "QTX",
    "RES",
    "PRV",
)
"""The requirement areas known to this version of the suite (the specification's own list,
read from spec/README.md, takes precedence: :func:`areas`)."""

_AREA_LIST: Final = re.compile(r"\^\\\[REQ-\(([A-Z|]+)\)-")
_LIST_ITEM: Final = re.compile(r"^(?:[-*] |\d+\. )")
_HEADING: Final = re.compile(r"^#{1,6}\s+(\d+(?:\.\d+)*)\.?\s+(.*)$")
_MUST: Final = re.compile(r"\b(MUST|SHALL|REQUIRED)\b")
_SHOULD: Final = re.compile(r"\b(SHOULD|RECOMMENDED)\b")
_MAY: Final = re.compile(r"\b(MAY|OPTIONAL)\b")


class SpecError(Exception):
    """The specification cannot be read, or breaks its own ID convention."""


class Level(enum.IntEnum):
    """Requirement levels of BCP 14, ordered so that ``max`` picks the strongest."""

    MAY = 1
    SHOULD = 2
    MUST = 3

    @classmethod
    def of_text(cls, text: str) -> Level | None:
        """The strongest keyword of a requirement's paragraph (None: no keyword)."""
        if _MUST.search(text):
            return cls.MUST
        if _SHOULD.search(text):
            return cls.SHOULD
        if _MAY.search(text):
            return cls.MAY
        return None


@dataclass(frozen=True, slots=True)
class Requirement:
    """One requirement ID as the specification defines it."""

    id: str
    level: Level | None
    """``None`` for a retired requirement."""
    file: str
    section: str
    """The number of the (sub)section holding the definition, e.g. ``12.3.1``."""
    heading: str
    text: str
    """The defining paragraph, without the ID."""

    @property
    def retired(self) -> bool:
        return self.text.startswith("(retired)")

    @property
    def area(self) -> str:
        return self.id.split("-")[1]


def _blocks(lines: list[str]) -> Iterator[tuple[str, str, str]]:
    """``(section, heading, paragraph)`` for each paragraph or list item outside code blocks."""
    section, heading = "", ""
    current: list[str] = []
    in_code = False

    def flush() -> Iterator[tuple[str, str, str]]:
        if current:
            yield section, heading, " ".join(current)
            current.clear()

    for line in lines:
        if line.startswith("```"):
            yield from flush()
            in_code = not in_code
            continue
        if in_code:
            continue
        m = _HEADING.match(line)
        if m:
            yield from flush()
            section, heading = m.group(1), m.group(2).strip()
            continue
        if not line.strip() or _LIST_ITEM.match(line):
            yield from flush()
        if line.strip():
            current.append(line.strip())
    yield from flush()


_chosen: list[Path] = []


def use_spec_dir(path: str | os.PathLike[str] | None) -> None:
    """Make ``path`` the default for the rest of the process (the CLI's ``--spec``)."""
    _chosen[:] = [find_spec_dir(path)] if path else []


def find_spec_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where ``spec/`` is: ``explicit``, ``--spec``, ``$CID_SPEC_DIR``, next to the package,
    or the source checkout."""
    here = Path(__file__).resolve().parent
    candidates = [
        Path(explicit) if explicit else None,
        *_chosen,
        Path(os.environ["CID_SPEC_DIR"]) if os.environ.get("CID_SPEC_DIR") else None,
        here / "spec",
        here.parent.parent / "spec",
    ]
    for path in candidates:
        if path is not None and (path / "README.md").is_file():
            return path
    raise SpecError(
        "cannot find the specification (spec/README.md): pass --spec DIR or set CID_SPEC_DIR"
    )


def areas(spec_dir: str | os.PathLike[str] | None = None) -> tuple[str, ...]:
    """The areas the convention of spec/README.md lists (its regular expression), in order."""
    readme = (find_spec_dir(spec_dir) / "README.md").read_text(encoding="utf-8")
    m = _AREA_LIST.search(readme)
    return tuple(m.group(1).split("|")) if m else AREAS


@cache
def _load(spec_dir: Path) -> Mapping[str, Requirement]:
    found: dict[str, Requirement] = {}
    definition = re.compile(
        rf"^(?:[-*] |\d+\. )?\[(REQ-(?:{'|'.join(areas(spec_dir))})-\d{{3}})\] (.*)$"
    )
    files = sorted(p for p in spec_dir.glob("*.md") if p.name != "README.md")
    if not files:
        raise SpecError(f"no section files in {spec_dir}")
    for path in files:
        lines = path.read_text(encoding="utf-8").splitlines()
        for section, heading, block in _blocks(lines):
            m = definition.match(block)
            if not m:
                continue
            req_id, text = m.group(1), m.group(2)
            if req_id in found:
                raise SpecError(f"{req_id} is defined twice ({found[req_id].file}, {path.name})")
            retired = text.startswith("(retired)")
            level = None if retired else Level.of_text(text)
            if not retired and level is None:
                raise SpecError(f"{req_id} ({path.name}) has no requirement keyword")
            found[req_id] = Requirement(req_id, level, path.name, section, heading, text)
    return found


def load_requirements(spec_dir: str | os.PathLike[str] | None = None) -> Mapping[str, Requirement]:
    """Every requirement the specification defines, by ID (cached per directory)."""
    return _load(find_spec_dir(spec_dir).resolve())


@dataclass(frozen=True, slots=True)
class ErrorRow:
    """One row of Table 10-1."""

    code: int
    name: str
    status: int
    retryable: bool


_ROW: Final = re.compile(r"^\|\s*(\d+)\s*\|\s*([A-Z_]+)\s*\|\s*(\d{3})\s*\|\s*(yes|no)\s*\|")


@cache
def _errors(spec_dir: Path) -> Mapping[int, ErrorRow]:
    rows: dict[int, ErrorRow] = {}
    for line in (spec_dir / "10-errors.md").read_text(encoding="utf-8").splitlines():
        m = _ROW.match(line)
        if m:
            code = int(m.group(1))
            rows[code] = ErrorRow(code, m.group(2), int(m.group(3)), m.group(4) == "yes")
    if len(rows) < 40:
        raise SpecError("Table 10-1 (the error registry) not found in 10-errors.md")
    return rows


def error_table(spec_dir: str | os.PathLike[str] | None = None) -> Mapping[int, ErrorRow]:
    """The error registry of §10 (Table 10-1), read from the specification, by code."""
    return _errors(find_spec_dir(spec_dir).resolve())
