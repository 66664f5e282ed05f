"""Run selected cases against one target context and collect their results."""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .case import Case, CaseFailed, CaseSkipped, Status
from .spec import Level, Requirement

__all__ = ["CaseResult", "RunOptions", "order_cases", "run_cases"]

_ORDER = {"early": 0, "late": 2, "last": 3, "final": 4}


@dataclass(frozen=True)
class RunOptions:
    strict: bool = False
    """Run SHOULD and MAY cases too; SHOULD failures then count."""
    allow_writes: bool = False
    case_timeout_s: float = 60.0


@dataclass
class CaseResult:
    case: Case
    level: Level
    status: Status
    message: str = ""
    details: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    counted: bool = True
    """Whether the result decides the exit status (MUST always, SHOULD under --strict)."""

    @property
    def blocking(self) -> bool:
        """A counted failure, or a suite error: the run is not a pass."""
        return self.status is Status.ERROR or (self.counted and self.status is Status.FAIL)


def _rank(case: Case) -> tuple[int, int, tuple[int, ...], int]:
    order = min((_ORDER[t] for t in case.tags if t in _ORDER), default=1)
    section = tuple(int(p) for p in case.section.split(".") if p.isdigit())
    return (order, 0, section, int(case.id.rsplit("/", 1)[1]))


def order_cases(cases: Sequence[Case]) -> list[Case]:
    """Run order: by spec section and number; cases tagged ``late``/``last`` at the end."""
    return sorted(cases, key=_rank)


async def _run_one(case: Case, context: Any, timeout_s: float) -> tuple[Status, str, list[str]]:
    try:
        await asyncio.wait_for(case.fn(context), timeout=timeout_s)
    except CaseFailed as e:
        return Status.FAIL, e.message, e.details
    except CaseSkipped as e:
        return Status.SKIP, e.reason, []
    except TimeoutError:
        return Status.FAIL, f"no answer within {timeout_s:g} s (the case timed out)", []
    except asyncio.CancelledError:
        raise
    except Exception as e:
        # the suite broke, not the target: an error, with the traceback for the report
        tb = traceback.format_exception(type(e), e, e.__traceback__)
        return Status.ERROR, f"{type(e).__name__}: {e}", ["".join(tb[-6:])]
    return Status.PASS, "", []


async def run_cases(
    cases: Sequence[Case],
    context: Any,
    requirements: Mapping[str, Requirement],
    options: RunOptions,
    *,
    progress: Callable[[int, int, CaseResult], None] | None = None,
) -> list[CaseResult]:
    """Run ``cases`` in order; ``progress(i, n, result)`` after each one."""
    ordered = order_cases(cases)
    results: list[CaseResult] = []
    for i, case in enumerate(ordered, 1):
        level = case.level(dict(requirements))
        counted = level is Level.MUST or (options.strict and level is Level.SHOULD)
        started = time.perf_counter()
        details: list[str] = []
        if level is not Level.MUST and not options.strict:
            status, message = Status.DISABLED, f"{level.name} case; run with --strict"
        elif case.writes and not options.allow_writes:
            status, message, details = (
                Status.SKIP,
                "changes the target; run with --allow-writes",
                [],
            )
        else:
            status, message, details = await _run_one(case, context, options.case_timeout_s)
        result = CaseResult(
            case=case,
            level=level,
            status=status,
            message=message,
            details=details,
            duration_s=time.perf_counter() - started,
            counted=counted,
        )
        results.append(result)
        if progress is not None:
            progress(i, len(ordered), result)
    return results
