"""The requirement × case matrix: which case checks which requirement, and what is left.

``python -m cid_conformance.matrix`` writes ``conformance/MATRIX.md`` from the
specification (``spec/*.md``) and the registered cases of every target;
``--check`` exits 1 when the file is stale or when coverage is incomplete.

Coverage rules (enforced by ``tests/conformance/test_matrix.py``):

* every case cites only requirement IDs the specification defines, none retired;
* every MUST requirement is checked by at least one case *at level MUST* (a case
  that checks only a SHOULD clause does not count), unless it is listed below as
  not checkable over the wire (with the reason) or as pending (with the reason
  and where it will be covered); neither list may name a requirement that a MUST
  case covers, so the lists shrink as coverage grows.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .case import Case
from .spec import Level, Requirement, areas, find_spec_dir, load_requirements

__all__ = [
    "NOT_CHECKABLE",
    "PARTIAL",
    "PENDING",
    "Coverage",
    "all_targets_cases",
    "coverage",
    "render",
]

NOT_CHECKABLE: Final[dict[str, str]] = {
    "REQ-REC-041": "a provider's key management (revoke a compromised key at once): no wire "
    "behaviour of the provider shows it",
    "REQ-CAP-012": "whether a provider describes a thing with its registered token is a fact "
    "about the world (which accelerator it really has), not about the bytes",
    "REQ-REG-013": "durability of acknowledged writes needs the registry's host (kill -9, power "
    "loss); the reference is tested by tests/registry/test_store_crash.py and test_processes.py",
    "REQ-REG-014": "graceful stop needs a signal to the registry's process; the reference is "
    "tested by tests/registry/test_processes.py",
    "REQ-REG-063": "logging is not visible over the wire (MUST NOT log private keys)",
    "REQ-SEC-006": "a requester's internal policy (an offer is not a commitment)",
    "REQ-SEC-011": "a provider's key management (offline anchor keys, revoking compromised keys)",
    "REQ-SEC-013": "a provider's publication policy (no personal data in records)",
    "REQ-NEG-032": "an SLA credit is paid at settlement, out of band, with availability measured "
    "as agreed out of band: no route of the provider binding shows it",
    "REQ-NEG-033": "how a provider treats a requester name internally (credit, quotas, compliance) "
    "shows on no route; a demand carries no requester name to authenticate",
    "REQ-QRY-057": "a requester's obligation before negotiating (fetch and verify the offer); "
    "checked by the provider target only where the provider refuses stale offer versions",
}
"""MUST requirements no case can check over the wire, with the reason."""

PENDING: Final[dict[str, str]] = {}
"""MUST requirements not covered yet, besides the areas of :data:`PENDING_AREAS`."""

PARTIAL: Final[dict[str, str]] = {
    "REQ-REG-010": "over the wire only: a tombstone keeps refusing older versions, the feed is "
    "append-only; durability across processes is tested on the reference by "
    "tests/registry/test_store_crash.py",
    "REQ-REG-012": "needs --peer URL (another process of the same registry); skipped otherwise",
    "REQ-REG-050": "QUERY_TOO_EXPENSIVE needs --search-budget N with a small configured budget",
    "REQ-REG-009": "the case waits the registry's read timeout (--read-timeout, 15 s by default)",
    "REQ-ENC-030": "the generation of the schemas is tested by tests/test_vectors.py; the suite "
    "checks that answers validate (needs the jsonschema package)",
    "REQ-CAP-032": "the syntax of compliance tags only; substantiation is an audit question",
    "REQ-GEN-004": "an umbrella over §5 and §6, checked through their cases",
    "REQ-RES-003": "the expiry of negative entries only; their separate bound is not observable",
    "REQ-NEG-011": "the provider's side (a demand must have the members of Table 8-2); what a "
    "requester must not send is the suite's own behaviour",
    "REQ-NEG-014": "the provider's quotes answer their demand; the requester's check is the "
    "suite's own behaviour",
    "REQ-NEG-025": "idempotency within the run only; remembering keys for 24 hours is not observed",
    "REQ-NEG-043": "the quoted deadline (a quote's expires, within --max-wait); the accepted "
    "deadline (expires + 60 s) only with --max-wait 68 or more (the reference: make test-slow); "
    "demanded is answered at once",
    "REQ-PRV-017": "the case waits the 60-second grace of an accepted negotiation: it runs only "
    "with --max-wait 68 or more (skipped by default and in make test; the reference runs it in "
    "make test-slow)",
    "REQ-PRV-004": "deadlines applied before an answer (a quote's expiry seen at once); the "
    "once-a-second sweep (SHOULD) is not observed",
    "REQ-PRV-020": "same key and body, and a key with another body; a retry racing the first "
    "message is not provoked",
    "REQ-PRV-031": "needs an agreement of 60 s that pays for at most 6 tasks at their wall_s limit "
    "(an offer without a coarse billing granularity)",
    "REQ-PRV-032": "replays are refused and a task runs once; an executor that cannot start a task "
    "cannot be provoked over the wire",
    "REQ-PRV-039": "deadline expiry and withdrawal; settlement is out of band",
    "REQ-INV-011": "argv without a shell; for images only that one whose sha256 does not match "
    "never runs (a provider that runs no images fails it with reason provider)",
    "REQ-INV-013": "the input rules of Table 9-4, and that a task whose input the provider cannot "
    "produce never runs; a fetched input whose digest differs needs a URL the provider fetches",
    "REQ-INV-014": "the variables reach the task and no other task; 'exactly these' is seen only "
    "through the task's own view",
    "REQ-INV-031": "output_bytes and the bounds of usage; the measurement itself is the provider's",
    "REQ-INV-033": "the receipts a provider issues pass the requester's checks; refusing bad "
    "receipts is the suite's own behaviour",
    "REQ-SEC-008": "the length and uniqueness of the nonces a provider sends (the reference sends "
    "none); unpredictability is not observable",
}
"""Requirements whose cases check only part of the text (shown in the matrix)."""

PENDING_AREAS: Final[dict[str, str]] = {}
"""Whole areas whose MUST requirements are pending, with where they will be covered."""


@dataclass(frozen=True)
class Coverage:
    requirements: Mapping[str, Requirement]
    cases: Sequence[Case]
    by_req: Mapping[str, list[Case]]
    levels: Mapping[str, Level]
    """Case id -> the case's level."""

    def must_cases(self, req: str) -> list[Case]:
        return [c for c in self.by_req.get(req, []) if self.levels[c.id] is Level.MUST]

    def status(self, req: str) -> str:
        r = self.requirements[req]
        if r.retired:
            return "retired"
        if r.level is not Level.MUST:
            return "covered" if self.by_req.get(req) else "not required"
        if self.must_cases(req):
            return "covered"
        if req in NOT_CHECKABLE:
            return "not checkable"
        if req in PENDING or r.area in PENDING_AREAS:
            return "pending"
        return "UNCOVERED"

    def unknown_citations(self) -> dict[str, list[str]]:
        bad: dict[str, list[str]] = defaultdict(list)
        for case in self.cases:
            for req in case.reqs:
                r = self.requirements.get(req)
                if r is None or r.retired:
                    bad[case.id].append(req)
        return dict(bad)

    def list_issues(self) -> list[str]:
        """Entries of the exception lists that are wrong: unknown, not MUST, or covered after
        all."""
        issues = []
        for name, table in (("NOT_CHECKABLE", NOT_CHECKABLE), ("PENDING", PENDING)):
            for req in table:
                r = self.requirements.get(req)
                if r is None or r.level is not Level.MUST:
                    issues.append(f"{name} lists {req}, which is not a MUST requirement")
                elif self.must_cases(req):
                    issues.append(f"{name} lists {req}, which a MUST case covers: remove it")
        return issues

    def uncovered(self) -> list[str]:
        return [q for q in self.requirements if self.status(q) == "UNCOVERED"]


