"""Conformance cases: what one check is, what it cites, and how it ends.

A case is an async function over a target context, registered with a
:class:`Section` (one module per spec section, as h2spec does) under a stable
id ``<target>/<section>/<n>``. It cites the requirement IDs it checks; its level
is the strongest level among them (:mod:`cid_conformance.spec`), or weaker when
the case checks only a SHOULD clause of a MUST paragraph (``clause=``). A case
that needs state changes on the target is marked ``writes=True`` and is skipped
unless the run allows writes.

A case ends in one of five statuses, ranked as in h2spec (STYLE.md):
``disabled < skip < pass < fail < error``. *fail* means the target broke a
requirement; *error* means the suite itself broke (an unexpected exception in
a case) and is never blamed on the target.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NoReturn, TypeVar

from .spec import Level, Requirement

__all__ = [
    "Case",
    "CaseFailed",
    "CaseSkipped",
    "Section",
    "Status",
    "check",
    "check_equal",
    "fail",
    "skip",
]

C = TypeVar("C")
CaseFn = Callable[[Any], Awaitable[None]]


class Status(enum.IntEnum):
    """How a case ended, ranked: the worst of several is the greatest."""

    DISABLED = 0
    SKIP = 1
    PASS = 2
    FAIL = 3
    ERROR = 4

    @property
    def label(self) -> str:
        return self.name.lower()


class CaseFailed(Exception):  # noqa: N818 - a control-flow signal, like pytest's Failed
    """The target broke the requirement the case checks."""

    def __init__(self, message: str, *, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details)


class CaseSkipped(Exception):  # noqa: N818 - a control-flow signal, like pytest's Skipped
    """The case cannot run here (no writes allowed, a capability missing, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def fail(message: str, *details: str) -> NoReturn:
    """End the case: the target broke the requirement."""
    raise CaseFailed(message, details=details)


def skip(reason: str) -> NoReturn:
    """End the case without a verdict."""
    raise CaseSkipped(reason)


def check(condition: object, message: str, *details: str) -> None:
    """Fail the case with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CaseFailed(message, details=details)


def check_equal(actual: object, expected: object, what: str) -> None:
    """Fail unless ``actual == expected``, saying what was compared and both values."""
    if actual != expected:
        raise CaseFailed(f"{what}: expected {_short(expected)}, got {_short(actual)}")


def _short(value: object, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Case:
    """One registered case."""

    id: str
    target: str
    section: str
    title: str
    reqs: tuple[str, ...]
    fn: CaseFn
    doc: str = ""
    """The spec sentence the case checks, quoted (the function's docstring)."""
    writes: bool = False
    clause: Level | None = None
    """Set when the case checks only a weaker clause of what it cites."""
    tags: frozenset[str] = field(default_factory=frozenset)

    def level(self, requirements: dict[str, Requirement] | Any) -> Level:
        """The case's level: the strongest cited level, capped by ``clause``."""
        levels = [
            r.level for r in (requirements.get(i) for i in self.reqs) if r and r.level is not None
        ]
        strongest = max(levels, default=Level.MAY)
        return min(strongest, self.clause) if self.clause is not None else strongest

    def matches(self, prefixes: Iterable[str]) -> bool:
        """Selected by ``--only``: a prefix of one of its IDs or of its case id."""
        return any(
            self.id.startswith(p) or any(r.startswith(p) for r in self.reqs) for p in prefixes
        )


_ALL: Final[list[Case]] = []


class Section:
    """The cases of one spec section for one target; one module holds one ``Section``."""

    def __init__(self, target: str, section: str, title: str) -> None:
        self.target = target
        self.section = section
        self.title = title
        self.cases: list[Case] = []

    def case(
        self,
        n: int,
        title: str,
        *reqs: str,
        writes: bool = False,
        clause: Level | None = None,
        tags: Iterable[str] = (),
    ) -> Callable[[CaseFn], CaseFn]:
        """Register ``fn`` as case ``<target>/<section>/<n>`` citing ``reqs``."""
        if not reqs:
            raise ValueError(f"case {self.section}/{n} cites no requirement")

        def register(fn: CaseFn) -> CaseFn:
            case_id = f"{self.target}/{self.section}/{n}"
            if any(c.id == case_id for c in _ALL):
                raise ValueError(f"duplicate case id {case_id}")
            case = Case(
                id=case_id,
                target=self.target,
                section=self.section,
                title=title,
                reqs=tuple(reqs),
                fn=fn,
                doc=" ".join((fn.__doc__ or "").split()),
                writes=writes,
                clause=clause,
                tags=frozenset(tags),
            )
            self.cases.append(case)
            _ALL.append(case)
            return fn

        return register

    def add(self, case: Case) -> None:
        """Register a case built programmatically (table-driven vector cases)."""
        if any(c.id == case.id for c in _ALL):
            raise ValueError(f"duplicate case id {case.id}")
        self.cases.append(case)
        _ALL.append(case)


def all_cases() -> list[Case]:
    """Every case registered so far (import the target modules first)."""
    return list(_ALL)
