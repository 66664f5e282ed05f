"""The runner's statuses and exit codes, the reports, and the command line."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from cid_conformance.case import Case, Status, check, skip
from cid_conformance.cli import main
from cid_conformance.report import RunInfo, exit_code, summary_text, to_json, to_junit, to_markdown
from cid_conformance.runner import RunOptions, run_cases
from cid_conformance.spec import Level, load_requirements


async def _pass(ctx: Any) -> None:
    return None


async def _fail(ctx: Any) -> None:
    check(False, "the target broke it")


async def _skip(ctx: Any) -> None:
    skip("not here")


async def _crash(ctx: Any) -> None:
    raise KeyError("the suite broke")


def case(n: int, fn: Any, *reqs: str, **kw: Any) -> Case:
    return Case(id=f"t/1/{n}", target="t", section="1", title=f"case {n}", reqs=reqs, fn=fn, **kw)


CASES = [
    case(1, _pass, "REQ-GEN-001"),
    case(2, _fail, "REQ-GEN-002"),
    case(3, _skip, "REQ-GEN-003"),
    case(4, _fail, "REQ-ID-027"),  # a SHOULD requirement
    case(5, _pass, "REQ-GEN-001", writes=True),
    case(6, _fail, "REQ-ID-019", clause=Level.SHOULD),  # a SHOULD clause of a MUST requirement
    case(7, _pass, "REQ-REC-010", "REQ-ID-027"),  # MUST and SHOULD: a MUST case
]


@pytest.mark.asyncio
async def test_statuses_levels_and_exit_codes() -> None:
    reqs = load_requirements()
    results = await run_cases(CASES, None, reqs, RunOptions())
    got = {r.case.id: (r.status, r.level, r.counted) for r in results}
    assert got == {
        "t/1/1": (Status.PASS, Level.MUST, True),
        "t/1/2": (Status.FAIL, Level.MUST, True),
        "t/1/3": (Status.SKIP, Level.MUST, True),
        "t/1/4": (Status.DISABLED, Level.SHOULD, False),
        "t/1/5": (Status.SKIP, Level.MUST, True),
        "t/1/6": (Status.DISABLED, Level.SHOULD, False),
        "t/1/7": (Status.PASS, Level.MUST, True),
    }
    assert exit_code(results) == 1
    strict = await run_cases(CASES, None, reqs, RunOptions(strict=True, allow_writes=True))
    by = {r.case.id: r for r in strict}
    assert by["t/1/4"].status is Status.FAIL and by["t/1/4"].counted
    assert by["t/1/5"].status is Status.PASS
    assert exit_code(strict) == 1
    ok = await run_cases([CASES[0], CASES[2], CASES[3]], None, reqs, RunOptions())
    assert exit_code(ok) == 0  # a SHOULD failure counts only under --strict
    crashed = await run_cases([CASES[0], case(8, _crash, "REQ-GEN-001")], None, reqs, RunOptions())
    assert crashed[1].status is Status.ERROR and "KeyError" in crashed[1].message
    assert exit_code(crashed) == 3


@pytest.mark.asyncio
async def test_reports() -> None:
    reqs = load_requirements()
    results = await run_cases(CASES, None, reqs, RunOptions(strict=True))
    info = RunInfo("t", "http://x", "cid-conformance t http://x --strict", True, False, 0.0, 1.5)
    text = summary_text(results, info)
    assert "reproduce: cid-conformance t http://x --strict --only t/1/2" in text
    assert "result: FAIL" in text
    report = json.loads(to_json(results, info, reqs))
    assert report["summary"] == {"disabled": 0, "skip": 2, "pass": 2, "fail": 3, "error": 0}
    assert report["exit_code"] == 1
    assert report["cases"][1]["requirements"] == [
        {"id": "REQ-GEN-002", "level": "MUST", "section": "1.5"}
    ]
    suite = ET.fromstring(to_junit(results, info))
    cases = suite.findall(".//testcase")
    assert len(cases) == len(CASES)
    assert len(suite.findall(".//failure")) == 3 and len(suite.findall(".//skipped")) == 2
    markdown = to_markdown(results, info, reqs)
    assert "### t/1/2: case 2" in markdown and "> **[REQ-GEN-002]**" in markdown
    assert "Reproduce: `cid-conformance t http://x --strict --only t/1/2`" in markdown


def test_list_and_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["registry", "--list", "--only", "REQ-REG-031"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].endswith("cases") and int(out[-1].split()[0]) >= 3
    assert all("REQ-REG-031" in line for line in out[:-1])
    assert main(["vectors", "--list", "--only", "vectors/6/", "--exclude", "REQ-SIG-004"]) == 0
    listed = capsys.readouterr().out
    assert "vectors/6/1 " in listed and "vectors/6/5 " not in listed


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["registry"],  # no URL
        ["registry", "http://127.0.0.1:9", "--only", "REQ-NOPE"],
        ["vectors"],  # no adapter
        ["provider", "http://127.0.0.1:9"],  # no registry to find the offer in
        ["registry", "http://127.0.0.1:9", "--root-key", "/nonexistent"],
    ):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2, argv
    assert "give --registry URL" in capsys.readouterr().err