def all_targets_cases() -> list[Case]:
    from .targets import TARGETS

    cases: list[Case] = []
    for target in TARGETS.values():
        cases += target.cases()
    return cases


def coverage(
    requirements: Mapping[str, Requirement] | None = None, cases: Iterable[Case] | None = None
) -> Coverage:
    reqs = requirements if requirements is not None else load_requirements()
    case_list = list(cases if cases is not None else all_targets_cases())
    by_req: dict[str, list[Case]] = defaultdict(list)
    for case in case_list:
        for req in case.reqs:
            by_req[req].append(case)
    levels = {c.id: c.level(dict(reqs)) for c in case_list}
    return Coverage(reqs, case_list, dict(by_req), levels)


def _key(req: str) -> tuple[int, int]:
    _, area, num = req.split("-")
    order = areas()
    return (order.index(area) if area in order else len(order)), int(num)


def render(cov: Coverage) -> str:
    """MATRIX.md: a summary per area, then one row per requirement."""
    reqs = sorted(cov.requirements, key=_key)
    musts = [q for q in reqs if cov.requirements[q].level is Level.MUST]
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for q in musts:
        counts[cov.requirements[q].area][cov.status(q)] += 1
    targets = sorted({c.target for c in cov.cases})
    lines = [
        "# Requirement × case matrix",
        "",
        "Generated by `python -m cid_conformance.matrix` from `spec/*.md` and the registered "
        "cases; do not edit. `tests/conformance/test_matrix.py` fails when it is stale, when a "
        "MUST requirement has no MUST-level case (and is not listed as not checkable or "
        "pending), or when a case cites an ID the specification does not define.",
        "",
        f"Cases: {len(cov.cases)} ("
        + ", ".join(f"{t} {sum(c.target == t for c in cov.cases)}" for t in targets)
        + f"). Requirements: {len(reqs)}, of which {len(musts)} MUST.",
        "",
        "## MUST coverage by area",
        "",
        "| area | MUST | covered | not checkable | pending | uncovered |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    total: dict[str, int] = defaultdict(int)
    for area in areas():
        c = counts.get(area)
        if not c:
            continue
        n = sum(c.values())
        row = [c["covered"], c["not checkable"], c["pending"], c["UNCOVERED"]]
        for k, v in zip(("covered", "not checkable", "pending", "UNCOVERED"), row, strict=True):
            total[k] += v
        lines.append(f"| {area} | {n} | " + " | ".join(str(v) for v in row) + " |")
    lines.append(
        f"| **all** | {len(musts)} | {total['covered']} | {total['not checkable']} | "
        f"{total['pending']} | {total['UNCOVERED']} |"
    )
    lines += ["", "## Not checkable over the wire", ""]
    lines += [
        f"* **{q}**: {why}" for q, why in sorted(NOT_CHECKABLE.items(), key=lambda x: _key(x[0]))
    ]
    lines += ["", "## Partly checked", ""]
    lines += [f"* **{q}**: {why}" for q, why in sorted(PARTIAL.items(), key=lambda x: _key(x[0]))]
    lines += ["", "## Pending", ""]
    lines += [f"* **REQ-{area}-\\***: {why}" for area, why in PENDING_AREAS.items()]
    lines += [f"* **{q}**: {why}" for q, why in sorted(PENDING.items(), key=lambda x: _key(x[0]))]
    lines += [
        "",
        "## Requirements",
        "",
        "| requirement | level | § | status | cases |",
        "|---|---|---|---|---|",
    ]
    for q in reqs:
        r = cov.requirements[q]
        cases = cov.by_req.get(q, [])
        cited = ", ".join(
            f"`{c.id}`" + ("" if cov.levels[c.id] is Level.MUST else f" ({cov.levels[c.id].name})")
            for c in cases
        )
        level = r.level.name if r.level else "retired"
        lines.append(f"| {q} | {level} | {r.section} | {cov.status(q)} | {cited or '—'} |")
    return "\n".join(lines) + "\n"


def default_output() -> Path:
    return find_spec_dir().parent / "conformance" / "MATRIX.md"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cid_conformance.matrix", description=__doc__)
    parser.add_argument(
        "--output", type=Path, help="where to write (default conformance/MATRIX.md)"
    )
    parser.add_argument("--check", action="store_true", help="fail when stale or incomplete")
    args = parser.parse_args(argv)
    cov = coverage()
    text = render(cov)
    out = args.output or default_output()
    problems = [f"{c} cites undefined or retired {r}" for c, r in cov.unknown_citations().items()]
    problems += cov.list_issues()
    problems += [f"{q} (MUST) has no MUST-level case" for q in cov.uncovered()]
    if args.check:
        if not out.exists() or out.read_text(encoding="utf-8") != text:
            problems.append(f"{out} is stale: run python -m cid_conformance.matrix")
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    out.write_text(text, encoding="utf-8")
    for p in problems:
        print(p, file=sys.stderr)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
