"""The requirement reader follows spec/README.md "Requirement IDs" exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from cid_conformance.spec import Level, SpecError, error_table, load_requirements

from ..test_spec import definitions


def test_same_ids_as_the_spec_test() -> None:
    assert set(load_requirements()) == set(definitions())


def test_levels() -> None:
    reqs = load_requirements()
    assert reqs["REQ-ID-001"].level is Level.MUST
    assert reqs["REQ-ID-027"].level is Level.SHOULD  # SHOULD only
    assert reqs["REQ-ERR-006"].level is Level.SHOULD  # SHOULD NOT and MAY: the strongest
    assert reqs["REQ-REC-041"].level is Level.MUST  # SHOULD ... MUST: the strongest
    assert reqs["REQ-REG-033"].section == "12.6"
    assert reqs["REQ-ID-001"].section == "2.2"


def write(tmp: Path, text: str) -> Path:
    (tmp / "README.md").write_text("# spec\n")
    (tmp / "01-a.md").write_text(text)
    return tmp


def test_definitions_paragraphs_lists_retired_and_code(tmp_path: Path) -> None:
    spec = write(
        tmp_path,
        "## 1.1 A\n\n[REQ-GEN-001] X MUST y,\ncontinued.\n\n"
        "- [REQ-GEN-002] an item that MAY\n  be continued\n\n"
        "```\n[REQ-GEN-003] in code MUST not count\n```\n\n"
        "[REQ-GEN-004] (retired) once a rule.\n\n"
        "as [REQ-GEN-010] says, a reference\n\n"
        "1. [REQ-GEN-011] numbered SHOULD\n",
    )
    reqs = load_requirements(spec)
    assert sorted(reqs) == ["REQ-GEN-001", "REQ-GEN-002", "REQ-GEN-004", "REQ-GEN-011"]
    assert reqs["REQ-GEN-001"].text == "X MUST y, continued."
    assert reqs["REQ-GEN-002"].level is Level.MAY
    assert reqs["REQ-GEN-004"].retired and reqs["REQ-GEN-004"].level is None
    assert reqs["REQ-GEN-011"].level is Level.SHOULD


def test_duplicate_and_keywordless_definitions_are_errors(tmp_path: Path) -> None:
    for name, text, error in (
        ("twice", "[REQ-GEN-001] MUST\n\n[REQ-GEN-001] MUST\n", "twice"),
        ("lower", "[REQ-GEN-001] lower case must\n", "keyword"),
    ):
        folder = tmp_path / name
        folder.mkdir()
        with pytest.raises(SpecError, match=error):
            load_requirements(write(folder, text))


def test_error_table() -> None:
    table = error_table()
    assert table[2006].name == "SERIAL_ROLLBACK" and table[2006].status == 409
    assert table[6001].retryable and not table[1000].retryable
