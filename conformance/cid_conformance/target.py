"""A conformance target: what the suite runs against, its options and its case modules."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from .case import Case, all_cases

__all__ = ["Target", "UsageError"]


class UsageError(Exception):
    """The command line does not give what a run needs."""


@dataclass(frozen=True)
class Target:
    """One kind of implementation under test (a registry, a provider, a library, a resolver)."""

    name: str
    help: str
    description: str
    modules: tuple[str, ...]
    """The case modules, one per spec section (imported on demand)."""
    add_arguments: Callable[[argparse.ArgumentParser], None]
    open: Callable[[argparse.Namespace], AbstractAsyncContextManager[Any]]
    """The context the cases get; raises :class:`UsageError` when options are missing."""
    endpoint: Callable[[argparse.Namespace], str]

    def cases(self) -> list[Case]:
        for module in self.modules:
            importlib.import_module(module)
        return [c for c in all_cases() if c.target == self.name]
