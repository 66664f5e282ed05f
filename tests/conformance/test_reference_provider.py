"""The provider suite against the reference provider (it passes every MUST and SHOULD case).

The reference registry and the reference provider (``cid_provider``, real local processes
for tasks) run on loopback; the suite runs strict with writes allowed, as a provider's CI
would, and writes its reports.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from .conftest import describe, errors, failing, reference_provider, run_suite

pytestmark = pytest.mark.asyncio

WAITS = {"provider/8/31"}
"""Cases that wait longer than the default --max-wait (the 60-s grace of an accepted
negotiation, [REQ-PRV-017]): skipped here, run for real by ``make test-slow``
(``tests_slow/test_provider_waits.py``)."""


async def test_reference_provider_passes(tmp_path: Path) -> None:
    reports = {k: tmp_path / f"report.{k}" for k in ("json", "xml", "md")}
    async with reference_provider(tmp_path) as dep:
        code, results = await run_suite(
            dep.args(
                "--strict",
                "--allow-writes",
                "--json",
                str(reports["json"]),
                "--junit",
                str(reports["xml"]),
                "--markdown",
                str(reports["md"]),
            )
        )
    assert not errors(results), errors(results)
    bad = failing(results)
    assert not bad, describe(results, bad)
    skipped = {r.case.id for r in results if r.status.label in ("skip", "disabled")}
    assert skipped == WAITS, skipped
    assert code == 0
    assert len(results) >= 60
    by_area = {r.case.section for r in results}
    assert by_area == {"8", "9", "15"}
    report = json.loads(reports["json"].read_text())
    assert report["summary"]["pass"] == len(results) - len(WAITS)
    suites = ET.parse(reports["xml"]).getroot()
    assert sum(int(s.get("tests", "0")) for s in suites) == len(results)
    assert sum(int(s.get("failures", "0")) for s in suites) == 0


async def test_read_only_run_skips_writes(tmp_path: Path) -> None:
    """Without --allow-writes every case that negotiates or invokes is skipped; the rest pass."""
    async with reference_provider(tmp_path) as dep:
        code, results = await run_suite(dep.args("--strict"))
    assert not errors(results), errors(results)
    assert not failing(results), describe(results, failing(results))
    writes = [r for r in results if r.case.writes]
    assert writes and all(r.status.label == "skip" for r in writes)
    assert sum(r.status.label == "pass" for r in results) >= 5
    assert code == 0


async def test_only_one_case_and_usage_errors(tmp_path: Path) -> None:
    """--only reruns one case; a run without the registry or the trust anchor is a usage error."""
    async with reference_provider(tmp_path) as dep:
        code, results = await run_suite(dep.args("--allow-writes", "--only", "provider/9/5"))
        assert code == 0 and [r.case.id for r in results] == ["provider/9/5"]
        args = dep.args()
        i = args.index("--registry")
        for drop in (args[i : i + 2], args[i + 2 : i + 4]):
            with pytest.raises(SystemExit) as e:
                await run_suite([a for a in args if a not in drop])
            assert e.value.code == 2
        for extra in (["--image", "{"], ["--max-wait", "-1"], ["--requester-key", "/nonexistent"]):
            with pytest.raises(SystemExit) as e:
                await run_suite([*args, *extra])
            assert e.value.code == 2, extra
        with pytest.raises(SystemExit) as e:
            await run_suite(["provider", "ftp://x", *args[2:]])
        assert e.value.code == 2


async def test_unreachable_provider_fails_cleanly(tmp_path: Path) -> None:
    """A provider that does not answer fails the cases (a target fault), not the suite."""
    async with reference_provider(tmp_path) as dep:
        args = dep.args("--allow-writes", "--only", "provider/15/2", "--only", "provider/8/1")
        args[1] = "http://127.0.0.1:9"
        code, results = await run_suite(args)
    assert not errors(results), errors(results)
    assert code == 1 and {r.status.label for r in results} == {"fail"}
