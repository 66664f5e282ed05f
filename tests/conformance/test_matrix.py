"""Coverage of the specification by the conformance cases (issue 6: make test fails on a gap).

* every MUST requirement has a MUST-level case, or is listed as not checkable over the
  wire or pending, with a reason (``cid_conformance.matrix``);
* every case cites only requirement IDs the specification defines (and none retired);
* ``conformance/MATRIX.md`` is what ``python -m cid_conformance.matrix`` writes.
"""

from __future__ import annotations

import re

from cid_conformance.case import all_cases
from cid_conformance.matrix import NOT_CHECKABLE, PARTIAL, PENDING, PENDING_AREAS, coverage, render
from cid_conformance.spec import AREAS, Level, areas, load_requirements

from .conftest import ROOT


def test_cases_cite_only_defined_requirements() -> None:
    cov = coverage()
    assert cov.unknown_citations() == {}


def test_every_must_has_a_must_case_or_a_reason() -> None:
    cov = coverage()
    assert cov.uncovered() == [], "MUST requirements without a MUST-level case"
    assert cov.list_issues() == []


def test_exception_lists_are_well_formed() -> None:
    reqs = load_requirements()
    for table in (NOT_CHECKABLE, PENDING, PARTIAL):
        for req, why in table.items():
            assert req in reqs, req
            assert len(why) > 20, f"{req}: give the reason"
    assert set(NOT_CHECKABLE).isdisjoint(PENDING)
    assert set(PENDING_AREAS) <= set(AREAS)
    # pending areas are pending only while no MUST case covers them
    cov = coverage()
    for area in PENDING_AREAS:
        musts = [q for q, r in reqs.items() if r.area == area and r.level is Level.MUST]
        assert musts and not any(cov.must_cases(q) for q in musts), area


def test_case_ids_are_unique_and_stable() -> None:
    coverage()  # imports every target
    ids = [c.id for c in all_cases()]
    assert len(ids) == len(set(ids))
    for c in all_cases():
        target, section, n = c.id.split("/")
        assert (target, section) == (c.target, c.section) and n.isdigit()
        assert c.title and c.reqs


def test_conformance_sources_cite_only_defined_requirements() -> None:
    """Like tests/test_spec.py for src/ and tests/: every ID the suite's sources cite exists."""
    reqs = load_requirements()
    known = set(areas())
    cited = set()
    for path in (ROOT / "conformance").rglob("*"):
        if path.suffix in (".py", ".md") and path.is_file() and path.name != "MATRIX.md":
            cited |= set(re.findall(r"REQ-[A-Z]+-\d{3}", path.read_text(encoding="utf-8")))
    missing = sorted(q for q in cited if q.split("-")[1] in known and q not in reqs)
    assert not missing


def test_matrix_file_is_up_to_date() -> None:
    """Regenerate with: python -m cid_conformance.matrix"""
    text = render(coverage())
    assert (ROOT / "conformance" / "MATRIX.md").read_text(encoding="utf-8") == text
