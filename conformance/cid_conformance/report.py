"""Reports of a run: live progress, a summary table, JSON, JUnit XML and Markdown."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from . import __version__
from .case import Status
from .runner import CaseResult
from .spec import Requirement

__all__ = ["Progress", "RunInfo", "exit_code", "summary_text", "to_json", "to_junit", "to_markdown"]

_COLOURS = {
    Status.PASS: "\033[32m",
    Status.FAIL: "\033[31m",
    Status.ERROR: "\033[35m",
    Status.SKIP: "\033[33m",
    Status.DISABLED: "\033[90m",
}
_RESET = "\033[0m"


@dataclass(frozen=True)
class RunInfo:
    """What was run against what, for the reports."""

    target: str
    endpoint: str
    command: str
    strict: bool
    allow_writes: bool
    started: float
    duration_s: float


def exit_code(results: Sequence[CaseResult]) -> int:
    """0 when every counted case passed (or skipped); 1 on a counted failure; 3 on a suite error."""
    if any(r.status is Status.ERROR for r in results):
        return 3
    if any(r.blocking for r in results):
        return 1
    return 0


def _reqs(result: CaseResult) -> str:
    return ",".join(result.case.reqs)


class Progress:
    """Live progress on a terminal: one line per case (``quiet``: one character per case)."""

    def __init__(
        self, out: TextIO = sys.stderr, *, quiet: bool = False, colour: bool | None = None
    ):
        self.out = out
        self.quiet = quiet
        self.colour = out.isatty() if colour is None else colour
        self._dots = 0

    def _paint(self, status: Status, text: str) -> str:
        return f"{_COLOURS[status]}{text}{_RESET}" if self.colour else text

    def __call__(self, i: int, n: int, result: CaseResult) -> None:
        status = result.status
        if self.quiet:
            mark = {Status.PASS: ".", Status.FAIL: "F", Status.ERROR: "E", Status.SKIP: "s"}
            self.out.write(self._paint(status, mark.get(status, "-")))
            self._dots += 1
            if self._dots % 72 == 0 or i == n:
                self.out.write(f" [{i}/{n}]\n")
            if status in (Status.FAIL, Status.ERROR) and result.counted:
                self._dots = 0
                self.out.write(f"\n  {result.case.id} [{_reqs(result)}]: {result.message}\n")
            self.out.flush()
            return
        width = len(str(n))
        label = self._paint(status, f"{status.label.upper():8}")
        line = (
            f"[{i:{width}}/{n}] {label} {result.case.id:18} [{_reqs(result)}] "
            f"{result.case.title} ({result.duration_s * 1000:.0f} ms)"
        )
        self.out.write(line + "\n")
        if status in (Status.FAIL, Status.ERROR, Status.SKIP) and result.message:
            self.out.write(f"{'':{2 * width + 12}}{result.message}\n")
            for d in result.details if status is not Status.SKIP else []:
                for text in d.rstrip().splitlines()[:12]:
                    self.out.write(f"{'':{2 * width + 14}}{text}\n")
        self.out.flush()


def _table(rows: list[list[str]], header: list[str]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    fmt = "  ".join(f"{{:{'>' if i else '<'}{w}}}" for i, w in enumerate(widths))
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*r) for r in rows]
    return out


def _counts_by_section(results: Sequence[CaseResult]) -> dict[str, Counter[Status]]:
    by: dict[str, Counter[Status]] = defaultdict(Counter)
    for r in results:
        by[f"§{r.case.section}"][r.status] += 1
    return dict(by)


def summary_text(results: Sequence[CaseResult], info: RunInfo) -> str:
    """The summary table printed after a run, with every counted failure and how to reproduce it."""
    order = [Status.PASS, Status.FAIL, Status.ERROR, Status.SKIP, Status.DISABLED]
    rows = []
    total: Counter[Status] = Counter()
    by = _counts_by_section(results)
    for section in sorted(by, key=lambda s: [int(p) for p in s[1:].split(".") if p.isdigit()]):
        counts = by[section]
        total.update(counts)
        rows.append([section, *(str(counts[s]) for s in order), str(sum(counts.values()))])
    rows.append(["total", *(str(total[s]) for s in order), str(sum(total.values()))])
    lines = [
        "",
        f"cid-conformance {__version__}: {info.target} {info.endpoint}"
        f" ({'strict' if info.strict else 'MUST only'},"
        f" {'writes allowed' if info.allow_writes else 'read-only'}) in {info.duration_s:.1f} s",
        "",
        *_table(rows, ["section", *(s.label for s in order), "cases"]),
    ]
    bad = [r for r in results if r.status in (Status.FAIL, Status.ERROR)]
    if bad:
        lines += ["", "Failures:" if any(r.status is Status.FAIL for r in bad) else "Errors:"]
        for r in bad:
            counted = "" if r.counted else " (not counted)"
            lines.append(
                f"  {r.status.label.upper()} {r.case.id} [{_reqs(r)}] {r.level.name}{counted}: "
                f"{r.case.title}"
            )
            lines.append(f"      {r.message}")
            lines.append(f"      reproduce: {info.command} --only {r.case.id}")
    code = exit_code(results)
    verdict = {0: "PASS", 1: "FAIL", 3: "ERROR (the suite itself broke)"}[code]
    lines += ["", f"result: {verdict}", ""]
    return "\n".join(lines)


def _result_value(r: CaseResult, requirements: Mapping[str, Requirement]) -> dict[str, Any]:
    return {
        "id": r.case.id,
        "title": r.case.title,
        "target": r.case.target,
        "section": r.case.section,
        "requirements": [
            {
                "id": q,
                "level": req.level.name if req and req.level else None,
                "section": req.section if req else None,
            }
            for q in r.case.reqs
            for req in [requirements.get(q)]
        ],
        "level": r.level.name,
        "counted": r.counted,
        "writes": r.case.writes,
        "status": r.status.label,
        "message": r.message,
        "details": r.details,
        "duration_ms": round(r.duration_s * 1000, 3),
        "spec_quote": r.case.doc,
    }


def to_json(
    results: Sequence[CaseResult], info: RunInfo, requirements: Mapping[str, Requirement]
) -> str:
    """The machine-readable report."""
    counts = Counter(r.status.label for r in results)
    value = {
        "tool": "cid-conformance",
        "version": __version__,
        "target": info.target,
        "endpoint": info.endpoint,
        "command": info.command,
        "strict": info.strict,
        "allow_writes": info.allow_writes,
        "started": info.started,
        "duration_s": round(info.duration_s, 3),
        "exit_code": exit_code(results),
        "summary": {s.label: counts.get(s.label, 0) for s in Status},
        "cases": [_result_value(r, requirements) for r in results],
    }
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def to_junit(results: Sequence[CaseResult], info: RunInfo) -> str:
    """JUnit XML: one ``testsuite`` per spec section, one ``testcase`` per case."""
    suites = ET.Element("testsuites", name=f"cid-conformance {info.target}")
    by: dict[str, list[CaseResult]] = defaultdict(list)
    for r in results:
        by[r.case.section].append(r)
    for section, items in by.items():
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=f"{info.target}.{section}",
            tests=str(len(items)),
            failures=str(sum(r.status is Status.FAIL and r.counted for r in items)),
            errors=str(sum(r.status is Status.ERROR for r in items)),
            skipped=str(sum(r.status in (Status.SKIP, Status.DISABLED) for r in items)),
            time=f"{sum(r.duration_s for r in items):.3f}",
        )
        for r in items:
            tc = ET.SubElement(
                suite,
                "testcase",
                classname=f"{info.target}.{section}",
                name=f"{r.case.id} [{_reqs(r)}] {r.case.title}",
                time=f"{r.duration_s:.3f}",
            )
            props = ET.SubElement(tc, "properties")
            ET.SubElement(props, "property", name="requirements", value=_reqs(r))
            ET.SubElement(props, "property", name="level", value=r.level.name)
            if r.status is Status.FAIL and r.counted:
                el = ET.SubElement(tc, "failure", message=r.message, type="nonconformance")
                el.text = "\n".join([r.message, *r.details])
            elif r.status is Status.FAIL:
                el = ET.SubElement(tc, "system-out")
                el.text = f"{r.level.name} case failed (not counted): {r.message}"
            elif r.status is Status.ERROR:
                el = ET.SubElement(tc, "error", message=r.message, type="suite-error")
                el.text = "\n".join([r.message, *r.details])
            elif r.status in (Status.SKIP, Status.DISABLED):
                ET.SubElement(tc, "skipped", message=f"{r.status.label}: {r.message}")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, "unicode") + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(
    results: Sequence[CaseResult], info: RunInfo, requirements: Mapping[str, Requirement]
) -> str:
    """A readable report: summary per section, failures with their requirement text, every case."""
    order = [Status.PASS, Status.FAIL, Status.ERROR, Status.SKIP, Status.DISABLED]
    code = exit_code(results)
    lines = [
        f"# cid-conformance report: {info.target}",
        "",
        f"* endpoint: `{info.endpoint}`",
        f"* command: `{info.command}`",
        f"* mode: {'strict (MUST and SHOULD count)' if info.strict else 'MUST cases only'}; "
        f"{'writes allowed' if info.allow_writes else 'read-only'}",
        f"* duration: {info.duration_s:.1f} s; suite version {__version__}",
        f"* result: **{ {0: 'PASS', 1: 'FAIL', 3: 'ERROR'}[code] }** (exit status {code})",
        "",
        "| section | " + " | ".join(s.label for s in order) + " | cases |",
        "|---|" + "---:|" * (len(order) + 1),
    ]
    by = _counts_by_section(results)
    for section in sorted(by, key=lambda s: [int(p) for p in s[1:].split(".") if p.isdigit()]):
        c = by[section]
        lines.append(
            f"| {section} | " + " | ".join(str(c[s]) for s in order) + f" | {sum(c.values())} |"
        )
    bad = [r for r in results if r.status in (Status.FAIL, Status.ERROR)]
    if bad:
        lines += ["", "## Failures", ""]
        for r in bad:
            lines.append(f"### {r.case.id}: {r.case.title}")
            lines.append("")
            counted = "" if r.counted else " (not counted in this mode)"
            lines.append(f"**{r.status.label}**, level {r.level.name}{counted}: {r.message}")
            lines.append("")
            for q in r.case.reqs:
                req = requirements.get(q)
                if req is not None:
                    lines.append(f"> **[{q}]** ({req.file}, §{req.section}) {req.text}")
                    lines.append(">")
            if r.details:
                lines += ["", "```", *[d.rstrip() for d in r.details], "```"]
            lines += ["", f"Reproduce: `{info.command} --only {r.case.id}`", ""]
    lines += ["", "## All cases", "", "| case | requirements | level | status | title | note |"]
    lines.append("|---|---|---|---|---|---|")
    for r in results:
        lines.append(
            f"| `{r.case.id}` | {', '.join(r.case.reqs)} | {r.level.name} | {r.status.label} | "
            f"{_md(r.case.title)} | {_md(r.message)[:200]} |"
        )
    return "\n".join(lines) + "\n"
