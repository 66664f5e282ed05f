"""``cid-conformance``: run the conformance suite against a registry, provider, library or resolver.

Usage::

    cid-conformance registry http://127.0.0.1:8470 --root-key root.key --allow-writes
    cid-conformance registry URL --root-keys root.pub.json            # read-only cases
    cid-conformance vectors --adapter python                         # the reference library
    cid-conformance vectors --adapter-cmd "./my-impl conformance-adapter"
    cid-conformance resolver --adapter python
    cid-conformance registry --list [--only REQ-REG]                 # what would run

Exit status: 0 when every counted case passed or was skipped (MUST cases; SHOULD
cases too with ``--strict``); 1 when one failed; 3 when the suite itself broke
(a case raised an unexpected exception); 2 for a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from . import __version__
from .adapter import AdapterBroken
from .case import Case
from .report import Progress, RunInfo, exit_code, summary_text, to_json, to_junit, to_markdown
from .runner import CaseResult, RunOptions, order_cases, run_cases
from .spec import Level, SpecError, load_requirements, use_spec_dir
from .target import Target, UsageError
from .targets import TARGETS

__all__ = ["build_parser", "main", "run"]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PREFIX",
        help="run only cases whose requirement ID or case id starts with PREFIX "
        "(REQ-NEG, REQ-REG-031, registry/12.6/3); repeatable",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="PREFIX",
        help="leave out cases whose requirement ID or case id starts with PREFIX; repeatable",
    )
    parser.add_argument("--list", action="store_true", help="list the selected cases and exit")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="also run SHOULD (and MAY) cases; SHOULD failures count",
    )
    parser.add_argument(
        "--allow-writes",
        action="store_true",
        help="run the cases that change the target (publish records, negotiate, invoke)",
    )
    parser.add_argument("--json", metavar="FILE", help="write the JSON report to FILE")
    parser.add_argument("--junit", metavar="FILE", help="write JUnit XML to FILE")
    parser.add_argument("--markdown", metavar="FILE", help="write the Markdown report to FILE")
    parser.add_argument("-q", "--quiet", action="store_true", help="one character per case")
    parser.add_argument("--no-colour", action="store_true", help="no ANSI colours")
    parser.add_argument("--spec", metavar="DIR", help="the specification directory (spec/)")
    parser.add_argument(
        "--case-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="time limit of one case; at least --max-wait + 30 where a target has --max-wait",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cid-conformance",
        description="The cid conformance suite: checks an implementation against the spec, "
        "requirement by requirement.",
        epilog="Exit status: 0 pass, 1 a counted case failed, 3 the suite itself broke, 2 usage.",
    )
    parser.add_argument("--version", action="version", version=f"cid-conformance {__version__}")
    sub = parser.add_subparsers(dest="target", required=True, metavar="TARGET")
    for target in TARGETS.values():
        p = sub.add_parser(target.name, help=target.help, description=target.description)
        target.add_arguments(p)
        _common(p)
    return parser


def _list(cases: Sequence[Case], levels: dict[str, Level], out: TextIO) -> None:
    for case in cases:
        flags = " writes" if case.writes else ""
        out.write(
            f"{case.id:22} {levels[case.id].name:6}{flags:7} [{','.join(case.reqs)}] {case.title}\n"
        )
    out.write(f"{len(cases)} cases\n")


def _command_line(argv: Sequence[str]) -> str:
    """The command to reproduce this run, minus the options that only select or report."""
    drop_next = {"--only", "--exclude", "--json", "--junit", "--markdown"}
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in drop_next:
            skip = True
            continue
        if any(arg.startswith(f"{d}=") for d in drop_next) or arg == "--list":
            continue
        kept.append(arg)
    return "cid-conformance " + " ".join(shlex.quote(a) for a in kept)


async def _run(
    target: Target, args: argparse.Namespace, cases: list[Case], argv: list[str]
) -> tuple[int, list[CaseResult]]:
    requirements = load_requirements(args.spec)
    # a case allowed to wait --max-wait seconds in real time gets that long, and 30 s more
    timeout = max(args.case_timeout, float(getattr(args, "max_wait", 0.0)) + 30.0)
    options = RunOptions(strict=args.strict, allow_writes=args.allow_writes, case_timeout_s=timeout)
    progress = Progress(sys.stderr, quiet=args.quiet, colour=False if args.no_colour else None)
    started_wall, started = time.time(), time.perf_counter()
    try:
        async with target.open(args) as context:
            results = await run_cases(cases, context, requirements, options, progress=progress)
    except AdapterBroken as e:
        # the suite could not even start talking to the implementation: a suite-side error
        sys.stderr.write(f"cid-conformance: the adapter failed: {e}\n")
        return 3, []
    info = RunInfo(
        target=target.name,
        endpoint=target.endpoint(args),
        command=_command_line(argv),
        strict=args.strict,
        allow_writes=args.allow_writes,
        started=started_wall,
        duration_s=time.perf_counter() - started,
    )
    sys.stdout.write(summary_text(results, info))
    if args.json:
        Path(args.json).write_text(to_json(results, info, requirements), encoding="utf-8")
    if args.junit:
        Path(args.junit).write_text(to_junit(results, info), encoding="utf-8")
    if args.markdown:
        Path(args.markdown).write_text(to_markdown(results, info, requirements), encoding="utf-8")
    return exit_code(results), results


async def run(argv: Sequence[str]) -> tuple[int, list[CaseResult]]:
    """Run the suite inside a running event loop (tests); usage errors raise SystemExit(2)."""
    parser = build_parser()
    args = parser.parse_args(list(argv))
    target = TARGETS[args.target]
    cases = _select(parser, target, args)
    try:
        return await _run(target, args, cases, list(argv))
    except UsageError as e:
        parser.error(str(e))


def _select(
    parser: argparse.ArgumentParser, target: Target, args: argparse.Namespace
) -> list[Case]:
    try:
        use_spec_dir(args.spec)
        load_requirements(args.spec)
    except SpecError as e:
        parser.error(str(e))
    cases = target.cases()
    if args.only:
        cases = [c for c in cases if c.matches(args.only)]
    if args.exclude:
        cases = [c for c in cases if not c.matches(args.exclude)]
    return order_cases(cases)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    target = TARGETS[args.target]
    cases = _select(parser, target, args)
    if args.list:
        requirements = load_requirements(args.spec)
        levels = {c.id: c.level(dict(requirements)) for c in cases}
        _list(cases, levels, sys.stdout)
        return 0
    if not cases:
        if not target.modules:
            parser.error(f"the {target.name} target has no cases in this version")
        parser.error(f"no case matches --only {' '.join(args.only)}")
    try:
        return asyncio.run(_run(target, args, cases, argv))[0]
    except UsageError as e:
        parser.error(str(e))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
